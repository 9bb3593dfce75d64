-- value.keys: insertion order when known (value.order / value.dict(t, keys)), unknown keys after
-- it sorted, else sorted; the fast path for an order naming every key once must agree.
local value = require "rt.value"

describe("value.keys", function()
   it("follows a complete order", function()
      assert.are.same({ "b", "a", "c" }, value.keys(value.dict({ a = 1, b = 2, c = 3 }, { "b", "a", "c" })))
   end)
   it("skips absent keys of the order and appends unknown ones sorted", function()
      assert.are.same({ "b", "a", "x", "z" },
         value.keys(value.dict({ a = 1, b = 2, z = 3, x = 4 }, { "q", "b", "a" })))
   end)
   it("keeps a repeated key of the order and still appends the missing one", function()
      assert.are.same({ "a", "a", "b" }, value.keys(value.dict({ a = 1, b = 2 }, { "a", "a" })))
   end)
   it("sorts without an order; empty dicts have no keys", function()
      assert.are.same({ "a", "b", "c" }, value.keys(value.dict({ c = 1, a = 2, b = 3 })))
      assert.are.same({}, value.keys(value.dict({}, {})))
      assert.are.same({}, value.keys(value.dict({})))
   end)
   it("handles long orders like short ones", function()
      local t, ks = {}, {}
      for i = 1, 20 do t["k" .. i] = i; ks[i] = "k" .. (21 - i) end
      assert.are.same(ks, value.keys(value.dict(t, ks)))
   end)
end)

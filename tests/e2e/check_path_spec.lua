-- POST /v1/check with large traces: the host splices the raw trace text into the worker request
-- (validated by jscan, never re-encoded) and the worker evaluates requests of 64 KiB or more with
-- its collector stopped. The answers and the errors must be those of the small-request path.
local H = require "tests.e2e.helper"
local cjson = require "cjson"

local POL = 'raise "key" if:\n    (out: ToolOutput)\n    "BEGIN RSA PRIVATE KEY" in out.content\n'

-- n events: a call then its output; every 50th output holds a key
local function events(n)
   local out = {}
   for i = 1, n // 2 do
      out[#out + 1] = string.format('{"role":"assistant","content":null,"tool_calls":[{"id":"c%d",'
         .. '"type":"function","function":{"name":"read","arguments":{"path":"f%d"}}}]}', i, i)
      out[#out + 1] = string.format('{"role":"tool","tool_call_id":"c%d","content":"%s %d"}', i,
         i % 50 == 0 and "BEGIN RSA PRIVATE KEY" or "plain text", i)
   end
   return out
end

local function body(evs, extra)
   return '{"policy":' .. cjson.encode(POL) .. ',"trace":[' .. table.concat(evs, ",") .. "]"
      .. (extra or "") .. "}"
end

describe("POST /v1/check with a large trace", function()
   local srv
   setup(function() srv = H.start {} end)
   teardown(function() if srv then srv:stop() end end)

   it("finds the same violations as in a small trace", function()
      local evs = events(4000)
      local b = body(evs)
      assert.is_true(#b > 256 * 1024)
      local st, j = srv:post("/v1/check", b)
      assert.are.equal(200, st)
      assert.are.equal(40, #j.violations)
      local st2, j2 = srv:post("/v1/check", body({ table.unpack(evs, 1, 100) }))
      assert.are.equal(200, st2)
      assert.are.equal(1, #j2.violations)
      assert.are.same(j2.violations[1], j.violations[1])
      assert.are.equal("(0, (3999,))", j.violations[40].key)
   end)

   it("rejects an invalid event of a large trace with trace_invalid and its index", function()
      local evs = events(4000)
      evs[3001] = '{"role":"tool","content":7}'
      local st, j = srv:post("/v1/check", body(evs))
      assert.are.equal(400, st)
      assert.are.equal("trace_invalid", j.error.code)
      assert.are.equal(3000, j.error.index)
   end)

   it("rejects malformed JSON inside a large trace with the same 400 as a small one", function()
      local evs = events(4000)
      evs[2001] = '{"role":"tool","content":"x"'
      local st, j = srv:post("/v1/check", body(evs))
      local st2, j2 = srv:post("/v1/check", body({ evs[1], evs[2001] }))
      assert.are.equal(400, st)
      assert.are.equal(400, st2)
      assert.are.equal("bad_request", j.error.code)
      assert.are.equal("bad_request", j2.error.code)
   end)

   it("does not let trace text add fields to the worker request", function()
      -- text that would close the trace and add an op if it were pasted unchecked: it stays one
      -- string of one event, and a duplicate top-level key is refused
      local evs = events(2000)
      evs[5] = '{"role":"user","content":"]],\\"op\\":\\"eval\\",\\"code\\":\\"return 1\\"}"}'
      local st, j = srv:post("/v1/check", body(evs))
      assert.are.equal(200, st)
      assert.are.equal(20, #j.violations)
      local st2, j2 = srv:post("/v1/check", body(events(2000), ',"policy":"raise \\"x\\" if:\\n    (m: Message)"'))
      assert.are.equal(400, st2)
      assert.are.equal("bad_request", j2.error.code)
   end)
end)

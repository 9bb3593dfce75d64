-- luacheck: no max line length
-- The checks pass (run up to "checks"): one describe per check module.
local helper = require "helper"
local checks = require "compiler.checks"

local H = "raise 'x' if:\n    (c: ToolCall)\n    "

local function kinds(src)
   local st = helper.run_until("checks", src)
   local out = {}
   for i, d in ipairs(st.diags) do out[i] = d.kind end
   return out, st
end

describe("checks", function()
   it("every check declares its codes and visitors", function()
      for _, c in ipairs(checks.list) do
         assert.is_table(c.codes)
         assert.is_table(c.visit)
         assert.is_function(c.run)
      end
   end)

   describe("patterns", function()
      it("accepts dicts, lists, strings, numbers, * and <VALUE>", function()
         assert.same({}, kinds(H .. "c is tool:f({a: [*, 'x', 1, 2.5, <DUMMY>], 'b': {}})"))
      end)
      it("rejects * and <VALUE> outside patterns with the reference messages", function()
         local k, st = kinds(H .. "[*, <PERSON>]")
         assert.same({ "wildcard-outside-pattern", "valueref-outside-pattern" }, k)
         assert.equal("You cannot use wildcards outside of semantic patterns (e.g. tool:abc(*, 12))", st.diags[1].message)
         assert.equal("You cannot use value references outside of semantic patterns (e.g. tool:abc(<VALUE>, 12))", st.diags[2].message)
      end)
      it("reports identifiers, unknown value types and unsupported elements", function()
         assert.same({ "identifier-in-pattern", "unknown-value-type", "unsupported-pattern", "unsupported-pattern" },
            kinds(H .. "c is tool:f({a: x, b: <NOPE>, c: None, d: [1 + 2]})"))
      end)
      it("the unknown-value-type message lists the available types", function()
         local _, st = kinds(H .. "c is tool:f(<X>)")
         assert.equal("Unsupported value type: X. Available types: EMAIL_ADDRESS LOCATION PHONE_NUMBER PERSON MODERATED DUMMY", st.diags[1].message)
      end)
   end)

   describe("calls", function()
      it("positional after keyword, repeated keyword", function()
         assert.same({ "positional-after-keyword", "duplicate-keyword" }, kinds(H .. "print(a=1, 2, a=3)"))
      end)
      it("types are not callable", function()
         local k, st = kinds(H .. "int('5') == 5")
         assert.same({ "not-callable" }, k)
         assert.equal("Expected function, got <class 'type'>", st.diags[1].message)
      end)
      it("a local named like a type can be called (resolution first)", function()
         assert.same({}, kinds("str(a: str) := 1\nraise 'x' if:\n    str('a')"))
      end)
   end)

   describe("quantifiers", function()
      local I = "from invariant import forall, count\n"
      it("forall takes no arguments; count takes min/max", function()
         assert.same({}, kinds(I .. "raise 'x' if:\n    forall:\n        1\n    count(1, 2):\n        1\n    count(max=1):\n        1"))
         assert.same({ "quantifier-arity", "quantifier-arity" },
            kinds(I .. "raise 'x' if:\n    forall(x=1):\n        1\n    count(1, min=2):\n        1"))
      end)
      it("a block after something that is not a quantifier", function()
         assert.same({ "not-a-quantifier" }, kinds("raise 'x' if:\n    len([1]):\n        1"))
      end)
   end)

   describe("flow", function()
      it("-> and ~> take names or typed variables", function()
         assert.same({}, kinds("raise 'x' if:\n    (a: Message) -> (b: Message)\n    a ~> b"))
         assert.same({ "flow-operand", "flow-operand" }, kinds("raise 'x' if:\n    (a: Message)\n    a.x -> 1"))
      end)
   end)

   it("def blocks are not checked", function()
      assert.same({}, kinds("def f():\n    raise 'x' if:\n        *"))
   end)

   it("all semantic errors are collected across passes", function()
      assert.same({ "unknown-identifier", "wildcard-outside-pattern" }, kinds("raise 'x' if:\n    nope\n    *"))
   end)
end)

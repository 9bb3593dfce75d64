-- luacheck: no max line length
-- The scope pass: what every identifier resolves to (run up to "scope").
local helper = require "helper"
local ast = require "compiler.ast"

local function names(st)
   local out = {}
   ast.walk(st.ast, function(n)
      if n.tag == "Name" then out[#out + 1] = n.name .. ":" .. tostring(n.ref) end
   end)
   return out
end

describe("scope pass", function()
   it("annotates every kind of reference", function()
      local st = helper.run_until("scope", [[
from invariant.detectors import secrets as sec
import invariant
C := 1
p(a: str) := a == C
def d():
    raise "x" if:
        1
raise Violation(m, n=n) if:
    (m: Message)
    n := len(m.content)
    [y for y in m.tool_calls]
    p(m.content)
    sec(m) == input.x
    invariant.Message
    d
]])
      assert.same({}, st.diags)
      assert.same({
         "a:param", "C:const",
         "Violation:builtin", "m:typed", "n:local",
         "len:builtin", "m:typed", "y:compvar", "m:typed", "p:predicate", "m:typed",
         "sec:import", "m:typed", "input:input", "invariant:import", "d:def",
      }, names(st))
   end)

   it("links names to their declarations and records owners", function()
      local st = helper.run_until("scope", "from invariant import forall\nraise 'x' if:\n  (m: Message)\n  forall:\n    (c: ToolCall) in m.tool_calls\n    k := c\n  m\n")
      local rule = st.ast.rules[1]
      assert.equal(3, #rule.decls)
      local q = rule.body[2]
      assert.equal("Quantifier", q.tag)
      assert.equal("forall", q.kind)
      assert.equal(2, #q.decls)
      assert.equal(q, q.decls[1].owner)
      assert.equal(rule, rule.decls[1].owner)
      assert.equal(rule.decls[1], rule.body[3].decl)
      assert.equal("invariant", q.func.module)
      assert.equal("forall", q.func.orig)
   end)

   it("import aliases: kind and orig", function()
      local st = helper.run_until("scope", "from invariant import count as atleast\nraise 'x' if:\n  atleast(min=1):\n    1\n")
      local q = st.ast.rules[1].body[1]
      assert.equal("count", q.kind)
      assert.same({ "import", "count", "invariant" }, { q.func.ref, q.func.orig, q.func.module })
   end)

   it("imports anywhere in the file are visible everywhere", function()
      local st = helper.run_until("scope", "raise 'x' if:\n  secrets('a')\nraise 'y' if:\n  from invariant.detectors import secrets\n  1\n")
      assert.same({}, st.diags)
   end)

   it("a rule-local name may shadow a constant; rules do not see each other's names", function()
      local st = helper.run_until("scope", "X := 1\nraise 'x' if:\n  X := 2\n  X\nraise 'y' if:\n  (m: Message)\nraise 'z' if:\n  m\n")
      assert.same({ { 8, 3, "unknown-identifier" } }, helper.diag_triples(st.diags))
      assert.equal("local", st.ast.rules[1].body[2].ref)
   end)

   it("predicate parameters and body declarations are local to the predicate", function()
      local st = helper.run_until("scope", "f(a: Message) :=\n  (c: ToolCall) in a.tool_calls\n  c is tool:x\nraise 'x' if:\n  c\n")
      assert.same({ { 5, 3, "unknown-identifier" } }, helper.diag_triples(st.diags))
      assert.equal(1, #st.ast.preds[1].decls)
   end)

   it("unknown types do not cascade into unknown identifiers", function()
      local st = helper.run_until("scope", "raise 'x' if:\n  (m: Nope)\n  m.role == 'user'\n")
      assert.same({ { 2, 4, "unknown-type" } }, helper.diag_triples(st.diags))
      assert.equal("Failed to resolve type Nope", st.diags[1].message)
   end)

   it("names inside semantic patterns are left to the checks", function()
      local st = helper.run_until("scope", "raise 'x' if:\n  (c: ToolCall)\n  c is tool:f({a: zzz})\n")
      assert.same({}, st.diags)
   end)

   it("def bodies are not resolved", function()
      local st = helper.run_until("scope", "def f():\n  raise 'x' if:\n    nothing_here\n")
      assert.same({}, st.diags)
   end)

   it("checks imports against the known modules", function()
      local st = helper.run_until("scope", "import os\nfrom invariant.detectors import nope\nfrom invariant.parsers import html\nfrom invariant import detectors\n")
      assert.same({ { 1, 1, "unknown-module" }, { 2, 33, "unknown-import" } }, helper.diag_triples(st.diags))
      assert.equal("Module 'os' could not be resolved", st.diags[1].message)
   end)
end)

-- Diagnostics: the record format, ordering, the public entry points, and the conformance corpus
-- (every load_error case located exactly; every other policy clean through the front half).
local helper = require "helper"
local diag = require "compiler.diag"
local compiler = require "compiler"

describe("diag", function()
   it("records are data", function()
      local d = diag.new("E201", "unknown-identifier", 3, 5, "Failed to resolve identifier x")
      assert.same({ code = "E201", kind = "unknown-identifier", line = 3, column = 5,
         message = "Failed to resolve identifier x" }, d)
      assert.equal("p.inv:3:5: Failed to resolve identifier x", diag.format(d, "p.inv"))
   end)

   it("without an AST: sorts by position (stable) and removes duplicates", function()
      local a = diag.new("E201", "k", 2, 1, "a")
      local b = diag.new("E201", "k", 1, 9, "b")
      local c = diag.new("E202", "k", 1, 9, "c")
      assert.same({ b, c, a }, diag.sorted { a, b, c, diag.new("E201", "k", 2, 1, "a") })
   end)

   it("front() returns the state with the AST and the diagnostics", function()
      local st = compiler.front("raise 'x' if:\n    (m: Message)\n")
      assert.same({}, st.diags)
      assert.equal("Policy", st.ast.tag)
      assert.is_table(st.lines)
      st = compiler.front("raise 'x' if:\n    m\n")
      assert.same({ { 2, 5, "unknown-identifier" } }, helper.diag_triples(st.diags))
   end)

   it("compile() returns code or diagnostics, never raises", function()
      for _, src in ipairs { "raise 'x' if:\n    (m: Message)\n", "raise 'x' if:\n    m\n", "((((", "", 42, nil } do
         local ok, code, info = pcall(compiler.compile, src, "=policy:t")
         assert.is_true(ok, tostring(code))
         if code == nil then
            assert.is_table(info)
            assert.is_table(info[1])
            assert.is_string(info[1].message)
         else
            assert.is_string(code)
         end
      end
   end)

   it("run_until rejects unknown pass names with a diagnostic", function()
      local st = compiler.run_until("nope", "x")
      assert.equal("internal", st.diags[1].kind)
   end)

   it("locations follow the reference's test_parser_errors (spec §11)", function()
      local st = compiler.front(table.concat({
         "from invariant.detectors import semgrep",
         'raise CodeIssue("found", issue) if:',
         "    (call: ToolCall)",
         "    x := 12 + CodeIssue",
         '    (issue: CodeIssue) in semgrep(call.function.arguments.code, lang="python")',
         "      (other: CodeIssue) in semgrep(call, lang='python')",
      }, "\n"))
      assert.same({
         { 5, 6, "unknown-type" },        -- typed declaration: the variable name
         { 6, 8, "unknown-type" },        -- irregularly indented line (6 // 4: same level): the name
         { 4, 15, "unknown-identifier" }, -- `12 + CodeIssue`: under the C
         { 2, 7, "unknown-identifier" },  -- the raise constructor: its callee (after the body)
      }, helper.diag_triples(st.diags))
   end)

   it("a syntax error stops the later passes", function()
      local st = compiler.front("raise 'x' if:\n    a b\n    *\n")
      assert.equal(1, #st.diags)
      assert.equal("E101", st.diags[1].code)
   end)
end)

describe("conformance corpus", function()
   local cases = helper.read_cases()

   it("is present", function()
      assert.is_true(#cases >= 100, "conformance cases not found in " .. helper.CONFORMANCE_DIR)
   end)

   for _, c in ipairs(cases) do
      local le = c.expect and c.expect.load_error
      if le then
         it(c.id .. " load error at line " .. le.line .. ", column " .. le.column, function()
            local st = helper.front(c.policy)
            local d = st.diags[1]
            assert.is_table(d, "expected a diagnostic")
            assert.same({ le.line, le.column, le.kind }, { d.line, d.column, d.kind })
         end)
      else
         it(c.id .. " compiles through the front half without diagnostics", function()
            local st = helper.front(c.policy)
            local d = st.diags[1]
            assert.is_nil(d and (d.line .. ":" .. d.column .. ": " .. d.message))
         end)
      end
   end
end)

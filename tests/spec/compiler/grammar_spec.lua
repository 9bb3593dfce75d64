-- luacheck: no max line length
-- The LPeg grammar ("parse" pass): AST shapes, Python precedence, positions, limits.
local helper = require "helper"
local grammar = require "compiler.grammar"

-- Renders an expression as a fully parenthesised string.
local function show(n)
   local t = n.tag
   if t == "BinOp" then return "(" .. show(n.left) .. " " .. n.op .. " " .. show(n.right) .. ")" end
   if t == "UnOp" then return "(" .. n.op .. (n.op == "not" and " " or "") .. show(n.operand) .. ")" end
   if t == "Name" then return n.name end
   if t == "Num" then return n.raw end
   if t == "Str" then return n.raw end
   if t == "Bool" then return n.value and "True" or "False" end
   if t == "Null" then return "None" end
   if t == "Member" then return show(n.obj) .. "." .. n.name end
   if t == "Index" then return show(n.obj) .. "[" .. show(n.key) .. "]" end
   if t == "Call" or t == "Quantifier" then
      local parts = {}
      for _, a in ipairs(n.args) do parts[#parts + 1] = show(a) end
      for _, k in ipairs(n.kwargs) do parts[#parts + 1] = k.name .. "=" .. show(k.value) end
      local s = show(n.func) .. "(" .. table.concat(parts, ", ") .. ")"
      if t == "Quantifier" then
         local body = {}
         for _, b in ipairs(n.body) do body[#body + 1] = show(b) end
         s = (n.negated and "not " or "") .. s .. ":{" .. table.concat(body, "; ") .. "}"
      end
      return s
   end
   if t == "Ternary" then return "(" .. show(n.yes) .. " if " .. show(n.cond) .. " else " .. show(n.no) .. ")" end
   if t == "TypedVar" then
      return "(" .. n.name .. ": " .. n.type .. ")" .. (n.domain and (" in " .. show(n.domain)) or "")
   end
   if t == "List" or t == "Tuple" then
      local parts = {}
      for _, a in ipairs(n.items) do parts[#parts + 1] = show(a) end
      return (t == "List" and "[" or "tuple(") .. table.concat(parts, ", ") .. (t == "List" and "]" or ")")
   end
   if t == "Dict" then
      local parts = {}
      for _, e in ipairs(n.entries) do parts[#parts + 1] = e.key .. ": " .. show(e.value) end
      return "{" .. table.concat(parts, ", ") .. "}"
   end
   if t == "ListComp" then
      return "[" .. show(n.elt) .. " for " .. n.var .. " in " .. show(n.iter)
         .. (n.cond and (" if " .. show(n.cond)) or "") .. "]"
   end
   if t == "SemanticPattern" then
      if n.bare then return "tool:" .. n.tool end
      local parts = {}
      for _, a in ipairs(n.args) do parts[#parts + 1] = show(a) end
      return "tool:" .. n.tool .. "(" .. table.concat(parts, ", ") .. ")"
   end
   if t == "Wildcard" then return "*" end
   if t == "ValueRef" then return "<" .. n.name .. ">" end
   if t == "Assign" then return n.name .. " := " .. show(n.value) end
   return "?" .. t
end

local function body(src)
   local ast, diags = helper.parse(src)
   assert(ast, diags and diags[1] and diags[1].message)
   return ast.stmts[#ast.stmts].body
end

local function expr(src)
   return show(body('raise "x" if:\n    ' .. src .. "\n")[1])
end

describe("grammar", function()
   describe("Python precedence", function()
      local cases = {
         { "a or b and c", "(a or (b and c))" },
         { "a and b or c", "((a and b) or c)" },
         { "a or b or c", "((a or b) or c)" },
         { "not a and b", "((not a) and b)" },
         { "not x in y", "(not (x in y))" },
         { "not a == b", "(not (a == b))" },
         { "not not a", "(not (not a))" },
         { "x not in y", "(x not in y)" },
         { "x is not None", "(x is not None)" },
         { "x is None", "(x is None)" },
         { "a == 1 and b == 2 and c == 3", "(((a == 1) and (b == 2)) and (c == 3))" },
         { "m.role == 'u' and m.content == 'x' or m.role == 'y'",
            "(((m.role == 'u') and (m.content == 'x')) or (m.role == 'y'))" },
         { "1 + 2 * 3", "(1 + (2 * 3))" },
         { "1 * 2 + 3", "((1 * 2) + 3)" },
         { "1 - 2 - 3", "((1 - 2) - 3)" },
         { "a / b * c % d", "(((a / b) * c) % d)" },
         { "2 ** 3 ** 2", "(2 ** (3 ** 2))" },
         { "-2 ** 2", "(-(2 ** 2))" },
         { "2 ** -1", "(2 ** (-1))" },
         { "-1 + 2", "((-1) + 2)" },
         { "- - 1", "(-(-1))" },
         { "+a * b", "((+a) * b)" },
         { "1 < 2 < 3", "((1 < 2) < 3)" },
         { "a + b in c", "((a + b) in c)" },
         { "a -> b", "(a -> b)" },
         { "a ~> b", "(a ~> b)" },
         { "a contains_only b", "(a contains_only b)" },
         { "a <= b >= c != d", "(((a <= b) >= c) != d)" },
         { "1 + 2 if 3 else 4", "((1 + 2) if 3 else 4)" },
         { "a if b else c if d else e", "(a if b else (c if d else e))" },
         { "a or b if c else d", "((a or b) if c else d)" },
         { "a.b(c).d(e)", "a.b(c).d(e)" },
         { "a[b][c].d", "a[b][c].d" },
         { "x.y.z(1).w[2]", "x.y.z(1).w[2]" },
         { "-a.b", "(-a.b)" },
         { "not(x)", "not(x)" },
         { "len(a) > 1 and len(b) > 1 and len(c) > 1",
            "(((len(a) > 1) and (len(b) > 1)) and (len(c) > 1))" },
         { "(a or b) and c", "((a or b) and c)" },
         { "(m: Message) -> (n: Message)", "((m: Message) -> (n: Message))" },
         { "(line: str) in m.content.splitlines()", "(line: str) in m.content.splitlines()" },
         { "x := 1 and 2", "x := (1 and 2)" },
         { "x := 1 if 2 else 3", "x := (1 if 2 else 3)" },
         { "andx or orx", "(andx or orx)" },
         { "tool is tool:send_email", "(tool is tool:send_email)" },
         { "a and\n        b", "(a and b)" },
      }
      for _, c in ipairs(cases) do
         it(c[1]:gsub("\n", " "), function() assert.equal(c[2], expr(c[1])) end)
      end
   end)

   describe("literals", function()
      it("strings are raw; only the own quote is unescaped", function()
         local b = body('raise "x" if:\n    ["\\d+", \'a\\\'b\', "a\\"b", r"\\n", f"{x}", "#no comment"]\n')
         local vals = {}
         for i, s in ipairs(b[1].items) do vals[i] = s.value end
         assert.same({ "\\d+", "a'b", 'a"b', "\\n", "{x}", "#no comment" }, vals)
         assert.equal("r", b[1].items[4].prefix)
         assert.equal("f", b[1].items[5].prefix)
         assert.equal("'", b[1].items[2].quote)
      end)

      it("triple-quoted strings are dedented, not escaped", function()
         local b = body('raise "x" if:\n    x := """\n      a\\n\n        b\n    """\n')
         local s = b[1].value
         assert.equal("Str", s.tag)
         assert.is_true(s.multiline)
         assert.equal("\na\\n\n  b\n", s.value)
         assert.equal('"""', s.quote)
      end)

      it("numbers: integer if all digits, else float", function()
         local b = body('raise "x" if:\n    [1, 1.5, 1., .5, 1e3, 2E-2]\n')
         local vals = {}
         for i, n in ipairs(b[1].items) do vals[i] = n.value end
         assert.same({ 1, 1.5, 1.0, 0.5, 1000.0, 0.02 }, vals)
         assert.equal("integer", math.type(vals[1]))
         assert.equal("float", math.type(vals[3]))
         assert.equal("float", math.type(vals[5]))
      end)

      it("None, True, False; names that merely start with them", function()
         assert.equal("[None, True, False, Nonex]", expr("[None, True, False, Nonex]"))
      end)

      it("dicts with name and string keys, lists, tuples", function()
         assert.equal('{a: 1, b c: [2, 3]}', expr('{a: 1, "b c": [2, 3]}'))
         assert.equal("tuple(a, b)", expr("(a, b)"))
         assert.equal("{}", expr("{}"))
         assert.equal("[]", expr("[]"))
      end)

      it("list comprehensions", function()
         assert.equal("[c.name for c in m.tool_calls if (c.x == 1)]", expr("[c.name for c in m.tool_calls if c.x == 1]"))
         assert.equal("[(a if b else c) for x in y]", expr("[a if b else c for x in y]"))
      end)

      it("semantic patterns with nested dicts, lists, *, <VALUE>; keyword arguments are dropped", function()
         assert.equal('(c is tool:f({a: "x", b: [*, <EMAIL_ADDRESS>, {c: 1}]}))',
            expr('c is tool:f({a: "x", b: [*, <EMAIL_ADDRESS>, {c: 1}]}, k=1)'))
         assert.equal("(c is tool:f)", expr("c is tool : f"))
      end)
   end)

   describe("statements", function()
      it("imports", function()
         local ast = helper.parse("import invariant\nimport invariant.detectors as d\nfrom invariant.detectors import secrets, pii as p\n")
         local s = ast.stmts
         assert.same({ "Import", "invariant", nil }, { s[1].tag, s[1].module, s[1].alias })
         assert.same({ "invariant.detectors", "d" }, { s[2].module, s[2].alias })
         assert.equal("invariant.detectors", s[3].module)
         assert.same({ "secrets", "p" }, { s[3].names[1].bind, s[3].names[2].bind })
         assert.equal("pii", s[3].names[2].name)
         assert.equal(3, #ast.imports)
      end)

      it("the three raise forms", function()
         local ast = helper.parse('raise "m" if:\n  1\nraise m if:\n  1\nraise a.B("m", x=1) if:\n  1\n')
         assert.same({ "Str", "Name", "Call" }, { ast.rules[1].raise.tag, ast.rules[2].raise.tag, ast.rules[3].raise.tag })
         assert.same({ 0, 1, 2 }, { ast.rules[1].index, ast.rules[2].index, ast.rules[3].index })
      end)

      it("constants and predicates, one-line and block forms", function()
         local ast = helper.parse("X := 1\nY:\n  2\n  3\nZ :=\n  4\nf(a: str, b: Message) := a\ng(a: str):\n  a\n  b\n")
         local s = ast.stmts
         assert.same({ "Const", "X", 1 }, { s[1].tag, s[1].name, s[1].value.value })
         assert.same({ "Const", "Y", 2, 2 }, { s[2].tag, s[2].name, s[2].value.value, #s[2].body })
         assert.same({ "Const", "Z", 4 }, { s[3].tag, s[3].name, s[3].value.value })
         assert.same({ "Predicate", "f", 2, "Message" }, { s[4].tag, s[4].name, #s[4].params, s[4].params[2].type })
         assert.same({ "Predicate", 2 }, { s[5].tag, #s[5].body })
         assert.equal(3, #ast.consts)
         assert.equal(2, #ast.preds)
      end)

      it("def blocks are parsed with an empty parameter list", function()
         local ast = helper.parse('def f(a: str, b):\n    raise "x" if:\n        a\n    X := 1\n')
         assert.same({ "Def", "f", 0, 2 }, { ast.stmts[1].tag, ast.stmts[1].name, #ast.stmts[1].params, #ast.stmts[1].body })
         assert.equal(0, #ast.rules)
      end)

      it("quantifiers: forall, count(...), negated, nested", function()
         local b = body('raise "x" if:\n  not forall:\n    a\n    count(min=2, max=3):\n      b\n  c\n')
         assert.equal("not forall():{a; count(min=2, max=3):{b}}", show(b[1]))
         assert.equal("c", show(b[2]))
      end)

      it("imports inside a rule body are body items", function()
         local ast = helper.parse('raise "x" if:\n  from invariant import forall\n  1\n')
         assert.equal("Import", ast.rules[1].body[1].tag)
         assert.equal(1, #ast.imports)
      end)

      it("newlines inside brackets are blanks; continuation lines join", function()
         local b = body('raise PolicyViolation("x",\n    a=1) if:\n  f(1,\n  2)\n  [1,\n   2]\n  a and\n    b\n  c\n')
         assert.equal(4, #b)
         assert.equal("f(1, 2)", show(b[1]))
      end)

      it("a line starting with '(' is a new item, not a call (unlike the reference)", function()
         local b = body('raise "x" if:\n  x := len\n  (1)\n')
         assert.equal(2, #b)
      end)

      it("nested blocks (two INDENTs) are flattened", function()
         local b = body('raise "x" if:\n    a\n  # 2\n    b\n')
         -- unit 2: the body opens two levels; the comment closes one
         assert.equal(2, #b)
      end)

      it("comments are ignored, '#' inside strings is not a comment", function()
         local b = body('# c\nraise "x" if:\n  # c\n  "a#b" == x # c\n')
         assert.equal('("a#b" == x)', show(b[1]))
      end)
   end)

   describe("positions", function()
      it("line and column of nodes (1-based, code points, as sent)", function()
         local b = body('  raise "é" if:\n      (m: Message)\n      "ü" in m.content\n')
         assert.same({ 2, 8, 2, 11 }, { b[1].line, b[1].col, b[1].type_line, b[1].type_col })
         assert.same({ 3, 7, 3, 11 }, { b[2].line, b[2].col, b[2].op_line, b[2].op_col })
         assert.same({ 3, 14, 3, 16 }, { b[2].right.line, b[2].right.col, b[2].right.name_line, b[2].right.name_col })
      end)

      it("every node has a position", function()
         local ast = helper.parse(io.open("../shared/conformance/cases/031-three-variable-flow.json") and
            require("cjson").decode(io.open("../shared/conformance/cases/031-three-variable-flow.json"):read("a")).policy
            or 'raise "x" if:\n  a\n')
         require("compiler.ast").walk(ast, function(n)
            assert.is_number(n.line, n.tag)
            assert.is_number(n.col, n.tag)
         end)
      end)
   end)

   describe("limits", function()
      it("has at most 250 rules (LPeg 1.0.2)", function()
         assert.is_true(grammar.rule_count() < 250)
      end)

      it("deep nesting is a located error, not a crash", function()
         local src = 'raise "x" if:\n    ' .. ("("):rep(3000) .. "1" .. (")"):rep(3000) .. "\n"
         local st = helper.run_until("parse", src)
         assert.equal("syntax", st.diags[1].kind)
         assert.equal(2, st.diags[1].line)
      end)

      it("over-long operator chains are a located error", function()
         local st = helper.run_until("parse", 'raise "x" if:\n    ' .. ("a and "):rep(30000) .. "a\n")
         assert.same({ { 2, 5, "syntax" } }, helper.diag_triples(st.diags))
         assert.matches("expression too long", st.diags[1].message)
      end)

      it("structures too deep for the passes give a too-complex diagnostic, not a crash", function()
         local st = require("compiler").front('raise "x" if:\n    x' .. (".y"):rep(150000) .. "\n")
         assert.equal(1, #st.diags)
         assert.equal("too-complex", st.diags[1].kind)
      end)

      it("nested quantifier blocks parse in linear time, also with an error inside", function()
         for _, tail in ipairs { "1", "1 +" } do
            local lines = { "from invariant import forall", 'raise "x" if:' }
            for i = 1, 40 do lines[#lines + 1] = ("  "):rep(i) .. "forall:" end
            lines[#lines + 1] = ("  "):rep(41) .. tail
            local t0 = os.clock()
            local st = helper.run_until("parse", table.concat(lines, "\n"))
            assert.is_true(os.clock() - t0 < 0.2)
            if tail == "1" then assert.same({}, st.diags) else assert.same({ { 43, 86, "syntax" } }, helper.diag_triples(st.diags)) end
         end
      end)

      it("moderate nesting parses", function()
         local src = 'raise "x" if:\n    ' .. ("f("):rep(60) .. "1" .. (")"):rep(60) .. "\n"
         local st = helper.run_until("parse", src)
         assert.same({}, st.diags)
      end)

      it("runs in bounded time on pathological inputs", function()
         for _, src in ipairs {
            'raise "x" if:\n    ' .. ("[" ):rep(200) .. ("]"):rep(199),
            'raise "x" if:\n    ' .. ("(a if "):rep(150),
            'raise "x" if:\n    ' .. ("{a: "):rep(150),
            'raise "x" if:\n    ' .. ("not "):rep(500) .. "x",
            'raise "x" if:\n    ' .. ("a + "):rep(2000) .. "a",
         } do
            local t0 = os.clock()
            local st = helper.run_until("parse", src)
            assert.is_true(os.clock() - t0 < 0.2)
            assert.is_table(st.diags)
         end
      end)
   end)
end)

describe("front half performance", function()
   -- Lenient bound (shared CI machines): the measured median is ~0.25 ms for this policy.
   it("a 5-rule policy goes through the front half in well under 1 ms (median, bound 5 ms)", function()
      local src = [[
raise "system prompt mentions a discount code" if:
    (s: Message)
    s.role == "system"
    "DISCOUNT" in s.content

raise PolicyViolation("coupon applied", c) if:
    (c: ToolCall)
    c is tool:apply_coupon

raise "coupon applied after a complaint" if:
    (u: Message) -> (c: ToolCall)
    u.role == "user"
    "complain" in u.content
    c is tool:apply_coupon

raise "assistant announced a wire transfer" if:
    (msg: Message)
    msg.role == "assistant"
    "wire transfer" in msg.content

raise PolicyViolation("inbox content may have left the company", read=read, send=send) if:
    (read: ToolCall) -> (send: ToolCall)
    read is tool:read_inbox
    send is tool:send_email({to: "^(?!.*@acme\.io$).*$"})
]]
      local compiler = require "compiler"
      local ts = {}
      for i = 1, 101 do
         local t0 = os.clock()
         local st = compiler.front(src)
         ts[i] = os.clock() - t0
         assert.same({}, st.diags)
      end
      table.sort(ts)
      assert.is_true(ts[51] < 0.005, string.format("median %.3f ms", ts[51] * 1000))
   end)
end)

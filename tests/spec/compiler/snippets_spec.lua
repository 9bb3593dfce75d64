-- luacheck: no max line length
-- A table of accepted and rejected policy snippets covering every grammar rule. Rejections are
-- asserted with the exact {line, column, kind} of the first diagnostic (after "checks").
local helper = require "helper"

local H = 'raise "x" if:\n    '

-- Policies that must compile through the front half without any diagnostic.
local accepted = {
   -- statements
   { "import", "import invariant\nraise 'x' if:\n    invariant.detectors.secrets('a')" },
   { "import as", "import invariant.detectors as d\nraise 'x' if:\n    d.secrets('a')" },
   { "from import", "from invariant.detectors import secrets, pii as p\nraise 'x' if:\n    secrets('a')\n    p('b')" },
   { "from dotted submodule", "from invariant.parsers.html import links\nraise 'x' if:\n    links('a')" },
   { "raise string", 'raise "msg" if:\n    1 == 1' },
   { "raise raw/f string", "raise r'\\d' if:\n    1\nraise f\"{x}\" if:\n    1" },
   { "raise name", 'raise reason if:\n    reason := "r"' },
   { "raise call with kwargs", 'raise PolicyViolation("m", 1, a=2) if:\n    1' },
   { "raise dotted call", 'import invariant\nraise invariant.Violation("m") if:\n    1' },
   { "raise constant", 'M := "m"\nraise M if:\n    1' },
   { "constant", "X := [1, 2]\nraise 'x' if:\n    3 in X" },
   { "constant block :=", "X :=\n    1\nraise 'x' if:\n    X" },
   { "constant block :", "X:\n    1\n    2\nraise 'x' if:\n    X" },
   { "forward reference", "raise 'x' if:\n    X\nX := Y\nY := 1" },
   { "predicate", "f(a: str) := a == 'x'\nraise 'x' if:\n    f('x')" },
   { "predicate block", "f(m: Message):\n    (c: ToolCall) in m.tool_calls\n    c is tool:x\nraise 'x' if:\n    (m: Message)\n    f(m)" },
   { "predicate no params", "f() := 1\nraise 'x' if:\n    f()" },
   { "def ignored", "def f(a, b: str):\n    raise 'x' if:\n        undefined_name\nraise 'y' if:\n    1" },
   { "comments", "# top\nraise 'x' if: \n    # inside\n    1 # after\n    # last\n# end" },
   { "blank lines", "\n\nraise 'x' if:\n\n    1\n\n    2\n\n" },
   { "common margin", "    raise 'x' if:\n        1\n" },
   { "CRLF", "raise 'x' if:\r\n    1\r\n" },
   { "tabs", "raise 'x' if:\n\t1\n\t2" },
   -- body items
   { "typed variable", H .. "(m: Message)" },
   { "typed in domain", H .. "(m: Message)\n    (c: ToolCall) in m.tool_calls" },
   { "typed str in", H .. "(m: Message)\n    (line: str) in m.content.splitlines()" },
   { "all fallback types", H .. "(a: str)\n    (b: int)\n    (c: float)\n    (d: bool)\n    (e: list)\n    (f: dict)" },
   { "event types", H .. "(a: Message)\n    (b: ToolCall)\n    (c: ToolOutput)\n    (d: Tool)\n    (e: ToolParameter)\n    (f: Function)\n    (g: TextChunk)\n    (h: Image)\n    (i: Input)" },
   { "imported type", "from invariant import Event\n" .. H .. "(e: Event)" },
   { "assign", H .. "x := 1\n    x > 0" },
   { "assign typed later (forward)", H .. "n > 1\n    n := 2" },
   { "flow", H .. "(a: ToolCall) -> (b: ToolCall)\n    a ~> b\n    b -> (c: Message)" },
   { "forall", "from invariant import forall\n" .. H .. "forall:\n        (m: Message)\n        m.role == 'user'" },
   { "not forall", "from invariant import forall\n" .. H .. "not forall:\n        1" },
   { "count kwargs", "from invariant import count\n" .. H .. "count(min=2, max=3):\n        (c: ToolCall)" },
   { "count positional", "from invariant import count\n" .. H .. "count(2):\n        (c: ToolCall)" },
   { "count no args", "from invariant import count\n" .. H .. "count:\n        1" },
   { "quantifier alias", "from invariant import forall as fa\n" .. H .. "fa:\n        1" },
   { "quantifier via module", "import invariant\n" .. H .. "invariant.forall:\n        1" },
   { "nested quantifiers", "from invariant import forall, count\n" .. H .. "forall:\n        (m: Message)\n        count(min=1):\n            (c: ToolCall) in m.tool_calls\n            c is tool:x" },
   { "import in body", H .. "from invariant import forall\n    forall:\n        1" },
   -- expressions
   { "operators", H .. "a := 1 + 2 - 3 * 4 / 5 % 6 ** 7\n    a == 1 or a != 2 and not a < 3\n    a <= 1 or a >= 2 or a > 3" },
   { "in / not in / is / is not", H .. "a := [1]\n    1 in a\n    1 not in a\n    a is None\n    a is not None" },
   { "contains_only", H .. "[1, 2] contains_only [1]" },
   { "unary", H .. "-1 < +2\n    not not True" },
   { "ternary", H .. "1 if True else 2\n    (1 if 2 else 3) if 4 else 5" },
   { "member/index/call chains", H .. "(m: Message)\n    m.content.lower().split(' ')[0].strip() == 'x'\n    m.metadata['k'] == m.metadata.get('k', 1)" },
   { "call kwargs", H .. "(m: Message)\n    find('a', m.content)\n    len([1])\n    print(1, 2, sep=' ')" },
   { "list/dict/tuple", H .. "[1, 'a', [2], {}]\n    {'a': 1, b: [1, {c: 2}]}\n    (1, 2)\n    []" },
   { "list comprehension", H .. "(m: Message)\n    any([c.function.name == 'x' for c in m.tool_calls if c.id != None])" },
   { "comprehension var shadows", H .. "x := 1\n    [x for x in [1, 2]]" },
   { "strings", H .. "'a\\'b' == \"c\\\"d\"\n    r'\\d+' in 'x'\n    f'{x}' != ''\n    \"#\" == '#'" },
   { "triple strings", H .. "x := \"\"\"\n        a\n        b\n        \"\"\"\n    y := '''c'''" },
   { "numbers", H .. "[1, 1.5, 1., .5, 1e3, 1.5e-3, 0]" },
   { "literals", H .. "[None, True, False]" },
   { "semantic patterns", H .. "(c: ToolCall)\n    c is tool:f\n    c is tool:f({a: 'x', b: [*, 1, 2.5], c: {d: <EMAIL_ADDRESS>}})\n    c is tool : g" },
   { "pattern with string keys", H .. "(c: ToolCall)\n    c is tool:f({\"a b\": \"x.*\"})" },
   { "pattern value types", H .. "(c: ToolCall)\n    c is tool:f(<LOCATION>, <PHONE_NUMBER>, <PERSON>, <MODERATED>, <DUMMY>)" },
   { "variable named tool", H .. "(tool: ToolCall)\n    tool is tool:send_email" },
   { "operator words as name prefixes", H .. "andy := 1\n    order := 2\n    notes := 3\n    island := 4\n    andy + order + notes + island > 0" },
   { "input parameters", H .. "input.x == input['y']" },
   { "builtins", H .. "(o: ToolOutput)\n    tool_call(o) != None\n    server(o) == 'x'\n    empty(text(o))\n    any(image(o))\n    all([])\n    min(1, 2) < max([1]) + sum([1])\n    match('a', 'b')\n    json_loads('{}')\n    tuple([1])" },
   { "multi-line call args", "raise PolicyViolation(\"x\",\n        a=1,\n        b=2) if:\n    f := 1\n    [1,\n     2]\n    len(\n        'abc'\n    ) > 1" },
   { "continuation lines", H .. "1 == 1 and\n        2 == 2\n    1 ==\n        1" },
   { "keyword argument on new line", H .. "print(1,\n        x=2)" },
}

-- Policies that must be rejected, with the first diagnostic's {line, column, kind}.
local rejected = {
   -- syntax: statements
   { "raise without body", 'raise "x" if:', { 1, 13, "syntax" } },
   { "raise with inline body", 'raise "x" if: a', { 1, 13, "syntax" } },
   { "comment after the block-opening ':' (reference behaviour)", 'raise "x" if: # c\n    1', { 1, 13, "syntax" } },
   { "raise member", "raise a.b if:\n    1", { 1, 7, "syntax" } },
   { "raise multi-line string", 'raise """x""" if:\n    1', { 1, 7, "syntax" } },
   { "raise expression", 'raise "a" + "b" if:\n    1', { 1, 11, "syntax" } },
   { "top-level expression", "1 + 2", { 1, 1, "syntax" } },
   { "import dotted without alias", "import a.b", { 1, 1, "syntax" } },
   { "from without names", "from a import", { 1, 14, "syntax" } },
   { "relative import", "from . import x", { 1, 6, "syntax" } },
   { "star import", "from a import *", { 1, 15, "syntax" } },
   { "predicate param without type", "f(a) := 1", { 1, 4, "syntax" } },
   { "predicate param type missing", "f(a: ) := 1", { 1, 6, "syntax" } },
   { "def without parens", "def f:\n    x := 1", { 1, 6, "syntax" } },
   { "single = at top level", "X = 1", { 1, 3, "syntax" } },
   { "raise without if", 'raise "x" if:\n    "ok"\nraise "y"', { 3, 10, "syntax" } },
   { "quantifier without body", 'raise "x" if:\n    forall:', { 2, 11, "syntax" } },
   { "block after a non-quantifier expression", 'raise "x" if:\n    1 + 2:\n        3', { 2, 5, "syntax" } },
   -- syntax: expressions
   { "operator word needs a blank (and)", H .. "a and(b)", { 2, 7, "syntax" } },
   { "operator word needs a blank (in)", H .. "a in(b)", { 2, 7, "syntax" } },
   { "trailing comma in call", H .. "f(a,)", { 2, 9, "syntax" } },
   { "trailing comma in list", H .. "[1, 2,]", { 2, 11, "syntax" } },
   { "trailing comma in dict", H .. '{"a": 1,}', { 2, 13, "syntax" } },
   { "numeric dict key", H .. "{1: 2}", { 2, 6, "syntax" } },
   { "two expressions on a line", H .. "a b", { 2, 7, "syntax" } },
   { "unterminated string", H .. '"abc', { 2, 5, "syntax" } },
   { "member without name", H .. "a.", { 2, 7, "syntax" } },
   { "empty index", H .. "x[]", { 2, 7, "syntax" } },
   { "slice", H .. "x[1:2]", { 2, 8, "syntax" } },
   { "ternary without else", H .. "a if b", { 2, 11, "syntax" } },
   { "dangling operator", H .. "1 +", { 2, 8, "syntax" } },
   { "typed without type", H .. "(m: )", { 2, 9, "syntax" } },
   { "tool without name", H .. "tool:", { 2, 10, "syntax" } },
   { "empty value reference", H .. "<>", { 2, 5, "syntax" } },
   { "comprehension without in", H .. "[x for x]", { 2, 13, "syntax" } },
   { "comprehension target not a name", H .. "[x for 1 in y]", { 2, 12, "syntax" } },
   { "single =", H .. "x = 1", { 2, 7, "syntax" } },
   { "empty parens", H .. "()", { 2, 6, "syntax" } },
   { "missing comma between kwargs", H .. "f(a=1 b=2)", { 2, 11, "syntax" } },
   { "floor division", H .. "a // b", { 2, 8, "syntax" } },
   { "bad character", H .. "$x", { 2, 5, "syntax" } },
   { "operator on continuation", H .. "a ==\n        == b", { 3, 9, "syntax" } },
   { "double :=", H .. "x := := 1", { 2, 10, "syntax" } },
   { "inline quantifier body", H .. "count(min=2): x", { 2, 17, "syntax" } },
   { "else without if", H .. "1 else 2", { 2, 7, "syntax" } },
   { "dict closing brace dedents (reference hazard)", H .. "x := {\n        'a': 1\n}", { 3, 15, "syntax" } },
   { "column-0 comment closes the body (reference hazard)", H .. "(m: Message)\n# c\n    m.role == 'x'", { 4, 6, "syntax" } },
   { "triple-quoted string whose lines dedent the block", H .. 'x := """\nabc\n"""', { 2, 10, "syntax" } },
   { "triple-quoted string with a ':' line before a deeper line", H .. 'x := """\n      key:\n        v\n    """', { 2, 10, "syntax" } },
   { "unterminated triple-quoted string", H .. 'x := """\n      abc', { 2, 10, "syntax" } },
   -- semantic
   { "unknown identifier", H .. "(m: Message)\n    msg.role == 'user'", { 3, 5, "unknown-identifier" } },
   { "unknown identifier in raise", 'raise Violation(x) if:\n    1', { 1, 17, "unknown-identifier" } },
   { "unknown identifier in constant", "X := Y\nraise 'x' if:\n    X", { 1, 6, "unknown-identifier" } },
   { "unknown identifier in predicate", "f(a: str) := b\nraise 'x' if:\n    f(1)", { 1, 14, "unknown-identifier" } },
   { "not a builtin (abs)", H .. "abs(-1)", { 2, 5, "unknown-identifier" } },
   { "forall needs an import", H .. "forall:\n        1", { 2, 5, "unknown-identifier" } },
   { "comprehension variable out of scope", H .. "[x for x in [1]]\n    x", { 3, 5, "unknown-identifier" } },
   { "unknown type", H .. "(c: ToolCal)", { 2, 6, "unknown-type" } },
   { "unknown type in domain", H .. "(m: Message)\n    (c: Call) in m.tool_calls", { 3, 6, "unknown-type" } },
   { "constant is not a type", "T := 1\n" .. H .. "(c: T)", { 3, 6, "unknown-type" } },
   { "duplicate typed variable", H .. "(m: Message)\n    (m: Message)", { 3, 6, "duplicate-declaration" } },
   { "rebinding a typed variable", H .. "(m: Message)\n    m := 1", { 3, 5, "duplicate-declaration" } },
   { "duplicate assignment", H .. "x := 1\n    x := 2", { 3, 5, "duplicate-declaration" } },
   { "quantifier redeclares a rule variable", "from invariant import forall\n" .. H .. "(m: Message)\n    forall:\n        (m: Message)", { 5, 10, "duplicate-declaration" } },
   { "duplicate constant", "X := 1\nX := 2", { 2, 1, "duplicate-declaration" } },
   { "constant and predicate share a name", "X := 1\nX(a: str) := a", { 2, 1, "duplicate-declaration" } },
   { "duplicate predicate parameter", "f(a: str, a: str) := a", { 1, 11, "duplicate-declaration" } },
   { "wildcard outside pattern", H .. "x := *", { 2, 10, "wildcard-outside-pattern" } },
   { "value reference outside pattern", H .. "x := <EMAIL_ADDRESS>", { 2, 10, "valueref-outside-pattern" } },
   { "identifier in pattern", H .. "(c: ToolCall)\n    c is tool:f({to: addr})", { 3, 22, "identifier-in-pattern" } },
   { "member access in pattern", H .. "(c: ToolCall)\n    c is tool:f({to: input.addr})", { 3, 22, "identifier-in-pattern" } },
   { "unknown value type", H .. "(c: ToolCall)\n    c is tool:f(<EMAIL>)", { 3, 17, "unknown-value-type" } },
   { "unsupported pattern (bool)", H .. "(c: ToolCall)\n    c is tool:f({a: True})", { 3, 21, "unsupported-pattern" } },
   { "unsupported pattern (negative number)", H .. "(c: ToolCall)\n    c is tool:f([-1])", { 3, 18, "unsupported-pattern" } },
   { "positional after keyword", H .. "print(a=1, 2)", { 2, 16, "positional-after-keyword" } },
   { "repeated keyword", H .. "print(a=1, a=2)", { 2, 16, "duplicate-keyword" } },
   { "calling a type", H .. "str(1) == '1'", { 2, 5, "not-callable" } },
   { "calling AccessDenied", H .. "AccessDenied()", { 2, 5, "not-callable" } },
   { "forall with arguments", "from invariant import forall\n" .. H .. "forall(1):\n        1", { 3, 12, "quantifier-arity" } },
   { "count with three arguments", "from invariant import count\n" .. H .. "count(1, 2, 3):\n        1", { 3, 17, "quantifier-arity" } },
   { "count with unknown keyword", "from invariant import count\n" .. H .. "count(least=1):\n        1", { 3, 11, "quantifier-arity" } },
   { "block after a predicate call", "f(a: str) := 1\n" .. H .. "f('a'):\n        1", { 3, 5, "not-a-quantifier" } },
   { "flow operand must be a variable", H .. "(a: ToolCall)\n    a.x -> a", { 3, 5, "flow-operand" } },
   { "unknown module", "import json\nraise 'x' if:\n    1", { 1, 1, "unknown-module" } },
   { "unknown import name", "from invariant import match\nraise 'x' if:\n    1", { 1, 23, "unknown-import" } },
}

describe("snippets", function()
   describe("accepted", function()
      for _, c in ipairs(accepted) do
         it(c[1], function()
            local st = helper.front(c[2])
            local d = st.diags[1]
            assert.is_nil(d and (d.line .. ":" .. d.column .. ": " .. d.kind .. ": " .. d.message))
            assert.is_table(st.ast)
         end)
      end
   end)

   describe("rejected", function()
      for _, c in ipairs(rejected) do
         it(c[1], function()
            local st = helper.front(c[2])
            local d = st.diags[1]
            assert.is_table(d)
            assert.same(c[3], { d.line, d.column, d.kind })
            assert.is_string(d.message)
            assert.matches("^E%d%d%d$", d.code)
         end)
      end
   end)

   it("only the first syntax error is reported", function()
      local st = helper.front(H .. "a b\n    c d\n")
      assert.equal(1, #st.diags)
   end)

   it("semantic errors are all collected, in the reference's order (spec §11)", function()
      -- type errors first, then traversal order: statements in order, a rule's body before its
      -- raise target (the reference's test example: unknown type, constant, body, raise)
      local st = helper.front("X := undefined_a\nraise Violation(undefined_c) if:\n    (m: Nope)\n    undefined_b == 1\n")
      assert.same({
         { 3, 6, "unknown-type" },
         { 1, 6, "unknown-identifier" },
         { 4, 5, "unknown-identifier" },
         { 2, 17, "unknown-identifier" },
      }, helper.diag_triples(st.diags))
   end)

   it("exceptions of the reference come first: duplicates, then identifiers in patterns", function()
      local st = helper.front("raise 'x' if:\n    nope\n    (c: ToolCall)\n    c is tool:f({a: b})\n    (c: ToolCall)\n")
      assert.same({
         { 5, 6, "duplicate-declaration" },
         { 4, 21, "identifier-in-pattern" },
         { 2, 5, "unknown-identifier" },
      }, helper.diag_triples(st.diags))
   end)

   it("syntax errors say what was expected and what was found", function()
      local st = helper.front(H .. "f(a if)")
      assert.equal("expected an expression but found ')'", st.diags[1].message)
      st = helper.front(H .. "(m: Message")
      assert.matches("expected .*'%)'.* but found end of block", st.diags[1].message)
      st = helper.front(H .. "f(1 2)")
      assert.equal("expected an operator, ',' or ')' but found number 2", st.diags[1].message)
   end)
end)

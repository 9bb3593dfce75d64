-- compiler.ast: the AST of the Invariant policy language (front half -> back half contract).
--
-- Every node is a table `{tag = "<Tag>", line = L, col = C, ...}`. `line` and `col` are 1-based and
-- refer to the policy text AS THE CLIENT SENT IT (before any dedent or pre-pass); `col` counts
-- characters (code points), not bytes. Unless stated otherwise the position is the first character
-- of the construct. Lists of children are plain Lua arrays (possibly empty, never nil).
--
-- ## Statements (the `body` of Policy and of Def)
--
--   {tag="Policy", stmts={<stmt>...}, rules={<Rule>...}, consts={<Const>...}, preds={<Predicate>...},
--        imports={<Import>...}}               -- rules/consts/preds/imports: filled by the parser, in
--                                             -- source order (imports: also those found in bodies)
--   {tag="Import", module="a.b", alias=<string|nil>, alias_line, alias_col, names=<nil|{<ImportName>...}>}
--        `import a` (alias=nil, names=nil, binds "a"); `import a.b as x` (alias="x", binds "x");
--        `from a.b import c, d as e` (names = {ImportName...}). Position: the `import`/`from` keyword.
--        Imports may also appear as body items (global effect, evaluate to nothing).
--   {tag="ImportName", name="c", alias=<string|nil>, bind="c"|"e"}   -- position: the name
--   {tag="Rule", index=<0-based rule index>, raise=<Str|Name|Call>, body={<item>...},
--        decls={<TypedVar|Assign>...}}        -- position: the `raise` keyword.
--        `raise "msg" if:` (raise = Str), `raise name if:` (Name), `raise F(args) if:` (Call; the
--        callee may be a Member chain). decls (set by scope): every declaration of the rule,
--        including those inside nested quantifier bodies, in source order.
--   {tag="Const", name="X", name_line, name_col, value=<expr>, body={<item>...}, decls={...}}
--        `X := expr` (body = {value}) or block form `X :=`/`X:` + indented block (value = body[1];
--        only the first expression is ever evaluated). Position: the name.
--   {tag="Predicate", name="f", params={<Param>...}, body={<item>...}, decls={...}}
--        `f(a: T, b: U) := expr` (body = {expr}) or the block form. Position: the name.
--   {tag="Param", name="a", type="T", type_line, type_col}        -- position: the parameter name
--   {tag="Def", name="f", params={}, body={<stmt>...}}            -- `def f(...):` block, parsed and
--        ignored (params always empty, as in the reference). Not scope-checked, never lowered.
--
-- ## Body items (elements of Rule/Predicate/Quantifier/Const `body`)
--
--   Any expression, plus:
--   {tag="Assign", name="x", value=<expr>}    -- `x := e`; position: the name `x`
--   {tag="Quantifier", func=<Name|Member>, kind=<"forall"|"count"|string>, negated=<bool>,
--        args={<expr>...}, kwargs={<Kwarg>...}, body={<item>...}, decls={...}}
--        `forall:` / `count(min=2, max=3):` / `not forall:` + indented block. kind: the name the head
--        resolves to (for `from invariant import forall as fa`, kind="forall"; set by scope;
--        nil when the head is not a quantifier, which is diagnostic E310).
--        decls: declarations made directly in this block (typed vars / assigns). Position: the
--        head (the `not` keyword when negated).
--   {tag="Import", ...}                       -- as above
--   Nested blocks (an indented block directly inside a block) are flattened into the parent body.
--
-- ## Expressions
--
--   {tag="Name", name="x", ref=<kind>, decl=<node|nil>, module=<string|nil>, orig=<string|nil>}
--        ref (set by scope) is what the identifier resolves to:
--          "typed"     rule/predicate/quantifier typed variable (decl = the TypedVar)
--          "local"     `:=` target in a rule/predicate/quantifier body (decl = the Assign)
--          "param"     predicate parameter (decl = the Param)
--          "compvar"   list-comprehension variable (decl = the ListComp)
--          "const"     top-level constant (decl = the Const)
--          "predicate" top-level predicate (decl = the Predicate)
--          "def"       name of an ignored `def` block (decl = the Def)
--          "import"    imported name (decl = the Import; module = "invariant.detectors",
--                      orig = the exported name before `as`, e.g. "secrets"; for `import a.b as x`:
--                      module = "a.b", orig = nil)
--          "builtin"   builtin of spec §9.1 (len, any, find, Violation, Message, ...; see scope.lua)
--          "input"     the policy-parameter accessor `input`
--          "type"      a fallback type name (str, int, float, bool, list, dict)
--        Unresolved names get ref=nil and an `unknown-identifier` diagnostic.
--   {tag="TypedVar", name="x", type="T", type_line, type_col, domain=<expr|nil>}
--        `(x: T)` (domain=nil) or `(x: T) in e` (domain=e; the whole `in` expression becomes this
--        node). Evaluates to True. Position: the variable name (one past the `(`).
--   {tag="Num", value=<integer|float>, raw="1.5"}
--   {tag="Str", value=<string>, raw=<source text incl. prefix and quotes>, quote='"'|"'"|'"""'|"'''",
--        prefix=""|"r"|"f", multiline=<bool>}   -- value: raw characters between the quotes, only
--        `\"` (in "...") / `\'` (in '...') unescaped; triple-quoted: no escapes, dedented.
--   {tag="Bool", value=true|false}            -- True / False
--   {tag="Null"}                              -- None
--   {tag="List", items={<expr>...}}
--   {tag="Dict", entries={<Entry>...}}
--   {tag="Entry", key="k", key_node=<Name|Str>, value=<expr>}   -- key: identifier text or string
--        value (keys are always strings). Position: the key.
--   {tag="Tuple", items={<expr>...}}          -- `(a, b)`: parses, evaluates to items[1] (reference).
--        Parentheses leave no node: `(a)` is `a`.

--   {tag="ListComp", elt=<expr>, var="x", var_line, var_col, iter=<expr>, cond=<expr|nil>}
--        `[elt for x in iter if cond]`. Position: the `[`.
--   {tag="Ternary", cond=<expr>, yes=<expr>, no=<expr>}          -- `yes if cond else no`
--   {tag="BinOp", op=<op>, left=<expr>, right=<expr>, op_line, op_col}
--        op: "or" | "and" | "==" | "!=" | "<" | ">" | "<=" | ">=" | "in" | "not in" | "is" | "is not"
--            | "contains_only" | "->" | "~>" | "+" | "-" | "*" | "/" | "%" | "**".
--        Python precedence; every level left-associative except `**` (right); comparisons are not
--        chained (`a < b < c` is `(a < b) < c`). `x is tool:f(...)` is BinOp "is" with
--        right = SemanticPattern. Position: the start of `left`; op_line/op_col: the operator.
--   {tag="UnOp", op="not"|"-"|"+", operand=<expr>}               -- position: the operator
--   {tag="Call", func=<expr>, args={<expr>...}, kwargs={<Kwarg>...}}   -- position: start of func
--   {tag="Kwarg", name="k", value=<expr>}     -- position: the keyword name
--        Call, Quantifier and non-bare SemanticPattern also carry arg_order = args and kwargs
--        interleaved as written (used by checks; positional-after-keyword is a diagnostic).
--   {tag="Member", obj=<expr>, name="attr", name_line, name_col}  -- `obj.attr`; pos: start of obj
--   {tag="Index", obj=<expr>, key=<expr>}     -- `obj[key]`; position: start of obj
--   {tag="SemanticPattern", tool="send_email", args={<pattern>...}, bare=<bool>}
--        `tool:send_email` (bare=true, args={}) or `tool:send_email(p1, ...)` (bare=false; keyword
--        arguments are dropped, as in the reference, and kept in `dropped_kwargs`). Pattern elements
--        are ordinary expression nodes
--        restricted (by checks) to Dict / List / Str / Num / Wildcard / ValueRef.
--        Position: the `tool` keyword.
--   {tag="Wildcard"}                          -- `*` (only inside semantic patterns)
--   {tag="ValueRef", name="EMAIL_ADDRESS"}    -- `<EMAIL_ADDRESS>` (only inside semantic patterns)
--
-- Declarations (TypedVar, Assign) get `owner` (set by scope) = the Rule / Predicate / Const /
-- Quantifier whose block directly contains them. Nodes that reference other nodes (decl, owner,
-- decls, the Policy indexes) make the AST a graph: walk it with M.walk / M.children.
--
-- ## Diagnostics (see diag.lua)
--   {code="E101", kind="syntax"|..., line=, column=, message=}
--
-- Helpers: M.node(tag, line, col, fields), M.tags (set of all tags), M.walk(node, fn) (pre-order over
-- child nodes, fn(node, parent)), M.children(node) (child nodes in source order), M.dump(node).

local type, pairs, ipairs, tostring, error, setmetatable = type, pairs, ipairs, tostring, error, setmetatable
local concat, sort, format = table.concat, table.sort, string.format
_ENV = nil

local M = {}

M.tags = {
   Policy = true, Import = true, ImportName = true, Rule = true, Const = true, Predicate = true,
   Param = true, Def = true, Assign = true, Quantifier = true, Name = true, TypedVar = true,
   Num = true, Str = true, Bool = true, Null = true, List = true, Dict = true, Entry = true,
   Tuple = true, ListComp = true, Ternary = true, BinOp = true, UnOp = true, Call = true,
   Kwarg = true, Member = true, Index = true, SemanticPattern = true, Wildcard = true, ValueRef = true,
}

-- Child fields per tag, in source order. Single nodes and arrays of nodes.
local CHILDREN = {
   Policy = { "stmts" },
   Import = { "names" },
   ImportName = {},
   Rule = { "raise", "body" },
   Const = { "body" },
   Predicate = { "params", "body" },
   Param = {},
   Def = { "body" },
   Assign = { "value" },
   Quantifier = { "func", "args", "kwargs", "body" },
   Name = {},
   TypedVar = { "domain" },
   Num = {}, Str = {}, Bool = {}, Null = {}, Wildcard = {}, ValueRef = {},
   List = { "items" },
   Dict = { "entries" },
   Entry = { "value" },
   Tuple = { "items" },
   ListComp = { "elt", "iter", "cond" },
   Ternary = { "yes", "cond", "no" },
   BinOp = { "left", "right" },
   UnOp = { "operand" },
   Call = { "func", "args", "kwargs" },
   Kwarg = { "value" },
   Member = { "obj" },
   Index = { "obj", "key" },
   SemanticPattern = { "args" },
}
M.child_fields = CHILDREN

function M.node(tag, line, col, fields)
   local n = fields or {}
   n.tag, n.line, n.col = tag, line, col
   return n
end

-- Child nodes of `n` in source order.
function M.children(n)
   local out = {}
   local fs = CHILDREN[n.tag]
   if not fs then return out end
   for _, f in ipairs(fs) do
      local v = n[f]
      if type(v) == "table" then
         if v.tag then
            out[#out + 1] = v
         else
            for _, c in ipairs(v) do out[#out + 1] = c end
         end
      end
   end
   return out
end

-- Pre-order walk; fn(node, parent) returning false skips the node's children.
function M.walk(n, fn, parent)
   if fn(n, parent) == false then return end
   local fs = CHILDREN[n.tag]
   if not fs then return end
   for _, f in ipairs(fs) do
      local v = n[f]
      if type(v) == "table" then
         if v.tag then
            M.walk(v, fn, n)
         else
            for _, c in ipairs(v) do M.walk(c, fn, n) end
         end
      end
   end
end

local SKIP = { tag = true, line = true, col = true, decl = true, decls = true, rules = true,
   consts = true, preds = true, imports = true, owner = true, arg_order = true }

-- Compact, deterministic textual dump (for tests and debugging). Positions omitted unless `pos`.
function M.dump(n, pos)
   if type(n) ~= "table" then
      if type(n) == "string" then return format("%q", n) end
      return tostring(n)
   end
   if not n.tag then
      local parts = {}
      for i, c in ipairs(n) do parts[i] = M.dump(c, pos) end
      return "{" .. concat(parts, ", ") .. "}"
   end
   local keys = {}
   for k in pairs(n) do
      if not SKIP[k] and type(k) == "string" then keys[#keys + 1] = k end
   end
   sort(keys)
   local parts = { n.tag }
   if pos then parts[1] = format("%s@%d:%d", n.tag, n.line or 0, n.col or 0) end
   for _, k in ipairs(keys) do
      parts[#parts + 1] = k .. "=" .. M.dump(n[k], pos)
   end
   return "(" .. concat(parts, " ") .. ")"
end

-- Raise a syntax error from inside the parser's builders (caught by the parse pass).
function M.syntax_error(line, col, message)
   error(setmetatable({ line = line, col = col, message = message }, { __name = "SyntaxError" }), 0)
end

return M

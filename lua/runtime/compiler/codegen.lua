-- compiler.codegen: lowered policy (state.ir, see lower.lua) -> Lua source (state.lua).
--
-- The output calls only the policy API of docs/policy-api.md (rule, var, let, cond, flow, succ,
-- forall, count, predicate, const, CONST, input, Violation, FLOW, SUCC, V, B, PAT). It keeps
-- policy line N on Lua line N: every body item is a call inside the `rule { ... }` table
-- constructor placed on its own policy line, sub-expressions move to the line they start on, and
-- positions (line, col) travel as data for runtime errors. Line 1 starts with a short prelude of
-- local helpers; semantic patterns are built once, after the last policy line (`K[k] = ...`).
local ipairs, pairs, tostring, concat, require = ipairs, pairs, tostring, table.concat, require
local emit = require "compiler.emit"
local ast = require "compiler.ast"
local _ENV = nil -- luacheck: ignore 211

local M = {}

local S, N = emit.str, emit.num

-- The policy API is captured into locals first: a predicate declares a global of its own name,
-- which must not replace an API function for the rest of the chunk (a predicate named `flow`).
local API = { "rule", "var", "let", "cond", "flow", "succ", "forall", "count", "predicate", "const",
   "CONST", "input", "Violation", "FLOW", "SUCC", "V", "B", "PAT" }

local PRELUDE = "local " .. concat(API, ", ") .. " = " .. concat(API, ", ") .. "; local None, K = V.None, {}; "

-- Helpers, declared on line 1 only when used and defined after the last policy line (closures
-- capture them lexically; none runs before the chunk has finished loading).
local HELPERS = {
   { "AND", "function(a, f) if V.truthy(a) then return f() end return a end" },
   { "OR", "function(a, f) if V.truthy(a) then return a end return f() end" },
   { "ANDS", "function(a, fs) for i = 1, #fs do if not V.truthy(a) then return a end a = fs[i]() end return a end" },
   { "ORS", "function(a, fs) for i = 1, #fs do if V.truthy(a) then return a end a = fs[i]() end return a end" },
   { "CONTAINS_ONLY", "function(c, a, b) local t = V.iter(b); for i = 1, #t do "
      .. "if not V.truthy(V.contains(c, t[i], a)) then return false end end return true end" },
   { "LIST", "function(it) if it == nil or it == None then return {} end return V.iter(it) end" },
   { "NONIL", "function(x) if x == None then return nil end return x end" },
}

local BIN = {
   ["=="] = "V.eq", ["!="] = "V.ne", ["<"] = "V.lt", [">"] = "V.gt", ["<="] = "V.le", [">="] = "V.ge",
   ["+"] = "V.add", ["-"] = "V.sub", ["*"] = "V.mul", ["/"] = "V.div", ["%"] = "V.mod", ["**"] = "V.pow",
}

local Gen = {}
Gen.__index = Gen
local DISPATCH = {} -- tag -> Gen.x_<tag>, filled at the end of the module

local function new_gen()
   local g = { e = emit.new(), pats = {}, diags = {}, depth = 0, used = {} }
   for k, v in pairs(Gen) do g[k] = v end
   return g
end

function Gen:put(s)
   local e = self.e
   local n = e.n + 1
   e.n = n
   e.buf[n] = s
end
function Gen:go(line)
   local e = self.e
   if line and line > e.line then e:go(line) end
end

-- Expression code, streamed into the buffer.
-- Lua's parser allows about 200 nested syntactic levels (LUAI_MAXCCALLS); one policy level can
-- take three (a call, a closure, a table). Long left-nested chains are flattened below; anything
-- still nested deeper than MAX_DEPTH is a located diagnostic rather than Lua that does not load.
local MAX_DEPTH = 50
local CHAIN = 8 -- flatten left-nested chains longer than this

function Gen:expr(n)
   self:go(n.line)
   local f = DISPATCH[n.tag]
   if not f then
      self:put("None --[[unsupported " .. tostring(n.tag) .. "]]")
      return
   end
   local d = self.depth + 1
   if d > MAX_DEPTH then
      if not self.too_deep then
         self.too_deep = true
         self.diags[#self.diags + 1] = { code = "E402", kind = "too-deep", line = n.line or 1, column = n.col or 1,
            message = "expression nested too deeply (more than " .. MAX_DEPTH .. " levels)" }
      end
      self:put("None")
      return
   end
   self.depth = d
   f(self, n)
   self.depth = d - 1
end

-- Operands of a left-nested chain `((a op b) op c) ...` whose operators all satisfy `same`.
local function chain(n, same)
   local ops, rights = {}, {}
   local x = n
   while x.tag == "BinOp" and same(x.op) do
      ops[#ops + 1], rights[#rights + 1] = x.op, x.right
      x = x.left
   end
   local operands, order = { x }, {}
   for i = #rights, 1, -1 do
      operands[#operands + 1] = rights[i]
      order[#order + 1] = ops[i]
   end
   return operands, order
end

function Gen:list_of(nodes, sep)
   for i, x in ipairs(nodes) do
      if i > 1 then self:put(sep or ", ") end
      self:expr(x)
   end
end

function Gen:x_Num(n) self:put(N(n.value)) end
function Gen:x_Str(n) self:put(S(n.value)) end
function Gen:x_Bool(n) self:put(n.value and "true" or "false") end
function Gen:x_Null() self:put("None") end
function Gen:x_Wildcard() self:put("PAT.any()") end
function Gen:x_ValueRef(n) self:put("PAT.valueref(" .. S(n.name) .. ")") end

local VIOLATION = { Violation = true, PolicyViolation = true }

-- A builtin or imported name: the policy API's Violation, else the callable table B.
local function builtin_ref(name)
   if VIOLATION[name] then return "Violation" end
   return emit.field("B", name)
end

function Gen:x_Name(n)
   local ref, name = n.ref, n.name
   if ref == "typed" or ref == "local" or ref == "param" then
      self:put(emit.field("e", name))
   elseif ref == "compvar" then
      self:put("l_" .. name)
   elseif ref == "const" then
      self:put(emit.field("CONST", name))
   elseif ref == "predicate" then
      -- predicates are globals of the policy environment (docs/policy-api.md §5); always through
      -- _ENV so that no local (c, e, a prelude helper, a comprehension variable) can shadow one
      self:put(emit.field("_ENV", name))
   elseif ref == "import" then
      self:put(builtin_ref(n.orig or name))
   elseif ref == "input" then
      self:put("input(c, nil)")
   elseif ref == "builtin" or ref == "type" then
      self:put(builtin_ref(name))
   else
      self:put("None")
   end
end

function Gen:x_TypedVar()
   -- a declaration evaluates to True (spec §3.2); the variable itself is declared in the query
   self:put("true")
end

function Gen:x_Tuple(n)
   if n.items[1] then self:expr(n.items[1]) else self:put("None") end
end

function Gen:x_List(n)
   self:put("V.list({")
   self:list_of(n.items)
   self:put("})")
end

function Gen:x_Dict(n)
   -- duplicate keys: the last value wins at the position of the first occurrence (Python); the
   -- earlier values are not evaluated (a Lua constructor's order for repeated keys is undefined)
   local last, order, seen = {}, {}, {}
   for _, en in ipairs(n.entries) do
      last[en.key] = en
      if not seen[en.key] then seen[en.key] = true; order[#order + 1] = en.key end
   end
   self:put("V.dict({")
   local keys, first = {}, true
   for _, en in ipairs(n.entries) do
      if last[en.key] == en then
         if not first then self:put(", ") end
         first = false
         self:go(en.line)
         self:put(emit.key(en.key))
         self:expr(en.value)
      end
   end
   for i, k in ipairs(order) do keys[i] = S(k) end
   self:put("}, {" .. concat(keys, ", ") .. "})")
end

function Gen:x_ListComp(n)
   self.used.LIST = true
   self:put("(function() local out, it = {}, LIST(")
   self:expr(n.iter)
   self:put("); for i = 1, #it do local l_" .. n.var .. " = it[i]; ")
   if n.cond then
      self:put("if V.truthy(")
      self:expr(n.cond)
      self:put(") then out[#out + 1] = ")
      self:expr(n.elt)
      self:put(" end ")
   else
      self:put("out[#out + 1] = ")
      self:expr(n.elt)
      self:put(" ")
   end
   self:put("end return V.list(out) end)()")
end

function Gen:x_Ternary(n)
   self:put("(function() if V.truthy(")
   self:expr(n.cond)
   self:put(") then return ")
   self:expr(n.yes)
   self:put(" end return ")
   self:expr(n.no)
   self:put(" end)()")
end

function Gen:args(n)
   self:put("{n = " .. #n.args)
   for _, a in ipairs(n.args) do
      self:put(", ")
      self:expr(a)
   end
   self:put("}, ")
   if n.kwargs and #n.kwargs > 0 then
      self:put("{")
      for i, kw in ipairs(n.kwargs) do
         if i > 1 then self:put(", ") end
         self:go(kw.line)
         self:put(emit.key(kw.name))
         self:expr(kw.value)
      end
      self:put("}")
   else
      self:put("nil")
   end
end

function Gen:x_Call(n)
   local f = n.func
   if f.tag == "Member" and not (f.obj.tag == "Name" and (f.obj.ref == "import" or f.obj.ref == "input")) then
      self:put("V.method(c, ")
      self:expr(f.obj)
      self:put(", " .. S(f.name) .. ", ")
   else
      self:put("V.call(c, ")
      self:expr(f)
      self:put(", ")
   end
   self:args(n)
   self:put(")")
end

function Gen:x_Member(n)
   if n.obj.tag == "Name" and n.obj.ref == "import" and not n.obj.orig then
      -- `import invariant.detectors as d` ... `d.secrets`: the exported callable by name
      self:put(builtin_ref(n.name))
      return
   end
   if n.obj.tag == "Name" and n.obj.ref == "input" then
      self:put("input(c, " .. S(n.name) .. ")")
      return
   end
   self:put("V.attr(")
   self:expr(n.obj)
   self:put(", " .. S(n.name) .. ")")
end

function Gen:x_Index(n)
   self:put("V.index(")
   self:expr(n.obj)
   self:put(", ")
   self:expr(n.key)
   self:put(")")
end

function Gen:x_UnOp(n)
   if n.op == "not" then
      self:put("not V.truthy(")
   elseif n.op == "-" and n.operand.tag == "Num" then
      self:put("(" .. N(-n.operand.value) .. ")")
      return
   elseif n.op == "-" then
      self:put("V.neg(")
   else
      self:put("V.pos(")
   end
   self:expr(n.operand)
   self:put(")")
end

-- Semantic pattern elements -> pattern constructors (hoisted into PAT[k], built once at load).
function Gen:pat(n)
   local t = n.tag
   if t == "Dict" then
      local parts = {}
      for _, en in ipairs(n.entries) do parts[#parts + 1] = emit.key(en.key) .. self:pat(en.value) end
      return "PAT.dict({" .. concat(parts, ", ") .. "})"
   elseif t == "List" then
      local parts = {}
      for _, x in ipairs(n.items) do parts[#parts + 1] = self:pat(x) end
      return "PAT.list({" .. concat(parts, ", ") .. "})"
   elseif t == "Wildcard" then
      return "PAT.any()"
   elseif t == "ValueRef" then
      return "PAT.valueref(" .. S(n.name) .. ")"
   elseif t == "Str" then
      return S(n.value)
   elseif t == "Num" then
      return N(n.value)
   elseif t == "Bool" then
      return n.value and "true" or "false"
   elseif t == "Null" then
      return "None"
   elseif t == "UnOp" and n.op == "-" and n.operand.tag == "Num" then
      return N(-n.operand.value)
   elseif t == "SemanticPattern" then
      local parts = { S(n.tool) }
      for _, a in ipairs(n.args) do parts[#parts + 1] = self:pat(a) end
      return "PAT.tool(" .. concat(parts, ", ") .. ")"
   end
   return "PAT.unsupported(" .. S(t) .. ")"
end

function Gen:x_SemanticPattern(n)
   local k = #self.pats + 1
   self.pats[k] = self:pat(n)
   self:put("K[" .. k .. "]")
end

function Gen:x_BinOp(n)
   local op = n.op
   if (op == "and" or op == "or") and n.left.tag == "BinOp" and n.left.op == op then
      local operands = chain(n, function(o) return o == op end)
      if #operands > CHAIN then
         -- ANDS(a, {f2, f3, ...}): one nesting level for any length
         self.used[op == "and" and "ANDS" or "ORS"] = true
         self:put(op == "and" and "ANDS(" or "ORS(")
         self:expr(operands[1])
         self:put(", {")
         for i = 2, #operands do
            self:put("function() return (")
            self:expr(operands[i])
            self:put(") end, ")
         end
         self:put("})")
         return
      end
   end
   if BIN[op] and n.left.tag == "BinOp" and BIN[n.left.op] then
      local operands, ops = chain(n, function(o) return BIN[o] ~= nil end)
      if #operands > CHAIN then
         -- (function() local t = a; t = op(t, b); ... return t end)()
         self:put("(function() local t = (")
         self:expr(operands[1])
         self:put("); ")
         for i = 2, #operands do
            self:put("t = " .. BIN[ops[i - 1]] .. "(t, ")
            self:expr(operands[i])
            self:put("); ")
         end
         self:put("return t end)()")
         return
      end
   end
   if op == "and" or op == "or" then
      self.used[op == "and" and "AND" or "OR"] = true
      self:put(op == "and" and "AND(" or "OR(")
      self:expr(n.left)
      self:put(", function() return ")
      self:expr(n.right)
      self:put(" end)")
   elseif BIN[op] then
      self:put(BIN[op] .. "(")
      self:expr(n.left)
      self:put(", ")
      self:expr(n.right)
      self:put(")")
   elseif op == "in" or op == "not in" then
      self:put(op == "in" and "V.contains(c, " or "not V.truthy(V.contains(c, ")
      self:expr(n.left)
      self:put(", ")
      self:expr(n.right)
      self:put(op == "in" and ")" or "))")
   elseif op == "is" or op == "is not" then
      local neg = op == "is not"
      if n.right.tag == "SemanticPattern" then
         self:put(neg and "not V.truthy(PAT.match(c, " or "PAT.match(c, ")
         self:expr(n.left)
         self:put(", ")
         self:expr(n.right)
         self:put(neg and "))" or ")")
      else
         self:put(neg and "not V.is(" or "V.is(")
         self:expr(n.left)
         self:put(", ")
         self:expr(n.right)
         self:put(")")
      end
   elseif op == "contains_only" then
      self.used.CONTAINS_ONLY = true
      self:put("CONTAINS_ONLY(c, ")
      self:expr(n.left)
      self:put(", ")
      self:expr(n.right)
      self:put(")")
   elseif op == "->" or op == "~>" then
      -- a typed declaration as an operand stands for its variable (elsewhere it evaluates to True)
      local function operand(x)
         if x.tag == "TypedVar" then
            self:go(x.line)
            self:put(emit.field("e", x.name))
         else
            self:expr(x)
         end
      end
      self:put(op == "->" and "FLOW(" or "SUCC(")
      operand(n.left)
      self:put(", ")
      operand(n.right)
      self:put(")")
   else
      self:put("None --[[unsupported operator " .. tostring(op) .. "]]")
   end
end

function Gen:x_Quantifier(n)
   -- a quantifier nested in an expression (body-item quantifiers are `cond` items)
   local sub = require("compiler.lower").lower_body(n.body)
   self:put("(")
   self:quant_open(n)
   self:items(sub)
   self:put("})(c, e)")
end

function Gen:x_Assign(n)
   self:expr(n.value)
end

function Gen:x_Import()
   self:put("true")
end

------------------------------------------------------------------------------------------------
-- body items (docs/policy-api.md §2-§5), emitted in source order inside a table constructor

local function names(list)
   local parts = {}
   for i, x in ipairs(list or {}) do parts[i] = S(x) end
   return "{" .. concat(parts, ", ") .. "}"
end

local function lc(e)
   return tostring(e.line or 0) .. ", " .. tostring(e.col or 0)
end

-- Quantifier arguments: count(min=, max=) / count(n) must be constants of the policy text.
local function bound_literal(x)
   if x.tag == "Num" then return N(x.value) end
   if x.tag == "Null" then return "nil" end
   if x.tag == "UnOp" and x.op == "-" and x.operand.tag == "Num" then return N(-x.operand.value) end
   return nil
end

-- The count bounds of a quantifier: {{"min", node}, {"max", node}} (positional or keyword).
local function count_bounds(qn)
   local out = {}
   if qn.kind ~= "count" then return out end
   local names_ = { "min", "max" }
   for i, a in ipairs(qn.args or {}) do
      if names_[i] then out[#out + 1] = { names_[i], a } end
   end
   for _, kw in ipairs(qn.kwargs or {}) do
      if kw.name == "min" or kw.name == "max" then out[#out + 1] = { kw.name, kw.value } end
   end
   return out
end

local function dynamic_bounds(qn)
   for _, bd in ipairs(count_bounds(qn)) do
      if not bound_literal(bd[2]) then return true end
   end
   return false
end

-- Streams `count { min = ..., max = ..., negate = ..., ` / `forall { negate = ..., `. Literal bounds
-- are data; other bounds are expressions (only inside a closure, where c and e exist) whose None
-- means "no bound".
function Gen:quant_open(qn)
   self:put((qn.kind == "count" and "count" or "forall") .. " { ")
   for _, bd in ipairs(count_bounds(qn)) do
      local lit = bound_literal(bd[2])
      if lit then
         self:put(bd[1] .. " = " .. lit .. ", ")
      else
         self.used.NONIL = true
         self:put(bd[1] .. " = NONIL(")
         self:expr(bd[2])
         self:put("), ")
      end
   end
   self:put("negate = " .. (qn.negated and "true" or "false") .. ", ")
end

local function open_block(sub)
   for _, v in ipairs(sub.vars) do
      if not v.domain then return true end
   end
   return false
end

-- Equality-join hint (docs/policy-api.md §3) of a plain condition `X == Y`: when X reads exactly
-- one typed variable `a` of this query and Y exactly one other, `b`, and both sides are plain
-- accesses (names, `.attr`, `[constant]`, literals: no calls, so computing a key for every
-- candidate has no cost or effect the scan would not have), returns a, X, b, Y. The condition
-- must read nothing else. The engine then hash-joins; the condition itself still decides.
local KEY_TAGS = { Member = true, Index = true, Str = true, Num = true, Bool = true, Null = true }

local function key_var(side, typed)
   local var, ok = nil, true
   ast.walk(side, function(n)
      if not ok then return false end
      if n.tag == "Name" then
         if n.ref ~= "typed" or typed[n.name] == nil or n.decl ~= typed[n.name]
            or (var ~= nil and var ~= n.name) then
            ok = false
         else
            var = n.name
         end
      elseif not KEY_TAGS[n.tag] then
         ok = false
      end
   end)
   if not ok or side.tag ~= "Name" and not KEY_TAGS[side.tag] then return nil end
   return var
end

M.emit_eq_hints = true -- tests turn it off to compare hinted and unhinted joins

local function eq_hint(it, q)
   if not M.emit_eq_hints then return nil end
   local x = it.expr
   if x.tag ~= "BinOp" or x.op ~= "==" or #it.reads ~= 2 then return nil end
   local typed = {}
   for _, v in ipairs(q.items) do
      if v.list == "vars" and v.node then typed[v.name] = v.node end
   end
   local a, b = key_var(x.left, typed), key_var(x.right, typed)
   if a == nil or b == nil or a == b then return nil end
   local r1, r2 = it.reads[1], it.reads[2]
   if not ((r1 == a and r2 == b) or (r1 == b and r2 == a)) then return nil end
   return a, x.left, b, x.right
end
M.eq_hint = eq_hint

-- Emits the items of query `q`, each followed by ", ".
function Gen:items(q)
   for _, it in ipairs(q.items) do
      if it.list == "vars" then
         self:go(it.line)
         if it.domain then
            self:put("var(" .. S(it.name) .. ", " .. S(it.type) .. ", " .. lc(it) .. ", " .. names(it.reads)
               .. ", function(c, e) return (")
            self:expr(it.domain)
            self:put(") end), ")
         else
            self:put("var(" .. S(it.name) .. ", " .. S(it.type) .. ", " .. lc(it) .. "), ")
         end
      elseif it.list == "derived" then
         self:go(it.line)
         self:put("let(" .. S(it.name) .. ", " .. lc(it) .. ", " .. names(it.reads) .. ", function(c, e) return (")
         self:expr(it.expr)
         self:put(") end), ")
      elseif it.list == "order" then
         self:go(it.line)
         self:put((it.op == "->" and "flow(" or "succ(") .. S(it.a) .. ", " .. S(it.b) .. ", " .. lc(it) .. "), ")
      elseif it.quant then
         self:go(it.line)
         if dynamic_bounds(it.quant) then
            -- bounds computed per model: build the quantifier inside the condition
            self:put("cond(" .. names(it.reads) .. ", " .. lc(it) .. ", function(c, e) return (")
            self:quant_open(it.quant)
            self:items(it.sub)
            self:put("})(c, e) end" .. (open_block(it.sub) and ", {nonmono = true}" or "") .. "), ")
         else
            self:put("cond(" .. names(it.reads) .. ", " .. lc(it) .. ", ")
            self:quant_open(it.quant)
            self:items(it.sub)
            self:put("}), ")
         end
      else
         self:go(it.line)
         self:put("cond(" .. names(it.reads) .. ", " .. lc(it) .. ", function(c, e) return (")
         self:expr(it.expr)
         local a, xa, b, xb = eq_hint(it, q)
         if a then
            self:put(") end, { eq = { " .. S(a) .. ", function(c, e) return (")
            self:expr(xa)
            self:put(") end, " .. S(b) .. ", function(c, e) return (")
            self:expr(xb)
            self:put(") end } }), ")
         else
            self:put(") end), ")
         end
      end
   end
end

local function rule_message(node)
   local t = node.raise
   if t.tag == "Str" then return t.value end
   if t.tag == "Call" and t.args[1] and t.args[1].tag == "Str" then return t.args[1].value end
   if t.tag == "Name" then return t.name end
   return ""
end
M.rule_message = rule_message

function Gen:rule(r)
   local node = r.node
   self:go(node.line)
   self:put("rule { line = " .. tostring(node.line) .. ", col = " .. tostring(r.raise.col or 0)
      .. ", message = " .. S(rule_message(node)) .. ", raise = ")
   if r.raise.expr.tag == "Str" then
      self:put(S(r.raise.expr.value))
   else
      self:put("function(c, e) return (")
      self:expr(r.raise.expr)
      self:put(") end")
   end
   self:put(", ")
   self:items(r.query)
   self:put("}; ")
end

function Gen:pred(p)
   local node = p.node
   self:go(node.line)
   self:put("predicate(" .. S(p.name) .. ", " .. names(p.params) .. ", " .. tostring(node.line) .. ", { ")
   self:items(p.query)
   self:put("}); ")
end

function Gen:const(c)
   local node = c.node
   self:go(node.line)
   self:put("const(" .. S(c.name) .. ", " .. tostring(node.line) .. ", function(c, e) return (")
   if c.expr then self:expr(c.expr) else self:put("None") end
   self:put(") end); ")
end

for k, v in pairs(Gen) do
   local tag = k:match("^x_(.+)$")
   if tag then DISPATCH[tag] = v end
end

function M.generate(ir, policy_ast)
   local g = new_gen()
   g:put(PRELUDE)
   local decl_at = g.e.n + 1
   g:put("") -- replaced by the helper declarations once we know which are used
   local rules, preds, consts = {}, {}, {}
   for _, r in ipairs(ir.rules) do rules[r.node] = r end
   for _, p in ipairs(ir.preds) do preds[p.node] = p end
   for _, c in ipairs(ir.consts) do consts[c.node] = c end
   for _, st in ipairs(policy_ast.stmts or {}) do
      if rules[st] then
         g:rule(rules[st])
      elseif preds[st] then
         g:pred(preds[st])
      elseif consts[st] then
         g:const(consts[st])
      end
   end
   local helpers = {}
   for _, h in ipairs(HELPERS) do
      if g.used[h[1]] then
         helpers[#helpers + 1] = h[1]
         g:put(h[1] .. " = " .. h[2] .. "; ")
      end
   end
   if #helpers > 0 then g.e.buf[decl_at] = "local " .. concat(helpers, ", ") .. "; " end
   for k, p in ipairs(g.pats) do
      g:put("K[" .. k .. "] = " .. p .. "; ")
   end
   g:put("\n")
   local info = {}
   for _, r in ipairs(ir.rules) do
      info[#info + 1] = { index = r.index, message = rule_message(r.node), line = r.node.line }
   end
   return g.e:text(), info, g.diags
end

function M.run(state)
   local src, rules, diags = M.generate(state.ir, state.ast)
   for _, d in ipairs(diags) do state.diags[#state.diags + 1] = d end
   state.lua = src
   state.lua_src = src
   state.rules = state.rules or rules
end

return M

-- compiler.lower: rule, predicate and quantifier bodies -> conjunctive queries.
--
-- Input: state.ast (a checked Policy, see compiler/ast.lua; scope has set Name.ref/decl).
-- Output: state.ir = {
--   rules  = { {node = <Rule>, index, query = Q, raise = {expr, reads, line, col}} ... },
--   preds  = { {node = <Predicate>, name, params = {"a", ...}, query = Q} ... },
--   consts = { {node = <Const>, name, expr} ... },
--   imports = { <Import> ... },
-- }
-- A query Q = {
--   vars    = { {name, type, line, col, domain = <expr|nil>, reads = {names}} ... }  -- typed variables
--   derived = { {name, expr, reads, line, col} ... }                                -- `x := e`
--   order   = { {op = "->"|"~>", a = name, b = name, line, col} ... }                -- order constraints
--   conds   = { {expr, reads, line, col, quant = <Quantifier node|nil>, sub = Q'} ... }
--   items   = every entry above in source order (for line-preserving code generation)
-- }
-- `reads` is the sorted list of query variables (typed, derived, predicate parameters and
-- variables of enclosing queries) an expression reads; comprehension variables, constants,
-- predicates, imports and builtins are not variables.
local ipairs, pairs, sort = ipairs, pairs, table.sort
local ast = require "compiler.ast"
local _ENV = nil -- luacheck: ignore 211

local M = {}

local VAR_REFS = { typed = true, ["local"] = true, param = true }

-- Sorted list of variable names read by `node`, excluding declarations in `own` (a set of decl
-- nodes declared inside a quantifier block, which are not variables of the enclosing query).
local function reads_of(node, own)
   local set = {}
   if node then
      ast.walk(node, function(n)
         if n.tag == "Name" and VAR_REFS[n.ref] and not (own and n.decl and own[n.decl]) then
            set[n.name] = true
         elseif n.tag == "TypedVar" and not (own and own[n]) then
            set[n.name] = true
         end
      end)
   end
   local out = {}
   for k in pairs(set) do out[#out + 1] = k end
   sort(out)
   return out
end
M.reads_of = reads_of

local function merge(a, b)
   local set, out = {}, {}
   for _, x in ipairs(a) do set[x] = true end
   for _, x in ipairs(b) do set[x] = true end
   for k in pairs(set) do out[#out + 1] = k end
   sort(out)
   return out
end

-- Every declaration node (TypedVar, Assign) inside a quantifier block, nested blocks included.
local function block_decls(body)
   local own = {}
   for _, item in ipairs(body) do
      ast.walk(item, function(n)
         if n.tag == "TypedVar" or n.tag == "Assign" then own[n] = true end
      end)
   end
   return own
end

local lower_body

local function new_query()
   return { vars = {}, derived = {}, order = {}, conds = {}, items = {}, declared = {} }
end

local function add(q, list, entry)
   q[list][#q[list] + 1] = entry
   entry.list = list
   q.items[#q.items + 1] = entry
   return entry
end

local function declare(q, tv)
   if q.declared[tv.name] then return end
   q.declared[tv.name] = true
   add(q, "vars", { name = tv.name, type = tv.type, line = tv.line, col = tv.col, node = tv,
      domain = tv.domain, reads = tv.domain and reads_of(tv.domain) or {} })
end

-- Declare every typed variable nested inside `e` (not inside quantifier blocks).
local function declare_nested(q, e)
   ast.walk(e, function(n)
      if n.tag == "Quantifier" then return false end
      if n.tag == "TypedVar" then declare(q, n) end
   end)
end

local function order_operand(q, e)
   if e.tag == "TypedVar" and not e.domain then
      declare(q, e)
      return e.name
   end
   if e.tag == "Name" and e.ref == "typed" then return e.name end
   return nil
end

local function lower_item(q, item)
   local tag = item.tag
   if tag == "Import" or tag == "Def" then return end
   if tag == "TypedVar" then
      declare(q, item)
      if item.domain then declare_nested(q, item.domain) end
      return
   end
   if tag == "Assign" then
      declare_nested(q, item.value)
      add(q, "derived", { name = item.name, expr = item.value, reads = reads_of(item.value),
         line = item.line, col = item.col, node = item })
      return
   end
   if tag == "BinOp" and (item.op == "->" or item.op == "~>") then
      local a = order_operand(q, item.left)
      local b = order_operand(q, item.right)
      if a and b then
         add(q, "order", { op = item.op, a = a, b = b, line = item.line, col = item.col, node = item })
         return
      end
   end
   if tag == "Quantifier" then
      local own = block_decls(item.body)
      local sub = lower_body(item.body)
      local reads = {}
      for _, a in ipairs(item.args or {}) do reads = merge(reads, reads_of(a)) end
      for _, kw in ipairs(item.kwargs or {}) do reads = merge(reads, reads_of(kw.value)) end
      for _, it in ipairs(item.body) do reads = merge(reads, reads_of(it, own)) end
      add(q, "conds", { expr = item, quant = item, sub = sub, reads = reads, line = item.line,
         col = item.col, node = item })
      return
   end
   -- one walk: declare nested typed variables and collect the variables read
   local set = {}
   ast.walk(item, function(n)
      local t = n.tag
      if t == "Name" then
         if VAR_REFS[n.ref] then set[n.name] = true end
      elseif t == "TypedVar" then
         declare(q, n)
         set[n.name] = true
      elseif t == "Quantifier" then
         -- a quantifier nested in an expression: its free variables (approximation: all names)
         for _, r in ipairs(reads_of(n, block_decls(n.body))) do set[r] = true end
         return false
      end
   end)
   local reads = {}
   for k in pairs(set) do reads[#reads + 1] = k end
   sort(reads)
   add(q, "conds", { expr = item, reads = reads, line = item.line, col = item.col, node = item })
end

function lower_body(body)
   local q = new_query()
   for _, item in ipairs(body or {}) do lower_item(q, item) end
   q.declared = nil
   return q
end
M.lower_body = lower_body

-- Names a query may read: its own typed and derived variables, plus those of enclosing queries
-- (and predicate parameters). A name declared inside a quantifier block is bound only there;
-- reading it outside the block would meet an unbound variable at run time, so it is a located
-- load error instead (the reference silently never fires such a rule).
local function first_name(node, name)
   local found
   ast.walk(node, function(n)
      if found then return false end
      if (n.tag == "Name" or n.tag == "TypedVar") and n.name == name then found = n; return false end
   end)
   return found or node
end

local function check_reads(state, q, outer, extra_items)
   local avail = {}
   for k in pairs(outer) do avail[k] = true end
   for _, v in ipairs(q.vars) do avail[v.name] = true end
   for _, d in ipairs(q.derived) do avail[d.name] = true end
   local function check(reads, node)
      for _, r in ipairs(reads or {}) do
         if not avail[r] then
            local at = first_name(node, r)
            state.diags[#state.diags + 1] = { code = "E401", kind = "unbound-variable", line = at.line or 1,
               column = at.col or 1, message = "Variable " .. r .. " is only bound inside its quantifier block" }
            return
         end
      end
   end
   for _, it in ipairs(q.items) do
      if it.list ~= "order" then check(it.reads, it.node) end
      if it.sub then check_reads(state, it.sub, avail) end
   end
   for _, x in ipairs(extra_items or {}) do check(x.reads, x.expr) end
end
M.check_reads = check_reads

function M.run(state)
   local policy = state.ast
   local ir = { rules = {}, preds = {}, consts = {}, imports = {} }
   for _, st in ipairs(policy.stmts or {}) do
      if st.tag == "Rule" then
         ir.rules[#ir.rules + 1] = {
            node = st, index = st.index or #ir.rules, query = lower_body(st.body),
            raise = { expr = st.raise, reads = reads_of(st.raise), line = st.raise.line, col = st.raise.col },
         }
      elseif st.tag == "Predicate" then
         local params = {}
         for i, p in ipairs(st.params or {}) do params[i] = p.name end
         ir.preds[#ir.preds + 1] = { node = st, name = st.name, params = params, query = lower_body(st.body) }
      elseif st.tag == "Const" then
         ir.consts[#ir.consts + 1] = { node = st, name = st.name, expr = st.value or (st.body or {})[1] }
      elseif st.tag == "Import" then
         ir.imports[#ir.imports + 1] = st
      end
   end
   state.ir = ir
   state.diags = state.diags or {}
   for _, r in ipairs(ir.rules) do check_reads(state, r.query, {}, { r.raise }) end
   for _, p in ipairs(ir.preds) do
      local outer = {}
      for _, n in ipairs(p.params) do outer[n] = true end
      check_reads(state, p.query, outer)
   end
end

return M

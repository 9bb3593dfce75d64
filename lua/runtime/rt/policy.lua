-- rt.policy: the declaration API used by compiled and Lua-authored policies (docs/policy-api.md)
-- and the loader that runs a policy chunk in a fresh, restricted environment.
local _G, error, getmetatable, ipairs, load, math, next, pairs, pcall, rawget, rawset, require,
   setmetatable, string, table, tonumber, tostring, type, utf8 =
   _G, error, getmetatable, ipairs, load, math, next, pairs, pcall, rawget, rawset, require,
   setmetatable, string, table, tonumber, tostring, type, utf8
_ENV = nil
-- luacheck: no unused args

local value = require "rt.value"
local rterr = require "rt.error"
local engine = require "rt.engine"

local M = {}
local None = value.None
local getmt, setmt = getmetatable, setmetatable

local function opt_require(name)
   local ok, m = pcall(require, name)
   if ok then return m end
   return nil
end

------------------------------------------------------------------------------------------------
-- normalisation of rule / sub-query specs into the engine's form

local function pos_of(line, col)
   return (line or 0) * 10000 + (col or 0)
end

-- spec form (compiler): {vars, derived, order, conds, raise, index, line, col, params?}
function M.normalize(spec)
   local R = { index = spec.index, line = spec.line, col = spec.col, message = spec.message,
      vars = {}, lets = {}, conds = {}, orders = {}, params = spec.params, name = spec.name }
   for _, v in ipairs(spec.vars or {}) do
      R.vars[#R.vars + 1] = { name = v.name or v[1], type = v.type or v[2], reads = v.reads or {},
         domain = v.domain, line = v.line, col = v.col, pos = pos_of(v.line, v.col),
         whole_trace = v.whole_trace }
   end
   for _, l in ipairs(spec.derived or spec.lets or {}) do
      R.lets[#R.lets + 1] = { name = l.name, reads = l.reads or {}, fn = l.fn, line = l.line,
         col = l.col, pos = pos_of(l.line, l.col), is_let = true }
   end
   for _, c in ipairs(spec.conds or {}) do
      R.conds[#R.conds + 1] = { reads = c.reads or {}, fn = c.fn, line = c.line, col = c.col,
         pos = pos_of(c.line, c.col), nonmono = c.nonmono, whole_trace = c.whole_trace,
         eq = c.eq }
   end
   for _, o in ipairs(spec.order or spec.orders or {}) do
      R.orders[#R.orders + 1] = { op = o.op or "->", a = o.a, b = o.b, line = o.line, col = o.col,
         pos = pos_of(o.line, o.col) }
   end
   local r = spec.raise
   if type(r) == "string" then
      local msg = r
      R.raise = { fn = function() return msg end, line = spec.line, col = spec.col }
      R.message = R.message or msg
   elseif type(r) == "function" then
      R.raise = { fn = r, line = spec.line, col = spec.raise_col or spec.col }
   elseif type(r) == "table" then
      R.raise = { fn = r.fn, line = r.line or spec.line, col = r.col or spec.col, reads = r.reads }
   end
   -- duplicate names are a declaration error
   local seen = {}
   for _, v in ipairs(R.vars) do
      if seen[v.name] then
         error({ load_error = true, line = v.line, col = v.col,
            message = "duplicate declaration of " .. tostring(v.name) }, 0)
      end
      seen[v.name] = true
   end
   return R
end

-- items form (Lua authors): rule{line=, raise=, var(...), cond(...), ...}
local ITEM = {}
local function item(t) return setmt(t, ITEM) end

local function items_to_spec(t)
   local spec = { vars = {}, derived = {}, order = {}, conds = {} }
   for k, v in pairs(t) do
      if type(k) ~= "number" then spec[k] = v end
   end
   for _, it in ipairs(t) do
      if getmt(it) ~= ITEM then
         error({ load_error = true, line = t.line, col = 1,
            message = "rule body items must be var/let/cond/flow/succ" }, 0)
      end
      if it.k == "var" then spec.vars[#spec.vars + 1] = it
      elseif it.k == "let" then spec.derived[#spec.derived + 1] = it
      elseif it.k == "order" then spec.order[#spec.order + 1] = it
      else spec.conds[#spec.conds + 1] = it end
   end
   return spec
end
M.items_to_spec = items_to_spec

------------------------------------------------------------------------------------------------
-- Violation objects

local ViolationObj = { __name = "Violation" }
ViolationObj.__index = ViolationObj
M.ViolationObj = ViolationObj

local function check_arg(x)
   local tx = type(x)
   if tx == "string" or tx == "number" or tx == "boolean" then return x end
   local s = value.str(x)
   if s then return s end
   local mt = getmt(x)
   if mt == value.Event then return x end
   if mt == value.Record and (x.kind == "TextChunk" or x.kind == "Image") then return x end
   if mt == value.Contents then return x end
   if value.is_dict(x) then return value.dict({}) end
   rterr.raise("type", "1 validation error for Violation: value of type '" .. value.typename(x)
      .. "' is not a str, int, float, bool or event")
end

function M.Violation(ctx, args, kwargs)
   local a = { n = 0 }
   local n = args and (args.n or #args) or 0
   for i = 1, n do a[i] = check_arg(args[i]) end
   a.n = n
   local kw = {}
   if kwargs then
      for k, v in pairs(kwargs) do
         if k ~= "ranges" then kw[k] = check_arg(v) end
      end
   end
   return setmt({ args = a, kwargs = kw }, ViolationObj)
end

------------------------------------------------------------------------------------------------
-- quantifiers and predicates

local Quant = { __name = "quantifier" }
Quant.__index = Quant
M.Quant = Quant

M.forall_q = setmt({ kind = "forall" }, Quant)

function M.count_q(ctx, args, kwargs)
   local mn, mx
   if args and args[1] ~= nil and args[1] ~= None then mn = args[1] end
   if args and args[2] ~= nil and args[2] ~= None then mx = args[2] end
   if kwargs then
      if kwargs.min ~= nil and kwargs.min ~= None then mn = kwargs.min end
      if kwargs.max ~= nil and kwargs.max ~= None then mx = kwargs.max end
   end
   return setmt({ kind = "count", min = mn, max = mx }, Quant)
end

local function has_open(R)
   for _, v in ipairs(R.vars) do if v.domain == nil then return true end end
   return false
end

-- ranges of a model's bound values (whole-object), appended to marks
local function bound_ranges(model, marks, names)
   for _, n in ipairs(names) do
      local x = model.b[n]
      local l = x ~= nil and value.loc(x)
      if l and value.is_event(x) then marks[#marks + 1] = { l } end
   end
end

local function copy_outer(b)
   local o = {}
   for k, v in pairs(b) do o[k] = v end
   return o
end

function M.quantify(ctx, b, q, spec, negated)
   local run = ctx.run
   if getmt(spec) ~= nil or spec[1] ~= nil then spec = items_to_spec(spec) end
   -- a quantifier declared once (cond(..., count{...})) keeps its normalised sub-rule
   local R = rawget(spec, "_R")
   if not R then
      R = M.normalize(spec)
      rawset(spec, "_R", R)
   end
   R.index = ctx.solver and ctx.solver.R.index
   if has_open(R) then run.touched = true end
   if q == nil or q == M.forall_q or (type(q) == "table" and q.kind == "forall") then
      -- forall: no assignment violates the block
      local R2 = R._R2
      if not R2 then
         local inner = {}
         local maxpos, reads = 0, {}
         for _, c in ipairs(R.conds) do
            inner[#inner + 1] = c
            if c.pos > maxpos then maxpos = c.pos end
            for _, n in ipairs(c.reads) do reads[#reads + 1] = n end
         end
         for _, o in ipairs(R.orders) do
            inner[#inner + 1] = { order = o }
            reads[#reads + 1] = o.a; reads[#reads + 1] = o.b
         end
         for _, v in ipairs(R.vars) do reads[#reads + 1] = v.name end
         for _, l in ipairs(R.lets) do reads[#reads + 1] = l.name end
         local neg = { reads = reads, line = R.line, col = R.col, pos = maxpos + 1,
            fn = function(c, e)
               for _, it in ipairs(inner) do
                  if it.order then
                     if not engine.order_holds(it.order.op, e[it.order.a], e[it.order.b]) then return true end
                  else
                     local r = engine.call_item(it, it.fn, c, e)
                     if r ~= true then return true end
                  end
               end
               return false
            end }
         R2 = { vars = R.vars, lets = R.lets, conds = { neg }, orders = {}, line = R.line }
         R._R2 = R2
      end
      R2.index = R.index
      local saved = ctx.marks
      local ms = engine.solve(R2, run, { outer = copy_outer(b), limit = 1 })
      ctx.marks = saved
      local res = #ms == 0
      if negated then return not res end
      return res
   end
   -- count
   local mn, mx = q.min, q.max
   -- bounds may be computed per model: count{min = function(c, e) ... end}
   if type(mn) == "function" then mn = mn(ctx, b) end
   if type(mx) == "function" then mx = mx(ctx, b) end
   if mn == None then mn = nil end
   if mx == None then mx = nil end
   if (mn ~= nil and type(mn) ~= "number") or (mx ~= nil and type(mx) ~= "number") then
      rterr.raise("type", "count() bounds must be numbers")
   end
   local limit
   if mx ~= nil then limit = mx + 1 elseif mn ~= nil then limit = mn end
   local saved = ctx.marks
   local ms = limit == 0 and {} or engine.solve(R, run, { outer = copy_outer(b), limit = limit })
   ctx.marks = saved
   local n = #ms
   local names = {}
   for _, v in ipairs(R.vars) do names[#names + 1] = v.name end
   for _, m in ipairs(ms) do
      for _, mk in ipairs(m.marks) do saved[#saved + 1] = mk end
      bound_ranges(m, saved, names)
   end
   local res = true
   if mn ~= nil and n < mn then res = false end
   if mx ~= nil and n > mx then res = false end
   if negated then return not res end
   return res
end

-- predicate(spec) -> callable fn(ctx, args, kwargs)
function M.predicate(spec)
   local R = M.normalize(spec)
   local params = spec.params or {}
   local open = has_open(R)
   local fn = function(ctx, args, kwargs)
      args = args or { n = 0 }
      local n = args.n or #args
      if n < #params then
         rterr.raise("type", "pop from empty list (predicate " .. tostring(spec.name or "?")
            .. " expects " .. #params .. " arguments)")
      end
      local outer = {}
      for i, p in ipairs(params) do
         local x = args[i]
         if x == nil then x = None end
         outer[p] = x
      end
      local run = ctx.run
      if open then run.touched = true end
      local saved = ctx.marks
      R.index = ctx.solver and ctx.solver.R.index
      local ms = engine.solve(R, run, { outer = outer, limit = 1 })
      ctx.marks = saved
      if #ms > 0 then
         for _, mk in ipairs(ms[1].marks) do saved[#saved + 1] = mk end
         return true
      end
      return false
   end
   return fn
end

------------------------------------------------------------------------------------------------
-- parameters, flow, trace

function M.param(ctx, name)
   local p = ctx.run and ctx.run.params
   local v = p and p[name]
   if v == nil then
      rterr.raise("missing-parameter", "Missing Policy Parameter: '" .. tostring(name)
         .. "' (policy relies on `input." .. tostring(name)
         .. "`), which is required for evaluation of a rule.")
   end
   return v
end

function M.flow(ctx, a, b, op)
   return engine.order_holds(op or "->", a, b)
end

function M.trace(ctx)
   ctx.run.touched = true
   return value.list(ctx.run.trace.events)
end

------------------------------------------------------------------------------------------------
-- the environment

local SAFE_STRING = { "byte", "char", "find", "format", "gmatch", "gsub", "len", "lower",
   "match", "rep", "reverse", "sub", "upper", "pack", "packsize", "unpack" }
local SAFE_TABLE = { "concat", "insert", "move", "pack", "remove", "sort", "unpack" }
local SAFE_BASE = { "ipairs", "pairs", "next", "select", "type", "tostring", "tonumber",
   "assert", "error", "rawequal", "rawlen", "rawget" }

-- The string metatable's __index is the real `string` table; give every string a copy without
-- `dump` so that ("").dump is not reachable from a policy (a global, harmless change).
do
   local smt = getmetatable("")
   if smt and smt.__index == string then
      local safe = {}
      for k, v in pairs(string) do if k ~= "dump" then safe[k] = v end end
      smt.__index = safe
   end
end

-- Read-only views of runtime modules: a policy can read and call, never modify shared state.
local RO = setmt({}, { __mode = "k" })
local function readonly(t)
   if type(t) ~= "table" then return t end
   local p = RO[t]
   if p then return p end
   p = setmt({}, {
      __index = function(_, k)
         local v = t[k]
         if type(v) == "table" and getmt(v) == nil then return readonly(v) end
         if type(v) == "function" then rawset(p, k, v) end -- functions are immutable: cache
         return v
      end,
      __newindex = function(_, k) error("attempt to modify a read-only runtime table (" .. tostring(k) .. ")", 2) end,
      __call = getmt(t) and getmt(t).__call and function(_, ...) return t(...) end or nil,
      __pairs = function() return function(_, k) local nk, nv = next(t, k); return nk, nv end, nil, nil end,
      __len = function() return #t end,
      __metatable = false,
   })
   RO[t] = p
   return p
end
M.readonly = readonly

-- metatables owned by the runtime: invisible to policies
local PROTECTED = {}
for _, k in ipairs({ "List", "Dict", "Tuple", "Contents", "Event", "Record", "Str", "Method", "Ctx" }) do
   if value[k] then PROTECTED[value[k]] = true end
end
PROTECTED[getmetatable("")] = true

local function safe_getmetatable(x)
   local mt = getmetatable(x)
   if PROTECTED[mt] then return nil end
   return mt
end

local function safe_setmetatable(t, mt)
   if PROTECTED[getmetatable(t)] or PROTECTED[mt] then
      error("cannot change the metatable of a runtime value", 2)
   end
   if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
      -- a finalizer would run outside this policy's evaluation (and its budget)
      error("__gc metamethods are not allowed in policies", 2)
   end
   return setmetatable(t, mt)
end

-- pcall/error inside a policy never swallows a sandbox limit (memory, budget, deadline)
local function safe_pcall(f, ...)
   local r = table.pack(pcall(f, ...))
   if not r[1] and engine.is_limit_error(r[2]) then error(r[2], 0) end
   return table.unpack(r, 1, r.n)
end

local function copy_fields(src, names)
   local t = {}
   for _, n in ipairs(names) do t[n] = src[n] end
   return t
end

-- callables by name: builtins, detectors, quantifiers, Violation
local function all_builtins()
   local B = {}
   local bm = opt_require "rt.builtins"
   if bm and bm.builtins then for k, v in pairs(bm.builtins) do B[k] = v end end
   local dm = opt_require "rt.detectors"
   if dm and dm.builtins then for k, v in pairs(dm.builtins) do B[k] = v end end
   B.forall = M.forall_q
   B.count = M.count_q
   B.Violation = M.Violation
   B.PolicyViolation = M.Violation
   return B
end
M.all_builtins = all_builtins

-- Build a fresh environment for one policy; returns env, P (the policy object being declared).
function M.new_env(name)
   local P = { rules = {}, name = name }
   local B = all_builtins()
   local pattern = opt_require "rt.pattern"
   local env = {}
   for _, n in ipairs(SAFE_BASE) do env[n] = _G[n] end
   env.pcall = safe_pcall
   env.getmetatable = safe_getmetatable
   env.setmetatable = safe_setmetatable
   env.string = copy_fields(string, SAFE_STRING)
   env.table = copy_fields(table, SAFE_TABLE)
   local m = {}
   for k, v in pairs(math) do m[k] = v end
   env.math = m
   local u = {}
   for k, v in pairs(utf8) do u[k] = v end
   env.utf8 = u

   local function add_rule(spec)
      if getmt(spec) == nil and spec[1] ~= nil then spec = items_to_spec(spec) end
      if spec.vars == nil and spec.conds == nil and spec.derived == nil and spec.order == nil then
         spec = items_to_spec(spec)
      end
      local R = M.normalize(spec)
      R.index = #P.rules
      if R.raise == nil then
         R.raise = { fn = function() return "violation" end, line = R.line, col = R.col }
      end
      P.rules[#P.rules + 1] = R
      return R
   end

   local api = {}
   api.rule = add_rule
   api.predicate = M.predicate
   api.quantify = M.quantify
   api.param = M.param
   api.flow = M.flow
   api.trace = M.trace
   api.import = function(module, nm, line, col)
      local v = B[nm]
      if v == nil then
         error({ load_error = true, line = line, col = col,
            message = "cannot import " .. tostring(nm) .. " from " .. tostring(module) }, 0)
      end
      return v
   end
   env.policy = api
   local Vr, Br, Pr, Er = readonly(value), readonly(B), readonly(pattern), readonly(rterr)
   env.value = Vr
   env.pattern = Pr
   env.builtins = Br
   -- short names (docs/policy-api.md)
   env.V, env.B, env.PAT, env.ERR = Vr, Br, Pr, Er
   env.rule = add_rule
   env.var = function(nm, T, line, col, reads, fn)
      return item { k = "var", name = nm, type = T, line = line, col = col, reads = reads,
         domain = fn }
   end
   env.let = function(nm, line, col, reads, fn)
      return item { k = "let", name = nm, line = line, col = col, reads = reads, fn = fn }
   end
   env.cond = function(reads, line, col, fn, opts)
      local f = fn
      if getmt(fn) == Quant or (type(fn) == "table" and fn.quant) then
         local q = fn
         f = function(c, e) return q(c, e) end
      end
      local it = item { k = "cond", reads = reads, line = line, col = col, fn = f }
      if opts then
         it.whole_trace = opts.whole_trace
         it.nonmono = opts.nonmono
         it.eq = opts.eq
      end
      if type(fn) == "table" and fn.quant and fn.open then it.nonmono = true end
      return it
   end
   env.flow = function(a, b, line, col)
      return item { k = "order", op = "->", a = a, b = b, line = line, col = col }
   end
   env.succ = function(a, b, line, col)
      return item { k = "order", op = "~>", a = a, b = b, line = line, col = col }
   end
   local function mkq(q, t)
      local spec = items_to_spec(t)
      local negate = t.negate
      local open = false
      for _, v in ipairs(spec.vars) do if v.domain == nil then open = true end end
      return setmt({ quant = true, open = open }, { __call = function(_, c, e)
         return M.quantify(c, e, q, spec, negate)
      end })
   end
   env.forall = function(t) return mkq(M.forall_q, t) end
   env.count = function(t) return mkq({ kind = "count", min = t.min, max = t.max }, t) end
   env.input = function(c, nm)
      if nm == nil then return (c.run and c.run.params) or value.dict({}) end
      return M.param(c, nm)
   end
   local consts = {}
   env.const = function(nm, line, fn)
      if consts[nm] then
         error({ load_error = true, line = line, col = 1,
            message = "duplicate declaration of " .. tostring(nm) }, 0)
      end
      consts[nm] = { fn = fn, line = line, col = 1, name = nm }
   end
   env.CONST = setmt({}, { __index = function(_, nm)
      local d = consts[nm]
      if not d then rterr.raise("value", "unknown constant " .. tostring(nm)) end
      local run = P.current_run
      if not run then return engine.call_item(d, d.fn, engine.new_ctx({ params = {} }), {}) end
      run.consts = run.consts or {}
      local v = run.consts[nm]
      if v == nil then
         v = engine.call_item(d, d.fn, engine.new_ctx(run), {})
         if v == nil then v = None end
         run.consts[nm] = v
      end
      return v
   end })
   env.Violation = M.Violation
   env.PolicyViolation = M.Violation
   env.FLOW = function(a, b) return engine.order_holds("->", a, b) end
   env.SUCC = function(a, b) return engine.order_holds("~>", a, b) end
   env.TRACE = M.trace
   env.None = None
   env.predicate = function(nm, params, line, items)
      if type(nm) == "table" then return M.predicate(nm) end
      local spec = items_to_spec(items or {})
      spec.params, spec.name, spec.line = params, nm, line
      local f = M.predicate(spec)
      env[nm] = f
      return f
   end
   env._G = env
   return env, P
end

-- Load a Lua policy source (generated or hand-written). Returns P or nil, err.
function M.load_lua(src, name)
   name = name or "policy"
   if type(src) ~= "string" then
      return nil, { code = "bad_request", message = "policy must be a string" }
   end
   if src:sub(1, 1) == "\27" then
      return nil, { code = "policy_invalid", message = "binary chunks are not accepted",
         diagnostics = { { code = "syntax", kind = "syntax", line = 1, column = 1,
            message = "binary chunks are not accepted" } } }
   end
   local env, P = M.new_env(name)
   local chunk, perr = load(src, "=policy:" .. name, "t", env)
   if not chunk then
      local line = tonumber(tostring(perr):match(":(%d+):")) or 1
      return nil, { code = "policy_invalid", message = tostring(perr),
         diagnostics = { { code = "syntax", kind = "syntax", line = line, column = 1,
            message = tostring(perr) } } }
   end
   local ok, e = pcall(chunk)
   if not ok then
      if engine.is_limit_error(e) then error(e, 0) end
      local line, col, msg
      if type(e) == "table" and e.load_error then
         line, col, msg = e.line, e.col, e.message
      else
         msg = tostring(type(e) == "table" and (e.message or e) or e)
         line = tonumber(msg:match("policy:[^:]*:(%d+):")) or 1
      end
      return nil, { code = "policy_invalid", message = msg,
         diagnostics = { { code = "declaration", kind = "declaration", line = line or 1,
            column = col or 1, message = msg } } }
   end
   P.env = env
   return P
end

return M

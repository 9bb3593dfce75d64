-- rt.engine: the planning rule engine.
--
-- A rule (normalised by rt.policy) is a conjunctive query:
--   R.vars   = { {name, type, reads, domain, line, col, pos}, ... }  typed variables
--   R.lets   = { {name, reads, fn, line, col, pos}, ... }            `:=` derived bindings
--   R.conds  = { {reads, fn, line, col, pos, nonmono, whole_trace}, ... }
--   R.orders = { {op = "->" | "~>", a, b, line, col, pos}, ... }
-- `pos` is the source position (line * 10000 + col) used for error reachability.
--
-- Evaluation (solve):
--   1. root lets/conds (no local variable) run once;
--   2. every typed variable with an open domain gets its candidates (events of its type, or the
--      §5.6 selection over the trace) filtered by its one-variable conditions (and the lets that
--      depend on it alone) — pushed down, evaluated once per candidate;
--   3. variables are joined in a planned order (smallest filtered domain first, then variables
--      linked to bound ones); `->`/`~>` (and their transitive closure) restrict the candidate
--      index range by binary search on the flattened position; every other condition runs as
--      soon as its last variable is bound.
-- Models carry their own marks (per candidate, per join step) — LANGUAGE.md Fixed 7.
--
-- Errors: a runtime error raised by a condition is reported only if evaluating the body in
-- source order would reach it: some extension of the partial binding satisfies every item
-- placed before the failing one (checked by a restricted solve). Otherwise the condition simply
-- does not hold for that binding.
local error, getmetatable, ipairs, math, next, pairs, pcall, require, setmetatable, table, type =
   error, getmetatable, ipairs, math, next, pairs, pcall, require, setmetatable, table, type
_ENV = nil
-- luacheck: no unused args

local value = require "rt.value"
local rterr = require "rt.error"

local M = {}

local None = value.None
local Event = value.Event
local getmt = getmetatable
local ctxnew = value.ctx

local trace_mod
local function tracem()
   trace_mod = trace_mod or require "rt.trace"
   return trace_mod
end

local EVENT_KINDS = { Message = "messages", ToolCall = "calls", ToolOutput = "outputs",
   Tool = "tools" }
M.EVENT_KINDS = EVENT_KINDS

------------------------------------------------------------------------------------------------
-- errors located at a body item

local LocErr = {}
LocErr.__index = LocErr
M.LocErr = LocErr

local function is_limit_error(e)
   if type(e) == "string" then
      return e:find("not enough memory", 1, true) or e:find("vigil-limit", 1, true)
   end
   if type(e) == "table" and getmt(e) ~= rterr.RuntimeError and getmt(e) ~= LocErr then
      return e.limit ~= nil
   end
   return false
end
M.is_limit_error = is_limit_error

-- wrap an error raised while running `item` (a cond/let/var/raise spec)
local function locate(e, item)
   if getmt(e) == LocErr then return e end
   if is_limit_error(e) then return e end
   local re = rterr.from(e)
   return setmetatable({ kind = re.kind, message = re.message, line = item and item.line,
      col = item and item.col, item = item }, LocErr)
end

local function call_item(item, fn, c, e)
   local ok, r = pcall(fn, c, e)
   if ok then return r end
   error(locate(r, item), 0)
end
M.call_item = call_item

------------------------------------------------------------------------------------------------
-- domains

-- all values of type T over the whole trace (open domain)
local function open_domain(run, T)
   local st = run.trace
   local lname = EVENT_KINDS[T]
   if lname then return st[lname] or {} end
   if T == "Input" then return { st.events } end
   if T == "list" then return { value.list(st.events) } end
   return tracem().select(T, value.list(st.events))
end

local function domain_of(run, T, root)
   if root == nil or root == None then return open_domain(run, T) end
   return tracem().select(T, root)
end
M.domain_of = domain_of

------------------------------------------------------------------------------------------------
-- planning

-- Static analysis of a rule, cached on the rule table (outer names are never local).
local function analyse(R)
   if R._an then return R._an end
   local local_names, is_var = {}, {}
   for _, v in ipairs(R.vars) do local_names[v.name] = true; is_var[v.name] = v end
   for _, l in ipairs(R.lets) do local_names[l.name] = true end
   local let_by = {}
   for _, l in ipairs(R.lets) do let_by[l.name] = l end
   -- typed variables an item depends on (through lets)
   local memo = {}
   local function tvars_of_let(l, seen)
      if memo[l] then return memo[l] end
      seen = seen or {}
      if seen[l] then return {} end
      seen[l] = true
      local s = {}
      for _, n in ipairs(l.reads or {}) do
         if is_var[n] then s[n] = true
         elseif let_by[n] and let_by[n] ~= l then
            for k in pairs(tvars_of_let(let_by[n], seen)) do s[k] = true end
         end
      end
      memo[l] = s
      return s
   end
   local function tvars(reads)
      local s = {}
      for _, n in ipairs(reads or {}) do
         if is_var[n] then s[n] = true
         elseif let_by[n] then
            for k in pairs(tvars_of_let(let_by[n])) do s[k] = true end
         end
      end
      return s
   end
   local an = { is_var = is_var, let_by = let_by, local_names = local_names }
   for _, l in ipairs(R.lets) do l._tv = tvars_of_let(l) end
   for _, c in ipairs(R.conds) do c._tv = tvars(c.reads) end
   for _, v in ipairs(R.vars) do
      v._tv = tvars(v.reads)
      v._open = v.domain == nil
   end
   -- local (let) names an item reads directly
   local function local_reads(reads)
      local out = {}
      for _, n in ipairs(reads or {}) do if local_names[n] then out[#out + 1] = n end end
      return out
   end
   for _, l in ipairs(R.lets) do l._lr = local_reads(l.reads) end
   for _, c in ipairs(R.conds) do c._lr = local_reads(c.reads) end
   for _, v in ipairs(R.vars) do v._lr = local_reads(v.reads) end
   -- order constraints and their transitive closure (for pruning): before[a][b] = strict?
   local lt = {} -- lt[a][b] = true when a.seq < b.seq is implied
   local succ = {} -- explicit ~>
   for _, o in ipairs(R.orders) do
      lt[o.a] = lt[o.a] or {}
      lt[o.a][o.b] = true
      if o.op == "~>" then succ[#succ + 1] = o end
   end
   local changed = true
   while changed do
      changed = false
      for _, bs in pairs(lt) do
         for b in pairs(bs) do
            if lt[b] then
               for c in pairs(lt[b]) do
                  if not bs[c] then bs[c] = true; changed = true end
               end
            end
         end
      end
   end
   an.lt, an.succ = lt, succ
   -- non-monotone: quantifiers over open domains, whole-trace conditions
   local nonmono = false
   for _, c in ipairs(R.conds) do
      if c.nonmono or c.whole_trace then nonmono = true end
   end
   for _, v in ipairs(R.vars) do
      if v.whole_trace then nonmono = true end
   end
   an.nonmono = nonmono
   -- equality hints: cond.eq = {a, key_fn_a, b, key_fn_b} (both typed variables of this rule)
   local eqs = {}
   for _, c in ipairs(R.conds) do
      local q = c.eq
      if type(q) == "table" and is_var[q[1]] and is_var[q[3]] and q[1] ~= q[3]
         and type(q[2]) == "function" and type(q[4]) == "function" then
         eqs[#eqs + 1] = { cond = c, a = q[1], fa = q[2], b = q[3], fb = q[4] }
      end
   end
   an.eqs = eqs
   R._an = an
   return an
end
M.analyse = analyse

------------------------------------------------------------------------------------------------
-- solving

-- binary search: first index i in [lo, hi] with cands[i].seq > s (cands sorted by seq)
local function first_after(seqs, lo, hi, s)
   local a, b = lo, hi + 1
   while a < b do
      local m = (a + b) // 2
      if seqs[m] > s then b = m else a = m + 1 end
   end
   return a
end

local function last_before(seqs, lo, hi, s)
   -- last index i in [lo, hi] with seqs[i] < s
   local a, b = lo - 1, hi
   while a < b do
      local m = (a + b + 1) // 2
      if seqs[m] < s then a = m else b = m - 1 end
   end
   return a
end

local function seq_of(v)
   if getmt(v) ~= Event or not v.seq then
      rterr.raise("key", "Object with given id not in dataflow graph!")
   end
   return v.seq
end

local function new_ctx(run)
   return ctxnew({ run = run })
end
M.new_ctx = new_ctx

-- Evaluate a list of items (lets and conds, in the given order) under bindings e.
-- Returns ok (all conds true), marks (array or nil). Errors are located.
-- `fail_at` receives the failing item.
local function run_items(S, items, e, marks)
   local c = S.ctx
   for i = 1, #items do
      local it = items[i]
      -- a fresh marks list per item; an empty one left by the previous item is reused
      local cm0 = c.marks
      if cm0 == nil or cm0[1] ~= nil then c.marks = {} end
      S.cur = it
      local ok, r = pcall(it.fn, c, e)
      if not ok then
         local err = locate(r, it)
         if getmt(err) ~= LocErr then error(err, 0) end
         -- reachable? (some extension satisfies every item before this one)
         if S.reachable(it, e) then error(err, 0) end
         return false, marks
      end
      local cm = c.marks
      if cm[1] ~= nil then
         marks = marks or {}
         for j = 1, #cm do marks[#marks + 1] = cm[j] end
      end
      if it.is_let then
         if r == nil then r = None end
         e[it.name] = r
      elseif r ~= true then
         return false, marks
      end
   end
   return true, marks
end

-- Build the evaluation schedule: which lets/conds run at each step.
-- order: array of var specs (join order). Returns steps[i] = items to run after binding order[i];
-- pre = items with no local typed-variable dependency.
local function schedule(R, an, order, outer_bound, unit_of)
   local bound = {}
   for k in pairs(outer_bound or {}) do bound[k] = true end
   local done = {}
   local function ready(it)
      for _, n in ipairs(it._lr) do
         if not bound[n] then return false end
      end
      return true
   end
   local all = {}
   for _, l in ipairs(R.lets) do l.is_let = true; all[#all + 1] = l end
   for _, c in ipairs(R.conds) do all[#all + 1] = c end
   table.sort(all, function(x, y) return x.pos < y.pos end)
   local function collect(skip_unit)
      local out = {}
      local progress = true
      while progress do
         progress = false
         for _, it in ipairs(all) do
            if not done[it] and ready(it) then
               done[it] = true
               if not (skip_unit and skip_unit[it]) then out[#out + 1] = it end
               if it.is_let then bound[it.name] = true end
               progress = true
            end
         end
      end
      return out
   end
   local pre = collect()
   local steps = {}
   for i, v in ipairs(order) do
      bound[v.name] = true
      steps[i] = collect(unit_of and unit_of[v.name])
   end
   -- anything left (reads a name never bound): evaluate at the end (will error if unbound)
   local rest = {}
   for _, it in ipairs(all) do if not done[it] then rest[#rest + 1] = it end end
   if #rest > 0 and order.complete then
      local last = (#order > 0) and steps[#order] or pre
      for _, it in ipairs(rest) do last[#last + 1] = it end
   end
   return pre, steps
end

-- Filter the open-domain candidates of var v: returns cand = {vals, lets, marks, seqs, n}.
-- unit: the lets/conds whose typed-variable dependency is exactly {v} (in source order).
local function filter_candidates(S, v, unit, domain, e)
   local vals, lets, marks, seqs = {}, {}, {}, {}
   local n = 0
   local name = v.name
   local letnames = {}
   for _, it in ipairs(unit) do if it.is_let then letnames[#letnames + 1] = it.name end end
   local nl = #letnames
   local allev = true
   for i = 1, #domain do
      local x = domain[i]
      e[name] = x
      local ok, mk = run_items(S, unit, e)
      if ok then
         n = n + 1
         vals[n] = x
         if getmt(x) == Event and x.seq then seqs[n] = x.seq else allev = false end
         marks[n] = mk or false
         if nl > 0 then
            local lv = {}
            for j = 1, nl do lv[j] = e[letnames[j]] end
            lets[n] = lv
         else
            lets[n] = false
         end
      end
      for j = 1, nl do e[letnames[j]] = nil end
   end
   e[name] = nil
   return { vals = vals, lets = lets, letnames = letnames, marks = marks,
      seqs = allev and seqs or nil, n = n }
end
M.filter_candidates = filter_candidates

-- Items that run before any typed variable is bound, and the names bound after them.
function M.pre_items(R, outer_bound)
   local an = analyse(R)
   local pre = schedule(R, an, {}, outer_bound or {})
   local bound0 = {}
   for k in pairs(outer_bound or {}) do bound0[k] = true end
   for _, it in ipairs(pre) do if it.is_let then bound0[it.name] = true end end
   return pre, bound0
end
M.run_items = function(S, items, e) return run_items(S, items, e) end

-- The lets/conds whose typed-variable dependency is exactly {v} (pushed-down filters of an
-- open-domain variable), in evaluation order. bound0: names bound before any variable.
function M.unit_items(R, v, bound0)
   local an = analyse(R)
   local b = {}
   for k in pairs(bound0) do b[k] = true end
   local _, st = schedule(R, an, { v }, b)
   local filtered = {}
   for _, it in ipairs(st[1]) do
      local only = true
      for n in pairs(it._tv or {}) do if n ~= v.name then only = false end end
      if only then filtered[#filtered + 1] = it end
   end
   return filtered
end

-- Choose the join order.
local function plan_order(R, an, cands, outer_bound, restrict)
   local order, bound = {}, {}
   local remaining = {}
   for _, v in ipairs(R.vars) do remaining[#remaining + 1] = v end
   local linked = {}
   for _, c in ipairs(R.conds) do
      for a in pairs(c._tv) do
         linked[a] = linked[a] or {}
         for b in pairs(c._tv) do if a ~= b then linked[a][b] = true end end
      end
   end
   for a, bs in pairs(an.lt) do
      for b in pairs(bs) do
         linked[a] = linked[a] or {}; linked[a][b] = true
         linked[b] = linked[b] or {}; linked[b][a] = true
      end
   end
   while #remaining > 0 do
      local best, bestcost, besti
      for i, v in ipairs(remaining) do
         local ok = true
         for n in pairs(v._tv) do if not bound[n] then ok = false end end
         if ok then
            local cost
            if v._open then
               cost = cands[v.name].n
               local r = restrict and restrict[v.name]
               if r then cost = math.max(0, math.min(cost, r[2]) - math.max(1, r[1]) + 1) end
            else
               cost = 4
            end
            local isl = false
            for n in pairs(bound) do
               if linked[v.name] and linked[v.name][n] then isl = true end
            end
            if isl then cost = cost * 0.1 end
            for _, o in ipairs(an.succ) do
               if (o.a == v.name and bound[o.b]) or (o.b == v.name and bound[o.a]) then cost = 0 end
            end
            if not best or cost < bestcost then best, bestcost, besti = v, cost, i end
         end
      end
      if not best then
         -- cyclic domain dependencies: take the first (will error on evaluation)
         best, besti = remaining[1], 1
      end
      order[#order + 1] = best
      bound[best.name] = true
      table.remove(remaining, besti)
   end
   return order
end

-- Hash keys that follow Python equality (1 == 1.0 == True, located strings as plain ones);
-- nil for values that cannot be hashed this way (containers, events, NaN).
local function eq_key(x)
   local tx = type(x)
   if tx == "string" then return x end
   if tx == "number" then
      if x ~= x then return nil end
      return x -- Lua table keys already merge 1 and 1.0
   end
   if tx == "boolean" then return x and 1 or 0 end
   if x == nil or x == None then return None end
   local sx = value.str(x)
   if sx then return sx end
   return nil
end

-- The index of an equality hint over an open variable's candidates: key -> ascending candidate
-- indices. Kept on the candidate list and extended when it grows (monitors). Returns nil when
-- a key cannot be computed for some candidate (the engine then scans).
local function eq_index(S, cand, h, side_name, side_fn, e)
   cand.eqidx = cand.eqidx or {}
   local ix = cand.eqidx[h.cond]
   if ix == false then return nil end
   if not ix then ix = { map = {}, n = 0 }; cand.eqidx[h.cond] = ix end
   if ix.n < cand.n then
      local c = S.ctx
      local saved = e[side_name]
      for ci = ix.n + 1, cand.n do
         e[side_name] = cand.vals[ci]
         c.marks = {}
         local ok, k = pcall(side_fn, c, e)
         local key = ok and eq_key(k)
         if not ok or key == nil then
            cand.eqidx[h.cond] = false
            e[side_name] = saved
            return nil
         end
         local l = ix.map[key]
         if not l then l = {}; ix.map[key] = l end
         l[#l + 1] = ci
      end
      e[side_name] = saved
      ix.n = cand.n
   end
   return ix
end

-- solve(R, run, opts) -> array of models {b = bindings, marks = {...}, extra = {...}}
-- opts.outer: outer bindings table (read-only), opts.limit: stop after n models,
-- opts.restrict: name -> {lo, hi} index ranges into the open candidates (monitor semi-naive),
-- opts.cands: precomputed filtered candidates (monitor), opts.skip_conds: set of items ignored,
-- opts.only_before: position; items at or after it are ignored (reachability checks),
-- opts.on_model(model) -> true to stop.
local solve

local function new_state(R, run, opts)
   opts = opts or {}
   local S = { R = R, run = run, ctx = new_ctx(run), opts = opts }
   S.ctx.solver = S
   local outer = opts.outer
   -- reachability: does some extension of e satisfy all items strictly before `it`?
   S.reachable = function(it, eb)
      local sub = R._restricted and R._restricted[it]
      if not sub then
         -- copies: the analysis annotates items, and the restricted rule sees fewer local names
         local function clone(x)
            local t = {}
            for k, v in pairs(x) do t[k] = v end
            return t
         end
         -- when a derived domain failed, that variable (and what depends on it) is left out
         local excl = {}
         for _, v in ipairs(R.vars) do if v == it then excl[v.name] = true end end
         local grown = next(excl) ~= nil
         while grown do
            grown = false
            for _, v in ipairs(R.vars) do
               if not excl[v.name] then
                  for _, n in ipairs(v.reads or {}) do
                     if excl[n] then excl[v.name] = true; grown = true end
                  end
               end
            end
         end
         local function reads_excl(x)
            for _, n in ipairs(x.reads or {}) do if excl[n] then return true end end
            return false
         end
         sub = { vars = {}, lets = {}, conds = {}, orders = {}, index = R.index }
         for _, v in ipairs(R.vars) do
            if not excl[v.name] then sub.vars[#sub.vars + 1] = clone(v) end
         end
         for _, l in ipairs(R.lets) do
            if l.pos < it.pos and not reads_excl(l) then sub.lets[#sub.lets + 1] = clone(l) end
         end
         for _, c in ipairs(R.conds) do
            if c.pos < it.pos and not reads_excl(c) then sub.conds[#sub.conds + 1] = clone(c) end
         end
         for _, o in ipairs(R.orders) do
            if o.pos < it.pos and not excl[o.a] and not excl[o.b] then sub.orders[#sub.orders + 1] = o end
         end
         R._restricted = R._restricted or setmetatable({}, { __mode = "k" })
         R._restricted[it] = sub
      end
      local pin = {}
      for k, v in pairs(eb) do pin[k] = v end
      -- pin already-bound typed variables by giving them singleton domains
      local vars = {}
      for _, v in ipairs(sub.vars) do
         if pin[v.name] ~= nil then
            local x = pin[v.name]
            vars[#vars + 1] = { name = v.name, type = v.type, reads = {}, line = v.line, col = v.col,
               pos = v.pos, domain = function() return value.list({ x }) end, pinned = true }
         else
            vars[#vars + 1] = v
         end
      end
      local lets = {}
      for _, l in ipairs(sub.lets) do if pin[l.name] == nil then lets[#lets + 1] = l end end
      local outer2 = {}
      if outer then for k, v in pairs(outer) do outer2[k] = v end end
      for _, l in ipairs(sub.lets) do if pin[l.name] ~= nil then outer2[l.name] = pin[l.name] end end
      local R2 = { vars = vars, lets = lets, conds = sub.conds, orders = sub.orders,
         index = R.index, line = R.line }
      local ms = solve(R2, run, { outer = outer2, limit = 1, pinned_select = true })
      return #ms > 0
   end

   return S
end
M.new_state = new_state

solve = function(R, run, opts)
   opts = opts or {}
   local an = analyse(R)
   local S = new_state(R, run, opts)
   local outer = opts.outer
   local e = {}
   if outer then for k, v in pairs(outer) do e[k] = v end end
   local outer_bound = {}
   if outer then for k in pairs(outer) do outer_bound[k] = true end end

   local pre, _ = schedule(R, an, { complete = #R.vars == 0 }, outer_bound)
   -- root items
   local ok, rootmarks = run_items(S, pre, e)
   if not ok then return {} end

   -- open-domain candidates, filtered by their unit items
   local bound0 = {}
   for k in pairs(outer_bound) do bound0[k] = true end
   for _, it in ipairs(pre) do if it.is_let then bound0[it.name] = true end end
   local cands = opts.cands or {}
   local unit_of = {}
   for _, v in ipairs(R.vars) do
      if v._open then
         -- top-level rules: the unit of a variable never changes (cached on the rule)
         local filtered = not outer and R._units and R._units[v.name]
         if not filtered then
            filtered = M.unit_items(R, v, bound0)
            if not outer then
               R._units = R._units or {}
               R._units[v.name] = filtered
            end
         end
         local us = {}
         for _, it in ipairs(filtered) do us[it] = true end
         unit_of[v.name] = us
         if not cands[v.name] then
            -- a sub-rule (quantifier block, predicate body) solved again and again in one run:
            -- its candidates do not change when its filters read nothing from outside
            local cacheable = outer ~= nil
            if cacheable then
               for _, it in ipairs(filtered) do
                  for _, n in ipairs(it.reads or {}) do
                     if not an.local_names[n] or bound0[n] then cacheable = false end
                  end
               end
            end
            local cache = cacheable and run.cand_cache and run.cand_cache[R]
            if cache and cache[v.name] then
               cands[v.name] = cache[v.name]
            else
               cands[v.name] = filter_candidates(S, v, filtered, open_domain(run, v.type), e)
               if cacheable then
                  run.cand_cache = run.cand_cache or setmetatable({}, { __mode = "k" })
                  run.cand_cache[R] = run.cand_cache[R] or {}
                  run.cand_cache[R][v.name] = cands[v.name]
               end
            end
         end
         if cands[v.name].n == 0 then return {}, cands end
      end
   end

   local order = plan_order(R, an, cands, outer_bound, opts.restrict)
   -- per step: items not already applied in a unit
   local steps
   do
      local b = {}
      for k in pairs(bound0) do b[k] = true end
      order.complete = #order == #R.vars
      local _, st = schedule(R, an, order, b, unit_of)
      steps = st
   end
   -- order constraints checked at each step: for var order[i], constraints with bound vars
   local pos_in = {}
   for i, v in ipairs(order) do pos_in[v.name] = i end
   local lt = an.lt
   local step_after, step_before, step_succ_after, step_succ_before = {}, {}, {}, {}
   for i = 1, #order do
      step_after[i], step_before[i], step_succ_after[i], step_succ_before[i] = {}, {}, {}, {}
   end
   -- constraints with an outer-bound operand (quantifier blocks) prune as well
   for a, bs in pairs(lt) do
      for b in pairs(bs) do
         local ia, ib = pos_in[a], pos_in[b]
         if ia and ib then
            if ia < ib then table.insert(step_after[ib], a) else table.insert(step_before[ia], b) end
         elseif ib and outer_bound[a] then
            table.insert(step_after[ib], a)
         elseif ia and outer_bound[b] then
            table.insert(step_before[ia], b)
         end
      end
   end
   for _, o in ipairs(an.succ) do
      local ia, ib = pos_in[o.a], pos_in[o.b]
      if ia and ib then
         if ia < ib then table.insert(step_succ_after[ib], o.a)
         else table.insert(step_succ_before[ia], o.b) end
      elseif ib and outer_bound[o.a] then
         table.insert(step_succ_after[ib], o.a)
      elseif ia and outer_bound[o.b] then
         table.insert(step_succ_before[ia], o.b)
      end
   end
   -- explicit orders whose operands are not both typed vars of this rule (outer vars)
   for _, o in ipairs(R.orders) do
      if not (pos_in[o.a] and pos_in[o.b]) then
         local last = math.max(pos_in[o.a] or 0, pos_in[o.b] or 0)
         local it = { reads = { o.a, o.b }, line = o.line, col = o.col, pos = o.pos, _lr = {},
            fn = function(c, eb) return M.order_holds(o.op, eb[o.a], eb[o.b]) end }
         if last == 0 then
            local okk = run_items(S, { it }, e)
            if not okk then return {} end
         else
            table.insert(steps[last], 1, it)
         end
      end
   end

   -- equality hints usable at each step: the variable bound at the step is open, the other
   -- side is bound earlier
   local step_eq = {}
   for _, h in ipairs(an.eqs) do
      local ia, ib = pos_in[h.a], pos_in[h.b]
      if ia and ib then
         local late, early_fn, late_name, late_fn
         if ia > ib then late, early_fn, late_name, late_fn = ia, h.fb, h.a, h.fa
         else late, early_fn, late_name, late_fn = ib, h.fa, h.b, h.fb end
         if order[late]._open and not step_eq[late] then
            step_eq[late] = { h = h, early_fn = early_fn, late_name = late_name, late_fn = late_fn }
         end
      end
   end

   local nvars = #order
   local models = {}
   local limit = opts.limit
   local restrict = opts.restrict or {}
   local on_model = opts.on_model
   local stop = false
   local markstack = {}   -- markstack[i] = marks contributed at depth i (candidate + step)
   local candmarks = {}

   local function emit()
      local b = {}
      for _, v in ipairs(order) do b[v.name] = e[v.name] end
      for _, l in ipairs(R.lets) do
         local x = e[l.name]
         if x ~= nil then b[l.name] = x end
      end
      local marks = {}
      if rootmarks then for _, m in ipairs(rootmarks) do marks[#marks + 1] = m end end
      for i = 1, nvars do
         local cm = candmarks[i]
         if cm then for _, m in ipairs(cm) do marks[#marks + 1] = m end end
         local sm = markstack[i]
         if sm then for _, m in ipairs(sm) do marks[#marks + 1] = m end end
      end
      local model = { b = b, marks = marks, rule = R }
      models[#models + 1] = model
      if on_model and on_model(model) then stop = true end
      if limit and #models >= limit then stop = true end
   end

   local function bind_value(i, v, x, cand, ci)
      e[v.name] = x
      if cand then
         local lv = cand.lets[ci]
         if lv then
            local ln = cand.letnames
            for j = 1, #ln do e[ln[j]] = lv[j] end
         end
         candmarks[i] = cand.marks[ci] or nil
      else
         candmarks[i] = nil
      end
   end

   local function unbind(i, v, cand)
      e[v.name] = nil
      if cand then
         local ln = cand.letnames
         for j = 1, #ln do e[ln[j]] = nil end
      end
   end

   local depth
   depth = function(i)
      if stop then return end
      if i > nvars then emit(); return end
      local v = order[i]
      local items = steps[i]
      if v._open then
         local cand = cands[v.name]
         local lo, hi = 1, cand.n
         local r = restrict[v.name]
         if r then lo, hi = math.max(lo, r[1]), math.min(hi, r[2]) end
         if lo > hi then return end
         local seqs = cand.seqs
         local after, before = step_after[i], step_before[i]
         local sa, sb = step_succ_after[i], step_succ_before[i]
         local exact
         if seqs then
            for _, a in ipairs(after) do
               local s = seq_of(e[a])
               local f = first_after(seqs, lo, hi, s)
               if f > lo then lo = f end
            end
            for _, b in ipairs(before) do
               local s = seq_of(e[b])
               local l = last_before(seqs, lo, hi, s)
               if l < hi then hi = l end
            end
            for _, a in ipairs(sa) do
               local s = seq_of(e[a]) + 1
               if exact and exact ~= s then return end
               exact = s
            end
            for _, b in ipairs(sb) do
               local s = seq_of(e[b]) - 1
               if exact and exact ~= s then return end
               exact = s
            end
            if exact then
               local f = first_after(seqs, lo, hi, exact - 1)
               if f <= hi and seqs[f] == exact then lo, hi = f, f else return end
            end
         elseif #after + #before + #sa + #sb > 0 then
            -- non-event candidates in an order constraint
            for ci = lo, hi do seq_of(cand.vals[ci]) end
         end
         local list -- candidate indices from an equality index, or nil to scan lo..hi
         local sq = step_eq[i]
         if sq then
            local ix = eq_index(S, cand, sq.h, sq.late_name, sq.late_fn, e)
            if ix then
               S.ctx.marks = {}
               local okk, k = pcall(sq.early_fn, S.ctx, e)
               local key = okk and eq_key(k)
               if okk and key ~= nil then list = ix.map[key] or {} end
            end
         end
         local first, last = lo, hi
         if list then
            -- the indices are ascending: binary search the window [lo, hi]
            local a, b = 1, #list + 1
            while a < b do
               local m = (a + b) // 2
               if list[m] >= lo then b = m else a = m + 1 end
            end
            first, last = a, #list
         end
         for pos = first, last do
            local ci = pos
            if list then
               ci = list[pos]
               if ci > hi then break end
            end
            local x = cand.vals[ci]
            bind_value(i, v, x, cand, ci)
            local pass, mk = run_items(S, items, e)
            if pass then
               markstack[i] = mk
               depth(i + 1)
               markstack[i] = nil
            end
            unbind(i, v, cand)
            for _, it in ipairs(items) do if it.is_let then e[it.name] = nil end end
            if stop then return end
         end
      else
         -- derived domain: evaluated per binding of its reads
         S.ctx.marks = {}
         local okd, root = pcall(v.domain, S.ctx, e)
         if not okd then
            local err = locate(root, v)
            -- like a condition: raised only where source-order evaluation would reach it
            if getmt(err) ~= LocErr or S.reachable(v, e) then error(err, 0) end
            return
         end
         local dom
         if v.pinned then dom = root else dom = domain_of(run, v.type, root) end
         for _, x in ipairs(dom) do
            e[v.name] = x
            candmarks[i] = nil
            local okk = true
            -- order constraints with bound vars
            for _, a in ipairs(step_after[i]) do
               if seq_of(e[a]) >= seq_of(x) then okk = false end
            end
            for _, b in ipairs(step_before[i]) do
               if okk and seq_of(x) >= seq_of(e[b]) then okk = false end
            end
            for _, a in ipairs(step_succ_after[i]) do
               if okk and seq_of(x) ~= seq_of(e[a]) + 1 then okk = false end
            end
            for _, b in ipairs(step_succ_before[i]) do
               if okk and seq_of(x) + 1 ~= seq_of(e[b]) then okk = false end
            end
            if okk then
               local pass, mk = run_items(S, items, e)
               if pass then
                  markstack[i] = mk
                  depth(i + 1)
                  markstack[i] = nil
               end
            end
            e[v.name] = nil
            for _, it in ipairs(items) do if it.is_let then e[it.name] = nil end end
            if stop then return end
         end
      end
      -- clear lets computed at this step
      for _, it in ipairs(items) do if it.is_let then e[it.name] = nil end end
   end

   if nvars == 0 then
      -- lets/conds scheduled "after" nothing are in pre; a rule with no typed vars: one model
      emit()
   else
      depth(1)
   end
   return models, cands, order
end
M.solve = solve

function M.order_holds(op, a, b)
   local sa, sb = seq_of(a), seq_of(b)
   if op == "~>" then return sb == sa + 1 end
   return sa < sb
end

return M

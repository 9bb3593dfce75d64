-- rt.monitor: incremental evaluation (issue 5, LANGUAGE.md monitor contract).
--
-- Per monitor: the normalised trace so far, the keys already reported, and per rule and per
-- open-domain typed variable the candidates that passed its one-variable filters. A chunk:
--   1. appends the events (trace.append keeps the linking state);
--   2. filters only the new events into each variable's candidate list;
--   3. semi-naive join: for each open variable v_i with new candidates, models with v_i new,
--      every v_j before it (declaration order) old and every v_j after it anything — so every
--      model binding at least one new event is built exactly once, and none other;
--   4. keeps the models whose key this monitor has not reported.
-- Rules that are not monotone in the trace (quantifiers or predicates over open domains,
-- whole-trace conditions — flagged statically or detected at run time through run.touched) are
-- re-evaluated over the whole trace and filtered to models binding a pending event.
local error, getmetatable, ipairs, pairs, pcall, require = error, getmetatable, ipairs, pairs, pcall, require
_ENV = nil

local value = require "rt.value"
local engine = require "rt.engine"
local trace = require "rt.trace"

local M = {}
local getmt = getmetatable

function M.new(pol, params)
   local all = {}
   -- violations: every violation this monitor has reported, in order
   return { pol = pol, params = params, st = trace.new(), reported = {}, events_seen = 0,
      rstate = {}, all = all, violations = all }
end

local function binds_pending(m, past_len)
   for _, x in pairs(m.b) do
      if getmt(x) == value.Event and x.idx >= past_len then return true end
   end
   return false
end

local LISTS = engine.EVENT_KINDS

local function fallback(R, run, past_len)
   local ms = engine.solve(R, run)
   local keep = {}
   for _, m in ipairs(ms) do
      if binds_pending(m, past_len) then keep[#keep + 1] = m end
   end
   return keep
end

local function open_vars(R)
   local o = {}
   for _, v in ipairs(R.vars) do if v.domain == nil then o[#o + 1] = v end end
   return o
end

-- values of the open domain of v: the new ones (after the lengths recorded in `lens`), or with
-- `old`, the ones before them
local function domain_part(st, v, lens, past_len, old)
   local ln = LISTS[v.type]
   if ln then
      local l = st[ln]
      local out = {}
      local from, to = lens[ln] + 1, #l
      if old then from, to = 1, lens[ln] end
      for i = from, to do out[#out + 1] = l[i] end
      return out
   end
   local evs = {}
   local from, to = past_len + 1, #st.events
   if old then from, to = 1, past_len end
   for i = from, to do evs[#evs + 1] = st.events[i] end
   return trace.select(v.type, value.list(evs))
end

local function append_cands(c, nc)
   c.letnames = nc.letnames
   for i = 1, nc.n do
      local k = c.n + i
      c.vals[k] = nc.vals[i]
      c.lets[k] = nc.lets[i]
      c.marks[k] = nc.marks[i]
      if c.seqs and nc.seqs then c.seqs[k] = nc.seqs[i] else c.seqs = nil end
   end
   c.n = c.n + nc.n
end

local function incremental(mon, R, run, lens, past_len)
   local rs = mon.rstate[R]
   if not rs then rs = { cands = {} }; mon.rstate[R] = rs end
   local opens = rs.opens or open_vars(R)
   rs.opens = opens
   if #opens == 0 then return fallback(R, run, past_len) end
   local S = engine.new_state(R, run, {})
   local e = {}
   -- root items (no typed variable) must hold; they do not depend on the trace for monotone rules
   local pre, bound0 = rs.pre, rs.bound0
   if not pre then
      pre, bound0 = engine.pre_items(R, {})
      rs.pre, rs.bound0 = pre, bound0
   end
   local ok = engine.run_items(S, pre, e)
   if not ok then return {} end
   local old_n = {}
   for _, v in ipairs(opens) do
      local c = rs.cands[v.name]
      local fresh = c == nil
      if fresh then
         c = { vals = {}, lets = {}, letnames = {}, marks = {}, seqs = {}, n = 0 }
         rs.cands[v.name] = c
      end
      local unit = rs.units and rs.units[v.name]
      if not unit then
         rs.units = rs.units or {}
         unit = engine.unit_items(R, v, bound0)
         rs.units[v.name] = unit
      end
      if fresh and past_len > 0 then
         -- (re)building the state: the history's candidates first (once)
         local old = domain_part(run.trace, v, lens, past_len, true)
         if #old > 0 then append_cands(c, engine.filter_candidates(S, v, unit, old, e)) end
      end
      old_n[v.name] = c.n
      local dom = domain_part(run.trace, v, lens, past_len, false)
      if #dom > 0 then append_cands(c, engine.filter_candidates(S, v, unit, dom, e)) end
   end
   local models = {}
   for i, v in ipairs(opens) do
      local c = rs.cands[v.name]
      if c.n > old_n[v.name] then
         local restrict = {}
         for j, w in ipairs(opens) do
            if j < i then restrict[w.name] = { 1, old_n[w.name] }
            elseif j == i then restrict[w.name] = { old_n[w.name] + 1, c.n } end
         end
         local ms = engine.solve(R, run, { cands = rs.cands, restrict = restrict })
         for _, m in ipairs(ms) do models[#models + 1] = m end
      end
   end
   return models
end

-- A chunk whose evaluation fails reports nothing; its events stay in the history but remain
-- pending: the next chunk is checked together with them (the contract then holds for the
-- union), and the incremental state is rebuilt from the history.
function M.push(mon, events)
   local st = mon.st
   local committed = mon.committed
   if not committed then
      committed = { past_len = #st.events, lens = {} }
      for _, ln in pairs(LISTS) do committed.lens[ln] = #st[ln] end
   end
   local past_len, lens = committed.past_len, committed.lens
   local new_events, err = trace.append(st, events)
   if not new_events then return nil, err end
   mon.events_seen = #st.events
   local run = { trace = st, params = mon.params, policy = mon.pol }
   local rt = require "rt"
   local okc, vs, e2 = pcall(rt.evaluate, mon.pol, run, function(R)
      local an = engine.analyse(R)
      if an.nonmono or R.monitor_fallback then return fallback(R, run, past_len) end
      run.touched = false
      local ms = incremental(mon, R, run, lens, past_len)
      if run.touched then
         -- the rule looked at the whole trace: from now on re-evaluate it entirely
         R.monitor_fallback = true
         mon.rstate[R] = nil
         return fallback(R, run, past_len)
      end
      return ms
   end)
   if not okc or not vs then
      mon.committed = committed
      mon.rstate = {}
      if not okc then error(vs, 0) end -- a resource limit: the C loop reports it
      return nil, e2
   end
   mon.committed = nil
   local out, newkeys = {}, {}
   for _, v in ipairs(vs) do
      if not mon.reported[v.key] then
         out[#out + 1] = v
         newkeys[v.key] = true
      end
   end
   for k in pairs(newkeys) do mon.reported[k] = true end
   for _, v in ipairs(out) do mon.all[#mon.all + 1] = v end
   return out
end

return M

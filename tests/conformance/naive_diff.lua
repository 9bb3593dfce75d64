-- Differential check of the planning engine against a naive evaluator of the model semantics
-- (LANGUAGE.md Fixed 3): for every analyze case of the conformance suite and random variants of
-- its trace (events dropped, duplicated, swapped), the violations of rt.analyze must equal those
-- of a cartesian enumeration of all typed variables (then `:=` values, order constraints and
-- conditions, each condition's marks kept per model). Same policy closures, same rendering; only
-- the solver differs. Prints TAP.
--
--   lua5.4 tests/conformance/naive_diff.lua CASES_DIR [SEED] [VARIANTS]
local script_dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = script_dir .. "/?.lua;" .. "lua/runtime/?.lua;lua/runtime/?/init.lua;lua/?.lua;" .. package.path
package.cpath = "build/lua/?.so;" .. package.cpath

local cjson = require "cjson"
local canon = require "canon"
local rt = require "rt"
local trace = require "rt.trace"
local engine = require "rt.engine"
local value = require "rt.value"

local dir = arg[1] or "../shared/conformance/cases"
local seed = tonumber(arg[2] or "") or os.time()
local variants = tonumber(arg[3] or "") or 4
math.randomseed(seed)
print("# seed " .. seed)

local MAX_PRODUCT = 200000

-- Variables in an order where a domain's reads are bound before it.
local function var_order(R)
   local order, placed = {}, {}
   local names = {}
   for _, v in ipairs(R.vars) do names[v.name] = true end
   local progress = true
   while #order < #R.vars and progress do
      progress = false
      for _, v in ipairs(R.vars) do
         if not placed[v.name] then
            local ready = true
            for _, r in ipairs(v.reads or {}) do
               if names[r] and not placed[r] then ready = false end
            end
            if ready then order[#order + 1] = v; placed[v.name] = true; progress = true end
         end
      end
   end
   return order
end

local TooBig = {}

local function naive_models(R, run)
   local order = var_order(R)
   local models, e, n = {}, {}, 0
   local ctx = engine.new_ctx(run)
   local function finish()
      n = n + 1
      if n > MAX_PRODUCT then error(TooBig, 0) end
      local marks = {}
      local env = {}
      for k, x in pairs(e) do env[k] = x end
      for _, l in ipairs(R.lets) do
         ctx.marks = {}
         local r = engine.call_item(l, l.fn, ctx, env)
         if r == nil then r = value.None end
         env[l.name] = r
         for _, m in ipairs(ctx.marks) do marks[#marks + 1] = m end
      end
      for _, o in ipairs(R.orders) do
         if not engine.order_holds(o.op, env[o.a], env[o.b]) then return end
      end
      for _, c in ipairs(R.conds) do
         ctx.marks = {}
         local r = engine.call_item(c, c.fn, ctx, env)
         for _, m in ipairs(ctx.marks) do marks[#marks + 1] = m end
         if r ~= true then return end
      end
      local b = {}
      for _, v in ipairs(R.vars) do b[v.name] = env[v.name] end
      for _, l in ipairs(R.lets) do b[l.name] = env[l.name] end
      models[#models + 1] = { b = b, marks = marks, rule = R }
   end
   local function bind(i)
      if i > #order then return finish() end
      local v = order[i]
      local root
      if v.domain then
         ctx.marks = {}
         root = engine.call_item(v, v.domain, ctx, e)
      end
      local dom = engine.domain_of(run, v.type, root)
      for _, x in ipairs(dom) do
         e[v.name] = x
         bind(i + 1)
      end
      e[v.name] = nil
   end
   bind(1)
   return models
end

local function copy(x) return trace.decode(cjson.encode(x)) end

local function canon_list(vs)
   local r = rt.render(vs, "invariant")
   local out = {}
   for i, v in ipairs(vs) do
      out[i] = canon.encode({ r[i].key, canon.canon_value(v.args), canon.canon_value(v.kwargs or {}), r[i].ranges })
   end
   table.sort(out)
   return out
end

local function variant(events)
   local ev = {}
   for i, x in ipairs(events) do ev[i] = x end
   for _ = 1, math.random(1, 3) do
      local r, i = math.random(), math.random(1, math.max(1, #ev))
      if #ev == 0 then break end
      if r < 0.35 then table.remove(ev, i)
      elseif r < 0.7 then table.insert(ev, i, ev[math.random(1, #ev)])
      else local j = math.random(1, #ev); ev[i], ev[j] = ev[j], ev[i] end
   end
   return ev
end

local names = {}
for f in io.popen("ls -1 " .. dir):lines() do if f:match("%.json$") then names[#names + 1] = f end end
table.sort(names)
local plan = {}
for _, f in ipairs(names) do
   local text = io.open(dir .. "/" .. f):read("a")
   local case = cjson.decode(text)
   if case.mode == "analyze" and case.expect.errors then
      plan[#plan + 1] = { case = case, raw = trace.decode(text) }
   end
end
print("1.." .. #plan)
local failed, skipped = 0, 0
for n, p in ipairs(plan) do
   local case = p.case
   local pol = assert(rt.load(case.policy, "invariant", case.id))
   local diffs = {}
   for k = 0, variants do
      local events = k == 0 and p.raw.trace or variant(p.raw.trace)
      local params = p.raw.parameters
      local planned, e1 = rt.analyze(pol, copy(events), copy(params))
      local st = trace.normalize(copy(events))
      local naive
      if st then
         local run = { trace = st, params = trace.from_json(copy(params) or value.dict({})), policy = pol }
         local ok, r1 = pcall(rt.evaluate, pol, run, function(R) return naive_models(R, run) end)
         if not ok then
            if r1 == TooBig then skipped = skipped + 1; goto continue end
            error(r1, 0)
         end
         naive = r1
      end
      if planned and naive then
         local a, b = canon_list(planned), canon_list(naive)
         local ta, tb = table.concat(a, "\n"), table.concat(b, "\n")
         if ta ~= tb then
            diffs[#diffs + 1] = ("variant %d: planned\n%s\nnaive\n%s\ntrace %s"):format(k, ta, tb, cjson.encode(events))
         end
      elseif (planned == nil) ~= (naive == nil) and st then
         -- the planner may skip an erroring condition no model reaches; the naive solver does not
         if planned == nil then
            diffs[#diffs + 1] = ("variant %d: planned failed (%s), naive succeeded"):format(k,
               tostring(e1 and e1.message))
         end
      end
      ::continue::
   end
   if #diffs == 0 then
      print(("ok %d - %s"):format(n, case.id))
   else
      failed = failed + 1
      print(("not ok %d - %s"):format(n, case.id))
      for _, d in ipairs(diffs) do for l in (d .. "\n"):gmatch("(.-)\n") do print("#   " .. l) end end
   end
end
print(("# %d of %d cases agree (%d variants too large, skipped)"):format(#plan - failed, #plan, skipped))
os.exit(failed == 0 and 0 or 1)

-- Differential check of monitors against analyze, over the analyze cases of the conformance suite:
-- each trace is cut into random chunks; for chunk i the monitor must report exactly the
-- violations of analyze(trace[1..end of chunk i]) that bind an event of chunk i and whose key was
-- not reported before (LANGUAGE.md, the monitor contract). Prints TAP.
--
--   lua5.4 tests/conformance/monitor_diff.lua CASES_DIR [SEED] [ROUNDS]
local script_dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = script_dir .. "/?.lua;" .. "lua/runtime/?.lua;lua/runtime/?/init.lua;lua/?.lua;" .. package.path
package.cpath = "build/lua/?.so;" .. package.cpath

local cjson = require "cjson"
local canon = require "canon"
local rt = require "rt"
local trace = require "rt.trace"

local dir = arg[1] or "../shared/conformance/cases"
local seed = tonumber(arg[2] or "") or os.time()
local rounds = tonumber(arg[3] or "") or 3
math.randomseed(seed)
print("# seed " .. seed)

local function copy(x) return trace.decode(cjson.encode(x)) end

local function canon_all(vs)
   local r = rt.render(vs, "invariant")
   local out = {}
   for i, v in ipairs(vs) do
      out[i] = { text = canon.encode({ r[i].key, canon.canon_value(v.args), r[i].ranges }), v = v, key = r[i].key }
   end
   return out
end

local names = {}
for f in io.popen("ls -1 " .. dir):lines() do if f:match("%.json$") then names[#names + 1] = f end end
table.sort(names)
local n, failed = 0, 0
local plan = {}
for _, f in ipairs(names) do
   local text = io.open(dir .. "/" .. f):read("a")
   local case = cjson.decode(text)
   if case.mode == "analyze" and case.expect.errors and not text:find('"tools"', 1, true) and #case.trace > 1 then
      plan[#plan + 1] = { case = case, raw = trace.decode(text) }
   end
end
print("1.." .. #plan * rounds)
for _, p in ipairs(plan) do
   local case = p.case
   local pol = assert(rt.load(case.policy, "invariant", case.id))
   for r = 1, rounds do
      n = n + 1
      local events = p.raw.trace
      -- random cut points
      local chunks, cur = {}, {}
      for i = 1, #events do
         cur[#cur + 1] = events[i]
         if i == #events or math.random() < 0.4 then chunks[#chunks + 1] = cur; cur = {} end
      end
      local mon = assert(rt.monitor(pol, copy(p.raw.parameters)))
      local seen, prefix, diff = {}, {}, {}
      for ci, ch in ipairs(chunks) do
         local start = #prefix
         for _, ev in ipairs(ch) do prefix[#prefix + 1] = ev end
         local got, err = rt.push(mon, copy(ch))
         local all, err2 = rt.analyze(pol, copy(prefix), copy(p.raw.parameters))
         if not got or not all then
            diff[#diff + 1] = ("chunk %d: error monitor=%s analyze=%s"):format(ci, tostring(err and err.message),
               tostring(err2 and err2.message))
            break
         end
         -- expected: analyze violations binding a pending event, with a new key
         local want = {}
         local new_keys = {}
         for _, x in ipairs(canon_all(all)) do
            local pending = false
            for _, idx in pairs(x.v.bindings or {}) do
               if idx >= start then pending = true end
            end
            if pending and not seen[x.key] then want[#want + 1] = x.text; new_keys[x.key] = true end
         end
         for k in pairs(new_keys) do seen[k] = true end
         local gottexts = {}
         for _, x in ipairs(canon_all(got)) do gottexts[#gottexts + 1] = x.text end
         table.sort(want); table.sort(gottexts)
         local a, b = table.concat(want, "\n"), table.concat(gottexts, "\n")
         if a ~= b then
            diff[#diff + 1] = ("chunk %d (events %d..%d): expected\n%s\ngot\n%s"):format(ci, start, #prefix - 1, a, b)
         end
      end
      if #diff == 0 then
         print(("ok %d - %s round %d (%d chunks)"):format(n, case.id, r, #chunks))
      else
         failed = failed + 1
         print(("not ok %d - %s round %d"):format(n, case.id, r))
         for _, d in ipairs(diff) do for l in (d .. "\n"):gmatch("(.-)\n") do print("#   " .. l) end end
      end
   end
end
print(("# %d of %d passed"):format(n - failed, n))
os.exit(failed == 0 and 0 or 1)

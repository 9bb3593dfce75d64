-- Conformance runner: runs every case of the shared conformance suite through the runtime
-- in-process (rt.load / rt.analyze / rt.monitor + rt.push / rt.render) and prints TAP.
--
--   lua5.4 tests/conformance/run.lua CASES_DIR [ID-SUBSTRING...]
--   (CONFORMANCE_SHOW_LUA=1 also prints the generated Lua of each failing case;
--    CONFORMANCE_BUDGET=<million VM instructions> per case, default 2000)
--
-- Each case is converted to the canonical form of the suite's README (event arguments become
-- {"$event", "trace_idx", "$path"?} placeholders, only whole-event and substring addresses are
-- kept, sorted) and compared as a multiset (numbers by value). Load errors compare line and
-- column (and kind when the diagnostic carries one), runtime and input errors the fact of the
-- error. A per-feature and per-source summary follows as `#` comments; the exit status is
-- non-zero when any case fails.

local script_dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = script_dir .. "/?.lua;" .. "lua/runtime/?.lua;lua/runtime/?/init.lua;lua/?.lua;" .. package.path
package.cpath = "build/lua/?.so;" .. package.cpath

local cjson = require "cjson"
local canon = require "canon"

local cases_dir = arg[1] or "../shared/conformance/cases"
local BUDGET_MILLIONS = tonumber(os.getenv("CONFORMANCE_BUDGET") or "") or 2000 -- million VM instructions
local filters = {}
for i = 2, #arg do filters[#filters + 1] = arg[i] end

local function list_cases(dir)
   local p = assert(io.popen("ls -1 '" .. dir:gsub("'", "'\\''") .. "'"))
   local names = {}
   for name in p:lines() do
      if name:match("%.json$") then names[#names + 1] = name end
   end
   p:close()
   table.sort(names)
   return names
end

local function read_file(path)
   local f = assert(io.open(path, "rb"))
   local s = f:read("a")
   f:close()
   return s
end

local function selected(id)
   if #filters == 0 then return true end
   for _, f in ipairs(filters) do
      if id:find(f, 1, true) then return true end
   end
   return false
end

-- rt is loaded lazily so that a runtime that does not load yet still yields TAP output.
local rt, rt_err
do
   local ok, mod = pcall(require, "rt")
   if ok then rt = mod else rt_err = tostring(mod) end
end

local names = list_cases(cases_dir)
local cases = {}
for _, name in ipairs(names) do
   local text = read_file(cases_dir .. "/" .. name)
   local case = cjson.decode(text)
   -- traces, chunks and parameters are decoded like the worker decodes requests (rt.trace.decode
   -- keeps integral float literals such as 10000.0 floats); expectations with plain cjson
   local okt, trace = pcall(require, "rt.trace")
   if okt and trace.decode then
      local okd, raw = pcall(trace.decode, text)
      if okd then
         case.trace, case.chunks, case.parameters = raw.trace, raw.chunks, raw.parameters
      else
         case.decode_error = tostring(raw) -- reported as the case's failure below
      end
   end
   case.id = case.id or name:gsub("%.json$", "")
   if selected(case.id) then cases[#cases + 1] = case end
end

print("1.." .. #cases)
local by_feature, by_source = {}, {}
local failed = 0

local function tally(t, k, ok)
   local e = t[k] or { pass = 0, fail = 0 }
   t[k] = e
   if ok then e.pass = e.pass + 1 else e.fail = e.fail + 1 end
end

for n, case in ipairs(cases) do
   local ok, diff
   if not rt then
      ok, diff = false, { "rt does not load: " .. (rt_err:match("^[^\n]*")) }
   elseif case.decode_error then
      ok, diff = false, { "rt.trace.decode raised: " .. case.decode_error }
   else
      -- a runaway case must not hang the suite: an instruction budget per case (rt lets errors
      -- mentioning "vigil-limit" through, so this one reaches the pcall below)
      local ticks = 0
      debug.sethook(function()
         ticks = ticks + 1
         if ticks > BUDGET_MILLIONS then error("vigil-limit: case exceeded its instruction budget", 0) end
      end, "", 1000000)
      local pok, r1, r2 = pcall(canon.run_case, rt, case)
      debug.sethook()
      if not pok then
         ok, diff = false, { "runner/runtime raised a raw Lua error: " .. tostring(r1) }
      else
         ok, diff = r1, r2
      end
   end
   if ok then
      print(("ok %d - %s"):format(n, case.id))
   else
      failed = failed + 1
      print(("not ok %d - %s"):format(n, case.id))
      print("#   feature: " .. tostring(case.feature) .. ", source: " .. tostring(case.source))
      for _, line in ipairs(diff or {}) do
         for l in (tostring(line) .. "\n"):gmatch("(.-)\n") do print("#   " .. l) end
      end
      if os.getenv("CONFORMANCE_SHOW_LUA") == "1" then
         -- the generated Lua, line N = policy line N (debug aid)
         local okc, compiler = pcall(require, "compiler")
         local lua = okc and compiler.compile(case.policy, "=policy:" .. case.id)
         if type(lua) == "string" then
            local i = 0
            for l in (lua):gmatch("([^\n]*)\n?") do
               i = i + 1
               if i > 200 then break end
               print(("#   lua %3d | %s"):format(i, l))
            end
         end
      end
   end
   tally(by_feature, case.feature or "?", ok)
   tally(by_source, case.source or "?", ok)
end

local function summary(title, t)
   local keys = {}
   for k in pairs(t) do keys[#keys + 1] = k end
   table.sort(keys)
   print("# " .. title)
   for _, k in ipairs(keys) do
      local e = t[k]
      print(("#   %-24s %3d/%-3d%s"):format(k, e.pass, e.pass + e.fail, e.fail > 0 and "  FAIL" or ""))
   end
end
summary("by feature:", by_feature)
summary("by source:", by_source)
print(("# %d of %d cases passed"):format(#cases - failed, #cases))
os.exit(failed == 0 and 0 or 1)

-- analyze_bench.lua — the engine alone: rt.load + rt.analyze in-process (no HTTP, no IPC), so
-- the /v1/check figures can be split into engine time and transport time.
--   LUA_PATH='lua/runtime/?.lua;lua/runtime/?/init.lua;lua/?.lua;;' \
--   lua5.4 bench/analyze_bench.lua DIR RULE... -- DIR holds traceN.json (from gen_trace.lua)
-- Prints "analyze rule=R events=N median_ms=M decode_ms=D violations=V" per rule and size
-- (decode_ms: cjson.decode of the trace text, which the worker also pays).
local dir = arg[1]
local ok, rt = pcall(require, "rt")
if not ok then
   print("n/a: require 'rt' failed: " .. (tostring(rt):gsub("\n.*", "")))
   return
end
local cjson = require "cjson"
local clock = os.clock
local function median(t)
   table.sort(t)
   local n = #t
   return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end
local function slurp(p)
   local f = assert(io.open(p, "rb"))
   local s = f:read("a")
   f:close()
   return s
end
for i = 2, #arg do
   local rule = arg[i]
   local pol, err = rt.load(slurp("bench/rules/" .. rule .. ".inv"), "invariant", rule)
   if not pol then
      print(string.format("n/a: %s does not load: %s", rule, tostring(err and err.message)))
   else
      for _, n in ipairs({ 10, 100, 1000, 10000 }) do
         local text = slurp(dir .. "/trace" .. n .. ".json")
         local runs = n == 10000 and 3 or 7
         local times, dtimes, nv = {}, {}, 0
         for r = 1, runs do
            local t0 = clock()
            local trace = cjson.decode(text)
            local t1 = clock()
            local vs, aerr = rt.analyze(pol, trace, nil)
            local t2 = clock()
            if not vs then
               print(string.format("n/a: %s @ %d: %s", rule, n, tostring(aerr and aerr.message)))
               break
            end
            nv = #vs
            dtimes[r], times[r] = (t1 - t0) * 1e3, (t2 - t1) * 1e3
         end
         if #times == runs then
            print(string.format("analyze rule=%s events=%d median_ms=%.2f decode_ms=%.2f violations=%d",
               rule, n, median(times), median(dtimes), nv))
         end
      end
   end
end

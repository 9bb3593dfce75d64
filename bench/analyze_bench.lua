-- analyze_bench.lua — the engine alone: rt.load + rt.analyze in-process (no HTTP, no IPC), so
-- the /v1/check figures can be split into engine time and transport time.
--   LUA_PATH='lua/runtime/?.lua;lua/runtime/?/init.lua;lua/?.lua;;' \
--   lua5.4 bench/analyze_bench.lua DIR RULE... -- DIR holds traceN.json (from gen_trace.lua)
-- Prints "analyze rule=R events=N median_ms=M decode_ms=D gc_ms=G handle_ms=H violations=V" per
-- rule and size:
--   median_ms  rt.analyze (normalisation + evaluation) of a decoded trace
--   decode_ms  trace.decode of the trace text, which the worker also pays
--   gc_ms      the full collection after the request: like the worker (lua/runtime/worker.lua),
--              a request of 64 KiB or more runs with the collector stopped and ends with one
--              full collection; smaller ones run with the incremental collector (gc_ms 0)
--   handle_ms  the whole worker op in-process: worker.handle of the `check` request that
--              vigild sends (decode, analyze, render, encode, collection); /v1/check minus this
--              is the transport (HTTP, the host's scan, IPC) plus the sandbox's instruction hook
local dir = arg[1]
local ok, rt = pcall(require, "rt")
if not ok then
   print("n/a: require 'rt' failed: " .. (tostring(rt):gsub("\n.*", "")))
   return
end
local trace = require "rt.trace"
local cjson = require "cjson"
local have_worker, worker = pcall(require, "worker")
local clock = os.clock
local GC_BIG = 64 * 1024
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
   local src = slurp("bench/rules/" .. rule .. ".inv")
   local pol, err = rt.load(src, "invariant", rule)
   if not pol then
      print(string.format("n/a: %s does not load: %s", rule, tostring(err and err.message)))
   else
      for _, n in ipairs({ 10, 100, 1000, 10000 }) do
         local text = slurp(dir .. "/trace" .. n .. ".json")
         local big = #text >= GC_BIG
         local runs = n == 10000 and 5 or 9
         local times, dtimes, gtimes, htimes, nv = {}, {}, {}, {}, 0
         local req = '{"op":"check","format":"native","language":"invariant","policy":'
            .. cjson.encode(src) .. ',"trace":' .. text .. "}"
         for r = 1, runs do
            collectgarbage()
            if big then collectgarbage("stop") end
            local t0 = clock()
            local raw = trace.decode(text)
            local t1 = clock()
            local vs, aerr = rt.analyze(pol, raw, nil)
            local t2 = clock()
            if big then collectgarbage("restart"); collectgarbage() end
            local t3 = clock()
            if not vs then
               print(string.format("n/a: %s @ %d: %s", rule, n, tostring(aerr and aerr.message)))
               break
            end
            nv = #vs
            raw, vs = nil, nil
            dtimes[r], times[r], gtimes[r] = (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3
            if have_worker then
               collectgarbage()
               local h0 = clock()
               worker.handle(req)
               htimes[r] = (clock() - h0) * 1e3
            end
         end
         if #times == runs then
            print(string.format("analyze rule=%s events=%d median_ms=%.2f decode_ms=%.2f gc_ms=%.2f handle_ms=%s violations=%d",
               rule, n, median(times), median(dtimes), median(gtimes),
               have_worker and string.format("%.2f", median(htimes)) or "n/a", nv))
         end
      end
   end
end

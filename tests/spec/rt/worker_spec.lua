-- worker.lua: large requests run with the collector stopped and owe a full collection, run by
-- worker.after (the C loop calls it once the answer is written; worker.handle at once) or else
-- at the next request;
-- the answers are the same as for small requests, and the collector is always running again
-- afterwards (also when a previous request left it stopped, as a limit error raised out of
-- handle would).
local worker = require "worker"
local cjson = require "cjson"

local POLICY = 'raise "secret" if:\n    (out: ToolOutput)\n    "BEGIN RSA PRIVATE KEY" in out.content\n'

-- a trace of n events (a call and its output per two events), every 7th output has the key
local function trace_json(n)
   local parts = {}
   for i = 1, n // 2 do
      parts[#parts + 1] = cjson.encode({ role = "assistant", content = cjson.null, tool_calls = {
         { id = "c" .. i, type = "function", ["function"] = { name = "read", arguments = { path = "f" .. i } } } } })
      local content = (i % 7 == 0) and "-----BEGIN RSA PRIVATE KEY----- " .. i or ("plain output " .. i)
      parts[#parts + 1] = cjson.encode({ role = "tool", tool_call_id = "c" .. i, content = content })
   end
   return "[" .. table.concat(parts, ",") .. "]"
end

local function check(trace_text, extra)
   return '{"op":"check","format":"native","policy":' .. cjson.encode(POLICY) .. ',"trace":'
      .. trace_text .. (extra or "") .. '}'
end

describe("worker large requests", function()
   it("answers a large check like a small one and leaves the collector running", function()
      local big = trace_json(2000)
      assert.is_true(#big > 64 * 1024)
      local r = cjson.decode(worker.handle(check(big)))
      assert.is_true(collectgarbage("isrunning"))
      assert.is_true(r.ok)
      assert.are.equal(142, #r.result.violations)
      -- the same trace, answered again through the small-request path event by event count:
      -- the first 140 events hold 10 violations whichever path runs
      local small = trace_json(140)
      assert.is_true(#small < 64 * 1024)
      local s = cjson.decode(worker.handle(check(small)))
      assert.are.equal(10, #s.result.violations)
      for i = 1, 10 do
         assert.are.same(s.result.violations[i], r.result.violations[i])
      end
   end)

   it("answers a malformed large trace with the same error as a small one", function()
      local bad = trace_json(2000):gsub('"role":"tool"', '"role":5', 1)
      local r = cjson.decode(worker.handle(check(bad)))
      assert.is_true(collectgarbage("isrunning"))
      assert.is_false(r.ok)
      assert.are.equal("trace_invalid", r.error.code)
      assert.are.equal(1, r.error.index)
   end)

   it("restarts a collector that a previous request left stopped", function()
      collectgarbage("stop")
      local r = cjson.decode(worker.handle('{"op":"ping"}'))
      assert.is_true(r.ok)
      assert.is_true(collectgarbage("isrunning"))
      collectgarbage("stop")
      worker.handle(check(trace_json(2000)))
      assert.is_true(collectgarbage("isrunning"))
   end)

   it("serve leaves the full collection of a large request to worker.after, or to the next request", function()
      local big = check(trace_json(20000))
      collectgarbage()
      local out, owed = worker.serve(big)
      assert.is_true(owed, "a large request owes its collection")
      assert.is_false(collectgarbage("isrunning"), "stopped while the collection is owed")
      local heap = collectgarbage("count")
      assert.is_true(worker.after())
      assert.is_true(collectgarbage("count") < heap / 2, heap .. " KiB -> " .. collectgarbage("count"))
      assert.is_false(worker.after(), "nothing owed twice")
      assert.is_true(cjson.decode(out).ok)
      -- after not called: the next request, small or large, runs the collection first
      owed = select(2, worker.serve(big))
      assert.is_true(owed)
      heap = collectgarbage("count")
      out, owed = worker.serve('{"op":"ping"}')
      assert.is_false(owed)
      assert.is_true(collectgarbage("count") < heap / 2, heap .. " KiB -> " .. collectgarbage("count"))
      assert.is_false(worker.after())
      assert.is_true(cjson.decode(out).ok)
      assert.is_true(collectgarbage("isrunning"))
      -- handle: the collection included, nothing owed afterwards
      out = worker.handle(big)
      assert.is_true(cjson.decode(out).ok)
      assert.is_false(worker.after())
      -- a small request owes nothing
      out, owed = worker.serve(check(trace_json(10)))
      assert.is_true(cjson.decode(out).ok)
      assert.is_false(owed)
   end)

   it("answers a request that is not JSON with bad_request and no source position", function()
      for _, payload in ipairs { "{", '{"op": "check", "trace": ' .. string.rep("[", 5000) .. string.rep("]", 5000) .. "}" } do
         local r = cjson.decode(worker.handle(payload))
         assert.is_false(r.ok)
         assert.equal("bad_request", r.error.code)
         assert.matches("^request is not valid JSON: ", r.error.message)
         assert.is_nil(r.error.message:find("%.lua:%d"), r.error.message)
      end
   end)

   it("says the worker is stateful once it served a request that keeps state (not before)", function()
      package.loaded.worker = nil
      local fresh = require "worker"
      package.loaded.worker = worker
      for _, req in ipairs { '{"op":"ping"}', check(trace_json(4)), check(trace_json(2000)),
         '{"op":"compile","policy":' .. cjson.encode(POLICY) .. '}', '{"op":"nonsense"}' } do
         local _, _, stateful = fresh.serve(req)
         fresh.after()
         assert.is_false(stateful, req:sub(1, 40))
      end
      local out, _, stateful = fresh.serve('{"op":"policy_put","pid":"p","language":"invariant","policy":'
         .. cjson.encode(POLICY) .. '}')
      assert.is_true(cjson.decode(out).ok)
      assert.is_true(stateful)
      _, _, stateful = fresh.serve('{"op":"ping"}')
      assert.is_true(stateful, "stays stateful")
   end)
end)

-- The worker zygote from outside: the lean program build/vigil-zygote (none of the host's
-- libraries); killed with SIGKILL, vigild notices, logs it, starts a new one (a posix_spawn of
-- that program: safe although vigild runs threads by then), and both new and existing sessions
-- keep working. Owner: C core.
local H = require "tests.e2e.helper"

local POLICY = 'raise "user msg" if:\n    (m: Message)\n    m.role == "user"'
local TRACE = { { role = "user", content = "hi" }, { role = "assistant", content = "yo" } }

local function comm(pid)
   return (H.slurp("/proc/" .. pid .. "/comm") or ""):gsub("%s+$", "")
end

-- the live zygote(s) under vigild
local function zygotes(srv)
   local out = {}
   for _, p in ipairs(H.descendants(srv.pid)) do
      if comm(p) == "vigil-zygote" and H.alive(p) then out[#out + 1] = p end
   end
   return out
end

local function wait_for(pred, seconds)
   for _ = 1, math.floor(seconds / 0.05) do
      local v = pred()
      if v then return v end
      H.sleep(0.05)
   end
   return pred()
end

-- VmRSS of pid in kB (nil if unreadable)
local function rss(pid)
   return tonumber((H.slurp("/proc/" .. pid .. "/status") or ""):match("\nVmRSS:%s+(%d+)"))
end

describe("the worker zygote", function()
   local srv
   setup(function()
      srv = H.start { args = { "--enable-eval" } }
   end)
   teardown(function()
      if srv then srv:stop() end
   end)

   it("is one process, a child of vigild", function()
      local z = zygotes(srv)
      assert.equal(1, #z)
      assert.equal(srv.pid, tonumber((H.slurp("/proc/" .. z[1] .. "/stat") or ""):match("^%d+ %b() %a (%d+)")))
   end)

   it("runs the lean program next to vigild, which maps none of the host's libraries", function()
      local z = zygotes(srv)[1]
      local sid = srv:session()
      local w = srv:worker_pid(sid)
      local dir = H.sh("readlink -f " .. H.quote(H.bin)):gsub("%s+$", ""):match("^(.*)/[^/]*$")
      for _, p in ipairs { z, w } do
         local exe = H.sh("readlink /proc/" .. p .. "/exe"):gsub("%s+$", "")
         assert.equal(dir .. "/vigil-zygote", exe)
         local maps = H.slurp("/proc/" .. p .. "/maps")
         assert.truthy(maps and #maps > 0, "no maps for " .. p)
         for _, lib in ipairs { "libmicrohttpd", "libgnutls", "libsqlite3", "libjansson", "libp11-kit" } do
            assert.falsy(maps:find(lib, 1, true), lib .. " is mapped in " .. p)
         end
      end
      srv:delete("/v1/sessions/" .. sid)
   end)

   it("gives every session's worker its own math.random seed", function()
      local seen, n = {}, 0
      for _ = 1, 3 do
         local sid = srv:session()
         local st, j = srv:post("/v1/sessions/" .. sid .. "/eval",
            { code = "return math.random(1, 1 << 30) .. ',' .. math.random(1, 1 << 30)" })
         assert.equal(200, st)
         if not seen[j.value] then n = n + 1 end
         seen[j.value] = true
         srv:delete("/v1/sessions/" .. sid)
      end
      assert.equal(3, n)
   end)

   it("leaves session workers that give their memory back when idle", function()
      if H.sh("ldd " .. H.quote(H.bin) .. " 2>/dev/null"):find("libasan", 1, true) then
         return pending("the sanitizer allocator keeps freed memory in quarantine")
      end
      local sid = srv:session()
      local w = srv:worker_pid(sid)
      srv:post("/v1/sessions/" .. sid .. "/eval", { code = "return 1" })
      H.sleep(0.8)
      local r0 = rss(w)
      local st = srv:post("/v1/sessions/" .. sid .. "/eval",
         { code = "local t = {} for i = 1, 2500 do t[i] = string.rep('x', 10000) .. i end return #t" })
      assert.equal(200, st)
      local r1 = rss(w)
      assert.truthy(r0 and r1 and r1 > r0 + 10240, tostring(r0) .. " -> " .. tostring(r1))
      local r2 = wait_for(function()
         local r = rss(w)
         return r and r < r0 + 2048 and r or nil
      end, 5)
      assert.truthy(r2, "VmRSS stayed at " .. tostring(rss(w)) .. " kB (was " .. r0 .. " kB)")
      srv:delete("/v1/sessions/" .. sid)
   end)

   it("killed with SIGKILL is restarted: new and existing sessions keep working", function()
      local old_sid = srv:session()
      local st = srv:post("/v1/sessions/" .. old_sid .. "/policies", { policy = POLICY, id = "p" })
      assert.equal(201, st)
      local z1 = zygotes(srv)[1]
      assert.is_number(z1)
      os.execute("kill -KILL " .. z1)
      assert.truthy(wait_for(function() return not H.alive(z1) end, 5), "the zygote did not die")

      -- a new session right away: vigild restarts the zygote on demand
      local st2, j = srv:post("/v1/sessions", {})
      assert.equal(201, st2)
      assert.is_number(j.worker_pid)
      local est, ej = srv:post("/v1/sessions/" .. j.id .. "/eval", { code = "return 6 * 7" })
      assert.equal(200, est)
      assert.equal(42, ej.value)

      -- the existing session: its worker outlived the zygote (or is replayed)
      est, ej = srv:post("/v1/sessions/" .. old_sid .. "/eval", { code = "return 'still here'" })
      assert.equal(200, est)
      assert.equal("still here", ej.value)
      local ast, aj = srv:post("/v1/sessions/" .. old_sid .. "/policies/p/analyze", { trace = TRACE })
      assert.equal(200, ast)
      assert.equal(1, #aj.violations)

      local z = zygotes(srv)
      assert.equal(1, #z)
      assert.are_not.equal(z1, z[1])
      local rst, rj = srv:get("/readyz")
      assert.equal(200, rst)
      assert.is_true(rj.ready)
      local _, _, metrics = srv:get("/metrics")
      assert.equal(1, tonumber(metrics:match("vigil_zygote_restarts_total (%d+)")))
      local log = srv:log()
      assert.truthy(log:find("worker zygote died (zygote " .. z1 .. " killed by signal 9; restarted as zygote " .. z[1], 1, true), log)
   end)

   it("is restarted by the supervisor even when no request asks for a worker", function()
      local z1 = zygotes(srv)[1]
      assert.is_number(z1)
      os.execute("kill -KILL " .. z1)
      local z2 = wait_for(function()
         local z = zygotes(srv)
         return z[1] ~= nil and z[1] ~= z1 and z[1] or nil
      end, 5)
      assert.is_number(z2)
      local sid = srv:session()
      local est, ej = srv:post("/v1/sessions/" .. sid .. "/eval", { code = "return 1" })
      assert.equal(200, est)
      assert.equal(1, ej.value)
      local _, _, metrics = srv:get("/metrics")
      assert.equal(2, tonumber(metrics:match("vigil_zygote_restarts_total (%d+)")))
   end)

   it("a zygote that keeps dying does not take vigild down", function()
      for _ = 1, 3 do
         local z = zygotes(srv)[1]
         if z then os.execute("kill -KILL " .. z) end
         local st = srv:post("/v1/sessions", {})
         assert.equal(201, st)
      end
      assert.truthy(H.alive(srv.pid))
      local sid = srv:session()
      local est = srv:post("/v1/sessions/" .. sid .. "/eval", { code = "return 1" })
      assert.equal(200, est)
   end)

   it("leaves no zygote behind when vigild stops", function()
      local z = zygotes(srv)
      assert.equal(1, #z)
      assert.is_true(srv:stop(nil, nil, true))
      assert.truthy(wait_for(function() return not H.alive(z[1]) end, 5), "zygote " .. z[1] .. " outlived vigild")
      srv:stop()
      srv = nil
   end)
end)

describe("vigild --idle-trim-ms 0", function()
   local srv
   setup(function()
      srv = H.start { args = { "--enable-eval", "--idle-trim-ms", "0" } }
   end)
   teardown(function()
      if srv then srv:stop() end
   end)

   it("leaves a worker's memory where its last request left it", function()
      local sid = srv:session()
      local w = srv:worker_pid(sid)
      srv:post("/v1/sessions/" .. sid .. "/eval", { code = "return 1" })
      local r0 = rss(w)
      local st = srv:post("/v1/sessions/" .. sid .. "/eval",
         { code = "local t = {} for i = 1, 2500 do t[i] = string.rep('x', 10000) .. i end return #t" })
      assert.equal(200, st)
      H.sleep(1.5) -- three times the default trim delay
      local r1 = rss(w)
      assert.truthy(r0 and r1 and r1 > r0 + 10240, tostring(r0) .. " -> " .. tostring(r1))
   end)
end)

describe("a worker whose jail fails (test hook VIGIL_TEST_JAIL_FAIL_STEP)", function()
   local srv
   setup(function()
      srv = H.start { args = { "--enable-eval" }, db = ":memory:",
         env = { VIGIL_TEST_JAIL_FAIL_STEP = "caps" } }
   end)
   teardown(function()
      if srv then srv:stop() end
   end)

   it("makes session creation fail at once with a JSON 503, keeping no session", function()
      local t0 = os.time()
      local st, j, raw, hdr = srv:post("/v1/sessions", { id = "doomed" })
      assert.truthy(os.time() - t0 <= 5)
      assert.equal(503, st, raw)
      H.assert_match({ error = { code = "worker_unavailable", message = H.ANY } }, j)
      assert.truthy(hdr:lower():find("retry%-after"))
      st = srv:get("/v1/sessions/doomed")
      assert.equal(404, st)
   end)

   it("answers a stateless check with a JSON 503 naming the failed step", function()
      local st, j, raw = srv:post("/v1/check",
         { policy = 'raise "x" if:\n    (m: Message)\n    m.role == "user"', trace = H.A0 })
      assert.equal(503, st, raw)
      assert.equal("worker_unavailable", j.error.code)
      assert.truthy(j.error.message:find("jail: caps", 1, true), j.error.message)
   end)

   it("says why in the log and in /readyz, and vigild stays up", function()
      local st, j = srv:get("/readyz")
      assert.equal(503, st)
      H.assert_match({ ready = false, worker_spawn = false }, j)
      local log = srv:log()
      assert.truthy(log:find("worker jail failed: jail: caps", 1, true), log)
      assert.truthy(log:find("not created, no worker", 1, true), log)
      assert.truthy(H.alive(srv.pid))
      st = srv:get("/healthz")
      assert.equal(200, st)
   end)
end)

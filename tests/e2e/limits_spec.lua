-- Limits enforced by the host: the per-request watchdog (504, the worker is killed and rebuilt)
-- and the limit on evaluations in flight (429 with Retry-After).
local H = require "tests.e2e.helper"

local POLICY = 'raise "user msg" if:\n    (m: Message)\n    m.role == "user"'

describe("host limits", function()
   local srv, sid
   setup(function()
      srv = H.start { args = { "--enable-eval", "--deadline-ms", "1000", "--max-concurrent", "1",
         "--max-queue", "0" } }
      sid = srv:session()
   end)
   teardown(function() if srv then srv:stop() end end)

   it("kills a worker stuck in C past the deadline (504) and rebuilds the session", function()
      assert.equal(201, (srv:post("/v1/sessions/" .. sid .. "/policies", { policy = POLICY, id = "p" })))
      local w = srv:worker_pid(sid)
      -- Lua pattern backtracking runs inside string.find, where no hook fires
      local st, j = srv:post("/v1/sessions/" .. sid .. "/eval", { code =
         'local s = string.rep("a", 40) return string.find(s, string.rep("a*", 30) .. "c")' })
      assert.equal(504, st)
      assert.equal("deadline_exceeded", j.error.code)
      for _ = 1, 40 do
         if not H.alive(w) then break end
         H.sleep(0.05)
      end
      assert.is_false(H.alive(w))
      st, j = srv:post("/v1/sessions/" .. sid .. "/policies/p/analyze",
         { trace = { { role = "user", content = "hi" } } })
      assert.equal(200, st)
      assert.equal(1, #j.violations)
      local _, _, m = srv:get("/metrics")
      assert.truthy(tonumber(m:match("vigil_worker_timeouts_total (%d+)")) >= 1)
   end)

   it("answers 429 with Retry-After when every evaluation slot is taken", function()
      local other = srv:session()
      local f = assert(io.open(srv.dir .. "/busy.json", "wb"))
      f:write(H.encode { code = "local x = 0 for i = 1, 6e7 do x = x + i end return 1" })
      f:close()
      local out = srv.dir .. "/busy.status"
      os.execute(string.format("curl -s -o /dev/null -w '%%{http_code}' -X POST --data-binary @%s " ..
         "%s/v1/sessions/%s/eval > %s 2>/dev/null &", H.quote(srv.dir .. "/busy.json"), srv.base,
         other, H.quote(out)))
      H.sleep(0.15)
      local st, j, _, hdr = srv:post("/v1/sessions/" .. sid .. "/eval", { code = "return 1" })
      assert.equal(429, st)
      assert.equal("busy", j.error.code)
      assert.truthy(hdr:lower():find("retry%-after: 1"))
      st = srv:post("/v1/check", { policy = POLICY, trace = { { role = "user", content = "x" } } })
      assert.equal(429, st)
      for _ = 1, 100 do
         if (H.slurp(out) or "") ~= "" then break end
         H.sleep(0.05)
      end
      local status = H.slurp(out)
      assert.truthy(status == "200" or status == "504", tostring(status))
      st = srv:post("/v1/sessions/" .. sid .. "/eval", { code = "return 1" })
      assert.equal(200, st)
   end)
end)

describe("rate limits", function()
   local srv
   setup(function() srv = H.start { args = { "--rate-limit", "5" }, db = ":memory:" } end)
   teardown(function() if srv then srv:stop() end end)

   it("answers 429 with Retry-After beyond --rate-limit requests per second per address", function()
      local limited, hdr_seen = 0, nil
      for _ = 1, 20 do
         local st, j, _, hdr = srv:get("/v1/sessions/nosuch")
         if st == 429 then
            limited = limited + 1
            assert.equal("rate_limited", j.error.code)
            hdr_seen = hdr
         else
            assert.equal(404, st)
         end
      end
      assert.truthy(limited >= 5, "limited " .. limited)
      assert.truthy(hdr_seen:lower():find("retry%-after: %d+"))
      for _ = 1, 10 do
         assert.equal(200, (srv:get("/healthz")))
      end
      H.sleep(1.2)
      assert.equal(404, (srv:get("/v1/sessions/nosuch")))
   end)
end)

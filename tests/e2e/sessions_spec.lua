-- Sessions: create/read/delete, ids, TTL, idle eviction, limits, worker jail from outside,
-- supervision (SIGKILL), process hygiene.
local H = require "tests.e2e.helper"

local POLICY = 'raise "user msg" if:\n    (m: Message)\n    m.role == "user"'
local TRACE = { { role = "user", content = "hi" }, { role = "assistant", content = "yo" } }

describe("sessions", function()
   local srv
   setup(function()
      srv = H.start { args = { "--enable-eval" } }
   end)
   teardown(function()
      if srv then srv:stop() end
   end)

   it("creates, reads and deletes a session", function()
      local st, j = srv:post("/v1/sessions", {})
      assert.equal(201, st)
      assert.truthy(j.id:match("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$"), j.id)
      assert.truthy(j.token:match("^%x+$") and #j.token == 32)
      assert.equal(3600, j.ttl)
      assert.is_number(j.worker_pid)
      assert.truthy(j.expires_at > j.created_at)
      local sid = j.id
      st, j = srv:get("/v1/sessions/" .. sid)
      assert.equal(200, st)
      H.assert_match({ id = sid, ttl = 3600, policies = 0, monitors = 0, worker_pid = H.ANY }, j)
      assert.is_nil(j.token)
      st, j = srv:delete("/v1/sessions/" .. sid)
      assert.equal(200, st)
      H.assert_match({ id = sid, deleted = true }, j)
      st, j = srv:get("/v1/sessions/" .. sid)
      assert.equal(404, st)
      assert.equal("not_found", j.error.code)
      st = srv:delete("/v1/sessions/" .. sid)
      assert.equal(404, st)
   end)

   it("accepts a client-chosen id and ttl, and refuses a duplicate with 409", function()
      local st, j = srv:post("/v1/sessions", { id = "client-1", ttl = 120 })
      assert.equal(201, st)
      assert.equal("client-1", j.id)
      assert.equal(120, j.ttl)
      st, j = srv:post("/v1/sessions", { id = "client-1" })
      assert.equal(409, st)
      assert.equal("conflict", j.error.code)
      assert.equal(200, (srv:delete("/v1/sessions/client-1")))
   end)

   it("accepts an empty body", function()
      local st, j = srv:request("POST", "/v1/sessions")
      assert.equal(201, st)
      srv:delete("/v1/sessions/" .. j.id)
   end)

   it("runs the worker in its own pid, net and mnt namespaces with seccomp", function()
      local sid = srv:session()
      local w = srv:worker_pid(sid)
      assert.is_number(w)
      for _, ns in ipairs { "pid", "net", "mnt", "ipc", "uts" } do
         local mine = H.sh("readlink /proc/" .. srv.pid .. "/ns/" .. ns)
         local its = H.sh("readlink /proc/" .. w .. "/ns/" .. ns)
         assert.truthy(its:match(ns .. ":%[%d+%]"), ns .. ": " .. its)
         assert.are_not.equal(mine, its, ns)
      end
      local status = H.slurp("/proc/" .. w .. "/status")
      assert.truthy(status:find("\nSeccomp:%s+2\n"))
      assert.truthy(status:find("\nNoNewPrivs:%s+1\n"))
      srv:delete("/v1/sessions/" .. sid)
   end)

   it("survives a worker killed with SIGKILL: the next request runs on a fresh worker", function()
      local sid = srv:session()
      local st = srv:post("/v1/sessions/" .. sid .. "/policies", { policy = POLICY, id = "p" })
      assert.equal(201, st)
      local w1 = srv:worker_pid(sid)
      os.execute("kill -KILL " .. w1)
      H.sleep(0.1)
      local j
      st, j = srv:post("/v1/sessions/" .. sid .. "/eval", { code = "return 6 * 7" })
      assert.equal(200, st)
      assert.equal(42, j.value)
      local w2 = srv:worker_pid(sid)
      assert.is_number(w2)
      assert.are_not.equal(w1, w2)
      -- the stored policy was replayed into the fresh worker
      st, j = srv:post("/v1/sessions/" .. sid .. "/policies/p/analyze", { trace = TRACE })
      assert.equal(200, st)
      assert.equal(1, #j.violations)
      -- a kill in the middle of nothing, then a policy route first
      os.execute("kill -KILL " .. w2)
      H.sleep(0.1)
      st, j = srv:post("/v1/sessions/" .. sid .. "/policies/p/analyze", { trace = TRACE })
      assert.equal(200, st)
      assert.equal(1, #j.violations)
      local _, _, metrics = srv:get("/metrics")
      assert.truthy(tonumber(metrics:match("vigil_worker_deaths_total (%d+)")) >= 2)
      assert.truthy(H.alive(srv.pid))
      srv:delete("/v1/sessions/" .. sid)
   end)

   it("kills the worker when the session is deleted", function()
      local sid = srv:session()
      local w = srv:worker_pid(sid)
      assert.truthy(H.alive(w))
      srv:delete("/v1/sessions/" .. sid)
      local gone = false
      for _ = 1, 40 do
         if not H.alive(w) then gone = true break end
         H.sleep(0.05)
      end
      assert.is_true(gone)
   end)

   it("creates and deletes 100 sessions without leaking processes", function()
      H.sleep(0.2)
      -- the zygote may keep one jailed worker forked ahead, hence the +-1 below
      local base = #H.descendants(srv.pid)
      local ids, pids, seen = {}, {}, {}
      for i = 1, 100 do
         local st, j = srv:post("/v1/sessions", { id = "bulk-" .. i })
         assert.equal(201, st)
         ids[i] = j.id
         pids[i] = math.tointeger(j.worker_pid)
         assert.is_nil(seen[pids[i]], "worker pids are distinct")
         seen[pids[i]] = true
      end
      local desc = {}
      for _, p in ipairs(H.descendants(srv.pid)) do desc[p] = true end
      for _, p in ipairs(pids) do
         assert.is_true(desc[p] == true and H.alive(p), "worker " .. p .. " is a live descendant")
      end
      local n = #H.descendants(srv.pid)
      assert.truthy(n >= base + 99 and n <= base + 101, ("%d descendants, base %d"):format(n, base))
      for _, id in ipairs(ids) do
         assert.equal(200, (srv:delete("/v1/sessions/" .. id)))
      end
      local alive
      for _ = 1, 60 do
         alive = 0
         for _, p in ipairs(pids) do
            if H.alive(p) then alive = alive + 1 end
         end
         if alive == 0 then break end
         H.sleep(0.05)
      end
      assert.equal(0, alive)
      n = #H.descendants(srv.pid)
      assert.truthy(n >= base - 1 and n <= base + 1, ("%d descendants, base %d"):format(n, base))
      local _, _, metrics = srv:get("/metrics")
      assert.truthy(metrics:find("\nvigil_sessions 0\n", 1, true))
   end)
end)

describe("session limits and expiry", function()
   local srv
   setup(function()
      srv = H.start { args = { "--enable-eval", "--idle-evict", "1", "--max-sessions", "3" } }
   end)
   teardown(function()
      if srv then srv:stop() end
   end)

   it("expires a session after its ttl and kills its worker", function()
      local sid = srv:session { ttl = 1 }
      local w = srv:worker_pid(sid)
      H.sleep(2.6)
      local st = srv:get("/v1/sessions/" .. sid)
      assert.equal(404, st)
      assert.is_false(H.alive(w))
   end)

   it("evicts an idle worker but keeps the session, rebuilt on next use", function()
      local sid = srv:session()
      assert.equal(201, (srv:post("/v1/sessions/" .. sid .. "/policies", { policy = POLICY, id = "p" })))
      local w = srv:worker_pid(sid)
      assert.is_number(w)
      H.sleep(2.6)
      local st, j = srv:get("/v1/sessions/" .. sid)
      assert.equal(200, st)
      assert.equal(H.null, j.worker_pid)
      assert.is_false(H.alive(w))
      st, j = srv:post("/v1/sessions/" .. sid .. "/policies/p/analyze", { trace = TRACE })
      assert.equal(200, st)
      assert.equal(1, #j.violations)
      assert.is_number(srv:worker_pid(sid))
      srv:delete("/v1/sessions/" .. sid)
   end)

   it("answers 429 with Retry-After beyond --max-sessions", function()
      local ids = {}
      for i = 1, 3 do ids[i] = srv:session() end
      local st, j, _, hdr = srv:post("/v1/sessions", {})
      assert.equal(429, st)
      assert.equal("too_many_sessions", j.error.code)
      assert.truthy(hdr:lower():find("retry%-after: %d+"))
      for _, id in ipairs(ids) do srv:delete("/v1/sessions/" .. id) end
      st = srv:post("/v1/sessions", {})
      assert.equal(201, st)
   end)
end)

describe("sessions with --require-token", function()
   local srv
   setup(function() srv = H.start { args = { "--require-token" }, db = ":memory:" } end)
   teardown(function() if srv then srv:stop() end end)

   it("needs the session's token on every native session route", function()
      local sid, created = srv:session()
      local tok = created.token
      local st, j = srv:get("/v1/sessions/" .. sid)
      assert.equal(401, st)
      assert.equal("unauthorized", j.error.code)
      st, j = srv:get("/v1/sessions/" .. sid, nil, { Authorization = "Bearer " .. string.rep("0", 32) })
      assert.equal(403, st)
      assert.equal("forbidden", j.error.code)
      st = srv:get("/v1/sessions/" .. sid, nil, { Authorization = "Bearer " .. tok })
      assert.equal(200, st)
      st = srv:post("/v1/sessions/" .. sid .. "/policies", { policy = POLICY })
      assert.equal(401, st)
      st = srv:post("/v1/sessions/" .. sid .. "/policies", { policy = POLICY }, { ["X-Vigil-Token"] = tok })
      assert.equal(201, st)
      st = srv:delete("/v1/sessions/" .. sid)
      assert.equal(401, st)
      st = srv:delete("/v1/sessions/" .. sid, nil, { Authorization = "Bearer " .. tok })
      assert.equal(200, st)
      -- an unknown session is still a 404, token or not
      assert.equal(404, (srv:get("/v1/sessions/" .. sid)))
   end)

   it("needs it on the session-era compatibility routes too (no way around the token)", function()
      local sid, created = srv:session()
      local tok = created.token
      local q = "?session_id=" .. sid
      local bad = { Authorization = "Bearer " .. string.rep("0", 32) }
      local good = { Authorization = "Bearer " .. tok }
      for _, r in ipairs {
         { "GET", "/session/" .. q }, { "GET", "/policy/" .. q }, { "GET", "/monitor/" .. q },
         { "POST", "/policy/new" .. q, { rule = POLICY } }, { "DELETE", "/session/" .. q },
         { "GET", "/session/new" .. q },
      } do
         local st, j = srv:request(r[1], r[2], r[3])
         assert.equal(401, st, r[1] .. " " .. r[2])
         assert.is_string(j.detail)
         st = srv:request(r[1], r[2], r[3], bad)
         assert.equal(403, st, r[1] .. " " .. r[2])
      end
      -- the session is still there and its policy list untouched
      local st, j = srv:get("/policy/" .. q, nil, good)
      assert.equal(200, st)
      assert.same({}, j)
      st = srv:post("/policy/new" .. q, { rule = POLICY }, good)
      assert.equal(200, st)
      -- a compat-created session hands out its token, and needs it
      st, j = srv:get("/session/new")
      assert.equal(200, st)
      assert.is_string(j.token)
      assert.equal(401, (srv:get("/session/?session_id=" .. j.id)))
      assert.equal(200, (srv:get("/session/?session_id=" .. j.id, nil, { ["X-Vigil-Token"] = j.token })))
      assert.equal(200, (srv:delete("/session/?session_id=" .. j.id, nil, { ["X-Vigil-Token"] = j.token })))
      assert.equal(200, (srv:delete("/session/" .. q, nil, good)))
   end)
end)

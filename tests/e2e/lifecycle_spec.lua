-- Process lifecycle: graceful SIGTERM with a request in flight, and a restart on the same
-- database that resumes sessions, policies and monitors where they stood.
local H = require "tests.e2e.helper"

local PAIR = 'raise "pair" if:\n    (a: Message) ~> (b: Message)\n    a.role == "user"\n    b.role == "assistant"'
local USER = 'raise "user msg" if:\n    (m: Message)\n    m.role == "user"'
local SEND = 'raise PolicyViolation("Cannot send assistant message:", msg) if:\n' ..
   '    (msg: Message)\n    msg.role == "assistant"'

local function msg(role, content) return { role = role, content = content } end

describe("graceful shutdown", function()
   it("finishes the request in flight on SIGTERM, frees the workers and exits", function()
      local srv = H.start { args = { "--enable-eval" } }
      local sid = srv:session()
      local w = srv:worker_pid(sid)
      local zyg = H.descendants(srv.pid)
      -- a request that takes a while, in the background
      local out = srv.dir .. "/slow.out"
      local body = H.encode { code = "local x = 0 for i = 1, 4e7 do x = x + i end return 1" }
      local f = assert(io.open(srv.dir .. "/slow.json", "wb"))
      f:write(body)
      f:close()
      os.execute(string.format("curl -s -o %s -w '%%{http_code}' -X POST --data-binary @%s " ..
         "%s/v1/sessions/%s/eval > %s.status 2>/dev/null &", H.quote(out),
         H.quote(srv.dir .. "/slow.json"), srv.base, sid, H.quote(out)))
      H.sleep(0.15)
      local pid = srv.pid
      assert.is_true(srv:stop("TERM", 20, true))
      assert.equal("200", H.slurp(out .. ".status"))
      assert.equal(1, H.json.decode(H.slurp(out)).value)
      local log = H.slurp(srv.stderr)
      assert.truthy(log:find("received SIGTERM: shutting down gracefully", 1, true))
      assert.truthy(log:find("vigild stopped", 1, true))
      assert.is_false(H.alive(pid))
      H.sleep(0.2)
      assert.is_false(H.alive(w))
      for _, p in ipairs(zyg) do assert.is_false(H.alive(p), "descendant " .. p) end
      srv:stop()
   end)
end)

describe("restart on the same database", function()
   local srv
   setup(function() srv = H.start {} end)
   teardown(function() if srv then srv:stop() end end)

   it("resumes sessions, policies and monitors where they stood", function()
      local sid = srv:session { id = "durable", ttl = 600 }
      local b = "/v1/sessions/" .. sid
      assert.equal(201, (srv:post(b .. "/policies", { policy = USER, id = "u", name = "users" })))
      assert.equal(201, (srv:post(b .. "/monitors", { policy = PAIR, id = "pair" })))
      assert.equal(201, (srv:post(b .. "/monitors", { policy_id = "u", id = "fromu" })))
      local st, j = srv:post(b .. "/monitors/pair/events", { events = { msg("user", "a"), msg("assistant", "b"), msg("user", "c") }, seq = 1 })
      assert.equal(200, st)
      H.assert_match({ events_seen = 3, violations = { { key = "(0, (0, 1))" } } }, j)
      srv:post(b .. "/monitors/fromu/events", { events = { msg("user", "a") } })
      -- compat session-era monitor in another session
      local _, cs = srv:get("/session/new")
      local cq = "?session_id=" .. cs.id
      srv:post("/monitor/new" .. cq, { rule = SEND })
      st, j = srv:post("/monitor/1/check" .. cq, { past_events = H.A0,
         pending_events = { msg("user", "Hello, user 0"), msg("assistant", "Hello, user 1") } })
      assert.equal(200, st)
      assert.equal(1, #j)

      srv:restart()

      st, j = srv:get(b)
      assert.equal(200, st)
      H.assert_match({ id = "durable", ttl = 600, policies = 1, monitors = 2 }, j)
      st, j = srv:get(b .. "/policies/u")
      H.assert_match({ id = "u", name = "users", policy = USER }, j)
      st, j = srv:post(b .. "/policies/u/analyze", { trace = { msg("user", "x") } })
      assert.equal(200, st)
      assert.equal(1, #j.violations)
      st, j = srv:get(b .. "/monitors/pair")
      H.assert_match({ events_seen = 3, violations_reported = 1 }, j)
      -- the monitor continues: (2, 3) is new, (0, 1) is not reported again
      st, j = srv:post(b .. "/monitors/pair/events", { events = { msg("assistant", "d") }, seq = 2 })
      assert.equal(200, st)
      H.assert_match({ events_seen = 4, violations = { { key = "(0, (2, 3))" } } }, j)
      -- a retried seq from before the restart still answers as it did
      st, j = srv:post(b .. "/monitors/pair/events", { events = { msg("user", "a") }, seq = 1 })
      assert.equal(200, st)
      H.assert_match({ events_seen = 3, violations = { { key = "(0, (0, 1))" } } }, j)
      st, j = srv:get(b .. "/monitors/pair/violations")
      H.assert_match({ violations = { { key = "(0, (0, 1))" }, { key = "(0, (2, 3))" } } }, j)
      st, j = srv:post(b .. "/monitors/fromu/events", { events = { msg("user", "b") } })
      H.assert_match({ events_seen = 2, violations = { { key = "(0, (1,))" } } }, j)
      -- the compat monitor continues too
      st, j = srv:post("/monitor/1/check" .. cq, {
         past_events = { msg("user", "Hello, user 0"), msg("assistant", "Hello, user 1") },
         pending_events = { msg("assistant", "Hello, user 2") } })
      assert.equal(200, st)
      assert.same({ "PolicyViolation(Cannot send assistant message: metadata={'trace_idx': 2} " ..
         "role='assistant' content='Hello, user 2' tool_calls=None)" }, j)
      assert.truthy(srv:log():find("resumed 2 session", 1, true))
   end)

   it("drops sessions whose ttl passed while it was down", function()
      srv:session { id = "shortlived", ttl = 1 }
      srv:stop(nil, nil, true)
      H.sleep(1.5)
      srv:restart()
      assert.equal(404, (srv:get("/v1/sessions/shortlived")))
      assert.equal(200, (srv:get("/v1/sessions/durable")))
   end)
end)

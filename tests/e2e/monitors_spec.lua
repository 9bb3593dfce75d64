-- Native monitors: incremental chunks report only new violations (the monitor contract: the
-- whole-trace violations binding a pending event, minus keys already reported), idempotent
-- retries by seq, isolation between monitors and sessions, replay after a worker dies.
local H = require "tests.e2e.helper"

local E15 = 'raise PolicyViolation("Cannot send assistant message:", msg) if:\n' ..
   '    (msg: Message)\n    msg.role == "assistant"\n    "X" in msg.content'
local PAIR = 'raise "pair" if:\n    (a: Message) ~> (b: Message)\n    a.role == "user"\n    b.role == "assistant"'
local WORD = 'raise "p" if:\n    (m: Message)\n    input.word in m.content'

local function msg(role, content) return { role = role, content = content } end

describe("monitors", function()
   local srv, sid
   setup(function()
      srv = H.start {}
      sid = srv:session()
   end)
   teardown(function() if srv then srv:stop() end end)
   local function mbase() return "/v1/sessions/" .. sid .. "/monitors" end
   local function events(mid, evs, seq)
      return srv:post(mbase() .. "/" .. mid .. "/events", { events = evs, seq = seq })
   end

   it("E15: an empty chunk, a violating chunk, then a chunk with nothing new", function()
      local st, j = srv:post(mbase(), { policy = E15, id = "e15" })
      assert.equal(201, st)
      H.assert_match({ id = "e15", name = "Monitor #e15", language = "invariant", events_seen = 0,
         violations_reported = 0 }, j)
      st, j = srv:post(mbase() .. "/e15/events", '{"events": []}')
      assert.equal(200, st)
      H.assert_match({ violations = H.EMPTY, events_seen = 0 }, j)
      st, j = events("e15", { msg("assistant", "Hello, X") })
      assert.equal(200, st)
      H.assert_match({ events_seen = 1, violations = { {
         key = "(0, (0,))", bindings = { msg = 0 }, args = { "Cannot send assistant message:",
            { role = "assistant", content = "Hello, X", metadata = { trace_idx = 0 } } } } } }, j)
      st, j = events("e15", { msg("assistant", "Hello, Y") })
      assert.equal(200, st)
      H.assert_match({ violations = H.EMPTY, events_seen = 2 }, j)
   end)

   it("reports a two-variable ~> model once, when its second event arrives", function()
      local st, j = srv:post(mbase(), { policy = PAIR, id = "pair" })
      assert.equal(201, st)
      st, j = events("pair", { msg("user", "a") })
      H.assert_match({ violations = H.EMPTY, events_seen = 1 }, j)
      st, j = events("pair", { msg("assistant", "b") })
      H.assert_match({ events_seen = 2, violations = { { key = "(0, (0, 1))",
         ranges = { "messages.0", "messages.1" }, bindings = { a = 0, b = 1 } } } }, j)
      st, j = events("pair", { msg("user", "c"), msg("assistant", "d"), msg("assistant", "e") })
      assert.equal(200, st)
      H.assert_match({ events_seen = 5, violations = { { key = "(0, (2, 3))" } } }, j)
      st, j = srv:get(mbase() .. "/pair/violations")
      assert.equal(200, st)
      H.assert_match({ events_seen = 5, violations = { { key = "(0, (0, 1))" }, { key = "(0, (2, 3))" } } }, j)
      st, j = srv:get(mbase() .. "/pair")
      H.assert_match({ id = "pair", events_seen = 5, violations_reported = 2 }, j)
   end)

   it("creates a monitor from a stored policy, with fixed parameters", function()
      local st = srv:post("/v1/sessions/" .. sid .. "/policies", { policy = WORD, id = "word" })
      assert.equal(201, st)
      local j
      st, j = srv:post(mbase(), { policy_id = "word", parameters = { word = "ell" }, name = "ell watcher" })
      assert.equal(201, st)
      H.assert_match({ policy_id = "word", name = "ell watcher", parameters = { word = "ell" } }, j)
      local mid = j.id
      st, j = events(mid, { msg("user", "nothing"), msg("user", "hello") })
      assert.equal(200, st)
      H.assert_match({ events_seen = 2, violations = { { key = "(0, (1,))",
         ranges = { "messages.1", "messages.1.content:1-4" } } } }, j)
   end)

   it("makes a retried chunk with the same seq idempotent", function()
      local st, j = srv:post(mbase(), { policy = PAIR, id = "seq" })
      assert.equal(201, st)
      st, j = events("seq", { msg("user", "a"), msg("assistant", "b") }, 1)
      assert.equal(200, st)
      H.assert_match({ events_seen = 2, violations = { { key = "(0, (0, 1))" } } }, j)
      st, j = events("seq", { msg("user", "a"), msg("assistant", "b") }, 1)
      assert.equal(200, st)
      H.assert_match({ events_seen = 2, violations = { { key = "(0, (0, 1))" } } }, j)
      st, j = srv:get(mbase() .. "/seq")
      H.assert_match({ events_seen = 2, violations_reported = 1 }, j)
      st, j = events("seq", { msg("user", "x") }, 0)
      assert.equal(409, st)
      assert.equal("seq_conflict", j.error.code)
      st, j = events("seq", { msg("user", "c"), msg("assistant", "d") }, 2)
      H.assert_match({ events_seen = 4, violations = { { key = "(0, (2, 3))" } } }, j)
   end)

   it("keeps two monitors of one session apart", function()
      assert.equal(201, (srv:post(mbase(), { policy = PAIR, id = "m1" })))
      assert.equal(201, (srv:post(mbase(), { policy = PAIR, id = "m2" })))
      local _, j = events("m1", { msg("user", "a") })
      H.assert_match({ events_seen = 1 }, j)
      _, j = events("m2", { msg("assistant", "b") })
      H.assert_match({ events_seen = 1, violations = H.EMPTY }, j)
      _, j = events("m1", { msg("assistant", "b") })
      H.assert_match({ events_seen = 2, violations = { { key = "(0, (0, 1))" } } }, j)
      _, j = srv:get(mbase() .. "/m2")
      H.assert_match({ events_seen = 1, violations_reported = 0 }, j)
   end)

   it("keeps monitors of two sessions apart", function()
      local other = srv:session()
      local obase = "/v1/sessions/" .. other .. "/monitors"
      assert.equal(201, (srv:post(obase, { policy = PAIR, id = "shared" })))
      assert.equal(201, (srv:post(mbase(), { policy = PAIR, id = "shared" })))
      events("shared", { msg("user", "a") })
      local _, j = srv:post(obase .. "/shared/events", { events = { msg("assistant", "b") } })
      H.assert_match({ events_seen = 1, violations = H.EMPTY }, j)
      _, j = events("shared", { msg("assistant", "b") })
      H.assert_match({ events_seen = 2, violations = { { key = "(0, (0, 1))" } } }, j)
      assert.equal(404, (srv:get(obase .. "/pair")))
   end)

   it("rebuilds the monitor by replay after its worker is killed", function()
      assert.equal(201, (srv:post(mbase(), { policy = PAIR, id = "replay" })))
      events("replay", { msg("user", "a") })
      os.execute("kill -KILL " .. srv:worker_pid(sid))
      H.sleep(0.1)
      local st, j = events("replay", { msg("assistant", "b") })
      assert.equal(200, st)
      H.assert_match({ events_seen = 2, violations = { { key = "(0, (0, 1))" } } }, j)
      -- the other monitors survived too: nothing old is reported again
      st, j = events("pair", { msg("user", "f") })
      H.assert_match({ events_seen = 6, violations = H.EMPTY }, j)
      st, j = events("pair", { msg("assistant", "g") })
      H.assert_match({ events_seen = 7, violations = { { key = "(0, (5, 6))" } } }, j)
   end)

   it("does not commit a refused chunk", function()
      assert.equal(201, (srv:post(mbase(), { policy = PAIR, id = "refuse" })))
      events("refuse", { msg("user", "a") })
      local st, j = events("refuse", { 42 })
      assert.equal(400, st)
      assert.equal("trace_invalid", j.error.code)
      st, j = events("refuse", { msg("assistant", "b") })
      assert.equal(200, st)
      H.assert_match({ events_seen = 2, violations = { { key = "(0, (0, 1))" } } }, j)
   end)

   it("lists and deletes monitors", function()
      local st, j = srv:get(mbase())
      assert.equal(200, st)
      assert.truthy(#j.monitors >= 8)
      assert.equal("e15", j.monitors[1].id)
      st, j = srv:delete(mbase() .. "/e15")
      assert.equal(200, st)
      H.assert_match({ id = "e15", deleted = true }, j)
      assert.equal(404, (srv:get(mbase() .. "/e15")))
      assert.equal(404, (events("e15", { msg("user", "a") })))
      assert.equal(404, (srv:get(mbase() .. "/e15/violations")))
   end)

   H.cases(it, function() return srv end, {
      { name = "monitor with both policy and policy_id is a 400",
        request = { method = "POST", path = "/v1/sessions/{{sid}}/monitors", body = { policy = PAIR, policy_id = "word" } },
        expect = { status = 400, json = { error = { code = "bad_request" } } } },
      { name = "monitor of an unknown policy_id is a 404",
        request = { method = "POST", path = "/v1/sessions/{{sid}}/monitors", body = { policy_id = "nosuch" } },
        expect = { status = 404, json = { error = { code = "not_found" } } } },
      { name = "monitor of a policy that does not compile is a 422",
        request = { method = "POST", path = "/v1/sessions/{{sid}}/monitors", body = { policy = 'raise "x" if:\n    (m: Mesage)' } },
        expect = { status = 422, json = { error = { code = "policy_invalid", diagnostics = H.ANY } } } },
      { name = "events must be an array",
        request = { method = "POST", path = "/v1/sessions/{{sid}}/monitors/pair/events", body = { events = "no" } },
        expect = { status = 400, json = { error = { code = "bad_request" } } } },
      { name = "seq must be a non-negative integer",
        request = { method = "POST", path = "/v1/sessions/{{sid}}/monitors/pair/events", body = { events = {}, seq = -1 } },
        expect = { status = 400, json = { error = { code = "bad_request" } } } },
      { name = "duplicate monitor id is a 409",
        request = { method = "POST", path = "/v1/sessions/{{sid}}/monitors", body = { policy = PAIR, id = "pair" } },
        expect = { status = 409, json = { error = { code = "conflict" } } } },
   }, function() return { sid = sid } end)
end)

-- Compatibility routes with the exact shapes of the systems vigild replaces
-- (spec/invariant-reference.md §10.6-10.7). Expected strings come from invariant-server's own
-- tests (the "email to non-Peter after get_inbox" analyze and the one-at-a-time monitor check).
local H = require "tests.e2e.helper"

local SEND = 'raise PolicyViolation("Cannot send assistant message:", msg) if:\n' ..
   '    (msg: Message)\n    msg.role == "assistant"'
local PETER = 'raise "must not send emails to anyone but \'Peter\' after seeing the inbox" if:\n' ..
   '    (call: ToolCall) -> (call2: ToolCall)\n    call is tool:get_inbox\n' ..
   '    call2 is tool:send_email({to: "^(?!Peter$).*$"})'
local USER = 'raise "user msg" if:\n    (m: Message)\n    m.role == "user"'
local WORD = 'raise "p" if:\n    (m: Message)\n    input.word in m.content'

local EMAIL_TRACE = {
   { role = "user", content = "Reply to Peter's message" },
   { role = "assistant", content = "", tool_calls = {
      { id = "1", type = "function", ["function"] = { name = "get_inbox", arguments = {} } } } },
   { role = "tool", tool_call_id = "1", content = "Peter [2024-01-01]: Are you free tmw?" },
   { id = "2", type = "function", ["function"] = { name = "send_email",
      arguments = { to = "Attacker", subject = "User Inbox", body = "..." } } },
}

local function ev(i)
   return { role = (i == 1 or i == 2) and "assistant" or "user", content = "Hello, user " .. i }
end
local function repr(i)
   return "PolicyViolation(Cannot send assistant message: metadata={'trace_idx': " .. i ..
      "} role='assistant' content='Hello, user " .. i .. "' tool_calls=None)"
end

describe("invariant-server, session era", function()
   local srv, sid
   setup(function() srv = H.start {} end)
   teardown(function() if srv then srv:stop() end end)
   local function q(path) return path .. "?session_id=" .. sid end

   it("GET /session/new creates a session; an existing id is reused", function()
      local st, j = srv:get("/session/new")
      assert.equal(200, st)
      assert.truthy(j.id:match("^%x+%-%x+%-4%x+%-%x+%-%x+$"))
      sid = j.id
      st, j = srv:get("/session/new?session_id=" .. sid)
      assert.equal(200, st)
      assert.same({ id = sid }, j)
      st, j = srv:get("/session/?session_id=" .. sid)
      assert.equal(200, st)
      assert.same({ id = sid }, j)
      st, j = srv:get("/session?session_id=nosuch")
      assert.equal(404, st)
      assert.same({ detail = "Session not found" }, j)
      -- the same session is visible natively
      assert.equal(200, (srv:get("/v1/sessions/" .. sid)))
   end)

   it("POST /policy/new numbers policies 1, 2, ... with default names", function()
      local st, j = srv:post(q("/policy/new"), { rule = SEND })
      assert.equal(200, st)
      assert.same({ rule = SEND, name = "Policy #1", session_id = sid, policy_id = 1 }, j)
      st, j = srv:post(q("/policy/new"), { rule = USER, name = "users" })
      assert.equal(200, st)
      assert.same({ rule = USER, name = "users", session_id = sid, policy_id = 2 }, j)
      st, j = srv:get(q("/policy/"))
      assert.equal(200, st)
      assert.same({ { rule = SEND, name = "Policy #1", session_id = sid, policy_id = 1 },
         { rule = USER, name = "users", session_id = sid, policy_id = 2 } }, j)
      st, j = srv:get(q("/policy/2"))
      assert.equal(200, st)
      assert.same({ rule = USER, name = "users", session_id = sid, policy_id = 2 }, j)
      st, j = srv:get(q("/policy/7"))
      assert.equal(404, st)
      assert.same({ detail = "Policy not found" }, j)
      st, j = srv:post("/policy/new?session_id=nosuch", { rule = SEND })
      assert.equal(404, st)
      assert.same({ detail = "Session not found" }, j)
      st = srv:post(q("/policy/new"), { name = "no rule" })
      assert.equal(422, st)
   end)

   it("POST /policy/{id}/analyze returns repr strings", function()
      local st, j = srv:post(q("/policy/1/analyze"), { trace = { ev(0), ev(1) } })
      assert.equal(200, st)
      assert.same({ errors = { repr(1) }, handled_errors = {} }, j)
      st, j = srv:post(q("/policy/2/analyze"), { trace = { ev(0), ev(1) } })
      assert.equal(200, st)
      assert.same({ errors = { "PolicyViolation(user msg, ranges=[<1 ranges>])" }, handled_errors = {} }, j)
   end)

   it("PUT and DELETE /policy/{id}", function()
      local st, j = srv:put(q("/policy/2"), { rule = PETER })
      assert.equal(200, st)
      assert.same({ rule = PETER, name = "users", session_id = sid, policy_id = 2 }, j)
      st, j = srv:post(q("/policy/2/analyze"), { trace = EMAIL_TRACE })
      assert.equal(200, st)
      assert.same({ errors = { "PolicyViolation(must not send emails to anyone but 'Peter' after " ..
         "seeing the inbox, ranges=[<2 ranges>])" }, handled_errors = {} }, j)
      st, j = srv:delete(q("/policy/2"))
      assert.equal(200, st)
      assert.same({ ok = true }, j)
      st, j = srv:delete(q("/policy/2"))
      assert.equal(404, st)
      assert.same({ detail = "Policy not found" }, j)
   end)

   it("POST /monitor/new takes exactly one of policy_id and rule", function()
      local st, j = srv:post(q("/monitor/new"), { policy_id = 1 })
      assert.equal(200, st)
      assert.same({ session_id = sid, monitor_id = 1, rule = SEND, name = "Monitor #1" }, j)
      st, j = srv:post(q("/monitor/new"), { rule = USER, name = "users" })
      assert.equal(200, st)
      assert.same({ session_id = sid, monitor_id = 2, rule = USER, name = "users" }, j)
      assert.equal(422, (srv:post(q("/monitor/new"), { rule = USER, policy_id = 1 })))
      assert.equal(422, (srv:post(q("/monitor/new"), { name = "neither" })))
      st, j = srv:get(q("/monitor/"))
      assert.equal(200, st)
      assert.same({ { session_id = sid, monitor_id = 1, rule = SEND, name = "Monitor #1" },
         { session_id = sid, monitor_id = 2, rule = USER, name = "users" } }, j)
      st, j = srv:get(q("/monitor/1"))
      assert.equal(200, st)
      assert.same({ session_id = sid, monitor_id = 1, rule = SEND, name = "Monitor #1" }, j)
      st, j = srv:get(q("/monitor/9"))
      assert.equal(404, st)
      assert.same({ detail = "Monitor not found" }, j)
   end)

   it("POST /monitor/{id}/check, events one at a time (invariant-server's test)", function()
      local past = {}
      local expected = { {}, { repr(1) }, { repr(2) }, {} }
      for i = 0, 3 do
         local st, j = srv:post(q("/monitor/1/check"), { past_events = #past > 0 and past or H.A0,
            pending_events = { ev(i) } })
         assert.equal(200, st)
         assert.same(expected[i + 1], j)
         past[#past + 1] = ev(i)
      end
      local _, m = srv:get("/v1/sessions/" .. sid .. "/monitors/1")
      assert.equal(4, m.events_seen)
   end)

   it("catches up when past_events extends what the monitor saw", function()
      local past = {}
      for i = 0, 4 do past[i + 1] = ev(i) end
      past[5] = { role = "assistant", content = "Hello, user 4" } -- never sent: not reported
      local st, j = srv:post(q("/monitor/1/check"), { past_events = past,
         pending_events = { { role = "assistant", content = "Hello, user 5" } } })
      assert.equal(200, st)
      assert.same({ "PolicyViolation(Cannot send assistant message: metadata={'trace_idx': 5} " ..
         "role='assistant' content='Hello, user 5' tool_calls=None)" }, j)
      local _, m = srv:get("/v1/sessions/" .. sid .. "/monitors/1")
      assert.equal(6, m.events_seen)
   end)

   it("resynchronises when past_events differ from the monitor's history", function()
      local past = {}
      for i = 1, 6 do past[i] = { role = "user", content = "rewritten " .. i } end
      local st, j = srv:post(q("/monitor/1/check"), { past_events = past,
         pending_events = { { role = "assistant", content = "again" } } })
      assert.equal(200, st)
      assert.same({ "PolicyViolation(Cannot send assistant message: metadata={'trace_idx': 6} " ..
         "role='assistant' content='again' tool_calls=None)" }, j)
      -- and it continues incrementally from the rebuilt history
      past[7] = { role = "assistant", content = "again" }
      st, j = srv:post(q("/monitor/1/check"), { past_events = past,
         pending_events = { { role = "user", content = "bye" } } })
      assert.equal(200, st)
      assert.same({}, j)
   end)

   it("a monitor check with malformed bodies is a 422", function()
      assert.equal(422, (srv:post(q("/monitor/1/check"), { past_events = H.A0 })))
      assert.equal(422, (srv:post(q("/monitor/1/check"), "not json")))
   end)

   it("DELETE /monitor/{id} and /session", function()
      local st, j = srv:delete(q("/monitor/2"))
      assert.equal(200, st)
      assert.same({ ok = true }, j)
      assert.equal(404, (srv:get(q("/monitor/2"))))
      st, j = srv:delete(q("/session"))
      assert.equal(200, st)
      assert.same({ ok = true }, j)
      st, j = srv:get(q("/policy"))
      assert.equal(404, st)
      assert.same({ detail = "Session not found" }, j)
   end)
end)

-- The contract of POST /monitor/{id}/check, as invariant-server's session era had it: the
-- session worker kept one Invariant Monitor per id and answered check(past, pending) with the
-- incremental analyze_pending: the violations of past ++ pending that bind a pending event,
-- minus every key the monitor ever returned (invariant/analyzer/monitor.py: "across all calls to
-- check(), an error relating to a specific part of the application state will only be reported
-- once"). Keys are index based, so a rewritten history does not bring a returned key back.
describe("monitor resynchronisation (session era)", function()
   local srv, sid
   setup(function() srv = H.start {} end)
   teardown(function() if srv then srv:stop() end end)
   local function q(path) return path .. "?session_id=" .. sid end
   local function asst(t) return { role = "assistant", content = t } end
   local function user(t) return { role = "user", content = t } end
   local function r(i, t)
      return "PolicyViolation(Cannot send assistant message: metadata={'trace_idx': " .. i ..
         "} role='assistant' content='" .. t .. "' tool_calls=None)"
   end
   local function new_monitor()
      local st, j = srv:post(q("/monitor/new"), { rule = SEND })
      assert.equal(200, st)
      return math.tointeger(j.monitor_id)
   end
   local function check(mid, past, pending)
      local st, j, raw = srv:post(q("/monitor/" .. mid .. "/check"),
         { past_events = #past > 0 and past or H.A0, pending_events = #pending > 0 and pending or H.A0 })
      assert.equal(200, st, raw)
      return j
   end
   setup(function()
      local _, j = srv:get("/session/new")
      sid = j.id
   end)

   it("evaluates only the pending events when past_events is what the monitor saw", function()
      local m = new_monitor()
      assert.same({ r(0, "a") }, check(m, {}, { asst("a") }))
      assert.same({ r(1, "b") }, check(m, { asst("a") }, { asst("b") }))
      -- the same call again: same indices, same keys, nothing new
      assert.same({}, check(m, { asst("a") }, { asst("b") }))
      local _, mon = srv:get("/v1/sessions/" .. sid .. "/monitors/" .. m)
      assert.equal(2, mon.events_seen)
   end)

   it("does not re-report a returned key after the history is rewritten", function()
      local m = new_monitor()
      assert.same({ r(0, "a"), r(1, "b") }, check(m, {}, { asst("a"), asst("b") }))
      -- history rewritten (index 0 changed): index 1 is pending again, its key was returned
      assert.same({}, check(m, { user("x") }, { asst("b2") }))
      -- a new index is reported as usual, and the monitor goes on from the new history
      assert.same({ r(2, "c") }, check(m, { user("x"), asst("b2") }, { asst("c") }))
      assert.same({}, check(m, { user("x"), asst("b2"), asst("c") }, { user("y") }))
   end)

   it("reports a past-only violation once it becomes pending, since it was never returned", function()
      local m = new_monitor()
      -- past events are never reported (they bind no pending event) and their keys not recorded
      assert.same({}, check(m, { asst("a"), asst("b") }, {}))
      -- a shorter history is a rewrite: index 1 is now pending and was never returned
      assert.same({ r(1, "b") }, check(m, { asst("a") }, { asst("b") }))
      assert.same({}, check(m, { asst("a") }, { asst("b") }))
   end)

   it("keeps the returned keys across a killed worker and a restarted server", function()
      local m = new_monitor()
      assert.same({ r(0, "a") }, check(m, {}, { asst("a") }))
      local w = srv:worker_pid(sid)
      os.execute("kill -KILL " .. w)
      for _ = 1, 40 do
         if not H.alive(w) then break end
         H.sleep(0.05)
      end
      -- rewritten: index 0 is pending again on a rebuilt worker; its key was returned
      assert.same({}, check(m, {}, { asst("a again") }))
      assert.same({ r(1, "b") }, check(m, { asst("a again") }, { asst("b") }))
      srv:restart()
      assert.same({}, check(m, { user("x") }, { asst("b again") }))
      assert.same({ r(2, "c") }, check(m, { user("x"), asst("b again") }, { asst("c") }))
   end)
end)

describe("invariant-server, stateless era", function()
   local srv
   setup(function() srv = H.start { db = ":memory:" } end)
   teardown(function() if srv then srv:stop() end end)

   it("POST /api/policy/analyze (the server's own example)", function()
      local st, j = srv:post("/api/policy/analyze", { trace = EMAIL_TRACE, policy = PETER })
      assert.equal(200, st)
      assert.same({ errors = { { error = "PolicyViolation(must not send emails to anyone but " ..
         "'Peter' after seeing the inbox, ranges=[<2 ranges>])",
         ranges = { "messages.1.tool_calls.0", "messages.3" } } }, handled_errors = {} }, j)
   end)

   it("POST /api/policy/analyze with a failing policy answers 200 with a JSON string", function()
      local st, j = srv:post("/api/policy/analyze", { trace = H.A0, policy = 'raise "x" if:\n    (m: Mesage)' })
      assert.equal(200, st)
      assert.equal("string", type(j))
      assert.truthy(j:find("Mesage", 1, true))
      assert.equal(422, (srv:post("/api/policy/analyze", { trace = H.A0 })))
   end)

   it("POST /api/monitor/check reports only violations binding a pending event", function()
      local body = { past_events = { ev(1) }, pending_events = { ev(2), ev(3) }, policy = SEND }
      for _ = 1, 2 do -- stateless: the same answer twice
         local st, j = srv:post("/api/monitor/check", body)
         assert.equal(200, st)
         assert.same({ "PolicyViolation(Cannot send assistant message: metadata={'trace_idx': 1} " ..
            "role='assistant' content='Hello, user 2' tool_calls=None)" }, j)
      end
      local st, j = srv:post("/api/monitor/check", { past_events = H.A0, pending_events = H.A0, policy = USER })
      assert.equal(200, st)
      assert.same({}, j)
   end)
end)

describe("the hosted Guardrails API", function()
   local srv
   setup(function() srv = H.start { db = ":memory:" } end)
   teardown(function() if srv then srv:stop() end end)

   it("POST /api/v1/policy/check answers the to_dict form", function()
      local st, j = srv:post("/api/v1/policy/check", { messages = { ev(0), ev(1) }, policy = USER,
         parameters = {} }, { Authorization = "Bearer test-key" })
      assert.equal(200, st)
      assert.same({ errors = { { key = "(0, (0,))", args = { "user msg" }, kwargs = {},
         ranges = { "messages.0" } } } }, j)
      st, j = srv:post("/api/v1/policy/check", { messages = { { role = "user", content = "hello" } },
         policy = WORD, parameters = { word = "ell" } })
      assert.equal(200, st)
      assert.same({ errors = { { key = "(0, (0,))", args = { "p" }, kwargs = {},
         ranges = { "messages.0", "messages.0.content:1-4" } } } }, j)
   end)

   it("uses the catchphrases the invariant-ai client classifies", function()
      local st, j = srv:post("/api/v1/policy/check", { messages = { ev(0) }, policy = WORD, parameters = {} })
      assert.equal(400, st)
      assert.truthy(j.detail:find("^Missing Policy Parameter: "))
      assert.falsy(j.detail:find("Missing Policy Parameter: Missing", 1, true))
      st, j = srv:post("/api/v1/policy/check", { messages = "nope", policy = USER })
      assert.equal(400, st)
      assert.truthy(j.detail:find("^Input Validation Error: "))
      st, j = srv:post("/api/v1/policy/check", { messages = { 42 }, policy = USER })
      assert.equal(400, st)
      assert.truthy(j.detail:find("^Input Validation Error: "))
   end)

   it("POST /api/v1/policy/load accepts a good policy and refuses a bad one with 400", function()
      -- The hosted service's source is not public; its contract is what its clients read.
      -- invariant-ai's RemotePolicy.a_preload: 400 -> PolicyLoadingError(detail); any other
      -- answer must be a JSON object WITHOUT "errors" (else ValueError). invariant-gateway's
      -- _preload: raise_for_status() only. So: 200 with exactly {"ok", "rules"}.
      local st, j = srv:post("/api/v1/policy/load", { policy = USER })
      assert.equal(200, st)
      assert.same({ ok = true, rules = { { index = 0, line = 1, message = "user msg" } } }, j)
      assert.is_nil(j.errors)
      st, j = srv:post("/api/v1/policy/load", { policy = 'raise "x" if:\n    (m: Mesage)' })
      assert.equal(400, st)
      assert.truthy(j.detail:find("Mesage", 1, true))
      -- a body the client cannot have sent (no policy) is also a 400 the client reports
      st, j = srv:post("/api/v1/policy/load", { rule = USER })
      assert.equal(400, st)
      assert.truthy(j.detail:find("^Input Validation Error: "))
   end)
end)

-- Stateless checks, compilation, and stored policies (native /v1 routes). Expected values are
-- worked by hand from spec/invariant-reference.md §13.4 (E1, E2, E3, E5, E8, E10).
local H = require "tests.e2e.helper"

local P = {}
P.E1 = 'raise "user msg" if:\n    (m: Message)\n    m.role == "user"'
P.E2 = 'raise "x" if:\n    (m: Message)\n    m.role == "assistant"\n    "X" in m.content'
P.E3 = 'raise PolicyViolation("leak", call=c2) if:\n    (c1: ToolCall) -> (c2: ToolCall)\n' ..
   '    c1 is tool:get_inbox\n    c2 is tool:send_email({to: "^(?!Peter$).*$"})'
P.E5 = 'raise "pair" if:\n    (a: Message) ~> (b: Message)\n    a.role == "user"\n    b.role == "assistant"'
P.E8 = 'raise "found" if:\n    (m: Message)\n    any(find("[0-9]+", m.content))'
P.E10 = 'raise "p" if:\n    (m: Message)\n    input.word in m.content'
P.LUA = [[
rule { line = 1, message = "user says secret", raise = "lua secret",
  var("m", "Message", 2, 3),
  cond({"m"}, 3, 3, function(c, e) return V.contains(c, "secret", V.attr(e.m, "content")) end),
}
]]

local T = {}
T.E1 = { { role = "user", content = "hi" }, { role = "assistant", content = "yo" } }
T.E2 = { { role = "assistant", content = "Hello, X" } }
T.E3 = {
   { role = "user", content = "check my inbox and forward it" },
   { role = "assistant", content = H.null, tool_calls = {
      { id = "1", type = "function", ["function"] = { name = "get_inbox", arguments = {} } } } },
   { role = "tool", tool_call_id = "1", content = "from Peter: hi" },
   { id = "2", type = "function", ["function"] = { name = "send_email", arguments = { to = "Attacker" } } },
}
T.E5 = { { role = "user", content = "a" }, { role = "assistant", content = "b" },
   { role = "user", content = "c" }, { role = "assistant", content = "d" } }
T.E8 = { { role = "user", content = "a1b22" } }
T.E10 = { { role = "user", content = "hello" } }

local E1_VIOLATION = {
   rule = { index = 0, line = 1, message = "user msg" },
   message = "user msg",
   args = { "user msg" },
   kwargs = H.EMPTY,
   key = "(0, (0,))",
   ranges = { "messages.0" },
   bindings = { m = 0 },
}

describe("stateless /v1/check and /v1/compile", function()
   local srv
   setup(function() srv = H.start { db = ":memory:" } end)
   teardown(function() if srv then srv:stop() end end)
   local function S() return srv end

   H.cases(it, S, {
      { name = "E1: one violation with rule, key, ranges, bindings", twice = true,
        request = { method = "POST", path = "/v1/check", body = { policy = P.E1, trace = T.E1 } },
        expect = { status = 200, json = { violations = { E1_VIOLATION } } } },
      { name = "E2: substring range of the matched text",
        request = { method = "POST", path = "/v1/check", body = { policy = P.E2, trace = T.E2 } },
        expect = { status = 200, json = { violations = { {
           key = "(0, (0,))", ranges = { "messages.0", "messages.0.content:7-8" } } } } } },
      { name = "E3: data flow from get_inbox to send_email with the call in kwargs",
        request = { method = "POST", path = "/v1/check", body = { policy = P.E3, trace = T.E3 } },
        expect = { status = 200, json = { violations = { {
           key = "(0, (1, 3))", args = { "leak" },
           ranges = { "messages.1.tool_calls.0", "messages.3" },
           bindings = { c1 = 1, c2 = 3 },
           kwargs = { call = { type = "function", ["function"] = { name = "send_email" },
              metadata = { trace_idx = 3 } } } } } } } },
      { name = "E5: ~> pairs direct successors only",
        request = { method = "POST", path = "/v1/check", body = { policy = P.E5, trace = T.E5 } },
        expect = { status = 200, json = { violations = {
           { key = "(0, (0, 1))", ranges = { "messages.0", "messages.1" } },
           { key = "(0, (2, 3))", ranges = { "messages.2", "messages.3" } } } } } },
      { name = "E8: find marks every match",
        request = { method = "POST", path = "/v1/check", body = { policy = P.E8, trace = T.E8 } },
        expect = { status = 200, json = { violations = { {
           key = "(0, (0,))",
           ranges = { "messages.0", "messages.0.content:1-2", "messages.0.content:3-5" } } } } } },
      { name = "E10: parameters are visible as input.word",
        request = { method = "POST", path = "/v1/check",
           body = { policy = P.E10, trace = T.E10, parameters = { word = "ell" } } },
        expect = { status = 200, json = { violations = { {
           key = "(0, (0,))", ranges = { "messages.0", "messages.0.content:1-4" } } } } } },
      { name = "E10 without the parameter: 422 evaluation_error missing-parameter",
        request = { method = "POST", path = "/v1/check", body = { policy = P.E10, trace = T.E10 } },
        expect = { status = 422, json = { error = { code = "evaluation_error",
           kind = "missing-parameter", message = H.ANY } } } },
      { name = "no violation is an empty list",
        request = { method = "POST", path = "/v1/check", body = { policy = P.E1, trace = T.E2 } },
        expect = { status = 200, json = { violations = H.EMPTY } } },
      { name = "a Lua-authored policy runs through language=lua",
        request = { method = "POST", path = "/v1/check", body = { policy = P.LUA, language = "lua",
           trace = { { role = "user", content = "no" }, { role = "user", content = "a secret" } } } },
        expect = { status = 200, json = { violations = { {
           key = "(0, (1,))", args = { "lua secret" }, bindings = { m = 1 } } } } } },
      { name = "a policy that does not compile: 422 policy_invalid with located diagnostics",
        request = { method = "POST", path = "/v1/check",
           body = { policy = 'raise "x" if:\n    (m: Mesage)', trace = T.E1 } },
        expect = { status = 422, json = { error = { code = "policy_invalid", message = H.ANY,
           diagnostics = { { line = 2, column = 6, message = function(m)
              return m:find("Mesage", 1, true) end } } } } } },
      { name = "a malformed trace: 400 trace_invalid naming the event",
        request = { method = "POST", path = "/v1/check", body = { policy = P.E1,
           trace = { { role = "user", content = "ok" }, 42 } } },
        expect = { status = 400, json = { error = { code = "trace_invalid", index = 1 } } } },
      { name = "compile lists the rules",
        request = { method = "POST", path = "/v1/compile", body = { policy = P.E1 } },
        expect = { status = 200, json = { ok = true, valid = true, diagnostics = H.EMPTY,
           rules = { { index = 0, message = "user msg", line = 1 } } } } },
      { name = "compile can emit the generated Lua",
        request = { method = "POST", path = "/v1/compile", body = { policy = P.E1, emit_lua = true } },
        expect = { status = 200, json = { valid = true, lua = function(s)
           return type(s) == "string" and s:find("rule", 1, true) end } } },
      { name = "compile reports diagnostics of a bad policy",
        request = { method = "POST", path = "/v1/compile", body = { policy = 'raise "x" if:\n    (m: Mesage)' } },
        expect = { status = 422, json = { ok = false, diagnostics = { { line = 2, column = 6 } },
           error = { code = "policy_invalid", diagnostics = { { line = 2, column = 6 } } } } } },
   })
end)

describe("stored policies", function()
   local srv, sid
   setup(function()
      srv = H.start {}
      sid = srv:session()
   end)
   teardown(function() if srv then srv:stop() end end)
   local function base() return "/v1/sessions/" .. sid .. "/policies" end

   it("creates policies with default and client-chosen ids", function()
      local st, j = srv:post(base(), { policy = P.E1 })
      assert.equal(201, st)
      H.assert_match({ id = "1", name = "Policy #1", language = "invariant", policy = P.E1,
         rules = { { index = 0, message = "user msg", line = 1 } }, created_at = H.ANY }, j)
      st, j = srv:post(base(), { policy = P.E2, id = "assist", name = "assistant X" })
      assert.equal(201, st)
      H.assert_match({ id = "assist", name = "assistant X" }, j)
      st, j = srv:post(base(), { policy = P.E2, id = "assist" })
      assert.equal(409, st)
      assert.equal("conflict", j.error.code)
      st, j = srv:post(base(), { policy = P.LUA, language = "lua", id = "lua" })
      assert.equal(201, st)
      assert.equal("lua", j.language)
   end)

   it("refuses a policy that does not compile and stores nothing", function()
      local st, j = srv:post(base(), { policy = 'raise "x" if:\n    (m: Mesage)', id = "bad" })
      assert.equal(422, st)
      assert.equal("policy_invalid", j.error.code)
      assert.equal(404, (srv:get(base() .. "/bad")))
   end)

   it("lists policies in creation order and counts them on the session", function()
      local st, j = srv:get(base())
      assert.equal(200, st)
      H.assert_match({ policies = { { id = "1" }, { id = "assist" }, { id = "lua" } } }, j)
      local _, s = srv:get("/v1/sessions/" .. sid)
      assert.equal(3, s.policies)
   end)

   it("analyzes a trace with a stored policy", function()
      local st, j = srv:post(base() .. "/1/analyze", { trace = T.E1 })
      assert.equal(200, st)
      H.assert_match({ violations = { E1_VIOLATION } }, j)
      st, j = srv:post(base() .. "/assist/analyze", { trace = T.E2 })
      assert.equal(200, st)
      H.assert_match({ violations = { { ranges = { "messages.0", "messages.0.content:7-8" } } } }, j)
      st, j = srv:post(base() .. "/lua/analyze", { trace = { { role = "user", content = "secret" } } })
      assert.equal(200, st)
      assert.equal(1, #j.violations)
   end)

   it("replaces a policy with PUT", function()
      local st, j = srv:put(base() .. "/1", { policy = P.E10 })
      assert.equal(200, st)
      H.assert_match({ id = "1", name = "Policy #1", policy = P.E10 }, j)
      st, j = srv:post(base() .. "/1/analyze", { trace = T.E10, parameters = { word = "ell" } })
      assert.equal(200, st)
      H.assert_match({ violations = { { ranges = { "messages.0", "messages.0.content:1-4" } } } }, j)
      st, j = srv:get(base() .. "/1")
      assert.equal(200, st)
      assert.equal(P.E10, j.policy)
      st = srv:put(base() .. "/nosuch", { policy = P.E1 })
      assert.equal(404, st)
   end)

   it("deletes a policy", function()
      local st, j = srv:delete(base() .. "/assist")
      assert.equal(200, st)
      H.assert_match({ id = "assist", deleted = true }, j)
      assert.equal(404, (srv:get(base() .. "/assist")))
      st, j = srv:post(base() .. "/assist/analyze", { trace = T.E2 })
      assert.equal(404, st)
      assert.equal("not_found", j.error.code)
      assert.equal(404, (srv:delete(base() .. "/assist")))
   end)

   it("answers 404 for policies of an unknown session", function()
      assert.equal(404, (srv:get("/v1/sessions/nosuch/policies")))
      assert.equal(404, (srv:post("/v1/sessions/nosuch/policies", { policy = P.E1 })))
   end)
end)

describe("large traces", function()
   local srv
   setup(function() srv = H.start { db = ":memory:" } end)
   teardown(function() if srv then srv:stop() end end)

   it("checks a 10,000-event trace end to end", function()
      local trace = {}
      for i = 1, 10000 do
         if i % 2 == 0 then
            trace[i] = { role = "assistant", content = H.null, tool_calls = { { id = "c" .. i,
               type = "function", ["function"] = { name = "read", arguments = { path = "/f" .. i } } } } }
         else
            trace[i] = { role = "tool", tool_call_id = "c" .. (i - 1),
               content = (i % 100 == 1) and "a secret here" or ("output " .. i) }
         end
      end
      local policy = 'raise "t" if:\n    (o: ToolOutput)\n    "secret" in o.content'
      local t0 = os.time()
      local st, j = srv:post("/v1/check", { policy = policy, trace = trace })
      assert.equal(200, st)
      assert.equal(100, #j.violations)
      H.assert_match({ key = "(0, (0,))", ranges = { "messages.0", "messages.0.content:2-8" } },
         j.violations[1])
      H.assert_match({ key = "(0, (9900,))" }, j.violations[100])
      assert.truthy(os.time() - t0 < 10)
   end)
end)

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

   it("also limits one API key spread over several client addresses", function()
      H.sleep(1.2)
      local function get(addr, key)
         return H.sh(("curl -s -o /dev/null -w '%%{http_code}' --max-time 5 --interface %s " ..
            "-H 'Authorization: Bearer %s' %s/v1/sessions/nosuch 2>/dev/null"):format(addr, key, srv.base))
      end
      -- 16 requests from 4 addresses (4 each: within every address's burst of 5), one key
      local limited = 0
      for i = 1, 16 do
         if get("127.0.0." .. (2 + i % 4), "shared-key") == "429" then limited = limited + 1 end
      end
      assert.truthy(limited >= 6, "limited " .. limited)
      -- the same from four addresses with four keys: nobody is over a limit
      H.sleep(1.2)
      limited = 0
      for i = 1, 16 do
         if get("127.0.0." .. (2 + i % 4), "key-" .. i % 4) == "429" then limited = limited + 1 end
      end
      assert.equal(0, limited)
   end)
end)

-- ---------------------------------------------------------------------------------------------
-- The hostile client: every limit hit from outside, on every route that has it. Each answer is
-- a JSON error with the documented status (native {"error": {code, message}}, compatibility
-- {"detail"}), never a 5xx other than 503/504, and the server keeps serving. Inventory:
-- docs/limits.md.

local USER_POL = 'raise "u" if:\n    (m: Message)\n    m.role == "user"'

local function write(srv, name, ...)
   local path = srv.dir .. "/" .. name
   local f = assert(io.open(path, "wb"))
   f:write(...)
   f:close()
   return { file = path }
end

-- Every route that takes a JSON body, with the sessions, policies and monitors it needs.
local function body_routes(sid, csid)
   local s, c = "/v1/sessions/" .. sid, "?session_id=" .. csid
   return {
      { "POST", "/v1/check" }, { "POST", "/v1/compile" }, { "POST", "/v1/sessions" },
      { "POST", s .. "/policies" }, { "PUT", s .. "/policies/p" },
      { "POST", s .. "/policies/p/analyze" }, { "POST", s .. "/monitors" },
      { "POST", s .. "/monitors/m/events" },
      { "POST", "/policy/new" .. c, compat = true }, { "PUT", "/policy/1" .. c, compat = true },
      { "POST", "/policy/1/analyze" .. c, compat = true },
      { "POST", "/monitor/new" .. c, compat = true },
      { "POST", "/monitor/1/check" .. c, compat = true },
      { "POST", "/api/policy/analyze", compat = true }, { "POST", "/api/monitor/check", compat = true },
      { "POST", "/api/v1/policy/check", compat = true }, { "POST", "/api/v1/policy/load", compat = true },
   }
end

local function assert_error(route, st, j, raw, statuses)
   local ok = false
   for _, want in ipairs(statuses) do ok = ok or st == want end
   assert(ok, string.format("%s %s: status %s; body %s", route[1], route[2], tostring(st),
      raw:sub(1, 300)))
   if route.compat then
      assert(type(j) == "table" and type(j.detail) == "string",
         route[2] .. ": expected {detail}, got " .. raw:sub(1, 300))
   else
      assert(type(j) == "table" and type(j.error) == "table" and type(j.error.code) == "string" and
         type(j.error.message) == "string", route[2] .. ": expected {error}, got " .. raw:sub(1, 300))
   end
end

describe("hostile requests", function()
   local srv, sid, csid
   setup(function()
      -- loops stop on the instruction budget (fast and independent of the machine's load), memory
      -- bombs on the cap long before the budget; the deadline is for what runs inside C
      srv = H.start { args = { "--max-events", "1000", "--max-policy", "4096", "--deadline-ms", "1500",
         "--instr-budget", "50000000", "--mem-limit", "32M" }, db = ":memory:" }
      sid = srv:session()
      assert.equal(201, (srv:post("/v1/sessions/" .. sid .. "/policies", { id = "p", policy = USER_POL })))
      assert.equal(201, (srv:post("/v1/sessions/" .. sid .. "/monitors", { id = "m", policy_id = "p" })))
      local _, j = srv:get("/session/new")
      csid = j.id
      assert.equal(200, (srv:post("/policy/new?session_id=" .. csid, { rule = USER_POL })))
      assert.equal(200, (srv:post("/monitor/new?session_id=" .. csid, { policy_id = 1 })))
   end)
   teardown(function() if srv then srv:stop() end end)

   local function serves()
      local st, j = srv:post("/v1/sessions/" .. sid .. "/policies/p/analyze",
         { trace = { { role = "user", content = "still here" } } })
      assert.equal(200, st)
      assert.equal(1, #j.violations)
      st, j = srv:post("/v1/check", { policy = USER_POL, trace = { { role = "user", content = "x" } } })
      assert.equal(200, st)
      assert.equal(1, #j.violations)
   end

   it("refuses JSON nested 100,000 deep on every body route (400/422, an error body)", function()
      local depth = 100000
      local body = write(srv, "deep.json", '{"policy": "x", "trace": ', string.rep("[", depth),
         string.rep("]", depth), ', "events": [], "messages": [], "past_events": [],',
         ' "pending_events": [], "rule": "x"}')
      for _, route in ipairs(body_routes(sid, csid)) do
         local st, j, raw = srv:request(route[1], route[2], body)
         assert_error(route, st, j, raw, { 400, 422 })
      end
      -- an array of objects nested deep inside one event's field
      local evs = write(srv, "deep-ev.json", '{"events": [{"role": "user", "content": "x", "extra": ',
         string.rep('{"a":', depth), "1", string.rep("}", depth), "}]}")
      local st, j, raw = srv:post("/v1/sessions/" .. sid .. "/monitors/m/events", evs)
      assert_error({ "POST", "events" }, st, j, raw, { 400 })
      serves()
   end)

   it("refuses nesting between the host's and the worker's JSON limits with a 400, keeping the worker",
      function()
         local w = srv:worker_pid(sid)
         local depth = 1500 -- accepted by the host's parser (2048), refused by the worker's (1000)
         local evs = write(srv, "mid-ev.json", '{"events": [{"role": "user", "content": "x", "extra": ',
            string.rep("[", depth), string.rep("]", depth), "}]}")
         local st, j, raw = srv:post("/v1/sessions/" .. sid .. "/monitors/m/events", evs)
         assert_error({ "POST", "events" }, st, j, raw, { 400 })
         assert.equal(w, srv:worker_pid(sid))
         local _, m = srv:get("/v1/sessions/" .. sid .. "/monitors/m")
         assert.equal(0, m.events_seen)
         serves()
      end)

   it("answers 413 to a 1,000,000-event trace on every trace route", function()
      local evs = string.rep("{},", 999999) .. "{}"
      local s, c = "/v1/sessions/" .. sid, "?session_id=" .. csid
      local cases = {
         { "POST", "/v1/check", '{"policy": "x", "trace": [' .. evs .. "]}" },
         { "POST", s .. "/policies/p/analyze", '{"trace": [' .. evs .. "]}" },
         { "POST", s .. "/monitors/m/events", '{"events": [' .. evs .. "]}" },
         { "POST", "/policy/1/analyze" .. c, '{"trace": [' .. evs .. "]}", compat = true },
         { "POST", "/monitor/1/check" .. c, '{"past_events": [' .. evs .. '], "pending_events": []}',
            compat = true },
         { "POST", "/api/policy/analyze", '{"policy": "x", "trace": [' .. evs .. "]}", compat = true },
         { "POST", "/api/monitor/check", '{"policy": "x", "past_events": [], "pending_events": [' ..
            evs .. "]}", compat = true },
         { "POST", "/api/v1/policy/check", '{"policy": "x", "messages": [' .. evs .. "]}", compat = true },
      }
      for i, route in ipairs(cases) do
         local st, j, raw = srv:request(route[1], route[2], write(srv, "m" .. i .. ".json", route[3]))
         assert_error(route, st, j, raw, { 413 })
      end
      local _, m = srv:get("/v1/sessions/" .. sid .. "/monitors/m")
      assert.equal(0, m.events_seen)
      serves()
   end)

   it("answers 413 to a policy over --max-policy on every route that takes one", function()
      local big = 'raise "x" if:\n    (m: Message)\n    m.content == "' .. string.rep("a", 5000) .. '"'
      local s, c = "/v1/sessions/" .. sid, "?session_id=" .. csid
      local tr = { { role = "user", content = "x" } }
      local cases = {
         { "POST", "/v1/check", { policy = big, trace = tr } },
         { "POST", "/v1/compile", { policy = big } },
         { "POST", s .. "/policies", { policy = big } },
         { "PUT", s .. "/policies/p", { policy = big } },
         { "POST", s .. "/monitors", { policy = big } },
         { "POST", "/policy/new" .. c, { rule = big }, compat = true },
         { "PUT", "/policy/1" .. c, { rule = big }, compat = true },
         { "POST", "/monitor/new" .. c, { rule = big }, compat = true },
         { "POST", "/api/policy/analyze", { policy = big, trace = tr }, compat = true },
         { "POST", "/api/monitor/check", { policy = big, past_events = H.A0, pending_events = tr },
            compat = true },
         { "POST", "/api/v1/policy/check", { policy = big, messages = tr }, compat = true },
         { "POST", "/api/v1/policy/load", { policy = big }, compat = true },
      }
      for _, route in ipairs(cases) do
         local st, j, raw = srv:request(route[1], route[2], route[3])
         assert_error(route, st, j, raw, { 413 })
      end
      -- nothing was replaced
      local _, p = srv:get(s .. "/policies/p")
      assert.equal(USER_POL, p.policy)
      local _, cp = srv:get("/policy/1" .. c)
      assert.equal(USER_POL, cp.rule)
      serves()
   end)

   -- Policies that attack the evaluator. Lua policies declare one rule whose condition runs CODE.
   local function lua_pol(code)
      return 'rule { line = 1, raise = "x",\n  var("m", "Message", 1, 1),\n' ..
         '  cond({"m"}, 1, 1, function(c, e) ' .. code .. ' end),\n}'
   end
   local attacks = {
      { "a loop that never ends", lua_pol("while true do end"), 504, "deadline_exceeded" },
      { "a loop inside pcall", lua_pol("pcall(function() while true do end end) return true"), 504,
         "deadline_exceeded" },
      { "a table that grows forever", lua_pol("local t = {} for i = 1, 1e10 do t[i] = i end"), 503,
         "memory_limit" },
      { "a string doubled 40 times", lua_pol("local s = 'x' for i = 1, 40 do s = s .. s end return true"),
         503, "memory_limit" },
      { "string.rep of 2 GiB", lua_pol("return #string.rep('x', 2^31) > 0"), 422, "evaluation_error" },
      { "string.rep of 200 MiB with a separator", lua_pol("return #string.rep('x', 1e8, 'yy') > 0"), 503,
         "memory_limit" },
      { "load of bytecode", lua_pol("return load('\\27LuaT\\0', 'x', 'b') ~= nil"), 422,
         "evaluation_error" },
      { "a coroutine", lua_pol("return coroutine.wrap(function() while true do end end)()"), 422,
         "evaluation_error" },
      { "a __gc finalizer", lua_pol("setmetatable({}, {__gc = function() while true do end end}) return true"),
         422, "evaluation_error" },
      { "infinite recursion", lua_pol("local function f() return 1 + f() end return f()"),
         { 422, 503, 504 }, { evaluation_error = true, memory_limit = true, deadline_exceeded = true } },
      { "Lua-pattern backtracking in C (the watchdog kills the worker)",
         lua_pol("return string.find(string.rep('a', 40), string.rep('a*', 30) .. 'c') ~= nil"), 504,
         "deadline_exceeded", stateless_only = true },
      { "a catastrophic regex", 'raise "x" if:\n    (m: Message)\n    match("(a+)+$", m.content)',
         422, "evaluation_error", invariant = true,
         trace = { { role = "user", content = string.rep("a", 5000) .. "!" } } },
      { "a string multiplied to 1 GB", 'raise "x" if:\n    (m: Message)\n    x := "a" * 1000000000\n' ..
         '    len(x) > 1', 503, "memory_limit", invariant = true },
   }
   for _, a in ipairs(attacks) do
      it("stops a policy with " .. a[1] .. " on /v1/check and in a session",
         function()
            local tr = a.trace or { { role = "user", content = "x" } }
            local lang = a.invariant and "invariant" or "lua"
            local function expect(st, j, raw)
               if type(a[3]) == "table" then
                  assert.truthy(st == a[3][1] or st == a[3][2] or st == a[3][3], raw)
                  assert.truthy(a[4][j.error.code], raw)
               else
                  assert.equal(a[3], st, raw)
                  assert.equal(a[4], j.error.code)
               end
            end
            local st, j, raw = srv:post("/v1/check", { policy = a[2], language = lang, trace = tr })
            expect(st, j, raw)
            if a.stateless_only then -- (the session case is "host limits" above, through eval)
               serves()
               return
            end
            local other = srv:session()
            st, j, raw = srv:post("/v1/sessions/" .. other .. "/policies",
               { id = "evil", policy = a[2], language = lang })
            assert.equal(201, st, raw)
            st, j, raw = srv:post("/v1/sessions/" .. other .. "/policies/evil/analyze", { trace = tr })
            expect(st, j, raw)
            -- the session still answers, and so does everyone else
            st = srv:post("/v1/sessions/" .. other .. "/policies", { id = "ok", policy = USER_POL })
            assert.equal(201, st)
            st, j = srv:post("/v1/sessions/" .. other .. "/policies/ok/analyze",
               { trace = { { role = "user", content = "y" } } })
            assert.equal(200, st)
            assert.equal(1, #j.violations)
            assert.equal(200, (srv:delete("/v1/sessions/" .. other)))
            serves()
         end)
   end

   it("answers the compatibility routes with their own shapes when a policy attacks", function()
      local loop = lua_pol("while true do end")
      -- invariant-server policies are Invariant source; an Invariant policy cannot loop, so the
      -- hostile one allocates: a failure inside the worker is a 200 JSON string there
      local alloc = 'raise "x" if:\n    (m: Message)\n    x := "a" * 1000000000\n    len(x) > 1'
      local tr = { { role = "user", content = "x" } }
      local st, j = srv:post("/api/policy/analyze", { policy = alloc, trace = tr },
         { ["Cache-Control"] = "no-cache" })
      assert.equal(200, st)
      assert.equal("string", type(j))
      st, j = srv:post("/api/v1/policy/check", { policy = alloc, messages = tr })
      assert.equal(503, st)
      assert.equal("string", type(j.detail))
      assert.equal(nil, loop:find("invariant")) -- (lua policies are native-only)
      serves()
   end)
end)

describe("an answer above the IPC frame limit", function()
   local srv
   setup(function() srv = H.start { db = ":memory:" } end)
   teardown(function() if srv then srv:stop() end end)

   it("is a 422 result_too_large, not a 500, and the pool keeps serving", function()
      -- 8 violations of 3 MB, each rendered three times: above the 64 MiB frame limit
      local pol = 'rule { line = 1, raise = function(c, e) return string.rep("x", 3000000) .. ' ..
         'e.m.content end,\n  var("m", "Message", 1, 1),\n}'
      local tr = {}
      for i = 1, 8 do tr[i] = { role = "user", content = "m" .. i } end
      local st, j, raw = srv:post("/v1/check", { policy = pol, language = "lua", trace = tr })
      assert.equal(422, st, raw:sub(1, 300))
      assert.equal("result_too_large", j.error.code)
      st, j = srv:post("/v1/check", { policy = USER_POL, trace = { { role = "user", content = "x" } } })
      assert.equal(200, st)
      assert.equal(1, #j.violations)
   end)
end)

describe("a session filled to its memory cap", function()
   local srv
   setup(function() srv = H.start { args = { "--mem-limit", "10M" }, db = ":memory:" } end)
   teardown(function() if srv then srv:stop() end end)

   it("refuses more policies with 503 memory_limit (not 422, not 500) and survives replay", function()
      local sid = srv:session()
      local lines = {}
      for i = 1, 300 do lines[i] = '    m.content == "' .. string.rep("c" .. i, 20) .. '"' end
      local big = 'raise "x" if:\n    (m: Message)\n' .. table.concat(lines, "\n")
      local created, refused = 0, 0
      for _ = 1, 120 do
         local st, j, raw = srv:post("/v1/sessions/" .. sid .. "/policies", { policy = big })
         if st == 201 then
            created = created + 1
         else
            assert.equal(503, st, raw:sub(1, 300))
            assert.equal("memory_limit", j.error.code)
            refused = refused + 1
            if refused >= 2 then break end
         end
      end
      assert.truthy(created > 0 and refused > 0, created .. " created, " .. refused .. " refused")
      local w = srv:worker_pid(sid)
      os.execute("kill -KILL " .. w)
      local st, j = srv:post("/v1/sessions/" .. sid .. "/policies/1/analyze",
         { trace = { { role = "user", content = "x" } } })
      assert.equal(200, st)
      assert.same({}, j.violations)
      local _, s = srv:get("/v1/sessions/" .. sid)
      assert.equal(created, s.policies)
   end)
end)

describe("sessions at the limits", function()
   local srv
   setup(function()
      srv = H.start { args = { "--max-sessions", "2", "--session-ttl-max", "100" }, db = ":memory:" }
   end)
   teardown(function() if srv then srv:stop() end end)

   it("clamps a ttl above --session-ttl-max and refuses bad ids and ttls with 400", function()
      local st, j = srv:post("/v1/sessions", { ttl = 1000000 })
      assert.equal(201, st)
      assert.equal(100, j.ttl)
      assert.equal(200, (srv:delete("/v1/sessions/" .. j.id)))
      for _, body in ipairs { { id = string.rep("x", 65) }, { id = "a/b" }, { id = "" }, { ttl = -1 },
         { ttl = 0.5 }, { ttl = "1" }, '{"ttl": 1e999}', '{"ttl": 99999999999999999999999}',
         '{"ttl": 5, "ttl": 6}' } do
         st, j = srv:post("/v1/sessions", body)
         assert.equal(400, st)
         assert.equal("bad_request", j.error.code)
      end
   end)

   it("answers 429 beyond --max-sessions on the compatibility route too", function()
      local a = srv:session()
      local b = srv:session()
      local st, j, hdr
      st, j, _, hdr = srv:post("/v1/sessions", {})
      assert.equal(429, st)
      assert.equal("string", type(j.error.code))
      st, j = srv:get("/session/new")
      assert.equal(429, st)
      assert.equal("string", type(j.detail))
      assert.equal(200, (srv:delete("/v1/sessions/" .. a)))
      st = srv:get("/session/new")
      assert.equal(200, st)
      assert.equal(200, (srv:delete("/v1/sessions/" .. b)))
      assert.truthy(hdr)
   end)
end)

describe("the HTTP layer under abuse", function()
   local srv
   setup(function() srv = H.start { db = ":memory:" } end)
   teardown(function() if srv then srv:stop() end end)

   local function curl_raw(args)
      local q = {}
      for i, a in ipairs(args) do q[i] = H.quote(a) end
      return H.sh("curl -s -o /dev/null -w '%{http_code}' --max-time 10 " .. table.concat(q, " ") ..
         " 2>/dev/null")
   end

   it("answers an over-long URL and over-large headers with 414/431 and keeps serving", function()
      -- refused by libmicrohttpd itself (its connection memory limit, 128 KiB), before routing:
      -- the body is libmicrohttpd's short HTML page, not JSON
      local hdr = srv.dir .. "/hdr.txt"
      local f = assert(io.open(hdr, "wb"))
      f:write("X-Big: ", string.rep("a", 120000), "\r\n")
      for i = 1, 200 do f:write("X-Many-" .. i .. ": " .. string.rep("b", 100) .. "\r\n") end
      f:close()
      assert.equal("431", curl_raw { "-H", "@" .. hdr, srv.base .. "/healthz" })
      local q = srv.dir .. "/q.txt"
      f = assert(io.open(q, "wb"))
      f:write(string.rep("q", 200000))
      f:close()
      assert.equal("414", curl_raw { "-G", "--data-urlencode", "q@" .. q, srv.base .. "/healthz" })
      assert.equal(200, (srv:get("/healthz")))
   end)

   it("answers a wrong Content-Length with 400 and an oversized one with 413", function()
      assert.equal("400", curl_raw { "-X", "POST", "-H", "Content-Length: abc", "--data-binary", "{}",
         srv.base .. "/v1/check" })
      local st, j = srv:post("/v1/check", "{}", { ["Content-Length"] = "99999999999" })
      assert.equal(413, st)
      assert.equal("too_large", j.error.code)
      assert.equal(200, (srv:get("/healthz")))
   end)

   it("keeps serving others while slow clients trickle their bodies (slowloris)", function()
      local pids = {}
      local body = srv.dir .. "/slow.json"
      local f = assert(io.open(body, "wb"))
      f:write('{"policy": "', string.rep("s", 4000), '", "trace": []}')
      f:close()
      for _ = 1, 8 do
         local pid = H.sh(string.format("curl -s -o /dev/null --limit-rate 100 -X POST " ..
            "--data-binary @%s %s/v1/check >/dev/null 2>&1 & echo $!", H.quote(body), srv.base))
         pids[#pids + 1] = tonumber(pid:match("%d+"))
      end
      H.sleep(0.5)
      for _ = 1, 5 do
         local t0 = os.time()
         local st = srv:post("/v1/check", { policy = USER_POL, trace = { { role = "user", content = "x" } } })
         assert.equal(200, st)
         assert.equal(200, (srv:get("/healthz")))
         assert.truthy(os.time() - t0 <= 2)
      end
      local _, _, m = srv:get("/metrics")
      assert.truthy(tonumber(m:match("vigil_http_inflight (%d+)")) >= 8)
      for _, p in ipairs(pids) do os.execute("kill " .. p .. " 2>/dev/null") end
   end)
end)

describe("--instr-budget", function()
   local srv
   setup(function()
      srv = H.start { args = { "--instr-budget", "1000000", "--deadline-ms", "30000" }, db = ":memory:" }
   end)
   teardown(function() if srv then srv:stop() end end)

   it("stops a busy policy on the instruction budget long before the deadline (504), pool intact",
      function()
         local pol = 'rule { line = 1, raise = "x",\n  var("m", "Message", 1, 1),\n' ..
            '  cond({"m"}, 1, 1, function(c, e) local x = 0 for i = 1, 1e9 do x = x + i end return true end),\n}'
         local t0 = os.time()
         local st, j = srv:post("/v1/check", { policy = pol, language = "lua",
            trace = { { role = "user", content = "x" } } })
         assert.equal(504, st)
         assert.equal("deadline_exceeded", j.error.code)
         assert.truthy(os.time() - t0 <= 5)
         st, j = srv:post("/v1/check", { policy = USER_POL, trace = { { role = "user", content = "x" } } })
         assert.equal(200, st)
         assert.equal(1, #j.violations)
      end)
end)

describe("--max-connections", function()
   local srv
   setup(function() srv = H.start { args = { "--max-connections", "8" }, db = ":memory:" } end)
   teardown(function() if srv then srv:stop() end end)

   it("lets one address hold all connections but an eighth: its extra ones close at once, others are served",
      function()
         local body = srv.dir .. "/slow.json"
         local f = assert(io.open(body, "wb"))
         f:write(string.rep("a", 3000))
         f:close()
         local pids = {}
         for _ = 1, 10 do
            local pid = H.sh(string.format("curl -s -o /dev/null --limit-rate 200 -X POST " ..
               "--data-binary @%s %s/v1/check >/dev/null 2>&1 & echo $!", H.quote(body), srv.base))
            pids[#pids + 1] = tonumber(pid:match("%d+"))
         end
         -- wait (asking from another address) until the slow address holds its 7 connections
         for _ = 1, 50 do
            local m = H.sh("curl -s --max-time 5 --interface 127.0.0.2 " .. srv.base .. "/metrics")
            if tonumber(m:match("vigil_http_inflight (%d+)") or 0) >= 8 then break end
            H.sleep(0.1)
         end
         local function get(extra)
            local t0 = os.time()
            local code = H.sh("curl -s -o /dev/null -w '%{http_code}' --max-time 5 " .. extra .. " " ..
               srv.base .. "/healthz 2>/dev/null")
            return code, os.time() - t0
         end
         -- another client address (127.0.0.2 is loopback too) still gets a connection
         local code, dt = get("--interface 127.0.0.2")
         assert.equal("200", code)
         assert.truthy(dt <= 2)
         -- the slow address is over its share: refused at once rather than queued
         code, dt = get("")
         assert.equal("000", code)
         assert.truthy(dt <= 2)
         for _, p in ipairs(pids) do os.execute("kill " .. p .. " 2>/dev/null") end
         H.sleep(0.3)
         assert.equal(200, (srv:get("/healthz")))
      end)
end)

-- The server shell: health, readiness, metrics, docs, routing errors, body limits, logging.
local H = require "tests.e2e.helper"

describe("vigild server", function()
   local srv
   setup(function()
      srv = H.start { args = { "--max-body", "1M", "--max-events", "50", "--max-policy", "2048" } }
   end)
   teardown(function()
      if srv then srv:stop() end
   end)
   local function S() return srv end

   H.cases(it, S, {
      { name = "GET /healthz is ok", request = { method = "GET", path = "/healthz" },
        expect = { status = 200, json = { status = "ok" } } },
      { name = "GET /readyz reports jail, store and spawn", request = { method = "GET", path = "/readyz" },
        expect = { status = 200, json = { ready = true, store_writable = true, worker_spawn = true,
           jail = { full = true, insecure_no_jail = false, summary = H.ANY } } } },
      { name = "unknown route is a JSON 404", request = { method = "GET", path = "/nope" },
        expect = { status = 404, json = { error = { code = "not_found", message = H.ANY } } } },
      { name = "unknown session is a 404", request = { method = "GET", path = "/v1/sessions/nosuch" },
        expect = { status = 404, json = { error = { code = "not_found" } } }, twice = true },
      { name = "wrong method is a 405", request = { method = "PUT", path = "/v1/sessions" },
        expect = { status = 405, json = { error = { code = "method_not_allowed" } } } },
      { name = "malformed JSON is a 400", request = { method = "POST", path = "/v1/sessions", body = "{\"id\": " },
        expect = { status = 400, json = { error = { code = "bad_request", message = H.ANY } } } },
      { name = "malformed JSON on /v1/check is a 400",
        request = { method = "POST", path = "/v1/check", body = "[1, 2" },
        expect = { status = 400, json = { error = { code = "bad_request" } } } },
      { name = "a JSON array body is a 400", request = { method = "POST", path = "/v1/check", body = "[]" },
        expect = { status = 400, json = { error = { code = "bad_request" } } } },
      { name = "wrong field type is a 400",
        request = { method = "POST", path = "/v1/check", body = { policy = 12, trace = {} } },
        expect = { status = 400, json = { error = { code = "bad_request",
           message = function(m) return m:find("policy", 1, true) end } } } },
      { name = "trace must be an array",
        request = { method = "POST", path = "/v1/check", body = { policy = "x", trace = "no" } },
        expect = { status = 400, json = { error = { code = "bad_request" } } } },
      { name = "unknown language is a 400",
        request = { method = "POST", path = "/v1/compile", body = { policy = "x", language = "python" } },
        expect = { status = 400, json = { error = { code = "bad_request" } } } },
      { name = "session ttl must be a positive integer",
        request = { method = "POST", path = "/v1/sessions", body = { ttl = "long" } },
        expect = { status = 400, json = { error = { code = "bad_request" } } } },
      { name = "a bad client id is a 400",
        request = { method = "POST", path = "/v1/sessions", body = { id = "a b/c" } },
        expect = { status = 400, json = { error = { code = "bad_request" } } } },
      { name = "eval is not exposed without --enable-eval",
        request = { method = "POST", path = "/v1/sessions/x/eval", body = { code = "return 1" } },
        expect = { status = 404 } },
      { name = "GET /docs is an HTML page", request = { method = "GET", path = "/docs" },
        expect = { status = 200, check = function(_, raw, hdr)
           assert.truthy(hdr:lower():find("content-type: text/html", 1, true))
           assert.truthy(raw:find("/openapi.json", 1, true))
        end } },
   })

   it("serves /openapi.json from docs/openapi.json", function()
      local doc = H.slurp("docs/openapi.json")
      local st, j = srv:get("/openapi.json")
      if doc then
         assert.equal(200, st)
         assert.truthy(j and j.openapi)
         assert.truthy(j.paths)
      else
         assert.equal(404, st)
      end
   end)

   it("has a route for every operation in docs/openapi.json", function()
      local doc = H.slurp("docs/openapi.json")
      if not doc then return end
      local paths = H.json.decode(doc).paths
      local missing = {}
      for path, item in pairs(paths) do
         for method in pairs(item) do
            if method ~= "parameters" then
               local m = method:upper()
               local p = path:gsub("{%w+}", "x") .. "?session_id=x"
               local st, j = srv:request(m, p, (m == "POST" or m == "PUT") and "{}" or nil)
               local msg = type(j) == "table" and type(j.error) == "table" and j.error.message or ""
               if st == 405 or (st == 404 and msg:find("^no route")) then
                  missing[#missing + 1] = m .. " " .. path
               end
            end
         end
      end
      table.sort(missing)
      assert.same({}, missing)
   end)

   it("answers 413 to a body over --max-body (Content-Length)", function()
      local path = srv.dir .. "/big.json"
      local f = assert(io.open(path, "wb"))
      f:write('{"policy": "', string.rep("a", 1100 * 1024), '", "trace": []}')
      f:close()
      local st, j = srv:post("/v1/check", { file = path })
      assert.equal(413, st)
      assert.equal("too_large", j.error.code)
   end)

   it("answers 413 to a chunked body over --max-body", function()
      local path = srv.dir .. "/big2.json"
      local f = assert(io.open(path, "wb"))
      f:write('{"policy": "', string.rep("b", 1100 * 1024), '", "trace": []}')
      f:close()
      local st, j = srv:post("/v1/check", { file = path }, { ["Transfer-Encoding"] = "chunked" })
      assert.equal(413, st)
      assert.equal("too_large", j.error.code)
   end)

   it("answers 413 to a trace over --max-events and a policy over --max-policy", function()
      local trace = {}
      for i = 1, 51 do trace[i] = { role = "user", content = "m" .. i } end
      local st, j = srv:post("/v1/check", { policy = "x", trace = trace })
      assert.equal(413, st)
      assert.equal("too_large", j.error.code)
      st, j = srv:post("/v1/check", { policy = string.rep("y", 3000), trace = {} })
      assert.equal(413, st)
      assert.equal("too_large", j.error.code)
   end)

   it("exposes Prometheus metrics by route and status", function()
      srv:get("/healthz")
      local st, _, raw, hdr = srv:get("/metrics")
      assert.equal(200, st)
      assert.truthy(hdr:lower():find("content-type: text/plain", 1, true))
      assert.truthy(raw:find('vigil_http_requests_total{method="GET",route="/healthz",status="200"} ', 1, true))
      assert.truthy(raw:find("vigil_worker_spawns_total %d+"))
      assert.truthy(raw:find("vigil_worker_deaths_total %d+"))
      assert.truthy(raw:find("vigil_sessions %d+"))
   end)

   it("logs one line per request with method, path, status and duration", function()
      srv:get("/healthz?probe=logline")
      H.sleep(0.1)
      local log = srv:log()
      assert.truthy(log:find("GET /healthz 200 [%d%.]+ms"))
      assert.truthy(log:find("GET /nope 404 [%d%.]+ms"))
      assert.falsy(log:find("INSECURE", 1, true))
   end)

   it("--help lists the options", function()
      local out = H.sh(H.quote(H.bin) .. " --help")
      for _, flag in ipairs { "--listen", "--db", "--insecure-no-jail", "--enable-eval", "--max-body",
         "--session-ttl", "--idle-evict", "--max-sessions", "--deadline-ms", "--mem-limit",
         "--max-concurrent", "--log-level", "VIGIL_LISTEN", "VIGIL_DB" } do
         assert.truthy(out:find(flag, 1, true), flag)
      end
   end)

   it("rejects an unknown option", function()
      local out = H.sh(H.quote(H.bin) .. " --frobnicate 2>&1; echo rc=$?")
      assert.truthy(out:find("unknown option", 1, true))
      assert.truthy(out:find("rc=2", 1, true))
   end)
end)

describe("the jail check at startup", function()
   local SIM = { VIGIL_TEST_JAIL_UNAVAILABLE = "1" }

   it("refuses to start without the jail unless --insecure-no-jail is given", function()
      local dir = H.tmpdir()
      local out = H.sh("VIGIL_TEST_JAIL_UNAVAILABLE=1 " .. H.quote(H.bin) ..
         " --listen 127.0.0.1:0 --db :memory: 2>&1; echo rc=$?")
      assert.truthy(out:find("refusing to start", 1, true), out)
      assert.truthy(out:find("--insecure-no-jail", 1, true))
      assert.truthy(out:find("rc=3", 1, true))
      os.execute("rm -rf " .. H.quote(dir))
   end)

   it("with --insecure-no-jail says so in every log line and in /readyz", function()
      local srv = H.start { args = { "--insecure-no-jail", "--enable-eval" }, db = ":memory:", env = SIM }
      local st, j = srv:get("/readyz")
      srv:get("/healthz")
      local sid = srv:session()
      local est, ej = srv:post("/v1/sessions/" .. sid .. "/eval", { code = "return 1 + 1" })
      local w = srv:worker_pid(sid)
      local status = H.slurp("/proc/" .. w .. "/status") or ""
      srv:stop(nil, nil, true)
      assert.equal(200, st)
      H.assert_match({ ready = true, jail = { full = false, insecure_no_jail = true }, warning = H.ANY }, j)
      assert.equal(200, est)
      assert.equal(2, ej.value)
      -- the partial jail still has seccomp and no_new_privs
      assert.truthy(status:find("\nSeccomp:%s+2\n"))
      assert.truthy(status:find("\nNoNewPrivs:%s+1\n"))
      local n, marked = 0, 0
      for line in srv:log():gmatch("[^\n]+") do
         n = n + 1
         if line:find("INSECURE", 1, true) then marked = marked + 1 end
      end
      assert.truthy(n >= 5)
      assert.equal(n, marked)
      srv:stop()
   end)

   it("keeps the full jail when --insecure-no-jail is given on a machine that has it", function()
      local srv = H.start { args = { "--insecure-no-jail" }, db = ":memory:" }
      local st, j = srv:get("/readyz")
      srv:stop(nil, nil, true)
      assert.equal(200, st)
      H.assert_match({ jail = { full = true, insecure_no_jail = false } }, j)
      assert.truthy(srv:log():find("keeping the full jail", 1, true))
      srv:stop()
   end)
end)

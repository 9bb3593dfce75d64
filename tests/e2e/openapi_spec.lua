-- openapi_spec.lua — docs/openapi.json is valid JSON, OpenAPI 3, and describes every route:
-- every path named in DESIGN.md "REST API", every route in vigild's routing tables
-- (host/api.c, host/compat.c) with its method, and every $ref resolves.
local cjson = require "cjson"

local function slurp(path)
   local f = io.open(path, "rb")
   if not f then return nil end
   local s = f:read("a")
   f:close()
   return s
end

local METHODS = { get = true, put = true, post = true, delete = true, patch = true, head = true,
   options = true }

describe("docs/openapi.json", function()
   local text = assert(slurp("docs/openapi.json"), "docs/openapi.json is missing")
   local ok, doc = pcall(cjson.decode, text)

   it("is valid JSON and OpenAPI 3.0", function()
      assert.is_true(ok, tostring(doc))
      assert.is_string(doc.openapi)
      assert.truthy(doc.openapi:match("^3%.0%.%d+$"))
      assert.is_table(doc.info)
      assert.is_string(doc.info.title)
      assert.is_string(doc.info.version)
      assert.is_table(doc.paths)
   end)

   it("gives every operation responses, and a request body schema where one is declared", function()
      for path, item in pairs(doc.paths) do
         assert.equal("/", path:sub(1, 1), path)
         for m, o in pairs(item) do
            if METHODS[m] then
               assert.is_table(o.responses, m .. " " .. path)
               assert.truthy(next(o.responses), m .. " " .. path .. " has no responses")
               if o.requestBody then
                  assert.is_table(o.requestBody.content["application/json"].schema, m .. " " .. path)
               end
            end
         end
      end
   end)

   it("declares path parameters for every {name} of a path", function()
      local function resolve(p)
         if p["$ref"] then
            local name = p["$ref"]:match("^#/components/parameters/(.+)$")
            return doc.components.parameters[name]
         end
         return p
      end
      for path, item in pairs(doc.paths) do
         for name in path:gmatch("{([^}]+)}") do
            for m, o in pairs(item) do
               if METHODS[m] then
                  local found = false
                  for _, list in ipairs({ item.parameters or {}, o.parameters or {} }) do
                     for _, p in ipairs(list) do
                        local r = resolve(p)
                        if r and r["in"] == "path" and r.name == name then found = true end
                     end
                  end
                  assert.is_true(found, m .. " " .. path .. ": no path parameter " .. name)
               end
            end
         end
      end
   end)

   it("resolves every $ref", function()
      local function walk(v)
         if type(v) ~= "table" then return end
         for k, x in pairs(v) do
            if k == "$ref" then
               local node = doc
               for part in x:gsub("^#/", ""):gmatch("[^/]+") do
                  node = type(node) == "table" and node[part] or nil
               end
               assert.is_table(node, "unresolved $ref " .. x)
            else
               walk(x)
            end
         end
      end
      walk(doc)
   end)

   it("has the native error schema {error: {code, message, line?, column?, diagnostics?}}", function()
      local e = doc.components.schemas.Error
      assert.is_table(e)
      local inner = e.properties.error
      for _, f in ipairs({ "code", "message", "line", "column", "diagnostics" }) do
         assert.is_table(inner.properties[f], "Error.error." .. f)
      end
   end)

   it("has every path named in DESIGN.md's REST API section", function()
      local design = slurp("../shared/DESIGN.md")
      if not design then
         pending("../shared/DESIGN.md not found")
         return
      end
      local section = design:match("\n## REST API\n(.-)\n## ") or design
      local names = {}
      for line in section:gmatch("[^\n]+") do
         -- the route table rows and the compatibility bullet list
         if line:match("^|") or line:match("^%- ") or line:match("^  ") then
            for tok in line:gmatch("`([^`]+)`") do
               for p in tok:gmatch("[/\xE2][%w_{}%./%-\x80-\xBF\xE2]*") do
                  if p:sub(1, 1) == "/" or p:sub(1, 3) == "…" then
                     if #p > 1 then p = p:gsub("/$", "") end
                     names[#names + 1] = p
                  end
               end
            end
         end
      end
      assert.truthy(#names > 20, "too few paths found in DESIGN.md")
      for _, p in ipairs(names) do
         local tail = p:gsub("^…", "")
         local found = false
         for path in pairs(doc.paths) do
            if path == tail or (p ~= tail and path:sub(-#tail) == tail) then found = true end
         end
         assert.is_true(found, "DESIGN.md route " .. p .. " is not in docs/openapi.json")
      end
   end)

   it("has every route of vigild's routing tables, with its method", function()
      local n = 0
      for _, file in ipairs({ "host/api.c", "host/compat.c" }) do
         local src = slurp(file)
         if src then
            for method, path in src:gmatch('{%s*"(%u+)",%s*"(/[^"]*)",%s*[%w_]+%s*}') do
               n = n + 1
               local item = doc.paths[path]
               assert.is_table(item, file .. ": " .. method .. " " .. path .. " is not in docs/openapi.json")
               assert.is_table(item[method:lower()], file .. ": " .. method .. " " .. path .. " has no operation")
            end
         end
      end
      if n == 0 then pending("no routing table found in host/") end
   end)

   it("passes openapi-spec-validator (when the Python package is installed)", function()
      local probe = os.execute("python3 -c 'import openapi_spec_validator' >/dev/null 2>&1")
      if not probe then
         pending("python3 with openapi_spec_validator not available")
         return
      end
      local p = io.popen("python3 -c 'import json, sys; from openapi_spec_validator import validate; "
         .. "validate(json.load(open(\"docs/openapi.json\"))); print(\"valid\")' 2>&1")
      local out = p:read("a")
      p:close()
      assert.equal("valid\n", out)
   end)
end)

-- The real vigild's answers match the schemas of docs/openapi.json: every native and
-- compatibility route is called once (happy path and a few errors) and its body validated.
describe("vigild answers match docs/openapi.json", function()
   local BUILD = os.getenv("VIGIL_BUILD") or "build"
   local doc = cjson.decode(slurp("docs/openapi.json") or "{}")
   local dir, pid, url

   local function sh(cmd)
      local _, _, code = os.execute(cmd)
      return code
   end
   local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

   -- a small validator for the subset of OpenAPI 3.0 schemas the document uses
   local function resolve(sc)
      while sc["$ref"] do
         local node = doc
         for part in sc["$ref"]:gsub("^#/", ""):gmatch("[^/]+") do node = node[part] end
         sc = node
      end
      return sc
   end
   local function jtype(v)
      if v == cjson.null then return "null" end
      local t = type(v)
      if t == "table" then
         if next(v) == nil then return "empty" end
         return v[1] ~= nil and "array" or "object"
      end
      if t == "number" then return math.type(v) == "integer" and "integer" or "number" end
      return t
   end
   local validate
   validate = function(v, sc, where)
      sc = resolve(sc)
      if sc.oneOf then
         for _, alt in ipairs(sc.oneOf) do
            if validate(v, alt, where) == nil then return nil end
         end
         return where .. ": matches no alternative of oneOf"
      end
      local t = jtype(v)
      if t == "null" then
         if sc.nullable or sc.type == nil then return nil end
         return where .. ": null but not nullable"
      end
      local want = sc.type
      if want then
         local okt = want == t or (want == "number" and t == "integer")
            or (want == "integer" and t == "number" and v == math.floor(v))
            or (t == "empty" and (want == "array" or want == "object"))
         if not okt then return where .. ": " .. t .. " where " .. want .. " is expected" end
      end
      if (want == "object" or sc.properties) and t == "object" then
         for _, r in ipairs(sc.required or {}) do
            if v[r] == nil then return where .. ": missing required field " .. r end
         end
         for k, x in pairs(v) do
            local psc = sc.properties and sc.properties[k]
            if not psc and type(sc.additionalProperties) == "table" then psc = sc.additionalProperties end
            if psc then
               local e = validate(x, psc, where .. "." .. k)
               if e then return e end
            end
         end
      end
      if want == "array" and sc.items and t == "array" then
         for i, x in ipairs(v) do
            local e = validate(x, sc.items, where .. "[" .. i .. "]")
            if e then return e end
         end
      end
      if sc.enum and t ~= "null" then
         local found = false
         for _, x in ipairs(sc.enum) do if x == v then found = true end end
         if not found then return where .. ": not one of the enum values" end
      end
      return nil
   end

   setup(function()
      local p = io.popen("mktemp -d")
      dir = p:read("l")
      p:close()
      sh(string.format("%s/vigild --listen 127.0.0.1:0 --db :memory: --enable-eval >%s/out 2>%s/err & echo $! >%s/pid",
         BUILD, dir, dir, dir))
      pid = (slurp(dir .. "/pid") or ""):match("%d+")
      for _ = 1, 100 do
         local addr = (slurp(dir .. "/out") or ""):match("listening on (%S+)")
         if addr then
            url = "http://" .. addr
            break
         end
         sh("sleep 0.1")
      end
   end)
   teardown(function()
      if pid then sh("kill -TERM " .. pid .. " 2>/dev/null; sleep 0.3; kill -KILL " .. pid .. " 2>/dev/null") end
      if dir and dir:match("^/tmp/") then sh("rm -rf " .. q(dir)) end
   end)

   -- call(method, path, body, template) -> status, decoded body; asserts the answer's schema
   local function call(method, path, body, tmpl)
      local bodyarg = ""
      if body then
         local f = assert(io.open(dir .. "/req.json", "wb"))
         f:write(cjson.encode(body))
         f:close()
         bodyarg = "-H 'Content-Type: application/json' --data-binary @" .. q(dir .. "/req.json")
      end
      local p = io.popen(string.format("curl -sS -m 30 -o %s -w '%%{http_code}' -X %s %s %s",
         q(dir .. "/resp"), method, bodyarg, q(url .. path)))
      local status = tonumber(p:read("a"))
      p:close()
      local raw = slurp(dir .. "/resp") or ""
      local op = doc.paths[tmpl or path][method:lower()]
      assert.is_table(op, method .. " " .. (tmpl or path) .. " is not documented")
      local r = op.responses[tostring(status)]
      assert.is_table(r, method .. " " .. (tmpl or path) .. ": status " .. tostring(status)
         .. " is not documented (" .. raw:sub(1, 200) .. ")")
      if r["$ref"] then r = resolve(r) end
      local c = r.content and r.content["application/json"]
      local decoded
      if c then
         local okj, v = pcall(cjson.decode, raw)
         assert.is_true(okj, method .. " " .. path .. ": answer is not JSON: " .. raw:sub(1, 200))
         decoded = v
         local e = validate(v, c.schema, method .. " " .. (tmpl or path) .. " " .. status)
         assert.is_nil(e, e)
      end
      return status, decoded
   end

   local POL = 'raise PolicyViolation("mail out", call=c) if:\n    (c: ToolCall)\n    c is tool:send_email\n'
   local TRACE = {
      { role = "user", content = "mail bob" },
      { role = "assistant", content = cjson.null, tool_calls = {
         { id = "1", type = "function", ["function"] = { name = "send_email", arguments = { to = "bob@x.io" } } } } },
   }
   local BAD = 'raise "x" if:\n    (m: Nope)\n'

   it("native routes", function()
      assert.is_string(url, "vigild did not start")
      assert.equal(200, (call("GET", "/healthz")))
      call("GET", "/readyz")
      assert.equal(200, (call("POST", "/v1/check", { policy = POL, trace = TRACE })))
      assert.equal(400, (call("POST", "/v1/check", { policy = POL })))
      assert.equal(200, (call("POST", "/v1/compile", { policy = POL, emit_lua = true })))
      assert.equal(422, (call("POST", "/v1/compile", { policy = BAD })))
      local st, s = call("POST", "/v1/sessions", { ttl = 100 })
      assert.equal(201, st)
      local T, sid = "/v1/sessions/{sid}", s.id
      local base = "/v1/sessions/" .. sid
      call("GET", base, nil, T)
      call("POST", base .. "/eval", { code = "return 1" }, T .. "/eval")
      local _, p = call("POST", base .. "/policies", { policy = POL, name = "p" }, T .. "/policies")
      call("GET", base .. "/policies", nil, T .. "/policies")
      local pb = base .. "/policies/" .. p.id
      call("GET", pb, nil, T .. "/policies/{pid}")
      call("PUT", pb, { policy = POL }, T .. "/policies/{pid}")
      assert.equal(200, (call("POST", pb .. "/analyze", { trace = TRACE }, T .. "/policies/{pid}/analyze")))
      local _, m = call("POST", base .. "/monitors", { policy_id = p.id }, T .. "/monitors")
      call("GET", base .. "/monitors", nil, T .. "/monitors")
      local mb = base .. "/monitors/" .. m.id
      call("GET", mb, nil, T .. "/monitors/{mid}")
      assert.equal(200, (call("POST", mb .. "/events", { events = TRACE, seq = 0 }, T .. "/monitors/{mid}/events")))
      call("GET", mb .. "/violations", nil, T .. "/monitors/{mid}/violations")
      call("DELETE", mb, nil, T .. "/monitors/{mid}")
      call("DELETE", pb, nil, T .. "/policies/{pid}")
      call("DELETE", base, nil, T)
      assert.equal(404, (call("GET", base, nil, T)))
   end)

   it("compatibility routes", function()
      assert.is_string(url, "vigild did not start")
      local _, s = call("GET", "/session/new")
      local sid = s.id
      local qs = "?session_id=" .. sid
      call("GET", "/session" .. qs, nil, "/session")
      local _, p = call("POST", "/policy/new" .. qs, { rule = POL }, "/policy/new")
      call("GET", "/policy" .. qs, nil, "/policy")
      call("GET", "/policy/" .. p.policy_id .. qs, nil, "/policy/{id}")
      call("POST", "/policy/" .. p.policy_id .. "/analyze" .. qs, { trace = TRACE }, "/policy/{id}/analyze")
      local _, m = call("POST", "/monitor/new" .. qs, { rule = POL }, "/monitor/new")
      call("GET", "/monitor" .. qs, nil, "/monitor")
      call("POST", "/monitor/" .. m.monitor_id .. "/check" .. qs, { past_events = {}, pending_events = TRACE },
         "/monitor/{id}/check")
      call("DELETE", "/monitor/" .. m.monitor_id .. qs, nil, "/monitor/{id}")
      call("DELETE", "/policy/" .. p.policy_id .. qs, nil, "/policy/{id}")
      call("DELETE", "/session" .. qs, nil, "/session")
      call("GET", "/policy/template")
      call("POST", "/api/policy/analyze", { trace = TRACE, policy = POL })
      call("POST", "/api/monitor/check", { past_events = {}, pending_events = TRACE, policy = POL })
      assert.equal(200, (call("POST", "/api/v1/policy/check", { messages = TRACE, policy = POL })))
      assert.equal(200, (call("POST", "/api/v1/policy/load", { policy = POL })))
      assert.equal(400, (call("POST", "/api/v1/policy/load", { policy = BAD })))
   end)
end)

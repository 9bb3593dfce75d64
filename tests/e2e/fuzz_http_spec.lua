-- HTTP robustness fuzz: a few hundred random and mutated requests against every operation in
-- docs/openapi.json (bad methods, unknown paths, truncated JSON, a wrong type in every field of
-- every body, invalid UTF-8, huge numbers, duplicate keys, wrong Content-Type, no body). It is
-- deterministic: the seed is fixed (VIGIL_FUZZ_SEED overrides it) and printed, so a failure can
-- be replayed. Every answer must be: below 500, or 503/504 where the route documents them; an
-- error body of the route's family ({"error": {code, message}} natively, {"detail"} on the
-- compatibility routes); and afterwards /healthz answers and no worker process is left behind.
local H = require "tests.e2e.helper"
local cjson = require "cjson.safe"

local SEED = tonumber(os.getenv("VIGIL_FUZZ_SEED") or "") or 20261206
local ROUNDS = tonumber(os.getenv("VIGIL_FUZZ_ROUNDS") or "") or 2

local POL = 'raise "u" if:\n    (m: Message)\n    m.role == "user"'
local TRACE = { { role = "user", content = "hi" }, { role = "assistant", content = "yo" } }

-- A valid body for each operation with one.
local function samples(sid)
   return {
      ["POST /v1/check"] = { policy = POL, trace = TRACE, parameters = { a = 1 } },
      ["POST /v1/compile"] = { policy = POL, emit_lua = true },
      ["POST /v1/sessions"] = { ttl = 60 },
      ["POST /v1/sessions/{sid}/eval"] = { code = "return 1" },
      ["POST /v1/sessions/{sid}/policies"] = { policy = POL, name = "n" },
      ["PUT /v1/sessions/{sid}/policies/{pid}"] = { policy = POL, name = "n2" },
      ["POST /v1/sessions/{sid}/policies/{pid}/analyze"] = { trace = TRACE, parameters = {} },
      ["POST /v1/sessions/{sid}/monitors"] = { policy_id = "p" },
      ["POST /v1/sessions/{sid}/monitors/{mid}/events"] = { events = TRACE },
      ["POST /policy/new"] = { rule = POL, name = "n" },
      ["PUT /policy/{id}"] = { rule = POL },
      ["POST /policy/{id}/analyze"] = { trace = TRACE },
      ["POST /monitor/new"] = { rule = POL },
      ["POST /monitor/{id}/check"] = { past_events = { TRACE[1] }, pending_events = { TRACE[2] } },
      ["POST /api/policy/analyze"] = { policy = POL, trace = TRACE },
      ["POST /api/monitor/check"] = { policy = POL, past_events = { TRACE[1] },
         pending_events = { TRACE[2] } },
      ["POST /api/v1/policy/check"] = { policy = POL, messages = TRACE, parameters = {} },
      ["POST /api/v1/policy/load"] = { policy = POL },
      _sid = sid,
   }
end

-- A tiny deterministic generator (xorshift32), independent of the Lua version's math.random.
local function rng(seed)
   local x = seed & 0xffffffff
   if x == 0 then x = 1 end
   local r = {}
   function r.next()
      x = x ~ ((x << 13) & 0xffffffff)
      x = x ~ (x >> 17)
      x = x ~ ((x << 5) & 0xffffffff)
      return x
   end
   function r.int(n) return r.next() % n + 1 end
   function r.pick(t) return t[r.int(#t)] end
   function r.chance(p) return r.next() % 1000 < p * 1000 end
   return r
end

local function props_of(doc, schema, out, depth)
   out = out or {}
   depth = depth or 0
   if type(schema) ~= "table" or depth > 8 then return out end
   local ref = schema["$ref"]
   if type(ref) == "string" then
      return props_of(doc, doc.components.schemas[ref:match("([^/]+)$")], out, depth + 1)
   end
   if type(schema.properties) == "table" then
      for k in pairs(schema.properties) do out[k] = true end
   end
   for _, k in ipairs { "oneOf", "anyOf", "allOf" } do
      if type(schema[k]) == "table" then
         for _, s in ipairs(schema[k]) do props_of(doc, s, out, depth + 1) end
      end
   end
   return out
end

-- Values of every JSON type, plus the awkward ones, as raw JSON text.
local WRONG = { "12", "-1", "0.5", "1e400", "-1e400", "123456789012345678901234567890", "true",
   "false", "null", '""', '"x"', "[]", "[1,2]", "{}", '{"a":{"b":[]}}', '"' .. string.rep("z", 5000) .. '"',
   '"\\ud800"', '"\\u0000"', '[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]' }
local BAD_BYTES = { "\xff\xfe", "\xc3\x28", "\xe2\x82", "\xf0\x28\x8c\x28", "\xed\xa0\x80", "\x00" }
local METHODS = { "PATCH", "OPTIONS", "TRACE", "FOO", "DELETE", "PUT", "POST", "GET" }
local CTYPES = { "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
   "application/json; charset=latin1", "", "application/xml" }

describe("HTTP robustness fuzz", function()
   local srv, doc, ops, sid, csid, created = nil, nil, {}, nil, nil, {}
   local log = {}

   setup(function()
      print(("\n# fuzz_http_spec: seed %d, rounds %d (VIGIL_FUZZ_SEED / VIGIL_FUZZ_ROUNDS)"):format(SEED,
         ROUNDS))
      doc = assert(cjson.decode((assert(H.slurp("docs/openapi.json")))))
      srv = H.start { args = { "--enable-eval", "--deadline-ms", "2000", "--max-body", "1M" },
         db = ":memory:" }
      sid = srv:session()
      assert.equal(201, (srv:post("/v1/sessions/" .. sid .. "/policies", { id = "p", policy = POL })))
      assert.equal(201, (srv:post("/v1/sessions/" .. sid .. "/monitors", { id = "m", policy_id = "p" })))
      local _, j = srv:get("/session/new")
      csid = j.id
      assert.equal(200, (srv:post("/policy/new?session_id=" .. csid, { rule = POL })))
      assert.equal(200, (srv:post("/monitor/new?session_id=" .. csid, { policy_id = 1 })))
      local paths = {}
      for p in pairs(doc.paths) do paths[#paths + 1] = p end
      table.sort(paths)
      for _, p in ipairs(paths) do
         local methods = {}
         for m in pairs(doc.paths[p]) do
            if ({ get = 1, post = 1, put = 1, delete = 1 })[m] then methods[#methods + 1] = m end
         end
         table.sort(methods)
         for _, m in ipairs(methods) do
            local op = doc.paths[p][m]
            local documented = {}
            for code in pairs(op.responses or {}) do documented[tonumber(code)] = true end
            local body = op.requestBody and op.requestBody.content and
               op.requestBody.content["application/json"]
            local compat = false
            for _, t in ipairs(op.tags or {}) do compat = compat or t == "compatibility" end
            ops[#ops + 1] = { method = m:upper(), path = p, documented = documented, compat = compat,
               props = body and props_of(doc, body.schema) or nil }
         end
      end
   end)

   teardown(function()
      if srv then srv:stop() end
   end)

   -- The concrete path of an operation, with the fixtures' ids (or a random one).
   local function concrete(r, op)
      local p = op.path:gsub("{sid}", sid):gsub("{pid}", "p"):gsub("{mid}", "m"):gsub("{id}", "1")
      if r.chance(0.1) then
         local junk = r.pick { "nosuch", "%2e%2e", "%00", "%ff", "1e999" }
         p = op.path:gsub("{%w+}", function() return junk end)
      end
      if op.compat and not p:find("^/api/") and p ~= "/policy/template" then
         local q = r.chance(0.85) and csid or r.pick { "", "nosuch", "%ff%fe" }
         p = p .. "?session_id=" .. q
      end
      return p
   end

   local function body_variant(r, op, sample)
      local keys = {}
      for k in pairs(sample or {}) do keys[#keys + 1] = k end
      for k in pairs(op.props or {}) do
         if not (sample or {})[k] then keys[#keys + 1] = k end
      end
      table.sort(keys)
      local kind = r.int(9)
      local base = H.encode(sample or {})
      if kind == 1 and #keys > 0 then -- a wrong type in one field
         local k = r.pick(keys)
         local t = {}
         for kk, v in pairs(sample or {}) do if kk ~= k then t[kk] = v end end
         local s = H.encode(t)
         local extra = cjson.encode(k) .. ":" .. r.pick(WRONG)
         return (s == "{}" and "{" .. extra .. "}" or s:sub(1, -2) .. "," .. extra .. "}"), "wrong type in " .. k
      elseif kind == 2 then -- truncated
         return base:sub(1, r.int(math.max(1, #base - 1))), "truncated"
      elseif kind == 3 and #keys > 0 then -- duplicate key
         local k = r.pick(keys)
         return base:sub(1, -2) .. (base == "{}" and "" or ",") .. cjson.encode(k) .. ":" .. r.pick(WRONG) .. "}",
            "duplicate " .. k
      elseif kind == 4 then -- invalid UTF-8 inside a string
         local s = base:gsub('"(hi)"', '"%1' .. r.pick(BAD_BYTES) .. '"', 1)
         if s == base then s = base:sub(1, -2) .. (base == "{}" and "" or ",") .. '"k' .. r.pick(BAD_BYTES) .. '":1}' end
         return s, "invalid UTF-8"
      elseif kind == 5 then -- not an object
         return r.pick { "[]", "null", "1", '"s"', "true", "", " ", "{", "}", "{}{}", "\xef\xbb\xbf{}" }, "not an object"
      elseif kind == 6 then -- huge numbers everywhere
         return (base:gsub(":(%d+)", ":1" .. string.rep("0", 400))), "huge numbers"
      elseif kind == 7 and #keys > 0 then -- every field of one wrong type
         local v = r.pick(WRONG)
         local parts = {}
         for _, k in ipairs(keys) do parts[#parts + 1] = cjson.encode(k) .. ":" .. v end
         return "{" .. table.concat(parts, ",") .. "}", "all fields " .. v:sub(1, 20)
      elseif kind == 8 then -- random bytes
         local t = {}
         for i = 1, r.int(64) do t[i] = string.char(r.next() % 256) end
         return table.concat(t), "random bytes"
      end
      return base, "valid"
   end

   local function check_answer(op, st, raw, what)
      local ctx = ("%s %s [%s]: %s %s"):format(op.method, op.path, what, tostring(st), raw:sub(1, 200))
      log[#log + 1] = ctx
      assert(st and st >= 200, "no HTTP answer: " .. ctx)
      if st >= 500 then
         assert((st == 503 or st == 504) and op.documented[st], "5xx: " .. ctx)
      end
      if op.documented and next(op.documented) and not (st == 404 or st == 405) then
         assert(op.documented[st], "status not documented in docs/openapi.json: " .. ctx)
      end
      if st >= 400 then
         local j = cjson.decode(raw)
         assert(type(j) == "table", "error body is not JSON: " .. ctx)
         if st == 404 and j.error or st == 405 or st == 413 and j.error or st == 429 and j.error then
            -- answered by the router or the body cap, before the handler: the native shape
            assert(type(j.error) == "table" and type(j.error.code) == "string", ctx)
         elseif op.compat == nil then -- (another route may have matched: either family)
            assert(j.detail ~= nil or type(j.error) == "table" and type(j.error.code) == "string", ctx)
         elseif op.compat then
            assert(j.detail ~= nil, "compatibility error without detail: " .. ctx)
         else
            assert(type(j.error) == "table" and type(j.error.code) == "string" and
               type(j.error.message) == "string", "native error shape: " .. ctx)
         end
      end
   end

   it("answers every mutated request with a documented status and error shape", function()
      local r = rng(SEED)
      local S = samples(sid)
      local n = 0
      for round = 1, ROUNDS do
         for _, op in ipairs(ops) do
            local key = op.method .. " " .. op.path
            local sample = S[key]
            for _ = 1, (sample and 2 or 1) do
               local method, path, body, headers, what = op.method, concrete(r, op), nil, {}, "as is"
               if sample or op.method ~= "GET" and op.method ~= "DELETE" then
                  body, what = body_variant(r, op, sample)
               end
               if r.chance(0.15) then
                  headers["Content-Type"] = r.pick(CTYPES)
                  what = what .. ", Content-Type " .. headers["Content-Type"]
               end
               if r.chance(0.08) then
                  body = nil
                  what = what .. ", no body"
               end
               local st, _, raw = srv:request(method, path, body, headers)
               n = n + 1
               check_answer(op, st, raw or "", what)
               if st == 201 and key == "POST /v1/sessions" or st == 200 and key == "GET /session/new" then
                  local j = cjson.decode(raw)
                  if j and j.id then created[#created + 1] = j.id end
               end
            end
            -- a method the route does not have, and an unknown path under it (the suffix may fill a
            -- {param} of a longer route, which then answers as it does)
            local m = r.pick(METHODS)
            if not doc.paths[op.path][m:lower()] then
               local st, _, raw = srv:request(m, concrete(r, op), r.chance(0.5) and "{}" or nil)
               n = n + 1
               check_answer({ method = m, path = op.path, documented = {} }, st, raw or "",
                  "bad method")
               assert.truthy(st >= 400 and st < 500, m .. " " .. op.path .. " " .. tostring(st))
            end
            local st, _, raw = srv:request(r.pick { "GET", "POST" }, op.path:gsub("{%w+}", "x") .. "/" ..
               r.pick { "zzz", "%2e%2e", "a/b/c", "%00", "%ff" })
            n = n + 1
            check_answer({ method = "GET", path = op.path .. "/<unknown>", documented = {} },
               st, raw or "", "unknown path")
            assert.truthy(st >= 400 and st < 500, op.path .. " " .. tostring(st) .. " " .. raw)
         end
         if round == 1 then print(("# fuzz_http_spec: %d requests in round 1"):format(n)) end
      end
      print(("# fuzz_http_spec: %d requests"):format(n))
   end)

   it("still answers /healthz and the fixtures afterwards, and leaves no worker behind", function()
      assert.equal(200, (srv:get("/healthz")))
      for _, id in ipairs(created) do srv:delete("/v1/sessions/" .. id) end
      srv:delete("/v1/sessions/" .. sid)
      srv:delete("/session?session_id=" .. csid)
      local workers
      for _ = 1, 60 do
         workers = 0
         for _, p in ipairs(H.descendants(srv.pid)) do
            local comm = H.slurp("/proc/" .. p .. "/comm") or ""
            if comm:find("vigil%-worker") then workers = workers + 1 end
         end
         -- the stateless pool (2) and the zygote's worker forked ahead (1)
         if workers <= 3 then break end
         H.sleep(0.1)
      end
      assert.truthy(workers <= 3, workers .. " worker processes left")
      local _, _, m = srv:get("/metrics")
      assert.truthy(m:find("\nvigil_sessions 0\n", 1, true), "sessions left: " .. (m:match("vigil_sessions %d+") or "?"))
      local st, j = srv:post("/v1/check", { policy = POL, trace = TRACE })
      assert.equal(200, st)
      assert.equal(1, #j.violations)
   end)
end)

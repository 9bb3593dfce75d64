-- tests/e2e/helper.lua — start/stop the real build/vigild on a free port and talk HTTP to it
-- through curl. Test::Nginx-style declarative cases: {name, request = {method, path, body,
-- headers}, expect = {status, json = <subset>, check = function(json, raw, res)}}.
--
-- Subset matching (H.match): every key of the expected table must be present and equal in the
-- actual value; arrays (tables with [1]) must have the same length; H.EMPTY matches an empty
-- table; H.ANY matches any non-nil value; a function is a predicate.
local cjson = require "cjson.safe"

local H = {}

H.build = os.getenv("VIGIL_BUILD") or "build"
H.bin = H.build .. "/vigild"
H.EMPTY = setmetatable({}, { __tostring = function() return "<empty>" end })
H.ANY = setmetatable({}, { __tostring = function() return "<any>" end })
H.null = cjson.null
-- lua-cjson 2.1.0 encodes an empty table as {}: use H.A0 where a request needs [].
H.A0 = "__vigil_empty_array__"

local function encode(t)
   return (assert(cjson.encode(t)):gsub('"__vigil_empty_array__"', "[]"))
end
H.encode = encode

local function sh_quote(s)
   return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
H.quote = sh_quote

local function slurp(path)
   local f = io.open(path, "rb")
   if not f then return nil end
   local s = f:read("a")
   f:close()
   return s
end
H.slurp = slurp

local function spit(path, data)
   local f = assert(io.open(path, "wb"))
   f:write(data)
   f:close()
end

function H.sh(cmd)
   local p = io.popen(cmd, "r")
   local out = p:read("a")
   p:close()
   return out
end

function H.sleep(s)
   os.execute("sleep " .. tostring(s))
end

function H.tmpdir()
   return (H.sh("mktemp -d /tmp/vigil-e2e.XXXXXX"):gsub("%s+$", ""))
end

function H.alive(pid)
   local st = slurp("/proc/" .. pid .. "/stat")
   if not st then return false end
   local state = st:match("^%d+ %b() (%a)")
   return state ~= "Z" and state ~= "X"
end

-- Every process whose parent chain reaches pid (not pid itself).
function H.descendants(pid)
   local parent = {}
   for d in H.sh("ls /proc"):gmatch("%d+") do
      local st = slurp("/proc/" .. d .. "/stat")
      if st then
         local state, ppid = st:match("^%d+ %b() (%a) (%d+)")
         if ppid and state ~= "Z" then parent[tonumber(d)] = tonumber(ppid) end
      end
   end
   local out = {}
   for p in pairs(parent) do
      local q, hops = parent[p], 0
      while q and q ~= pid and hops < 64 do q, hops = parent[q], hops + 1 end
      if q == pid then out[#out + 1] = p end
   end
   table.sort(out)
   return out
end

local Server = {}
Server.__index = Server

-- opts: args (list of extra flags), db (path; default a fresh file), dir (reuse), env (table)
function H.start(opts)
   opts = opts or {}
   local dir = opts.dir or H.tmpdir()
   local db = opts.db or (dir .. "/vigil.db")
   local out, err = dir .. "/stdout", dir .. "/stderr"
   os.remove(out)
   local args = { "--listen", "127.0.0.1:0", "--db", db }
   for _, a in ipairs(opts.args or {}) do args[#args + 1] = a end
   local qargs = {}
   for i, a in ipairs(args) do qargs[i] = sh_quote(a) end
   local env = ""
   for k, v in pairs(opts.env or {}) do env = env .. k .. "=" .. sh_quote(v) .. " " end
   local cmd = string.format("%s exec %s %s >%s 2>>%s & echo $!", env, sh_quote(H.bin),
      table.concat(qargs, " "), sh_quote(out), sh_quote(err))
   local pid = tonumber(H.sh("sh -c " .. sh_quote(cmd)):match("%d+"))
   assert(pid, "could not start vigild")
   local port
   for _ = 1, 200 do
      local s = slurp(out)
      port = s and s:match("listening on [%d%.]+:(%d+)")
      if port then break end
      if not H.alive(pid) then break end
      H.sleep(0.05)
   end
   assert(port, "vigild did not report its port; stderr:\n" .. (slurp(err) or ""))
   return setmetatable({ pid = pid, port = tonumber(port), dir = dir, db = db, stdout = out,
      stderr = err, base = "http://127.0.0.1:" .. port, opts = opts, seq = 0,
      owns_dir = not opts.dir }, Server)
end

function Server:log()
   return slurp(self.stderr) or ""
end

-- Sends sig (default TERM) and waits up to timeout seconds; true when the process exited.
-- The server's directory (logs, database) is removed unless keep or VIGIL_E2E_KEEP=1.
function Server:stop(sig, timeout, keep)
   if not keep and not os.getenv("VIGIL_E2E_KEEP") and self.owns_dir then
      self.cleanup = true
   end
   local ok = self:_stop(sig, timeout)
   if self.cleanup then
      self.cleanup = nil
      os.execute("rm -rf " .. sh_quote(self.dir))
   end
   return ok
end

function Server:_stop(sig, timeout)
   if not self.pid then return true end
   os.execute(string.format("kill -%s %d 2>/dev/null", sig or "TERM", self.pid))
   for _ = 1, math.floor((timeout or 10) / 0.05) do
      if not H.alive(self.pid) then
         self.pid = nil
         return true
      end
      H.sleep(0.05)
   end
   os.execute(string.format("kill -KILL %d 2>/dev/null", self.pid))
   self.pid = nil
   return false
end

-- Restarts on the same database and directory.
function Server:restart()
   self:stop(nil, nil, true)
   local o = {}
   for k, v in pairs(self.opts) do o[k] = v end
   o.dir, o.db = self.dir, self.db
   local s = H.start(o)
   local owns = self.owns_dir
   for k, v in pairs(s) do self[k] = v end
   self.owns_dir, self.opts = owns, o
   return self
end

-- request(method, path, body?, headers?) -> status, decoded JSON (or nil), raw body, headers text
-- body: a table (JSON-encoded), a string (sent as is) or nil; {file = path} sends a file.
function Server:request(method, path, body, headers)
   self.seq = self.seq + 1
   local base = string.format("%s/r%d", self.dir, self.seq)
   local args = { "curl", "-sS", "-o", base .. ".out", "-D", base .. ".hdr", "-w", "%{http_code}",
      "-X", method, "--max-time", "60", "-H", "Expect:" }
   if body ~= nil then
      local file
      if type(body) == "table" and body.file then
         file = body.file
      else
         file = base .. ".in"
         spit(file, type(body) == "table" and encode(body) or body)
      end
      args[#args + 1] = "-H"
      args[#args + 1] = "Content-Type: application/json"
      args[#args + 1] = "--data-binary"
      args[#args + 1] = "@" .. file
   end
   for k, v in pairs(headers or {}) do
      args[#args + 1] = "-H"
      args[#args + 1] = k .. ": " .. v
   end
   args[#args + 1] = self.base .. path
   local q = {}
   for i, a in ipairs(args) do q[i] = sh_quote(a) end
   local status = tonumber(H.sh(table.concat(q, " ") .. " 2>/dev/null"))
   local raw = slurp(base .. ".out") or ""
   local hdr = slurp(base .. ".hdr") or ""
   os.remove(base .. ".out")
   os.remove(base .. ".hdr")
   os.remove(base .. ".in")
   return status, cjson.decode(raw), raw, hdr
end

for _, m in ipairs { "GET", "POST", "PUT", "DELETE" } do
   Server[m:lower()] = function(self, path, body, headers)
      return self:request(m, path, body, headers)
   end
end

-- Subset matching; returns true or false plus a message naming the path.
function H.match(expected, actual, path)
   path = path or "$"
   if expected == H.ANY then
      return actual ~= nil, path .. ": expected a value"
   elseif expected == H.EMPTY then
      return type(actual) == "table" and next(actual) == nil, path .. ": expected empty, got " ..
         tostring(cjson.encode(actual))
   elseif type(expected) == "function" then
      return expected(actual) and true or false, path .. ": predicate failed on " ..
         tostring(cjson.encode(actual))
   elseif type(expected) ~= "table" then
      if expected == actual then return true end
      return false, string.format("%s: expected %s, got %s", path, tostring(cjson.encode(expected)),
         tostring(cjson.encode(actual)))
   end
   if type(actual) ~= "table" then
      return false, path .. ": expected a table, got " .. tostring(cjson.encode(actual))
   end
   if expected[1] ~= nil and #expected ~= #actual then
      return false, string.format("%s: expected %d elements, got %d: %s", path, #expected,
         #actual, tostring(cjson.encode(actual)))
   end
   for k, v in pairs(expected) do
      local ok, msg = H.match(v, actual[k], path .. "." .. tostring(k))
      if not ok then return false, msg end
   end
   return true
end

function H.assert_match(expected, actual)
   local ok, msg = H.match(expected, actual)
   assert(ok, msg)
end

-- Runs one declarative case; {{var}} in paths and string bodies are replaced from vars.
function H.run_case(srv, case, vars)
   local function subst(s)
      if type(s) ~= "string" then return s end
      return (s:gsub("{{(%w+)}}", function(k) return tostring(vars and vars[k]) end))
   end
   local function subst_deep(t)
      if type(t) ~= "table" then return subst(t) end
      local o = {}
      for k, v in pairs(t) do o[k] = subst_deep(v) end
      return setmetatable(o, getmetatable(t))
   end
   local rq = case.request
   local status, json, raw, hdr = srv:request(rq.method, subst(rq.path), subst_deep(rq.body),
      rq.headers)
   local ex = case.expect or {}
   if ex.status then
      assert(status == ex.status, string.format("%s: status %s, expected %s; body %s", case.name,
         tostring(status), ex.status, raw))
   end
   if ex.json ~= nil then
      local ok, msg = H.match(ex.json, json)
      assert(ok, case.name .. ": " .. tostring(msg) .. "\nbody: " .. raw)
   end
   if ex.check then ex.check(json, raw, hdr) end
   return status, json, raw, hdr
end

-- Registers one busted `it` per case (twice with case.twice, to catch state leaking). busted's
-- `it` lives in the spec's environment, so the spec passes it in.
function H.cases(it, srv_getter, cases, vars_getter)
   for _, case in ipairs(cases) do
      it(case.name, function()
         local srv = srv_getter()
         local vars = vars_getter and vars_getter() or nil
         H.run_case(srv, case, vars)
         if case.twice then H.run_case(srv, case, vars) end
      end)
   end
end

-- A fresh native session; returns its id.
function Server:session(body)
   local st, j, raw = self:post("/v1/sessions", body or {})
   assert(st == 201, "session create: " .. tostring(st) .. " " .. raw)
   return j.id, j
end

function Server:worker_pid(sid)
   local _, j = self:get("/v1/sessions/" .. sid)
   -- lua-cjson 2.1 decodes every number as a float: pids are made integers here.
   return j and j.worker_pid ~= cjson.null and math.tointeger(j.worker_pid) or nil
end

H.json = cjson
return H

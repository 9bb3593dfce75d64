-- vigild started by an unprivileged user on a machine where that user may not create user
-- namespaces: without --insecure-no-jail it refuses to start and says why and what to pass;
-- with it, it serves with the partial jail and says INSECURE in every log line and in /readyz.
-- Real kernel refusals, no simulation: as root, the test makes a user namespace (identity-mapped
-- uids 0..65535) whose user.max_user_namespaces is 0, drops to uid/gid 65534 there and execs
-- vigild. Owner: C core.
local H = require "tests.e2e.helper"
local cjson = require "cjson.safe"

local function have(cmd)
   return H.sh("command -v " .. cmd .. " >/dev/null 2>&1 && echo yes"):find("yes") ~= nil
end

local usable = H.sh("id -u"):match("^0%s*$") and have("unshare") and have("setpriv")

-- The exec chain keeps one pid: unshare (new user namespace) -> sh waits for the uid map,
-- then execs a shell that (uid 0 in the namespace, so with its capabilities) forbids further
-- user namespaces and execs setpriv -> vigild as 65534.
local INNER = [[
while [ -z "$(cat /proc/self/uid_map)" ]; do sleep 0.02; done
exec sh -c 'echo 0 > /proc/sys/user/max_user_namespaces || exit 97
  exec setpriv --reuid=65534 --regid=65534 --clear-groups "$@"' sh "$@"]]

-- starts vigild as nobody; returns {pid, dir, out, err}
local function start(args)
   local dir = H.tmpdir()
   local out, err = dir .. "/stdout", dir .. "/stderr"
   local q = { H.quote(H.bin), "--listen", "127.0.0.1:0", "--db", ":memory:" }
   for _, a in ipairs(args or {}) do q[#q + 1] = H.quote(a) end
   local cmd = string.format("unshare --user sh -c %s sh %s >%s 2>%s & echo $!", H.quote(INNER),
      table.concat(q, " "), H.quote(out), H.quote(err))
   local pid = tonumber(H.sh("sh -c " .. H.quote(cmd)):match("%d+"))
   assert(pid, "could not start unshare")
   -- the map can be written only once unshare has made the namespace (before, the write fails
   -- and the inner shell waits for a map forever)
   local own = H.sh("readlink /proc/self/ns/user")
   for _ = 1, 200 do
      local ns = H.sh("readlink /proc/" .. pid .. "/ns/user 2>/dev/null")
      if ns ~= "" and ns ~= own then break end
      H.sleep(0.01)
   end
   H.sh(string.format("echo '0 0 65536' > /proc/%d/uid_map; echo '0 0 65536' > /proc/%d/gid_map",
      pid, pid))
   return { pid = pid, dir = dir, out = out, err = err }
end

local function wait_exit(pid, seconds)
   for _ = 1, math.floor(seconds / 0.05) do
      if not H.alive(pid) then return true end
      H.sleep(0.05)
   end
   return false
end

local function request(base, method, path, body)
   local args = "curl -sS --max-time 30 -o - -w '\\n%{http_code}' -X " .. method
   if body then
      args = args .. " -H 'Content-Type: application/json' --data-binary " .. H.quote(H.encode(body))
   end
   local raw = H.sh(args .. " " .. H.quote(base .. path) .. " 2>/dev/null")
   local text, status = raw:match("^(.*)\n(%d+)$")
   return tonumber(status), cjson.decode(text or "")
end

describe("vigild as an unprivileged user without user namespaces", function()
   it("refuses to start without --insecure-no-jail, saying why and what to pass", function()
      if not usable then return pending("needs root, unshare and setpriv") end
      local p = start()
      local exited = wait_exit(p.pid, 20)
      local log = H.slurp(p.err) or ""
      os.execute("kill -KILL " .. p.pid .. " 2>/dev/null; rm -rf " .. H.quote(p.dir))
      assert.is_true(exited, "vigild did not exit: " .. log)
      assert.truthy(log:find("refusing to start", 1, true), log)
      assert.truthy(log:find("--insecure-no-jail", 1, true), log)
      assert.truthy(log:find("root=0 userns=0", 1, true), log)
      assert.falsy(log:find("listening on", 1, true), log)
   end)

   it("with --insecure-no-jail serves with the partial jail and says INSECURE everywhere", function()
      if not usable then return pending("needs root, unshare and setpriv") end
      local p = start { "--insecure-no-jail", "--enable-eval" }
      local port
      for _ = 1, 200 do
         port = (H.slurp(p.out) or ""):match("listening on [%d%.]+:(%d+)")
         if port or not H.alive(p.pid) then break end
         H.sleep(0.05)
      end
      local base = "http://127.0.0.1:" .. tostring(port)
      local rst, rj = request(base, "GET", "/readyz")
      local sst, sj = request(base, "POST", "/v1/sessions", {})
      local est, ej, wst, wj, status, vigild_status
      if sj and sj.id then
         est, ej = request(base, "POST", "/v1/sessions/" .. sj.id .. "/eval", { code = "return 1 + 1" })
         wst, wj = request(base, "GET", "/v1/sessions/" .. sj.id)
         local w = wj and math.tointeger(wj.worker_pid)
         status = w and H.slurp("/proc/" .. w .. "/status") or ""
      end
      vigild_status = H.slurp("/proc/" .. p.pid .. "/status") or ""
      os.execute("kill -TERM " .. p.pid .. " 2>/dev/null")
      local stopped = wait_exit(p.pid, 10)
      if not stopped then os.execute("kill -KILL " .. p.pid .. " 2>/dev/null") end
      local log = H.slurp(p.err) or ""
      os.execute("rm -rf " .. H.quote(p.dir))

      assert.truthy(port, "vigild did not start: " .. log)
      assert.truthy(vigild_status:find("\nUid:%s+65534%s"), "vigild is not uid 65534")
      assert.equal(200, rst)
      H.assert_match({ ready = true, jail = { full = false, insecure_no_jail = true }, warning = H.ANY }, rj)
      assert.truthy(rj.warning:find("INSECURE", 1, true))
      assert.truthy(rj.jail.summary:find("userns=0", 1, true), rj.jail.summary)
      assert.equal(201, sst)
      assert.equal(200, est)
      assert.equal(2, ej.value)
      assert.equal(200, wst)
      -- the partial jail: seccomp, no_new_privs, no capabilities, uid 65534
      assert.truthy(status:find("\nUid:%s+65534%s"), status)
      assert.truthy(status:find("\nSeccomp:%s+2\n"), status)
      assert.truthy(status:find("\nNoNewPrivs:%s+1\n"), status)
      assert.truthy(status:find("\nCapEff:%s+0+\n"), status)
      assert.is_true(stopped, "vigild did not stop on SIGTERM")
      local n, marked = 0, 0
      for line in log:gmatch("[^\n]+") do
         n = n + 1
         if line:find("INSECURE", 1, true) then marked = marked + 1 end
      end
      assert.truthy(n >= 5, log)
      assert.equal(n, marked, log)
   end)
end)

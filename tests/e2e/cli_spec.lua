-- cli_spec.lua — the command-line tool `build/vigil`, end to end through the real binary:
-- check / compile / analyze, human and JSON output, every example in examples/, error paths and
-- the documented exit codes (0 ok, 1 findings, 2 usage/input error, 3 evaluation failed).
local cjson = require "cjson"

local BUILD = os.getenv("VIGIL_BUILD") or "build"
local VIGIL = BUILD .. "/vigil"

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- run(args...) -> exit code, stdout, stderr
local tmpdir
local function run(...)
   local parts = { "timeout 30", VIGIL }
   for _, a in ipairs({ ... }) do parts[#parts + 1] = sh_quote(a) end
   local out, err = tmpdir .. "/out", tmpdir .. "/err"
   local cmd = table.concat(parts, " ") .. " >" .. out .. " 2>" .. err
   local _, _, code = os.execute(cmd)
   local function slurp(p)
      local f = assert(io.open(p, "rb"))
      local s = f:read("a")
      f:close()
      return s
   end
   return code, slurp(out), slurp(err)
end

local function write(name, text)
   local p = tmpdir .. "/" .. name
   local f = assert(io.open(p, "wb"))
   f:write(text)
   f:close()
   return p
end

local GOOD = 'raise "wire transfer announced" if:\n    (msg: Message)\n'
   .. '    msg.role == "assistant"\n    "wire transfer" in msg.content\n'
local TRACE = cjson.encode({
   { role = "user", content = "pay the invoice" },
   { role = "assistant", content = "I will start a wire transfer today." },
   { role = "assistant", content = "Done." },
})
-- the violation keys each example trace must give (examples/README.md: exactly one each)
local EXAMPLE_KEYS = {
   ["allowed-recipients"] = { "(0, (1,))" },
   ["curl-pipe-shell"] = { "(0, (3,))" },
   ["email-after-inbox"] = { "(0, (2, 6))" },
   ["exfiltration-after-secrets"] = { "(0, (1, 5))" },
   ["failed-logins"] = { "(0, ())" },
   ["secrets-in-tool-output"] = { "(0, (2,))" },
   ["untrusted-links"] = { "(0, (2, -1))" }, -- a str variable has index -1, as in the reference
   ["web-instructions-to-shell"] = { "(0, (0, 3, 2))" },
}
local CLEAN = cjson.encode({ { role = "user", content = "hello" }, { role = "assistant", content = "hi" } })

describe("vigil (command-line tool)", function()
   setup(function()
      local p = io.popen("mktemp -d")
      tmpdir = p:read("l")
      p:close()
   end)
   teardown(function()
      if tmpdir and tmpdir:match("^/tmp/") then os.execute("rm -rf " .. sh_quote(tmpdir)) end
   end)

   it("exists", function()
      local f = io.open(VIGIL, "rb")
      assert.truthy(f, VIGIL .. " is not built")
      if f then f:close() end
   end)

   describe("options", function()
      it("--help documents the commands and the exit codes", function()
         local code, out = run("--help")
         assert.equal(0, code)
         for _, w in ipairs({ "check", "compile", "--emit-lua", "analyze", "--param", "--json",
            "--language", "exit status" }) do
            assert.truthy(out:find(w, 1, true), "--help lacks " .. w)
         end
      end)
      it("--version prints a version", function()
         local code, out = run("--version")
         assert.equal(0, code)
         assert.truthy(out:match("^vigil %d+%.%d+"))
      end)
      it("no command, an unknown command or option: usage error 2", function()
         assert.equal(2, (run()))
         local code, _, err = run("frobnicate")
         assert.equal(2, code)
         assert.truthy(err:find("unknown command", 1, true))
         code, _, err = run("check", "--bogus", "x.inv")
         assert.equal(2, code)
         assert.truthy(err:find("unknown option", 1, true))
         code, _, err = run("check", "--language", "python", "x.inv")
         assert.equal(2, code)
         assert.truthy(err:find("--language", 1, true))
      end)
   end)

   describe("check", function()
      it("a valid policy: exit 0, no output", function()
         local code, out = run("check", write("good.inv", GOOD))
         assert.equal(0, code)
         assert.equal("", out)
      end)
      it("prints every diagnostic as file:line:col: message and exits 1", function()
         local bad = write("bad.inv", 'raise "x" if:\n    (m: Mesage)\n    m.role == foo\n')
         local code, out = run("check", bad)
         assert.equal(1, code)
         local lines = {}
         for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
         assert.equal(2, #lines, out)
         assert.truthy(lines[1]:find(bad .. ":2:6: ", 1, true), lines[1])
         assert.truthy(lines[1]:find("Mesage", 1, true))
         assert.truthy(lines[2]:find(bad .. ":3:15: ", 1, true), lines[2])
         assert.truthy(lines[2]:find("foo", 1, true))
      end)
      it("a syntax error is located", function()
         local p = write("syntax.inv", 'raise "x" if:\n    (m: Message)\n    m.role = "user"\n')
         local code, out = run("check", p)
         assert.equal(1, code)
         assert.truthy(out:match("^" .. p:gsub("%p", "%%%0") .. ":3:%d+: "), out)
      end)
      it("several files: diagnostics of each, exit 1 if any has errors", function()
         local good = write("good2.inv", GOOD)
         local bad = write("bad2.inv", 'raise "x" if:\n    (m: Nope)\n')
         local code, out = run("check", good, bad)
         assert.equal(1, code)
         assert.falsy(out:find(good, 1, true))
         assert.truthy(out:find(bad .. ":2:", 1, true))
      end)
      it("a missing file: exit 2 and the reason", function()
         local code, _, err = run("check", tmpdir .. "/nope.inv")
         assert.equal(2, code)
         assert.truthy(err:find("nope.inv", 1, true))
      end)
      it("checks every example policy", function()
         local p = io.popen("ls examples/*.inv examples/*.lua 2>/dev/null")
         local n = 0
         for f in p:lines() do
            n = n + 1
            local code, out = run("check", f)
            assert.equal(0, code, f .. ": " .. out)
         end
         p:close()
         assert.truthy(n >= 8, "expected at least 8 example policies")
      end)
   end)

   describe("compile", function()
      it("lists the rules", function()
         local code, out = run("compile", write("c.inv", GOOD))
         assert.equal(0, code)
         assert.truthy(out:find("1 rule", 1, true))
         assert.truthy(out:find("line 1: wire transfer announced", 1, true), out)
      end)
      it("--emit-lua prints Lua that loads and keeps policy lines", function()
         local code, out = run("compile", "--emit-lua", write("e.inv", GOOD))
         assert.equal(0, code)
         assert.truthy(load(out, "=emitted", "t", {}), "emitted code does not load as Lua text")
         local n = select(2, out:gsub("\n", "\n"))
         assert.truthy(n >= 4, "fewer Lua lines than policy lines")
      end)
      it("a policy that does not compile: diagnostics and exit 2", function()
         local p = write("ce.inv", 'raise "x" if:\n    (m: Nope)\n')
         local code, out = run("compile", p)
         assert.equal(2, code)
         assert.truthy(out:find(p .. ":2:", 1, true))
      end)
      it("needs exactly one file", function()
         assert.equal(2, (run("compile")))
      end)
   end)

   describe("analyze", function()
      it("human output: one block per violation, exit 1", function()
         local code, out = run("analyze", write("a.inv", GOOD), write("a.json", TRACE))
         assert.equal(1, code)
         assert.truthy(out:find("violation 1: ", 1, true))
         assert.truthy(out:find("wire transfer announced", 1, true))
         assert.truthy(out:find("key:      (0, (1,))", 1, true), out)
         assert.truthy(out:find("messages.1.content:", 1, true), out)
         assert.truthy(out:find("1 violation\n", 1, true))
      end)
      it("--json prints the native answer", function()
         local code, out = run("analyze", "--json", write("j.inv", GOOD), write("j.json", TRACE))
         assert.equal(1, code)
         local doc = cjson.decode(out)
         assert.equal(1, #doc.violations)
         local v = doc.violations[1]
         assert.equal("(0, (1,))", v.key)
         assert.equal(0, v.rule.index)
         assert.equal(1, v.rule.line)
         assert.equal(1, v.bindings.msg)
         assert.same({ "messages.1", "messages.1.content:15-28" }, v.ranges)
      end)
      it("no violation: exit 0", function()
         local code, out = run("analyze", write("n.inv", GOOD), write("n.json", CLEAN))
         assert.equal(0, code)
         assert.truthy(out:find("0 violations", 1, true))
         code, out = run("analyze", "--json", write("n2.inv", GOOD), write("n2.json", CLEAN))
         assert.equal(0, code)
         assert.equal(0, #cjson.decode(out).violations)
      end)
      it("accepts {\"messages\": [...]} and {\"trace\": [...]} files", function()
         local t = cjson.decode(TRACE)
         assert.equal(1, (run("analyze", write("m.inv", GOOD), write("m.json", cjson.encode({ messages = t })))))
         assert.equal(1, (run("analyze", write("t.inv", GOOD), write("t.json", cjson.encode({ trace = t })))))
      end)
      it("invalid JSON: exit 2 with line and column", function()
         local p = write("bad.json", '[{"role": "user",\n  "content": }]')
         local code, _, err = run("analyze", write("b.inv", GOOD), p)
         assert.equal(2, code)
         assert.truthy(err:find(p .. ":2:", 1, true), err)
         assert.truthy(err:find("invalid JSON", 1, true))
      end)
      it("a trace that is not a list: exit 2", function()
         local code, _, err = run("analyze", write("nl.inv", GOOD), write("nl.json", '{"role": "user"}'))
         assert.equal(2, code)
         assert.truthy(err:find("list", 1, true))
      end)
      it("missing files and wrong arity: exit 2", function()
         assert.equal(2, (run("analyze", write("x.inv", GOOD), tmpdir .. "/missing.json")))
         assert.equal(2, (run("analyze", write("y.inv", GOOD))))
      end)
      it("parameters: --param NAME=VALUE (JSON or string); a missing one is an evaluation error (3)", function()
         local pol = write("p.inv", 'raise "word" if:\n    (m: Message)\n    input.word in m.content\n')
         local tr = write("p.json", TRACE)
         local code, _, err = run("analyze", pol, tr)
         assert.equal(3, code)
         assert.truthy(err:find("word", 1, true))
         assert.truthy(err:find(pol .. ":3:", 1, true), err)
         code = run("analyze", pol, tr, "--param", "word=invoice")
         assert.equal(1, code)
         code = run("analyze", pol, tr, "--param=word=nothing-like-this")
         assert.equal(0, code)
         local lp = write("l.inv", 'raise "listed" if:\n    (m: Message)\n    m.role in input.roles\n')
         local _, out = run("analyze", "--json", lp, tr, "--param", 'roles=["user"]')
         assert.equal(1, #cjson.decode(out).violations)
         assert.equal(2, (run("analyze", lp, tr, "--param", "noequals")))
      end)
      it("a policy that does not compile: diagnostics, exit 2", function()
         local p = write("nc.inv", 'raise "x" if:\n    (m: Nope)\n')
         local code, out = run("analyze", p, write("nc.json", TRACE))
         assert.equal(2, code)
         assert.truthy(out:find(p .. ":2:", 1, true))
      end)
      it("Lua policies: by extension and with --language lua", function()
         local code = run("analyze", "examples/exfiltration-after-secrets.lua",
            "examples/exfiltration-after-secrets.json")
         assert.equal(1, code)
         local src = assert(io.open("examples/exfiltration-after-secrets.lua")):read("a")
         local p = write("policy.txt", src)
         code = run("analyze", "--language", "lua", p, "examples/exfiltration-after-secrets.json")
         assert.equal(1, code)
         code = run("analyze", p, "examples/exfiltration-after-secrets.json") -- read as Invariant
         assert.equal(2, code)
      end)
      it("every example finds its violation", function()
         local p = io.popen("ls examples/*.inv")
         local n = 0
         for f in p:lines() do
            n = n + 1
            local trace = f:gsub("%.inv$", ".json")
            local code, out, err = run("analyze", "--json", f, trace, "--param", 'allowed=["ops@acme.io"]')
            assert.equal(1, code, f .. ": " .. err)
            local doc = cjson.decode(out)
            assert.truthy(#doc.violations >= 1, f)
            for _, v in ipairs(doc.violations) do
               assert.is_string(v.key)
               assert.is_table(v.ranges)
            end
            local want = EXAMPLE_KEYS[f:match("([^/]+)%.inv$")]
            if want then
               local got = {}
               for _, v in ipairs(doc.violations) do got[#got + 1] = v.key end
               assert.same(want, got, f)
            end
         end
         p:close()
         assert.truthy(n >= 8)
      end)
   end)
end)

describe("vigil monitor", function()
   setup(function()
      local p = io.popen("mktemp -d")
      tmpdir = p:read("l")
      p:close()
   end)
   teardown(function()
      if tmpdir and tmpdir:match("^/tmp/") then os.execute("rm -rf " .. sh_quote(tmpdir)) end
   end)

   local function keys_of_analyze(f, trace)
      local _, out = run("analyze", "--json", f, trace, "--param", 'allowed=["ops@acme.io"]')
      local ks = {}
      for _, v in ipairs(cjson.decode(out).violations) do
         -- the monitor contract: only violations that bind an event (a key with indices)
         if not v.key:match("%(%)%)$") then ks[#ks + 1] = v.key end
      end
      table.sort(ks)
      return ks
   end
   local function keys_of_monitor(f, trace, chunk)
      local code, out, err = run("monitor", "--json", "--chunk", tostring(chunk), f, trace,
         "--param", 'allowed=["ops@acme.io"]')
      assert.truthy(code == 0 or code == 1, err)
      local ks, seen = {}, 0
      for line in out:gmatch("[^\n]+") do
         local c = cjson.decode(line)
         for _, v in ipairs(c.result.violations) do ks[#ks + 1] = v.key end
         seen = c.result.events_seen
      end
      table.sort(ks)
      return ks, seen, code
   end

   it("reports, over all chunks, the whole-trace violations that bind events (examples, chunks of 1, 3)", function()
      local p = io.popen("ls examples/*.inv")
      for f in p:lines() do
         local trace = f:gsub("%.inv$", ".json")
         local want = keys_of_analyze(f, trace)
         local n = #cjson.decode(assert(io.open(trace)):read("a"))
         for _, chunk in ipairs({ 1, 3 }) do
            local got, seen, code = keys_of_monitor(f, trace, chunk)
            assert.same(want, got, f .. " in chunks of " .. chunk)
            assert.equal(n, seen, f)
            assert.equal(#want > 0 and 1 or 0, code)
         end
      end
      p:close()
   end)
   it("human output names the chunk; exit 0 without violations", function()
      local code, out = run("monitor", "examples/curl-pipe-shell.inv", "examples/curl-pipe-shell.json")
      assert.equal(1, code)
      assert.truthy(out:find("chunk 4 (events 3-3): violation 1:", 1, true), out)
      assert.truthy(out:find("1 violation in 7 events", 1, true), out)
      local t = write("clean.json", '[{"role": "user", "content": "hi"}]')
      code, out = run("monitor", "examples/curl-pipe-shell.inv", t)
      assert.equal(0, code)
      assert.truthy(out:find("0 violations in 1 event", 1, true), out)
   end)
   it("bad --chunk, bad files: exit 2", function()
      local pol, tr = "examples/curl-pipe-shell.inv", "examples/curl-pipe-shell.json"
      assert.equal(2, (run("monitor", "--chunk", "0", pol, tr)))
      assert.equal(2, (run("monitor", "--chunk", "x", pol, tr)))
      assert.equal(2, (run("monitor", "examples/curl-pipe-shell.inv")))
      assert.equal(2, (run("monitor", "examples/curl-pipe-shell.inv", write("bad.json", "[1,"))))
   end)
end)

-- The benchmark rules (bench/rules/*.inv) on generated traces: the engine's violation keys
-- equal a brute-force enumeration written here directly from the rules' meaning.
describe("bench rules against a brute-force count", function()
   setup(function()
      local p = io.popen("mktemp -d")
      tmpdir = p:read("l")
      p:close()
   end)
   teardown(function()
      if tmpdir and tmpdir:match("^/tmp/") then os.execute("rm -rf " .. sh_quote(tmpdir)) end
   end)

   -- flattened events: {idx=trace index, seq=position, kind=, ev=, call=linked call}
   local function flatten(trace)
      local flat, calls = {}, {}
      for i, e in ipairs(trace) do
         if e.tool_calls and e.tool_calls ~= cjson.null then
            flat[#flat + 1] = { idx = i - 1, kind = "Message", ev = e }
            for k, c in ipairs(e.tool_calls) do
               flat[#flat + 1] = { idx = i - 1, kind = "ToolCall", ev = c, k = k - 1 }
               calls[c.id] = c
            end
         elseif e.role == "tool" then
            flat[#flat + 1] = { idx = i - 1, kind = "ToolOutput", ev = e, call = calls[e.tool_call_id] }
         else
            flat[#flat + 1] = { idx = i - 1, kind = "Message", ev = e }
         end
      end
      return flat
   end
   local function is_call(x, name) return x.kind == "ToolCall" and x.ev["function"].name == name end
   local function arg(x, k) return x.ev["function"].arguments[k] end
   -- a model as "name=idx ..." in the rule's variable order (keys order variables differently)
   local VARS = { content = { "out" }, flow2 = { "read", "post" }, flow3 = { "page", "cmd", "mail" } }
   local function key(...)
      return table.concat({ ... }, " ")
   end

   local brute = {
      content = function(flat)
         local ks = {}
         for _, o in ipairs(flat) do
            if o.kind == "ToolOutput" and o.ev.content:find("BEGIN RSA PRIVATE KEY", 1, true) then
               ks[#ks + 1] = key(o.idx)
            end
         end
         return ks
      end,
      flow2 = function(flat)
         local ks = {}
         for i, r in ipairs(flat) do
            if is_call(r, "read_file") and arg(r, "path"):match("%.env$") then
               for j = i + 1, #flat do
                  local q = flat[j]
                  if is_call(q, "http_post") and arg(q, "url"):match("^https://paste%.") then
                     ks[#ks + 1] = key(r.idx, q.idx)
                  end
               end
            end
         end
         return ks
      end,
      flow3 = function(flat)
         local ks = {}
         for i, pg in ipairs(flat) do
            if pg.kind == "ToolOutput" and pg.call and pg.call["function"].name == "browse"
               and pg.ev.content:find("run this command", 1, true) then
               for j = i + 1, #flat do
                  local c = flat[j]
                  if is_call(c, "run_shell") and arg(c, "command"):match("^curl .*|%s*b?a?sh$") then
                     for k = j + 1, #flat do
                        local m = flat[k]
                        if is_call(m, "send_email") and not arg(m, "to"):match("@acme%.io$") then
                           ks[#ks + 1] = key(pg.idx, c.idx, m.idx)
                        end
                     end
                  end
               end
            end
         end
         return ks
      end,
   }

   for _, n in ipairs({ 1000, 4000 }) do
      for _, rule in ipairs({ "content", "flow2", "flow3" }) do
         it(rule .. " on " .. n .. " generated events", function()
            local tf = tmpdir .. "/trace" .. n .. ".json"
            os.execute(string.format("lua5.4 bench/gen_trace.lua %d 7 > %s", n, sh_quote(tf)))
            local trace = cjson.decode(assert(io.open(tf)):read("a"))
            local want = brute[rule](flatten(trace))
            local code, out, err = run("analyze", "--json", "bench/rules/" .. rule .. ".inv", tf)
            assert.truthy(code == 0 or code == 1, err)
            local got = {}
            for _, v in ipairs(cjson.decode(out).violations) do
               local t = {}
               for i, name in ipairs(VARS[rule]) do t[i] = math.tointeger(v.bindings[name]) end
               got[#got + 1] = key(table.unpack(t))
            end
            table.sort(want)
            table.sort(got)
            assert.same(want, got)
         end)
      end
   end
end)

-- The examples that talk to a server: examples/client.py (stdlib Python) and
-- examples/curl-walkthrough.sh, against the real build/vigild on a free port.
describe("examples against vigild", function()
   local dir, pid, url
   local function sh(cmd)
      local _, _, code = os.execute(cmd)
      return code
   end
   local function slurp(p)
      local f = io.open(p, "rb")
      if not f then return "" end
      local s = f:read("a")
      f:close()
      return s
   end
   setup(function()
      local p = io.popen("mktemp -d")
      dir = p:read("l")
      p:close()
      sh(string.format("%s/vigild --listen 127.0.0.1:0 --db :memory: >%s/out 2>%s/err & echo $! >%s/pid",
         BUILD, dir, dir, dir))
      pid = slurp(dir .. "/pid"):match("%d+")
      for _ = 1, 100 do
         local addr = slurp(dir .. "/out"):match("listening on (%S+)")
         if addr then
            url = "http://" .. addr
            break
         end
         sh("sleep 0.1")
      end
   end)
   teardown(function()
      if pid then sh("kill -TERM " .. pid .. " 2>/dev/null; sleep 0.3; kill -KILL " .. pid .. " 2>/dev/null") end
      if dir and dir:match("^/tmp/") then sh("rm -rf " .. sh_quote(dir)) end
   end)

   it("vigild starts", function()
      assert.is_string(url, "vigild did not start: " .. slurp(dir .. "/err"))
   end)

   it("examples/client.py runs its demo against the native and compatibility routes", function()
      if not url then return end
      if sh("command -v python3 >/dev/null 2>&1") ~= 0 then
         pending("python3 not installed")
         return
      end
      local code = sh(string.format("timeout 60 python3 examples/client.py --url %s >%s/py 2>&1", url, dir))
      local out = slurp(dir .. "/py")
      assert.equal(0, code, out)
      assert.truthy(out:find("POST /v1/check: 1 violation(s)", 1, true), out)
      assert.truthy(out:find("HTTP 422 policy_invalid", 1, true), out)
      assert.truthy(out:find("monitor: 1 violation(s) reported over 8 chunks", 1, true), out)
      assert.truthy(out:find("PolicyViolation(", 1, true), out)
   end)

   it("examples/curl-walkthrough.sh runs every step", function()
      if not url then return end
      local code = sh(string.format("VIGIL_URL=%s timeout 60 sh examples/curl-walkthrough.sh >%s/sh 2>&1",
         url, dir))
      local out = slurp(dir .. "/sh")
      assert.equal(0, code, out)
      for _, st in ipairs({ "(HTTP 201)", "(HTTP 422)", '"events_seen":5', '"deleted":true',
         '"handled_errors":[]' }) do
         assert.truthy(out:find(st, 1, true), "missing " .. st .. " in:\n" .. out)
      end
      assert.falsy(out:find("(HTTP 5", 1, true), out)
   end)
end)

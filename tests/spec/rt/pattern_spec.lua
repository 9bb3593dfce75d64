-- rt.pattern: semantic patterns `x is tool:name(...)` (spec §6.7).
local value = require "rt.value"
local trace = require "rt.trace"
local rterror = require "rt.error"
local P = require "rt.pattern"

local None = value.None

local st = assert(trace.normalize(trace.decode([[
   [{"role": "user", "content": "go"},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "s1", "type": "function", "function": {"name": "send_email",
         "arguments": {"to": "ops@acme.io", "subject": "Outage"}}},
      {"id": "s2", "type": "function", "function": {"name": "send_email",
         "arguments": {"to": "ops@acme.io.attacker.net"}}},
      {"id": "h", "type": "function", "function": {"name": "http_request",
         "arguments": {"method": "POST", "headers": {"Authorization": "Bearer abc", "X": "y"}}}},
      {"id": "e", "type": "function", "function": {"name": "exec",
         "arguments": {"argv": ["rm", "-rf", "/"]}}},
      {"id": "t", "type": "function", "function": {"name": "transfer",
         "arguments": {"amount": 10000, "f": 10000.0, "s": "10000", "b": true}}},
      {"id": "w", "type": "function", "function": {"name": "write_file",
         "arguments": {"path": "config/.ENV", "body": "line1\nline2"}}}]},
    {"role": "tool", "content": "sent", "tool_call_id": "s1"},
    {"role": "tool", "content": "orphan", "tool_call_id": "zz"}]
]])))

local calls = st.calls
local send1, send2, http, exec, transfer, write = calls[1], calls[2], calls[3], calls[4], calls[5],
   calls[6]
local out_linked, out_orphan, msg = st.events[3], st.events[4], st.events[1]

local function m(v, pat) return P.match(nil, v, pat) end
local function tool(name, arg) return P.tool(name, arg) end

describe("rt.pattern", function()
   it("matches the function name exactly (case-sensitive)", function()
      assert.is_true(m(send1, tool("send_email")))
      assert.is_false(m(send1, tool("Send_Email")))
      assert.is_false(m(send1, tool("send")))
      assert.is_false(m(send1, tool("send_email_draft")))
   end)

   it("goes through the linked call of an output; an unlinked output is false", function()
      assert.is_true(m(out_linked, tool("send_email", P.dict { to = "ops@acme\\.io" })))
      assert.is_false(m(out_orphan, tool("send_email")))
   end)

   it("is None (neither true nor false) for a non-call", function()
      assert.are.equal(None, m(msg, tool("send_email")))
      assert.are.equal(None, m("text", tool("send_email")))
      assert.is_false(value.truthy(m(msg, tool("send_email"))))
   end)

   it("string leaves are regexes matched at the start with an implied $", function()
      local allow = P.dict { to = "^(?!(ops|security)@acme\\.io$).*$" }
      assert.is_false(m(send1, tool("send_email", allow)))
      assert.is_true(m(send2, tool("send_email", allow)))
      assert.is_true(m(write, tool("write_file", P.dict { path = "(?i).*\\.env" })))
      assert.is_false(m(write, tool("write_file", P.dict { path = "config" })))
      -- DOTALL: . crosses newlines
      assert.is_true(m(write, tool("write_file", P.dict { body = "line1.line2" })))
      -- equality wins even when the string is not a valid regex
      assert.is_true(P.match_value(nil, "a(b", "a(b"))
      -- one trailing newline is accepted by $
      assert.is_true(P.match_value(nil, "abc\n", "abc"))
      -- `$` binds to the last alternative only
      assert.is_true(P.match_value(nil, "xabc", "x|y"))
      assert.is_false(P.match_value(nil, "abcy", "x|y"))
   end)

   it("an invalid regex leaf that is not equal to the value is a regex error", function()
      local ok, e = pcall(P.match_value, nil, "zzz", "a(b")
      assert.is_false(ok)
      assert.is_true(rterror.is(e))
      assert.are.equal("regex", e.kind)
   end)

   it("nested dicts allow extra keys; missing keys fail; {} matches any dict", function()
      assert.is_true(m(http, tool("http_request",
         P.dict { method = "POST", headers = P.dict { Authorization = "Bearer .+" } })))
      assert.is_false(m(http, tool("http_request", P.dict { headers = P.dict { Cookie = P.any() } })))
      assert.is_true(m(http, tool("http_request", P.dict {})))
      assert.is_false(m(http, tool("http_request", P.dict { method = P.dict {} })))
   end)

   it("lists need the exact length; * matches anything but the key must exist", function()
      assert.is_true(m(exec, tool("exec", P.dict { argv = P.list { "rm", "-rf", P.any() } })))
      assert.is_false(m(exec, tool("exec", P.dict { argv = P.list { "rm", "-rf" } })))
      assert.is_false(m(exec, tool("exec", P.dict { argv = P.list { "rm", "-r", P.any() } })))
      assert.is_false(m(exec, tool("exec", P.dict { env = P.any() })))
   end)

   it("numbers match the same number class and value", function()
      local function t(k, n) return m(transfer, tool("transfer", P.dict { [k] = n })) end
      assert.is_true(t("amount", 10000))
      assert.is_false(t("f", 10000))
      assert.is_true(t("f", 10000.0))
      assert.is_false(t("amount", 10000.0))
      assert.is_false(t("s", 10000))
      assert.is_true(t("b", 1)) -- True is an int
   end)

   it("several argument patterns never match", function()
      assert.is_false(m(send1, P.tool("send_email", P.dict {}, P.dict {})))
   end)

   it("value matchers: structured pii entities, DUMMY, and provider errors", function()
      assert.is_true(P.match_value(nil, "ops@acme.io", P.valueref("EMAIL_ADDRESS")))
      assert.is_false(P.match_value(nil, "not an address", P.valueref("EMAIL_ADDRESS")))
      assert.is_true(m(send1, tool("send_email", P.dict { to = P.valueref("EMAIL_ADDRESS") })))
      assert.is_true(P.match_value(nil, "call +1 415-555-0132", P.valueref("PHONE_NUMBER")))
      assert.is_true(P.match_value(nil, "__DUMMY__", P.valueref("DUMMY")))
      local ok, e = pcall(P.match_value, nil, "Ann", P.valueref("PERSON"))
      assert.is_false(ok)
      assert.matches("detector provider", e.message)
   end)

   it("unsupported leaves are value errors", function()
      local ok, e = pcall(P.match_value, nil, true, true)
      assert.is_false(ok)
      assert.are.equal("value", e.kind)
   end)
end)

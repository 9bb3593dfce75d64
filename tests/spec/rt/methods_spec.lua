-- rt.methods (§9.2) through value.method: Python semantics; computed strings carry no location.
local value = require "rt.value"
local trace = require "rt.trace"
local rterror = require "rt.error"
local methods = require "rt.methods"

local None = value.None

local function A(...) return table.pack(...) end

local function marks(ctx)
   local out = {}
   for i, m in ipairs(ctx.marks) do
      out[i] = m[1] .. (m[2] and (":" .. m[2] .. "-" .. m[3]) or "")
   end
   return out
end

local function kind_of(f, ...)
   local ok, e = pcall(f, ...)
   assert.is_false(ok)
   assert.is_true(rterror.is(e), tostring(e))
   return e.kind
end

local function plain(list)
   local out = {}
   for i, x in ipairs(list) do out[i] = value.str(x) or x end
   return out
end

local st = assert(trace.normalize(trace.decode([[
   [{"role": "user", "content": [{"type": "text", "text": "Screenshot:"},
      {"type": "image_url", "image_url": {"url": "https://files.acme.io/login.png"}},
      {"type": "text", "text": "the admin password is here"}]},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "fw", "type": "function", "function": {"name": "firewall_allow",
       "arguments": {"port": 22, "source": "10.0.0.5, 192.168.1.20 and 0.0.0.0",
                     "customer": "acme' OR 1=1 --", "status": "open"}}}]},
    {"role": "tool", "content": "[default]\nkey_id = AKIAIOSFODNN7EXAMPLE\n[b]\nkey_id = AKIAJ2EXAMPLE7QWERTY\n",
     "tool_call_id": "fw", "metadata": {"server": "github"}},
    {"role": "tool", "content": "orphan", "tool_call_id": "nope"},
    {"role": "user", "content": "d\u00e9j\u00e0 vu 42 \u20ac"}]
]])))

local msg0, call = st.events[1], st.calls[1]
local args = value.attr(value.attr(call, "function"), "arguments")

describe("rt.methods (through value.method)", function()
   local function m(obj, name, ...) return value.method(value.ctx(), obj, name, A(...)) end

   it("strip, lower, upper with Python semantics", function()
      assert.are.equal("PLEASE CALL", m("  PLEASE CALL  ", "strip"))
      assert.are.equal("xyz", m("..xyz,,", "strip", ".,"))
      assert.are.equal("d\195\169j\195\160", m("D\195\137J\195\128", "lower"))
      assert.are.equal("STRASSE \195\137", m("stra\195\159e \195\169", "upper"))
      assert.are.equal("a", m("\194\160a\226\128\131", "strip")) -- NBSP, EM SPACE
   end)

   it("split and splitlines", function()
      assert.are.same({ "a@acme.io", "b@acme.io", "c@x.org" },
         plain(m("a@acme.io,b@acme.io,c@x.org", "split", ",")))
      assert.are.same({ "a", "b", "c" }, plain(m("  a \t b\nc  ", "split")))
      assert.are.same({ "", "a", "" }, plain(m(",a,", "split", ",")))
      assert.are.same({ "a", "b,c" }, plain(m("a,b,c", "split", ",", 1)))
      assert.are.same({ "a", "b", "", "c" }, plain(m("a\nb\r\n\nc", "splitlines")))
      assert.are.equal("value", kind_of(m, "a", "split", ""))
   end)

   it("split pieces of a trace string are computed (not located)", function()
      local parts = m(value.attr(args, "source"), "split", ",")
      assert.is_nil(value.loc(parts[1]))
   end)

   it("join and format", function()
      assert.are.equal("a / b", m(" / ", "join", value.list { "a", "b" }))
      assert.are.equal("type", kind_of(m, ",", "join", value.list { "a", 1 }))
      assert.are.equal("3 recipients", m("{} recipients", "format", 3))
      assert.are.equal("b-a {x}", m("{1}-{0} {{x}}", "format", "a", "b"))
      assert.are.equal("  3.14|x   |True", m("{:6.2f}|{:<4}|{}", "format", 3.14159, "x", true))
      assert.are.equal("1,234,567 0042", m("{:,} {:04d}", "format", 1234567, 42))
      assert.are.equal("'q' 2.5", m("{!r} {}", "format", "q", 2.5))
      assert.are.equal("index", kind_of(m, "{} {}", "format", 1))
   end)

   it("dict keys, values, items, get; values keep their trace locations", function()
      assert.are.same({ "customer", "port", "source", "status" }, (function()
         local ks = plain(m(args, "keys")); table.sort(ks); return ks end)())
      local vals = m(args, "values")
      local ctx = value.ctx()
      local hit = false
      for _, v in ipairs(vals) do
         if value.is_str(v) and value.contains(ctx, "--", v) then hit = true end
      end
      assert.is_true(hit)
      assert.are.same({ "1.tool_calls.0.function.arguments.customer:13-15" }, marks(ctx))
      assert.are.equal("nobody", m(args, "get", "approved_by", "nobody"))
      assert.are.equal(None, m(args, "get", "approved_by"))
      assert.are.equal(22, m(args, "get", "port"))
      local items = m(args, "items")
      assert.are.equal(4, #items)
      assert.are.equal(value.Tuple, getmetatable(items[1]))
   end)

   it("Contents text() and image()", function()
      local c = value.attr(msg0, "content")
      assert.are.same({ "Screenshot:", "the admin password is here" }, plain(m(c, "text")))
      assert.are.same({ "https://files.acme.io/login.png" }, plain(m(c, "image")))
   end)

   it("unknown methods are attribute errors", function()
      assert.are.equal("attribute", kind_of(m, "abc", "swapcase"))
      assert.are.equal("attribute", kind_of(m, args, "pop"))
   end)

   it("exports the extra Python string helpers", function()
      assert.is_true(methods.str.startswith(nil, "hello", A("he")))
      assert.is_true(methods.str.endswith(nil, "hello", A(value.list { "x", "lo" })))
      assert.are.equal("hexxo", methods.str.replace(nil, "hello", A("l", "x")))
      assert.are.equal(2, methods.str.count(nil, "hello", A("l")))
   end)
end)

-- rt.methods (§9.2) through value.method: Python semantics; computed strings carry no location.
-- luacheck: no max line length
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

describe("string methods agree with CPython (table generated with Python 3.11)", function()
   -- { method, subject, positional args, expected result, kwargs }
   local cases = {
      { "lower", "  Hello World  ", {}, "  hello world  " },
      { "upper", "  Hello World  ", {}, "  HELLO WORLD  " },
      { "strip", "  Hello World  ", {}, "Hello World" },
      { "split", "  Hello World  ", {}, { "Hello", "World" } },
      { "split", "  Hello World  ", { "," }, { "  Hello World  " } },
      { "splitlines", "  Hello World  ", {}, { "  Hello World  " } },
      { "split", "  Hello World  ", { None, 1 }, { "Hello", "World  " } },
      { "lower", "d\195\169j\195\160 VU \195\137\195\137\195\169", {}, "d\195\169j\195\160 vu \195\169\195\169\195\169" },
      { "upper", "d\195\169j\195\160 VU \195\137\195\137\195\169", {}, "D\195\137J\195\128 VU \195\137\195\137\195\137" },
      { "strip", "d\195\169j\195\160 VU \195\137\195\137\195\169", {}, "d\195\169j\195\160 VU \195\137\195\137\195\169" },
      { "split", "d\195\169j\195\160 VU \195\137\195\137\195\169", {}, { "d\195\169j\195\160", "VU", "\195\137\195\137\195\169" } },
      { "split", "d\195\169j\195\160 VU \195\137\195\137\195\169", { "," }, { "d\195\169j\195\160 VU \195\137\195\137\195\169" } },
      { "splitlines", "d\195\169j\195\160 VU \195\137\195\137\195\169", {}, { "d\195\169j\195\160 VU \195\137\195\137\195\169" } },
      { "split", "d\195\169j\195\160 VU \195\137\195\137\195\169", { None, 1 }, { "d\195\169j\195\160", "VU \195\137\195\137\195\169" } },
      { "lower", "stra\195\159e", {}, "stra\195\159e" },
      { "upper", "stra\195\159e", {}, "STRASSE" },
      { "strip", "stra\195\159e", {}, "stra\195\159e" },
      { "split", "stra\195\159e", {}, { "stra\195\159e" } },
      { "split", "stra\195\159e", { "," }, { "stra\195\159e" } },
      { "splitlines", "stra\195\159e", {}, { "stra\195\159e" } },
      { "split", "stra\195\159e", { None, 1 }, { "stra\195\159e" } },
      { "lower", "\206\145\206\146\206\147 \206\177\206\178\206\179 \207\130", {}, "\206\177\206\178\206\179 \206\177\206\178\206\179 \207\130" },
      { "upper", "\206\145\206\146\206\147 \206\177\206\178\206\179 \207\130", {}, "\206\145\206\146\206\147 \206\145\206\146\206\147 \206\163" },
      { "strip", "\206\145\206\146\206\147 \206\177\206\178\206\179 \207\130", {}, "\206\145\206\146\206\147 \206\177\206\178\206\179 \207\130" },
      { "split", "\206\145\206\146\206\147 \206\177\206\178\206\179 \207\130", {}, { "\206\145\206\146\206\147", "\206\177\206\178\206\179", "\207\130" } },
      { "split", "\206\145\206\146\206\147 \206\177\206\178\206\179 \207\130", { "," }, { "\206\145\206\146\206\147 \206\177\206\178\206\179 \207\130" } },
      { "splitlines", "\206\145\206\146\206\147 \206\177\206\178\206\179 \207\130", {}, { "\206\145\206\146\206\147 \206\177\206\178\206\179 \207\130" } },
      { "split", "\206\145\206\146\206\147 \206\177\206\178\206\179 \207\130", { None, 1 }, { "\206\145\206\146\206\147", "\206\177\206\178\206\179 \207\130" } },
      { "lower", "\208\159\209\128\208\184\208\178\208\181\209\130 \208\156\208\152\208\160", {}, "\208\191\209\128\208\184\208\178\208\181\209\130 \208\188\208\184\209\128" },
      { "upper", "\208\159\209\128\208\184\208\178\208\181\209\130 \208\156\208\152\208\160", {}, "\208\159\208\160\208\152\208\146\208\149\208\162 \208\156\208\152\208\160" },
      { "strip", "\208\159\209\128\208\184\208\178\208\181\209\130 \208\156\208\152\208\160", {}, "\208\159\209\128\208\184\208\178\208\181\209\130 \208\156\208\152\208\160" },
      { "split", "\208\159\209\128\208\184\208\178\208\181\209\130 \208\156\208\152\208\160", {}, { "\208\159\209\128\208\184\208\178\208\181\209\130", "\208\156\208\152\208\160" } },
      { "split", "\208\159\209\128\208\184\208\178\208\181\209\130 \208\156\208\152\208\160", { "," }, { "\208\159\209\128\208\184\208\178\208\181\209\130 \208\156\208\152\208\160" } },
      { "splitlines", "\208\159\209\128\208\184\208\178\208\181\209\130 \208\156\208\152\208\160", {}, { "\208\159\209\128\208\184\208\178\208\181\209\130 \208\156\208\152\208\160" } },
      { "split", "\208\159\209\128\208\184\208\178\208\181\209\130 \208\156\208\152\208\160", { None, 1 }, { "\208\159\209\128\208\184\208\178\208\181\209\130", "\208\156\208\152\208\160" } },
      { "lower", "a,b,,c", {}, "a,b,,c" },
      { "upper", "a,b,,c", {}, "A,B,,C" },
      { "strip", "a,b,,c", {}, "a,b,,c" },
      { "split", "a,b,,c", {}, { "a,b,,c" } },
      { "split", "a,b,,c", { "," }, { "a", "b", "", "c" } },
      { "splitlines", "a,b,,c", {}, { "a,b,,c" } },
      { "split", "a,b,,c", { None, 1 }, { "a,b,,c" } },
      { "lower", "\9x\194\160y\226\128\131z\10", {}, "\9x\194\160y\226\128\131z\10" },
      { "upper", "\9x\194\160y\226\128\131z\10", {}, "\9X\194\160Y\226\128\131Z\10" },
      { "strip", "\9x\194\160y\226\128\131z\10", {}, "x\194\160y\226\128\131z" },
      { "split", "\9x\194\160y\226\128\131z\10", {}, { "x", "y", "z" } },
      { "split", "\9x\194\160y\226\128\131z\10", { "," }, { "\9x\194\160y\226\128\131z\10" } },
      { "splitlines", "\9x\194\160y\226\128\131z\10", {}, { "\9x\194\160y\226\128\131z" } },
      { "split", "\9x\194\160y\226\128\131z\10", { None, 1 }, { "x", "y\226\128\131z\10" } },
      { "lower", "line1\10line2\13\10line3\13line4\11l5\12l6\28l7\194\133l8\226\128\168l9\10", {}, "line1\10line2\13\10line3\13line4\11l5\12l6\28l7\194\133l8\226\128\168l9\10" },
      { "upper", "line1\10line2\13\10line3\13line4\11l5\12l6\28l7\194\133l8\226\128\168l9\10", {}, "LINE1\10LINE2\13\10LINE3\13LINE4\11L5\12L6\28L7\194\133L8\226\128\168L9\10" },
      { "strip", "line1\10line2\13\10line3\13line4\11l5\12l6\28l7\194\133l8\226\128\168l9\10", {}, "line1\10line2\13\10line3\13line4\11l5\12l6\28l7\194\133l8\226\128\168l9" },
      { "split", "line1\10line2\13\10line3\13line4\11l5\12l6\28l7\194\133l8\226\128\168l9\10", {}, { "line1", "line2", "line3", "line4", "l5", "l6", "l7", "l8", "l9" } },
      { "split", "line1\10line2\13\10line3\13line4\11l5\12l6\28l7\194\133l8\226\128\168l9\10", { "," }, { "line1\10line2\13\10line3\13line4\11l5\12l6\28l7\194\133l8\226\128\168l9\10" } },
      { "splitlines", "line1\10line2\13\10line3\13line4\11l5\12l6\28l7\194\133l8\226\128\168l9\10", {}, { "line1", "line2", "line3", "line4", "l5", "l6", "l7", "l8", "l9" } },
      { "split", "line1\10line2\13\10line3\13line4\11l5\12l6\28l7\194\133l8\226\128\168l9\10", { None, 1 }, { "line1", "line2\13\10line3\13line4\11l5\12l6\28l7\194\133l8\226\128\168l9\10" } },
      { "lower", "\199\133 \196\176stanbul \196\177 \197\137 \195\191", {}, "\199\134 i\204\135stanbul \196\177 \197\137 \195\191" },
      { "upper", "\199\133 \196\176stanbul \196\177 \197\137 \195\191", {}, "\199\132 \196\176STANBUL I \202\188N \197\184" },
      { "strip", "\199\133 \196\176stanbul \196\177 \197\137 \195\191", {}, "\199\133 \196\176stanbul \196\177 \197\137 \195\191" },
      { "split", "\199\133 \196\176stanbul \196\177 \197\137 \195\191", {}, { "\199\133", "\196\176stanbul", "\196\177", "\197\137", "\195\191" } },
      { "split", "\199\133 \196\176stanbul \196\177 \197\137 \195\191", { "," }, { "\199\133 \196\176stanbul \196\177 \197\137 \195\191" } },
      { "splitlines", "\199\133 \196\176stanbul \196\177 \197\137 \195\191", {}, { "\199\133 \196\176stanbul \196\177 \197\137 \195\191" } },
      { "split", "\199\133 \196\176stanbul \196\177 \197\137 \195\191", { None, 1 }, { "\199\133", "\196\176stanbul \196\177 \197\137 \195\191" } },
      { "lower", "", {}, "" },
      { "upper", "", {}, "" },
      { "strip", "", {}, "" },
      { "split", "", {}, {  } },
      { "split", "", { "," }, { "" } },
      { "splitlines", "", {}, {  } },
      { "split", "", { None, 1 }, {  } },
      { "lower", "   ", {}, "   " },
      { "upper", "   ", {}, "   " },
      { "strip", "   ", {}, "" },
      { "split", "   ", {}, {  } },
      { "split", "   ", { "," }, { "   " } },
      { "splitlines", "   ", {}, { "   " } },
      { "split", "   ", { None, 1 }, {  } },
      { "lower", "a  b   c", {}, "a  b   c" },
      { "upper", "a  b   c", {}, "A  B   C" },
      { "strip", "a  b   c", {}, "a  b   c" },
      { "split", "a  b   c", {}, { "a", "b", "c" } },
      { "split", "a  b   c", { "," }, { "a  b   c" } },
      { "splitlines", "a  b   c", {}, { "a  b   c" } },
      { "split", "a  b   c", { None, 1 }, { "a", "b   c" } },
      { "format", "{} recipients", { 3 }, "3 recipients", nil },
      { "format", "{:>8}|{:<6}|{:^7}", { "ab", "cd", "ef" }, "      ab|cd    |  ef   ", nil },
      { "format", "{0:.2f} {0:.0f} {0:e}", { 3.14159 }, "3.14 3 3.141590e+00", nil },
      { "format", "{:,} {:_} {:08.3f}", { 1234567, 9876543, -3.5 }, "1,234,567 9_876_543 -003.500", nil },
      { "format", "{name}-{0}", { "x" }, "n-x", { name = "n" } },
      { "format", "{:+d} {: d} {:x} {:X} {:o} {:b}", { 5, 6, 255, 255, 8, 5 }, "+5  6 ff FF 10 101", nil },
      { "format", "{:%}", { 0.25 }, "25.000000%", nil },
      { "format", "{!r} {!s}", { "q", "r" }, "'q' r", nil },
      { "format", "{:*^9}", { "mid" }, "***mid***", nil },
      { "format", "{} {}", { true, None }, "True None", nil },
      { "format", "{:5}|{:<5}", { 42, 42 }, "   42|42   ", nil },
      { "format", "{:g} {:g} {}", { 0.0001, 123456789.0, 1e+20 }, "0.0001 1.23457e+08 1e+20", nil },
      { "format", "{{}} {}", { "x" }, "{} x", nil },
   }
   for i, c in ipairs(cases) do
      it(("case %d: %s"):format(i, c[1]), function()
         local a = { n = #c[3] }
         for j = 1, #c[3] do a[j] = c[3][j] end
         local got = methods.str[c[1]](nil, c[2], a, c[5])
         if type(got) == "table" then got = plain(got) end
         assert.are.same(c[4], got)
      end)
   end
end)

-- rt.builtins (§9.1) and rt.methods (§9.2): Python results, marks on located strings only.
local value = require "rt.value"
local trace = require "rt.trace"
local rterror = require "rt.error"
local B = require("rt.builtins").builtins

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

local msg0, call, out2, out3, msg4 = st.events[1], st.calls[1], st.events[3], st.events[4], st.events[5]
local args = value.attr(value.attr(call, "function"), "arguments")

describe("rt.builtins", function()
   it("len counts code points, list and dict sizes, Contents chunks; None is a type error", function()
      assert.are.equal(12, B.len(nil, A(value.attr(msg4, "content"))))
      assert.are.equal(3, B.len(nil, A(value.attr(msg0, "content"))))
      assert.are.equal(4, B.len(nil, A(args)))
      assert.are.equal(2, B.len(nil, A(value.list { 1, 2 })))
      assert.are.equal("type", kind_of(B.len, nil, A(None)))
   end)

   it("empty, any, all", function()
      assert.is_true(B.empty(nil, A("")))
      assert.is_false(B.empty(nil, A(value.list { 0 })))
      assert.is_false(B.any(nil, A(value.list {})))
      assert.is_true(B.any(nil, A(value.list { 0, "", "x" })))
      assert.is_true(B.all(nil, A(value.list {})))
      assert.is_false(B.all(nil, A(value.list { 1, None })))
   end)

   it("sum, min, max like Python", function()
      local l = value.list { 1200, 800, 450 }
      assert.are.equal(2450, B.sum(nil, A(l)))
      assert.are.equal(450, B.min(nil, A(l)))
      assert.are.equal(1200, B.max(nil, A(l)))
      assert.are.equal(5, B.max(nil, A(3, 5)))
      assert.are.equal(2.5, B.sum(nil, A(value.list { 1, 1.5 })))
      assert.are.equal("value", kind_of(B.max, nil, A(value.list {})))
      assert.are.equal("type", kind_of(B.max, nil, A(value.list { 1, "a" })))
      assert.are.equal("b", B.max(nil, A(value.list { "a", "b" })))
   end)

   it("print is a no-op returning True", function()
      assert.is_true(B.print(nil, A("x", 1)))
   end)

   it("find returns every non-overlapping match and marks each on a trace string", function()
      local ctx = value.ctx()
      local content = value.attr(out2, "content")
      local r = B.find(ctx, A("AKIA[0-9A-Z]{16}", content))
      assert.are.same({ "AKIAIOSFODNN7EXAMPLE", "AKIAJ2EXAMPLE7QWERTY" }, plain(r))
      assert.are.same({ "2.content:19-39", "2.content:53-73" }, marks(ctx))
      ctx = value.ctx()
      local src = value.attr(args, "source")
      r = B.find(ctx, A("[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+", src))
      assert.are.equal(3, #r)
      assert.are.same({ "1.tool_calls.0.function.arguments.source:0-8",
         "1.tool_calls.0.function.arguments.source:10-22",
         "1.tool_calls.0.function.arguments.source:27-34" }, marks(ctx))
   end)

   it("find counts code points on non-ASCII text and marks nothing on computed strings", function()
      local ctx = value.ctx()
      B.find(ctx, A("[0-9]+", value.attr(msg4, "content")))
      assert.are.same({ "4.content:8-10" }, marks(ctx))
      ctx = value.ctx()
      assert.are.same({ "42" }, plain(B.find(ctx, A("[0-9]+", "x 42"))))
      assert.are.same({}, marks(ctx))
   end)

   it("find / match: invalid pattern is a regex error; a non-string subject a type error", function()
      assert.are.equal("regex", kind_of(B.find, value.ctx(), A("(", "x")))
      assert.are.equal("regex", kind_of(B.match, nil, A("[", "x")))
      assert.are.equal("type", kind_of(B.match, nil, A("x", None)))
   end)

   it("match anchors at the start only and marks nothing", function()
      assert.is_true(B.match(nil, A("(ls|cat|grep)\\b", "ls -la")))
      assert.is_false(B.match(nil, A("(ls|cat|grep)\\b", "lsblk")))
      assert.is_true(B.match(nil, A("data:image/", "data:image/png;base64,xx")))
      assert.is_false(B.match(nil, A("https://cdn\\.acme\\.io/", "https://tracker.example/p.png")))
   end)

   it("tool_call links outputs; None when unlinked; value error on other events", function()
      assert.are.equal(call, B.tool_call(nil, A(out2)))
      assert.are.equal(None, B.tool_call(nil, A(out3)))
      assert.are.equal("value", kind_of(B.tool_call, nil, A(msg0)))
   end)

   it("server reads metadata.server", function()
      assert.are.equal("github", B.server(nil, A(out2)))
      assert.are.equal(None, B.server(nil, A(msg0)))
   end)

   it("text and image read chunks with their trace locations", function()
      local t = B.text(nil, A(value.attr(msg0, "content")))
      assert.are.same({ "Screenshot:", "the admin password is here" }, plain(t))
      assert.are.equal("0.content.2.text", value.loc(t[2]))
      local ctx = value.ctx()
      assert.is_true(value.contains(ctx, "password", t[2]))
      assert.are.same({ "0.content.2.text:10-18" }, marks(ctx))
      local im = B.image(nil, A(msg0))
      assert.are.same({ "https://files.acme.io/login.png" }, plain(im))
      assert.are.equal("0.content.1.image_url.url", value.loc(im[1]))
      assert.are.same({ "hi", "x" }, plain(B.text(nil, A("hi", None, value.list { "x", 3 }))))
      assert.are.same({ "data:image/png;base64,AA" },
         plain(B.image(nil, A("data:image/png;base64,AA", "https://x/y.png"))))
      assert.are.same({}, plain(B.text(nil, A(call))))
   end)

   it("json_loads and tuple", function()
      local d = B.json_loads(nil, A('{"a": [1, 2.5]}'))
      assert.are.equal(value.Dict, getmetatable(d))
      assert.are.equal(1, d.a[1])
      assert.are.equal("value", kind_of(B.json_loads, nil, A("{x")))
      assert.are.equal(value.Tuple, getmetatable(B.tuple(nil, A(value.list { 1 }))))
   end)
end)

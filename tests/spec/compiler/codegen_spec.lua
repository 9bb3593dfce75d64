-- compiler.codegen: line-preserving Lua that calls only the policy API (docs/policy-api.md).
-- luacheck: max line length 240
local lower = require "compiler.lower"
local codegen = require "compiler.codegen"
local A = require "compiler.astb"

local function typed(l, c, v) return A.name(l, c, v.name, "typed", v) end

local function gen(stmts)
   local st = { ast = A.policy(stmts), diags = {} }
   lower.run(st)
   codegen.run(st)
   return st.lua, st
end

-- An environment holding only the policy API names, recording declarations.
local API = { "rule", "var", "let", "cond", "flow", "succ", "forall", "count", "predicate", "const",
   "input", "Violation", "FLOW", "SUCC" }
local function recording_env()
   local env, log = {}, {}
   for _, name in ipairs(API) do
      env[name] = function(...) local t = { name, ... }; log[#log + 1] = t; return t end
   end
   env.V = { None = setmetatable({}, { __name = "None" }) }
   env.PAT = setmetatable({}, { __index = function(_, k) return function(...) return { pat = k, ... } end end })
   env.B, env.CONST = {}, {}
   return env, log
end

local function lines(s)
   local out = {}
   for l in (s .. "\n"):gmatch("(.-)\n") do out[#out + 1] = l end
   return out
end

describe("compiler.codegen", function()
   local a, b = A.tv(2, 6, "a", "ToolCall"), A.tv(2, 23, "b", "ToolOutput")
   local stmts = { A.rule(1, 1, 0, A.call(1, 7, A.name(1, 7, "PolicyViolation", "builtin"), { A.str(1, 23, "leak") },
      { A.kw(1, 31, "src", typed(1, 35, a)) }), {
         A.bin(2, 5, "->", a, b),
         A.bin(4, 5, "is", typed(4, 5, a), A.pat(4, 10, "read_file")),
         A.bin(6, 5, "in", A.str(6, 5, "SE\"CR\\ET\n"), A.member(6, 17, typed(6, 17, b), "content")),
      }) }

   it("loads text-only in an environment holding only the policy API", function()
      local src = gen(stmts)
      local env, log = recording_env()
      local f = assert(load(src, "=policy:t", "t", env))
      f()
      assert.equal("rule", log[#log][1])
   end)

   it("keeps each body item on its policy line", function()
      local src = gen(stmts)
      local ls = lines(src)
      assert.truthy(ls[1]:find("rule {", 1, true))
      assert.truthy(ls[2]:find('flow("a", "b", 2, 5)', 1, true))
      assert.equal("", ls[3])
      assert.truthy(ls[4]:find('cond({"a"}, 4, 5,', 1, true))
      assert.equal("", ls[5])
      assert.truthy(ls[6]:find('cond({"b"}, 6, 5,', 1, true))
   end)

   it("escapes string literals on one line", function()
      local src = gen(stmts)
      assert.truthy(src:find('"SE\\"CR\\\\ET\\n"', 1, true))
   end)

   it("reports a runtime error on the policy line (chunkname =policy:<name>)", function()
      local src = gen(stmts)
      local env, log = recording_env()
      env.V.contains = function() error("boom", 2) end
      env.V.attr = function() return "x" end
      assert(load(src, "=policy:demo", "t", env))()
      local rule = log[#log]
      local cond6
      for _, item in ipairs(rule[2]) do if type(item) == "table" and item[3] == 6 then cond6 = item end end
      local ok, err = pcall(cond6[5], {}, {})
      assert.is_false(ok)
      assert.matches("policy:demo:6:", tostring(err), 1, true)
   end)

   it("emits rule info for state.rules", function()
      local _, st = gen(stmts)
      assert.same({ { index = 0, message = "leak", line = 1 } }, st.rules)
   end)
end)

-- Golden tests: tests/spec/fixtures/<name>.inv compiled through the real pipeline must equal
-- <name>.lua byte for byte. UPDATE_GOLDEN=1 rewrites the .lua files (review the diff!).
describe("compiler.codegen golden files", function()
   local compiler = require "compiler"
   local dir = "tests/spec/fixtures/"
   local p = io.popen("ls -1 " .. dir .. " 2>/dev/null")
   local names = {}
   for f in p:lines() do
      local n = f:match("^(.*)%.inv$")
      if n then names[#names + 1] = n end
   end
   p:close()
   table.sort(names)
   local function read(path)
      local f = io.open(path, "rb")
      if not f then return nil end
      local s = f:read("a")
      f:close()
      return s
   end
   for _, name in ipairs(names) do
      it(name .. ".inv", function()
         local src = assert(read(dir .. name .. ".inv"))
         local st = compiler.run_until("codegen", src, "=policy:" .. name)
         local msgs = {}
         for _, d in ipairs(st.diags) do msgs[#msgs + 1] = ("%d:%d: %s"):format(d.line or 0, d.column or 0, d.message or "") end
         assert.same({}, msgs)
         assert.is_string(st.lua)
         -- line preservation: the generated text has as many lines as the policy (+ the trailer)
         local _, pl = src:gsub("\n", "")
         local _, ll = st.lua:gsub("\n", "")
         assert.is_true(ll <= pl + 1, "generated Lua has more lines than the policy")
         local env = setmetatable({}, { __index = function() return function() return {} end end })
         env.V, env.PAT, env.B, env.CONST = { None = {} }, env, {}, {}
         assert(load(st.lua, "=policy:" .. name, "t", env))
         local golden = read(dir .. name .. ".lua")
         if os.getenv("UPDATE_GOLDEN") == "1" or not golden then
            local f = assert(io.open(dir .. name .. ".lua", "wb"))
            f:write(st.lua)
            f:close()
            golden = st.lua
         end
         assert.equal(golden, st.lua)
      end)
   end
end)

-- Whatever the front half accepts, the generated Lua loads in the real policy environment.
describe("compiler.codegen on mutated policies", function()
   it("never produces Lua that fails to load (seed printed on failure)", function()
      local compiler = require "compiler"
      local policy = require "rt.policy"
      local cjson = require "cjson"
      local seed = tonumber(os.getenv("FUZZ_SEED") or "") or 12345
      math.randomseed(seed)
      local srcs = {}
      local p = io.popen("ls ../shared/conformance/cases/*.json tests/spec/fixtures/*.inv 2>/dev/null")
      for f in p:lines() do
         local text = io.open(f):read("a")
         srcs[#srcs + 1] = f:match("%.json$") and cjson.decode(text).policy or text
      end
      p:close()
      local toks = { " and ", " or ", " not ", "(", ")", "[", "]", "{", "}", ":", ":=", "->", "~>", "*",
         "<X>", "tool:f", " in ", " is ", "\n", "\n    ", '"', "'''", "#", ",", "=", "x", "1.5", "-", "**",
         " if ", " else ", " for ", "forall:", "count(min=1):", "\n        (z: ToolCall)", "[a for a in b]",
         "input.q", ".y", "(q: Message) in None" }
      for _, src in ipairs(srcs) do
         for _ = 1, 4 do
            local s = src
            for _ = 1, math.random(1, 3) do
               local at = math.random(1, #s + 1)
               local r = math.random()
               if r < 0.5 then s = s:sub(1, at - 1) .. toks[math.random(#toks)] .. s:sub(at)
               elseif r < 0.8 then s = s:sub(1, at - 1) .. s:sub(at + math.random(1, 4))
               else local q = math.random(1, #s + 1); s = s:sub(1, at - 1) .. s:sub(q, q + 5) .. s:sub(at) end
            end
            local ok, lua, info = pcall(compiler.compile, s, "=policy:f")
            assert(ok, ("seed %d: compile raised %s for:\n%s"):format(seed, tostring(lua), s))
            if lua then
               local P, err = policy.load_lua(lua, "f")
               assert(P, ("seed %d: generated Lua does not load (%s) for:\n%s"):format(seed,
                  tostring(err and err.message), s))
            else
               for _, d in ipairs(info) do
                  assert(d.kind ~= "internal", ("seed %d: internal error %s for:\n%s"):format(seed, tostring(d.message), s))
               end
            end
         end
      end
   end)
end)

-- End to end through rt (compile, load, analyze): one small policy per construct the back half
-- lowers, with the number of violations Python semantics give on a three-event trace.
describe("compiled constructs, end to end", function()
   local rt = require "rt"
   local cjson = require "cjson"
   local function count_violations(src, trace, params)
      local pol, err = rt.load(src, "invariant", "t")
      assert(pol, err and err.message)
      local vs, e = rt.analyze(pol, cjson.decode(cjson.encode(trace)), params)
      assert(vs, e and e.message)
      return #vs
   end
   local T = {
     {role="user", content="hello world"},
     {role="assistant", content="abc", tool_calls={{id="1",type="function",["function"]={name="a",arguments={x=1}}},{id="2",type="function",["function"]={name="b",arguments={x=2}}}}},
     {role="tool", tool_call_id="2", content="out"},
   }
   local tests = {
    {"ternary", 'raise "t" if:\n    (m: Message)\n    ("yes" if m.role == "user" else "no") == "yes"\n', 1},
    {"contains_only", 'raise "t" if:\n    (m: Message)\n    ["a", "b", "c"] contains_only ["a", "c"]\n    m.role == "user"\n', 1},
    {"is not", 'raise "t" if:\n    (m: Message)\n    m.content is not None\n', 2},
    {"not in", 'raise "t" if:\n    (m: Message)\n    "world" not in m.content\n', 1},
    {"comp cond", 'raise "t" if:\n    (m: Message)\n    [c.function.name for c in m.tool_calls if c.function.arguments.x > 1] == ["b"]\n', 1},
    {"dict lit", 'raise "t" if:\n    (m: Message)\n    {"r": m.role}["r"] == "assistant"\n', 1},
    {"arith", 'raise "t" if:\n    (c: ToolCall)\n    (c.function.arguments.x ** 2 + 1) % 3 == 2\n    -c.function.arguments.x == -1\n', 1},
    {"tuple", 'raise "t" if:\n    (c: ToolCall)\n    (c.function.name, 5) == "a"\n', 1},
    {"not flow", 'raise "t" if:\n    (a: ToolCall)\n    (b: ToolCall)\n    not (a -> b)\n    not (a == b)\n', 1},
    {"flow expr", 'raise "t" if:\n    (a: ToolCall)\n    (b: ToolCall)\n    (a ~> b) or (b ~> a)\n', 2},
    {"pred pred", 'p(x: ToolCall) :=\n    x.function.name == "b"\nq(y: ToolCall) :=\n    p(y)\n    y.function.arguments.x == 2\nraise "t" if:\n    (c: ToolCall)\n    q(c)\n', 1},
    {"const block", 'NAMES:\n    ["a"]\nraise "t" if:\n    (c: ToolCall)\n    c.function.name in NAMES\n', 1},
    {"raise typed", 'raise c if:\n    (c: ToolCall)\n    c.function.name == "b"\n', 1},
    {"count positional", 'from invariant import count\nraise "t" if:\n    count(2):\n        (c: ToolCall)\n        c.function.arguments.x > 0\n', 1},
    {"count 3 false", 'from invariant import count\nraise "t" if:\n    count(min=3):\n        (c: ToolCall)\n        c.function.arguments.x > 0\n', 0},
    {"nested quant", 'from invariant import forall, count\nraise "t" if:\n    (m: Message)\n    forall:\n        (c: ToolCall) in m.tool_calls\n        count(min=1):\n            (o: ToolOutput)\n            o.content == "out"\n', 2},
    {"and returns operand", 'raise "t" if:\n    (m: Message)\n    (m.role == "user" and "x") == "x"\n', 1},
    {"or returns operand", 'raise "t" if:\n    (m: Message)\n    (m.content or "z") == "abc"\n', 1},
    {"short circuit", 'raise "t" if:\n    (m: Message)\n    m.content is not None and m.content.upper() == "ABC"\n', 1},
    {"input", 'raise "t" if:\n    (m: Message)\n    m.role == input.role\n', 1, {role="user"}},
    {"is scalar", 'raise "t" if:\n    (m: Message)\n    m.role is "user"\n', 1},
    {"format", 'raise Violation("{} n".format(len(m.content)), k=m.role) if:\n    (m: Message)\n    m.role == "user"\n', 1},
    {"derived order", 'raise Violation("x", n=n) if:\n    (m: Message)\n    n := len(m.content)\n    n > 5\n', 1},
    {"index neg", 'raise "t" if:\n    (m: Message)\n    m.content.split(" ")[-1] == "world"\n', 1},
    {"tool output pattern", 'raise "t" if:\n    (o: ToolOutput)\n    o is tool:b({x: 2})\n', 1},
    {"string escapes", 'raise "t" if:\n    (m: Message)\n    match("h\\w+ w", m.content)\n', 1},
    {"keyword-named pred", 'end(x: ToolCall) :=\n    x.function.name == "a"\nraise "t" if:\n    (c: ToolCall)\n    end(c)\n', 1},
    {"predicates named c, e, AND", 'c(x: ToolCall) :=\n    x.function.name == "a"\ne(x: ToolCall) :=\n    c(x)\nAND(x: ToolCall) :=\n    e(x)\nraise "t" if:\n    (m: ToolCall)\n    [AND(y) for y in [m]] == [True]\n', 1},
    {"flow from a derived variable", 'raise "t" if:\n    (o: ToolOutput)\n    call := tool_call(o)\n    (x: ToolCall) -> call\n', 1},
    {"dict literal duplicate keys", 'raise "t" if:\n    (m: Message)\n    ",".join({"a": 1, "b": 2, "a": 3}.keys()) == "a,b"\n    {"a": 1, "b": 2, "a": 3}["a"] == 3\n', 2},
    {":= used on a line before its assignment", 'raise Violation("x", n=n) if:\n    (m: Message)\n    n > 5\n    n := len(m.content)\n', 1},
    {"rule var named like api", 'raise Violation("v", cond=cond) if:\n    (cond: ToolCall)\n    (V: ToolCall)\n    cond -> V\n', 1},
   }
   for _, t in ipairs(tests) do
      it(t[1], function()
         assert.equal(t[3], count_violations(t[2], T, t[4]))
      end)
   end
end)

describe("compiler.codegen count bounds", function()
   it("takes bounds computed per model (a parameter, an outer variable; None = no bound)", function()
      local rt = require "rt"
      local src = "from invariant import count\nraise \"x\" if:\n    (m: Message)\n"
         .. "    count(min=input.n, max=None if input.n > 1 else len(m.tool_calls)):\n"
         .. "        (c: ToolCall) in m.tool_calls\n"
      local pol = assert(rt.load(src, "invariant", "t"))
      local call = function(i) return { id = tostring(i), type = "function", ["function"] = { name = "f", arguments = {} } } end
      local trace = { { role = "assistant", content = "a", tool_calls = { call(1), call(2) } },
         { role = "assistant", content = "b", tool_calls = { call(3) } } }
      local cjson = require "cjson"
      local vs = assert(rt.analyze(pol, cjson.decode(cjson.encode(trace)), { n = 2 }))
      assert.equal(1, #vs)
      vs = assert(rt.analyze(pol, cjson.decode(cjson.encode(trace)), { n = 1 }))
      assert.equal(2, #vs)
   end)
end)

describe("compiler.codegen on long and deep expressions", function()
   local rt = require "rt"
   local function analyze(src, trace)
      local pol, err = rt.load(src, "invariant", "t")
      if not pol then return nil, err end
      return rt.analyze(pol, trace)
   end

   it("flattens 2000-operand `or` and `-` chains (Lua's parser nests at most ~200 levels)", function()
      local parts = {}
      for i = 1, 2000 do parts[i] = '"w' .. i .. '" in m.content' end
      parts[2000] = '"hello" in m.content'
      local vs = assert(analyze("raise \"x\" if:\n    (m: Message)\n    " .. table.concat(parts, " or ") .. "\n",
         { { role = "user", content = "hello" } }))
      assert.equal(1, #vs)
      vs = assert(analyze("raise \"x\" if:\n    (m: Message)\n    " .. ("1 - "):rep(2000) .. "1 == -1999\n",
         { { role = "user", content = "hello" } }))
      assert.equal(1, #vs)
   end)

   it("keeps Python short-circuit in flattened chains", function()
      local parts = { "m.content is None" }
      for i = 2, 12 do parts[i] = 'm.content.upper() == "X' .. i .. '"' end
      parts[13] = "m.role == \"user\""
      local vs = assert(analyze("raise \"x\" if:\n    (m: Message)\n    " .. table.concat(parts, " or ") .. "\n",
         { { role = "user", content = require("cjson").null } }))
      assert.equal(1, #vs)
   end)

   it("reports nesting deeper than the limit as a located diagnostic (E402)", function()
      local compiler = require "compiler"
      local lua, diags = compiler.compile("raise \"x\" if:\n    (m: Message)\n    " .. ("not "):rep(100) .. "True\n")
      assert.is_nil(lua)
      assert.same({ "E402", 3 }, { diags[1].code, diags[1].line })
   end)
end)

-- Equality joins compiled with the engine's eq hint (codegen emits it for `X == Y` with one typed
-- variable on each side) give exactly the results of the same policies compiled without it: the
-- same violations in the same order, or the same error, on random traces whose join keys mix
-- Python-equal values of different types (1, 1.0, True, "1", None, containers, missing keys).
local rt = require "rt"
local trace = require "rt.trace"
local codegen = require "compiler.codegen"
local cjson = require "cjson"

local POLICIES = {
   'raise "linked" if:\n    (c: ToolCall)\n    (o: ToolOutput)\n    o.tool_call_id == c.id\n',
   'raise "same k" if:\n    (a: ToolCall)\n    (b: ToolCall)\n    a.function.arguments.k == b.function.arguments.k\n',
   'raise "same k later" if:\n    (a: ToolCall) -> (b: ToolCall)\n    a.function.arguments["k"] == b.function.arguments["k"]\n    a.function.name == "read"\n',
   'raise "same name" if:\n    (a: ToolCall) -> (b: ToolCall)\n    b.function.name == a.function.name\n',
   'raise "echo" if:\n    (m: Message)\n    (o: ToolOutput)\n    m.content == o.content\n',
   'raise "three" if:\n    (m: Message)\n    (c: ToolCall)\n    (o: ToolOutput)\n    o.tool_call_id == c.id\n    m.content == o.content\n',
   -- a key that is missing for some calls: a runtime error wherever the scan reaches it
   'raise "missing" if:\n    (a: ToolCall)\n    (b: ToolCall)\n    a.function.arguments["x"] == b.function.arguments["x"]\n',
   -- events as keys (not hashable: the engine scans)
   'raise "self" if:\n    (a: ToolCall)\n    (b: ToolCall)\n    a == b\n',
}

local KEYS = { "1", "1.0", "true", '"1"', "null", "0", "false", "[1]", '{"a": 1}', '"x"', "2.5" }
local WORDS = { "a", "b", "c" }

local function random_trace(rnd)
   local ev, id = {}, 0
   for _ = 1, rnd(0, 14) do
      local r = rnd(1, 10)
      if r <= 3 then
         ev[#ev + 1] = string.format('{"role":"user","content":%q}', WORDS[rnd(1, #WORDS)])
      elseif r <= 7 then
         local calls = {}
         for _ = 1, rnd(0, 2) do
            id = id + 1
            local args = '"k":' .. KEYS[rnd(1, #KEYS)]
            if rnd(1, 3) > 1 then args = args .. ',"x":' .. KEYS[rnd(1, #KEYS)] end
            calls[#calls + 1] = string.format(
               '{"id":"%d","type":"function","function":{"name":"%s","arguments":{%s}}}',
               rnd(1, id), rnd(1, 2) == 1 and "read" or "send", args)
         end
         ev[#ev + 1] = '{"role":"assistant","content":null,"tool_calls":[' .. table.concat(calls, ",") .. "]}"
      else
         local tcid = rnd(1, 4) == 1 and "null" or string.format('"%d"', rnd(1, id + 1))
         ev[#ev + 1] = string.format('{"role":"tool","tool_call_id":%s,"content":%q}', tcid,
            WORDS[rnd(1, #WORDS)])
      end
   end
   return "[" .. table.concat(ev, ",") .. "]"
end

local function load(src, hints)
   codegen.emit_eq_hints = hints
   local pol, err = rt.load(src, "invariant", "eqjoin")
   codegen.emit_eq_hints = true
   assert(pol, err and err.message)
   return pol
end

local function outcome(pol, text)
   local vs, err = rt.analyze(pol, trace.decode(text))
   if not vs then return { error = { code = err.code, kind = err.kind, message = err.message } } end
   return cjson.encode(rt.render(vs, "native"))
end

describe("equality-join hints", function()
   it("are emitted for the join conditions of these policies", function()
      for i = 1, 7 do
         local pol = load(POLICIES[i], true)
         assert.truthy(pol.lua:find("eq = {", 1, true), POLICIES[i])
         assert.falsy(load(POLICIES[i], false).lua:find("eq = {", 1, true))
      end
   end)

   it("give the results of the unhinted policies on random traces", function()
      local seed = 20261206
      local state = seed
      local function rnd(lo, hi) -- a small LCG: the same cases on every Lua
         state = (state * 1103515245 + 12345) % 2147483648
         return lo + state % (hi - lo + 1)
      end
      local hinted, plain = {}, {}
      for i, src in ipairs(POLICIES) do
         hinted[i], plain[i] = load(src, true), load(src, false)
      end
      local nonempty, errors = 0, 0
      for case = 1, 300 do
         local text = random_trace(rnd)
         for i = 1, #POLICIES do
            local a, b = outcome(hinted[i], text), outcome(plain[i], text)
            assert.are.same(b, a, string.format("seed %d case %d policy %d trace %s", seed, case, i, text))
            if type(a) == "string" and a ~= "[]" and a ~= "{}" then nonempty = nonempty + 1 end
            if type(a) == "table" then errors = errors + 1 end
         end
      end
      assert.is_true(nonempty > 200, tostring(nonempty))
      assert.is_true(errors > 20, tostring(errors))
   end)
end)

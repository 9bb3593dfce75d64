-- Mutation run over the conformance suite: every case's policy is mutated at random (tokens
-- inserted, characters deleted); each mutant that loads is analyzed on the case's trace. No
-- mutant may make rt raise, report an `internal` error, or fail to render. Prints TAP (one test
-- per case) and the seed.
--
--   lua5.4 tests/conformance/mutate.lua CASES_DIR [SEED] [MUTANTS_PER_CASE]
local script_dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = script_dir .. "/?.lua;" .. "lua/runtime/?.lua;lua/runtime/?/init.lua;lua/?.lua;" .. package.path
package.cpath = "build/lua/?.so;" .. package.cpath

local rt = require "rt"
local trace = require "rt.trace"
local cjson = require "cjson"

local dir = arg[1] or "../shared/conformance/cases"
local seed = tonumber(arg[2] or "") or os.time()
local per_case = tonumber(arg[3] or "") or 25
math.randomseed(seed)
print("# seed " .. seed)

local TOKENS = { " and ", " or ", " not ", "(", ")", "[", "]", "{", "}", ":", ":=", "->", "~>", "*", " in ",
   " is ", "\n    ", '"', ",", "=", "x", "1.5", "-", "**", " if ", " else ", " for ", "input.q", ".y", ".content",
   ".function", ".name", ".arguments", "[0]", "[-1]", "len(", "any(", 'find("a", ', 'match("a", ', "tool_call(",
   "text(", "None", "True", "0", '""', "[]", "{}", ".lower()", '.split(",")', '.get("a")', "(q: Message) in None",
   "\n    (z: ToolCall)", "\n    (s: str)", "\n    (d: dict)", "(t: Tool)" }

local cases = {}
for f in io.popen("ls -1 " .. dir):lines() do
   if f:match("%.json$") then
      local text = io.open(dir .. "/" .. f):read("a")
      local c = cjson.decode(text)
      if c.trace then cases[#cases + 1] = { id = c.id, policy = c.policy, text = text } end
   end
end
table.sort(cases, function(a, b) return a.id < b.id end)
print("1.." .. #cases)
local failed = 0
for n, cs in ipairs(cases) do
   local problems = {}
   for _ = 1, per_case do
      local s = cs.policy
      for _ = 1, math.random(1, 2) do
         local p = math.random(1, #s + 1)
         if math.random() < 0.7 then s = s:sub(1, p - 1) .. TOKENS[math.random(#TOKENS)] .. s:sub(p)
         else s = s:sub(1, p - 1) .. s:sub(p + math.random(1, 4)) end
      end
      local okl, pol, err = pcall(rt.load, s, "invariant", "m")
      local problem
      if not okl then
         problem = "rt.load raised: " .. tostring(pol)
      elseif pol then
         local raw = trace.decode(cs.text)
         local ok, vs, e = pcall(rt.analyze, pol, raw.trace, raw.parameters)
         if not ok then
            problem = "rt.analyze raised: " .. tostring(vs)
         elseif not vs then
            if e.kind == "internal" or e.code == "internal" then problem = "internal: " .. tostring(e.message) end
         else
            local okr, r = pcall(rt.render, vs, "invariant")
            if not okr then problem = "rt.render raised: " .. tostring(r) end
         end
      elseif err and err.code == "internal" then
         problem = "load internal: " .. tostring(err.message)
      end
      if problem and #problems < 3 then problems[#problems + 1] = problem .. "\n" .. s end
   end
   if #problems == 0 then
      print(("ok %d - %s"):format(n, cs.id))
   else
      failed = failed + 1
      print(("not ok %d - %s"):format(n, cs.id))
      for _, p in ipairs(problems) do for l in (p .. "\n"):gmatch("(.-)\n") do print("#   " .. l) end end
   end
end
print(("# %d of %d cases without problems (seed %d)"):format(#cases - failed, #cases, seed))
os.exit(failed == 0 and 0 or 1)

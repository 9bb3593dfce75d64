-- Fuzz: random and mutated policies (from the conformance corpus). The invariant (Fennel's):
-- the compiler returns code or structured diagnostics, never a raw error, and never takes more
-- than a bounded time per input. The front half must never produce an "internal" diagnostic.
-- The seed is printed on failure; set VIGIL_FUZZ_SEED to replay, VIGIL_FUZZ_N to scale.
local helper = require "helper"
local compiler = require "compiler"

local SEED = tonumber(os.getenv("VIGIL_FUZZ_SEED")) or os.time()
local N = tonumber(os.getenv("VIGIL_FUZZ_N")) or 1500
local LIMIT = 0.2 -- seconds per input

local TOKENS = {
   "raise", "if", "else", "not", "and", "or", "in", "is", "for", "import", "from", "as", "def",
   "tool", "forall", "count", "None", "True", "False", "contains_only", ":", ":=", "->", "~>",
   "==", "!=", "<", ">", "<=", ">=", "+", "-", "*", "/", "%", "**", ".", ",", "=", "(", ")", "[", "]",
   "{", "}", "<EMAIL_ADDRESS>", "<X>", '"s"', "'t'", 'r"\\d"', '"""\nml\n"""', "1", "2.5", ".5", "1e3",
   "m", "c", "x", "Message", "ToolCall", "len", "input", "#c", "\n", "\n    ", "\n        ", " ", "\t",
   "é", "\1", "\2", "\3", "\0", "\r\n", "|INDENT|", "'unterminated", "\\",
}

local function check(src, seed, what)
   local t0 = os.clock()
   local ok, st = pcall(compiler.front, src)
   local dt = os.clock() - t0
   local function fail(msg)
      error(string.format("%s (seed %d, %s)\n--- input ---\n%s\n-------------", msg, seed, what, src), 0)
   end
   if not ok then fail("front() raised: " .. tostring(st)) end
   if type(st) ~= "table" or type(st.diags) ~= "table" then fail("front() returned no state") end
   for _, d in ipairs(st.diags) do
      if d.kind == "internal" then fail("internal diagnostic: " .. tostring(d.message)) end
      if type(d.line) ~= "number" or type(d.column) ~= "number" or type(d.message) ~= "string" then
         fail("malformed diagnostic")
      end
   end
   if #st.diags == 0 and not st.ast then fail("no diagnostics and no AST") end
   if dt > LIMIT then fail(string.format("front() took %.0f ms", dt * 1000)) end
   local ok2, code, info = pcall(compiler.compile, src, "=policy:fuzz")
   if not ok2 then fail("compile() raised: " .. tostring(code)) end
   if code == nil and (type(info) ~= "table" or type(info[1]) ~= "table") then
      fail("compile() returned neither code nor diagnostics")
   end
   if code ~= nil and type(code) ~= "string" then fail("compile() returned a non-string") end
end

local function mutate(rng, src)
   local n = rng(1, 4)
   for _ = 1, n do
      local k = rng(1, 7)
      local len = #src
      local p = rng(1, len + 1)
      if k == 1 and len > 0 then                      -- delete a byte range
         src = src:sub(1, p - 1) .. src:sub(p + rng(1, 3))
      elseif k == 2 then                              -- insert a token
         src = src:sub(1, p - 1) .. TOKENS[rng(1, #TOKENS)] .. src:sub(p)
      elseif k == 3 and len > 1 then                  -- swap two bytes
         local q = rng(1, len)
         local a, b = math.min(p, q), math.max(p, q)
         if a < b and b <= len then
            src = src:sub(1, a - 1) .. src:sub(b, b) .. src:sub(a + 1, b - 1) .. src:sub(a, a) .. src:sub(b + 1)
         end
      elseif k == 4 then                              -- duplicate or drop a line
         local lines = {}
         for l in (src .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = l end
         local i = rng(1, #lines)
         if rng(1, 2) == 1 then table.insert(lines, i, lines[i]) else table.remove(lines, i) end
         src = table.concat(lines, "\n")
      elseif k == 5 then                              -- re-indent a line
         local lines = {}
         for l in (src .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = l end
         local i = rng(1, #lines)
         lines[i] = (" "):rep(rng(0, 9)) .. lines[i]:gsub("^%s*", "")
         src = table.concat(lines, "\n")
      elseif k == 6 then                              -- random byte
         src = src:sub(1, p - 1) .. string.char(rng(0, 255)) .. src:sub(p)
      else                                            -- splice a piece of itself
         local q = rng(1, len + 1)
         src = src:sub(1, p - 1) .. src:sub(q, q + rng(0, 40)) .. src:sub(p)
      end
   end
   return src
end

local function random_policy(rng)
   local parts = {}
   for i = 1, rng(1, 60) do parts[i] = TOKENS[rng(1, #TOKENS)] end
   local sep = rng(1, 2) == 1 and " " or ""
   return table.concat(parts, sep)
end

-- Grammar-directed generator: syntactically valid policies (every construct, random nesting)
-- whose names all resolve. The front half must accept them without any diagnostic.
local function generated_policy(R)
   local function pick(t) return t[R(#t)] end
   local TYPES = { "Message", "ToolCall", "ToolOutput", "str", "Tool" }
   local function expr(vars, d)
      local k = R(d > 3 and 4 or 16)
      if k == 1 then return tostring(R(0, 100)) end
      if k == 2 then return pick { '"a"', "'b c'", 'r"\\d+"', '"x.*"', '"""m"l"""', "'''m'l'''" } end
      if k == 3 then return #vars > 0 and pick(vars) or "None" end
      if k == 4 then return pick { "True", "False", "None" } end
      if k == 5 then
         return expr(vars, d + 1) .. " " .. pick { "==", "!=", "<", ">", "<=", ">=", "in", "not in", "is",
            "is not", "and", "or", "+", "-", "*", "/", "%", "**", "contains_only" } .. " " .. expr(vars, d + 1)
      end
      if k == 6 then return pick { "not ", "-", "+" } .. expr(vars, d + 1) end
      if k == 7 then return "(" .. expr(vars, d + 1) .. ")" end
      if k == 8 then
         return "(" .. expr(vars, d + 1) .. ")." .. pick { "content", "role", "name", "lower()", "split(',')" }
      end
      if k == 9 then
         return pick { "len", "any", "all", "min", "max", "sum", "find", "match", "text", "print", "tool_call",
            "empty" } .. "(" .. expr(vars, d + 1) .. (R(2) == 1 and (", k=" .. expr(vars, d + 1)) or "") .. ")"
      end
      if k == 10 then return "[" .. expr(vars, d + 1) .. ", " .. expr(vars, d + 1) .. "]" end
      if k == 11 then return "{" .. pick { "a", '"b"' } .. ": " .. expr(vars, d + 1) .. "}" end
      if k == 12 then return expr(vars, d + 1) .. " if " .. expr(vars, d + 1) .. " else " .. expr(vars, d + 1) end
      if k == 13 then
         local v = "y" .. R(9)
         local nv = { table.unpack(vars) }
         nv[#nv + 1] = v
         return "[" .. expr(nv, d + 1) .. " for " .. v .. " in (" .. expr(vars, d + 1) .. ")"
            .. (R(2) == 1 and (" if (" .. expr(nv, d + 1) .. ")") or "") .. "]"
      end
      if k == 14 then return "(" .. expr(vars, d + 1) .. ")[" .. expr(vars, d + 1) .. "]" end
      if k == 15 then
         return (#vars > 0 and pick(vars) or "None") .. " is tool:" .. pick { "f", "send_email" }
            .. (R(2) == 1 and '({a: "x", b: [*, 1], c: <EMAIL_ADDRESS>})' or "")
      end
      return "input." .. pick { "a", "b" }
   end
   local function body(vars, ind, depth, id)
      local lines = {}
      for _ = 1, R(1, 4) do
         local k = R(depth > 1 and 3 or 5)
         if k == 1 then
            local v = "v" .. id[1]
            id[1] = id[1] + 1
            lines[#lines + 1] = ind .. "(" .. v .. ": " .. pick(TYPES) .. ")"
               .. (R(3) == 1 and (" in " .. expr(vars, 0)) or "")

            vars[#vars + 1] = v
         elseif k == 2 then
            local v = "d" .. id[1]
            id[1] = id[1] + 1
            lines[#lines + 1] = ind .. v .. " := " .. expr(vars, 0)
            vars[#vars + 1] = v
         elseif k == 3 then
            lines[#lines + 1] = ind .. expr(vars, 0)
         elseif k == 4 then
            lines[#lines + 1] = ind .. pick { "forall:", "not forall:", "count(min=1):", "count(1, 3):" }
            for _, l in ipairs(body({ table.unpack(vars) }, ind .. "    ", depth + 1, id)) do lines[#lines + 1] = l end
         elseif #vars >= 2 then
            lines[#lines + 1] = ind .. vars[R(#vars)] .. " " .. pick { "->", "~>" } .. " " .. vars[R(#vars)]
         else
            lines[#lines + 1] = ind .. "1"
         end
      end
      return lines
   end
   local parts = { "from invariant import forall, count" }
   if R(2) == 1 then parts[#parts + 1] = "C := " .. expr({}, 0) end
   if R(2) == 1 then parts[#parts + 1] = "p(a: Message) :=\n" .. table.concat(body({ "a" }, "    ", 1, { 1 }), "\n") end
   for _ = 1, R(1, 3) do
      parts[#parts + 1] = "raise " .. pick { '"msg"', 'Violation("m", x=1)', 'PolicyViolation("m")' } .. " if:\n"
         .. table.concat(body({}, "    ", 0, { 1 }), "\n")
   end
   return table.concat(parts, "\n")
end

describe("fuzz (seed " .. SEED .. ")", function()
   local corpus = {}
   for _, c in ipairs(helper.read_cases()) do corpus[#corpus + 1] = c.policy end
   if #corpus == 0 then corpus[1] = "raise 'x' if:\n    (m: Message)\n    m.role == 'user'\n" end

   it("mutated conformance policies give code or diagnostics", function()
      math.randomseed(SEED)
      local rng = math.random
      for i = 1, N do
         local src = mutate(rng, corpus[rng(1, #corpus)])
         check(src, SEED, "mutation #" .. i)
      end
   end)

   it("random token soup gives code or diagnostics", function()
      math.randomseed(SEED + 1)
      local rng = math.random
      for i = 1, N // 3 do
         check(random_policy(rng), SEED + 1, "random #" .. i)
      end
   end)

   it("grammar-generated valid policies pass the front half cleanly and compile", function()
      math.randomseed(SEED + 2)
      local rng = math.random
      for i = 1, N // 3 do
         local src = generated_policy(rng)
         check(src, SEED + 2, "generated #" .. i)
         local st = compiler.front(src)
         if st.diags[1] then
            local d = st.diags[1]
            error(string.format("valid policy rejected: %d:%d %s (seed %d, generated #%d)\n%s", d.line, d.column,
               d.message, SEED + 2, i, src), 0)
         end
         local _, diags = compiler.compile(src, "=policy:gen")
         for _, d in ipairs(diags or {}) do
            if d.kind == "internal" then
               error(string.format("compile(): internal error %s (seed %d, generated #%d)\n%s", d.message,
                  SEED + 2, i, src), 0)
            end
         end
      end
   end)

   it("pathological shapes stay within the time bound", function()
      local shapes = {
         "raise 'x' if:\n    " .. ("("):rep(5000),
         "raise 'x' if:\n    " .. ("["):rep(5000),
         "raise 'x' if:\n    " .. ("{a:"):rep(3000),
         "raise 'x' if:\n    " .. ("f("):rep(3000),
         "raise 'x' if:\n    " .. ("not "):rep(3000) .. "x",
         "raise 'x' if:\n    " .. ("-"):rep(5000) .. "x",
         "raise 'x' if:\n    " .. ("a if b else "):rep(1000) .. "c",
         "raise 'x' if:\n    " .. ("x."):rep(3000) .. "y",
         "raise 'x' if:\n    " .. ("a + "):rep(5000) .. "a",
         ("raise 'x' if:\n" .. ("  "):rep(1) .. "1\n"):rep(300),
         (" "):rep(10000),
         ("\n"):rep(10000),
         ("x := 1\n"):rep(2000),
         "raise 'x' if:\n" .. ("    a\n        b\n"):rep(500),
         ("# comment:\n  x\n"):rep(500),
         (function()
            local l = { "from invariant import forall", "raise 'x' if:" }
            for i = 1, 150 do l[#l + 1] = ("  "):rep(i) .. "forall:" end
            l[#l + 1] = ("  "):rep(151) .. "1 +"
            return table.concat(l, "\n")
         end)(),
         "f(a: str):\n" .. ("  x\n"):rep(5000),
         "raise 'x' if:\n" .. ("    (m: Message)\n"):rep(3000),
         "raise 'x' if:\n    \"" .. ("\\"):rep(5000),
         "raise 'x' if:\n    \"\"\"" .. ("a\n"):rep(3000),
      }
      for i, src in ipairs(shapes) do check(src, 0, "shape #" .. i) end
   end)
end)

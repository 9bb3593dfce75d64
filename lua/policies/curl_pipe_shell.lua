-- Guardrail: a shell command that pipes a download straight into a shell
-- (`curl ... | sh`, `wget -qO- ... | sudo bash`, `bash <(curl ...)`, `sh -c "$(curl ...)"`).
-- luacheck: read globals rule var let cond flow succ forall count predicate const CONST input Violation
-- luacheck: read globals PolicyViolation FLOW SUCC V B PAT ERR TRACE None
-- luacheck: no unused args
local SHELL_TOOLS = { run_shell = true, shell = true, bash = true, execute_command = true,
   run_command = true, terminal = true, exec = true }
local ARG_NAMES = { "command", "cmd", "script", "code" }

local SHELLS = { sh = true, bash = true, zsh = true, dash = true, ksh = true, fish = true }

-- is `word` (possibly a path such as /bin/bash) a shell?
local function is_shell(word)
   return word ~= nil and SHELLS[word:match("([^/]+)$") or word] == true
end

-- byte span of the dangerous part of `s`, or nil
local function pipe_span(s)
   local low = s:lower()
   local init = 1
   while true do
      local d1, d2 = low:find("%f[%w]curl%f[%W]", init)
      local w1, w2 = low:find("%f[%w]wget%f[%W]", init)
      if w1 and (not d1 or w1 < d1) then d1, d2 = w1, w2 end
      if not d1 then return nil end
      -- download ... | [sudo] shell
      local p = d2
      while true do
         p = low:find("|", p + 1, true)
         if not p then break end
         local rest = low:sub(p + 1)
         local pre, word = rest:match("^(%s*sudo%s+)([%w/]+)")
         if not word then pre, word = rest:match("^(%s*)([%w/]+)") end
         if is_shell(word) then return d1, p + #pre + #word end
         if low:sub(p + 1, p + 1) == "|" then p = p + 1 end -- `||` is not a pipe
      end
      -- shell <(download)   /   shell -c "$(download)"
      local before = low:sub(1, d1 - 1)
      local s1, word = before:match("()([%w/]+)%s*<%(%s*$")
      if not word then s1, word = before:match("()([%w/]+)%s+%-c%s+[\"']?%$%(%s*$") end
      if is_shell(word) then
         return s1, low:find(")", d2, true) or #low
      end
      init = d2 + 1
   end
end

local function command_of(call)
   local fn = V.attr(call, "function")
   local args = V.attr(fn, "arguments")
   if V.typename(args) ~= "dict" then return nil end
   for _, k in ipairs(ARG_NAMES) do
      if args[k] ~= nil then
         local v = V.index(args, k)
         if V.str(v) then return v end
      end
   end
   return nil
end

rule { line = 1, message = "download piped into a shell",
   raise = function(c, e)
      return Violation(c, {"a shell command pipes a download into a shell", n = 1},
         {call = e.call})
   end,
   var("call", "ToolCall", 2, 1),
   cond({"call"}, 3, 1, function(c, e) return SHELL_TOOLS[e.call["function"].name] == true end),
   cond({"call"}, 4, 1, function(c, e)
      local cmd = command_of(e.call)
      if not cmd then return false end
      local s = V.str(cmd)
      local a, b = pipe_span(s)
      if not a then return false end
      local st = V.byte_to_cp(s, a)
      c:mark(cmd, st, st + V.cplen(s:sub(a, b)))
      return true
   end),
}

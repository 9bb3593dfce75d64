-- compile_bench.lua — compile time of a 5-rule and a 100-rule policy, in-process.
--   LUA_PATH='lua/runtime/?.lua;lua/runtime/?/init.lua;lua/?.lua;;' lua5.4 bench/compile_bench.lua
-- Prints one line per policy: "compile RULES=N median_ms=M min_ms=M runs=R lua_bytes=B"
-- (compile = require("compiler").compile, the same pipeline the worker runs for op `compile`),
-- plus "load" lines for rt.load (compile + load of the generated Lua), when rt is present.
-- Also writes the policies to the directory given as arg[1] (for the HTTP measurement).
local outdir = arg[1]
local ok, compiler = pcall(require, "compiler")
if not ok then
   print("n/a: require 'compiler' failed: " .. tostring(compiler):gsub("\n.*", ""))
   os.exit(0)
end
local rt_ok, rt = pcall(require, "rt")

-- Five rule shapes (the three benchmark rules and two more), renamed so every rule differs.
local shapes = {
   [==[raise PolicyViolation("private key in a tool output %d", out) if:
    (out: ToolOutput)
    "BEGIN RSA PRIVATE KEY" in out.content
]==],
   [==[raise PolicyViolation("dotenv read, then posted outside %d", read=read, post=post) if:
    (read: ToolCall) -> (post: ToolCall)
    read is tool:read_file({path: ".*\.env"})
    post is tool:http_post({url: "https://paste\..*"})
]==],
   [==[raise PolicyViolation("page to shell to mail %d", page=page, cmd=cmd, mail=mail) if:
    (page: ToolOutput) -> (cmd: ToolCall)
    cmd -> (mail: ToolCall)
    page is tool:browse
    "run this command" in page.content
    cmd is tool:run_shell({command: "curl .*\|\s*(ba)?sh"})
    mail is tool:send_email({to: "^(?!.*@acme\.io$).*$"})
]==],
   [==[raise "user asked for a wire transfer %d" if:
    (msg: Message)
    msg.role == "user"
    "wire transfer" in msg.content.lower() or len(msg.content) > 5000
]==],
   [==[raise PolicyViolation("blocked binary %d", binary=c.function.arguments.command) if:
    (c: ToolCall)
    c is tool:run_shell
    any([b in c.function.arguments.command for b in ["mkfs", "dd if=", "shred"]])
]==],
}

local function policy(n)
   local parts = {}
   for i = 1, n do parts[i] = shapes[(i - 1) % #shapes + 1]:format(i) end
   return table.concat(parts, "\n")
end

local clock = os.clock
local function median(t)
   table.sort(t)
   local n = #t
   return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end

for _, n in ipairs({ 5, 100 }) do
   local src = policy(n)
   if outdir then
      local f = assert(io.open(outdir .. "/policy" .. n .. ".inv", "w"))
      f:write(src)
      f:close()
   end
   local lua, diags = compiler.compile(src, "=bench")
   if not lua then
      local d = type(diags) == "table" and diags[1] or {}
      print(string.format("n/a: the %d-rule policy does not compile: %s:%s: %s", n,
         tostring(d.line), tostring(d.column or d.col), tostring(d.message or d.msg)))
   else
      local runs = n == 5 and 200 or 20
      compiler.compile(src, "=bench") -- warm
      local times = {}
      for i = 1, runs do
         local t0 = clock()
         compiler.compile(src, "=bench")
         times[i] = (clock() - t0) * 1e3
      end
      print(string.format("compile rules=%d median_ms=%.3f min_ms=%.3f runs=%d lua_bytes=%d", n,
         median(times), times[1], runs, #lua))
      if rt_ok then
         local ltimes = {}
         for i = 1, runs do
            local t0 = clock()
            local pol = rt.load(src, "invariant", "bench")
            ltimes[i] = (clock() - t0) * 1e3
            if not pol then ltimes[i] = nil break end
         end
         if #ltimes == runs then
            print(string.format("load rules=%d median_ms=%.3f min_ms=%.3f runs=%d", n,
               median(ltimes), ltimes[1], runs))
         end
      end
   end
end

-- Sandbox-escape probes through POST /v1/sessions/{sid}/eval (--enable-eval), one dangerous
-- call each (Redis scripting.tcl style); after every probe the session still works.
local H = require "tests.e2e.helper"

describe("sandbox probes via eval", function()
   local srv, sid
   setup(function()
      srv = H.start { args = { "--enable-eval", "--deadline-ms", "2000", "--mem-limit", "64M" } }
      sid = srv:session()
   end)
   teardown(function()
      if srv then srv:stop() end
   end)

   local function eval(code)
      return srv:post("/v1/sessions/" .. sid .. "/eval", { code = code })
   end

   local function still_works()
      local st, j = eval("return 20 + 22")
      assert.equal(200, st)
      assert.equal(42, j.value)
   end

   local refused = {
      { "os.execute", 'return os.execute("id")' },
      { "io.open", 'return io.open("/etc/passwd"):read("a")' },
      { "require", 'return require("io")' },
      { "bytecode load", 'return load("\\27LuaT\\0\\25\\147\\13\\10\\26\\10", "x", "b")()' },
      { "string.dump", 'return string.dump(function() return 1 end)' },
      { "string.dump through the string metatable", 'return ("").dump(function() return 1 end)' },
      { "debug.getinfo", 'return debug.getinfo(1).source' },
      { "loadfile", 'return loadfile("/etc/passwd")' },
      { "dofile", 'return dofile("/etc/passwd")' },
      { "package.loadlib", 'return package.loadlib("libc.so.6", "system")' },
      { "__gc finalizer", 'return setmetatable({}, {__gc = function() end}) and 1' },
   }
   for _, p in ipairs(refused) do
      it("refuses " .. p[1], function()
         local st, j = eval(p[2])
         assert.equal(422, st)
         assert.equal("evaluation_error", j.error.code)
         still_works()
      end)
   end

   it("exposes none of the dangerous globals", function()
      local st, j = eval([[
         local out = {}
         for _, n in ipairs {"os", "io", "require", "load", "loadfile", "dofile", "debug",
                             "package", "collectgarbage", "loadstring"} do
            if _ENV[n] ~= nil then out[#out + 1] = n end
         end
         if string.dump ~= nil then out[#out + 1] = "string.dump" end
         return table.concat(out, ",")
      ]])
      assert.equal(200, st)
      assert.equal("", j.value)
   end)

   it("does not keep globals between evaluations", function()
      local st = eval("leak_me = 7 return 1")
      assert.equal(200, st)
      local _, j = eval("return leak_me")
      assert.equal(H.null, j.value)
   end)

   it("stops a string.rep memory bomb with memory_limit", function()
      local st, j = eval('local s = string.rep("x", 2^30) return #s')
      assert.equal(503, st)
      assert.equal("memory_limit", j.error.code)
      still_works()
   end)

   it("stops a table memory bomb with memory_limit", function()
      local st, j = eval("local t = {} for i = 1, 1e8 do t[i] = {} end return #t")
      assert.equal(503, st)
      assert.equal("memory_limit", j.error.code)
      still_works()
   end)

   it("stops while true do end inside pcall with deadline_exceeded", function()
      local st, j = eval("pcall(function() while true do end end) return 1")
      assert.equal(504, st)
      assert.equal("deadline_exceeded", j.error.code)
      still_works()
   end)

   it("stops an infinite loop in an xpcall message handler", function()
      local st, j = eval("return xpcall(error, function() while true do end end)")
      assert.equal(504, st)
      assert.equal("deadline_exceeded", j.error.code)
      still_works()
   end)

   it("stops an infinite loop inside a coroutine", function()
      local st, j = eval("local co = coroutine.wrap(function() while true do end end) co() return 1")
      assert.equal(504, st)
      assert.equal("deadline_exceeded", j.error.code)
      still_works()
   end)

   it("turns deep recursion into an error, not a crash", function()
      local st, j = eval("local function f(n) return f(n + 1) + 1 end return f(1)")
      assert.equal(422, st)
      assert.equal("evaluation_error", j.error.code)
      still_works()
   end)

   it("keeps the worker process through all of it", function()
      local before = srv:worker_pid(sid)
      eval("pcall(function() while true do end end)")
      eval('return #string.rep("y", 2^30)')
      assert.equal(before, srv:worker_pid(sid))
      still_works()
   end)
end)

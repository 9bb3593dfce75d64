-- jtool.lua — small JSON helpers for bench/run.sh (lua-cjson).
--   jtool.lua get FILE EXPR         evaluates EXPR over the decoded JSON `j` of FILE; prints the
--                                   value, or nothing when the file, the JSON or EXPR fails
--   jtool.lua body POLICY TRACE OUT writes {"policy": <text of POLICY>, "trace": <TRACE verbatim>}
--   jtool.lua str FILE              prints the text of FILE as a JSON string
--   jtool.lua moncheck POLICY TRACE N OUT
--                                   writes {"past_events": first N events, "pending_events":
--                                   [event N+1], "policy": <text>} (POST /api/monitor/check)
local cjson = require "cjson"
local cmd = arg[1]
local function slurp(p)
   local f = io.open(p, "rb")
   if not f then return nil end
   local s = f:read("a")
   f:close()
   return s
end
if cmd == "get" then
   local s = slurp(arg[2])
   if not s then return end
   local ok, j = pcall(cjson.decode, s)
   if not ok then return end
   local fn = load("local j = ...; return " .. arg[3], "=expr", "t")
   if not fn then return end
   local ok3, v = pcall(fn, j)
   if ok3 and v ~= nil and v ~= cjson.null then
      if math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2^53 then
         v = math.tointeger(v)
      end
      io.write(tostring(v))
   end
elseif cmd == "body" then
   local p, t = assert(slurp(arg[2])), assert(slurp(arg[3]))
   local o = assert(io.open(arg[4], "wb"))
   o:write('{"policy":', cjson.encode(p), ',"trace":', t, "}")
   o:close()
elseif cmd == "str" then
   io.write(cjson.encode(assert(slurp(arg[2]))))
elseif cmd == "moncheck" then
   local p, t = assert(slurp(arg[2])), cjson.decode(assert(slurp(arg[3])))
   local n = assert(tonumber(arg[4]))
   local past = {}
   for i = 1, n do past[i] = cjson.encode(t[i]) end
   local o = assert(io.open(arg[5], "wb"))
   o:write('{"past_events":[', table.concat(past, ","), '],"pending_events":[',
      cjson.encode(t[n + 1]), '],"policy":', cjson.encode(p), "}")
   o:close()
else
   io.stderr:write("usage: jtool.lua get FILE EXPR | body POLICY TRACE OUT | str FILE | moncheck ...\n")
   os.exit(2)
end

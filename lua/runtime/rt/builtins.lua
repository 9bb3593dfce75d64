-- rt.builtins: the builtins of spec §9.1, as fn(ctx, args, kwargs) (docs/internals.md §5).
-- M.builtins = { name = fn }: len, any, all, sum, min, max, print, find, match, tool_call,
-- server, text, image, empty, json_loads, tuple. Violation / PolicyViolation belong to
-- rt.violation (engine side).
local require, type, ipairs, setmetatable, getmetatable, pcall =
   require, type, ipairs, setmetatable, getmetatable, pcall
local sfmt, ssub = string.format, string.sub
local value = require "rt.value"
local rterror = require "rt.error"
local regex = require "rt.regex"

local None, List, Contents, Event, Record = value.None, value.List, value.Contents, value.Event,
   value.Record
local vstr, truthy, typename, raise = value.str, value.truthy, value.typename, rterror.raise

local M = {}
local B = {}
M.builtins = B
_ENV = nil

local function list(t) return setmetatable(t, List) end

local function nargs(args) return args.n or #args end

local function need(args, n, name)
   if nargs(args) < n then
      raise("type", sfmt("%s() takes at least %d argument%s (%d given)", name, n, n == 1 and "" or "s",
         nargs(args)))
   end
end

local function need_str(v, fname)
   local s = vstr(v)
   if s == nil then
      raise("type", sfmt("%s(): expected string or bytes-like object, got '%s'", fname, typename(v)))
   end
   return s
end

------------------------------------------------------------------------------------------------

function B.len(_, args)
   need(args, 1, "len")
   local x = args[1]
   if getmetatable(x) == Contents then return #x end
   return value.len(x)
end

function B.empty(_, args)
   need(args, 1, "empty")
   local x = args[1]
   if getmetatable(x) == Contents then return #x == 0 end
   return value.len(x) == 0
end

function B.any(_, args)
   need(args, 1, "any")
   for _, x in ipairs(value.iter(args[1])) do
      if truthy(x) then return true end
   end
   return false
end

function B.all(_, args)
   need(args, 1, "all")
   for _, x in ipairs(value.iter(args[1])) do
      if not truthy(x) then return false end
   end
   return true
end

function B.sum(_, args, kwargs)
   need(args, 1, "sum")
   local acc = args[2]
   if acc == nil and kwargs then acc = kwargs.start end
   if acc == nil then acc = 0 end
   if vstr(acc) ~= nil then raise("type", "sum() can't sum strings [use ''.join(seq) instead]") end
   for _, x in ipairs(value.iter(args[1])) do acc = value.add(acc, x) end
   return acc
end

local function minmax(args, kwargs, name, better)
   need(args, 1, name)
   local items
   if nargs(args) == 1 then items = value.iter(args[1]) else
      items = {}
      for i = 1, nargs(args) do items[i] = args[i] end
   end
   if #items == 0 then
      if kwargs and kwargs.default ~= nil then return kwargs.default end
      raise("value", name .. "() arg is an empty sequence")
   end
   local best = items[1]
   for i = 2, #items do
      if better(items[i], best) then best = items[i] end
   end
   return best
end

function B.min(_, args, kwargs) return minmax(args, kwargs, "min", value.lt) end
function B.max(_, args, kwargs) return minmax(args, kwargs, "max", value.gt) end

function B.print()
   return true
end

-- find(pattern, s): all non-overlapping match texts; marks each span on s.
function B.find(ctx, args)
   need(args, 2, "find")
   local pat = need_str(args[1], "find")
   local s = args[2]
   local ss = need_str(s, "find")
   local ms = regex.finditer(pat, ss)
   local out = {}
   for i, m in ipairs(ms) do
      out[i] = m.text
      if ctx then ctx:mark(s, m.start, m.stop) end
   end
   return list(out)
end

-- match(pattern, s): Python re.match (anchored at the start only), a bool; no marks.
function B.match(_, args)
   need(args, 2, "match")
   local pat = need_str(args[1], "match")
   local ss = need_str(args[2], "match")
   return regex.test_match(pat, ss)
end

function B.tool_call(_, args)
   need(args, 1, "tool_call")
   local o = args[1]
   if getmetatable(o) ~= Event or o.kind ~= "ToolOutput" then
      raise("value", "tool_output argument must be a ToolOutput.")
   end
   local c = o.call
   if not c then return None end
   return c
end

function B.server(_, args)
   need(args, 1, "server")
   local e = args[1]
   if getmetatable(e) ~= Event then return None end
   local s = e.server
   if s == nil then return None end
   return s
end

-- text(*values) / image(*values) (§9.1)
local function collect_text(x, out)
   if x == nil or x == None then return end
   local s = vstr(x)
   if s ~= nil then out[#out + 1] = x; return end
   local mt = getmetatable(x)
   if mt == Contents then
      for i = 1, #x do
         local ch = x[i]
         if ch.kind == "TextChunk" then
            local c = value.wrap(ch, x, i - 1)
            out[#out + 1] = value.wrap(ch.text, c, "text")
         end
      end
   elseif mt == Event then
      if x.kind == "Message" or x.kind == "ToolOutput" then
         local c = x.content
         if c ~= nil and c ~= None then collect_text(value.wrap(c, x, "content"), out) end
      end
   elseif mt == Record then
      if x.kind == "TextChunk" then out[#out + 1] = value.wrap(x.text, x, "text") end
   elseif value.is_list(x) then
      for i = 1, #x do collect_text(value.wrap(x[i], x, i - 1), out) end
   end
end
M.collect_text = collect_text

local function image_url(ch)
   local iu = value.wrap(ch.image_url, ch, "image_url")
   if type(iu) == "table" and iu.url ~= nil then return value.wrap(iu.url, iu, "url") end
   return nil
end

local function collect_image(x, out)
   if x == nil or x == None then return end
   local s = vstr(x)
   if s ~= nil then
      if ssub(s, 1, 22) == "data:image/png;base64," or ssub(s, 1, 23) == "data:image/jpeg;base64," then
         out[#out + 1] = x
      end
      return
   end
   local mt = getmetatable(x)
   if mt == Contents then
      for i = 1, #x do
         local ch = x[i]
         if ch.kind == "Image" then
            local u = image_url(value.wrap(ch, x, i - 1))
            if u then out[#out + 1] = u end
         end
      end
   elseif mt == Event then
      if x.kind == "Message" or x.kind == "ToolOutput" then
         local c = x.content
         if c ~= nil and c ~= None then collect_image(value.wrap(c, x, "content"), out) end
      end
   elseif mt == Record then
      if x.kind == "Image" then
         local u = image_url(x)
         if u then out[#out + 1] = u end
      end
   elseif value.is_list(x) then
      for i = 1, #x do collect_image(value.wrap(x[i], x, i - 1), out) end
   end
end
M.collect_image = collect_image

function B.text(_, args)
   local out = {}
   for i = 1, nargs(args) do collect_text(args[i], out) end
   return list(out)
end

function B.image(_, args)
   local out = {}
   for i = 1, nargs(args) do collect_image(args[i], out) end
   return list(out)
end

function B.json_loads(_, args)
   need(args, 1, "json_loads")
   local s = need_str(args[1], "json_loads")
   local cjson = require "cjson"
   local ok, v = pcall(cjson.decode, s)
   if not ok then raise("value", "invalid JSON: " .. s) end
   if v == nil then return None end
   return require("rt.trace").from_json(v)
end

function B.tuple(_, args)
   need(args, 1, "tuple")
   local items = value.iter(args[1])
   return value.tuple(items)
end

return M

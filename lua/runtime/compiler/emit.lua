-- compiler.emit: a line-preserving Lua text buffer (Teal's preserve_newlines).
-- `go(line)` pads with newlines until the output is on `line`; text put afterwards lands there.
-- Text never contains a raw newline except through `go`, so policy line N stays on Lua line N
-- (or, when code must follow a later line, on a later line — never earlier).
local concat, format, byte, tostring, mtype, floor = table.concat, string.format, string.byte, tostring,
   math.type, math.floor
local gsub, setmetatable, find = string.gsub, setmetatable, string.find
local _ENV = nil -- luacheck: ignore 211

local M = {}
M.__index = M

function M.new()
   return setmetatable({ buf = {}, n = 0, line = 1 }, M)
end

function M:go(line)
   if line and line > self.line then
      self.n = self.n + 1
      self.buf[self.n] = ("\n"):rep(line - self.line)
      self.line = line
   end
end

function M:put(s)
   self.n = self.n + 1
   self.buf[self.n] = s
end

function M:text()
   return concat(self.buf, "", 1, self.n)
end

-- Lua string literal for any byte string, on one line.
local ESC = { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local str_cache, str_cached = {}, 0
function M.str(s)
   local r = str_cache[s]
   if r then return r end
   if not find(s, '[%c"\\]') then
      r = '"' .. s .. '"'
   else
      r = '"' .. gsub(s, '[%c"\\]', function(c)
         return ESC[c] or format("\\%03d", byte(c))
      end) .. '"'
   end
   if #s <= 64 then -- short strings only, and a bounded cache (workers live long)
      if str_cached >= 4096 then str_cache, str_cached = {}, 0 end
      str_cache[s], str_cached = r, str_cached + 1
   end
   return r
end

-- Lua literal for a number (integers stay integers, floats stay floats).
function M.num(v)
   if mtype(v) == "integer" then return tostring(v) end
   if v ~= v then return "(0/0)" end
   if v == 1 / 0 then return "1e999" end
   if v == -1 / 0 then return "(-1e999)" end
   if v == floor(v) and v > -1e15 and v < 1e15 then return format("%.1f", v) end
   return format("%.17g", v)
end

local IDENT_KW = {
   ["and"] = true, ["break"] = true, ["do"] = true, ["else"] = true, ["elseif"] = true, ["end"] = true,
   ["false"] = true, ["for"] = true, ["function"] = true, ["goto"] = true, ["if"] = true, ["in"] = true,
   ["local"] = true, ["nil"] = true, ["not"] = true, ["or"] = true, ["repeat"] = true, ["return"] = true,
   ["then"] = true, ["true"] = true, ["until"] = true, ["while"] = true,
}

-- `t.name` when name is a plain Lua identifier, else `t["name"]`.
local plain_cache = {}
local function plain(name)
   local p = plain_cache[name]
   if p == nil then
      p = (name:match("^[%a_][%w_]*$") and not IDENT_KW[name]) and true or false
      plain_cache[name] = p
   end
   return p
end

function M.field(t, name)
   if plain(name) then return t .. "." .. name end
   return t .. "[" .. M.str(name) .. "]"
end

-- `name = ` when name is a plain Lua identifier, else `["name"] = ` (table constructor keys).
function M.key(name)
   if plain(name) then return name .. " = " end
   return "[" .. M.str(name) .. "] = "
end

return M

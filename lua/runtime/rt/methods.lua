-- rt.methods: methods on values (spec §9.2), Python semantics.
-- value.call dispatches a bound method to M.str[name] / M.dict[name] / M.contents[name] as
-- fn(ctx, self, args, kwargs); `self` may be a located string / located container.
-- Computed strings (lower-cased copies, split pieces, ...) are plain strings: they are not trace
-- locations. dict.values()/items() and contents.text()/image() hand out located values.
local require, type, ipairs, tostring, tonumber, setmetatable =
   require, type, ipairs, tostring, tonumber, setmetatable
local mtype, floor, abs, huge = math.type, math.floor, math.abs, math.huge
local sfmt, srep, ssub, sfind, slower, supper, sgsub =
   string.format, string.rep, string.sub, string.find, string.lower, string.upper, string.gsub
local tconcat = table.concat
local value = require "rt.value"
local rterror = require "rt.error"
local text = require "rt.text"

local None, List = value.None, value.List
local vstr, typename, tostr, raise = value.str, value.typename, value.tostr, rterror.raise

local M = { str = {}, dict = {}, contents = {} }
_ENV = nil

local function list(t) return setmetatable(t, List) end

local function arg(args, i, kwargs, name)
   local v = args[i]
   if v == nil and kwargs and name then v = kwargs[name] end
   return v
end

local function need_str(v, what)
   local s = vstr(v)
   if s == nil then
      raise("type", sfmt("%s must be str, not %s", what, typename(v)))
   end
   return s
end

------------------------------------------------------------------------------------------------
-- Unicode helpers: whitespace (str.isspace) and simple case mapping beyond ASCII.

local SPACE = {
   [9] = true, [10] = true, [11] = true, [12] = true, [13] = true, [32] = true, [28] = true,
   [29] = true, [30] = true, [31] = true, [0x85] = true, [0xA0] = true, [0x1680] = true,
   [0x2028] = true, [0x2029] = true, [0x202F] = true, [0x205F] = true, [0x3000] = true,
}
for c = 0x2000, 0x200A do SPACE[c] = true end
M.SPACE = SPACE

-- titlecase digraphs (DŽ Dž dž, LJ Lj lj, NJ Nj nj, DZ Dz dz): lower = third, upper = first
local function digraph(c)
   for _, base in ipairs({ 0x1C4, 0x1C7, 0x1CA, 0x1F1 }) do
      if c >= base and c <= base + 2 then return base end
   end
   return nil
end

local function to_lower_cp(c)
   if c < 0x80 then
      if c >= 65 and c <= 90 then return c + 32 end
      return c
   end
   if (c >= 0xC0 and c <= 0xDE and c ~= 0xD7) then return c + 0x20 end
   if c >= 0x100 and c <= 0x17F then
      if c == 0x130 then return 0x69 end
      if c == 0x178 then return 0xFF end
      if (c >= 0x100 and c <= 0x137) or (c >= 0x14A and c <= 0x177) then
         return (c % 2 == 0) and c + 1 or c
      end
      if (c >= 0x139 and c <= 0x148) or (c >= 0x179 and c <= 0x17E) then
         return (c % 2 == 1) and c + 1 or c
      end
      return c
   end
   if c >= 0x391 and c <= 0x3A9 and c ~= 0x3A2 then return c + 0x20 end
   if c >= 0x410 and c <= 0x42F then return c + 0x20 end
   if c >= 0x400 and c <= 0x40F then return c + 0x50 end
   return c
end

local function to_upper_cp(c)
   if c < 0x80 then
      if c >= 97 and c <= 122 then return c - 32 end
      return c
   end
   if (c >= 0xE0 and c <= 0xFE and c ~= 0xF7) then return c - 0x20 end
   if c == 0xFF then return 0x178 end
   if c == 0xB5 then return 0x39C end
   if c >= 0x100 and c <= 0x17F then
      if c == 0x131 then return 0x49 end
      if (c >= 0x100 and c <= 0x137) or (c >= 0x14A and c <= 0x177) then
         return (c % 2 == 1) and c - 1 or c
      end
      if (c >= 0x139 and c <= 0x148) or (c >= 0x179 and c <= 0x17E) then
         return (c % 2 == 0) and c - 1 or c
      end
      return c
   end
   if c >= 0x3B1 and c <= 0x3C9 and c ~= 0x3C2 then return c - 0x20 end
   if c == 0x3C2 then return 0x3A3 end
   if c >= 0x430 and c <= 0x44F then return c - 0x20 end
   if c >= 0x450 and c <= 0x45F then return c - 0x50 end
   return c
end

local function map_case(s, f, ascii)
   if text.is_ascii(s) then return ascii(s) end
   local cps = text.codepoints(s)
   local out = {}
   local up = f == to_upper_cp
   for i, c in ipairs(cps) do
      local dg = digraph(c)
      if dg then out[i] = text.char(up and dg or dg + 2)
      elseif up and c == 0xDF then out[i] = "SS"
      elseif up and c == 0x149 then out[i] = "\202\188N"
      elseif not up and c == 0x130 then out[i] = "i\204\135"
      else out[i] = text.char(f(c)) end
   end
   return tconcat(out)
end

function M.lower(s) return map_case(s, to_lower_cp, slower) end
function M.upper(s) return map_case(s, to_upper_cp, supper) end

-- strip helpers on code point arrays
local function strip_impl(s, chars, left, right)
   local set
   if chars == nil or chars == None then
      if text.is_ascii(s) then
         if left then s = sgsub(s, "^[ \t\n\v\f\r\28-\31]+", "") end
         if right then s = sgsub(s, "[ \t\n\v\f\r\28-\31]+$", "") end
         return s
      end
      set = SPACE
   else
      local cs = need_str(chars, "strip arg")
      set = {}
      for _, c in ipairs(text.codepoints(cs)) do set[c] = true end
   end
   local cps = text.codepoints(s)
   local i, j = 1, #cps
   if left then while i <= j and set[cps[i]] do i = i + 1 end end
   if right then while j >= i and set[cps[j]] do j = j - 1 end end
   local out = {}
   for k = i, j do out[#out + 1] = text.char(cps[k]) end
   return tconcat(out)
end

------------------------------------------------------------------------------------------------
-- split / splitlines

local function split_ws(s, maxsplit)
   local out, n = {}, 0
   local cps = text.is_ascii(s) and nil or text.codepoints(s)
   if not cps then
      local pos, len = 1, #s
      while true do
         local a, b = sfind(s, "[^ \t\n\v\f\r\28-\31]+", pos)
         if not a then break end
         if maxsplit >= 0 and n == maxsplit then
            n = n + 1; out[n] = ssub(s, a)
            break
         end
         n = n + 1; out[n] = ssub(s, a, b)
         pos = b + 1
         if pos > len then break end
      end
      return out
   end
   local i, len = 1, #cps
   while i <= len do
      while i <= len and SPACE[cps[i]] do i = i + 1 end
      if i > len then break end
      if maxsplit >= 0 and n == maxsplit then
         local j = len
         local piece = {}
         for k = i, j do piece[#piece + 1] = text.char(cps[k]) end
         n = n + 1; out[n] = tconcat(piece)
         break
      end
      local piece = {}
      while i <= len and not SPACE[cps[i]] do piece[#piece + 1] = text.char(cps[i]); i = i + 1 end
      n = n + 1; out[n] = tconcat(piece)
   end
   return out
end

local function split_sep(s, sep, maxsplit)
   if sep == "" then raise("value", "empty separator") end
   local out, n, pos = {}, 0, 1
   while true do
      if maxsplit >= 0 and n == maxsplit then break end
      local a, b = sfind(s, sep, pos, true)
      if not a then break end
      n = n + 1; out[n] = ssub(s, pos, a - 1)
      pos = b + 1
   end
   out[n + 1] = ssub(s, pos)
   return out
end

function M.split(s, sep, maxsplit)
   maxsplit = maxsplit or -1
   if sep == nil or sep == None then return split_ws(s, maxsplit) end
   return split_sep(s, sep, maxsplit)
end

local LINEBREAK = {
   [10] = true, [13] = true, [11] = true, [12] = true, [0x1C] = true, [0x1D] = true,
   [0x1E] = true, [0x85] = true, [0x2028] = true, [0x2029] = true,
}

function M.splitlines(s, keepends)
   local cps = text.codepoints(s)
   local out, cur = {}, {}
   local i, len = 1, #cps
   while i <= len do
      local c = cps[i]
      if LINEBREAK[c] then
         local brk = text.char(c)
         if c == 13 and cps[i + 1] == 10 then brk = "\r\n"; i = i + 1 end
         if keepends then cur[#cur + 1] = brk end
         out[#out + 1] = tconcat(cur)
         cur = {}
      else
         cur[#cur + 1] = text.char(c)
      end
      i = i + 1
   end
   if #cur > 0 then out[#out + 1] = tconcat(cur) end
   return out
end

------------------------------------------------------------------------------------------------
-- str.format (Python format mini-language, common subset)

local function group_thousands(digits, sep)
   local out = sgsub(digits, "^(%d+)", function(int)
      local r = int:reverse():gsub("(%d%d%d)", "%1" .. sep):reverse()
      if ssub(r, 1, 1) == sep then r = ssub(r, 2) end
      return r
   end)
   return out
end

local function format_value(v, spec)
   if spec == "" then return tostr(v) end
   local fill, align, sign, alt, zero, width, comma, prec
   alt, zero = false, false
   local p = 1
   local c1, c2 = ssub(spec, 1, 1), ssub(spec, 2, 2)
   if c2 ~= "" and sfind("<>=^", c2, 1, true) then fill, align, p = c1, c2, 3
   elseif c1 ~= "" and sfind("<>=^", c1, 1, true) then align, p = c1, 2 end
   local ch = ssub(spec, p, p)
   if ch == "+" or ch == "-" or ch == " " then sign = ch; p = p + 1 end
   if ssub(spec, p, p) == "#" then alt = true; p = p + 1 end
   if ssub(spec, p, p) == "0" then zero = true; p = p + 1 end
   local w = spec:match("^%d+", p)
   if w then width = tonumber(w); p = p + #w end
   ch = ssub(spec, p, p)
   if ch == "," or ch == "_" then comma = ch; p = p + 1 end
   if ssub(spec, p, p) == "." then
      local pr = spec:match("^%d+", p + 1)
      if not pr then raise("value", "Format specifier missing precision") end
      prec = tonumber(pr); p = p + 1 + #pr
   end
   local ty = ssub(spec, p)
   if #ty > 1 then raise("value", "Invalid format specifier '" .. spec .. "'") end
   local out
   local isnum = type(v) == "number" or type(v) == "boolean"
   local n = type(v) == "boolean" and (v and 1 or 0) or v
   local _ = alt
   if ty == "" and not isnum then
      out = tostr(v)
      if prec then out = value.cp_sub(out, 0, prec) end
   elseif ty == "s" then
      if isnum or vstr(v) == nil then
         if vstr(v) == nil then raise("value", "Unknown format code 's' for object of type '" .. typename(v) .. "'") end
      end
      out = vstr(v)
      if prec then out = value.cp_sub(out, 0, prec) end
   elseif isnum then
      if ty == "d" then
         if mtype(n) ~= "integer" then raise("value", "Unknown format code 'd' for object of type 'float'") end
         out = sfmt("%d", abs(n))
      elseif ty == "f" or ty == "F" or ty == "e" or ty == "E" or ty == "g" or ty == "G" or ty == "%" then
         local x = n + 0.0
         if ty == "%" then x = x * 100 end
         local t = ty == "%" and "f" or ty
         if t == "F" then t = "f" end
         out = sfmt("%." .. (prec or 6) .. t, abs(x))
         if ty == "%" then out = out .. "%" end
      elseif ty == "x" or ty == "X" or ty == "o" or ty == "b" then
         if mtype(n) ~= "integer" then
            raise("value", "Unknown format code '" .. ty .. "' for object of type 'float'")
         end
         if ty == "b" then
            local a, bits = abs(n), {}
            if a == 0 then bits[1] = "0" end
            while a > 0 do bits[#bits + 1] = tostring(a % 2); a = a // 2 end
            out = tconcat(bits):reverse()
         else
            out = sfmt("%" .. ty, abs(n))
         end
      elseif ty == "n" or ty == "" then
         if prec and mtype(n) == "float" then
            out = sfmt("%." .. prec .. "g", abs(n))
         else
            out = tostr(mtype(n) == "float" and abs(n) or abs(n))
         end
      else
         raise("value", "Unknown format code '" .. ty .. "' for object of type '" .. typename(v) .. "'")
      end
      if comma then out = group_thousands(out, comma) end
      local neg = n < 0 or (n == 0 and mtype(n) == "float" and 1 / n < 0)
      local sg = neg and "-" or (sign == "+" and "+" or (sign == " " and " " or ""))
      if zero and not align then
         fill, align = "0", "="
      end
      if align == "=" and width then
         local padn = width - text.len(out) - #sg
         if padn > 0 then out = srep(fill or " ", padn) .. out end
         return sg .. out
      end
      out = sg .. out
      align = align or ">"
   else
      raise("value", "Unknown format code '" .. ty .. "' for object of type '" .. typename(v) .. "'")
   end
   align = align or "<"
   if width then
      local len = text.len(out)
      local padn = width - len
      if padn > 0 then
         fill = fill or " "
         if align == "<" then out = out .. srep(fill, padn)
         elseif align == ">" or align == "=" then out = srep(fill, padn) .. out
         else
            local l = padn // 2
            out = srep(fill, l) .. out .. srep(fill, padn - l)
         end
      end
   end
   return out
end

function M.format(fmt, args, kwargs)
   local out, n = {}, 0
   local auto = 0
   local pos, len = 1, #fmt
   while pos <= len do
      local a = sfind(fmt, "[{}]", pos)
      if not a then n = n + 1; out[n] = ssub(fmt, pos); break end
      n = n + 1; out[n] = ssub(fmt, pos, a - 1)
      local c = ssub(fmt, a, a)
      if c == "}" then
         if ssub(fmt, a + 1, a + 1) == "}" then n = n + 1; out[n] = "}"; pos = a + 2
         else raise("value", "Single '}' encountered in format string") end
      elseif ssub(fmt, a + 1, a + 1) == "{" then
         n = n + 1; out[n] = "{"; pos = a + 2
      else
         local b = sfind(fmt, "}", a + 1, true)
         if not b then raise("value", "Single '{' encountered in format string") end
         local field = ssub(fmt, a + 1, b - 1)
         local name, conv, spec = field:match("^([^!:]*)!?([rsa]?):?(.*)$")
         local v
         local head, rest = name:match("^([^.%[]*)(.*)$")
         if head == "" then
            v = args[auto + 1]
            if v == nil and auto + 1 > (args.n or #args) then
               raise("index", sfmt("Replacement index %d out of range for positional args tuple", auto))
            end
            auto = auto + 1
         elseif head:match("^%d+$") then
            local i = tonumber(head)
            if i + 1 > (args.n or #args) then
               raise("index", sfmt("Replacement index %d out of range for positional args tuple", i))
            end
            v = args[i + 1]
         else
            v = kwargs and kwargs[head]
            if v == nil then raise("key", "'" .. head .. "'") end
         end
         for sep, key in rest:gmatch("([.%[])([^.%[%]]+)%]?") do
            if sep == "." then v = value.attr(v, key)
            else v = value.index(v, tonumber(key) or key) end
         end
         if v == nil then v = None end
         if conv == "r" or conv == "a" then v = value.repr(v)
         elseif conv == "s" then v = tostr(v) end
         n = n + 1; out[n] = format_value(v, spec)
         pos = b + 1
      end
   end
   return tconcat(out)
end

------------------------------------------------------------------------------------------------
-- str methods: fn(ctx, self, args, kwargs)

local S = M.str

function S.lower(_, self) return M.lower(vstr(self)) end
function S.upper(_, self) return M.upper(vstr(self)) end
function S.strip(_, self, args, kwargs) return strip_impl(vstr(self), arg(args, 1, kwargs, "chars"), true, true) end
function S.lstrip(_, self, args, kwargs) return strip_impl(vstr(self), arg(args, 1, kwargs, "chars"), true, false) end
function S.rstrip(_, self, args, kwargs) return strip_impl(vstr(self), arg(args, 1, kwargs, "chars"), false, true) end

function S.split(_, self, args, kwargs)
   local sep = arg(args, 1, kwargs, "sep")
   local maxsplit = arg(args, 2, kwargs, "maxsplit")
   if sep ~= nil and sep ~= None then sep = need_str(sep, "separator") end
   if maxsplit ~= nil and mtype(maxsplit) ~= "integer" then raise("type", "maxsplit must be an integer") end
   return list(M.split(vstr(self), sep, maxsplit))
end

function S.splitlines(_, self, args, kwargs)
   return list(M.splitlines(vstr(self), value.truthy(arg(args, 1, kwargs, "keepends"))))
end

function S.format(_, self, args, kwargs)
   return M.format(vstr(self), args or { n = 0 }, kwargs)
end

function S.join(_, self, args)
   local it = args[1]
   if it == nil then raise("type", "join() takes exactly one argument (0 given)") end
   local items = value.iter(it)
   local parts = {}
   for i, x in ipairs(items) do
      local s = vstr(x)
      if s == nil then
         raise("type", sfmt("sequence item %d: expected str instance, %s found", i - 1, typename(x)))
      end
      parts[i] = s
   end
   return tconcat(parts, vstr(self))
end

function S.startswith(_, self, args)
   local s, p = vstr(self), args[1]
   if value.is_list(p) then
      for _, x in ipairs(p) do if ssub(s, 1, #need_str(x, "prefix")) == vstr(x) then return true end end
      return false
   end
   p = need_str(p, "startswith first arg")
   return ssub(s, 1, #p) == p
end

function S.endswith(_, self, args)
   local s, p = vstr(self), args[1]
   local function ends(x) return x == "" or ssub(s, -#x) == x end
   if value.is_list(p) then
      for _, x in ipairs(p) do if ends(need_str(x, "suffix")) then return true end end
      return false
   end
   return ends(need_str(p, "endswith first arg"))
end

function S.replace(_, self, args)
   local s = vstr(self)
   local old, new = need_str(args[1], "replace() argument 1"), need_str(args[2], "replace() argument 2")
   local count = args[3]
   if count == nil or count == None then count = -1 end
   if old == "" then
      local cps = text.codepoints(s)
      local out = {}
      local done = 0
      for i, c in ipairs(cps) do
         if count < 0 or done < count then out[#out + 1] = new; done = done + 1 end
         out[#out + 1] = text.char(c)
         if i == #cps and (count < 0 or done < count) then out[#out + 1] = new end
      end
      if #cps == 0 and count ~= 0 then return new end
      return tconcat(out)
   end
   local out, pos, done = {}, 1, 0
   while count < 0 or done < count do
      local a, b = sfind(s, old, pos, true)
      if not a then break end
      out[#out + 1] = ssub(s, pos, a - 1)
      out[#out + 1] = new
      pos = b + 1
      done = done + 1
   end
   out[#out + 1] = ssub(s, pos)
   return tconcat(out)
end

function S.count(_, self, args)
   local s, sub = vstr(self), need_str(args[1], "count arg")
   if sub == "" then return text.len(s) + 1 end
   local n, pos = 0, 1
   while true do
      local a, b = sfind(s, sub, pos, true)
      if not a then return n end
      n = n + 1; pos = b + 1
   end
end

function S.find(_, self, args)
   local s, sub = vstr(self), need_str(args[1], "find arg")
   local a = sfind(s, sub, 1, true)
   if not a then return -1 end
   return text.cp_converter(s)(a - 1)
end

------------------------------------------------------------------------------------------------
-- dict methods

local D = M.dict

function D.keys(_, self)
   local ks = value.keys(self)
   local out = {}
   for i, k in ipairs(ks) do out[i] = k end
   return list(out)
end

function D.values(_, self)
   local out = {}
   for i, k in ipairs(value.keys(self)) do out[i] = value.wrap(self[k], self, k) end
   return list(out)
end

function D.items(_, self)
   local out = {}
   for i, k in ipairs(value.keys(self)) do
      out[i] = value.tuple({ k, value.wrap(self[k], self, k) })
   end
   return list(out)
end

function D.get(_, self, args, kwargs)
   local k = args[1]
   if k == nil then raise("type", "get expected at least 1 argument, got 0") end
   local ks = vstr(k)
   if ks ~= nil then k = ks end
   if type(k) == "number" and mtype(k) == "float" and k == floor(k) and k > -huge then
      k = math.tointeger(k)
   end
   local v = (type(k) == "string" or type(k) == "number") and self[k] or nil
   if v == nil then
      local d = args[2]
      if d == nil and kwargs then d = kwargs.default end
      if d == nil then return None end
      return d
   end
   return value.wrap(v, self, k)
end

------------------------------------------------------------------------------------------------
-- Contents methods: text(), image()

local C = M.contents

local function chunk(self, i)
   return value.wrap(self[i], self, i - 1)
end

function C.text(_, self)
   local out = {}
   for i = 1, #self do
      local ch = self[i]
      if ch.kind == "TextChunk" then
         local c = chunk(self, i)
         out[#out + 1] = value.wrap(ch.text, c, "text")
      end
   end
   return list(out)
end

function C.image(_, self)
   local out = {}
   for i = 1, #self do
      local ch = self[i]
      if ch.kind == "Image" then
         local c = chunk(self, i)
         local iu = value.wrap(ch.image_url, c, "image_url")
         if type(iu) == "table" and iu.url ~= nil then
            out[#out + 1] = value.wrap(iu.url, iu, "url")
         end
      end
   end
   return list(out)
end

return M

-- rt.text: code-point helpers for UTF-8 strings.
-- Every offset exposed to policies counts code points (Python str semantics); the C regex binding
-- and Lua string functions count bytes. These helpers convert between the two.
local utf8, string = utf8, string
local ulen, uoffset, ucodes, uchar = utf8.len, utf8.offset, utf8.codes, utf8.char
local sfind = string.find

local M = {}
_ENV = nil

-- true when `s` holds only ASCII bytes (byte offsets are code-point offsets).
local function is_ascii(s)
   return not sfind(s, "[\128-\255]")
end
M.is_ascii = is_ascii

-- Length of `s` in code points (bytes for invalid UTF-8, never fails).
function M.len(s)
   if is_ascii(s) then return #s end
   return ulen(s) or #s
end

-- A converter from increasing 0-based byte offsets of `s` to 0-based code-point offsets.
-- Calls may come in any order, but increasing order is linear overall.
function M.cp_converter(s)
   if is_ascii(s) then return function(b) return b end end
   local lastb, lastc = 0, 0
   return function(b)
      if b < lastb then lastb, lastc = 0, 0 end
      if b == lastb then return lastc end
      local n = ulen(s, lastb + 1, b)
      if not n then n = b - lastb end -- invalid UTF-8: fall back to bytes
      lastb, lastc = b, lastc + n
      return lastc
   end
end

-- 0-based code-point offset -> 0-based byte offset (clamped to #s).
function M.byte_offset(s, cp)
   if cp <= 0 then return 0 end
   if is_ascii(s) then return cp < #s and cp or #s end
   local b = uoffset(s, cp + 1)
   if not b then return #s end
   return b - 1
end

-- Array of the code points of `s` (falls back to bytes for invalid UTF-8).
function M.codepoints(s)
   local out, n = {}, 0
   if ulen(s) then
      for _, c in ucodes(s) do n = n + 1; out[n] = c end
   else
      for i = 1, #s do out[i] = s:byte(i) end
   end
   return out
end

M.char = uchar

return M

-- rt.detectors.pii: deterministic recogniser for structured PII entities (LANGUAGE.md,
-- Detectors): EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD (Luhn), IBAN_CODE (mod 97), IP_ADDRESS,
-- US_SSN, URL. Names, places and other NER entities need a detector provider.
--   pii.scan(s, wanted) -> { {entity=, start=, stop=}, ... } (code-point offsets, text order)
local require, ipairs, table = require, ipairs, table
local tsort = table.sort
local sgsub, ssub, sbyte, supper = string.gsub, string.sub, string.byte, string.upper
local regex = require "rt.regex"

-- luacheck: no max line length
local M = {}
_ENV = nil

M.STRUCTURED = {
   EMAIL_ADDRESS = true, PHONE_NUMBER = true, CREDIT_CARD = true, IBAN_CODE = true,
   IP_ADDRESS = true, US_SSN = true, URL = true,
}

local function digits(s) return (sgsub(s, "%D", "")) end

local function luhn(ds)
   local sum, alt = 0, false
   for i = #ds, 1, -1 do
      local d = sbyte(ds, i) - 48
      if alt then d = d * 2; if d > 9 then d = d - 9 end end
      sum = sum + d
      alt = not alt
   end
   return sum % 10 == 0
end

local function iban_ok(s)
   s = supper(sgsub(s, "%s", ""))
   if #s < 15 or #s > 34 then return false end
   local r = ssub(s, 5) .. ssub(s, 1, 4)
   local rem = 0
   for i = 1, #r do
      local c = sbyte(r, i)
      local v
      if c >= 48 and c <= 57 then v = c - 48
      elseif c >= 65 and c <= 90 then v = c - 55
      else return false end
      if v >= 10 then rem = (rem * 100 + v) % 97 else rem = (rem * 10 + v) % 97 end
   end
   return rem == 1
end

local function ssn_ok(s)
   local d = digits(s)
   if #d ~= 9 then return false end
   local area, group, serial = ssub(d, 1, 3), ssub(d, 4, 5), ssub(d, 6, 9)
   if area == "000" or area == "666" or ssub(area, 1, 1) == "9" then return false end
   if group == "00" or serial == "0000" then return false end
   -- the same separator on both sides
   local sep1, sep2 = ssub(s, 4, 4), ssub(s, 7, 7)
   if #s == 11 and sep1 ~= sep2 then return false end
   return true
end

local function phone_ok(s)
   local d = digits(s)
   return #d >= 7 and #d <= 15
end

local function ip_ok() return true end
local function always() return true end

-- in priority order: an overlapping later finding is dropped
local RECOGNISERS = {
   { "EMAIL_ADDRESS", [=[(?<![\w.+-])[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}\b]=], always },
   { "URL", [=[\b(?:https?://|www\.)[^\s<>"']+[^\s<>"'.,;:!?)\]]]=], always },
   { "CREDIT_CARD", [=[(?<![\d+])(?:\d[ -]?){12,18}\d(?!\d)]=], function(s)
      local d = digits(s)
      return #d >= 13 and #d <= 19 and luhn(d)
   end },
   { "IBAN_CODE", [=[\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b]=], iban_ok },
   { "US_SSN", [=[(?<![\d-])\d{3}([- .])\d{2}\1\d{4}(?![\d-])]=], ssn_ok },
   { "IP_ADDRESS", [=[(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.]*\d)]=], ip_ok },
   { "IP_ADDRESS", [=[(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}(?![\w:])|(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){1,6}:(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,5})?(?![\w:])]=], ip_ok },
   { "PHONE_NUMBER", table.concat({
      [=[(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?)(?:[ .-]?\d{2,4}){2,4}(?!\w)]=],   -- +CC ...
      [=[(?<![\w+])\(\d{2,4}\)[ .-]?\d{3,4}[ .-]?\d{3,4}(?!\w)]=],                   -- (area) ...
      [=[(?<![\w+.-])\d{3}([-. ])\d{3}\1\d{4}(?![\w.-])]=],                            -- 415-555-0132
      [=[(?<![\w+.-])0\d([ .-])\d{2}(?:\2\d{2}){3}(?![\w.-])]=],                        -- 06 12 34 56 78
   }, "|"), phone_ok },
}

function M.scan(s, wanted)
   local found = {}
   for _, r in ipairs(RECOGNISERS) do
      local name, pat, ok = r[1], r[2], r[3]
      do
         for _, m in ipairs(regex.finditer(pat, s)) do
            if ok(m.text) then
               local clash = false
               for _, f in ipairs(found) do
                  if m.start < f.stop and f.start < m.stop then clash = true; break end
               end
               if not clash then
                  found[#found + 1] = { entity = name, start = m.start, stop = m.stop, text = m.text }
               end
            end
         end
      end
   end
   local out = {}
   for _, f in ipairs(found) do
      if wanted == nil or wanted[f.entity] then out[#out + 1] = f end
   end
   tsort(out, function(a, b) return a.start < b.start end)
   return out
end

M._luhn, M._iban_ok = luhn, iban_ok
return M

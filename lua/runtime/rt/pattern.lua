-- rt.pattern: semantic patterns (`x is tool:name(...)`, spec §6.7, docs/internals.md §5).
--
--   pattern.tool(name, argpat|nil)   pattern.dict{key = pat}   pattern.list{pat, ...}
--   pattern.any()                    pattern.valueref("EMAIL_ADDRESS")
--   literal leaves: Lua strings (a regex: Python re.match(s + "$", v, DOTALL) or equality),
--   numbers (same number class and value).
--   pattern.match(ctx, v, pat) -> true | false | None (None: v is not a tool call / output)
-- A pattern match marks nothing (value matchers may, as their detector does).
local require, type, setmetatable, getmetatable, pairs, tostring =
   require, type, setmetatable, getmetatable, pairs, tostring
local mtype = math.type
local sfind, sbyte, ssub = string.find, string.byte, string.sub
local value = require "rt.value"
local rterror = require "rt.error"
local regex = require "rt.regex"

local None, Event = value.None, value.Event
local vstr, raise = value.str, rterror.raise

local M = {}
_ENV = nil

local Pattern = { __name = "pattern" }
M.Pattern = Pattern

local function mk(t) return setmetatable(t, Pattern) end

function M.tool(name, arg, ...)
   local extra = (... ~= nil)
   return mk({ tag = "tool", name = name, arg = arg, too_many = extra })
end
function M.dict(t) return mk({ tag = "dict", entries = t or {} }) end
function M.list(t) return mk({ tag = "list", items = t or {} }) end
function M.any() return mk({ tag = "any" }) end
function M.valueref(name) return mk({ tag = "valueref", name = name }) end

function M.is_pattern(x) return getmetatable(x) == Pattern end

-- value matchers (<NAME>): structured pii entities are recognised here; ML ones need a provider
local PII_ENTITIES = {
   EMAIL_ADDRESS = true, PHONE_NUMBER = true, CREDIT_CARD = true, IBAN_CODE = true,
   IP_ADDRESS = true, US_SSN = true, URL = true,
}

local detectors -- lazily required (rt.detectors requires nothing from here)

local function match_valueref(ctx, v, name)
   if name == "DUMMY" then return vstr(v) == "__DUMMY__" end
   if PII_ENTITIES[name] then
      if vstr(v) == nil then return false end
      detectors = detectors or require "rt.detectors"
      local found = detectors.pii_entities(ctx, v, { [name] = true })
      return #found > 0
   end
   if name == "MODERATED" or name == "PERSON" or name == "LOCATION" then
      raise("value", "pattern value <" .. name .. "> needs a detector provider; none is configured")
   end
   raise("value", "Unsupported semantic pattern: <" .. tostring(name) .. ">")
end

local REGEX_META = "[%.%^%$%*%+%?%(%)%[%]%{%}|\\]"

local match_value

-- is a pattern string plain text (no regex metacharacter)? Cached per string: patterns are
-- constants of the policy, tested once per candidate.
local plain_cache, nplain = {}, 0
local function is_plain(s)
   local p = plain_cache[s]
   if p == nil then
      p = not sfind(s, REGEX_META)
      if nplain >= 4096 then plain_cache, nplain = {}, 0 end
      plain_cache[s] = p
      nplain = nplain + 1
   end
   return p
end

-- vs == s .. "\n", without building the string
local function eq_nl(vs, s)
   local n = #vs
   return n == #s + 1 and sbyte(vs, n) == 10 and ssub(vs, 1, n - 1) == s
end

-- a string leaf: equality, or re.match(s + "$", v, DOTALL)
local function match_string(s, v)
   local vs = vstr(v)
   if vs == nil then return false end
   if vs == s then return true end
   if is_plain(s) then
      -- plain text: "$" also accepts one trailing newline
      return eq_nl(vs, s)
   end
   return regex.test_match(s .. "$", vs, "s")
end

match_value = function(ctx, v, pat)
   local tp = type(pat)
   if tp == "string" then return match_string(pat, v) end
   if tp == "number" then
      local tv = type(v)
      if mtype(pat) == "integer" then
         if tv == "boolean" then return (v and 1 or 0) == pat end
         return tv == "number" and mtype(v) == "integer" and v == pat
      end
      return tv == "number" and mtype(v) == "float" and v == pat
   end
   if getmetatable(pat) ~= Pattern then
      raise("value", "Unsupported semantic pattern: " .. value.repr(pat))
   end
   local tag = pat.tag
   if tag == "any" then return true end
   if tag == "dict" then
      if v == nil or v == None then return false end
      local d = v
      if vstr(v) ~= nil or not value.is_dict(d) then return false end
      for k, sub in pairs(pat.entries) do
         local x = d[k]
         if x == nil then return false end
         -- a string leaf reads only the text: no located wrapper needed
         if type(sub) == "string" then
            if not match_string(sub, x) then return false end
         elseif not match_value(ctx, value.wrap(x, d, k), sub) then
            return false
         end
      end
      return true
   end
   if tag == "list" then
      if v == nil or v == None or vstr(v) ~= nil or not value.is_list(v) then return false end
      local items = pat.items
      if #v ~= #items then return false end
      for i = 1, #items do
         if not match_value(ctx, value.wrap(v[i], v, i - 1), items[i]) then return false end
      end
      return true
   end
   if tag == "valueref" then return match_valueref(ctx, v, pat.name) end
   if tag == "tool" then
      raise("value", "Unsupported semantic pattern: tool:" .. tostring(pat.name))
   end
   raise("value", "Unsupported semantic pattern")
end
M.match_value = match_value

local function name_matches(name, fname)
   if fname == name then return true end
   if is_plain(name) then return eq_nl(fname, name) end
   return regex.test_match("(?:" .. name .. ")$", fname)
end

-- v is tool:NAME(ARG)
function M.match(ctx, v, pat)
   if getmetatable(pat) ~= Pattern then return match_value(ctx, v, pat) end
   if pat.tag ~= "tool" then return match_value(ctx, v, pat) end
   if getmetatable(v) ~= Event then return None end
   if v.kind == "ToolOutput" then
      local c = v.call
      if not c then return false end
      v = c
   end
   if v.kind ~= "ToolCall" then return None end
   local fn = v["function"]
   local fname = fn and fn.name
   if type(fname) ~= "string" then fname = fn and vstr(fname) end
   if fname == nil or not name_matches(pat.name, fname) then return false end
   if pat.too_many then return false end
   if pat.arg == nil then return true end
   local f = value.wrap(fn, v, "function")
   return match_value(ctx, value.wrap(fn.arguments, f, "arguments"), pat.arg) and true or false
end

return M

-- rt.regex: Python `re` compatible regular expressions on top of the C binding `vregex` (PCRE2).
-- Compiled patterns are cached (bounded); results use 0-based code-point offsets, end exclusive.
-- An invalid pattern or a pattern that exceeds the match limits raises the runtime error kind
-- "regex" (rt.error).
local require, tostring = require, tostring
local vregex = require "vregex"
local rterror = require "rt.error"
local text = require "rt.text"
local ssub = string.sub

local M = {}
_ENV = nil

local MAX_CACHE = 512
local cache, cache_n = {}, 0 -- cache[flags][pattern] = rx (no key string built per lookup)

local function fail(msg)
   rterror.raise("regex", msg)
end

-- Compiled pattern for (pattern, flags); raises kind "regex" when invalid.
local function compile(pattern, flags)
   flags = flags or ""
   local byflags = cache[flags]
   local rx = byflags and byflags[pattern]
   if rx then return rx end
   local err
   rx, err = vregex.compile(pattern, flags)
   if not rx then fail("invalid regular expression " .. pattern .. ": " .. tostring(err)) end
   if cache_n >= MAX_CACHE then
      -- drop everything: simple, bounded, and patterns of one policy recompile cheaply
      cache, cache_n, byflags = {}, 0, nil
   end
   if not byflags then byflags = {}; cache[flags] = byflags end
   byflags[pattern] = rx
   cache_n = cache_n + 1
   return rx
end
M.compile = compile

-- Non-raising compile: rx | nil, message.
function M.try_compile(pattern, flags)
   return vregex.compile(pattern, flags or "")
end

local function check(a, b)
   if a == nil and b ~= nil then fail(tostring(b)) end
end

-- A match object: {start, stop (code points), text, spans (bytes), subject}.
local function mkmatch(s, bs, be, spans, conv)
   conv = conv or text.cp_converter(s)
   return { start = conv(bs), stop = conv(be), text = ssub(s, bs + 1, be), spans = spans, subject = s }
end

-- Python re.match(pattern, s): anchored at the start only. Returns a match object or nil.
function M.match(pattern, s, flags)
   local rx = compile(pattern, flags)
   local bs, be, spans = rx:match(s, 0)
   if bs == nil then check(bs, be); return nil end
   return mkmatch(s, bs, be, spans)
end

-- Python re.search(pattern, s). Returns a match object or nil.
function M.search(pattern, s, flags)
   local rx = compile(pattern, flags)
   local bs, be, spans = rx:search(s, 0)
   if bs == nil then check(bs, be); return nil end
   return mkmatch(s, bs, be, spans)
end

-- Python re.fullmatch(pattern, s).
function M.fullmatch(pattern, s, flags)
   local rx = compile("(?:" .. pattern .. ")\\z", flags)
   local bs, be, spans = rx:match(s, 0)
   if bs == nil then check(bs, be); return nil end
   return mkmatch(s, bs, be, spans)
end

-- Every non-overlapping match (Python re.finditer), as a list of match objects.
function M.finditer(pattern, s, flags)
   local rx = compile(pattern, flags)
   local list, err = rx:find_all(s, 0)
   if not list then fail(tostring(err)) end
   local conv = text.cp_converter(s)
   local out = {}
   for i = 1, #list do
      local sp = list[i]
      out[i] = mkmatch(s, sp[1], sp[2], sp, conv)
   end
   return out
end

-- Python re.findall(pattern, s): whole-match texts without groups, the group text with one
-- group, a list of group tuples (Lua arrays) with several. Unset groups give "".
function M.findall(pattern, s, flags)
   local rx = compile(pattern, flags)
   local list, err = rx:find_all(s, 0)
   if not list then fail(tostring(err)) end
   local ng = rx:groups()
   local out = {}
   for i = 1, #list do
      local sp = list[i]
      if ng == 0 then
         out[i] = ssub(s, sp[1] + 1, sp[2])
      elseif ng == 1 then
         out[i] = sp[3] >= 0 and ssub(s, sp[3] + 1, sp[4]) or ""
      else
         local t = {}
         for g = 1, ng do
            local a, b = sp[2 * g + 1], sp[2 * g + 2]
            t[g] = a >= 0 and ssub(s, a + 1, b) or ""
         end
         out[i] = t
      end
   end
   return out
end

-- Text of group g (0 = whole match) of a match object, or nil when unset.
function M.group(m, g)
   g = g or 0
   local a, b = m.spans[2 * g + 1], m.spans[2 * g + 2]
   if a == nil or a < 0 then return nil end
   return ssub(m.subject, a + 1, b)
end

-- Boolean Python re.match (no match object).
function M.test_match(pattern, s, flags)
   local rx = compile(pattern, flags)
   local bs, be = rx:match_span(s, 0)
   if bs == nil then check(bs, be); return false end
   return true
end

-- Boolean Python re.search.
function M.test_search(pattern, s, flags)
   local rx = compile(pattern, flags)
   local bs, be = rx:search_span(s, 0)
   if bs == nil then check(bs, be); return false end
   return true
end

-- Python re.escape.
M.escape = vregex.escape

-- Number of cached patterns (tests).
function M.cache_size() return cache_n end

return M

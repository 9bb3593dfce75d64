-- rt.detectors: the pure detectors of LANGUAGE.md "Detectors" and spec §9.4-9.6, as
-- fn(ctx, args, kwargs) in M.builtins (imported with `from invariant.detectors import ...`,
-- `invariant.parsers.html`, `invariant.detectors.code`, `invariant.access_control`).
--
-- Pure: secrets, copyright, unicode (marks), links, html_code, python_code, ipython_code,
-- fuzzy_contains (marks; use_semantic=False or a literal hit), pii (structured entities, marks),
-- should_allow_rbac. Detectors that need a model or a network service (prompt_injection,
-- moderated, llm, llm_confirm, embedding_similarity, is_similar, semgrep, ocr, and pii for
-- names/places) raise kind "value": "detector X needs a detector provider; none is configured".
local require, type, ipairs, setmetatable = require, type, ipairs, setmetatable
local floor = math.floor
local sfind, ssub, sgsub, slower, smatch = string.find, string.sub, string.gsub, string.lower,
   string.match
local tconcat = table.concat
local value = require "rt.value"
local rterror = require "rt.error"
local regex = require "rt.regex"
local text = require "rt.text"
local builtins = require "rt.builtins"
local pii = require "rt.detectors.pii"
local python = require "rt.detectors.python"

local None, List = value.None, value.List
local vstr, truthy, raise = value.str, value.truthy, rterror.raise

local M = {}
local D = {}
M.builtins = D
_ENV = nil

local function list(t) return setmetatable(t, List) end
local function dict(t, keys) return value.dict(t, keys) end

local function getarg(args, kwargs, i, name, default)
   local v = args and args[i]
   if v == nil and kwargs then v = kwargs[name] end
   if v == nil then return default end
   return v
end

-- the texts of `data` (located strings kept): text(data) semantics
local function texts(data)
   local out = {}
   builtins.collect_text(data, out)
   return out
end
M.texts = texts

local function need_provider(name)
   return function()
      raise("value", "detector " .. name .. " needs a detector provider; none is configured")
   end
end

------------------------------------------------------------------------------------------------
-- secrets (patterns adapted from Yelp detect-secrets, spec §9.4)

local SECRETS = {
   { "GITHUB_TOKEN", { { "(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9_]{36}", "" } } },
   { "AWS_ACCESS_KEY", {
      { "(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}", "" },
      { [=[aws.{0,20}?(?:key|pwd|pw|password|pass|token).{0,20}?['"]([0-9a-zA-Z/+]{40})['"]]=], "i" },
   } },
   { "AZURE_STORAGE_KEY", { { [=[AccountKey=[a-zA-Z0-9+\/=]{88}]=], "" } } },
   { "SLACK_TOKEN", {
      { [=[xox(?:a|b|p|o|s|r)-(?:\d+-)+[a-z0-9]+]=], "i" },
      { [=[https://hooks\.slack\.com/services/T[a-zA-Z0-9_]+/B[a-zA-Z0-9_]+/[a-zA-Z0-9_]+]=], "i" },
   } },
}

function D.secrets(_, args, kwargs)
   local out = {}
   for _, t in ipairs(texts(getarg(args, kwargs, 1, "data"))) do
      local s = vstr(t)
      for _, kind in ipairs(SECRETS) do
         for _, p in ipairs(kind[2]) do
            local ms = regex.finditer(p[1], s, p[2])
            for _ = 1, #ms do out[#out + 1] = kind[1] end
         end
      end
   end
   return list(out)
end

------------------------------------------------------------------------------------------------
-- copyright (spec §9.4)

local LICENSES = {
   { "GNU_AGPL_V3", { "GNU", "AFFERO", "GENERAL", "PUBLIC", "LICENSE\n", "Version", "3,", "19",
      "November", "2007" } },
   { "GNU_GPL_V2", { "GNU", "GENERAL", "PUBLIC", "LICENSE\n", "Version", "3,", "29", "June", "2007" } },
   { "GNU_LGPL_V3", { "GNU", "LESSER", "GENERAL", "PUBLIC", "LICENSE\n", "Version", "3,", "29",
      "June", "2007" } },
   { "MOZILLA_PUBLIC_LICENSE_2.0", { "Mozilla", "Public", "License", "Version", "2.0" } },
   { "APACHE_LICENSE_2.0", { "Apache", "License\n", "Version", "2.0,", "January", "2004" } },
   { "MIT_LICENSE", { "MIT", "License" } },
   { "BOOST_SOFTWARE_LICENSE", { "Boost", "Software", "License", "-", "Version", "1.0", "-",
      "August", "17th,", "2003" } },
}

local function pystrip(s)
   return (sgsub(sgsub(s, "^[ \t\n\v\f\r]+", ""), "[ \t\n\v\f\r]+$", ""))
end

function D.copyright(_, args, kwargs)
   local out = {}
   for _, t in ipairs(texts(getarg(args, kwargs, 1, "data"))) do
      local s = vstr(t)
      -- the headers are the first lines of the license files, whose second line is indented
      -- ("LICENSE\n                       Version 3, ..."): compare with line indentation removed
      local stripped = sgsub(pystrip(s), "\n[ \t]+", "\n")
      local hit
      for _, lic in ipairs(LICENSES) do
         local header = sgsub(pystrip(tconcat(lic[2], " ")), "\n[ \t]+", "\n")
         if ssub(stripped, 1, #header) == header then hit = lic[1]; break end
      end
      if hit then
         out[#out + 1] = hit
      else
         local tokens = {}
         for _, tok in ipairs(regex.findall("[^ ]+", s)) do tokens[tok] = true end
         for _, lic in ipairs(LICENSES) do
            local n = 0
            for _, w in ipairs(lic[2]) do if tokens[w] then n = n + 1 end end
            if n / #lic[2] >= 0.5 then out[#out + 1] = lic[1] end
         end
      end
      if sfind(s, "Copyright (C)", 1, true) then out[#out + 1] = "COPYRIGHT" end
      if sfind(s, "Copyright ©", 1, true) then out[#out + 1] = "COPYRIGHT" end
   end
   return list(out)
end

------------------------------------------------------------------------------------------------
-- unicode (general categories; marks each matching character)

local ucat -- loaded on first use (a 35 KB table)

local function category(cp)
   ucat = ucat or require "rt.detectors.ucat"
   local starts = ucat.starts
   local lo, hi = 1, #starts
   while lo < hi do
      local mid = (lo + hi + 1) // 2
      if starts[mid] <= cp then lo = mid else hi = mid - 1 end
   end
   return ucat.NAMES[ucat.cats[lo]]
end
M.category = category
python.set_category(category)

function D.unicode(ctx, args, kwargs)
   local data = getarg(args, kwargs, 1, "data")
   local cats = getarg(args, kwargs, 2, "categories", None)
   local want
   if cats ~= None then
      want = {}
      for _, c in ipairs(value.iter(cats)) do
         local cs = vstr(c)
         if cs then want[cs] = true end
      end
   end
   local seen, out = {}, {}
   for _, t in ipairs(texts(data)) do
      local s = vstr(t)
      for i, cp in ipairs(text.codepoints(s)) do
         local c = category(cp)
         if want == nil or want[c] then
            if not seen[c] then seen[c] = true; out[#out + 1] = c end
            if ctx then ctx:mark(t, i - 1, i) end
         end
      end
   end
   return list(out)
end

------------------------------------------------------------------------------------------------
-- links and html_code (invariant.parsers.html)

local URL_RE = [=[https?://(?:[-\w.]|(?:%[\da-fA-F]{2}))+(?:/[^ \n"]+)*]=]

local function links_of(s, out, seen)
   for _, u in ipairs(regex.findall(URL_RE, s)) do
      if not seen[u] then seen[u] = true; out[#out + 1] = u end
   end
end

function D.links(_, args, kwargs)
   local out = {}
   for _, t in ipairs(texts(getarg(args, kwargs, 1, "data"))) do
      links_of(vstr(t), out, {})
   end
   return list(out)
end

local ENTITIES = { amp = "&", lt = "<", gt = ">", quot = '"', apos = "'", nbsp = "\194\160" }
local function unescape(s)
   return (sgsub(s, "&(#?[%w]+);", function(e)
      if ENTITIES[e] then return ENTITIES[e] end
      local n = smatch(e, "^#(%d+)$")
      if n then return text.char(floor(n + 0)) end
      local h = smatch(e, "^#[xX](%x+)$")
      if h then return text.char(floor(("0x" .. h) + 0)) end
      return nil
   end))
end

-- attributes of a start tag body
local function attrs(body)
   local out = {}
   local p = 1
   while true do
      local a, b, name = sfind(body, "([^%s=/>\"']+)", p)
      if not a then break end
      p = b + 1
      local eq = smatch(body, "^%s*=%s*", p)
      if eq then
         p = p + #eq
         local q = ssub(body, p, p)
         local v
         if q == '"' or q == "'" then
            local e = sfind(body, q, p + 1, true) or #body + 1
            v = ssub(body, p + 1, e - 1)
            p = e + 1
         else
            v = smatch(body, "^[^%s>]*", p)
            p = p + #v
         end
         out[slower(name)] = unescape(v)
      else
         out[slower(name)] = out[slower(name)] or None
      end
   end
   return out
end

-- iterator over (tag name, attribute text) of the start tags of s; quoted attribute values may
-- contain '>'
local function start_tags(s)
   local pos = 1
   return function()
      local a, b, name = sfind(s, "<([%a][%w]*)", pos)
      if not a then return nil end
      local p = b + 1
      local q
      while p <= #s do
         local c = ssub(s, p, p)
         if q then
            if c == q then q = nil end
         elseif c == '"' or c == "'" then
            q = c
         elseif c == ">" then
            break
         end
         p = p + 1
      end
      pos = p + 1
      return name, ssub(s, b + 1, p - 1)
   end
end

function D.html_code(_, args, kwargs)
   local alts, links, seen = {}, {}, {}
   for _, t in ipairs(texts(getarg(args, kwargs, 1, "data"))) do
      local s = vstr(t)
      -- strip comments
      s = sgsub(s, "<!%-%-.-%-%->", "")
      for tag, body in start_tags(s) do
         tag = slower(tag)
         if tag == "img" then
            local a = attrs(body)
            if type(a.alt) == "string" then alts[#alts + 1] = a.alt end
         elseif tag == "a" then
            local a = attrs(body)
            local h = a.href
            if type(h) == "string" and not seen[h] then seen[h] = true; links[#links + 1] = h end
         end
      end
      links_of(s, links, seen)
   end
   return dict({ alt_texts = list(alts), links = list(links) }, { "alt_texts", "links" })
end

------------------------------------------------------------------------------------------------
-- python_code / ipython_code

local function code_of(data)
   local parts = {}
   for i, t in ipairs(texts(data)) do parts[i] = vstr(t) end
   return tconcat(parts, "\n")
end

local function python_result(src)
   local r = python.analyze(src)
   local imports = {}
   for i, m in ipairs(r.imports) do imports[i] = m or None end
   return dict({
      imports = list(imports), builtins = list(r.builtins),
      function_calls = list(r.function_calls), syntax_error = r.syntax_error,
      syntax_error_exception = r.syntax_error_exception or None,
   }, { "imports", "builtins", "function_calls", "syntax_error", "syntax_error_exception" })
end

local function ipython_clean(src)
   local lines = {}
   for line in (src .. "\n"):gmatch("(.-)\n") do
      local ind, rest = smatch(line, "^(%s*)(.*)$")
      local c = ssub(rest, 1, 1)
      if c == "%" or c == "!" or (c == "?" and #rest > 0) or ssub(rest, -1) == "?" then
         lines[#lines + 1] = ind .. "pass"
      else
         lines[#lines + 1] = line
      end
   end
   return tconcat(lines, "\n")
end

function D.python_code(_, args, kwargs)
   local src = code_of(getarg(args, kwargs, 1, "data"))
   if truthy(getarg(args, kwargs, 2, "ipython_mode", false)) then src = ipython_clean(src) end
   return python_result(src)
end

function D.ipython_code(_, args, kwargs)
   return python_result(ipython_clean(code_of(getarg(args, kwargs, 1, "data"))))
end

------------------------------------------------------------------------------------------------
-- fuzzy_contains: approximate substring search (Levenshtein, k = floor(len(q) * (1 - t)),
-- at most 10). The query is matched literally (LANGUAGE.md Fixed 6 spirit; the reference
-- inserts it into a regex unescaped). Marks the first match.

-- leftmost start, then the end with the fewest edits (longest on ties); nil when none
local function fuzzy_find(h, q, k)
   local m, n = #q, #h
   if m == 0 then return 0, 0 end
   -- Sellers: D[j] = min edits of q against a substring of h ending at j
   local prev, cur = {}, {}
   for i = 0, m do prev[i] = i end
   local best_end
   for j = 1, n do
      cur[0] = 0
      local hj = h[j]
      for i = 1, m do
         local c = prev[i - 1] + (q[i] == hj and 0 or 1)
         local a, b = prev[i] + 1, cur[i - 1] + 1
         if a < c then c = a end
         if b < c then c = b end
         cur[i] = c
      end
      if cur[m] <= k and not best_end then best_end = j end
      prev, cur = cur, prev
   end
   if prev[m] <= k and not best_end then best_end = n end
   if not best_end and m <= k then return 0, 0 end
   if not best_end then return nil end
   -- leftmost start: the earliest i whose global alignment against some h[i..j] is within k
   local lo = best_end - m - k
   if lo < 1 then lo = 1 end
   for s = lo, n do
      -- edit distance of q against h[s..j] for j = s-1 .. s+m+k-1
      local row = {}
      for i = 0, m do row[i] = i end
      local bestd, bestj = row[m] <= k and row[m] or nil, s - 1
      for j = s, s + m + k - 1 do
         if j > n then break end
         -- leading inserted characters, except at the very start of the text (as the `regex`
         -- module's fuzzy search behaves)
         local nrow = { [0] = s == 1 and 1e9 or j - s + 1 }
         local hj = h[j]
         for i = 1, m do
            local c = row[i - 1] + (q[i] == hj and 0 or 1)
            local a, b = row[i] + 1, nrow[i - 1] + 1
            if a < c then c = a end
            if b < c then c = b end
            nrow[i] = c
         end
         row = nrow
         if row[m] <= k and (bestd == nil or row[m] <= bestd) then bestd, bestj = row[m], j end
      end
      if bestd ~= nil then return s - 1, bestj end
   end
   return nil
end
M.fuzzy_find = fuzzy_find

function D.fuzzy_contains(ctx, args, kwargs)
   local data = getarg(args, kwargs, 1, "text")
   local query = vstr(getarg(args, kwargs, 2, "query"))
   if query == nil then raise("type", "fuzzy_contains(): query must be a string") end
   local thr = getarg(args, kwargs, 3, "query_similarity_threshold", 0.8)
   local use_semantic = truthy(getarg(args, kwargs, 4, "use_semantic", true))
   if type(thr) ~= "number" or thr < 0 or thr > 1 then
      raise("value", "query_similarity_threshold must be between 0 and 1")
   end
   local qc = text.codepoints(query)
   local k = floor(#qc * (1 - thr)) -- as Python computes it (0.8 -> 1 - 0.8 < 0.2)
   if k > 10 then k = 10 end
   for _, t in ipairs(texts(data)) do
      local s = vstr(t)
      local a, b = fuzzy_find(text.codepoints(s), qc, k)
      if a then
         if ctx then ctx:mark(t, a, b) end
         return true
      end
   end
   if use_semantic then
      raise("value", "detector fuzzy_contains(use_semantic=True) needs a detector provider when "
         .. "there is no approximate match; none is configured (pass use_semantic=False)")
   end
   return false
end

------------------------------------------------------------------------------------------------
-- pii (structured entities only without a provider)

-- findings of `wanted` entities in v (a string value); marks each span
function M.pii_entities(ctx, v, wanted)
   local out = {}
   for _, t in ipairs(texts(v)) do
      for _, f in ipairs(pii.scan(vstr(t), wanted)) do
         out[#out + 1] = f.entity
         if ctx then ctx:mark(t, f.start, f.stop) end
      end
   end
   return out
end

function D.pii(ctx, args, kwargs)
   local data = getarg(args, kwargs, 1, "data")
   local ents = getarg(args, kwargs, 2, "entities", None)
   local wanted
   if ents ~= None then
      wanted = {}
      for _, e in ipairs(value.iter(ents)) do
         local es = vstr(e)
         if es == nil then raise("type", "pii(): entities must be strings") end
         if not pii.STRUCTURED[es] then
            raise("value", "detector pii needs a detector provider for entity " .. es
               .. "; none is configured (built in: EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, "
               .. "IBAN_CODE, IP_ADDRESS, US_SSN, URL)")
         end
         wanted[es] = true
      end
   end
   return list(M.pii_entities(ctx, data, wanted))
end

------------------------------------------------------------------------------------------------
-- invariant.access_control

function D.should_allow_rbac(_, args, kwargs)
   local scope = getarg(args, kwargs, 2, "scope")
   local user = getarg(args, kwargs, 3, "user")
   local user_roles = getarg(args, kwargs, 4, "user_roles")
   local role_grants = getarg(args, kwargs, 5, "role_grants")
   local us, ss = vstr(user), vstr(scope)
   if not value.is_dict(user_roles) or not value.is_dict(role_grants) then
      raise("type", "should_allow_rbac(): user_roles and role_grants must be dicts")
   end
   local roles = us and user_roles[us]
   if roles == nil or roles == None then return false end
   for _, r in ipairs(value.iter(roles)) do
      local rs = vstr(r)
      local grants = rs and role_grants[rs]
      if grants ~= nil and grants ~= None and value.is_dict(grants) then
         local g = ss and grants[ss]
         if g ~= nil and truthy(g) then return true end
      end
   end
   return false
end

------------------------------------------------------------------------------------------------
-- model / network detectors

for _, name in ipairs({ "prompt_injection", "moderated", "llm", "llm_confirm",
   "embedding_similarity", "is_similar", "semgrep", "ocr" }) do
   D[name] = need_provider(name)
end

-- invariant.files reads the host filesystem (local mode of the reference only): never available
-- inside the jailed workers
for _, name in ipairs({ "get_files", "get_tree_files", "get_file_content", "get_file_contents",
   "is_sensitive", "is_sensitive_dir" }) do
   D[name] = function()
      raise("value", name .. " (invariant.files) reads the host filesystem and is not available in "
         .. "vigil")
   end
end

return M

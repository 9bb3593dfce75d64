-- rt.regex and the C binding vregex: Python `re` semantics, limits, code-point offsets.
local vregex = require "vregex"
local regex = require "rt.regex"
local rterror = require "rt.error"

local function raises_kind(kind, f, ...)
   local ok, e = pcall(f, ...)
   assert.is_false(ok)
   assert.is_true(rterror.is(e), "expected a runtime error, got " .. tostring(e))
   assert.are.equal(kind, e.kind)
   return e
end

describe("vregex (C binding)", function()
   it("compiles and reports invalid patterns as nil, message", function()
      assert.is_not_nil(vregex.compile("a+b", ""))
      local rx, err = vregex.compile("(", "")
      assert.is_nil(rx)
      assert.matches("parenthesis", err)
      assert.has_error(function() vregex.compile("a", "q") end)
   end)

   it("match is anchored at init, search is not (byte offsets, end exclusive)", function()
      local rx = vregex.compile("b+", "")
      assert.is_nil(rx:match("abb", 0))
      local s, e = rx:match("abb", 1)
      assert.are.same({ 1, 3 }, { s, e })
      s, e = rx:search("abb", 0)
      assert.are.same({ 1, 3 }, { s, e })
   end)

   it("returns group spans with -1 for unset groups", function()
      local rx = vregex.compile("(a)|(b)", "")
      local _, _, spans = rx:search("xb", 0)
      assert.are.same({ 1, 2, -1, -1, 1, 2 }, spans)
      assert.are.equal(2, rx:groups())
   end)

   it("find_all is non-overlapping with Python's empty-match rule", function()
      local rx = vregex.compile("x*", "")
      local all = rx:find_all("axx b", 0)
      -- Python: re.findall('x*', 'axx b') == ['', 'xx', '', '', '']
      local spans = {}
      for i, m in ipairs(all) do spans[i] = { m[1], m[2] } end
      assert.are.same({ { 0, 0 }, { 1, 3 }, { 3, 3 }, { 4, 4 }, { 5, 5 } }, spans)
   end)

   it("translates Python-only syntax", function()
      -- \Z is end of string only (PCRE2's \Z would accept a final newline)
      assert.is_nil(vregex.compile("a\\Z", ""):search("a\n", 0))
      assert.is_not_nil(vregex.compile("a\\Z", ""):search("xa", 0))
      -- {,n} means {0,n}
      local s, e = vregex.compile("a{,2}", ""):match("aaa", 0)
      assert.are.same({ 0, 2 }, { s, e })
      -- \uXXXX escapes, named groups, inline flags (u dropped)
      assert.is_not_nil(vregex.compile("\\u00e9", ""):search("caf\195\169", 0))
      assert.is_not_nil(vregex.compile("(?P<x>a)(?P=x)", ""):match("aa", 0))
      assert.is_not_nil(vregex.compile("(?iu)ABC", ""):match("abc", 0))
   end)

   it("is Unicode-aware like Python str patterns", function()
      local s, e = vregex.compile("\\w+", ""):match("h\195\169llo!", 0)
      assert.are.same({ 0, 6 }, { s, e })
      assert.is_not_nil(vregex.compile("\195\137", "i"):match("\195\169", 0)) -- É / é
      -- multi-line ^ also matches after a final newline (Python)
      assert.are.equal(2, #vregex.compile("^", "m"):find_all("a\n", 0))
      -- $ accepts one trailing newline
      assert.is_not_nil(vregex.compile("a$", ""):match("a\n", 0))
   end)

   it("bounds catastrophic backtracking with an error instead of running unbounded", function()
      local rx = vregex.compile("(a+)+$", "")
      local t0 = os.clock()
      local r, err = rx:search(string.rep("a", 40) .. "b", 0)
      assert.is_nil(r)
      assert.matches("limit", err)
      assert.is_true(os.clock() - t0 < 5)
      local list, err2 = rx:find_all(string.rep("a", 40) .. "b", 0)
      assert.is_nil(list)
      assert.matches("limit", err2)
   end)

   it("escapes metacharacters", function()
      local p = vregex.escape("a.b(c)*[d]")
      local rx = vregex.compile(p, "")
      assert.is_not_nil(rx:match("a.b(c)*[d]", 0))
      assert.is_nil(rx:match("axb(c)*[d]", 0))
   end)
end)

describe("rt.regex", function()
   it("match anchors at the start only; search anywhere", function()
      assert.is_true(regex.test_match("(ls|cat|grep)\\b", "ls -la"))
      assert.is_false(regex.test_match("(ls|cat|grep)\\b", "lsblk"))
      assert.is_false(regex.test_match("grep", "curl x | grep key"))
      assert.is_true(regex.test_search("grep", "curl x | grep key"))
      assert.is_true(regex.test_match(".*@acme\\.io$", "hr@acme.io"))
   end)

   it("reports code-point offsets on non-ASCII text", function()
      local ms = regex.finditer("[0-9]+", "d\195\169j\195\160 12 \226\130\172 345")
      assert.are.equal(2, #ms)
      assert.are.same({ 5, 7, "12" }, { ms[1].start, ms[1].stop, ms[1].text })
      assert.are.same({ 10, 13, "345" }, { ms[2].start, ms[2].stop, ms[2].text })
      local m = regex.search("\226\130\172", "ab\226\130\172")
      assert.are.same({ 2, 3 }, { m.start, m.stop })
      -- astral characters count as one code point
      m = regex.search("x", "\243\160\129\129x")
      assert.are.same({ 1, 2 }, { m.start, m.stop })
   end)

   it("findall returns texts, groups or group tuples like Python", function()
      assert.are.same({ "a1", "b2" }, regex.findall("[a-z][0-9]", "a1 b2"))
      assert.are.same({ "1", "2" }, regex.findall("[a-z]([0-9])", "a1 b2"))
      assert.are.same({ { "a", "1" }, { "b", "2" } }, regex.findall("([a-z])([0-9])", "a1 b2"))
   end)

   it("raises kind regex for an invalid pattern", function()
      local e = raises_kind("regex", regex.test_match, "(", "x")
      assert.matches("invalid regular expression", e.message)
      raises_kind("regex", regex.finditer, "[a-", "x")
   end)

   it("raises kind regex when a hostile pattern exceeds the match limit", function()
      raises_kind("regex", regex.test_search, "(a+)+$", string.rep("a", 40) .. "b")
      raises_kind("regex", regex.finditer, "(\\w+\\s?)+$", string.rep("word ", 40) .. "!")
   end)

   it("caches compiled patterns", function()
      local a = regex.compile("cache-me", "")
      local b = regex.compile("cache-me", "")
      assert.are.equal(a, b)
      assert.are_not.equal(a, regex.compile("cache-me", "i"))
   end)

   it("fullmatch and group", function()
      assert.is_nil(regex.fullmatch("ab", "abc"))
      local m = regex.fullmatch("a(b)c", "abc")
      assert.are.equal("b", regex.group(m, 1))
      assert.are.equal("abc", regex.group(m))
   end)
end)

-- rt.regex and the C binding vregex: Python `re` semantics, limits, code-point offsets.
-- luacheck: no max line length
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
      -- \N is not "not a newline" as in PCRE2: Python only has \N{NAME}, which is unsupported
      assert.is_nil(vregex.compile("a\\N", ""))
      assert.is_not_nil(vregex.compile("a\\\\N", "")) -- an escaped backslash, then N
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

describe("rt.regex agrees with CPython re.finditer (code-point spans, table generated with Python 3.11)", function()
   local cases = {
      { "\\d+", "d\195\169j\195\160 vu \195\137\195\137\195\169 12 \217\163\217\164", { { 12, 14 }, { 15, 17 } } },
      { "\\d+", "x\10x\10", {  } },
      { "\\d+", "abcd abbcd aaa", {  } },
      { "\\d+", "x y\9z\194\160w", {  } },
      { "\\d+", "]]a] bab cb", {  } },
      { "\\w+", "d\195\169j\195\160 vu \195\137\195\137\195\169 12 \217\163\217\164", { { 0, 4 }, { 5, 7 }, { 8, 11 }, { 12, 14 }, { 15, 17 } } },
      { "\\w+", "x\10x\10", { { 0, 1 }, { 2, 3 } } },
      { "\\w+", "abcd abbcd aaa", { { 0, 4 }, { 5, 10 }, { 11, 14 } } },
      { "\\w+", "x y\9z\194\160w", { { 0, 1 }, { 2, 3 }, { 4, 5 }, { 6, 7 } } },
      { "\\w+", "]]a] bab cb", { { 2, 3 }, { 5, 8 }, { 9, 11 } } },
      { "(?i)\195\137", "d\195\169j\195\160 vu \195\137\195\137\195\169 12 \217\163\217\164", { { 1, 2 }, { 8, 9 }, { 9, 10 }, { 10, 11 } } },
      { "(?i)\195\137", "x\10x\10", {  } },
      { "(?i)\195\137", "abcd abbcd aaa", {  } },
      { "(?i)\195\137", "x y\9z\194\160w", {  } },
      { "(?i)\195\137", "]]a] bab cb", {  } },
      { "[^\\W\\d]+", "d\195\169j\195\160 vu \195\137\195\137\195\169 12 \217\163\217\164", { { 0, 4 }, { 5, 7 }, { 8, 11 } } },
      { "[^\\W\\d]+", "x\10x\10", { { 0, 1 }, { 2, 3 } } },
      { "[^\\W\\d]+", "abcd abbcd aaa", { { 0, 4 }, { 5, 10 }, { 11, 14 } } },
      { "[^\\W\\d]+", "x y\9z\194\160w", { { 0, 1 }, { 2, 3 }, { 4, 5 }, { 6, 7 } } },
      { "[^\\W\\d]+", "]]a] bab cb", { { 2, 3 }, { 5, 8 }, { 9, 11 } } },
      { "(a|ab)(c|bcd)(d*)", "d\195\169j\195\160 vu \195\137\195\137\195\169 12 \217\163\217\164", {  } },
      { "(a|ab)(c|bcd)(d*)", "x\10x\10", {  } },
      { "(a|ab)(c|bcd)(d*)", "abcd abbcd aaa", { { 0, 4 }, { 5, 10 } } },
      { "(a|ab)(c|bcd)(d*)", "x y\9z\194\160w", {  } },
      { "(a|ab)(c|bcd)(d*)", "]]a] bab cb", {  } },
      { "(?m)^x", "d\195\169j\195\160 vu \195\137\195\137\195\169 12 \217\163\217\164", {  } },
      { "(?m)^x", "x\10x\10", { { 0, 1 }, { 2, 3 } } },
      { "(?m)^x", "abcd abbcd aaa", {  } },
      { "(?m)^x", "x y\9z\194\160w", { { 0, 1 } } },
      { "(?m)^x", "]]a] bab cb", {  } },
      { "x$", "d\195\169j\195\160 vu \195\137\195\137\195\169 12 \217\163\217\164", {  } },
      { "x$", "x\10x\10", { { 2, 3 } } },
      { "x$", "abcd abbcd aaa", {  } },
      { "x$", "x y\9z\194\160w", {  } },
      { "x$", "]]a] bab cb", {  } },
      { "\\Z", "d\195\169j\195\160 vu \195\137\195\137\195\169 12 \217\163\217\164", { { 17, 17 } } },
      { "\\Z", "x\10x\10", { { 4, 4 } } },
      { "\\Z", "abcd abbcd aaa", { { 14, 14 } } },
      { "\\Z", "x y\9z\194\160w", { { 7, 7 } } },
      { "\\Z", "]]a] bab cb", { { 11, 11 } } },
      { "a{,2}", "d\195\169j\195\160 vu \195\137\195\137\195\169 12 \217\163\217\164", { { 0, 0 }, { 1, 1 }, { 2, 2 }, { 3, 3 }, { 4, 4 }, { 5, 5 }, { 6, 6 }, { 7, 7 }, { 8, 8 }, { 9, 9 }, { 10, 10 }, { 11, 11 }, { 12, 12 }, { 13, 13 }, { 14, 14 }, { 15, 15 }, { 16, 16 }, { 17, 17 } } },
      { "a{,2}", "x\10x\10", { { 0, 0 }, { 1, 1 }, { 2, 2 }, { 3, 3 }, { 4, 4 } } },
      { "a{,2}", "abcd abbcd aaa", { { 0, 1 }, { 1, 1 }, { 2, 2 }, { 3, 3 }, { 4, 4 }, { 5, 6 }, { 6, 6 }, { 7, 7 }, { 8, 8 }, { 9, 9 }, { 10, 10 }, { 11, 13 }, { 13, 14 }, { 14, 14 } } },
      { "a{,2}", "x y\9z\194\160w", { { 0, 0 }, { 1, 1 }, { 2, 2 }, { 3, 3 }, { 4, 4 }, { 5, 5 }, { 6, 6 }, { 7, 7 } } },
      { "a{,2}", "]]a] bab cb", { { 0, 0 }, { 1, 1 }, { 2, 3 }, { 3, 3 }, { 4, 4 }, { 5, 5 }, { 6, 7 }, { 7, 7 }, { 8, 8 }, { 9, 9 }, { 10, 10 }, { 11, 11 } } },
      { "\\s+", "d\195\169j\195\160 vu \195\137\195\137\195\169 12 \217\163\217\164", { { 4, 5 }, { 7, 8 }, { 11, 12 }, { 14, 15 } } },
      { "\\s+", "x\10x\10", { { 1, 2 }, { 3, 4 } } },
      { "\\s+", "abcd abbcd aaa", { { 4, 5 }, { 10, 11 } } },
      { "\\s+", "x y\9z\194\160w", { { 1, 2 }, { 3, 4 }, { 5, 6 } } },
      { "\\s+", "]]a] bab cb", { { 4, 5 }, { 8, 9 } } },
      { "(?:x*)", "d\195\169j\195\160 vu \195\137\195\137\195\169 12 \217\163\217\164", { { 0, 0 }, { 1, 1 }, { 2, 2 }, { 3, 3 }, { 4, 4 }, { 5, 5 }, { 6, 6 }, { 7, 7 }, { 8, 8 }, { 9, 9 }, { 10, 10 }, { 11, 11 }, { 12, 12 }, { 13, 13 }, { 14, 14 }, { 15, 15 }, { 16, 16 }, { 17, 17 } } },
      { "(?:x*)", "x\10x\10", { { 0, 1 }, { 1, 1 }, { 2, 3 }, { 3, 3 }, { 4, 4 } } },
      { "(?:x*)", "abcd abbcd aaa", { { 0, 0 }, { 1, 1 }, { 2, 2 }, { 3, 3 }, { 4, 4 }, { 5, 5 }, { 6, 6 }, { 7, 7 }, { 8, 8 }, { 9, 9 }, { 10, 10 }, { 11, 11 }, { 12, 12 }, { 13, 13 }, { 14, 14 } } },
      { "(?:x*)", "x y\9z\194\160w", { { 0, 1 }, { 1, 1 }, { 2, 2 }, { 3, 3 }, { 4, 4 }, { 5, 5 }, { 6, 6 }, { 7, 7 } } },
      { "(?:x*)", "]]a] bab cb", { { 0, 0 }, { 1, 1 }, { 2, 2 }, { 3, 3 }, { 4, 4 }, { 5, 5 }, { 6, 6 }, { 7, 7 }, { 8, 8 }, { 9, 9 }, { 10, 10 }, { 11, 11 } } },
      { "[]a]+", "d\195\169j\195\160 vu \195\137\195\137\195\169 12 \217\163\217\164", {  } },
      { "[]a]+", "x\10x\10", {  } },
      { "[]a]+", "abcd abbcd aaa", { { 0, 1 }, { 5, 6 }, { 11, 14 } } },
      { "[]a]+", "x y\9z\194\160w", {  } },
      { "[]a]+", "]]a] bab cb", { { 0, 4 }, { 6, 7 } } },
      { "(?<!a)b", "d\195\169j\195\160 vu \195\137\195\137\195\169 12 \217\163\217\164", {  } },
      { "(?<!a)b", "x\10x\10", {  } },
      { "(?<!a)b", "abcd abbcd aaa", { { 7, 8 } } },
      { "(?<!a)b", "x y\9z\194\160w", {  } },
      { "(?<!a)b", "]]a] bab cb", { { 5, 6 }, { 10, 11 } } },
      { "(?x) a b  # c\\n c", "d\195\169j\195\160 vu \195\137\195\137\195\169 12 \217\163\217\164", {  } },
      { "(?x) a b  # c\\n c", "x\10x\10", {  } },
      { "(?x) a b  # c\\n c", "abcd abbcd aaa", { { 0, 2 }, { 5, 7 } } },
      { "(?x) a b  # c\\n c", "x y\9z\194\160w", {  } },
      { "(?x) a b  # c\\n c", "]]a] bab cb", { { 6, 8 } } },
      { "\\b\\w", "d\195\169j\195\160 vu \195\137\195\137\195\169 12 \217\163\217\164", { { 0, 1 }, { 5, 6 }, { 8, 9 }, { 12, 13 }, { 15, 16 } } },
      { "\\b\\w", "x\10x\10", { { 0, 1 }, { 2, 3 } } },
      { "\\b\\w", "abcd abbcd aaa", { { 0, 1 }, { 5, 6 }, { 11, 12 } } },
      { "\\b\\w", "x y\9z\194\160w", { { 0, 1 }, { 2, 3 }, { 4, 5 }, { 6, 7 } } },
      { "\\b\\w", "]]a] bab cb", { { 2, 3 }, { 5, 6 }, { 9, 10 } } },
   }
   for i, c in ipairs(cases) do
      it(("case %d: %q"):format(i, c[1]), function()
         local got = {}
         for j, m in ipairs(regex.finditer(c[1], c[2])) do got[j] = { m.start, m.stop } end
         assert.are.same(c[3], got)
      end)
   end
end)

-- The indentation pre-pass (spec §2.2), run through the real pipeline up to "indent".
local helper = require "helper"
local indent = require "compiler.indent"

local function pre(src)
   local st = helper.run_until("indent", src)
   assert.same({}, st.diags)
   -- make markers readable
   return (st.text:gsub("\1", "<I>"):gsub("\2", "<D>"):gsub("\3", "<J>")), st
end

describe("indent pass", function()
   it("opens a block after a trailing ':' and closes it at the end", function()
      local t = pre('raise "x" if:\n    a\n    b\n')
      assert.equal('raise "x" if<I>\n    a\n    b<D>\n', t)
   end)

   it("opens a block after ':=' and removes the opener", function()
      assert.equal("X<I>\n  1<D>", (pre("X :=\n  1")))
      assert.equal("X<I>\n  1<D>", (pre("X:\n  1")))
   end)

   it("computes the unit as the smallest positive indentation over all lines", function()
      local t, st = pre('raise "x" if:\n    a\n      b\n')
      assert.equal(4, st.unit)
      -- 6 // 4 == 1: the same level as `a` (a reference hazard), a new item
      assert.equal('raise "x" if<I>\n    a\n      b<D>\n', t)
      t, st = pre('raise "x" if:\n    a\n  # two\n')
      assert.equal(2, st.unit)
      -- level 2 after ':' -> two INDENTs, one DEDENT for the comment at level 1
      assert.equal('raise "x" if<I><I>\n    a<D>\n  # two<D>\n', t)
   end)

   it("treats a more indented line without ':' before it as a continuation line", function()
      local t = pre('raise "x" if:\n    a and\n        b\n    c\n')
      assert.equal('raise "x" if<I>\n    a and<J>        b\n    c<D>\n', t)
   end)

   it("closes blocks on a less indented line, even a comment", function()
      local t = pre('raise "x" if:\n    a\n# c\n    b\n')
      assert.equal('raise "x" if<I>\n    a<D>\n# c<J>    b\n', t)
   end)

   it("keeps blank lines (empty) so line numbers map to themselves", function()
      local t, st = pre('raise "x" if:\n\n    a\n   \n    b\n')
      assert.equal('raise "x" if<I>\n\n    a\n\n    b<D>\n', t)
      assert.same({ 1, 2, 3, 4, 5, 6 }, st.map)
   end)

   it("nested blocks: one DEDENT per level", function()
      local t = pre("raise 'x' if:\n  forall:\n    a\n  b\nc := 1\n")
      assert.equal("raise 'x' if<I>\n  forall<I>\n    a<D>\n  b<D>\nc := 1\n", t)
   end)

   it("a comment line ending in ':' opens a block (reference behaviour)", function()
      local t = pre("# note:\n  x\n")
      assert.equal("# note<I>\n  x<D>\n", t)
   end)

   it("removes the common margin and maps columns back to the text as sent", function()
      local _, st = pre('    raise "x" if:\n        (m: Message)\n')
      assert.equal(4, st.margin[1])
      -- byte offset of "(" on line 2 in the pre-passed text
      local pos = st.line_start[2] + 4
      assert.same({ 2, 9 }, { indent.locate(st, pos) })
   end)

   it("counts columns in code points", function()
      local _, st = pre('raise "é" if:\n    "ü" == x\n')
      local pos = st.line_start[2] + #'    "ü" '
      assert.same({ 2, 9 }, { indent.locate(st, pos) })
   end)

   it("dedents like textwrap.dedent", function()
      assert.equal("\nabc\n  def\n", indent.dedent("\n    abc\n      def\n    "))
      assert.equal("a\n\nb", indent.dedent("  a\n   \n  b"))
      assert.equal("x\n y", indent.dedent("x\n y"))
   end)

   it("handles CRLF line endings", function()
      local t = pre('raise "x" if:\r\n    a\r\n')
      assert.equal('raise "x" if<I>\n    a<D>\n', t)
   end)

   it("ignores a UTF-8 byte order mark", function()
      local t, st = pre('\239\187\191raise "x" if:\n    a\n')
      assert.equal('raise "x" if<I>\n    a<D>\n', t)
      assert.same({ 1, 7 }, { indent.locate(st, 7) })
   end)

   it("empty input", function()
      local t, st = pre("")
      assert.equal("", t)
      assert.equal(1, st.unit)
   end)
end)

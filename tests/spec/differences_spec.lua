-- Deliberate differences from Invariant that README "Differences from Invariant" lists and no
-- other spec checks on its own: each runs the whole pipeline (Invariant text -> rt.load ->
-- rt.analyze -> invariant rendering) and would fail if vigil fell back to the reference's
-- behaviour.
local rt = require "rt"
local cjson = require "cjson"

local function analyze(src, trace)
   local pol, err = rt.load(src, "invariant", "differences")
   assert(pol, err and err.message)
   local vs, e = rt.analyze(pol, cjson.decode(trace))
   assert(vs, e and e.message)
   return rt.render(vs, "invariant")
end

local function keys(out)
   local ks = {}
   for i, v in ipairs(out) do ks[i] = v.key end
   return ks
end

describe("differences from Invariant", function()
   it("violations are ordered by the positions of the rule's typed variables, in declaration order", function()
      local out = analyze([[
raise "o" if:
    (a: Message)
    (b: Message)
    a.role == "user"
    b.role == "assistant"
]], [[ [{"role": "assistant", "content": "0"}, {"role": "user", "content": "1"},
       {"role": "assistant", "content": "2"}, {"role": "user", "content": "3"}] ]])
      -- a (declared first) varies slowest, then b; not the order of the trace positions
      assert.same({ "(0, (1, 0))", "(0, (1, 2))", "(0, (3, 0))", "(0, (3, 2))" }, keys(out))
   end)

   it("fuzzy_contains matches its query literally, not as a regular expression", function()
      local out = analyze([[
from invariant.detectors import fuzzy_contains
raise "f" if:
    (m: Message)
    fuzzy_contains(m.content, "a.b(", 0.9, use_semantic=False)
]], [[ [{"role": "user", "content": "zz a.b( zz"}, {"role": "user", "content": "axbyzz"},
       {"role": "user", "content": "a b c"}] ]])
      -- "a.b(" as a regex would be invalid (or, escaped-less, match "axb"); literally it marks 3-7
      assert.same({ "(0, (0,))" }, keys(out))
      assert.same({ "messages.0", "messages.0.content:3-7" }, out[1].ranges)
   end)

   it("links() accepts a plain string (the reference needs an HTML parse result)", function()
      local out = analyze([[
from invariant.parsers.html import links
raise "l" if:
    (m: Message)
    "https://evil.example/x" in links(m.content)
]], [[ [{"role": "user", "content": "none"},
       {"role": "user", "content": "see https://evil.example/x now"}] ]])
      assert.same({ "(0, (1,))" }, keys(out))
   end)

   it("keeps blank lines inside a triple-quoted string", function()
      local src = 'raise "t" if:\n    (m: Message)\n    m.content == """a\n\n    b"""\n'
      local out = analyze(src, [[ [{"role": "user", "content": "a\n    b"},
                                  {"role": "user", "content": "a\n\n    b"}] ]])
      assert.same({ "(0, (1,))" }, keys(out))
   end)

   it("a body line starting with '-' or '+' is a new item, not glued to the line before", function()
      for _, line in ipairs { "-x == -1", "+x == 1" } do
         local src = 'raise "p" if:\n    (m: Message)\n    x := 1\n    ' .. line .. '\n    m.content == "a"\n'
         -- glued, the body would read `x := 1 - x == -1` (or `1 + x == 1`): x unbound/False
         local out = analyze(src, [[ [{"role": "user", "content": "b"}, {"role": "user", "content": "a"}] ]])
         assert.same({ "(0, (1, -1))" }, keys(out), line)
      end
   end)
end)

-- compiler.lower: rule bodies -> conjunctive queries annotated with the variables they read.
-- luacheck: max line length 240
local lower = require "compiler.lower"
local A = require "compiler.astb"

local function typed(l, c, v) return A.name(l, c, v.name, "typed", v) end

-- Summarise a query as short strings, in source order.
local function summary(q)
   local out = {}
   for _, it in ipairs(q.items) do
      if it.list == "vars" then
         out[#out + 1] = ("var %s:%s [%s]%s"):format(it.name, it.type, table.concat(it.reads, ","), it.domain and " in" or "")
      elseif it.list == "derived" then
         out[#out + 1] = ("let %s [%s]"):format(it.name, table.concat(it.reads, ","))
      elseif it.list == "order" then
         out[#out + 1] = ("%s %s %s"):format(it.a, it.op, it.b)
      else
         out[#out + 1] = ("cond@%d:%d [%s]%s"):format(it.line, it.col, table.concat(it.reads, ","), it.quant and " quant" or "")
      end
   end
   return out
end

local function lower_rule(body, raise)
   local st = { ast = A.policy { A.rule(1, 1, 0, raise or A.str(1, 7, "x"), body) }, diags = {} }
   lower.run(st)
   return st.ir.rules[1]
end

describe("compiler.lower", function()
   it("turns `->` between typed declarations into an order constraint and declares both", function()
      local a, b = A.tv(2, 6, "a", "ToolCall"), A.tv(2, 23, "b", "ToolOutput")
      local r = lower_rule {
         A.bin(2, 5, "->", a, b),
         A.bin(3, 5, "is", typed(3, 5, a), A.pat(3, 10, "read_file")),
         A.bin(4, 5, "in", A.str(4, 5, "SECRET"), A.member(4, 17, typed(4, 17, b), "content")),
      }
      assert.same({ "var a:ToolCall []", "var b:ToolOutput []", "a -> b", "cond@3:5 [a]", "cond@4:5 [b]" },
         summary(r.query))
   end)

   it("keeps a domain's reads and a derived variable's reads", function()
      local m = A.tv(2, 6, "m", "Message")
      local c = A.tv(3, 6, "c", "ToolCall", A.member(3, 21, typed(3, 21, m), "tool_calls"))
      local n = A.n("Assign", 4, 5, { name = "n", value = A.call(4, 10, A.name(4, 10, "len", "builtin"),
         { A.member(4, 14, typed(4, 14, m), "content") }) })
      local r = lower_rule {
         m, c, n,
         A.bin(5, 5, ">", A.name(5, 5, "n", "local", n), A.num(5, 9, 3)),
         A.bin(6, 5, "->", typed(6, 5, m), typed(6, 10, c)),
      }
      assert.same({ "var m:Message []", "var c:ToolCall [m] in", "let n [m]", "cond@5:5 [n]", "m -> c" },
         summary(r.query))
   end)

   it("gives a quantifier the outer variables its block reads, not the block's own", function()
      local m = A.tv(2, 6, "m", "Message")
      local line = A.tv(4, 10, "line", "str", A.call(4, 23, A.n("Member", 4, 23, { obj = A.member(4, 23, typed(4, 23, m), "content"), name = "splitlines" }), {}))
      local q = A.n("Quantifier", 3, 5, { kind = "forall", func = A.name(3, 5, "forall", "import"), negated = true,
         args = {}, kwargs = {}, body = {
            line,
            A.call(5, 9, A.name(5, 9, "match", "builtin"), { A.str(5, 15, "- "), typed(5, 21, line) }),
         } })
      local r = lower_rule { m, q }
      assert.same({ "var m:Message []", "cond@3:5 [m] quant" }, summary(r.query))
      assert.same({ "var line:str [m] in", "cond@5:9 [line]" }, summary(r.query.items[2].sub))
   end)

   it("does not count comprehension variables, constants or builtins as reads", function()
      local t = A.tv(2, 6, "turn", "Message")
      local comp = A.n("ListComp", 3, 9, { var = "x",
         elt = A.bin(3, 10, "==", A.name(3, 10, "x", "compvar"), A.name(3, 15, "K", "const")),
         iter = A.member(3, 23, typed(3, 23, t), "tool_calls") })
      local r = lower_rule { t, A.call(3, 5, A.name(3, 5, "any", "builtin"), { comp }) }
      assert.same({ "var turn:Message []", "cond@3:5 [turn]" }, summary(r.query))
   end)

   it("lists the variables the raise target reads", function()
      local a = A.tv(2, 6, "a", "Message")
      local r = lower_rule({ a }, A.call(1, 7, A.name(1, 7, "Violation", "builtin"), { typed(1, 17, a) }))
      assert.same({ "a" }, r.raise.reads)
   end)

   describe("on the real front half", function()
      local compiler = require "compiler"
      local function lowered(src)
         local st = compiler.run_until("lower", src, "=policy:t")
         assert.same({}, st.diags)
         return st.ir
      end

      it("three-variable flow", function()
         local ir = lowered([[
raise PolicyViolation("x", page=page, cmd=cmd) if:
    (ask: Message) -> (page: ToolOutput)
    page -> (cmd: ToolCall)
    ask.role == "user"
    page is tool:browse
    "run this command" in page.content and cmd is tool:run_shell
]])
         local r = ir.rules[1]
         assert.same({ "var ask:Message []", "var page:ToolOutput []", "ask -> page", "var cmd:ToolCall []",
            "page -> cmd", "cond@4:5 [ask]", "cond@5:5 [page]", "cond@6:5 [cmd,page]" }, summary(r.query))
         assert.same({ "cmd", "page" }, r.raise.reads)
      end)

      it("derived domains, `:=` and a counted block reading an outer variable", function()
         local ir = lowered([[
from invariant import count

raise reason if:
    (m: Message)
    (line: str) in m.content.splitlines()
    reason := "bad line " + line
    count(min=2, max=2):
        (c: ToolCall) in m.tool_calls
        c is tool:read_file
]])
         local r = ir.rules[1]
         assert.same({ "var m:Message []", "var line:str [m] in", "let reason [line]", "cond@7:5 [m] quant" },
            summary(r.query))
         assert.same({ "var c:ToolCall [m] in", "cond@9:9 [c]" }, summary(r.query.items[4].sub))
         assert.same({ "reason" }, r.raise.reads)
      end)

      it("predicates read their parameters; constants are not variables", function()
         local ir = lowered([[
K := ["a"]
p(x: ToolCall) :=
    x.function.name in K

raise "r" if:
    (c: ToolCall)
    p(c)
]])
         assert.same({ "cond@3:5 [x]" }, summary(ir.preds[1].query))
         assert.same({ "x" }, ir.preds[1].params)
         assert.same({ "var c:ToolCall []", "cond@7:5 [c]" }, summary(ir.rules[1].query))
         assert.equal("K", ir.consts[1].name)
      end)

      it("reports a quantifier-block variable read outside its block (E401, located)", function()
         local st = compiler.run_until("lower", "from invariant import forall\nraise \"x\" if:\n    forall:\n"
            .. "        (c: ToolCall)\n        c.id != None\n    c.id == \"1\"\n", "=policy:t")
         assert.same({ { "E401", 6, 5 } }, { { st.diags[1].code, st.diags[1].line, st.diags[1].column } })
      end)
   end)
end)

-- Engine semantics for each rule shape (policies written through the Lua policy API).
local rt = require "rt"
local cjson = require "cjson"

local T = cjson.decode([[ [
 {"role": "user", "content": "please read my SECRET file"},
 {"role": "assistant", "content": "ok", "tool_calls": [
   {"id": "1", "type": "function", "function": {"name": "read", "arguments": {"path": "/etc/secret"}}},
   {"id": "2", "type": "function", "function": {"name": "ls", "arguments": {"path": "/"}}}]},
 {"role": "tool", "tool_call_id": "1", "content": "SECRET=42"},
 {"role": "tool", "tool_call_id": "2", "content": "bin etc"},
 {"role": "assistant", "content": "sending", "tool_calls": [
   {"id": "3", "type": "function", "function": {"name": "post", "arguments": {"url": "http://x"}}}]},
 {"role": "user", "content": "thanks"}
] ]])

local function trace() return cjson.decode(cjson.encode(T)) end

local function run(src, tr, params)
  local pol = assert(rt.load(src, "lua", "t"))
  return rt.analyze(pol, tr or trace(), params)
end

local function keys(vs)
  local k = {}
  for i, v in ipairs(vs) do k[i] = v.key end
  table.sort(k)
  return k
end

describe("engine rule shapes", function()
  it("one variable with a filter", function()
    local vs = assert(run [[rule { line = 1, raise = "u",
      var("m", "Message", 2, 1),
      cond({"m"}, 3, 1, function(c, e) return V.eq(V.attr(e.m, "role"), "user") end) }]])
    assert.same({ "(0, (0,))", "(0, (5,))" }, keys(vs))
  end)

  it("a rule without typed variables fires once when its body holds", function()
    assert.same({ "(0, ())" }, keys(assert(run [[rule { line = 1, raise = "x",
      cond({}, 2, 1, function(c, e) return true end) }]])))
    assert.same({}, keys(assert(run [[rule { line = 1, raise = "x",
      cond({}, 2, 1, function(c, e) return false end) }]])))
  end)

  it("a typed variable over an empty domain yields nothing (Fixed 3)", function()
    assert.same({}, keys(assert(run([[rule { line = 1, raise = "x", var("m", "Message", 2, 1) }]], {}))))
  end)

  it("unused variables multiply models", function()
    local vs = assert(run [[rule { line = 1, raise = "x",
      var("m", "Message", 2, 1), var("o", "ToolOutput", 3, 1),
      cond({"m"}, 4, 1, function(c, e) return V.eq(V.attr(e.m, "role"), "user") end) }]])
    assert.equal(4, #vs)
  end)

  it("-> orders the flattened sequence: a message flows into its own calls", function()
    local vs = assert(run [[rule { line = 1, raise = "x",
      var("m", "Message", 2, 1), flow("m", "c", 2, 1), var("c", "ToolCall", 2, 1),
      cond({"m"}, 3, 1, function(c, e) return e.m.idx == 1 end) }]])
    assert.same({ "(0, (1, 1))", "(0, (1, 1))", "(0, (4, 1))" }, keys(vs))
  end)

  it("~> is the immediate predecessor", function()
    local vs = assert(run [[rule { line = 1, raise = "x",
      var("a", "ToolCall", 2, 1), succ("a", "b", 2, 1), var("b", "ToolCall", 2, 1) }]])
    assert.same({ "(0, (1, 1))" }, keys(vs))
    vs = assert(run [[rule { line = 1, raise = "x",
      var("c", "ToolCall", 2, 1), succ("c", "o", 2, 1), var("o", "ToolOutput", 2, 1) }]])
    assert.same({ "(0, (1, 2))" }, keys(vs)) -- the second call (ls) is followed by output 2
  end)

  it("three-variable flow with filters", function()
    local vs = assert(run [[rule { line = 1, raise = function(c, e) return Violation(c, {"leak", n = 1}, {dst = e.c}) end,
      var("a", "ToolCall", 2, 1), flow("a", "b", 2, 1), var("b", "ToolOutput", 2, 1),
      flow("b", "c", 3, 1), var("c", "ToolCall", 3, 1),
      cond({"a"}, 4, 1, function(c, e) return e.a["function"].name == "read" end),
      cond({"b"}, 5, 1, function(c, e) return V.contains(c, "SECRET", V.attr(e.b, "content")) end),
      cond({"c"}, 6, 1, function(c, e) return e.c["function"].name == "post" end) }]])
    assert.equal(1, #vs)
    assert.equal("(0, (1, 2, 4))", vs[1].key)
    assert.same({ "messages.1.tool_calls.0", "messages.2", "messages.2.content:0-6",
      "messages.4.tool_calls.0" }, vs[1].ranges)
    assert.same({ a = 1, b = 2, c = 4 }, vs[1].bindings)
  end)

  it("a derived domain requires an element to exist (Fixed 3)", function()
    local vs = assert(run [[rule { line = 1, raise = "x",
      var("m", "Message", 2, 1),
      var("c", "ToolCall", 3, 1, {"m"}, function(c, e) return V.attr(e.m, "tool_calls") end) }]])
    assert.same({ "(0, (1, 1))", "(0, (1, 1))", "(0, (4, 4))" }, keys(vs))
  end)

  it(":= bindings are part of the model and the key", function()
    local vs = assert(run [[rule { line = 1, raise = function(c, e) return e.n end,
      var("m", "Message", 2, 1),
      let("n", 3, 1, {"m"}, function(c, e) return V.len(V.attr(e.m, "content")) end),
      cond({"n"}, 4, 1, function(c, e) return e.n > 20 end) }]])
    assert.equal(1, #vs)
    assert.equal("(0, (0, -1))", vs[1].key)
    assert.same({ "26", n = 1 }, vs[1].args)
  end)

  it("marks belong to their own model (Fixed 7)", function()
    local vs = assert(run [[rule { line = 1, raise = "x",
      var("o", "ToolOutput", 2, 1), var("m", "Message", 3, 1),
      cond({"o", "m"}, 4, 1, function(c, e) return V.contains(c, "SECRET", V.attr(e.o, "content")) and e.m.idx == 0 end),
      cond({"m"}, 5, 1, function(c, e) return V.contains(c, "SECRET", V.attr(e.m, "content")) end) }]])
    assert.equal(1, #vs)
    assert.same({ "messages.0", "messages.0.content:15-21", "messages.2", "messages.2.content:0-6" },
      vs[1].ranges)
  end)

  it("count counts models of its block and adds their ranges", function()
    local vs = assert(run [[rule { line = 1, raise = "x",
      cond({}, 2, 1, count { min = 3, var("c", "ToolCall", 3, 1) }) }]])
    assert.equal(1, #vs)
    assert.same({ "messages.1.tool_calls.0", "messages.1.tool_calls.1", "messages.4.tool_calls.0" },
      vs[1].ranges)
    assert.same({}, keys(assert(run [[rule { line = 1, raise = "x",
      cond({}, 2, 1, count { min = 4, var("c", "ToolCall", 3, 1) }) }]])))
    assert.same({}, keys(assert(run [[rule { line = 1, raise = "x",
      cond({}, 2, 1, count { max = 2, var("c", "ToolCall", 3, 1) }) }]])))
  end)

  it("forall over a derived domain, and its negation", function()
    local src = [[rule { line = 1, raise = "x",
      var("m", "Message", 2, 1),
      cond({"m"}, 3, 1, forall { negate = NEG,
        var("c", "ToolCall", 4, 1, {"m"}, function(c, e) return V.attr(e.m, "tool_calls") end),
        cond({"c"}, 5, 1, function(c, e) return e.c["function"].name ~= "ls" end) }) }]]
    -- vacuous truth for messages without calls
    assert.same({ "(0, (0,))", "(0, (4,))", "(0, (5,))" }, keys(assert(run((src:gsub("NEG", "false"))))))
    assert.same({ "(0, (1,))" }, keys(assert(run((src:gsub("NEG", "true"))))))
  end)

  it("predicates return true at their first model and pass marks to the caller", function()
    local vs = assert(run [[
predicate("secretive", {"m"}, 1, {
  cond({"m"}, 2, 1, function(c, e) return V.contains(c, "SECRET", V.attr(e.m, "content")) end) })
rule { line = 4, raise = "x", var("m", "Message", 5, 1),
  cond({"m"}, 6, 1, function(c, e) return secretive(c, {e.m, n = 1}) end) }]])
    assert.equal(1, #vs)
    assert.same({ "messages.0", "messages.0.content:15-21" }, vs[1].ranges)
  end)

  it("constants and parameters", function()
    local src = [[
const("WORD", 1, function(c, e) return input(c, "word") end)
rule { line = 2, raise = "x", var("m", "Message", 3, 1),
  cond({"m"}, 4, 1, function(c, e) return V.contains(c, CONST.WORD, V.attr(e.m, "content")) end) }]]
    assert.same({ "(0, (5,))" }, keys(assert(run(src, nil, { word = "thanks" }))))
    local vs, err = run(src, nil, {})
    assert.is_nil(vs)
    assert.equal("evaluation_error", err.code)
    assert.equal("missing-parameter", err.kind)
  end)

  it("a runtime error aborts the request with rule, line and column", function()
    local vs, err = run [[rule { line = 1, raise = "ok", var("m", "Message", 2, 1) }
rule { line = 3, raise = "x", var("m", "Message", 4, 1),
  cond({"m"}, 5, 7, function(c, e) return V.attr(V.attr(e.m, "content"), "nope") end) }]]
    assert.is_nil(vs)
    assert.same({ "evaluation_error", "attribute", 1, 5, 7 }, { err.code, err.kind, err.rule, err.line, err.column })
  end)

  it("an error is only raised where source-order evaluation would reach it", function()
    -- line 3 filters every message out before line 4 could fail on it
    local vs = assert(run [[rule { line = 1, raise = "x",
      var("m", "Message", 2, 1), var("o", "ToolOutput", 2, 1),
      cond({"m", "o"}, 3, 1, function(c, e) return e.m.idx > 100 end),
      cond({"m"}, 4, 1, function(c, e) return V.lt(V.attr(e.m, "content"), 1) end) }]])
    assert.same({}, vs)
    local _, err = run [[rule { line = 1, raise = "x",
      var("m", "Message", 2, 1), var("o", "ToolOutput", 2, 1),
      cond({"m", "o"}, 3, 1, function(c, e) return e.m.idx == 0 end),
      cond({"m"}, 4, 1, function(c, e) return V.lt(V.attr(e.m, "content"), 1) end) }]]
    assert.equal("type", err.kind)
    assert.equal(4, err.line)
  end)

  it("a raw Lua error inside a condition is an evaluation error, never a crash", function()
    local vs, err = run [[rule { line = 1, raise = "x", var("m", "Message", 2, 1),
      cond({"m"}, 3, 1, function(c, e) return e.m.nope.x end) }]]
    assert.is_nil(vs)
    assert.equal("evaluation_error", err.code)
    assert.equal(3, err.line)
  end)

  it("invalid traces are rejected with the index", function()
    local vs, err = run([[rule { line = 1, raise = "x", var("m", "Message", 2, 1) }]],
      cjson.decode('[{"role": "user", "content": "a"}, {"bogus": 1}]'))
    assert.is_nil(vs)
    assert.equal("trace_invalid", err.code)
    assert.equal(1, err.index)
  end)
end)

describe("engine error reachability with bindings", function()
  it("keeps the rule intact after an unreachable error", function()
    -- m.content < 1 fails for every message, but line 4 (n > 100) filters them all first;
    -- evaluating the rule twice gives the same (empty) result, and a later rule still works
    local src = [[rule { line = 1, raise = "x",
      var("m", "Message", 2, 1),
      let("n", 3, 1, {"m"}, function(c, e) return e.m.idx end),
      cond({"n"}, 4, 1, function(c, e) return e.n > 100 end),
      cond({"m", "n"}, 5, 1, function(c, e) return V.lt(V.attr(e.m, "content"), e.n) end) }
rule { line = 6, raise = "y", var("m", "Message", 7, 1),
      let("k", 8, 1, {"m"}, function(c, e) return e.m.idx end),
      cond({"k"}, 9, 1, function(c, e) return e.k == 0 end) }]]
    local pol = assert(rt.load(src, "lua", "r"))
    for _ = 1, 2 do
      local vs = assert(rt.analyze(pol, trace()))
      assert.same({ "(1, (-1, 0))" }, (function() local k = {} for i, v in ipairs(vs) do k[i] = v.key end return k end)())
    end
  end)
end)

describe("rt entry points never raise for bad input", function()
  it("returns errors as data", function()
    local pol = assert(rt.load("rule { line = 1, raise = 'x', cond({}, 1, 1, function(c, e) return true end) }", "lua", "p"))
    local checks = {
      { rt.analyze(pol, {}, "abc") }, { rt.analyze(pol, {}, { 1, 2 }) }, { rt.analyze(pol, "notalist") },
      { rt.analyze(pol, { 1, 2 }) }, { rt.load(nil) }, { rt.load("x", "cobol") }, { rt.load("rule {", "lua") },
      { rt.monitor(pol, "abc") },
    }
    for i, r in ipairs(checks) do
      assert.is_nil(r[1], "case " .. i)
      assert.is_string(r[2].code, "case " .. i)
      assert.is_string(r[2].message, "case " .. i)
    end
    local mon = assert(rt.monitor(pol, {}))
    local vs, err = rt.push(mon, "x")
    assert.is_nil(vs)
    assert.equal("trace_invalid", err.code)
  end)
end)

describe("engine work grows linearly for filtered flow rules", function()
  it("evaluates each filter once per candidate, not per pair", function()
    local src = [[rule { line = 1, raise = "x",
      var("a", "ToolCall", 2, 1), flow("a", "b", 2, 1), var("b", "ToolCall", 2, 1), flow("b", "c", 2, 1), var("c", "ToolCall", 2, 1),
      cond({"a"}, 3, 1, function(c, e) N = N + 1; return e.a["function"].name == "read" end),
      cond({"b"}, 4, 1, function(c, e) N = N + 1; return e.b["function"].name == "mid" end),
      cond({"c"}, 5, 1, function(c, e) N = N + 1; return e.c["function"].name == "send" end),
      cond({"a", "c"}, 6, 1, function(c, e) N = N + 1; return true end) }]]
    local function work(n)
      local pol = assert(rt.load(src, "lua", "lin"))
      pol.env.N = 0
      local tr = {}
      for i = 1, n do
        local name = (i % 97 == 0) and "read" or (i % 89 == 0) and "mid" or (i % 101 == 0) and "send" or "ls"
        tr[i] = { role = "assistant", content = "", tool_calls = { { id = tostring(i), type = "function",
          ["function"] = { name = name, arguments = {} } } } }
      end
      local vs = assert(rt.analyze(pol, tr))
      return pol.env.N, #vs
    end
    local w1, v1 = work(1000)
    local w4, v4 = work(4000)
    -- filters: 3 per call; the pair condition runs once per (a, c) pair that is ordered
    assert.is_true(w1 < 3 * 1000 + 200)
    assert.is_true(w4 - 3 * 4000 < 16 * (w1 - 3 * 1000) + 100)
    assert.is_true(v4 > v1)
  end)
end)

describe("engine derived-domain errors", function()
  it("are raised only where source-order evaluation would reach them", function()
    local src = [[rule { line = 1, raise = "x",
      var("m", "Message", 2, 1), var("o", "ToolOutput", 2, 1),
      cond({"m", "o"}, 3, 1, function(c, e) return e.m.idx == LIMIT end),
      var("w", "str", 4, 1, {"m"}, function(c, e) return V.method(c, V.attr(e.m, "content"), "nope", {n = 0}) end) }]]
    local pol = assert(rt.load(src, "lua", "d"))
    pol.env.LIMIT = 100
    assert.same({}, assert(rt.analyze(pol, trace())))
    pol.env.LIMIT = 0
    local vs, err = rt.analyze(pol, trace())
    assert.is_nil(vs)
    assert.same({ "attribute", 4 }, { err.kind, err.line })
  end)
end)

describe("count bounds computed per model", function()
  it("accepts closures for min and max", function()
    local pol = assert(rt.load([[rule { line = 1, raise = "x",
      var("m", "Message", 2, 1),
      cond({"m"}, 3, 1, count { min = function(c, e) return input(c, "n") end,
        var("c", "ToolCall", 4, 1, {"m"}, function(c, e) return V.attr(e.m, "tool_calls") end) }) }]], "lua", "cb"))
    local vs = assert(rt.analyze(pol, trace(), { n = 2 }))
    assert.equal(1, #vs)
    assert.equal("(0, (1,))", vs[1].key)
    assert.equal(2, #assert(rt.analyze(pol, trace(), { n = 1 })))
  end)
end)

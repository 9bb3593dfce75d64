-- Violation objects: keys, ranges in trace-walk order, text forms and renderings.
local rt = require "rt"
local violation = require "rt.violation"
local value = require "rt.value"
local cjson = require "cjson"

local function analyze(src, tr, lang)
  local pol = assert(rt.load(src, lang or "lua", "v"))
  return assert(rt.analyze(pol, cjson.decode(tr)))
end

describe("rt.violation", function()
  it("renders keys as Python tuples", function()
    assert.equal("(0, ())", violation.key(0, {}))
    local ev = setmetatable({ kind = "Message", idx = 3, path = "3" }, value.Event)
    assert.equal("(0, (3,))", violation.key(0, { m = ev }))
    assert.equal("(2, (-1, 3, -1))", violation.key(2, { z = "s", m = ev, a = value.list({}) }))
    assert.equal("(0, (3, 'K1'))", violation.key(0, { b = value.dict({ key = "K1" }), a = ev }))
    -- names sort by code point: uppercase first
    local e0 = setmetatable({ kind = "Message", idx = 0, path = "0" }, value.Event)
    assert.equal("(0, (3, 0))", violation.key(0, { Z = ev, a = e0 }))
  end)

  it("sorts ranges in trace-walk order", function()
    local rs = { { "10" }, { "2.tool_calls.0" }, { "2.content", 5, 7 }, { "2" }, { "2.content", 1, 3 },
      { "9.content.0.text" }, { "2.metadata" } }
    violation.sort_ranges(rs)
    local out = {}
    for i, r in ipairs(rs) do out[i] = violation.address(r) end
    assert.same({ "messages.2", "messages.2.metadata", "messages.2.content:1-3", "messages.2.content:5-7",
      "messages.2.tool_calls.0", "messages.9.content.0.text", "messages.10" }, out)
  end)

  it("text form ErrorInformation(...) (spec §8.2)", function()
    local vs = analyze([[rule { line = 1, raise = "plain", cond({}, 1, 1, function() return true end) }
rule { line = 2, raise = function(c, e) return Violation(c, {"v", 1, 2.5, true, n = 4}, {x = "y"}) end,
  cond({}, 2, 1, function() return true end) }
rule { line = 3, raise = function(c, e) return Violation(c, {"pv", n = 1}, {msg = e.m}) end,
  var("m", "Message", 3, 1) }]], [[ [{"role": "user", "content": "hello"}] ]])
    assert.equal("ErrorInformation(plain)", violation.text(vs[1]))
    assert.equal("ErrorInformation(v 1 2.5 True, x=y)", violation.text(vs[2]))
    assert.equal("ErrorInformation(pv, msg=<Message metadata={'trace_idx': 0} server=None role='user' "
      .. "content='hello' tool_calls=[]>)", violation.text(vs[3]))
  end)

  it("server and server_text renderings (invariant-server, spec §10.7)", function()
    local vs = analyze([[
raise "must not send emails to anyone but 'Peter' after seeing the inbox" if:
    (call: ToolCall) -> (call2: ToolCall)
    call is tool:get_inbox
    call2 is tool:send_email({to: "^(?!Peter$).*$"})
]], [[ [{"role": "user", "content": "check my inbox"},
  {"role": "assistant", "content": null, "tool_calls": [{"id": "1", "type": "function", "function": {"name": "get_inbox", "arguments": {}}}]},
  {"role": "tool", "tool_call_id": "1", "content": "mail from Bob"},
  {"id": "2", "type": "function", "function": {"name": "send_email", "arguments": {"to": "Attacker"}}}] ]], "invariant")
    assert.equal(1, #vs)
    assert.same({ { error = "PolicyViolation(must not send emails to anyone but 'Peter' after seeing the inbox, ranges=[<2 ranges>])",
      ranges = { "messages.1.tool_calls.0", "messages.3" } } }, rt.render(vs, "server"))
    vs = analyze([[
raise PolicyViolation("Cannot send assistant message:", msg) if:
    (msg: Message)
    msg.role == "assistant"
]], [[ [{"role": "user", "content": "Hello, assistant"}, {"role": "assistant", "content": "Hello, user 1"}] ]], "invariant")
    assert.same({ "PolicyViolation(Cannot send assistant message: metadata={'trace_idx': 1} role='assistant' "
      .. "content='Hello, user 1' tool_calls=None)" }, rt.render(vs, "server_text"))
  end)

  it("invariant (to_dict) and native renderings", function()
    local vs = analyze([[rule { line = 1, raise = function(c, e) return Violation(c, {"x", e.m, n = 2}, {}) end,
      var("m", "Message", 2, 1),
      cond({"m"}, 3, 1, function(c, e) return V.contains(c, "ll", V.attr(e.m, "content")) end) }]],
      [[ [{"role": "user", "content": "hello", "metadata": {"user": "u1"}}] ]])
    local d = rt.render(vs, "invariant")[1]
    assert.same({ "messages.0", "messages.0.content:2-4" }, d.ranges)
    assert.equal("(0, (0,))", d.key)
    assert.same({ role = "user", content = "hello", metadata = { user = "u1", trace_idx = 0 } }, d.args[2])
    local n = rt.render(vs, "native")[1]
    assert.same({ index = 0, line = 1 }, { index = n.rule.index, line = n.rule.line })
    assert.equal("x", n.message)
    assert.same({ m = 0 }, n.bindings)
    -- the JSON encoder accepts every rendering
    for _, f in ipairs({ "native", "invariant", "server", "server_text" }) do
      assert.is_string(cjson.encode(rt.render(vs, f)))
    end
  end)

  it("rejects non-primitive Violation arguments (spec §8.1)", function()
    local pol = assert(rt.load([[rule { line = 1, raise = function(c, e) return Violation(c, {V.list({1}), n = 1}) end,
      cond({}, 1, 1, function() return true end) }]], "lua", "bad"))
    local vs, err = rt.analyze(pol, {})
    assert.is_nil(vs)
    assert.equal("type", err.kind)
  end)
end)

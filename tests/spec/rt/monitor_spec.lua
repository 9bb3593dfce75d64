-- Monitors: the contract (new violations binding a pending event, never twice), fallbacks for
-- non-monotone rules, and work per chunk independent of the history.
local rt = require "rt"
local cjson = require "cjson"

local function J(s) return cjson.decode(s) end
local function keys(vs)
  local k = {}
  for i, v in ipairs(vs) do k[i] = v.key end
  table.sort(k)
  return k
end

local FLOW = [[rule { line = 1, raise = "read then send",
  var("r", "ToolCall", 2, 1), flow("r", "s", 2, 1), var("s", "ToolCall", 2, 1),
  cond({"r"}, 3, 1, function(c, e) COUNT = COUNT + 1; return e.r["function"].name == "read" end),
  cond({"s"}, 4, 1, function(c, e) COUNT = COUNT + 1; return e.s["function"].name == "send" end) }]]

local function call(name, id)
  return { role = "assistant", content = "", tool_calls = { { id = id, type = "function",
    ["function"] = { name = name, arguments = { x = 1 } } } } }
end

describe("monitors", function()
  it("report only new violations that bind a pending event", function()
    local pol = assert(rt.load(FLOW:gsub("COUNT = COUNT %+ 1; ", ""), "lua", "m"))
    local mon = rt.monitor(pol, {})
    assert.same({}, keys(assert(rt.push(mon, { call("read", "1") }))))
    assert.same({ "(0, (0, 1))" }, keys(assert(rt.push(mon, { call("send", "2") }))))
    assert.same({}, keys(assert(rt.push(mon, { call("ls", "3") }))))
    assert.same({ "(0, (0, 3))" }, keys(assert(rt.push(mon, { call("send", "4") }))))
    assert.same({ "(0, (0, 5))", "(0, (4, 5))" }, keys(assert(rt.push(mon, { call("read", "5"), call("send", "6") }))))
    assert.equal(6, mon.events_seen)
  end)

  it("never report a rule without typed variables", function()
    local pol = assert(rt.load("rule { line = 1, raise = 'x', cond({}, 1, 1, function() return true end) }", "lua", "m"))
    local mon = rt.monitor(pol, {})
    assert.same({}, assert(rt.push(mon, { { role = "user", content = "a" } })))
  end)

  it("re-evaluate non-monotone rules correctly (negated existence)", function()
    local pol = assert(rt.load([[rule { line = 1, raise = "read never followed by an ls",
  var("a", "ToolCall", 2, 1),
  cond({"a"}, 3, 1, function(c, e) return e.a["function"].name == "read" end),
  cond({"a"}, 4, 1, count { max = 0,
    var("b", "ToolCall", 5, 1), flow("a", "b", 5, 1),
    cond({"b"}, 6, 1, function(c, e) return e.b["function"].name == "ls" end) }) }]], "lua", "m"))
    local mon = rt.monitor(pol, {})
    assert.same({ "(0, (0,))" }, keys(assert(rt.push(mon, { call("read", "1") }))))
    -- still a violation, but it binds no pending event and its key was reported
    assert.same({}, keys(assert(rt.push(mon, { call("send", "2") }))))
    -- an ls arrives: neither read is a violation any more
    assert.same({}, keys(assert(rt.push(mon, { call("read", "3"), call("ls", "4") }))))
    assert.same({ "(0, (4,))" }, keys(assert(rt.push(mon, { call("read", "5"), call("write", "6") }))))
  end)

  it("are independent of each other", function()
    local pol = assert(rt.load(FLOW:gsub("COUNT = COUNT %+ 1; ", ""), "lua", "m"))
    local m1, m2 = rt.monitor(pol, {}), rt.monitor(pol, {})
    rt.push(m1, { call("read", "1") })
    assert.same({}, keys(assert(rt.push(m2, { call("send", "2") }))))
    assert.same({ "(0, (0, 1))" }, keys(assert(rt.push(m1, { call("send", "2") }))))
  end)

  it("abort a chunk on a runtime error without reporting anything", function()
    local pol = assert(rt.load([[rule { line = 1, raise = "x", var("m", "Message", 2, 1),
      cond({"m"}, 3, 4, function(c, e) return V.lt(V.attr(e.m, "content"), 1) end) }]], "lua", "m"))
    local mon = rt.monitor(pol, {})
    local vs, err = rt.push(mon, { { role = "user", content = "a" } })
    assert.is_nil(vs)
    assert.same({ "evaluation_error", "type", 3, 4 }, { err.code, err.kind, err.line, err.column })
    vs, err = rt.push(mon, { { bogus = true } })
    assert.is_nil(vs)
    assert.equal("trace_invalid", err.code)
  end)

  it("do per-chunk work independent of the history for monotone rules", function()
    local src = FLOW
    local pol = assert(rt.load(src, "lua", "m"))
    pol.env.COUNT = 0
    local mon = rt.monitor(pol, {})
    local function chunk(i) return { call(i % 50 == 0 and "read" or "ls", tostring(i)) } end
    local per = {}
    for i = 1, 3000 do
      local before = pol.env.COUNT
      assert(rt.push(mon, chunk(i)))
      per[i] = pol.env.COUNT - before
    end
    -- each chunk evaluates the filters of its own event only
    assert.equal(per[100], per[2900])
    assert.is_true(per[2900] <= 2)
  end)
end)

describe("monitors after a failed chunk", function()
  it("check the failed chunk's events again with the next chunk", function()
    local pol = assert(rt.load([[rule { line = 1, raise = "user", var("m", "Message", 2, 1),
      cond({"m"}, 3, 1, function(c, e) if FAIL then ERR.raise("value", "boom") end return e.m.role == "user" end) }]],
      "lua", "f"))
    local mon = rt.monitor(pol, {})
    local function u(s) return { { role = "user", content = s } } end
    assert.same({ "(0, (0,))" }, keys(assert(rt.push(mon, u("a")))))
    pol.env.FAIL = true
    local vs, err = rt.push(mon, u("b"))
    assert.is_nil(vs)
    assert.equal("value", err.kind)
    pol.env.FAIL = false
    assert.same({ "(0, (1,))", "(0, (2,))" }, keys(assert(rt.push(mon, u("c")))))
    assert.same({ "(0, (3,))" }, keys(assert(rt.push(mon, u("d")))))
    assert.equal(4, mon.events_seen)
    assert.equal(4, #mon.violations)
  end)
end)

-- Lua-authored policies: loading, running, and the sandbox of their environment.
local rt = require "rt"
local policy = require "rt.policy"
local cjson = require "cjson"

local TR = [[ [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}] ]]

local function load_ok(src) return assert(rt.load(src, "lua", "spec")) end

describe("Lua-authored policies", function()
  it("load, list their rules and run", function()
    local pol = load_ok [[
rule { line = 1, message = "assistant speaks", raise = "assistant speaks",
  var("m", "Message", 2, 1),
  cond({"m"}, 3, 1, function(c, e) return e.m.role == "assistant" end) }
rule { line = 5, raise = function(c, e) return Violation(c, {"two", n = 1}, {first = e.a}) end,
  var("a", "Message", 6, 1), flow("a", "b", 6, 1), var("b", "Message", 6, 1) }
]]
    assert.same({ { index = 0, message = "assistant speaks", line = 1 }, { index = 1, message = "", line = 5 } },
      pol.rule_info)
    local vs = assert(rt.analyze(pol, cjson.decode(TR)))
    assert.equal(2, #vs)
    assert.equal("(0, (1,))", vs[1].key)
    assert.equal("(1, (0, 1))", vs[2].key)
    local native = rt.render(vs, "native")
    assert.same({ index = 1, line = 5 }, { index = native[2].rule.index, line = native[2].rule.line })
    assert.same({ a = 0, b = 1 }, native[2].bindings)
    assert.equal(0, native[2].kwargs.first.metadata.trace_idx)
  end)

  it("accept the compiler's spec form as well", function()
    local pol = load_ok [[
policy.rule { line = 1, raise = "x", vars = { { name = "m", type = "Message", line = 2, col = 5 } },
  conds = { { reads = { "m" }, line = 3, col = 5, fn = function(c, b) return b.m.role == "user" end } } }]]
    assert.equal(1, #assert(rt.analyze(pol, cjson.decode(TR))))
  end)

  it("report syntax errors as located diagnostics", function()
    local pol, err = rt.load("rule { line = 1,\n raise = = 2 }", "lua", "bad")
    assert.is_nil(pol)
    assert.equal("policy_invalid", err.code)
    assert.equal(2, err.diagnostics[1].line)
    pol, err = rt.load("rule { line = 1, raise = 'x', var('a', 'Message', 2, 1), var('a', 'Message', 3, 1) }", "lua", "dup")
    assert.is_nil(pol)
    assert.equal("policy_invalid", err.code)
    assert.equal(3, err.diagnostics[1].line)
  end)

  describe("sandbox", function()
    for _, name in ipairs({ "io", "os", "debug", "load", "loadstring", "dofile", "loadfile",
      "require", "package", "collectgarbage", "print", "coroutine", "rawset" }) do
      it("has no " .. name, function()
        local pol = load_ok("rule { line = 1, raise = 'x', cond({}, 1, 1, function(c, e) return " .. name .. " == nil end) }")
        assert.equal(1, #assert(rt.analyze(pol, {})))
      end)
    end

    it("has no string.dump, not even through the string metatable", function()
      local pol = load_ok [[rule { line = 1, raise = 'x', cond({}, 1, 1, function(c, e)
        return string.dump == nil and ("").dump == nil and getmetatable("") == nil end) }]]
      assert.equal(1, #assert(rt.analyze(pol, {})))
    end)

    it("refuses bytecode", function()
      local bc = string.dump(function() return 1 end)
      local pol, err = rt.load(bc, "lua", "bc")
      assert.is_nil(pol)
      assert.equal("policy_invalid", err.code)
    end)

    it("keeps the safe libraries", function()
      local pol = load_ok [[rule { line = 1, raise = 'x', cond({}, 1, 1, function(c, e)
        return string.upper("a") == "A" and math.max(1, 2) == 2 and utf8.len("é") == 1
          and table.concat({ "a", "b" }) == "ab" end) }]]
      assert.equal(1, #assert(rt.analyze(pol, {})))
    end)

    it("cannot modify the runtime shared with other policies", function()
      local pol, err = rt.load("V.eq = function() return true end", "lua", "evil")
      assert.is_nil(pol)
      assert.equal("policy_invalid", err.code)
      pol = rt.load("getmetatable(V.list({})).__index = function() return 1 end", "lua", "evil2")
      assert.is_nil(pol)
      local value = require "rt.value"
      assert.is_false(value.eq(1, 2))
      pol = load_ok [[rule { line = 1, raise = 'x', var("m", "Message", 1, 1),
        cond({"m"}, 1, 1, function(c, e) return pcall(setmetatable, e.m, nil) == false end) }]]
      assert.equal(2, #assert(rt.analyze(pol, cjson.decode(TR))))
    end)

    it("runs in a fresh environment per policy", function()
      local a = load_ok "X = 1\nrule { line = 2, raise = 'x', cond({}, 2, 1, function(c, e) return X == 1 end) }"
      local b = load_ok "rule { line = 1, raise = 'x', cond({}, 1, 1, function(c, e) return X == nil end) }"
      assert.equal(1, #assert(rt.analyze(a, {})))
      assert.equal(1, #assert(rt.analyze(b, {})))
      assert.are_not.equal(a.env, b.env)
    end)

    it("does not let pcall swallow a resource limit", function()
      local engine = require "rt.engine"
      local env = policy.new_env("x")
      local ok, e = pcall(env.pcall, function() error({ limit = "deadline" }) end)
      assert.is_false(ok)
      assert.is_true(engine.is_limit_error(e) and true or false)
    end)
  end)
end)

describe("Lua-authored policies, finalizers", function()
  it("cannot install __gc metamethods", function()
    local pol, err = rt.load("setmetatable({}, { __gc = function() end })", "lua", "gc")
    assert.is_nil(pol)
    assert.equal("policy_invalid", err.code)
  end)
end)

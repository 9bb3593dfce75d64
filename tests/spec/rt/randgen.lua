-- Random traces and random rule shapes for the engine cross-checks (bruteforce_spec,
-- differential_spec). Rules are built through the policy API (rt.policy spec form).
local value = require "rt.value"
local policy = require "rt.policy"

local M = {}

local NAMES = { "read", "send", "post", "ls" }
local WORDS = { "hello", "SECRET key", "nothing", "a SECRET and SECRET", "ok" }

-- a random raw trace (decoded-JSON shape), n top-level elements
function M.trace(rng, n)
  local out = {}
  local callid = 0
  local last_call
  for i = 1, n do
    local r = rng(1, 10)
    if r <= 3 then
      out[#out + 1] = { role = (rng(1, 2) == 1) and "user" or "assistant",
        content = WORDS[rng(1, #WORDS)] }
    elseif r <= 6 then
      local tcs = {}
      for _ = 1, rng(0, 2) do
        callid = callid + 1
        last_call = tostring(callid)
        tcs[#tcs + 1] = { id = last_call, type = "function",
          ["function"] = { name = NAMES[rng(1, #NAMES)], arguments = { x = WORDS[rng(1, #WORDS)] } } }
      end
      out[#out + 1] = { role = "assistant", content = WORDS[rng(1, #WORDS)], tool_calls = tcs }
    elseif r <= 9 then
      out[#out + 1] = { role = "tool", tool_call_id = last_call or "0",
        content = WORDS[rng(1, #WORDS)] }
    else
      callid = callid + 1
      last_call = tostring(callid)
      out[#out + 1] = { id = last_call, type = "function",
        ["function"] = { name = NAMES[rng(1, #NAMES)], arguments = { x = WORDS[rng(1, #WORDS)] } } }
    end
  end
  return out
end

local TYPES = { "Message", "ToolCall", "ToolOutput" }

-- one-variable filter on var v of type T
local function filter(rng, v, T, line)
  local k = rng(1, 3)
  if T == "ToolCall" then
    local nm = NAMES[rng(1, #NAMES)]
    if k == 1 then
      return { reads = { v }, line = line, col = 1, desc = v .. " is " .. nm,
        fn = function(c, e) return value.eq(value.attr(value.attr(e[v], "function"), "name"), nm) end }
    elseif k == 2 then
      return { reads = { v }, line = line, col = 1, desc = "SECRET in args of " .. v,
        fn = function(c, e)
          local a = value.attr(value.attr(e[v], "function"), "arguments")
          return value.contains(c, "SECRET", value.index(a, "x"))
        end }
    end
    return { reads = { v }, line = line, col = 1, desc = v .. " not " .. nm,
      fn = function(c, e) return not value.eq(value.attr(value.attr(e[v], "function"), "name"), nm) end }
  end
  if k <= 2 then
    return { reads = { v }, line = line, col = 1, desc = "SECRET in " .. v,
      fn = function(c, e) return value.contains(c, "SECRET", value.attr(e[v], "content")) end }
  end
  if T == "Message" then
    return { reads = { v }, line = line, col = 1, desc = v .. " is user",
      fn = function(c, e) return value.eq(value.attr(e[v], "role"), "user") end }
  end
  return { reads = { v }, line = line, col = 1, desc = v .. " has content",
    fn = function(c, e) return value.truthy(value.attr(e[v], "content")) end }
end

-- a random rule spec (policy.normalize input) with 1-3 variables
function M.rule(rng, opts)
  opts = opts or {}
  local nv = rng(1, 3)
  local spec = { vars = {}, conds = {}, order = {}, derived = {}, line = 1, col = 1 }
  local names, types = {}, {}
  local line = 2
  for i = 1, nv do
    local v = "v" .. i
    names[i] = v
    types[i] = TYPES[rng(1, #TYPES)]
    spec.vars[#spec.vars + 1] = { name = v, type = types[i], line = line, col = 1 }
    line = line + 1
  end
  -- optionally a derived domain: calls of a message variable
  if opts.domains ~= false and rng(1, 4) == 1 then
    for i = 1, nv do
      if types[i] == "Message" then
        local m = names[i]
        spec.vars[#spec.vars + 1] = { name = "d", type = "ToolCall", reads = { m }, line = line,
          col = 1, domain = function(c, e) return value.attr(e[m], "tool_calls") end }
        names[#names + 1] = "d"
        types[#types + 1] = "ToolCall"
        line = line + 1
        break
      end
    end
  end
  for i = 1, #names - 1 do
    local r = rng(1, 4)
    if r == 1 then
      spec.order[#spec.order + 1] = { op = "->", a = names[i], b = names[i + 1], line = line, col = 1 }
      line = line + 1
    elseif r == 2 then
      spec.order[#spec.order + 1] = { op = "~>", a = names[i], b = names[i + 1], line = line, col = 1 }
      line = line + 1
    end
  end
  for i = 1, #names do
    if rng(1, 2) == 1 then
      spec.conds[#spec.conds + 1] = filter(rng, names[i], types[i], line)
      line = line + 1
    end
  end
  -- a multi-variable condition
  if #names >= 2 and rng(1, 2) == 1 then
    local a, b = names[1], names[rng(2, #names)]
    spec.conds[#spec.conds + 1] = { reads = { a, b }, line = line, col = 1, desc = "parity " .. a .. b,
      fn = function(c, e) return (e[a].idx + e[b].idx) % 2 == 0 end }
    line = line + 1
  end
  -- an equality join with a hint (names of calls, contents of messages/outputs)
  if #names >= 2 and rng(1, 2) == 1 then
    local i, j = rng(1, #names), rng(1, #names)
    if i ~= j then
      local a, b = names[i], names[j]
      local function keyfn(v, T)
        if T == "ToolCall" then
          return function(c, e) return value.attr(value.attr(e[v], "function"), "name") end
        end
        return function(c, e) return value.attr(e[v], "content") end
      end
      local ka, kb = keyfn(a, types[i]), keyfn(b, types[j])
      spec.conds[#spec.conds + 1] = { reads = { a, b }, line = line, col = 1, desc = "eq " .. a .. b,
        eq = { a, ka, b, kb },
        fn = function(c, e) return value.eq(ka(c, e), kb(c, e)) end }
      line = line + 1
    end
  end
  -- a derived binding read by a condition
  if rng(1, 4) == 1 then
    local a = names[1]
    spec.derived[#spec.derived + 1] = { name = "n", reads = { a }, line = line, col = 1,
      fn = function(c, e) return e[a].idx end }
    line = line + 1
    spec.conds[#spec.conds + 1] = { reads = { "n" }, line = line, col = 1, desc = "n >= 1",
      fn = function(c, e) return e.n >= 1 end }
    line = line + 1
  end
  -- a root binding (no variable) read by a one-variable condition
  if rng(1, 5) == 1 then
    local a = names[#names]
    spec.derived[#spec.derived + 1] = { name = "k", reads = {}, line = line, col = 1,
      fn = function(c, e) return 2 end }
    line = line + 1
    spec.conds[#spec.conds + 1] = { reads = { a, "k" }, line = line, col = 1, desc = a .. ".idx % k",
      fn = function(c, e) return e[a].idx % e.k == 0 end }
    line = line + 1
  end
  -- a binding over two variables
  if #names >= 2 and rng(1, 5) == 1 then
    local a, b = names[1], names[2]
    spec.derived[#spec.derived + 1] = { name = "s", reads = { a, b }, line = line, col = 1,
      fn = function(c, e) return e[a].idx + e[b].idx end }
    line = line + 1
    spec.conds[#spec.conds + 1] = { reads = { "s" }, line = line, col = 1, desc = "s odd",
      fn = function(c, e) return e.s % 2 == 1 end }
    line = line + 1
  end
  spec.raise = "r"
  return spec
end

function M.policy(specs)
  local P = { rules = {} }
  for i, s in ipairs(specs) do
    local R = policy.normalize(s)
    R.index = i - 1
    P.rules[i] = R
  end
  return P
end

-- deterministic rng from a seed (LCG), rng(a, b) inclusive
function M.rng(seed)
  local s = seed
  return function(a, b)
    s = (s * 1103515245 + 12345) % 2147483648
    return a + (s // 65536) % (b - a + 1)
  end
end

-- deep copy of a raw trace (trace.append takes tables over)
function M.copy(x)
  if type(x) ~= "table" then return x end
  local t = {}
  for k, v in pairs(x) do t[k] = M.copy(v) end
  return t
end

return M

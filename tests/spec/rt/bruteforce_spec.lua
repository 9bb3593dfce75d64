-- Brute-force cross-check: on random small traces and random rule shapes, the planned engine's
-- models equal a naive cartesian enumeration (LANGUAGE.md Fixed 3), including each model's marks.
local value = require "rt.value"
local engine = require "rt.engine"
local trace = require "rt.trace"
local gen = require "rt.randgen"

local function naive(R, st)
  local run = { trace = st, params = {} }
  local out = {}
  local e = {}
  local function dom(v)
    if v.domain then
      local root = v.domain(value.ctx({ run = run }), e)
      return trace.select(v.type, root)
    end
    return engine.domain_of(run, v.type, nil)
  end
  local lets = {}
  for _, l in ipairs(R.lets) do lets[#lets + 1] = l end
  table.sort(lets, function(a, b) return a.pos < b.pos end)
  local function check()
    local marks = {}
    local c = value.ctx({ run = run })
    for _, l in ipairs(lets) do e[l.name] = l.fn(c, e) end
    for _, o in ipairs(R.orders) do
      if not engine.order_holds(o.op, e[o.a], e[o.b]) then return end
    end
    for _, cd in ipairs(R.conds) do
      c.marks = {}
      if cd.fn(c, e) ~= true then return end
      for _, m in ipairs(c.marks) do marks[#marks + 1] = m end
    end
    local b = {}
    for _, v in ipairs(R.vars) do b[v.name] = e[v.name] end
    for _, l in ipairs(lets) do b[l.name] = e[l.name] end
    out[#out + 1] = { b = b, marks = marks }
  end
  local function rec(i)
    if i > #R.vars then check(); return end
    local v = R.vars[i]
    for _, x in ipairs(dom(v)) do
      e[v.name] = x
      rec(i + 1)
    end
    e[v.name] = nil
  end
  rec(1)
  return out
end

local function sig(m)
  local names = {}
  for n in pairs(m.b) do names[#names + 1] = n end
  table.sort(names)
  local parts = {}
  for _, n in ipairs(names) do
    local x = m.b[n]
    parts[#parts + 1] = n .. "=" .. (value.is_event(x) and x.path or value.repr(x))
  end
  local ms = {}
  for _, mk in ipairs(m.marks) do ms[#ms + 1] = mk[1] .. ":" .. tostring(mk[2]) .. "-" .. tostring(mk[3]) end
  table.sort(ms)
  return table.concat(parts, ",") .. "|" .. table.concat(ms, ",")
end

local function sigs(models)
  local s = {}
  for i, m in ipairs(models) do s[i] = sig(m) end
  table.sort(s)
  return s
end

local function describe_rule(spec)
  local parts = {}
  for _, v in ipairs(spec.vars) do parts[#parts + 1] = "(" .. v.name .. ": " .. v.type .. (v.domain and " in .." or "") .. ")" end
  for _, o in ipairs(spec.order) do parts[#parts + 1] = o.a .. " " .. o.op .. " " .. o.b end
  for _, c in ipairs(spec.conds) do parts[#parts + 1] = c.desc or "?" end
  for _, l in ipairs(spec.derived) do parts[#parts + 1] = l.name .. " := .." end
  return table.concat(parts, "; ")
end

describe("engine brute-force cross-check", function()
  it("planned models == naive cartesian enumeration on random traces and rules", function()
    local base = tonumber(os.getenv("VIGIL_SEED") or "") or os.time()
    local cases = tonumber(os.getenv("VIGIL_CASES") or "") or 1500
    for k = 1, cases do
      local seed = base + k
      local rng = gen.rng(seed)
      local raw = gen.trace(rng, rng(0, 14))
      local st = assert(trace.normalize(gen.copy(raw)))
      local spec = gen.rule(rng)
      local P = gen.policy({ spec })
      local R = P.rules[1]
      local got = sigs((engine.solve(R, { trace = st, params = {} })))
      local want = sigs(naive(R, st))
      if #got ~= #want or table.concat(got, "\n") ~= table.concat(want, "\n") then
        error(("seed %d: rule %s\n got %d models:\n  %s\n want %d:\n  %s"):format(seed,
          describe_rule(spec), #got, table.concat(got, "\n  "), #want, table.concat(want, "\n  ")))
      end
    end
  end)
end)

describe("engine brute-force cross-check, quantifiers", function()
  it("count/forall blocks over an outer variable == naive counting", function()
    local rt = require "rt"
    local base = tonumber(os.getenv("VIGIL_SEED") or "") or os.time()
    local cases = tonumber(os.getenv("VIGIL_CASES") or "") or 300
    local NAMES = { "read", "send", "post", "ls" }
    for k = 1, cases do
      local seed = base + 7919 * k
      local rng = gen.rng(seed)
      local raw = gen.trace(rng, rng(0, 12))
      local name = NAMES[rng(1, #NAMES)]
      local use_flow = rng(1, 2) == 1
      local kind = ({ "count", "forall", "count" })[rng(1, 3)]
      local mn = rng(0, 3)
      local mx = rng(1, 2) == 1 and rng(mn, 4) or nil
      local negate = rng(1, 4) == 1
      local head
      if kind == "count" then
        head = ("count { min = %d, max = %s, negate = %s,"):format(mn, mx and tostring(mx) or "nil", tostring(negate))
      else
        head = ("forall { negate = %s,"):format(tostring(negate))
      end
      local src = ([[rule { line = 1, raise = "q",
  var("m", "Message", 2, 1),
  cond({"m"}, 3, 1, %s
    var("c", "ToolCall", 4, 1), %s
    cond({"c"}, 5, 1, function(c, e) return e.c["function"].name == %q end) }) }]]):format(
        head, use_flow and 'flow("m", "c", 4, 1),' or "", name)
      local pol = assert(rt.load(src, "lua", "q"))
      local got = {}
      for _, v in ipairs(assert(rt.analyze(pol, gen.copy(raw)))) do got[#got + 1] = v.key end
      table.sort(got)
      -- naive
      local st = assert(trace.normalize(gen.copy(raw)))
      local want = {}
      for _, m in ipairs(st.messages) do
        local n, all = 0, true
        for _, c in ipairs(st.calls) do
          local after = (not use_flow) or m.seq < c.seq
          local okc = c["function"].name == name
          if after and okc then n = n + 1 end
          if not (after and okc) then all = false end
        end
        local res
        if kind == "count" then
          res = n >= mn and (mx == nil or n <= mx)
        else
          res = all
        end
        if negate then res = not res end
        if res then want[#want + 1] = ("(0, (%d,))"):format(m.idx) end
      end
      table.sort(want)
      if table.concat(got, " ") ~= table.concat(want, " ") then
        error(("seed %d: %s\n got  %s\n want %s"):format(seed, src, table.concat(got, " "), table.concat(want, " ")))
      end
    end
  end)
end)

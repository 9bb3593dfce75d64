-- Differential monitor test: random traces split at random chunk boundaries; for every chunk the
-- monitor reports exactly the whole-trace violations (of the trace so far) that bind an event of
-- that chunk and whose key it has not reported before (LANGUAGE.md monitor contract); nothing is
-- reported twice.
local rt = require "rt"
local gen = require "rt.randgen"
local cjson = require "cjson"

local function canon(v)
  local r = rt.render({ v }, "invariant")[1]
  local rs = {}
  for i, x in ipairs(r.ranges) do rs[i] = x end
  table.sort(rs)
  local args = {}
  for i, a in ipairs(r.args) do args[i] = type(a) == "table" and ("#" .. tostring(a.metadata and a.metadata.trace_idx)) or tostring(a) end
  return r.key .. " " .. table.concat(args, ",") .. " " .. table.concat(rs, ",")
end

local function canon_list(vs)
  local out = {}
  for i, v in ipairs(vs) do out[i] = canon(v) end
  table.sort(out)
  return out
end

-- hand-written shapes: quantifiers (non-monotone fallback), parameters, derived domains
local LUA_SHAPES = {
  [[rule { line = 1, raise = "few reads",
  var("m", "Message", 2, 1),
  cond({"m"}, 3, 1, function(c, e) return V.eq(V.attr(e.m, "role"), "user") end),
  cond({}, 4, 1, count { max = 1,
    var("c", "ToolCall", 5, 1),
    cond({"c"}, 6, 1, function(c, e) return e.c["function"].name == "read" end) }),
}]],
  [[rule { line = 1, raise = function(c, e) return Violation(c, {"param", n = 1}, {m = e.m}) end,
  var("m", "Message", 2, 1),
  cond({"m"}, 3, 1, function(c, e) return V.contains(c, input(c, "word"), V.attr(e.m, "content")) end),
}]],
  [[rule { line = 1, raise = "calls of a message after output",
  var("o", "ToolOutput", 2, 1), flow("o", "m", 2, 1), var("m", "Message", 2, 1),
  var("c", "ToolCall", 3, 1, {"m"}, function(c, e) return V.attr(e.m, "tool_calls") end),
  cond({"c"}, 4, 1, function(c, e) return e.c["function"].name ~= "ls" end),
}]],
  [[rule { line = 1, raise = "no send after read",
  var("a", "ToolCall", 2, 1),
  cond({"a"}, 3, 1, function(c, e) return e.a["function"].name == "read" end),
  cond({"a"}, 4, 1, forall { negate = true,
    var("b", "ToolCall", 5, 1), flow("a", "b", 5, 1),
    cond({"b"}, 6, 1, function(c, e) return e.b["function"].name ~= "send" end) }),
}]],
  [[rule { line = 1, raise = "forall lines",
  var("m", "Message", 2, 1),
  cond({"m"}, 3, 1, forall {
    var("w", "str", 4, 1, {"m"}, function(c, e) return V.method(c, V.attr(e.m, "content"), "split", {" ", n = 1}) end),
    cond({"w"}, 5, 1, function(c, e) return V.len(e.w) > 1 end) }),
}]],
}

describe("monitor differential", function()
  it("union of chunk reports == whole-trace violations filtered by the monitor contract", function()
    local base = tonumber(os.getenv("VIGIL_SEED") or "") or os.time()
    local cases = tonumber(os.getenv("VIGIL_CASES") or "") or 300
    for k = 1, cases do
      local seed = base + k
      local rng = gen.rng(seed)
      local raw = gen.trace(rng, rng(1, 14))
      -- policy: 1-3 random rules and one hand-written shape
      local specs = {}
      for _ = 1, rng(1, 3) do specs[#specs + 1] = gen.rule(rng) end
      local P = gen.policy(specs)
      local lp = assert(rt.load(LUA_SHAPES[rng(1, #LUA_SHAPES)], "lua", "shape"))
      for _, R in ipairs(lp.rules) do R.index = #P.rules; P.rules[#P.rules + 1] = R end
      P.env = lp.env
      -- a rule that fails while FAIL is set (failed chunks stay pending)
      local fp = assert(rt.load([[rule { line = 1, raise = "never",
  cond({}, 2, 1, function(c, e) if FAIL then ERR.raise("value", "injected") end return false end) }]], "lua", "fail"))
      fp.rules[1].index = #P.rules
      P.rules[#P.rules + 1] = fp.rules[1]
      local params = { word = "SECRET" }
      -- chunks
      local chunks, i = {}, 1
      while i <= #raw do
        local n = rng(1, 4)
        local ch = {}
        for j = i, math.min(#raw, i + n - 1) do ch[#ch + 1] = raw[j] end
        chunks[#chunks + 1] = ch
        i = i + n
      end
      local mon = rt.monitor(P, gen.copy(params))
      local reported = {}
      local prefix = {}
      local all_seen = {}
      local pending_from = 0 -- parsed events before the last successful check
      for ci, ch in ipairs(chunks) do
        for _, x in ipairs(ch) do prefix[#prefix + 1] = x end
        local fail = rng(1, 6) == 1
        fp.env.FAIL = fail
        local got, perr = rt.push(mon, gen.copy(ch))
        fp.env.FAIL = false
        if fail then
          assert(got == nil and perr.kind == "value", "seed " .. seed .. ": injected failure not reported")
          goto continue
        end
        assert(got, perr and perr.message)
        -- expected: analyze the prefix, keep violations binding an event since the last success
        local whole = assert(rt.analyze(P, gen.copy(prefix), gen.copy(params)))
        local nparsed_before = pending_from
        pending_from = mon.events_seen
        local want = {}
        local newkeys = {}
        for _, v in ipairs(whole) do
          local binds = false
          for _, idx in pairs(v.bindings) do if idx >= nparsed_before then binds = true end end
          if binds and not reported[v.key] then want[#want + 1] = v; newkeys[v.key] = true end
        end
        for kk in pairs(newkeys) do reported[kk] = true end
        local g, w = canon_list(got), canon_list(want)
        if table.concat(g, "\n") ~= table.concat(w, "\n") then
          error(("seed %d chunk %d (%d chunks):\n got:\n  %s\n want:\n  %s\n trace: %s"):format(seed, ci,
            #chunks, table.concat(g, "\n  "), table.concat(w, "\n  "), cjson.encode(raw)))
        end
        local this = {}
        for _, v in ipairs(got) do
          if all_seen[v.key] then error(("seed %d: key %s reported twice"):format(seed, v.key)) end
          this[v.key] = true
        end
        for kk in pairs(this) do all_seen[kk] = true end
        ::continue::
      end
    end
  end)
end)

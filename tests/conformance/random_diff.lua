-- Random rules on random traces: the planning engine (rt.analyze) against the naive cartesian
-- enumeration of tests/conformance/naive_diff.lua's solver, through the whole compiler. Prints TAP
-- (one test per random policy) and the seed.
--
--   lua5.4 tests/conformance/random_diff.lua [SEED] [POLICIES]
local script_dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = script_dir .. "/?.lua;" .. "lua/runtime/?.lua;lua/runtime/?/init.lua;lua/?.lua;" .. package.path
package.cpath = "build/lua/?.so;" .. package.cpath

local cjson = require "cjson"
local canon = require "canon"
local rt = require "rt"
local trace = require "rt.trace"
local engine = require "rt.engine"
local value = require "rt.value"

local seed = tonumber(arg[1] or "") or os.time()
local count_policies = tonumber(arg[2] or "") or 200
math.randomseed(seed)
print("# seed " .. seed)

local function pick(t) return t[math.random(#t)] end

local WORDS = { "alpha", "beta", "secret", "send", "read", "ok" }
local TOOLS = { "read", "send", "fetch" }

local function random_trace()
   local ev, id = {}, 0
   local last_ids = {}
   for _ = 1, math.random(0, 7) do
      local r = math.random()
      if r < 0.3 then
         ev[#ev + 1] = { role = "user", content = pick(WORDS) .. " " .. pick(WORDS) }
      elseif r < 0.65 then
         local calls = {}
         for _ = 1, math.random(0, 2) do
            id = id + 1
            calls[#calls + 1] = { id = tostring(id), type = "function",
               ["function"] = { name = pick(TOOLS), arguments = { k = math.random(0, 2), s = pick(WORDS) } } }
            last_ids[#last_ids + 1] = tostring(id)
         end
         ev[#ev + 1] = { role = "assistant", content = math.random() < 0.5 and pick(WORDS) or cjson.null,
            tool_calls = calls }
      elseif #last_ids > 0 then
         ev[#ev + 1] = { role = "tool", tool_call_id = pick(last_ids), content = pick(WORDS) .. " " .. pick(WORDS) }
      end
   end
   return ev
end

local TYPES = { "Message", "ToolCall", "ToolOutput" }
local ONE = {
   Message = { '%s.role == "user"', '%s.role == "assistant"', '%s.content is not None and "e" in %s.content',
      'len(%s.tool_calls) > 0', '%s.content is None',
      '%s.content is not None and any(find("[aeiou]", %s.content))',
      'any([c.function.name == "read" for c in %s.tool_calls])',
      '("a" in %s.content if %s.content is not None else False)' },
   ToolCall = { '%s is tool:read', '%s is tool:send', '%s.function.arguments.k == 1', '%s.function.arguments.k > 0',
      '"e" in %s.function.arguments.s', '%s is tool:fetch({s: "a.*"})' },
   ToolOutput = { '"secret" in %s.content', '%s is tool:read', 'tool_call(%s) is not None', '"a" in %s.content',
      'len(find("e", %s.content)) >= 2', '%s.content.split(" ")[0] in ["alpha", "beta"]' },
}

local function random_policy()
   local nv = math.random(1, 3)
   local vars, lines = {}, {}
   for i = 1, nv do vars[i] = { name = "v" .. i, type = pick(TYPES) } end
   for i, v in ipairs(vars) do
      if i > 1 and math.random() < 0.5 then
         local a = vars[i - 1]
         local left = a.declared and a.name or ("(%s: %s)"):format(a.name, a.type)
         lines[#lines + 1] = ("%s %s (%s: %s)"):format(left, math.random() < 0.7 and "->" or "~>", v.name, v.type)
         vars[i - 1].declared, v.declared = true, true
      end
   end
   for _, v in ipairs(vars) do
      if not v.declared then table.insert(lines, 1, ("(%s: %s)"):format(v.name, v.type)) end
   end
   for _ = 1, math.random(0, 3) do
      local v = pick(vars)
      local c = pick(ONE[v.type])
      lines[#lines + 1] = (c:gsub("%%s", v.name))
   end
   if nv > 1 and math.random() < 0.5 then
      local a, b = vars[1], vars[2]
      if a.type == "ToolCall" and b.type == "ToolCall" then
         lines[#lines + 1] = ("%s.function.name == %s.function.name"):format(a.name, b.name)
      elseif a.type == "ToolOutput" and b.type == "ToolCall" then
         lines[#lines + 1] = ("tool_call(%s) == %s"):format(a.name, b.name)
      else
         lines[#lines + 1] = ("not (%s == %s)"):format(a.name, b.name)
      end
   end
   if math.random() < 0.3 then
      local v = pick(vars)
      lines[#lines + 1] = ("n := %s.metadata.get(\"trace_idx\") %% 2"):format(v.name)
      lines[#lines + 1] = "n == 0"
   end
   local head = ""
   for _, v in ipairs(vars) do
      if v.type == "Message" and math.random() < 0.3 then
         -- a derived domain: the calls of a message
         local c = v.name .. "c"
         lines[#lines + 1] = ("(%s: ToolCall) in %s.tool_calls"):format(c, v.name)
         lines[#lines + 1] = ('%s is tool:%s'):format(c, pick(TOOLS))
         vars[#vars + 1] = { name = c, type = "ToolCall" }
         break
      end
   end
   if math.random() < 0.3 then
      -- a quantifier block reading an outer variable
      local v = pick(vars)
      local q = math.random() < 0.5 and ("count(min=%d, max=%d)"):format(math.random(0, 1), math.random(1, 3))
         or (math.random() < 0.5 and "forall" or "not forall")
      local inner
      if v.type == "ToolCall" then inner = ("w.function.name == %s.function.name"):format(v.name)
      elseif v.type == "Message" then inner = ("%s -> w"):format(v.name)
      else inner = ("tool_call(%s) -> w"):format(v.name) end
      if inner:find("tool_call") then inner = ("w.function.arguments.k <= len(%s.content)"):format(v.name) end
      lines[#lines + 1] = q .. ":\n        (w: ToolCall)\n        " .. inner
      head = head .. "from invariant import count, forall\n"
   end
   if math.random() < 0.3 then
      head = head .. "p(x: ToolCall) :=\n    x.function.arguments.k == 1\n"
         .. "    (y: ToolOutput)\n    tool_call(y) == x\n\n"
      for _, v in ipairs(vars) do
         if v.type == "ToolCall" then lines[#lines + 1] = ("not p(%s)"):format(v.name); break end
      end
   end
   local kw = {}
   for _, v in ipairs(vars) do kw[#kw + 1] = v.name .. "=" .. v.name end
   return head .. ("raise Violation(\"r\", %s) if:\n    %s\n"):format(table.concat(kw, ", "),
      table.concat(lines, "\n    "))
end

-- naive solver (same as naive_diff.lua)
local function naive_models(R, run)
   local models, e = {}, {}
   local ctx = engine.new_ctx(run)
   local function finish()
      local marks, env = {}, {}
      for k, x in pairs(e) do env[k] = x end
      for _, l in ipairs(R.lets) do
         ctx.marks = {}
         local r = engine.call_item(l, l.fn, ctx, env)
         if r == nil then r = value.None end
         env[l.name] = r
         for _, m in ipairs(ctx.marks) do marks[#marks + 1] = m end
      end
      for _, o in ipairs(R.orders) do
         if not engine.order_holds(o.op, env[o.a], env[o.b]) then return end
      end
      for _, c in ipairs(R.conds) do
         ctx.marks = {}
         local r = engine.call_item(c, c.fn, ctx, env)
         for _, m in ipairs(ctx.marks) do marks[#marks + 1] = m end
         if r ~= true then return end
      end
      local b = {}
      for _, v in ipairs(R.vars) do b[v.name] = env[v.name] end
      for _, l in ipairs(R.lets) do b[l.name] = env[l.name] end
      models[#models + 1] = { b = b, marks = marks, rule = R }
   end
   local function bind(i)
      if i > #R.vars then return finish() end
      local v = R.vars[i]
      local root
      if v.domain then root = engine.call_item(v, v.domain, ctx, e) end
      for _, x in ipairs(engine.domain_of(run, v.type, root)) do
         e[v.name] = x
         bind(i + 1)
      end
      e[v.name] = nil
   end
   bind(1)
   return models
end

local function canon_list(vs)
   local r = rt.render(vs, "invariant")
   local out = {}
   for i, v in ipairs(vs) do
      out[i] = canon.encode({ r[i].key, canon.canon_value(v.args), canon.canon_value(v.kwargs or {}), r[i].ranges })
   end
   table.sort(out)
   return out
end

-- The monitor contract against analyze of each prefix (see monitor_diff.lua).
local function monitor_diff(pol, tr)
   local chunks, cur = {}, {}
   for i = 1, #tr do
      cur[#cur + 1] = tr[i]
      if i == #tr or math.random() < 0.4 then chunks[#chunks + 1] = cur; cur = {} end
   end
   local mon = assert(rt.monitor(pol, nil))
   local seen, prefix = {}, {}
   for ci, ch in ipairs(chunks) do
      local start = #prefix
      for _, ev in ipairs(ch) do prefix[#prefix + 1] = ev end
      local got, e1 = rt.push(mon, trace.decode(cjson.encode(ch)))
      local all, e2 = rt.analyze(pol, trace.decode(cjson.encode(prefix)))
      if not got or not all then
         if (got == nil) ~= (all == nil) then
            return ("chunk %d: monitor %s, analyze %s"):format(ci, tostring(e1 and e1.message),
               tostring(e2 and e2.message))
         end
         return nil
      end
      local r = rt.render(all, "invariant")
      local want, new = {}, {}
      for i, v in ipairs(all) do
         local pending = false
         for _, idx in pairs(v.bindings or {}) do if idx >= start then pending = true end end
         if pending and not seen[r[i].key] then
            want[#want + 1] = canon.encode({ r[i].key, r[i].ranges })
            new[r[i].key] = true
         end
      end
      for k in pairs(new) do seen[k] = true end
      local gr = rt.render(got, "invariant")
      local have = {}
      for i = 1, #got do have[i] = canon.encode({ gr[i].key, gr[i].ranges }) end
      table.sort(want); table.sort(have)
      local a, b = table.concat(want, "\n"), table.concat(have, "\n")
      if a ~= b then
         return ("monitor chunk %d (events %d..%d): expected\n%s\ngot\n%s\nchunks %s"):format(ci, start, #prefix - 1,
            a, b, cjson.encode(chunks))
      end
   end
   return nil
end

print("1.." .. count_policies)
local failed, nonempty, runs = 0, 0, 0
for n = 1, count_policies do
   local src = random_policy()
   local pol, lerr = rt.load(src, "invariant", "r" .. n)
   local diffs = {}
   if not pol then
      diffs[1] = "does not load: " .. tostring(lerr and lerr.message) .. "\n" .. src
   else
      for _ = 1, 5 do
         local tr = random_trace()
         local text = cjson.encode(tr)
         local planned, e1 = rt.analyze(pol, trace.decode(text))
         local st = assert(trace.normalize(trace.decode(text)))
         local run = { trace = st, params = value.dict({}), policy = pol }
         local ok, naive, e2 = pcall(rt.evaluate, pol, run, function(R) return naive_models(R, run) end)
         if not ok then naive, e2 = nil, { message = tostring(naive) } end
         runs = runs + 1
         if planned and #planned > 0 then nonempty = nonempty + 1 end
         if planned and naive then
            local a, b = table.concat(canon_list(planned), "\n"), table.concat(canon_list(naive), "\n")
            if a ~= b then diffs[#diffs + 1] = ("planned\n%s\nnaive\n%s\ntrace %s"):format(a, b, text) end
         elseif planned == nil then
            diffs[#diffs + 1] = ("planned failed: %s (naive: %s)\ntrace %s"):format(tostring(e1 and e1.message),
               naive and "ok" or tostring(e2 and e2.message), text)
         end
         if #diffs == 0 and #tr > 0 then
            local d = monitor_diff(pol, tr)
            if d then diffs[#diffs + 1] = d end
         end
         if #diffs > 0 then break end
      end
   end
   if #diffs == 0 then
      print(("ok %d - random policy %d"):format(n, n))
   else
      failed = failed + 1
      print(("not ok %d - random policy %d"):format(n, n))
      for l in (src .. "\n" .. table.concat(diffs, "\n") .. "\n"):gmatch("(.-)\n") do print("#   " .. l) end
   end
end
print(("# %d of %d random policies agree (seed %d); %d of %d analyses had violations"):format(
   count_policies - failed, count_policies, seed, nonempty, runs))
os.exit(failed == 0 and 0 or 1)

-- Canonical form of violations for the conformance suite and the comparison of one case.
-- See ../shared/conformance/README.md ("Canonical violation", "Comparison").
local cjson = require "cjson"

local M = {}

local value do
   local ok, v = pcall(require, "rt.value")
   value = ok and v or nil
end

local function is_event(x)
   if type(x) ~= "table" then return false end
   if value and value.Event then return getmetatable(x) == value.Event end
   return rawget(x, "kind") ~= nil and rawget(x, "idx") ~= nil and rawget(x, "path") ~= nil
end

-- An event placeholder: {"$event", "trace_idx", "$path"?} ("$path" only for nested calls).
local function placeholder(ev)
   local p = { ["$event"] = ev.kind, trace_idx = ev.idx }
   local path = tostring(ev.path or "")
   if path:find("tool_calls", 1, true) then p["$path"] = "messages." .. path end
   return p
end

-- Canonical value of an argument of Violation(...).
local function canon_value(x)
   if is_event(x) then return placeholder(x) end
   if type(x) == "table" and x ~= cjson.null then
      -- located strings and other wrapped scalars
      if value and value.str then
         local ok, s = pcall(value.str, x)
         if ok and type(s) == "string" then return s end
      end
      local out = {}
      for k, v in pairs(x) do out[k] = canon_value(v) end
      return out
   end
   return x
end
M.canon_value = canon_value

local function keep_range(addr)
   if type(addr) ~= "string" then return false end
   if addr:match("^messages%.%d+$") then return true end
   if addr:match("^messages%.%d+%.tool_calls%.%d+$") then return true end
   if addr:match("^messages%.[^:]+:%d+%-%d+$") then return true end
   return false
end

-- Deterministic JSON text with sorted keys and numbers by value (4 == 4.0).
local function encode(x)
   local t = type(x)
   if x == nil or x == cjson.null then return "null" end
   if t == "boolean" then return tostring(x) end
   if t == "number" then
      if x == math.floor(x) and x > -2^53 and x < 2^53 then return ("%d"):format(math.tointeger(x) or x) end
      return ("%.17g"):format(x)
   end
   if t == "string" then return cjson.encode(x) end
   if t == "table" then
      local n = #x
      local keys = {}
      for k in pairs(x) do keys[#keys + 1] = k end
      if #keys == n and (n > 0 or getmetatable(x) == cjson.array_mt) then
         local parts = {}
         for i = 1, n do parts[i] = encode(x[i]) end
         return "[" .. table.concat(parts, ",") .. "]"
      end
      if #keys == 0 then return "{}" end -- empty list or empty dict: same canonical text
      table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
      local parts = {}
      for _, k in ipairs(keys) do parts[#parts + 1] = cjson.encode(tostring(k)) .. ":" .. encode(x[k]) end
      return "{" .. table.concat(parts, ",") .. "}"
   end
   return cjson.encode(tostring(x))
end
M.encode = encode

local function canon_expected(err)
   local ranges = {}
   for _, r in ipairs(err.ranges or {}) do ranges[#ranges + 1] = r end
   table.sort(ranges)
   local kwargs = {}
   for k, v in pairs(err.kwargs or {}) do kwargs[k] = v end
   return encode({ args = err.args or {}, kwargs = kwargs, key = err.key, ranges = ranges })
end

-- Canonical text of one runtime violation `v` with its rendering `r` (rt.render(..., "invariant")).
local function canon_got(v, r)
   local args, kwargs = {}, {}
   local src_args = v.args or (r and r.args) or {}
   for i = 1, (src_args.n or #src_args) do args[i] = canon_value(src_args[i]) end
   for k, x in pairs(v.kwargs or (r and r.kwargs) or {}) do kwargs[k] = canon_value(x) end
   local ranges = {}
   for _, a in ipairs((r and r.ranges) or v.ranges or {}) do
      if keep_range(a) then ranges[#ranges + 1] = a end
   end
   table.sort(ranges)
   local key = (r and r.key) or v.key
   return encode({ args = args, kwargs = kwargs, key = key, ranges = ranges })
end

-- Compare two lists of canonical texts as multisets; returns ok, diff lines.
local function compare(expected, got, label)
   local pool = {}
   for _, g in ipairs(got) do pool[g] = (pool[g] or 0) + 1 end
   local missing = {}
   for _, e in ipairs(expected) do
      if (pool[e] or 0) > 0 then pool[e] = pool[e] - 1 else missing[#missing + 1] = e end
   end
   local extra = {}
   for _, g in ipairs(got) do
      if (pool[g] or 0) > 0 then pool[g] = pool[g] - 1; extra[#extra + 1] = g end
   end
   if #missing == 0 and #extra == 0 then return true, {} end
   local diff = {}
   local prefix = label and (label .. ": ") or ""
   diff[#diff + 1] = ("%sexpected %d violation(s), got %d"):format(prefix, #expected, #got)
   for _, m in ipairs(missing) do diff[#diff + 1] = "- " .. m end
   for _, x in ipairs(extra) do diff[#diff + 1] = "+ " .. x end
   return false, diff
end

local function canon_list(rt, vs)
   local rendered = rt.render(vs, "invariant") or {}
   local out = {}
   for i, v in ipairs(vs) do out[i] = canon_got(v, rendered[i]) end
   return out
end

local function describe_err(err)
   if type(err) ~= "table" then return tostring(err) end
   local parts = {}
   for _, k in ipairs({ "code", "kind", "rule", "line", "column", "index", "message" }) do
      if err[k] ~= nil then parts[#parts + 1] = k .. "=" .. tostring(err[k]) end
   end
   return table.concat(parts, " ")
end

local function first_diag(err)
   local ds = type(err) == "table" and err.diagnostics or nil
   if type(ds) ~= "table" or #ds == 0 then return nil end
   return ds[1]
end

-- Runs one case; returns ok, diff-lines.
function M.run_case(rt, case)
   local expect = case.expect
   local params = case.parameters
   if params == cjson.null then params = nil end
   local pol, lerr = rt.load(case.policy, "invariant", case.id)
   if not pol then
      if not expect.load_error then
         return false, { "policy did not load: " .. describe_err(lerr),
            "diagnostic: " .. describe_err(first_diag(lerr) or {}) }
      end
      local d = first_diag(lerr)
      if not d then return false, { "load failed without diagnostics: " .. describe_err(lerr) } end
      local le = expect.load_error
      local col = d.column or d.col
      local diff = {}
      if d.line ~= le.line or col ~= le.column then
         diff[#diff + 1] = ("expected load error at %d:%d, got %s:%s (%s)"):format(le.line, le.column,
            tostring(d.line), tostring(col), tostring(d.message or d.msg))
      end
      if d.kind and le.kind and d.kind ~= le.kind then
         diff[#diff + 1] = ("expected kind %s, got %s"):format(le.kind, tostring(d.kind))
      end
      return #diff == 0, diff
   end
   if expect.load_error then
      return false, { ("expected a load error at %d:%d (%s), the policy loaded"):format(
         expect.load_error.line, expect.load_error.column, tostring(expect.load_error.kind)) }
   end

   local function check_err(err)
      if expect.input_error then
         if type(err) == "table" and err.code == "trace_invalid" then return true, {} end
         return false, { "expected an input error, got: " .. describe_err(err) }
      end
      if expect.runtime_error then
         if type(err) == "table" and err.code == "evaluation_error" then
            if expect.kind and err.kind and err.kind ~= expect.kind then
               return false, { ("expected runtime error kind %s, got %s"):format(expect.kind, describe_err(err)) }
            end
            return true, {}
         end
         return false, { "expected a runtime error, got: " .. describe_err(err) }
      end
      return false, { "unexpected error: " .. describe_err(err) }
   end

   if case.mode == "monitor" then
      local mon, merr = rt.monitor(pol, params)
      if not mon then return check_err(merr) end
      local ok_all, diff = true, {}
      for i, chunk in ipairs(case.chunks) do
         local vs, err = rt.push(mon, chunk)
         if not vs then return check_err(err) end
         local want = {}
         for j, e in ipairs((expect.chunks or {})[i] or {}) do want[j] = canon_expected(e) end
         local ok, d = compare(want, canon_list(rt, vs), "chunk " .. i)
         if not ok then
            ok_all = false
            for _, l in ipairs(d) do diff[#diff + 1] = l end
         end
      end
      if expect.input_error or expect.runtime_error then
         return false, { "expected an error, every chunk succeeded" }
      end
      return ok_all, diff
   end

   local vs, err = rt.analyze(pol, case.trace, params)
   if not vs then return check_err(err) end
   if expect.input_error or expect.runtime_error then
      local got = canon_list(rt, vs)
      local d = { ("expected %s, analysis succeeded with %d violation(s)"):format(
         expect.input_error and "an input error" or "a runtime error (" .. tostring(expect.kind) .. ")", #vs) }
      for _, g in ipairs(got) do d[#d + 1] = "+ " .. g end
      return false, d
   end
   local want = {}
   for j, e in ipairs(expect.errors or {}) do want[j] = canon_expected(e) end
   return compare(want, canon_list(rt, vs))
end

return M

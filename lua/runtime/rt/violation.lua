-- rt.violation: violations from models (args, kwargs, key, ranges) and their renderings
-- (docs/internals.md §4): native, invariant (to_dict), server, server_text.
local getmetatable, ipairs, math, pairs, require, string, table, tonumber, tostring,
   type =
   getmetatable, ipairs, math, pairs, require, string, table, tonumber, tostring,
   type
_ENV = nil

local value = require "rt.value"
local engine = require "rt.engine"

local M = {}
local None = value.None
local getmt = getmetatable
local sfmt = string.format
local repr = value.repr

------------------------------------------------------------------------------------------------
-- keys

local function key_value(x)
   if getmt(x) == value.Event then return sfmt("%d", x.idx) end
   if value.is_dict(x) and x ~= None and x.key ~= nil then return repr(x.key) end
   return "-1"
end

function M.key(rule_index, bindings)
   local names = {}
   for n in pairs(bindings) do names[#names + 1] = n end
   if #names > 1 then table.sort(names) end
   local parts = {}
   for i, n in ipairs(names) do parts[i] = key_value(bindings[n]) end
   local inner
   if #parts == 1 then inner = parts[1] .. "," else inner = table.concat(parts, ", ") end
   return sfmt("(%d, (%s))", rule_index, inner), names
end

------------------------------------------------------------------------------------------------
-- ranges in trace-walk order

local FIELD_RANK = { metadata = 1, server = 2, role = 3, id = 3, name = 3, type = 4,
   content = 4, description = 4, arguments = 4, text = 5, tool_calls = 5, ["function"] = 5,
   tool_call_id = 5, inputSchema = 5, image_url = 5 }

local SPLIT, nsplit = {}, 0
local function split(path)
   local out = SPLIT[path]
   if out then return out end
   out = {}
   for comp in tostring(path):gmatch("[^.]+") do out[#out + 1] = tonumber(comp) or comp end
   if nsplit > 200000 then SPLIT, nsplit = {}, 0 end
   SPLIT[path] = out
   nsplit = nsplit + 1
   return out
end

local function comp_less(a, b)
   local na, nb = type(a) == "number", type(b) == "number"
   if na and nb then return a < b end
   if na then return true end
   if nb then return false end
   local ra, rb = FIELD_RANK[a] or 100, FIELD_RANK[b] or 100
   if ra ~= rb then return ra < rb end
   return a < b
end

local function range_less(x, y)
   local px, py = x._sp, y._sp
   local n = math.min(#px, #py)
   for i = 1, n do
      if px[i] ~= py[i] then return comp_less(px[i], py[i]) end
   end
   if #px ~= #py then return #px < #py end
   local sx, sy = x[2] or -1, y[2] or -1
   if sx ~= sy then return sx < sy end
   return (x[3] or -1) < (y[3] or -1)
end

-- sort range tuples {path, start?, stop?} in walk order (stable for equal ones)
function M.sort_ranges(rs)
   if #rs < 2 then return rs end
   for i, r in ipairs(rs) do r._sp = r._sp or split(r[1]); r._i = i end
   table.sort(rs, function(a, b)
      if range_less(a, b) then return true end
      if range_less(b, a) then return false end
      return a._i < b._i
   end)
   return rs
end

function M.address(r)
   if r[2] then return sfmt("messages.%s:%d-%d", r[1], r[2], r[3]) end
   return "messages." .. r[1]
end

------------------------------------------------------------------------------------------------
-- building a violation from a model

-- model: {b = bindings, marks = {...}, rule = R}; run: the evaluation run
function M.from_model(R, model, run)
   local ctx = engine.new_ctx(run)
   ctx.solver = { R = R }
   local raised = engine.call_item(R.raise, R.raise.fn, ctx, model.b)
   local args, kwargs
   local policy = require "rt.policy"
   if getmt(raised) == policy.ViolationObj then
      args, kwargs = raised.args, raised.kwargs
   else
      args, kwargs = { value.tostr(raised), n = 1 }, {}
   end
   local key = M.key(R.index, model.b)
   local rs = {}
   for _, m in ipairs(model.marks) do rs[#rs + 1] = { m[1], m[2], m[3] } end
   -- one whole-object range per bound value with a location (store order: vars, then lets)
   local function add_bound(n)
      local x = model.b[n]
      if x ~= nil then
         local l = value.loc(x)
         if l then
            if getmt(x) == value.Str and x.sub then
               rs[#rs + 1] = { l, x.sub, x.sub + value.cplen(x.s) }
            else
               rs[#rs + 1] = { l }
            end
         end
      end
   end
   for _, v in ipairs(R.vars) do add_bound(v.name) end
   for _, l in ipairs(R.lets) do add_bound(l.name) end
   M.sort_ranges(rs)
   local ranges = {}
   for i, r in ipairs(rs) do ranges[i] = M.address(r) end
   local bindings = {}
   for n, x in pairs(model.b) do
      if getmt(x) == value.Event then bindings[n] = x.idx end
   end
   return { rule = R.index, line = R.line, message = R.message, args = args, kwargs = kwargs,
      bindings = bindings, ranges = ranges, key = key, raw_bindings = model.b,
      string_raise = getmt(raised) ~= policy.ViolationObj }
end

------------------------------------------------------------------------------------------------
-- wire forms of values

local wire
local function wire_list(t)
   local out = {}
   for i = 1, #t do out[i] = wire(t[i]) end
   return out
end

-- JSON-ready plain tables (strings plain, events as their wire fields + metadata.trace_idx)
wire = function(x)
   if x == nil then return None end
   local tx = type(x)
   if tx ~= "table" then return x end
   if x == None then return x end
   local mt = getmt(x)
   if mt == value.Str then return x.s end
   if mt == value.Event then
      local k = x.kind
      local out = {}
      if k == "Message" then
         out.role = x.role
         out.content = wire(x.content)
         if x.tool_calls and #x.tool_calls > 0 then out.tool_calls = wire_list(x.tool_calls) end
      elseif k == "ToolCall" then
         out.id = wire(x.id)
         out.type = x.type
         out["function"] = { name = x["function"].name, arguments = wire(x["function"].arguments) }
      elseif k == "ToolOutput" then
         out.role = x.role
         out.content = wire(x.content)
         out.tool_call_id = wire(x.tool_call_id)
      elseif k == "Tool" then
         out.name = x.name
         out.description = x.description
      end
      local md = {}
      if x.metadata and x.metadata ~= None then
         for kk, vv in pairs(x.metadata) do md[kk] = wire(vv) end
      end
      md.trace_idx = x.idx
      out.metadata = md
      if x.server ~= nil and x.server ~= None then out.server = x.server end
      return out
   end
   if mt == value.Record then
      local out = {}
      for kk, vv in pairs(x) do
         if kk ~= "kind" then out[kk] = wire(vv) end
      end
      return out
   end
   if value.is_list(x) then return wire_list(x) end
   local out = {}
   for kk, vv in pairs(x) do out[kk] = wire(vv) end
   return out
end
M.wire = wire

------------------------------------------------------------------------------------------------
-- Python renderings of events (ErrorInformation and the Aug-2024 PolicyViolation)

local function kv_args(d)
   local parts = {}
   if d and d ~= None then
      for _, k in ipairs(value.keys(d)) do parts[#parts + 1] = k .. "=" .. value.tostr(d[k]) end
   end
   return table.concat(parts, ", ")
end

local function chunk_repr(ch)
   if ch.kind == "TextChunk" then
      return sfmt("TextChunk(type=%s, text=%s)>", value.tostr(ch.type), value.tostr(ch.text))
   end
   return sfmt("Image(type=%s, image_url=%s)>", value.tostr(ch.type), repr(ch.image_url))
end

local function content_repr(x)
   if x == nil or x == None then return "None" end
   if getmt(x) == value.Contents then
      local parts = {}
      for i = 1, #x do parts[i] = chunk_repr(x[i]) end
      return "[" .. table.concat(parts, ", ") .. "]"
   end
   return repr(x)
end

-- repr of the event's metadata dict with trace_idx last: the string repr(md) gives for a Dict md
-- holding the metadata's keys (value.keys order, trace_idx left out) and then trace_idx, built
-- directly (no temporary dict, no value.order entry)
local function md_repr(ev)
   local parts, n = {}, 0
   local md = ev.metadata
   if md and md ~= None then
      for _, k in ipairs(value.keys(md)) do
         if k ~= "trace_idx" then
            n = n + 1
            parts[n] = repr(k) .. ": " .. repr(md[k])
         end
      end
   end
   parts[n + 1] = "'trace_idx': " .. repr(ev.idx)
   return "{" .. table.concat(parts, ", ") .. "}"
end

local event_repr_new
local function fields_new(ev, old)
   local k = ev.kind
   local parts = { "metadata=" .. md_repr(ev) }
   if not old then parts[#parts + 1] = "server=" .. repr(ev.server or None) end
   if k == "Message" then
      parts[#parts + 1] = "role=" .. repr(ev.role)
      parts[#parts + 1] = "content=" .. content_repr(ev.content)
      local tc = ev.tool_calls
      if tc and #tc > 0 then
         local ps = {}
         for i = 1, #tc do ps[i] = event_repr_new(tc[i], old) end
         parts[#parts + 1] = "tool_calls=[" .. table.concat(ps, ", ") .. "]"
      else
         parts[#parts + 1] = "tool_calls=" .. (old and "None" or "[]")
      end
   elseif k == "ToolCall" then
      local f = ev["function"]
      parts[#parts + 1] = "id=" .. repr(ev.id or None)
      parts[#parts + 1] = "type=" .. repr(ev.type)
      parts[#parts + 1] = sfmt("function=<Function %s(%s)>", value.tostr(f.name),
         kv_args(f.arguments))
   elseif k == "ToolOutput" then
      parts[#parts + 1] = "role=" .. repr(ev.role)
      parts[#parts + 1] = "content=" .. content_repr(ev.content)
      parts[#parts + 1] = "tool_call_id=" .. repr(ev.tool_call_id or None)
   end
   return table.concat(parts, " ")
end

event_repr_new = function(ev, old)
   if ev.kind == "Tool" then
      return sfmt("<Tool %s (%s)>", value.tostr(ev.name), value.tostr(ev.description))
   end
   if old then return fields_new(ev, true) end
   return "<" .. ev.kind .. " " .. fields_new(ev, false) .. ">"
end

value.event_repr = function(ev)
   if getmt(ev) == value.Record then
      if ev.kind == "TextChunk" or ev.kind == "Image" then return chunk_repr(ev) end
      return "<" .. tostring(ev.kind) .. ">"
   end
   return event_repr_new(ev, false)
end

local function pystr(x, old)
   if getmt(x) == value.Event then return event_repr_new(x, old) end
   return value.tostr(x)
end

local function text_form(v, head, old)
   local parts = {}
   for i = 1, v.args.n or #v.args do parts[i] = pystr(v.args[i], old) end
   local s = head .. "(" .. table.concat(parts, " ")
   local ks = {}
   for k in pairs(v.kwargs) do ks[#ks + 1] = k end
   table.sort(ks)
   local kp = {}
   for i, k in ipairs(ks) do kp[i] = k .. "=" .. pystr(v.kwargs[k], old) end
   if old and v.string_raise then kp[#kp + 1] = sfmt("ranges=[<%d ranges>]", #v.ranges) end
   if #kp > 0 then s = s .. ", " .. table.concat(kp, ", ") end
   return s .. ")"
end

function M.text(v) return text_form(v, "ErrorInformation", false) end
function M.server_text(v) return text_form(v, "PolicyViolation", true) end

------------------------------------------------------------------------------------------------
-- renderings

local function wire_args(v)
   local a = {}
   for i = 1, v.args.n or #v.args do a[i] = wire(v.args[i]) end
   local kw = {}
   for k, x in pairs(v.kwargs) do kw[k] = wire(x) end
   return a, kw
end

function M.render_one(v, format)
   format = format or "native"
   if format == "server_text" then return M.server_text(v) end
   if format == "server_keyed" then return { key = v.key, text = M.server_text(v) } end
   if format == "server" then return { error = M.server_text(v), ranges = v.ranges } end
   local a, kw = wire_args(v)
   if format == "invariant" then
      return { key = v.key, args = a, kwargs = kw, ranges = v.ranges }
   end
   local msg = v.message
   if type(a[1]) == "string" then msg = a[1] end
   return { rule = { index = v.rule, line = v.line, message = v.message }, message = msg,
      args = a, kwargs = kw, key = v.key, ranges = v.ranges, bindings = v.bindings,
      text = M.text(v) }
end

function M.render(vs, format)
   local out = {}
   for i, v in ipairs(vs) do out[i] = M.render_one(v, format) end
   return out
end

return M

-- rt.trace: validation and normalisation of agent traces (spec/invariant-reference.md §5).
--
--   st = trace.new()                       -- empty state (for monitors)
--   evs, err = trace.append(st, raw)       -- raw: decoded JSON list; evs: the new top-level events
--   st, err  = trace.normalize(raw)        -- new + append
--   v = trace.decode(json_text)            -- cjson decode that keeps 10000.0 a float
--   list = trace.select(T, root)           -- §5.6 type-based selection
--
-- State: st.events (parsed top-level events, st.events[i].idx == i - 1), st.flat (the flattened
-- `->` sequence: st.flat[ev.seq] == ev; a message is followed by its own tool calls), the lists
-- st.messages, st.calls, st.outputs, st.tools (flattened order), and the linking state
-- (st.by_id: id -> ToolCall, st.last_id). Errors: {code = "trace_invalid", message, index}
-- where index is the 0-based position of the offending element in `raw`.
--
-- Event fields: see docs/notes/runtime.md. Events are new tables; the decoded containers inside
-- them (arguments, contents, metadata, tool_calls) are taken over and get their value metatables
-- in place, so pass a fresh decode.
local require, type, pairs, ipairs, next, tostring, tonumber, setmetatable, getmetatable, error,
   pcall = require, type, pairs, ipairs, next, tostring, tonumber, setmetatable,
   getmetatable, error, pcall
local mtype, floor = math.type, math.floor
local tointeger = math.tointeger
local sfmt, sbyte, sfind, ssub = string.format, string.byte, string.find, string.sub
local tsort = table.sort
local cjson = require "cjson"
local value = require "rt.value"

local None = value.None
local List, Dict, Contents, Event, Record = value.List, value.Dict, value.Contents, value.Event,
   value.Record
local cjdecode = cjson.decode

local M = {}
_ENV = nil

local function invalid(msg)
   error({ invalid = msg }, 0)
end

------------------------------------------------------------------------------------------------
-- JSON values: numbers to integers where integral, float sentinels back to floats, containers
-- to List / Dict (in place).

local FLOAT_TAG = "\0F" -- prefix of a float literal kept as a string by trace.decode

local conv
local function conv_table(t)
   local mt = getmetatable(t)
   if mt ~= nil then return t end
   local n = #t
   if n > 0 then
      local c = 0
      for _ in pairs(t) do c = c + 1 end
      if c == n then
         for i = 1, n do
            local v = t[i]
            local tv = type(v)
            if tv ~= "string" and tv ~= "boolean" then t[i] = conv(v)
            elseif tv == "string" and sbyte(v, 1) == 0 then t[i] = conv(v) end
         end
         return setmetatable(t, List)
      end
   elseif next(t) == nil then
      return setmetatable(t, List)
   end
   for k, v in pairs(t) do
      local tv = type(v)
      if tv == "number" or tv == "table" or (tv == "string" and sbyte(v, 1) == 0) then
         t[k] = conv(v)
      end
   end
   return setmetatable(t, Dict)
end

conv = function(x)
   local tx = type(x)
   if tx == "number" then
      if mtype(x) == "float" and x == floor(x) and x > -9007199254740992 and x < 9007199254740992 then
         return tointeger(x)
      end
      return x
   elseif tx == "table" then
      if x == None then return x end
      return conv_table(x)
   elseif tx == "string" then
      if sbyte(x, 1) == 0 and sfind(x, FLOAT_TAG, 1, true) == 1 then
         return tonumber(x:sub(3)) + 0.0
      end
   end
   return x
end
M.from_json = conv

-- a JSON object (checked by the caller with is_obj) -> Dict, in place
local function conv_dict(t)
   for k, v in pairs(t) do
      local tv = type(v)
      if tv == "number" then
         if mtype(v) == "float" and v == floor(v) and v > -9007199254740992 and v < 9007199254740992 then
            t[k] = tointeger(v)
         end
      elseif tv == "table" or (tv == "string" and sbyte(v, 1) == 0) then
         t[k] = conv(v)
      end
   end
   return setmetatable(t, Dict)
end

------------------------------------------------------------------------------------------------
-- trace.decode: cjson, but float literals with an integral value ("10000.0", "1e3") stay floats
-- (cjson decodes every number as a float, so integral floats would become integers).

local lpeg_ok, lpeg = pcall(require, "lpeg")
local float_fixer
if lpeg_ok then
   local P, S, R, C, Cs = lpeg.P, lpeg.S, lpeg.R, lpeg.C, lpeg.Cs
   local digit = R "09"
   local str = P '"' * ((P "\\" * 1) + (1 - S '"\\')) ^ 0 * P '"'
   local int = P "-" ^ -1 * digit ^ 1
   local frac = P "." * digit ^ 1
   local exp = S "eE" * S "+-" ^ -1 * digit ^ 1
   local float = C(int * ((frac * exp ^ -1) + exp)) / function(tok)
      local v = tonumber(tok)
      if v and v == floor(v) then return '"' .. "\\u0000F" .. tok .. '"' end
      return tok
   end
   local other = (1 - S '"-0123456789') ^ 1
   float_fixer = Cs((str + float + int + other + 1) ^ 0)
end

local tagged = false -- set once decode has produced a float sentinel

-- Cheap pre-check (plain searches only; a pattern scan of a large text costs as much as the LPeg
-- pass): is there a number token `D.0…` or `D…e+D` right after a JSON delimiter? Integral floats
-- in other spellings (`1e3`, `100e-2`) are not looked for.
local function number_start_ok(text, p)
   -- p: index of the last digit before the '.'/'e'; walk back over the digits and a sign
   while p > 0 and sfind(ssub(text, p, p), "^[%d]") do p = p - 1 end
   if p > 0 and ssub(text, p, p) == "-" then p = p - 1 end
   while p > 0 and sfind(ssub(text, p, p), "^%s") do p = p - 1 end
   local c = ssub(text, p, p)
   return c == ":" or c == "," or c == "["
end

local function may_have_integral_float(text)
   for _, probe in ipairs({ ".0", "e+", "E+" }) do
      local init = 1
      while true do
         local a = sfind(text, probe, init, true)
         if not a then break end
         if a > 1 and sfind(ssub(text, a - 1, a - 1), "^%d") then
            local ok = true
            if probe == ".0" then ok = sfind(text, "^%.0+[^%d]", a) ~= nil end
            if ok and number_start_ok(text, a - 1) then return true end
         end
         init = a + 2
      end
   end
   return false
end

function M.decode(text)
   if float_fixer and may_have_integral_float(text) then
      local fixed = float_fixer:match(text)
      if fixed ~= text then tagged = true; text = fixed end
   end
   return cjdecode(text)
end

------------------------------------------------------------------------------------------------
-- field validation helpers

local function is_obj(x)
   -- None is a light userdata, so type() already excludes it
   return type(x) == "table" and getmetatable(x) == nil and #x == 0
end

-- a JSON string (not a float literal kept as a string by trace.decode; those can only exist
-- once decode has rewritten a text)
local function is_s(v)
   return type(v) == "string" and (not tagged or sbyte(v, 1) ~= 0)
end

local function metadata_of(obj, idx)
   local md = obj.metadata
   local d
   if md == nil or md == None then
      return setmetatable({ trace_idx = idx }, Dict)
   elseif is_obj(md) then
      d = conv_dict(md)
   else
      invalid("metadata must be an object")
   end
   d.trace_idx = idx
   return d
end

local function server_of(obj)
   local md = obj.metadata
   if type(md) == "table" and md ~= None then
      local s = md.server
      if type(s) == "string" then return s end
   end
   return None
end

-- The hot paths of build/new_call: the element's metadata value `md` (already checked to be
-- absent, None or an object) -> its Dict (converted in place, trace_idx set), as
-- metadata_of(obj, idx); the server is then the Dict's string `server` or None, as server_of(obj).
local function md_dict(md, idx)
   if md == nil or md == None then return setmetatable({ trace_idx = idx }, Dict) end
   local d = conv_dict(md)
   d.trace_idx = idx
   return d
end


-- content chunks: TextChunk {type, text} or Image {type, image_url: {str: str}}
local function chunk_list(list, what)
   for i = 1, #list do
      local ch = list[i]
      if not is_obj(ch) then invalid(sfmt("%s.%d must be a content chunk object", what, i - 1)) end
      local ty, tx, iu = ch.type, ch.text, ch.image_url
      if is_s(ty) and is_s(tx) then
         list[i] = setmetatable({ kind = "TextChunk", type = ty, text = tx }, Record)
      elseif is_s(ty) and is_obj(iu) then
         for k, v in pairs(iu) do
            if type(k) ~= "string" or not is_s(v) then
               invalid(sfmt("%s.%d.image_url must map strings to strings", what, i - 1))
            end
         end
         list[i] = setmetatable({ kind = "Image", type = ty, image_url = setmetatable(iu, Dict) },
            Record)
      else
         invalid(sfmt("%s.%d is not a text or image chunk", what, i - 1))
      end
   end
   return setmetatable(list, Contents)
end

local function is_array_table(t)
   if type(t) ~= "table" or t == None or getmetatable(t) ~= nil then return false end
   if next(t) == nil then return true end
   local n = #t
   if n == 0 then return false end
   local c = 0
   for _ in pairs(t) do c = c + 1 end
   return c == n
end

-- Message content: string | null | chunk list. ToolOutput content may also be an object.
local function content_of(obj, where, allow_object)
   local c = obj.content
   if c == nil or c == None then return None end
   local tc = type(c)
   if tc == "string" and is_s(c) then return c end
   if tc == "table" then
      if is_array_table(c) then return chunk_list(c, where() .. ".content") end
      if allow_object then return conv_dict(c) end
   end
   invalid(sfmt("%s.content must be a string, null or a list of content chunks", where()))
end

------------------------------------------------------------------------------------------------
-- events

-- `raw` becomes the ToolCall event in place (and raw["function"] the Function record).
-- `where` is a function returning the element's description, for error messages only.
-- (is_obj and is_s are inlined here: this runs for every call of a trace)
local function new_call(raw, idx, path, nested, where)
   if type(raw) ~= "table" or getmetatable(raw) ~= nil or #raw ~= 0 then
      invalid(where() .. " must be an object")
   end
   local id = raw.id
   if id == nil then id = None
   elseif id ~= None and not (type(id) == "string" and (not tagged or sbyte(id, 1) ~= 0)) then
      invalid(where() .. ".id must be a string or null")
   end
   local ty = raw.type
   if not (type(ty) == "string" and (not tagged or sbyte(ty, 1) ~= 0)) then
      invalid(where() .. ".type must be a string")
   end
   local fn = raw["function"]
   if type(fn) ~= "table" or getmetatable(fn) ~= nil or #fn ~= 0 then
      invalid(where() .. ".function must be an object")
   end
   local name = fn.name
   if not (type(name) == "string" and (not tagged or sbyte(name, 1) ~= 0)) then
      invalid(where() .. ".function.name must be a string")
   end
   local args = fn.arguments
   if args == nil then invalid(where() .. ".function.arguments is missing") end
   if type(args) == "string" then
      if not nested then invalid(where() .. ".function.arguments must be an object") end
      local ok, parsed = pcall(cjdecode, args)
      if not ok then invalid(where() .. ".function.arguments is not valid JSON") end
      args = parsed
   end
   if type(args) ~= "table" or getmetatable(args) ~= nil or #args ~= 0 then
      invalid(where() .. ".function.arguments must be an object")
   end
   local md = raw.metadata
   if md ~= nil and md ~= None and not is_obj(md) then invalid(where() .. ".metadata must be an object") end
   local mdd = md_dict(md, idx)
   -- one constructor with every field (seq and message preset) allocates the table at its final
   -- size; adding fields to the decoded table would rehash it twice
   return setmetatable({
      kind = "ToolCall", idx = idx, path = path, seq = 0, id = id, type = ty,
      ["function"] = setmetatable({ kind = "Function", name = name, arguments = conv_dict(args) },
         Record),
      metadata = mdd, server = type(mdd.server) == "string" and mdd.server or None, message = false,
   }, Event)
end

local TYPE_ALIAS = {
   int = "integer", long = "integer", float = "number", bool = "boolean", str = "string",
   dict = "object", list = "array",
   object = "object", array = "array", string = "string", number = "number", integer = "integer",
   boolean = "boolean",
}

local function description_of(v)
   if v == nil or v == None then return "no description available" end
   if type(v) == "string" then return v end
   return value.tostr(conv(v))
end

local parameter
parameter = function(name, schema, required_set)
   if not is_obj(schema) then invalid("parameter " .. name .. " must be an object") end
   local ty = schema.type
   local required = required_set[name] == true
   local ptype
   if ty == nil or ty == None then
      ptype = "string"
   elseif type(ty) == "string" then
      ptype = TYPE_ALIAS[ty]
      if not ptype then
         invalid(sfmt("Unsupported schema type: %s for parameter %s. Supported types are: "
            .. "object, array, string, number, boolean.", ty, name))
      end
   elseif is_array_table(ty) then
      local out = {}
      for _, t in ipairs(ty) do
         if t == "null" then
            required = false
         else
            local a = type(t) == "string" and TYPE_ALIAS[t]
            if not a then
               invalid(sfmt("Unsupported schema type: %s for parameter %s. Supported types are: "
                  .. "object, array, string, number, boolean.", tostring(t), name))
            end
            out[#out + 1] = a
         end
      end
      ptype = setmetatable(out, List)
   else
      invalid("parameter " .. name .. ": type must be a string or a list")
   end
   local p = {
      kind = "ToolParameter", name = name, type = ptype,
      description = description_of(schema.description), required = required,
      properties = None, additionalProperties = None, items = None, enum = None,
   }
   local has = function(t) return ptype == t or (type(ptype) == "table" and (function()
      for _, x in ipairs(ptype) do if x == t then return true end end
      return false end)()) end
   if has("object") and is_obj(schema.properties) then
      local req = {}
      if is_array_table(schema.required) then
         for _, r in ipairs(schema.required) do if type(r) == "string" then req[r] = true end end
      end
      local props = setmetatable({}, Dict)
      for k, sub in pairs(schema.properties) do
         local full = name .. "." .. k
         props[k] = parameter(full, sub, req)
      end
      p.properties = props
   end
   local ap = schema.additionalProperties
   if type(ap) == "boolean" then p.additionalProperties = ap end
   if has("array") and is_obj(schema.items) and next(schema.items) ~= nil then
      p.items = parameter(name .. " item", schema.items, {})
   end
   if is_array_table(schema.enum) then p.enum = conv(schema.enum) end
   return setmetatable(p, Record)
end

local function new_tool(raw, idx, outer_server)
   if not is_obj(raw) then invalid("tools element must be an object") end
   local schema = raw.inputSchema
   if schema == nil then invalid("tool is missing inputSchema") end
   if not is_obj(schema) then invalid("tool inputSchema must be an object") end
   local params = {}
   local props = schema.properties
   if props ~= nil and props ~= None then
      if not is_obj(props) then invalid("inputSchema.properties must be an object") end
      local req = {}
      if is_array_table(schema.required) then
         for _, r in ipairs(schema.required) do if type(r) == "string" then req[r] = true end end
      end
      -- cjson loses key order: sort the property names for a deterministic order
      local names = {}
      for k in pairs(props) do names[#names + 1] = k end
      tsort(names)
      for i, k in ipairs(names) do params[i] = parameter(k, props[k], req) end
   end
   local name = raw.name
   if name == nil then name = None
   elseif type(name) ~= "string" then name = value.tostr(conv(name)) end
   local srv = server_of(raw)
   if srv == None then srv = outer_server end
   local md = raw.metadata
   if md ~= nil and md ~= None and not is_obj(md) then invalid("tool metadata must be an object") end
   return setmetatable({
      kind = "Tool", idx = idx, path = tostring(idx), name = name,
      description = description_of(raw.description),
      inputSchema = setmetatable(params, List), metadata = metadata_of(raw, idx), server = srv,
   }, Event)
end

------------------------------------------------------------------------------------------------
-- state and append

function M.new()
   return {
      events = {}, flat = {}, messages = {}, calls = {}, outputs = {}, tools = {},
      by_id = {}, last_id = None,
   }
end

local function err_obj(msg, index)
   return { code = "trace_invalid", message = "Input Validation Error: " .. msg, index = index }
end

-- Builds the events of raw (validating everything) without touching `st`; returns the list of
-- new top-level events, the id registrations and the final last id.
local function build(st, raw)
   local out, no = {}, 0
   local idx = #st.events
   local ids = {}     -- id -> call registered in this chunk
   local last_id = st.last_id
   local by_id = st.by_id
   local pos, k_call
   local function where() return tostring(pos) end
   local function where_call() return tostring(pos) .. ".tool_calls." .. tostring(k_call - 1) end
   local ok, e = pcall(function()
      for i = 1, #raw do
         pos = i - 1
         local el = raw[i]
         if type(el) ~= "table" or getmetatable(el) ~= nil or #el ~= 0 then -- is_obj, inlined
            invalid(sfmt("Input should be a list of one of (Message, ToolCall, ToolOutput, Tool). "
               .. "Instead, got: %s", type(el) == "table" and el ~= None and "a list" or value.repr(conv(el))))
         end
         local role = el.role
         if role ~= nil then
            if not (type(role) == "string" and (not tagged or sbyte(role, 1) ~= 0)) then
               invalid(where() .. ".role must be a string")
            end
            local spath = tostring(idx)
            local content = content_of(el, where, role == "tool")
            local md = el.metadata
            if md ~= nil and md ~= None and not is_obj(md) then invalid(where() .. ".metadata must be an object") end
            local ev
            if role == "tool" then
               local tcid = el.tool_call_id
               if tcid == nil then
                  tcid = last_id
               elseif tcid ~= None and not (type(tcid) == "string" and (not tagged or sbyte(tcid, 1) ~= 0)) then
                  invalid(where() .. ".tool_call_id must be a string or null")
               end
               local call = false
               if tcid ~= None then
                  call = ids[tcid] or by_id[tcid] or false
               end
               local mdd = md_dict(md, idx)
               ev = {
                  kind = "ToolOutput", idx = idx, path = spath, seq = 0, role = role, content = content,
                  tool_call_id = tcid, call = call, metadata = mdd,
                  server = type(mdd.server) == "string" and mdd.server or None,
               }
            else
               local tcs = el.tool_calls
               if tcs == nil or tcs == None then
                  tcs = {}
               elseif not is_array_table(tcs) then
                  invalid(where() .. ".tool_calls must be a list")
               end
               local mdd = md_dict(md, idx)
               ev = {
                  kind = "Message", idx = idx, path = spath, seq = 0, role = role, content = content,
                  tool_calls = setmetatable(tcs, List), metadata = mdd,
                  server = type(mdd.server) == "string" and mdd.server or None,
               }
               for k = 1, #tcs do
                  k_call = k
                  local c = new_call(tcs[k], idx, spath .. ".tool_calls." .. (k - 1), true, where_call)
                  tcs[k] = c
                  c.message = ev
                  local cid = c.id
                  if cid ~= None then ids[cid] = c; last_id = cid end
               end
            end
            no = no + 1
            out[no] = setmetatable(ev, Event)
            idx = idx + 1
         elseif el.type ~= nil then
            local c = new_call(el, idx, tostring(idx), false, where)
            c.message = nil -- top-level: no parent message
            if c.id ~= None then ids[c.id] = c; last_id = c.id end
            no = no + 1
            out[no] = c
            idx = idx + 1
         elseif el.tools ~= nil then
            local tools = el.tools
            if not is_array_table(tools) then invalid(where() .. ".tools must be a list") end
            local outer = server_of(el)
            for k = 1, #tools do
               no = no + 1
               out[no] = new_tool(tools[k], idx, outer)
               idx = idx + 1
            end
         else
            invalid("Input should be a list of one of (Message, ToolCall, ToolOutput, Tool). See "
               .. "the documentation for the schema requirements.")
         end
      end
   end)
   if not ok then
      if type(e) == "table" and e.invalid then return nil, err_obj(e.invalid, pos) end
      error(e, 0)
   end
   return out, ids, last_id
end

function M.append(st, raw)
   if type(raw) ~= "table" or raw == None or (next(raw) ~= nil and #raw == 0) then
      return nil, { code = "trace_invalid", message = "Input Validation Error: the trace must be a list of events" }
   end
   local out, ids, last_id = build(st, raw)
   if not out then return nil, ids end
   -- commit
   local events, flat = st.events, st.flat
   local ne, nf = #events, #flat
   local msgs, calls, outs, tools = st.messages, st.calls, st.outputs, st.tools
   for i = 1, #out do
      local ev = out[i]
      ne = ne + 1
      events[ne] = ev
      nf = nf + 1
      flat[nf] = ev
      ev.seq = nf
      local k = ev.kind
      if k == "Message" then
         msgs[#msgs + 1] = ev
         local tcs = ev.tool_calls
         for j = 1, #tcs do
            local c = tcs[j]
            nf = nf + 1
            flat[nf] = c
            c.seq = nf
            calls[#calls + 1] = c
         end
      elseif k == "ToolCall" then
         calls[#calls + 1] = ev
      elseif k == "ToolOutput" then
         outs[#outs + 1] = ev
      else
         tools[#tools + 1] = ev
      end
   end
   local by_id = st.by_id
   for id, c in pairs(ids) do by_id[id] = c end
   st.last_id = last_id
   return out
end

-- trace.validate(raw): the same as normalize (validation and normalisation are one pass).
function M.validate(raw)
   return M.normalize(raw)
end

function M.normalize(raw)
   local st = M.new()
   local out, err = M.append(st, raw)
   if not out then return nil, err end
   return st
end

------------------------------------------------------------------------------------------------
-- §5.6 type-based selection

local descend

local function visit(T, v, out)
   if v == nil or v == None then return end
   local tv = type(v)
   if tv == "string" then
      if T == "str" then out[#out + 1] = v end
      return
   end
   if tv == "number" then
      if (T == "int" and mtype(v) == "integer") or (T == "float" and mtype(v) == "float") then
         out[#out + 1] = v
      end
      return
   end
   if tv == "boolean" then
      if T == "bool" then out[#out + 1] = v end
      return
   end
   if tv ~= "table" then return end
   local mt = getmetatable(v)
   local name
   if mt == Event or mt == Record then name = v.kind
   elseif mt == List then name = "list"
   elseif mt == Dict then name = "dict"
   elseif mt == Contents then name = "Contents"
   elseif mt == value.Str then
      if T == "str" then out[#out + 1] = v end
      return
   elseif mt == value.Tuple then name = "tuple"
   end
   if name == T then out[#out + 1] = v; return end
   descend(T, v, mt, out)
end

-- field visit of a container read from `parent` under `key` (keeps locations)
local function visit_field(T, parent, key, out)
   local v = parent[key]
   if v == nil or v == None then return end
   visit(T, value.wrap(v, parent, key), out)
end

descend = function(T, v, mt, out)
   if mt == Event then
      local k = v.kind
      if k == "Message" then
         visit_field(T, v, "content", out); visit_field(T, v, "role", out)
         visit_field(T, v, "tool_calls", out)
      elseif k == "ToolCall" then
         visit_field(T, v, "id", out); visit_field(T, v, "type", out)
         visit_field(T, v, "function", out)
      elseif k == "ToolOutput" then
         visit_field(T, v, "role", out); visit_field(T, v, "content", out)
         visit_field(T, v, "tool_call_id", out)
      elseif k == "Tool" then
         visit_field(T, v, "inputSchema", out)
      end
   elseif mt == Record then
      local k = v.kind
      if k == "TextChunk" then visit_field(T, v, "text", out)
      elseif k == "Image" then visit_field(T, v, "image_url", out) end
      -- Function and ToolParameter are leaves
   elseif mt == List or mt == Contents or mt == value.Tuple then
      for i = 1, #v do visit(T, value.wrap(v[i], v, i - 1), out) end
   elseif mt == Dict then
      for _, key in ipairs(value.keys(v)) do visit(T, value.wrap(v[key], v, key), out) end
   elseif mt == nil then
      -- a raw array of events (the parsed trace)
      for i = 1, #v do visit(T, v[i], out) end
   end
end

-- Values of type T under root (spec §5.6). root: a value, or a state (the whole trace).
function M.select(T, root)
   local out = {}
   if type(root) == "table" and root.events and root.flat and getmetatable(root) == nil then
      if T == "Message" then for i, e in ipairs(root.messages) do out[i] = e end return out end
      if T == "ToolCall" then for i, e in ipairs(root.calls) do out[i] = e end return out end
      if T == "ToolOutput" then for i, e in ipairs(root.outputs) do out[i] = e end return out end
      if T == "Tool" then for i, e in ipairs(root.tools) do out[i] = e end return out end
      for _, e in ipairs(root.events) do visit(T, e, out) end
      return out
   end
   visit(T, root, out)
   return out
end

return M

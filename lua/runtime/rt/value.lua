-- rt.value: the Python-compatible value model of the policy language.
--
-- Representation (docs/internals.md §3):
--   None            cjson.null (M.None); a missing key is Lua nil
--   bool/int/float  Lua booleans / integers / floats (JSON numbers that are integral become
--                   integers in M.from_json, since cjson decodes every number as a float)
--   str             a plain Lua string (UTF-8), or a *located string*: a table with metatable
--                   M.Str, fields `s` (the plain string) and `loc` (its path in the trace, without
--                   the "messages." prefix, e.g. "3.content"). Located strings are produced only
--                   by M.attr / M.index / M.iter / M.items when they read a string out of a
--                   located container; everything a policy computes is a plain string.
--                   Library code calls M.str(x) for the plain string and M.loc(x) for the path.
--   list            table with metatable M.List (1-based array; elements never nil)
--   dict            table with metatable M.Dict (string keys); key order: M.keys(d)
--   tuple           table with metatable M.Tuple (from tuple(...) only)
--   Contents        a chunk list (message content made of chunks): metatable M.Contents
--   events          metatable M.Event; `kind` ("Message", "ToolCall", "ToolOutput", "Tool"),
--                   `idx` (trace index), `path` ("3", "1.tool_calls.0"), `seq` (position in the
--                   flattened sequence, 1-based) and the wire fields (see docs/notes/runtime.md)
--   records         metatable M.Record, `kind` ("Function", "TextChunk", "Image",
--                   "ToolParameter") and the wire fields
-- Containers read from the trace carry their location in the weak table M.locs[t] (events in
-- ev.path).
local getmetatable, ipairs, math, next, pairs, pcall, rawequal, require, setmetatable, string, table,
   tonumber, tostring, type, utf8 =
   getmetatable, ipairs, math, next, pairs, pcall, rawequal, require, setmetatable, string, table,
   tonumber, tostring, type, utf8
_ENV = nil

local cjson = require "cjson"
local rterr = require "rt.error"
local raise = rterr.raise

local M = {}

local None = cjson.null
M.None = None

M.List = { __name = "list" }
M.Dict = { __name = "dict" }
M.Tuple = { __name = "tuple" }
M.Contents = { __name = "Contents" }
M.Event = { __name = "Event" }
M.Record = { __name = "Record" }
M.Str = { __name = "str" }
M.Method = { __name = "method" } -- bound method value {obj=, name=}

local List, Dict, Tuple, Contents, Event, Record, Str, Method =
   M.List, M.Dict, M.Tuple, M.Contents, M.Event, M.Record, M.Str, M.Method

M.locs = setmetatable({}, { __mode = "k" })  -- container -> path
M.order = setmetatable({}, { __mode = "k" }) -- dict -> array of keys in insertion order
local locs, order = M.locs, M.order

local mtype = math.type
local getmt, setmt = getmetatable, setmetatable
local sfmt = string.format

------------------------------------------------------------------------------------------------
-- constructors

function M.list(t) return setmt(t or {}, List) end
function M.dict(t, keys)
   t = setmt(t or {}, Dict)
   if keys then order[t] = keys end
   return t
end
function M.tuple(t) return setmt(t or {}, Tuple) end
function M.located(s, loc)
   if loc == nil then return s end
   return setmt({ s = s, loc = loc }, Str)
end

-- Deep conversion of decoded JSON (cjson) into values: arrays -> List, objects -> Dict,
-- integral floats -> integers. An empty table (cjson cannot tell [] from {}) becomes an empty
-- List; M.eq treats empty containers as equal.
local function is_array(t)
   if next(t) == nil then return true end
   local n = #t
   if n == 0 then return false end
   local c = 0
   for _ in pairs(t) do c = c + 1 end
   return c == n
end
M.is_array = is_array

local function from_json(x)
   local tx = type(x)
   if tx == "number" then
      if mtype(x) == "float" and x == math.floor(x) and x > -2^53 and x < 2^53 then
         return math.tointeger(x)
      end
      return x
   elseif tx == "table" then
      if x == None then return x end
      local mt = getmt(x)
      if mt ~= nil then return x end
      if is_array(x) then
         for i = 1, #x do x[i] = from_json(x[i]) end
         return setmt(x, List)
      end
      for k, v in pairs(x) do x[k] = from_json(v) end
      return setmt(x, Dict)
   end
   return x
end
M.from_json = from_json

------------------------------------------------------------------------------------------------
-- strings and locations

local function str(x)
   if type(x) == "string" then return x end
   if getmt(x) == Str then return x.s end
   return nil
end
M.str = str

function M.is_str(x)
   return type(x) == "string" or getmt(x) == Str
end

-- The location of a value in the trace (path without "messages."), or nil.
function M.loc(x)
   local tx = type(x)
   if tx ~= "table" then return nil end
   local mt = getmt(x)
   if mt == Str then return x.loc end
   if mt == Event then return x.path end
   return locs[x]
end

-- Code points.
local utf8len, utf8offset = utf8.len, utf8.offset
local function cplen(s)
   local n = utf8len(s)
   if n then return n end
   return #s -- invalid UTF-8: count bytes
end
M.cplen = cplen

-- Code point offset (0-based) of byte offset b (1-based byte index of a character start).
function M.byte_to_cp(s, b)
   if b <= 1 then return 0 end
   local n = utf8len(s, 1, b - 1)
   return n or (b - 1)
end

-- Byte index (1-based) of code point offset cp (0-based); #s+1 for the end.
function M.cp_to_byte(s, cp)
   if cp <= 0 then return 1 end
   local b = utf8offset(s, cp + 1)
   return b or (#s + 1)
end

-- Substring by 0-based code point offsets [i, j).
function M.cp_sub(s, i, j)
   local bi = M.cp_to_byte(s, i)
   local bj = M.cp_to_byte(s, j)
   return s:sub(bi, bj - 1)
end

------------------------------------------------------------------------------------------------
-- type names (Python class names)

local function typename(x)
   local tx = type(x)
   if x == nil then return "NoneType" end
   if x == None then return "NoneType" end
   if tx == "boolean" then return "bool" end
   if tx == "number" then return mtype(x) == "integer" and "int" or "float" end
   if tx == "string" then return "str" end
   if tx == "function" then return "function" end
   local mt = getmt(x)
   if mt == Str then return "str" end
   if mt == List then return "list" end
   if mt == Dict then return "dict" end
   if mt == Tuple then return "tuple" end
   if mt == Contents then return "Contents" end
   if mt == Event or mt == Record then return x.kind end
   if mt == Method then return "method" end
   if mt and mt.__name then return mt.__name end
   if tx == "table" then return is_array(x) and "list" or "dict" end
   return tx
end
M.typename = typename

local function is_list(x)
   local mt = getmt(x)
   if mt == List or mt == Tuple or mt == Contents then return true end
   if mt == nil and type(x) == "table" and x ~= None then return is_array(x) end
   return false
end
M.is_list = is_list

local function is_dict(x)
   local mt = getmt(x)
   if mt == Dict then return true end
   if mt == nil and type(x) == "table" and x ~= None then return not is_array(x) end
   return false
end
M.is_dict = is_dict

function M.is_event(x) return getmt(x) == Event end
function M.is_none(x) return x == None or x == nil end

local function tostring_less(a, b) return tostring(a) < tostring(b) end

-- keys of a dict, in insertion order when known, else sorted (deterministic)
local function keys(d)
   local ks = order[d]
   if ks then
      local out, n = {}, 0
      for _, k in ipairs(ks) do
         if d[k] ~= nil then n = n + 1; out[n] = k end
      end
      -- common case: the order names every key of d exactly once (a few keys: checked directly)
      if n <= 8 then
         local total = 0
         for _ in pairs(d) do total = total + 1 end
         local distinct = total == n
         for i = 2, distinct and n or 0 do
            for j = 1, i - 1 do
               if out[i] == out[j] then distinct = false; break end
            end
            if not distinct then break end
         end
         if distinct then return out end
      end
      -- keys added later without order information
      if n ~= 0 or next(d) ~= nil then
         local seen = {}
         for _, k in ipairs(out) do seen[k] = true end
         local extra = {}
         for k in pairs(d) do if not seen[k] then extra[#extra + 1] = k end end
         if #extra > 0 then
            table.sort(extra, tostring_less)
            for _, k in ipairs(extra) do n = n + 1; out[n] = k end
         end
      end
      return out
   end
   local out, n = {}, 0
   for k in pairs(d) do n = n + 1; out[n] = k end
   if n > 1 then table.sort(out, tostring_less) end
   return out
end
M.keys = keys

------------------------------------------------------------------------------------------------
-- truthiness

local function truthy(x)
   if x == nil or x == None or x == false then return false end
   if x == true then return true end
   local tx = type(x)
   if tx == "number" then return x ~= 0 end
   if tx == "string" then return x ~= "" end
   if tx == "table" then
      local mt = getmt(x)
      if mt == Str then return x.s ~= "" end
      if mt == Event or mt == Record or mt == Method then return true end
      if mt == List or mt == Tuple or mt == Contents then return x[1] ~= nil end
      if mt == Dict then return next(x) ~= nil end
      if mt == nil then return next(x) ~= nil end
      if mt.__len then return #x > 0 end
      return true
   end
   return true
end
M.truthy = truthy

------------------------------------------------------------------------------------------------
-- equality and ordering (Python)

local function num(x)
   -- numeric value of a Python number (bool counts as int), else nil
   local tx = type(x)
   if tx == "number" then return x end
   if tx == "boolean" then return x and 1 or 0 end
   return nil
end

local eq
eq = function(a, b)
   if rawequal(a, b) then
      return true
   end
   if a == nil then a = None end
   if b == nil then b = None end
   if a == b then return true end
   local ta, tb = type(a), type(b)
   local na, nb = num(a), num(b)
   if na ~= nil or nb ~= nil then
      if na == nil or nb == nil then return false end
      return na == nb
   end
   local sa, sb = str(a), str(b)
   if sa or sb then
      return sa ~= nil and sb ~= nil and sa == sb
   end
   if ta ~= "table" or tb ~= "table" then return false end
   if a == None or b == None then return false end
   local ma, mb = getmt(a), getmt(b)
   if ma == Event or mb == Event or ma == Record or mb == Record then
      if ma ~= mb then return false end
      if ma == Event then return a.kind == b.kind and a.path == b.path and a.idx == b.idx end
      -- records (chunks, functions, tool parameters): same class and equal fields
      if a.kind ~= b.kind then return false end
      for k, v in pairs(a) do
         local w = b[k]
         if w == nil or not eq(v, w) then return false end
      end
      for k in pairs(b) do
         if a[k] == nil then return false end
      end
      return true
   end
   local la, lb = is_list(a), is_list(b)
   local da, db = is_dict(a), is_dict(b)
   if (la or da) and (lb or db) and next(a) == nil and next(b) == nil then
      -- empty containers: cjson cannot tell [] from {}
      if (ma == Tuple) ~= (mb == Tuple) then return false end
      return true
   end
   if la and lb then
      if (ma == Tuple) ~= (mb == Tuple) then return false end
      local n = #a
      if #b ~= n then return false end
      for i = 1, n do
         if not eq(a[i], b[i]) then return false end
      end
      return true
   end
   if da and db then
      for k, v in pairs(a) do
         local w = b[k]
         if w == nil or not eq(v, w) then return false end
      end
      for k in pairs(b) do
         if a[k] == nil then return false end
      end
      return true
   end
   return false
end
M.eq = eq
function M.ne(a, b) return not eq(a, b) end

local function order_error(op, a, b)
   raise("type", sfmt("'%s' not supported between instances of '%s' and '%s'", op,
      typename(a), typename(b)))
end

-- three-way comparison; raises a type error for incomparable values
local cmp
cmp = function(a, b, op)
   local na, nb = num(a), num(b)
   if na ~= nil and nb ~= nil then
      if na < nb then return -1 elseif na > nb then return 1 else return 0 end
   end
   local sa, sb = str(a), str(b)
   if sa ~= nil and sb ~= nil then
      -- byte order of UTF-8 is code point order
      if sa < sb then return -1 elseif sa > sb then return 1 else return 0 end
   end
   if is_list(a) and is_list(b) and (getmt(a) == Tuple) == (getmt(b) == Tuple) then
      local n = math.min(#a, #b)
      for i = 1, n do
         if not eq(a[i], b[i]) then return cmp(a[i], b[i], op) end
      end
      if #a < #b then return -1 elseif #a > #b then return 1 else return 0 end
   end
   order_error(op, a, b)
end
M.cmp = cmp
function M.lt(a, b) return cmp(a, b, "<") < 0 end
function M.le(a, b) return cmp(a, b, "<=") <= 0 end
function M.gt(a, b) return cmp(a, b, ">") > 0 end
function M.ge(a, b) return cmp(a, b, ">=") >= 0 end

-- `is` (LANGUAGE.md Fixed 11): value equality for scalars, identity for containers and events.
function M.is(a, b)
   if a == nil then a = None end
   if b == nil then b = None end
   if a == None or b == None then return a == b end
   local ta, tb = type(a), type(b)
   if ta == "boolean" or tb == "boolean" then return a == b end
   if ta == "number" and tb == "number" then return mtype(a) == mtype(b) and a == b end
   local sa, sb = str(a), str(b)
   if sa ~= nil or sb ~= nil then return sa == sb end
   return rawequal(a, b)
end

------------------------------------------------------------------------------------------------
-- arithmetic (Python semantics)

local function arith_error(op, a, b)
   raise("type", sfmt("unsupported operand type(s) for %s: '%s' and '%s'", op, typename(a),
      typename(b)))
end

local function concat_list(a, b)
   local out = {}
   for i = 1, #a do out[i] = a[i] end
   local n = #a
   for i = 1, #b do out[n + i] = b[i] end
   return setmt(out, getmt(a) == Tuple and Tuple or List)
end

function M.add(a, b)
   local na, nb = num(a), num(b)
   if na and nb then return na + nb end
   local sa, sb = str(a), str(b)
   if sa and sb then return sa .. sb end
   if is_list(a) and is_list(b) and (getmt(a) == Tuple) == (getmt(b) == Tuple) then
      return concat_list(a, b)
   end
   arith_error("+", a, b)
end

function M.sub(a, b)
   local na, nb = num(a), num(b)
   if na and nb then return na - nb end
   arith_error("-", a, b)
end

local function repeat_seq(s, n)
   if n <= 0 then
      return type(s) == "string" and "" or setmt({}, getmt(s) == Tuple and Tuple or List)
   end
   if type(s) == "string" then return s:rep(n) end
   local out, k = {}, 0
   for _ = 1, n do
      for i = 1, #s do k = k + 1; out[k] = s[i] end
   end
   return setmt(out, getmt(s) == Tuple and Tuple or List)
end

function M.mul(a, b)
   local na, nb = num(a), num(b)
   if na and nb then return na * nb end
   local sa, sb = str(a), str(b)
   if sa and nb and mtype(nb) == "integer" then return repeat_seq(sa, nb) end
   if sb and na and mtype(na) == "integer" then return repeat_seq(sb, na) end
   if is_list(a) and nb and mtype(nb) == "integer" then return repeat_seq(a, nb) end
   if is_list(b) and na and mtype(na) == "integer" then return repeat_seq(b, na) end
   arith_error("*", a, b)
end

function M.div(a, b)
   local na, nb = num(a), num(b)
   if na and nb then
      if nb == 0 then raise("zero-division", "division by zero") end
      return (na + 0.0) / nb
   end
   arith_error("/", a, b)
end

function M.floordiv(a, b)
   local na, nb = num(a), num(b)
   if na and nb then
      if nb == 0 then raise("zero-division", "integer division or modulo by zero") end
      return na // nb
   end
   arith_error("//", a, b)
end

function M.mod(a, b)
   local na, nb = num(a), num(b)
   if na and nb then
      if nb == 0 then raise("zero-division", "integer modulo by zero") end
      return na % nb -- Lua % is floor modulo, as Python
   end
   arith_error("%", a, b)
end

function M.pow(a, b)
   local na, nb = num(a), num(b)
   if na and nb then
      if mtype(na) == "integer" and mtype(nb) == "integer" and nb >= 0 then
         local r = 1
         for _ = 1, nb do r = r * na end
         return r
      end
      if na == 0 and nb < 0 then raise("zero-division", "0.0 cannot be raised to a negative power") end
      return na ^ nb
   end
   arith_error("** or pow()", a, b)
end

function M.neg(a)
   local na = num(a)
   if na then return -na end
   raise("type", sfmt("bad operand type for unary -: '%s'", typename(a)))
end

function M.pos(a)
   local na = num(a)
   if na then return na end
   raise("type", sfmt("bad operand type for unary +: '%s'", typename(a)))
end

function M.not_(a) return not truthy(a) end

------------------------------------------------------------------------------------------------
-- JSON-object strings (spec §6.4): `.field` on a string that parses as JSON

local json_cache, json_n = {}, 0
local json_fail = {}
local JSON_START = {}
for c in ("{[\"-0123456789tfn \t\r\n"):gmatch(".") do JSON_START[c] = true end
local function parse_json_string(s)
   if not JSON_START[s:sub(1, 1)] then return nil end -- cannot be JSON: skip the decoder
   local v = json_cache[s]
   if v == json_fail then return nil end
   if v ~= nil then return v end
   local ok, r = pcall(cjson.decode, s)
   if json_n >= 4096 then json_cache, json_n = {}, 0 end -- bounded: a worker lives long
   json_n = json_n + 1
   if not ok then
      json_cache[s] = json_fail
      return nil
   end
   if r == nil then r = None end
   r = from_json(r)
   json_cache[s] = r
   return r
end
M.parse_json_string = parse_json_string

------------------------------------------------------------------------------------------------
-- member access, indexing, methods

-- Attribute allow-lists per class (spec §5.2).
M.ATTRS = {
   Message = { "role", "content", "tool_calls", "metadata" },
   ToolCall = { "function", "type", "id", "metadata" },
   Function = { "name", "arguments" },
   ToolOutput = { "role", "content", "tool_call_id", "metadata" },
   TextChunk = { "type", "text" },
   Image = { "type", "image_url" },
   Tool = { "name", "description", "inputSchema", "server" },
   ToolParameter = { "type", "name", "description", "required", "properties",
      "additionalProperties", "items", "enum" },
}
local ATTRSET = {}
for k, names in pairs(M.ATTRS) do
   local s = {}
   for _, n in ipairs(names) do s[n] = true end
   ATTRSET[k] = s
end

M.STR_METHODS = { strip = true, lower = true, upper = true, splitlines = true, split = true,
   format = true, join = true }
M.DICT_METHODS = { keys = true, values = true, items = true, get = true }
M.CONTENTS_METHODS = { text = true, image = true }

-- wrap a value read from `parent` under `key`: strings become located strings
local function wrap(v, parent, key)
   if type(v) == "string" then
      local p = M.loc(parent)
      if p then return setmt({ s = v, loc = p .. "." .. tostring(key) }, Str) end
      return v
   end
   if type(v) == "table" and v ~= None and locs[v] == nil then
      local mt = getmt(v)
      if mt == List or mt == Dict or mt == Contents or mt == Record then
         local p = M.loc(parent)
         if p then locs[v] = p .. "." .. tostring(key) end
      end
   end
   return v
end
M.wrap = wrap

local function bound_method(obj, name)
   return setmt({ obj = obj, name = name }, Method)
end

function M.attr(obj, name)
   if obj == nil or obj == None then
      raise("attribute", sfmt("Attribute %s not found on None.", name))
   end
   local mt = getmt(obj)
   if mt == Event or mt == Record then
      local allowed = ATTRSET[obj.kind]
      if not allowed or not allowed[name] then
         raise("attribute", sfmt("Invariant Attribute Error: Attribute %s not found in %s. "
            .. "Available attributes are: %s", name, tostring(obj.kind),
            table.concat(M.ATTRS[obj.kind] or {}, ", ")))
      end
      local v = obj[name]
      if v == nil then return None end
      return wrap(v, obj, name)
   end
   local s = str(obj)
   if s ~= nil then
      local parsed = parse_json_string(s)
      if parsed ~= nil then
         if is_dict(parsed) then
            local v = parsed[name]
            if v == nil then
               raise("key", sfmt("Object %s has no key %s (type: <class 'dict'>)", M.repr(parsed), name))
            end
            return v
         end
         raise("type", sfmt("'%s' object is not subscriptable", typename(parsed)))
      end
      if M.STR_METHODS[name] then return bound_method(obj, name) end
      raise("attribute", sfmt("Excessive Policy: Unavailable attribute %s for str values.", name))
   end
   if mt == Dict or (mt == nil and type(obj) == "table" and not is_array(obj)) then
      local v = obj[name]
      if v ~= nil then return wrap(v, obj, name) end
      if M.DICT_METHODS[name] then return bound_method(obj, name) end
      raise("attribute", sfmt("Excessive Policy: Unavailable attribute %s for dict values.", name))
   end
   if mt == Contents then
      if M.CONTENTS_METHODS[name] then return bound_method(obj, name) end
      raise("attribute", sfmt("Invariant Attribute Error: Attribute %s not found in Contents. "
         .. "Available attributes are: text, image", name))
   end
   if is_list(obj) then
      raise("attribute", sfmt("Attribute %s not found on list. Use list[index] to access elements.",
         name))
   end
   raise("attribute", sfmt("'%s' object has no attribute '%s'", typename(obj), name))
end

-- e[k] (spec §6.5)
function M.index(obj, key)
   if obj == nil or obj == None then
      raise("type", "'NoneType' object is not subscriptable")
   end
   local k = key
   local ks = str(key)
   if ks ~= nil then k = ks end
   local mt = getmt(obj)
   if mtype(k) == "integer" then
      local s = str(obj)
      if s ~= nil then
         local n = cplen(s)
         local i = k < 0 and n + k or k
         if i < 0 or i >= n then raise("index", "string index out of range") end
         local c = M.cp_sub(s, i, i + 1)
         local l = M.loc(obj)
         if l then return setmt({ s = c, loc = l, sub = (getmt(obj) == Str and obj.sub or 0) + i }, Str) end
         return c
      end
      if is_list(obj) then
         local n = #obj
         local i = k < 0 and n + k or k
         if i < 0 or i >= n then
            raise("index", (mt == Tuple and "tuple" or "list") .. " index out of range")
         end
         return wrap(obj[i + 1], obj, i)
      end
   end
   if mt == Event or mt == Record then
      raise("type", sfmt("'%s' object is not subscriptable", typename(obj)))
   end
   if is_dict(obj) then
      if type(k) == "number" and mtype(k) == "float" and k == math.floor(k) then
         k = math.tointeger(k)
      end
      local v = obj[k]
      if v == nil and type(k) == "number" then v = obj[tostring(k)] end
      if v == nil then
         raise("key", sfmt("Object %s has no key %s (type: <class 'dict'>)", M.repr(obj),
            M.tostr(key)))
      end
      return wrap(v, obj, k)
   end
   if str(obj) ~= nil then
      local parsed = parse_json_string(str(obj))
      if parsed ~= nil and is_dict(parsed) and type(k) == "string" then
         local v = parsed[k]
         if v == nil then
            raise("key", sfmt("Object %s has no key %s (type: <class 'dict'>)", M.repr(parsed), k))
         end
         return v
      end
      raise("type", sfmt("Object %s has no keys (type: <class 'str'>)", M.repr(obj)))
   end
   raise("type", sfmt("Object %s has no keys (type: <class '%s'>)", M.repr(obj), typename(obj)))
end

-- obj.name(args...) — dispatched to rt.methods (owned by the library):
--   methods.str[name](ctx, self, args, kwargs)       self: a str (maybe located)
--   methods.dict[name](ctx, self, args, kwargs)
--   methods.contents[name](ctx, self, args, kwargs)
-- Dict key lookup wins over methods, JSON-object strings win over str methods (spec §6.4).
local methods
function M.method(ctx, obj, name, args, kwargs)
   local f = M.attr(obj, name)
   return M.call(ctx, f, args, kwargs)
end

-- call a callable value: Lua function fn(ctx, args, kwargs), or a bound method
function M.call(ctx, f, args, kwargs)
   args = args or { n = 0 }
   if args.n == nil then args.n = #args end
   local tf = type(f)
   if tf == "function" then return f(ctx, args, kwargs) end
   local mt = getmt(f)
   if mt == Method then
      methods = methods or require "rt.methods"
      local obj, name = f.obj, f.name
      local tab
      if str(obj) ~= nil then tab = methods.str
      elseif getmt(obj) == Contents then tab = methods.contents
      else tab = methods.dict end
      local fn = tab and tab[name]
      if not fn then
         raise("attribute", sfmt("Excessive Policy: Unavailable attribute %s for %s values.", name,
            typename(obj)))
      end
      return fn(ctx, obj, args, kwargs)
   end
   if mt and mt.__call then return f(ctx, args, kwargs) end
   raise("type", sfmt("'%s' object is not callable", typename(f)))
end

------------------------------------------------------------------------------------------------
-- iteration and length

-- Elements of an iterable as a Lua array (located strings where the container is located).
function M.iter(x)
   if x == nil or x == None then
      raise("type", "'NoneType' object is not iterable")
   end
   local s = str(x)
   if s ~= nil then
      local out, i = {}, 0
      local l = M.loc(x)
      for _, c in utf8.codes(s) do
         local ch = utf8.char(c)
         out[#out + 1] = l and setmt({ s = ch, loc = l, sub = (getmt(x) == Str and x.sub or 0) + i }, Str) or ch
         i = i + 1
      end
      return out
   end
   if is_list(x) then
      local out = {}
      for i = 1, #x do out[i] = wrap(x[i], x, i - 1) end
      return out
   end
   if is_dict(x) then
      local out = {}
      for i, k in ipairs(keys(x)) do out[i] = k end
      return out
   end
   raise("type", sfmt("'%s' object is not iterable", typename(x)))
end

function M.len(x)
   local s = str(x)
   if s ~= nil then return cplen(s) end
   if type(x) == "table" and x ~= None then
      local mt = getmt(x)
      if mt == Event or mt == Record or mt == Method then
         raise("type", sfmt("object of type '%s' has no len()", typename(x)))
      end
      if is_list(x) then return #x end
      local n = 0
      for _ in pairs(x) do n = n + 1 end
      return n
   end
   raise("type", sfmt("object of type '%s' has no len()", typename(x)))
end

------------------------------------------------------------------------------------------------
-- `in` (spec §6.6, LANGUAGE.md Fixed 6): substring test with marks; membership otherwise.

function M.contains(ctx, needle, hay)
   if hay == nil or hay == None then return false end
   local hs = str(hay)
   local ns = str(needle)
   if hs ~= nil then
      if ns == nil then
         if is_list(needle) then
            local out = {}
            for i = 1, #needle do out[i] = M.contains(ctx, needle[i], hay) end
            return setmt(out, List)
         end
         raise("type", sfmt("'in <string>' requires string as left operand, not %s",
            typename(needle)))
      end
      if ns == "" then return true end
      local found = false
      local init = 1
      local l = ctx and M.loc(hay)
      while true do
         local a, b = hs:find(ns, init, true)
         if not a then break end
         found = true
         if l then
            local st = M.byte_to_cp(hs, a)
            ctx:mark(hay, st, st + cplen(ns))
         else
            break
         end
         init = b + 1
      end
      return found
   end
   local mt = getmt(hay)
   if mt == Contents then
      if ns == nil then return false end
      for i = 1, #hay do
         local ch = hay[i]
         local t = ch.kind == "TextChunk" and str(ch.text)
         if t and t:find(ns, 1, true) then return true end
         if ch.kind == "Image" and type(ch.image_url) == "table" then
            for _, u in pairs(ch.image_url) do
               local us = str(u)
               if us and us:find(ns, 1, true) then return true end
            end
         end
      end
      return false
   end
   if is_list(needle) and ns == nil and mt ~= Event then
      if is_list(hay) or is_dict(hay) then
         local out = {}
         for i = 1, #needle do out[i] = M.contains(ctx, needle[i], hay) end
         return setmt(out, List)
      end
   end
   if is_list(hay) then
      for i = 1, #hay do
         if eq(hay[i], needle) then return true end
      end
      return false
   end
   if is_dict(hay) then
      local k = ns or needle
      if type(k) == "number" and hay[k] == nil then k = tostring(k) end
      return hay[k] ~= nil
   end
   raise("type", sfmt("argument of type '%s' is not iterable", typename(hay)))
end

------------------------------------------------------------------------------------------------
-- Python str() and repr()

local function float_repr(x)
   if x ~= x then return "nan" end
   if x == math.huge then return "inf" end
   if x == -math.huge then return "-inf" end
   if x == 0 then return (1 / x < 0) and "-0.0" or "0.0" end
   local p, e
   for prec = 1, 17 do
      e = sfmt("%." .. (prec - 1) .. "e", x)
      if tonumber(e) == x then p = prec; break end
   end
   local mant, exp = e:match("^(-?[%d%.]+)e([-+]%d+)$")
   exp = tonumber(exp)
   if exp >= -4 and exp < 16 then
      local dec = p - 1 - exp
      if dec < 1 then dec = 1 end
      local s = sfmt("%." .. dec .. "f", x)
      -- trim trailing zeros but keep one decimal
      s = s:gsub("(%.%d-)0+$", "%1"):gsub("%.$", ".0")
      return s
   end
   mant = mant:gsub("(%.%d-)0+$", "%1"):gsub("%.$", "")
   return sfmt("%se%s%02d", mant, exp < 0 and "-" or "+", math.abs(exp))
end
M.float_repr = float_repr

local function str_repr(s)
   local q = "'"
   if s:find("'", 1, true) and not s:find('"', 1, true) then q = '"' end
   local out = s:gsub("[%c\\'\"]", function(c)
      if c == "\\" then return "\\\\" end
      if c == "\n" then return "\\n" end
      if c == "\r" then return "\\r" end
      if c == "\t" then return "\\t" end
      if c == q then return "\\" .. c end
      if c == "'" or c == '"' then return c end
      return sfmt("\\x%02x", c:byte())
   end)
   return q .. out .. q
end
M.str_repr = str_repr

local repr

-- hook for event renderings (rt.violation installs the Python model renderings)
M.event_repr = function(ev)
   return sfmt("<%s %s>", tostring(ev.kind), tostring(ev.path))
end

repr = function(x, seen)
   if x == nil or x == None then return "None" end
   local tx = type(x)
   if tx == "boolean" then return x and "True" or "False" end
   if tx == "number" then
      if mtype(x) == "integer" then return sfmt("%d", x) end
      return float_repr(x)
   end
   if tx == "string" then return str_repr(x) end
   local mt = getmt(x)
   if mt == Str then return str_repr(x.s) end
   if mt == Event or mt == Record then return M.event_repr(x, seen) end
   if tx == "table" then
      seen = seen or {}
      if seen[x] then return "[...]" end
      seen[x] = true
      local parts = {}
      if is_list(x) then
         for i = 1, #x do parts[i] = repr(x[i], seen) end
         seen[x] = nil
         if mt == Tuple then
            if #parts == 1 then return "(" .. parts[1] .. ",)" end
            return "(" .. table.concat(parts, ", ") .. ")"
         end
         return "[" .. table.concat(parts, ", ") .. "]"
      end
      if mt == Dict or mt == nil then
         for _, k in ipairs(keys(x)) do
            parts[#parts + 1] = repr(k, seen) .. ": " .. repr(x[k], seen)
         end
         seen[x] = nil
         return "{" .. table.concat(parts, ", ") .. "}"
      end
      if mt == Method then return "<built-in method " .. x.name .. ">" end
   end
   if tx == "function" then return "<function>" end
   return tostring(x)
end
M.repr = repr

-- Python str()
function M.tostr(x)
   local s = str(x)
   if s ~= nil then return s end
   return repr(x)
end

------------------------------------------------------------------------------------------------
-- the evaluation context (the engine creates one per model; library code only calls ctx:mark)

local Ctx = {}
Ctx.__index = Ctx
M.Ctx = Ctx

-- A new context. `marks` collects {path, start, stop} in the order made.
function M.ctx(fields)
   local c = fields or {}
   c.marks = c.marks or {}
   return setmt(c, Ctx)
end

-- Record a range on x (0-based code point offsets, end exclusive) when x is located.
-- A located string that is itself a substring of a trace string (x.sub) shifts the offsets.
function Ctx:mark(x, start, stop)
   if getmt(x) ~= Str then
      local l = M.loc(x)
      if l and start == nil then self.marks[#self.marks + 1] = { l } end
      return
   end
   local base = x.sub or 0
   local m = self.marks
   if start == nil then
      m[#m + 1] = { x.loc }
   else
      m[#m + 1] = { x.loc, base + start, base + stop }
   end
end

return M

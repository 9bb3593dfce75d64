-- worker: the op dispatcher of a worker process (docs/internals.md §2).
--   local worker = require "worker";  response_json = worker.handle(request_json)
--   (the C serve loop: response_json, owed, stateful = worker.serve(request_json); write it;
--   worker.after(); stateful arms the idle trim, see M.serve)
-- One Lua state per session: policies by pid, monitors by mid, and a bounded LRU of compiled
-- policies (keyed by language and source) for the stateless `check`. Every answer is
-- {"ok":true,"result":{...}} or {"ok":false,"error":{code,message,...}}. Sandbox limit errors
-- (memory cap, instruction budget, deadline) are re-raised so that the C serve loop answers
-- memory_limit / deadline_exceeded itself.
local cjson = require "cjson"
-- vigil.sandbox exists inside the C sandbox; under a stock lua5.4 (specs, tools) fall back to a
-- plain environment of the same shape (no sandbox guarantees there)
local have_sb, sandbox = pcall(require, "vigil.sandbox")
if not have_sb then
  local G = _G
  sandbox = { env = function()
    local e = {}
    for _, k in G.ipairs({ "assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal",
      "rawget", "rawlen", "rawset", "select", "setmetatable", "getmetatable", "tonumber",
      "tostring", "type", "xpcall", "_VERSION", "string", "table", "math", "utf8",
      "coroutine" }) do
      e[k] = G[k]
    end
    e._G = e
    return e
  end }
end

local pcall, error, type, tostring, pairs, next, load = pcall, error, type, tostring, pairs, next, load
local collectgarbage = collectgarbage
local getmetatable, setmetatable, select = getmetatable, setmetatable, select
local sfind, sgsub = string.find, string.gsub
local null = cjson.null

-- the runtime is optional here: ping and eval work without it
local have_rt, rt = pcall(require, "rt")
if not have_rt then rt = nil end
local rt_err = not have_rt and tostring(rt) or nil
do
  local ok = pcall(require, "compiler") -- loaded eagerly, before the jail closes
  local _ = ok
end
local have_trace, trace = pcall(require, "rt.trace")
local decode = (have_trace and type(trace) == "table" and trace.decode) or cjson.decode
local List = rt and rt.value and rt.value.List
local Dict = rt and rt.value and rt.value.Dict

_ENV = nil

local M = {}

-- limits raised inside a pcall must reach the C loop
local function is_limit(e)
  if type(e) ~= "string" then return false end
  return sfind(e, "not enough memory", 1, true) or sfind(e, "vigil-limit", 1, true)
end

local function rethrow_limit(e)
  if is_limit(e) then error(e, 0) end
end

local function err(code, message, extra)
  local e = { code = code, message = message }
  if extra then for k, v in pairs(extra) do e[k] = v end end
  return nil, e
end

-- cjson 2.1.0 encodes every empty table as {}: mark the empty ones that are arrays
local EMPTY = "\0vigil[]\0"
local EMPTY_JSON = '"\\u0000vigil[]\\u0000"'
local EMPTY_PAT = sgsub(EMPTY_JSON, "%p", "%%%0")
local ARRAY_KEYS = { violations = true, rules = true, diagnostics = true, ranges = true,
  args = true }

-- Returns t, or a copy of the path down to every empty array with that array replaced by the
-- sentinel: the tables rendered may share sub-tables with the session state (trace values,
-- monitor history), which must never be mutated.
local function fix_arrays(t, key, depth, seen)
  local mt = getmetatable(t)
  if next(t) == nil then
    if mt == Dict then return t end
    if (List and mt == List) or ARRAY_KEYS[key] then return EMPTY end
    return t
  end
  if depth > 200 or seen[t] then return t end
  seen[t] = true
  local copy
  for k, v in pairs(t) do
    if type(v) == "table" then
      local f = fix_arrays(v, k, depth + 1, seen)
      if f ~= v then
        if not copy then
          copy = {}
          for k2, v2 in pairs(t) do copy[k2] = v2 end
        end
        copy[k] = f
      end
    end
  end
  seen[t] = nil
  return copy or t
end

local function encode(t)
  local ok, s = pcall(cjson.encode, fix_arrays(t, nil, 0, {}))
  if not ok then
    rethrow_limit(s)
    return cjson.encode({ ok = false, error = { code = "internal",
      message = "response does not encode: " .. tostring(s) } })
  end
  if sfind(s, EMPTY_JSON, 1, true) then s = sgsub(s, EMPTY_PAT, "[]") end
  return s
end

local function opt(v) if v == null then return nil end return v end

local function need_rt()
  if not rt then return err("internal", "runtime module rt unavailable: " .. tostring(rt_err)) end
  return true
end

-- ---------------------------------------------------------------- session state

local policies = {}  -- pid -> policy
local monitors = {}  -- mid -> monitor
local CACHE_MAX = 64
local cache, cache_n, tick = {}, 0, 0 -- key -> {pol=, t=}

local function load_policy(req, name)
  local src, lang = req.policy, opt(req.language) or "invariant"
  if type(src) ~= "string" then return err("bad_request", "field 'policy' must be a string") end
  if type(lang) ~= "string" then return err("bad_request", "field 'language' must be a string") end
  return rt.load(src, lang, name)
end

local function cached_policy(req)
  local src, lang = req.policy, opt(req.language) or "invariant"
  if type(src) ~= "string" or type(lang) ~= "string" then return load_policy(req, "check") end
  local key = lang .. "\0" .. src
  tick = tick + 1
  local c = cache[key]
  if c then c.t = tick; return c.pol end
  local pol, e = load_policy(req, "check")
  if not pol then return nil, e end
  if cache_n >= CACHE_MAX then
    local oldk, oldt
    for k, v in pairs(cache) do
      if not oldt or v.t < oldt then oldk, oldt = k, v.t end
    end
    cache[oldk] = nil
    cache_n = cache_n - 1
  end
  cache[key] = { pol = pol, t = tick }
  cache_n = cache_n + 1
  return pol
end

local function policy_of(req)
  local pid = opt(req.pid)
  if pid ~= nil then
    local pol = policies[pid]
    if not pol then return err("not_found", "unknown policy id " .. tostring(pid)) end
    return pol
  end
  return load_policy(req, "inline")
end

local function rules_of(pol)
  return pol.rule_info or {}
end

-- ---------------------------------------------------------------- ops

local OPS = {}

function OPS.ping() return {} end

local function pack(...) return { n = select("#", ...), ... } end

function OPS.eval(req)
  local code = req.code
  if type(code) ~= "string" then return err("bad_request", "field 'code' must be a string") end
  local env = sandbox.env()
  local fn, perr = load(code, "=eval", "t", env)
  if not fn then return err("bad_request", tostring(perr)) end
  local r = pack(pcall(fn))
  if not r[1] then
    rethrow_limit(r[2])
    return err("evaluation_error", tostring(r[2]))
  end
  local v = r[2]
  if v == nil then v = null end
  local ok = pcall(cjson.encode, { v })
  if not ok then v = tostring(v) end
  return { value = v }
end

function OPS.compile(req)
  local ok, e = need_rt()
  if not ok then return nil, e end
  local pol, perr = load_policy(req, "compile")
  if not pol then return nil, perr end
  local out = { rules = rules_of(pol) }
  if opt(req.emit_lua) then out.lua = pol.lua end
  return out
end

function OPS.policy_put(req)
  local ok, e = need_rt()
  if not ok then return nil, e end
  local pid = opt(req.pid)
  if type(pid) ~= "string" and type(pid) ~= "number" then
    return err("bad_request", "field 'pid' is required")
  end
  local pol, perr = load_policy(req, tostring(pid))
  if not pol then return nil, perr end
  policies[pid] = pol
  return { rules = rules_of(pol) }
end

function OPS.policy_drop(req)
  local pid = opt(req.pid)
  if pid == nil or not policies[pid] then return err("not_found", "unknown policy id " .. tostring(pid)) end
  policies[pid] = nil
  return {}
end

function OPS.analyze(req)
  local ok, e = need_rt()
  if not ok then return nil, e end
  if req.trace == nil then return err("bad_request", "field 'trace' is required") end
  local pol, perr = policy_of(req)
  if not pol then return nil, perr end
  local vs, aerr = rt.analyze(pol, req.trace, opt(req.parameters))
  if not vs then return nil, aerr end
  return { violations = rt.render(vs, opt(req.format)) }
end

function OPS.check(req)
  local ok, e = need_rt()
  if not ok then return nil, e end
  if req.trace == nil then return err("bad_request", "field 'trace' is required") end
  local pol, perr = cached_policy(req)
  if not pol then return nil, perr end
  local past_len = opt(req.past_len)
  if past_len ~= nil and type(past_len) ~= "number" then
    return err("bad_request", "field 'past_len' must be a number")
  end
  local vs, aerr = rt.analyze(pol, req.trace, opt(req.parameters),
    past_len and { past_len = past_len } or nil)
  if not vs then return nil, aerr end
  return { violations = rt.render(vs, opt(req.format)) }
end

function OPS.monitor_new(req)
  local ok, e = need_rt()
  if not ok then return nil, e end
  local mid = opt(req.mid)
  if type(mid) ~= "string" and type(mid) ~= "number" then
    return err("bad_request", "field 'mid' is required")
  end
  local pol, perr = policy_of(req)
  if not pol then return nil, perr end
  local mon, merr = rt.monitor(pol, opt(req.parameters))
  if not mon then return nil, merr end
  monitors[mid] = mon
  return {}
end

function OPS.monitor_events(req)
  local ok, e = need_rt()
  if not ok then return nil, e end
  local mon = monitors[opt(req.mid) or false]
  if not mon then return err("not_found", "unknown monitor id " .. tostring(opt(req.mid))) end
  if type(req.events) ~= "table" then return err("bad_request", "field 'events' must be a list") end
  local vs, perr = rt.push(mon, req.events)
  if not vs then return nil, perr end
  return { violations = rt.render(vs, opt(req.format)), events_seen = mon.events_seen }
end

function OPS.monitor_drop(req)
  local mid = opt(req.mid)
  if mid == nil or not monitors[mid] then return err("not_found", "unknown monitor id " .. tostring(mid)) end
  monitors[mid] = nil
  return {}
end

-- ---------------------------------------------------------------- entry

-- ops that leave no state in the worker (what the host's stateless pool sends)
local STATELESS = { ping = true, check = true, compile = true }
local stateful = false -- a request that keeps state (a session's) has been served

local function handle(payload)
  local ok, req = pcall(decode, payload)
  if not ok then
    rethrow_limit(req)
    return encode({ ok = false, error = { code = "bad_request",
      message = "request is not valid JSON: " .. tostring(req):gsub("^[^:\n]*%.lua:%d+: ", "") } })
  end
  if type(req) ~= "table" then
    return encode({ ok = false, error = { code = "bad_request", message = "request is not a JSON object" } })
  end
  local op = OPS[req.op]
  if not op then
    return encode({ ok = false, error = { code = "bad_request", message = "unknown op " .. tostring(req.op) } })
  end
  if not STATELESS[req.op] then stateful = true end
  local r = pack(pcall(op, req))
  if not r[1] then
    rethrow_limit(r[2])
    return encode({ ok = false, error = { code = "internal", message = tostring(r[2]) } })
  end
  if r[2] == nil then
    local e = r[3]
    if type(e) ~= "table" then e = { code = "internal", message = tostring(e) } end
    if e.code == nil then e.code = "internal" end
    if e.message == nil then e.message = e.code end
    return encode({ ok = false, error = e })
  end
  return encode({ ok = true, result = r[2] })
end

-- Garbage collection of large requests. Nearly everything a large request allocates (the decoded
-- trace, its normalised events, the models) stays reachable until the answer is encoded, so an
-- incremental collection during the request only re-marks live data (11-20 % of a 10,000-event
-- check in the worker). A request of GC_BIG bytes or more therefore runs with the collector
-- stopped, and owes one full collection, when its data is garbage, if the heap has grown to more
-- than twice what the last such collection left (the pacing of Lua's default pause): a session
-- holding large monitor histories does not pay a full mark of them after every request.
-- The collection runs after the answer is out: the C serve loop (core/worker.c) calls
-- M.serve(payload) -> answer, owed, stateful, writes the answer, and then, when owed,
-- M.after(), under the same sandbox limits: the host reads the answer while the worker collects (10-20 ms at 10,000
-- events). The collector stays stopped while a collection is owed. M.handle(payload) -> answer
-- is serve + after in one call (in-process callers: the CLI, specs, benchmarks). A collection
-- still owed when a request comes (after never called) runs first. Memory stays capped: when the
-- sandbox allocator refuses a block at the session cap, Lua runs an emergency full collection and
-- retries before failing, stopped collector or not. A limit error raised out of a request leaves
-- the collector stopped; the next request restarts it first.
local GC_BIG = 64 * 1024
local gc_base -- heap size (KiB) after the last full collection here, or a smaller heap seen since
local gc_owed = false -- a large request left its full collection for M.after

-- Runs the full collection the last request left owed; true when it ran one.
function M.after()
  if not gc_owed then return false end
  gc_owed = false
  collectgarbage("restart")
  collectgarbage()
  gc_base = collectgarbage("count")
  return true
end

-- serve(payload) -> answer, owed, stateful: owed is true when M.after has a collection to run;
-- stateful once the worker has served a request that keeps state (the C loop then gives the
-- worker's memory back when it goes idle; the stateless pool stays warm)
function M.serve(payload)
  if not collectgarbage("isrunning") then collectgarbage("restart") end
  if gc_owed then M.after() end
  if #payload < GC_BIG then return handle(payload), false, stateful end
  local now = collectgarbage("count")
  if gc_base == nil or now < gc_base then gc_base = now end
  collectgarbage("stop")
  local out = handle(payload)
  gc_owed = collectgarbage("count") > 2 * gc_base
  if not gc_owed then collectgarbage("restart") end -- owed: stopped until after, nothing to mark
  return out, gc_owed, stateful
end

-- handle(payload) -> answer, the collection included
function M.handle(payload)
  local out = M.serve(payload)
  M.after()
  return out
end

-- test hook: number of live monitors/policies and cache entries
function M.stats() return { cache = cache_n } end

setmetatable(M, { __call = function(_, payload) return M.handle(payload) end })
return M

-- rt: the runtime entry (docs/internals.md §3).
--   pol, err = rt.load(source, language, name)
--   vs, err  = rt.analyze(pol, trace, parameters)
--   mon      = rt.monitor(pol, parameters);  vs, err = rt.push(mon, events)
--   out      = rt.render(vs, format)
-- Errors are data (nil, err); resource-limit errors of the sandbox propagate untouched.
local error, getmetatable, ipairs, next, pairs, pcall, require, table, tostring, type =
   error, getmetatable, ipairs, next, pairs, pcall, require, table, tostring, type
_ENV = nil

local value = require "rt.value"
local engine = require "rt.engine"
local policy = require "rt.policy"
local violation = require "rt.violation"
local trace = require "rt.trace"

local M = {}
M.value, M.engine, M.policy, M.violation = value, engine, policy, violation

local getmt = getmetatable

function M.load(source, language, name)
   language = language or "invariant"
   name = name or "policy"
   if type(source) ~= "string" then
      return nil, { code = "bad_request", message = "policy must be a string" }
   end
   local src = source
   if language == "invariant" then
      local compiler = require "compiler"
      local lua, info = compiler.compile(source, "=policy:" .. name)
      if not lua then
         local diags = info or {}
         local first = diags[1] or {}
         return nil, { code = "policy_invalid", message = first.message or "policy does not compile",
            line = first.line, column = first.column, diagnostics = diags }
      end
      src = lua
   elseif language ~= "lua" then
      return nil, { code = "bad_request", message = "unknown language " .. tostring(language) }
   end
   local P, err = policy.load_lua(src, name)
   if not P then
      if language == "invariant" then
         return nil, { code = "internal", message = "generated Lua does not load: " .. err.message }
      end
      local d = err.diagnostics and err.diagnostics[1] or {}
      err.line, err.column = d.line, d.column
      return nil, err
   end
   P.language = language
   P.lua = (language == "invariant") and src or nil
   local rules = {}
   for i, R in ipairs(P.rules) do
      rules[i] = { index = R.index, message = R.message or "", line = R.line }
   end
   P.rule_info = rules
   return P
end

-- convert a located runtime error into the wire error
local function eval_error(e, R)
   if getmt(e) == engine.LocErr then
      return { code = "evaluation_error", kind = e.kind, message = e.message,
         rule = R and R.index, line = e.line or (R and R.line), column = e.col }
   end
   local re = require("rt.error").from(e)
   return { code = re.kind == "internal" and "internal" or "evaluation_error", kind = re.kind,
      message = re.message, rule = R and R.index, line = R and R.line }
end

-- Models in a deterministic order: by the flattened positions of the typed variables in
-- declaration order (the reference's cartesian-product order for the common shapes).
function M.sort_models(R, ms)
   if #ms < 2 then return ms end
   local vars = R.vars
   local keyof = {}
   for i, m in ipairs(ms) do
      local k = {}
      for j, v in ipairs(vars) do
         local x = m.b[v.name]
         k[j] = (getmt(x) == value.Event and x.seq) or 0
      end
      k[#vars + 1] = i
      keyof[m] = k
   end
   table.sort(ms, function(a, b)
      local ka, kb = keyof[a], keyof[b]
      for j = 1, #ka do
         if ka[j] ~= kb[j] then return ka[j] < kb[j] end
      end
      return false
   end)
   return ms
end

-- Evaluate all rules; filter(model) -> keep?  Returns list or nil, err.
local function evaluate(pol, run, rule_models)
   local out = {}
   local cur
   pol.current_run = run
   local ok, e = pcall(function()
      for _, R in ipairs(pol.rules) do
         cur = R
         local models = M.sort_models(R, rule_models(R))
         for _, m in ipairs(models) do
            out[#out + 1] = violation.from_model(R, m, run)
         end
      end
   end)
   pol.current_run = nil
   if not ok then
      if engine.is_limit_error(e) then error(e, 0) end
      return nil, eval_error(e, cur)
   end
   return out
end
M.evaluate = evaluate

local function params_of(parameters)
   if parameters == nil or parameters == value.None then return value.dict({}) end
   -- trace.from_json also turns the worker decoder's tagged float literals back into floats
   local conv = trace.from_json or value.from_json
   return conv(parameters)
end

local function bad_params(parameters)
   if parameters == nil or parameters == value.None then return nil end
   if type(parameters) ~= "table" or (next(parameters) ~= nil and not value.is_dict(parameters)) then
      return { code = "bad_request", message = "parameters must be a JSON object" }
   end
   return nil
end

function M.analyze(pol, raw, parameters, opts)
   local perr = bad_params(parameters)
   if perr then return nil, perr end
   local st, err = trace.normalize(raw)
   if not st then return nil, err end
   local run = { trace = st, params = params_of(parameters), policy = pol }
   local past_len = opts and opts.past_len
   local vs, e2 = evaluate(pol, run, function(R)
      local ms = engine.solve(R, run)
      if past_len then
         local keep = {}
         for _, m in ipairs(ms) do
            for _, x in pairs(m.b) do
               if getmt(x) == value.Event and x.idx >= past_len then keep[#keep + 1] = m; break end
            end
         end
         ms = keep
      end
      return ms
   end)
   if not vs then return nil, e2 end
   return vs
end

local monitor = require "rt.monitor"
M.monitor = function(pol, parameters)
   local perr = bad_params(parameters)
   if perr then return nil, perr end
   return monitor.new(pol, params_of(parameters))
end
M.push = function(mon, events) return monitor.push(mon, events) end

function M.render(vs, format)
   return violation.render(vs, format)
end

return M

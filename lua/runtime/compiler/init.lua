-- compiler: Invariant policy text -> Lua source.
--
--   compile(src, chunkname, opts) -> lua_src, info | nil, diags
--   front(src, chunkname)         -> state   (AST + diagnostics after the front half)
--   run_until(pass_name, src, chunkname) -> state   (tests and tools)
--
-- Never raises for any input: an internal crash becomes a diagnostic of kind "internal".

local require, pcall, type, tostring, ipairs, find = require, pcall, type, tostring, ipairs, string.find
local error = error
local passes = require "compiler.passes"
local diag = require "compiler.diag"
_ENV = nil

local M = {}

local function new_state(src, chunkname, opts)
   return { src = src, chunkname = chunkname or "=policy", opts = opts or {}, diags = {} }
end

-- Runs passes.all[1..last] on state. A pass does not run after a syntax or internal error; lower
-- and codegen do not run after any error; scope and checks both run so that every semantic error
-- is collected.
local function run_passes(state, last)
   for i = 1, last do
      local p = passes.all[i]
      if diag.has_fatal(state.diags) then return state end
      if i > #passes.front and diag.has_errors(state.diags) then return state end
      local okm, mod = pcall(require, p.module)
      if not okm or type(mod) ~= "table" or type(mod.run) ~= "function" then
         local missing = type(mod) ~= "string" or find(mod, "module '" .. p.module .. "' not found", 1, true)
         if i > #passes.front and missing then
            state.diags[#state.diags + 1] = diag.internal("codegen not available")
         else
            state.diags[#state.diags + 1] = diag.internal("cannot load pass " .. p.name .. ": " .. tostring(mod))
         end
         return state
      end
      local ok, err = pcall(mod.run, state)
      if not ok and type(err) == "string" and find(err, "stack overflow", 1, true) then
         state.diags[#state.diags + 1] = diag.new("E102", "too-complex", 1, 1,
            "policy too complex to compile (expressions nested or chained too deeply)")
         return state
      elseif not ok then
         -- a resource limit (memory cap, instruction budget, deadline) is not a compile error:
         -- it must reach the worker's C loop (memory_limit / deadline_exceeded)
         if type(err) == "string" and (find(err, "not enough memory", 1, true)
               or find(err, "vigil-limit", 1, true)) then
            error(err, 0)
         end
         state.diags[#state.diags + 1] = diag.internal("internal compiler error in pass " .. p.name .. ": "
            .. tostring(type(err) == "table" and (err.message or err.msg) or err))
         return state
      end
   end
   return state
end

function M.run_until(pass_name, src, chunkname, opts)
   local state = new_state(src, chunkname, opts)
   if type(src) ~= "string" then
      state.diags[1] = diag.internal("policy source must be a string")
      return state
   end
   local last = passes.index[pass_name]
   if not last then
      state.diags[1] = diag.internal("unknown pass " .. tostring(pass_name))
      return state
   end
   run_passes(state, last)
   state.diags = diag.sorted(state.diags, state.ast)
   return state
end

function M.front(src, chunkname, opts)
   return M.run_until("checks", src, chunkname, opts)
end

function M.compile(src, chunkname, opts)
   local state = M.run_until("codegen", src, chunkname, opts)
   if diag.has_errors(state.diags) then return nil, state.diags end
   if type(state.lua) ~= "string" then
      return nil, { diag.internal("codegen not available") }
   end
   return state.lua, state.info or { rules = state.rules, state = state }
end

-- Convenience for tools: "file:line:col: message" lines.
function M.format_diags(diags, file)
   local out = {}
   for _, d in ipairs(diags) do out[#out + 1] = diag.format(d, file) end
   return out
end

return M

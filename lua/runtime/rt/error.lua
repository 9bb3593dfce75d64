-- rt.error: runtime error objects.
-- A runtime error inside policy evaluation is raised as a Lua error whose value is a table with
-- metatable RuntimeError: {kind = <kind>, message = <text>}. The engine catches it, adds rule,
-- line and column, and turns it into the structured `evaluation_error` of docs/internals.md §2.
local error, getmetatable, setmetatable, tostring = error, getmetatable, setmetatable, tostring
_ENV = nil

local M = {}

M.KINDS = {
   ["missing-parameter"] = true, attribute = true, key = true, index = true, type = true,
   ["zero-division"] = true, regex = true, value = true, budget = true,
}

local RuntimeError = {}
RuntimeError.__index = RuntimeError
RuntimeError.__name = "RuntimeError"
RuntimeError.__tostring = function(e) return e.kind .. ": " .. tostring(e.message) end
M.RuntimeError = RuntimeError

function M.new(kind, message)
   return setmetatable({ kind = kind, message = message }, RuntimeError)
end

-- Raise a runtime error of `kind` (one of M.KINDS) with `message`.
function M.raise(kind, message)
   error(setmetatable({ kind = kind, message = message }, RuntimeError), 0)
end

function M.is(e)
   return getmetatable(e) == RuntimeError
end

-- Convert anything caught by pcall into a runtime error object (raw Lua errors become kind
-- "internal" so that a bug in the runtime is never mistaken for a policy error).
function M.from(e)
   if getmetatable(e) == RuntimeError then return e end
   return setmetatable({ kind = "internal", message = tostring(e) }, RuntimeError)
end

return M

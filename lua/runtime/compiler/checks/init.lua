-- compiler.checks: the load-time checks that run after scope (spec §4.3 and LANGUAGE.md Fixed 10).
-- One check per module, each declaring its diagnostic codes; all errors are collected.

local require, ipairs = require, ipairs
local _ENV = nil

local M = {}

M.list = {
   require "compiler.checks.patterns",
   require "compiler.checks.calls",
   require "compiler.checks.quantifiers",
   (require "compiler.checks.flow"),
}

function M.run(state)
   if not state.ast then return end
   for _, check in ipairs(M.list) do check.run(state) end
end

return M

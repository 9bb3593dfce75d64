-- compiler.checks: the load-time checks that run after scope (spec §4.3 and LANGUAGE.md Fixed 10).
-- One check per module, each declaring its diagnostic codes (M.codes) and a visitor table
-- (M.visit = {Tag = function(state, node) ... end}); all checks share one walk over the AST.
-- A visitor returning false skips the node's children (for every check). `def` blocks are
-- never checked. All errors are collected.

local require, ipairs, pairs = require, ipairs, pairs
local ast = require "compiler.ast"
_ENV = nil

local M = {}

M.list = {
   (require "compiler.checks.patterns"),
   (require "compiler.checks.calls"),
   (require "compiler.checks.quantifiers"),
   (require "compiler.checks.flow"),
}

-- Runs the visitors of `checks` over state.ast in one walk.
function M.walk(state, checks)
   local dispatch = {}
   for _, check in ipairs(checks) do
      for tag, fn in pairs(check.visit) do
         local l = dispatch[tag] or {}
         l[#l + 1] = fn
         dispatch[tag] = l
      end
   end
   local walk = ast.walk
   walk(state.ast, function(n)
      if n.tag == "Def" then return false end
      local fns = dispatch[n.tag]
      if fns then
         local descend = true
         for i = 1, #fns do
            if fns[i](state, n) == false then descend = false end
         end
         return descend
      end
   end)
end

function M.run(state)
   if not state.ast then return end
   M.walk(state, M.list)
end

return M

-- checks.flow: both operands of `->` and `~>` must be identifiers or typed variables (the
-- reference aborts at run time with "The '->' operator can only be used with Identifier or
-- TypedIdentifier."; vigil reports it when the policy is loaded).

local ipairs, require = ipairs, require
local diag = require "compiler.diag"
_ENV = nil

local M = {}

M.codes = { E312 = "flow-operand" }

local function ok_operand(n)
   return n.tag == "Name" or (n.tag == "TypedVar" and n.domain == nil)
end

M.visit = {
   BinOp = function(state, n)
      if n.op == "->" or n.op == "~>" then
         for _, side in ipairs { n.left, n.right } do
            if not ok_operand(side) then
               state.diags[#state.diags + 1] = diag.at(side, "E312", "flow-operand",
                  "The '" .. n.op .. "' operator can only be used with identifiers or typed variables")
            end
         end
      end
   end,
}

function M.run(state) require("compiler.checks").walk(state, { M }) end

return M

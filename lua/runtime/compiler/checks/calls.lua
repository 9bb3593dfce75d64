-- checks.calls: call shapes. Positional arguments must precede keyword arguments, a keyword may
-- appear once, and types (str, int, ..., AccessDenied) cannot be called (spec §4.3).

local ipairs, require = ipairs, require
local diag = require "compiler.diag"
local scope = require "compiler.scope"
_ENV = nil

local M = {}

M.codes = {
   E306 = "positional-after-keyword",
   E307 = "duplicate-keyword",
   E308 = "not-callable",
}

local function report(state, node, code, message)
   state.diags[#state.diags + 1] = diag.at(node, code, M.codes[code], message)
end

local function check_args(state, order)
   local seen_kw, names = false, {}
   for _, a in ipairs(order or {}) do
      if a.tag == "Kwarg" then
         seen_kw = true
         if names[a.name] then
            report(state, a, "E307", "Keyword argument repeated: " .. a.name)
         end
         names[a.name] = true
      elseif seen_kw then
         report(state, a, "E306", "Positional argument follows keyword argument")
      end
   end
end

local function call(state, n)
   check_args(state, n.arg_order)
   local f = n.func
   if n.tag == "Call" and f.tag == "Name" and (f.ref == "type" or f.ref == "builtin")
      and scope.not_callable[f.name] then
      report(state, f, "E308", "Expected function, got <class 'type'>")
   end
end

M.visit = {
   Call = call,
   Quantifier = call,
   SemanticPattern = function(state, n)
      if not n.bare then check_args(state, n.arg_order) end
   end,
}

function M.run(state) require("compiler.checks").walk(state, { M }) end

return M

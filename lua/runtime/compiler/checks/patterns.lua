-- checks.patterns: wildcards and value references only inside semantic patterns; inside a pattern
-- only dicts, lists, strings, numbers, `*` and `<VALUE>` (spec §6.7), no identifiers.

local ipairs, require = ipairs, require
local ast = require "compiler.ast"
local diag = require "compiler.diag"
_ENV = nil

local M = {}

M.codes = {
   E301 = "wildcard-outside-pattern",
   E302 = "valueref-outside-pattern",
   E303 = "identifier-in-pattern",
   E304 = "unknown-value-type",
   E305 = "unsupported-pattern",
}

M.value_types = { EMAIL_ADDRESS = true, LOCATION = true, PHONE_NUMBER = true, PERSON = true,
   MODERATED = true, DUMMY = true }

local MSG_WILDCARD = "You cannot use wildcards outside of semantic patterns (e.g. tool:abc(*, 12))"
local MSG_VALUEREF = "You cannot use value references outside of semantic patterns (e.g. tool:abc(<VALUE>, 12))"

local function report(state, node, code, message)
   state.diags[#state.diags + 1] = diag.at(node, code, M.codes[code], message)
end

local function check_pattern(state, p)
   local tag = p.tag
   if tag == "Dict" then
      for _, e in ipairs(p.entries) do check_pattern(state, e.value) end
   elseif tag == "List" then
      for _, x in ipairs(p.items) do check_pattern(state, x) end
   elseif tag == "Str" or tag == "Num" or tag == "Wildcard" then
      return
   elseif tag == "ValueRef" then
      if not M.value_types[p.name] then
         report(state, p, "E304", "Unsupported value type: " .. p.name
            .. ". Available types: EMAIL_ADDRESS LOCATION PHONE_NUMBER PERSON MODERATED DUMMY")
      end
   else
      -- identifiers anywhere inside are reported as such; anything else is unsupported
      local found = false
      ast.walk(p, function(n)
         if n.tag == "Name" then
            found = true
            report(state, n, "E303", "Identifiers are not allowed inside semantic patterns: " .. n.name)
         elseif n.tag == "SemanticPattern" then
            return false
         end
      end)
      if not found then
         local what = tag
         if tag == "Bool" then what = p.value and "True" or "False" elseif tag == "Null" then what = "None" end
         report(state, p, "E305", "Unsupported semantic pattern: " .. what
            .. " (use dicts, lists, strings, numbers, * or <VALUE>)")
      end
   end
end

M.visit = {
   SemanticPattern = function(state, n)
      for _, a in ipairs(n.args) do check_pattern(state, a) end
      return false
   end,
   Wildcard = function(state, n) report(state, n, "E301", MSG_WILDCARD) end,
   ValueRef = function(state, n) report(state, n, "E302", MSG_VALUEREF) end,
}

function M.run(state) require("compiler.checks").walk(state, { M }) end

return M

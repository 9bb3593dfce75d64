-- checks.quantifiers: a block may only follow a quantifier (`forall`, `count`, imported from
-- `invariant`), and the quantifier's arguments must fit: forall takes none, count takes
-- min / max (positionally or by keyword, at most once each).

local ipairs, require = ipairs, require
local diag = require "compiler.diag"
_ENV = nil

local M = {}

M.codes = {
   E309 = "quantifier-arity",
   E310 = "not-a-quantifier",
}

local function report(state, node, code, message)
   state.diags[#state.diags + 1] = diag.at(node, code, M.codes[code], message)
end

local function head_name(q)
   local f = q.func
   if f.tag == "Name" then return f.name, f.ref ~= nil end
   if f.tag == "Member" then
      local o = f.obj
      return f.name, not (o.tag == "Name" and o.ref == nil)
   end
   return "?", true
end

local function quantifier(state, q)
   local name, resolved = head_name(q)
   if q.kind == nil then
      if resolved then
         report(state, q.func, "E310", "'" .. name .. "' is not a quantifier: a block can only follow "
            .. "forall or count (from invariant import forall, count)")
      end
      return
   end
   if q.kind == "forall" then
      if #q.args > 0 or #q.kwargs > 0 then
         report(state, q.args[1] or q.kwargs[1], "E309", "forall takes no arguments")
      end
   elseif q.kind == "count" then
      if #q.args > 2 then
         report(state, q.args[3], "E309", "count takes at most 2 arguments (min, max)")
      end
      local given = {}
      if q.args[1] then given.min = true end
      if q.args[2] then given.max = true end
      for _, kw in ipairs(q.kwargs) do
         if kw.name ~= "min" and kw.name ~= "max" then
            report(state, kw, "E309", "count got an unexpected keyword argument '" .. kw.name .. "'")
         elseif given[kw.name] then
            report(state, kw, "E309", "count got multiple values for argument '" .. kw.name .. "'")
         end
         given[kw.name] = true
      end
   end
end

M.visit = { Quantifier = quantifier }

function M.run(state) require("compiler.checks").walk(state, { M }) end

return M

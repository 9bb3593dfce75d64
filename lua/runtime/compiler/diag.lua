-- compiler.diag: diagnostics are data.
--
--   {code="E201", kind="unknown-identifier", line=3, column=5, message="Failed to resolve identifier msg"}
--
-- line/column: 1-based, in the policy as the client sent it, column in characters (code points).
-- Order (compiler.run_until / front / compile): the reference's order, so that the first
-- diagnostic is the one the reference reports first (see M.sorted); only one syntax error.

-- Codes and kinds:
--   E000 internal               a bug in the compiler (never expected)
--   E101 syntax                 the first syntax error only; message "expected X but found Y"
--   E102 too-complex            the policy's structure exceeds the compiler's depth limits
--   E201 unknown-identifier     "Failed to resolve identifier <name>"
--   E202 unknown-type           "Failed to resolve type <T>"
--   E203 duplicate-declaration  "Variable <name> already declared"
--   E204 unknown-module         "Module '<m>' could not be resolved"
--   E205 unknown-import         "Module '<m>' has no attribute '<name>'"
--   E301 wildcard-outside-pattern   "You cannot use wildcards outside of semantic patterns
--                                    (e.g. tool:abc(*, 12))" (one line)
--   E302 valueref-outside-pattern   "You cannot use value references outside of semantic patterns
--                                    (e.g. tool:abc(<VALUE>, 12))" (one line)
--   E303 identifier-in-pattern  "Identifiers are not allowed inside semantic patterns: <name>"
--   E304 unknown-value-type     "Unsupported value type: <X>. Available types: EMAIL_ADDRESS
--                                LOCATION PHONE_NUMBER PERSON MODERATED DUMMY" (one line)
--   E305 unsupported-pattern    "Unsupported semantic pattern: ..."
--   E306 positional-after-keyword "Positional argument follows keyword argument"
--   E307 duplicate-keyword      "Keyword argument repeated: <k>"
--   E308 not-callable           "Expected function, got <class 'type'>"
--   E309 quantifier-arity       wrong arguments for forall / count
--   E310 not-a-quantifier       a block opened after something that is not a quantifier
--   E312 flow-operand           an operand of `->` / `~>` that is not a name or typed variable
--   (`x := e` and `import` are only accepted as body items / statements: elsewhere they are
--   syntax errors.)
-- Back half (compiler.lower / compiler.codegen):
--   E401 unbound-variable       a variable declared inside a quantifier block read outside it
--                               (located at the first use outside the block)
--   E402 too-deep               an expression nested more than 50 levels (generated Lua limit)


local ipairs, tostring, sort, format = ipairs, tostring, table.sort, string.format
_ENV = nil

local M = {}

function M.new(code, kind, line, column, message)
   return { code = code, kind = kind, line = line or 1, column = column or 1, message = message }
end

function M.at(node, code, kind, message)
   return M.new(code, kind, node and node.line or 1, node and node.col or 1, message)
end

function M.internal(message)
   return { code = "E000", kind = "internal", line = 1, column = 1, message = message }
end

function M.has_errors(diags)
   return diags[1] ~= nil
end

-- Syntax, resource and internal errors stop every later pass.
function M.has_fatal(diags)
   for _, d in ipairs(diags) do
      if d.kind == "syntax" or d.kind == "internal" or d.kind == "too-complex" then return true end
   end
   return false
end

-- Phases of the reference's reporting order: what it raises as an exception comes alone and
-- first (duplicates from the parser, then identifiers inside patterns from the type checker),
-- then the type-resolution errors of all declarations, then everything else in traversal order,
-- then import (linking) failures.
local PHASE = { ["duplicate-declaration"] = -2, ["identifier-in-pattern"] = -1, ["unknown-type"] = 0,
   ["unknown-module"] = 2, ["unknown-import"] = 2 }

local function before(l1, c1, l2, c2)
   return l1 < l2 or (l1 == l2 and c1 < c2)
end

-- Traversal key of a position: index of the top-level statement holding it, and 1 when it lies in
-- a rule's raise target (the reference checks a rule's body before its raise target).
local function traversal_key(stmts, line, col)
   local lo, hi = 0, #stmts -- binary search: the last statement starting at or before (line, col)
   while lo < hi do
      local mid = (lo + hi + 1) // 2
      local s = stmts[mid]
      if before(line, col, s.line, s.col) then hi = mid - 1 else lo = mid end
   end
   local idx = lo

   local s = stmts[idx]
   local tail = 0
   if s and s.tag == "Rule" and s.body[1] and before(line, col, s.body[1].line, s.body[1].col) then tail = 1 end
   return idx, tail
end

-- Stable sort, duplicates (same code, line, column, message) removed. Without `policy`, by
-- (line, column). With the Policy AST, in the reference's order (so that the first diagnostic is
-- the one the reference reports first): PHASE, then statement, body before raise target, then
-- position.
function M.sorted(diags, policy)
   local items = {}
   for i, d in ipairs(diags) do
      local it = { d = d, i = i, phase = 0, stmt = 0, tail = 0 }
      if policy and policy.stmts then
         it.phase = PHASE[d.kind] or 1
         it.stmt, it.tail = traversal_key(policy.stmts, d.line, d.column)
      end
      items[i] = it
   end
   sort(items, function(a, b)
      if a.phase ~= b.phase then return a.phase < b.phase end
      if a.stmt ~= b.stmt then return a.stmt < b.stmt end
      if a.tail ~= b.tail then return a.tail < b.tail end
      if a.d.line ~= b.d.line then return a.d.line < b.d.line end
      if a.d.column ~= b.d.column then return a.d.column < b.d.column end
      return a.i < b.i
   end)

   local out, seen = {}, {}
   for _, it in ipairs(items) do
      local d = it.d
      local k = format("%s|%d|%d|%s", d.code, d.line, d.column, tostring(d.message))
      if not seen[k] then
         seen[k] = true
         out[#out + 1] = d
      end
   end
   return out
end

function M.format(d, file)
   return format("%s:%d:%d: %s", file or "policy", d.line, d.column, d.message)
end

return M

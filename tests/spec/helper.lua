-- Shared helpers for the busted specs. Others may add functions; keep it simple.
--
--   helper.run_until(pass_name, src) -> state   run the real compiler pipeline up to a named pass
--                                               ("indent", "parse", "scope", "checks", "lower", "codegen")
--   helper.parse(src) -> ast | nil, diags       the AST after "parse" (nil + diags on error)
--   helper.front(src) -> state                  after "checks"
--   helper.diag_triples(diags) -> { {line, column, kind}, ... }
--   helper.read_cases(dir) -> { case, ... }     the conformance cases (decoded JSON), sorted by id

local helper = {}

function helper.run_until(pass_name, src, chunkname)
   return require("compiler").run_until(pass_name, src, chunkname)
end

function helper.parse(src)
   local st = helper.run_until("parse", src)
   if #st.diags > 0 then return nil, st.diags end
   return st.ast, st.diags
end

function helper.front(src)
   return helper.run_until("checks", src)
end

function helper.diag_triples(diags)
   local out = {}
   for i, d in ipairs(diags) do out[i] = { d.line, d.column, d.kind } end
   return out
end

helper.CONFORMANCE_DIR = os.getenv("VIGIL_CONFORMANCE") or "../shared/conformance/cases"

function helper.read_cases(dir)
   dir = dir or helper.CONFORMANCE_DIR
   local cjson = require "cjson"
   local cases = {}
   local p = io.popen('ls "' .. dir .. '"/*.json 2>/dev/null')
   for f in p:lines() do
      local fh = io.open(f)
      local c = cjson.decode(fh:read("a"))
      fh:close()
      c.file = f
      cases[#cases + 1] = c
   end
   p:close()
   table.sort(cases, function(a, b) return a.id < b.id end)
   return cases
end

return helper

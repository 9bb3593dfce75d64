-- compiler.passes: the ordered list of compiler passes. Each pass is a module with `run(state)`;
-- it reads and extends `state` and appends diagnostics to `state.diags`.
--
-- state = {src=<policy text as sent>, chunkname=, opts=, diags={<diag>...},
--          lines=<original lines>, text=<pre-passed text>, map=, line_start=, margin=, unit=  (indent)
--          ast=<Policy>                                                                      (parse)
--          scopes={builtins=, modules=, policy=}   (scope; the AST is annotated in place)
--          ...}                                    (checks only add diagnostics)

--
-- Front half (owned here): indent, parse, scope, checks. Back half: lower, codegen
-- (modules compiler.lower / compiler.codegen, required lazily by compiler.init).

local M = {}

M.front = {
   { name = "indent", module = "compiler.indent" },
   { name = "parse", module = "compiler.grammar" },
   { name = "scope", module = "compiler.scope" },
   { name = "checks", module = "compiler.checks" },
}

M.back = {
   { name = "lower", module = "compiler.lower" },
   { name = "codegen", module = "compiler.codegen" },
}

M.all = {}
for _, p in ipairs(M.front) do M.all[#M.all + 1] = p end
for _, p in ipairs(M.back) do M.all[#M.all + 1] = p end

M.index = {}
for i, p in ipairs(M.all) do M.index[p.name] = i end

return M

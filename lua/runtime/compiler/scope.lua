-- compiler.scope: name resolution (spec §4.1-§4.4; mirrors the reference's language/scope.py).
--
-- Scopes, innermost first: list-comprehension variable; rule / predicate / constant local scope
-- (every `(x: T)` and `x := e` anywhere in the body, nested quantifier blocks included; forward
-- references are fine); predicate parameters; policy scope (constants, predicates, `def` names);
-- module scope (names bound by `import` anywhere in the file); builtins (§9.1, `input`,
-- `AccessDenied`); fallback type names (str, int, float, bool, list, dict).
--
-- Annotates every resolved Name with ref/decl (see ast.lua), every declaration with `owner` (the
-- Rule / Predicate / Const / Quantifier whose block declares it), Rule/Predicate/Const/Quantifier
-- with `decls`, Quantifier with `kind`. Reports E201 unknown-identifier, E202 unknown-type,
-- E203 duplicate-declaration, E204 unknown-module, E205 unknown-import.
-- Names inside semantic patterns are not resolved here (checks/patterns.lua reports them).
--
-- Deliberate differences from the reference: duplicate declarations are located diagnostics;
-- an unknown type does not make the variable undeclared (no cascade of unknown identifiers);
-- imports are checked against the known module exports at load time.

local ipairs, pairs, type = ipairs, pairs, type
local diag = require "compiler.diag"
local ast = require "compiler.ast"
_ENV = nil

local M = {}

local function set(list)
   local s = {}
   for _, k in ipairs(list) do s[k] = true end
   return s
end

-- §9.1 builtins usable without import (plus `all`, which vigil's runtime provides).
M.builtins = set {
   "any", "all", "empty", "len", "match", "find", "json_loads", "min", "max", "sum", "print", "tuple",
   "tool_call", "server", "text", "image", "Violation", "PolicyViolation",
   "Message", "ToolCall", "ToolOutput", "Function", "Tool", "ToolParameter", "TextChunk", "Image",
   "Input", "LLM", "UpdateMessage", "UpdateMessageHandler", "AccessDenied",
}

-- Fallback scope: usable only as typed-declaration types (calling them is E308).
M.fallback_types = set { "str", "int", "float", "bool", "list", "dict" }

-- Names that are classes/types rather than functions (calling them is a load error).
M.not_callable = set { "str", "int", "float", "bool", "list", "dict", "AccessDenied" }

local EVENT_TYPES = { "Message", "ToolCall", "ToolOutput", "Function", "Tool", "ToolParameter",
   "TextChunk", "Image", "Contents", "Event", "LLM", "Input" }

local DETECTORS = { "pii", "secrets", "copyright", "unicode", "python_code", "ipython_code", "semgrep",
   "moderated", "prompt_injection", "fuzzy_contains", "embedding_similarity", "is_similar", "CodeIssue",
   "PythonDetectorResult" }

local function union(...)
   local s = {}
   for _, l in ipairs { ... } do
      for _, k in ipairs(l) do s[k] = true end
   end
   return s
end

local BUILTIN_LIST = {}
for k in pairs(M.builtins) do BUILTIN_LIST[#BUILTIN_LIST + 1] = k end

-- Known modules (§4.4, §9.3-§9.6) and what they export; `true` = submodule names are also valid.
M.modules = {
   ["invariant"] = union({ "forall", "count", "llm", "llm_confirm", "Violation", "PolicyViolation",
      "ErrorInformation", "text", "image", "UpdateMessage", "UpdateMessageHandler", "AccessDenied",
      "detectors", "parsers", "access_control", "files", "builtins", "nodes", "errors", "quantifiers",
      "message" }, EVENT_TYPES),
   ["invariant.detectors"] = union(DETECTORS, { "code", "copyright", "moderation", "pii", "prompt_injection",
      "secrets", "sentence_similarity", "fuzzy_matching" }),
   ["invariant.detectors.code"] = set { "python_code", "ipython_code", "semgrep", "CodeIssue",
      "PythonDetectorResult" },
   ["invariant.detectors.copyright"] = set { "copyright" },
   ["invariant.detectors.moderation"] = set { "moderated" },
   ["invariant.detectors.pii"] = set { "pii" },
   ["invariant.detectors.prompt_injection"] = set { "prompt_injection", "unicode" },
   ["invariant.detectors.secrets"] = set { "secrets" },
   ["invariant.detectors.sentence_similarity"] = set { "embedding_similarity", "is_similar" },
   ["invariant.detectors.fuzzy_matching"] = set { "fuzzy_contains" },
   ["invariant.parsers"] = set { "html_code", "links", "ocr", "html" },
   ["invariant.parsers.html"] = set { "html_code", "links" },
   ["invariant.parsers.ocr"] = set { "ocr" },
   ["invariant.access_control"] = set { "should_allow_rbac" },
   ["invariant.files"] = set { "get_files", "get_tree_files", "get_file_content", "get_file_contents",
      "is_sensitive", "is_sensitive_dir", "File" },
   ["invariant.builtins"] = union(BUILTIN_LIST, { "match", "find" }),
   ["invariant.nodes"] = union(EVENT_TYPES, { "ToolParameter", "Contents" }),
   ["invariant.errors"] = set { "Violation", "PolicyViolation", "ErrorInformation", "UpdateMessage",
      "UpdateMessageHandler", "AccessDenied" },
   ["invariant.quantifiers"] = set { "forall", "count" },
   ["invariant.llm"] = set { "llm", "llm_confirm" },
   ["invariant.message"] = set { "Message" },
}

M.quantifiers = set { "forall", "count" }
local QUANT_MODULES = set { "invariant", "invariant.quantifiers" }

---------------------------------------------------------------------------------------------------

local function err(st, node, code, kind, message, line, col)
   local d = diag.at(node, code, kind, message)
   if line then d.line, d.column = line, col end
   st.diags[#st.diags + 1] = d
end

local function lookup(scope, name)
   while scope do
      local e = scope.names[name]
      if e then return e end
      scope = scope.parent
   end
   return nil
end

local function declare(st, scope, name, entry, node, line, col)
   if scope.names[name] then
      err(st, node, "E203", "duplicate-declaration", "Variable " .. name .. " already declared", line, col)
      return false
   end
   scope.names[name] = entry
   return true
end

-- Collect the declarations of a body (rule / predicate / constant / quantifier block, nested
-- quantifier blocks and comprehensions included; semantic pattern arguments excluded).
-- all = owner.decls (every declaration); a Quantifier's decls = those of its own block.
local function collect(st, body, scope, owner)
   local all = owner.decls
   local function visit(n, blockowner)
      local tag = n.tag
      if tag == "SemanticPattern" then return end
      if tag == "TypedVar" then
         n.owner = blockowner
         all[#all + 1] = n
         if blockowner ~= owner then blockowner.decls[#blockowner.decls + 1] = n end
         declare(st, scope, n.name, { ref = "typed", decl = n }, n)
         if n.domain then visit(n.domain, blockowner) end
         return
      elseif tag == "Assign" then
         n.owner = blockowner
         all[#all + 1] = n
         if blockowner ~= owner then blockowner.decls[#blockowner.decls + 1] = n end
         declare(st, scope, n.name, { ref = "local", decl = n }, n)
         visit(n.value, blockowner)
         return
      elseif tag == "Quantifier" then
         n.decls = {}
         visit(n.func, blockowner)
         for _, a in ipairs(n.args) do visit(a, blockowner) end
         for _, a in ipairs(n.kwargs) do visit(a, blockowner) end
         for _, it in ipairs(n.body) do visit(it, n) end
         return
      end
      local fs = st.child_fields[tag]
      if fs then
         for _, f in ipairs(fs) do
            local v = n[f]
            if type(v) == "table" then
               if v.tag then
                  visit(v, blockowner)
               else
                  for _, c in ipairs(v) do visit(c, blockowner) end
               end
            end
         end
      end
   end
   for _, it in ipairs(body) do visit(it, owner) end
end

local function check_type(st, tv)
   local t = tv.type
   if st.module_scope.names[t] or M.builtins[t] or M.fallback_types[t] or t == "input" then return end
   err(st, tv, "E202", "unknown-type", "Failed to resolve type " .. t)
end

local resolve

local function resolve_list(st, list, scope)
   for _, n in ipairs(list) do resolve(st, n, scope) end
end

local function quantifier_kind(q)
   local f = q.func
   if f.tag == "Name" then
      if f.ref == "import" and f.orig and M.quantifiers[f.orig] and QUANT_MODULES[f.module] then
         return f.orig
      end
   elseif f.tag == "Member" and M.quantifiers[f.name] and f.obj.tag == "Name" and f.obj.ref == "import"
      and f.obj.orig == nil and QUANT_MODULES[f.obj.module] then
      return f.name
   end
   return nil
end

function resolve(st, n, scope)
   local tag = n.tag
   if tag == "Name" then
      local e = lookup(scope, n.name)
      if e then
         n.ref, n.decl, n.module, n.orig = e.ref, e.decl, e.module, e.orig
      else
         err(st, n, "E201", "unknown-identifier", "Failed to resolve identifier " .. n.name)
      end
   elseif tag == "TypedVar" then
      check_type(st, n)
      if n.domain then resolve(st, n.domain, scope) end
   elseif tag == "Assign" then
      resolve(st, n.value, scope)
   elseif tag == "SemanticPattern" then
      return
   elseif tag == "ListComp" then
      resolve(st, n.iter, scope)
      local inner = { parent = scope, names = { [n.var] = { ref = "compvar", decl = n } } }
      resolve(st, n.elt, inner)
      if n.cond then resolve(st, n.cond, inner) end
   elseif tag == "Quantifier" then
      resolve(st, n.func, scope)
      resolve_list(st, n.args, scope)
      resolve_list(st, n.kwargs, scope)
      resolve_list(st, n.body, scope)
      n.kind = quantifier_kind(n)
   elseif tag == "Member" then
      resolve(st, n.obj, scope)
   elseif tag == "Entry" or tag == "Kwarg" then
      resolve(st, n.value, scope)
   elseif tag == "Import" then
      return
   else
      local fs = st.child_fields[tag]
      if fs then
         for _, f in ipairs(fs) do
            local v = n[f]
            if type(v) == "table" then
               if v.tag then resolve(st, v, scope) else resolve_list(st, v, scope) end
            end
         end
      end
   end
end

local function check_import(st, imp)
   local mod = imp.module
   local exports = M.modules[mod]
   if not exports then
      err(st, imp, "E204", "unknown-module", "Module '" .. mod .. "' could not be resolved")
      return false
   end
   if imp.names then
      for _, nm in ipairs(imp.names) do
         local first = nm.name:match("^[^.]+")
         if not exports[first] and not M.modules[mod .. "." .. nm.name] then
            err(st, nm, "E205", "unknown-import", "Module '" .. mod .. "' has no attribute '" .. nm.name .. "'")
         end
      end
   end
   return true
end

function M.run(state)
   local policy = state.ast
   local st = { diags = state.diags, child_fields = ast.child_fields }
   -- builtin scope (root)
   local builtin_scope = { names = {} }
   for k in pairs(M.fallback_types) do builtin_scope.names[k] = { ref = "type" } end
   local bnames = {}
   for k in pairs(M.builtins) do bnames[k] = { ref = "builtin" } end
   bnames.input = { ref = "input" }
   local root = { names = builtin_scope.names }
   local bscope = { parent = root, names = bnames }
   -- module scope: every import anywhere in the file
   local module_scope = { parent = bscope, names = {} }
   st.module_scope = module_scope
   for _, imp in ipairs(policy.imports) do
      check_import(st, imp)
      if imp.names then
         for _, nm in ipairs(imp.names) do
            module_scope.names[nm.bind] = { ref = "import", decl = imp, module = imp.module, orig = nm.name }
         end
      else
         local bind = imp.alias or imp.module:match("^[^.]+")
         module_scope.names[bind] = { ref = "import", decl = imp, module = imp.module }
      end
   end
   -- policy scope
   local policy_scope = { parent = module_scope, names = {} }
   for _, s in ipairs(policy.stmts) do
      if s.tag == "Const" then
         declare(st, policy_scope, s.name, { ref = "const", decl = s }, s)
      elseif s.tag == "Predicate" then
         declare(st, policy_scope, s.name, { ref = "predicate", decl = s }, s)
      elseif s.tag == "Def" then
         declare(st, policy_scope, s.name, { ref = "def", decl = s }, s)
      end
   end
   -- declarations first (type errors of all rules first, as in the reference), then resolution
   local jobs = {}
   for _, s in ipairs(policy.stmts) do
      if s.tag == "Rule" or s.tag == "Const" then
         local scope = { parent = policy_scope, names = {} }
         s.decls = {}
         collect(st, s.body, scope, s)
         jobs[#jobs + 1] = { s, scope }
      elseif s.tag == "Predicate" then
         local pscope = { parent = policy_scope, names = {} }
         for _, p in ipairs(s.params) do
            declare(st, pscope, p.name, { ref = "param", decl = p }, p)
         end
         local scope = { parent = pscope, names = {} }
         s.decls = {}
         collect(st, s.body, scope, s)
         jobs[#jobs + 1] = { s, scope }
      end
   end
   for _, job in ipairs(jobs) do
      local s, scope = job[1], job[2]
      resolve_list(st, s.body, scope)
      if s.tag == "Rule" then resolve(st, s.raise, scope) end
   end
   state.scopes = { builtins = bscope, modules = module_scope, policy = policy_scope }
end

return M

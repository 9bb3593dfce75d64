-- Tiny AST builders for back-half specs (hand-made ASTs, positions given explicitly).
-- luacheck: max line length 240
local M = {}
local function n(tag, line, col, t) t = t or {}; t.tag, t.line, t.col = tag, line, col; return t end
M.n = n
function M.name(l, c, name, ref, decl) return n("Name", l, c, { name = name, ref = ref, decl = decl }) end
function M.tv(l, c, name, ty, domain) return n("TypedVar", l, c, { name = name, type = ty, domain = domain }) end
function M.str(l, c, v) return n("Str", l, c, { value = v }) end
function M.num(l, c, v) return n("Num", l, c, { value = v }) end
function M.bin(l, c, op, a, b) return n("BinOp", l, c, { op = op, left = a, right = b }) end
function M.member(l, c, obj, name) return n("Member", l, c, { obj = obj, name = name }) end
function M.call(l, c, f, args, kwargs) return n("Call", l, c, { func = f, args = args or {}, kwargs = kwargs or {} }) end
function M.kw(l, c, name, v) return n("Kwarg", l, c, { name = name, value = v }) end
function M.pat(l, c, tool, args) return n("SemanticPattern", l, c, { tool = tool, args = args or {}, bare = not args }) end
function M.rule(l, c, index, raise, body) return n("Rule", l, c, { index = index, raise = raise, body = body }) end
function M.policy(stmts) return n("Policy", 1, 1, { stmts = stmts, imports = {} }) end
return M

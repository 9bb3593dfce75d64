-- luacheck: no max line length (one grammar rule per line, re.lua style)
-- compiler.grammar: the "parse" pass. LPeg grammar over the pre-passed text (compiler.indent) ->
-- AST (compiler.ast). One rule per line, re.lua style; expression rules that depend on whether a
-- newline may be skipped are generated twice: suffix _b ("body": a newline ends the item unless
-- the next line is a continuation line) and _n ("nested": inside (), [], {}, newlines are blanks).
-- A newline may always follow a binary operator, `not`, `if`, `else`, `(`, `[`, `{`, `,`.
--
-- Syntax errors: the match is first run with the fast grammar; only when it fails, a second
-- grammar that records, for each terminal that fails, the position and a label is run; the error
-- is reported at the farthest failing position: "expected ')' but found 'if'".

local require, type, pairs, ipairs, error, pcall, getmetatable, tonumber, select =
   require, type, pairs, ipairs, error, pcall, getmetatable, tonumber, select
local math_tointeger, huge = math.tointeger, math.huge
local sub, find, gsub, byte, format, concat = string.sub, string.find, string.gsub, string.byte,
   string.format, table.concat
local lpeg = require "lpeg"
local ast = require "compiler.ast"
local indent = require "compiler.indent"
local diag = require "compiler.diag"
_ENV = nil

local M = {}

local P, S, R, V, C, Cp, Ct, Cc, Cf, Cg, Cmt =
   lpeg.P, lpeg.S, lpeg.R, lpeg.V, lpeg.C, lpeg.Cp, lpeg.Ct, lpeg.Cc, lpeg.Cf, lpeg.Cg, lpeg.Cmt

M.MAXSTACK = 4000
lpeg.setmaxstack(M.MAXSTACK)

-- Per-parse context (builders and failure recorder); set by M.run, cleared afterwards.
local cur

local function loc(pos)
   return indent.locate(cur.state, pos)
end

local function mk(tag, pos, fields)
   local line, col = loc(pos)
   return ast.node(tag, line, col, fields)
end

local function serr(pos, message)
   local line, col = loc(pos)
   ast.syntax_error(line, col, message)
end

---------------------------------------------------------------------------------------------------
-- Builders (function captures)

local B = {}

function B.name(pos, name) return mk("Name", pos, { name = name }) end

function B.num(pos, raw)
   local v
   if find(raw, "^%d+$") then
      v = math_tointeger(tonumber(raw)) or tonumber(raw)
   else
      v = tonumber(raw) + 0.0
   end
   if v == nil then v = 0 end
   if v ~= v or v == huge then v = huge end
   return mk("Num", pos, { value = v, raw = raw })
end

function B.str(pos, prefix, quote, content, endpos)
   local value
   if #quote == 3 then
      value = indent.dedent((gsub(content, "\3", "\n")))
   elseif quote == '"' then
      value = gsub(content, '\\"', '"')
   else
      value = gsub(content, "\\'", "'")
   end
   local raw = sub(cur.text, pos, endpos - 1)
   return mk("Str", pos, { value = value, raw = gsub(raw, "\3", "\n"), quote = quote, prefix = prefix,
      multiline = #quote == 3 })
end

function B.const(pos, word)
   if word == "None" then return mk("Null", pos) end
   return mk("Bool", pos, { value = word == "True" })
end

function B.wildcard(pos) return mk("Wildcard", pos) end

function B.valueref(pos, name) return mk("ValueRef", pos, { name = name }) end

function B.typed(pos, name, tpos, tname)
   local tl, tc = loc(tpos)
   return mk("TypedVar", pos, { name = name, type = tname, type_line = tl, type_col = tc })
end

function B.toolref(pos, name) return mk("SemanticPattern", pos, { tool = name, args = {}, bare = true }) end

function B.paren(pos, items)
   if #items == 1 then return items[1] end
   return mk("Tuple", pos, { items = items })
end

function B.list(pos, items) return mk("List", pos, { items = items }) end

function B.listcomp(pos, elt, vpos, var, iter, cond)
   local vl, vc = loc(vpos)
   return mk("ListComp", pos, { elt = elt, var = var, var_line = vl, var_col = vc, iter = iter, cond = cond })
end

function B.entry(kpos, key, value)
   local key_node
   if type(key) == "table" then
      key_node = key
      key = key.value
   else
      key_node = mk("Name", kpos, { name = key })
   end
   return mk("Entry", kpos, { key = key, key_node = key_node, value = value })
end

function B.dict(pos, entries) return mk("Dict", pos, { entries = entries }) end

function B.kwarg(pos, name, value) return mk("Kwarg", pos, { name = name, value = value }) end

-- Postfix suffixes are captured as small tables and folded onto the primary.
function B.s_call(_, ...) return { k = "call", args = { ... } } end
function B.s_member(npos, name) return { k = "member", name = name, npos = npos } end
function B.s_index(key) return { k = "index", key = key } end

function B.postfix(acc, suf)
   local line, col = acc.line, acc.col
   if suf.k == "call" then
      local args, kwargs = {}, {}
      local order = {}
      for _, a in ipairs(suf.args) do
         if a.tag == "Kwarg" then
            kwargs[#kwargs + 1] = a
         else
            args[#args + 1] = a
         end
         order[#order + 1] = a
      end
      if acc.tag == "SemanticPattern" and acc.bare then
         acc.bare = false
         acc.args = args
         acc.dropped_kwargs = kwargs
         acc.arg_order = order
         return acc
      end
      return ast.node("Call", line, col, { func = acc, args = args, kwargs = kwargs, arg_order = order })
   elseif suf.k == "member" then
      local nl, nc = loc(suf.npos)
      return ast.node("Member", line, col, { obj = acc, name = suf.name, name_line = nl, name_col = nc })
   else
      return ast.node("Index", line, col, { obj = acc, key = suf.key })
   end
end

function B.binop(acc, oppos, op, rhs)
   local ol, oc = loc(oppos)
   if op == "in" and acc.tag == "TypedVar" and acc.domain == nil then
      acc.domain = rhs
      acc.op_line, acc.op_col = ol, oc
      return acc
   end
   return ast.node("BinOp", acc.line, acc.col, { op = op, left = acc, right = rhs, op_line = ol, op_col = oc })
end

function B.unop(pos, op, operand)
   return mk("UnOp", pos, { op = op, operand = operand })
end

-- Operator precedence (Python): or < and < not < comparisons < + - < * / % < unary - + < **.
-- Every binary level is left-associative except ** (right); comparisons do not chain.
B.PREC = { ["if"] = 0, ["or"] = 1, ["and"] = 2, ["not"] = 3, ["=="] = 4, ["!="] = 4, ["<"] = 4, [">"] = 4, ["<="] = 4,
   [">="] = 4, ["in"] = 4, ["not in"] = 4, ["is"] = 4, ["is not"] = 4, ["contains_only"] = 4, ["->"] = 4,
   ["~>"] = 4, ["+"] = 5, ["-"] = 5, ["*"] = 6, ["/"] = 6, ["%"] = 6, ["u-"] = 7, ["u+"] = 7, ["**"] = 8 }
local PREC = B.PREC
local UNOP = { ["not"] = "not", ["u-"] = "-", ["u+"] = "+" }

-- captures: [prefix_pos, prefix_op]*, operand, { op_pos, op, [cond if op == "if"],
-- [prefix_pos, prefix_op]*, operand }*
M.MAX_CHAIN = 20000 -- captures in one operator chain (about 10000 operators)

function B.chain(...)
   local n = select("#", ...)
   if n == 1 then return (...) end
   if n > M.MAX_CHAIN then
      local first = ...
      local line, col = 1, 1
      if type(first) == "number" then
         line, col = loc(first)
      elseif type(first) == "table" then
         line, col = first.line, first.col
      end
      ast.syntax_error(line, col, "expression too long (more than 10000 operators in one expression)")
   end

   local t = { ... }
   local vals, nv, ops, no = {}, 0, {}, 0
   local function reduce()
      local o = ops[no]
      ops[no] = nil
      no = no - 1
      if o.unary then
         vals[nv] = B.unop(o.pos, UNOP[o.op], vals[nv])
      elseif o.op == "if" then
         local r = vals[nv]
         vals[nv] = nil
         nv = nv - 1
         vals[nv] = B.ternary(vals[nv], o.cond, r)
      else
         local r = vals[nv]
         vals[nv] = nil
         nv = nv - 1
         vals[nv] = B.binop(vals[nv], o.pos, o.op, r)
      end
   end
   local i = 1
   while i <= n do
      while type(t[i]) == "number" and UNOP[t[i + 1]] do
         no = no + 1
         ops[no] = { prec = PREC[t[i + 1]], op = t[i + 1], pos = t[i], unary = true }
         i = i + 2
      end
      nv = nv + 1
      vals[nv] = t[i]
      i = i + 1
      if i > n then break end
      local pos, op = t[i], t[i + 1]
      i = i + 2
      local cond
      if op == "if" then
         cond = t[i]
         i = i + 1
      end
      local p = PREC[op]
      while no > 0 and (ops[no].prec > p or (ops[no].prec == p and op ~= "**" and op ~= "if")) do reduce() end
      no = no + 1
      ops[no] = { prec = p, op = op, pos = pos, cond = cond }
   end
   while no > 0 do reduce() end
   return vals[1]
end

function B.ternary(yes, cond, no)

   if cond == nil then return yes end
   return ast.node("Ternary", yes.line, yes.col, { yes = yes, cond = cond, no = no })
end

function B.assign(pos, name, value)
   return mk("Assign", pos, { name = name, value = value })
end

-- Flattens nested blocks: an item may be a {block = {...}} marker table.
local function flatten(items, out)
   out = out or {}
   for _, it in ipairs(items) do
      if it.tag == nil and it.block then
         flatten(it.block, out)
      else
         out[#out + 1] = it
      end
   end
   return out
end

function B.block(items) return { block = items } end

function B.item(expr, blk)
   if blk == nil then return expr end
   -- expr followed by an indented block: a quantifier
   local head, negated = expr, false
   if head.tag == "UnOp" and head.op == "not" then
      head, negated = head.operand, true
   end
   local func, args, kwargs
   if head.tag == "Name" or head.tag == "Member" then
      func, args, kwargs = head, {}, {}
   elseif head.tag == "Call" and (head.func.tag == "Name" or head.func.tag == "Member") then
      func, args, kwargs = head.func, head.args, head.kwargs
   else
      ast.syntax_error(expr.line, expr.col,
         "expected a quantifier (such as 'forall' or 'count(min=2)') before an indented block")
   end
   return ast.node("Quantifier", expr.line, expr.col, { func = func, args = args, kwargs = kwargs,
      arg_order = head.arg_order or {}, negated = negated, body = flatten(blk.block) })
end

function B.import(pos, parts, alias, apos)
   local module = concat(parts, ".")
   if #parts > 1 and not alias then
      serr(pos, "expected 'as' after the dotted module name in 'import " .. module .. "'")
   end
   local node = mk("Import", pos, { module = module, alias = alias })
   if alias then
      local al, ac = loc(apos)
      node.alias_line, node.alias_col = al, ac
   end
   return node
end

function B.dotted(...) return { ... } end

function B.import_name(pos, parts, alias)
   local name = concat(parts, ".")
   return mk("ImportName", pos, { name = name, alias = alias, bind = alias or name })
end

function B.from(pos, parts, names)
   return mk("Import", pos, { module = concat(parts, "."), names = names })
end

function B.rule(pos, target, blk)
   if target.tag == "Str" then
      if target.multiline then
         ast.syntax_error(target.line, target.col, "the message of 'raise' must be a single-line string")
      end
   elseif target.tag ~= "Name" and target.tag ~= "Call" then
      ast.syntax_error(target.line, target.col, "expected a string, a name or a call after 'raise'")
   end
   return mk("Rule", pos, { raise = target, body = flatten(blk.block) })
end

function B.param(pos, name, tpos, tname)
   local tl, tc = loc(tpos)
   return mk("Param", pos, { name = name, type = tname, type_line = tl, type_col = tc })
end

function B.predicate(pos, name, params, value)
   local body = value.block and flatten(value.block) or { value }
   return mk("Predicate", pos, { name = name, params = params, body = body })
end

function B.const_decl(pos, name, value)
   local body = value.block and flatten(value.block) or { value }
   local n = mk("Const", pos, { name = name, body = body, value = body[1] })
   n.name_line, n.name_col = n.line, n.col
   return n
end

function B.def(pos, name, blk)
   return mk("Def", pos, { name = name, params = {}, body = flatten(blk.block) })
end

function B.policy(stmts)
   return ast.node("Policy", 1, 1, { stmts = stmts })
end

---------------------------------------------------------------------------------------------------
-- Grammar

local LABEL_EXPR = "an expression"

local function build(rec)
   -- T(p, label): a terminal; in recording mode a failing terminal records (position, label).
   local function T(p, label)
      if not rec then return p end
      return p + Cmt(P(true), function(_, i)
         local st = cur
         if i > st.far then
            st.far, st.exp, st.expset = i, { label }, { [label] = true }
         elseif i == st.far and not st.expset[label] then
            st.exp[#st.exp + 1] = label
            st.expset[label] = true
         end
         return false
      end) * P(1) -- never reached: only makes the recorder look non-nullable to LPeg
   end

   local blank = S" \t\r\f\v"
   local idstart = R("az", "AZ", "__")
   local idchar = idstart + R"09"
   local comment = P"#" * (1 - S"\n\1\2\3")^0
   local sp_b = (blank + P"\3" + comment)^0
   local sp_n = (blank + S"\3\n" + comment)^0
   local wordend = #S" \t\r\f\v\n\3"
   local NEWLINE = T(P"\n", "end of line")
   local NL = sp_b * NEWLINE * (sp_b * P"\n")^0 * sp_b
   local NLs = sp_b * (P"\n" * sp_b)^0
   local INDENT = T(P"\1", "an indented block after ':'")
   local DEDENT = T(P"\2", "end of block")
   local EOF = T(P(-1), "end of input")
   local raw_name = idstart * idchar^0
   local function kw(w) return T(P(w) * -idchar, "'" .. w .. "'") end
   local function opw(w) return T(P(w) * wordend, "'" .. w .. "'") end
   local function tok(s, label) return T(P(s), label or ("'" .. s .. "'")) end
   local function optok(p, name) return T(p, "operator") * Cc(name) end
   local NAME = T(C(raw_name), "a name")
   local EXPR_NAME = T(C(raw_name), LABEL_EXPR)
   local stmtkw = (P"import" + P"from" + P"raise" + P"def") * -idchar -- not declaration names

   local dq = P'"' * C((P"\\" * (1 - S"\n\1\2\3") + (1 - S'"\\\n\1\2\3'))^0) * P'"'
   local sq = P"'" * C((P"\\" * (1 - S"\n\1\2\3") + (1 - S"'\\\n\1\2\3"))^0) * P"'"
   local tdq = P'"""' * C((1 - P'"""' - S"\1\2")^0) * P'"""'
   local tsq = P"'''" * C((1 - P"'''" - S"\1\2")^0) * P"'''"
   local prefix = C(S"rf"^-1)
   local strbody = Cc'"""' * tdq + Cc"'''" * tsq + Cc'"' * -P'"""' * dq + Cc"'" * -P"'''" * sq

   local digits = R"09"^1
   local exponent = S"eE" * S"+-"^-1 * digits
   local number = (digits * (P"." * R"09"^0)^-1 + P"." * digits) * exponent^-1

   local cmpop = optok(P"==", "==") + optok(P"!=", "!=") + optok(P"<=", "<=") + optok(P">=", ">=")
      + optok(P"<", "<") + optok(P">", ">") + optok(P"->", "->") + optok(P"~>", "~>")
      + optok(P"not" * S" \t"^1 * P"in" * wordend, "not in") + optok(P"in" * wordend, "in")
      + optok(P"is" * S" \t"^1 * P"not" * wordend, "is not") + optok(P"is" * wordend, "is")
      + optok(P"contains_only" * wordend, "contains_only")
   local sumop = optok(P"+", "+") + optok(P"-" * -P">", "-")
   local prodop = optok(P"*" * -P"*", "*") + optok(P"/", "/") + optok(P"%", "%")
   local binop = T(P"or" * wordend, "'or'") * Cc"or" + T(P"and" * wordend, "'and'") * Cc"and" + cmpop + sumop
      + optok(P"**", "**") + prodop
   local prefixop = opw"not" * Cc"not" + tok("-", LABEL_EXPR) * Cc"u-" + tok("+", LABEL_EXPR) * Cc"u+"

   local g = {
      "policy",
      policy = NLs * Ct((V"stmt" * (NL * V"stmt")^0)^-1) * NLs * EOF / B.policy,
      stmt = V"import" + V"from" + V"rule" + V"def" + V"decl",
      import = Cp() * kw"import" * sp_b * V"dotted" * (sp_b * kw"as" * sp_b * Cp() * NAME)^-1 / function(pos, parts, apos, alias) return B.import(pos, parts, alias, apos) end,
      dotted = (NAME * (sp_b * tok"." * sp_b * NAME)^0) / B.dotted,
      from = Cp() * kw"from" * sp_b * V"dotted" * sp_b * kw"import" * sp_b * Ct(V"impname" * (sp_b * tok"," * sp_n * V"impname")^0) / B.from,
      impname = Cp() * V"dotted" * (sp_b * kw"as" * sp_b * NAME)^-1 / B.import_name,
      rule = Cp() * kw"raise" * sp_b * V"postfix_b" * sp_b * kw"if" * sp_b * V"block" / B.rule,
      def = Cp() * kw"def" * sp_b * NAME * sp_b * tok"(" * sp_n * (V"defparams"^-1 / 0) * sp_n
 * tok")" * sp_b * V"sblock" / B.def,
      defparams = V"defparam" * (sp_n * tok"," * sp_n * V"defparam")^0,
      defparam = NAME * (sp_n * tok":" * sp_n * NAME)^-1,
      sblock = INDENT * Ct((V"sblock" + NL * V"stmt") * (NL * V"stmt")^0) * NL^-1 * sp_b * DEDENT / B.block,
      decl = -stmtkw * Cp() * NAME * sp_b * tok"(" * sp_n * Ct((V"param" * (sp_n * tok"," * sp_n * V"param")^0)^-1) * sp_n * tok")" * sp_b * V"declvalue" / B.predicate + -stmtkw * Cp() * NAME * sp_b * V"declvalue" / B.const_decl,
      declvalue = tok":=" * sp_n * V"expr_b" + V"block",
      param = Cp() * NAME * sp_n * tok":" * sp_n * Cp() * NAME / B.param,
      -- a bare nested block (a jump of two or more levels) can only come first; it is flattened
      block = INDENT * Ct((V"block" + NL * V"item") * (NL * V"item")^0) * NL^-1 * sp_b * DEDENT / B.block,

      item = V"import" + V"from" + V"assign" + V"expr_b" * (sp_b * V"block")^-1 / B.item,
      assign = Cp() * NAME * sp_b * tok":=" * sp_n * V"expr_b" / B.assign,
      primary = V"string" + V"number" + V"typed" + V"paren" + V"list" + V"dict" + V"toolref" + V"literal" + V"wildcard" + V"valueref" + V"name",
      string = Cp() * T(prefix * strbody, "a string") * Cp() / B.str,
      number = Cp() * T(C(number) * -idchar, LABEL_EXPR) / B.num,
      typed = Cp() * tok"(" * sp_n * Cp() * NAME * sp_n * tok":" * sp_n * Cp() * NAME * sp_n * tok")" / function(_, pos, name, tpos, tname) return B.typed(pos, name, tpos, tname) end,
      paren = Cp() * tok"(" * sp_n * Ct(V"expr_n" * (sp_n * tok"," * sp_n * V"expr_n")^0) * sp_n * tok")" / B.paren,
      list = Cp() * tok"[" * sp_n * Ct((V"expr_n" * sp_n * (Cg(Ct(V"comptail"), "comp") + (tok"," * sp_n * V"expr_n" * sp_n)^0))^-1) * tok"]" / B.list_or_comp,
      comptail = kw"for" * sp_n * Cp() * NAME * sp_n * opw"in" * sp_n * V"compexpr" * (sp_n * kw"if" * sp_n * V"compexpr")^-1,
      compexpr = (V"operand_n" * (sp_n * Cp() * binop * sp_n * V"operand_n")^0) / B.chain,
      dict = Cp() * tok"{" * sp_n * Ct((V"entry" * (sp_n * tok"," * sp_n * V"entry")^0)^-1) * sp_n * tok"}" / B.dict,
      entry = Cp() * (V"string" + NAME) * sp_n * tok":" * sp_n * V"expr_n" / B.entry,
      toolref = Cp() * kw"tool" * S" \t"^0 * tok":" * S" \t"^0 * NAME / B.toolref,
      literal = Cp() * T(C(P"None" + P"True" + P"False") * -idchar, LABEL_EXPR) / B.const,
      wildcard = Cp() * tok("*", LABEL_EXPR) / B.wildcard,
      valueref = Cp() * tok"<" * C(R("az", "AZ", "__", "::")^1) * tok">" / B.valueref,
      name = Cp() * EXPR_NAME / B.name,
      suffix = tok("(", "operator") * Cc"call" * sp_n * ((V"arg" * (sp_n * tok"," * sp_n * V"arg")^0)^-1 * sp_n * tok")") / B.s_call + tok(".", "operator") * sp_n * Cp() * NAME / B.s_member + tok("[", "operator") * sp_n * V"expr_n" * sp_n * tok"]" / B.s_index,
      arg = Cp() * NAME * sp_n * tok"=" * -P"=" * sp_n * V"expr_n" / B.kwarg + V"expr_n",
   }
   for _, m in ipairs { "b", "n" } do
      local SPm = m == "b" and sp_b or sp_n
      local function v(r) return V(r .. "_" .. m) end
      g["expr_" .. m] = v"chain"
      -- binary operators and prefix operators are collected flat and arranged by B.chain
      -- (operator precedence parsing; the precedence table is B.PREC)
      -- `a if c else b` is the lowest-precedence (right-associative) operator of the chain
      g["chain_" .. m] = (v"operand" * (SPm * Cp() * (binop + T(P"if" * -idchar, "operator") * Cc"if" * sp_n * V"chain_n" * sp_n * kw"else") * sp_n * v"operand")^0) / B.chain
      g["operand_" .. m] = (Cp() * prefixop * sp_n)^0 * v"postfix"
      g["postfix_" .. m] = Cf(V"primary" * (SPm * V"suffix")^0, B.postfix)
   end
   return P(g), g
end

-- list / list comprehension share a prefix: {elt, comp = {vpos, var, iter, cond}} or {items...}
function B.list_or_comp(pos, t)
   local comp = t.comp
   if comp then return B.listcomp(pos, t[1], comp[1], comp[2], comp[3], comp[4]) end
   return B.list(pos, t)
end

local fast, recording
local STRING_ONLY, STRING_STRICT -- set by grammars()

local function grammars()
   if not fast then
      fast = build(false)
      local q3d, q3s, dq, sq = P'"""', P"'''", P'"', P"'"
      local bs, stop = P"\\", S"\n\1\2\3"
      local markers = S"\1\2"
      STRING_STRICT = S"rf"^-1 * (q3d * (1 - q3d - markers)^0 * q3d + q3s * (1 - q3s - markers)^0 * q3s
         + -q3d * dq * (bs * (1 - stop) + (1 - dq - bs - stop))^0 * dq
         + -q3s * sq * (bs * (1 - stop) + (1 - sq - bs - stop))^0 * sq)
      STRING_ONLY = S"rf"^-1 * (q3d * (1 - q3d)^0 * q3d + q3s * (1 - q3s)^0 * q3s

         + -q3d * dq * (bs * (1 - stop) + (1 - dq - bs - stop))^0 * dq
         + -q3s * sq * (bs * (1 - stop) + (1 - sq - bs - stop))^0 * sq)

      recording = build(true)
   end
   return fast, recording
end

---------------------------------------------------------------------------------------------------
-- Error description

local ATOM_LABELS = { ["'('"] = true, ["'['"] = true, ["'{'"] = true, ["'<'"] = true, ["'tool'"] = true,
   ["'not'"] = true, [LABEL_EXPR] = true }
-- folded into "an expression" when an expression is expected too
local ATOM_IF_EXPR = { ["a name"] = true, ["a string"] = true }

local function describe_found(text, pos)
   if pos > #text then return "end of input" end
   local c = sub(text, pos, pos)
   if c == "\1" then return "an indented block" end
   if c == "\2" then return "end of block" end
   if c == "\n" then return "end of line" end
   local w = text:match("^[A-Za-z_][A-Za-z0-9_]*", pos)
   if w then return "'" .. w .. "'" end
   w = text:match("^%d[%d.eE]*", pos) or text:match("^%.%d+", pos)
   if w then return "number " .. w end
   if c == '"' or c == "'" then return "a string" end
   for _, op in ipairs { ":=", "==", "!=", "<=", ">=", "->", "~>", "**" } do
      if sub(text, pos, pos + 1) == op then return "'" .. op .. "'" end
   end
   local b = byte(c)
   if b >= 0xC0 then
      local ch = text:match("^[\192-\255][\128-\191]*", pos)
      return "'" .. ch .. "'"
   end
   if b < 32 or b == 127 then return format("character \\%d", b) end
   return "'" .. c .. "'"
end

local function describe_expected(exp)
   local out, seen = {}, {}
   local has_atom = false
   for _, l in ipairs(exp) do
      if ATOM_LABELS[l] then has_atom = true end
   end
   local function add(l)
      if not seen[l] then
         seen[l] = true
         out[#out + 1] = l
      end
   end
   for _, l in ipairs(exp) do
      if ATOM_LABELS[l] and l ~= "'not'" or has_atom and ATOM_IF_EXPR[l] then
         add(LABEL_EXPR)
      elseif l == "operator" or l == "'and'" or l == "'or'" then
         add("an operator")
      elseif not (l == "'not'" and has_atom) then
         add(l)
      end
   end
   -- drop alternatives that only add noise next to a more useful one
   if #out > 1 then
      local drop = {}
      if seen["end of line"] then drop["end of block"] = true end
      if seen["an operator"] or seen["end of line"] then
         drop["an indented block after ':'"] = true
         drop["':='"] = true
      end
      local kept = {}
      for _, l in ipairs(out) do
         if not drop[l] then kept[#kept + 1] = l end
      end
      if #kept > 0 then out = kept end
   end
   if #out > 5 then

      local keep = {}
      for i = 1, 5 do keep[i] = out[i] end
      out = keep
   end
   if #out == 1 then return out[1] end
   return concat(out, ", ", 1, #out - 1) .. " or " .. out[#out]
end

-- Position of the deepest bracket nesting, or else of the most indented line (for "nested too
-- deeply").
local function deepest(text)
   local depth, best, bestpos = 0, 0, nil
   for i = 1, #text do
      local c = byte(text, i)
      if c == 40 or c == 91 or c == 123 then
         depth = depth + 1
         if depth > best then best, bestpos = depth, i end
      elseif c == 41 or c == 93 or c == 125 then
         depth = depth - 1
      end
   end
   if bestpos then return bestpos end
   local widest, pos = -1, 1
   for s, ws in text:gmatch("()([ \t]*)[^ \t\n\1\2\3]") do
      if #ws > widest then widest, pos = #ws, s + #ws end
   end
   return pos
end


---------------------------------------------------------------------------------------------------
-- The pass

local function index_policy(policy)
   local rules, consts, preds, imports = {}, {}, {}, {}
   for _, s in ipairs(policy.stmts) do
      if s.tag == "Rule" then
         s.index = #rules
         rules[#rules + 1] = s
      elseif s.tag == "Const" then
         consts[#consts + 1] = s
      elseif s.tag == "Predicate" then
         preds[#preds + 1] = s
      elseif s.tag == "Import" then
         imports[#imports + 1] = s
      end
      if s.tag == "Rule" or s.tag == "Predicate" or s.tag == "Const" then
         ast.walk(s, function(n)
            if n.tag == "Import" then imports[#imports + 1] = n end
         end)
      end
   end
   policy.rules, policy.consts, policy.preds, policy.imports = rules, consts, preds, imports
end

local function is_overflow(err)
   return type(err) == "string" and (find(err, "stack overflow", 1, true) ~= nil
      or find(err, "nesting too deep", 1, true) ~= nil)
end


-- Builds both grammars now (e.g. in a zygote before forking) instead of on first use.
function M.warm()
   grammars()
end

function M.parse_text(state)

   local f, r = grammars()
   local text = state.text
   cur = { state = state, text = text, far = 0, exp = {}, expset = {} }
   local ok, res = pcall(lpeg.match, f, text)
   if ok and res then
      cur = nil
      return res
   end
   if not ok and type(res) == "table" and getmetatable(res) and res.message then
      cur = nil
      return nil, diag.new("E101", "syntax", res.line, res.col, res.message)
   end
   if not ok and not is_overflow(res) then
      cur = nil
      error(res, 0)
   end
   if not ok then
      local line, col = indent.locate(state, deepest(text))
      cur = nil
      return nil, diag.new("E101", "syntax", line, col, "expression nested too deeply")
   end
   local ok2, res2 = pcall(lpeg.match, r, text)
   local far, exp = cur.far, cur.exp
   cur = nil
   if not ok2 and is_overflow(res2) then
      local line, col = indent.locate(state, deepest(text))
      return nil, diag.new("E101", "syntax", line, col, "expression nested too deeply")
   end
   if far < 1 then far = 1 end
   local line, col = indent.locate(state, far)
   local found = describe_found(text, far)
   local msg = "expected " .. describe_expected(exp) .. " but found " .. found
   if find(text, "^[rf]?[\"']", far) and not lpeg.match(STRING_STRICT, text, far) then
      if not lpeg.match(STRING_ONLY, text, far) then
         msg = "unterminated string literal"
      else
         msg = "this triple-quoted string breaks the indentation of its block (a line in it ends in ':'"
            .. " before a more indented line, or is less indented than the block)"
      end
   end
   if found == "'='" then msg = msg .. " (use '==' to compare, ':=' to bind)" end
   if found == "':'" and find(text, "^:[ \t\r]*[\n\2]", far) or find(text, "^:[ \t\r]*$", far) then
      msg = "expected an indented block after ':' (the lines of a block must be more indented than the line"
         .. " that opens it)"
   elseif found == "':'" and find(text, "^:[ \t\r]*#", far) then
      msg = "expected an indented block after ':' (the ':' that opens a block must end its line: move the"
         .. " comment to its own line)"
   end


   return nil, diag.new("E101", "syntax", line, col, msg)
end

function M.run(state)
   if not state.text then indent.run(state) end
   local policy, d = M.parse_text(state)
   if not policy then
      state.diags[#state.diags + 1] = d
      return
   end
   index_policy(policy)
   state.ast = policy
end

-- For tests: number of rules in the grammar table (LPeg 1.0.2 allows at most 250).
function M.rule_count()
   local _, g = build(false)
   local n = 0
   for k in pairs(g) do
      if type(k) == "string" then n = n + 1 end
   end
   return n
end

function M._fast() return grammars() end

return M

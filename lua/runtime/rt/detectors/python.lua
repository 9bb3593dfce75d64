-- rt.detectors.python: a small Python 3 tokenizer and parser-lite for `python_code` (spec §9.4):
-- imports, builtin name references, call targets and syntax errors, without a full grammar.
--   python.analyze(src) -> { imports = {...}, builtins = {...}, function_calls = {...},
--                            syntax_error = bool, syntax_error_exception = msg | nil }
-- imports: each module of `import a, b.c` and the module of `from m import ...` (false for a
-- relative `from . import x`); builtins: Name references to Python builtins in source order,
-- duplicates kept; function_calls: source text of each call target, first-seen order, no
-- duplicates. Syntax errors detected: unterminated strings, unbalanced brackets, bad
-- indentation, a missing `:` on a compound statement header, a missing block, adjacent atoms
-- (`print "x"`), a statement ending in an operator, and invalid characters.
local error, pcall, type = error, pcall, type
local ssub, sfind, smatch, sfmt, slower, sgsub, schar, sbyte = string.sub, string.find,
   string.match, string.format, string.lower, string.gsub, string.char, string.byte
local tonumber = tonumber
local uchar, ulen, ucodes = utf8.char, utf8.len, utf8.codes
local tconcat = table.concat

-- luacheck: no max line length
local M = {}
_ENV = nil

local KEYWORDS = {}
for w in ("False None True and as assert async await break class continue def del elif else "
   .. "except finally for from global if import in is lambda nonlocal not or pass raise return "
   .. "try while with yield"):gmatch("%S+") do KEYWORDS[w] = true end

local BUILTINS = {}
for w in ("ArithmeticError AssertionError AttributeError BaseException BaseExceptionGroup "
   .. "BlockingIOError BrokenPipeError BufferError BytesWarning ChildProcessError "
   .. "ConnectionAbortedError ConnectionError ConnectionRefusedError ConnectionResetError "
   .. "DeprecationWarning EOFError Ellipsis EncodingWarning EnvironmentError Exception "
   .. "ExceptionGroup FileExistsError FileNotFoundError FloatingPointError FutureWarning "
   .. "GeneratorExit IOError ImportError ImportWarning IndentationError IndexError "
   .. "InterruptedError IsADirectoryError KeyError KeyboardInterrupt LookupError MemoryError "
   .. "ModuleNotFoundError NameError NotADirectoryError NotImplemented NotImplementedError "
   .. "OSError OverflowError PendingDeprecationWarning PermissionError ProcessLookupError "
   .. "RecursionError ReferenceError ResourceWarning RuntimeError RuntimeWarning "
   .. "StopAsyncIteration StopIteration SyntaxError SyntaxWarning SystemError SystemExit "
   .. "TabError TimeoutError TypeError UnboundLocalError UnicodeDecodeError UnicodeEncodeError "
   .. "UnicodeError UnicodeTranslateError UnicodeWarning UserWarning ValueError Warning "
   .. "ZeroDivisionError __build_class__ __debug__ __doc__ __import__ __loader__ __name__ "
   .. "__package__ __spec__ abs aiter all anext any ascii bin bool breakpoint bytearray bytes "
   .. "callable chr classmethod compile complex copyright credits delattr dict dir divmod "
   .. "enumerate eval exec exit filter float format frozenset getattr globals hasattr hash help "
   .. "hex id input int isinstance issubclass iter len license list locals map max memoryview "
   .. "min next object oct open ord pow print property quit range repr reversed round set "
   .. "setattr slice sorted staticmethod str sum super tuple type vars zip"):gmatch("%S+") do
   BUILTINS[w] = true
end
M.BUILTINS = BUILTINS

local COMPOUND = { ["if"] = true, ["elif"] = true, ["else"] = true, ["for"] = true,
   ["while"] = true, ["def"] = true, ["class"] = true, ["with"] = true, ["try"] = true,
   ["except"] = true, ["finally"] = true }

local OPS3 = { ["**="] = true, ["//="] = true, [">>="] = true, ["<<="] = true, ["..."] = true }
local OPS2 = {}
for w in ("== != <= >= ** // << >> -> += -= *= /= %= &= |= ^= @= := <>"):gmatch("%S+") do
   OPS2[w] = true
end
local OPS1 = "()[]{}:,;.+-*/%<>=&|^~@!"

local CLOSE = { [")"] = "(", ["]"] = "[", ["}"] = "{" }

local function syntax(msg, line)
   error({ syntax = sfmt("%s (<unknown>, line %d)", msg, line) }, 0)
end

-- Tokens: {t = "name"|"number"|"string"|"op"|"newline"|"indent"|"dedent"|"end", v, line}
local function tokenize(src)
   local toks, n = {}, 0
   local function push(t, v, line) n = n + 1; toks[n] = { t = t, v = v, line = line } end
   local pos, len, line = 1, #src, 1
   local depth_stack = {}
   local indents = { 0 }
   local at_line_start = true
   local last_logical_colon = false
   while pos <= len do
      if at_line_start and #depth_stack == 0 then
         -- measure indentation
         local ws = smatch(src, "^[ \t\f]*", pos)
         local p2 = pos + #ws
         local c = ssub(src, p2, p2)
         if c == "\n" or c == "\r" or c == "#" or c == "" then
            -- blank or comment line
            local e = sfind(src, "\n", p2, true)
            if not e then break end
            pos = e + 1; line = line + 1
            goto continue
         end
         local width = 0
         for i = 1, #ws do
            local ch = ssub(ws, i, i)
            if ch == "\t" then width = width + 8 - width % 8 else width = width + 1 end
         end
         local cur = indents[#indents]
         if width > cur then
            if not last_logical_colon then syntax("unexpected indent", line) end
            indents[#indents + 1] = width
            push("indent", nil, line)
         else
            if last_logical_colon then syntax("expected an indented block", line) end
            while width < indents[#indents] do
               indents[#indents] = nil
               push("dedent", nil, line)
            end
            if width ~= indents[#indents] then
               syntax("unindent does not match any outer indentation level", line)
            end
         end
         pos = p2
         at_line_start = false
      end
      local c = ssub(src, pos, pos)
      if c == "\n" then
         if #depth_stack == 0 then
            if n > 0 and toks[n].t ~= "newline" and toks[n].t ~= "indent" and toks[n].t ~= "dedent" then
               last_logical_colon = toks[n].v == ":" and toks[n].t == "op"
               push("newline", nil, line)
            end
            at_line_start = true
         end
         pos = pos + 1; line = line + 1
      elseif c == " " or c == "\t" or c == "\r" or c == "\f" then
         pos = pos + 1
      elseif c == "#" then
         local e = sfind(src, "\n", pos, true)
         pos = e or len + 1
      elseif c == "\\" then
         if ssub(src, pos + 1, pos + 1) == "\n" then pos = pos + 2; line = line + 1
         elseif ssub(src, pos + 1, pos + 2) == "\r\n" then pos = pos + 3; line = line + 1
         else syntax("unexpected character after line continuation character", line) end
      else
         -- string (with optional prefix)
         local prefix = smatch(src, "^[rRbBuUfF][rRbBfF]?", pos)
         local qpos = pos
         if prefix and (ssub(src, pos + #prefix, pos + #prefix) == "'" or ssub(src, pos + #prefix, pos + #prefix) == '"') then
            qpos = pos + #prefix
         else
            prefix = nil
         end
         local q = ssub(src, qpos, qpos)
         if q == "'" or q == '"' then
            local triple = ssub(src, qpos, qpos + 2) == q .. q .. q
            local startline = line
            local p = triple and qpos + 3 or qpos + 1
            local raw = prefix and sfind(slower(prefix), "r", 1, true)
            while true do
               if p > len then
                  if triple then syntax("unterminated triple-quoted string literal (detected at line " .. line .. ")", startline) end
                  syntax("unterminated string literal (detected at line " .. line .. ")", startline)
               end
               local ch = ssub(src, p, p)
               if ch == "\\" then
                  if ssub(src, p + 1, p + 1) == "\n" then line = line + 1 end
                  p = p + 2
               elseif ch == "\n" then
                  if not triple then syntax("unterminated string literal (detected at line " .. line .. ")", startline) end
                  line = line + 1; p = p + 1
               elseif triple and ssub(src, p, p + 2) == q .. q .. q then
                  p = p + 3; break
               elseif not triple and ch == q then
                  p = p + 1; break
               else
                  p = p + 1
               end
            end
            local _ = raw
            local body = ssub(src, qpos + (triple and 3 or 1), p - (triple and 4 or 2))
            push("string", ssub(src, pos, p - 1), startline)
            toks[n].fstring = prefix and sfind(slower(prefix), "f", 1, true) and body or nil
            pos = p
         elseif smatch(src, "^[%a_\128-\255]", pos) then
            local w = smatch(src, "^[%w_\128-\255]+", pos)
            push("name", w, line)
            pos = pos + #w
         elseif smatch(src, "^%d", pos) or smatch(src, "^%.%d", pos) then
            local w = smatch(src, "^0[xX][%x_]+", pos) or smatch(src, "^0[oO][0-7_]+", pos)
               or smatch(src, "^0[bB][01_]+", pos)
               or smatch(src, "^[%d_]*%.?[%d_]*[eE][+-]?[%d_]+[jJ]?", pos)
               or smatch(src, "^[%d_]*%.?[%d_]*[jJ]?", pos)
            push("number", w, line)
            pos = pos + #w
            if smatch(src, "^[%a_]", pos) and not smatch(src, "^(and|or|if|else|in|is|not|for)[^%w_]", pos) then
               syntax("invalid decimal literal", line)
            end
         else
            local three, two = ssub(src, pos, pos + 2), ssub(src, pos, pos + 1)
            local op
            if OPS3[three] then op = three
            elseif OPS2[two] then op = two
            elseif sfind(OPS1, c, 1, true) then op = c
            else
               syntax("invalid character '" .. c .. "'", line)
            end
            if op == "!" then syntax("invalid syntax", line) end
            if op == "(" or op == "[" or op == "{" then
               depth_stack[#depth_stack + 1] = { op, line }
            elseif CLOSE[op] then
               local top = depth_stack[#depth_stack]
               if not top then syntax("unmatched '" .. op .. "'", line) end
               if top[1] ~= CLOSE[op] then
                  syntax(sfmt("closing parenthesis '%s' does not match opening parenthesis '%s'", op, top[1]), line)
               end
               depth_stack[#depth_stack] = nil
            end
            push("op", op, line)
            pos = pos + #op
         end
      end
      ::continue::
   end
   if #depth_stack > 0 then
      local top = depth_stack[#depth_stack]
      syntax("'" .. top[1] .. "' was never closed", top[2])
   end
   if n > 0 and toks[n].t ~= "newline" and toks[n].t ~= "dedent" then
      last_logical_colon = toks[n].t == "op" and toks[n].v == ":"
      push("newline", nil, line)
   end
   if last_logical_colon then syntax("expected an indented block", line) end
   for _ = 2, #indents do push("dedent", nil, line) end
   push("end", nil, line)
   return toks
end
M.tokenize = tokenize

local ATOM = { name = true, number = true, string = true }
local BINOP_END = {}
for w in ("+ - * / % ** // << >> & | ^ @ = == != < > <= >= += -= *= /= %= &= |= ^= @= **= //= "
   .. ">>= <<= . , ->"):gmatch("%S+") do BINOP_END[w] = true end
BINOP_END[","] = nil -- a trailing comma makes a tuple

local function is_kw(tok, w) return tok and tok.t == "name" and tok.v == w end

-- source text of toks[a..b] roughly as ast.unparse writes it (redundant outer parentheses
-- dropped, spaces after commas/colons/keywords and around binary operators)
-- Python string literal token -> (kind "str" | "bytes" | "f", value) ; value is the decoded
-- text for str/bytes (UTF-8 bytes), the raw body for f-strings
local function decode_literal(v)
   local prefix = smatch(v, "^[%a]*")
   local lp = slower(prefix)
   local q = ssub(v, #prefix + 1, #prefix + 1)
   local triple = ssub(v, #prefix + 1, #prefix + 3) == q .. q .. q
   local ql = triple and 3 or 1
   local body = ssub(v, #prefix + 1 + ql, #v - ql)
   local kind = sfind(lp, "f", 1, true) and "f" or (sfind(lp, "b", 1, true) and "bytes" or "str")
   if kind == "f" or sfind(lp, "r", 1, true) then return kind, body end
   local simple = { n = "\n", r = "\r", t = "\t", a = "\a", b = "\b", f = "\f", v = "\v",
      ["\\"] = "\\", ["'"] = "'", ['"'] = '"', ["\n"] = "" }
   local out = sgsub(body, "\\(.)([0-7]?[0-7]?)", function(c, more)
      if simple[c] then return simple[c] .. more end
      if smatch(c, "[0-7]") then return schar(tonumber(c .. more, 8) % 256) end
      return nil
   end)
   out = sgsub(out, "\\x(%x%x)", function(h) return schar(tonumber(h, 16)) end)
   if kind == "str" then
      out = sgsub(out, "\\u(%x%x%x%x)", function(h) return uchar(tonumber(h, 16)) end)
      out = sgsub(out, "\\U(%x%x%x%x%x%x%x%x)", function(h) return uchar(tonumber(h, 16)) end)
   end
   return kind, out
end

-- Python repr() of a str (UTF-8) or bytes value
local NONPRINT = { Cc = true, Cf = true, Cs = true, Co = true, Cn = true, Zl = true, Zp = true,
   Zs = true }
local category -- set by the detectors module (rt.detectors.category) to avoid a require cycle
function M.set_category(f) category = f end

local function py_repr(kind, sval)
   local q = "'"
   if sfind(sval, "'", 1, true) and not sfind(sval, '"', 1, true) then q = '"' end
   local out = {}
   local function esc(c)
      if c == 92 then return "\\\\" end
      if c == 10 then return "\\n" end
      if c == 13 then return "\\r" end
      if c == 9 then return "\\t" end
      if schar(c) == q then return "\\" .. q end
      if c < 32 or c == 127 then return sfmt("\\x%02x", c) end
      return nil
   end
   if kind == "bytes" or not ulen(sval) then
      for i = 1, #sval do
         local c = sbyte(sval, i)
         out[#out + 1] = esc(c) or (c >= 128 and sfmt("\\x%02x", c)) or schar(c)
      end
      return (kind == "bytes" and "b" or "") .. q .. tconcat(out) .. q
   end
   for _, c in ucodes(sval) do
      local e = c < 128 and esc(c)
      if e then out[#out + 1] = e
      elseif c >= 128 and category and c ~= 32 and NONPRINT[category(c)] then
         out[#out + 1] = c < 256 and sfmt("\\x%02x", c) or c < 65536 and sfmt("\\u%04x", c)
            or sfmt("\\U%08x", c)
      else out[#out + 1] = uchar(c) end
   end
   return q .. tconcat(out) .. q
end
M.py_repr = py_repr

local OPEN = { ["("] = true, ["["] = true, ["{"] = true }
local CLOSEB = { [")"] = true, ["]"] = true, ["}"] = true }

-- source text of toks[a..b] as ast.unparse writes it (approximately): redundant outer
-- parentheses dropped, string literals in repr() form (adjacent ones joined), trailing commas
-- dropped, spaces after commas/colons/keywords and around binary operators, none inside slices
local function render(toks, a, b)
   while b > a and toks[a].t == "op" and toks[a].v == "(" and toks[b].t == "op" and toks[b].v == ")" do
      local depth, enclosing, commas = 0, true, 0
      for k = a, b do
         local t = toks[k]
         if t.t == "op" and OPEN[t.v] then depth = depth + 1
         elseif t.t == "op" and CLOSEB[t.v] then
            depth = depth - 1
            if depth == 0 and k < b then enclosing = false; break end
         elseif depth == 1 and t.t == "op" and t.v == "," then commas = commas + 1 end
      end
      if not enclosing or commas > 0 then break end
      a, b = a + 1, b - 1
   end
   -- parentheses around a primary (names, literals, calls, subscripts, attributes) are dropped;
   -- a generator that is the only argument of a call gets its own parentheses (ast.unparse)
   local drop, wrap = {}, {}
   do
      local opens = {}
      for k = a, b do
         local t = toks[k]
         if t.t == "op" and OPEN[t.v] then
            opens[#opens + 1] = k
         elseif t.t == "op" and CLOSEB[t.v] and #opens > 0 then
            local o = opens[#opens]
            opens[#opens] = nil
            if toks[o].v == "(" then
               local before = toks[o - 1]
               local is_call = o > a and before and (before.t == "name" and not KEYWORDS[before.v]
                  or before.t == "string" or (before.t == "op" and CLOSEB[before.v]))
               local depth, primary, has_for, commas = 0, k > o + 1, false, 0
               for m = o + 1, k - 1 do
                  local u = toks[m]
                  if u.t == "op" and OPEN[u.v] then depth = depth + 1
                  elseif u.t == "op" and CLOSEB[u.v] then depth = depth - 1
                  elseif depth == 0 then
                     if u.t == "op" and u.v ~= "." then primary = false end
                     if u.t == "op" and u.v == "," then commas = commas + 1 end
                     if u.t == "name" and KEYWORDS[u.v] and u.v ~= "None" and u.v ~= "True"
                        and u.v ~= "False" then
                        primary = false
                        if u.v == "for" then has_for = true end
                     end
                  end
               end
               if not is_call and primary then drop[o], drop[k] = true, true end
               if is_call and has_for and commas == 0 then wrap[o], wrap[k] = true, true end
            end
         end
      end
   end
   local out = {}
   local stack = {} -- open brackets: { v = "(" | "[" | "{", call = bool, commas = n }
   local prev -- previous emitted token
   local k = a
   while k <= b do
      local t = toks[k]
      local text = t.v
      local skip = false
      if t.t == "string" then
         -- implicit concatenation of adjacent literals
         local kind, val = decode_literal(t.v)
         local parts, j = { val }, k
         while j + 1 <= b and toks[j + 1].t == "string" do
            local k2, v2 = decode_literal(toks[j + 1].v)
            if k2 ~= kind then break end
            parts[#parts + 1] = v2
            j = j + 1
         end
         if kind == "f" then
            text = "f" .. py_repr("str", tconcat(parts))
            text = sgsub(text, "\\\\", "\\") -- keep replacement fields and escapes as written
         else
            text = py_repr(kind, tconcat(parts))
            if smatch(t.v, "^[uU]") then text = "u" .. text end
         end
         k = j
      elseif t.t == "op" and t.v == "," then
         local nx = toks[k + 1]
         local top = stack[#stack]
         if k < b and nx.t == "op" and CLOSEB[nx.v] then
            -- a trailing comma: kept only for a one-element tuple
            skip = not (top and top.v == "(" and not top.call and top.commas == 0)
         end
         if top then top.commas = top.commas + 1 end
      end
      if drop[k] then skip = true end
      if wrap[k] then text = t.v == "(" and "((" or "))" end
      if not skip then
         if prev then
            local space
            local pv = prev.t == "op" and prev.v
            local tv = t.t == "op" and t.v
            local top = stack[#stack]
            local in_slice = top and top.v == "["
            if tv == "." or tv == "," or tv == ")" or tv == "]" or tv == "}" then space = false
            elseif tv == ":" then space = false
            elseif (tv == "(" or tv == "[") and prev.t ~= "op" and not (prev.t == "name" and KEYWORDS[prev.v]) then
               space = false -- call or subscript
            elseif (tv == "(" or tv == "[") and (pv == ")" or pv == "]") then space = false
            elseif pv == "." or pv == "(" or pv == "[" or pv == "{" or pv == "~" then space = false
            elseif pv == ":" then space = not in_slice
            elseif pv == "," then space = true
            elseif tv == "=" or pv == "=" then space = false
            elseif prev.unary then space = false
            else space = true end
            if space then out[#out + 1] = " " end
         end
         if t.t == "op" and (t.v == "-" or t.v == "+" or t.v == "*" or t.v == "**" or t.v == "~") then
            local pv = prev and prev.t == "op" and prev.v
            t = { t = t.t, v = t.v, unary = (prev == nil) or (pv and not CLOSEB[pv])
               or (prev.t == "name" and KEYWORDS[prev.v] and prev.v ~= "None" and prev.v ~= "True"
                  and prev.v ~= "False") }
         end
         out[#out + 1] = text
         prev = t
      end
      if t.t == "op" and OPEN[t.v] then
         local before = toks[k - 1]
         stack[#stack + 1] = { v = t.v, commas = 0,
            call = k > a and before and (before.t == "name" or before.t == "string"
               or (before.t == "op" and CLOSEB[before.v])) or false }
      elseif t.t == "op" and CLOSEB[t.v] then
         stack[#stack] = nil
      end
      k = k + 1
   end
   return tconcat(out)
end

-- statement-level checks and the extraction
local function analyze_tokens(toks, res, seen_calls)
   local n = #toks
   local stmt_start = true
   local bracket = {} -- stack of {kind=..., call=bool, def=bool, lambda...}
   local stmt_kind   -- first keyword of the current statement
   local i = 1
   local lambda_depth = {} -- stack of bracket depths of open lambdas (params until ':')
   while i <= n do
      local tk = toks[i]
      local prev = toks[i - 1]
      local nxt = toks[i + 1]
      if tk.t == "newline" then
         if prev and prev.t == "op" and BINOP_END[prev.v] and #bracket == 0 and stmt_kind ~= "from" then
            syntax("invalid syntax", prev.line)
         end
         if stmt_kind and COMPOUND[stmt_kind] then
            syntax("expected ':'", tk.line) -- a compound header whose ':' never came
         end
         stmt_start, stmt_kind = true, nil
      elseif tk.t == "indent" or tk.t == "dedent" or tk.t == "end" then
         stmt_start = true
      else
         if stmt_start then
            stmt_kind = tk.t == "name" and tk.v or nil
            if stmt_kind == "async" and nxt and nxt.t == "name" then stmt_kind = nxt.v end
            if stmt_kind and not KEYWORDS[stmt_kind] then stmt_kind = nil end
         end
         -- mark that a compound header's ':' was seen at depth 0
         if tk.t == "op" and tk.v == ":" and #bracket == 0 and #lambda_depth == 0 then
            if stmt_kind and COMPOUND[stmt_kind] then
               -- a one-line body follows: treat it as a new statement
               stmt_start = true
               stmt_kind = nil
               i = i + 1
               goto continue
            end
         end
         if tk.t == "op" and tk.v == ";" then stmt_start = true; stmt_kind = nil; i = i + 1; goto continue end
         -- adjacent atoms
         if prev and ATOM[tk.t] and ATOM[prev.t] and not stmt_start then
            local ok = (prev.t == "string" and tk.t == "string")
               or (prev.t == "name" and KEYWORDS[prev.v]) or (tk.t == "name" and KEYWORDS[tk.v])
               or (prev.t == "name" and (prev.v == "match" or prev.v == "case" or prev.v == "type")
                  and (not toks[i - 2] or toks[i - 2].t == "newline" or toks[i - 2].t == "indent"
                  or toks[i - 2].t == "dedent"))
            if not ok then
               if prev.t == "name" and (prev.v == "print" or prev.v == "exec") and (not toks[i - 2]
                  or toks[i - 2].t == "newline" or toks[i - 2].t == "indent" or toks[i - 2].t == "dedent") then
                  syntax(sfmt("Missing parentheses in call to '%s'. Did you mean %s(...)?", prev.v, prev.v), tk.line)
               end
               syntax("invalid syntax", tk.line)
            end
         end
         if tk.t == "op" and tk.v == "=" and prev and prev.t == "name" and KEYWORDS[prev.v]
            and prev.v ~= "None" and prev.v ~= "True" and prev.v ~= "False" then -- (`x: T | None = v`)
            syntax("invalid syntax", tk.line)
         end
         stmt_start = false
         -- imports
         if tk.t == "name" and tk.v == "import" and (not prev or prev.t ~= "name" or prev.v ~= "from" ) and stmt_kind == "import" then
            local j = i + 1
            while j <= n do
               local parts = {}
               while toks[j] and toks[j].t == "name" do
                  parts[#parts + 1] = toks[j].v
                  if toks[j + 1] and toks[j + 1].t == "op" and toks[j + 1].v == "." then j = j + 2 else j = j + 1; break end
               end
               if #parts == 0 then syntax("invalid syntax", tk.line) end
               res.imports[#res.imports + 1] = tconcat(parts, ".")
               if is_kw(toks[j], "as") then j = j + 2 end
               if toks[j] and toks[j].t == "op" and toks[j].v == "," then j = j + 1 else break end
            end
            i = j
            goto continue
         end
         if tk.t == "name" and tk.v == "from" and stmt_kind == "from" then
            local j = i + 1
            local parts = {}
            while toks[j] and toks[j].t == "op" and (toks[j].v == "." or toks[j].v == "...") do j = j + 1 end
            while toks[j] and toks[j].t == "name" and toks[j].v ~= "import" do
               parts[#parts + 1] = toks[j].v
               if toks[j + 1] and toks[j + 1].t == "op" and toks[j + 1].v == "." then j = j + 2 else j = j + 1; break end
            end
            if not is_kw(toks[j], "import") then syntax("invalid syntax", tk.line) end
            res.imports[#res.imports + 1] = #parts > 0 and tconcat(parts, ".") or false
            -- skip the imported names
            j = j + 1
            while toks[j] and toks[j].t ~= "newline" and not (toks[j].t == "op" and toks[j].v == ";") do j = j + 1 end
            i = j
            goto continue
         end
         if tk.t == "name" and (tk.v == "global" or tk.v == "nonlocal") then
            local j = i + 1
            while toks[j] and toks[j].t ~= "newline" and not (toks[j].t == "op" and toks[j].v == ";") do j = j + 1 end
            i = j
            goto continue
         end
         -- brackets
         if tk.t == "op" and (tk.v == "(" or tk.v == "[" or tk.v == "{") then
            local is_call = tk.v == "(" and prev and ((prev.t == "name" and not KEYWORDS[prev.v])
               or (prev.t == "op" and (prev.v == ")" or prev.v == "]")) or prev.t == "string")
            local is_def = tk.v == "(" and toks[i - 2] and is_kw(toks[i - 2], "def")
            local is_class = tk.v == "(" and toks[i - 2] and is_kw(toks[i - 2], "class")
            if is_def or is_class then is_call = false end
            if is_call then
               -- call target text: walk back over a dotted chain / subscripts
               local j = i - 1
               local depth = 0
               while j >= 1 do
                  local t = toks[j]
                  if t.t == "op" and (t.v == ")" or t.v == "]" or t.v == "}") then depth = depth + 1
                  elseif t.t == "op" and (t.v == "(" or t.v == "[" or t.v == "{") then
                     depth = depth - 1
                     if depth < 0 then j = j + 1; break end
                  elseif depth == 0 then
                     if t.t == "name" and not KEYWORDS[t.v] then
                        local pt = toks[j - 1]
                        if not (pt and pt.t == "op" and pt.v == ".") then break end
                     elseif t.t == "string" then
                        while toks[j - 1] and toks[j - 1].t == "string" do j = j - 1 end
                        break
                     elseif not (t.t == "op" and t.v == ".") then
                        j = j + 1; break
                     end
                  end
                  j = j - 1
               end
               if j < 1 then j = 1 end
               local target = render(toks, j, i - 1)
               if not seen_calls[target] then
                  seen_calls[target] = true
                  res.function_calls[#res.function_calls + 1] = target
               end
            end
            bracket[#bracket + 1] = { v = tk.v, call = is_call, def = is_def, class = is_class }
         elseif tk.t == "op" and (tk.v == ")" or tk.v == "]" or tk.v == "}") then
            bracket[#bracket] = nil
         elseif tk.t == "name" and tk.v == "lambda" then
            lambda_depth[#lambda_depth + 1] = #bracket
         elseif tk.t == "op" and tk.v == ":" and #lambda_depth > 0 and lambda_depth[#lambda_depth] == #bracket then
            lambda_depth[#lambda_depth] = nil
         elseif tk.t == "name" and not KEYWORDS[tk.v] then
            -- is this a Name node?
            local name_node = true
            if prev and prev.t == "op" and prev.v == "." then name_node = false end
            if prev and (is_kw(prev, "def") or is_kw(prev, "class")) then name_node = false end
            if prev and is_kw(prev, "as") and (stmt_kind == "except" or stmt_kind == "import") then name_node = false end
            local top = bracket[#bracket]
            local after_sep = prev and prev.t == "op" and (prev.v == "(" or prev.v == "," or prev.v == "*" or prev.v == "**" or prev.v == "/")
            if top and (top.call or top.class) and nxt and nxt.t == "op" and nxt.v == "=" and after_sep then
               name_node = false -- keyword argument
            end
            if top and top.def and after_sep then name_node = false end -- parameter
            if #lambda_depth > 0 and lambda_depth[#lambda_depth] == #bracket
               and (is_kw(prev, "lambda") or after_sep) then
               name_node = false -- lambda parameter
            end
            if name_node and BUILTINS[tk.v] then res.builtins[#res.builtins + 1] = tk.v end
         end
         if tk.t == "string" and tk.fstring then
            -- expressions inside f-string replacement fields
            local body = tk.fstring
            local p = 1
            while true do
               local a = sfind(body, "{", p, true)
               if not a then break end
               if ssub(body, a + 1, a + 1) == "{" then p = a + 2
               else
                  local depth, b = 0, a + 1
                  while b <= #body do
                     local ch = ssub(body, b, b)
                     if ch == "{" or ch == "(" or ch == "[" then depth = depth + 1
                     elseif ch == ")" or ch == "]" then depth = depth - 1
                     elseif ch == "}" then if depth == 0 then break end depth = depth - 1
                     elseif (ch == "!" or ch == ":") and depth == 0 and ssub(body, b + 1, b + 1) ~= "=" then break end
                     b = b + 1
                  end
                  local expr = ssub(body, a + 1, b - 1)
                  -- self-documenting `{x=}`
                  if smatch(expr, "[^=!<>]=%s*$") then expr = smatch(expr, "^(.-)=%s*$") end
                  local ok, sub = M._sub_tokens(expr)
                  if ok then
                     -- a problem inside a replacement field is not reported as the program's
                     pcall(analyze_tokens, sub, res, seen_calls)
                  end
                  local e = sfind(body, "}", b, true)
                  p = (e or #body) + 1
               end
            end
         end
      end
      i = i + 1
      ::continue::
   end
end

function M._sub_tokens(expr)
   return pcall(tokenize, expr)
end

function M.analyze(src)
   local res = { imports = {}, builtins = {}, function_calls = {}, syntax_error = false }
   local ok, err = pcall(function()
      local toks = tokenize(src)
      analyze_tokens(toks, res, {})
   end)
   if not ok then
      if type(err) == "table" and err.syntax then
         return { imports = {}, builtins = {}, function_calls = {}, syntax_error = true,
            syntax_error_exception = err.syntax }
      end
      error(err, 0)
   end
   return res
end

return M

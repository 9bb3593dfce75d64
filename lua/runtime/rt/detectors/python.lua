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
local ssub, sfind, smatch, sfmt, slower = string.sub, string.find,
   string.match, string.format, string.lower
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
local NOSPACE_BEFORE = { ["."] = true, ["("] = true, ["["] = true, [")"] = true, ["]"] = true,
   ["}"] = true, [","] = true, [":"] = true }
local NOSPACE_AFTER = { ["."] = true, ["("] = true, ["["] = true, ["{"] = true, ["~"] = true }
local function render(toks, a, b)
   while b > a and toks[a].t == "op" and toks[a].v == "(" and toks[b].t == "op" and toks[b].v == ")" do
      -- strip only when the parentheses enclose everything
      local depth, enclosing = 0, true
      for k = a, b do
         local t = toks[k]
         if t.t == "op" and (t.v == "(" or t.v == "[" or t.v == "{") then depth = depth + 1
         elseif t.t == "op" and (t.v == ")" or t.v == "]" or t.v == "}") then
            depth = depth - 1
            if depth == 0 and k < b then enclosing = false; break end
         end
      end
      if not enclosing then break end
      a, b = a + 1, b - 1
   end
   local out = {}
   for k = a, b do
      local t, p = toks[k], toks[k - 1]
      if k > a then
         local space
         if t.t == "op" and NOSPACE_BEFORE[t.v] then space = false
         elseif p.t == "op" and NOSPACE_AFTER[p.v] then space = false
         elseif p.t == "op" and (p.v == "," or p.v == ":") then space = true
         elseif t.t == "op" or p.t == "op" then space = true
         else space = true end
         if t.t == "op" and t.v == ":" and p.t == "name" and p.v == "lambda" then space = false end
         if (t.t == "op" and t.v == "=") or (p.t == "op" and p.v == "=") then space = false end
         -- unary operators: no space after them
         local pp = toks[k - 2]
         if p.t == "op" and (p.v == "*" or p.v == "**" or p.v == "-" or p.v == "+")
            and (k - 1 == a or (pp.t == "op" and (pp.v == "(" or pp.v == "," or pp.v == "=" or pp.v == "["))) then
            space = false
         end
         if space then out[#out + 1] = " " end
      end
      out[#out + 1] = t.v
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
         if prev and prev.t == "op" and BINOP_END[prev.v] and #bracket == 0 then
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
         if tk.t == "op" and tk.v == "=" and prev and prev.t == "name" and KEYWORDS[prev.v] then
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
                  if t.t == "op" and (t.v == ")" or t.v == "]") then depth = depth + 1
                  elseif t.t == "op" and (t.v == "(" or t.v == "[") then
                     depth = depth - 1
                     if depth < 0 then j = j + 1; break end
                  elseif depth == 0 then
                     if t.t == "name" and not KEYWORDS[t.v] then
                        local pt = toks[j - 1]
                        if not (pt and pt.t == "op" and pt.v == ".") then break end
                     elseif t.t == "string" then break
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
                  local ok, sub = M._sub_tokens(expr)
                  if ok then analyze_tokens(sub, res, seen_calls) end
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

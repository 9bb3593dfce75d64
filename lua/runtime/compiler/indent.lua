-- compiler.indent: the indentation pre-pass (spec §2.2), run before the LPeg grammar.
--
-- Input: state.src (the policy as the client sent it). Output:
--   state.lines      original lines (split on "\n"; a trailing "\r" is dropped)
--   state.text       the pre-passed text: the lines of the dedented source joined by "\n", with
--                    INDENT ("\1") / DEDENT ("\2") markers appended at the END of lines (so every
--                    byte keeps its line and column), the trailing ":" / ":=" of a block opener
--                    removed, and the newline before a continuation line replaced by "\3" (a
--                    newline that never separates body items or statements)
--   state.map        pre-pass line -> original line (the identity: blank lines are kept empty)
--   state.line_start byte offset in state.text where each line starts
--   state.margin     per line: characters removed by the dedent (added back to columns)
--   state.unit       the indent unit U
--
-- The algorithm is the reference's: source dedent (textwrap.dedent); U = smallest positive
-- indentation over all non-blank lines (1 if none); level = indentation // U; a block opens
-- only when a more indented line follows a line whose right-trimmed text ends in ":" or ":="
-- (one INDENT per level gained); a less indented line closes blocks (one DEDENT per level, even
-- for comments and lines inside literals); a more indented line that does not follow ":"/":="
-- is a continuation line (no marker). Blank lines are skipped by the algorithm.
-- One deliberate difference: blank lines are kept (empty) in the output, so that line numbers
-- need no translation and blank lines inside triple-quoted strings survive.

local type, sub, find, byte, gsub, rep, concat = type, string.sub, string.find, string.byte, string.gsub,
   string.rep, table.concat
_ENV = nil

local M = {}

M.INDENT, M.DEDENT, M.JOIN = "\1", "\2", "\3"

local function split_lines(src)
   local lines, n, pos = {}, 0, 1
   while true do
      local nl = find(src, "\n", pos, true)
      local line = sub(src, pos, nl and nl - 1 or #src)
      if byte(line, -1) == 13 then line = sub(line, 1, -2) end
      n = n + 1
      lines[n] = line
      if not nl then break end
      pos = nl + 1
   end
   return lines, n
end

local function is_blank(line)
   return find(line, "^[ \t\f\v\r]*$") ~= nil
end

-- textwrap.dedent's margin: longest common leading [ \t]* prefix of the non-blank lines.
local function common_margin(lines, n)
   local margin
   for i = 1, n do
      local l = lines[i]
      if not is_blank(l) then
         local ws = l:match("^[ \t]*")
         if margin == nil then
            margin = ws
         elseif sub(ws, 1, #margin) ~= margin then
            local k = 0
            while k < #margin and k < #ws and byte(margin, k + 1) == byte(ws, k + 1) do k = k + 1 end
            margin = sub(margin, 1, k)
         end
         if margin == "" then break end
      end
   end
   return margin or ""
end
M.common_margin = common_margin

-- Python textwrap.dedent of a string (used for triple-quoted string values).
function M.dedent(s)
   local lines, n = {}, 0
   for line in (s .. "\n"):gmatch("(.-)\n") do
      n = n + 1
      lines[n] = line
   end
   local margin = common_margin(lines, n)
   for i = 1, n do
      local l = lines[i]
      if find(l, "^[ \t]*$") then
         lines[i] = ""
      else
         lines[i] = sub(l, #margin + 1)
      end
   end
   return concat(lines, "\n", 1, n)
end

local function rtrim(s)
   return (gsub(s, "[ \t\f\v\r]+$", ""))
end

function M.run(state)
   local src = state.src
   if sub(src, 1, 3) == "\239\187\191" then src = sub(src, 4) end -- a UTF-8 BOM is not a column

   local lines, n = split_lines(src)
   state.lines = lines
   local margin = common_margin(lines, n)
   local mlen = #margin
   local out, marg, blank = {}, {}, {}
   local unit
   for i = 1, n do
      local l = lines[i]
      if is_blank(l) then
         out[i], marg[i], blank[i] = "", 0, true
      else
         l = sub(l, mlen + 1)
         out[i], marg[i] = l, mlen
         local lead = #l:match("^[ \t\f\v]*")
         if lead > 0 and (unit == nil or lead < unit) then unit = lead end
      end
   end
   unit = unit or 1
   local joiner = {}
   local current, last = 0, nil
   for i = 1, n do
      if not blank[i] then
         local lead = #out[i]:match("^[ \t\f\v]*")
         local level = lead // unit
         if level > current then
            local opened = false
            if last then
               local t = rtrim(out[last])
               if sub(t, -2) == ":=" then
                  out[last] = rtrim(sub(t, 1, -3)) .. rep(M.INDENT, level - current)
                  opened = true
               elseif sub(t, -1) == ":" then
                  out[last] = rtrim(sub(t, 1, -2)) .. rep(M.INDENT, level - current)
                  opened = true
               end
            end
            if opened then
               current = level
            elseif last then
               for j = last + 1, i do joiner[j] = M.JOIN end
            end
         end
         if level < current then
            out[last] = out[last] .. rep(M.DEDENT, current - level)
            current = level
         end
         last = i
      end
   end
   if current > 0 and last then out[last] = out[last] .. rep(M.DEDENT, current) end
   local parts, starts, map, pos, ascii = {}, {}, {}, 1, {}
   for i = 1, n do
      if i > 1 then
         parts[#parts + 1] = joiner[i] or "\n"
         pos = pos + 1
      end
      starts[i] = pos
      map[i] = i
      ascii[i] = not find(out[i], "[\128-\255]")
      parts[#parts + 1] = out[i]
      pos = pos + #out[i]
   end
   state.text = concat(parts)
   state.out_lines = out
   state.line_start = starts
   state.map = map
   state.ascii = ascii

   state.margin = marg
   state.unit = unit
   state.nlines = n
end

-- Byte offset in state.text -> original line, column (1-based; column in code points).
function M.locate(state, pos)
   local starts, n = state.line_start, state.nlines
   if type(pos) ~= "number" or pos < 1 then return 1, 1 end
   local lo, hi = 1, n
   while lo < hi do
      local mid = (lo + hi + 1) // 2
      if starts[mid] <= pos then lo = mid else hi = mid - 1 end
   end
   local line = lo
   local nbytes = pos - starts[line]
   local text = state.out_lines[line]
   local col = 0
   if nbytes > #text then
      col = nbytes - #text
      nbytes = #text
   end
   if state.ascii[line] then
      col = col + nbytes
   else
      -- chars[k] = number of characters in the first k bytes of the line (built once per line)
      local cache = state.char_counts
      if not cache then
         cache = {}
         state.char_counts = cache
      end
      local chars = cache[line]
      if not chars then
         chars = { [0] = 0 }
         local c = 0
         for k = 1, #text do
            local b = byte(text, k)
            if b < 128 or b > 191 then c = c + 1 end
            chars[k] = c
         end
         cache[line] = chars
      end
      col = col + chars[nbytes]
   end

   return state.map[line], col + 1 + (state.margin[line] or 0)
end

return M

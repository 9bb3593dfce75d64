-- Guardrail: credentials and private keys in tool outputs.
-- A tool returned text that contains an API token or a private key (the model may now repeat
-- or forward it). Each match is marked, so the violation's ranges point at the secret.
-- luacheck: read globals rule var let cond flow succ forall count predicate const CONST input Violation
-- luacheck: read globals PolicyViolation FLOW SUCC V B PAT ERR TRACE None
-- luacheck: no unused args
local PATTERNS = {
   { "aws access key", "AKIA[0-9A-Z]" .. ("[0-9A-Z]"):rep(15) },
   { "github token", "gh[pousr]_" .. ("[A-Za-z0-9]"):rep(36) },
   { "slack token", "xox[baprs]%-[0-9A-Za-z%-]+" },
   { "openai key", "sk%-[A-Za-z0-9_%-]" .. ("[A-Za-z0-9_%-]"):rep(19) .. "[A-Za-z0-9_%-]*" },
   { "private key", "%-%-%-%-%-BEGIN [A-Z ]*PRIVATE KEY%-%-%-%-%-" },
}

-- the texts of a content value (a string or a list of chunks), located when they come from the trace
local function texts(c, content)
   if V.str(content) then return { content } end
   local out = {}
   if content ~= None and V.typename(content) == "Contents" then
      for _, ch in ipairs(V.iter(content)) do
         if ch.kind == "TextChunk" then out[#out + 1] = V.attr(ch, "text") end
      end
   end
   return out
end

-- marks every secret in the tool output's content; returns the kinds found (a set) or nil
local function find_secrets(c, o)
   local found
   for _, t in ipairs(texts(c, V.attr(o, "content"))) do
      local s = V.str(t)
      for _, p in ipairs(PATTERNS) do
         local init = 1
         while true do
            local a, b = s:find(p[2], init)
            if not a then break end
            local st = V.byte_to_cp(s, a)
            c:mark(t, st, st + V.cplen(s:sub(a, b)))
            found = found or {}
            found[p[1]] = true
            init = b + 1
         end
      end
   end
   return found
end

rule { line = 1, message = "secret in a tool output",
   raise = function(c, e)
      return Violation(c, {"a tool output contains a credential or private key", n = 1},
         {output = e.o})
   end,
   var("o", "ToolOutput", 2, 1),
   cond({"o"}, 3, 1, function(c, e) return find_secrets(c, e.o) ~= nil end),
}

-- Guardrail: after the agent read an inbox, it sends e-mail to an address outside the
-- organisation. Parameter `internal_domains`: a list of the organisation's mail domains.
-- luacheck: read globals rule var let cond flow succ forall count predicate const CONST input Violation
-- luacheck: read globals PolicyViolation FLOW SUCC V B PAT ERR TRACE None
-- luacheck: no unused args
local READ = { get_inbox = true, read_email = true, read_emails = true, list_emails = true,
   search_emails = true, fetch_mail = true }
local SEND = { send_email = true, forward_email = true, reply_email = true, send_mail = true }
local FIELDS = { "to", "cc", "bcc", "recipient", "recipients" }

local function domain_of(addr)
   local d = addr:match("@([^@%s>]+)%s*>?%s*$")
   return d and d:lower()
end

-- the recipients of a send call that are outside `internal` (marks each of them)
local function external(c, call, internal)
   local args = V.attr(V.attr(call, "function"), "arguments")
   if V.typename(args) ~= "dict" then return false end
   local found = false
   for _, f in ipairs(FIELDS) do
      if args[f] ~= nil then
         local v = V.index(args, f)
         local list = V.str(v) and { v } or (V.is_list(v) and V.iter(v) or {})
         for _, a in ipairs(list) do
            local s = V.str(a)
            if s then
               for part in s:gmatch("[^,;]+") do
                  local d = domain_of(part)
                  if not d or not internal[d] then
                     found = true
                     c:mark(a, 0, V.cplen(s))
                     break
                  end
               end
            end
         end
      end
   end
   return found
end

local function internal_set(c)
   local set = {}
   for _, d in ipairs(V.iter(input(c, "internal_domains"))) do set[V.str(d):lower()] = true end
   return set
end

rule { line = 1, message = "inbox content mailed outside the organisation",
   raise = function(c, e)
      return Violation(c, {"e-mail to an external address after reading the inbox", n = 1},
         {read = e.read, send = e.send})
   end,
   var("read", "ToolCall", 2, 1), flow("read", "send", 2, 1), var("send", "ToolCall", 2, 1),
   cond({"read"}, 3, 1, function(c, e) return READ[e.read["function"].name] == true end),
   cond({"send"}, 4, 1, function(c, e) return SEND[e.send["function"].name] == true end),
   cond({"send"}, 5, 1, function(c, e) return external(c, e.send, internal_set(c)) end),
}

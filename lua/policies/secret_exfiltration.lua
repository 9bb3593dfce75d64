-- Guardrail: data exfiltration after reading secrets. A tool call reads a sensitive file (or a
-- secret store), and a later tool call sends data to the network.
-- luacheck: read globals rule var let cond flow succ forall count predicate const CONST input Violation
-- luacheck: read globals PolicyViolation FLOW SUCC V B PAT ERR TRACE None
-- luacheck: no unused args
local READ_TOOLS = { read_file = true, cat = true, open_file = true, get_file = true,
   get_secret = true, read_secret = true, vault_read = true }
local SENSITIVE = { "%.env$", "%.env%.", "id_rsa", "id_ed25519", "%.pem$", "%.key$", "credentials",
   "secrets?[/%.]", "%.aws/", "%.ssh/", "passwd$", "shadow$", "%.netrc$", "token" }
local EGRESS_TOOLS = { http_post = true, http_request = true, fetch = true, upload_file = true,
   send_email = true, post_message = true, webhook = true, curl = true }

local function arg_string(call, names)
   local args = call["function"].arguments
   if V.typename(args) ~= "dict" then return nil end
   for _, k in ipairs(names) do
      local v = args[k]
      if type(v) == "string" then return v end
   end
   return nil
end

local function sensitive_read(call)
   local name = call["function"].name
   if not READ_TOOLS[name] then return false end
   if name:find("secret") or name == "vault_read" then return true end
   local path = arg_string(call, { "path", "file", "filename", "name" })
   if not path then return false end
   path = path:lower()
   for _, p in ipairs(SENSITIVE) do
      if path:find(p) then return true end
   end
   return false
end

rule { line = 1, message = "secret read, then data sent out",
   raise = function(c, e)
      return Violation(c, {"data may leave after a secret was read", n = 1},
         {read = e.read, send = e.send})
   end,
   var("read", "ToolCall", 2, 1), flow("read", "send", 2, 1), var("send", "ToolCall", 2, 1),
   cond({"read"}, 3, 1, function(c, e) return sensitive_read(e.read) end),
   cond({"send"}, 4, 1, function(c, e) return EGRESS_TOOLS[e.send["function"].name] == true end),
}

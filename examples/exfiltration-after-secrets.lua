-- The exfiltration guardrail of exfiltration-after-secrets.inv, written directly in Lua against
-- the policy API (docs/policy-api.md). The engine plans it the same way: each `cond` says which
-- rule variables it reads, `flow` is the `->` order constraint.
--   vigil analyze examples/exfiltration-after-secrets.lua examples/exfiltration-after-secrets.json
-- luacheck: read globals rule var flow cond V PAT Violation
local SECRET_FILE = PAT.tool("read_file", PAT.dict({ path = ".*(\\.env|secrets?\\.(json|ya?ml)|id_rsa)" }))
local OUTSIDE_POST = PAT.tool("http_post", PAT.dict({ url = "^https?://(?!([a-z0-9-]+\\.)*acme\\.io(/|$)).*" }))

rule { line = 9, message = "data was sent outside after a secrets file was read",
   raise = function(c, e)
      return V.call(c, Violation, { n = 1, "data was sent outside after a secrets file was read" },
         { read = e.read, upload = e.upload })
   end,
   var("read", "ToolCall", 14, 4),
   var("upload", "ToolCall", 15, 4),
   flow("read", "upload", 16, 4),
   cond({ "read" }, 17, 4, function(c, e) return PAT.match(c, e.read, SECRET_FILE) end),
   cond({ "upload" }, 18, 4, function(c, e) return PAT.match(c, e.upload, OUTSIDE_POST) end),
}

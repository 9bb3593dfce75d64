-- openapi_spec.lua — docs/openapi.json is valid JSON, OpenAPI 3, and describes every route:
-- every path named in DESIGN.md "REST API", every route in vigild's routing tables
-- (host/api.c, host/compat.c) with its method, and every $ref resolves.
local cjson = require "cjson"

local function slurp(path)
   local f = io.open(path, "rb")
   if not f then return nil end
   local s = f:read("a")
   f:close()
   return s
end

local METHODS = { get = true, put = true, post = true, delete = true, patch = true, head = true,
   options = true }

describe("docs/openapi.json", function()
   local text = assert(slurp("docs/openapi.json"), "docs/openapi.json is missing")
   local ok, doc = pcall(cjson.decode, text)

   it("is valid JSON and OpenAPI 3.0", function()
      assert.is_true(ok, tostring(doc))
      assert.is_string(doc.openapi)
      assert.truthy(doc.openapi:match("^3%.0%.%d+$"))
      assert.is_table(doc.info)
      assert.is_string(doc.info.title)
      assert.is_string(doc.info.version)
      assert.is_table(doc.paths)
   end)

   it("gives every operation responses, and a request body schema where one is declared", function()
      for path, item in pairs(doc.paths) do
         assert.equal("/", path:sub(1, 1), path)
         for m, o in pairs(item) do
            if METHODS[m] then
               assert.is_table(o.responses, m .. " " .. path)
               assert.truthy(next(o.responses), m .. " " .. path .. " has no responses")
               if o.requestBody then
                  assert.is_table(o.requestBody.content["application/json"].schema, m .. " " .. path)
               end
            end
         end
      end
   end)

   it("declares path parameters for every {name} of a path", function()
      local function resolve(p)
         if p["$ref"] then
            local name = p["$ref"]:match("^#/components/parameters/(.+)$")
            return doc.components.parameters[name]
         end
         return p
      end
      for path, item in pairs(doc.paths) do
         for name in path:gmatch("{([^}]+)}") do
            for m, o in pairs(item) do
               if METHODS[m] then
                  local found = false
                  for _, list in ipairs({ item.parameters or {}, o.parameters or {} }) do
                     for _, p in ipairs(list) do
                        local r = resolve(p)
                        if r and r["in"] == "path" and r.name == name then found = true end
                     end
                  end
                  assert.is_true(found, m .. " " .. path .. ": no path parameter " .. name)
               end
            end
         end
      end
   end)

   it("resolves every $ref", function()
      local function walk(v)
         if type(v) ~= "table" then return end
         for k, x in pairs(v) do
            if k == "$ref" then
               local node = doc
               for part in x:gsub("^#/", ""):gmatch("[^/]+") do
                  node = type(node) == "table" and node[part] or nil
               end
               assert.is_table(node, "unresolved $ref " .. x)
            else
               walk(x)
            end
         end
      end
      walk(doc)
   end)

   it("has the native error schema {error: {code, message, line?, column?, diagnostics?}}", function()
      local e = doc.components.schemas.Error
      assert.is_table(e)
      local inner = e.properties.error
      for _, f in ipairs({ "code", "message", "line", "column", "diagnostics" }) do
         assert.is_table(inner.properties[f], "Error.error." .. f)
      end
   end)

   it("has every path named in DESIGN.md's REST API section", function()
      local design = slurp("../shared/DESIGN.md")
      if not design then
         pending("../shared/DESIGN.md not found")
         return
      end
      local section = design:match("\n## REST API\n(.-)\n## ") or design
      local names = {}
      for line in section:gmatch("[^\n]+") do
         -- the route table rows and the compatibility bullet list
         if line:match("^|") or line:match("^%- ") or line:match("^  ") then
            for tok in line:gmatch("`([^`]+)`") do
               for p in tok:gmatch("[/\xE2][%w_{}%./%-\x80-\xBF\xE2]*") do
                  if p:sub(1, 1) == "/" or p:sub(1, 3) == "…" then
                     if #p > 1 then p = p:gsub("/$", "") end
                     names[#names + 1] = p
                  end
               end
            end
         end
      end
      assert.truthy(#names > 20, "too few paths found in DESIGN.md")
      for _, p in ipairs(names) do
         local tail = p:gsub("^…", "")
         local found = false
         for path in pairs(doc.paths) do
            if path == tail or (p ~= tail and path:sub(-#tail) == tail) then found = true end
         end
         assert.is_true(found, "DESIGN.md route " .. p .. " is not in docs/openapi.json")
      end
   end)

   it("has every route of vigild's routing tables, with its method", function()
      local n = 0
      for _, file in ipairs({ "host/api.c", "host/compat.c" }) do
         local src = slurp(file)
         if src then
            for method, path in src:gmatch('{%s*"(%u+)",%s*"(/[^"]*)",%s*[%w_]+%s*}') do
               n = n + 1
               local item = doc.paths[path]
               assert.is_table(item, file .. ": " .. method .. " " .. path .. " is not in docs/openapi.json")
               assert.is_table(item[method:lower()], file .. ": " .. method .. " " .. path .. " has no operation")
            end
         end
      end
      if n == 0 then pending("no routing table found in host/") end
   end)

   it("passes openapi-spec-validator (when the Python package is installed)", function()
      local probe = os.execute("python3 -c 'import openapi_spec_validator' >/dev/null 2>&1")
      if not probe then
         pending("python3 with openapi_spec_validator not available")
         return
      end
      local p = io.popen("python3 -c 'import json, sys; from openapi_spec_validator import validate; "
         .. "validate(json.load(open(\"docs/openapi.json\"))); print(\"valid\")' 2>&1")
      local out = p:read("a")
      p:close()
      assert.equal("valid\n", out)
   end)
end)

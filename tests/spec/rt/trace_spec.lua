-- rt.trace: validation, normalisation, linking, indices, flattened order, incremental append.
local trace = require "rt.trace"
local value = require "rt.value"
local cjson = require "cjson"
local helper = require "helper"

local None = value.None

local function norm(json)
   return trace.normalize(trace.decode(json))
end

local function ok_norm(json)
   local st, err = norm(json)
   assert.is_nil(err and err.message)
   return st
end

local function bad(json)
   local st, err = norm(json)
   assert.is_nil(st)
   assert.are.equal("trace_invalid", err.code)
   assert.is_string(err.message)
   return err
end

local function kinds(list)
   local out = {}
   for i, e in ipairs(list) do out[i] = e.kind .. "@" .. e.path end
   return out
end

describe("rt.trace normalisation", function()
   it("classifies messages, nested and top-level calls, outputs", function()
      local st = ok_norm([[
         [{"role": "user", "content": "hi", "name": "bob"},
          {"role": "assistant", "content": null, "tool_calls": [
             {"id": "1", "type": "function", "function": {"name": "ls", "arguments": {"p": "/"}}},
             {"id": "2", "type": "function", "function": {"name": "cat", "arguments": "{\"f\": 1}"}}]},
          {"role": "tool", "content": "a b", "tool_call_id": "2"},
          {"id": "3", "type": "function", "function": {"name": "rm", "arguments": {}}},
          {"role": "tool", "content": "done"}]
      ]])
      assert.are.same({ "Message@0", "Message@1", "ToolOutput@2", "ToolCall@3", "ToolOutput@4" },
         kinds(st.events))
      assert.are.same({ "Message@0", "Message@1", "ToolCall@1.tool_calls.0",
         "ToolCall@1.tool_calls.1", "ToolOutput@2", "ToolCall@3", "ToolOutput@4" }, kinds(st.flat))
      for i, e in ipairs(st.flat) do assert.are.equal(i, e.seq) end
      local m1 = st.events[2]
      assert.are.equal(getmetatable(m1), value.Event)
      assert.are.equal(None, m1.content)
      assert.are.equal(value.List, getmetatable(m1.tool_calls))
      local c2 = m1.tool_calls[2]
      assert.are.equal(1, c2.idx)
      assert.are.equal(m1, c2.message)
      assert.are.equal("Function", c2["function"].kind)
      assert.are.equal("function", c2.type)
      -- string arguments of a nested call are parsed; numbers become integers
      assert.are.equal(1, c2["function"].arguments.f)
      assert.are.equal("integer", math.type(c2["function"].arguments.f))
      -- linking: by id, and to the most recent call when tool_call_id is absent
      assert.are.equal(c2, st.events[3].call)
      assert.are.equal(st.events[4], st.events[5].call)
      assert.are.equal("3", st.events[5].tool_call_id)
      -- metadata: a Dict with trace_idx; server None by default
      assert.are.equal(value.Dict, getmetatable(st.events[3].metadata))
      assert.are.equal(2, st.events[3].metadata.trace_idx)
      assert.are.equal(1, c2.metadata.trace_idx)
      assert.are.equal(None, st.events[1].server)
      assert.are.same({ "Message@0", "Message@1" }, kinds(st.messages))
      assert.are.same({ "ToolCall@1.tool_calls.0", "ToolCall@1.tool_calls.1", "ToolCall@3" },
         kinds(st.calls))
   end)

   it("leaves an output unlinked when its id names no call seen so far (Fixed 8)", function()
      local st = ok_norm([[
         [{"role": "tool", "content": "early", "tool_call_id": "x"},
          {"role": "assistant", "content": null, "tool_calls": [
             {"id": "x", "type": "function", "function": {"name": "f", "arguments": {}}}]},
          {"role": "tool", "content": "orphan", "tool_call_id": "q9"},
          {"role": "tool", "content": "null id", "tool_call_id": null}]
      ]])
      assert.is_false(st.events[1].call)
      assert.is_false(st.events[3].call)
      assert.is_false(st.events[4].call)
      assert.are.equal(None, st.events[4].tool_call_id)
   end)

   it("a later call with the same id replaces the earlier one", function()
      local st = ok_norm([[
         [{"id": "a", "type": "function", "function": {"name": "one", "arguments": {}}},
          {"id": "a", "type": "function", "function": {"name": "two", "arguments": {}}},
          {"role": "tool", "content": "r", "tool_call_id": "a"}]
      ]])
      assert.are.equal("two", st.events[3].call["function"].name)
   end)

   it("expands {tools: [...]} into Tool events and shifts later indices", function()
      local st = ok_norm([[
         [{"tools": [
            {"name": "read_file", "description": "Reads.", "metadata": {"server": "files"},
             "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}},
                             "required": ["path"]}},
            {"name": "add", "inputSchema": {"type": "object", "properties": {
               "a": {"type": "int"}, "tags": {"type": "array", "items": {"type": "str"}},
               "opt": {"type": ["string", "null"]},
               "cfg": {"type": "object", "properties": {"x": {"type": "bool"}}}},
               "required": ["a", "opt"]}}]},
          {"role": "user", "content": "go"},
          {"role": "assistant", "content": null, "tool_calls": [
             {"id": "1", "type": "function", "function": {"name": "add", "arguments": {"a": 1}}}]}]
      ]])
      assert.are.same({ "Tool@0", "Tool@1", "Message@2", "Message@3" }, kinds(st.events))
      assert.are.equal("3.tool_calls.0", st.calls[1].path)
      assert.are.equal(3, st.calls[1].idx)
      local t0, t1 = st.events[1], st.events[2]
      assert.are.equal("files", t0.server)
      assert.are.equal(None, t1.server)
      assert.are.equal("no description available", t1.description)
      local p = t0.inputSchema[1]
      assert.are.same({ "ToolParameter", "path", "string", true },
         { p.kind, p.name, p.type, p.required })
      local byname = {}
      for _, q in ipairs(t1.inputSchema) do byname[q.name] = q end
      assert.are.equal("integer", byname.a.type)
      assert.is_true(byname.a.required)
      assert.are.equal("tags item", byname.tags.items.name)
      assert.are.equal("string", byname.tags.items.type)
      assert.are.same({ "string" }, { table.unpack(byname.opt.type) })
      assert.is_false(byname.opt.required)
      assert.are.equal("cfg.x", byname.cfg.properties.x.name)
      assert.are.equal("boolean", byname.cfg.properties.x.type)
   end)

   it("copies metadata.server and keeps user metadata", function()
      local st = ok_norm([[
         [{"role": "tool", "content": "x", "metadata": {"server": "github", "k": 2}},
          {"id": "2", "type": "function", "function": {"name": "f", "arguments": {}},
           "metadata": {"server": "remote"}}]
      ]])
      assert.are.equal("github", st.events[1].server)
      assert.are.equal(2, st.events[1].metadata.k)
      assert.are.equal(0, st.events[1].metadata.trace_idx)
      assert.are.equal("remote", st.events[2].server)
   end)

   it("builds content chunks (Contents of TextChunk / Image records)", function()
      local st = ok_norm([[
         [{"role": "user", "content": [{"type": "text", "text": "see"},
            {"type": "image_url", "image_url": {"url": "https://x/a.png"}, "extra": 1}]},
          {"role": "tool", "content": {"status": "ok", "n": 2.5}}]
      ]])
      local c = st.events[1].content
      assert.are.equal(value.Contents, getmetatable(c))
      assert.are.same({ "TextChunk", "see" }, { c[1].kind, c[1].text })
      assert.are.same({ "Image", "https://x/a.png" }, { c[2].kind, c[2].image_url.url })
      local d = st.events[2].content
      assert.are.equal(value.Dict, getmetatable(d))
      assert.are.equal(2.5, d.n)
   end)

   it("keeps float literals with integral values floats (trace.decode)", function()
      local st = ok_norm([[
         [{"id": "1", "type": "function", "function": {"name": "t", "arguments":
            {"a": 10000, "b": 10000.0, "c": 1e3, "d": "1.0 GB", "e": [2.0, 3], "f": -0.5}}}]
      ]])
      local a = st.events[1]["function"].arguments
      assert.are.equal("integer", math.type(a.a))
      assert.are.equal("float", math.type(a.b))
      assert.are.equal("float", math.type(a.c))
      assert.are.equal("1.0 GB", a.d)
      assert.are.equal("float", math.type(a.e[1]))
      assert.are.equal("integer", math.type(a.e[2]))
      assert.are.equal(-0.5, a.f)
   end)

   it("the float pre-check finds lone literals and ignores numbers inside strings", function()
      local function arg_of(json)
         local st = ok_norm(json)
         return st.events[1]["function"].arguments.x
      end
      local call = [[[{"id": "1", "type": "function", "function": {"name": "t", "arguments": {"x": %s}}}] ]]
      assert.are.equal("float", math.type(arg_of(call:format("-2.0"))))
      assert.are.equal("float", math.type(arg_of(call:format("1e+3"))))
      assert.are.equal("float", math.type(arg_of(call:format("[ 5.00 ]"))[1]))
      assert.are.equal("integer", math.type(arg_of(call:format("7"))))
      assert.are.equal("v2.0, [1.0]", arg_of(call:format('"v2.0, [1.0]"')))
   end)

   describe("input errors carry the index of the bad element", function()
      local cases = {
         { [[[{"role": "user", "content": "hi"}, {"content": "who?"}] ]], 1 },
         { [[[{"role": "user", "content": "hi"}, {"role": "user", "content": 42}] ]], 1 },
         { [[[{"role": "user", "content": {"a": 1}}] ]], 0 },
         { [[[{"role": "a", "content": null}, {"role": "assistant", "content": null,
               "tool_calls": [{"id": "1", "type": "function",
               "function": {"name": "ls", "arguments": "{path: /tmp"}}]}] ]], 1 },
         { [[[{"role": "user", "content": [{"type": "image_url", "image_url": "https://x"}]}] ]], 0 },
         { [[[{"role": "user", "content": [{"text": "x"}]}] ]], 0 },
         { [[[{"role": "user", "content": "a"}, "just a string"] ]], 1 },
         { [[[{"role": 5, "content": "a"}] ]], 0 },
         { [[[{"id": 1, "type": "function", "function": {"name": "f", "arguments": {}}}] ]], 0 },
         { [[[{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}] ]], 0 },
         { [[[{"role": "x"}, {"role": "assistant", "tool_calls": [{"id": "1", "type": "function",
               "function": {"name": "f"}}]}] ]], 1 },
         { [[[{"role": "x"}, {"role": "x"}, {"tools": [{"name": "t"}]}] ]], 2 },
         { [[[{"tools": [{"name": "t", "inputSchema": {"properties": {"a": {"type": "date"}}}}]}] ]], 0 },
         { [[[{"role": "tool", "content": "x", "tool_call_id": 7}] ]], 0 },
         { [[[{"role": "user", "content": "x", "metadata": "m"}] ]], 0 },
      }
      for i, c in ipairs(cases) do
         it("case " .. i, function()
            local err = bad(c[1])
            assert.are.equal(c[2], err.index)
         end)
      end
      it("rejects a trace that is not a list", function()
         local st, err = trace.normalize(cjson.decode('{"role": "user"}'))
         assert.is_nil(st)
         assert.are.equal("trace_invalid", err.code)
      end)
      it("the message names the type schema error", function()
         local err = bad([[[{"tools": [{"name": "t", "inputSchema": {"properties": {"a": {"type": "date"}}}}]}] ]])
         assert.matches("Unsupported schema type: date for parameter a", err.message, 1, true)
      end)
   end)

   it("accepts every conformance trace except the input-error cases", function()
      local n = 0
      for _, case in ipairs(helper.read_cases()) do
         local chunks = case.trace and { case.trace } or case.chunks
         local st = trace.new()
         local failed
         for _, ch in ipairs(chunks) do
            local evs, err = trace.append(st, trace.decode(cjson.encode(ch)))
            if not evs then failed = err; break end
         end
         if case.expect.input_error then
            assert.is_not_nil(failed, case.id)
            assert.is_number(failed.index, case.id)
         else
            assert.is_nil(failed, case.id)
         end
         n = n + 1
      end
      assert.is_true(n >= 100)
   end)
end)

describe("rt.trace incremental append", function()
   it("continues indices and links a later output to an earlier call", function()
      local st = trace.new()
      local a = assert(trace.append(st, trace.decode([[
         [{"role": "user", "content": "x"},
          {"role": "assistant", "content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {}}}]}] ]])))
      assert.are.equal(2, #a)
      local b = assert(trace.append(st, trace.decode([[
         [{"role": "tool", "content": "r"}, {"role": "tool", "content": "s", "tool_call_id": "c1"}] ]])))
      assert.are.equal(2, b[1].idx)
      assert.are.equal("3", b[2].path)
      assert.are.equal(st.events[2].tool_calls[1], b[1].call)
      assert.are.equal(b[1].call, b[2].call)
      assert.are.equal(5, b[2].seq)
      -- nested call paths use the parsed index in later chunks too
      local c = assert(trace.append(st, trace.decode([[
         [{"role": "assistant", "content": null, "tool_calls": [
            {"id": "c2", "type": "function", "function": {"name": "g", "arguments": {}}}]}] ]])))
      assert.are.equal("4.tool_calls.0", c[1].tool_calls[1].path)
   end)

   it("leaves the state untouched when a chunk is invalid", function()
      local st = trace.new()
      assert(trace.append(st, trace.decode([[[{"role": "user", "content": "x"}] ]])))
      local evs, err = trace.append(st, trace.decode([[
         [{"id": "z", "type": "function", "function": {"name": "f", "arguments": {}}},
          {"role": "user", "content": 3}] ]]))
      assert.is_nil(evs)
      assert.are.equal(1, err.index)
      assert.are.equal(1, #st.events)
      assert.are.equal(1, #st.flat)
      assert.is_nil(st.by_id.z)
      assert.are.equal(None, st.last_id)
   end)
end)

describe("rt.trace.select (spec §5.6)", function()
   local st = ok_norm([[
      [{"role": "user", "content": [{"type": "text", "text": "hello"},
         {"type": "image_url", "image_url": {"url": "https://x/i.png"}}]},
       {"role": "assistant", "content": "ok", "tool_calls": [
         {"id": "1", "type": "function", "function": {"name": "f", "arguments": {"s": "arg"}}}]},
       {"role": "tool", "content": {"k": "v"}, "tool_call_id": "1"}]
   ]])

   it("selects strings without descending into function arguments", function()
      local out = {}
      for i, s in ipairs(trace.select("str", st)) do
         out[i] = value.str(s) .. "@" .. tostring(value.loc(s))
      end
      assert.are.same({ "hello@0.content.0.text", "https://x/i.png@0.content.1.image_url.url",
         "user@0.role", "ok@1.content", "assistant@1.role", "1@1.tool_calls.0.id",
         "function@1.tool_calls.0.type", "tool@2.role", "v@2.content.k", "1@2.tool_call_id" }, out)
   end)

   it("selects dicts, chunks and events", function()
      assert.are.equal(2, #trace.select("dict", st)) -- image_url and the output content
      assert.are.equal(1, #trace.select("Image", st))
      assert.are.equal(1, #trace.select("TextChunk", st))
      assert.are.equal(1, #trace.select("ToolCall", st))
      assert.are.equal(2, #trace.select("Message", st))
      local calls = trace.select("ToolCall", st.events[2])
      assert.are.equal(1, #calls)
      assert.are.equal(0, #trace.select("Function", st.events[3]))
   end)
end)

describe("rt.trace speed", function()
   it("normalises a 10,000-event trace (figure printed, not asserted)", function()
      local evs = {}
      local i = 0
      while #evs < 10000 do
         i = i + 1
         local r = #evs % 20
         if r < 1 then
            evs[#evs + 1] = { role = "user", content = "Please look at item " .. i }
         elseif r % 2 == 1 then
            evs[#evs + 1] = { role = "assistant", content = cjson.null, tool_calls = { {
               id = "c" .. i .. "_" .. r, type = "function",
               ["function"] = { name = "read_file", arguments = { path = "/tmp/f" .. i, n = r } } } } }
         else
            evs[#evs + 1] = { role = "tool", content = "output " .. i, tool_call_id = "c" .. i .. "_" .. (r - 1) }
         end
      end
      local text = cjson.encode(evs)
      local best = math.huge
      for _ = 1, 3 do
         local raw = trace.decode(text)
         local t0 = os.clock()
         local st = assert(trace.normalize(raw))
         local dt = os.clock() - t0
         if dt < best then best = dt end
         assert.are.equal(10000, #st.events)
      end
      print(string.format("\n# rt.trace: normalize 10k events: %.1f ms (best of 3)", best * 1000))
   end)
end)

describe("rt.trace robustness", function()
   it("random JSON shapes are either events or trace_invalid data, never a raw error", function()
      local rnd = 12345
      local function random(a, b) -- deterministic LCG
         rnd = (rnd * 1103515245 + 12345) % 2147483648
         if not a then return rnd / 2147483648 end
         return a + rnd % (b - a + 1)
      end
      local keys = { "role", "content", "tool_calls", "type", "function", "name", "arguments", "id",
         "tool_call_id", "tools", "inputSchema", "properties", "metadata", "server", "text",
         "image_url", "url", "description", "required", "items" }
      local function rv(d)
         local r = d > 3 and random(1, 5) or random(1, 10)
         if r == 1 then return random(0, 100) elseif r == 2 then return "s" .. random(1, 5)
         elseif r == 3 then return cjson.null elseif r == 4 then return random() < 0.5
         elseif r == 5 then return 1.5
         elseif r <= 7 then
            local t = {}
            for i = 1, random(0, 3) do t[i] = rv(d + 1) end
            return t
         end
         local t = {}
         for _ = 1, random(0, 5) do t[keys[random(1, #keys)]] = rv(d + 1) end
         return t
      end
      for _ = 1, 3000 do
         local tr = {}
         for k = 1, random(0, 4) do tr[k] = rv(0) end
         local st, err = trace.normalize(trace.decode(cjson.encode(tr)))
         if st then
            for _, T in ipairs({ "str", "dict", "ToolCall", "Image", "ToolParameter" }) do
               trace.select(T, st)
            end
         else
            assert.are.equal("trace_invalid", err.code)
            assert.is_string(err.message)
         end
      end
   end)

   it("names a bad top-level element by its Python repr (5, not 5.0) and its index", function()
      for json, shown in pairs {
         ['[{"role": "user", "content": "x"}, 5]'] = "5", ["[5.0]"] = "5.0", ['["abc"]'] = "'abc'",
         ["[null]"] = "None", ["[true]"] = "True", ["[[1]]"] = "a list",
      } do
         local st, err = trace.append(trace.new(), trace.decode(json))
         assert.is_nil(st)
         assert.are.equal("trace_invalid", err.code)
         assert.are.equal(shown, err.message:match("Instead, got: (.*)$"), json)
         assert.are.equal(json:sub(2, 2) == "{" and 1 or 0, err.index)
      end
   end)
end)

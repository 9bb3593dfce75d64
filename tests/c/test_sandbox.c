/* test_sandbox.c -- the Lua sandbox: memory cap, instruction budget / deadline (inside pcall,
 * coroutines, xpcall handlers), __gc refused, forbidden globals, deep recursion, fail-after-N. */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sandbox.h"
#include "tap.h"

static struct sbx *S;

static int run(const char *code, struct pe_err *e)
{
    return sbx_dostring(S, code, e);
}

/* runs code that must succeed; reports the error otherwise */
static int okcode(const char *code, const char *name)
{
    struct pe_err e;
    int rc = run(code, &e);
    if (!ok(rc == PE_OK, "%s", name))
        note("rc %s: %s", pe_status_str(rc), e.msg);
    return rc == PE_OK;
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static void expect(const char *code, int want, const char *name)
{
    struct pe_err e;
    struct timespec t0;
    int rc;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = run(code, &e);
    if (!ok(rc == want, "%s -> %s (%.0f ms)", name, pe_status_str(want), ms_since(&t0)))
        note("got %s: %s", pe_status_str(rc), e.msg);
}

static void test_memory(void)
{
    struct pe_err e;
    size_t before = sbx_mem_used(S);
    int rc;
    expect("local s = string.rep('x', 1 << 30)", PE_EMEMLIMIT, "string.rep bomb");
    rc = run("local t = {} for i = 1, 1e9 do t[i] = {i} end", &e);
    ok(rc == PE_EMEMLIMIT && strcmp(e.msg, "memory limit") == 0, "table growth: memory limit");
    expect("local s = 'x' for i = 1, 40 do s = s .. s end", PE_EMEMLIMIT, "doubling concat");
    rc = run("local t = {} for i = 1, 1e9 do local ok = pcall(function() t[#t+1] = "
             "string.rep('y', 1e5) end) end",
             &e);
    ok(rc == PE_EMEMLIMIT || rc == PE_EDEADLINE,
       "memory errors swallowed by pcall in a loop: the budget ends the call (%s)",
       pe_status_str(rc));
    ok(sbx_mem_used(S) < before + ((size_t)4 << 20), "memory given back after the errors (%zu KiB)",
       sbx_mem_used(S) >> 10);
    okcode("local t = {} for i = 1, 1000 do t[i] = i end assert(#t == 1000)",
           "state usable after memory errors");
}

static void test_budget(void)
{
    expect("while true do end", PE_EDEADLINE, "infinite loop");
    expect("pcall(function() while true do end end)", PE_EDEADLINE, "loop inside pcall");
    expect("while true do pcall(function() while true do end end) end", PE_EDEADLINE,
           "pcall retried in a loop");
    expect("local co = coroutine.wrap(function() while true do end end) co()", PE_EDEADLINE,
           "loop inside a coroutine");
    expect("local co = coroutine.create(function() while true do coroutine.yield() end end) "
           "while true do coroutine.resume(co) end",
           PE_EDEADLINE, "yield/resume ping-pong");
    expect("xpcall(error, function() while true do end end)", PE_EDEADLINE,
           "loop inside an xpcall message handler");
    expect("xpcall(function() while true do end end, function() while true do end end)",
           PE_EDEADLINE, "loop in body and handler");
    expect("local t = setmetatable({}, {__index = function(t, k) while true do end end}) "
           "return t.x",
           PE_EDEADLINE, "loop in __index");
    expect("local x <close> = setmetatable({}, {__close = function() while true do end end}) "
           "error('x')",
           PE_EDEADLINE, "loop in __close during unwinding");
    expect("local t = {3, 2, 1} table.sort(t, function(a, b) while true do end end)", PE_EDEADLINE,
           "loop in a table.sort comparator");
    expect("string.gsub('abc', '.', function() while true do end end)", PE_EDEADLINE,
           "loop in a gsub callback");
    expect("tostring(setmetatable({}, {__tostring = function() while true do end end}))",
           PE_EDEADLINE, "loop in __tostring");
    expect("local ok = pcall(error, setmetatable({}, {__index = function() while true do end "
           "end})) while true do end",
           PE_EDEADLINE, "loop after a caught error object");
    okcode("local n = 0 for i = 1, 1e5 do n = n + i end assert(n == 5000050000)",
           "state usable after deadlines");
    okcode("local ok, v = xpcall(function() error('boom') end, function(m) return 'handled: ' .. m "
           "end) assert(not ok and v:find('handled: ') and v:find('boom'))",
           "xpcall (re-implemented) still calls the handler");
    okcode("local ok, a, b = xpcall(function(x, y) return x + y, 7 end, print, 1, 2) "
           "assert(ok and a == 3 and b == 7)",
           "xpcall passes arguments and results");
}

static void test_deadline_only(void)
{
    struct sbx_cfg c = {(size_t)32 << 20, 0, 100};
    struct timespec t0;
    struct pe_err e;
    int rc;
    sbx_set_limits(S, &c);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = run("while true do end", &e);
    ok(rc == PE_EDEADLINE && strstr(e.msg, "deadline") != NULL && ms_since(&t0) < 1000,
       "wall-clock deadline 100 ms stops a loop (%.0f ms, %s)", ms_since(&t0), e.msg);
    c.deadline_ms = 0;
    c.instr_budget = 1000000;
    sbx_set_limits(S, &c);
    rc = run("while true do end", &e);
    ok(rc == PE_EDEADLINE && strstr(e.msg, "instruction") != NULL,
       "instruction budget stops a loop (%s)", e.msg);
    c.instr_budget = 50000000;
    c.deadline_ms = 2000;
    sbx_set_limits(S, &c);
}

static void test_gc_and_globals(void)
{
    expect("setmetatable({}, {__gc = function() while true do end end})", PE_ELUA,
           "__gc metatable refused");
    expect("setmetatable({}, {__gc = false})", PE_ELUA, "__gc = false refused too");
    okcode("local mt = {} setmetatable({}, mt) mt.__gc = function() while true do end end "
           "collectgarbage = nil",
           "__gc added later does not mark the object");
    okcode("assert(io == nil and os == nil and debug == nil and package == nil)",
           "io, os, debug, package absent");
    okcode("assert(require == nil and load == nil and dofile == nil and loadfile == nil)",
           "require, load, dofile, loadfile absent from policy env");
    okcode("assert(collectgarbage == nil and print == nil)", "collectgarbage, print absent");
    okcode("assert(('').dump == nil and string.dump == nil)", "string.dump unreachable");
    okcode("assert(getmetatable('') == nil)", "string metatable hidden from policies");
    okcode("string.upper = nil assert(('a'):upper() == 'A')", "policy env string table is a copy");
    okcode("assert(type(pcall) == 'function' and type(xpcall) == 'function' and "
           "type(setmetatable) == 'function' and type(string.format) == 'function' and "
           "type(math.floor) == 'function' and type(table.concat) == 'function' and "
           "type(utf8.char) == 'function' and type(coroutine.wrap) == 'function')",
           "the safe set is there");
}

/* trusted globals (the runtime's own environment) */
static int l_trusted(lua_State *L)
{
    const char *code = lua_touserdata(L, 1);
    if (luaL_loadbufferx(L, code, strlen(code), "=trusted", "t") != LUA_OK)
        return lua_error(L);
    lua_call(L, 0, 0);
    return 0;
}

static int trusted(const char *code, struct pe_err *e)
{
    lua_State *L = sbx_state(S);
    lua_pushcfunction(L, l_trusted);
    lua_pushlightuserdata(L, (void *)(uintptr_t)code);
    return sbx_call(S, 1, 0, e);
}

static void test_trusted(void)
{
    struct pe_err e;
    int rc;
    rc = trusted("assert(io == nil and os == nil and debug == nil and package == nil and "
                 "dofile == nil and loadfile == nil)",
                 &e);
    ok(rc == PE_OK, "trusted globals: no io/os/debug/package/dofile/loadfile (%s)",
       rc ? e.msg : "");
    rc = trusted("local f = string.dump", &e);
    ok(rc == PE_OK, "trusted: string.dump gone");
    rc = trusted("local lpeg = require 'lpeg' local cjson = require 'cjson' "
                 "local re = require 'vregex' "
                 "assert(lpeg.match(lpeg.P'a'^1, 'aaa') == 4) "
                 "assert(cjson.decode('[1,2]')[2] == 2) "
                 "assert(type(re.compile) == 'function')",
                 &e);
    ok(rc == PE_OK, "lpeg, cjson, vregex preloaded (%s)", rc ? e.msg : "");
    rc = trusted("local ok, m = pcall(require, 'io') assert(not ok)", &e);
    ok(rc == PE_OK, "require of a non-preloaded module fails (%s)", rc ? e.msg : "");
    rc = trusted("assert(not pcall(require, 'package')) assert(not pcall(require, '_G'))", &e);
    ok(rc == PE_OK, "package and _G not requirable (%s)", rc ? e.msg : "");
    rc = trusted("local f, err = load(string.char(27) .. 'Lua') assert(f == nil and "
                 "err:find('binary'))",
                 &e);
    ok(rc == PE_OK, "trusted load refuses bytecode (%s)", rc ? e.msg : "");
    rc = trusted("local f = load('return 1 + 1', 'x', 'b') assert(f() == 2)", &e);
    ok(rc == PE_OK, "load mode is forced to text (%s)", rc ? e.msg : "");
    rc = trusted("local f = load('return x', 'x', 't', {x = 5}) assert(f() == 5)", &e);
    ok(rc == PE_OK, "load with an env (%s)", rc ? e.msg : "");
    rc = trusted("local sb = require 'vigil.sandbox' local a, b = sb.env(), sb.env() "
                 "assert(a ~= b and a.string ~= b.string and a._G == a)",
                 &e);
    ok(rc == PE_OK, "vigil.sandbox.env gives fresh tables (%s)", rc ? e.msg : "");
}

static void test_recursion(void)
{
    struct pe_err e;
    int rc;
    rc = run("local function f(n) return 1 + f(n + 1) end f(1)", &e);
    ok(rc == PE_ELUA || rc == PE_EMEMLIMIT, "deep Lua recursion: error, no crash (%s)",
       pe_status_str(rc));
    rc = run("local t = setmetatable({}, {}) getmetatable(t).__index = function(s, k) return "
             "s[k .. 'x'] end return t.a",
             &e);
    ok(rc != PE_OK, "deep __index recursion: error (%s: %.60s)", pe_status_str(rc), e.msg);
    rc = run("local function f(s) return (string.gsub(s, '.', f)) end f('abc')", &e);
    ok(rc != PE_OK && strstr(e.msg, "stack overflow") != NULL,
       "C-stack recursion: 'stack overflow' (%.60s)", e.msg);
    okcode("return 1", "state usable after recursion errors");
}

static void test_fail_after(void)
{
    struct pe_err e;
    int n, fails = 0, oks = 0;
    for (n = 0; n < 402; n += 6) {
        int rc;
        sbx_fail_after(S, n);
        rc = run("local t = {} for i = 1, 20 do t[i] = {tostring(i)} end", &e);
        sbx_fail_after(S, -1);
        if (rc == PE_EMEMLIMIT)
            fails++;
        else if (rc == PE_OK)
            oks++;
    }
    ok(fails > 0 && fails + oks == 67,
       "fail-after-N: every run is a memory error or success "
       "(%d errors, %d ok)",
       fails, oks);
    okcode("local t = {} for i = 1, 100 do t[i] = tostring(i) end", "usable after fault injection");
}

/* [-0, +1] handle(request) of require "worker"; the request is a lightuserdata C string */
static int l_handle(lua_State *L)
{
    const char *req = lua_touserdata(L, 1);
    lua_getglobal(L, "require");   /* push require */
    lua_pushliteral(L, "worker");  /* push name */
    lua_call(L, 1, 1);             /* push worker module */
    lua_getfield(L, -1, "handle"); /* push handle */
    lua_pushstring(L, req);        /* push request */
    lua_call(L, 1, 1);             /* push response */
    return 1;
}

static int handle(const char *req, struct pe_err *e, int *resp_ok)
{
    lua_State *L = sbx_state(S);
    int rc;
    lua_pushcfunction(L, l_handle);
    lua_pushlightuserdata(L, (void *)(uintptr_t)req);
    rc = sbx_call(S, 1, 1, e);
    if (rc == PE_OK) {
        const char *r = lua_tostring(L, -1);
        *resp_ok = r != NULL && strncmp(r, "{", 1) == 0 && strstr(r, "\"ok\"") != NULL;
        if (r != NULL && strstr(r, "\"ok\":false") != NULL && getenv("SWEEP_DEBUG"))
            note("%.300s", r);
        lua_pop(L, 1);
    }
    return rc;
}

/* SQLite-style fault injection: fail the N-th allocation of a whole runtime request, for many
 * N; each run ends with an answer or a memory error, never a panic, and the state stays usable */
static void test_fault_sweep(void)
{
    static const char put[] =
        "{\"op\":\"policy_put\",\"pid\":\"p\",\"policy\":\"raise \\\"x\\\" if:\\n    "
        "(m: Message)\\n    m.role == \\\"user\\\"\\n\"}";
    static const char ana[] = "{\"op\":\"analyze\",\"pid\":\"p\",\"trace\":[{\"role\":"
                              "\"user\",\"content\":\"hi\"}]}";
    struct sbx_cfg c = {(size_t)64 << 20, 0, 0};
    struct pe_err e;
    int n, rc, rok = 0, answers = 0, memerrs = 0, other = 0, usable = 1;
    sbx_set_limits(S, &c);
    rc = handle(put, &e, &rok);
    if (!ok(rc == PE_OK && rok, "worker.handle policy_put in the sandbox (%s)", rc ? e.msg : "ok"))
        return;
    for (n = 0; n < 1100; n += 7) {
        const char *req = (n / 7) % 2 ? ana : put;
        sbx_fail_after(S, n);
        rc = handle(req, &e, &rok);
        sbx_fail_after(S, -1);
        if (rc == PE_OK)
            answers++;
        else if (rc == PE_EMEMLIMIT)
            memerrs++;
        else
            other++;
        rc = handle(ana, &e, &rok);
        if (rc != PE_OK || !rok)
            usable = 0;
    }
    ok(other == 0 && memerrs > 0,
       "fault sweep over policy_put/analyze: %d answers, %d memory errors, %d others", answers,
       memerrs, other);
    ok(usable, "the state answers analyze after every injected fault");
}

/* Bytes the C heap has handed out now (the sanitizer allocator when there is one). */
#if defined(__SANITIZE_ADDRESS__)
size_t __sanitizer_get_current_allocated_bytes(void); /* libasan (allocator_interface.h) */
static size_t heap_in_use(void)
{
    return __sanitizer_get_current_allocated_bytes();
}
#else
#include <malloc.h>
static size_t heap_in_use(void)
{
    return mallinfo2().uordblks;
}
#endif

/* lua-cjson keeps its decode scratch buffer (as large as the JSON text) in malloc'd memory and
 * frees it on its own errors only; a memory-cap error in the middle of a decode used to leak it
 * (the sandbox now frees an abandoned buffer: sbx_call's exit and the next decode). 20 decodes
 * of ~0.9 MB that hit a 16 MiB cap, inside one call (pcall) and across calls. */
static void test_cjson_cap_leak(void)
{
    static const char code[] =
        "local cjson = require 'cjson' "
        "local s = '[' .. string.rep('[],', 300000) .. '[]]' "
        "for i = 1, 10 do "
        "  local ok, err = pcall(cjson.decode, s) "
        "  assert(not ok and tostring(err):find('not enough memory'), tostring(err)) "
        "end";
    static const char code1[] = "local cjson = require 'cjson' "
                                "return cjson.decode('[' .. string.rep('[],', 300000) .. '[]]')";
    struct sbx_cfg c = {(size_t)16 << 20, 0, 0};
    struct pe_err e;
    size_t before, after;
    int rc, i, memerrs = 0;
    sbx_set_limits(S, &c);
    trusted("local cjson = require 'cjson' cjson.decode('[1]')", &e); /* warm-up */
    before = heap_in_use();
    rc = trusted(code, &e);
    ok(rc == PE_OK, "10 decodes over the memory cap inside pcall: memory errors (%s)",
       rc ? e.msg : "ok");
    for (i = 0; i < 10; i++)
        if (trusted(code1, &e) == PE_EMEMLIMIT)
            memerrs++;
    ok(memerrs == 10, "10 decodes over the memory cap as whole calls: PE_EMEMLIMIT (%d)", memerrs);
    lua_gc(sbx_state(S), LUA_GCCOLLECT);
    after = heap_in_use();
    ok(after < before + ((size_t)4 << 20),
       "no scratch buffer leaked: C heap %zu KiB -> %zu KiB (a leak would be ~17 MiB)",
       before >> 10, after >> 10);
    trusted("local cjson = require 'cjson' assert(cjson.decode('{\"a\":[1,2]}').a[2] == 2)", &e);
    okcode("return 1", "state usable after the capped decodes");
}

static void test_new_fail_after(void)
{
    /* creating a state with a tiny cap fails cleanly */
    struct sbx_cfg c = {(size_t)16 << 10, 0, 0};
    struct sbx *s2 = NULL;
    struct pe_err e;
    int rc = sbx_new(&c, &s2, &e);
    ok(rc != PE_OK && s2 == NULL, "sbx_new with a 16 KiB cap fails cleanly (%s)", e.msg);
    sbx_free(s2);
    sbx_free(NULL);
    ok(1, "sbx_free(NULL) is a no-op");
}

int main(void)
{
    struct sbx_cfg c = {(size_t)32 << 20, 50000000, 2000};
    struct pe_err e;
    int rc = sbx_new(&c, &S, &e);
    if (!ok(rc == PE_OK, "sbx_new (%s)", rc ? e.msg : "ok"))
        return done_testing();
    note("Lua heap after setup: %zu KiB", sbx_mem_used(S) >> 10);
    test_memory();
    test_budget();
    test_deadline_only();
    test_gc_and_globals();
    test_trusted();
    test_recursion();
    test_fail_after();
    test_fault_sweep();
    test_cjson_cap_leak();
    test_new_fail_after();
    sbx_free(S);
    return done_testing();
}

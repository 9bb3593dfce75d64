/* sandbox.c -- see sandbox.h. */
#include "sandbox.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lregex.h"
#include "lua_bundle.h"

int luaopen_lpeg(lua_State *L);
int luaopen_cjson(lua_State *L);
int luaopen_cjson_safe(lua_State *L);

enum { SBX_RUN_NONE = 0, SBX_RUN_BUDGET, SBX_RUN_DEADLINE };

struct sbx {
    lua_State *L;
    struct sbx_cfg cfg;
    size_t used;     /* bytes in use */
    size_t limit;    /* cap on used; 0 = none */
    long fail_after; /* < 0: off */
    int mem_hit;     /* set by the allocator when it refused a block */
    /* the run context of the current sbx_call (only meaningful while active) */
    int active;
    int expired; /* SBX_RUN_* */
    long long count;
    struct timespec deadline;
};

/* ---------------------------------------------------------------- allocator */

static void *sbx_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct sbx *s = ud;
    size_t old = ptr != NULL ? osize : 0; /* for ptr == NULL, osize is a type tag */
    void *np;
    if (nsize == 0) {
        free(ptr);
        s->used -= old;
        return NULL;
    }
    if (nsize > old) {
        if (s->limit != 0 && (nsize - old > s->limit || s->used + (nsize - old) > s->limit)) {
            s->mem_hit = 1;
            return NULL;
        }
        if (s->fail_after >= 0) {
            if (s->fail_after == 0) {
                s->mem_hit = 1;
                return NULL;
            }
            s->fail_after--;
        }
    }
    np = realloc(ptr, nsize);
    if (np == NULL) {
        if (nsize <= old)
            return ptr; /* Lua assumes shrinking never fails */
        s->mem_hit = 1;
        return NULL;
    }
    s->used = s->used - old + nsize;
    return np;
}

/* ---------------------------------------------------------------- cjson scratch buffer */

/*
** lua-cjson 2.1.0 decodes through a scratch buffer as large as the JSON text, malloc'd by
** strbuf_new in json_decode, freed on success and before each error cjson raises itself. A Lua
** error it does not raise, a memory error (our cap) inside lua_newtable or lua_pushlstring,
** longjmps past the free: the buffer leaked, one JSON text per capped decode, outside the Lua
** accounting. The link wraps strbuf_new and strbuf_free (-Wl,--wrap, CORE_LIBS in the Makefile):
** the buffer of the decode in progress is recorded here. A decode calls no Lua code, so it never
** nests: a buffer still recorded when the next decode starts or when sbx_call returns was
** abandoned, and is freed then. strbuf_new is called by json_decode only (checked on 2.1.0).
*/
struct strbuf;
struct strbuf *__real_strbuf_new(int len);
void __real_strbuf_free(struct strbuf *s);
struct strbuf *__wrap_strbuf_new(int len);
void __wrap_strbuf_free(struct strbuf *s);

static _Thread_local struct strbuf *cjson_scratch; /* the decode buffer in use, or NULL */

static void cjson_scratch_release(void)
{
    if (cjson_scratch != NULL) {
        __real_strbuf_free(cjson_scratch);
        cjson_scratch = NULL;
    }
}

struct strbuf *__wrap_strbuf_new(int len)
{
    cjson_scratch_release(); /* abandoned by a decode a memory error ended (caught by pcall) */
    cjson_scratch = __real_strbuf_new(len);
    return cjson_scratch;
}

void __wrap_strbuf_free(struct strbuf *s)
{
    if (s != NULL && s == cjson_scratch)
        cjson_scratch = NULL;
    __real_strbuf_free(s);
}

/* ---------------------------------------------------------------- hook */

static struct sbx *sbx_of(lua_State *L)
{
    return *(struct sbx **)lua_getextraspace(L); /* copied into every new thread */
}

static int past(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

static const char *expired_msg(int kind)
{
    return kind == SBX_RUN_BUDGET ? "instruction budget exceeded" : "deadline exceeded";
}

/*
** The hook is installed once on the main thread, so every coroutine inherits it. Outside an
** sbx_call it does nothing. Once the budget or the deadline has passed it fires on every
** instruction and raises each time (Redis script_lua.c), so a pcall in policy code cannot
** swallow the stop.
*/
static void sbx_hook(lua_State *L, lua_Debug *ar)
{
    struct sbx *s = sbx_of(L);
    (void)ar; /* unused */
    if (!s->active) {
        if (lua_gethookcount(L) != SBX_HOOK_EVERY)
            lua_sethook(L, sbx_hook, LUA_MASKCOUNT, SBX_HOOK_EVERY);
        return;
    }
    if (s->expired == SBX_RUN_NONE) {
        s->count += lua_gethookcount(L);
        if (s->cfg.instr_budget > 0 && s->count > s->cfg.instr_budget)
            s->expired = SBX_RUN_BUDGET;
        else if (s->cfg.deadline_ms > 0 && past(&s->deadline))
            s->expired = SBX_RUN_DEADLINE;
        else
            return;
    }
    lua_sethook(L, sbx_hook, LUA_MASKCOUNT, 1);
    luaL_error(L, "vigil-limit: %s", expired_msg(s->expired));
}

static int sbx_panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "vigil: Lua panic (unprotected error): %s\n", msg ? msg : "?");
    fflush(stderr);
    abort();
    return 0;
}

/* ---------------------------------------------------------------- setup */

/* A preload entry for a bundled module whose source does not compile: raises the message. */
static int l_broken_module(lua_State *L)
{
    return luaL_error(L, "%s", lua_tostring(L, lua_upvalueindex(1)));
}

/*
** Trusted prelude, run once in the globals after the libraries are open. It closes the two
** budget escapes (xpcall handlers and __gc finalizers run with hooks off), makes load text-only,
** strips package down to the preload searcher, and builds vigil.sandbox.
*/
static const char sbx_prelude[] =
    "local pcall, error, select, type, rawget, tostring = pcall, error, select, type, rawget, "
    "tostring\n"
    "local setmetatable0, getmetatable0, load0 = setmetatable, getmetatable, load\n"
    "local pairs, ipairs, pack, unpack = pairs, ipairs, table.pack, table.unpack\n"
    "local package, string = package, string\n"
    "string.dump = nil\n"
    "package.loadlib, package.searchpath, package.path, package.cpath = nil, nil, '', ''\n"
    "local searchers = package.searchers\n"
    "for i = #searchers, 2, -1 do searchers[i] = nil end\n"
    "package.loaded.package = nil\n"
    "package.loaded._G = nil\n"
    "_G.package, _G.dofile, _G.loadfile = nil, nil, nil\n"
    "local function setmetatable(t, mt)\n"
    "  if type(mt) == 'table' and rawget(mt, '__gc') ~= nil then\n"
    "    error('setmetatable: metatables with __gc are not allowed', 2)\n"
    "  end\n"
    "  return setmetatable0(t, mt)\n"
    "end\n"
    "local function finish(msgh, r)\n"
    "  if r[1] then return unpack(r, 1, r.n) end\n"
    "  local ok, v = pcall(msgh, r[2])\n"
    "  return false, v\n"
    "end\n"
    "local function xpcall(f, msgh, ...)\n"
    "  return finish(msgh, pack(pcall(f, ...)))\n"
    "end\n"
    "local function load(chunk, name, mode, ...)\n"
    "  if select('#', ...) > 0 then return load0(chunk, name, 't', (...)) end\n"
    "  return load0(chunk, name, 't')\n"
    "end\n"
    "_G.setmetatable, _G.xpcall, _G.load = setmetatable, xpcall, load\n"
    "local function getmetatable(o)\n"
    "  if type(o) == 'string' then return nil end\n"
    "  return getmetatable0(o)\n"
    "end\n"
    "local SAFE = {'assert', 'error', 'ipairs', 'next', 'pairs', 'pcall', 'rawequal', 'rawget',\n"
    "  'rawlen', 'rawset', 'select', 'tonumber', 'tostring', 'type', '_VERSION'}\n"
    "local base = {setmetatable = setmetatable, getmetatable = getmetatable, xpcall = xpcall}\n"
    "for _, k in ipairs(SAFE) do base[k] = _G[k] end\n"
    "local LIBS = {'string', 'table', 'math', 'utf8', 'coroutine'}\n"
    "local libs = {}\n"
    "for _, k in ipairs(LIBS) do libs[k] = _G[k] end\n"
    "local M = {base = base}\n"
    "function M.env()\n"
    "  local e = {}\n"
    "  for k, v in pairs(base) do e[k] = v end\n"
    "  for k, lib in pairs(libs) do\n"
    "    local c = {}\n"
    "    for n, f in pairs(lib) do c[n] = f end\n"
    "    e[k] = c\n"
    "  end\n"
    "  e._G = e\n"
    "  return e\n"
    "end\n"
    "package.loaded['vigil.sandbox'] = M\n";

static int sbx_setup(lua_State *L)
{
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},          {LUA_LOADLIBNAME, luaopen_package},
        {LUA_COLIBNAME, luaopen_coroutine}, {LUA_TABLIBNAME, luaopen_table},
        {LUA_STRLIBNAME, luaopen_string},   {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8},    {NULL, NULL}};
    static const luaL_Reg cmods[] = {{"lpeg", luaopen_lpeg},
                                     {"cjson", luaopen_cjson},
                                     {"cjson.safe", luaopen_cjson_safe},
                                     {"vregex", luaopen_vregex},
                                     {NULL, NULL}};
    const luaL_Reg *r;
    const struct lua_bundle_entry *b;

    for (r = libs; r->func != NULL; r++) {
        luaL_requiref(L, r->name, r->func, 1); /* push lib */
        lua_pop(L, 1);                         /* pop lib */
    }
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE); /* push preload */
    for (r = cmods; r->func != NULL; r++) {
        lua_pushcfunction(L, r->func); /* push opener */
        lua_setfield(L, -2, r->name);  /* preload[name] = opener; pop */
    }
    for (b = lua_bundle; b->name != NULL; b++) {
        if (luaL_loadbufferx(L, b->src, (size_t)b->len, b->chunkname, "t") != LUA_OK) {
            /* push message; keep the module requirable so the error surfaces where used */
            lua_pushcclosure(L, l_broken_module, 1); /* message -> closure */
        }
        lua_setfield(L, -2, b->name); /* preload[name] = chunk; pop */
    }
    lua_pop(L, 1); /* pop preload */
    if (luaL_loadbufferx(L, sbx_prelude, sizeof sbx_prelude - 1, "=sandbox", "t") != LUA_OK)
        return lua_error(L);
    lua_call(L, 0, 0); /* run the prelude */
    return 0;
}

static int sbx_msgh(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL)
        msg = luaL_tolstring(L, 1, NULL); /* push string form */
    luaL_traceback(L, L, msg, 1);         /* push msg + traceback */
    return 1;
}

int sbx_new(const struct sbx_cfg *cfg, struct sbx **out, struct pe_err *err)
{
    struct sbx *s;
    int st;
    *out = NULL;
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return pe_err_set(err, PE_ENOMEM, "sandbox: out of memory");
    if (cfg != NULL) {
        s->cfg = *cfg;
    } else {
        s->cfg.mem_limit = SBX_MEM_LIMIT_DEFAULT;
        s->cfg.instr_budget = SBX_INSTR_BUDGET_DEFAULT;
        s->cfg.deadline_ms = SBX_DEADLINE_MS_DEFAULT;
    }
    s->limit = s->cfg.mem_limit;
    s->fail_after = -1;
    s->L = lua_newstate(sbx_alloc, s);
    if (s->L == NULL) {
        free(s);
        return pe_err_set(err, PE_ENOMEM, "sandbox: lua_newstate failed");
    }
    lua_atpanic(s->L, sbx_panic);
    *(struct sbx **)lua_getextraspace(s->L) = s;
    lua_sethook(s->L, sbx_hook, LUA_MASKCOUNT, SBX_HOOK_EVERY);
    lua_pushcfunction(s->L, sbx_setup); /* push setup */
    st = sbx_call(s, 0, 0, err);
    if (st != PE_OK) {
        lua_close(s->L);
        free(s);
        return st;
    }
    *out = s;
    return PE_OK;
}

void sbx_free(struct sbx *s)
{
    if (s == NULL)
        return;
    lua_close(s->L);
    free(s);
}

lua_State *sbx_state(struct sbx *s)
{
    return s->L;
}

size_t sbx_mem_used(const struct sbx *s)
{
    return s->used;
}

void sbx_set_limits(struct sbx *s, const struct sbx_cfg *cfg)
{
    s->cfg = *cfg;
    s->limit = cfg->mem_limit;
}

void sbx_fail_after(struct sbx *s, long n)
{
    s->fail_after = n < 0 ? -1 : n;
}

int sbx_call(struct sbx *s, int nargs, int nresults, struct pe_err *err)
{
    lua_State *L = s->L;
    int base = lua_gettop(L) - nargs; /* index of the function */
    int st, rc;
    const char *msg;

    lua_pushcfunction(L, sbx_msgh); /* push handler */
    lua_insert(L, base);            /* put it under the function */
    s->count = 0;
    s->expired = SBX_RUN_NONE;
    s->mem_hit = 0;
    if (s->cfg.deadline_ms > 0) {
        clock_gettime(CLOCK_MONOTONIC, &s->deadline);
        s->deadline.tv_sec += s->cfg.deadline_ms / 1000;
        s->deadline.tv_nsec += (long)(s->cfg.deadline_ms % 1000) * 1000000L;
        if (s->deadline.tv_nsec >= 1000000000L) {
            s->deadline.tv_sec++;
            s->deadline.tv_nsec -= 1000000000L;
        }
    }
    s->active = 1;
    st = lua_pcall(L, nargs, nresults, base);
    s->active = 0;
    cjson_scratch_release(); /* no decode runs past the call: a recorded buffer was abandoned */
    lua_sethook(L, sbx_hook, LUA_MASKCOUNT, SBX_HOOK_EVERY); /* back to the normal rate */
    if (st == LUA_OK) {
        lua_remove(L, base); /* remove handler */
        return PE_OK;
    }
    msg = lua_tostring(L, -1);
    if (s->expired != SBX_RUN_NONE)
        rc = pe_err_set(err, PE_EDEADLINE, "%s", expired_msg(s->expired));
    else if (st == LUA_ERRMEM || s->mem_hit)
        rc = pe_err_set(err, PE_EMEMLIMIT, "memory limit");
    else
        rc = pe_err_set(err, PE_ELUA, "%s", msg != NULL ? msg : "(error object is not a string)");
    lua_settop(L, base - 1); /* pop error and handler */
    s->expired = SBX_RUN_NONE;
    if (s->mem_hit)
        lua_gc(L, LUA_GCCOLLECT); /* give the memory back now */
    return rc;
}

/* [-0, +0] runs code (upvalue 1, a lightuserdata string) in a fresh policy environment */
static int l_dostring(lua_State *L)
{
    const char *code = lua_touserdata(L, 1);
    lua_getglobal(L, "require");         /* push require */
    lua_pushliteral(L, "vigil.sandbox"); /* push name */
    lua_call(L, 1, 1);                   /* push sandbox module */
    lua_getfield(L, -1, "env");          /* push env() */
    lua_call(L, 0, 1);                   /* push env */
    if (luaL_loadbufferx(L, code, strlen(code), "=eval", "t") != LUA_OK)
        return lua_error(L);
    lua_pushvalue(L, -2);                 /* push env */
    if (lua_setupvalue(L, -2, 1) == NULL) /* set _ENV; pop env */
        lua_pop(L, 1);
    lua_call(L, 0, 0);
    return 0;
}

int sbx_dostring(struct sbx *s, const char *code, struct pe_err *err)
{
    lua_pushcfunction(s->L, l_dostring);                  /* push function */
    lua_pushlightuserdata(s->L, (void *)(uintptr_t)code); /* push code */
    return sbx_call(s, 1, 0, err);
}

/*
 * test_lregex.c -- the vregex binding linked statically (as in the worker): compile, match,
 * limits, and __gc under a full collection.  TAP output.
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lregex.h"
#include "tap.h"

/* Runs `code` (a chunk returning one boolean) and reports it as one test line. */
static void check(lua_State *L, const char *code, const char *name)
{
    int rc = luaL_dostring(L, code);
    if (rc != LUA_OK) {
        ok(0, "%s: %s", name, lua_tostring(L, -1));
        lua_pop(L, 1); /* pop error */
        return;
    }
    ok(lua_toboolean(L, -1), "%s", name);
    lua_pop(L, 1); /* pop result */
}

int main(void)
{
    lua_State *L = luaL_newstate();
    if (L == NULL)
        return 1;
    luaL_openlibs(L);
    luaL_requiref(L, "vregex", luaopen_vregex, 1); /* push module */
    lua_pop(L, 1);                                 /* pop module */

    check(L,
          "local rx = vregex.compile('b+', '') local s, e = rx:search('abb', 0)"
          " return s == 1 and e == 3",
          "search returns byte offsets");
    check(L, "return vregex.compile('b', ''):match('ab', 0) == nil", "match is anchored");
    check(L, "local rx, err = vregex.compile('(', '') return rx == nil and type(err) == 'string'",
          "invalid pattern gives nil, message");
    check(L,
          "local r, err = vregex.compile('(a+)+$', ''):search(string.rep('a', 40) .. 'b', 0)"
          " return r == nil and err:find('limit') ~= nil",
          "catastrophic backtracking hits the match limit");
    check(L,
          "for i = 1, 2000 do vregex.compile('x' .. i .. '(y|z)*', 'i') end"
          " collectgarbage() collectgarbage() return true",
          "compiled patterns are freed by __gc");
    check(L, "return #vregex.compile('\\\\w+', ''):find_all('h\\195\\169 ho', 0) == 2",
          "find_all with UTF-8 word characters");
    check(L, "return not pcall(vregex.compile('a', '').match, vregex.compile('a', ''), 'a', 9)",
          "init out of range raises");
    check(L,
          "local rx = vregex.compile('\\\\d+', '') local l = rx:find_all('1 \\255 22 333', 0)"
          " local s = rx:search('x\\255 7', 0) collectgarbage()"
          " return #l == 3 and l[3][1] == 7 and s == 3",
          "subjects with invalid UTF-8 still match (invalid-UTF variant)");

    lua_close(L);
    return done_testing();
}

/*
 * lregex.c -- PCRE2 binding with Python `re` semantics (see lregex.h).
 *
 * Python-only syntax is translated before compiling: `\Z` -> `\z`, `\uXXXX` / `\UXXXXXXXX` ->
 * `\x{...}`, `{,n}` -> `{0,n}`, and the inline flags `a`/`u`/`L` are dropped.  Patterns compile
 * with PCRE2_UTF | PCRE2_UCP (Python str patterns are Unicode-aware), newline = LF only and
 * PCRE2_ALT_CIRCUMFLEX (Python's multi-line `^` also matches after a final newline).
 *
 * Memory: the rx userdata owns the code, the match data and the match context; they are created
 * after the userdata exists and are freed by __gc, so nothing malloc'd is ever held across a call
 * that can raise.  The translated pattern is built in a luaL_Buffer.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <pcre2.h>
#include <stddef.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lregex.h"

#ifndef VREGEX_MATCH_LIMIT
#define VREGEX_MATCH_LIMIT 2000000u
#endif
#ifndef VREGEX_DEPTH_LIMIT
#define VREGEX_DEPTH_LIMIT 20000u
#endif
#ifndef VREGEX_HEAP_LIMIT_KIB
#define VREGEX_HEAP_LIMIT_KIB 16384u
#endif
#ifndef VREGEX_MAX_PATTERN
#define VREGEX_MAX_PATTERN 65536u
#endif

static const char RX_MT[] = "vregex.rx";

struct rx {
    pcre2_code *code;    /* strict UTF: one validity check per call, then PCRE2_NO_UTF_CHECK */
    pcre2_code *code_iu; /* PCRE2_MATCH_INVALID_UTF variant, compiled on the first subject that
                            is not valid UTF-8 (slower: it cannot skip per-call scanning) */
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    uint32_t ngroups;
    uint32_t opts; /* compile options */
};

static struct rx *check_rx(lua_State *L)
{
    struct rx *rx = luaL_checkudata(L, 1, RX_MT);
    if (rx->code == NULL)
        luaL_error(L, "vregex: use of a freed pattern");
    return rx;
}

static int l_gc(lua_State *L)
{
    struct rx *rx = luaL_checkudata(L, 1, RX_MT);
    pcre2_match_data_free(rx->md);
    pcre2_match_context_free(rx->mctx);
    pcre2_code_free(rx->code);
    pcre2_code_free(rx->code_iu);
    rx->code_iu = NULL;
    rx->md = NULL;
    rx->mctx = NULL;
    rx->code = NULL;
    return 0;
}

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Translates Python `re` syntax into PCRE2 syntax; pushes the result (one string).  Returns
 * NULL, or a message for Python syntax that has no PCRE2 equivalent (the string is pushed
 * anyway). */
static const char *translate(lua_State *L, const char *p, size_t len)
{
    const char *bad = NULL;
    luaL_Buffer b;
    size_t i = 0;
    int in_class = 0;
    luaL_buffinit(L, &b); /* may push a box */
    while (i < len) {
        char c = p[i];
        if (c == '\\' && i + 1 < len) {
            char n = p[i + 1];
            size_t hexlen = n == 'u' ? 4 : n == 'U' ? 8 : 0;
            if (n == 'N') /* Python: \N{NAME} only; PCRE2 would read \N as "not a newline" */
                bad = "named Unicode escapes (\\N{...}) are not supported";
            if (n == 'Z' && !in_class) {
                luaL_addlstring(&b, "\\z", 2);
                i += 2;
                continue;
            }
            if (hexlen > 0 && i + 2 + hexlen <= len) {
                size_t k;
                int ok = 1;
                for (k = 0; k < hexlen; k++)
                    ok = ok && is_hex(p[i + 2 + k]);
                if (ok) {
                    luaL_addlstring(&b, "\\x{", 3);
                    luaL_addlstring(&b, p + i + 2, hexlen);
                    luaL_addchar(&b, '}');
                    i += 2 + hexlen;
                    continue;
                }
            }
            luaL_addlstring(&b, p + i, 2);
            i += 2;
            continue;
        }
        if (in_class) {
            if (c == ']')
                in_class = 0;
            luaL_addchar(&b, c);
            i++;
            continue;
        }
        if (c == '[') {
            in_class = 1;
            luaL_addchar(&b, c);
            i++;
            if (i < len && p[i] == '^') {
                luaL_addchar(&b, '^');
                i++;
            }
            if (i < len && p[i] == ']') { /* a leading ']' is literal */
                luaL_addchar(&b, ']');
                i++;
            }
            continue;
        }
        if (c == '{' && i + 1 < len && p[i + 1] == ',') {
            size_t k = i + 2;
            while (k < len && is_digit(p[k]))
                k++;
            if (k > i + 2 && k < len && p[k] == '}') {
                luaL_addlstring(&b, "{0", 2);
                luaL_addlstring(&b, p + i + 1, k - i);
                i = k + 1;
                continue;
            }
        }
        if (c == '(' && i + 2 < len && p[i + 1] == '?') {
            /* inline flag group: (?aiLmsux) or (?aiLmsux-imsx:...) -- drop a, u, L */
            size_t k = i + 2;
            while (k < len && strchr("aiLmsux", p[k]) != NULL && p[k] != '\0')
                k++;
            if (k > i + 2 && k < len && (p[k] == ')' || p[k] == ':' || p[k] == '-')) {
                size_t j;
                luaL_addlstring(&b, "(?", 2);
                for (j = i + 2; j < k; j++)
                    if (p[j] != 'a' && p[j] != 'u' && p[j] != 'L')
                        luaL_addchar(&b, p[j]);
                i = k;
                continue;
            }
        }
        luaL_addchar(&b, c);
        i++;
    }
    luaL_pushresult(&b); /* push translated pattern */
    return bad;
}

static uint32_t parse_flags(lua_State *L, int idx)
{
    size_t n, i;
    const char *f = luaL_optlstring(L, idx, "", &n);
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_ALT_CIRCUMFLEX;
    for (i = 0; i < n; i++) {
        switch (f[i]) {
        case 'i':
            opts |= PCRE2_CASELESS;
            break;
        case 'm':
            opts |= PCRE2_MULTILINE;
            break;
        case 's':
            opts |= PCRE2_DOTALL;
            break;
        case 'x':
            opts |= PCRE2_EXTENDED;
            break;
        default:
            luaL_argerror(L, idx, "unknown flag (expected i, m, s, x)");
        }
    }
    return opts;
}

/* vregex.compile(pattern [, flags]) -> rx | nil, message */
static int l_compile(lua_State *L)
{
    size_t plen, tlen;
    const char *pat = luaL_checklstring(L, 1, &plen);
    uint32_t opts = parse_flags(L, 2);
    const char *tpat;
    struct rx *rx;
    pcre2_compile_context *cctx;
    int errcode = 0;
    PCRE2_SIZE erroff = 0;
    pcre2_code *code;

    if (plen > VREGEX_MAX_PATTERN) {
        lua_pushnil(L);
        lua_pushliteral(L, "pattern too long");
        return 2;
    }
    {
        const char *bad = translate(L, pat, plen); /* push translated */
        if (bad != NULL) {
            lua_pushnil(L);
            lua_pushstring(L, bad);
            return 2;
        }
    }
    tpat = lua_tolstring(L, -1, &tlen);
    rx = lua_newuserdatauv(L, sizeof(*rx), 1); /* push rx */
    memset(rx, 0, sizeof(*rx));
    luaL_setmetatable(L, RX_MT);
    lua_pushvalue(L, -2);        /* push translated pattern */
    lua_setiuservalue(L, -2, 1); /* pop: kept for the invalid-UTF variant */

    /* From here to the end of the block nothing raises: cctx is freed before any push. */
    cctx = pcre2_compile_context_create(NULL);
    if (cctx != NULL) {
        pcre2_set_newline(cctx, PCRE2_NEWLINE_LF);
        pcre2_set_parens_nest_limit(cctx, 250);
    }
    code = pcre2_compile((PCRE2_SPTR)tpat, tlen, opts, &errcode, &erroff, cctx);
    pcre2_compile_context_free(cctx);
    if (code == NULL) {
        PCRE2_UCHAR msg[256];
        if (pcre2_get_error_message(errcode, msg, sizeof(msg)) < 0)
            strcpy((char *)msg, "invalid pattern");
        lua_pushnil(L);
        lua_pushfstring(L, "%s at position %d", (const char *)msg, (int)erroff);
        return 2;
    }
    rx->code = code; /* owned by rx from now on */
    rx->opts = opts;
    rx->md = pcre2_match_data_create_from_pattern(code, NULL);
    rx->mctx = pcre2_match_context_create(NULL);
    if (rx->md == NULL || rx->mctx == NULL)
        return luaL_error(L, "vregex: out of memory");
    pcre2_set_match_limit(rx->mctx, VREGEX_MATCH_LIMIT);
    pcre2_set_depth_limit(rx->mctx, VREGEX_DEPTH_LIMIT);
    pcre2_set_heap_limit(rx->mctx, VREGEX_HEAP_LIMIT_KIB);
    if (pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &rx->ngroups) != 0)
        rx->ngroups = 0;
    return 1;
}

static int is_utf_error(int rc)
{
    return rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21;
}

/* The PCRE2_MATCH_INVALID_UTF variant of rx (compiled on first use; NULL if that fails).  The rx
 * must be at stack index 1. */
static pcre2_code *invalid_utf_code(lua_State *L, struct rx *rx)
{
    if (rx->code_iu == NULL) {
        size_t tlen;
        const char *tpat;
        int errcode = 0;
        PCRE2_SIZE erroff = 0;
        pcre2_compile_context *cctx;
        lua_getiuservalue(L, 1, 1); /* push translated pattern */
        tpat = lua_tolstring(L, -1, &tlen);
        cctx = pcre2_compile_context_create(NULL);
        if (cctx != NULL) {
            pcre2_set_newline(cctx, PCRE2_NEWLINE_LF);
            pcre2_set_parens_nest_limit(cctx, 250);
        }
        rx->code_iu = pcre2_compile((PCRE2_SPTR)tpat, tlen, rx->opts | PCRE2_MATCH_INVALID_UTF,
                                    &errcode, &erroff, cctx);
        pcre2_compile_context_free(cctx);
        lua_pop(L, 1); /* pop pattern */
    }
    return rx->code_iu;
}

/* Runs one match; returns the pcre2 result code (> 0 match, NOMATCH, or an error).  `*iu` says
 * whether the invalid-UTF variant is in use (set on the first UTF error; then sticky). */
static int run(lua_State *L, struct rx *rx, const char *s, size_t len, size_t init, uint32_t opts,
               int *iu)
{
    int rc;
    if (!*iu) {
        rc = pcre2_match(rx->code, (PCRE2_SPTR)s, len, init, opts, rx->md, rx->mctx);
        if (!is_utf_error(rc))
            return rc;
        *iu = 1;
    }
    if (invalid_utf_code(L, rx) == NULL)
        return PCRE2_ERROR_UTF8_ERR1;
    opts &= ~(uint32_t)PCRE2_NO_UTF_CHECK;
    return pcre2_match(rx->code_iu, (PCRE2_SPTR)s, len, init, opts, rx->md, rx->mctx);
}

/* Pushes an error (nil, message) for a failed match and returns 2. */
static int push_match_error(lua_State *L, int rc)
{
    PCRE2_UCHAR msg[256];
    lua_pushnil(L);
    if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
        rc == PCRE2_ERROR_HEAPLIMIT) {
        lua_pushliteral(L, "regular expression too complex: match limit exceeded");
        return 2;
    }
    if (pcre2_get_error_message(rc, msg, sizeof(msg)) < 0)
        strcpy((char *)msg, "match error");
    lua_pushstring(L, (const char *)msg);
    return 2;
}

/* Pushes a table {start, stop, g1start, g1stop, ...}; unset groups are -1. */
static void push_spans(lua_State *L, struct rx *rx)
{
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(rx->md);
    uint32_t i, n = rx->ngroups + 1;
    lua_createtable(L, (int)(2 * n), 0); /* push spans */
    for (i = 0; i < 2 * n; i++) {
        if (ov[i] == PCRE2_UNSET)
            lua_pushinteger(L, -1);
        else
            lua_pushinteger(L, (lua_Integer)ov[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

static size_t check_init(lua_State *L, int idx, size_t len)
{
    lua_Integer init = luaL_optinteger(L, idx, 0);
    luaL_argcheck(L, init >= 0 && (size_t)init <= len, idx, "init out of range");
    return (size_t)init;
}

/* Shared body of match/search: returns start, stop, spans | nil | nil, err. */
static int match_common(lua_State *L, uint32_t opts, int spans)
{
    struct rx *rx = check_rx(L);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    size_t init = check_init(L, 3, len);
    int iu = 0;
    int rc = run(L, rx, s, len, init, opts, &iu);
    PCRE2_SIZE *ov;
    if (rc == PCRE2_ERROR_NOMATCH) {
        lua_pushnil(L);
        return 1;
    }
    if (rc < 0)
        return push_match_error(L, rc);
    ov = pcre2_get_ovector_pointer(rx->md);
    lua_pushinteger(L, (lua_Integer)ov[0]);
    lua_pushinteger(L, (lua_Integer)ov[1]);
    if (!spans)
        return 2;
    push_spans(L, rx);
    return 3;
}

/* rx:match(s [, init]) -- anchored at init (Python re.match). */
static int l_match(lua_State *L)
{
    return match_common(L, PCRE2_ANCHORED, 1);
}

/* rx:match_span(s [, init]) -- as match, without the group table (start, stop only). */
static int l_match_span(lua_State *L)
{
    return match_common(L, PCRE2_ANCHORED, 0);
}

/* rx:search_span(s [, init]) -- as search, without the group table. */
static int l_search_span(lua_State *L)
{
    return match_common(L, 0, 0);
}

/* rx:search(s [, init]) -- first match at or after init (Python re.search). */
static int l_search(lua_State *L)
{
    return match_common(L, 0, 1);
}

/* rx:find_all(s [, init]) -> { spans, ... } | nil, err -- non-overlapping (Python finditer). */
static int l_find_all(lua_State *L)
{
    struct rx *rx = check_rx(L);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    size_t pos = check_init(L, 3, len);
    uint32_t opts = 0;
    lua_Integer n = 0;
    int iu = 0;
    lua_newtable(L); /* push result list */
    for (;;) {
        int rc = run(L, rx, s, len, pos, opts, &iu);
        PCRE2_SIZE *ov;
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0)
            return push_match_error(L, rc);
        ov = pcre2_get_ovector_pointer(rx->md);
        push_spans(L, rx);
        lua_rawseti(L, -2, ++n); /* pop spans into list */
        if (ov[1] == ov[0]) {
            /* empty match: next try at the same place must not be empty (Python 3.7+) */
            if (ov[1] >= len)
                break;
            pos = ov[1];
            opts = PCRE2_NOTEMPTY_ATSTART | PCRE2_NO_UTF_CHECK;
        } else {
            pos = ov[1];
            opts = PCRE2_NO_UTF_CHECK; /* the subject was checked by the first call */
        }
    }
    return 1;
}

/* rx:groups() -> number of capture groups */
static int l_groups(lua_State *L)
{
    struct rx *rx = check_rx(L);
    lua_pushinteger(L, (lua_Integer)rx->ngroups);
    return 1;
}

/* vregex.escape(s) -> s with every ASCII non-word character backslash-escaped */
static int l_escape(lua_State *L)
{
    size_t len, i;
    const char *s = luaL_checklstring(L, 1, &len);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int word = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                   c == '_' || c >= 0x80;
        if (c == '\n') {
            luaL_addlstring(&b, "\\n", 2);
            continue;
        }
        if (c == '\0') {
            luaL_addlstring(&b, "\\x{0}", 5);
            continue;
        }
        if (!word)
            luaL_addchar(&b, '\\');
        luaL_addchar(&b, (char)c);
    }
    luaL_pushresult(&b);
    return 1;
}

static const luaL_Reg rx_methods[] = {{"match", l_match},
                                      {"search", l_search},
                                      {"match_span", l_match_span},
                                      {"search_span", l_search_span},
                                      {"find_all", l_find_all},
                                      {"groups", l_groups},
                                      {NULL, NULL}};

static const luaL_Reg vregex_lib[] = {{"compile", l_compile}, {"escape", l_escape}, {NULL, NULL}};

int luaopen_vregex(lua_State *L)
{
    if (luaL_newmetatable(L, RX_MT)) {  /* push metatable */
        luaL_newlib(L, rx_methods);     /* push methods */
        lua_setfield(L, -2, "__index"); /* pop methods */
        lua_pushcfunction(L, l_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushliteral(L, "vregex.rx");
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);              /* pop metatable */
    luaL_newlib(L, vregex_lib); /* push module */
    lua_pushinteger(L, (lua_Integer)VREGEX_MATCH_LIMIT);
    lua_setfield(L, -2, "match_limit");
    return 1;
}

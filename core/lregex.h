/*
 * lregex.h -- the `vregex` Lua module: PCRE2 (8-bit, UTF + UCP) regular expressions with
 * Python `re` semantics for the policy runtime.
 *
 * Provides: vregex.compile(pattern, flags) -> rx | nil, err; rx:match(s, init) (anchored) and
 * rx:search(s, init) -> start, stop, spans | nil | nil, err; rx:match_span / rx:search_span (the
 * same without the group table); rx:find_all(s, init) -> { spans, ... } | nil, err;
 * rx:groups(); vregex.escape(s).
 * Offsets are 0-based byte offsets, end exclusive.  Every match runs under a match limit,
 * a depth limit and a heap limit, so a hostile pattern fails with an error instead of running
 * unbounded.  Compiled code and match data belong to the rx userdata and are freed by its
 * __gc.  Relies on: lua5.4, libpcre2-8.  No JIT (the worker's jail forbids executable pages).
 */
#ifndef VIGIL_LREGEX_H
#define VIGIL_LREGEX_H

#include <lua.h>

/* Opens the module: pushes the `vregex` table and returns 1.  Raises only on out of memory. */
int luaopen_vregex(lua_State *L);

#endif

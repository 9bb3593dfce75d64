/*
 * sandbox.h -- the Lua 5.4 state that runs policies: a budgeted allocator (memory cap with a
 * clean LUA_ERRMEM, plus a test-only fail-after-N knob), a safe library set, the static C
 * modules (lpeg, cjson, vregex) and every bundled Lua module in package.preload (text only),
 * and an instruction-count + monotonic-deadline hook that a policy's pcall cannot swallow.
 *
 * Trusted runtime modules run in the state's globals: base (no dofile/loadfile; load is text
 * only; xpcall re-implemented over pcall; setmetatable refuses __gc), string (no dump: removed
 * from the real table), table, math, utf8, coroutine, require (preload searcher only). No io,
 * os, debug or package. `require "vigil.sandbox"` gives the safe set for policy environments:
 * .env() -> a fresh table with the safe base + copies of string/table/math/utf8/coroutine.
 * Relies on: lua5.4, lpeg, cjson, vregex (core/lregex.c), lua_bundle[] (build/gen).
 */
#ifndef VIGIL_SANDBOX_H
#define VIGIL_SANDBOX_H

#include <stddef.h>

#include <lua.h>

#include "err.h"

#ifndef SBX_MEM_LIMIT_DEFAULT
#define SBX_MEM_LIMIT_DEFAULT ((size_t)256 << 20)
#endif
#ifndef SBX_INSTR_BUDGET_DEFAULT
#define SBX_INSTR_BUDGET_DEFAULT 2000000000LL
#endif
#ifndef SBX_DEADLINE_MS_DEFAULT
#define SBX_DEADLINE_MS_DEFAULT 10000
#endif
#ifndef SBX_HOOK_EVERY
#define SBX_HOOK_EVERY 1000 /* instructions between two hook calls */
#endif

struct sbx_cfg {
    size_t mem_limit;       /* bytes of Lua heap for the whole state; 0 = unlimited */
    long long instr_budget; /* per sbx_call; 0 = unlimited */
    int deadline_ms;        /* per sbx_call wall clock (CLOCK_MONOTONIC); 0 = none */
};

struct sbx; /* opaque; owns its lua_State */

/* Creates the state and loads the library set and the preload table (nothing is required yet).
 * cfg NULL = defaults. Returns PE_OK and *out (free with sbx_free), PE_ENOMEM, PE_ELUA. */
int sbx_new(const struct sbx_cfg *cfg, struct sbx **out, struct pe_err *err);

/* Closes the state and frees everything. NULL ok. */
void sbx_free(struct sbx *s);

/* The state, borrowed (valid until sbx_free). Call Lua only through sbx_call. */
lua_State *sbx_state(struct sbx *s);

/* Calls the function below nargs arguments on the stack, like lua_pcall(L, nargs, nresults),
 * with the memory cap, the instruction budget and the deadline armed. On PE_OK the results
 * are on the stack. On failure nothing is left on the stack and err->msg has the message:
 * PE_EMEMLIMIT ("memory limit"), PE_EDEADLINE ("deadline exceeded" / "instruction budget
 * exceeded"), PE_ELUA (any other error). The state stays usable after every failure. */
int sbx_call(struct sbx *s, int nargs, int nresults, struct pe_err *err);

/* Runs Lua source (text only) in a fresh policy environment (vigil.sandbox.env()) under the
 * limits; leaves nothing on the stack. Convenience for tests. Return codes as sbx_call. */
int sbx_dostring(struct sbx *s, const char *code, struct pe_err *err);

/* Bytes of Lua heap in use now. */
size_t sbx_mem_used(const struct sbx *s);

/* Changes the limits for later calls (mem_limit applies at once). */
void sbx_set_limits(struct sbx *s, const struct sbx_cfg *cfg);

/* Test only: the (n+1)-th growing allocation from now on fails (n >= 0); n < 0 turns it off. */
void sbx_fail_after(struct sbx *s, long n);

#endif

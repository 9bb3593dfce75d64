/*
 * lua_bundle.h — the Lua runtime sources embedded in the binary.
 *
 * tools/bundle.lua generates build/gen/lua_bundle.c from every file under lua/. The worker
 * registers each entry in package.preload before the jail closes, so `require` needs no
 * filesystem. The table ends with an entry whose name is NULL. Sources are text only.
 */
#ifndef VIGIL_LUA_BUNDLE_H
#define VIGIL_LUA_BUNDLE_H

#include <stddef.h>

struct lua_bundle_entry {
    const char *name;      /* module name, e.g. "rt.engine" */
    const char *chunkname; /* "@lua/runtime/rt/engine.lua" */
    const char *src;       /* the source text, not NUL-terminated in meaning: use len */
    int len;
};

extern const struct lua_bundle_entry lua_bundle[];

#endif

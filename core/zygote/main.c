/* main.c -- build/vigil-zygote: the worker zygote as a program of its own (core/worker.h,
 * zyg_main). vigild starts it; it links core and what the workers run (Lua, LPeg, cjson, PCRE2,
 * libseccomp) and nothing of the host. */
#include <stddef.h>

#include "worker.h"

/* Linked with -Wl,--wrap=dlopen: Lua's package library is the only caller, and the sandbox
 * removes package.loadlib and every searcher but the preload one (core/sandbox.c). Nothing may be
 * loaded in a worker; the stub also keeps a static link free of glibc's dlopen warning. */
void *__wrap_dlopen(const char *file, int mode);
void *__wrap_dlopen(const char *file, int mode)
{
    (void)file;
    (void)mode;
    return NULL;
}

int main(void)
{
    return zyg_main();
}

/*
 * tap.h -- a tiny TAP producer for the C unit tests (picotest style).
 *   ok(cond, fmt, ...)    one test line; returns cond
 *   is(got, want, fmt...) integer equality, prints both on failure
 *   note(fmt, ...)        a "# ..." comment line
 *   skip(fmt, ...)        an "ok N # SKIP why" line
 *   done_testing()        prints the plan; returns the exit status (0 iff all passed)
 *   test_zygote_exe()     the build's vigil-zygote, for zyg_cfg.zygote_exe
 * Header-only: every function is static; include it from exactly one .c per program.
 */
#ifndef VIGIL_TAP_H
#define VIGIL_TAP_H

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "path.h"

static int tap_n, tap_failed;

__attribute__((format(printf, 2, 0))) static void tap_vline(int pass, const char *fmt, va_list ap)
{
    tap_n++;
    if (!pass)
        tap_failed++;
    printf("%sok %d - ", pass ? "" : "not ", tap_n);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
}

__attribute__((format(printf, 2, 3), unused)) static int ok(int pass, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tap_vline(pass, fmt, ap);
    va_end(ap);
    return pass;
}

__attribute__((format(printf, 3, 4), unused)) static int is(long long got, long long want,
                                                            const char *fmt, ...)
{
    va_list ap;
    int pass = got == want;
    va_start(ap, fmt);
    tap_vline(pass, fmt, ap);
    va_end(ap);
    if (!pass)
        printf("#   got: %lld\n#   expected: %lld\n", got, want);
    return pass;
}

__attribute__((format(printf, 1, 2), unused)) static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("# ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
}

/* A skipped test: counts as passed, says why. */
__attribute__((format(printf, 1, 2), unused)) static void skip(const char *fmt, ...)
{
    va_list ap;
    tap_n++;
    printf("ok %d # SKIP ", tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

__attribute__((unused)) static int done_testing(void)
{
    printf("1..%d\n", tap_n);
    if (tap_failed)
        printf("# failed %d of %d\n", tap_failed, tap_n);
    fflush(stdout);
    return tap_failed ? 1 : 0;
}

/* The zygote program of this build, for zyg_cfg.zygote_exe: a test runs as BUILD/tests/test_x,
 * the zygote is BUILD/vigil-zygote (the default, next to the running program, fits vigild only). */
__attribute__((unused)) static const char *test_zygote_exe(void)
{
    static char path[PATH_MAX];
    return path_beside_self("../vigil-zygote", path, sizeof path) == 0 ? path : "vigil-zygote";
}

#endif

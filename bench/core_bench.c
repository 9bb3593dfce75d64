/* core_bench.c -- figures for the C core: session spawn latency (zygote -> jailed worker
 * ready), warm ping round trip, idle worker memory. Not part of `make all`:
 *   make build/bench/core_bench && ./build/bench/core_bench [spawns] [pings] [zygote program]
 * (the zygote program defaults to the build's: ../vigil-zygote beside build/bench/core_bench)
 * Prints one "name: value" line per figure. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "path.h"
#include "worker.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static long smaps_kib(pid_t pid, const char *field)
{
    char path[64], buf[256];
    long v = -1;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(buf, sizeof buf, f))
        if (strncmp(buf, field, strlen(field)) == 0)
            v = atol(buf + strlen(field) + 1);
    fclose(f);
    return v;
}

int main(int argc, char **argv)
{
    int nspawn = argc > 1 ? atoi(argv[1]) : 1000, nping = argc > 2 ? atoi(argv[2]) : 10000, i;
    int insecure = getenv("INSECURE") != NULL;
    struct zyg_cfg cfg;
    struct zyg *z;
    struct pe_err e;
    struct wk w = WK_INIT, idle[10];
    int nt = nspawn > nping ? nspawn : nping;
    double *t = calloc((size_t)(nt > 1000 ? nt : 1000), sizeof *t); /* the eval loop: 1000 */
    double t0;

    zyg_cfg_init(&cfg);
    char zexe[PATH_MAX];
    cfg.zygote_exe = argc > 3                                                      ? argv[3]
                     : path_beside_self("../vigil-zygote", zexe, sizeof zexe) == 0 ? zexe
                                                                                   : NULL;
    cfg.insecure_no_jail = insecure;
    t0 = now_us();
    if (zyg_start(&cfg, &z, &e) != PE_OK) {
        fprintf(stderr, "zyg_start: %s\n", e.msg);
        return 1;
    }
    printf("zygote start (probe + runtime load): %.1f ms\n", (now_us() - t0) / 1e3);
    for (i = 0; i < nspawn; i++) {
        t0 = now_us();
        if (zyg_spawn(z, &w, &e) != PE_OK) {
            fprintf(stderr, "spawn %d: %s\n", i, e.msg);
            return 1;
        }
        t[i] = now_us() - t0;
        wk_kill(&w);
    }
    qsort(t, (size_t)nspawn, sizeof *t, cmp_d);
    printf("spawn+ready back to back (%s, n=%d): median %.0f us, p99 %.0f us\n",
           insecure ? "insecure" : "jailed", nspawn, t[nspawn / 2], t[nspawn * 99 / 100]);
    for (i = 0; i < nspawn / 4; i++) {
        usleep(3000); /* sessions arrive with gaps: the preforked spare is ready */
        t0 = now_us();
        if (zyg_spawn(z, &w, &e) != PE_OK)
            return 1;
        t[i] = now_us() - t0;
        wk_kill(&w);
    }
    qsort(t, (size_t)(nspawn / 4), sizeof *t, cmp_d);
    printf("spawn+ready with 3 ms gaps (n=%d): median %.0f us, p99 %.0f us\n", nspawn / 4,
           t[nspawn / 8], t[nspawn / 4 * 99 / 100]);

    if (zyg_spawn(z, &w, &e) != PE_OK)
        return 1;
    for (i = 0; i < nping + 100; i++) {
        char *resp;
        size_t n;
        double t1 = now_us();
        if (wk_call(&w, "{\"op\":\"ping\"}", 13, 5000, &resp, &n, &e) != PE_OK) {
            fprintf(stderr, "ping: %s\n", e.msg);
            return 1;
        }
        if (i >= 100)
            t[i - 100] = now_us() - t1;
        free(resp);
    }
    qsort(t, (size_t)nping, sizeof *t, cmp_d);
    printf("ping round trip warm (n=%d): median %.1f us, p99 %.1f us\n", nping, t[nping / 2],
           t[nping * 99 / 100]);
    {
        const char *req = "{\"op\":\"eval\",\"code\":\"local t = {} for i = 1, 100 do t[i] = i end "
                          "return #t\"}";
        for (i = 0; i < 1000; i++) {
            char *resp;
            size_t n;
            double t1 = now_us();
            wk_call(&w, req, strlen(req), 5000, &resp, &n, &e);
            t[i] = now_us() - t1;
            free(resp);
        }
        qsort(t, 1000, sizeof *t, cmp_d);
        printf("small eval round trip (n=1000): median %.1f us\n", t[500]);
    }
    wk_kill(&w);
    for (i = 0; i < 10; i++) {
        idle[i] = (struct wk)WK_INIT;
        zyg_spawn(z, &idle[i], &e);
    }
    usleep(100000);
    {
        long pss = 0, rss = 0;
        for (i = 0; i < 10; i++) {
            pss += smaps_kib(idle[i].pid, "Pss:");
            rss += smaps_kib(idle[i].pid, "Rss:");
        }
        printf("idle worker (mean of 10): Pss %ld KiB, Rss %ld KiB; zygote Rss %ld KiB\n", pss / 10,
               rss / 10, smaps_kib(zyg_pid(z), "Rss:"));
    }
    for (i = 0; i < 10; i++)
        wk_kill(&idle[i]);
    zyg_free(z);
    free(t);
    return 0;
}

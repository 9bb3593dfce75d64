/* test_worker.c -- zygote + jailed workers: ping, eval round trip, sandbox errors answered by
 * the C loop, watchdog kill (PE_ETIMEDOUT), dead worker (PE_EDEAD), 100 spawn+kill with no
 * leftover process, the in-process variant, and timing notes. Responses are parsed (jansson),
 * never compared as strings. */
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
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

/* Sends req; returns the parsed response (caller json_decref) or NULL; *rc gets the status. */
static json_t *call(struct wk *w, const char *req, int timeout_ms, int *rc)
{
    char *resp = NULL;
    size_t n;
    struct pe_err e;
    json_t *j = NULL;
    *rc = wk_call(w, req, strlen(req), timeout_ms, &resp, &n, &e);
    if (*rc == PE_OK) {
        j = json_loadb(resp, n, 0, NULL);
        if (j == NULL)
            note("unparsable response: %.200s", resp);
    } else {
        note("wk_call: %s: %s", pe_status_str(*rc), e.msg);
    }
    free(resp);
    return j;
}

static const char *err_code(json_t *j)
{
    return json_string_value(json_object_get(json_object_get(j, "error"), "code"));
}

static int is_ok(json_t *j)
{
    return j != NULL && json_is_true(json_object_get(j, "ok"));
}

static int count_children(pid_t parent)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int n = 0;
    if (d == NULL)
        return -1;
    while ((de = readdir(d)) != NULL) {
        char path[300], buf[256];
        FILE *f;
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/status", de->d_name);
        f = fopen(path, "r");
        if (f == NULL)
            continue;
        while (fgets(buf, sizeof buf, f)) {
            if (strncmp(buf, "PPid:", 5) == 0) {
                if (atoi(buf + 5) == parent)
                    n++;
                break;
            }
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

static int wait_children(pid_t parent, int want, int ms)
{
    int n = -1, i;
    for (i = 0; i < ms / 10; i++) {
        n = count_children(parent);
        if (n == want)
            break;
        usleep(10000);
    }
    return n;
}

static void test_basic(struct zyg *z)
{
    struct wk w = WK_INIT;
    struct pe_err e;
    json_t *j;
    int rc;

    rc = zyg_spawn(z, &w, &e);
    if (!ok(rc == PE_OK && w.pid > 0 && w.fd >= 0, "spawn (%s)", rc ? e.msg : "ok"))
        return;
    j = call(&w, "{\"op\":\"ping\"}", 2000, &rc);
    ok(is_ok(j) && json_is_object(json_object_get(j, "result")), "ping -> ok, result {}");
    json_decref(j);

    j = call(&w, "{\"op\":\"eval\",\"code\":\"return 1 + 2\"}", 2000, &rc);
    ok(is_ok(j) && json_integer_value(json_object_get(json_object_get(j, "result"), "value")) == 3,
       "eval round trip: 1 + 2 = 3");
    json_decref(j);

    j = call(&w, "{\"op\":\"eval\",\"code\":\"return {a = 'x', b = {1, 2}}\"}", 2000, &rc);
    ok(is_ok(j) && json_array_size(json_object_get(
                       json_object_get(json_object_get(j, "result"), "value"), "b")) == 2,
       "eval returns a table as JSON");
    json_decref(j);

    j = call(&w, "{\"op\":\"eval\",\"code\":\"return io or os or debug or package or require\"}",
             2000, &rc);
    ok(is_ok(j) && json_is_null(json_object_get(json_object_get(j, "result"), "value")),
       "eval env: no io/os/debug/package/require");
    json_decref(j);

    j = call(&w, "{\"op\":\"eval\",\"code\":\"error('boom')\"}", 2000, &rc);
    ok(j && !is_ok(j) && err_code(j) && strcmp(err_code(j), "evaluation_error") == 0,
       "eval error -> evaluation_error");
    json_decref(j);

    j = call(&w, "not json", 2000, &rc);
    ok(j && err_code(j) && strcmp(err_code(j), "bad_request") == 0, "bad JSON -> bad_request");
    json_decref(j);

    j = call(&w, "{\"op\":\"nope\"}", 2000, &rc);
    ok(j && err_code(j) && strcmp(err_code(j), "bad_request") == 0, "unknown op -> bad_request");
    json_decref(j);

    j = call(&w, "{\"op\":\"eval\",\"code\":\"while true do end\"}", 5000, &rc);
    ok(j && err_code(j) && strcmp(err_code(j), "deadline_exceeded") == 0,
       "infinite loop -> deadline_exceeded answered by the C loop");
    json_decref(j);

    j = call(&w, "{\"op\":\"eval\",\"code\":\"local s = string.rep('x', 1 << 30)\"}", 5000, &rc);
    ok(j && err_code(j) && strcmp(err_code(j), "memory_limit") == 0, "memory bomb -> memory_limit");
    json_decref(j);

    j = call(&w, "{\"op\":\"ping\"}", 2000, &rc);
    ok(is_ok(j), "worker still usable after the limits");
    json_decref(j);

    j = call(&w,
             "{\"op\":\"compile\",\"policy\":\"raise \\\"x\\\" if:\\n    (m: Message)\\n    "
             "m.role == \\\"user\\\"\\n\"}",
             5000, &rc);
    ok(j && json_is_boolean(json_object_get(j, "ok")) && (is_ok(j) || (err_code(j) != NULL)),
       "compile answers cleanly (%s)", is_ok(j) ? "ok" : (j && err_code(j) ? err_code(j) : "?"));
    json_decref(j);

    j = call(&w, "{\"op\":\"policy_drop\",\"pid\":\"nope\"}", 2000, &rc);
    ok(j && err_code(j) && strcmp(err_code(j), "not_found") == 0, "unknown pid -> not_found");
    json_decref(j);

    /* the host watchdog: a Lua pattern that backtracks in C, where no hook runs */
    j = call(
        &w, "{\"op\":\"eval\",\"code\":\"return string.rep('a', 3000):find('a-a-a-a-a-a-a-a-b')\"}",
        200, &rc);
    ok(j == NULL && rc == PE_ETIMEDOUT && w.pid == 0 && w.fd == -1,
       "C-level backtracking: PE_ETIMEDOUT after 200 ms, worker killed and released");
    json_decref(j);
    wk_kill(&w);
    ok(1, "wk_kill after release is a no-op");

    rc = zyg_spawn(z, &w, &e);
    if (ok(rc == PE_OK, "respawn after a kill")) {
        kill(w.pid, SIGKILL);
        j = call(&w, "{\"op\":\"ping\"}", 2000, &rc);
        ok(j == NULL && rc == PE_EDEAD, "killed worker -> PE_EDEAD");
        json_decref(j);
        wk_kill(&w);
    }
}

/* the runtime ops through a jailed worker (rt + compiler loaded in the zygote) */
static void test_ops(struct zyg *z)
{
    static const char pol[] =
        "raise \\\"found\\\" if:\\n    (m: Message)\\n    m.role == \\\"user\\\"\\n";
    struct wk w = WK_INIT;
    struct pe_err e;
    char req[1024];
    json_t *j, *v;
    int rc;
    if (zyg_spawn(z, &w, &e) != PE_OK)
        return;
    snprintf(req, sizeof req, "{\"op\":\"policy_put\",\"pid\":\"p1\",\"policy\":\"%s\"}", pol);
    j = call(&w, req, 5000, &rc);
    ok(is_ok(j) && json_array_size(json_object_get(json_object_get(j, "result"), "rules")) == 1,
       "policy_put compiles an Invariant policy in the jail");
    json_decref(j);
    j = call(&w,
             "{\"op\":\"analyze\",\"pid\":\"p1\",\"trace\":[{\"role\":\"user\","
             "\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"yo\"}]}",
             5000, &rc);
    v = json_object_get(json_object_get(j, "result"), "violations");
    ok(is_ok(j) && json_array_size(v) == 1, "analyze: one violation");
    json_decref(j);
    j = call(&w, "{\"op\":\"analyze\",\"pid\":\"p1\",\"trace\":[]}", 5000, &rc);
    v = json_object_get(json_object_get(j, "result"), "violations");
    ok(is_ok(j) && json_is_array(v) && json_array_size(v) == 0,
       "analyze: no violation is an empty JSON array");
    json_decref(j);
    j = call(&w, "{\"op\":\"monitor_new\",\"mid\":\"m1\",\"pid\":\"p1\"}", 5000, &rc);
    ok(is_ok(j), "monitor_new");
    json_decref(j);
    j = call(&w,
             "{\"op\":\"monitor_events\",\"mid\":\"m1\",\"events\":[{\"role\":\"user\","
             "\"content\":\"a\"}]}",
             5000, &rc);
    v = json_object_get(j, "result");
    ok(is_ok(j) && json_array_size(json_object_get(v, "violations")) == 1 &&
           json_integer_value(json_object_get(v, "events_seen")) == 1,
       "monitor_events: one new violation, events_seen 1");
    json_decref(j);
    j = call(&w,
             "{\"op\":\"monitor_events\",\"mid\":\"m1\",\"events\":[{\"role\":"
             "\"assistant\",\"content\":\"b\"}]}",
             5000, &rc);
    v = json_object_get(j, "result");
    ok(is_ok(j) && json_array_size(json_object_get(v, "violations")) == 0 &&
           json_integer_value(json_object_get(v, "events_seen")) == 2,
       "monitor_events: nothing new, events_seen 2");
    json_decref(j);
    snprintf(req, sizeof req,
             "{\"op\":\"check\",\"policy\":\"%s\",\"past_len\":1,\"trace\":[{\"role\":"
             "\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\"}]}",
             pol);
    j = call(&w, req, 5000, &rc);
    ok(is_ok(j) &&
           json_array_size(json_object_get(json_object_get(j, "result"), "violations")) == 1,
       "check with past_len 1: only the violation on the new event");
    json_decref(j);
    j = call(&w, "{\"op\":\"compile\",\"policy\":\"raise x if\"}", 5000, &rc);
    ok(j && err_code(j) && strcmp(err_code(j), "policy_invalid") == 0,
       "a policy that does not compile -> policy_invalid");
    json_decref(j);
    wk_kill(&w);
}

/* big requests cross the socket in pieces; a malformed frame ends the worker */
static void test_frames(struct zyg *z)
{
    struct wk w = WK_INIT;
    struct pe_err e;
    size_t big = (size_t)2 << 20, i;
    char *req = malloc(big + 64);
    json_t *j;
    int rc, n;
    if (req == NULL || zyg_spawn(z, &w, &e) != PE_OK) {
        free(req);
        return;
    }
    n = snprintf(req, 64, "{\"op\":\"eval\",\"code\":\"return #'");
    for (i = 0; i < big; i++)
        req[(size_t)n + i] = 'a';
    memcpy(req + n + big, "'\"}", 4);
    j = call(&w, req, 10000, &rc);
    ok(is_ok(j) && json_integer_value(json_object_get(json_object_get(j, "result"), "value")) ==
                       (json_int_t)big,
       "2 MiB request answered (partial reads and writes)");
    json_decref(j);
    free(req);
    /* a header announcing 2 GiB: the worker treats it as a protocol error and leaves */
    rc = (int)write(w.fd, "\0\0\0\x80\1\0\0\0", 8);
    j = call(&w, "{\"op\":\"ping\"}", 2000, &rc);
    ok(j == NULL && (rc == PE_EDEAD || rc == PE_EPROTO),
       "oversized frame: the worker leaves, the host sees it dead (%s)", pe_status_str(rc));
    json_decref(j);
    wk_kill(&w);
}

static void test_many(struct zyg *z)
{
    enum { N = 100 };
    struct wk ws[N];
    struct pe_err e;
    double t[N];
    int i, good = 0, n;

    for (i = 0; i < N; i++) {
        double t0 = now_us();
        struct wk w0 = WK_INIT;
        ws[i] = w0;
        if (zyg_spawn(z, &ws[i], &e) == PE_OK)
            good++;
        t[i] = now_us() - t0;
    }
    ok(good == N, "%d of %d workers spawned", good, N);
    n = wait_children(zyg_pid(z), N + 1, 2000);
    ok(n == N + 1, "%d live children of the zygote (%d + the preforked spare)", n, N);
    for (i = 0; i < N; i++) {
        int rc;
        json_t *j = call(&ws[i], "{\"op\":\"ping\"}", 2000, &rc);
        if (!is_ok(j))
            good--;
        json_decref(j);
        wk_kill(&ws[i]);
    }
    ok(good == N, "each answered a ping, then was killed");
    n = wait_children(zyg_pid(z), 1, 3000);
    ok(n == 1, "no leftover process after 100 spawn+kill (%d: the spare only)", n);
    qsort(t, N, sizeof t[0], cmp_d);
    note("spawn (ready) latency over %d: median %.0f us, p90 %.0f us, max %.0f us", N, t[N / 2],
         t[N * 9 / 10], t[N - 1]);
}

/* VmRSS of pid in kB, -1 if unreadable */
static long vm_rss_kb(pid_t pid)
{
    char path[64], buf[256];
    long kb = -1;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(buf, sizeof buf, f))
        if (strncmp(buf, "VmRSS:", 6) == 0)
            kb = atol(buf + 6);
    fclose(f);
    return kb;
}

/* A worker that goes idle gives back what its last request allocated (full GC + malloc_trim
 * after idle_trim_ms without a request). Without it the garbage stays until the next requests
 * allocate enough to run a cycle: an idle worker would keep it forever. */
static void test_idle_trim(const struct zyg_cfg *base)
{
    /* 2,500 strings of 10 kB (malloc'd in the heap, under the mmap threshold) held by a local:
     * garbage once the eval returns */
    static const char alloc[] = "{\"op\":\"eval\",\"code\":\"local t = {} for i = 1, 2500 do "
                                "t[i] = string.rep('x', 10000) .. i end return #t\"}";
    struct zyg_cfg c = *base, *cfg = &c;
    struct zyg *z = NULL;
    struct wk w = WK_INIT;
    struct pe_err e;
    long r0, r1, r2 = -1;
    json_t *j;
    int rc, i;
    if (cfg->sanitizer_build) {
        skip("idle trim: the sanitizer allocator keeps freed memory in quarantine");
        skip("idle trim (2)");
        return;
    }
    c.deadline_ms = 10000; /* the allocation must not race a loaded machine */
    c.idle_trim_ms = 200;
    if (!ok(zyg_start(cfg, &z, &e) == PE_OK, "a zygote with idle_trim_ms = 200"))
        return;
    if (zyg_spawn(z, &w, &e) != PE_OK) {
        zyg_free(z);
        return;
    }
    j = call(&w, "{\"op\":\"ping\"}", 2000, &rc);
    json_decref(j);
    usleep((useconds_t)(cfg->idle_trim_ms + 300) * 1000);
    r0 = vm_rss_kb(w.pid);
    j = call(&w, alloc, 5000, &rc);
    r1 = vm_rss_kb(w.pid);
    ok(is_ok(j) && r0 > 0 && r1 > r0 + 10 * 1024,
       "a request allocates: VmRSS %ld kB -> %ld kB right after it (%s)", r0, r1,
       is_ok(j) ? "ok" : (j && err_code(j) ? err_code(j) : "no answer"));
    json_decref(j);
    for (i = 0; i < 50; i++) { /* up to 5 s: the trim runs idle_trim_ms after the request */
        usleep(100000);
        r2 = vm_rss_kb(w.pid);
        if (r2 >= 0 && r2 < r0 + 2048)
            break;
    }
    ok(r2 >= 0 && r2 < r0 + 2048,
       "idle for %d ms: the worker gave the memory back (VmRSS %ld kB, was %ld kB before the "
       "request)",
       cfg->idle_trim_ms, r2, r0);
    j = call(&w, "{\"op\":\"eval\",\"code\":\"return 40 + 2\"}", 2000, &rc);
    ok(is_ok(j) && json_integer_value(json_object_get(json_object_get(j, "result"), "value")) == 42,
       "the worker serves normally after the trim");
    json_decref(j);
    wk_kill(&w);
    zyg_free(z);
}

/* minor page faults of pid so far (-1 if unreadable): field 10 of /proc/PID/stat */
static long minflt(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    long v = -1;
    if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %ld", &v) != 1)
        v = -1;
    return v;
}

/* a check request (stateless, as the host's pool sends it) over a trace of messages of
 * 1 kB (6,000 of them): several MiB of decoded and normalised data, garbage once it is answered */
static char *big_check(void)
{
    size_t cap = 6000 * 1100 + 512, len = 0;
    char *b = malloc(cap);
    if (b == NULL)
        return NULL;
    len += (size_t)snprintf(b + len, cap - len,
                            "{\"op\":\"check\",\"format\":\"native\",\"language\":\"invariant\","
                            "\"policy\":\"raise \\\"x\\\" if:\\n    (m: Message)\\n    "
                            "m.content == \\\"zzz\\\"\",\"trace\":[");
    for (int i = 0; i < 6000; i++) {
        len += (size_t)snprintf(b + len, cap - len, "%s{\"role\":\"user\",\"content\":\"%d ",
                                i ? "," : "", i);
        memset(b + len, 'x', 1000);
        len += 1000;
        len += (size_t)snprintf(b + len, cap - len, "\"}");
    }
    snprintf(b + len, cap - len, "]}");
    return b;
}

/* The idle trim is for session workers: a worker that only answered stateless requests (the
 * host's pool) keeps its memory, so the next large check does not pay to fault it back in
 * (40-90 ms at 10,000 events). Measured as the page faults of a second large check sent after
 * idle_trim_ms: a stateful worker (it stored a policy) refaults its heap, the pool-like worker
 * does not. */
static void test_pool_stays_warm(const struct zyg_cfg *base)
{
    struct zyg_cfg c = *base, *cfg = &c;
    struct zyg *z = NULL;
    long faults[2] = {-1, -1};
    struct pe_err e;
    int rc;
    if (cfg->sanitizer_build) {
        skip("pool stays warm: the sanitizer allocator keeps freed memory in quarantine");
        return;
    }
    char *req = big_check();
    c.deadline_ms = 10000;
    c.idle_trim_ms = 200;
    if (req == NULL || zyg_start(cfg, &z, &e) != PE_OK) {
        ok(0, "pool stays warm: set-up");
        free(req);
        return;
    }
    for (int stateful = 0; stateful < 2; stateful++) {
        struct wk w = WK_INIT;
        if (zyg_spawn(z, &w, &e) != PE_OK)
            break;
        json_t *j;
        if (stateful) {
            j = call(&w,
                     "{\"op\":\"policy_put\",\"pid\":\"p\",\"language\":\"invariant\",\"policy\":"
                     "\"raise \\\"x\\\" if:\\n    (m: Message)\\n    m.content == \\\"q\\\"\"}",
                     5000, &rc);
            json_decref(j);
        }
        j = call(&w, req, 10000, &rc);
        int good = is_ok(j);
        json_decref(j);
        usleep((useconds_t)(cfg->idle_trim_ms + 400) * 1000);
        long f0 = minflt(w.pid);
        j = call(&w, req, 10000, &rc);
        long f1 = minflt(w.pid);
        good = good && is_ok(j);
        json_decref(j);
        if (good && f0 >= 0 && f1 >= f0)
            faults[stateful] = f1 - f0;
        wk_kill(&w);
    }
    ok(faults[0] >= 0 && faults[1] >= 0 && faults[1] > faults[0] + 1500,
       "after idle, a large check faults %ld pages in a pool-like worker (warm) and %ld in a "
       "session's worker (trimmed)",
       faults[0], faults[1]);
    zyg_free(z);
    free(req);
}

/* ms taken by one ping through w (-1 on failure) */
static double ping_ms(struct wk *w)
{
    double t0 = now_us();
    int rc;
    json_t *j = call(w, "{\"op\":\"ping\"}", 10000, &rc);
    int good = is_ok(j);
    json_decref(j);
    return good ? (now_us() - t0) / 1000 : -1;
}

/* The full collection a large request (>= 64 KiB) owes runs right after its answer is written
 * (worker.after from the serve loop): not inside the request, not at the next one. Seen from
 * outside by timing, with garbage that takes long to collect (1.5 million tables) and the idle
 * trim off: a ping sent at once after the answer waits for the collection; one sent 300 ms later
 * does not (it would pay it if the collection waited for the next request). Three tries each:
 * a loaded machine may slow one ping, not the pattern. */
static void test_after(const struct zyg_cfg *base)
{
    static const char head[] = "{\"op\":\"eval\",\"code\":\"local t = {} for i = 1, 1500000 do "
                               "t[i] = {} end return #t --";
    struct zyg_cfg c = *base;
    struct zyg *z = NULL;
    struct wk w = WK_INIT;
    struct pe_err e;
    double imm = -1, late = -1, req_ms = -1;
    int rc, i, seen_imm = 0, seen_late = 0, answered = 1;
    size_t n;
    char *req;

    c.deadline_ms = 20000;
    c.mem_limit = (size_t)512 << 20;
    c.idle_trim_ms = 0; /* only the after step may collect between requests */
    req = malloc(sizeof head + 80 * 1024 + 3);
    if (req == NULL || zyg_start(&c, &z, &e) != PE_OK || zyg_spawn(z, &w, &e) != PE_OK) {
        ok(0, "a zygote and a worker without idle trim (%s)", e.msg);
        free(req);
        zyg_free(z);
        return;
    }
    n = sizeof head - 1; /* the code, then a comment that makes the request 80 KiB */
    memcpy(req, head, n);
    memset(req + n, 'c', 80 * 1024);
    n += 80 * 1024;
    memcpy(req + n, "\"}", 3);
    for (i = 0; i < 3 && answered && !(seen_imm && seen_late); i++) {
        double t0 = now_us();
        json_t *j = call(&w, req, 20000, &rc);
        answered = is_ok(j);
        json_decref(j);
        req_ms = (now_us() - t0) / 1000;
        imm = ping_ms(&w);
        seen_imm |= imm > 5;
        j = call(&w, req, 20000, &rc);
        answered = answered && is_ok(j);
        json_decref(j);
        usleep(300000);
        late = ping_ms(&w);
        seen_late |= late >= 0 && late < imm / 4;
    }
    ok(answered, "large requests (80 KiB) leaving 1.5 million tables answer (%.0f ms)", req_ms);
    ok(seen_imm, "a ping right after the answer waits for the collection (%.1f ms)", imm);
    ok(seen_late, "a ping 300 ms later finds it done (%.2f ms)", late);
    free(req);
    wk_kill(&w);
    zyg_free(z);
}

static void test_roundtrip(struct zyg *z)
{
    enum { N = 2000 };
    static double t[N];
    struct wk w = WK_INIT;
    struct pe_err e;
    int i, good = 0;
    if (zyg_spawn(z, &w, &e) != PE_OK)
        return;
    for (i = 0; i < N; i++) {
        char *resp;
        size_t n;
        double t0 = now_us();
        if (wk_call(&w, "{\"op\":\"ping\"}", 13, 2000, &resp, &n, &e) == PE_OK)
            good++;
        t[i] = now_us() - t0;
        free(resp);
    }
    ok(good == N, "%d ping round trips", N);
    qsort(t, N, sizeof t[0], cmp_d);
    note("ping round trip: median %.1f us, p99 %.1f us", t[N / 2], t[N * 99 / 100]);
    wk_kill(&w);
}

/* every worker of one zygote draws its own math.random sequence (reseeded after the fork) */
static void test_seeds(struct zyg *z)
{
    static const char req[] =
        "{\"op\":\"eval\",\"code\":\"return {math.random(0, 1 << 30), math.random(0, 1 << 30)}\"}";
    struct wk w[2] = {WK_INIT, WK_INIT};
    json_t *j[2] = {NULL, NULL};
    struct pe_err e;
    int i, rc, differ = 0;
    for (i = 0; i < 2; i++) {
        if (zyg_spawn(z, &w[i], &e) == PE_OK)
            j[i] = call(&w[i], req, 2000, &rc);
    }
    if (is_ok(j[0]) && is_ok(j[1])) {
        json_t *a = json_object_get(json_object_get(j[0], "result"), "value");
        json_t *b = json_object_get(json_object_get(j[1], "result"), "value");
        differ = json_array_size(a) == 2 && json_array_size(b) == 2 && !json_equal(a, b) &&
                 !json_equal(json_array_get(a, 0), json_array_get(b, 0));
    }
    ok(differ, "two workers of one zygote draw different math.random values");
    for (i = 0; i < 2; i++) {
        json_decref(j[i]);
        wk_kill(&w[i]);
    }
}

/* a zygote that died: zyg_spawn says PE_EDEAD, zyg_revive starts a new one (the zygote program
 * again), the old workers live on */
static void test_revive(struct zyg *z)
{
    struct wk w = WK_INIT, w2 = WK_INIT;
    struct pe_err e;
    pid_t z1 = zyg_pid(z), z2;
    json_t *j;
    int rc, st = 0;

    rc = zyg_revive(z, &e);
    ok(rc == PE_EAGAIN, "zyg_revive on a live zygote: PE_EAGAIN, nothing done (%s)",
       pe_status_str(rc));
    if (zyg_spawn(z, &w, &e) != PE_OK)
        return;
    kill(z1, SIGKILL);
    usleep(50000);
    rc = zyg_spawn(z, &w2, &e);
    ok(rc == PE_EDEAD, "zygote killed: zyg_spawn -> PE_EDEAD (%s: %s)", pe_status_str(rc), e.msg);
    wk_kill(&w2);
    rc = zyg_revive(z, &e);
    z2 = zyg_pid(z);
    ok(rc == PE_OK && z2 > 0 && z2 != z1 && strstr(e.msg, "killed by signal 9") != NULL,
       "zyg_revive: a new zygote (%s)", e.msg);
    ok(waitpid(z1, &st, WNOHANG) < 0, "the old zygote was reaped");
    rc = zyg_spawn(z, &w2, &e);
    j = rc == PE_OK ? call(&w2, "{\"op\":\"eval\",\"code\":\"return 6 * 7\"}", 2000, &rc) : NULL;
    ok(is_ok(j) && json_integer_value(json_object_get(json_object_get(j, "result"), "value")) == 42,
       "a worker of the new zygote evaluates");
    json_decref(j);
    j = call(&w, "{\"op\":\"ping\"}", 2000, &rc);
    ok(is_ok(j), "a worker of the dead zygote still serves");
    json_decref(j);
    rc = zyg_revive(z, &e);
    ok(rc == PE_EAGAIN, "zyg_revive again: PE_EAGAIN");
    wk_kill(&w);
    wk_kill(&w2);
}

/* 1 when /proc/PID/maps names none of the host's libraries, 0 when it names one (*which), -1
 * when it cannot be read. */
static int maps_clean(pid_t pid, const char **which)
{
    static const char *const host_libs[] = {"libmicrohttpd", "libgnutls",  "libsqlite3",
                                            "libjansson",    "libp11-kit", "libnettle"};
    char path[64], line[512];
    FILE *f;
    size_t i;
    int clean = 1;
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (clean && fgets(line, sizeof line, f))
        for (i = 0; i < sizeof host_libs / sizeof host_libs[0]; i++)
            if (strstr(line, host_libs[i]) != NULL) {
                *which = host_libs[i];
                clean = 0;
            }
    fclose(f);
    return clean;
}

/* 1 when /proc/PID/exe is a file named vigil-zygote */
static int exe_is_zygote(pid_t pid, char *buf, size_t cap)
{
    char path[64];
    ssize_t n;
    const char *base;
    snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
    n = readlink(path, buf, cap - 1);
    if (n < 0) {
        snprintf(buf, cap, "unreadable");
        return 0;
    }
    buf[n] = '\0';
    base = strrchr(buf, '/');
    return base != NULL && strcmp(base + 1, ZYG_EXE_NAME) == 0;
}

/* The zygote and its workers run the lean program (build/vigil-zygote), not the test binary
 * (which, like vigild, links jansson): none of the host's libraries is mapped in them. */
static void test_lean(struct zyg *z)
{
    struct wk w = WK_INIT;
    struct pe_err e;
    const char *which = "";
    char exe[4096];
    pid_t zp = zyg_pid(z);
    int c;

    ok(exe_is_zygote(zp, exe, sizeof exe), "the zygote runs %s (%s)", ZYG_EXE_NAME, exe);
    c = maps_clean(zp, &which);
    ok(c == 1, "the zygote maps none of the host's libraries (%s)", c < 0 ? "unreadable" : which);
    if (zyg_spawn(z, &w, &e) != PE_OK) {
        ok(0, "spawn (%s)", e.msg);
        return;
    }
    ok(exe_is_zygote(w.pid, exe, sizeof exe), "a worker runs %s (%s)", ZYG_EXE_NAME, exe);
    c = maps_clean(w.pid, &which);
    ok(c == 1, "a worker maps none of the host's libraries (%s)", c < 0 ? "unreadable" : which);
    wk_kill(&w);
}

/* The zygote program is opened once, by zyg_start: a missing one fails the start with its path;
 * replacing or removing the path later changes nothing, a restart runs the file opened then. */
static void test_zygote_program(const struct zyg_cfg *base)
{
    struct zyg_cfg c = *base;
    struct zyg *z = NULL;
    struct wk w = WK_INIT;
    struct pe_err e;
    char tmp[] = "/tmp/vigil-zygote-test.XXXXXX", buf[65536];
    json_t *j;
    pid_t z1;
    ssize_t n;
    int rc, in, out;

    c.zygote_exe = "/nonexistent/vigil-zygote";
    rc = zyg_start(&c, &z, &e);
    ok(rc == PE_ESYS && z == NULL && strstr(e.msg, "/nonexistent/vigil-zygote") != NULL,
       "a missing zygote program fails zyg_start, naming it (%s: %s)", pe_status_str(rc), e.msg);
    zyg_free(z);
    z = NULL;

    /* a copy of the program that is deleted once the zygote runs */
    in = open(base->zygote_exe, O_RDONLY | O_CLOEXEC);
    out = mkstemp(tmp);
    if (in < 0 || out < 0) {
        ok(0, "copy %s to %s", base->zygote_exe, tmp);
        goto out;
    }
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n)
            n = -1;
    close(in);
    in = -1;
    if (n < 0 || fchmod(out, 0700) < 0 || close(out) < 0) {
        out = -1;
        ok(0, "copy %s to %s", base->zygote_exe, tmp);
        goto out;
    }
    out = -1;
    c.zygote_exe = tmp;
    rc = zyg_start(&c, &z, &e);
    unlink(tmp);
    if (!ok(rc == PE_OK, "a zygote from a copy of the program (%s)", rc ? e.msg : "ok"))
        goto out;
    z1 = zyg_pid(z);
    kill(z1, SIGKILL);
    usleep(50000);
    rc = zyg_revive(z, &e);
    ok(rc == PE_OK && zyg_pid(z) != z1,
       "the copy deleted, the zygote killed: zyg_revive runs the file opened at start (%s)", e.msg);
    rc = zyg_spawn(z, &w, &e);
    j = rc == PE_OK ? call(&w, "{\"op\":\"eval\",\"code\":\"return 6 * 7\"}", 2000, &rc) : NULL;
    ok(is_ok(j) && json_integer_value(json_object_get(json_object_get(j, "result"), "value")) == 42,
       "  and its worker evaluates");
    json_decref(j);
    wk_kill(&w);
out:
    if (in >= 0)
        close(in);
    if (out >= 0) {
        close(out);
        unlink(tmp);
    }
    zyg_free(z);
}

/* RLIMIT_CPU is per worker lifetime. A worker past it is SIGKILLed by the kernel (soft = hard:
 * SIGKILL at the limit; a SIGXCPU would be ignored by the pid-1 worker anyway); the host sees
 * it dead (PE_EDEAD, not a watchdog timeout) and a respawned worker starts from zero. */
static void test_rlimit_cpu(const struct zyg_cfg *base)
{
    struct zyg_cfg c = *base;
    struct zyg *z = NULL;
    struct wk w = WK_INIT;
    struct pe_err e;
    double t0, dt;
    json_t *j;
    int rc;
    c.rlimit_cpu = 1;
    c.instr_budget = 0; /* nothing in the sandbox stops the loop: only the rlimit */
    c.deadline_ms = 0;
    if (!ok(zyg_start(&c, &z, &e) == PE_OK, "a zygote with rlimit_cpu = 1 s"))
        return;
    if (zyg_spawn(z, &w, &e) == PE_OK) {
        t0 = now_us();
        j = call(&w, "{\"op\":\"eval\",\"code\":\"while true do end\"}", 20000, &rc);
        dt = (now_us() - t0) / 1e3;
        ok(j == NULL && rc == PE_EDEAD && w.pid == 0 && dt < 15000,
           "a worker past RLIMIT_CPU is killed by the kernel: PE_EDEAD after %.0f ms (%s)", dt,
           pe_status_str(rc));
        json_decref(j);
        wk_kill(&w);
    }
    rc = zyg_spawn(z, &w, &e);
    j = rc == PE_OK ? call(&w, "{\"op\":\"eval\",\"code\":\"return 6 * 7\"}", 2000, &rc) : NULL;
    ok(is_ok(j) && json_integer_value(json_object_get(json_object_get(j, "result"), "value")) == 42,
       "the respawned worker serves (its CPU time starts from zero)");
    json_decref(j);
    wk_kill(&w);
    zyg_free(z);
}

/* A jail step that fails in the worker (test knob jail_fail_step): zyg_spawn answers at once
 * with an error naming the step, the zygote lives on and the next spawn says the same. */
static void test_jail_failure(const struct zyg_cfg *base)
{
    static const char *const steps[] = {"fds", "root", "tz", "rlimits", "caps", "nnp", "seccomp"};
    size_t i;
    for (i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        struct zyg_cfg c = *base;
        struct zyg *z = NULL;
        struct wk w = WK_INIT;
        struct pe_err e;
        char want[64];
        double t0;
        int rc, rc2;
        if (c.insecure_no_jail && strcmp(steps[i], "root") == 0)
            continue; /* the partial jail has no root step */
        snprintf(c.jail_fail_step, sizeof c.jail_fail_step, "%s", steps[i]);
        if (zyg_start(&c, &z, &e) != PE_OK) {
            ok(0, "zyg_start with jail_fail_step %s (%s)", steps[i], e.msg);
            continue;
        }
        snprintf(want, sizeof want, "jail: %s (failure injected", steps[i]);
        t0 = now_us();
        rc = zyg_spawn(z, &w, &e);
        ok(rc == PE_ESYS && w.pid == 0 && w.fd == -1 && strstr(e.msg, "worker jail failed") &&
               strstr(e.msg, want) && now_us() - t0 < 5e6,
           "jail step '%s' fails: %s, reported in %.0f ms (%s)", steps[i], pe_status_str(rc),
           (now_us() - t0) / 1e3, e.msg);
        rc2 = zyg_spawn(z, &w, &e);
        ok(rc2 == PE_ESYS && strstr(e.msg, want) && kill(zyg_pid(z), 0) == 0,
           "  the zygote lives on; the next spawn reports the same (%s)", pe_status_str(rc2));
        zyg_free(z);
    }
}

#define LREQ "{\"op\":\"eval\",\"code\":\"return 6 * 7\"}"
static void test_local(void)
{
    struct wk_local *wl = NULL;
    struct pe_err e;
    char *resp = NULL;
    size_t n;
    json_t *j;
    int rc = wk_local_new(NULL, &wl, &e);
    if (!ok(rc == PE_OK, "wk_local_new (%s)", rc ? e.msg : "ok"))
        return;
    rc = wk_local_call(wl, LREQ, strlen(LREQ), &resp, &n, &e);
    j = rc == PE_OK ? json_loadb(resp, n, 0, NULL) : NULL;
    ok(is_ok(j) && json_integer_value(json_object_get(json_object_get(j, "result"), "value")) == 42,
       "in-process eval: 6 * 7 = 42");
    json_decref(j);
    free(resp);
    wk_local_free(wl);
    wk_local_free(NULL);
}

int main(void)
{
    struct zyg_cfg cfg;
    struct zyg *z = NULL;
    struct pe_err e;
    int rc;
    pid_t zp;

    zyg_cfg_init(&cfg);
    cfg.zygote_exe = test_zygote_exe();
    cfg.deadline_ms = 300;
    cfg.mem_limit = (size_t)64 << 20;
    rc = zyg_start(&cfg, &z, &e);
    if (rc == PE_ENOTSUP) { /* no full jail here (unprivileged container): test the partial one */
        note("%s", e.msg);
        cfg.insecure_no_jail = 1;
        rc = zyg_start(&cfg, &z, &e);
    }
    if (!ok(rc == PE_OK, "zyg_start (%s)", rc ? e.msg : "ok"))
        return done_testing();
    zp = zyg_pid(z);
    test_basic(z);
    test_ops(z);
    test_frames(z);
    test_many(z);
    test_roundtrip(z);
    test_seeds(z);
    test_lean(z);
    test_revive(z);
    test_lean(z);
    zp = zyg_pid(z);
    zyg_free(z);
    ok(kill(zp, 0) != 0, "zyg_free: the zygote is gone");
    test_idle_trim(&cfg);
    test_pool_stays_warm(&cfg);
    test_after(&cfg);
    test_jail_failure(&cfg);
    test_rlimit_cpu(&cfg);
    test_zygote_program(&cfg);
    zyg_free(NULL);
    test_local();
    return done_testing();
}

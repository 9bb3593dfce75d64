/*
 * main.c — vigild: configuration (flags and VIGIL_* environment variables), the jail check,
 * the zygote, the store, the session table, the HTTP daemon, signals and graceful shutdown.
 */
#include "api.h"
#include "http.h"
#include "path.h"
#include "session.h"
#include "store.h"
#include "util.h"
#include "worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct config {
    const char *listen;
    const char *db;
    const char *openapi;
    int insecure;
    int enable_eval;
    int require_token;
    long long max_body;
    long long max_events;
    long long max_policy;
    long long ttl;
    long long ttl_max;
    long long idle_evict;
    long long idle_trim_ms;
    long long max_sessions;
    long long deadline_ms;
    long long mem_limit;
    long long instr_budget;
    long long max_concurrent;
    long long max_queue;
    long long pool_size;
    long long max_connections;
    long long rate;
    const char *log_level;
};

enum kind { K_STR, K_FLAG, K_SIZE, K_INT };

struct opt {
    const char *flag, *env;
    enum kind kind;
    size_t off;
    const char *help;
};

#define O(f) offsetof(struct config, f)
static const struct opt opts[] = {
    {"--listen", "VIGIL_LISTEN", K_STR, O(listen),
     "ADDR:PORT to listen on (port 0: any free port)"},
    {"--db", "VIGIL_DB", K_STR, O(db), "SQLite database path (':memory:' for none)"},
    {"--insecure-no-jail", "VIGIL_INSECURE_NO_JAIL", K_FLAG, O(insecure),
     "run workers without the full jail when it is unavailable (loudly)"},
    {"--enable-eval", "VIGIL_ENABLE_EVAL", K_FLAG, O(enable_eval),
     "expose POST /v1/sessions/{sid}/eval (tests and sandbox probes only)"},
    {"--require-token", "VIGIL_REQUIRE_TOKEN", K_FLAG, O(require_token),
     "routes naming a session need its token (Authorization: Bearer)"},
    {"--max-body", "VIGIL_MAX_BODY", K_SIZE, O(max_body), "largest request body (bytes; K/M/G)"},
    {"--max-events", "VIGIL_MAX_EVENTS", K_INT, O(max_events), "most events per trace or chunk"},
    {"--max-policy", "VIGIL_MAX_POLICY", K_SIZE, O(max_policy), "largest policy source (bytes)"},
    {"--session-ttl", "VIGIL_SESSION_TTL", K_INT, O(ttl),
     "default session TTL in seconds since last use"},
    {"--session-ttl-max", "VIGIL_SESSION_TTL_MAX", K_INT, O(ttl_max),
     "largest TTL a client may ask"},
    {"--idle-evict", "VIGIL_IDLE_EVICT", K_INT, O(idle_evict),
     "kill a session's worker after this many idle seconds (0: never)"},
    {"--idle-trim-ms", "VIGIL_IDLE_TRIM_MS", K_INT, O(idle_trim_ms),
     "a worker idle this long after a request gives its memory back (0: never)"},
    {"--max-sessions", "VIGIL_MAX_SESSIONS", K_INT, O(max_sessions), "sessions in total"},
    {"--deadline-ms", "VIGIL_DEADLINE_MS", K_INT, O(deadline_ms),
     "wall-clock deadline of one evaluation (ms)"},
    {"--mem-limit", "VIGIL_MEM_LIMIT", K_SIZE, O(mem_limit), "Lua memory per session (bytes)"},
    {"--instr-budget", "VIGIL_INSTR_BUDGET", K_INT, O(instr_budget),
     "Lua instructions per evaluation (0: default of the core)"},
    {"--max-concurrent", "VIGIL_MAX_CONCURRENT", K_INT, O(max_concurrent),
     "evaluations in flight at once"},
    {"--max-queue", "VIGIL_MAX_QUEUE", K_INT, O(max_queue),
     "evaluations waiting for a slot before 429"},
    {"--pool-size", "VIGIL_POOL_SIZE", K_INT, O(pool_size), "workers for stateless checks"},
    {"--max-connections", "VIGIL_MAX_CONNECTIONS", K_INT, O(max_connections),
     "concurrent HTTP connections"},
    {"--rate-limit", "VIGIL_RATE_LIMIT", K_INT, O(rate),
     "requests per second per client address and per API key (0: no limit)"},
    {"--openapi", "VIGIL_OPENAPI", K_STR, O(openapi), "OpenAPI document served at /openapi.json"},
    {"--log-level", "VIGIL_LOG_LEVEL", K_STR, O(log_level), "error, warn, info or debug"},
};
#define NOPTS (sizeof opts / sizeof opts[0])

static void usage(FILE *f, const struct config *d)
{
    fprintf(f, "usage: vigild [options]\n\nvigil policy-engine server.\n\noptions (each also "
               "settable by the environment variable shown):\n");
    for (size_t i = 0; i < NOPTS; i++) {
        const void *p = (const char *)d + opts[i].off;
        char def[64] = "";
        if (opts[i].kind == K_STR && *(const char *const *)p)
            snprintf(def, sizeof def, " [default %s]", *(const char *const *)p);
        else if (opts[i].kind == K_SIZE || opts[i].kind == K_INT)
            snprintf(def, sizeof def, " [default %lld]", *(const long long *)p);
        fprintf(f, "  %-20s %-s%s (%s)\n", opts[i].flag, opts[i].help, def, opts[i].env);
    }
    fprintf(f, "  %-20s this text\n", "--help");
}

static int parse_num(const char *s, enum kind k, long long *out)
{
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0)
        return -1;
    if (k == K_SIZE && *end) {
        long long mul = 1;
        switch (*end) {
        case 'k':
        case 'K':
            mul = 1LL << 10;
            break;
        case 'm':
        case 'M':
            mul = 1LL << 20;
            break;
        case 'g':
        case 'G':
            mul = 1LL << 30;
            break;
        default:
            return -1;
        }
        end++;
        if (*end == 'i' || *end == 'B')
            end++;
        if (*end == 'B')
            end++;
        if (v > LLONG_MAX / mul)
            return -1;
        v *= mul;
    }
    if (*end)
        return -1;
    *out = v;
    return 0;
}

static int set_opt(struct config *c, const struct opt *o, const char *val, const char *src)
{
    void *p = (char *)c + o->off;
    switch (o->kind) {
    case K_STR:
        *(const char **)p = val;
        return 0;
    case K_FLAG:
        *(int *)p = !val || !(0 == strcmp(val, "0") || 0 == strcmp(val, "false") || !*val);
        return 0;
    default:
        if (parse_num(val, o->kind, (long long *)p)) {
            fprintf(stderr, "vigild: %s: bad value '%s' for %s\n", src, val, o->flag);
            return -1;
        }
        return 0;
    }
}

static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[128];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof host)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    long long port;
    if (parse_num(colon + 1, K_INT, &port) || port > 65535)
        return -1;
    memset(ss, 0, sizeof *ss);
    char *h = host;
    size_t hl = strlen(h);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h[hl - 1] = '\0';
        h++;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, h, &a6->sin6_addr) != 1)
            return -1;
        *len = sizeof *a6;
        return 0;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    const char *hp = h;
    if (0 == strcmp(hp, "localhost"))
        hp = "127.0.0.1";
    if (!*hp)
        hp = "0.0.0.0";
    if (inet_pton(AF_INET, hp, &a->sin_addr) != 1)
        return -1;
    *len = sizeof *a;
    return 0;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 65536 > cap) {
            cap = cap ? cap * 2 : 131072;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    *len = n;
    return buf;
}

static char *load_openapi(const char *path, int is_default, size_t *len)
{
    char *doc = read_file(path, len);
    if (doc || !is_default)
        return doc;
    /* Next to the binary: build/vigild → ../docs/openapi.json. */
    char p[PATH_MAX];
    if (path_beside_self("../docs/openapi.json", p, sizeof p) < 0)
        return NULL;
    return read_file(p, len);
}

int main(int argc, char **argv)
{
    struct config c = {
        .listen = "127.0.0.1:8000",
        .db = "vigil.db",
        .openapi = "docs/openapi.json",
        .max_body = 16LL << 20,
        .max_events = 100000,
        .max_policy = 1LL << 20,
        .ttl = 3600,
        .ttl_max = 7 * 86400,
        .idle_evict = 300,
        .idle_trim_ms = 500,
        .max_sessions = 10000,
        .deadline_ms = 10000,
        .mem_limit = 256LL << 20,
        .instr_budget = 0,
        .max_concurrent = 16,
        .max_queue = 256,
        .pool_size = 2,
        .max_connections = 1024,
        .log_level = "info",
    };
    struct config defaults = c;
    for (size_t i = 0; i < NOPTS; i++) {
        const char *v = getenv(opts[i].env);
        if (v && set_opt(&c, &opts[i], v, opts[i].env))
            return 2;
    }
    int openapi_default = 1;
    for (int i = 1; i < argc; i++) {
        if (0 == strcmp(argv[i], "--help") || 0 == strcmp(argv[i], "-h")) {
            usage(stdout, &defaults);
            return 0;
        }
        const struct opt *o = NULL;
        const char *val = NULL;
        for (size_t k = 0; k < NOPTS && !o; k++) {
            size_t fl = strlen(opts[k].flag);
            if (0 == strncmp(argv[i], opts[k].flag, fl) &&
                (argv[i][fl] == '\0' || argv[i][fl] == '=')) {
                o = &opts[k];
                if (argv[i][fl] == '=')
                    val = argv[i] + fl + 1;
            }
        }
        if (!o) {
            fprintf(stderr, "vigild: unknown option '%s' (see --help)\n", argv[i]);
            return 2;
        }
        if (o->kind != K_FLAG && !val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "vigild: %s needs a value\n", o->flag);
                return 2;
            }
            val = argv[++i];
        }
        if (o->off == O(openapi))
            openapi_default = 0;
        if (set_opt(&c, o, val, "command line"))
            return 2;
    }
    int lvl = util_log_parse(c.log_level);
    if (lvl < 0) {
        fprintf(stderr, "vigild: bad --log-level '%s'\n", c.log_level);
        return 2;
    }
    util_log_level = lvl;
    struct sockaddr_storage addr;
    socklen_t alen;
    if (parse_listen(c.listen, &addr, &alen)) {
        fprintf(stderr, "vigild: bad --listen '%s' (expected ADDR:PORT)\n", c.listen);
        return 2;
    }

    /* Signals: blocked before any thread exists, so that only sigwait below sees them. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    struct jail_report jr;
    jail_probe(&jr);
    int full = jail_report_full(&jr);
    /* Test hook: behave as if the probe had found no full jail (exercises the refusal and the
     * insecure mode on machines that do have the jail). */
    const char *sim = getenv("VIGIL_TEST_JAIL_UNAVAILABLE");
    if (sim && 0 == strcmp(sim, "1")) {
        full = 0;
        snprintf(jr.summary, sizeof jr.summary, "%s",
                 "jail: unavailable (simulated by VIGIL_TEST_JAIL_UNAVAILABLE=1)");
    }
    if (!full && !c.insecure) {
        util_log(LOG_ERROR,
                 "the worker jail is unavailable on this machine (%s); refusing to start. "
                 "Run as root or where user namespaces are allowed, or pass --insecure-no-jail "
                 "(VIGIL_INSECURE_NO_JAIL=1) to run with a partial jail (no_new_privs, seccomp, "
                 "rlimits only)",
                 jr.summary);
        return 3;
    }
    /* The flag only matters when the full jail is unavailable: a machine that has it keeps it. */
    int insecure = c.insecure && !full;
    util_log_insecure = insecure;
    if (insecure)
        util_log(LOG_WARN,
                 "jail: %s; running INSECURE (--insecure-no-jail): workers get only "
                 "no_new_privs, seccomp and rlimits",
                 jr.summary);
    else if (c.insecure)
        util_log(LOG_WARN,
                 "jail: %s; --insecure-no-jail given but the full jail is available: "
                 "keeping the full jail",
                 jr.summary);
    else
        util_log(LOG_INFO, "jail: %s", jr.summary);

    struct zyg_cfg zc;
    zyg_cfg_init(&zc);
    zc.insecure_no_jail = insecure;
    zc.mem_limit = (size_t)c.mem_limit;
    if (c.instr_budget > 0)
        zc.instr_budget = c.instr_budget;
    zc.deadline_ms = (int)c.deadline_ms;
    zc.idle_trim_ms = c.idle_trim_ms > 3600000 ? 3600000 : (int)c.idle_trim_ms;
    if (zc.max_frame < (size_t)c.max_body + 4096)
        zc.max_frame = (size_t)c.max_body * 2 + 4096;
    if (zc.rlimit_as && zc.rlimit_as < zc.mem_limit + (512u << 20))
        zc.rlimit_as = zc.mem_limit + (512u << 20);
    /* Test hook: every worker fails this jail step (exercises the failure report end to end). */
    const char *fail_step = getenv("VIGIL_TEST_JAIL_FAIL_STEP");
    if (fail_step && *fail_step) {
        snprintf(zc.jail_fail_step, sizeof zc.jail_fail_step, "%s", fail_step);
        util_log(LOG_WARN, "test hook: every worker fails the jail step '%s'", zc.jail_fail_step);
    }
    struct zyg *z = NULL;
    struct pe_err err = {0};
    int rc = zyg_start(&zc, &z, &err);
    if (rc != PE_OK) {
        util_log(LOG_ERROR, "cannot start the worker zygote: %s (%s)", err.msg, pe_status_str(rc));
        return 3;
    }

    char serr[512];
    struct store *st = store_open(c.db, serr, sizeof serr);
    if (!st) {
        util_log(LOG_ERROR, "store: %s", serr);
        zyg_free(z);
        return 3;
    }

    size_t openapi_len = 0;
    char *openapi = load_openapi(c.openapi, openapi_default, &openapi_len);
    if (!openapi)
        util_log(LOG_WARN, "no OpenAPI document at %s; /openapi.json will answer 404", c.openapi);

    struct api_cfg ac = {
        .store = st,
        .max_events = (size_t)c.max_events,
        .max_policy = (size_t)c.max_policy,
        .enable_eval = c.enable_eval,
        .require_token = c.require_token,
        .insecure = insecure,
        .jail_summary = jr.summary,
        .jail_full = full,
        .openapi = openapi,
        .openapi_len = openapi_len,
    };
    api_init(&ac);
    if (c.enable_eval)
        util_log(LOG_WARN, "POST /v1/sessions/{sid}/eval is enabled (--enable-eval)");

    struct sess_cfg sc = {
        .ttl_default = (long)c.ttl,
        .ttl_max = (long)(c.ttl_max ? c.ttl_max : c.ttl),
        .idle_evict_s = (int)c.idle_evict,
        .max_sessions = (int)c.max_sessions,
        .call_timeout_ms = (int)c.deadline_ms + 2000,
        .pool_size = (int)c.pool_size,
        .max_concurrent = (int)c.max_concurrent,
        .max_queue = (int)c.max_queue,
    };
    if (sess_init(&sc, z, st) != PE_OK) {
        util_log(LOG_ERROR, "cannot start the session table");
        store_close(st);
        zyg_free(z);
        return 3;
    }

    size_t nroutes;
    const struct http_route *routes = api_routes(&nroutes);
    http_set_routes(routes, nroutes);
    struct http_cfg hc = {.addr = addr,
                          .addr_len = alen,
                          .max_body = (size_t)c.max_body,
                          .rate = (double)c.rate,
                          .conn_limit = (unsigned)c.max_connections};
    char bound[96];
    if (http_start(&hc, bound, sizeof bound)) {
        sess_shutdown();
        store_close(st);
        zyg_free(z);
        return 3;
    }
    printf("listening on %s\n", bound);
    fflush(stdout);
    util_log(LOG_INFO, "vigild listening on %s (db %s)", bound, c.db);

    int sig = 0;
    sigwait(&sigs, &sig);
    util_log(LOG_INFO, "received %s: shutting down gracefully",
             sig == SIGTERM ? "SIGTERM" : "SIGINT");
    http_quiesce();
    for (int i = 0; i < 300 && http_inflight() > 0; i++)
        usleep(100 * 1000);
    http_stop();
    sess_shutdown();
    store_close(st);
    zyg_free(z);
    free(openapi);
    util_log(LOG_INFO, "vigild stopped");
    return 0;
}

/* http.c — the libmicrohttpd daemon, routing and responses (see http.h). */
#include "http.h"

#include "util.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HTTP_MAX_ROUTES 80

static const struct http_route *routes;
static size_t nroutes;
static struct MHD_Daemon *daemon_;
static size_t max_body = 16u << 20;
static double rate_limit; /* requests/s per client address and per key; 0: off */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int inflight;

/* Counters by route and status for /metrics. */
static const int status_list[] = {200, 201, 204, 400, 401, 403, 404, 405,
                                  409, 413, 422, 429, 500, 503, 504, 0};
#define NSTATUS (sizeof status_list / sizeof status_list[0])
static unsigned long counts[HTTP_MAX_ROUTES + 1][NSTATUS];
static double seconds_sum[HTTP_MAX_ROUTES + 1];

/* Per-request state, in *req_cls from the first callback to NOTIFY_COMPLETED. */
struct rstate {
    struct http_req rq;
    char *pathbuf; /* owned copy of the normalised path, split in place for params */
    char *segbuf;  /* owned copy used for parameter capture */
    size_t body_cap;
    int too_large;
    int responded;
    double t0;
};

void http_set_routes(const struct http_route *r, size_t n)
{
    routes = r;
    nroutes = n < HTTP_MAX_ROUTES ? n : HTTP_MAX_ROUTES;
}

void http_bufprintf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        size_t room = *cap - *len;
        va_start(ap, fmt);
        int n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (*buf && (size_t)n < room) {
            *len += (size_t)n;
            return;
        }
        size_t ncap = (*cap ? *cap * 2 : 4096);
        while (ncap < *len + (size_t)n + 1)
            ncap *= 2;
        char *nb = realloc(*buf, ncap);
        if (!nb)
            return;
        *buf = nb;
        *cap = ncap;
    }
}

void http_bytes(struct http_resp *rs, int status, const char *ctype, const char *b, size_t n)
{
    free(rs->body);
    rs->body = malloc(n + 1);
    rs->status = status;
    rs->ctype = ctype;
    if (!rs->body) {
        rs->len = 0;
        rs->status = 503;
        return;
    }
    memcpy(rs->body, b, n);
    rs->body[n] = '\0';
    rs->len = n;
}

void http_json(struct http_resp *rs, int status, json_t *j)
{
    free(rs->body);
    rs->body = NULL;
    rs->len = 0;
    rs->ctype = "application/json";
    if (!j) {
        rs->status = 500;
        return;
    }
    rs->body = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    rs->status = rs->body ? status : 500;
    rs->len = rs->body ? strlen(rs->body) : 0;
}

/* Replaces every byte that is not part of a well-formed UTF-8 sequence by '?', in place: a
 * message may quote a client's path or id, and JSON strings must be valid UTF-8. */
static void utf8_scrub(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        size_t n = *p < 0x80             ? 1
                   : (*p & 0xe0) == 0xc0 ? 2
                   : (*p & 0xf0) == 0xe0 ? 3
                   : (*p & 0xf8) == 0xf0 ? 4
                                         : 0;
        unsigned cp = n == 2 ? *p & 0x1fu : n == 3 ? *p & 0x0fu : *p & 0x07u;
        size_t i = 1;
        for (; n > 1 && i < n && (p[i] & 0xc0) == 0x80; i++)
            cp = (cp << 6) | (p[i] & 0x3fu);
        int ok = n == 1 ||
                 (n > 1 && i == n && !(n == 2 && cp < 0x80) && !(n == 3 && cp < 0x800) &&
                  !(n == 4 && (cp < 0x10000 || cp > 0x10ffff)) && !(cp >= 0xd800 && cp <= 0xdfff));
        if (!ok) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

void http_err(struct http_resp *rs, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    utf8_scrub(msg);
    http_json(rs, status, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* MHD's unescaping of the path and of query arguments, except that %00 stays as it is: a NUL
 * would cut the C string and make "/healthz/%00" route as "/healthz". */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;  /* unused */
    (void)conn; /* unused */
    char *w = s;
    for (const char *r = s; *r;) {
        int hi, lo;
        if (r[0] == '%' && (hi = hexval(r[1])) >= 0 && (lo = hexval(r[2])) >= 0 && (hi | lo) != 0) {
            *w++ = (char)(hi * 16 + lo);
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

json_t *http_body_object(struct http_req *rq, struct http_resp *rs)
{
    json_error_t e;
    if (rq->body_len == 0) {
        http_err(rs, 400, "bad_request", "request body is empty; a JSON object is expected");
        return NULL;
    }
    json_t *j = json_loadb(rq->body, rq->body_len, JSON_REJECT_DUPLICATES, &e);
    if (!j) {
        http_json(rs, 400,
                  json_pack("{s:{s:s,s:s,s:i,s:i}}", "error", "code", "bad_request", "message",
                            e.text, "line", e.line, "column", e.column));
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        http_err(rs, 400, "bad_request", "the request body must be a JSON object");
        return NULL;
    }
    return j;
}

const char *http_query(struct http_req *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_header(struct http_req *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

/* Matches path against pattern; fills params (pointers into buf, which is modified). */
static int match(const char *pattern, char *buf, const char **params)
{
    int np = 0;
    const char *p = pattern;
    char *s = buf;
    while (*p && *s) {
        if (*p != '/' || *s != '/')
            return 0;
        p++;
        s++;
        const char *pe = strchr(p, '/');
        size_t plen = pe ? (size_t)(pe - p) : strlen(p);
        char *se = strchr(s, '/');
        size_t slen = se ? (size_t)(se - s) : strlen(s);
        if (plen >= 2 && p[0] == '{') {
            if (slen == 0 || np >= HTTP_MAX_PARAMS)
                return 0;
            params[np++] = s;
        } else if (plen != slen || 0 != strncmp(p, s, plen)) {
            return 0;
        }
        p += plen;
        s += slen;
    }
    if (*p || *s)
        return 0;
    /* Terminate the captured segments. */
    for (int i = 0; i < np; i++) {
        char *e = strchr(params[i], '/');
        if (e)
            *e = '\0';
    }
    return 1;
}

static int status_slot(int status)
{
    for (size_t i = 0; i + 1 < NSTATUS; i++)
        if (status_list[i] == status)
            return (int)i;
    return (int)NSTATUS - 1;
}

static enum MHD_Result send_resp(struct MHD_Connection *conn, struct rstate *st,
                                 struct http_resp *rs)
{
    if (rs->status == 0)
        rs->status = 500;
    if (!rs->body && rs->status >= 400) {
        /* A handler that forgot its body still answers with JSON. */
        http_err(rs, rs->status, rs->status == 500 ? "internal" : "error", "request failed");
    }
    static char empty[1];
    struct MHD_Response *r =
        MHD_create_response_from_buffer(rs->len, rs->body ? rs->body : empty,
                                        rs->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(rs->body);
        return MHD_NO;
    }
    rs->body = NULL;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            rs->ctype ? rs->ctype : "application/json");
    if (rs->retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", rs->retry_after);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)rs->status, r);
    MHD_destroy_response(r);
    st->responded = 1;
    double ms = util_mono_ms() - st->t0;
    int ri = st->rq.route >= 0 ? st->rq.route : HTTP_MAX_ROUTES;
    pthread_mutex_lock(&mu);
    counts[ri][status_slot(rs->status)]++;
    seconds_sum[ri] += ms / 1000.0;
    pthread_mutex_unlock(&mu);
    util_log(LOG_INFO, "%s %s %d %.3fms", st->rq.method, st->pathbuf ? st->pathbuf : "?",
             rs->status, ms);
    return ret;
}

static void dispatch(struct rstate *st, struct http_resp *rs)
{
    struct http_req *rq = &st->rq;
    int path_matched = 0;
    char allow[128] = "";
    for (size_t i = 0; i < nroutes; i++) {
        const char *params[HTTP_MAX_PARAMS] = {0};
        strcpy(st->segbuf, st->pathbuf);
        if (!match(routes[i].pattern, st->segbuf, params))
            continue;
        path_matched = 1;
        if (0 != strcmp(routes[i].method, rq->method)) {
            if (strlen(allow) + strlen(routes[i].method) + 3 < sizeof allow) {
                if (allow[0])
                    strcat(allow, ", ");
                strcat(allow, routes[i].method);
            }
            continue;
        }
        rq->route = (int)i;
        memcpy(rq->param, params, sizeof params);
        routes[i].fn(rq, rs);
        return;
    }
    if (path_matched)
        http_err(rs, 405, "method_not_allowed", "%s is not allowed on %s (allowed: %s)", rq->method,
                 rq->path, allow);
    else
        http_err(rs, 404, "not_found", "no route for %s %s", rq->method, rq->path);
}

/* ---- rate limits: token buckets per client address and per bearer key ----
 * A fixed table indexed by a hash of the identity; two identities that collide share a bucket
 * (approximate, bounded memory). Burst = max(1, rate). */
#define RL_SLOTS 4096
struct bucket {
    uint64_t id;
    double tokens;
    double t;
};
static struct bucket buckets_rl[RL_SLOTS];
static pthread_mutex_t rl_mu = PTHREAD_MUTEX_INITIALIZER;

/* 0 when allowed, else the seconds to wait. */
static int rl_take(uint64_t id)
{
    double now = util_mono_ms() / 1000.0, burst = rate_limit < 1 ? 1 : rate_limit;
    pthread_mutex_lock(&rl_mu);
    struct bucket *b = &buckets_rl[id % RL_SLOTS];
    if (b->id != id) {
        b->id = id;
        b->tokens = burst;
        b->t = now;
    }
    b->tokens += (now - b->t) * rate_limit;
    if (b->tokens > burst)
        b->tokens = burst;
    b->t = now;
    int wait = 0;
    if (b->tokens >= 1)
        b->tokens -= 1;
    else
        wait = (int)((1 - b->tokens) / rate_limit) + 1;
    pthread_mutex_unlock(&rl_mu);
    return wait;
}

static int rate_limited(struct MHD_Connection *conn, const char *path)
{
    if (rate_limit <= 0 || 0 == strcmp(path, "/healthz") || 0 == strcmp(path, "/readyz") ||
        0 == strcmp(path, "/metrics"))
        return 0;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    int wait = 0;
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        uint64_t h = util_fnv1a(UTIL_FNV_INIT, "addr", 4);
        if (sa->sa_family == AF_INET6)
            h = util_fnv1a(h, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        else
            h = util_fnv1a(h, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        wait = rl_take(h);
    }
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!wait && auth) {
        uint64_t h = util_fnv1a(UTIL_FNV_INIT, "key", 3);
        wait = rl_take(util_fnv1a(h, auth, strlen(auth)));
    }
    return wait;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    (void)cls;     /* unused */
    (void)version; /* unused */
    struct rstate *st = *req_cls;
    if (NULL == st) {
        st = calloc(1, sizeof *st);
        if (!st)
            return MHD_NO;
        *req_cls = st;
        pthread_mutex_lock(&mu);
        inflight++;
        pthread_mutex_unlock(&mu);
        st->t0 = util_mono_ms();
        size_t ul = strlen(url);
        st->pathbuf = malloc(ul + 2);
        st->segbuf = malloc(ul + 2);
        if (!st->pathbuf || !st->segbuf)
            return MHD_NO;
        memcpy(st->pathbuf, url, ul + 1);
        while (ul > 1 && st->pathbuf[ul - 1] == '/')
            st->pathbuf[--ul] = '\0';
        if (ul == 0)
            strcpy(st->pathbuf, "/");
        st->rq.method = method;
        st->rq.path = st->pathbuf;
        st->rq.conn = conn;
        st->rq.route = -1;
        int wait = rate_limited(conn, st->pathbuf);
        if (wait) {
            struct http_resp rs = {0};
            http_err(&rs, 429, "rate_limited", "too many requests from this client; retry in %d s",
                     wait);
            rs.retry_after = wait;
            return send_resp(conn, st, &rs);
        }
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            unsigned long long n = strtoull(cl, NULL, 10);
            if (n > max_body) {
                struct http_resp rs = {0};
                http_err(&rs, 413, "too_large",
                         "request body of %llu bytes exceeds the limit of %zu bytes", n, max_body);
                return send_resp(conn, st, &rs);
            }
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (st->responded || st->too_large)
            return MHD_YES;
        if (st->rq.body_len + n > max_body) {
            st->too_large = 1;
            free(st->rq.body);
            st->rq.body = NULL;
            st->rq.body_len = 0;
            return MHD_YES;
        }
        if (st->rq.body_len + n + 1 > st->body_cap) {
            size_t nc = st->body_cap ? st->body_cap : 4096;
            while (nc < st->rq.body_len + n + 1)
                nc *= 2;
            char *nb = realloc(st->rq.body, nc);
            if (!nb)
                return MHD_NO;
            st->rq.body = nb;
            st->body_cap = nc;
        }
        memcpy(st->rq.body + st->rq.body_len, upload_data, n);
        st->rq.body_len += n;
        st->rq.body[st->rq.body_len] = '\0';
        return MHD_YES;
    }
    if (st->responded)
        return MHD_YES;
    struct http_resp rs = {0};
    if (st->too_large)
        http_err(&rs, 413, "too_large", "request body exceeds the limit of %zu bytes", max_body);
    else
        dispatch(st, &rs);
    return send_resp(conn, st, &rs);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;  /* unused */
    (void)conn; /* unused */
    (void)toe;  /* unused */
    struct rstate *st = *req_cls;
    if (NULL == st)
        return;
    free(st->rq.body);
    free(st->pathbuf);
    free(st->segbuf);
    free(st);
    *req_cls = NULL;
    pthread_mutex_lock(&mu);
    inflight--;
    pthread_mutex_unlock(&mu);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls; /* unused */
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    util_log(LOG_WARN, "http: %s", msg);
}

int http_start(const struct http_cfg *cfg, char *bound, size_t bound_size)
{
    max_body = cfg->max_body;
    rate_limit = cfg->rate;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    if (cfg->addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* One client address may hold all connections but an eighth (at least one): a slowloris
     * from one address then finds its extra connections closed at once, and other clients
     * keep the rest. (Behind one proxy address, raise --max-connections.) */
    unsigned per_ip =
        cfg->conn_limit > 1 ? cfg->conn_limit - (cfg->conn_limit / 8 ? cfg->conn_limit / 8 : 1) : 1;
    daemon_ = MHD_start_daemon(
        flags, 0, NULL, NULL, &on_request, NULL, MHD_OPTION_EXTERNAL_LOGGER, &mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&cfg->addr, MHD_OPTION_NOTIFY_COMPLETED,
        &on_completed, NULL, MHD_OPTION_CONNECTION_LIMIT, cfg->conn_limit,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip, MHD_OPTION_UNESCAPE_CALLBACK, &unescape, NULL,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)(128 * 1024), MHD_OPTION_END);
    if (!daemon_) {
        util_log(LOG_ERROR, "cannot start the HTTP daemon (address in use or not permitted?)");
        return -1;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
    unsigned port = di ? di->port : 0;
    char host[INET6_ADDRSTRLEN] = "?";
    if (cfg->addr.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&cfg->addr)->sin6_addr, host,
                  sizeof host);
        snprintf(bound, bound_size, "[%s]:%u", host, port);
    } else {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)&cfg->addr)->sin_addr, host, sizeof host);
        snprintf(bound, bound_size, "%s:%u", host, port);
    }
    return 0;
}

void http_quiesce(void)
{
    if (daemon_) {
        MHD_socket s = MHD_quiesce_daemon(daemon_);
        if (s != MHD_INVALID_SOCKET)
            close(s);
    }
}

int http_inflight(void)
{
    pthread_mutex_lock(&mu);
    int n = inflight;
    pthread_mutex_unlock(&mu);
    return n;
}

void http_stop(void)
{
    if (daemon_)
        MHD_stop_daemon(daemon_);
    daemon_ = NULL;
}

void http_metrics(char **buf, size_t *len, size_t *cap)
{
    http_bufprintf(buf, len, cap,
                   "# HELP vigil_http_requests_total HTTP requests by route and status.\n"
                   "# TYPE vigil_http_requests_total counter\n");
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i <= HTTP_MAX_ROUTES; i++) {
        if (i < HTTP_MAX_ROUTES && i >= nroutes)
            continue;
        for (size_t k = 0; k < NSTATUS; k++) {
            if (!counts[i][k])
                continue;
            if (i == HTTP_MAX_ROUTES)
                http_bufprintf(buf, len, cap,
                               "vigil_http_requests_total{method=\"\",route=\"unmatched\",status="
                               "\"%d\"} %lu\n",
                               status_list[k], counts[i][k]);
            else
                http_bufprintf(
                    buf, len, cap,
                    "vigil_http_requests_total{method=\"%s\",route=\"%s\",status=\"%d\"} %lu\n",
                    routes[i].method, routes[i].pattern, status_list[k], counts[i][k]);
        }
    }
    http_bufprintf(buf, len, cap,
                   "# HELP vigil_http_request_seconds_sum Time spent handling requests, by route.\n"
                   "# TYPE vigil_http_request_seconds_sum counter\n");
    for (size_t i = 0; i < nroutes; i++)
        if (seconds_sum[i] > 0)
            http_bufprintf(buf, len, cap,
                           "vigil_http_request_seconds_sum{method=\"%s\",route=\"%s\"} %.6f\n",
                           routes[i].method, routes[i].pattern, seconds_sum[i]);
    pthread_mutex_unlock(&mu);
    http_bufprintf(buf, len, cap,
                   "# HELP vigil_http_inflight Requests being handled.\n"
                   "# TYPE vigil_http_inflight gauge\nvigil_http_inflight %d\n",
                   http_inflight());
}

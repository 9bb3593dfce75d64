/* api.c — native /v1 routes, health, metrics, docs, and the helpers shared with compat.c. */
#include "api.h"

#include "jscan.h"
#include "session.h"
#include "store.h"
#include "svc.h"
#include "util.h"
#include "worker.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct api_cfg api_cfg;

void api_init(const struct api_cfg *cfg)
{
    api_cfg = *cfg;
}

/* ---- shared helpers ---- */

int api_werr_status(const char *code)
{
    static const struct {
        const char *code;
        int status;
    } map[] = {{"bad_request", 400},       {"trace_invalid", 400},    {"policy_invalid", 422},
               {"evaluation_error", 422},  {"not_found", 404},        {"memory_limit", 503},
               {"deadline_exceeded", 504}, {"result_too_large", 422}, {"internal", 500}};
    for (size_t i = 0; code && i < sizeof map / sizeof map[0]; i++)
        if (0 == strcmp(map[i].code, code))
            return map[i].status;
    return 500;
}

static int call_text(struct sess *s, const char *req, size_t len, char **resp, size_t *rl,
                     struct wfail *f)
{
    struct pe_err err = {0};
    *resp = NULL;
    *rl = 0;
    int rc = s ? sess_call(s, req, len, resp, rl, &err) : sess_pool_call(req, len, resp, rl, &err);
    memset(f, 0, sizeof *f);
    if (rc == PE_OK)
        return 0;
    free(*resp);
    *resp = NULL;
    if (rc == SESS_EBUSY) {
        f->status = 429;
        f->code = "busy";
        f->retry_after = 1;
        snprintf(f->msg, sizeof f->msg, "too many evaluations in flight; retry later");
    } else if (rc == PE_ETIMEDOUT) {
        f->status = 504;
        f->code = "deadline_exceeded";
        snprintf(f->msg, sizeof f->msg,
                 "the evaluation exceeded its deadline; the worker was killed and will be rebuilt");
    } else {
        f->status = 503;
        f->code = "worker_unavailable";
        f->retry_after = 1;
        snprintf(f->msg, sizeof f->msg, "worker unavailable: %s", err.msg);
    }
    return -1;
}

static json_t *parse_answer(const char *resp, size_t rl, struct wfail *f)
{
    json_error_t je;
    json_t *r = json_loadb(resp, rl, 0, &je);
    if (r && json_is_object(r))
        return r;
    json_decref(r);
    util_log(LOG_ERROR, "worker answered with malformed JSON: %s", je.text);
    memset(f, 0, sizeof *f);
    f->status = 500;
    f->code = "internal";
    snprintf(f->msg, sizeof f->msg, "the worker answered with malformed JSON");
    return NULL;
}

json_t *api_call(struct sess *s, const char *req, size_t len, struct wfail *f)
{
    char *resp;
    size_t rl;
    if (call_text(s, req, len, &resp, &rl, f))
        return NULL;
    json_t *r = parse_answer(resp, rl, f);
    free(resp);
    return r;
}

/* The raw text of result.<field> in an ok answer; 0, or -1 when the answer is not ok (or not
 * of that shape). A missing field reads as "[]". */
static int result_field(const char *resp, size_t rl, const char *field, const char **v, size_t *vl)
{
    struct jscan top, res;
    if (jscan_object(resp, rl, &top))
        return -1;
    const struct jfield *okf = jscan_get(&top, "ok"), *r = jscan_get(&top, "result");
    if (!okf || okf->type != JT_BOOL || okf->val[0] != 't' || !r || r->type != JT_OBJECT)
        return -1;
    if (jscan_object(r->val, r->vlen, &res))
        return -1;
    const struct jfield *f = jscan_get(&res, field);
    if (!f) {
        *v = "[]";
        *vl = 2;
        return 0;
    }
    *v = f->val;
    *vl = f->vlen;
    return 0;
}

int api_call_wrap(struct sess *s, char *req, size_t len, const char *field, const char *prefix,
                  const char *suffix, struct http_resp *rs, json_t **werr, struct wfail *f)
{
    *werr = NULL;
    char *resp;
    size_t rl;
    int rc = call_text(s, req, len, &resp, &rl, f);
    free(req);
    if (rc)
        return -1;
    const char *v;
    size_t vl;
    if (result_field(resp, rl, field, &v, &vl) == 0) {
        /* The answer passes through without a tree: prefix + result.<field> + suffix. */
        size_t pl = strlen(prefix), sl = strlen(suffix);
        char *out = malloc(pl + vl + sl + 1);
        if (!out) {
            free(resp);
            memset(f, 0, sizeof *f);
            f->status = 503;
            f->code = "out_of_memory";
            snprintf(f->msg, sizeof f->msg, "out of memory");
            return -1;
        }
        memcpy(out, prefix, pl);
        memcpy(out + pl, v, vl);
        memcpy(out + pl + vl, suffix, sl);
        out[pl + vl + sl] = '\0';
        free(resp);
        free(rs->body);
        rs->body = out;
        rs->len = pl + vl + sl;
        rs->status = 200;
        rs->ctype = "application/json";
        return 1;
    }
    json_t *r = parse_answer(resp, rl, f);
    free(resp);
    if (!r)
        return -1;
    json_t *e = json_object_get(r, "error");
    *werr = e ? json_incref(e)
              : json_pack("{s:s,s:s}", "code", "internal", "message", "malformed worker answer");
    json_decref(r);
    return 0;
}

json_t *api_call_j(struct sess *s, json_t *req, struct wfail *f)
{
    char *txt = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!txt) {
        memset(f, 0, sizeof *f);
        f->status = 503;
        f->code = "out_of_memory";
        snprintf(f->msg, sizeof f->msg, "out of memory");
        return NULL;
    }
    json_t *r = api_call(s, txt, strlen(txt), f);
    free(txt);
    return r;
}

uint64_t api_hash_events(uint64_t h, json_t *events, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        char *c =
            json_dumps(json_array_get(events, i), JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        if (c) {
            h = util_fnv1a(h, c, strlen(c));
            free(c);
        }
        h = util_fnv1a(h, "\n", 1);
    }
    return h;
}

uint64_t api_hash_parse(const char *hex)
{
    return hex ? (uint64_t)strtoull(hex, NULL, 16) : 0;
}

void api_fail(struct http_resp *rs, const struct wfail *f)
{
    http_err(rs, f->status, f->code, "%s", f->msg);
    rs->retry_after = f->retry_after;
}

void api_werr(struct http_resp *rs, json_t *err)
{
    const char *code = json_string_value(json_object_get(err, "code"));
    int status = api_werr_status(code);
    if (status == 500)
        util_log(LOG_ERROR, "worker internal error: %s",
                 json_string_value(json_object_get(err, "message")));
    http_json(rs, status, json_pack("{s:O}", "error", err));
}

int api_monitor_chunk(struct sess *s, const char *mid, json_t *events, const char *format,
                      long long seq, json_t **answer, json_t **werr, struct wfail *f)
{
    *answer = NULL;
    *werr = NULL;
    json_t *mon = store_mon_get(api_cfg.store, sess_id(s), mid);
    uint64_t h = api_hash_parse(mon ? json_string_value(json_object_get(mon, "hash")) : NULL);
    json_decref(mon);
    char *ev = json_dumps(events, JSON_COMPACT);
    json_t *mid_j = json_string(mid);
    char *mid_s = json_dumps(mid_j, JSON_ENCODE_ANY);
    json_decref(mid_j);
    size_t el = ev ? strlen(ev) : 0;
    size_t cap = el + (mid_s ? strlen(mid_s) : 0) + strlen(format) + 96;
    char *req = (ev && mid_s) ? malloc(cap) : NULL;
    if (!req) {
        free(ev);
        free(mid_s);
        memset(f, 0, sizeof *f);
        f->status = 503;
        f->code = "out_of_memory";
        snprintf(f->msg, sizeof f->msg, "out of memory");
        return -1;
    }
    int n =
        snprintf(req, cap, "{\"op\":\"monitor_events\",\"mid\":%s,\"format\":\"%s\",\"events\":%s}",
                 mid_s, format, ev);
    free(mid_s);
    json_t *r = api_call(s, req, (size_t)n, f);
    free(req);
    if (!r) {
        free(ev);
        return -1;
    }
    if (!json_is_true(json_object_get(r, "ok"))) {
        *werr = json_incref(json_object_get(r, "error"));
        /* Unless the chunk was refused before evaluation (input errors), the worker may have
         * absorbed part of it: rebuild it from the store. */
        const char *code = json_string_value(json_object_get(*werr, "code"));
        if (!code || (0 != strcmp(code, "bad_request") && 0 != strcmp(code, "trace_invalid")))
            sess_drop_worker(s);
        if (!*werr)
            *werr = json_pack("{s:s,s:s}", "code", "internal", "message", "malformed worker error");
        json_decref(r);
        free(ev);
        return 1;
    }
    json_t *res = json_object_get(r, "result");
    json_t *viol = json_object_get(res, "violations");
    json_t *seen = json_object_get(res, "events_seen");
    if (!json_is_array(viol))
        viol = NULL;
    json_t *out = json_pack("{s:o,s:o}", "violations", viol ? json_incref(viol) : json_array(),
                            "events_seen", seen ? json_incref(seen) : json_integer(0));
    json_decref(r);
    h = api_hash_events(h, events, 0, json_array_size(events));
    char *resp_txt = json_dumps(out, JSON_COMPACT);
    int rc =
        store_chunk_commit(api_cfg.store, sess_id(s), mid, seq, ev, (long)json_array_size(events),
                           (long)json_integer_value(json_object_get(out, "events_seen")), h,
                           json_object_get(out, "violations"), resp_txt);
    free(resp_txt);
    free(ev);
    if (rc != STORE_OK) {
        /* The worker moved on but the store did not: rebuild the worker from the store. */
        sess_drop_worker(s);
        json_decref(out);
        memset(f, 0, sizeof *f);
        f->status = 503;
        f->code = "store_unavailable";
        f->retry_after = 1;
        snprintf(f->msg, sizeof f->msg, "the chunk could not be committed; retry");
        return -1;
    }
    *answer = out;
    return 0;
}

/* ---- request builder ---- */

static void wb_put(struct wbuf *w, const char *s, size_t n)
{
    if (w->oom)
        return;
    if (w->len + n + 2 > w->cap) {
        size_t nc = w->cap ? w->cap : 256;
        while (nc < w->len + n + 2)
            nc *= 2;
        char *nb = realloc(w->b, nc);
        if (!nb) {
            w->oom = 1;
            return;
        }
        w->b = nb;
        w->cap = nc;
    }
    memcpy(w->b + w->len, s, n);
    w->len += n;
    w->b[w->len] = '\0';
}

void wb_init(struct wbuf *w)
{
    memset(w, 0, sizeof *w);
    wb_put(w, "{", 1);
}

static void wb_key(struct wbuf *w, const char *key)
{
    if (w->fields++)
        wb_put(w, ",", 1);
    wb_put(w, "\"", 1);
    wb_put(w, key, strlen(key)); /* our own keys: plain ASCII */
    wb_put(w, "\":", 2);
}

void wb_raw(struct wbuf *w, const char *key, const char *val, size_t n)
{
    wb_key(w, key);
    wb_put(w, val, n);
}

void wb_str(struct wbuf *w, const char *key, const char *val)
{
    json_t *j = json_string(val);
    char *t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    if (!t) {
        w->oom = 1;
        return;
    }
    wb_raw(w, key, t, strlen(t));
    free(t);
}

void wb_int(struct wbuf *w, const char *key, long long v)
{
    char num[32];
    int n = snprintf(num, sizeof num, "%lld", v);
    wb_raw(w, key, num, (size_t)n);
}

char *wb_finish(struct wbuf *w, size_t *len)
{
    wb_put(w, "}", 1);
    if (w->oom) {
        free(w->b);
        w->b = NULL;
        return NULL;
    }
    *len = w->len;
    return w->b;
}

/* ---- bodies scanned without a tree (large traces) ---- */

/* Scans the body; on failure sets a 400 and returns -1. */
static int scan_body(struct http_req *rq, struct http_resp *rs, struct jscan *sc)
{
    if (jscan_object(rq->body ? rq->body : "", rq->body_len, sc) == 0)
        return 0;
    http_json(rs, 400,
              json_pack("{s:{s:s,s:s,s:I,s:I}}", "error", "code", "bad_request", "message", sc->err,
                        "line", (json_int_t)sc->err_line, "column", (json_int_t)sc->err_col));
    return -1;
}

static int is_absent(const struct jfield *f)
{
    return !f || f->type == JT_NULL;
}

/* policy (a string, size-capped) and language; *lang is a static string. */
static int scan_policy(const struct jscan *sc, const struct jfield **pol, const char **lang,
                       struct http_resp *rs)
{
    *pol = jscan_get(sc, "policy");
    if (!*pol || (*pol)->type != JT_STRING) {
        http_err(rs, 400, "bad_request", "field 'policy' (a string) is required");
        return -1;
    }
    if ((*pol)->vlen - 2 > api_cfg.max_policy) {
        http_err(rs, 413, "too_large", "policy of %zu bytes exceeds the limit of %zu bytes",
                 (*pol)->vlen - 2, api_cfg.max_policy);
        return -1;
    }
    const struct jfield *l = jscan_get(sc, "language");
    *lang = "invariant";
    if (is_absent(l))
        return 0;
    if (l->type == JT_STRING && l->vlen == strlen("\"lua\"") && 0 == memcmp(l->val, "\"lua\"", 5)) {
        *lang = "lua";
        return 0;
    }
    if (l->type == JT_STRING && l->vlen == strlen("\"invariant\"") &&
        0 == memcmp(l->val, "\"invariant\"", 11))
        return 0;
    http_err(rs, 400, "bad_request", "field 'language' must be \"invariant\" or \"lua\"");
    return -1;
}

static int scan_trace(const struct jscan *sc, const char *key, const struct jfield **tr,
                      struct http_resp *rs)
{
    *tr = jscan_get(sc, key);
    if (!*tr || (*tr)->type != JT_ARRAY) {
        http_err(rs, 400, "bad_request", "field '%s' (an array) is required", key);
        return -1;
    }
    if ((*tr)->count > api_cfg.max_events) {
        http_err(rs, 413, "too_large", "'%s' has %zu events; the limit is %zu", key, (*tr)->count,
                 api_cfg.max_events);
        return -1;
    }
    return 0;
}

static int scan_params(const struct jscan *sc, const struct jfield **par, struct http_resp *rs)
{
    *par = jscan_get(sc, "parameters");
    if (is_absent(*par)) {
        *par = NULL;
        return 0;
    }
    if ((*par)->type != JT_OBJECT) {
        http_err(rs, 400, "bad_request", "field 'parameters' must be an object");
        return -1;
    }
    return 0;
}

/* ---- validation helpers ---- */

/* Fetches an optional string field; 0 ok, -1 after setting a 400. */
static int opt_str(json_t *b, const char *k, const char **out, struct http_resp *rs)
{
    json_t *v = json_object_get(b, k);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        http_err(rs, 400, "bad_request", "field '%s' must be a string", k);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

static int req_str(json_t *b, const char *k, const char **out, struct http_resp *rs)
{
    if (opt_str(b, k, out, rs))
        return -1;
    if (!*out) {
        http_err(rs, 400, "bad_request", "field '%s' (a string) is required", k);
        return -1;
    }
    return 0;
}

/* policy + language; checks the size limit. */
static int get_policy(json_t *b, const char **src, const char **lang, struct http_resp *rs)
{
    if (req_str(b, "policy", src, rs) || opt_str(b, "language", lang, rs))
        return -1;
    if (!*lang)
        *lang = "invariant";
    if (0 != strcmp(*lang, "invariant") && 0 != strcmp(*lang, "lua")) {
        http_err(rs, 400, "bad_request", "field 'language' must be \"invariant\" or \"lua\"");
        return -1;
    }
    size_t n = strlen(*src);
    if (n > api_cfg.max_policy) {
        http_err(rs, 413, "too_large", "policy of %zu bytes exceeds the limit of %zu bytes", n,
                 api_cfg.max_policy);
        return -1;
    }
    return 0;
}

static int get_array(json_t *b, const char *k, int required, json_t **out, struct http_resp *rs)
{
    json_t *v = json_object_get(b, k);
    *out = NULL;
    if (!v || (json_is_null(v) && !required)) {
        if (required) {
            http_err(rs, 400, "bad_request", "field '%s' (an array) is required", k);
            return -1;
        }
        return 0;
    }
    if (!json_is_array(v)) {
        http_err(rs, 400, "bad_request", "field '%s' must be an array", k);
        return -1;
    }
    if (json_array_size(v) > api_cfg.max_events) {
        http_err(rs, 413, "too_large", "'%s' has %zu events; the limit is %zu", k,
                 json_array_size(v), api_cfg.max_events);
        return -1;
    }
    *out = v;
    return 0;
}

static int opt_object(json_t *b, const char *k, json_t **out, struct http_resp *rs)
{
    json_t *v = json_object_get(b, k);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v)) {
        http_err(rs, 400, "bad_request", "field '%s' must be an object", k);
        return -1;
    }
    *out = v;
    return 0;
}

/* An optional client-chosen id. */
static int opt_id(json_t *b, const char **out, struct http_resp *rs)
{
    if (opt_str(b, "id", out, rs))
        return -1;
    if (*out && !util_id_ok(*out)) {
        http_err(rs, 400, "bad_request",
                 "field 'id' must be 1-64 characters of letters, digits, '.', '_' or '-'");
        return -1;
    }
    return 0;
}

int api_sess_auth(struct http_req *rq, const struct sess *s)
{
    if (!api_cfg.require_token)
        return 0;
    const char *tok = http_header(rq, "X-Vigil-Token");
    const char *auth = http_header(rq, "Authorization");
    if (!tok && auth && 0 == strncasecmp(auth, "Bearer ", 7))
        tok = auth + 7;
    if (!tok)
        return 401;
    return sess_token_ok(s, tok) ? 0 : 403;
}

/* The session named by the first path parameter, its token checked under --require-token and
 * locked when lock; NULL after a 404/401/403. */
static struct sess *sess_of(struct http_req *rq, struct http_resp *rs, int lock)
{
    struct sess *s;
    int st = svc_sess_open(rq, rq->param[0], lock, &s);
    if (st == 404)
        http_err(rs, 404, "not_found", "no session '%s'", rq->param[0]);
    else if (st == 401)
        http_err(rs, 401, "unauthorized",
                 "this session needs its token (Authorization: Bearer <token>)");
    else if (st)
        http_err(rs, 403, "forbidden", "wrong token for session '%s'", rq->param[0]);
    return s;
}

static struct sess *find_sess(struct http_req *rq, struct http_resp *rs)
{
    return sess_of(rq, rs, 0);
}

static struct sess *open_sess(struct http_req *rq, struct http_resp *rs)
{
    return sess_of(rq, rs, 1);
}

/* Renders a failed session service (svc.h) in the native shape and releases e; what names the
 * object ("policy" or "monitor"), sid the session. */
static void svc_fail(struct http_resp *rs, int rc, struct svc_err *e, const char *what,
                     const char *sid)
{
    if (rc == SVC_EFAIL)
        api_fail(rs, &e->f);
    else if (rc == SVC_EWORKER && e->werr)
        api_werr(rs, e->werr);
    else if (rc == SVC_EWORKER)
        http_err(rs, 500, "internal", "malformed worker answer");
    else if (rc == SVC_ESTORE && e->store_rc == STORE_DUP)
        http_err(rs, 409, "conflict", "the %s could not be stored", what);
    else if (rc == SVC_ESTORE)
        http_err(rs, 503, "store_unavailable", "the %s could not be stored", what);
    else if (rc == SVC_ENOID)
        http_err(rs, 503, "store_unavailable", "cannot allocate a %s id", what);
    else if (rc == SVC_ENOPOL || rc == SVC_ENOMON)
        http_err(rs, 404, "not_found", "no %s '%s' in session '%s'",
                 rc == SVC_ENOPOL ? "policy" : "monitor", e->id, sid);
    else if (rc == SVC_EEXISTS)
        http_err(rs, 409, "conflict", "%s '%s' already exists", what, e->id);
    svc_err_fini(e);
}

/* Sends a worker request (stolen); on an ok answer returns the root (owned) and *result
 * (borrowed); otherwise sets the error response and returns NULL. */
static json_t *call_ok_j(struct sess *s, json_t *req, json_t **result, struct http_resp *rs)
{
    json_t *root;
    struct svc_err e;
    int rc = svc_call(s, req, &root, &e);
    if (rc) {
        svc_fail(rs, rc, &e, "", "");
        return NULL;
    }
    *result = svc_result(root);
    return root;
}

/* ---- health, metrics, docs ---- */

static void h_healthz(struct http_req *rq, struct http_resp *rs)
{
    (void)rq; /* unused */
    http_json(rs, 200, json_pack("{s:s}", "status", "ok"));
}

static void h_readyz(struct http_req *rq, struct http_resp *rs)
{
    (void)rq; /* unused */
    int writable = store_writable(api_cfg.store);
    int spawn = sess_probe_spawn();
    int ready = writable && spawn;
    json_t *o =
        json_pack("{s:b,s:b,s:b,s:{s:b,s:b,s:s}}", "ready", ready, "store_writable", writable,
                  "worker_spawn", spawn, "jail", "full", api_cfg.jail_full, "insecure_no_jail",
                  api_cfg.insecure, "summary", api_cfg.jail_summary ? api_cfg.jail_summary : "");
    if (api_cfg.insecure)
        json_object_set_new(o, "warning",
                            json_string("INSECURE: started with --insecure-no-jail; workers run "
                                        "without the full jail"));
    http_json(rs, ready ? 200 : 503, o);
}

static void h_metrics(struct http_req *rq, struct http_resp *rs)
{
    (void)rq; /* unused */
    char *buf = NULL;
    size_t len = 0, cap = 0;
    http_metrics(&buf, &len, &cap);
    sess_metrics(&buf, &len, &cap);
    http_bufprintf(&buf, &len, &cap,
                   "# TYPE vigil_insecure_no_jail gauge\nvigil_insecure_no_jail %d\n",
                   api_cfg.insecure);
    free(rs->body);
    rs->body = buf;
    rs->len = len;
    rs->status = 200;
    rs->ctype = "text/plain; version=0.0.4; charset=utf-8";
}

static void h_openapi(struct http_req *rq, struct http_resp *rs)
{
    (void)rq; /* unused */
    if (!api_cfg.openapi) {
        http_err(rs, 404, "not_found", "no OpenAPI document was loaded (see --openapi)");
        return;
    }
    http_bytes(rs, 200, "application/json", api_cfg.openapi, api_cfg.openapi_len);
}

static const char docs_html[] =
    "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>vigil API</title>\n"
    "<style>body{font:14px/1.45 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
    "code,pre{font:13px ui-monospace,monospace}pre{background:#f6f6f6;padding:.6em;overflow:auto}"
    ".op{border:1px solid #ddd;border-radius:6px;margin:.6em 0;padding:.4em .8em}"
    ".m{display:inline-block;min-width:4.5em;font-weight:bold}.GET{color:#0a6}.POST{color:#06c}"
    ".PUT{color:#a60}.DELETE{color:#c22}summary{cursor:pointer}</style></head>\n"
    "<body><h1 id=\"t\">vigil API</h1><p id=\"d\"></p><div id=\"ops\">Loading "
    "<a href=\"/openapi.json\">/openapi.json</a>...</div>\n<script>\n"
    "function esc(s){return "
    "String(s).replace(/[&<>]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;'}[c]))}\n"
    "fetch('/openapi.json').then(r=>r.json()).then(doc=>{\n"
    " document.getElementById('t').textContent=(doc.info&&doc.info.title||'API')+' "
    "'+(doc.info&&doc.info.version||'');\n"
    " document.getElementById('d').textContent=doc.info&&doc.info.description||'';\n"
    " let h='';\n"
    " for(const [p,item] of Object.entries(doc.paths||{})){for(const [m,op] of "
    "Object.entries(item)){\n"
    "  if(!op||typeof op!=='object'||!op.responses)continue;const M=m.toUpperCase();\n"
    "  h+='<details class=\"op\"><summary><span class=\"m '+M+'\">'+M+'</span> "
    "<code>'+esc(p)+'</code> '+esc(op.summary||'')+'</summary>';\n"
    "  if(op.description)h+='<p>'+esc(op.description)+'</p>';\n"
    "  if(op.requestBody)h+='<h4>Request "
    "body</h4><pre>'+esc(JSON.stringify(op.requestBody,null,2))+'</pre>';\n"
    "  "
    "h+='<h4>Responses</h4><pre>'+esc(JSON.stringify(op.responses,null,2))+'</pre></details>';}}\n"
    " if(doc.components)h+='<h2>Schemas</h2><pre>'+esc(JSON.stringify(doc.components,null,2))+'</"
    "pre>';\n"
    " document.getElementById('ops').innerHTML=h;\n"
    "}).catch(e=>{document.getElementById('ops').textContent='cannot load /openapi.json: '+e});\n"
    "</script></body></html>\n";

static void h_docs(struct http_req *rq, struct http_resp *rs)
{
    (void)rq; /* unused */
    http_bytes(rs, 200, "text/html; charset=utf-8", docs_html, sizeof docs_html - 1);
}

/* ---- stateless ---- */

/* Sends req (freed) and answers {"violations": result.violations} or the error. */
static void violations_answer(struct sess *s, char *req, size_t len, struct http_resp *rs)
{
    json_t *werr;
    struct wfail f;
    int rc = api_call_wrap(s, req, len, "violations", "{\"violations\":", "}", rs, &werr, &f);
    if (rc < 0) {
        api_fail(rs, &f);
    } else if (rc == 0) {
        api_werr(rs, werr);
        json_decref(werr);
    }
}

static void h_check(struct http_req *rq, struct http_resp *rs)
{
    struct jscan sc;
    const struct jfield *pol, *tr, *par;
    const char *lang;
    if (scan_body(rq, rs, &sc) || scan_policy(&sc, &pol, &lang, rs) ||
        scan_trace(&sc, "trace", &tr, rs) || scan_params(&sc, &par, rs))
        return;
    size_t len = 0;
    char *req = svc_check_req("native", lang, pol, tr->val, tr->vlen, par, -1, &len);
    if (!req) {
        http_err(rs, 503, "out_of_memory", "out of memory");
        return;
    }
    violations_answer(NULL, req, len, rs);
}

static void h_compile(struct http_req *rq, struct http_resp *rs)
{
    json_t *b = http_body_object(rq, rs);
    if (!b)
        return;
    const char *src, *lang;
    json_t *emit = json_object_get(b, "emit_lua");
    if (get_policy(b, &src, &lang, rs)) {
        json_decref(b);
        return;
    }
    if (emit && !json_is_boolean(emit)) {
        json_decref(b);
        http_err(rs, 400, "bad_request", "field 'emit_lua' must be a boolean");
        return;
    }
    json_t *req = json_pack("{s:s,s:s,s:s,s:b}", "op", "compile", "policy", src, "language", lang,
                            "emit_lua", json_is_true(emit));
    json_decref(b);
    json_t *r;
    struct svc_err e;
    int rc = svc_call(NULL, req, &r, &e);
    json_t *diags = rc == SVC_EWORKER ? json_object_get(e.werr, "diagnostics") : NULL;
    if (json_is_array(diags)) {
        /* 422 {"ok": false, "diagnostics": [...], "error": {"code": "policy_invalid", ...}}: the
         * compiler's answer and the error every route gives */
        http_json(rs, api_werr_status(json_string_value(json_object_get(e.werr, "code"))),
                  json_pack("{s:b,s:O,s:O}", "ok", 0, "diagnostics", diags, "error", e.werr));
        svc_err_fini(&e);
        return;
    }
    if (rc) {
        svc_fail(rs, rc, &e, "", "");
        return;
    }
    /* 200 {"ok": true, "valid": true, "rules": [...], "diagnostics": [], "lua"?} */
    json_t *out = json_deep_copy(svc_result(r));
    json_object_set_new(out, "ok", json_true());
    json_object_set_new(out, "valid", json_true());
    if (!json_object_get(out, "diagnostics"))
        json_object_set_new(out, "diagnostics", json_array());
    http_json(rs, 200, out);
    json_decref(r);
}

/* ---- sessions ---- */

static void h_sess_create(struct http_req *rq, struct http_resp *rs)
{
    json_t *b = NULL;
    const char *id = NULL;
    long ttl = 0;
    if (rq->body_len > 0) {
        b = http_body_object(rq, rs);
        if (!b)
            return;
        if (opt_id(b, &id, rs)) {
            json_decref(b);
            return;
        }
        json_t *t = json_object_get(b, "ttl");
        if (t && !json_is_null(t)) {
            if (!json_is_integer(t) || json_integer_value(t) <= 0) {
                json_decref(b);
                http_err(rs, 400, "bad_request",
                         "field 'ttl' must be a positive integer (seconds)");
                return;
            }
            ttl = (long)json_integer_value(t);
        }
    }
    char sid[65], token[33];
    int rc = sess_create(id, ttl, sid, token);
    json_decref(b);
    if (rc == SESS_EDUP) {
        http_err(rs, 409, "conflict", "a session with this id already exists");
        return;
    }
    if (rc == SESS_EFULL) {
        http_err(rs, 429, "too_many_sessions", "the session limit is reached");
        rs->retry_after = 5;
        return;
    }
    if (rc == SESS_ENOWORKER) {
        http_err(rs, 503, "worker_unavailable", "no worker could be started for the session");
        rs->retry_after = 1;
        return;
    }
    if (rc) {
        http_err(rs, 503, "store_unavailable", "the session could not be stored");
        return;
    }
    struct sess *s = sess_get(sid);
    if (!s) {
        http_err(rs, 404, "not_found", "session vanished");
        return;
    }
    http_json(rs, 201, sess_info(s, 1));
    sess_put(s);
}

static void h_sess_get(struct http_req *rq, struct http_resp *rs)
{
    struct sess *s = find_sess(rq, rs);
    if (!s)
        return;
    json_t *o = sess_info(s, 0);
    json_t *p = store_pol_list(api_cfg.store, sess_id(s));
    json_t *m = store_mon_list(api_cfg.store, sess_id(s));
    json_object_set_new(o, "policies", json_integer((json_int_t)json_array_size(p)));
    json_object_set_new(o, "monitors", json_integer((json_int_t)json_array_size(m)));
    json_decref(p);
    json_decref(m);
    http_json(rs, 200, o);
    sess_put(s);
}

static void h_sess_delete(struct http_req *rq, struct http_resp *rs)
{
    struct sess *s = find_sess(rq, rs);
    if (!s)
        return;
    sess_put(s);
    if (sess_delete(rq->param[0])) {
        http_err(rs, 404, "not_found", "no session '%s'", rq->param[0]);
        return;
    }
    http_json(rs, 200, json_pack("{s:s,s:b}", "id", rq->param[0], "deleted", 1));
}

static void h_eval(struct http_req *rq, struct http_resp *rs)
{
    if (!api_cfg.enable_eval) {
        http_err(rs, 404, "not_found", "eval is disabled (start vigild with --enable-eval)");
        return;
    }
    json_t *b = http_body_object(rq, rs);
    if (!b)
        return;
    const char *code;
    if (req_str(b, "code", &code, rs)) {
        json_decref(b);
        return;
    }
    json_t *req = json_pack("{s:s,s:s}", "op", "eval", "code", code);
    json_decref(b);
    struct sess *s = open_sess(rq, rs);
    if (!s) {
        json_decref(req);
        return;
    }
    json_t *res;
    json_t *r = call_ok_j(s, req, &res, rs);
    svc_sess_close(s);
    if (!r)
        return;
    http_json(rs, 200, json_incref(res));
    json_decref(r);
}

/* ---- policies ---- */

static json_t *pol_view(json_t *p)
{
    /* The stored row already has the public shape. */
    return p;
}

static json_t *mon_view(json_t *m)
{
    if (!m)
        return NULL;
    json_t *n = json_object_get(m, "violations");
    json_object_set_new(m, "violations_reported", n ? json_incref(n) : json_integer(0));
    json_object_del(m, "violations");
    json_object_del(m, "hash");
    json_object_del(m, "nraw");
    json_object_del(m, "compat");
    return m;
}

/* The stored policy (monitor when monitor) rq->param[1] of the session in *row (owned), or NULL
 * after a 404. */
static json_t *get_row(struct http_req *rq, struct http_resp *rs, struct sess *s, int monitor)
{
    json_t *row;
    struct svc_err e;
    int rc = svc_get(s, monitor, rq->param[1], &row, &e);
    if (rc)
        svc_fail(rs, rc, &e, monitor ? "monitor" : "policy", rq->param[0]);
    return row;
}

/* GET of one stored policy or monitor. */
static void get_one(struct http_req *rq, struct http_resp *rs, int monitor)
{
    struct sess *s = find_sess(rq, rs);
    if (!s)
        return;
    json_t *row = get_row(rq, rs, s, monitor);
    if (row)
        http_json(rs, 200, monitor ? mon_view(row) : pol_view(row));
    sess_put(s);
}

static void h_pol_create(struct http_req *rq, struct http_resp *rs)
{
    json_t *b = http_body_object(rq, rs);
    if (!b)
        return;
    const char *src, *lang, *name, *id;
    struct sess *s = NULL;
    if (get_policy(b, &src, &lang, rs) || opt_str(b, "name", &name, rs) || opt_id(b, &id, rs) ||
        !(s = open_sess(rq, rs))) {
        json_decref(b);
        return;
    }
    json_t *row;
    struct svc_err e;
    int rc = svc_pol_create(s, id, name, lang, src, &row, &e);
    if (rc)
        svc_fail(rs, rc, &e, "policy", rq->param[0]);
    else
        http_json(rs, 201, pol_view(row));
    svc_sess_close(s);
    json_decref(b);
}

static void h_pol_list(struct http_req *rq, struct http_resp *rs)
{
    struct sess *s = find_sess(rq, rs);
    if (!s)
        return;
    http_json(rs, 200, json_pack("{s:o}", "policies", store_pol_list(api_cfg.store, sess_id(s))));
    sess_put(s);
}

static void h_pol_get(struct http_req *rq, struct http_resp *rs)
{
    get_one(rq, rs, 0);
}

static void h_pol_put(struct http_req *rq, struct http_resp *rs)
{
    json_t *b = http_body_object(rq, rs);
    if (!b)
        return;
    const char *src, *lang, *name;
    struct sess *s = NULL;
    if (get_policy(b, &src, &lang, rs) || opt_str(b, "name", &name, rs) ||
        !(s = open_sess(rq, rs))) {
        json_decref(b);
        return;
    }
    json_t *row;
    struct svc_err e;
    int rc = svc_pol_update(s, rq->param[1], name, lang, src, &row, &e);
    if (rc)
        svc_fail(rs, rc, &e, "policy", rq->param[0]);
    else
        http_json(rs, 200, pol_view(row));
    svc_sess_close(s);
    json_decref(b);
}

/* The answer to a delete (rc from svc_pol_delete or svc_mon_delete). When the worker did not
 * let go of the object it is dropped, to be rebuilt from the store on next use; the failure's
 * rendering is then replaced by the answer but leaves its log line and Retry-After, as it
 * always has. */
static void deleted(struct http_req *rq, struct http_resp *rs, struct sess *s, int rc,
                    struct svc_err *e, const char *what)
{
    if (rc == SVC_ENOPOL || rc == SVC_ENOMON) {
        svc_fail(rs, rc, e, what, rq->param[0]);
        return;
    }
    if (rc) {
        svc_fail(rs, rc, e, what, rq->param[0]);
        sess_drop_worker(s);
    }
    http_json(rs, 200, json_pack("{s:s,s:b}", "id", rq->param[1], "deleted", 1));
}

static void h_pol_delete(struct http_req *rq, struct http_resp *rs)
{
    struct sess *s = open_sess(rq, rs);
    if (!s)
        return;
    struct svc_err e;
    deleted(rq, rs, s, svc_pol_delete(s, rq->param[1], &e), &e, "policy");
    svc_sess_close(s);
}

static void h_pol_analyze(struct http_req *rq, struct http_resp *rs)
{
    struct jscan sc;
    const struct jfield *tr, *par;
    if (scan_body(rq, rs, &sc) || scan_trace(&sc, "trace", &tr, rs) || scan_params(&sc, &par, rs))
        return;
    struct sess *s = open_sess(rq, rs);
    if (!s)
        return;
    json_t *p = get_row(rq, rs, s, 0);
    if (!p) {
        svc_sess_close(s);
        return;
    }
    json_decref(p);
    size_t len = 0;
    char *req = svc_analyze_req(rq->param[1], "native", tr, par, &len);
    if (!req)
        http_err(rs, 503, "out_of_memory", "out of memory");
    else
        violations_answer(s, req, len, rs);
    svc_sess_close(s);
}

/* ---- monitors ---- */

static void h_mon_create(struct http_req *rq, struct http_resp *rs)
{
    json_t *b = http_body_object(rq, rs);
    if (!b)
        return;
    struct svc_mon m = {0};
    json_t *pidv = json_object_get(b, "policy_id");
    if (opt_str(b, "name", &m.name, rs) || opt_id(b, &m.id, rs) ||
        opt_object(b, "parameters", &m.params, rs)) {
        json_decref(b);
        return;
    }
    if (pidv && !json_is_null(pidv)) {
        if (!json_is_string(pidv)) {
            json_decref(b);
            http_err(rs, 400, "bad_request", "field 'policy_id' must be a string");
            return;
        }
        if (json_object_get(b, "policy")) {
            json_decref(b);
            http_err(rs, 400, "bad_request", "give either 'policy_id' or 'policy', not both");
            return;
        }
        m.policy_id = json_string_value(pidv); /* its language with it */
    } else if (get_policy(b, &m.src, &m.lang, rs)) {
        json_decref(b);
        return;
    }
    struct sess *s = open_sess(rq, rs);
    if (!s) {
        json_decref(b);
        return;
    }
    json_t *row;
    struct svc_err e;
    int rc = svc_mon_create(s, &m, &row, &e);
    if (rc)
        svc_fail(rs, rc, &e, "monitor", rq->param[0]);
    else
        http_json(rs, 201, mon_view(row));
    svc_sess_close(s);
    json_decref(b); /* m pointed into b */
}

static void h_mon_list(struct http_req *rq, struct http_resp *rs)
{
    struct sess *s = find_sess(rq, rs);
    if (!s)
        return;
    json_t *a = store_mon_list(api_cfg.store, sess_id(s));
    size_t i;
    json_t *m;
    for (i = 0; i < json_array_size(a) && (m = json_array_get(a, i)); i++)
        mon_view(m);
    http_json(rs, 200, json_pack("{s:o}", "monitors", a));
    sess_put(s);
}

static void h_mon_get(struct http_req *rq, struct http_resp *rs)
{
    get_one(rq, rs, 1);
}

static void h_mon_delete(struct http_req *rq, struct http_resp *rs)
{
    struct sess *s = open_sess(rq, rs);
    if (!s)
        return;
    struct svc_err e;
    deleted(rq, rs, s, svc_mon_delete(s, rq->param[1], &e), &e, "monitor");
    svc_sess_close(s);
}

static void h_mon_events(struct http_req *rq, struct http_resp *rs)
{
    json_t *b = http_body_object(rq, rs);
    if (!b)
        return;
    json_t *events;
    long long seq = -1;
    if (get_array(b, "events", 1, &events, rs)) {
        json_decref(b);
        return;
    }
    json_t *sq = json_object_get(b, "seq");
    if (sq && !json_is_null(sq)) {
        if (!json_is_integer(sq) || json_integer_value(sq) < 0) {
            json_decref(b);
            http_err(rs, 400, "bad_request", "field 'seq' must be a non-negative integer");
            return;
        }
        seq = json_integer_value(sq);
    }
    struct sess *s = open_sess(rq, rs);
    if (!s) {
        json_decref(b);
        return;
    }
    json_t *m = get_row(rq, rs, s, 1);
    if (!m)
        goto out;
    json_decref(m);
    if (seq >= 0) {
        char *prev = store_chunk_by_seq(api_cfg.store, sess_id(s), rq->param[1], seq);
        if (prev) {
            /* A retried chunk: the very answer it got the first time, not evaluated again. */
            json_t *pj = json_loads(prev, 0, NULL);
            free(prev);
            http_json(rs, 200, pj);
            goto out;
        }
        long long max = store_chunk_max_seq(api_cfg.store, sess_id(s), rq->param[1]);
        if (seq <= max) {
            http_err(rs, 409, "seq_conflict",
                     "seq %lld is not after the last accepted seq %lld and was never accepted", seq,
                     max);
            goto out;
        }
    }
    json_t *answer, *werr;
    struct wfail f;
    int rc = api_monitor_chunk(s, rq->param[1], events, "native", seq, &answer, &werr, &f);
    if (rc == 0)
        http_json(rs, 200, answer);
    else if (rc == 1) {
        api_werr(rs, werr);
        json_decref(werr);
    } else
        api_fail(rs, &f);
out:
    svc_sess_close(s);
    json_decref(b);
}

static void h_mon_violations(struct http_req *rq, struct http_resp *rs)
{
    struct sess *s = find_sess(rq, rs);
    if (!s)
        return;
    json_t *m = get_row(rq, rs, s, 1);
    if (m)
        http_json(rs, 200,
                  json_pack("{s:o,s:O}", "violations",
                            store_viol_list(api_cfg.store, sess_id(s), rq->param[1]), "events_seen",
                            json_object_get(m, "events_seen")));
    json_decref(m);
    sess_put(s);
}

static const struct http_route native_routes[] = {
    {"GET", "/healthz", h_healthz},
    {"GET", "/readyz", h_readyz},
    {"GET", "/metrics", h_metrics},
    {"GET", "/openapi.json", h_openapi},
    {"GET", "/docs", h_docs},
    {"POST", "/v1/check", h_check},
    {"POST", "/v1/compile", h_compile},
    {"POST", "/v1/sessions", h_sess_create},
    {"GET", "/v1/sessions/{sid}", h_sess_get},
    {"DELETE", "/v1/sessions/{sid}", h_sess_delete},
    {"POST", "/v1/sessions/{sid}/eval", h_eval},
    {"POST", "/v1/sessions/{sid}/policies", h_pol_create},
    {"GET", "/v1/sessions/{sid}/policies", h_pol_list},
    {"GET", "/v1/sessions/{sid}/policies/{pid}", h_pol_get},
    {"PUT", "/v1/sessions/{sid}/policies/{pid}", h_pol_put},
    {"DELETE", "/v1/sessions/{sid}/policies/{pid}", h_pol_delete},
    {"POST", "/v1/sessions/{sid}/policies/{pid}/analyze", h_pol_analyze},
    {"POST", "/v1/sessions/{sid}/monitors", h_mon_create},
    {"GET", "/v1/sessions/{sid}/monitors", h_mon_list},
    {"GET", "/v1/sessions/{sid}/monitors/{mid}", h_mon_get},
    {"DELETE", "/v1/sessions/{sid}/monitors/{mid}", h_mon_delete},
    {"POST", "/v1/sessions/{sid}/monitors/{mid}/events", h_mon_events},
    {"GET", "/v1/sessions/{sid}/monitors/{mid}/violations", h_mon_violations},
};

const struct http_route *api_routes(size_t *n)
{
    static struct http_route all[80];
    static size_t nall;
    if (!nall) {
        size_t nn = sizeof native_routes / sizeof native_routes[0];
        memcpy(all, native_routes, sizeof native_routes);
        size_t nc = 0;
        const struct http_route *c = compat_routes(&nc);
        if (nn + nc > sizeof all / sizeof all[0])
            nc = sizeof all / sizeof all[0] - nn;
        memcpy(all + nn, c, nc * sizeof *c);
        nall = nn + nc;
    }
    *n = nall;
    return all;
}

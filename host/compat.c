/*
 * compat.c — the compatibility routes, with the request and response shapes of the systems
 * vigild replaces (spec/invariant-reference.md §10.6-10.7):
 *   invariant-server, stateless era: POST /api/policy/analyze, POST /api/monitor/check;
 *   invariant-server, session era: /session/new, /session, /policy/new, /policy, /policy/{id},
 *     /policy/{id}/analyze, /monitor/new, /monitor, /monitor/{id}, /monitor/{id}/check, each
 *     with ?session_id=;
 *   the hosted Guardrails API: POST /api/v1/policy/check, POST /api/v1/policy/load.
 * Errors use FastAPI's {"detail": ...}; failures inside a worker answer as the originals did
 * (HTTP 200 with a JSON string for invariant-server, 400 catchphrases for Guardrails).
 */
#include "api.h"

#include "jscan.h"
#include "session.h"
#include "store.h"
#include "svc.h"
#include "util.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void detail(struct http_resp *rs, int status, const char *msg)
{
    http_json(rs, status, json_pack("{s:s}", "detail", msg));
}

static void fail_detail(struct http_resp *rs, const struct wfail *f)
{
    detail(rs, f->status, f->msg);
    rs->retry_after = f->retry_after;
}

/* A numeric id renders as a number, as invariant-server's counters did. */
static json_t *id_value(const char *id)
{
    char *end;
    long long v = strtoll(id, &end, 10);
    if (*id && !*end && id[0] != '0')
        return json_integer(v);
    return json_string(id);
}

/* The request body as a JSON object, or NULL after a 422 (FastAPI's validation status). */
static json_t *body_object(struct http_req *rq, struct http_resp *rs)
{
    json_error_t e;
    json_t *j = rq->body_len ? json_loadb(rq->body, rq->body_len, 0, &e) : NULL;
    if (!j || !json_is_object(j)) {
        json_decref(j);
        detail(rs, 422,
               rq->body_len ? "the request body must be a JSON object"
                            : "the request body is missing");
        return NULL;
    }
    return j;
}

/* Scans the body without building a tree (large traces); -1 after a 422 (status 400 with the
 * Guardrails catchphrase when guard). */
static int scan_object(struct http_req *rq, struct http_resp *rs, struct jscan *sc, int guard)
{
    if (jscan_object(rq->body ? rq->body : "", rq->body_len, sc) == 0)
        return 0;
    char msg[256];
    snprintf(msg, sizeof msg, "%s%s at line %zu, column %zu",
             guard ? "Input Validation Error: " : "", sc->err, sc->err_line, sc->err_col);
    detail(rs, guard ? 400 : 422, msg);
    return -1;
}

/* A spliced request (svc_check_req, svc_analyze_req); NULL after a 503 when out of memory. */
static char *built(char *req, struct http_resp *rs)
{
    if (!req)
        detail(rs, 503, "out of memory");
    return req;
}

/* The session named by ?session_id= (a reference), with its token checked under
 * --require-token, locked when lock; NULL after a 404/422/401/403. */
static struct sess *compat_open(struct http_req *rq, struct http_resp *rs, int lock)
{
    const char *id = http_query(rq, "session_id");
    if (!id) {
        detail(rs, 422, "query parameter 'session_id' is required");
        return NULL;
    }
    struct sess *s;
    int st = svc_sess_open(rq, id, lock, &s);
    if (st == 404)
        detail(rs, 404, "Session not found");
    else if (st)
        detail(rs, st,
               st == 401 ? "this session needs its token (Authorization: Bearer <token>)"
                         : "wrong token for this session");
    return s;
}

static struct sess *compat_find(struct http_req *rq, struct http_resp *rs)
{
    return compat_open(rq, rs, 0);
}

static struct sess *compat_sess(struct http_req *rq, struct http_resp *rs)
{
    return compat_open(rq, rs, 1);
}

/* The text of a worker error, as the originals showed exception text. */
static char *werr_text(json_t *err)
{
    const char *m = json_string_value(json_object_get(err, "message"));
    const char *c = json_string_value(json_object_get(err, "code"));
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", m ? m : c ? c : "error");
    return strdup(buf);
}

/* invariant-server: a failure inside the worker is HTTP 200 with a JSON string. */
static void ipc_error(struct http_resp *rs, json_t *err)
{
    char *t = werr_text(err);
    char buf[2200];
    snprintf(buf, sizeof buf, "Invariant IPC Error: %s traceback: ", t ? t : "");
    free(t);
    http_json(rs, 200, json_string(buf));
}

/* Renders a failed session service (svc.h) as {"detail"} and releases e; what names the
 * object ("policy" or "monitor"). */
static void svc_detail(struct http_resp *rs, int rc, struct svc_err *e, const char *what)
{
    char msg[64];
    if (rc == SVC_EFAIL) {
        fail_detail(rs, &e->f);
    } else if (rc == SVC_EWORKER) {
        char *t = werr_text(e->werr);
        detail(rs, api_werr_status(json_string_value(json_object_get(e->werr, "code"))),
               t ? t : "");
        free(t);
    } else if (rc == SVC_ESTORE || rc == SVC_ENOID || rc == SVC_EEXISTS) {
        snprintf(msg, sizeof msg,
                 rc == SVC_ESTORE  ? "the %s could not be stored"
                 : rc == SVC_ENOID ? "cannot allocate a %s id"
                                   : "the %s already exists",
                 what);
        detail(rs, rc == SVC_EEXISTS ? 409 : 503, msg);
    } else if (rc == SVC_ENOPOL || rc == SVC_ENOMON) {
        detail(rs, 404, rc == SVC_ENOPOL ? "Policy not found" : "Monitor not found");
    }
    svc_err_fini(e);
}

/* The stored policy (monitor when monitor) rq->param[0] of s (owned), or NULL after a 404. */
static json_t *get_row(struct http_req *rq, struct http_resp *rs, struct sess *s, int monitor)
{
    json_t *row;
    struct svc_err e;
    int rc = svc_get(s, monitor, rq->param[0], &row, &e);
    if (rc)
        svc_detail(rs, rc, &e, monitor ? "monitor" : "policy");
    return row;
}

static void guardrails_error(struct http_resp *rs, json_t *err);

/* Sends req (freed); on an ok answer passes result.violations through between prefix and
 * suffix; a worker error is rendered by on_err, a transport failure as {"detail"}. */
static void wrap(struct sess *s, char *req, size_t len, const char *prefix, const char *suffix,
                 void (*on_err)(struct http_resp *, json_t *), struct http_resp *rs)
{
    json_t *werr;
    struct wfail f;
    int rc = api_call_wrap(s, req, len, "violations", prefix, suffix, rs, &werr, &f);
    if (rc < 0) {
        fail_detail(rs, &f);
    } else if (rc == 0) {
        on_err(rs, werr);
        json_decref(werr);
    }
}

/* ---- sessions ---- */

static void c_session_new(struct http_req *rq, struct http_resp *rs)
{
    if (http_query(rq, "session_id")) {
        struct sess *s = compat_find(rq, rs);
        if (s) {
            http_json(rs, 200, json_pack("{s:s}", "id", sess_id(s)));
            sess_put(s);
        }
        if (s || rs->status != 404)
            return;
    }
    char sid[65], token[33];
    int rc = sess_create(NULL, 0, sid, token);
    if (rc) {
        detail(rs, rc == SESS_EFULL ? 429 : 503, "cannot create a session");
        return;
    }
    /* Under --require-token the client needs the token for every later call. */
    http_json(rs, 200,
              api_cfg.require_token ? json_pack("{s:s,s:s}", "id", sid, "token", token)
                                    : json_pack("{s:s}", "id", sid));
}

static void c_session_get(struct http_req *rq, struct http_resp *rs)
{
    struct sess *s = compat_find(rq, rs);
    if (!s)
        return;
    http_json(rs, 200, json_pack("{s:s}", "id", sess_id(s)));
    sess_put(s);
}

static void c_session_delete(struct http_req *rq, struct http_resp *rs)
{
    struct sess *s = compat_find(rq, rs);
    if (!s)
        return;
    int gone = sess_delete(sess_id(s));
    sess_put(s);
    if (gone) {
        detail(rs, 404, "Session not found");
        return;
    }
    http_json(rs, 200, json_pack("{s:b}", "ok", 1));
}

/* ---- policies ---- */

static json_t *pol_obj(struct sess *s, json_t *p)
{
    const char *id = json_string_value(json_object_get(p, "id"));
    json_t *o = json_pack("{s:O,s:O,s:s,s:o}", "rule", json_object_get(p, "policy"), "name",
                          json_object_get(p, "name"), "session_id", sess_id(s), "policy_id",
                          id_value(id ? id : ""));
    json_decref(p);
    return o;
}

static json_t *mon_obj(struct sess *s, json_t *m)
{
    const char *id = json_string_value(json_object_get(m, "id"));
    json_t *o = json_pack("{s:s,s:o,s:O,s:O}", "session_id", sess_id(s), "monitor_id",
                          id_value(id ? id : ""), "rule", json_object_get(m, "policy"), "name",
                          json_object_get(m, "name"));
    json_decref(m);
    return o;
}

/* The body of /policy/new and PUT /policy/{id}: rule (a size-capped string) and an optional
 * name. 0, or -1 after a 422/413. */
static int rule_body(json_t *b, const char **rule, const char **name, struct http_resp *rs)
{
    json_t *r = json_object_get(b, "rule"), *n = json_object_get(b, "name");
    if (!json_is_string(r) || (n && !json_is_null(n) && !json_is_string(n))) {
        detail(rs, 422, "body: 'rule' (a string) is required; 'name' must be a string");
        return -1;
    }
    if (json_string_length(r) > api_cfg.max_policy) {
        detail(rs, 413, "the policy exceeds the size limit");
        return -1;
    }
    *rule = json_string_value(r);
    *name = json_is_string(n) ? json_string_value(n) : NULL;
    return 0;
}

/* Creates (pid NULL) or replaces a stored policy from the body. */
static void policy_put(struct http_req *rq, struct http_resp *rs, const char *pid)
{
    json_t *b = body_object(rq, rs);
    const char *rule, *name;
    struct sess *s = NULL;
    if (!b || rule_body(b, &rule, &name, rs) || !(s = compat_sess(rq, rs))) {
        json_decref(b);
        return;
    }
    json_t *row;
    struct svc_err e;
    int rc = pid ? svc_pol_update(s, pid, name, "invariant", rule, &row, &e)
                 : svc_pol_create(s, NULL, name, "invariant", rule, &row, &e);
    if (rc)
        svc_detail(rs, rc, &e, "policy");
    else
        http_json(rs, 200, pol_obj(s, row));
    svc_sess_close(s);
    json_decref(b);
}

static void c_policy_new(struct http_req *rq, struct http_resp *rs)
{
    policy_put(rq, rs, NULL);
}

/* {"obj"(s, row)} for each row of a (owned). */
static json_t *map_rows(struct sess *s, json_t *a, json_t *(*obj)(struct sess *, json_t *))
{
    json_t *out = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(a, i, row) json_array_append_new(out, obj(s, json_incref(row)));
    json_decref(a);
    return out;
}

static void c_policy_list(struct http_req *rq, struct http_resp *rs)
{
    struct sess *s = compat_sess(rq, rs);
    if (!s)
        return;
    http_json(rs, 200, map_rows(s, store_pol_list(api_cfg.store, sess_id(s)), pol_obj));
    svc_sess_close(s);
}

static void c_policy_template(struct http_req *rq, struct http_resp *rs)
{
    (void)rq; /* unused */
    http_json(rs, 200,
              json_string(
                  "raise \"policy violation\" if:\n    (msg: Message)\n    msg.role == \"user\""));
}

/* GET of one stored policy or monitor. */
static void get_one(struct http_req *rq, struct http_resp *rs, int monitor)
{
    struct sess *s = compat_sess(rq, rs);
    if (!s)
        return;
    json_t *row = get_row(rq, rs, s, monitor);
    if (row)
        http_json(rs, 200, monitor ? mon_obj(s, row) : pol_obj(s, row));
    svc_sess_close(s);
}

static void c_policy_get(struct http_req *rq, struct http_resp *rs)
{
    get_one(rq, rs, 0);
}

static void c_policy_put(struct http_req *rq, struct http_resp *rs)
{
    policy_put(rq, rs, rq->param[0]);
}

/* The answer to a delete (rc from svc_pol_delete or svc_mon_delete): when the worker did not
 * answer, it is dropped, to be rebuilt from the store on next use. */
static void deleted(struct http_resp *rs, struct sess *s, int rc, struct svc_err *e,
                    const char *what)
{
    if (rc == SVC_ENOPOL || rc == SVC_ENOMON) {
        svc_detail(rs, rc, e, what);
        return;
    }
    if (rc == SVC_EFAIL)
        sess_drop_worker(s);
    svc_err_fini(e);
    http_json(rs, 200, json_pack("{s:b}", "ok", 1));
}

static void c_policy_delete(struct http_req *rq, struct http_resp *rs)
{
    struct sess *s = compat_sess(rq, rs);
    if (!s)
        return;
    struct svc_err e;
    deleted(rs, s, svc_pol_delete(s, rq->param[0], &e), &e, "policy");
    svc_sess_close(s);
}

static void c_policy_analyze(struct http_req *rq, struct http_resp *rs)
{
    struct jscan sc;
    if (scan_object(rq, rs, &sc, 0))
        return;
    const struct jfield *tr = jscan_get(&sc, "trace");
    if (!tr || tr->type != JT_ARRAY) {
        detail(rs, 422, "body: 'trace' (a list) is required");
        return;
    }
    if (tr->count > api_cfg.max_events) {
        detail(rs, 413, "the trace exceeds the event limit");
        return;
    }
    struct sess *s = compat_sess(rq, rs);
    if (!s)
        return;
    json_t *p = get_row(rq, rs, s, 0);
    if (!p) {
        svc_sess_close(s);
        return;
    }
    json_decref(p);
    size_t len;
    char *req = built(svc_analyze_req(rq->param[0], "server_text", tr, NULL, &len), rs);
    if (req)
        wrap(s, req, len, "{\"errors\":", ",\"handled_errors\":[]}", ipc_error, rs);
    svc_sess_close(s);
}

/* ---- monitors ---- */

static void c_monitor_new(struct http_req *rq, struct http_resp *rs)
{
    json_t *b = body_object(rq, rs);
    if (!b)
        return;
    json_t *pidv = json_object_get(b, "policy_id"), *rule = json_object_get(b, "rule");
    json_t *name = json_object_get(b, "name");
    if (pidv && json_is_null(pidv))
        pidv = NULL;
    if (rule && json_is_null(rule))
        rule = NULL;
    if ((pidv == NULL) == (rule == NULL) || (rule && !json_is_string(rule)) ||
        (pidv && !json_is_string(pidv) && !json_is_integer(pidv)) ||
        (name && !json_is_null(name) && !json_is_string(name))) {
        json_decref(b);
        detail(rs, 422, "exactly one of 'policy_id' or 'rule' must be given");
        return;
    }
    if (rule && json_string_length(rule) > api_cfg.max_policy) {
        json_decref(b);
        detail(rs, 413, "the policy exceeds the size limit");
        return;
    }
    struct sess *s = compat_sess(rq, rs);
    if (!s) {
        json_decref(b);
        return;
    }
    char polid[40] = "";
    if (json_is_integer(pidv))
        snprintf(polid, sizeof polid, "%" JSON_INTEGER_FORMAT, json_integer_value(pidv));
    else if (pidv)
        snprintf(polid, sizeof polid, "%s", json_string_value(pidv));
    struct svc_mon m = {.name = json_is_string(name) ? json_string_value(name) : NULL,
                        .policy_id = pidv ? polid : NULL,
                        .lang = "invariant",
                        .src = json_string_value(rule),
                        .compat = 1};
    json_t *row;
    struct svc_err e;
    int rc = svc_mon_create(s, &m, &row, &e);
    if (rc)
        svc_detail(rs, rc, &e, "monitor");
    else
        http_json(rs, 200, mon_obj(s, row));
    svc_sess_close(s);
    json_decref(b);
}

static void c_monitor_list(struct http_req *rq, struct http_resp *rs)
{
    struct sess *s = compat_sess(rq, rs);
    if (!s)
        return;
    http_json(rs, 200, map_rows(s, store_mon_list(api_cfg.store, sess_id(s)), mon_obj));
    svc_sess_close(s);
}

static void c_monitor_get(struct http_req *rq, struct http_resp *rs)
{
    get_one(rq, rs, 1);
}

static void c_monitor_delete(struct http_req *rq, struct http_resp *rs)
{
    struct sess *s = compat_sess(rq, rs);
    if (!s)
        return;
    struct svc_err e;
    deleted(rs, s, svc_mon_delete(s, rq->param[0], &e), &e, "monitor");
    svc_sess_close(s);
}

/* Sends a chunk whose violations the client must not see (history catch-up). 0 or -1 after
 * responding. */
static int silent_chunk(struct sess *s, const char *mid, json_t *events, struct http_resp *rs)
{
    if (json_array_size(events) == 0)
        return 0;
    json_t *answer, *werr;
    struct wfail f;
    int rc = api_monitor_chunk(s, mid, events, "native", -1, &answer, &werr, &f);
    if (rc == 0) {
        json_decref(answer);
        return 0;
    }
    if (rc == 1) {
        ipc_error(rs, werr);
        json_decref(werr);
    } else {
        fail_detail(rs, &f);
    }
    return -1;
}

/*
 * The monitor contract of invariant-server's session era: its worker kept one Monitor per id, and
 * check(past, pending) was the incremental analyze_pending of the Invariant analyzer: the
 * violations of past ++ pending that bind a pending event, minus every key this monitor ever
 * returned (keys are recorded after filtering, for the monitor's whole life; a rewritten history
 * does not forget them). Here the worker's monitor is rebuilt when the history is rewritten, so
 * the host filters against the keys it returned before, kept with the stored violations (the
 * "server_keyed" rendering {key, text}; catch-up chunks store native ones, which the client never
 * saw and which therefore do not count). The history is read only when an answer has violations.
 */
static json_t *unreported(struct sess *s, const char *mid, json_t *answer)
{
    json_t *vs = json_object_get(answer, "violations");
    json_t *out = json_array();
    if (json_array_size(vs) == 0)
        return out; /* the usual case: nothing to filter, no need to read the history */
    /* The chunk's own violations are already stored: a key was returned before this check iff
     * the store holds it more often than this answer does. */
    json_t *count = json_object();
    json_t *all = store_viol_list(api_cfg.store, sess_id(s), mid);
    size_t i;
    json_t *v;
    json_array_foreach(all, i, v)
    {
        const char *k = json_string_value(json_object_get(v, "key"));
        if (k && json_object_get(v, "text") && !json_object_get(v, "rule"))
            json_object_set_new(count, k,
                                json_integer(json_integer_value(json_object_get(count, k)) + 1));
    }
    json_decref(all);
    json_array_foreach(vs, i, v)
    {
        const char *k = json_string_value(json_object_get(v, "key"));
        if (k)
            json_object_set_new(count, k,
                                json_integer(json_integer_value(json_object_get(count, k)) - 1));
    }
    json_array_foreach(vs, i, v)
    {
        const char *k = json_string_value(json_object_get(v, "key"));
        json_t *t = json_object_get(v, "text");
        if (json_is_string(t) && !(k && json_integer_value(json_object_get(count, k)) > 0))
            json_array_append(out, t);
    }
    json_decref(count);
    return out;
}

static void c_monitor_check(struct http_req *rq, struct http_resp *rs)
{
    json_t *b = body_object(rq, rs);
    if (!b)
        return;
    json_t *past = json_object_get(b, "past_events"),
           *pending = json_object_get(b, "pending_events");
    if (!json_is_array(past) || !json_is_array(pending)) {
        json_decref(b);
        detail(rs, 422, "body: 'past_events' and 'pending_events' (lists) are required");
        return;
    }
    if (json_array_size(past) + json_array_size(pending) > api_cfg.max_events) {
        json_decref(b);
        detail(rs, 413, "the trace exceeds the event limit");
        return;
    }
    struct sess *s = compat_sess(rq, rs);
    if (!s) {
        json_decref(b);
        return;
    }
    const char *mid = rq->param[0];
    json_t *m = get_row(rq, rs, s, 1);
    if (!m)
        goto out;
    /* Raw events received (the worker's events_seen may count normalised events). */
    size_t seen = (size_t)json_integer_value(json_object_get(m, "nraw"));
    uint64_t want = api_hash_parse(json_string_value(json_object_get(m, "hash")));
    size_t np = json_array_size(past);
    uint64_t h = api_hash_events(0, past, 0, np < seen ? np : seen);
    if (np >= seen && h == want) {
        /* The client's history extends what the monitor saw: catch up on the difference. */
        if (np > seen) {
            json_t *missing = json_array();
            for (size_t i = seen; i < np; i++)
                json_array_append(missing, json_array_get(past, i));
            int rc = silent_chunk(s, mid, missing, rs);
            json_decref(missing);
            if (rc)
                goto out_m;
        }
    } else {
        /* History rewritten: rebuild the monitor from the client's past events. */
        util_log(LOG_INFO,
                 "monitor %s/%s: past_events differ from the monitor's history; resynchronising",
                 sess_id(s), mid);
        json_t *root;
        struct wfail f;
        json_t *r = api_call_j(s, json_pack("{s:s,s:s}", "op", "monitor_drop", "mid", mid), &f);
        json_decref(r);
        json_t *req =
            json_pack("{s:s,s:s,s:O,s:O}", "op", "monitor_new", "mid", mid, "policy",
                      json_object_get(m, "policy"), "language", json_object_get(m, "language"));
        json_t *params = json_object_get(m, "parameters");
        if (json_is_object(params))
            json_object_set(req, "parameters", params);
        struct svc_err e;
        int rc = svc_call(s, req, &root, &e);
        if (rc == SVC_EWORKER) {
            ipc_error(rs, e.werr);
            svc_err_fini(&e);
        } else if (rc) {
            svc_detail(rs, rc, &e, "monitor");
        }
        if (rc)
            goto out_m;
        json_decref(root);
        if (store_mon_reset(api_cfg.store, sess_id(s), mid) != STORE_OK) {
            sess_drop_worker(s);
            detail(rs, 503, "the monitor could not be reset");
            goto out_m;
        }
        if (silent_chunk(s, mid, past, rs))
            goto out_m;
    }
    if (json_array_size(pending) == 0) {
        http_json(rs, 200, json_array());
        goto out_m;
    }
    json_t *answer, *werr;
    struct wfail f;
    int rc = api_monitor_chunk(s, mid, pending, "server_keyed", -1, &answer, &werr, &f);
    if (rc == 0) {
        http_json(rs, 200, unreported(s, mid, answer));
        json_decref(answer);
    } else if (rc == 1) {
        ipc_error(rs, werr);
        json_decref(werr);
    } else {
        fail_detail(rs, &f);
    }
out_m:
    json_decref(m);
out:
    svc_sess_close(s);
    json_decref(b);
}

/* ---- invariant-server, stateless era ----
 * Like invariant-server, answers are LRU-cached (128 entries) by request body unless the
 * request says Cache-Control: no-cache. Bodies are compared in full (up to 1 MiB; larger ones
 * are not cached). */

#define CACHE_ENTRIES 128
#define CACHE_MAX_BODY (1u << 20)
struct centry {
    int route;
    uint64_t h;
    char *body;
    size_t blen;
    char *resp;
    size_t rlen;
    unsigned long tick;
};
static struct centry cache[CACHE_ENTRIES];
static unsigned long cache_tick;
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;

static int cache_off(struct http_req *rq)
{
    const char *cc = http_header(rq, "Cache-Control");
    return rq->body_len > CACHE_MAX_BODY || (cc && strstr(cc, "no-cache"));
}

static int cache_get(struct http_req *rq, int route, struct http_resp *rs)
{
    if (cache_off(rq))
        return 0;
    uint64_t h = util_fnv1a(UTIL_FNV_INIT, rq->body, rq->body_len);
    int hit = 0;
    pthread_mutex_lock(&cache_mu);
    for (int i = 0; i < CACHE_ENTRIES && !hit; i++) {
        struct centry *e = &cache[i];
        if (e->body && e->route == route && e->h == h && e->blen == rq->body_len &&
            0 == memcmp(e->body, rq->body, e->blen)) {
            e->tick = ++cache_tick;
            http_bytes(rs, 200, "application/json", e->resp, e->rlen);
            hit = 1;
        }
    }
    pthread_mutex_unlock(&cache_mu);
    return hit;
}

static void cache_put(struct http_req *rq, int route, const struct http_resp *rs)
{
    if (rs->status != 200 || !rs->body || cache_off(rq))
        return;
    char *b = malloc(rq->body_len + 1), *r = malloc(rs->len + 1);
    if (!b || !r) {
        free(b);
        free(r);
        return;
    }
    memcpy(b, rq->body, rq->body_len);
    memcpy(r, rs->body, rs->len);
    pthread_mutex_lock(&cache_mu);
    struct centry *victim = &cache[0];
    for (int i = 0; i < CACHE_ENTRIES; i++) {
        if (!cache[i].body) {
            victim = &cache[i];
            break;
        }
        if (cache[i].tick < victim->tick)
            victim = &cache[i];
    }
    free(victim->body);
    free(victim->resp);
    *victim = (struct centry){
        route,       util_fnv1a(UTIL_FNV_INIT, rq->body, rq->body_len), b, rq->body_len, r, rs->len,
        ++cache_tick};
    pthread_mutex_unlock(&cache_mu);
}

/* A failure inside the worker of the stateless invariant-server: 200 with the text. */
static void text_error(struct http_resp *rs, json_t *err)
{
    char *t = werr_text(err);
    http_json(rs, 200, json_string(t ? t : "error"));
    free(t);
}

static void api_policy_analyze(struct http_req *rq, struct http_resp *rs)
{
    struct jscan sc;
    if (scan_object(rq, rs, &sc, 0))
        return;
    const struct jfield *tr = jscan_get(&sc, "trace"), *pol = jscan_get(&sc, "policy");
    if (!tr || tr->type != JT_ARRAY || !pol || pol->type != JT_STRING) {
        detail(rs, 422, "body: 'trace' (a list) and 'policy' (a string) are required");
        return;
    }
    if (tr->count > api_cfg.max_events || pol->vlen - 2 > api_cfg.max_policy) {
        detail(rs, 413, "the request exceeds a size limit");
        return;
    }
    size_t len;
    char *req =
        built(svc_check_req("server", "invariant", pol, tr->val, tr->vlen, NULL, -1, &len), rs);
    if (req)
        wrap(NULL, req, len, "{\"errors\":", ",\"handled_errors\":[]}", text_error, rs);
}

/* The elements of a JSON array's text, without its brackets (may be empty). */
static void array_inner(const struct jfield *f, const char **p, size_t *n)
{
    const char *s = f->val + 1, *e = f->val + f->vlen - 1;
    while (s < e && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        e--;
    *p = s;
    *n = (size_t)(e - s);
}

static void api_monitor_check(struct http_req *rq, struct http_resp *rs)
{
    struct jscan sc;
    if (scan_object(rq, rs, &sc, 0))
        return;
    const struct jfield *past = jscan_get(&sc, "past_events"),
                        *pending = jscan_get(&sc, "pending_events"),
                        *pol = jscan_get(&sc, "policy");
    if (!past || past->type != JT_ARRAY || !pending || pending->type != JT_ARRAY || !pol ||
        pol->type != JT_STRING) {
        detail(
            rs, 422,
            "body: 'past_events', 'pending_events' (lists) and 'policy' (a string) are required");
        return;
    }
    if (past->count + pending->count > api_cfg.max_events || pol->vlen - 2 > api_cfg.max_policy) {
        detail(rs, 413, "the request exceeds a size limit");
        return;
    }
    /* trace = past ++ pending, spliced as text. */
    const char *a, *b;
    size_t an, bn;
    array_inner(past, &a, &an);
    array_inner(pending, &b, &bn);
    char *trace = malloc(an + bn + 4);
    if (!trace) {
        detail(rs, 503, "out of memory");
        return;
    }
    size_t tn = 0;
    trace[tn++] = '[';
    memcpy(trace + tn, a, an);
    tn += an;
    if (an && bn)
        trace[tn++] = ',';
    memcpy(trace + tn, b, bn);
    tn += bn;
    trace[tn++] = ']';
    size_t len;
    char *req = built(svc_check_req("server_text", "invariant", pol, trace, tn, NULL,
                                    (long long)past->count, &len),
                      rs);
    free(trace);
    if (req)
        wrap(NULL, req, len, "", "", text_error, rs);
}

static void c_api_policy_analyze(struct http_req *rq, struct http_resp *rs)
{
    if (cache_get(rq, 0, rs))
        return;
    api_policy_analyze(rq, rs);
    cache_put(rq, 0, rs);
}

static void c_api_monitor_check(struct http_req *rq, struct http_resp *rs)
{
    if (cache_get(rq, 1, rs))
        return;
    api_monitor_check(rq, rs);
    cache_put(rq, 1, rs);
}

/* ---- the hosted Guardrails API ---- */

/* Maps a worker error to the catchphrases the invariant-ai client classifies. */
static void guardrails_error(struct http_resp *rs, json_t *err)
{
    const char *code = json_string_value(json_object_get(err, "code"));
    const char *kind = json_string_value(json_object_get(err, "kind"));
    char *t = werr_text(err);
    char buf[2300];
    int status = 400;
    /* The runtime's messages may already carry the catchphrase. */
    static const char *const phrases[] = {
        "Missing Policy Parameter: ", "Invariant Attribute Error: ", "Excessive Policy: ",
        "Input Validation Error: ", "Error during analysis: "};
    for (size_t i = 0; t && i < sizeof phrases / sizeof phrases[0]; i++) {
        size_t pl = strlen(phrases[i]);
        if (0 == strncmp(t, phrases[i], pl)) {
            memmove(t, t + pl, strlen(t + pl) + 1);
            break;
        }
    }
    if (code && 0 == strcmp(code, "trace_invalid"))
        snprintf(buf, sizeof buf, "Input Validation Error: %s", t);
    else if (code && 0 == strcmp(code, "bad_request"))
        snprintf(buf, sizeof buf, "Input Validation Error: %s", t);
    else if (code && 0 == strcmp(code, "policy_invalid"))
        snprintf(buf, sizeof buf, "%s", t);
    else if (kind && 0 == strcmp(kind, "missing-parameter"))
        snprintf(buf, sizeof buf, "Missing Policy Parameter: %s", t);
    else if (kind && (0 == strcmp(kind, "attribute")))
        snprintf(buf, sizeof buf, "Invariant Attribute Error: %s", t);
    else if (kind && (0 == strcmp(kind, "excessive") || 0 == strcmp(kind, "excessive-policy")))
        snprintf(buf, sizeof buf, "Excessive Policy: %s", t);
    else {
        status = api_werr_status(code);
        if (status < 500 || status == 500)
            status = 422;
        snprintf(buf, sizeof buf, "Error during analysis: %s", t);
    }
    free(t);
    json_t *o = json_pack("{s:s}", "detail", buf);
    json_t *d = json_object_get(err, "diagnostics");
    if (d)
        json_object_set(o, "diagnostics", d);
    http_json(rs, status, o);
}

static void c_guard_check(struct http_req *rq, struct http_resp *rs)
{
    struct jscan sc;
    if (scan_object(rq, rs, &sc, 1))
        return;
    const struct jfield *msgs = jscan_get(&sc, "messages"), *pol = jscan_get(&sc, "policy"),
                        *params = jscan_get(&sc, "parameters");
    if (params && params->type == JT_NULL)
        params = NULL;
    if (!msgs || msgs->type != JT_ARRAY || !pol || pol->type != JT_STRING ||
        (params && params->type != JT_OBJECT)) {
        detail(rs, 400,
               "Input Validation Error: 'messages' (a list) and 'policy' (a string) are "
               "required; 'parameters' must be an object");
        return;
    }
    if (msgs->count > api_cfg.max_events || pol->vlen - 2 > api_cfg.max_policy) {
        detail(rs, 413, "the request exceeds a size limit");
        return;
    }
    size_t len;
    char *req = built(
        svc_check_req("invariant", "invariant", pol, msgs->val, msgs->vlen, params, -1, &len), rs);
    if (req)
        wrap(NULL, req, len, "{\"errors\":", "}", guardrails_error, rs);
}

static void c_guard_load(struct http_req *rq, struct http_resp *rs)
{
    json_t *b = body_object(rq, rs);
    if (!b)
        return;
    json_t *pol = json_object_get(b, "policy");
    if (!json_is_string(pol)) {
        json_decref(b);
        detail(rs, 400, "Input Validation Error: 'policy' (a string) is required");
        return;
    }
    if (json_string_length(pol) > api_cfg.max_policy) {
        json_decref(b);
        detail(rs, 413, "the policy exceeds the size limit");
        return;
    }
    json_t *req =
        json_pack("{s:s,s:O,s:s}", "op", "compile", "policy", pol, "language", "invariant");
    json_decref(b);
    struct wfail f;
    json_t *root = api_call_j(NULL, req, &f);
    if (!root) {
        fail_detail(rs, &f);
        return;
    }
    if (!json_is_true(json_object_get(root, "ok"))) {
        guardrails_error(rs, json_object_get(root, "error"));
    } else {
        json_t *rules = json_object_get(json_object_get(root, "result"), "rules");
        http_json(rs, 200, json_pack("{s:b,s:o}", "ok", 1, "rules", rules ? json_incref(rules) : json_array()));
    }
    json_decref(root);
}

static const struct http_route routes[] = {
    {"GET", "/session/new", c_session_new},
    {"GET", "/session", c_session_get},
    {"DELETE", "/session", c_session_delete},
    {"POST", "/policy/new", c_policy_new},
    {"GET", "/policy", c_policy_list},
    {"GET", "/policy/template", c_policy_template},
    {"GET", "/policy/{id}", c_policy_get},
    {"PUT", "/policy/{id}", c_policy_put},
    {"DELETE", "/policy/{id}", c_policy_delete},
    {"POST", "/policy/{id}/analyze", c_policy_analyze},
    {"POST", "/monitor/new", c_monitor_new},
    {"GET", "/monitor", c_monitor_list},
    {"GET", "/monitor/{id}", c_monitor_get},
    {"DELETE", "/monitor/{id}", c_monitor_delete},
    {"POST", "/monitor/{id}/check", c_monitor_check},
    {"POST", "/api/policy/analyze", c_api_policy_analyze},
    {"POST", "/api/monitor/check", c_api_monitor_check},
    {"POST", "/api/v1/policy/check", c_guard_check},
    {"POST", "/api/v1/policy/load", c_guard_load},
};

const struct http_route *compat_routes(size_t *n)
{
    *n = sizeof routes / sizeof routes[0];
    return routes;
}

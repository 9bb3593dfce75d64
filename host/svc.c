/* svc.c — session services shared by the native and the compatibility routes (svc.h). */
#include "svc.h"

#include "session.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void svc_err_fini(struct svc_err *e)
{
    json_decref(e->werr);
    e->werr = NULL;
}

static void err_reset(struct svc_err *e)
{
    memset(e, 0, sizeof *e);
}

static int err_id(struct svc_err *e, int rc, const char *id)
{
    e->id = id;
    return rc;
}

/* ---- sessions ---- */

int svc_sess_open(struct http_req *rq, const char *sid, int lock, struct sess **s)
{
    *s = sess_get(sid);
    if (!*s)
        return 404;
    int st = api_sess_auth(rq, *s);
    if (st == 0 && lock && sess_lock(*s))
        st = 404;
    if (st) {
        sess_put(*s);
        *s = NULL;
    }
    return st;
}

void svc_sess_close(struct sess *s)
{
    sess_unlock(s);
    sess_put(s);
}

/* ---- worker calls ---- */

int svc_call(struct sess *s, json_t *req, json_t **root, struct svc_err *e)
{
    err_reset(e);
    *root = api_call_j(s, req, &e->f);
    if (!*root)
        return SVC_EFAIL;
    if (!json_is_true(json_object_get(*root, "ok"))) {
        e->werr = json_incref(json_object_get(*root, "error"));
        json_decref(*root);
        *root = NULL;
        return SVC_EWORKER;
    }
    if (!json_object_get(*root, "result"))
        json_object_set_new(*root, "result", json_object());
    return SVC_OK;
}

json_t *svc_result(json_t *root)
{
    return json_object_get(root, "result");
}

/* ---- stored objects ---- */

typedef json_t *(*row_get_fn)(struct store *, const char *, const char *);

int svc_get(struct sess *s, int monitor, const char *id, json_t **row, struct svc_err *e)
{
    err_reset(e);
    *row = (monitor ? store_mon_get : store_pol_get)(api_cfg.store, sess_id(s), id);
    return *row ? SVC_OK : err_id(e, monitor ? SVC_ENOMON : SVC_ENOPOL, id);
}

/* The store's answer st after the worker took an object: when the store failed, the worker is
 * dropped (rebuilt from the store on its next use). */
static int stored(struct sess *s, int st, struct svc_err *e)
{
    if (st == STORE_OK)
        return SVC_OK;
    sess_drop_worker(s);
    e->store_rc = st;
    return SVC_ESTORE;
}

/* id, when given, if the session has no such row yet (copied into buf); otherwise the session's
 * next free number. Returns 0, SVC_EEXISTS or, when the counter fails, SVC_ENOID (buf then holds
 * the failed number). */
static int pick_id(struct sess *s, int monitor, const char *id, char *buf, size_t size,
                   struct svc_err *e)
{
    row_get_fn get = monitor ? store_mon_get : store_pol_get;
    json_t *old = NULL;
    if (id) {
        snprintf(buf, size, "%s", id);
        old = get(api_cfg.store, sess_id(s), buf);
        int taken = old != NULL;
        json_decref(old);
        return taken ? err_id(e, SVC_EEXISTS, id) : SVC_OK;
    }
    long n;
    do {
        json_decref(old);
        old = NULL;
        n = store_sess_next(api_cfg.store, sess_id(s), monitor);
        snprintf(buf, size, "%ld", n);
    } while (n > 0 && (old = get(api_cfg.store, sess_id(s), buf)));
    return n > 0 ? SVC_OK : SVC_ENOID;
}

/* ---- policies ---- */

/* Compiles src into the worker as pid, then inserts or updates the stored policy. */
static int pol_put(struct sess *s, const char *pid, const char *name, const char *lang,
                   const char *src, int insert, json_t **row, struct svc_err *e)
{
    json_t *root;
    int rc = svc_call(s,
                      json_pack("{s:s,s:s,s:s,s:s}", "op", "policy_put", "pid", pid, "policy", src,
                                "language", lang),
                      &root, e);
    if (rc)
        return rc;
    json_t *none = json_array();
    json_t *rules_j = json_object_get(svc_result(root), "rules");
    char *rules = json_dumps(rules_j ? rules_j : none, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(none);
    json_decref(root);
    int st = insert ? store_pol_insert(api_cfg.store, sess_id(s), pid, name, lang, src, rules)
                    : store_pol_update(api_cfg.store, sess_id(s), pid, name, lang, src, rules);
    free(rules);
    rc = stored(s, st, e);
    if (rc == SVC_OK)
        *row = store_pol_get(api_cfg.store, sess_id(s), pid);
    return rc;
}

int svc_pol_create(struct sess *s, const char *id, const char *name, const char *lang,
                   const char *src, json_t **row, struct svc_err *e)
{
    char pid[65], defname[80];
    err_reset(e);
    *row = NULL;
    int rc = pick_id(s, 0, id, pid, sizeof pid, e);
    if (rc)
        return rc;
    if (!name) {
        snprintf(defname, sizeof defname, "Policy #%s", pid);
        name = defname;
    }
    return pol_put(s, pid, name, lang, src, 1, row, e);
}

int svc_pol_update(struct sess *s, const char *pid, const char *name, const char *lang,
                   const char *src, json_t **row, struct svc_err *e)
{
    err_reset(e);
    *row = NULL;
    json_t *old;
    int rc = svc_get(s, 0, pid, &old, e);
    if (rc)
        return rc;
    if (!name)
        name = json_string_value(json_object_get(old, "name"));
    rc = pol_put(s, pid, name, lang, src, 0, row, e);
    json_decref(old);
    return rc;
}

/* ---- monitors ---- */

/* Sets monitor m up in the worker with src and lang, then stores it. */
static int mon_put(struct sess *s, const struct svc_mon *m, const char *src, const char *lang,
                   json_t **row, struct svc_err *e)
{
    char mid[65], defname[80];
    int rc = pick_id(s, 1, m->id, mid, sizeof mid, e);
    if (rc)
        return rc;
    const char *name = m->name;
    if (!name) {
        snprintf(defname, sizeof defname, "Monitor #%s", mid);
        name = defname;
    }
    json_t *req = json_pack("{s:s,s:s,s:s,s:s}", "op", "monitor_new", "mid", mid, "policy", src,
                            "language", lang ? lang : "invariant");
    if (m->params)
        json_object_set(req, "parameters", m->params);
    json_t *root;
    rc = svc_call(s, req, &root, e);
    if (rc)
        return rc;
    json_decref(root);
    char *pj = m->params ? json_dumps(m->params, JSON_COMPACT) : NULL;
    int st = store_mon_insert(api_cfg.store, sess_id(s), mid, name, m->policy_id, lang, src, pj,
                              m->compat);
    free(pj);
    rc = stored(s, st, e);
    if (rc == SVC_OK)
        *row = store_mon_get(api_cfg.store, sess_id(s), mid);
    return rc;
}

int svc_mon_create(struct sess *s, const struct svc_mon *m, json_t **row, struct svc_err *e)
{
    err_reset(e);
    *row = NULL;
    const char *src = m->src, *lang = m->lang;
    json_t *pol = NULL;
    if (m->policy_id) {
        int rc = svc_get(s, 0, m->policy_id, &pol, e);
        if (rc)
            return rc;
        src = json_string_value(json_object_get(pol, "policy"));
        if (!lang)
            lang = json_string_value(json_object_get(pol, "language"));
    }
    int rc = mon_put(s, m, src, lang, row, e);
    json_decref(pol);
    return rc;
}

/* ---- requests spliced from the client's body ---- */

char *svc_check_req(const char *format, const char *lang, const struct jfield *pol,
                    const char *trace, size_t tn, const struct jfield *params, long long past_len,
                    size_t *len)
{
    struct wbuf w;
    wb_init(&w);
    wb_str(&w, "op", "check");
    wb_str(&w, "format", format);
    wb_str(&w, "language", lang);
    wb_raw(&w, "policy", pol->val, pol->vlen);
    wb_raw(&w, "trace", trace, tn);
    if (params)
        wb_raw(&w, "parameters", params->val, params->vlen);
    if (past_len >= 0)
        wb_int(&w, "past_len", past_len);
    return wb_finish(&w, len);
}

char *svc_analyze_req(const char *pid, const char *format, const struct jfield *trace,
                      const struct jfield *params, size_t *len)
{
    struct wbuf w;
    wb_init(&w);
    wb_str(&w, "op", "analyze");
    wb_str(&w, "pid", pid);
    wb_str(&w, "format", format);
    wb_raw(&w, "trace", trace->val, trace->vlen);
    if (params)
        wb_raw(&w, "parameters", params->val, params->vlen);
    return wb_finish(&w, len);
}

/* ---- deletion ---- */

static int drop(struct sess *s, int monitor, const char *id, struct svc_err *e)
{
    err_reset(e);
    int st = monitor ? store_mon_delete(api_cfg.store, sess_id(s), id)
                     : store_pol_delete(api_cfg.store, sess_id(s), id);
    if (st != STORE_OK)
        return err_id(e, monitor ? SVC_ENOMON : SVC_ENOPOL, id);
    json_t *root;
    int rc = svc_call(s,
                      json_pack("{s:s,s:s}", "op", monitor ? "monitor_drop" : "policy_drop",
                                monitor ? "mid" : "pid", id),
                      &root, e);
    json_decref(root);
    return rc;
}

int svc_pol_delete(struct sess *s, const char *pid, struct svc_err *e)
{
    return drop(s, 0, pid, e);
}

int svc_mon_delete(struct sess *s, const char *mid, struct svc_err *e)
{
    return drop(s, 1, mid, e);
}

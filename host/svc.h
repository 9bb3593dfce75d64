/*
 * svc.h — session services: the operations the native routes (api.c) and the compatibility
 * routes (compat.c) share. Finding (and locking) a session, a worker call with its outcome as
 * data, and the life of stored policies and monitors: set up in the session's worker first, then
 * stored; when the store fails after the worker moved on, the worker is dropped, to be rebuilt
 * from the store on its next use.
 *
 * No function here renders a response: each returns SVC_OK or a negative enum svc_rc with the
 * detail in a struct svc_err, and every route renders that in its own shape. Relies on api.h
 * (api_call_j, api_sess_auth, api_cfg.store), session.h and store.h.
 */
#ifndef VIGIL_HOST_SVC_H
#define VIGIL_HOST_SVC_H

#include <jansson.h>

#include "api.h"
#include "jscan.h"

enum svc_rc {
    SVC_OK = 0,
    SVC_EFAIL = -1,   /* no worker answer, or out of memory: e->f */
    SVC_EWORKER = -2, /* the worker refused: e->werr (NULL when its answer named no error) */
    SVC_ESTORE = -3,  /* the store failed (e->store_rc); the session's worker was dropped */
    SVC_ENOID = -4,   /* no id could be allocated */
    SVC_ENOPOL = -5,  /* no policy e->id */
    SVC_ENOMON = -6,  /* no monitor e->id */
    SVC_EEXISTS = -7, /* the chosen id e->id is taken */
};

struct svc_err {
    struct wfail f;
    json_t *werr;   /* owned: release with svc_err_fini */
    int store_rc;   /* STORE_* */
    const char *id; /* borrowed from the caller's arguments */
};

/* Releases e->werr; the rest of e stays readable. */
void svc_err_fini(struct svc_err *e);

/* The session sid (a reference in *s), its token checked as api_sess_auth does, locked when
 * lock. Returns 0, or 404 (no such session, or it went away while locking), 401 or 403 with *s
 * NULL. */
int svc_sess_open(struct http_req *rq, const char *sid, int lock, struct sess **s);
/* Unlocks and releases a session svc_sess_open locked. */
void svc_sess_close(struct sess *s);

/* One worker call with req (stolen) on s (locked) or on the pool (s NULL). SVC_OK with *root
 * owned, whose "result" is always an object (svc_result); SVC_EFAIL or SVC_EWORKER otherwise,
 * *root NULL. */
int svc_call(struct sess *s, json_t *req, json_t **root, struct svc_err *e);
json_t *svc_result(json_t *root); /* borrowed from root */

/* The stored policy (monitor when monitor) id of s: SVC_OK with *row (owned), or SVC_ENOPOL /
 * SVC_ENOMON. */
int svc_get(struct sess *s, int monitor, const char *id, json_t **row, struct svc_err *e);

/* With s locked. Compiles a policy into the worker as id (NULL: the session's next number) with
 * name (NULL: "Policy #<id>"), then stores it. SVC_OK with *row the stored policy (owned);
 * SVC_EEXISTS, SVC_ENOID, SVC_EFAIL, SVC_EWORKER, SVC_ESTORE. */
int svc_pol_create(struct sess *s, const char *id, const char *name, const char *lang,
                   const char *src, json_t **row, struct svc_err *e);
/* The same for the existing policy pid (name NULL: keep its name); SVC_ENOPOL when none. */
int svc_pol_update(struct sess *s, const char *pid, const char *name, const char *lang,
                   const char *src, json_t **row, struct svc_err *e);

/* What a new monitor is made of (every pointer borrowed). */
struct svc_mon {
    const char *id;        /* chosen by the client, or NULL: the session's next number */
    const char *name;      /* NULL: "Monitor #<id>" */
    const char *policy_id; /* a stored policy to run, or NULL: src */
    const char *lang;      /* NULL: the stored policy's language */
    const char *src;
    json_t *params; /* or NULL */
    int compat;     /* made through a compatibility route (stored with it) */
};
/* With s locked. Sets the monitor up in the worker, then stores it. SVC_OK with *row the stored
 * monitor (owned); SVC_ENOPOL, SVC_EEXISTS, SVC_ENOID (compat monitors only), SVC_EFAIL,
 * SVC_EWORKER, SVC_ESTORE. */
int svc_mon_create(struct sess *s, const struct svc_mon *m, json_t **row, struct svc_err *e);

/* With s locked. Deletes a stored policy / monitor, then drops it from the worker. SVC_ENOPOL /
 * SVC_ENOMON when there was none; otherwise it is deleted, and the result is the worker's:
 * SVC_OK, or SVC_EFAIL / SVC_EWORKER when the worker may still hold it (the caller decides
 * whether to drop the worker). */
int svc_pol_delete(struct sess *s, const char *pid, struct svc_err *e);
int svc_mon_delete(struct sess *s, const char *mid, struct svc_err *e);

/* Worker requests spliced from slices of the client's body (no re-encoding; jscan fields
 * borrowed). svc_check_req: the stateless check of policy pol (language lang) over trace (tn
 * bytes of JSON array text) with params (or NULL) and, when past_len >= 0, past_len.
 * svc_analyze_req: the analyze of the stored policy pid over trace with params (or NULL).
 * Both return the text (malloc'd, the caller frees) with *len, or NULL when out of memory. */
char *svc_check_req(const char *format, const char *lang, const struct jfield *pol,
                    const char *trace, size_t tn, const struct jfield *params, long long past_len,
                    size_t *len);
char *svc_analyze_req(const char *pid, const char *format, const struct jfield *trace,
                      const struct jfield *params, size_t *len);

#endif

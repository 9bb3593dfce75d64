/*
 * api.h — the REST routes of vigild (native /v1 routes in api.c, compatibility routes in
 * compat.c) and the helpers they share: worker calls with error mapping, request splicing,
 * monitor chunks. The session services both families run (stored policies and monitors,
 * session lookup) are in svc.h.
 *
 * Handlers never parse a trace beyond checking its JSON type and size; the worker does the rest.
 * Worker error codes map to statuses as in docs/internals.md §2.
 */
#ifndef VIGIL_HOST_API_H
#define VIGIL_HOST_API_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"

struct store;
struct sess;

struct api_cfg {
    struct store *store;      /* borrowed */
    size_t max_events;        /* events per trace / chunk */
    size_t max_policy;        /* bytes of policy source */
    int enable_eval;          /* expose POST /v1/sessions/{sid}/eval */
    int require_token;        /* every route naming a session needs the session's token */
    int insecure;             /* the jail is off */
    const char *jail_summary; /* borrowed */
    int jail_full;
    const char *openapi; /* the OpenAPI document (borrowed), or NULL */
    size_t openapi_len;
};

void api_init(const struct api_cfg *cfg);
/* The full route table (native + compatibility). */
const struct http_route *api_routes(size_t *n);
const struct http_route *compat_routes(size_t *n);

extern struct api_cfg api_cfg;

/* A transport failure: no worker answer. */
struct wfail {
    int status;       /* 429, 503, 504 */
    const char *code; /* "busy", "worker_unavailable", "deadline_exceeded", ... */
    char msg[320];
    int retry_after;
};

/* One worker call on s (locked by the caller) or on the stateless pool (s NULL). Returns the
 * parsed answer {"ok": ...} (owned) or NULL with f filled. */
json_t *api_call(struct sess *s, const char *req, size_t len, struct wfail *f);
/* Same with a request object (stolen). */
json_t *api_call_j(struct sess *s, json_t *req, struct wfail *f);

/* Sends req (stolen) on s or the pool. On an ok answer sets rs to 200 with prefix +
 * result.<field> (raw text, "[]" when absent) + suffix and returns 1; on a worker error returns
 * 0 with *werr (owned); on a transport failure returns -1 with f. */
int api_call_wrap(struct sess *s, char *req, size_t len, const char *field, const char *prefix,
                  const char *suffix, struct http_resp *rs, json_t **werr, struct wfail *f);

/* With --require-token: whether rq carries s's token (Authorization: Bearer <token> or
 * X-Vigil-Token). Returns 0 when it may go on (or no token is required), 401 when no token was
 * sent, 403 when it is the wrong one. Native and compatibility routes both ask. */
int api_sess_auth(struct http_req *rq, const struct sess *s);

/* The HTTP status for a worker error code (internals.md §2). */
int api_werr_status(const char *code);

/* Chains the canonical JSON (sorted keys, compact) of events[from..to) into h. */
uint64_t api_hash_events(uint64_t h, json_t *events, size_t from, size_t to);
uint64_t api_hash_parse(const char *hex);

/* With s locked: evaluates and commits one chunk of monitor mid.
 * Returns 0 with *answer (owned {"violations", "events_seen"}); 1 with *werr (owned worker
 * error object); -1 with f filled (transport or store failure). seq < 0: none. */
int api_monitor_chunk(struct sess *s, const char *mid, json_t *events, const char *format,
                      long long seq, json_t **answer, json_t **werr, struct wfail *f);

/* A worker request built field by field from slices of the client's body (no re-encoding). */
struct wbuf {
    char *b;
    size_t len, cap;
    int fields;
    int oom;
};
void wb_init(struct wbuf *w);                                  /* "{" */
void wb_str(struct wbuf *w, const char *key, const char *val); /* "key": "val" (escaped) */
void wb_raw(struct wbuf *w, const char *key, const char *val, size_t n); /* "key": <JSON text> */
void wb_int(struct wbuf *w, const char *key, long long v);
/* Closes the object; returns the text (malloc'd, caller frees) or NULL when out of memory. */
char *wb_finish(struct wbuf *w, size_t *len);

/* Native error responses. */
void api_fail(struct http_resp *rs, const struct wfail *f);
void api_werr(struct http_resp *rs, json_t *err); /* borrows err */

#endif

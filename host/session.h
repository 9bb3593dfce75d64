/*
 * session.h — the session table and worker supervision.
 *
 * A session owns at most one jailed worker (core/worker.h) at a time. The table lives in
 * memory; its durable copy is the store (host/store.h), from which a worker is rebuilt whenever
 * it is missing: a worker that died (EOF, SIGKILL), was killed by the watchdog, or was evicted
 * while idle is respawned on the next request and the session's policies (policy_put), monitors
 * (monitor_new) and monitor chunks (monitor_events, output discarded) are replayed in order.
 *
 * Locking: a table mutex for the id map; a per-session mutex (sess_lock) serialises requests so
 * that one request is in flight per worker. A background thread expires sessions past their TTL
 * (sliding: from the last use) and evicts idle workers. A global limit bounds the number of
 * worker calls in flight (queue beyond it → SESS_EBUSY → 429).
 * Stateless checks use a small pool of workers (sess_pool_call).
 */
#ifndef VIGIL_HOST_SESSION_H
#define VIGIL_HOST_SESSION_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"

struct zyg;
struct store;

struct sess_cfg {
    long ttl_default;    /* seconds */
    long ttl_max;        /* seconds */
    int idle_evict_s;    /* kill a worker idle this long (0: never) */
    int max_sessions;    /* sessions in total */
    int call_timeout_ms; /* host watchdog per worker call */
    int pool_size;       /* workers for stateless checks */
    int max_concurrent;  /* worker calls in flight, all sessions and the pool */
    int max_queue;       /* calls waiting for a slot before SESS_EBUSY */
};

/* Extra status codes next to enum pe_status. */
enum {
    SESS_EBUSY = -100,
    SESS_EFULL = -101,
    SESS_EDUP = -102,
    SESS_ENOTFOUND = -103,
    SESS_ENOWORKER = -104
};

/* Loads every stored session (expired ones are deleted) and starts the reaper thread.
 * z and st are borrowed for the life of the table. */
int sess_init(const struct sess_cfg *cfg, struct zyg *z, struct store *st);
/* Stops the reaper, kills every worker, frees the table. */
void sess_shutdown(void);

struct sess;

/* Creates a session (id NULL: a random UUID) and spawns its worker. Fills id_out (65 bytes)
 * and token_out (33 bytes). Returns 0, SESS_EDUP, SESS_EFULL, SESS_ENOWORKER (no worker could
 * be spawned, e.g. its jail failed: logged; the session is not kept) or STORE_ERR-like
 * negatives. */
int sess_create(const char *id, long ttl, char *id_out, char *token_out);
/* Looks up a live session and takes a reference (release with sess_put); NULL if unknown. */
struct sess *sess_get(const char *id);
void sess_put(struct sess *s);
/* Deletes a session: removes it, kills its worker, deletes its stored state. 0 or
 * SESS_ENOTFOUND. */
int sess_delete(const char *id);

const char *sess_id(const struct sess *s);
/* 1 when tok is the session's token (compared in constant time). */
int sess_token_ok(const struct sess *s, const char *tok);
/* {id, created_at, expires_at, ttl, worker_pid|null, token?}: the token only with_token. */
json_t *sess_info(struct sess *s, int with_token);

/* Serialises requests on one session. sess_lock returns -1 when the session was deleted
 * meanwhile (the lock is then not held). */
int sess_lock(struct sess *s);
void sess_unlock(struct sess *s);

/* With the session locked: one worker call, spawning and replaying first when the worker is
 * missing; a worker found dead during the call is replaced and the call retried once.
 * Returns PE_OK with *resp (malloc'd), or PE_ETIMEDOUT (watchdog; worker killed), PE_EDEAD /
 * PE_ESYS / PE_EPROTO (worker unavailable), SESS_EBUSY (too many calls in flight). */
int sess_call(struct sess *s, const char *req, size_t len, char **resp, size_t *resp_len,
              struct pe_err *err);
/* With the session locked: forget the worker (killed), so that the next call replays. */
void sess_drop_worker(struct sess *s);

/* One stateless call on a pool worker. Same returns as sess_call. */
int sess_pool_call(const char *req, size_t len, char **resp, size_t *resp_len, struct pe_err *err);

/* 1 when a worker can be spawned and answers ping. */
int sess_probe_spawn(void);

/* Appends worker and session metrics (Prometheus text). */
void sess_metrics(char **buf, size_t *len, size_t *cap);

#endif

/*
 * store.h — the durable state of vigild in SQLite (WAL): sessions, stored policies, monitors,
 * every accepted monitor chunk and every reported violation.
 *
 * One connection guarded by one mutex: every function is thread-safe and atomic. A chunk and its
 * violations are committed in one transaction (store_chunk_commit), after the worker evaluated
 * it. Objects come back as jansson values owned by the caller (json_decref). Return codes: 0, or
 * STORE_DUP (a primary key already exists), STORE_NOTFOUND, STORE_ERR (logged).
 */
#ifndef VIGIL_HOST_STORE_H
#define VIGIL_HOST_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum { STORE_OK = 0, STORE_ERR = -1, STORE_DUP = -2, STORE_NOTFOUND = -3 };

struct store;

/* Opens (creating) the database at path (":memory:" allowed). Returns NULL and fills err. */
struct store *store_open(const char *path, char *err, size_t err_size);
void store_close(struct store *st); /* NULL is a no-op */
/* 1 when a write transaction can be opened and committed. */
int store_writable(struct store *st);

/* Sessions. A session object: {id, token, created_at, last_used, ttl, next_policy, next_monitor}.
 */
int store_sess_insert(struct store *st, const char *id, const char *token, double created_at,
                      long ttl);
int store_sess_delete(struct store *st, const char *id); /* also its policies, monitors, chunks */
int store_sess_touch(struct store *st, const char *id, double last_used);
/* Allocates the next policy / monitor number of a session (1, 2, ...). Returns it or -1. */
long store_sess_next(struct store *st, const char *id, int monitor);
json_t *store_sess_list(struct store *st); /* every session object, in creation order */

/* Policies: {id, name, language, policy, rules (JSON), created_at, updated_at}. */
int store_pol_insert(struct store *st, const char *sid, const char *pid, const char *name,
                     const char *language, const char *source, const char *rules_json);
int store_pol_update(struct store *st, const char *sid, const char *pid, const char *name,
                     const char *language, const char *source, const char *rules_json);
json_t *store_pol_get(struct store *st, const char *sid, const char *pid); /* NULL: not found */
json_t *store_pol_list(struct store *st, const char *sid);                 /* creation order */
int store_pol_delete(struct store *st, const char *sid, const char *pid);

/* Monitors: {id, name, policy_id|null, language, policy, parameters|null, events_seen,
 * violations (count), hash (string), nraw, created_at, compat}. */
int store_mon_insert(struct store *st, const char *sid, const char *mid, const char *name,
                     const char *policy_id, const char *language, const char *source,
                     const char *parameters_json, int compat);
json_t *store_mon_get(struct store *st, const char *sid, const char *mid);
json_t *store_mon_list(struct store *st, const char *sid);
int store_mon_delete(struct store *st, const char *sid, const char *mid);
/* Forgets a monitor's chunks (not its violations) and sets events_seen and hash to 0. */
int store_mon_reset(struct store *st, const char *sid, const char *mid);

/* Chunks. events_json: the chunk's events array as JSON text, nraw its length. response_json:
 * what the client got (replayed for a retried seq). violations: array, each element stored.
 * seq < 0: none. The monitor's nraw (raw events received) grows by nraw. */
int store_chunk_commit(struct store *st, const char *sid, const char *mid, long long seq,
                       const char *events_json, long nraw, long events_seen, uint64_t hash,
                       json_t *violations, const char *response_json);
/* The stored response of the chunk with this client seq (malloc'd), or NULL. */
char *store_chunk_by_seq(struct store *st, const char *sid, const char *mid, long long seq);
/* The largest client seq of a monitor, or -1. */
long long store_chunk_max_seq(struct store *st, const char *sid, const char *mid);
/* Array of JSON strings: each chunk's events text, in order. */
json_t *store_chunk_list(struct store *st, const char *sid, const char *mid);
/* Array of every violation a monitor reported, in order. */
json_t *store_viol_list(struct store *st, const char *sid, const char *mid);

#endif

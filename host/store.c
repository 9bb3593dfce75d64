/* store.c — SQLite store (see store.h). */
#include "store.h"

#include "util.h"

#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct store {
    sqlite3 *db;
    pthread_mutex_t mu;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS sessions(id TEXT PRIMARY KEY, token TEXT, created_at REAL,"
    " last_used REAL, ttl INTEGER, next_policy INTEGER DEFAULT 1, next_monitor INTEGER DEFAULT 1);"
    "CREATE TABLE IF NOT EXISTS policies(sid TEXT, id TEXT, name TEXT, language TEXT, source TEXT,"
    " rules TEXT, created_at REAL, updated_at REAL, PRIMARY KEY(sid, id));"
    "CREATE TABLE IF NOT EXISTS monitors(sid TEXT, id TEXT, name TEXT, policy_id TEXT,"
    " language TEXT, source TEXT, parameters TEXT, events_seen INTEGER DEFAULT 0,"
    " violations INTEGER DEFAULT 0, hash TEXT DEFAULT '0', nchunks INTEGER DEFAULT 0,"
    " nraw INTEGER DEFAULT 0,"
    " created_at REAL, compat INTEGER DEFAULT 0, PRIMARY KEY(sid, id));"
    "CREATE TABLE IF NOT EXISTS chunks(sid TEXT, mid TEXT, n INTEGER, seq INTEGER, events TEXT,"
    " events_seen INTEGER, response TEXT, PRIMARY KEY(sid, mid, n));"
    "CREATE INDEX IF NOT EXISTS chunks_seq ON chunks(sid, mid, seq);"
    "CREATE TABLE IF NOT EXISTS violations(sid TEXT, mid TEXT, n INTEGER, i INTEGER, body TEXT,"
    " PRIMARY KEY(sid, mid, n, i));"
    "CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT);";

/* Columns added after the first schema: added to older files, ignored when present. */
static int upgrade(sqlite3 *db, char **msg)
{
    (void)msg; /* unused: a column that already exists is not an error */
    sqlite3_exec(db, "ALTER TABLE monitors ADD COLUMN nraw INTEGER DEFAULT 0", NULL, NULL, NULL);
    return SQLITE_OK;
}

struct store *store_open(const char *path, char *err, size_t err_size)
{
    struct store *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&st->mu, NULL);
    int rc = sqlite3_open_v2(
        path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, err_size, "cannot open %s: %s", path,
                 st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
        store_close(st);
        return NULL;
    }
    sqlite3_busy_timeout(st->db, 5000);
    char *msg = NULL;
    if (SQLITE_OK != sqlite3_exec(st->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                                  NULL, NULL, &msg) ||
        SQLITE_OK != sqlite3_exec(st->db, schema, NULL, NULL, &msg) ||
        SQLITE_OK != upgrade(st->db, &msg)) {
        snprintf(err, err_size, "cannot initialise %s: %s", path, msg ? msg : "?");
        sqlite3_free(msg);
        store_close(st);
        return NULL;
    }
    return st;
}

void store_close(struct store *st)
{
    if (!st)
        return;
    if (st->db)
        sqlite3_close(st->db);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

/* Binds the arguments described by fmt: s = const char * (NULL → NULL), i = long long,
 * d = double. */
static int bindv(sqlite3_stmt *s, const char *fmt, va_list ap)
{
    for (int i = 1; *fmt; fmt++, i++) {
        int rc;
        if (*fmt == 's') {
            const char *v = va_arg(ap, const char *);
            rc = v ? sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(s, i);
        } else if (*fmt == 'i') {
            rc = sqlite3_bind_int64(s, i, va_arg(ap, long long));
        } else {
            rc = sqlite3_bind_double(s, i, va_arg(ap, double));
        }
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

static sqlite3_stmt *prep(struct store *st, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *s = NULL;
    if (SQLITE_OK != sqlite3_prepare_v2(st->db, sql, -1, &s, NULL)) {
        util_log(LOG_ERROR, "store: prepare failed: %s (%s)", sqlite3_errmsg(st->db), sql);
        return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    int rc = bindv(s, fmt, ap);
    va_end(ap);
    if (rc != SQLITE_OK) {
        util_log(LOG_ERROR, "store: bind failed: %s", sqlite3_errmsg(st->db));
        sqlite3_finalize(s);
        return NULL;
    }
    return s;
}

/* Runs a statement without result rows. Returns STORE_OK, STORE_DUP or STORE_ERR; with
 * need_change, STORE_NOTFOUND when no row changed. Caller holds st->mu. */
static int exec_locked(struct store *st, int need_change, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *s = NULL;
    if (SQLITE_OK != sqlite3_prepare_v2(st->db, sql, -1, &s, NULL)) {
        util_log(LOG_ERROR, "store: prepare failed: %s (%s)", sqlite3_errmsg(st->db), sql);
        return STORE_ERR;
    }
    va_list ap;
    va_start(ap, fmt);
    int rc = bindv(s, fmt, ap);
    va_end(ap);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc == SQLITE_CONSTRAINT)
        return STORE_DUP;
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        util_log(LOG_ERROR, "store: %s (%s)", sqlite3_errmsg(st->db), sql);
        return STORE_ERR;
    }
    if (need_change && sqlite3_changes(st->db) == 0)
        return STORE_NOTFOUND;
    return STORE_OK;
}

#define LOCKED(st, expr)                                                                           \
    do {                                                                                           \
        pthread_mutex_lock(&(st)->mu);                                                             \
        int rc_ = (expr);                                                                          \
        pthread_mutex_unlock(&(st)->mu);                                                           \
        return rc_;                                                                                \
    } while (0)

static int tx(struct store *st, const char *what)
{
    char *msg = NULL;
    if (SQLITE_OK != sqlite3_exec(st->db, what, NULL, NULL, &msg)) {
        util_log(LOG_ERROR, "store: %s: %s", what, msg ? msg : "?");
        sqlite3_free(msg);
        return STORE_ERR;
    }
    return STORE_OK;
}

/* Ends the transaction of a *_locked step: commits when rc is STORE_OK, else rolls back.
 * Returns rc, or STORE_ERR when the commit failed. */
static int tx_end(struct store *st, int rc)
{
    if (tx(st, rc == STORE_OK ? "COMMIT" : "ROLLBACK") && rc == STORE_OK)
        rc = STORE_ERR;
    return rc;
}

int store_writable(struct store *st)
{
    pthread_mutex_lock(&st->mu);
    int ok = tx(st, "BEGIN IMMEDIATE") == STORE_OK;
    if (ok) {
        ok = exec_locked(st, 0, "INSERT OR REPLACE INTO meta(k, v) VALUES('probe', ?)", "d",
                         util_now()) == STORE_OK;
        ok = (tx(st, ok ? "COMMIT" : "ROLLBACK") == STORE_OK) && ok;
    }
    pthread_mutex_unlock(&st->mu);
    return ok;
}

/* Converts the current row into a JSON object: column names as keys. Columns whose name ends
 * in "_json" are parsed and stored under the name without the suffix. */
static json_t *row_object(sqlite3_stmt *s)
{
    json_t *o = json_object();
    int n = sqlite3_column_count(s);
    for (int i = 0; i < n; i++) {
        const char *name = sqlite3_column_name(s, i);
        size_t nl = strlen(name);
        json_t *v;
        switch (sqlite3_column_type(s, i)) {
        case SQLITE_INTEGER:
            v = json_integer(sqlite3_column_int64(s, i));
            break;
        case SQLITE_FLOAT:
            v = json_real(sqlite3_column_double(s, i));
            break;
        case SQLITE_NULL:
            v = json_null();
            break;
        default: {
            const char *t = (const char *)sqlite3_column_text(s, i);
            int tl = sqlite3_column_bytes(s, i);
            if (nl > 5 && 0 == strcmp(name + nl - 5, "_json")) {
                v = json_loadb(t, (size_t)tl, JSON_DECODE_ANY, NULL);
                if (!v)
                    v = json_null();
            } else {
                v = json_stringn(t, (size_t)tl);
            }
        }
        }
        if (nl > 5 && 0 == strcmp(name + nl - 5, "_json")) {
            char key[64];
            snprintf(key, sizeof key, "%.*s", (int)(nl - 5), name);
            json_object_set_new(o, key, v);
        } else {
            json_object_set_new(o, name, v);
        }
    }
    return o;
}

/* Runs a query; returns an array of row objects (or NULL on error). */
static json_t *query_rows(struct store *st, sqlite3_stmt *s)
{
    if (!s)
        return NULL;
    json_t *a = json_array();
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        json_array_append_new(a, row_object(s));
    if (rc != SQLITE_DONE) {
        util_log(LOG_ERROR, "store: query failed: %s", sqlite3_errmsg(st->db));
        json_decref(a);
        a = NULL;
    }
    sqlite3_finalize(s);
    return a;
}

/* Under the lock, the rows of sql, which takes the session id sid and the object id id when
 * given (neither when sid is NULL). */
static json_t *select_rows(struct store *st, const char *sql, const char *sid, const char *id)
{
    pthread_mutex_lock(&st->mu);
    json_t *a = query_rows(st, prep(st, sql, !sid ? "" : !id ? "s" : "ss", sid, id));
    pthread_mutex_unlock(&st->mu);
    return a;
}

static json_t *first_row(json_t *a)
{
    json_t *o = NULL;
    if (a && json_array_size(a) > 0)
        o = json_incref(json_array_get(a, 0));
    json_decref(a);
    return o;
}

int store_sess_insert(struct store *st, const char *id, const char *token, double created_at,
                      long ttl)
{
    LOCKED(st, exec_locked(st, 0,
                           "INSERT INTO sessions(id, token, created_at, last_used, ttl)"
                           " VALUES(?, ?, ?, ?, ?)",
                           "ssddi", id, token, created_at, created_at, (long long)ttl));
}

static int sess_delete_locked(struct store *st, const char *id)
{
    if (tx(st, "BEGIN IMMEDIATE"))
        return STORE_ERR;
    int rc = exec_locked(st, 1, "DELETE FROM sessions WHERE id = ?", "s", id);
    static const char *const more[] = {
        "DELETE FROM policies WHERE sid = ?", "DELETE FROM monitors WHERE sid = ?",
        "DELETE FROM chunks WHERE sid = ?", "DELETE FROM violations WHERE sid = ?"};
    for (size_t i = 0; rc == STORE_OK && i < 4; i++)
        rc = exec_locked(st, 0, more[i], "s", id);
    return tx_end(st, rc);
}

int store_sess_delete(struct store *st, const char *id)
{
    LOCKED(st, sess_delete_locked(st, id));
}

int store_sess_touch(struct store *st, const char *id, double last_used)
{
    LOCKED(st, exec_locked(st, 1, "UPDATE sessions SET last_used = ? WHERE id = ?", "ds", last_used,
                           id));
}

long store_sess_next(struct store *st, const char *id, int monitor)
{
    long n = -1;
    pthread_mutex_lock(&st->mu);
    const char *col = monitor ? "next_monitor" : "next_policy";
    char sql[160];
    snprintf(sql, sizeof sql, "UPDATE sessions SET %s = %s + 1 WHERE id = ? RETURNING %s - 1", col,
             col, col);
    sqlite3_stmt *s = prep(st, sql, "s", id);
    if (s) {
        if (sqlite3_step(s) == SQLITE_ROW)
            n = (long)sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
    }
    pthread_mutex_unlock(&st->mu);
    return n;
}

json_t *store_sess_list(struct store *st)
{
    return select_rows(st,
                       "SELECT id, token, created_at, last_used, ttl, next_policy, next_monitor"
                       " FROM sessions ORDER BY rowid",
                       NULL, NULL);
}

int store_pol_insert(struct store *st, const char *sid, const char *pid, const char *name,
                     const char *language, const char *source, const char *rules_json)
{
    double now = util_now();
    LOCKED(st, exec_locked(st, 0,
                           "INSERT INTO policies(sid, id, name, language, source, rules,"
                           " created_at, updated_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                           "ssssssdd", sid, pid, name, language, source, rules_json, now, now));
}

int store_pol_update(struct store *st, const char *sid, const char *pid, const char *name,
                     const char *language, const char *source, const char *rules_json)
{
    LOCKED(st, exec_locked(st, 1,
                           "UPDATE policies SET name = ?, language = ?, source = ?, rules = ?,"
                           " updated_at = ? WHERE sid = ? AND id = ?",
                           "ssssdss", name, language, source, rules_json, util_now(), sid, pid));
}

#define POL_COLS "id, name, language, source AS policy, rules AS rules_json, created_at, updated_at"

json_t *store_pol_get(struct store *st, const char *sid, const char *pid)
{
    return first_row(
        select_rows(st, "SELECT " POL_COLS " FROM policies WHERE sid = ? AND id = ?", sid, pid));
}

json_t *store_pol_list(struct store *st, const char *sid)
{
    return select_rows(st, "SELECT " POL_COLS " FROM policies WHERE sid = ? ORDER BY rowid", sid,
                       NULL);
}

int store_pol_delete(struct store *st, const char *sid, const char *pid)
{
    LOCKED(st, exec_locked(st, 1, "DELETE FROM policies WHERE sid = ? AND id = ?", "ss", sid, pid));
}

int store_mon_insert(struct store *st, const char *sid, const char *mid, const char *name,
                     const char *policy_id, const char *language, const char *source,
                     const char *parameters_json, int compat)
{
    LOCKED(st, exec_locked(st, 0,
                           "INSERT INTO monitors(sid, id, name, policy_id, language, source,"
                           " parameters, created_at, compat) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           "sssssssdi", sid, mid, name, policy_id, language, source,
                           parameters_json, util_now(), (long long)compat));
}

#define MON_COLS                                                                                   \
    "id, name, policy_id, language, source AS policy, parameters AS parameters_json, events_seen," \
    " violations, hash, nraw, created_at, compat"

json_t *store_mon_get(struct store *st, const char *sid, const char *mid)
{
    return first_row(
        select_rows(st, "SELECT " MON_COLS " FROM monitors WHERE sid = ? AND id = ?", sid, mid));
}

json_t *store_mon_list(struct store *st, const char *sid)
{
    return select_rows(st, "SELECT " MON_COLS " FROM monitors WHERE sid = ? ORDER BY rowid", sid,
                       NULL);
}

static int mon_delete_locked(struct store *st, const char *sid, const char *mid)
{
    if (tx(st, "BEGIN IMMEDIATE"))
        return STORE_ERR;
    int rc = exec_locked(st, 1, "DELETE FROM monitors WHERE sid = ? AND id = ?", "ss", sid, mid);
    if (rc == STORE_OK)
        rc = exec_locked(st, 0, "DELETE FROM chunks WHERE sid = ? AND mid = ?", "ss", sid, mid);
    if (rc == STORE_OK)
        rc = exec_locked(st, 0, "DELETE FROM violations WHERE sid = ? AND mid = ?", "ss", sid, mid);
    return tx_end(st, rc);
}

int store_mon_delete(struct store *st, const char *sid, const char *mid)
{
    LOCKED(st, mon_delete_locked(st, sid, mid));
}

static int mon_reset_locked(struct store *st, const char *sid, const char *mid)
{
    if (tx(st, "BEGIN IMMEDIATE"))
        return STORE_ERR;
    int rc = exec_locked(
        st, 1, "UPDATE monitors SET events_seen = 0, nraw = 0, hash = '0' WHERE sid = ? AND id = ?",
        "ss", sid, mid);
    if (rc == STORE_OK)
        rc = exec_locked(st, 0, "DELETE FROM chunks WHERE sid = ? AND mid = ?", "ss", sid, mid);
    return tx_end(st, rc);
}

int store_mon_reset(struct store *st, const char *sid, const char *mid)
{
    LOCKED(st, mon_reset_locked(st, sid, mid));
}

static int chunk_commit_locked(struct store *st, const char *sid, const char *mid, long long seq,
                               const char *events_json, long nraw, long events_seen, uint64_t hash,
                               json_t *violations, const char *response_json)
{
    if (tx(st, "BEGIN IMMEDIATE"))
        return STORE_ERR;
    long long n = -1;
    int rc = STORE_ERR;
    sqlite3_stmt *s = prep(st,
                           "UPDATE monitors SET nchunks = nchunks + 1, events_seen = ?, hash = ?,"
                           " violations = violations + ?, nraw = nraw + ? WHERE sid = ? AND id = ?"
                           " RETURNING nchunks",
                           "isiiss", (long long)events_seen, "", 0LL, (long long)nraw, sid, mid);
    /* Re-bind hash and count properly (the format string cannot carry uint64). */
    if (s) {
        char hs[24];
        snprintf(hs, sizeof hs, "%016" PRIx64, hash);
        sqlite3_bind_text(s, 2, hs, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 3, violations ? (long long)json_array_size(violations) : 0);
        if (sqlite3_step(s) == SQLITE_ROW) {
            n = sqlite3_column_int64(s, 0);
            rc = STORE_OK;
        } else {
            rc = STORE_NOTFOUND;
        }
        sqlite3_finalize(s);
    }
    if (rc == STORE_OK)
        rc = exec_locked(st, 0,
                         "INSERT INTO chunks(sid, mid, n, seq, events, events_seen, response)"
                         " VALUES(?, ?, ?, ?, ?, ?, ?)",
                         "ssiisis", sid, mid, n, seq, events_json, (long long)events_seen,
                         response_json);
    if (rc == STORE_OK && seq < 0)
        rc = exec_locked(st, 0, "UPDATE chunks SET seq = NULL WHERE sid = ? AND mid = ? AND n = ?",
                         "ssi", sid, mid, n);
    for (size_t i = 0; rc == STORE_OK && violations && i < json_array_size(violations); i++) {
        char *b = json_dumps(json_array_get(violations, i), JSON_COMPACT | JSON_ENCODE_ANY);
        rc = b ? exec_locked(st, 0,
                             "INSERT INTO violations(sid, mid, n, i, body) VALUES(?, ?, ?, ?, ?)",
                             "ssiis", sid, mid, n, (long long)i, b)
               : STORE_ERR;
        free(b);
    }
    return tx_end(st, rc);
}

int store_chunk_commit(struct store *st, const char *sid, const char *mid, long long seq,
                       const char *events_json, long nraw, long events_seen, uint64_t hash,
                       json_t *violations, const char *response_json)
{
    LOCKED(st, chunk_commit_locked(st, sid, mid, seq, events_json, nraw, events_seen, hash,
                                   violations, response_json));
}

char *store_chunk_by_seq(struct store *st, const char *sid, const char *mid, long long seq)
{
    char *out = NULL;
    pthread_mutex_lock(&st->mu);
    sqlite3_stmt *s = prep(st, "SELECT response FROM chunks WHERE sid = ? AND mid = ? AND seq = ?",
                           "ssi", sid, mid, seq);
    if (s && sqlite3_step(s) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(s, 0);
        out = t ? strdup(t) : NULL;
    }
    sqlite3_finalize(s);
    pthread_mutex_unlock(&st->mu);
    return out;
}

long long store_chunk_max_seq(struct store *st, const char *sid, const char *mid)
{
    long long out = -1;
    pthread_mutex_lock(&st->mu);
    sqlite3_stmt *s =
        prep(st, "SELECT max(seq) FROM chunks WHERE sid = ? AND mid = ?", "ss", sid, mid);
    if (s && sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
        out = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    pthread_mutex_unlock(&st->mu);
    return out;
}

json_t *store_chunk_list(struct store *st, const char *sid, const char *mid)
{
    json_t *a = json_array();
    pthread_mutex_lock(&st->mu);
    sqlite3_stmt *s =
        prep(st, "SELECT events FROM chunks WHERE sid = ? AND mid = ? ORDER BY n", "ss", sid, mid);
    while (s && sqlite3_step(s) == SQLITE_ROW)
        json_array_append_new(a, json_stringn((const char *)sqlite3_column_text(s, 0),
                                              (size_t)sqlite3_column_bytes(s, 0)));
    sqlite3_finalize(s);
    pthread_mutex_unlock(&st->mu);
    return a;
}

json_t *store_viol_list(struct store *st, const char *sid, const char *mid)
{
    json_t *a = json_array();
    pthread_mutex_lock(&st->mu);
    sqlite3_stmt *s = prep(
        st, "SELECT body FROM violations WHERE sid = ? AND mid = ? ORDER BY n, i", "ss", sid, mid);
    while (s && sqlite3_step(s) == SQLITE_ROW) {
        json_t *v = json_loadb((const char *)sqlite3_column_text(s, 0),
                               (size_t)sqlite3_column_bytes(s, 0), JSON_DECODE_ANY, NULL);
        if (v)
            json_array_append_new(a, v);
    }
    sqlite3_finalize(s);
    pthread_mutex_unlock(&st->mu);
    return a;
}

/* session.c — session table, worker supervision and replay, the stateless pool (session.h). */
#include "session.h"

#include "http.h"
#include "store.h"
#include "util.h"
#include "worker.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NBUCKETS 1024

struct sess {
    char id[65];
    char token[33];
    double created_at;
    double last_used; /* guarded by tab_mu */
    double persisted; /* last_used as last written to the store; guarded by tab_mu */
    long ttl;
    struct wk w;    /* guarded by mu */
    int has_worker; /* guarded by mu */
    int deleted;    /* guarded by tab_mu */
    int refs;       /* guarded by tab_mu */
    pthread_mutex_t mu;
    struct sess *next; /* bucket chain, guarded by tab_mu */
};

struct slot {
    pthread_mutex_t mu;
    struct wk w;
    int has_worker;
    int busy; /* guarded by pool_mu */
};

static struct sess_cfg cfg;
static struct zyg *zyg;
static struct store *store;

static pthread_mutex_t tab_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sess *buckets[NBUCKETS];
static int nsessions;

static pthread_mutex_t lim_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t lim_cv = PTHREAD_COND_INITIALIZER;
static int lim_inflight, lim_waiting;

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cv = PTHREAD_COND_INITIALIZER;
static struct slot *pool;
static int pool_waiting;

static pthread_t reaper;
static int reaper_started;
static int stopping;
static pthread_mutex_t reap_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reap_cv = PTHREAD_COND_INITIALIZER;

/* Metrics. */
static pthread_mutex_t met_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long m_spawns, m_spawn_fail, m_deaths, m_timeouts, m_evictions, m_expired,
    m_replays, m_busy, m_zygote_restarts;
static int m_workers;

#define MET_INC(x)                                                                                 \
    do {                                                                                           \
        pthread_mutex_lock(&met_mu);                                                               \
        (x)++;                                                                                     \
        pthread_mutex_unlock(&met_mu);                                                             \
    } while (0)
#define MET_ADD(x, d)                                                                              \
    do {                                                                                           \
        pthread_mutex_lock(&met_mu);                                                               \
        (x) += (d);                                                                                \
        pthread_mutex_unlock(&met_mu);                                                             \
    } while (0)

static unsigned bucket_of(const char *id)
{
    return (unsigned)(util_fnv1a(UTIL_FNV_INIT, id, strlen(id)) % NBUCKETS);
}

/* ---- the limit on calls in flight ---- */

static int lim_acquire(int timeout_ms)
{
    pthread_mutex_lock(&lim_mu);
    if (lim_inflight < cfg.max_concurrent) {
        lim_inflight++;
        pthread_mutex_unlock(&lim_mu);
        return 0;
    }
    if (lim_waiting >= cfg.max_queue) {
        pthread_mutex_unlock(&lim_mu);
        MET_INC(m_busy);
        return SESS_EBUSY;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    lim_waiting++;
    int rc = 0;
    while (lim_inflight >= cfg.max_concurrent && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&lim_cv, &lim_mu, &ts);
    lim_waiting--;
    if (lim_inflight >= cfg.max_concurrent) {
        pthread_mutex_unlock(&lim_mu);
        MET_INC(m_busy);
        return SESS_EBUSY;
    }
    lim_inflight++;
    pthread_mutex_unlock(&lim_mu);
    return 0;
}

static void lim_release(void)
{
    pthread_mutex_lock(&lim_mu);
    lim_inflight--;
    pthread_cond_signal(&lim_cv);
    pthread_mutex_unlock(&lim_mu);
}

/* ---- workers ---- */

/* Restarts the zygote when it has died (killed, crashed). 1 when there is a live zygote to ask
 * now (restarted here, or by another thread, or never dead), 0 when the restart failed. */
static int zygote_revive(void)
{
    struct pe_err e = {0};
    int rc = zyg_revive(zyg, &e);
    if (rc == PE_OK) {
        MET_INC(m_zygote_restarts);
        util_log(LOG_WARN,
                 "worker zygote died (%s); sessions keep their workers, new ones come "
                 "from the new zygote",
                 e.msg);
        return 1;
    }
    if (rc == PE_EAGAIN)
        return 1;
    /* retried on every spawn and every second by the reaper: said at most every 30 s */
    static double last_said; /* guarded by met_mu */
    double now = util_now();
    pthread_mutex_lock(&met_mu);
    int say = now - last_said >= 30.0;
    if (say)
        last_said = now;
    pthread_mutex_unlock(&met_mu);
    if (say)
        util_log(LOG_ERROR, "worker zygote: %s (%s); retrying on every spawn and every second",
                 e.msg, pe_status_str(rc));
    return 0;
}

static int spawn(struct wk *w, struct pe_err *err)
{
    *w = (struct wk)WK_INIT;
    int rc = zyg_spawn(zyg, w, err);
    if (rc == PE_EDEAD && zygote_revive())
        rc = zyg_spawn(zyg, w, err);
    if (rc != PE_OK) {
        MET_INC(m_spawn_fail);
        util_log(LOG_ERROR, "worker spawn failed: %s (%s)", err->msg, pe_status_str(rc));
        return rc;
    }
    MET_INC(m_spawns);
    MET_ADD(m_workers, 1);
    return PE_OK;
}

static void kill_worker(struct wk *w, int *has)
{
    if (*has) {
        wk_kill(w);
        *has = 0;
        MET_ADD(m_workers, -1);
    }
}

/* 1 if an idle worker's socket shows EOF or unexpected data (it died while idle). */
static int worker_dead(const struct wk *w)
{
    struct pollfd p = {.fd = w->fd, .events = POLLIN};
    int n = poll(&p, 1, 0);
    return n > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL));
}

/* A call whose answer must be {"ok": true}; used by replay. Returns PE_OK or the failure. */
static int call_expect_ok(struct wk *w, json_t *req, const char *what, struct pe_err *err)
{
    char *s = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!s)
        return pe_err_set(err, PE_ENOMEM, "out of memory");
    char *resp = NULL;
    size_t rl = 0;
    int rc = wk_call(w, s, strlen(s), cfg.call_timeout_ms, &resp, &rl, err);
    free(s);
    if (rc == PE_OK) {
        json_t *r = json_loadb(resp, rl, 0, NULL);
        if (!r || !json_is_true(json_object_get(r, "ok")))
            util_log(LOG_WARN, "replay: %s was refused by the worker: %.200s", what, resp);
        json_decref(r);
    }
    free(resp);
    return rc;
}

static int call_raw(struct wk *w, const char *req, size_t len, struct pe_err *err)
{
    char *resp = NULL;
    size_t rl = 0;
    int rc = wk_call(w, req, len, cfg.call_timeout_ms, &resp, &rl, err);
    free(resp);
    return rc;
}

/* Rebuilds a session's derived state in a fresh worker from the store. */
static int replay(const char *sid, struct wk *w, struct pe_err *err)
{
    int rc = PE_OK;
    json_t *pols = store_pol_list(store, sid);
    size_t i;
    json_t *p;
    for (i = 0; i < json_array_size(pols) && (p = json_array_get(pols, i)); i++) {
        json_t *req = json_pack("{s:s,s:O,s:O,s:O}", "op", "policy_put", "pid",
                                json_object_get(p, "id"), "policy", json_object_get(p, "policy"),
                                "language", json_object_get(p, "language"));
        rc = call_expect_ok(w, req, "policy_put", err);
        if (rc != PE_OK)
            break;
    }
    json_decref(pols);
    json_t *mons = rc == PE_OK ? store_mon_list(store, sid) : NULL;
    json_t *m;
    for (i = 0; i < json_array_size(mons) && (m = json_array_get(mons, i)); i++) {
        const char *mid = json_string_value(json_object_get(m, "id"));
        json_t *req =
            json_pack("{s:s,s:s,s:O,s:O}", "op", "monitor_new", "mid", mid, "policy",
                      json_object_get(m, "policy"), "language", json_object_get(m, "language"));
        json_t *params = json_object_get(m, "parameters");
        if (json_is_object(params))
            json_object_set(req, "parameters", params);
        rc = call_expect_ok(w, req, "monitor_new", err);
        if (rc != PE_OK)
            break;
        json_t *chunks = store_chunk_list(store, sid, mid);
        json_t *mid_j = json_string(mid);
        char *mid_s = json_dumps(mid_j, JSON_ENCODE_ANY);
        json_decref(mid_j);
        size_t k;
        json_t *c;
        for (k = 0; k < json_array_size(chunks) && (c = json_array_get(chunks, k)); k++) {
            size_t el = json_string_length(c);
            size_t cap = el + strlen(mid_s) + 96;
            char *req_s = malloc(cap);
            if (!req_s) {
                rc = pe_err_set(err, PE_ENOMEM, "out of memory");
                break;
            }
            int n = snprintf(
                req_s, cap,
                "{\"op\":\"monitor_events\",\"mid\":%s,\"format\":\"native\",\"events\":", mid_s);
            memcpy(req_s + n, json_string_value(c), el);
            req_s[(size_t)n + el] = '}';
            rc = call_raw(w, req_s, (size_t)n + el + 1, err);
            free(req_s);
            if (rc != PE_OK)
                break;
        }
        free(mid_s);
        json_decref(chunks);
        if (rc != PE_OK)
            break;
    }
    json_decref(mons);
    MET_INC(m_replays);
    return rc;
}

/* Makes sure the session has a live worker (spawn + replay). With s->mu held. */
static int ensure_worker(struct sess *s, int do_replay, struct pe_err *err)
{
    if (s->has_worker && worker_dead(&s->w)) {
        util_log(LOG_WARN, "session %s: worker %d died while idle; respawning", s->id,
                 (int)s->w.pid);
        MET_INC(m_deaths);
        kill_worker(&s->w, &s->has_worker);
    }
    if (s->has_worker)
        return PE_OK;
    int rc = spawn(&s->w, err);
    if (rc != PE_OK)
        return rc;
    s->has_worker = 1;
    if (do_replay) {
        rc = replay(s->id, &s->w, err);
        if (rc != PE_OK) {
            util_log(LOG_ERROR, "session %s: replay failed: %s", s->id, err->msg);
            if (rc == PE_ETIMEDOUT || rc == PE_EDEAD || rc == PE_EPROTO)
                MET_INC(m_deaths);
            kill_worker(&s->w, &s->has_worker);
        }
    }
    return rc;
}

int sess_call(struct sess *s, const char *req, size_t len, char **resp, size_t *resp_len,
              struct pe_err *err)
{
    int rc = lim_acquire(cfg.call_timeout_ms);
    if (rc)
        return rc;
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = ensure_worker(s, 1, err);
        if (rc != PE_OK)
            break;
        rc = wk_call(&s->w, req, len, cfg.call_timeout_ms, resp, resp_len, err);
        if (rc == PE_OK)
            break;
        MET_INC(m_deaths);
        if (rc == PE_ETIMEDOUT)
            MET_INC(m_timeouts);
        util_log(LOG_WARN, "session %s: worker %d lost: %s (%s)", s->id, (int)s->w.pid, err->msg,
                 pe_status_str(rc));
        kill_worker(&s->w, &s->has_worker);
        if (rc != PE_EDEAD)
            break; /* a timeout or a protocol error is not retried */
    }
    lim_release();
    /* The TTL slides from the last use; the store learns it now and then, so that a restart
     * does not expire a session in use. */
    double now = util_now();
    double every = s->ttl > 0 ? (double)s->ttl / 8.0 : 60.0;
    if (every > 60.0)
        every = 60.0;
    pthread_mutex_lock(&tab_mu);
    s->last_used = now;
    int persist = now - s->persisted >= every;
    if (persist)
        s->persisted = now;
    pthread_mutex_unlock(&tab_mu);
    if (persist)
        store_sess_touch(store, s->id, now);
    return rc;
}

void sess_drop_worker(struct sess *s)
{
    kill_worker(&s->w, &s->has_worker);
}

/* ---- the table ---- */

static struct sess *find_locked(const char *id)
{
    for (struct sess *s = buckets[bucket_of(id)]; s; s = s->next)
        if (0 == strcmp(s->id, id))
            return s;
    return NULL;
}

static void unlink_locked(struct sess *s)
{
    struct sess **pp = &buckets[bucket_of(s->id)];
    while (*pp && *pp != s)
        pp = &(*pp)->next;
    if (*pp)
        *pp = s->next;
    s->next = NULL;
    s->deleted = 1;
    nsessions--;
}

static void free_sess(struct sess *s)
{
    kill_worker(&s->w, &s->has_worker);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static struct sess *new_sess(const char *id, const char *token, double created, double last,
                             long ttl)
{
    struct sess *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    snprintf(s->id, sizeof s->id, "%s", id);
    snprintf(s->token, sizeof s->token, "%s", token ? token : "");
    s->created_at = created;
    s->last_used = last;
    s->persisted = last;
    s->ttl = ttl;
    s->w = (struct wk)WK_INIT;
    s->refs = 1; /* the table's reference */
    pthread_mutex_init(&s->mu, NULL);
    return s;
}

int sess_create(const char *id, long ttl, char *id_out, char *token_out)
{
    char gen[37];
    if (!id) {
        util_uuid4(gen);
        id = gen;
    }
    if (ttl <= 0)
        ttl = cfg.ttl_default;
    if (ttl > cfg.ttl_max)
        ttl = cfg.ttl_max;
    char token[33];
    util_rand_hex(token, 16);
    double now = util_now();
    pthread_mutex_lock(&tab_mu);
    if (find_locked(id)) {
        pthread_mutex_unlock(&tab_mu);
        return SESS_EDUP;
    }
    if (nsessions >= cfg.max_sessions) {
        pthread_mutex_unlock(&tab_mu);
        return SESS_EFULL;
    }
    struct sess *s = new_sess(id, token, now, now, ttl);
    if (!s) {
        pthread_mutex_unlock(&tab_mu);
        return PE_ENOMEM;
    }
    int rc = store_sess_insert(store, id, token, now, ttl);
    if (rc != STORE_OK) {
        pthread_mutex_unlock(&tab_mu);
        free_sess(s);
        return rc == STORE_DUP ? SESS_EDUP : PE_ESYS;
    }
    unsigned b = bucket_of(id);
    s->next = buckets[b];
    buckets[b] = s;
    nsessions++;
    s->refs++; /* ours, for the spawn below */
    pthread_mutex_unlock(&tab_mu);
    snprintf(id_out, 65, "%s", id);
    snprintf(token_out, 33, "%s", token);
    /* Spawn eagerly so that the session is ready. A session whose worker cannot be spawned
     * (zygote gone and not restartable, a jail step failing) is not kept: the client gets a
     * 503 now rather than a session that answers 503 to everything. */
    struct pe_err err = {0};
    pthread_mutex_lock(&s->mu);
    int wrc = ensure_worker(s, 0, &err);
    pthread_mutex_unlock(&s->mu);
    if (wrc != PE_OK) {
        util_log(LOG_ERROR, "session %s: not created, no worker: %s", id, err.msg);
        sess_put(s);
        sess_delete(id);
        return SESS_ENOWORKER;
    }
    sess_put(s);
    return 0;
}

struct sess *sess_get(const char *id)
{
    pthread_mutex_lock(&tab_mu);
    struct sess *s = find_locked(id);
    if (s) {
        s->refs++;
        s->last_used = util_now();
    }
    pthread_mutex_unlock(&tab_mu);
    return s;
}

void sess_put(struct sess *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&tab_mu);
    int last = --s->refs == 0;
    pthread_mutex_unlock(&tab_mu);
    if (last)
        free_sess(s);
}

static void destroy(struct sess *s, const char *why)
{
    /* s is unlinked; wait for the request in flight, kill the worker. */
    pthread_mutex_lock(&s->mu);
    kill_worker(&s->w, &s->has_worker);
    pthread_mutex_unlock(&s->mu);
    if (store_sess_delete(store, s->id) == STORE_ERR)
        util_log(LOG_ERROR, "session %s: cannot delete its stored state", s->id);
    util_log(LOG_DEBUG, "session %s %s", s->id, why);
    sess_put(s); /* the table's reference */
}

int sess_delete(const char *id)
{
    pthread_mutex_lock(&tab_mu);
    struct sess *s = find_locked(id);
    if (!s) {
        pthread_mutex_unlock(&tab_mu);
        return SESS_ENOTFOUND;
    }
    unlink_locked(s);
    pthread_mutex_unlock(&tab_mu);
    destroy(s, "deleted");
    return 0;
}

const char *sess_id(const struct sess *s)
{
    return s->id;
}

int sess_token_ok(const struct sess *s, const char *tok)
{
    size_t n = strlen(s->token);
    if (strlen(tok) != n || n == 0)
        return 0;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(s->token[i] ^ tok[i]);
    return diff == 0;
}

json_t *sess_info(struct sess *s, int with_token)
{
    pthread_mutex_lock(&tab_mu);
    double last = s->last_used;
    pthread_mutex_unlock(&tab_mu);
    json_t *pid;
    if (0 == pthread_mutex_trylock(&s->mu)) {
        if (s->has_worker && worker_dead(&s->w)) {
            MET_INC(m_deaths);
            kill_worker(&s->w, &s->has_worker);
        }
        pid = s->has_worker ? json_integer(s->w.pid) : json_null();
        pthread_mutex_unlock(&s->mu);
    } else {
        /* A request is in flight: report its worker without waiting for it. */
        pid = json_integer(__atomic_load_n(&s->w.pid, __ATOMIC_RELAXED));
    }
    json_t *o = json_pack("{s:s,s:f,s:f,s:f,s:I,s:o}", "id", s->id, "created_at", s->created_at,
                          "last_used", last, "expires_at", last + (double)s->ttl, "ttl",
                          (json_int_t)s->ttl, "worker_pid", pid);
    if (with_token)
        json_object_set_new(o, "token", json_string(s->token));
    return o;
}

int sess_lock(struct sess *s)
{
    pthread_mutex_lock(&s->mu);
    pthread_mutex_lock(&tab_mu);
    int gone = s->deleted;
    pthread_mutex_unlock(&tab_mu);
    if (gone) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    return 0;
}

void sess_unlock(struct sess *s)
{
    pthread_mutex_unlock(&s->mu);
}

/* ---- the stateless pool ---- */

int sess_pool_call(const char *req, size_t len, char **resp, size_t *resp_len, struct pe_err *err)
{
    int rc = lim_acquire(cfg.call_timeout_ms);
    if (rc)
        return rc;
    pthread_mutex_lock(&pool_mu);
    struct slot *sl = NULL;
    for (;;) {
        for (int i = 0; i < cfg.pool_size && !sl; i++)
            if (!pool[i].busy)
                sl = &pool[i];
        if (sl || stopping)
            break;
        pool_waiting++;
        pthread_cond_wait(&pool_cv, &pool_mu);
        pool_waiting--;
    }
    if (!sl) {
        pthread_mutex_unlock(&pool_mu);
        lim_release();
        return pe_err_set(err, PE_EDEAD, "shutting down");
    }
    sl->busy = 1;
    pthread_mutex_unlock(&pool_mu);
    pthread_mutex_lock(&sl->mu);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (sl->has_worker && worker_dead(&sl->w)) {
            MET_INC(m_deaths);
            kill_worker(&sl->w, &sl->has_worker);
        }
        if (!sl->has_worker) {
            rc = spawn(&sl->w, err);
            if (rc != PE_OK)
                break;
            sl->has_worker = 1;
        }
        rc = wk_call(&sl->w, req, len, cfg.call_timeout_ms, resp, resp_len, err);
        if (rc == PE_OK)
            break;
        MET_INC(m_deaths);
        if (rc == PE_ETIMEDOUT)
            MET_INC(m_timeouts);
        kill_worker(&sl->w, &sl->has_worker);
        if (rc != PE_EDEAD)
            break;
    }
    pthread_mutex_unlock(&sl->mu);
    pthread_mutex_lock(&pool_mu);
    sl->busy = 0;
    pthread_cond_signal(&pool_cv);
    pthread_mutex_unlock(&pool_mu);
    lim_release();
    return rc;
}

int sess_probe_spawn(void)
{
    struct wk w;
    struct pe_err err = {0};
    if (spawn(&w, &err) != PE_OK)
        return 0;
    static const char ping[] = "{\"op\":\"ping\"}";
    char *resp = NULL;
    size_t rl = 0;
    int rc = wk_call(&w, ping, sizeof ping - 1, cfg.call_timeout_ms, &resp, &rl, &err);
    free(resp);
    int has = 1;
    kill_worker(&w, &has);
    return rc == PE_OK;
}

/* ---- expiry and eviction ---- */

static void reap_once(void)
{
    double now = util_now();
    struct sess *expired = NULL;
    struct sess *idle[64] = {0};
    int nidle = 0;
    pthread_mutex_lock(&tab_mu);
    for (int b = 0; b < NBUCKETS; b++) {
        struct sess *s = buckets[b];
        while (s) {
            struct sess *next = s->next;
            if (s->ttl > 0 && now > s->last_used + (double)s->ttl) {
                unlink_locked(s);
                s->next = expired;
                expired = s;
            } else if (cfg.idle_evict_s > 0 && now - s->last_used > cfg.idle_evict_s &&
                       nidle < 64) {
                s->refs++;
                idle[nidle++] = s;
            }
            s = next;
        }
    }
    pthread_mutex_unlock(&tab_mu);
    while (expired) {
        struct sess *s = expired;
        expired = s->next;
        s->next = NULL;
        MET_INC(m_expired);
        util_log(LOG_INFO, "session %s expired", s->id);
        destroy(s, "expired");
    }
    for (int i = 0; i < nidle; i++) {
        struct sess *s = idle[i];
        if (0 == pthread_mutex_trylock(&s->mu)) {
            if (s->has_worker) {
                util_log(LOG_DEBUG, "session %s: evicting idle worker %d", s->id, (int)s->w.pid);
                kill_worker(&s->w, &s->has_worker);
                MET_INC(m_evictions);
            }
            pthread_mutex_unlock(&s->mu);
        }
        sess_put(s);
    }
}

static void *reaper_main(void *arg)
{
    (void)arg; /* unused */
    pthread_mutex_lock(&reap_mu);
    while (!stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&reap_cv, &reap_mu, &ts);
        if (stopping)
            break;
        pthread_mutex_unlock(&reap_mu);
        zygote_revive(); /* a dead zygote is replaced before a request has to wait for it */
        reap_once();
        pthread_mutex_lock(&reap_mu);
    }
    pthread_mutex_unlock(&reap_mu);
    return NULL;
}

int sess_init(const struct sess_cfg *c, struct zyg *z, struct store *st)
{
    cfg = *c;
    if (cfg.pool_size < 1)
        cfg.pool_size = 1;
    if (cfg.max_concurrent < 1)
        cfg.max_concurrent = 1;
    zyg = z;
    store = st;
    pool = calloc((size_t)cfg.pool_size, sizeof *pool);
    if (!pool)
        return PE_ENOMEM;
    for (int i = 0; i < cfg.pool_size; i++) {
        pthread_mutex_init(&pool[i].mu, NULL);
        pool[i].w = (struct wk)WK_INIT;
    }
    /* Resume stored sessions; their workers are rebuilt lazily on first use. */
    json_t *all = store_sess_list(st);
    double now = util_now();
    size_t i;
    json_t *o;
    int resumed = 0, dropped = 0;
    for (i = 0; i < json_array_size(all) && (o = json_array_get(all, i)); i++) {
        const char *id = json_string_value(json_object_get(o, "id"));
        double last = json_number_value(json_object_get(o, "last_used"));
        long ttl = (long)json_integer_value(json_object_get(o, "ttl"));
        if (!id)
            continue;
        if (ttl > 0 && now > last + (double)ttl) {
            store_sess_delete(st, id);
            dropped++;
            continue;
        }
        struct sess *s = new_sess(id, json_string_value(json_object_get(o, "token")),
                                  json_number_value(json_object_get(o, "created_at")), now, ttl);
        if (!s)
            break;
        unsigned b = bucket_of(id);
        s->next = buckets[b];
        buckets[b] = s;
        nsessions++;
        resumed++;
    }
    json_decref(all);
    if (resumed || dropped)
        util_log(LOG_INFO, "store: resumed %d session(s), dropped %d expired", resumed, dropped);
    if (0 != pthread_create(&reaper, NULL, reaper_main, NULL))
        return PE_ESYS;
    reaper_started = 1;
    return PE_OK;
}

void sess_shutdown(void)
{
    pthread_mutex_lock(&reap_mu);
    stopping = 1;
    pthread_cond_broadcast(&reap_cv);
    pthread_mutex_unlock(&reap_mu);
    if (reaper_started)
        pthread_join(reaper, NULL);
    reaper_started = 0;
    pthread_mutex_lock(&pool_mu);
    pthread_cond_broadcast(&pool_cv);
    pthread_mutex_unlock(&pool_mu);
    pthread_mutex_lock(&tab_mu);
    for (int b = 0; b < NBUCKETS; b++) {
        struct sess *s = buckets[b];
        while (s) {
            struct sess *next = s->next;
            s->next = NULL;
            s->deleted = 1;
            kill_worker(&s->w, &s->has_worker);
            if (--s->refs == 0) {
                pthread_mutex_destroy(&s->mu);
                free(s);
            }
            s = next;
        }
        buckets[b] = NULL;
    }
    nsessions = 0;
    pthread_mutex_unlock(&tab_mu);
    for (int i = 0; pool && i < cfg.pool_size; i++) {
        kill_worker(&pool[i].w, &pool[i].has_worker);
        pthread_mutex_destroy(&pool[i].mu);
    }
    free(pool);
    pool = NULL;
}

void sess_metrics(char **buf, size_t *len, size_t *cap)
{
    pthread_mutex_lock(&tab_mu);
    int ns = nsessions;
    pthread_mutex_unlock(&tab_mu);
    pthread_mutex_lock(&lim_mu);
    int infl = lim_inflight, wait = lim_waiting;
    pthread_mutex_unlock(&lim_mu);
    pthread_mutex_lock(&met_mu);
    http_bufprintf(buf, len, cap,
                   "# TYPE vigil_sessions gauge\nvigil_sessions %d\n"
                   "# TYPE vigil_workers gauge\nvigil_workers %d\n"
                   "# TYPE vigil_worker_spawns_total counter\nvigil_worker_spawns_total %lu\n"
                   "# TYPE vigil_worker_spawn_failures_total counter\n"
                   "vigil_worker_spawn_failures_total %lu\n"
                   "# TYPE vigil_worker_deaths_total counter\nvigil_worker_deaths_total %lu\n"
                   "# TYPE vigil_worker_timeouts_total counter\nvigil_worker_timeouts_total %lu\n"
                   "# TYPE vigil_worker_evictions_total counter\nvigil_worker_evictions_total %lu\n"
                   "# TYPE vigil_worker_replays_total counter\nvigil_worker_replays_total %lu\n"
                   "# TYPE vigil_sessions_expired_total counter\nvigil_sessions_expired_total %lu\n"
                   "# TYPE vigil_evaluations_inflight gauge\nvigil_evaluations_inflight %d\n"
                   "# TYPE vigil_evaluations_queued gauge\nvigil_evaluations_queued %d\n"
                   "# TYPE vigil_evaluations_rejected_total counter\n"
                   "vigil_evaluations_rejected_total %lu\n"
                   "# TYPE vigil_zygote_restarts_total counter\nvigil_zygote_restarts_total %lu\n",
                   ns, m_workers, m_spawns, m_spawn_fail, m_deaths, m_timeouts, m_evictions,
                   m_replays, m_expired, infl, wait, m_busy, m_zygote_restarts);
    pthread_mutex_unlock(&met_mu);
    (void)pool_waiting;
}

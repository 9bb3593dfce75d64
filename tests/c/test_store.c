/*
 * test_store.c — the SQLite store: sessions, policies, monitors, chunks with idempotent seq,
 * violations, cascading deletes, durability across a reopen of the same file.
 */
#include "store.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *str_of(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

int main(void)
{
    char path[] = "/tmp/vigil-test-store-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 1;
    close(fd);
    char err[256] = "";
    struct store *st = store_open(path, err, sizeof err);
    ok(st != NULL, "open %s %s", path, err);
    if (!st)
        return done_testing();
    ok(store_writable(st), "writable");

    is(store_sess_insert(st, "s1", "tok", 100.0, 60), STORE_OK, "insert session");
    is(store_sess_insert(st, "s1", "tok", 100.0, 60), STORE_DUP, "duplicate session id");
    is(store_sess_insert(st, "s2", "tok2", 101.0, 0), STORE_OK, "second session");
    is(store_sess_next(st, "s1", 0), 1, "first policy number");
    is(store_sess_next(st, "s1", 0), 2, "second policy number");
    is(store_sess_next(st, "s1", 1), 1, "first monitor number");
    is(store_sess_next(st, "nosuch", 0), -1, "no numbers for an unknown session");
    is(store_sess_touch(st, "s1", 150.0), STORE_OK, "touch");
    is(store_sess_touch(st, "nosuch", 150.0), STORE_NOTFOUND, "touch unknown");

    is(store_pol_insert(st, "s1", "p", "P", "invariant", "raise \"x\"", "[{\"index\":0}]"),
       STORE_OK, "insert policy");
    is(store_pol_insert(st, "s1", "p", "P", "invariant", "x", "[]"), STORE_DUP, "duplicate pid");
    is(store_pol_insert(st, "s1", "q", "Q", "lua", "rule{}", "[]"), STORE_OK, "second policy");
    json_t *p = store_pol_get(st, "s1", "p");
    ok(p && 0 == strcmp(str_of(p, "policy"), "raise \"x\"") && 0 == strcmp(str_of(p, "name"), "P"),
       "get policy");
    ok(p && json_is_array(json_object_get(p, "rules")) &&
           json_array_size(json_object_get(p, "rules")) == 1,
       "rules come back as JSON");
    json_decref(p);
    is(store_pol_update(st, "s1", "p", "P2", "invariant", "new", "[]"), STORE_OK, "update policy");
    p = store_pol_get(st, "s1", "p");
    ok(p && 0 == strcmp(str_of(p, "policy"), "new") && 0 == strcmp(str_of(p, "name"), "P2"),
       "updated");
    json_decref(p);
    is(store_pol_update(st, "s1", "zz", "x", "invariant", "x", "[]"), STORE_NOTFOUND,
       "update unknown policy");
    json_t *l = store_pol_list(st, "s1");
    ok(json_array_size(l) == 2 && 0 == strcmp(str_of(json_array_get(l, 0), "id"), "p"),
       "list in creation order");
    json_decref(l);
    ok(store_pol_get(st, "s2", "p") == NULL, "policies are per session");

    is(store_mon_insert(st, "s1", "m", "M", "p", "invariant", "src", "{\"w\":1}", 0), STORE_OK,
       "insert monitor");
    json_t *m = store_mon_get(st, "s1", "m");
    ok(m && json_integer_value(json_object_get(json_object_get(m, "parameters"), "w")) == 1,
       "parameters come back as JSON");
    ok(m && json_integer_value(json_object_get(m, "events_seen")) == 0, "no events yet");
    json_decref(m);

    json_t *v = json_pack("[{s:s},{s:s}]", "key", "a", "key", "b");
    is(store_chunk_commit(st, "s1", "m", 1, "[1,2]", 2, 2, 0xabcULL, v,
                          "{\"violations\":[],\"events_seen\":2}"),
       STORE_OK, "commit chunk with seq 1");
    json_decref(v);
    v = json_pack("[{s:s}]", "key", "c");
    is(store_chunk_commit(st, "s1", "m", -1, "[3]", 1, 3, 0xdefULL, v, "{}"), STORE_OK,
       "commit chunk without seq");
    json_decref(v);
    is(store_chunk_commit(st, "s1", "nosuch", -1, "[3]", 1, 3, 0, NULL, "{}"), STORE_NOTFOUND,
       "commit to unknown monitor");
    char *resp = store_chunk_by_seq(st, "s1", "m", 1);
    ok(resp && 0 == strcmp(resp, "{\"violations\":[],\"events_seen\":2}"), "answer by seq");
    free(resp);
    ok(store_chunk_by_seq(st, "s1", "m", 2) == NULL, "unknown seq");
    is(store_chunk_max_seq(st, "s1", "m"), 1, "max seq");
    m = store_mon_get(st, "s1", "m");
    is(json_integer_value(json_object_get(m, "events_seen")), 3, "events_seen follows");
    is(json_integer_value(json_object_get(m, "nraw")), 3, "nraw follows");
    is(json_integer_value(json_object_get(m, "violations")), 3, "violation count");
    ok(0 == strcmp(str_of(m, "hash"), "0000000000000def"), "hash stored");
    json_decref(m);
    json_t *c = store_chunk_list(st, "s1", "m");
    ok(json_array_size(c) == 2 && 0 == strcmp(json_string_value(json_array_get(c, 0)), "[1,2]"),
       "chunks in order, as text");
    json_decref(c);
    json_t *vl = store_viol_list(st, "s1", "m");
    ok(json_array_size(vl) == 3 && 0 == strcmp(str_of(json_array_get(vl, 2), "key"), "c"),
       "violations in order");
    json_decref(vl);

    is(store_mon_reset(st, "s1", "m"), STORE_OK, "reset monitor");
    c = store_chunk_list(st, "s1", "m");
    is((long long)json_array_size(c), 0, "reset forgets chunks");
    json_decref(c);
    vl = store_viol_list(st, "s1", "m");
    is((long long)json_array_size(vl), 3, "but keeps violations");
    json_decref(vl);

    /* Durability: reopen the file. */
    store_close(st);
    st = store_open(path, err, sizeof err);
    ok(st != NULL, "reopen");
    json_t *ss = store_sess_list(st);
    ok(json_array_size(ss) == 2 && 0 == strcmp(str_of(json_array_get(ss, 0), "token"), "tok") &&
           json_integer_value(json_object_get(json_array_get(ss, 0), "ttl")) == 60 &&
           json_real_value(json_object_get(json_array_get(ss, 0), "last_used")) == 150.0,
       "sessions survive a reopen with token, ttl and last use");
    json_decref(ss);
    p = store_pol_get(st, "s1", "q");
    ok(p && 0 == strcmp(str_of(p, "language"), "lua"), "policies survive");
    json_decref(p);

    is(store_mon_delete(st, "s1", "m"), STORE_OK, "delete monitor");
    is(store_mon_delete(st, "s1", "m"), STORE_NOTFOUND, "delete it again");
    is(store_pol_delete(st, "s1", "q"), STORE_OK, "delete policy");
    is(store_sess_delete(st, "s1"), STORE_OK, "delete session");
    ok(store_pol_get(st, "s1", "p") == NULL, "its policies went with it");
    is(store_sess_delete(st, "s1"), STORE_NOTFOUND, "delete it again");
    store_close(st);
    store_close(NULL);
    unlink(path);
    char side[64];
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);

    struct store *bad = store_open("/nonexistent/dir/x.db", err, sizeof err);
    ok(bad == NULL && err[0], "an unopenable path fails with a message: %s", err);
    return done_testing();
}

/* test_ipc.c -- framing: partial input byte by byte, oversized frames, garbage, inputs just
 * below a guard page, and blocking send/recv with timeouts over a socketpair. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ipc.h"
#include "tap.h"

/* Copies data just below a PROT_NONE page; returns the copy (an over-read faults). */
static char *guarded(const char *data, size_t len, void **map, size_t *maplen)
{
    long pg = sysconf(_SC_PAGESIZE);
    size_t pages = (len + (size_t)pg - 1) / (size_t)pg + 1;
    char *m = mmap(NULL, (pages + 1) * (size_t)pg, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    mprotect(m + pages * (size_t)pg, (size_t)pg, PROT_NONE);
    *map = m;
    *maplen = (pages + 1) * (size_t)pg;
    memcpy(m + pages * (size_t)pg - len, data, len);
    return m + pages * (size_t)pg - len;
}

static size_t make_frame(char *buf, const char *payload, size_t len, uint32_t id)
{
    ipc_hdr(buf, len, id);
    memcpy(buf + IPC_HDR_LEN, payload, len);
    return IPC_HDR_LEN + len;
}

static void test_parse(void)
{
    char buf[256];
    struct ipc_frame fr;
    size_t n = make_frame(buf, "{\"op\":\"ping\"}", 13, 42), i;
    long r;
    int all_partial = 1;

    r = ipc_parse(buf, n, 1024, &fr);
    is(r, (long)n, "complete frame consumes header + payload");
    is(fr.id, 42, "request id decoded");
    ok(fr.len == 13 && memcmp(fr.payload, "{\"op\":\"ping\"}", 13) == 0, "payload points in");

    for (i = 0; i < n; i++) {
        void *map;
        size_t maplen;
        char *g = guarded(buf, i, &map, &maplen);
        if (ipc_parse(g, i, 1024, &fr) != PE_EAGAIN)
            all_partial = 0;
        munmap(map, maplen);
    }
    ok(all_partial, "every proper prefix (byte by byte, below a guard page) needs more");
    {
        void *map;
        size_t maplen;
        char *g = guarded(buf, n, &map, &maplen);
        r = ipc_parse(g, n, 1024, &fr);
        ok(r == (long)n && fr.len == 13, "complete frame right below a guard page");
        munmap(map, maplen);
    }

    /* two frames back to back */
    {
        size_t m = make_frame(buf + n, "", 0, 7);
        r = ipc_parse(buf, n + m, 1024, &fr);
        is(r, (long)n, "first of two frames");
        r = ipc_parse(buf + n, m, 1024, &fr);
        ok(r == IPC_HDR_LEN && fr.len == 0 && fr.id == 7, "empty second frame");
    }

    /* oversized */
    ipc_hdr(buf, 1025, 1);
    is(ipc_parse(buf, IPC_HDR_LEN, 1024, &fr), PE_EPROTO, "length above the limit: error");
    is(ipc_parse(buf, 4, 1024, &fr), PE_EAGAIN, "half a header: need more");
    ipc_hdr(buf, 0xffffffffu, 1);
    is(ipc_parse(buf, IPC_HDR_LEN, IPC_MAX_FRAME_DEFAULT, &fr), PE_EPROTO,
       "4 GiB length with the default limit: error");
    ipc_hdr(buf, 1024, 1);
    is(ipc_parse(buf, IPC_HDR_LEN + 10, 1024, &fr), PE_EAGAIN, "length at the limit: waits");
}

static void test_garbage(void)
{
    unsigned seed = 12345;
    int i, sane = 1;
    for (i = 0; i < 2000; i++) {
        char buf[64];
        size_t len = (size_t)(rand_r(&seed) % 64), j;
        struct ipc_frame fr;
        void *map;
        size_t maplen;
        char *g;
        long r;
        for (j = 0; j < len; j++)
            buf[j] = (char)rand_r(&seed);
        g = guarded(buf, len, &map, &maplen);
        r = ipc_parse(g, len, 32, &fr);
        if (r > 0 && ((size_t)r > len || fr.len > 32 || fr.payload != g + IPC_HDR_LEN))
            sane = 0;
        if (r <= 0 && r != PE_EAGAIN && r != PE_EPROTO)
            sane = 0;
        munmap(map, maplen);
    }
    ok(sane, "2000 random inputs below a guard page: only complete/need-more/error, in bounds");
}

static void test_stream(void)
{
    int sv[2];
    pid_t pid;
    char *p = NULL, *big;
    size_t len, bigl = (size_t)3 << 20, i;
    uint32_t id;
    struct pe_err e;
    int rc, same;

    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    pid = fork();
    if (pid == 0) { /* echo child */
        close(sv[0]);
        for (;;) {
            if (ipc_recv(sv[1], &p, &len, &id, (size_t)8 << 20, 0, NULL) != PE_OK)
                _exit(0);
            if (len == 4 && memcmp(p, "exit", 4) == 0)
                _exit(0);
            if (len == 4 && memcmp(p, "half", 4) == 0) {
                if (write(sv[1], "\x10\0\0\0\1\0\0\0abc", 11) < 0) /* 16 said, 3 sent */
                    _exit(1);
                _exit(0);
            }
            if (len == 4 && memcmp(p, "huge", 4) == 0) {
                if (write(sv[1], "\0\0\0\x7f\1\0\0\0", 8) < 0)
                    _exit(1);
                continue;
            }
            if (len == 4 && memcmp(p, "mute", 4) == 0)
                continue;
            ipc_send(sv[1], id, p, len, (size_t)8 << 20, 0, NULL);
            free(p);
        }
    }
    close(sv[1]);
    rc = ipc_send(sv[0], 9, "hello", 5, 1024, 1000, &e);
    is(rc, PE_OK, "send a small frame");
    rc = ipc_recv(sv[0], &p, &len, &id, 1024, 1000, &e);
    ok(rc == PE_OK && len == 5 && id == 9 && memcmp(p, "hello", 5) == 0 && p[5] == '\0',
       "echo comes back with its id, NUL-terminated");
    free(p);

    big = malloc(bigl);
    for (i = 0; i < bigl; i++)
        big[i] = (char)('a' + i % 26);
    rc = ipc_send(sv[0], 10, big, bigl, (size_t)8 << 20, 5000, &e);
    is(rc, PE_OK, "3 MiB frame sent (partial writes)");
    rc = ipc_recv(sv[0], &p, &len, &id, (size_t)8 << 20, 5000, &e);
    same = rc == PE_OK && len == bigl && memcmp(p, big, bigl) == 0;
    ok(same, "3 MiB frame echoed intact (partial reads)");
    free(p);
    free(big);

    is(ipc_send(sv[0], 1, "x", 2000, 1024, 1000, &e), PE_EINVAL, "send above the limit refused");

    ipc_send(sv[0], 11, "mute", 4, 1024, 1000, &e);
    rc = ipc_recv(sv[0], &p, &len, &id, 1024, 100, &e);
    is(rc, PE_ETIMEDOUT, "recv times out after 100 ms");

    ipc_send(sv[0], 12, "huge", 4, 1024, 1000, &e);
    rc = ipc_recv(sv[0], &p, &len, &id, 1024, 1000, &e);
    is(rc, PE_EPROTO, "oversized incoming length is a protocol error");

    ipc_send(sv[0], 13, "half", 4, 1024, 1000, &e);
    rc = ipc_recv(sv[0], &p, &len, &id, 1024, 1000, &e);
    is(rc, PE_EDEAD, "EOF inside a frame: peer dead");
    rc = ipc_recv(sv[0], &p, &len, &id, 1024, 1000, &e);
    is(rc, PE_EDEAD, "EOF at a frame boundary: peer dead");
    waitpid(pid, NULL, 0);
    rc = ipc_send(sv[0], 14, "x", 1, 1024, 1000, &e);
    is(rc, PE_EDEAD, "send to a closed peer: dead, no SIGPIPE");
    close(sv[0]);
}

int main(void)
{
    test_parse();
    test_garbage();
    test_stream();
    return done_testing();
}

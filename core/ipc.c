/* ipc.c -- see ipc.h. */
#include "ipc.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static uint32_t get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

long ipc_parse(const char *buf, size_t len, size_t max_frame, struct ipc_frame *frame)
{
    const unsigned char *p = (const unsigned char *)buf;
    size_t plen;
    if (len < IPC_HDR_LEN)
        return PE_EAGAIN;
    plen = get_le32(p);
    if (plen > max_frame)
        return PE_EPROTO;
    if (len - IPC_HDR_LEN < plen)
        return PE_EAGAIN;
    frame->len = plen;
    frame->id = get_le32(p + 4);
    frame->payload = buf + IPC_HDR_LEN;
    return (long)(IPC_HDR_LEN + plen);
}

void ipc_hdr(char hdr[IPC_HDR_LEN], size_t len, uint32_t id)
{
    put_le32((unsigned char *)hdr, (uint32_t)len);
    put_le32((unsigned char *)hdr + 4, id);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for events or the absolute deadline (ms, 0 = none) passes.
 * PE_OK, PE_ETIMEDOUT or PE_ESYS. */
static int wait_fd(int fd, short events, long long deadline, struct pe_err *err)
{
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = events};
        int t = -1, n;
        if (deadline > 0) {
            long long left = deadline - now_ms();
            if (left <= 0)
                return pe_err_set(err, PE_ETIMEDOUT, "ipc: timed out");
            t = left > 1000000 ? 1000000 : (int)left;
        }
        n = poll(&pfd, 1, t);
        if (n > 0)
            return PE_OK; /* readable, writable, or HUP/ERR: the next read/write tells */
        if (n == 0)
            continue; /* loop re-checks the deadline */
        if (errno != EINTR)
            return pe_err_sys(err, "ipc: poll");
    }
}

int ipc_send(int fd, uint32_t id, const char *payload, size_t len, size_t max_frame, int timeout_ms,
             struct pe_err *err)
{
    char hdr[IPC_HDR_LEN];
    struct iovec iov[2];
    int niov = 2, rc;
    long long deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
    if (len > max_frame || len > UINT32_MAX)
        return pe_err_set(err, PE_EINVAL, "ipc: frame of %zu bytes above the limit %zu", len,
                          max_frame);
    ipc_hdr(hdr, len, id);
    iov[0].iov_base = hdr;
    iov[0].iov_len = IPC_HDR_LEN;
    iov[1].iov_base = (void *)(uintptr_t)payload;
    iov[1].iov_len = len;
    while (niov > 0) {
        struct iovec *v = &iov[2 - niov];
        ssize_t n;
        struct msghdr mh = {.msg_iov = v, .msg_iovlen = (size_t)niov};
        /* with a timeout: non-blocking sendmsg without SIGPIPE (the host side); without one,
         * plain writev (the jailed worker: its filter allows writev, not sendmsg) */
        n = deadline ? sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) : writev(fd, v, niov);
        if (n < 0 && errno == ENOTSOCK)
            n = writev(fd, v, niov);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                rc = wait_fd(fd, POLLOUT, deadline ? deadline : 0, err);
                if (rc != PE_OK)
                    return rc;
                continue;
            }
            if (errno == EPIPE || errno == ECONNRESET)
                return pe_err_set(err, PE_EDEAD, "ipc: peer closed");
            return pe_err_sys(err, "ipc: send");
        }
        while (niov > 0 && (size_t)n >= v->iov_len) {
            n -= (ssize_t)v->iov_len;
            v->iov_len = 0;
            niov--;
            v++;
        }
        if (niov > 0) {
            v->iov_base = (char *)v->iov_base + n;
            v->iov_len -= (size_t)n;
        }
    }
    return PE_OK;
}

/* Reads exactly len bytes. PE_OK, PE_EDEAD (EOF; *got says how many arrived), errors. */
static int read_full(int fd, char *buf, size_t len, long long deadline, size_t *got,
                     struct pe_err *err)
{
    size_t off = 0;
    int rc;
    *got = 0;
    while (off < len) {
        ssize_t n;
        if (deadline > 0) {
            rc = wait_fd(fd, POLLIN, deadline, err);
            if (rc != PE_OK)
                return rc;
        }
        n = read(fd, buf + off, len - off);
        if (n > 0) {
            off += (size_t)n;
            *got = off;
            continue;
        }
        if (n == 0)
            return pe_err_set(err, PE_EDEAD, "ipc: peer closed (EOF)");
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) {
            if (errno != EINTR && deadline == 0) {
                rc = wait_fd(fd, POLLIN, 0, err);
                if (rc != PE_OK)
                    return rc;
            }
            continue;
        }
        if (errno == ECONNRESET)
            return pe_err_set(err, PE_EDEAD, "ipc: connection reset");
        return pe_err_sys(err, "ipc: read");
    }
    return PE_OK;
}

int ipc_recv(int fd, char **payload, size_t *len, uint32_t *id, size_t max_frame, int timeout_ms,
             struct pe_err *err)
{
    char hdr[IPC_HDR_LEN];
    long long deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
    size_t got, plen;
    char *buf;
    int rc;

    *payload = NULL;
    *len = 0;
    rc = read_full(fd, hdr, IPC_HDR_LEN, deadline, &got, err);
    if (rc != PE_OK)
        return rc;
    plen = get_le32((const unsigned char *)hdr);
    if (plen > max_frame)
        return pe_err_set(err, PE_EPROTO, "ipc: frame of %zu bytes above the limit %zu", plen,
                          max_frame);
    buf = malloc(plen + 1);
    if (buf == NULL)
        return pe_err_set(err, PE_ENOMEM, "ipc: out of memory for a %zu-byte frame", plen);
    rc = read_full(fd, buf, plen, deadline, &got, err);
    if (rc != PE_OK) {
        free(buf);
        return rc;
    }
    buf[plen] = '\0';
    *payload = buf;
    *len = plen;
    *id = get_le32((const unsigned char *)hdr + 4);
    return PE_OK;
}

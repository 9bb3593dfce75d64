/*
 * vbench — a tiny HTTP/1.1 load client for the vigil benchmarks (bench/run.sh).
 *
 * One keep-alive TCP connection, requests sent one at a time, each timed from the first byte
 * written to the last byte of the response read (CLOCK_MONOTONIC). Spawning curl per request
 * would cost more than the round trips being measured, hence this client. Plain sockets, no
 * dependencies; every read and write has a timeout (SO_RCVTIMEO/SO_SNDTIMEO), so it never hangs.
 *
 *   vbench -a HOST:PORT [-X METHOD] -p PATH [-b BODYFILE | -l LINESFILE] [-n N] [-w WARMUP]
 *          [-t TIMEOUT_S] [-M MAX_TOTAL_S] [-S] [-o LASTBODY] [-T TIMES] [-D DELETE_PREFIX]
 *          [-H 'Name: value']...
 *
 *   -b    the same body (a file) for every request; -l  one request per line of the file
 *   -D    after each timed request, read the "id" string of the JSON answer and send an untimed
 *         DELETE DELETE_PREFIX/<id> (session creation without piling up sessions)
 *   -T    write each request's time in microseconds, one per line
 *   -M    stop sending after this many seconds in total (the output then says truncated=1)
 *   -S    stop at the first answer that is not 2xx
 *
 * Prints one line: n= ok= status= median_us= p99_us= mean_us= min_us= max_us= total_ms= truncated=
 * error= (error=1: stopped on an I/O error or timeout; the figures cover what was done).
 * (ok counts 2xx answers, status is the last one). The body of the first non-2xx answer goes
 * to stderr. Exit status: 0 when every request got an answer, 1 on an I/O error or timeout,
 * 2 on bad usage.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

struct buf {
    char *p;
    size_t len, cap;
};

static int buf_reserve(struct buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra + 1) {
        if (cap > ((size_t)-1) / 2)
            return -1;
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_add(struct buf *b, const char *s, size_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static char g_host[256], g_port[16];
static int g_timeout = 30;
static const char *g_headers[8];
static int g_nheaders;

static int conn_open(void)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(g_host, g_port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "vbench: %s:%s: %s\n", g_host, g_port, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
    if (fd < 0) {
        freeaddrinfo(res);
        return -1;
    }
    struct timeval tv = {.tv_sec = g_timeout, .tv_usec = 0};
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
        fprintf(stderr, "vbench: connect %s:%s: %s\n", g_host, g_port, strerror(errno));
        close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads more bytes into b; returns bytes read, 0 on EOF, -1 on error or timeout. */
static ssize_t read_more(int fd, struct buf *b)
{
    if (buf_reserve(b, 65536) < 0)
        return -1;
    for (;;) {
        ssize_t r = recv(fd, b->p + b->len, 65536, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r > 0) {
            b->len += (size_t)r;
            b->p[b->len] = '\0';
        }
        return r;
    }
}

static const char *find_header(const char *hdr, size_t hlen, const char *name)
{
    size_t nl = strlen(name);
    const char *p = hdr;
    const char *end = hdr + hlen;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            break;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            return v;
        }
        p = eol + 1;
    }
    return NULL;
}

/*
 * Sends one request and reads the whole answer. The body of the answer lands in *body.
 * Returns the HTTP status, or -1 on an I/O error, timeout or unparsable answer.
 * *closed is set when the server asked to close the connection.
 */
static int do_request(int fd, const char *method, const char *path, const char *body, size_t blen,
                      struct buf *body_out, int *closed)
{
    struct buf req = {0};
    char line[1024];
    snprintf(line, sizeof line,
             "%s %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: vbench\r\nAccept: */*\r\n", method, path,
             g_host, g_port);
    buf_add(&req, line, strlen(line));
    for (int i = 0; i < g_nheaders; i++) {
        buf_add(&req, g_headers[i], strlen(g_headers[i]));
        buf_add(&req, "\r\n", 2);
    }
    if (body) {
        snprintf(line, sizeof line, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
                 blen);
        buf_add(&req, line, strlen(line));
    }
    buf_add(&req, "\r\n", 2);
    int bad = write_all(fd, req.p, req.len) < 0 || (body && blen && write_all(fd, body, blen) < 0);
    free(req.p);
    if (bad)
        return -1;

    struct buf in = {0};
    char *hend = NULL;
    while (!(hend = strstr(in.p ? in.p : "", "\r\n\r\n"))) {
        if (read_more(fd, &in) <= 0) {
            free(in.p);
            return -1;
        }
    }
    size_t hlen = (size_t)(hend - in.p) + 4;
    int status = 0;
    if (sscanf(in.p, "HTTP/%*d.%*d %d", &status) != 1) {
        free(in.p);
        return -1;
    }
    const char *te = find_header(in.p, hlen, "Transfer-Encoding");
    const char *cl = find_header(in.p, hlen, "Content-Length");
    const char *cn = find_header(in.p, hlen, "Connection");
    *closed = cn && strncasecmp(cn, "close", 5) == 0;
    body_out->len = 0;
    if (te && strncasecmp(te, "chunked", 7) == 0) {
        size_t pos = hlen;
        for (;;) {
            char *eol;
            while (!(eol = strstr(in.p + pos, "\r\n")))
                if (read_more(fd, &in) <= 0)
                    goto fail;
            size_t n = strtoul(in.p + pos, NULL, 16);
            pos = (size_t)(eol - in.p) + 2;
            while (in.len < pos + n + 2)
                if (read_more(fd, &in) <= 0)
                    goto fail;
            if (n == 0)
                break; /* trailers are not used by vigild */
            if (buf_add(body_out, in.p + pos, n) < 0)
                goto fail;
            pos += n + 2;
        }
    } else if (cl) {
        size_t n = strtoul(cl, NULL, 10);
        while (in.len < hlen + n)
            if (read_more(fd, &in) <= 0)
                goto fail;
        if (buf_add(body_out, in.p + hlen, n) < 0)
            goto fail;
    } else if (status != 204 && status != 304 && strcmp(method, "HEAD") != 0) {
        for (;;) { /* body until EOF */
            ssize_t r = read_more(fd, &in);
            if (r < 0)
                goto fail;
            if (r == 0)
                break;
        }
        if (buf_add(body_out, in.p + hlen, in.len - hlen) < 0)
            goto fail;
        *closed = 1;
    }
    if (!body_out->p)
        buf_add(body_out, "", 0);
    free(in.p);
    return status;
fail:
    free(in.p);
    return -1;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct buf b = {0};
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        if (buf_add(&b, tmp, n) < 0) {
            fclose(f);
            free(b.p);
            return NULL;
        }
    fclose(f);
    if (!b.p)
        buf_add(&b, "", 0);
    *len = b.len;
    return b.p;
}

/* The value of the first "id": "..." in a JSON text, copied into out (no escapes expected). */
static int json_id(const char *json, char *out, size_t outsz)
{
    const char *p = strstr(json, "\"id\"");
    if (!p)
        return -1;
    p += 4;
    while (*p == ' ' || *p == ':')
        p++;
    if (*p != '"')
        return -1;
    p++;
    size_t i = 0;
    while (*p && *p != '"' && i + 1 < outsz)
        out[i++] = *p++;
    out[i] = '\0';
    return *p == '"' ? 0 : -1;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: vbench -a HOST:PORT [-X METHOD] -p PATH [-b FILE | -l FILE] [-n N] "
            "[-w WARMUP] [-t TIMEOUT_S] [-M MAX_S] [-S] [-o LASTBODY] [-T TIMES] [-D PREFIX] "
            "[-H HEADER]...\n");
}

int main(int argc, char **argv)
{
    const char *addr = NULL, *method = "GET", *path = NULL, *bodyfile = NULL, *linesfile = NULL;
    const char *outfile = NULL, *timesfile = NULL, *delprefix = NULL;
    long n = 1, warm = 0;
    double maxsec = 0;
    int opt, stop_on_error = 0;
    while ((opt = getopt(argc, argv, "a:X:p:b:l:n:w:t:o:T:D:H:M:S")) != -1) {
        switch (opt) {
        case 'a':
            addr = optarg;
            break;
        case 'X':
            method = optarg;
            break;
        case 'p':
            path = optarg;
            break;
        case 'b':
            bodyfile = optarg;
            break;
        case 'l':
            linesfile = optarg;
            break;
        case 'n':
            n = strtol(optarg, NULL, 10);
            break;
        case 'w':
            warm = strtol(optarg, NULL, 10);
            break;
        case 't':
            g_timeout = atoi(optarg);
            break;
        case 'o':
            outfile = optarg;
            break;
        case 'T':
            timesfile = optarg;
            break;
        case 'D':
            delprefix = optarg;
            break;
        case 'M':
            maxsec = strtod(optarg, NULL);
            break;
        case 'S':
            stop_on_error = 1;
            break;
        case 'H':
            if (g_nheaders < 8)
                g_headers[g_nheaders++] = optarg;
            break;
        default:
            usage();
            return 2;
        }
    }
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    if (!colon || !path || n < 1 || g_timeout < 1 || (size_t)(colon - addr) >= sizeof g_host) {
        usage();
        return 2;
    }
    memcpy(g_host, addr, (size_t)(colon - addr));
    g_host[colon - addr] = '\0';
    snprintf(g_port, sizeof g_port, "%s", colon + 1);

    size_t blen = 0;
    char *body = NULL;
    const char **lines = NULL;
    size_t *lens = NULL;
    if (bodyfile || linesfile) {
        body = read_file(bodyfile ? bodyfile : linesfile, &blen);
        if (!body) {
            fprintf(stderr, "vbench: cannot read %s\n", bodyfile ? bodyfile : linesfile);
            return 2;
        }
    }
    if (linesfile) { /* split in place */
        size_t cnt = 0;
        for (size_t i = 0; i < blen; i++)
            cnt += body[i] == '\n';
        lines = calloc(cnt + 1, sizeof *lines);
        lens = calloc(cnt + 1, sizeof *lens);
        if (!lines || !lens)
            return 2;
        size_t k = 0, start = 0;
        for (size_t i = 0; i <= blen; i++) {
            if (i == blen || body[i] == '\n') {
                if (i > start) {
                    lines[k] = body + start;
                    lens[k++] = i - start;
                }
                start = i + 1;
            }
        }
        n = (long)k;
        warm = 0;
        if (n < 1) {
            fprintf(stderr, "vbench: %s has no lines\n", linesfile);
            return 2;
        }
    }

    double *t = calloc((size_t)n, sizeof *t);
    if (!t)
        return 2;
    int fd = conn_open();
    if (fd < 0)
        return 1;
    struct buf resp = {0}, dresp = {0};
    long ok = 0, done = 0;
    int status = 0, reported = 0, rc = 0, truncated = 0;
    double t0 = now_us();
    for (long i = -warm; i < n; i++) {
        if (maxsec > 0 && now_us() - t0 > maxsec * 1e6) {
            truncated = 1;
            break;
        }
        const char *b = linesfile ? lines[i] : body;
        size_t bl = linesfile ? lens[i] : blen;
        int closed = 0;
        double s = now_us();
        status = do_request(fd, method, path, b, bl, &resp, &closed);
        double e = now_us();
        if (status < 0) { /* the server may have dropped an idle keep-alive: retry once */
            close(fd);
            fd = conn_open();
            if (fd < 0) {
                rc = 1;
                break;
            }
            s = now_us();
            status = do_request(fd, method, path, b, bl, &resp, &closed);
            e = now_us();
            if (status < 0) {
                fprintf(stderr, "vbench: %s %s: no answer (error or %d s timeout)\n", method, path,
                        g_timeout);
                rc = 1;
                break;
            }
        }
        if (i >= 0) {
            t[i] = e - s;
            done++;
            if (status >= 200 && status < 300)
                ok++;
            else {
                if (!reported) {
                    reported = 1;
                    fprintf(stderr, "vbench: %s %s -> %d %.300s\n", method, path, status, resp.p);
                }
                if (stop_on_error)
                    break;
            }
        }
        if (closed) {
            close(fd);
            fd = conn_open();
            if (fd < 0) {
                rc = 1;
                break;
            }
        }
        if (delprefix && status >= 200 && status < 300) {
            char id[256];
            if (json_id(resp.p, id, sizeof id) == 0) {
                char dpath[512];
                snprintf(dpath, sizeof dpath, "%s/%s", delprefix, id);
                int dclosed = 0;
                if (do_request(fd, "DELETE", dpath, NULL, 0, &dresp, &dclosed) < 0 || dclosed) {
                    close(fd);
                    fd = conn_open();
                    if (fd < 0) {
                        rc = 1;
                        break;
                    }
                }
            }
        }
    }
    double total = now_us() - t0;
    if (fd >= 0)
        close(fd);
    if (outfile && resp.p) {
        FILE *f = fopen(outfile, "wb");
        if (f) {
            fwrite(resp.p, 1, resp.len, f);
            fclose(f);
        }
    }
    if (timesfile) {
        FILE *f = fopen(timesfile, "w");
        if (f) {
            for (long i = 0; i < done; i++)
                fprintf(f, "%.1f\n", t[i]);
            fclose(f);
        }
    }
    if (done > 0) {
        double sum = 0;
        for (long i = 0; i < done; i++)
            sum += t[i];
        qsort(t, (size_t)done, sizeof *t, cmp_double);
        double med = done % 2 ? t[done / 2] : (t[done / 2 - 1] + t[done / 2]) / 2;
        long i99 = (long)((double)done * 0.99);
        if (i99 >= done)
            i99 = done - 1;
        printf("n=%ld ok=%ld status=%d median_us=%.1f p99_us=%.1f mean_us=%.1f min_us=%.1f "
               "max_us=%.1f total_ms=%.1f truncated=%d error=%d\n",
               done, ok, status, med, t[i99], sum / (double)done, t[0], t[done - 1], total / 1e3,
               truncated, rc);
    } else {
        printf("n=0 ok=0 status=%d error=%d\n", status, rc);
    }
    free(t);
    free(resp.p);
    free(dresp.p);
    free(body);
    free(lines);
    free(lens);
    return rc;
}

/* worker.c -- see worker.h: the dispatcher core, the jailed serve loop, the zygote and the
 * host-side calls. */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lauxlib.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ipc.h"
#include "path.h"
#include "sandbox.h"

#if defined(__SANITIZE_ADDRESS__)
#define WK_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WK_ASAN 1
#endif
#endif
#ifndef WK_ASAN
#define WK_ASAN 0
#endif

#define ZYG_HELLO_TIMEOUT_MS 120000
#define WK_READY_TIMEOUT_MS 10000
#ifndef WK_IDLE_TRIM_MS_DEFAULT
#define WK_IDLE_TRIM_MS_DEFAULT 500
#endif

void zyg_cfg_init(struct zyg_cfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->mem_limit = SBX_MEM_LIMIT_DEFAULT;
    cfg->instr_budget = SBX_INSTR_BUDGET_DEFAULT;
    cfg->deadline_ms = SBX_DEADLINE_MS_DEFAULT;
    cfg->max_frame = IPC_MAX_FRAME_DEFAULT;
    /* ASan reserves terabytes of address space: RLIMIT_AS cannot apply to sanitizer builds */
    cfg->rlimit_as = WK_ASAN ? 0 : cfg->mem_limit + ((size_t)512 << 20) + 2 * cfg->max_frame;
    cfg->rlimit_cpu = 3600;
    cfg->rlimit_nofile = 16;
    cfg->rlimit_fsize = 0;
    cfg->rlimit_nproc = 0;
    cfg->prefork = 1;
    cfg->idle_trim_ms = WK_IDLE_TRIM_MS_DEFAULT;
    cfg->sanitizer_build = WK_ASAN;
}

/* ================================================================ dispatcher core */

struct wkcore {
    struct sbx *sbx;
    size_t max_frame;
    int after;    /* the last serve() owes an after() (the full collection of a large request) */
    int stateful; /* it has served a request that keeps state (a session's); only such a worker
                     gives its memory back when idle: the stateless pool stays warm */
};

static const char serve_key = 's'; /* registry: the serve function of require "worker" */
static const char after_key = 'a'; /* registry: its after function */

/* [-0, +0] requires "worker" and keeps its serve and after functions in the registry */
static int l_init(lua_State *L)
{
    lua_getglobal(L, "require");  /* push require */
    lua_pushliteral(L, "worker"); /* push name */
    lua_call(L, 1, 1);            /* push module */
    if (!lua_istable(L, -1))
        return luaL_error(L, "require 'worker' gave no table");
    lua_getfield(L, -1, "after"); /* push module.after */
    if (!lua_isfunction(L, -1))
        return luaL_error(L, "require 'worker' gave no after function");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &after_key); /* registry[key] = after; pop */
    lua_getfield(L, -1, "serve");                  /* push module.serve */
    if (!lua_isfunction(L, -1))
        return luaL_error(L, "require 'worker' gave no serve function");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &serve_key); /* registry[key] = serve; pop */
    return 0;
}

struct req_view {
    const char *p;
    size_t n;
};

/* [-0, +3] calls serve(payload); leaves the response string, whether after() is owed and
 * whether the worker now holds session state */
static int l_call_serve(lua_State *L)
{
    const struct req_view *rv = lua_touserdata(L, 1);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &serve_key); /* push serve */
    lua_pushlstring(L, rv->p, rv->n);              /* push payload */
    lua_call(L, 1, 3);                             /* push response, owed, stateful */
    if (lua_type(L, -3) != LUA_TSTRING)
        return luaL_error(L, "worker.serve returned a %s, not a string", luaL_typename(L, -3));
    return 3;
}

/* [-0, +0] calls after() */
static int l_call_after(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &after_key); /* push after */
    lua_call(L, 0, 0);
    return 0;
}

static int wkc_init(struct wkcore *c, const struct zyg_cfg *cfg, struct pe_err *err)
{
    struct sbx_cfg sc;
    int rc;
    sc.mem_limit = cfg->mem_limit;
    sc.instr_budget = 0; /* loading the runtime is not budgeted */
    sc.deadline_ms = 0;
    c->max_frame = cfg->max_frame ? cfg->max_frame : IPC_MAX_FRAME_DEFAULT;
    rc = sbx_new(&sc, &c->sbx, err);
    if (rc != PE_OK)
        return rc;
    lua_pushcfunction(sbx_state(c->sbx), l_init); /* push init */
    rc = sbx_call(c->sbx, 0, 0, err);
    if (rc != PE_OK) {
        sbx_free(c->sbx);
        c->sbx = NULL;
        return rc;
    }
    lua_gc(sbx_state(c->sbx), LUA_GCCOLLECT);
    sc.instr_budget = cfg->instr_budget;
    sc.deadline_ms = cfg->deadline_ms;
    sbx_set_limits(c->sbx, &sc);
    return PE_OK;
}

/* Gives back what the last requests left: a full collection (the garbage of a request is
 * otherwise freed only when the next ones allocate), then malloc_trim(0), which returns the
 * free pages inside the heap (madvise) and its free top (brk) to the kernel. Both syscalls are
 * in the worker's seccomp allow-list. Called when the worker goes idle, never per request. */
static void wkc_idle(struct wkcore *c)
{
    lua_gc(sbx_state(c->sbx), LUA_GCCOLLECT);
    malloc_trim(0);
}

/* The work a request left for after its answer (worker.after: the full collection of a large
 * request), when serve() said it is owed. The serve loop calls it once the answer is written, so
 * the host reads the answer meanwhile; same limits as a request. A failure (a limit) is not
 * reported: nobody waits for it, and the next serve() starts from a usable state (it restarts a
 * stopped collector and runs a collection still owed). */
static void wkc_after(struct wkcore *c)
{
    struct pe_err e;
    if (!c->after)
        return;
    c->after = 0;
    lua_pushcfunction(sbx_state(c->sbx), l_call_after); /* push caller */
    sbx_call(c->sbx, 0, 0, &e);
}

/* [-0, +0] math.randomseed(n1, n2) with the two integers passed */
static int l_reseed(lua_State *L)
{
    lua_getglobal(L, "math");          /* push math */
    lua_getfield(L, -1, "randomseed"); /* push math.randomseed */
    lua_pushvalue(L, 1);               /* push n1 */
    lua_pushvalue(L, 2);               /* push n2 */
    lua_call(L, 2, 0);
    return 0;
}

/* Every worker is a fork of the same zygote state, so each would draw the same math.random
 * sequence: reseed from getrandom (in the allow-list) once per worker. Lua's string-hash seed
 * (luai_makeseed: time and addresses, fixed when the state was created in the zygote) cannot
 * be changed once strings exist; it differs per vigild start, not per worker. */
static int wkc_reseed(struct wkcore *c, struct pe_err *err)
{
    lua_State *L = sbx_state(c->sbx);
    lua_Integer seed[2];
    size_t got = 0;
    while (got < sizeof seed) {
        long n = syscall(SYS_getrandom, (char *)seed + got, sizeof seed - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return pe_err_sys(err, "worker: getrandom");
        got += (size_t)n;
    }
    lua_pushcfunction(L, l_reseed); /* push reseed */
    lua_pushinteger(L, seed[0]);    /* push n1 */
    lua_pushinteger(L, seed[1]);    /* push n2 */
    return sbx_call(c->sbx, 2, 0, err);
}

/* 1 when fd has something to read (or hung up) within ms, 0 when the time passed quietly. */
static int wait_readable(int fd, int ms)
{
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    int n = poll(&pf, 1, ms);
    return n != 0; /* an error (EINTR) counts as readable: the read that follows tells */
}

/* Appends s as JSON string contents (without quotes) to buf; returns the new length. */
static size_t json_escape(char *buf, size_t cap, size_t n, const char *s)
{
    for (; *s != '\0' && n + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            buf[n++] = '\\';
            buf[n++] = (char)ch;
        } else if (ch < 0x20) {
            n += (size_t)snprintf(buf + n, cap - n, "\\u%04x", ch);
        } else {
            buf[n++] = (char)ch;
        }
    }
    buf[n] = '\0';
    return n;
}

static int error_response(const char *code, const char *msg, char **resp, size_t *resp_len)
{
    size_t cap = 2 * 6 * 256 + 128, n;
    char *b = malloc(cap);
    if (b == NULL)
        return PE_ENOMEM;
    n = (size_t)snprintf(b, cap, "{\"ok\":false,\"error\":{\"code\":\"%s\",\"message\":\"", code);
    n = json_escape(b, cap - 8, n, msg);
    memcpy(b + n, "\"}}", 4);
    *resp = b;
    *resp_len = n + 3;
    return PE_OK;
}

/* One request through handle(); every sandbox failure becomes an error response. */
static int wkc_handle(struct wkcore *c, const char *req, size_t len, char **resp, size_t *resp_len,
                      struct pe_err *err)
{
    lua_State *L = sbx_state(c->sbx);
    struct req_view rv = {req, len};
    struct pe_err e;
    const char *s;
    size_t n;
    int rc;

    *resp = NULL;
    *resp_len = 0;
    c->after = 0;
    lua_pushcfunction(L, l_call_serve); /* push caller */
    lua_pushlightuserdata(L, &rv);      /* push request view */
    rc = sbx_call(c->sbx, 1, 3, &e);
    switch (rc) {
    case PE_OK:
        break;
    case PE_EMEMLIMIT:
        return error_response("memory_limit", e.msg, resp, resp_len);
    case PE_EDEADLINE:
        return error_response("deadline_exceeded", e.msg, resp, resp_len);
    default:
        return error_response("internal", e.msg, resp, resp_len);
    }
    c->stateful |= lua_toboolean(L, -1);
    c->after = lua_toboolean(L, -2);
    s = lua_tolstring(L, -3, &n);
    *resp = malloc(n + 1);
    if (*resp == NULL) {
        lua_pop(L, 3);
        return pe_err_set(err, PE_ENOMEM, "worker: out of memory for the response");
    }
    memcpy(*resp, s, n + 1);
    *resp_len = n;
    lua_pop(L, 3); /* pop response, after, stateful */
    if (n > c->max_frame) {
        free(*resp);
        return error_response("result_too_large",
                              "the result is above the frame limit (IPC_MAX_FRAME)", resp,
                              resp_len);
    }
    return PE_OK;
}

/* ================================================================ in-process variant */

struct wk_local {
    struct wkcore c;
};

int wk_local_new(const struct zyg_cfg *cfg, struct wk_local **out, struct pe_err *err)
{
    struct zyg_cfg def;
    struct wk_local *w;
    int rc;
    *out = NULL;
    if (cfg == NULL) {
        zyg_cfg_init(&def);
        cfg = &def;
    }
    w = calloc(1, sizeof *w);
    if (w == NULL)
        return pe_err_set(err, PE_ENOMEM, "worker: out of memory");
    rc = wkc_init(&w->c, cfg, err);
    if (rc != PE_OK) {
        free(w);
        return rc;
    }
    *out = w;
    return PE_OK;
}

int wk_local_call(struct wk_local *w, const char *req, size_t len, char **resp, size_t *resp_len,
                  struct pe_err *err)
{
    int rc = wkc_handle(&w->c, req, len, resp, resp_len, err);
    wkc_after(&w->c); /* in-process, nobody reads the answer meanwhile: as worker.handle does */
    return rc;
}

void wk_local_free(struct wk_local *w)
{
    if (w == NULL)
        return;
    sbx_free(w->c.sbx);
    free(w);
}

/* ================================================================ zygote */

struct zmsg {
    int32_t code; /* PE_OK or a pe_status */
    int32_t pid;
    char msg[256];
};

struct zyg {
    pid_t pid;         /* guarded by mu (read atomically by zyg_pid) */
    int ctrl;          /* guarded by mu; -1 while there is no zygote */
    int dead;          /* guarded by mu: zyg_spawn found the zygote gone */
    unsigned restarts; /* guarded by mu */
    int exe_fd;        /* the zygote program, opened once by zyg_start (CLOEXEC) */
    pthread_mutex_t mu;
    struct zyg_cfg cfg;
};

/* state of the zygote process itself */
struct zstate {
    struct zyg_cfg cfg;
    struct wkcore core;
    struct jail_filter *filter;
    int ctrl;
    pid_t *kids;
    size_t nkids, capkids;
    /* the worker forked ahead (prefork): pid 0 when none */
    pid_t spare_pid;
    int spare_fd, spare_pidfd;
};

static size_t wk_max_frame = IPC_MAX_FRAME_DEFAULT;

static int send_zmsg(int fd, const struct zmsg *m, const int *fds, int nfds)
{
    struct iovec iov = {.iov_base = (void *)(uintptr_t)m, .iov_len = sizeof *m};
    union {
        char buf[CMSG_SPACE(2 * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n;
    if (nfds > 0) {
        struct cmsghdr *cm;
        memset(&u, 0, sizeof u);
        mh.msg_control = u.buf;
        mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
    }
    do
        n = sendmsg(fd, &mh, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof *m ? 0 : -1;
}

/* Receives a zmsg with up to 2 fds (set to -1 when absent). 0, or -1 (EOF: errno 0). */
static int recv_zmsg(int fd, struct zmsg *m, int fds[2])
{
    struct iovec iov = {.iov_base = m, .iov_len = sizeof *m};
    union {
        char buf[CMSG_SPACE(2 * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    struct cmsghdr *cm;
    ssize_t n;
    fds[0] = fds[1] = -1;
    do
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n == 0)
        errno = 0;
    if (n <= 0)
        return -1;
    for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            memcpy(fds, CMSG_DATA(cm), (k > 2 ? 2 : k) * sizeof(int));
        }
    }
    if (n != (ssize_t)sizeof *m) {
        if (fds[0] >= 0)
            close(fds[0]);
        if (fds[1] >= 0)
            close(fds[1]);
        fds[0] = fds[1] = -1;
        errno = EPROTO;
        return -1;
    }
    m->msg[sizeof m->msg - 1] = '\0';
    return 0;
}

static void worker_child(struct zstate *zs, int fd) __attribute__((noreturn));
static void worker_child(struct zstate *zs, int fd)
{
    struct jail_cfg jc;
    struct pe_err e;
    sigset_t none;
    char *req, *resp;
    size_t len, resp_len;
    uint32_t id;
    int dirty = 0;

    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    prctl(PR_SET_NAME, "vigil-worker", 0, 0, 0);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    memset(&jc, 0, sizeof jc);
    jc.insecure = zs->cfg.insecure_no_jail;
    jc.rlimit_as = zs->cfg.rlimit_as;
    jc.rlimit_cpu = zs->cfg.rlimit_cpu;
    jc.rlimit_nofile = zs->cfg.rlimit_nofile;
    jc.rlimit_fsize = zs->cfg.rlimit_fsize;
    jc.rlimit_nproc = zs->cfg.rlimit_nproc;
    jc.filter = zs->filter;
    jc.fail_step = zs->cfg.jail_fail_step;
    if (jail_apply(&jc, &fd, &e) != PE_OK || wkc_reseed(&zs->core, &e) != PE_OK) {
        ipc_send(fd, 0, e.msg, strlen(e.msg) ? strlen(e.msg) : 1, zs->core.max_frame, 0, NULL);
        jail_exit(1);
    }
    if (ipc_send(fd, 0, "", 0, zs->core.max_frame, 0, NULL) != PE_OK)
        jail_exit(1);
    for (;;) {
        /* after a request, wait for the next one at most idle_trim_ms before tidying up once;
         * an idle worker then blocks in read() until the host writes */
        if (dirty && !wait_readable(fd, zs->cfg.idle_trim_ms)) {
            wkc_idle(&zs->core);
            dirty = 0;
        }
        if (ipc_recv(fd, &req, &len, &id, zs->core.max_frame, 0, NULL) != PE_OK)
            jail_exit(0); /* EOF (the host let go), or a protocol error: nothing to save */
        if (wkc_handle(&zs->core, req, len, &resp, &resp_len, NULL) != PE_OK)
            jail_exit(3);
        free(req);
        if (ipc_send(fd, id, resp, resp_len, zs->core.max_frame, 0, NULL) != PE_OK)
            jail_exit(0);
        free(resp);
        wkc_after(&zs->core); /* the answer is out: the collection it left runs now */
        dirty = zs->cfg.idle_trim_ms > 0 && zs->core.stateful;
    }
}

static void zs_reap(struct zstate *zs)
{
    pid_t p;
    size_t i;
    while ((p = waitpid(-1, NULL, WNOHANG)) > 0) {
        if (p == zs->spare_pid) { /* the spare died (its jail failed?): drop it */
            close(zs->spare_fd);
            if (zs->spare_pidfd >= 0)
                close(zs->spare_pidfd);
            zs->spare_pid = 0;
        }
        for (i = 0; i < zs->nkids; i++) {
            if (zs->kids[i] == p) {
                zs->kids[i] = zs->kids[--zs->nkids];
                break;
            }
        }
    }
}

/* Forks one jailed worker; fills pid, the host end of its socket and its pidfd (-1 if none).
 * PE_OK or an error in e. */
static int fork_worker(struct zstate *zs, pid_t *pid_out, int *fd_out, int *pidfd_out,
                       struct pe_err *e)
{
    int sv[2];
    pid_t pid;
    if (zs->nkids == zs->capkids) {
        size_t nc = zs->capkids ? 2 * zs->capkids : 64;
        pid_t *nk = realloc(zs->kids, nc * sizeof *nk);
        if (nk == NULL)
            return pe_err_set(e, PE_ENOMEM, "zygote: out of memory");
        zs->kids = nk;
        zs->capkids = nc;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return pe_err_sys(e, "zygote: socketpair");
    pid = jail_fork(zs->cfg.insecure_no_jail);
    if (pid < 0) {
        int rc = pe_err_sys(e, "zygote: clone of a worker");
        close(sv[0]);
        close(sv[1]);
        return rc;
    }
    if (pid == 0) {
        close(sv[0]);
        if (zs->spare_pid > 0) {
            close(zs->spare_fd);
            if (zs->spare_pidfd >= 0)
                close(zs->spare_pidfd);
        }
        worker_child(zs, sv[1]);
    }
    close(sv[1]);
    zs->kids[zs->nkids++] = pid;
    *pid_out = pid;
    *fd_out = sv[0];
    *pidfd_out = (int)syscall(SYS_pidfd_open, pid, 0);
    return PE_OK;
}

static void zs_prefork(struct zstate *zs)
{
    struct pe_err e;
    if (!zs->cfg.prefork || zs->spare_pid > 0)
        return;
    if (fork_worker(zs, &zs->spare_pid, &zs->spare_fd, &zs->spare_pidfd, &e) != PE_OK)
        zs->spare_pid = 0; /* retried at the next request, on demand */
}

static void zs_spawn(struct zstate *zs)
{
    struct zmsg m;
    struct pe_err e;
    int fds[2], rc = PE_OK;
    pid_t pid = 0;

    memset(&m, 0, sizeof m);
    if (zs->spare_pid > 0) {
        pid = zs->spare_pid;
        fds[0] = zs->spare_fd;
        fds[1] = zs->spare_pidfd;
        zs->spare_pid = 0;
    } else {
        rc = fork_worker(zs, &pid, &fds[0], &fds[1], &e);
    }
    if (rc != PE_OK) {
        m.code = rc;
        snprintf(m.msg, sizeof m.msg, "%s", e.msg);
        send_zmsg(zs->ctrl, &m, NULL, 0);
        return;
    }
    m.code = PE_OK;
    m.pid = pid;
    send_zmsg(zs->ctrl, &m, fds, fds[1] >= 0 ? 2 : 1);
    close(fds[0]);
    if (fds[1] >= 0)
        close(fds[1]);
    zs_prefork(zs); /* off the critical path: the next request finds it ready */
}

static void zygote_main(const struct zyg_cfg *cfg, int ctrl) __attribute__((noreturn));
static void zygote_main(const struct zyg_cfg *cfg, int ctrl)
{
    struct zstate zs;
    struct zmsg m;
    struct pe_err e;
    sigset_t chld;
    int sfd, rc;
    size_t i;

    prctl(PR_SET_NAME, "vigil-zygote", 0, 0, 0);
    memset(&zs, 0, sizeof zs);
    zs.cfg = *cfg;
    if (dup2(ctrl, 3) < 0)
        _exit(1);
    zs.ctrl = 3;
    syscall(SYS_close_range, 4U, ~0U, 0U);
    setenv("TZ", "UTC", 1);
    tzset();
    /* vigild's handlers and mask are not ours: default dispositions, nothing blocked but
     * SIGCHLD (read through a signalfd) */
    for (i = 1; i < NSIG; i++)
        if (i != SIGKILL && i != SIGSTOP)
            signal((int)i, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_SETMASK, &chld, NULL);
    /* the zygote never execs: no_new_privs costs nothing and does not hinder clone/mount */
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);

    memset(&m, 0, sizeof m);
    rc = sfd < 0 ? pe_err_sys(&e, "zygote: signalfd") : PE_OK;
    if (rc == PE_OK)
        rc = jail_filter_build(&zs.filter, &e);
    if (rc == PE_OK)
        rc = wkc_init(&zs.core, cfg, &e);
    m.code = rc;
    m.pid = getpid();
    if (rc != PE_OK)
        snprintf(m.msg, sizeof m.msg, "%s", e.msg);
    if (send_zmsg(zs.ctrl, &m, NULL, 0) < 0 || rc != PE_OK)
        _exit(1);
    malloc_trim(0); /* what start-up freed is not copied into every worker */
    zs_prefork(&zs);

    for (;;) {
        struct pollfd pf[2] = {{.fd = zs.ctrl, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pf[1].revents) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) > 0)
                ;
            zs_reap(&zs);
        }
        if (pf[0].revents) {
            char op;
            ssize_t n = recv(zs.ctrl, &op, 1, 0);
            if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
                break; /* vigild let go (or died: the kernel closed its end) */
            if (n == 1 && op == 'S')
                zs_spawn(&zs);
        }
    }
    for (i = 0; i < zs.nkids; i++)
        kill(zs.kids[i], SIGKILL);
    _exit(0);
}

/*
** The zygote is a program of its own, build/vigil-zygote (core/zygote/main.c calls zyg_main):
** core + Lua + PCRE2 + libseccomp, without the host's HTTP/TLS/SQLite/JSON libraries, so an idle
** worker maps (and keeps resident) only what it runs, and a jailed process holds no code it never
** needs. vigild starts it with posix_spawn: safe from a process that already runs threads, which
** is what a restart needs (vigild serves HTTP on many threads by then; a bare fork there may copy
** a lock some other thread held). The environment names the inherited control socket, whose
** first message is the configuration.
*/
#define ZYG_EXEC_ENV "VIGIL_ZYGOTE_FD"
#define ZYG_EXEC_FD 3

struct zboot {
    struct zyg_cfg cfg;
    int32_t pdeathsig; /* 1: die with the thread that started us (first start, main thread) */
    int32_t parent;    /* pid that started us, for the PDEATHSIG race check */
};

int zyg_main(void)
{
    const char *v = getenv(ZYG_EXEC_ENV);
    struct zboot b;
    ssize_t n;
    if (v == NULL || strcmp(v, "3") != 0) {
        fprintf(stderr, "vigil-zygote: not a command: vigild starts it (the worker zygote)\n");
        return 2;
    }
    unsetenv(ZYG_EXEC_ENV);
    do
        n = recv(ZYG_EXEC_FD, &b, sizeof b, 0);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof b)
        _exit(1);
    if (b.pdeathsig) {
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (getppid() != b.parent)
            _exit(1);
    }
    zygote_main(&b.cfg, ZYG_EXEC_FD);
}

/* Opens the zygote program for z->exe_fd: path, or ZYG_EXE_NAME in the directory of the running
 * program. */
static int zyg_open_exe(struct zyg *z, const char *path, struct pe_err *err)
{
    char buf[PATH_MAX];
    struct stat st;
    if (path == NULL) {
        if (path_beside_self(ZYG_EXE_NAME, buf, sizeof buf) < 0)
            return pe_err_sys(err, "zygote: cannot place %s next to the running program",
                              ZYG_EXE_NAME);
        path = buf;
    }
    z->exe_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (z->exe_fd < 0)
        return pe_err_sys(err,
                          "zygote: cannot open the zygote program %s (make builds it next "
                          "to vigild)",
                          path);
    if (z->exe_fd <= ZYG_EXEC_FD) { /* the spawn puts the control socket there */
        int hi = fcntl(z->exe_fd, F_DUPFD_CLOEXEC, ZYG_EXEC_FD + 1);
        int e = errno;
        close(z->exe_fd);
        z->exe_fd = hi;
        errno = e;
        if (hi < 0)
            return pe_err_sys(err, "zygote: dup");
    }
    if (fstat(z->exe_fd, &st) < 0 || !S_ISREG(st.st_mode) || !(st.st_mode & S_IXUSR)) {
        close(z->exe_fd);
        z->exe_fd = -1;
        return pe_err_set(err, PE_ESYS, "zygote: %s is not an executable file", path);
    }
    return PE_OK;
}

/* Starts a zygote for z (z->pid, z->ctrl) and waits for its hello. With z->mu held, or before
 * z is shared. */
static int zyg_launch(struct zyg *z, int pdeathsig, struct pe_err *err)
{
    static char env_kv[] = ZYG_EXEC_ENV "=3";
    char *argv[] = {(char *)(uintptr_t)ZYG_EXE_NAME, NULL};
    char exe[32];
    posix_spawn_file_actions_t fa;
    struct zboot b;
    struct zmsg m;
    struct pollfd pf;
    char **envp = NULL;
    size_t ne = 0, i;
    int sv[2] = {-1, -1}, fds[2], rc, r;
    pid_t pid = 0;

    __atomic_store_n(&z->pid, 0, __ATOMIC_RELAXED);
    z->ctrl = -1;
    while (environ != NULL && environ[ne] != NULL)
        ne++;
    envp = calloc(ne + 2, sizeof *envp);
    if (envp == NULL)
        return pe_err_set(err, PE_ENOMEM, "zygote: out of memory");
    for (i = 0; i < ne; i++)
        envp[i] = environ[i]; /* an inherited VIGIL_ZYGOTE_FD is harmless: ours comes last */
    envp[ne] = env_kv;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        rc = pe_err_sys(err, "zygote: socketpair");
        goto out;
    }
    if (sv[1] == ZYG_EXEC_FD) { /* dup2 onto itself would keep CLOEXEC */
        int hi = fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
        if (hi < 0) {
            rc = pe_err_sys(err, "zygote: dup");
            goto out;
        }
        close(sv[1]);
        sv[1] = hi;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, sv[1], ZYG_EXEC_FD);
    /* the file opened by zyg_start, whatever its path names by now */
    snprintf(exe, sizeof exe, "/proc/self/fd/%d", z->exe_fd);
    r = posix_spawn(&pid, exe, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    if (r != 0) {
        errno = r;
        rc = pe_err_sys(err, "zygote: posix_spawn of the zygote program");
        goto out;
    }
    __atomic_store_n(&z->pid, pid, __ATOMIC_RELAXED);
    z->ctrl = sv[0];
    sv[0] = -1;
    memset(&b, 0, sizeof b);
    b.cfg = z->cfg;
    b.cfg.zygote_exe = NULL; /* a pointer of ours means nothing there */
    b.pdeathsig = pdeathsig;
    b.parent = (int32_t)getpid();
    if (send(z->ctrl, &b, sizeof b, MSG_NOSIGNAL) != (ssize_t)sizeof b) {
        rc = pe_err_sys(err, "zygote: send the configuration");
        goto out;
    }
    pf.fd = z->ctrl;
    pf.events = POLLIN;
    if (poll(&pf, 1, ZYG_HELLO_TIMEOUT_MS) <= 0) {
        rc = pe_err_set(err, PE_ETIMEDOUT, "zygote: no hello within %d ms", ZYG_HELLO_TIMEOUT_MS);
        goto out;
    }
    if (recv_zmsg(z->ctrl, &m, fds) < 0) {
        rc = pe_err_set(err, PE_EDEAD, "zygote: died during start-up");
        goto out;
    }
    if (m.code != PE_OK) {
        rc = pe_err_set(err, m.code, "zygote: %s", m.msg);
        goto out;
    }
    wk_max_frame = z->cfg.max_frame;
    rc = PE_OK;
out:
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    free(envp);
    if (rc != PE_OK && z->pid > 0) { /* a zygote that did not come up is not kept */
        kill(z->pid, SIGKILL);
        waitpid(z->pid, NULL, 0);
        __atomic_store_n(&z->pid, 0, __ATOMIC_RELAXED);
    }
    if (rc != PE_OK && z->ctrl >= 0) {
        close(z->ctrl);
        z->ctrl = -1;
    }
    return rc;
}

int zyg_start(const struct zyg_cfg *cfg, struct zyg **out, struct pe_err *err)
{
    struct zyg *z;
    int rc;

    *out = NULL;
    if (!cfg->insecure_no_jail) {
        struct jail_report r;
        jail_probe(&r);
        if (!jail_report_full(&r))
            return pe_err_set(err, PE_ENOTSUP,
                              "%s; refusing to start: pass --insecure-no-jail to run with "
                              "no_new_privs+seccomp+rlimits only",
                              r.summary);
    }
    z = calloc(1, sizeof *z);
    if (z == NULL)
        return pe_err_set(err, PE_ENOMEM, "zygote: out of memory");
    z->cfg = *cfg;
    if (z->cfg.max_frame == 0)
        z->cfg.max_frame = IPC_MAX_FRAME_DEFAULT;
    z->ctrl = -1;
    z->exe_fd = -1;
    pthread_mutex_init(&z->mu, NULL);
    rc = zyg_open_exe(z, cfg->zygote_exe, err);
    if (rc == PE_OK)
        rc = zyg_launch(z, 1, err);
    if (rc != PE_OK) {
        zyg_free(z);
        return rc;
    }
    *out = z;
    return PE_OK;
}

/* 1 if the zygote's control socket shows it gone. With z->mu held (no request in flight: the
 * zygote never writes unprompted, so anything readable is the hang-up). */
static int zyg_gone(const struct zyg *z)
{
    struct pollfd pf = {.fd = z->ctrl, .events = POLLIN};
    return z->ctrl < 0 || poll(&pf, 1, 0) != 0;
}

/* Reaps the dead zygote z->pid and describes how it ended into buf. */
static void zyg_reap_old(struct zyg *z, char *buf, size_t cap)
{
    int st = 0, i;
    pid_t r = 0;
    for (i = 0; i < 100 && (r = waitpid(z->pid, &st, WNOHANG)) == 0; i++)
        usleep(10000); /* it may still be killing its workers */
    if (r == 0) {
        kill(z->pid, SIGKILL);
        r = waitpid(z->pid, &st, 0);
    }
    if (r != z->pid)
        snprintf(buf, cap, "zygote %d gone", (int)z->pid);
    else if (WIFSIGNALED(st))
        snprintf(buf, cap, "zygote %d killed by signal %d", (int)z->pid, WTERMSIG(st));
    else
        snprintf(buf, cap, "zygote %d exited with status %d", (int)z->pid, WEXITSTATUS(st));
}

int zyg_revive(struct zyg *z, struct pe_err *err)
{
    char how[96];
    pid_t old;
    int rc;
    pthread_mutex_lock(&z->mu);
    if (!z->dead && !zyg_gone(z)) {
        pthread_mutex_unlock(&z->mu);
        return pe_err_set(err, PE_EAGAIN, "zygote %d is alive", (int)z->pid);
    }
    old = z->pid;
    if (old > 0)
        zyg_reap_old(z, how, sizeof how);
    else
        snprintf(how, sizeof how, "no zygote");
    if (z->ctrl >= 0)
        close(z->ctrl);
    z->ctrl = -1;
    __atomic_store_n(&z->pid, 0, __ATOMIC_RELAXED);
    z->dead = 1;
    rc = zyg_launch(z, 0, err);
    if (rc == PE_OK) {
        z->dead = 0;
        z->restarts++;
        err->code = PE_OK;
        err->sys_errno = 0;
        snprintf(err->msg, sizeof err->msg, "%s; restarted as zygote %d", how, (int)z->pid);
    } else {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        pe_err_set(err, rc, "%s; restart failed: %s", how, why);
    }
    pthread_mutex_unlock(&z->mu);
    return rc;
}

void zyg_free(struct zyg *z)
{
    if (z == NULL)
        return;
    if (z->ctrl >= 0)
        close(z->ctrl); /* the zygote sees EOF, kills its workers and exits */
    if (z->pid > 0) {
        int i;
        for (i = 0; i < 200; i++) {
            if (waitpid(z->pid, NULL, WNOHANG) != 0)
                break;
            usleep(5000);
        }
        if (i == 200) {
            kill(z->pid, SIGKILL);
            waitpid(z->pid, NULL, 0);
        }
    }
    if (z->exe_fd >= 0)
        close(z->exe_fd);
    pthread_mutex_destroy(&z->mu);
    free(z);
}

pid_t zyg_pid(const struct zyg *z)
{
    return __atomic_load_n(&z->pid, __ATOMIC_RELAXED);
}

int zyg_spawn(struct zyg *z, struct wk *out, struct pe_err *err)
{
    struct zmsg m;
    int fds[2], rc;
    char op = 'S', *ready = NULL;
    size_t rlen;
    uint32_t id;
    ssize_t n;

    out->pid = 0;
    out->fd = out->pidfd = -1;
    pthread_mutex_lock(&z->mu);
    if (z->dead || z->ctrl < 0) {
        pthread_mutex_unlock(&z->mu);
        return pe_err_set(err, PE_EDEAD, "zygote: gone (zyg_revive restarts it)");
    }
    do
        n = send(z->ctrl, &op, 1, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n != 1) {
        z->dead = 1;
        pthread_mutex_unlock(&z->mu);
        return pe_err_set(err, PE_EDEAD, "zygote: gone (send: %s)", strerror(errno));
    }
    rc = recv_zmsg(z->ctrl, &m, fds);
    if (rc < 0)
        z->dead = 1;
    pthread_mutex_unlock(&z->mu);
    if (rc < 0)
        return pe_err_set(err, PE_EDEAD, "zygote: gone (recv: %s)",
                          errno ? strerror(errno) : "EOF");
    if (m.code != PE_OK) {
        if (fds[0] >= 0)
            close(fds[0]);
        if (fds[1] >= 0)
            close(fds[1]);
        return pe_err_set(err, m.code, "%s", m.msg);
    }
    if (fds[0] < 0)
        return pe_err_set(err, PE_EPROTO, "zygote: answer without a socket");
    out->pid = m.pid;
    out->fd = fds[0];
    out->pidfd = fds[1];
    /* the worker says ready (empty frame) or why its jail failed */
    rc = ipc_recv(out->fd, &ready, &rlen, &id, z->cfg.max_frame, WK_READY_TIMEOUT_MS, err);
    if (rc == PE_OK && rlen != 0)
        rc = pe_err_set(err, PE_ESYS, "worker jail failed: %s", ready);
    else if (rc != PE_OK && rc != PE_ETIMEDOUT)
        rc = pe_err_set(err, rc, "worker died before it was ready");
    free(ready);
    if (rc != PE_OK)
        wk_kill(out);
    return rc;
}

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int wk_call(struct wk *w, const char *req, size_t len, int timeout_ms, char **resp,
            size_t *resp_len, struct pe_err *err)
{
    static uint32_t next_id;
    uint32_t id, rid = 0;
    long long deadline = timeout_ms > 0 ? mono_ms() + timeout_ms : 0;
    int rc;

    *resp = NULL;
    *resp_len = 0;
    if (w->pid <= 0 || w->fd < 0)
        return pe_err_set(err, PE_EINVAL, "wk_call: dead worker");
    if (len > wk_max_frame)
        return pe_err_set(err, PE_EINVAL, "wk_call: request of %zu bytes above the limit %zu", len,
                          wk_max_frame);
    id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
    rc = ipc_send(w->fd, id, req, len, wk_max_frame, timeout_ms > 0 ? timeout_ms : 3600000, err);
    if (rc == PE_OK) {
        int left = deadline ? (int)(deadline - mono_ms()) : 0;
        if (deadline && left <= 0)
            rc = pe_err_set(err, PE_ETIMEDOUT, "worker: no answer within %d ms", timeout_ms);
        else
            rc = ipc_recv(w->fd, resp, resp_len, &rid, wk_max_frame, left, err);
    }
    if (rc == PE_OK && rid != id) {
        free(*resp);
        *resp = NULL;
        *resp_len = 0;
        rc = pe_err_set(err, PE_EPROTO, "worker: answer id %u for request %u", rid, id);
    }
    if (rc == PE_ETIMEDOUT)
        pe_err_set(err, PE_ETIMEDOUT, "worker: no answer within %d ms (killed)", timeout_ms);
    if (rc != PE_OK)
        wk_kill(w);
    return rc;
}

void wk_kill(struct wk *w)
{
    if (w->pid <= 0)
        return;
    if (w->pidfd < 0 || syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0) < 0) {
        if (w->pidfd < 0)
            kill(w->pid, SIGKILL);
    }
    if (w->fd >= 0)
        close(w->fd);
    if (w->pidfd >= 0)
        close(w->pidfd);
    w->pid = 0;
    w->fd = -1;
    w->pidfd = -1;
}

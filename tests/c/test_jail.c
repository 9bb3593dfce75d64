/* test_jail.c -- fork a child, apply the jail, try each forbidden operation from a table and
 * assert SIGSYS (or the errno the namespaces give); check the allowed set still works; check a
 * spawned worker's seccomp mode and namespaces. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include "jail.h"
#include "sandbox.h"
#include "tap.h"
#include "worker.h"

static struct jail_filter *F;
static struct sbx *S;
static int FULL; /* the full jail is available here (else: partial jail, namespace cases skip) */

/* each op returns its result (>= 0) or -errno */
static int r_of(long r)
{
    return r < 0 ? -errno : (int)r;
}

static int op_open(void)
{
    return r_of(open("/etc/passwd", O_RDONLY));
}
static int op_openat(void)
{
    return r_of(openat(AT_FDCWD, "/etc/hostname", O_RDONLY));
}
static int op_creat(void)
{
    return r_of(open("/x", O_WRONLY | O_CREAT, 0600));
}
static int op_socket(void)
{
    return r_of(socket(AF_INET, SOCK_STREAM, 0));
}
static int op_socket_unix(void)
{
    return r_of(socket(AF_UNIX, SOCK_STREAM, 0));
}
static int op_execve(void)
{
    char *const argv[] = {(char *)(uintptr_t) "sh", NULL};
    return r_of(execve("/bin/sh", argv, NULL));
}
static int op_fork(void)
{
    pid_t p = fork();
    if (p == 0)
        _exit(0);
    return r_of(p);
}
static int op_clone_ns(void)
{
    return r_of(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
}
static int op_ptrace(void)
{
    return r_of(ptrace(PTRACE_TRACEME, 0, NULL, NULL));
}
static int op_mount(void)
{
    return r_of(mount("none", "/", "tmpfs", 0, NULL));
}
static int op_unshare(void)
{
    return r_of(unshare(CLONE_NEWUSER));
}
static int op_mkdir(void)
{
    return r_of(mkdir("/newdir", 0700));
}
static int op_connect(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(80)};
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0)
        return -errno;
    a.sin_addr.s_addr = htonl(0x01010101);
    return r_of(connect(s, (struct sockaddr *)&a, sizeof a));
}
static int op_mmap_exec(void)
{
    void *p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? -errno : 0;
}
static int op_mprotect_exec(void)
{
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    return r_of(mprotect(p, 4096, PROT_READ | PROT_EXEC));
}
static int op_kill(void)
{
    return r_of(kill(1, SIGTERM));
}
static int op_sigaltstack_set(void)
{
    static char stk[65536];
    stack_t ss = {.ss_sp = stk, .ss_size = sizeof stk};
    return r_of(sigaltstack(&ss, NULL));
}
static int op_sigaltstack_query(void)
{
    stack_t old;
    return r_of(sigaltstack(NULL, &old));
}
static int op_getpid(void)
{
    return r_of(syscall(SYS_getpid));
}
static int op_getuid(void)
{
    return r_of(syscall(SYS_getuid));
}
static int op_setuid0(void)
{
    return r_of(syscall(SYS_setuid, 0));
}
static int op_chroot(void)
{
    return r_of(chroot("/"));
}
/* allowed */
static int op_malloc(void)
{
    size_t n = (size_t)64 << 20, i;
    char *p = malloc(n);
    if (p == NULL)
        return -ENOMEM;
    for (i = 0; i < n; i += 4096)
        p[i] = 1;
    free(p);
    return 0;
}
static int op_clock(void)
{
    struct timespec ts;
    struct timespec d = {0, 1000000};
    if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0 || clock_gettime(CLOCK_REALTIME, &ts) < 0)
        return -errno;
    return r_of(clock_nanosleep(CLOCK_MONOTONIC, 0, &d, NULL));
}
static int op_getrandom(void)
{
    char b[16];
    return r_of(syscall(SYS_getrandom, b, sizeof b, 0)) == 16 ? 0 : -EIO;
}
static int op_lua(void)
{
    struct pe_err e;
    int rc = sbx_dostring(S,
                          "local t = {} for i = 1, 1e5 do t[i] = tostring(i) end "
                          "local s = require and 1 or table.concat(t, ',') "
                          "assert(#s > 100000 and os == nil)",
                          &e);
    return rc == PE_OK ? 0 : -EINVAL;
}
static int op_lua_date(void)
{
    /* localtime in C after tzset: must not try to open /etc/localtime */
    time_t t = 0;
    struct tm tm;
    return localtime_r(&t, &tm) != NULL && tm.tm_hour == 0 ? 0 : -EINVAL;
}

enum { X_SIGSYS = 1000 }; /* expectation: killed by SIGSYS */

struct jcase {
    const char *name;
    int (*fn)(void);
    int seccomp;  /* 1: run under the filter */
    int want;     /* X_SIGSYS, or a result / -errno */
    int want_alt; /* an acceptable alternative result (0 = none) */
};

static const struct jcase cases[] = {
    {"open /etc/passwd", op_open, 1, X_SIGSYS, 0},
    {"openat", op_openat, 1, X_SIGSYS, 0},
    {"creat", op_creat, 1, X_SIGSYS, 0},
    {"socket(AF_INET)", op_socket, 1, X_SIGSYS, 0},
    {"socket(AF_UNIX)", op_socket_unix, 1, X_SIGSYS, 0},
    {"execve /bin/sh", op_execve, 1, X_SIGSYS, 0},
    {"fork", op_fork, 1, X_SIGSYS, 0},
    {"clone(CLONE_NEWUSER)", op_clone_ns, 1, X_SIGSYS, 0},
    {"ptrace(TRACEME)", op_ptrace, 1, X_SIGSYS, 0},
    {"mount", op_mount, 1, X_SIGSYS, 0},
    {"unshare(CLONE_NEWUSER)", op_unshare, 1, X_SIGSYS, 0},
    {"mkdir", op_mkdir, 1, X_SIGSYS, 0},
    {"connect", op_connect, 1, X_SIGSYS, 0},
    {"mmap(PROT_EXEC)", op_mmap_exec, 1, X_SIGSYS, 0},
    {"mprotect(PROT_EXEC)", op_mprotect_exec, 1, X_SIGSYS, 0},
    {"kill", op_kill, 1, X_SIGSYS, 0},
    {"setuid(0)", op_setuid0, 1, X_SIGSYS, 0},
    {"chroot", op_chroot, 1, X_SIGSYS, 0},
    {"sigaltstack (set)", op_sigaltstack_set, 1, X_SIGSYS, 0},
    /* the layers under the filter, measured without it */
    {"no filter: pid 1 in a new pid namespace", op_getpid, 0, 1, 0},
    {"no filter: uid 65534", op_getuid, 0, 65534, 0},
    {"no filter: /etc/passwd absent (empty root)", op_open, 0, -ENOENT, 0},
    {"no filter: mkdir -> EROFS", op_mkdir, 0, -EROFS, 0},
    {"no filter: creat -> EROFS", op_creat, 0, -EROFS, 0},
    {"no filter: connect -> ENETUNREACH", op_connect, 0, -ENETUNREACH, 0},
    {"no filter: mount -> EPERM", op_mount, 0, -EPERM, 0},
    {"no filter: chroot -> EPERM", op_chroot, 0, -EPERM, 0},
    {"no filter: setuid(0) -> EPERM (EINVAL: unmapped in a user namespace)", op_setuid0, 0, -EPERM,
     -EINVAL},
    /* DESIGN: without caps a new user namespace is still allowed: why the filter blocks it */
    {"no filter: unshare(CLONE_NEWUSER) still works (the filter must block it)", op_unshare, 0, 0,
     0},
    /* allowed under the filter */
    {"allowed: malloc + touch 64 MiB", op_malloc, 1, 0, 0},
    {"allowed: clock_gettime / clock_nanosleep", op_clock, 1, 0, 0},
    {"allowed: getrandom", op_getrandom, 1, 0, 0},
    {"allowed: sigaltstack (query only)", op_sigaltstack_query, 1, 0, 0},
    {"allowed: Lua eval (state built before the jail)", op_lua, 1, 0, 0},
    {"allowed: localtime after TZ=UTC", op_lua_date, 1, 0, 0},
};

/* Runs one case; returns the observed outcome (X_SIGSYS, a result, or -10000 - status). */
static int run_case(const struct jcase *c, char *why, size_t whylen)
{
    int sv[2], status, res = -99999;
    pid_t pid;
    struct pollfd pf;
    why[0] = '\0';
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -99998;
    pid = jail_fork(!FULL);
    if (pid == 0) {
        struct jail_cfg jc;
        struct pe_err e;
        int fd = sv[1], r;
        char msg[300];
        memset(&jc, 0, sizeof jc);
        jc.insecure = !FULL;
        jc.rlimit_nofile = 16;
#ifdef __SANITIZE_ADDRESS__
        jc.rlimit_as = 0; /* ASan reserves terabytes of address space */
#else
        jc.rlimit_as = (size_t)1 << 30;
#endif
        jc.filter = c->seccomp ? F : NULL;
        if (jail_apply(&jc, &fd, &e) != PE_OK) {
            r = -77777;
            memcpy(msg, &r, sizeof r);
            snprintf(msg + sizeof r, sizeof msg - sizeof r, "%s", e.msg);
            if (write(fd, msg, sizeof msg) < 0)
                jail_exit(2);
            jail_exit(1);
        }
        r = c->fn();
        memset(msg, 0, sizeof msg);
        memcpy(msg, &r, sizeof r);
        if (write(fd, msg, sizeof msg) < 0)
            jail_exit(2);
        jail_exit(0);
    }
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        snprintf(why, whylen, "clone: %s", strerror(errno));
        return -99997;
    }
    pf.fd = sv[0];
    pf.events = POLLIN;
    if (poll(&pf, 1, 10000) > 0) {
        char msg[300];
        ssize_t n = read(sv[0], msg, sizeof msg);
        if (n == (ssize_t)sizeof msg) {
            memcpy(&res, msg, sizeof res);
            if (res == -77777)
                snprintf(why, whylen, "jail failed: %.200s", msg + sizeof res);
        }
    }
    close(sv[0]);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    if (res == -99999) {
        if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
            return X_SIGSYS;
        return -10000 - status;
    }
    return res;
}

static void test_table(void)
{
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct jcase *c = &cases[i];
        char why[300];
        int got;
        if (!FULL && !c->seccomp) {
            skip("%s (no full jail on this machine)", c->name);
            continue;
        }
        got = run_case(c, why, sizeof why);
        int pass = got == c->want || (c->want_alt != 0 && got == c->want_alt);
        if (!ok(pass, "%s -> %s", c->name,
                c->want == X_SIGSYS ? "SIGSYS" : (c->want < 0 ? strerror(-c->want) : "ok")))
            note("got %d (%s) %s", got,
                 got == X_SIGSYS          ? "SIGSYS"
                 : got < 0 && got > -4096 ? strerror(-got)
                                          : "",
                 why);
    }
}

/* ---- a spawned worker: seccomp mode 2 and its own namespaces */

static int status_field(pid_t pid, const char *field, char *out, size_t outlen)
{
    char path[64], buf[4096];
    FILE *f;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(buf, sizeof buf, f)) {
        if (strncmp(buf, field, strlen(field)) == 0 && buf[strlen(field)] == ':') {
            char *v = buf + strlen(field) + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            v[strcspn(v, "\n")] = '\0';
            snprintf(out, outlen, "%s", v);
            fclose(f);
            return 0;
        }
    }
    fclose(f);
    return -1;
}

static int same_ns(pid_t a, pid_t b, const char *ns)
{
    char pa[64], pb[64], la[128] = "", lb[128] = "";
    snprintf(pa, sizeof pa, "/proc/%d/ns/%s", (int)a, ns);
    snprintf(pb, sizeof pb, "/proc/%d/ns/%s", (int)b, ns);
    if (readlink(pa, la, sizeof la - 1) < 0 || readlink(pb, lb, sizeof lb - 1) < 0)
        return -1;
    return strcmp(la, lb) == 0;
}

static void test_worker_jail(void)
{
    struct zyg_cfg cfg;
    struct zyg *z = NULL;
    struct wk w = WK_INIT;
    struct pe_err e;
    int rc;
    static const char *const nss[] = {"pid", "net", "mnt", "ipc", "uts"};

    if (!FULL) {
        skip("worker namespaces: no full jail on this machine");
        return;
    }
    zyg_cfg_init(&cfg);
    cfg.zygote_exe = test_zygote_exe();
    rc = zyg_start(&cfg, &z, &e);
    if (!ok(rc == PE_OK, "zygote starts with the full jail (%s)", rc ? e.msg : "ok"))
        return;
    rc = zyg_spawn(z, &w, &e);
    if (ok(rc == PE_OK, "worker spawned (%s)", rc ? e.msg : "ok")) {
        char v[64] = "";
        size_t i;
        ok(status_field(w.pid, "Seccomp", v, sizeof v) == 0 && strcmp(v, "2") == 0,
           "worker has Seccomp: 2 (got %s)", v);
        ok(status_field(w.pid, "NoNewPrivs", v, sizeof v) == 0 && strcmp(v, "1") == 0,
           "worker has NoNewPrivs: 1");
        ok(status_field(w.pid, "CapEff", v, sizeof v) == 0 && strcmp(v, "0000000000000000") == 0,
           "worker has no effective capabilities (%s)", v);
        ok(status_field(w.pid, "CapBnd", v, sizeof v) == 0 && strcmp(v, "0000000000000000") == 0,
           "worker has an empty bounding set (%s)", v);
        ok(status_field(w.pid, "Uid", v, sizeof v) == 0 && strncmp(v, "65534", 5) == 0,
           "worker runs as uid 65534 (%s)", v);
        for (i = 0; i < sizeof nss / sizeof nss[0]; i++)
            ok(same_ns(getpid(), w.pid, nss[i]) == 0, "worker in its own %s namespace", nss[i]);
        ok(status_field(w.pid, "NSpid", v, sizeof v) == 0 && strstr(v, "\t1") != NULL,
           "worker is pid 1 inside (NSpid %s)", v);
        wk_kill(&w);
    }
    zyg_free(z);
}

/* --insecure-no-jail: no namespaces, but no_new_privs + seccomp + rlimits (+ uid 65534 as root) */
static void test_insecure(void)
{
    struct zyg_cfg cfg;
    struct zyg *z = NULL;
    struct wk w = WK_INIT;
    struct pe_err e;
    int rc;

    zyg_cfg_init(&cfg);
    cfg.zygote_exe = test_zygote_exe();
    cfg.insecure_no_jail = 1;
    rc = zyg_start(&cfg, &z, &e);
    if (!ok(rc == PE_OK, "insecure zygote starts (%s)", rc ? e.msg : "ok"))
        return;
    rc = zyg_spawn(z, &w, &e);
    if (ok(rc == PE_OK, "insecure worker spawned (%s)", rc ? e.msg : "ok")) {
        char v[64] = "";
        ok(status_field(w.pid, "Seccomp", v, sizeof v) == 0 && strcmp(v, "2") == 0,
           "insecure worker still has Seccomp: 2");
        ok(status_field(w.pid, "NoNewPrivs", v, sizeof v) == 0 && strcmp(v, "1") == 0,
           "insecure worker still has NoNewPrivs: 1");
        ok(status_field(w.pid, "CapEff", v, sizeof v) == 0 && strcmp(v, "0000000000000000") == 0,
           "insecure worker has no capabilities");
        ok(same_ns(getpid(), w.pid, "pid") == 1, "insecure worker shares the pid namespace");
        wk_kill(&w);
    }
    zyg_free(z);
}

static void test_probe(void)
{
    struct jail_report r;
    jail_probe(&r);
    note("%s", r.summary);
    FULL = jail_report_full(&r) && getenv("VIGIL_TEST_PARTIAL_JAIL") == NULL;
    ok(r.seccomp, "probe: seccomp available");
    ok(jail_report_full(&r) ==
           (r.pidns && r.netns && r.mntns && r.seccomp && (r.as_root || r.userns)),
       "probe: full iff the pieces are there");
    ok(strlen(r.summary) > 10, "probe: summary");
}

int main(void)
{
    struct pe_err e;
    struct sbx_cfg sc = {(size_t)64 << 20, 0, 0};
    int rc = jail_filter_build(&F, &e);
    if (!ok(rc == PE_OK, "filter built once (%s)", rc ? e.msg : "ok"))
        return done_testing();
    if (sbx_new(&sc, &S, &e) != PE_OK)
        note("sbx_new: %s", e.msg);
    test_probe();
    test_table();
    test_worker_jail();
    test_insecure();
    sbx_free(S);
    jail_filter_free(F);
    return done_testing();
}

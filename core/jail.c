/* jail.c -- see jail.h. Each step is a small function returning PE_OK or a filled pe_err. */
#include "jail.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define JAIL_NOBODY 65534

struct jail_filter {
    struct sock_fprog prog;
};

/* uid/gid outside a new user namespace, saved by jail_fork for the mapping */
static uid_t outer_uid;
static gid_t outer_gid;

int jail_clone_flags(int insecure)
{
    int f;
    if (insecure)
        return 0;
    f = CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
    if (geteuid() != 0)
        f |= CLONE_NEWUSER;
    return f;
}

static pid_t clone_flags(int flags)
{
    /* raw clone with no stack behaves like fork (x86_64/aarch64 argument order) */
    return (pid_t)syscall(SYS_clone, (unsigned long)flags | SIGCHLD, NULL, NULL, NULL, NULL);
}

pid_t jail_fork(int insecure)
{
    int flags = jail_clone_flags(insecure);
    outer_uid = geteuid();
    outer_gid = getegid();
    if (flags == 0)
        return fork();
    return clone_flags(flags);
}

/* ---------------------------------------------------------------- seccomp filter */

int jail_filter_build(struct jail_filter **out, struct pe_err *err)
{
    static const int allow[] = {
        SCMP_SYS(read),
        SCMP_SYS(write),
        SCMP_SYS(readv),
        SCMP_SYS(writev),
        SCMP_SYS(close),
        SCMP_SYS(munmap),
        SCMP_SYS(mremap),
        SCMP_SYS(brk),
        SCMP_SYS(madvise),
        SCMP_SYS(futex),
        SCMP_SYS(exit),
        SCMP_SYS(exit_group),
        SCMP_SYS(rt_sigreturn),
        SCMP_SYS(rt_sigprocmask),
        SCMP_SYS(clock_gettime),
        SCMP_SYS(clock_nanosleep),
        SCMP_SYS(gettimeofday),
        SCMP_SYS(getrandom),
        SCMP_SYS(restart_syscall),
        SCMP_SYS(time),
        SCMP_SYS(clock_getres),
        /* the serve loop waits for the next request with a timeout to go idle (poll on x86_64,
         * ppoll where there is no poll); neither reaches anything the process does not hold */
        SCMP_SYS(poll),
        SCMP_SYS(ppoll),
    };
    scmp_filter_ctx ctx = NULL;
    struct jail_filter *f = NULL;
    struct stat st;
    int rc = PE_ESYS, mfd = -1, r;
    size_t i;

    *out = NULL;
    ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
    if (ctx == NULL) {
        rc = pe_err_set(err, PE_ENOMEM, "seccomp_init failed");
        goto out;
    }
    for (i = 0; i < sizeof allow / sizeof allow[0]; i++) {
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allow[i], 0);
        if (r < 0) {
            errno = -r;
            rc = pe_err_sys(err, "seccomp_rule_add(%d)", allow[i]);
            goto out;
        }
    }
    /* mmap / mprotect only without PROT_EXEC: no new executable pages */
    r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
                         SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    if (r == 0)
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
                             SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    /* sigaltstack only as a query (ss == NULL): measured, the sanitizer runtimes call it on
     * every longjmp / noreturn call (__asan_handle_no_return); setting a stack stays killed */
    if (r == 0)
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(sigaltstack), 1,
                             SCMP_A0(SCMP_CMP_EQ, 0));
    if (r < 0) {
        errno = -r;
        rc = pe_err_sys(err, "seccomp_rule_add(mmap/mprotect/sigaltstack)");
        goto out;
    }
    mfd = memfd_create("vigil-seccomp", MFD_CLOEXEC);
    if (mfd < 0) {
        rc = pe_err_sys(err, "memfd_create");
        goto out;
    }
    r = seccomp_export_bpf(ctx, mfd);
    if (r < 0) {
        errno = -r;
        rc = pe_err_sys(err, "seccomp_export_bpf");
        goto out;
    }
    if (fstat(mfd, &st) < 0) {
        rc = pe_err_sys(err, "fstat(seccomp memfd)");
        goto out;
    }
    if (st.st_size <= 0 || st.st_size % (off_t)sizeof(struct sock_filter) != 0 ||
        st.st_size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS) {
        rc = pe_err_set(err, PE_EINVAL, "seccomp: bad exported program size %lld",
                        (long long)st.st_size);
        goto out;
    }
    f = calloc(1, sizeof *f + (size_t)st.st_size);
    if (f == NULL) {
        rc = pe_err_set(err, PE_ENOMEM, "seccomp: out of memory");
        goto out;
    }
    f->prog.len = (unsigned short)(st.st_size / (off_t)sizeof(struct sock_filter));
    f->prog.filter = (struct sock_filter *)(f + 1);
    if (pread(mfd, f->prog.filter, (size_t)st.st_size, 0) != st.st_size) {
        rc = pe_err_sys(err, "pread(seccomp memfd)");
        goto out;
    }
    *out = f;
    f = NULL;
    rc = PE_OK;
out:
    free(f);
    if (mfd >= 0)
        close(mfd);
    seccomp_release(ctx);
    return rc;
}

void jail_filter_free(struct jail_filter *f)
{
    free(f);
}

/* ---------------------------------------------------------------- steps */

static int step_fds(int *fd, struct pe_err *err)
{
    int hi, nul;
    hi = fcntl(*fd, F_DUPFD_CLOEXEC, 10);
    if (hi < 0)
        return pe_err_sys(err, "jail: dup of the socket");
    nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (nul < 0)
        return pe_err_sys(err, "jail: open /dev/null");
    if (dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(nul, 2) < 0)
        return pe_err_sys(err, "jail: stdio to /dev/null");
    if (dup2(hi, 3) < 0)
        return pe_err_sys(err, "jail: socket to fd 3");
    *fd = 3;
    if (syscall(SYS_close_range, 4U, ~0U, 0U) < 0)
        return pe_err_sys(err, "jail: close_range");
    return PE_OK;
}

static int write_file(const char *path, const char *text, struct pe_err *err)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t n;
    if (fd < 0)
        return pe_err_sys(err, "jail: open %s", path);
    n = write(fd, text, strlen(text));
    if (n != (ssize_t)strlen(text)) {
        pe_err_sys(err, "jail: write %s", path);
        close(fd);
        return PE_ESYS;
    }
    close(fd);
    return PE_OK;
}

static int step_usermap(struct pe_err *err)
{
    char buf[64];
    int rc;
    rc = write_file("/proc/self/setgroups", "deny", err);
    if (rc != PE_OK)
        return rc;
    snprintf(buf, sizeof buf, "%u %u 1\n", (unsigned)JAIL_NOBODY, (unsigned)outer_uid);
    rc = write_file("/proc/self/uid_map", buf, err);
    if (rc != PE_OK)
        return rc;
    snprintf(buf, sizeof buf, "%u %u 1\n", (unsigned)JAIL_NOBODY, (unsigned)outer_gid);
    rc = write_file("/proc/self/gid_map", buf, err);
    /* we are now 65534 inside the namespace, still with its capabilities until step_caps */
    return rc;
}

static int step_root(struct pe_err *err)
{
    static const char *const dirs[] = {"/tmp", "/mnt", "/var/tmp", "/dev", NULL};
    const char *const *d;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return pe_err_sys(err, "jail: make mounts private");
    for (d = dirs; *d != NULL; d++) {
        if (mount("vigil", *d, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "size=16k,nr_inodes=4,mode=0555") == 0)
            break;
    }
    if (*d == NULL)
        return pe_err_sys(err, "jail: mount an empty tmpfs");
    if (chdir(*d) < 0)
        return pe_err_sys(err, "jail: chdir %s", *d);
    if (syscall(SYS_pivot_root, ".", ".") == 0) {
        if (umount2(".", MNT_DETACH) < 0)
            return pe_err_sys(err, "jail: detach the old root");
    } else if (chroot(".") < 0) {
        return pe_err_sys(err, "jail: pivot_root and chroot");
    }
    if (chdir("/") < 0)
        return pe_err_sys(err, "jail: chdir /");
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) <
            0 &&
        mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
              NULL) < 0)
        return pe_err_sys(err, "jail: remount the root read-only");
    if (sethostname("vigil", 5) < 0)
        return pe_err_sys(err, "jail: sethostname");
    return PE_OK;
}

static int set_limit(int res, rlim_t v, const char *name, struct pe_err *err)
{
    struct rlimit rl = {v, v};
    if (setrlimit(res, &rl) < 0)
        return pe_err_sys(err, "jail: setrlimit(%s)", name);
    return PE_OK;
}

static int step_rlimits(const struct jail_cfg *cfg, struct pe_err *err)
{
    int rc = PE_OK;
    if (cfg->rlimit_as > 0)
        rc = set_limit(RLIMIT_AS, (rlim_t)cfg->rlimit_as, "AS", err);
    if (rc == PE_OK && cfg->rlimit_cpu > 0)
        rc = set_limit(RLIMIT_CPU, (rlim_t)cfg->rlimit_cpu, "CPU", err);
    if (rc == PE_OK && cfg->rlimit_nofile > 0)
        rc = set_limit(RLIMIT_NOFILE, (rlim_t)cfg->rlimit_nofile, "NOFILE", err);
    if (rc == PE_OK)
        rc = set_limit(RLIMIT_FSIZE, (rlim_t)cfg->rlimit_fsize, "FSIZE", err);
    if (rc == PE_OK)
        rc = set_limit(RLIMIT_NPROC, (rlim_t)cfg->rlimit_nproc, "NPROC", err);
    return rc;
}

static int step_caps(struct pe_err *err)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    int c;
    /* bounding set first: needs CAP_SETPCAP, which the setuid below takes away */
    for (c = 0; c < 64; c++) {
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno == EINVAL)
            break;
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return pe_err_sys(err, "jail: clear ambient capabilities");
    if (geteuid() == 0) {
        if (setgroups(0, NULL) < 0)
            return pe_err_sys(err, "jail: setgroups");
        if (setresgid(JAIL_NOBODY, JAIL_NOBODY, JAIL_NOBODY) < 0)
            return pe_err_sys(err, "jail: setresgid(65534)");
        if (setresuid(JAIL_NOBODY, JAIL_NOBODY, JAIL_NOBODY) < 0)
            return pe_err_sys(err, "jail: setresuid(65534)");
    }
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &hdr, data) < 0)
        return pe_err_sys(err, "jail: capset(0)");
    return PE_OK;
}

/* The test knob: PE_OK unless cfg->fail_step names this step. */
static int injected(const struct jail_cfg *cfg, const char *step, struct pe_err *err)
{
    if (cfg->fail_step == NULL || strcmp(cfg->fail_step, step) != 0)
        return PE_OK;
    errno = EPERM;
    return pe_err_sys(err, "jail: %s (failure injected by the test knob)", step);
}

static int step_tz(struct pe_err *err)
{
    if (setenv("TZ", "UTC", 1) < 0)
        return pe_err_sys(err, "jail: setenv TZ");
    tzset();
    return PE_OK;
}

static int step_nnp(struct pe_err *err)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return pe_err_sys(err, "jail: PR_SET_NO_NEW_PRIVS");
    return PE_OK;
}

static int step_seccomp(const struct jail_cfg *cfg, struct pe_err *err)
{
    if (cfg->filter != NULL &&
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &cfg->filter->prog, 0, 0) < 0)
        return pe_err_sys(err, "jail: PR_SET_SECCOMP");
    return PE_OK;
}

/* One step of jail_apply: the test knob may fail it (cfg->fail_step names it), then it runs;
 * nothing more runs after a failure. */
#define JAIL_STEP(name, call)                                                                      \
    do {                                                                                           \
        if (rc == PE_OK)                                                                           \
            rc = injected(cfg, (name), err);                                                       \
        if (rc == PE_OK)                                                                           \
            rc = (call);                                                                           \
    } while (0)

int jail_apply(const struct jail_cfg *cfg, int *fd, struct pe_err *err)
{
    int rc = PE_OK;
    JAIL_STEP("fds", step_fds(fd, err));
    if (!cfg->insecure && outer_uid != 0)
        JAIL_STEP("usermap", step_usermap(err));
    if (!cfg->insecure)
        JAIL_STEP("root", step_root(err));
    JAIL_STEP("tz", step_tz(err));
    JAIL_STEP("rlimits", step_rlimits(cfg, err));
    JAIL_STEP("caps", step_caps(err));
    JAIL_STEP("nnp", step_nnp(err));
    JAIL_STEP("seccomp", step_seccomp(cfg, err));
    return rc;
}

#undef JAIL_STEP

void jail_exit(int status)
{
    for (;;)
        syscall(SYS_exit_group, status);
}

/* ---------------------------------------------------------------- probe */

/* Runs fn in a child created with clone flags; 1 if the child exited 0. */
static int probe_child(int flags, int (*fn)(void))
{
    int status;
    pid_t pid = flags ? clone_flags(flags) : fork();
    if (pid < 0)
        return 0;
    if (pid == 0)
        jail_exit(fn != NULL ? fn() : 0);
    if (waitpid(pid, &status, 0) < 0)
        return 0;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static const struct jail_filter *probe_filter;

static int probe_full(void)
{
    struct jail_cfg cfg = {0};
    struct pe_err e;
    int fd = 0; /* any open fd to keep */
    cfg.filter = probe_filter;
    cfg.rlimit_nofile = 16;
    if (jail_apply(&cfg, &fd, &e) != PE_OK)
        return 1;
    return 0;
}

void jail_probe(struct jail_report *r)
{
    struct jail_filter *f = NULL;
    struct pe_err e;
    int user = geteuid() != 0 ? CLONE_NEWUSER : 0, full = 0;

    memset(r, 0, sizeof *r);
    outer_uid = geteuid();
    outer_gid = getegid();
    r->as_root = geteuid() == 0;
    r->userns = probe_child(CLONE_NEWUSER, NULL);
    r->pidns = probe_child(user | CLONE_NEWPID, NULL);
    r->netns = probe_child(user | CLONE_NEWNET, NULL);
    r->mntns = probe_child(user | CLONE_NEWNS, NULL);
    if (jail_filter_build(&f, &e) == PE_OK) {
        probe_filter = f;
        r->seccomp = prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0;
        if (jail_report_full(r))
            full = probe_child(jail_clone_flags(0), probe_full);
        probe_filter = NULL;
        jail_filter_free(f);
    }
    if (jail_report_full(r) && !full)
        r->mntns = 0; /* the namespaces clone but the full jail does not apply */
    snprintf(r->summary, sizeof r->summary,
             "jail: %s (root=%d userns=%d pidns=%d netns=%d mntns=%d seccomp=%d)",
             jail_report_full(r) ? "full" : "partial (no_new_privs+seccomp+rlimits only)",
             r->as_root, r->userns, r->pidns, r->netns, r->mntns, r->seccomp);
}

int jail_report_full(const struct jail_report *r)
{
    return r->pidns && r->netns && r->mntns && r->seccomp && (r->as_root || r->userns);
}

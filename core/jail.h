/*
 * jail.h -- process confinement for a worker: namespaces, an empty read-only root, dropped
 * capabilities, no_new_privs, rlimits, closed fds and a seccomp allow-list, applied as an
 * ordered list of small steps (nsjail contain.cc), the filter last and irreversibly.
 *
 * The seccomp program is built once (jail_filter_build, in the parent) and loaded in each child
 * with prctl(PR_SET_SECCOMP). Every step fails loudly with a pe_err naming it.
 * Relies on: Linux >= 5.9 (close_range), libseccomp.
 */
#ifndef VIGIL_JAIL_H
#define VIGIL_JAIL_H

#include <stddef.h>
#include <sys/types.h>

#include "err.h"

/* What this machine offers; filled by jail_probe() (forks short-lived probe children). */
struct jail_report {
    int userns, pidns, netns, mntns, seccomp, as_root;
    char summary[256]; /* one line for /readyz and the logs */
};

/* Probes each mechanism in a throw-away child. Never fails; unavailable things read 0.
 * Full jail available = pidns && netns && mntns && seccomp && (as_root || userns). */
void jail_probe(struct jail_report *r);

/* 1 if the report allows the full jail. */
int jail_report_full(const struct jail_report *r);

/* The compiled seccomp program (BPF), built once in the parent. */
struct jail_filter;

/* Builds the allow-list filter. Returns PE_OK and *out (free with jail_filter_free). */
int jail_filter_build(struct jail_filter **out, struct pe_err *err);
void jail_filter_free(struct jail_filter *f); /* NULL ok */

struct jail_cfg {
    int insecure;                     /* 1: skip namespaces and the root change (partial jail) */
    size_t rlimit_as;                 /* 0: unchanged */
    int rlimit_cpu;                   /* seconds; 0: unchanged */
    int rlimit_nofile;                /* 0: unchanged */
    size_t rlimit_fsize;              /* applied as given (0 = no file may grow) */
    int rlimit_nproc;                 /* applied for non-root uids only */
    const struct jail_filter *filter; /* NULL: no seccomp (tests only) */
    const char *fail_step;            /* tests only: this step fails as if its syscall had
                                         (EPERM): "fds", "usermap", "root", "tz", "rlimits",
                                         "caps", "nnp", "seccomp"; NULL or "": none */
};

/* The clone flags the child must be created with (0 in insecure mode): CLONE_NEWPID|NEWNET|
 * NEWNS|NEWIPC|NEWUTS, plus CLONE_NEWUSER when not root. */
int jail_clone_flags(int insecure);

/* Forks a child in the namespaces of jail_clone_flags(insecure) (raw clone: behaves like
 * fork). Returns the child's pid in the parent, 0 in the child, -1 with errno on failure. */
pid_t jail_fork(int insecure);

/* Applies the jail in the calling child (created by jail_fork), in order: stdio to /dev/null
 * and every fd closed except *fd (moved to fd 3; *fd is updated at once), user mapping
 * (non-root), private mounts + empty tmpfs root (pivot_root, else chroot) remounted read-only,
 * hostname, TZ=UTC + tzset, rlimits, uid/gid 65534 (as root), capabilities dropped,
 * no_new_privs, seccomp. Returns PE_OK, or a negative pe_status with err naming the step (the
 * process is then half-jailed: report the error on *fd and _exit). */
int jail_apply(const struct jail_cfg *cfg, int *fd, struct pe_err *err);

/* Leaves a (jailed) process at once: the raw exit_group syscall. Sanitizer runtimes intercept
 * _exit() and make syscalls the filter forbids (sigaltstack), so jailed code exits here. */
void jail_exit(int status) __attribute__((noreturn));

#endif

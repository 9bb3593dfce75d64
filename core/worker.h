/*
 * worker.h -- the worker side of vigil: the zygote that forks one jailed worker process per
 * session, the host-side call into a worker, and an in-process (unjailed) variant for the CLI.
 *
 * The zygote is a process started from vigild at startup: a posix_spawn of the small program
 * build/vigil-zygote (core/zygote/main.c: core + Lua + PCRE2 + libseccomp, none of the host's
 * HTTP/TLS/SQLite/JSON libraries), found next to the running program and opened once by
 * zyg_start, so a zygote that died can be restarted from a multithreaded vigild (zyg_revive)
 * from the very same file. It builds
 * the sandbox once (Lua + LPeg + cjson + vregex + every bundled module; `rt`, `compiler` and
 * `worker` required eagerly), builds the seccomp filter once, and on request forks a worker
 * (new pid/net/mount/ipc/uts namespaces), which applies the jail (core/jail.h) and serves the
 * protocol of docs/internals.md §2 on a socketpair. The zygote reaps its children.
 * Relies on: core/sandbox, core/jail, core/ipc, lua/runtime/worker.lua.
 */
#ifndef VIGIL_WORKER_H
#define VIGIL_WORKER_H

#include <stddef.h>
#include <sys/types.h>

#include "err.h"
#include "jail.h"

/* Configuration; zyg_cfg_init() fills the documented defaults. Every size in bytes. */
struct zyg_cfg {
    int insecure_no_jail;    /* 1: no namespaces/pivot_root (still no_new_privs+seccomp+rlimits) */
    size_t mem_limit;        /* per-session Lua heap cap (default 256 MiB) */
    long long instr_budget;  /* Lua instructions per request (default 2e9; 0 = unlimited) */
    int deadline_ms;         /* wall-clock deadline per request inside the worker (default 10000) */
    size_t max_frame;        /* hard max payload of one frame (default IPC_MAX_FRAME_DEFAULT) */
    size_t rlimit_as;        /* RLIMIT_AS of a worker (default mem_limit + 512 MiB; 0 = none) */
    int rlimit_cpu;          /* RLIMIT_CPU seconds of a worker (default 3600; 0 = none) */
    int rlimit_nofile;       /* RLIMIT_NOFILE (default 16) */
    size_t rlimit_fsize;     /* RLIMIT_FSIZE (default 0: no file may grow) */
    int rlimit_nproc;        /* RLIMIT_NPROC, non-root uids only (default 0: no new process) */
    int prefork;             /* 1 (default): the zygote keeps one jailed worker forked ahead, so
                                zyg_spawn only hands it over; 0: fork on demand */
    int idle_trim_ms;        /* a session's worker that served a request and then waited this
                                long for the next one runs a full Lua GC and malloc_trim(0) once,
                                giving the memory of its last requests back (default 500; 0 =
                                never). A worker that only answered stateless requests (check,
                                compile: the pool) keeps its memory: the next large check would
                                pay 40-90 ms of page faults for it */
    int sanitizer_build;     /* informational: set by the build, not by callers */
    char jail_fail_step[16]; /* tests only: the jail step every worker fails (jail_cfg.fail_step;
                                "" = none): exercises the failure report */
    const char *zygote_exe;  /* the vigil-zygote program; NULL (default): ZYG_EXE_NAME in the
                                directory of the running program (readlink /proc/self/exe).
                                Read by zyg_start only (the file is opened once, there) */
};

/* the zygote program's file name, built next to vigild (build/vigil-zygote) */
#define ZYG_EXE_NAME "vigil-zygote"

void zyg_cfg_init(struct zyg_cfg *cfg);

struct zyg; /* opaque */

/* Starts the zygote. Call it from the main thread, before any other starts (libmicrohttpd,
 * sqlite workers): the zygote dies with the thread that started it (PR_SET_PDEATHSIG).
 * Opens the zygote program (cfg->zygote_exe, or ZYG_EXE_NAME next to the running program)
 * once and keeps the descriptor: every start and restart executes that file through
 * /proc/self/fd, so replacing the path later changes nothing.
 * Returns PE_OK and *out (owned by the caller, free with zyg_free), or a negative pe_status
 * with err filled: PE_ENOTSUP when the full jail is unavailable and cfg->insecure_no_jail is 0
 * (err->msg says why and what to pass), PE_ESYS when the zygote program is missing (err->msg
 * names the path), PE_ELUA when the runtime does not load. */
int zyg_start(const struct zyg_cfg *cfg, struct zyg **out, struct pe_err *err);

/* Restarts the zygote if it died (zyg_spawn answered PE_EDEAD, or its control socket hung up).
 * Thread-safe, callable from any thread: the new zygote is a posix_spawn of the zygote program
 * opened by zyg_start (nothing forked from a multithreaded process), and outlives the calling
 * thread (its death is noticed by the hang-up of vigild's end, not by PR_SET_PDEATHSIG). Workers of
 * the old zygote live on (their host sockets are open). Returns PE_OK when it restarted a dead
 * zygote (err->msg says how the old one ended and the new pid: log it), PE_EAGAIN when the zygote
 * is alive (nothing done; another thread may have restarted it: retry the spawn), or the error of
 * the restart (err->msg; the zygote stays dead, a later call tries again). Takes the time of a
 * zygote start-up (Lua runtime loaded: ~0.1-0.3 s); spawns wait meanwhile. */
int zyg_revive(struct zyg *z, struct pe_err *err);

/* Stops the zygote and SIGKILLs all its workers; waits for the zygote. NULL ok. */
void zyg_free(struct zyg *z);

/* pid of the zygote process (for tests and metrics). */
pid_t zyg_pid(const struct zyg *z);

/* A worker as the host sees it. Copyable; owned by whoever called zyg_spawn; release with
 * wk_kill. A zero-initialised or killed wk has pid 0 and fd/pidfd -1 (wk_kill ignores pid <= 0). */
struct wk {
    pid_t pid; /* as seen from the caller's pid namespace */
    int fd;    /* the host end of the socketpair, CLOEXEC */
    int pidfd; /* pidfd of the worker, -1 if unsupported: signals never hit a reused pid */
};
/* clang-format off */
#define WK_INIT {0, -1, -1}
/* clang-format on */

/* Forks a jailed worker. Thread-safe (serialised internally). On PE_OK the worker has applied
 * its jail and is ready to serve. Errors: PE_EDEAD (the zygote is gone: zyg_revive, then spawn
 * again), PE_ESYS, or the jail step that failed in the child (PE_ESYS/PE_ENOTSUP with its
 * message). */
int zyg_spawn(struct zyg *z, struct wk *out, struct pe_err *err);

/* One request: sends req[0..len) and waits up to timeout_ms (<= 0: forever) for the answer.
 * On PE_OK *resp (malloc'd, NUL-terminated, caller frees) holds the response payload, a JSON
 * object {"ok":...} as in internals.md §2 (memory_limit / deadline_exceeded / internal errors
 * from the sandbox are ordinary responses). Errors:
 *   PE_ETIMEDOUT  no answer within timeout_ms: the worker was SIGKILLed (respawn + replay);
 *   PE_EDEAD      the worker died (EOF / reset);
 *   PE_EPROTO     a malformed or oversized answer: the worker was SIGKILLed;
 *   PE_EINVAL     len above the frame limit, or a dead wk (pid <= 0).
 * After PE_ETIMEDOUT, PE_EDEAD and PE_EPROTO the wk is already released (as by wk_kill).
 * Not thread-safe per wk: one request in flight per worker; the host serialises. */
int wk_call(struct wk *w, const char *req, size_t len, int timeout_ms, char **resp,
            size_t *resp_len, struct pe_err *err);

/* SIGKILL + close both fds; sets pid 0 and fds -1. Idempotent; the zygote reaps the process. */
void wk_kill(struct wk *w);

/* The main of the zygote program (core/zygote/main.c): serves the zygote protocol on fd 3 when
 * started by zyg_start/zyg_revive (environment VIGIL_ZYGOTE_FD=3); otherwise prints that it is
 * not a command and returns 2. Does not return when it served. */
int zyg_main(void);

/* ---- In-process variant for the CLI and tests: same dispatcher, no process, no jail. ----
 * wk_local_call takes and returns the same request/response payloads as wk_call; the sandbox
 * limits (memory cap, instruction budget, deadline) apply. A jailed worker runs the full
 * collection a large request leaves (worker.after) after it has written the answer;
 * wk_local_call runs it before it returns. Not thread-safe. */
struct wk_local;
int wk_local_new(const struct zyg_cfg *cfg, struct wk_local **out, struct pe_err *err);
int wk_local_call(struct wk_local *w, const char *req, size_t len, char **resp, size_t *resp_len,
                  struct pe_err *err);
void wk_local_free(struct wk_local *w);

#endif

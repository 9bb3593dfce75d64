/*
 * err.h -- the status codes and the error record shared by every core/ and host/ module.
 *
 * C calling C returns an int: PE_OK (0) on success, a negative enum pe_status on failure.
 * Detail goes into an optional caller-owned struct pe_err (fixed-size message, a code and the
 * saved errno); filling it allocates nothing, so it works out of memory. core/ never prints:
 * it fills the record and the caller decides what to log.  Relies on: libc only.
 */
#ifndef VIGIL_ERR_H
#define VIGIL_ERR_H

#include <stddef.h>

enum pe_status {
    PE_OK = 0,
    PE_ENOMEM = -1,    /* malloc failed */
    PE_EINVAL = -2,    /* bad argument or configuration */
    PE_ESYS = -3,      /* a system call failed: see err->sys_errno */
    PE_ETIMEDOUT = -4, /* a timeout passed (worker watchdog: the worker was SIGKILLed) */
    PE_EDEAD = -5,     /* the peer process died (EOF on its socket) */
    PE_EPROTO = -6,    /* framing / protocol violation (oversized or malformed frame) */
    PE_ELUA = -7,      /* a Lua error (message in err->msg) */
    PE_EMEMLIMIT = -8, /* the sandbox memory cap was hit */
    PE_EDEADLINE = -9, /* the sandbox instruction budget or wall-clock deadline was hit */
    PE_ENOTSUP = -10,  /* a mechanism is not available on this machine */
    PE_EAGAIN = -11,   /* incomplete input, try again with more */
};

struct pe_err {
    int code;      /* enum pe_status */
    int sys_errno; /* errno saved at the failure site, 0 if none */
    char msg[256]; /* NUL-terminated, human readable, names the failed step */
};

/* Clears the record (NULL ok). */
void pe_err_clear(struct pe_err *err);

/* Fills err (NULL ok) with code, sys_errno = 0 and a printf-style message. Returns code. */
int pe_err_set(struct pe_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like pe_err_set with code PE_ESYS, saving errno and appending ": strerror(errno)".
 * errno is preserved. Returns PE_ESYS. */
int pe_err_sys(struct pe_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A static name for a status code ("PE_ETIMEDOUT"), never NULL. */
const char *pe_status_str(int code);

#endif

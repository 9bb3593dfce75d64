/* err.c -- see err.h. */
#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void pe_err_clear(struct pe_err *err)
{
    if (err == NULL)
        return;
    err->code = PE_OK;
    err->sys_errno = 0;
    err->msg[0] = '\0';
}

int pe_err_set(struct pe_err *err, int code, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL)
        return code;
    err->code = code;
    err->sys_errno = 0;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

int pe_err_sys(struct pe_err *err, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    size_t n;
    if (err == NULL)
        return PE_ESYS;
    err->code = PE_ESYS;
    err->sys_errno = saved;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    n = strlen(err->msg);
    if (n < sizeof err->msg)
        snprintf(err->msg + n, sizeof err->msg - n, ": %s", strerror(saved));
    errno = saved;
    return PE_ESYS;
}

const char *pe_status_str(int code)
{
    switch (code) {
    case PE_OK:
        return "PE_OK";
    case PE_ENOMEM:
        return "PE_ENOMEM";
    case PE_EINVAL:
        return "PE_EINVAL";
    case PE_ESYS:
        return "PE_ESYS";
    case PE_ETIMEDOUT:
        return "PE_ETIMEDOUT";
    case PE_EDEAD:
        return "PE_EDEAD";
    case PE_EPROTO:
        return "PE_EPROTO";
    case PE_ELUA:
        return "PE_ELUA";
    case PE_EMEMLIMIT:
        return "PE_EMEMLIMIT";
    case PE_EDEADLINE:
        return "PE_EDEADLINE";
    case PE_ENOTSUP:
        return "PE_ENOTSUP";
    case PE_EAGAIN:
        return "PE_EAGAIN";
    default:
        return "PE_UNKNOWN";
    }
}

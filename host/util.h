/*
 * util.h — small helpers shared by the host modules: clocks, random ids, a 64-bit FNV-1a hash,
 * and the logging sink.
 *
 * Logging writes one line per call to stderr, prefixed with a UTC timestamp and the level; when
 * the jail is off (--insecure-no-jail) every line says so. All functions are thread-safe.
 */
#ifndef VIGIL_HOST_UTIL_H
#define VIGIL_HOST_UTIL_H

#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

extern int util_log_level;    /* lines above this level are dropped */
extern int util_log_insecure; /* 1: every line carries the insecure-no-jail marker */

/* Parses "error", "warn", "info", "debug"; returns the level or -1. */
int util_log_parse(const char *name);
void util_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

double util_now(void);     /* wall clock, seconds since the epoch */
double util_mono_ms(void); /* monotonic clock, milliseconds */

/* Fills out with 2*nbytes lowercase hex digits and a NUL (out holds 2*nbytes+1). */
void util_rand_hex(char *out, size_t nbytes);
/* A random RFC 4122 version-4 UUID in canonical form; out holds 37 bytes. */
void util_uuid4(char out[37]);

#define UTIL_FNV_INIT 1469598103934665603ULL
uint64_t util_fnv1a(uint64_t h, const void *p, size_t n);

/* 1 when s is a usable client-chosen id: 1..64 characters of [A-Za-z0-9._-]. */
int util_id_ok(const char *s);

#endif

/*
 * jscan.h — a validating JSON scanner for request bodies that builds no tree.
 *
 * vigild must reject malformed JSON with a 400 and check the types and sizes of a body's
 * top-level fields, but it should not parse a 10,000-event trace into a tree only to encode it
 * again for the worker (jansson needs ~60 ms per MiB for that). jscan_object() validates a
 * whole document (RFC 8259 grammar, UTF-8, a nesting limit) and records, for each top-level
 * member of the object, its decoded key, the byte range of its value, the value's type and,
 * for arrays, the number of elements. Values are then passed to the worker as they came
 * (jscan_* slices), and small ones are decoded with jansson when the host needs them.
 * Everything points into the caller's buffer (borrowed: valid while the body is).
 */
#ifndef VIGIL_HOST_JSCAN_H
#define VIGIL_HOST_JSCAN_H

#include <stddef.h>

enum jtype { JT_NULL, JT_BOOL, JT_NUMBER, JT_STRING, JT_ARRAY, JT_OBJECT };

#define JSCAN_MAX_FIELDS 32
#define JSCAN_MAX_DEPTH 512
#define JSCAN_KEY_MAX 64

struct jfield {
    char key[JSCAN_KEY_MAX]; /* decoded; keys longer than JSCAN_KEY_MAX-1 bytes are "" */
    const char *val;         /* the value's text, borrowed */
    size_t vlen;
    enum jtype type;
    size_t count; /* elements of an array, members of an object */
};

struct jscan {
    struct jfield f[JSCAN_MAX_FIELDS];
    int n;           /* fields recorded */
    int extra;       /* members beyond JSCAN_MAX_FIELDS (not recorded) */
    char err[160];   /* why the document is malformed */
    size_t err_line; /* 1-based */
    size_t err_col;  /* 1-based, in bytes */
};

/* Validates p[0..n) as one JSON object (surrounding whitespace allowed). Returns 0 and fills
 * out, or -1 with out->err / err_line / err_col. Duplicate top-level keys are an error (the
 * worker's decoder keeps the last one, the host's checks would see the first). */
int jscan_object(const char *p, size_t n, struct jscan *out);

/* The member named key, or NULL. */
const struct jfield *jscan_get(const struct jscan *s, const char *key);

/* 1 when p[0..n) is one valid JSON value of any type. */
int jscan_valid(const char *p, size_t n);

#endif

/*
 * json.h -- a small read-only JSON parser for the command-line tool.
 *
 * The CLI builds worker requests as text and has to read the worker's answers (diagnostics,
 * violations) and validate the user's trace files before sending them. This parser builds a
 * tree of nodes; every node remembers the byte span of its text in the input, so a value can
 * be copied verbatim into a request or printed as it was written. Strings are decoded (UTF-8,
 * \u escapes with surrogate pairs). Depth is limited (JS_MAX_DEPTH). Relies on: libc only.
 */
#ifndef VIGIL_CLI_JSON_H
#define VIGIL_CLI_JSON_H

#include <stddef.h>

#ifndef JS_MAX_DEPTH
#define JS_MAX_DEPTH 512
#endif

enum js_type { JS_NULL, JS_FALSE, JS_TRUE, JS_NUMBER, JS_STRING, JS_ARRAY, JS_OBJECT };

struct js {
    enum js_type type;
    size_t start, end; /* byte span [start, end) of this value in the parsed text */
    double num;        /* JS_NUMBER */
    char *str;         /* JS_STRING: decoded, NUL-terminated (may contain NULs: see len) */
    size_t len;        /* JS_STRING: decoded length; JS_ARRAY/JS_OBJECT: number of items */
    struct js **items; /* JS_ARRAY/JS_OBJECT: the values */
    char **keys;       /* JS_OBJECT: decoded keys, parallel to items */
};

/* Parses text[0..len). Returns the root (owned by the caller, free with js_free) or NULL; on
 * NULL, *errpos (if not NULL) is the byte offset of the error and errmsg (if not NULL, at least
 * 128 bytes) says what was wrong. Trailing non-blank text is an error. */
struct js *js_parse(const char *text, size_t len, size_t *errpos, char *errmsg);

/* Frees a tree (NULL ok). */
void js_free(struct js *v);

/* The member `key` of an object, or NULL (also when v is not an object). Borrowed. */
const struct js *js_get(const struct js *v, const char *key);

/* The string of a JS_STRING node, or NULL. Borrowed. */
const char *js_str(const struct js *v);

/* 1-based line and column (in bytes) of a byte offset in text. */
void js_linecol(const char *text, size_t len, size_t pos, int *line, int *col);

#endif

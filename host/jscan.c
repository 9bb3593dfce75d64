/* jscan.c — validating JSON scanner without a tree (see jscan.h). */
#include "jscan.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

struct cur {
    const char *p, *end;
    char *err;
    size_t errsz;
    int failed;
};

static int fail(struct cur *c, const char *msg)
{
    if (!c->failed) {
        snprintf(c->err, c->errsz, "%s", msg);
        c->failed = 1;
    }
    return -1;
}

static void ws(struct cur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* A string at c->p (on the opening quote). Sets *has_escape. */
static int str(struct cur *c, int *has_escape)
{
    const unsigned char *s = (const unsigned char *)c->p + 1;
    const unsigned char *e = (const unsigned char *)c->end;
    *has_escape = 0;
    while (s < e) {
        unsigned char ch = *s;
        if (ch == '"') {
            c->p = (const char *)s + 1;
            return 0;
        }
        if (ch < 0x20) {
            c->p = (const char *)s;
            return fail(c, "control character in a string");
        }
        if (ch == '\\') {
            *has_escape = 1;
            if (s + 1 >= e)
                break;
            unsigned char x = s[1];
            if (x == 'u') {
                if (s + 6 > e || hexval((char)s[2]) < 0 || hexval((char)s[3]) < 0 ||
                    hexval((char)s[4]) < 0 || hexval((char)s[5]) < 0) {
                    c->p = (const char *)s;
                    return fail(c, "invalid \\u escape");
                }
                s += 6;
            } else if (x == '"' || x == '\\' || x == '/' || x == 'b' || x == 'f' || x == 'n' ||
                       x == 'r' || x == 't') {
                s += 2;
            } else {
                c->p = (const char *)s;
                return fail(c, "invalid escape in a string");
            }
            continue;
        }
        if (ch < 0x80) {
            s++;
            continue;
        }
        /* UTF-8: 2-4 byte sequences, no overlongs, no surrogates, <= U+10FFFF. */
        int len;
        unsigned min;
        unsigned cp;
        if ((ch & 0xE0) == 0xC0) {
            len = 2, cp = ch & 0x1F, min = 0x80;
        } else if ((ch & 0xF0) == 0xE0) {
            len = 3, cp = ch & 0x0F, min = 0x800;
        } else if ((ch & 0xF8) == 0xF0) {
            len = 4, cp = ch & 0x07, min = 0x10000;
        } else {
            c->p = (const char *)s;
            return fail(c, "invalid UTF-8 in a string");
        }
        if (s + len > e) {
            c->p = (const char *)s;
            return fail(c, "truncated UTF-8 in a string");
        }
        for (int i = 1; i < len; i++) {
            if ((s[i] & 0xC0) != 0x80) {
                c->p = (const char *)s;
                return fail(c, "invalid UTF-8 in a string");
            }
            cp = (cp << 6) | (s[i] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            c->p = (const char *)s;
            return fail(c, "invalid UTF-8 in a string");
        }
        s += len;
    }
    c->p = c->end;
    return fail(c, "unterminated string");
}

/* The end of the one or more digits at s, or NULL (with c->p at s) when there is none. */
static const char *digits(struct cur *c, const char *s)
{
    if (s >= c->end || *s < '0' || *s > '9') {
        c->p = s;
        return NULL;
    }
    while (s < c->end && *s >= '0' && *s <= '9')
        s++;
    return s;
}

static int num(struct cur *c)
{
    const char *s = c->p;
    if (s < c->end && *s == '-')
        s++;
    if (s >= c->end)
        return fail(c, "invalid number");
    if (*s == '0') {
        s++;
    } else if (*s >= '1' && *s <= '9') {
        while (s < c->end && *s >= '0' && *s <= '9')
            s++;
    } else {
        return fail(c, "invalid number");
    }
    if (s < c->end && *s == '.' && !(s = digits(c, s + 1)))
        return fail(c, "invalid number");
    if (s < c->end && (*s == 'e' || *s == 'E')) {
        s++;
        if (s < c->end && (*s == '+' || *s == '-'))
            s++;
        if (!(s = digits(c, s)))
            return fail(c, "invalid number");
    }
    c->p = s;
    return 0;
}

static int lit(struct cur *c, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || 0 != memcmp(c->p, word, n))
        return fail(c, "invalid literal");
    c->p += n;
    return 0;
}

static int value(struct cur *c, int depth, enum jtype *type, size_t *count);

/* Opens an array or object at c->p: 1 when it is empty (closed by close, consumed), else 0. */
static int open_empty(struct cur *c, char close)
{
    c->p++; /* [ or { */
    ws(c);
    if (c->p < c->end && *c->p == close) {
        c->p++;
        return 1;
    }
    return 0;
}

/* After an element (one more in *count): 1 at the closing bracket, 0 after a ',' (both
 * consumed), -1 on anything else. */
static int next_elem(struct cur *c, size_t *count, char close, const char *unterminated,
                     const char *expected)
{
    (*count)++;
    ws(c);
    if (c->p >= c->end)
        return fail(c, unterminated);
    if (*c->p == ',' || *c->p == close)
        return *c->p++ == close;
    return fail(c, expected);
}

static int array(struct cur *c, int depth, size_t *count)
{
    *count = 0;
    int r = open_empty(c, ']');
    while (r == 0) {
        enum jtype t;
        size_t k;
        ws(c);
        r = value(c, depth + 1, &t, &k);
        if (r == 0)
            r = next_elem(c, count, ']', "unterminated array", "expected ',' or ']' in an array");
    }
    return r < 0 ? -1 : 0;
}

/* One "key": value member of an object. */
static int member(struct cur *c, int depth)
{
    ws(c);
    if (c->p >= c->end || *c->p != '"')
        return fail(c, "expected a string key in an object");
    int esc;
    if (str(c, &esc))
        return -1;
    ws(c);
    if (c->p >= c->end || *c->p != ':')
        return fail(c, "expected ':' after an object key");
    c->p++;
    ws(c);
    enum jtype t;
    size_t k;
    return value(c, depth + 1, &t, &k);
}

static int object(struct cur *c, int depth, size_t *count)
{
    *count = 0;
    int r = open_empty(c, '}');
    while (r == 0) {
        r = member(c, depth);
        if (r == 0)
            r = next_elem(c, count, '}', "unterminated object", "expected ',' or '}' in an object");
    }
    return r < 0 ? -1 : 0;
}

static int value(struct cur *c, int depth, enum jtype *type, size_t *count)
{
    *count = 0;
    if (depth > JSCAN_MAX_DEPTH)
        return fail(c, "nesting too deep");
    if (c->p >= c->end)
        return fail(c, "unexpected end of input");
    int esc;
    switch (*c->p) {
    case '{':
        *type = JT_OBJECT;
        return object(c, depth, count);
    case '[':
        *type = JT_ARRAY;
        return array(c, depth, count);
    case '"':
        *type = JT_STRING;
        return str(c, &esc);
    case 't':
        *type = JT_BOOL;
        return lit(c, "true");
    case 'f':
        *type = JT_BOOL;
        return lit(c, "false");
    case 'n':
        *type = JT_NULL;
        return lit(c, "null");
    default:
        *type = JT_NUMBER;
        return num(c);
    }
}

static void locate(const char *start, const char *at, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (const char *s = start; s < at; s++) {
        if (*s == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

int jscan_valid(const char *p, size_t n)
{
    char err[64];
    struct cur c = {p, p + n, err, sizeof err, 0};
    enum jtype t;
    size_t k;
    ws(&c);
    if (value(&c, 0, &t, &k))
        return 0;
    ws(&c);
    return c.p == c.end;
}

/* Decodes a key (with escapes) into out; "" when too long or undecodable. */
static void decode_key(const char *q, size_t qlen, int esc, char out[JSCAN_KEY_MAX])
{
    out[0] = '\0';
    if (!esc) {
        if (qlen - 2 < JSCAN_KEY_MAX) {
            memcpy(out, q + 1, qlen - 2);
            out[qlen - 2] = '\0';
        }
        return;
    }
    json_t *s = json_loadb(q, qlen, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (s && json_string_length(s) < JSCAN_KEY_MAX &&
        !memchr(json_string_value(s), 0, json_string_length(s)))
        snprintf(out, JSCAN_KEY_MAX, "%s", json_string_value(s));
    json_decref(s);
}

int jscan_object(const char *p, size_t n, struct jscan *out)
{
    memset(out, 0, sizeof *out);
    struct cur c = {p, p + n, out->err, sizeof out->err, 0};
    ws(&c);
    if (c.p >= c.end) {
        snprintf(out->err, sizeof out->err, "empty body; a JSON object is expected");
        out->err_line = out->err_col = 1;
        return -1;
    }
    if (*c.p != '{') {
        /* A valid non-object and garbage get different messages. */
        if (jscan_valid(p, n))
            snprintf(out->err, sizeof out->err, "the request body must be a JSON object");
        else
            fail(&c, "expected a JSON object");
        locate(p, c.p, &out->err_line, &out->err_col);
        return -1;
    }
    c.p++;
    ws(&c);
    int empty = c.p < c.end && *c.p == '}';
    if (empty)
        c.p++;
    while (!empty) {
        ws(&c);
        if (c.p >= c.end || *c.p != '"') {
            fail(&c, "expected a string key in an object");
            goto bad;
        }
        const char *kq = c.p;
        int esc;
        if (str(&c, &esc))
            goto bad;
        size_t kqlen = (size_t)(c.p - kq);
        ws(&c);
        if (c.p >= c.end || *c.p != ':') {
            fail(&c, "expected ':' after an object key");
            goto bad;
        }
        c.p++;
        ws(&c);
        const char *v = c.p;
        enum jtype t;
        size_t k;
        if (value(&c, 1, &t, &k))
            goto bad;
        char key[JSCAN_KEY_MAX];
        decode_key(kq, kqlen, esc, key);
        if (key[0] && jscan_get(out, key)) {
            c.p = kq;
            snprintf(out->err, sizeof out->err, "duplicate key '%s'", key);
            c.failed = 1;
            goto bad;
        }
        if (out->n < JSCAN_MAX_FIELDS) {
            struct jfield *f = &out->f[out->n++];
            memcpy(f->key, key, sizeof key);
            f->val = v;
            f->vlen = (size_t)(c.p - v);
            f->type = t;
            f->count = k;
        } else {
            out->extra++;
        }
        ws(&c);
        if (c.p >= c.end) {
            fail(&c, "unterminated object");
            goto bad;
        }
        if (*c.p == ',') {
            c.p++;
            continue;
        }
        if (*c.p == '}') {
            c.p++;
            break;
        }
        fail(&c, "expected ',' or '}' in an object");
        goto bad;
    }
    ws(&c);
    if (c.p != c.end) {
        fail(&c, "trailing characters after the JSON object");
        goto bad;
    }
    return 0;
bad:
    locate(p, c.p, &out->err_line, &out->err_col);
    return -1;
}

const struct jfield *jscan_get(const struct jscan *s, const char *key)
{
    for (int i = 0; i < s->n; i++)
        if (s->f[i].key[0] && 0 == strcmp(s->f[i].key, key))
            return &s->f[i];
    return NULL;
}

/*
 * json.c -- see json.h. Recursive descent, one function per production.
 */
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct parser {
    const char *s;
    size_t len, pos;
    int depth;
    char *msg;
};

static struct js *fail(struct parser *p, const char *what)
{
    if (p->msg && !p->msg[0])
        snprintf(p->msg, 128, "%s", what);
    return NULL;
}

static void skip_ws(struct parser *p)
{
    while (p->pos < p->len) {
        char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

static struct js *node(enum js_type t, size_t start)
{
    struct js *v = calloc(1, sizeof *v);
    if (v) {
        v->type = t;
        v->start = start;
    }
    return v;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses a string at p->pos (which is a '"'); returns the decoded text (malloc'd). */
static char *parse_string_raw(struct parser *p, size_t *outlen)
{
    size_t i = p->pos + 1, cap = 16, n = 0;
    char *o = malloc(cap);
    if (!o)
        return NULL;
    for (;;) {
        if (i >= p->len) {
            fail(p, "unterminated string");
            goto bad;
        }
        if (n + 8 > cap) {
            cap *= 2;
            char *no = realloc(o, cap);
            if (!no)
                goto bad;
            o = no;
        }
        unsigned char c = (unsigned char)p->s[i];
        if (c == '"') {
            i++;
            break;
        }
        if (c < 0x20) {
            p->pos = i;
            fail(p, "control character in string");
            goto bad;
        }
        if (c != '\\') {
            o[n++] = (char)c;
            i++;
            continue;
        }
        if (i + 1 >= p->len) {
            fail(p, "unterminated string");
            goto bad;
        }
        char e = p->s[i + 1];
        i += 2;
        switch (e) {
        case '"':
            o[n++] = '"';
            break;
        case '\\':
            o[n++] = '\\';
            break;
        case '/':
            o[n++] = '/';
            break;
        case 'b':
            o[n++] = '\b';
            break;
        case 'f':
            o[n++] = '\f';
            break;
        case 'n':
            o[n++] = '\n';
            break;
        case 'r':
            o[n++] = '\r';
            break;
        case 't':
            o[n++] = '\t';
            break;
        case 'u': {
            unsigned cp, lo;
            if (i + 4 > p->len || hex4(p->s + i, &cp) < 0) {
                p->pos = i;
                fail(p, "bad \\u escape");
                goto bad;
            }
            i += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && i + 6 <= p->len && p->s[i] == '\\' &&
                p->s[i + 1] == 'u' && hex4(p->s + i + 2, &lo) == 0 && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            }
            n += put_utf8(o + n, cp);
            break;
        }
        default:
            p->pos = i - 1;
            fail(p, "bad escape in string");
            goto bad;
        }
    }
    o[n] = '\0';
    *outlen = n;
    p->pos = i;
    return o;
bad:
    free(o);
    return NULL;
}

static struct js *parse_value(struct parser *p);

static int push_item(struct js *v, struct js *item, char *key, size_t *cap)
{
    if (v->len == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        struct js **ni = realloc(v->items, nc * sizeof *ni);
        if (!ni)
            return -1;
        v->items = ni;
        if (v->type == JS_OBJECT) {
            char **nk = realloc(v->keys, nc * sizeof *nk);
            if (!nk)
                return -1;
            v->keys = nk;
        }
        *cap = nc;
    }
    v->items[v->len] = item;
    if (v->type == JS_OBJECT)
        v->keys[v->len] = key;
    v->len++;
    return 0;
}

static struct js *parse_container(struct parser *p, int is_obj)
{
    if (++p->depth > JS_MAX_DEPTH)
        return fail(p, "nesting too deep");
    struct js *v = node(is_obj ? JS_OBJECT : JS_ARRAY, p->pos);
    size_t cap = 0;
    char close = is_obj ? '}' : ']';
    if (!v)
        return fail(p, "out of memory");
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        goto done;
    }
    for (;;) {
        char *key = NULL;
        skip_ws(p);
        if (is_obj) {
            size_t klen;
            if (p->pos >= p->len || p->s[p->pos] != '"') {
                fail(p, "expected a string key");
                goto bad;
            }
            key = parse_string_raw(p, &klen);
            if (!key)
                goto bad;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') {
                free(key);
                fail(p, "expected ':'");
                goto bad;
            }
            p->pos++;
        }
        struct js *item = parse_value(p);
        if (!item || push_item(v, item, key, &cap) < 0) {
            free(key);
            js_free(item);
            goto bad;
        }
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
            break;
        }
        fail(p, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
        goto bad;
    }
done:
    v->end = p->pos;
    p->depth--;
    return v;
bad:
    js_free(v);
    return NULL;
}

static struct js *parse_value(struct parser *p)
{
    skip_ws(p);
    if (p->pos >= p->len)
        return fail(p, "unexpected end of input");
    size_t start = p->pos;
    char c = p->s[p->pos];
    if (c == '{' || c == '[')
        return parse_container(p, c == '{');
    if (c == '"') {
        struct js *v = node(JS_STRING, start);
        if (!v)
            return fail(p, "out of memory");
        v->str = parse_string_raw(p, &v->len);
        if (!v->str) {
            free(v);
            return NULL;
        }
        v->end = p->pos;
        return v;
    }
    static const struct {
        const char *word;
        enum js_type t;
    } words[] = {{"null", JS_NULL}, {"true", JS_TRUE}, {"false", JS_FALSE}};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t wl = strlen(words[i].word);
        if (p->len - p->pos >= wl && memcmp(p->s + p->pos, words[i].word, wl) == 0) {
            struct js *v = node(words[i].t, start);
            if (!v)
                return fail(p, "out of memory");
            p->pos += wl;
            v->end = p->pos;
            return v;
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        size_t i = p->pos;
        if (p->s[i] == '-')
            i++;
        size_t digits = i;
        while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9')
            i++;
        if (i == digits)
            return fail(p, "bad number");
        if (i < p->len && p->s[i] == '.') {
            i++;
            size_t f = i;
            while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9')
                i++;
            if (i == f)
                return fail(p, "bad number");
        }
        if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
            i++;
            if (i < p->len && (p->s[i] == '+' || p->s[i] == '-'))
                i++;
            size_t f = i;
            while (i < p->len && p->s[i] >= '0' && p->s[i] <= '9')
                i++;
            if (i == f)
                return fail(p, "bad number");
        }
        char tmp[64];
        size_t nl = i - p->pos < sizeof tmp - 1 ? i - p->pos : sizeof tmp - 1;
        memcpy(tmp, p->s + p->pos, nl);
        tmp[nl] = '\0';
        struct js *v = node(JS_NUMBER, start);
        if (!v)
            return fail(p, "out of memory");
        v->num = strtod(tmp, NULL);
        p->pos = i;
        v->end = i;
        return v;
    }
    return fail(p, "unexpected character");
}

struct js *js_parse(const char *text, size_t len, size_t *errpos, char *errmsg)
{
    struct parser p = {text, len, 0, 0, errmsg};
    if (errmsg)
        errmsg[0] = '\0';
    struct js *v = parse_value(&p);
    if (v) {
        skip_ws(&p);
        if (p.pos != len) {
            js_free(v);
            v = fail(&p, "unexpected text after the JSON value");
        }
    }
    if (!v && errpos)
        *errpos = p.pos;
    return v;
}

void js_free(struct js *v)
{
    if (!v)
        return;
    if (v->type == JS_ARRAY || v->type == JS_OBJECT) {
        for (size_t i = 0; i < v->len; i++) {
            js_free(v->items[i]);
            if (v->keys)
                free(v->keys[i]);
        }
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    free(v);
}

const struct js *js_get(const struct js *v, const char *key)
{
    if (!v || v->type != JS_OBJECT)
        return NULL;
    for (size_t i = 0; i < v->len; i++)
        if (strcmp(v->keys[i], key) == 0)
            return v->items[i];
    return NULL;
}

const char *js_str(const struct js *v)
{
    return v && v->type == JS_STRING ? v->str : NULL;
}

void js_linecol(const char *text, size_t len, size_t pos, int *line, int *col)
{
    int l = 1, c = 1;
    for (size_t i = 0; i < pos && i < len; i++) {
        if (text[i] == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

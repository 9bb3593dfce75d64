/*
 * test_jscan.c — the host's validating JSON scanner: a table of valid and invalid documents,
 * top-level fields (types, counts, slices, escaped keys, duplicates), and a differential test
 * against jansson on random mutations (seed printed).
 */
#include "jscan.h"
#include "tap.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int valid_jansson(const char *p, size_t n)
{
    json_error_t e;
    json_t *j = json_loadb(p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    /* jansson refuses numbers it cannot represent (1e400) before looking further; the JSON
     * grammar does not: such inputs are inconclusive (-1). */
    int ok_ = j != NULL ? 1 : strstr(e.text, "overflow") ? -1 : 0;
    json_decref(j);
    return ok_;
}

int main(void)
{
    static const char *const good[] = {
        "{}",
        " { } ",
        "{\"a\":1}",
        "{\"a\":[1,2,{\"b\":null}],\"c\":\"x\\u00e9\\n\"}",
        "{\"n\":-0.5e+10}",
        "{\"s\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}",
        "{\"t\":true,\"f\":false}",
        "{\"deep\":[[[[[[]]]]]]}",
        "{\"e\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}",
    };
    static const char *const bad[] = {
        "",
        "{",
        "}",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "{\"a\":01}",
        "{\"a\":1.}",
        "{\"a\":.5}",
        "{\"a\":+1}",
        "{\"a\":tru}",
        "{\"a\":\"x}",
        "{\"a\":\"\\x\"}",
        "{\"a\":\"\\u12g4\"}",
        "{\"a\":\"\x01\"}",
        "{\"a\":\"\xff\"}",
        "{\"a\":\"\xc0\xaf\"}",
        "{\"a\":\"\xed\xa0\x80\"}",
        "{\"a\":[1 2]}",
        "{\"a\":1} x",
        "{a:1}",
        "{\"a\":1}}",
        "[1,2]",
        "\"str\"",
        "{\"a\":1,\"a\":2}",
        "{\"a\":1,\"\\u0061\":2}",
        "{\"a\":NaN}",
    };
    struct jscan s;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ok(jscan_object(good[i], strlen(good[i]), &s) == 0, "valid: %s (%s)", good[i], s.err);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ok(jscan_object(bad[i], strlen(bad[i]), &s) == -1 && s.err[0], "invalid: %s -> %s", bad[i],
           s.err);

    const char *doc = "{\n  \"policy\": \"raise \\\"x\\\"\",\n  \"tr\\u0061ce\": [1, {\"a\": []}, "
                      "\"z\"],\n  \"parameters\": {\"k\": 1, \"j\": 2},\n  \"n\": null\n}";
    is(jscan_object(doc, strlen(doc), &s), 0, "fields document scans");
    is(s.n, 4, "four fields");
    const struct jfield *t = jscan_get(&s, "trace");
    ok(t && t->type == JT_ARRAY && t->count == 3, "escaped key decoded; array of 3");
    ok(t && t->vlen == strlen("[1, {\"a\": []}, \"z\"]") && 0 == memcmp(t->val, "[1, ", 4),
       "array slice is exact");
    const struct jfield *p = jscan_get(&s, "parameters");
    ok(p && p->type == JT_OBJECT && p->count == 2, "object with 2 members");
    const struct jfield *po = jscan_get(&s, "policy");
    ok(po && po->type == JT_STRING && po->val[0] == '"' && po->val[po->vlen - 1] == '"',
       "string slice keeps its quotes");
    ok(jscan_get(&s, "n") && jscan_get(&s, "n")->type == JT_NULL, "null field");
    ok(!jscan_get(&s, "missing"), "missing field is NULL");

    const char *e = "{\n  \"a\": [1,\n   2,,3]\n}";
    is(jscan_object(e, strlen(e), &s), -1, "error located");
    is((long long)s.err_line, 3, "error line");
    is((long long)s.err_col, 6, "error column");

    /* Nesting limit. */
    size_t depth = JSCAN_MAX_DEPTH + 10;
    char *deep = malloc(2 * depth + 16);
    size_t k = 0;
    deep[k++] = '{';
    memcpy(deep + k, "\"a\":", 4);
    k += 4;
    for (size_t i = 0; i < depth; i++)
        deep[k++] = '[';
    for (size_t i = 0; i < depth; i++)
        deep[k++] = ']';
    deep[k++] = '}';
    is(jscan_object(deep, k, &s), -1, "nesting beyond the limit is refused");
    free(deep);

    /* Differential: random mutations of valid documents, compared with jansson. */
    unsigned seed = (unsigned)time(NULL);
    note("seed %u", seed);
    srand(seed);
    static const char alphabet[] = "{}[]\",:0123456789.eE+-tfnrulsa\\u \n\x80\xc3\xa9";
    int agree = 1;
    for (int round = 0; round < 20000 && agree; round++) {
        const char *base = good[(size_t)rand() % (sizeof good / sizeof good[0])];
        char buf[128];
        size_t n = strlen(base);
        memcpy(buf, base, n);
        int edits = 1 + rand() % 3;
        for (int m = 0; m < edits; m++) {
            size_t at = n ? (size_t)rand() % n : 0;
            int op = rand() % 3;
            char ch = alphabet[(size_t)rand() % (sizeof alphabet - 1)];
            if (op == 0 && n) {
                buf[at] = ch;
            } else if (op == 1 && n + 1 < sizeof buf) {
                memmove(buf + at + 1, buf + at, n - at);
                buf[at] = ch;
                n++;
            } else if (n) {
                memmove(buf + at, buf + at + 1, n - at - 1);
                n--;
            }
        }
        int mine = jscan_valid(buf, n);
        int theirs = valid_jansson(buf, n);
        if (theirs >= 0 && mine != theirs) {
            agree = 0;
            note("disagree (jscan %d, jansson %d) on: %.*s", mine, theirs, (int)n, buf);
        }
    }
    ok(agree, "jscan_valid agrees with jansson on 20000 random mutations");
    return done_testing();
}

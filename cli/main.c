/*
 * main.c -- `vigil`, the command-line tool: compile, check and analyze policies with the same
 * C core and Lua runtime as vigild, in-process (core/worker.h wk_local_*), no server.
 *
 * Every command builds one request of the worker protocol (docs/internals.md §2), sends it to
 * the in-process dispatcher and renders the answer. Exit codes are listed in usage().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "json.h"
#include "worker.h"

#ifndef VIGIL_VERSION
#define VIGIL_VERSION "0.1.0"
#endif

enum { EXIT_OK = 0, EXIT_FOUND = 1, EXIT_INPUT = 2, EXIT_EVAL = 3 };

static const char *progname = "vigil";

static void usage(FILE *f)
{
    fprintf(
        f, "usage: vigil COMMAND [OPTIONS] ARGS\n"
           "\n"
           "Compile, check, analyze and monitor Invariant-language (or Lua) policies for\n"
           "AI-agent traces with the same engine as vigild, without a server.\n"
           "\n"
           "commands:\n"
           "  check FILE...                  compile each policy; print every diagnostic as\n"
           "                                 FILE:LINE:COL: MESSAGE\n"
           "  compile [--emit-lua] FILE      compile one policy; print its rules, or with\n"
           "                                 --emit-lua the generated Lua\n"
           "  analyze POLICY TRACE.json      run a policy over a trace and print the\n"
           "                                 violations (one block each)\n"
           "      --param NAME=VALUE         a policy parameter (input.NAME); VALUE is read as\n"
           "                                 JSON when it parses, else as a string; repeatable\n"
           "      --json                     print the native JSON answer {\"violations\": [...]}\n"
           "  monitor POLICY TRACE.json      feed the trace to a monitor chunk by chunk and\n"
           "                                 print only the new violations of each chunk\n"
           "      --chunk N                  events per chunk (default 1)\n"
           "      --param, --json            as for analyze (--json: one line per chunk)\n"
           "\n"
           "options for every command:\n"
           "  --language invariant|lua       policy language (default: by file extension,\n"
           "                                 .lua is Lua, anything else Invariant)\n"
           "  -h, --help                     this text\n"
           "  -V, --version                  print the version\n"
           "\n"
           "A trace file holds a JSON list of events, or an object with a \"trace\" or\n"
           "\"messages\" list. FILE may be - for standard input.\n"
           "\n"
           "exit status:\n"
           "  0  success: no diagnostics (check), compiled (compile), no violation\n"
           "     (analyze, monitor)\n"
           "  1  findings: a policy has diagnostics (check), violations found (analyze,\n"
           "     monitor)\n"
           "  2  usage or input error: bad arguments, unreadable file, invalid JSON or trace,\n"
           "     a policy that does not compile (compile, analyze, monitor)\n"
           "  3  evaluation failed: a runtime error in the policy, a memory or time limit,\n"
           "     an internal error\n");
}

/* ------------------------------------------------------------------ small buffers */

struct sb {
    char *p;
    size_t len, cap;
};

static void sb_add(struct sb *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            fprintf(stderr, "%s: out of memory\n", progname);
            exit(EXIT_EVAL);
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(struct sb *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

/* Appends s[0..n) as a JSON string literal. */
static void sb_json_str(struct sb *b, const char *s, size_t n)
{
    sb_add(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        sb_add(b, s + run, i - run);
        char esc[8];
        switch (c) {
        case '"':
            sb_puts(b, "\\\"");
            break;
        case '\\':
            sb_puts(b, "\\\\");
            break;
        case '\n':
            sb_puts(b, "\\n");
            break;
        case '\r':
            sb_puts(b, "\\r");
            break;
        case '\t':
            sb_puts(b, "\\t");
            break;
        default:
            snprintf(esc, sizeof esc, "\\u%04x", c);
            sb_puts(b, esc);
        }
        run = i + 1;
    }
    sb_add(b, s + run, n - run);
    sb_add(b, "\"", 1);
}

/* Reads a whole file ("-" is stdin). Returns NULL and prints why on failure. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: %s: %s\n", progname, path, strerror(errno));
        return NULL;
    }
    struct sb b = {0};
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        sb_add(&b, tmp, n);
    int bad = ferror(f);
    if (f != stdin)
        fclose(f);
    if (bad) {
        fprintf(stderr, "%s: %s: read error\n", progname, path);
        free(b.p);
        return NULL;
    }
    if (!b.p)
        sb_add(&b, "", 0);
    *len = b.len;
    return b.p;
}

static const char *language_of(const char *path, const char *forced)
{
    if (forced)
        return forced;
    size_t n = strlen(path);
    return n > 4 && strcmp(path + n - 4, ".lua") == 0 ? "lua" : "invariant";
}

/* ------------------------------------------------------------------ the in-process worker */

static struct wk_local *g_worker;

/* Sends one request; returns the parsed answer (caller frees) or NULL after printing why. */
static struct js *call(const struct sb *req, char **raw)
{
    struct pe_err err;
    pe_err_clear(&err);
    if (!g_worker) {
        struct zyg_cfg cfg;
        zyg_cfg_init(&cfg);
        if (wk_local_new(&cfg, &g_worker, &err) != PE_OK) {
            fprintf(stderr, "%s: cannot start the policy runtime: %s\n", progname, err.msg);
            return NULL;
        }
    }
    char *resp = NULL;
    size_t rlen = 0;
    if (wk_local_call(g_worker, req->p, req->len, &resp, &rlen, &err) != PE_OK) {
        fprintf(stderr, "%s: the policy runtime failed: %s\n", progname, err.msg);
        free(resp);
        return NULL;
    }
    char msg[128];
    size_t pos;
    struct js *v = js_parse(resp, rlen, &pos, msg);
    if (!v || v->type != JS_OBJECT) {
        fprintf(stderr, "%s: unreadable answer from the runtime (%s)\n", progname,
                v ? "not an object" : msg);
        js_free(v);
        free(resp);
        return NULL;
    }
    *raw = resp;
    return v;
}

static int num_int(const struct js *v)
{
    return v && v->type == JS_NUMBER ? (int)v->num : 0;
}

/* Prints the diagnostics of a policy_invalid error as FILE:LINE:COL: MESSAGE. */
static void print_diagnostics(const char *file, const struct js *error)
{
    const struct js *d = js_get(error, "diagnostics");
    if (d && d->type == JS_ARRAY && d->len > 0) {
        for (size_t i = 0; i < d->len; i++) {
            const struct js *x = d->items[i];
            const char *m = js_str(js_get(x, "message"));
            printf("%s:%d:%d: %s\n", file, num_int(js_get(x, "line")), num_int(js_get(x, "column")),
                   m ? m : "error");
        }
        return;
    }
    const char *m = js_str(js_get(error, "message"));
    printf("%s:%d:%d: %s\n", file, num_int(js_get(error, "line")), num_int(js_get(error, "column")),
           m ? m : "policy does not compile");
}

/* Reports a worker error answer on stderr; returns the exit code it maps to. */
static int report_error(const char *policy_file, const struct js *error, const char *raw)
{
    const char *code = js_str(js_get(error, "code"));
    const char *msg = js_str(js_get(error, "message"));
    if (!code)
        code = "internal";
    if (strcmp(code, "policy_invalid") == 0) {
        print_diagnostics(policy_file, error);
        return EXIT_INPUT;
    }
    if (strcmp(code, "trace_invalid") == 0 || strcmp(code, "bad_request") == 0) {
        const struct js *idx = js_get(error, "index");
        if (idx && idx->type == JS_NUMBER)
            fprintf(stderr, "%s: invalid trace: event %d: %s\n", progname, (int)idx->num,
                    msg ? msg : code);
        else
            fprintf(stderr, "%s: invalid input: %s\n", progname, msg ? msg : code);
        return EXIT_INPUT;
    }
    if (strcmp(code, "evaluation_error") == 0) {
        const char *kind = js_str(js_get(error, "kind"));
        int line = num_int(js_get(error, "line")), col = num_int(js_get(error, "column"));
        if (line > 0)
            fprintf(stderr, "%s:%d:%d: evaluation error%s%s%s: %s\n", policy_file, line, col,
                    kind ? " (" : "", kind ? kind : "", kind ? ")" : "", msg ? msg : "");
        else
            fprintf(stderr, "%s: evaluation error%s%s%s: %s\n", policy_file, kind ? " (" : "",
                    kind ? kind : "", kind ? ")" : "", msg ? msg : "");
        return EXIT_EVAL;
    }
    fprintf(stderr, "%s: %s: %s\n", progname, code, msg ? msg : raw);
    return EXIT_EVAL;
}

/* ------------------------------------------------------------------ commands */

struct opts {
    const char *language;
    int emit_lua, json;
    long chunk;
    const char *params[256];
    int nparams;
    const char *files[256];
    int nfiles;
};

/* Appends "policy":..., "language":... for the policy in path; returns -1 if unreadable. */
static int add_policy(struct sb *req, const char *path, const char *language)
{
    size_t len;
    char *src = slurp(path, &len);
    if (!src)
        return -1;
    sb_puts(req, "\"policy\":");
    sb_json_str(req, src, len);
    sb_puts(req, ",\"language\":");
    sb_json_str(req, language, strlen(language));
    free(src);
    return 0;
}

static int cmd_check(const struct opts *o)
{
    int rc = EXIT_OK;
    for (int i = 0; i < o->nfiles; i++) {
        struct sb req = {0};
        sb_puts(&req, "{\"op\":\"compile\",");
        if (add_policy(&req, o->files[i], language_of(o->files[i], o->language)) < 0) {
            free(req.p);
            rc = EXIT_INPUT;
            continue;
        }
        sb_puts(&req, "}");
        char *raw = NULL;
        struct js *ans = call(&req, &raw);
        free(req.p);
        if (!ans)
            return EXIT_EVAL;
        const struct js *ok = js_get(ans, "ok");
        if (!ok || ok->type != JS_TRUE) {
            const struct js *e = js_get(ans, "error");
            const char *code = js_str(js_get(e, "code"));
            if (code && strcmp(code, "policy_invalid") == 0) {
                print_diagnostics(o->files[i], e);
                if (rc == EXIT_OK)
                    rc = EXIT_FOUND;
            } else {
                int r = report_error(o->files[i], e, raw);
                if (r > rc)
                    rc = r;
            }
        }
        js_free(ans);
        free(raw);
    }
    return rc;
}

static int cmd_compile(const struct opts *o)
{
    if (o->nfiles != 1) {
        fprintf(stderr, "%s: compile takes exactly one FILE\n", progname);
        return EXIT_INPUT;
    }
    const char *file = o->files[0];
    struct sb req = {0};
    sb_puts(&req, "{\"op\":\"compile\",");
    if (add_policy(&req, file, language_of(file, o->language)) < 0) {
        free(req.p);
        return EXIT_INPUT;
    }
    sb_puts(&req, o->emit_lua ? ",\"emit_lua\":true}" : "}");
    char *raw = NULL;
    struct js *ans = call(&req, &raw);
    free(req.p);
    if (!ans)
        return EXIT_EVAL;
    int rc = EXIT_OK;
    const struct js *ok = js_get(ans, "ok");
    const struct js *res = js_get(ans, "result");
    if (!ok || ok->type != JS_TRUE) {
        rc = report_error(file, js_get(ans, "error"), raw);
    } else if (o->emit_lua) {
        const struct js *lua = js_get(res, "lua");
        if (lua && lua->type == JS_STRING) {
            fwrite(lua->str, 1, lua->len, stdout);
            if (lua->len == 0 || lua->str[lua->len - 1] != '\n')
                putchar('\n');
        } else {
            fprintf(stderr,
                    "%s: %s: no generated Lua for this policy (a Lua policy is its own "
                    "code)\n",
                    progname, file);
            rc = EXIT_INPUT;
        }
    } else {
        const struct js *rules = js_get(res, "rules");
        size_t n = rules && rules->type == JS_ARRAY ? rules->len : 0;
        printf("%s: %zu rule%s\n", file, n, n == 1 ? "" : "s");
        for (size_t i = 0; i < n; i++) {
            const struct js *r = rules->items[i];
            const char *m = js_str(js_get(r, "message"));
            printf("  rule %d, line %d: %s\n", num_int(js_get(r, "index")),
                   num_int(js_get(r, "line")), m ? m : "");
        }
    }
    js_free(ans);
    free(raw);
    return rc;
}

/* Reads and parses a trace file: *text (caller frees), *root (caller frees with js_free) and
 * *list, the event list inside root (borrowed). Returns -1 after printing why. */
static int load_trace(const char *path, char **text_out, struct js **root, const struct js **list)
{
    size_t len, pos;
    char msg[128];
    char *text = slurp(path, &len);
    if (!text)
        return -1;
    struct js *v = js_parse(text, len, &pos, msg);
    if (!v) {
        int line, col;
        js_linecol(text, len, pos, &line, &col);
        fprintf(stderr, "%s: %s:%d:%d: invalid JSON: %s\n", progname, path, line, col, msg);
        free(text);
        return -1;
    }
    const struct js *l = v;
    if (v->type == JS_OBJECT) {
        l = js_get(v, "trace");
        if (!l)
            l = js_get(v, "messages");
    }
    if (!l || l->type != JS_ARRAY) {
        fprintf(stderr,
                "%s: %s: a trace is a JSON list of events (or an object with a "
                "\"trace\" or \"messages\" list)\n",
                progname, path);
        js_free(v);
        free(text);
        return -1;
    }
    *text_out = text;
    *root = v;
    *list = l;
    return 0;
}

/* Appends "trace": <the trace list of the file, verbatim>; -1 after printing why. */
static int add_trace(struct sb *req, const char *path)
{
    char *text;
    struct js *root;
    const struct js *list;
    if (load_trace(path, &text, &root, &list) < 0)
        return -1;
    sb_puts(req, ",\"trace\":");
    sb_add(req, text + list->start, list->end - list->start);
    js_free(root);
    free(text);
    return 0;
}

static int add_params(struct sb *req, const struct opts *o)
{
    if (o->nparams == 0)
        return 0;
    sb_puts(req, ",\"parameters\":{");
    for (int i = 0; i < o->nparams; i++) {
        const char *eq = strchr(o->params[i], '=');
        if (!eq || eq == o->params[i]) {
            fprintf(stderr, "%s: --param wants NAME=VALUE, got '%s'\n", progname, o->params[i]);
            return -1;
        }
        if (i)
            sb_puts(req, ",");
        sb_json_str(req, o->params[i], (size_t)(eq - o->params[i]));
        sb_puts(req, ":");
        const char *val = eq + 1;
        struct js *v = js_parse(val, strlen(val), NULL, NULL);
        if (v)
            sb_puts(req, val);
        else
            sb_json_str(req, val, strlen(val));
        js_free(v);
    }
    sb_puts(req, "}");
    return 0;
}

static void print_span(const char *raw, const struct js *v)
{
    fwrite(raw + v->start, 1, v->end - v->start, stdout);
}

static void print_violation(const char *policy_file, const char *raw, size_t n, const struct js *v)
{
    const struct js *rule = js_get(v, "rule");
    const char *msg = js_str(js_get(v, "message"));
    if (!msg)
        msg = js_str(js_get(rule, "message"));
    printf("violation %zu: %s:%d: %s\n", n, policy_file, num_int(js_get(rule, "line")),
           msg ? msg : "(no message)");
    printf("  rule:     %d\n", num_int(js_get(rule, "index")));
    const char *key = js_str(js_get(v, "key"));
    if (key)
        printf("  key:      %s\n", key);
    const struct js *b = js_get(v, "bindings");
    if (b && b->type == JS_OBJECT && b->len > 0) {
        printf("  bindings:");
        for (size_t i = 0; i < b->len; i++) {
            printf(" %s=", b->keys[i]);
            print_span(raw, b->items[i]);
        }
        putchar('\n');
    }
    const struct js *args = js_get(v, "args");
    if (args && args->type == JS_ARRAY && args->len > 0) {
        printf("  args:     ");
        print_span(raw, args);
        putchar('\n');
    }
    const struct js *kw = js_get(v, "kwargs");
    if (kw && kw->type == JS_OBJECT && kw->len > 0) {
        for (size_t i = 0; i < kw->len; i++) {
            size_t kl = strlen(kw->keys[i]);
            printf("  %s:%*s", kw->keys[i], kl < 9 ? (int)(9 - kl) : 1, "");
            print_span(raw, kw->items[i]);
            putchar('\n');
        }
    }
    const struct js *r = js_get(v, "ranges");
    if (r && r->type == JS_ARRAY) {
        for (size_t i = 0; i < r->len; i++) {
            const char *s = js_str(r->items[i]);
            printf("  %s %s\n", i == 0 ? "ranges:  " : "         ", s ? s : "?");
        }
    }
}

static int cmd_analyze(const struct opts *o)
{
    if (o->nfiles != 2) {
        fprintf(stderr, "%s: analyze takes POLICY and TRACE.json\n", progname);
        return EXIT_INPUT;
    }
    const char *pfile = o->files[0];
    struct sb req = {0};
    sb_puts(&req, "{\"op\":\"check\",\"format\":\"native\",");
    if (add_policy(&req, pfile, language_of(pfile, o->language)) < 0 ||
        add_trace(&req, o->files[1]) < 0 || add_params(&req, o) < 0) {
        free(req.p);
        return EXIT_INPUT;
    }
    sb_puts(&req, "}");
    char *raw = NULL;
    struct js *ans = call(&req, &raw);
    free(req.p);
    if (!ans)
        return EXIT_EVAL;
    int rc;
    const struct js *ok = js_get(ans, "ok");
    const struct js *res = js_get(ans, "result");
    const struct js *vs = js_get(res, "violations");
    if (!ok || ok->type != JS_TRUE) {
        rc = report_error(pfile, js_get(ans, "error"), raw);
    } else if (!vs || vs->type != JS_ARRAY) {
        fprintf(stderr, "%s: the runtime answered without a violation list\n", progname);
        rc = EXIT_EVAL;
    } else {
        rc = vs->len > 0 ? EXIT_FOUND : EXIT_OK;
        if (o->json) {
            print_span(raw, res);
            putchar('\n');
        } else {
            for (size_t i = 0; i < vs->len; i++) {
                if (i)
                    putchar('\n');
                print_violation(pfile, raw, i + 1, vs->items[i]);
            }
            if (vs->len)
                putchar('\n');
            printf("%zu violation%s\n", vs->len, vs->len == 1 ? "" : "s");
        }
    }
    js_free(ans);
    free(raw);
    return rc;
}

/* Feeds the trace to a monitor in chunks of o->chunk events (op monitor_new, then
 * monitor_events per chunk) and prints only the new violations of each chunk. */
static int cmd_monitor(const struct opts *o)
{
    if (o->nfiles != 2) {
        fprintf(stderr, "%s: monitor takes POLICY and TRACE.json\n", progname);
        return EXIT_INPUT;
    }
    const char *pfile = o->files[0];
    char *text;
    struct js *root;
    const struct js *list;
    if (load_trace(o->files[1], &text, &root, &list) < 0)
        return EXIT_INPUT;
    struct sb req = {0};
    sb_puts(&req, "{\"op\":\"monitor_new\",\"mid\":\"cli\",");
    if (add_policy(&req, pfile, language_of(pfile, o->language)) < 0 || add_params(&req, o) < 0) {
        free(req.p);
        js_free(root);
        free(text);
        return EXIT_INPUT;
    }
    sb_puts(&req, "}");
    int rc = EXIT_OK;
    size_t total = 0;
    char *raw = NULL;
    struct js *ans = call(&req, &raw);
    free(req.p);
    if (!ans) {
        rc = EXIT_EVAL;
        goto out;
    }
    const struct js *ok = js_get(ans, "ok");
    if (!ok || ok->type != JS_TRUE) {
        rc = report_error(pfile, js_get(ans, "error"), raw);
        goto out;
    }
    size_t step = o->chunk > 0 ? (size_t)o->chunk : 1;
    for (size_t first = 0, k = 1; first < list->len; first += step, k++) {
        size_t last = first + step < list->len ? first + step : list->len;
        js_free(ans);
        free(raw);
        ans = NULL;
        raw = NULL;
        req = (struct sb){0};
        sb_puts(&req,
                "{\"op\":\"monitor_events\",\"mid\":\"cli\",\"format\":\"native\",\"events\":[");
        for (size_t i = first; i < last; i++) {
            const struct js *e = list->items[i];
            if (i > first)
                sb_puts(&req, ",");
            sb_add(&req, text + e->start, e->end - e->start);
        }
        sb_puts(&req, "]}");
        ans = call(&req, &raw);
        free(req.p);
        if (!ans) {
            rc = EXIT_EVAL;
            goto out;
        }
        ok = js_get(ans, "ok");
        const struct js *res = js_get(ans, "result");
        const struct js *vs = js_get(res, "violations");
        if (!ok || ok->type != JS_TRUE) {
            fprintf(stderr, "%s: chunk %zu (events %zu-%zu):\n", progname, k, first, last - 1);
            rc = report_error(pfile, js_get(ans, "error"), raw);
            goto out;
        }
        if (!vs || vs->type != JS_ARRAY) {
            fprintf(stderr, "%s: the runtime answered without a violation list\n", progname);
            rc = EXIT_EVAL;
            goto out;
        }
        if (o->json) {
            printf("{\"chunk\":%zu,\"first_event\":%zu,\"result\":", k, first);
            print_span(raw, res);
            printf("}\n");
        } else {
            for (size_t i = 0; i < vs->len; i++) {
                printf("chunk %zu (events %zu-%zu): ", k, first, last - 1);
                print_violation(pfile, raw, total + i + 1, vs->items[i]);
                putchar('\n');
            }
        }
        total += vs->len;
    }
    if (!o->json)
        printf("%zu violation%s in %zu event%s\n", total, total == 1 ? "" : "s", list->len,
               list->len == 1 ? "" : "s");
    rc = total > 0 ? EXIT_FOUND : EXIT_OK;
out:
    js_free(ans);
    free(raw);
    js_free(root);
    free(text);
    return rc;
}

int main(int argc, char **argv)
{
    struct opts o;
    memset(&o, 0, sizeof o);
    const char *cmd = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return EXIT_OK;
        }
        if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            printf("vigil %s\n", VIGIL_VERSION);
            return EXIT_OK;
        }
        if (strcmp(a, "--emit-lua") == 0) {
            o.emit_lua = 1;
        } else if (strcmp(a, "--json") == 0) {
            o.json = 1;
        } else if (strcmp(a, "--chunk") == 0 || strncmp(a, "--chunk=", 8) == 0) {
            const char *v = a[7] == '=' ? a + 8 : (i + 1 < argc ? argv[++i] : NULL);
            char *end = NULL;
            o.chunk = v ? strtol(v, &end, 10) : 0;
            if (!v || *end || o.chunk < 1) {
                fprintf(stderr, "%s: --chunk wants a positive number of events\n", progname);
                return EXIT_INPUT;
            }
        } else if (strcmp(a, "--language") == 0 || strncmp(a, "--language=", 11) == 0 ||
                   strcmp(a, "--param") == 0 || strncmp(a, "--param=", 8) == 0) {
            int is_lang = strncmp(a, "--language", 10) == 0;
            const char *v = strchr(a, '=');
            if (v) {
                v++;
            } else if (i + 1 < argc) {
                v = argv[++i];
            } else {
                fprintf(stderr, "%s: %s needs a value (see --help)\n", progname, a);
                return EXIT_INPUT;
            }
            if (is_lang) {
                if (strcmp(v, "invariant") != 0 && strcmp(v, "lua") != 0) {
                    fprintf(stderr, "%s: --language is 'invariant' or 'lua', not '%s'\n", progname,
                            v);
                    return EXIT_INPUT;
                }
                o.language = v;
            } else if (o.nparams < 256) {
                o.params[o.nparams++] = v;
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "%s: unknown option '%s' (see --help)\n", progname, a);
            return EXIT_INPUT;
        } else if (!cmd) {
            cmd = a;
        } else if (o.nfiles < 256) {
            o.files[o.nfiles++] = a;
        } else {
            fprintf(stderr, "%s: too many files\n", progname);
            return EXIT_INPUT;
        }
    }
    if (!cmd) {
        usage(stderr);
        return EXIT_INPUT;
    }
    int rc;
    if (strcmp(cmd, "check") == 0) {
        if (o.nfiles == 0) {
            fprintf(stderr, "%s: check needs at least one FILE\n", progname);
            return EXIT_INPUT;
        }
        rc = cmd_check(&o);
    } else if (strcmp(cmd, "compile") == 0) {
        rc = cmd_compile(&o);
    } else if (strcmp(cmd, "analyze") == 0) {
        rc = cmd_analyze(&o);
    } else if (strcmp(cmd, "monitor") == 0) {
        rc = cmd_monitor(&o);
    } else {
        fprintf(stderr, "%s: unknown command '%s' (see --help)\n", progname, cmd);
        return EXIT_INPUT;
    }
    wk_local_free(g_worker);
    fflush(stdout);
    return rc;
}

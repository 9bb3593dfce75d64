/*
 * http.h — the libmicrohttpd daemon, the routing table, request bodies with a size cap, and
 * JSON responses.
 *
 * One thread per connection (handlers may block on a worker). Per-request state lives in MHD's
 * *req_cls from the first callback until MHD_OPTION_NOTIFY_COMPLETED, where it is freed (the
 * only place). Handlers fill a struct http_resp; the dispatcher queues it and destroys the MHD
 * response at once. Every request is logged on one line and counted for /metrics.
 */
#ifndef VIGIL_HOST_HTTP_H
#define VIGIL_HOST_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <sys/socket.h>

struct MHD_Connection;

#define HTTP_MAX_PARAMS 4

struct http_req {
    const char *method;          /* borrowed from MHD, valid for the request */
    const char *path;            /* normalised: no trailing slash except "/" (owned, pathbuf) */
    struct MHD_Connection *conn; /* borrowed */
    const char *param[HTTP_MAX_PARAMS]; /* {name} segments of the matched route, in order */
    char *body;                         /* owned, NUL-terminated, body_len bytes */
    size_t body_len;
    int route; /* index into the route table, -1 when none matched */
};

struct http_resp {
    int status;
    char *body; /* owned (malloc), may be NULL */
    size_t len;
    const char *ctype; /* static string */
    int retry_after;   /* seconds; 0 = no header */
};

typedef void (*http_handler)(struct http_req *rq, struct http_resp *rs);

struct http_route {
    const char *method;  /* "GET", "POST", ... */
    const char *pattern; /* "/v1/sessions/{sid}"; a {name} matches one non-empty segment */
    http_handler fn;
};

struct http_cfg {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    size_t max_body;     /* bytes; larger bodies get 413 */
    double rate;         /* requests per second per client address and per bearer key; 0: off */
    unsigned conn_limit; /* concurrent connections */
};

/* The table is borrowed for the life of the daemon. */
void http_set_routes(const struct http_route *routes, size_t n);

/* Starts the daemon; writes the bound "ADDR:PORT" into bound. Returns 0 or -1 (logged). */
int http_start(const struct http_cfg *cfg, char *bound, size_t bound_size);
/* Stops accepting new connections; in-flight requests continue. */
void http_quiesce(void);
/* Requests currently being handled. */
int http_inflight(void);
/* Stops the daemon, joining every connection thread. */
void http_stop(void);

/* A query argument (borrowed, valid during the request) or NULL. */
const char *http_query(struct http_req *rq, const char *name);
/* A request header (borrowed) or NULL. */
const char *http_header(struct http_req *rq, const char *name);

/* Sets a JSON response; steals j (NULL j → 500 internal). */
void http_json(struct http_resp *rs, int status, json_t *j);
/* Sets the response to {"error": {"code", "message"}}. */
void http_err(struct http_resp *rs, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Sets a response from bytes (copied). */
void http_bytes(struct http_resp *rs, int status, const char *ctype, const char *b, size_t n);

/* Parses the body as a JSON object. On failure sets a 400 response and returns NULL. */
json_t *http_body_object(struct http_req *rq, struct http_resp *rs);

/* Appends the request counters in Prometheus text format to a malloc'd buffer (realloc'd). */
void http_metrics(char **buf, size_t *len, size_t *cap);

/* A printf into a growing buffer; used for the metrics text. */
void http_bufprintf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif

/*
 * JSON-RPC 2.0 as MCP uses it: parsing untrusted bodies into classified messages with precise
 * errors, and building responses. MCP 2025-06-18 and later forbid batches, so an array is
 * refused with a message saying so.
 */
#ifndef GH_MCP_JSONRPC_H
#define GH_MCP_JSONRPC_H

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>

#include "core/err.h"

enum {
    JSONRPC_PARSE_ERROR = -32700,
    JSONRPC_INVALID_REQUEST = -32600,
    JSONRPC_METHOD_NOT_FOUND = -32601,
    JSONRPC_INVALID_PARAMS = -32602,
    JSONRPC_INTERNAL_ERROR = -32603,
    /* Gatehouse's own codes, in the implementation-defined server error range. */
    JSONRPC_UPSTREAM_UNAVAILABLE = -32001, /* the server behind the gateway is down or failed */
    JSONRPC_UPSTREAM_TIMEOUT = -32004,     /* the server did not answer in time */
    JSONRPC_RESOURCE_NOT_FOUND = -32002,   /* MCP's code for an unknown resource */
    JSONRPC_GATEWAY_LIMIT = -32003,        /* a gateway limit (queue, concurrency) was reached */
    /* MCP 2025-11-25: the request needs the user to complete a URL-mode elicitation first
       (data.elicitations lists them) */
    JSONRPC_URL_ELICITATION_REQUIRED = -32042,
};

enum jsonrpc_kind {
    JSONRPC_REQUEST = 0,  /* method + id */
    JSONRPC_NOTIFICATION, /* method, no id */
    JSONRPC_RESULT,       /* id + result */
    JSONRPC_ERROR,        /* id (maybe null) + error */
};

/*
 * Parse one message from an untrusted body. On success *out is a new reference to the message
 * object and *kind its classification. On failure returns ERR_PARSE (not JSON: answer -32700) or
 * ERR_INVAL (JSON, but not a valid JSON-RPC message: answer -32600) with ei->msg naming the cause.
 * If the body was an object with a usable id, *id_out receives a new reference to it even on
 * ERR_INVAL (so the error answer can carry it); otherwise *id_out is NULL.
 *
 * Before the parse, one pass over the bytes bounds what the parse may cost: at most
 * JSONRPC_MAX_DEPTH levels of nesting, JSONRPC_MAX_CONTAINERS objects and arrays and
 * JSONRPC_MAX_VALUES values in all (an empty object costs jansson some 200 bytes, so 4 MB of
 * them would cost 300 MB). Too deep: ERR_INVAL (answer 400); too many containers or values:
 * ERR_LIMIT (answer 413); either names the bound, and nothing is parsed.
 */
#define JSONRPC_MAX_DEPTH 128
#define JSONRPC_MAX_CONTAINERS 20000
#define JSONRPC_MAX_VALUES 250000
int jsonrpc_parse(const char *body, size_t len, json_t **out, enum jsonrpc_kind *kind,
                  json_t **id_out, struct err_info *ei);

/* Classify an already-parsed message (e.g. from an upstream). Returns 0 or ERR_INVAL. */
int jsonrpc_classify(json_t *msg, enum jsonrpc_kind *kind, struct err_info *ei);

/* New references. `id` is borrowed (may be NULL → null). `data` is stolen (may be NULL). */
json_t *jsonrpc_error_new(json_t *id, int code, const char *message, json_t *data);
/* The same with the message formatted (at most 700 bytes kept). */
json_t *jsonrpc_error_newf(json_t *id, int code, json_t *data, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
json_t *jsonrpc_error_newv(json_t *id, int code, json_t *data, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
json_t *jsonrpc_result_new(json_t *id, json_t *result /* stolen */);
json_t *jsonrpc_request_new(json_t *id, const char *method,
                            json_t *params /* stolen, may be NULL */);
json_t *jsonrpc_notification_new(const char *method, json_t *params /* stolen, may be NULL */);

/* The method of a request/notification, or NULL. */
const char *jsonrpc_method(json_t *msg);

#endif

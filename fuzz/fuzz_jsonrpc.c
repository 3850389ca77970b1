/*
 * Fuzz target for the JSON-RPC parser (src/mcp/jsonrpc.c), which reads every POSTed body. Beyond
 * "no crash": the result must be consistent. On success the message is an object whose kind
 * agrees with jsonrpc_classify, the returned id is the message's own, and the message survives a
 * dump and re-parse with the same kind (what the gateway forwards is read the same way upstream).
 * On failure nothing is returned but the id (only when valid), with a non-empty message, and an
 * error answer built from that id is itself a valid JSON-RPC error.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/jsonrpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_answer(json_t *id)
{
    json_t *e = jsonrpc_error_new(id, JSONRPC_INVALID_REQUEST, "refused", NULL);
    enum jsonrpc_kind k;
    if (e == NULL || jsonrpc_classify(e, &k, NULL) != 0 || k != JSONRPC_ERROR)
        abort();
    char *text = json_dumps(e, JSON_COMPACT);
    json_t *m = NULL, *id2 = NULL;
    struct err_info ei;
    if (text == NULL || jsonrpc_parse(text, strlen(text), &m, &k, &id2, &ei) != 0 ||
        k != JSONRPC_ERROR)
        abort();
    json_decref(m);
    json_decref(id2);
    free(text);
    json_decref(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *msg = NULL, *id = NULL;
    enum jsonrpc_kind kind = (enum jsonrpc_kind) - 1;
    struct err_info ei;
    memset(&ei, 0, sizeof(ei));
    int err = jsonrpc_parse((const char *)data, size, &msg, &kind, &id, &ei);
    if (err != 0) {
        if (msg != NULL || (err != ERR_PARSE && err != ERR_INVAL) || ei.msg[0] == '\0')
            abort();
        if (id != NULL && !json_is_string(id) && !json_is_integer(id))
            abort();
        check_answer(id);
        json_decref(id);
        return 0;
    }
    if (!json_is_object(msg))
        abort();
    enum jsonrpc_kind k2;
    if (jsonrpc_classify(msg, &k2, NULL) != 0 || k2 != kind)
        abort();
    json_t *own = json_object_get(msg, "id");
    if (id != NULL && id != own)
        abort();
    switch (kind) {
    case JSONRPC_REQUEST:
        if (id == NULL || jsonrpc_method(msg) == NULL || jsonrpc_method(msg)[0] == '\0')
            abort();
        break;
    case JSONRPC_NOTIFICATION:
        if (own != NULL || id != NULL || jsonrpc_method(msg) == NULL)
            abort();
        break;
    case JSONRPC_RESULT:
        if (id == NULL || jsonrpc_method(msg) != NULL)
            abort();
        break;
    case JSONRPC_ERROR:
        if (jsonrpc_method(msg) != NULL || !json_is_object(json_object_get(msg, "error")))
            abort();
        break;
    default:
        abort();
    }
    /* Round trip: the forwarded text parses to the same kind and an equal message. */
    char *text = json_dumps(msg, JSON_COMPACT);
    if (text == NULL)
        abort();
    json_t *again = NULL, *id2 = NULL;
    enum jsonrpc_kind k3;
    if (jsonrpc_parse(text, strlen(text), &again, &k3, &id2, NULL) != 0 || k3 != kind ||
        !json_equal(again, msg))
        abort();
    if (kind == JSONRPC_REQUEST) {
        /* The answer we would send carries the same id and is a valid result. */
        json_t *r = jsonrpc_result_new(id, json_object());
        enum jsonrpc_kind kr;
        if (r == NULL || jsonrpc_classify(r, &kr, NULL) != 0 || kr != JSONRPC_RESULT ||
            !json_equal(json_object_get(r, "id"), id))
            abort();
        json_decref(r);
    }
    json_decref(again);
    json_decref(id2);
    free(text);
    json_decref(msg);
    json_decref(id);
    return 0;
}

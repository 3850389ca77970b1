/*
 * JSON-RPC parsing and construction. Parsing is strict where ambiguity would be dangerous
 * (duplicate keys are refused: two "method" keys could be read differently by the gateway and
 * the server behind it) and tolerant where the spec is (unknown members are kept).
 */
#include "mcp/jsonrpc.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int valid_id(json_t *id)
{
    /* MCP: id is a string or an integer, never null for requests. */
    return json_is_string(id) || json_is_integer(id);
}

int jsonrpc_classify(json_t *msg, enum jsonrpc_kind *kind, struct err_info *ei)
{
    if (!json_is_object(msg))
        return err_info_set(ei, ERR_INVAL, 0, 0, "a JSON-RPC message must be a JSON object");
    json_t *v = json_object_get(msg, "jsonrpc");
    if (!json_is_string(v) || strcmp(json_string_value(v), "2.0") != 0)
        return err_info_set(ei, ERR_INVAL, 0, 0, "\"jsonrpc\" must be the string \"2.0\"");
    json_t *method = json_object_get(msg, "method");
    json_t *id = json_object_get(msg, "id");
    json_t *result = json_object_get(msg, "result");
    json_t *error = json_object_get(msg, "error");
    if (method != NULL) {
        if (!json_is_string(method) || json_string_length(method) == 0)
            return err_info_set(ei, ERR_INVAL, 0, 0, "\"method\" must be a non-empty string");
        /* A NUL would make the gateway read one method and the server another. */
        if (strlen(json_string_value(method)) != json_string_length(method))
            return err_info_set(ei, ERR_INVAL, 0, 0, "\"method\" must not contain NUL characters");
        if (result != NULL || error != NULL)
            return err_info_set(ei, ERR_INVAL, 0, 0,
                                "a request must not carry \"result\" or \"error\"");
        json_t *params = json_object_get(msg, "params");
        if (params != NULL && !json_is_object(params))
            return err_info_set(ei, ERR_INVAL, 0, 0,
                                "\"params\" must be an object (MCP uses named parameters)");
        if (id == NULL) {
            *kind = JSONRPC_NOTIFICATION;
            return 0;
        }
        if (!valid_id(id))
            return err_info_set(ei, ERR_INVAL, 0, 0,
                                json_is_null(id)
                                    ? "\"id\" must not be null (MCP forbids null request ids)"
                                    : "\"id\" must be a string or an integer");
        *kind = JSONRPC_REQUEST;
        return 0;
    }
    if (result != NULL && error != NULL)
        return err_info_set(ei, ERR_INVAL, 0, 0,
                            "a response must not carry both \"result\" and \"error\"");
    if (result != NULL) {
        if (!valid_id(id))
            return err_info_set(ei, ERR_INVAL, 0, 0,
                                "a result must carry a string or integer \"id\"");
        *kind = JSONRPC_RESULT;
        return 0;
    }
    if (error != NULL) {
        if (!json_is_object(error) || !json_is_integer(json_object_get(error, "code")) ||
            !json_is_string(json_object_get(error, "message")))
            return err_info_set(
                ei, ERR_INVAL, 0, 0,
                "\"error\" must be an object with an integer \"code\" and a string \"message\"");
        if (id == NULL || (!json_is_null(id) && !valid_id(id)))
            return err_info_set(ei, ERR_INVAL, 0, 0,
                                "an error must carry a string, integer or null \"id\"");
        *kind = JSONRPC_ERROR;
        return 0;
    }
    return err_info_set(
        ei, ERR_INVAL, 0, 0,
        "not a request (no \"method\") nor a response (no \"result\" or \"error\")");
}

/* One pass over the bytes, following strings, that bounds nesting, containers and values
   (values are counted as containers plus separators, which bounds them from above). Not a
   validator: jansson still parses what passes, and refuses what is not JSON. */
static int prescan(const char *body, size_t len, struct err_info *ei)
{
    size_t depth = 0, containers = 0, values = 1;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = body[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
            continue;
        }
        switch (c) {
        case '"':
            in_string = true;
            break;
        case '{':
        case '[':
            if (++depth > JSONRPC_MAX_DEPTH)
                return err_info_set(ei, ERR_INVAL, 0, 0,
                                    "the body nests JSON deeper than the gateway's limit of %d "
                                    "levels (at byte %zu)",
                                    JSONRPC_MAX_DEPTH, i);
            if (++containers > JSONRPC_MAX_CONTAINERS)
                return err_info_set(ei, ERR_LIMIT, 0, 0,
                                    "the body holds more JSON objects and arrays than the "
                                    "gateway's limit of %d per message (at byte %zu)",
                                    JSONRPC_MAX_CONTAINERS, i);
            values++;
            break;
        case '}':
        case ']':
            if (depth > 0)
                depth--;
            break;
        case ',':
        case ':':
            if (++values > JSONRPC_MAX_VALUES)
                return err_info_set(ei, ERR_LIMIT, 0, 0,
                                    "the body holds more JSON values than the gateway's limit "
                                    "of %d per message (at byte %zu)",
                                    JSONRPC_MAX_VALUES, i);
            break;
        default:
            break;
        }
    }
    return 0;
}

int jsonrpc_parse(const char *body, size_t len, json_t **out, enum jsonrpc_kind *kind,
                  json_t **id_out, struct err_info *ei)
{
    json_error_t jerr;
    *id_out = NULL;
    int err = prescan(body, len, ei);
    if (err)
        return err;
    /* \u0000 is valid JSON; the gateway refuses NUL where it routes (names, URIs) instead. */
    json_t *msg =
        json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
    if (msg == NULL)
        return err_info_set(ei, ERR_PARSE, jerr.line, jerr.column,
                            "body is not valid JSON: %s at line %d, column %d", jerr.text,
                            jerr.line, jerr.column);
    if (json_is_array(msg)) {
        json_decref(msg);
        return err_info_set(
            ei, ERR_INVAL, 0, 0,
            "JSON-RPC batches are not supported by MCP 2025-06-18 and later; send one message per request");
    }
    if (json_is_object(msg)) {
        json_t *id = json_object_get(msg, "id");
        if (valid_id(id))
            *id_out = json_incref(id);
    }
    err = jsonrpc_classify(msg, kind, ei);
    if (err) {
        json_decref(msg);
        return err;
    }
    *out = msg;
    return 0;
}

/* A message that quotes bytes of the request may not be UTF-8, which a JSON string cannot hold:
 * every byte from 0x80 up is then written as \xNN, so the refusal still goes out and still
 * names its cause. */
static json_t *message_string(const char *message)
{
    json_t *s = json_string(message);
    if (s != NULL)
        return s;
    size_t n = strlen(message);
    char *safe = malloc(4 * n + 1);
    if (safe == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)message[i];
        if (c < 0x80)
            safe[o++] = (char)c;
        else
            o += (size_t)snprintf(safe + o, 5, "\\x%02x", c);
    }
    safe[o] = '\0';
    s = json_string(safe);
    free(safe);
    return s;
}

json_t *jsonrpc_error_new(json_t *id, int code, const char *message, json_t *data)
{
    json_t *err = json_pack("{s:i, s:o}", "code", code, "message", message_string(message));
    if (err != NULL && data != NULL)
        json_object_set_new(err, "data", data);
    else if (data != NULL)
        json_decref(data);
    return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(), "error",
                     err);
}

json_t *jsonrpc_error_newv(json_t *id, int code, json_t *data, const char *fmt, va_list ap)
{
    char msg[700];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    return jsonrpc_error_new(id, code, msg, data);
}

json_t *jsonrpc_error_newf(json_t *id, int code, json_t *data, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_t *e = jsonrpc_error_newv(id, code, data, fmt, ap);
    va_end(ap);
    return e;
}

json_t *jsonrpc_result_new(json_t *id, json_t *result)
{
    return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result);
}

json_t *jsonrpc_request_new(json_t *id, const char *method, json_t *params)
{
    json_t *m = json_pack("{s:s, s:O, s:s}", "jsonrpc", "2.0", "id", id, "method", method);
    if (params != NULL)
        json_object_set_new(m, "params", params);
    return m;
}

json_t *jsonrpc_notification_new(const char *method, json_t *params)
{
    json_t *m = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", method);
    if (params != NULL)
        json_object_set_new(m, "params", params);
    return m;
}

const char *jsonrpc_method(json_t *msg)
{
    return json_string_value(json_object_get(msg, "method"));
}

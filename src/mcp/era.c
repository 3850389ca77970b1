/*
 * Protocol eras on the downstream side: telling a 2026-07-28 (stateless) request from a
 * 2025-11-25 one, and the checks the 2026-07-28 Streamable HTTP transport makes before a request
 * is processed (its "Server Validation": MCP-Protocol-Version, Mcp-Method and Mcp-Name mirror the
 * body; the per-request _meta carries the version and the client's capabilities).
 *
 * Everything here works on values the HTTP layer extracted, so that it can be unit-tested and
 * fuzzed without a server. Each refusal is a complete JSON-RPC error answer naming the header or
 * field at fault and both values.
 *
 * The upstream side lives here too: the per-request _meta the gateway sends a 2026-07-28 server,
 * the reading of a server/discover probe's answer (the era fallback of basic/versioning), and the
 * sealing of a modern server's requestState for a modern client.
 */
#include "mcp/gateway.h"

#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

const char *const mcp_modern_versions[] = {MCP_VERSION_2026, NULL};

#define META_VERSION "io.modelcontextprotocol/protocolVersion"
#define META_CAPS "io.modelcontextprotocol/clientCapabilities"

static bool span_eq(const char *a, size_t alen, const char *b)
{
    return a != NULL && b != NULL && strlen(b) == alen && memcmp(a, b, alen) == 0;
}

static bool version_known(const char *v, size_t len)
{
    for (int i = 0; mcp_modern_versions[i]; i++)
        if (span_eq(v, len, mcp_modern_versions[i]))
            return true;
    for (int i = 0; mcp_supported_versions[i]; i++)
        if (span_eq(v, len, mcp_supported_versions[i]))
            return true;
    return false;
}

static const char *meta_version(json_t *msg)
{
    json_t *meta = json_object_get(json_object_get(msg, "params"), "_meta");
    return json_string_value(json_object_get(meta, META_VERSION));
}

bool mcp_era_is_modern(const struct mcp_era_headers *h, json_t *msg)
{
    if (h->has_session)
        return false;
    if (span_eq(h->version, h->version_len, MCP_VERSION_2026))
        return true;
    const char *mv = meta_version(msg);
    if (mv != NULL && strcmp(mv, MCP_VERSION_2026) == 0)
        return true;
    /* A request (not initialize) with no session and a version nobody speaks: the era is
       unknowable, and the modern answer (-32022 with the supported list) helps either kind of
       client. initialize is the legacy handshake: it keeps its own negotiation. */
    const char *method = jsonrpc_method(msg);
    if (h->version != NULL && !version_known(h->version, h->version_len) && method != NULL &&
        json_object_get(msg, "id") != NULL && strcmp(method, "initialize") != 0)
        return true;
    return false;
}

int mcp_header_decode(const char *v, size_t len, char *out, size_t cap, size_t *out_len)
{
    static const char prefix[] = "=?base64?", suffix[] = "?=";
    const size_t pl = sizeof(prefix) - 1, sl = sizeof(suffix) - 1;
    if (len >= pl + sl && memcmp(v, prefix, pl) == 0 && memcmp(v + len - sl, suffix, sl) == 0) {
        size_t n = 0;
        /* libsodium 1.0.18 reads every byte from 0x80 up as the digit 63: check the alphabet. */
        for (size_t i = pl; i < len - sl; i++) {
            unsigned char c = (unsigned char)v[i];
            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '/' || c == '='))
                return ERR_INVAL;
        }
        if (sodium_base642bin((unsigned char *)out, cap, v + pl, len - pl - sl, NULL, &n, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0)
            return ERR_INVAL;
        *out_len = n;
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (!(c == '\t' || (c >= 0x20 && c <= 0x7e)))
            return ERR_INVAL;
    }
    if (len > cap)
        return ERR_LIMIT;
    memcpy(out, v, len);
    *out_len = len;
    return 0;
}

static void refuse(struct mcp_era_refusal *r, json_t *id, int status, int code, json_t *data,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void refuse(struct mcp_era_refusal *r, json_t *id, int status, int code, json_t *data,
                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    r->status = status;
    r->error = jsonrpc_error_newv(id, code, data, fmt, ap);
    va_end(ap);
}

json_t *mcp_era_supported_versions(void)
{
    json_t *a = json_array();
    for (int i = 0; mcp_modern_versions[i]; i++)
        json_array_append_new(a, json_string(mcp_modern_versions[i]));
    for (int i = 0; mcp_supported_versions[i]; i++)
        json_array_append_new(a, json_string(mcp_supported_versions[i]));
    return a;
}

/* Printable form of a header value for a message: at most 120 bytes, quoted by the caller. */
#define SHOW(p, n) (int)((n) > 120 ? 120 : (n)), (p)

/* HTTP field values carry no leading or trailing whitespace (RFC 9110 5.5): a client's stray
   "name  " is the value "name". */
static void trim(const char **p, size_t *n)
{
    while (*p && *n && (**p == ' ' || **p == '\t')) {
        (*p)++;
        (*n)--;
    }
    while (*p && *n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
        (*n)--;
}

int mcp_era_validate(const struct mcp_era_headers *hdrs, json_t *msg, struct mcp_era_refusal *r)
{
    struct mcp_era_headers hc = *hdrs, *h = &hc;
    trim(&h->version, &h->version_len);
    trim(&h->method, &h->method_len);
    trim(&h->name, &h->name_len);
    memset(r, 0, sizeof(*r));
    json_t *id = json_object_get(msg, "id");
    const char *method = jsonrpc_method(msg);
    json_t *params = json_object_get(msg, "params");
    json_t *meta = json_object_get(params, "_meta");

    /* The version first: a version nobody here speaks gets the list to choose from. */
    if (h->version != NULL && !version_known(h->version, h->version_len)) {
        char req[64];
        snprintf(req, sizeof(req), "%.*s", SHOW(h->version, h->version_len));
        refuse(
            r, id, 400, MCP_ERR_UNSUPPORTED_VERSION,
            json_pack("{s:o, s:s}", "supported", mcp_era_supported_versions(), "requested", req),
            "Unsupported protocol version: %s (MCP-Protocol-Version); supported: see data.supported",
            req);
        return ERR_INVAL;
    }
    json_t *jv = json_object_get(meta, META_VERSION);
    if (!json_is_string(jv)) {
        refuse(r, id, 400, JSONRPC_INVALID_PARAMS,
               json_pack("{s:s}", "field", "params._meta." META_VERSION),
               "Invalid params: params._meta[\"" META_VERSION
               "\"] is %s; a 2026-07-28 request must carry its protocol version there",
               jv == NULL ? "missing" : "not a string");
        return ERR_INVAL;
    }
    const char *mv = json_string_value(jv);
    if (h->version == NULL) {
        refuse(
            r, id, 400, MCP_ERR_HEADER_MISMATCH, NULL,
            "Header mismatch: the MCP-Protocol-Version header is missing (body _meta says '%.64s')",
            mv);
        return ERR_INVAL;
    }
    if (!span_eq(h->version, h->version_len, mv)) {
        refuse(
            r, id, 400, MCP_ERR_HEADER_MISMATCH, NULL,
            "Header mismatch: MCP-Protocol-Version header value '%.*s' does not match body value '%.64s'",
            SHOW(h->version, h->version_len), mv);
        return ERR_INVAL;
    }
    if (strcmp(mv, MCP_VERSION_2026) != 0) {
        /* A legacy version with per-request _meta and no session: not a combination that exists. */
        refuse(
            r, id, 400, MCP_ERR_UNSUPPORTED_VERSION,
            json_pack("{s:o, s:s}", "supported", mcp_era_supported_versions(), "requested", mv),
            "Unsupported protocol version: %.64s without a session; versions before %s need initialize first",
            mv, MCP_VERSION_2026);
        return ERR_INVAL;
    }
    json_t *caps = json_object_get(meta, META_CAPS);
    if (!json_is_object(caps)) {
        refuse(r, id, 400, JSONRPC_INVALID_PARAMS,
               json_pack("{s:s}", "field", "params._meta." META_CAPS),
               "Invalid params: params._meta[\"" META_CAPS
               "\"] is %s; it must be an object (empty when the client has none)",
               caps == NULL ? "missing" : "not an object");
        return ERR_INVAL;
    }
    if (h->method == NULL) {
        refuse(r, id, 400, MCP_ERR_HEADER_MISMATCH, NULL,
               "Header mismatch: the Mcp-Method header is missing (body method '%.64s')",
               method ? method : "");
        return ERR_INVAL;
    }
    if (method == NULL || !span_eq(h->method, h->method_len, method)) {
        refuse(r, id, 400, MCP_ERR_HEADER_MISMATCH, NULL,
               "Header mismatch: Mcp-Method header value '%.*s' does not match body value '%.64s'",
               SHOW(h->method, h->method_len), method ? method : "");
        return ERR_INVAL;
    }
    const char *field = strcmp(method, "tools/call") == 0 || strcmp(method, "prompts/get") == 0
                            ? "name"
                        : strcmp(method, "resources/read") == 0 ? "uri"
                        : strcmp(method, "tasks/get") == 0 || strcmp(method, "tasks/update") == 0 ||
                                strcmp(method, "tasks/cancel") == 0
                            ? "taskId" /* the tasks extension's routing header */
                            : NULL;
    if (field == NULL)
        return 0;
    json_t *jbody = json_object_get(params, field);
    const char *body = json_string_value(jbody);
    if (h->name == NULL) {
        refuse(
            r, id, 400, MCP_ERR_HEADER_MISMATCH, NULL,
            "Header mismatch: the Mcp-Name header is missing (required for %s; body params.%s '%.120s')",
            method, field, body ? body : "");
        return ERR_INVAL;
    }
    char decoded[1024];
    size_t dlen = 0;
    if (mcp_header_decode(h->name, h->name_len, decoded, sizeof(decoded), &dlen) != 0) {
        refuse(
            r, id, 400, MCP_ERR_HEADER_MISMATCH, NULL,
            "Header mismatch: the Mcp-Name header value '%.*s' is not valid (bad =?base64?...?= encoding, invalid characters, or over 1024 bytes)",
            SHOW(h->name, h->name_len));
        return ERR_INVAL;
    }
    if (body == NULL || json_string_length(jbody) != dlen || memcmp(body, decoded, dlen) != 0) {
        refuse(r, id, 400, MCP_ERR_HEADER_MISMATCH, NULL,
               "Header mismatch: Mcp-Name header value '%.*s' does not match body value '%.120s'",
               SHOW(decoded, dlen), body ? body : "");
        return ERR_INVAL;
    }
    return 0;
}

/* --- Mcp-Param-* headers (x-mcp-header in a tool's inputSchema) --- */

/* How deep a chain of "properties" keys is followed: a schema is untrusted input. */
#define PARAM_DEPTH 8

/* RFC 9110 5.1: an HTTP field-name is 1*tchar. */
static bool is_token(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              strchr("!#$%&'*+-.^_`|~", c) != NULL))
            return false;
    }
    return true;
}

static bool header_type(const char *type)
{
    return type != NULL && (strcmp(type, "string") == 0 || strcmp(type, "integer") == 0 ||
                            strcmp(type, "boolean") == 0);
}

static void param_walk(json_t *schema, json_t *args, char *path, size_t plen, size_t cap, int depth,
                       json_t *out)
{
    json_t *props = json_object_get(schema, "properties");
    if (!json_is_object(props) || depth > PARAM_DEPTH)
        return;
    const char *key;
    json_t *sub;
    json_object_foreach(props, key, sub)
    {
        int n = snprintf(path + plen, cap - plen, "%s%s", plen ? "." : "", key);
        if (n < 0 || (size_t)n >= cap - plen) {
            path[plen] = '\0';
            continue;
        }
        json_t *arg = json_is_object(args) ? json_object_get(args, key) : NULL;
        const char *hdr = json_string_value(json_object_get(sub, "x-mcp-header"));
        if (is_token(hdr) && header_type(json_string_value(json_object_get(sub, "type")))) {
            json_t *e = json_pack("{s:s, s:s}", "header", hdr, "path", path);
            if (e != NULL && arg != NULL && !json_is_null(arg))
                json_object_set(e, "value", arg);
            json_array_append_new(out, e);
        }
        param_walk(sub, arg, path, plen + (size_t)n, cap, depth + 1, out);
        path[plen] = '\0';
    }
}

json_t *mcp_param_list(json_t *schema, json_t *args)
{
    char path[512] = "";
    json_t *out = json_array();
    if (out != NULL)
        param_walk(schema, args, path, 0, sizeof(path), 0, out);
    return out;
}

int mcp_param_text(json_t *value, char *buf, size_t cap, const char **text, size_t *len)
{
    int n = -1;
    if (json_is_string(value)) {
        *text = json_string_value(value);
        *len = json_string_length(value);
        return 0;
    }
    if (json_is_boolean(value)) {
        *text = json_is_true(value) ? "true" : "false";
        *len = strlen(*text);
        return 0;
    }
    if (json_is_integer(value))
        n = snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(value));
    else if (json_is_real(value))
        n = snprintf(buf, cap, "%.17g", json_real_value(value));
    if (n < 0 || (size_t)n >= cap)
        return ERR_INVAL;
    *text = buf;
    *len = (size_t)n;
    return 0;
}

json_t *mcp_param_headers(json_t *schema, json_t *args)
{
    json_t *list = schema ? mcp_param_list(schema, args) : NULL;
    json_t *out = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        char buf[64];
        const char *text;
        size_t len;
        json_t *value = json_object_get(e, "value");
        if (value == NULL || mcp_param_text(value, buf, sizeof(buf), &text, &len) != 0)
            continue;
        if (out == NULL && (out = json_object()) == NULL)
            break;
        json_object_set_new(out, json_string_value(json_object_get(e, "header")),
                            json_stringn(text, len));
    }
    json_decref(list);
    return out;
}

/* Does the decoded header text equal the body value? Numbers compare as numbers ("42.0" is 42),
   everything else byte for byte with the value's header text. */
static bool param_matches(json_t *value, const char *dec, size_t dlen)
{
    if (json_is_number(value)) {
        char num[64], *end = NULL;
        if (dlen == 0 || dlen >= sizeof(num))
            return false;
        memcpy(num, dec, dlen);
        num[dlen] = '\0';
        double h = strtod(num, &end), b = json_number_value(value);
        if (*end != '\0' || num[0] == ' ' || num[0] == '\t')
            return false;
        return json_is_integer(value) ? h == b : (h - b <= 1e-9 && b - h <= 1e-9);
    }
    char buf[64];
    const char *text;
    size_t len;
    return mcp_param_text(value, buf, sizeof(buf), &text, &len) == 0 && len == dlen &&
           memcmp(text, dec, dlen) == 0;
}

/* The one header hs[] has for `name` (case-insensitive); *count says how many there were. */
static const struct mcp_param_header *find_param(const struct mcp_param_header *hs, size_t n,
                                                 const char *name, int *count)
{
    const struct mcp_param_header *found = NULL;
    size_t nl = strlen(name);
    *count = 0;
    for (size_t i = 0; i < n; i++)
        if (hs[i].name_len == nl && strncasecmp(hs[i].name, name, nl) == 0) {
            found = found ? found : &hs[i];
            (*count)++;
        }
    return found;
}

/* Check one annotated parameter `e` ({header, path, value?}) against its header. */
static int check_param(const struct mcp_param_header *hs, size_t n, json_t *e, const char *tool,
                       json_t *id, struct mcp_era_refusal *r)
{
    const char *hdr = json_string_value(json_object_get(e, "header"));
    const char *path = json_string_value(json_object_get(e, "path"));
    json_t *value = json_object_get(e, "value");
    int count = 0;
    const struct mcp_param_header *h = find_param(hs, n, hdr, &count);
    char buf[64], shown[130];
    const char *text = "";
    size_t tlen = 0;
    if (value != NULL && mcp_param_text(value, buf, sizeof(buf), &text, &tlen) != 0)
        text = "(not a primitive)", tlen = strlen(text);
    snprintf(shown, sizeof(shown), "%.*s", SHOW(text, tlen));
    if (h == NULL) {
        if (value == NULL)
            return 0; /* no value, no header: nothing to mirror */
        refuse(
            r, id, 400, MCP_ERR_HEADER_MISMATCH, json_pack("{s:s+}", "header", "Mcp-Param-", hdr),
            "Header mismatch: the Mcp-Param-%.64s header is missing (tool '%.120s' mirrors arguments.%.120s into it; body value '%s')",
            hdr, tool, path, shown);
        return ERR_INVAL;
    }
    if (count > 1) {
        refuse(r, id, 400, MCP_ERR_HEADER_MISMATCH,
               json_pack("{s:s+}", "header", "Mcp-Param-", hdr),
               "Header mismatch: the Mcp-Param-%.64s header appears %d times; it must appear once",
               hdr, count);
        return ERR_INVAL;
    }
    if (value == NULL) {
        refuse(
            r, id, 400, MCP_ERR_HEADER_MISMATCH, json_pack("{s:s+}", "header", "Mcp-Param-", hdr),
            "Header mismatch: the Mcp-Param-%.64s header is present but arguments.%.120s has no value",
            hdr, path);
        return ERR_INVAL;
    }
    const char *v = h->value;
    size_t vlen = h->value_len;
    trim(&v, &vlen);
    char *dec = malloc(vlen + 1);
    size_t dlen = 0;
    int err = ERR_NOMEM;
    if (dec == NULL) {
        refuse(r, id, 500, JSONRPC_INTERNAL_ERROR, NULL,
               "out of memory checking the Mcp-Param-%.64s header", hdr);
        goto out;
    }
    err = ERR_INVAL;
    if (mcp_header_decode(v, vlen, dec, vlen + 1, &dlen) != 0) {
        refuse(
            r, id, 400, MCP_ERR_HEADER_MISMATCH, json_pack("{s:s+}", "header", "Mcp-Param-", hdr),
            "Header mismatch: the Mcp-Param-%.64s header value '%.*s' is not valid (bad =?base64?...?= encoding or invalid characters)",
            hdr, SHOW(v, vlen));
        goto out;
    }
    if (!param_matches(value, dec, dlen)) {
        refuse(
            r, id, 400, MCP_ERR_HEADER_MISMATCH, json_pack("{s:s+}", "header", "Mcp-Param-", hdr),
            "Header mismatch: Mcp-Param-%.64s header value '%.*s' does not match body value '%s' (arguments.%.120s)",
            hdr, SHOW(dec, dlen), shown, path);
        goto out;
    }
    err = 0;
out:
    free(dec);
    return err;
}

int mcp_era_validate_params(const struct mcp_param_header *hs, size_t n, json_t *schema,
                            json_t *msg, struct mcp_era_refusal *r)
{
    memset(r, 0, sizeof(*r));
    if (schema == NULL)
        return 0;
    json_t *params = json_object_get(msg, "params");
    json_t *list = mcp_param_list(schema, json_object_get(params, "arguments"));
    if (list == NULL) {
        refuse(r, json_object_get(msg, "id"), 500, JSONRPC_INTERNAL_ERROR, NULL,
               "out of memory checking the Mcp-Param-* headers");
        return ERR_NOMEM;
    }
    const char *tool = json_string_value(json_object_get(params, "name"));
    int err = 0;
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        if ((err = check_param(hs, n, e, tool ? tool : "", json_object_get(msg, "id"), r)) != 0)
            break;
    }
    json_decref(list);
    return err;
}

const char *const mcp_supported_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", NULL};

bool mcp_version_supported(const char *v)
{
    for (int i = 0; v && mcp_supported_versions[i]; i++)
        if (strcmp(v, mcp_supported_versions[i]) == 0)
            return true;
    return false;
}

bool mcp_era_method_stateless(const char *method)
{
    /* the method table's era flag (ping, for one, is gone in 2026-07-28: 404 like any removed
       method) */
    const struct mcp_method *m = mcp_method_find(method);
    return m != NULL && (m->flags & MCP_METHOD_MODERN) && (m->flags & MCP_METHOD_REQUEST);
}

const char *mcp_era_method_label(const char *method)
{
    static const char *const known[] = {
        "initialize", "ping", "server/discover", "subscriptions/listen", "tools/list", "tools/call",
        "prompts/list", "prompts/get", "resources/list", "resources/templates/list",
        "resources/read", "resources/subscribe", "resources/unsubscribe", "logging/setLevel",
        "completion/complete", "notifications/initialized", "notifications/cancelled",
        "notifications/progress", "notifications/roots/list_changed", "tasks/get", "tasks/update",
        "tasks/cancel", "tasks/result", "tasks/list",
        /* the gateway's own labels (a client's answer, a GET stream, a DELETE) */
        "(result)", "(error)", "(stream)", "(close session)", NULL};
    for (int i = 0; method != NULL && known[i]; i++)
        if (strcmp(method, known[i]) == 0)
            return known[i];
    return "(other)";
}

void mcp_era_strip_meta(json_t *msg)
{
    json_t *meta = json_object_get(json_object_get(msg, "params"), "_meta");
    if (!json_is_object(meta))
        return;
    const char *key;
    void *tmp;
    json_t *val;
    json_object_foreach_safe(meta, tmp, key, val)
    {
        (void)val;
        if (strncmp(key, "io.modelcontextprotocol/", 24) == 0)
            json_object_del(meta, key);
    }
    if (json_object_size(meta) == 0)
        json_object_del(json_object_get(msg, "params"), "_meta");
}

int mcp_log_level_rank(const char *level)
{
    static const char *const levels[] = {"debug", "info",     "notice", "warning",
                                         "error", "critical", "alert",  "emergency"};
    for (int i = 0; level && i < (int)(sizeof(levels) / sizeof(levels[0])); i++)
        if (strcmp(level, levels[i]) == 0)
            return i;
    return -1;
}

const char *mcp_log_level_name(int rank)
{
    static const char *const levels[] = {"debug", "info",     "notice", "warning",
                                         "error", "critical", "alert",  "emergency"};
    return rank >= 0 && rank < (int)(sizeof(levels) / sizeof(levels[0])) ? levels[rank] : NULL;
}

/* --- the upstream side --- */

/* msg's params._meta, made an object when it is not one; NULL when out of memory. */
static json_t *meta_of(json_t *msg)
{
    json_t *params = json_object_get(msg, "params");
    if (!json_is_object(params)) {
        params = json_object();
        if (params == NULL || json_object_set_new(msg, "params", params) != 0)
            return NULL;
    }
    json_t *meta = json_object_get(params, "_meta");
    if (!json_is_object(meta)) {
        meta = json_object();
        if (meta == NULL || json_object_set_new(params, "_meta", meta) != 0)
            return NULL;
    }
    return meta;
}

int mcp_era_add_caps_meta(json_t *msg, json_t *caps)
{
    json_t *meta = meta_of(msg);
    if (meta == NULL)
        return ERR_NOMEM;
    return json_object_set_new(meta, META_CAPS,
                               json_is_object(caps) ? json_deep_copy(caps) : json_object())
               ? ERR_NOMEM
               : 0;
}

int mcp_era_add_meta(json_t *msg, json_t *caps, int log_rank)
{
    json_t *meta = meta_of(msg);
    if (meta == NULL)
        return ERR_NOMEM;
    int err = json_object_set_new(meta, META_VERSION, json_string(MCP_VERSION_2026));
    err |= json_object_set_new(
        meta, "io.modelcontextprotocol/clientInfo",
        json_pack("{s:s, s:s}", "name", "gatehouse", "version", GATEHOUSE_VERSION));
    err |= json_object_set_new(meta, META_CAPS,
                               json_is_object(caps) ? json_deep_copy(caps) : json_object());
    const char *level = mcp_log_level_name(log_rank);
    if (level != NULL)
        err |= json_object_set_new(meta, "io.modelcontextprotocol/logLevel", json_string(level));
    return err ? ERR_NOMEM : 0;
}

static bool lists_version(json_t *list, const char *v)
{
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        if (json_is_string(e) && strcmp(json_string_value(e), v) == 0)
            return true;
    }
    return false;
}

/* A printable copy of a list of versions for a message. */
static void show_versions(json_t *list, char *out, size_t len)
{
    size_t i, used = 0;
    json_t *e;
    out[0] = '\0';
    json_array_foreach(list, i, e)
    {
        if (used + 2 >= len)
            break;
        int n = snprintf(out + used, len - used, "%s%.32s", i ? ", " : "",
                         json_is_string(e) ? json_string_value(e) : "?");
        if (n < 0)
            break;
        used += (size_t)n < len - used ? (size_t)n : len - used - 1;
    }
    if (used == 0)
        snprintf(out, len, "none");
}

enum mcp_probe_outcome mcp_era_probe_outcome(json_t *msg, char *why, size_t whylen)
{
    char versions[200];
    json_t *result = json_object_get(msg, "result");
    json_t *error = json_object_get(msg, "error");
    if (json_is_object(result)) {
        json_t *sv = json_object_get(result, "supportedVersions");
        if (!json_is_array(sv)) {
            snprintf(why, whylen, "server/discover answered without supportedVersions");
            return MCP_PROBE_LEGACY;
        }
        show_versions(sv, versions, sizeof(versions));
        if (lists_version(sv, MCP_VERSION_2026)) {
            snprintf(why, whylen, "server/discover lists %s", versions);
            return MCP_PROBE_MODERN;
        }
        for (int i = 0; mcp_supported_versions[i]; i++)
            if (lists_version(sv, mcp_supported_versions[i])) {
                snprintf(why, whylen, "server/discover lists only %s: using initialize", versions);
                return MCP_PROBE_LEGACY;
            }
        snprintf(why, whylen,
                 "the server speaks %s (server/discover), none of which the gateway speaks",
                 versions);
        return MCP_PROBE_REFUSED;
    }
    if (json_is_object(error)) {
        json_t *jcode = json_object_get(error, "code");
        json_int_t code = json_is_integer(jcode) ? json_integer_value(jcode) : 0;
        const char *m = json_string_value(json_object_get(error, "message"));
        json_t *sv = json_object_get(json_object_get(error, "data"), "supported");
        if (code == MCP_ERR_UNSUPPORTED_VERSION) {
            /* A modern server. It names the versions it speaks: a client retries with one it
               speaks too (2026-07-28 first), and falls back only to a listed legacy one. */
            show_versions(json_is_array(sv) ? sv : NULL, versions, sizeof(versions));
            if (json_is_array(sv) && lists_version(sv, MCP_VERSION_2026)) {
                snprintf(why, whylen,
                         "server/discover: unsupported version (-32022), yet it speaks %s: "
                         "asking again with %s",
                         versions, MCP_VERSION_2026);
                return MCP_PROBE_RETRY;
            }
            for (int i = 0; json_is_array(sv) && mcp_supported_versions[i]; i++)
                if (lists_version(sv, mcp_supported_versions[i])) {
                    snprintf(why, whylen, "server/discover: unsupported version; it speaks %s",
                             versions);
                    return MCP_PROBE_LEGACY;
                }
            snprintf(why, whylen,
                     "the server refused %s (-32022) and speaks %s, none of which the gateway "
                     "speaks",
                     MCP_VERSION_2026, versions);
            return MCP_PROBE_REFUSED;
        }
        if (code == MCP_ERR_HEADER_MISMATCH || code == MCP_ERR_MISSING_CLIENT_CAP) {
            snprintf(why, whylen, "server/discover refused with %lld: %.200s", (long long)code,
                     m ? m : "(no message)");
            return MCP_PROBE_REFUSED;
        }
        snprintf(why, whylen, "server/discover answered %lld: %.200s", (long long)code,
                 m ? m : "(no message)");
        return MCP_PROBE_LEGACY;
    }
    snprintf(why, whylen, "no answer to server/discover");
    return MCP_PROBE_LEGACY;
}

#define SEAL_MAX_STATE (64 * 1024)
#define SEAL_KDF_CONTEXT "ghseal01" /* crypto_kdf context: 8 bytes, the family of these keys */

/* One key per use (MCP_SEAL_*), so that nothing sealed for one use opens as another. */
static unsigned char seal_keys[MCP_SEAL_NKEYS][crypto_secretbox_KEYBYTES];
static bool seal_shared;
static pthread_once_t seal_once = PTHREAD_ONCE_INIT;

static void seal_key_init(void)
{
    if (!seal_shared)
        for (int i = 0; i < MCP_SEAL_NKEYS; i++)
            randombytes_buf(seal_keys[i], sizeof(seal_keys[i]));
}

void mcp_seal_init(const unsigned char *master)
{
    if (master != NULL) {
        for (int i = 0; i < MCP_SEAL_NKEYS; i++)
            crypto_kdf_derive_from_key(seal_keys[i], sizeof(seal_keys[i]), (uint64_t)i + 1,
                                       SEAL_KDF_CONTEXT, master);
        seal_shared = true;
    }
    pthread_once(&seal_once, seal_key_init);
}

bool mcp_seal_shared(void)
{
    return seal_shared;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool mcp_era_is_sealed(const char *s)
{
    return s != NULL && strncmp(s, MCP_SEALED_PREFIX, sizeof(MCP_SEALED_PREFIX) - 1) == 0;
}

char *mcp_seal(int key, const char *prefix, json_t *doc)
{
    pthread_once(&seal_once, seal_key_init);
    char *plain = NULL, *out = NULL;
    unsigned char *box = NULL;
    size_t plen, prelen = strlen(prefix);
    if (key < 0 || key >= MCP_SEAL_NKEYS || (plain = json_dumps(doc, JSON_COMPACT)) == NULL ||
        (plen = strlen(plain)) > SEAL_MAX_STATE)
        goto out;
    size_t blen = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + plen;
    if ((box = malloc(blen)) == NULL)
        goto out;
    randombytes_buf(box, crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, (unsigned char *)plain, plen, box,
                          seal_keys[key]);
    size_t olen =
        prelen + sodium_base64_ENCODED_LEN(blen, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    if ((out = malloc(olen)) == NULL)
        goto out;
    memcpy(out, prefix, prelen);
    sodium_bin2base64(out + prelen, olen - prelen, box, blen,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
out:
    if (plain != NULL)
        sodium_memzero(plain, strlen(plain));
    free(plain);
    free(box);
    return out;
}

json_t *mcp_unseal(int key, const char *prefix, const char *sealed, size_t len)
{
    pthread_once(&seal_once, seal_key_init);
    size_t prelen = strlen(prefix);
    if (key < 0 || key >= MCP_SEAL_NKEYS || sealed == NULL || len < prelen ||
        memcmp(sealed, prefix, prelen) != 0 || len - prelen > 2 * SEAL_MAX_STATE)
        return NULL;
    const char *b64 = sealed + prelen;
    size_t b64len = len - prelen;
    size_t cap = b64len * 3 / 4 + 3, blen = 0, plen = 0;
    unsigned char *box = malloc(cap), *plain = NULL;
    json_t *doc = NULL;
    if (box == NULL ||
        sodium_base642bin(box, cap, b64, b64len, NULL, &blen, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        blen < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
        goto out;
    plen = blen - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
    if ((plain = malloc(plen + 1)) == NULL ||
        crypto_secretbox_open_easy(plain, box + crypto_secretbox_NONCEBYTES,
                                   blen - crypto_secretbox_NONCEBYTES, box, seal_keys[key]) != 0)
        goto out;
    doc = json_loadb((const char *)plain, plen, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        doc = NULL;
    }
out:
    if (plain != NULL)
        sodium_memzero(plain, plen);
    free(box);
    free(plain);
    return doc;
}

char *mcp_era_seal_state(const char *server, const char *method, const char *target,
                         const char *owner, json_t *state, uint64_t ttl_ms)
{
    json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:I, s:O}", "s", server, "m", method, "t",
                            target ? target : "", "o", owner ? owner : "", "x",
                            (json_int_t)(now_ms() + ttl_ms), "r", state);
    char *out = doc ? mcp_seal(MCP_SEAL_STATE, MCP_SEALED_PREFIX, doc) : NULL;
    json_decref(doc);
    return out;
}

json_t *mcp_era_open_state(const char *sealed, const char *server, const char *method,
                           const char *target, const char *owner)
{
    if (!mcp_era_is_sealed(sealed))
        return NULL;
    json_t *doc = mcp_unseal(MCP_SEAL_STATE, MCP_SEALED_PREFIX, sealed, strlen(sealed));
    json_t *state = NULL;
    const char *s = json_string_value(json_object_get(doc, "s"));
    const char *m = json_string_value(json_object_get(doc, "m"));
    const char *t = json_string_value(json_object_get(doc, "t"));
    const char *o = json_string_value(json_object_get(doc, "o"));
    json_t *x = json_object_get(doc, "x");
    if (s == NULL || m == NULL || t == NULL || o == NULL || !json_is_integer(x) ||
        strcmp(s, server) != 0 || strcmp(m, method) != 0 || strcmp(t, target ? target : "") != 0 ||
        strcmp(o, owner ? owner : "") != 0 || (uint64_t)json_integer_value(x) < now_ms())
        goto out;
    state = json_incref(json_object_get(doc, "r"));
out:
    json_decref(doc);
    return state;
}

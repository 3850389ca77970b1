/*
 * Fuzz MCP 2026-07-28 request handling before the engine sees it: the Mcp-Name header decoding
 * ("=?base64?...?=" sentinel), era detection and the "Server Validation" checks, on arbitrary
 * header values and bodies. Input layout: four fields separated by '\n' — MCP-Protocol-Version,
 * Mcp-Method, Mcp-Name, then the JSON body. A first byte with bit 0 set means an Mcp-Session-Id
 * is present.
 *
 * The Mcp-Name field is also an Mcp-Param-Region header checked against the body's arguments
 * (mcp_era_validate_params: "=?base64?…?=" decoding, numbers, presence).
 *
 * The upstream side gets the same input: the body as a server's answer to the server/discover
 * probe (mcp_era_probe_outcome), and the Mcp-Name field as a requestState a client sends back
 * (mcp_era_open_state, which must refuse anything the gateway did not seal).
 *
 * Beyond not crashing, the results are held to their contract (a violation aborts):
 *   - mcp_header_decode: what it accepts round-trips (a plain value is returned as it is, and
 *     only visible ASCII, space or tab; a "=?base64?...?=" value is the canonical encoding of
 *     what it returns); a refusal is ERR_INVAL or ERR_LIMIT;
 *   - mcp_era_validate: an accepted request carries 2026-07-28 in the header and in _meta, a
 *     capabilities object, an Mcp-Method equal to its method, and for tools/call, prompts/get and
 *     resources/read an Mcp-Name that decodes to params.name / params.uri exactly; a refusal is a
 *     400 with a JSON-RPC error whose code is one of the three the validation uses, whose message
 *     is not empty, and whose id is the request's;
 *   - mcp_era_validate_params: a refusal is a 4xx with a JSON-RPC error and a message.
 */
#include "mcp/gateway.h"
#include "mcp/jsonrpc.h"

#include <jansson.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The next '\n'-terminated field of [*p, end) (or the rest). */
static const char *field(const char **p, const char *end, size_t *len)
{
    const char *start = *p;
    const char *nl = memchr(start, '\n', (size_t)(end - start));
    const char *stop = nl ? nl : end;
    *len = (size_t)(stop - start);
    *p = nl ? nl + 1 : end;
    return start;
}

static void violated(const char *what, const char *v, size_t n)
{
    fprintf(stderr, "fuzz_era: property violated: %s (\"%.*s\")\n", what, (int)(n > 300 ? 300 : n),
            v ? v : "");
    abort();
}

/* A header value without leading or trailing blanks, as the validation reads it. */
static void trimmed(const char **p, size_t *n)
{
    while (*p && *n && (**p == ' ' || **p == '\t'))
        (*p)++, (*n)--;
    while (*p && *n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
        (*n)--;
}

static bool span_is(const char *p, size_t n, const char *s)
{
    return p != NULL && s != NULL && strlen(s) == n && memcmp(p, s, n) == 0;
}

static void check_decode(const char *v, size_t len)
{
    char out[256], enc[512];
    size_t out_len = 0;
    int rc = mcp_header_decode(v, len, out, sizeof(out), &out_len);
    if (rc != 0) {
        if (rc != ERR_INVAL && rc != ERR_LIMIT)
            violated("mcp_header_decode refused with an unexpected code", v, len);
        return;
    }
    if (out_len > sizeof(out))
        violated("mcp_header_decode wrote past its buffer", v, len);
    if (len >= 11 && memcmp(v, "=?base64?", 9) == 0 && memcmp(v + len - 2, "?=", 2) == 0) {
        sodium_bin2base64(enc, sizeof(enc), (const unsigned char *)out, out_len,
                          sodium_base64_VARIANT_ORIGINAL);
        if (strlen(enc) != len - 11 || memcmp(enc, v + 9, len - 11) != 0)
            violated("an accepted base64 value is not the encoding of what it decoded to", v, len);
        return;
    }
    if (out_len != len || memcmp(out, v, len) != 0)
        violated("an accepted plain value did not come back as it was", v, len);
    for (size_t i = 0; i < len; i++)
        if (!(v[i] == '\t' || (v[i] >= 0x20 && v[i] <= 0x7e)))
            violated("a plain value with a control or non-ASCII byte was accepted", v, len);
}

static void check_refusal(const struct mcp_era_refusal *r, json_t *msg, bool era)
{
    json_t *err = json_object_get(r->error, "error");
    json_t *code = json_object_get(err, "code");
    const char *m = json_string_value(json_object_get(err, "message"));
    if (r->status < 400 || r->status > 499 || !json_is_integer(code) || m == NULL || *m == '\0')
        violated("a refusal without a 4xx status, a code and a message", m, m ? strlen(m) : 0);
    if (era) {
        json_int_t c = json_integer_value(code);
        if (r->status != 400 || (c != MCP_ERR_UNSUPPORTED_VERSION && c != MCP_ERR_HEADER_MISMATCH &&
                                 c != JSONRPC_INVALID_PARAMS))
            violated("an era refusal that is not a 400 with -32022, -32020 or -32602", m,
                     strlen(m));
        json_t *id = json_object_get(msg, "id"), *rid = json_object_get(r->error, "id");
        if (id != NULL && !json_equal(id, rid))
            violated("an era refusal that does not answer the request's id", m, strlen(m));
    }
}

/* What mcp_era_validate accepted holds: both versions 2026-07-28, capabilities, the method, and
   the name or uri the headers carry. */
static void check_accepted(const struct mcp_era_headers *h0, json_t *msg)
{
    struct mcp_era_headers h = *h0;
    trimmed(&h.version, &h.version_len);
    trimmed(&h.method, &h.method_len);
    trimmed(&h.name, &h.name_len);
    json_t *params = json_object_get(msg, "params");
    json_t *meta = json_object_get(params, "_meta");
    json_t *mv = json_object_get(meta, "io.modelcontextprotocol/protocolVersion");
    const char *method = jsonrpc_method(msg);
    if (!span_is(h.version, h.version_len, MCP_VERSION_2026) || !json_is_string(mv) ||
        strcmp(json_string_value(mv), MCP_VERSION_2026) != 0)
        violated("accepted without 2026-07-28 in both header and _meta", h.version, h.version_len);
    if (!json_is_object(json_object_get(meta, "io.modelcontextprotocol/clientCapabilities")))
        violated("accepted without a clientCapabilities object", h.version, h.version_len);
    if (!span_is(h.method, h.method_len, method))
        violated("accepted with an Mcp-Method that is not the body's method", h.method,
                 h.method_len);
    const char *field = strcmp(method, "tools/call") == 0 || strcmp(method, "prompts/get") == 0
                            ? "name"
                        : strcmp(method, "resources/read") == 0 ? "uri"
                                                                : NULL;
    if (field == NULL)
        return;
    json_t *jb = json_object_get(params, field);
    char out[1024];
    size_t out_len = 0;
    if (h.name == NULL || !json_is_string(jb) ||
        mcp_header_decode(h.name, h.name_len, out, sizeof(out), &out_len) != 0 ||
        out_len != json_string_length(jb) || memcmp(out, json_string_value(jb), out_len) != 0)
        violated("accepted with an Mcp-Name that does not decode to the body's name or uri", h.name,
                 h.name_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_t *param_schema;
    if (param_schema == NULL)
        param_schema = json_loads(
            "{\"properties\":{\"region\":{\"type\":\"string\",\"x-mcp-header\":\"Region\"},"
            "\"n\":{\"properties\":{\"priority\":{\"type\":\"integer\",\"x-mcp-header\":\"Priority\"}}}}}",
            0, NULL);
    if (size < 1 || size > 65536)
        return 0;
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    struct mcp_era_headers h = {.has_session = data[0] & 1};
    h.version = field(&p, end, &h.version_len);
    h.method = field(&p, end, &h.method_len);
    h.name = field(&p, end, &h.name_len);
    /* A header that was absent is NULL, not empty: let bit 1..3 say so. */
    if (data[0] & 2)
        h.version = NULL, h.version_len = 0;
    if (data[0] & 4)
        h.method = NULL, h.method_len = 0;
    if (data[0] & 8)
        h.name = NULL, h.name_len = 0;

    char out[256];
    size_t out_len;
    if (h.name != NULL) {
        mcp_header_decode(h.name, h.name_len, out, sizeof(out), &out_len);
        check_decode(h.name, h.name_len);
    }
    if (h.version != NULL)
        check_decode(h.version, h.version_len);

    json_t *msg = NULL, *id = NULL;
    enum jsonrpc_kind kind;
    if (h.name != NULL && h.name_len < sizeof(out)) {
        memcpy(out, h.name, h.name_len);
        out[h.name_len] = '\0';
        json_t *state = mcp_era_open_state(out, "s", "tools/call", "t", "");
        if (state != NULL)
            abort(); /* nothing here was sealed by this process */
    }
    if (jsonrpc_parse(p, (size_t)(end - p), &msg, &kind, &id, NULL) == 0) {
        char why[400];
        mcp_era_probe_outcome(msg, why, sizeof(why));
        /* The Mcp-Name field doubles as an Mcp-Param-Region header of a call whose tool marks
           arguments.region (string) and arguments.n.priority (integer) with x-mcp-header. */
        struct mcp_era_refusal pr = {0};
        struct mcp_param_header ph = {"region", 6, h.name, h.name_len};
        if (param_schema != NULL &&
            mcp_era_validate_params(&ph, h.name ? 1 : 0, param_schema, msg, &pr) != 0) {
            check_refusal(&pr, msg, false);
            json_decref(pr.error);
        }
        if (mcp_era_is_modern(&h, msg)) {
            struct mcp_era_refusal r = {0};
            if (mcp_era_validate(&h, msg, &r) != 0) {
                check_refusal(&r, msg, true);
                json_decref(r.error);
            } else {
                check_accepted(&h, msg);
            }
        }
        json_decref(msg);
    }
    json_decref(id);
    return 0;
}

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
 * Properties, abort() on violation: a decoded header value round-trips (encoded again with the
 * base64 sentinel it decodes to the same bytes; a plain value decodes to itself); a refusal
 * names why (a 4xx status and a JSON-RPC error with an integer code and a non-empty message);
 * an accepted modern request has an Mcp-Method header equal (trimmed) to the body's method.
 */
#include "mcp/gateway.h"
#include "mcp/jsonrpc.h"

#include <jansson.h>
#include <openssl/evp.h>
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

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_era: %s\n", what);
    abort();
}

/* A refusal names why: a 4xx status and an error object with a code and a message. */
static void refusal_named(const struct mcp_era_refusal *r)
{
    json_t *e = json_object_get(r->error, "error");
    const char *m = json_string_value(json_object_get(e, "message"));
    if (r->status < 400 || r->status > 499 || !json_is_integer(json_object_get(e, "code")) ||
        m == NULL || m[0] == '\0') {
        char *dump = json_dumps(r->error, JSON_COMPACT);
        fprintf(stderr, "status %d, error %s\n", r->status, dump ? dump : "(null)");
        free(dump);
        fail("a refusal without a 4xx status, an error code or a message");
    }
}

/* What was decoded, encoded again with the sentinel, decodes to the same bytes. */
static void decode_round_trip(const char *v, size_t len, const char *out, size_t out_len)
{
    if (len < 9 || memcmp(v, "=?base64?", 9) != 0) {
        if (out_len != len || memcmp(out, v, len) != 0)
            fail("a plain header value does not decode to itself");
    }
    unsigned char enc[9 + 4 * (256 / 3 + 1) + 3];
    memcpy(enc, "=?base64?", 9);
    int n = EVP_EncodeBlock(enc + 9, (const unsigned char *)out, (int)out_len);
    memcpy(enc + 9 + n, "?=", 2);
    char again[256];
    size_t again_len = 0;
    if (mcp_header_decode((const char *)enc, 9 + (size_t)n + 2, again, sizeof(again), &again_len) !=
            0 ||
        again_len != out_len || memcmp(again, out, out_len) != 0)
        fail("a decoded header value does not round-trip through the base64 sentinel");
}

static bool trimmed_eq(const char *h, size_t hl, const char *s)
{
    while (hl && (*h == ' ' || *h == '\t'))
        h++, hl--;
    while (hl && (h[hl - 1] == ' ' || h[hl - 1] == '\t'))
        hl--;
    return s && strlen(s) == hl && memcmp(h, s, hl) == 0;
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
    if (h.name != NULL && mcp_header_decode(h.name, h.name_len, out, sizeof(out), &out_len) == 0)
        decode_round_trip(h.name, h.name_len, out, out_len);

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
            refusal_named(&pr);
            json_decref(pr.error);
        }
        if (mcp_era_is_modern(&h, msg)) {
            struct mcp_era_refusal r = {0};
            if (mcp_era_validate(&h, msg, &r) != 0) {
                refusal_named(&r);
                json_decref(r.error);
            } else if (h.method == NULL ||
                       !trimmed_eq(h.method, h.method_len, jsonrpc_method(msg))) {
                fail("an accepted request's Mcp-Method header is not its body's method");
            }
        }
        json_decref(msg);
    }
    json_decref(id);
    return 0;
}

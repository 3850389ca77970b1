/*
 * Fuzz target for OpenAPI Overlay documents and their JSONPath targets. The first line of the
 * input is a JSONPath, compiled and run against a small fixed document; the rest is an Overlay
 * document (JSON or YAML), loaded and applied to a copy of that document, then the result is
 * turned into a model and a catalog. Errors are expected; crashes, leaks, hangs and sanitizer
 * reports are not, nor a refusal that does not say why (a non-empty message: a violation
 * aborts).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "openapi/openapi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int refused(int rc, const struct err_info *ei, const char *what)
{
    if (rc != 0 && rc != ERR_NOMEM && ei->msg[0] == '\0') {
        fprintf(stderr, "%s: property violated: %s refused (%d) without saying why\n",
                "fuzz_overlay", what, rc);
        abort();
    }
    return rc;
}
/* Run a call that fills ei, from a clean ei, and check its refusal. */
#define TRY(call) (memset(&ei, 0, sizeof(ei)), refused((call), &ei, #call))

static const char base[] =
    "{\"openapi\":\"3.0.3\",\"info\":{\"title\":\"F\",\"version\":\"1\"},"
    "\"paths\":{\"/a/{id}\":{\"parameters\":[{\"name\":\"id\",\"in\":\"path\",\"required\":true,"
    "\"schema\":{\"type\":\"string\"}}],\"get\":{\"operationId\":\"getA\",\"tags\":[\"a\"],"
    "\"x-internal\":false,\"parameters\":[{\"name\":\"limit\",\"in\":\"query\",\"schema\":"
    "{\"type\":\"integer\",\"enum\":[1,2,3]}}],\"responses\":{\"200\":{\"description\":\"ok\"}}},"
    "\"delete\":{\"operationId\":\"delA\",\"deprecated\":true,\"responses\":{\"204\":"
    "{\"description\":\"gone\"}}}},\"/b\":{\"post\":{\"requestBody\":{\"content\":"
    "{\"application/json\":{\"schema\":{\"$ref\":\"#/components/schemas/B\"}}}},"
    "\"responses\":{\"201\":{\"description\":\"made\"}}}}},"
    "\"components\":{\"schemas\":{\"B\":{\"type\":\"object\",\"properties\":{\"n\":{\"type\":"
    "\"string\"},\"child\":{\"$ref\":\"#/components/schemas/B\"}}}}}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (64u << 10))
        return 0;
    const char *nl = memchr(data, '\n', size);
    size_t plen = nl ? (size_t)(nl - (const char *)data) : size;
    char *path = strndup((const char *)data, plen);
    json_t *root = json_loads(base, 0, NULL);
    struct err_info ei;
    struct openapi_jsonpath *jp = NULL;
    if (path && root && TRY(openapi_jsonpath_compile(path, &jp, &ei)) == 0) {
        struct openapi_jsonpath_node *nodes = NULL;
        size_t n = 0;
        if (openapi_jsonpath_query(jp, root, &nodes, &n) == 0)
            free(nodes);
        openapi_jsonpath_free(jp);
    }
    free(path);
    json_t *ovj = NULL;
    struct openapi_overlay *ov = NULL;
    if (nl && root && TRY(openapi_parse_text(nl + 1, size - plen - 1, &ovj, &ei)) == 0 &&
        TRY(openapi_overlay_from_json(ovj, "fuzz", &ov, &ei)) == 0) {
        json_t *w = json_array();
        if (TRY(openapi_overlay_apply(ov, root, w, &ei)) == 0) {
            char *text = json_dumps(root, JSON_COMPACT);
            struct openapi_doc *doc = NULL;
            if (text && TRY(openapi_doc_load_mem(text, strlen(text), &doc, &ei)) == 0) {
                struct openapi_catalog *cat = NULL;
                if (TRY(openapi_catalog_build(doc, NULL, &cat, &ei)) == 0)
                    openapi_catalog_unref(cat);
                openapi_doc_unref(doc);
            }
            free(text);
        }
        json_decref(w);
        openapi_overlay_free(ov);
    }
    json_decref(ovj);
    json_decref(root);
    return 0;
}

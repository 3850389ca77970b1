/*
 * Fuzz target for the OpenAPI importer: arbitrary bytes through the JSON/YAML loader, $ref
 * resolution, the model, the default catalog, and one request per tool with empty arguments.
 * Errors are expected; crashes, leaks and sanitizer reports are not, and neither is a refusal
 * that does not say why (a non-empty message), nor a tool without a name or an object
 * inputSchema (a violation aborts).
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
        fprintf(stderr, "fuzz_openapi: property violated: %s refused (%d) without saying why\n",
                what, rc);
        abort();
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    struct openapi_doc *doc = NULL;
    struct err_info ei;
    memset(&ei, 0, sizeof(ei));
    if (refused(openapi_doc_load_mem((const char *)data, size, &doc, &ei), &ei, "the document") !=
        0)
        return 0;
    struct openapi_catalog *cat = NULL;
    memset(&ei, 0, sizeof(ei));
    if (refused(openapi_catalog_build(doc, NULL, &cat, &ei), &ei, "the catalog") == 0) {
        json_t *args = json_object();
        for (size_t i = 0; i < cat->ntools; i++) {
            struct openapi_request req;
            json_t *j = openapi_tool_to_json(&cat->tools[i]);
            const char *name = json_string_value(json_object_get(j, "name"));
            if (j != NULL && (name == NULL || name[0] == '\0' ||
                              !json_is_object(json_object_get(j, "inputSchema")))) {
                fprintf(stderr, "fuzz_openapi: property violated: a tool without a name or an "
                                "object inputSchema\n");
                abort();
            }
            json_decref(j);
            memset(&ei, 0, sizeof(ei));
            if (refused(openapi_request_build(cat, &cat->tools[i], args, &req, &ei), &ei,
                        "a request") == 0)
                openapi_request_release(&req);
        }
        json_decref(args);
        openapi_catalog_unref(cat);
    }
    openapi_doc_unref(doc);
    return 0;
}

/*
 * Fuzz target for the OpenAPI importer: arbitrary bytes through the JSON/YAML loader, $ref
 * resolution, the model, the default catalog, and one request per tool with empty arguments.
 * Errors are expected; crashes, leaks and sanitizer reports are not.
 */
#include <stdint.h>
#include <stdlib.h>

#include "openapi/openapi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    struct openapi_doc *doc = NULL;
    struct err_info ei;
    if (openapi_doc_load_mem((const char *)data, size, &doc, &ei) != 0)
        return 0;
    struct openapi_catalog *cat = NULL;
    if (openapi_catalog_build(doc, NULL, &cat, &ei) == 0) {
        json_t *args = json_object();
        for (size_t i = 0; i < cat->ntools; i++) {
            struct openapi_request req;
            json_t *j = openapi_tool_to_json(&cat->tools[i]);
            json_decref(j);
            if (openapi_request_build(cat, &cat->tools[i], args, &req, &ei) == 0)
                openapi_request_release(&req);
        }
        json_decref(args);
        openapi_catalog_unref(cat);
    }
    openapi_doc_unref(doc);
    return 0;
}

/*
 * Fuzz target for response projection: the field paths of an editorial override (config input)
 * and the JSON an API answers (untrusted). The input's lines up to the first empty line are
 * field paths, set as `response.fields` of the one operation of a small fixed document; the
 * rest is a response body, projected with those fields and with the default projection. Errors
 * are expected; crashes, leaks, hangs and sanitizer reports are not, nor a refusal that does
 * not say why (a non-empty message: a violation aborts).
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
                "fuzz_projection", what, rc);
        abort();
    }
    return rc;
}
/* Run a call that fills ei, from a clean ei, and check its refusal. */
#define TRY(call) (memset(&ei, 0, sizeof(ei)), refused((call), &ei, #call))

static const char doc_text[] =
    "{\"openapi\":\"3.0.3\",\"info\":{\"title\":\"F\",\"version\":\"1\"},"
    "\"servers\":[{\"url\":\"https://api.example.com\"}],\"paths\":{\"/i\":{\"get\":{"
    "\"operationId\":\"listI\",\"responses\":{\"200\":{\"description\":\"ok\"}}}}}}";

static void project_with(struct openapi_doc *doc, json_t *editorial, json_t *body)
{
    struct openapi_editorial *ed = NULL;
    struct openapi_catalog *cat = NULL;
    struct err_info ei;
    if ((editorial == NULL || TRY(openapi_editorial_from_json(editorial, &ed, &ei)) == 0) &&
        TRY(openapi_catalog_build(doc, ed, &cat, &ei)) == 0 && cat->ntools == 1) {
        struct openapi_projection_stats st;
        json_t *p = openapi_response_project(cat, &cat->tools[0], body, &st);
        char *s = p ? json_dumps(p, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        char *note = openapi_projection_note(&st);
        free(note);
        free(s);
        json_decref(p);
    }
    openapi_catalog_unref(cat);
    openapi_editorial_free(ed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (64u << 10))
        return 0;
    const char *s = (const char *)data, *end = s + size, *p = s;
    json_t *fields = json_array();
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (n == 0) {
            p++;
            break;
        }
        json_array_append_new(fields, json_stringn_nocheck(p, n));
        p += n + (nl != NULL);
    }
    json_t *body = json_loadb(p, (size_t)(end - p), JSON_DECODE_ANY, NULL);
    struct openapi_doc *doc = NULL;
    struct err_info ei;
    if (body && TRY(openapi_doc_load_mem(doc_text, sizeof(doc_text) - 1, &doc, &ei)) == 0) {
        json_t *ed = json_pack("{s:{s:{s:{s:O}}}, s:{s:i}}", "overrides", "listI", "response",
                               "fields", fields, "heuristics", "response_array_max", 3);
        project_with(doc, ed, body);
        project_with(doc, NULL, body);
        json_decref(ed);
    }
    /* the parser alone, on whatever the lines were */
    struct openapi_fields *f = NULL;
    if (TRY(openapi_fields_parse(fields, "/f", &f, &ei)) == 0)
        openapi_fields_free(f);
    openapi_doc_unref(doc);
    json_decref(body);
    json_decref(fields);
    return 0;
}

/*
 * Fuzz target for the search discovery mode's query analysis (src/openapi/search.c): the input is
 * a search_operations query (untrusted: whatever a model or a client sends), run against the
 * search index of a small fixed document with camelCase names, compounds, tags and a few
 * vocabulary words, with the default limit and with the largest. Properties: the call always
 * answers (a JSON array of at most `limit` matches, the first two with an inputSchema and the
 * others without, each a tool of the catalog, or the "no operation matches" text); crashes,
 * leaks, hangs and sanitizer reports are not expected.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "openapi/openapi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char doc_text[] =
    "{\"openapi\":\"3.0.3\",\"info\":{\"title\":\"Fuzz\",\"version\":\"1\"},"
    "\"paths\":{"
    "\"/chat.postMessage\":{\"post\":{\"operationId\":\"chatPostMessage\",\"tags\":[\"chat\"],"
    "\"summary\":\"Sends a message to a channel.\",\"requestBody\":{\"content\":{"
    "\"application/json\":{\"schema\":{\"type\":\"object\",\"properties\":{\"text\":{"
    "\"type\":\"string\",\"description\":\"The message text\"}}}}}},"
    "\"responses\":{\"200\":{\"description\":\"ok\"}}}},"
    "\"/issues/{id}/worklog\":{\"post\":{\"operationId\":\"addWorklog\",\"tags\":[\"issues\"],"
    "\"summary\":\"Adds a worklog to an issue.\",\"parameters\":[{\"name\":\"id\",\"in\":"
    "\"path\",\"required\":true,\"schema\":{\"type\":\"string\"}}],"
    "\"responses\":{\"200\":{\"description\":\"ok\"}}},"
    "\"delete\":{\"operationId\":\"deleteWorklog\",\"summary\":\"Removes a worklog.\","
    "\"parameters\":[{\"name\":\"id\",\"in\":\"path\",\"required\":true,\"schema\":{\"type\":"
    "\"string\"}}],\"responses\":{\"204\":{\"description\":\"gone\"}}}},"
    "\"/users/me\":{\"get\":{\"operationId\":\"getCurrentUser\",\"summary\":\"Returns the "
    "authenticated user.\",\"responses\":{\"200\":{\"description\":\"ok\"}}}},"
    "\"/promotions\":{\"get\":{\"operationId\":\"listPromotions\",\"summary\":\"Lists "
    "promotion codes.\",\"responses\":{\"200\":{\"description\":\"ok\"}}}}}}";

static void violated(const char *what, const char *text)
{
    fprintf(stderr, "fuzz_search: property violated: %s: %.200s\n", what, text ? text : "(null)");
    abort();
}

static void search(const struct openapi_catalog *cat, const struct openapi_discovery *d,
                   const char *query, size_t qlen, int limit)
{
    json_t *args = json_object();
    json_t *q = json_stringn(query, qlen);
    if (args == NULL || q == NULL) { /* not UTF-8: JSON-RPC never delivers such a string */
        json_decref(q);
        json_decref(args);
        return;
    }
    json_object_set_new(args, "query", q);
    if (limit)
        json_object_set_new(args, "limit", json_integer(limit));
    json_t *res = NULL, *targs = NULL;
    const struct openapi_tool *tool = NULL;
    int rc = openapi_discovery_call(d, "search_operations", args, NULL, &res, &tool, &targs);
    if (rc != 0 || res == NULL)
        violated("search_operations did not answer", query);
    const char *text = json_string_value(
        json_object_get(json_array_get(json_object_get(res, "content"), 0), "text"));
    if (text == NULL)
        violated("an answer without text", query);
    if (text[0] == '[') {
        json_t *a = json_loads(text, 0, NULL);
        size_t max = limit ? (size_t)limit : 5, i;
        json_t *t;
        if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > max)
            violated("not a JSON array of 1 to limit matches", text);
        json_array_foreach(a, i, t)
        {
            const char *name = json_string_value(json_object_get(t, "name"));
            if (name == NULL || openapi_catalog_find(cat, name) == NULL)
                violated("a match that is no tool of the catalog", text);
            if ((json_object_get(t, "inputSchema") != NULL) != (i < 2))
                violated("the first two in full, the others by name", text);
        }
        json_decref(a);
    } else if (strncmp(text, "no operation matches \"", 22) != 0) {
        violated("neither matches nor the no-match text", text);
    }
    json_decref(res);
    json_decref(targs);
    json_decref(args);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (16u << 10))
        return 0;
    struct openapi_doc *doc = NULL;
    struct openapi_catalog *cat = NULL;
    struct openapi_discovery *d = NULL;
    struct err_info ei = {0};
    if (openapi_doc_load_mem(doc_text, sizeof(doc_text) - 1, &doc, &ei) != 0 ||
        openapi_catalog_build(doc, NULL, &cat, &ei) != 0 ||
        openapi_discovery_new(cat, OPENAPI_DISCOVERY_SEARCH, &d) != 0)
        violated("the fixed document does not build", ei.msg);
    search(cat, d, (const char *)data, size, 0);
    search(cat, d, (const char *)data, size, 10);
    openapi_discovery_free(d);
    openapi_catalog_unref(cat);
    openapi_doc_unref(doc);
    return 0;
}

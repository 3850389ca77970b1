/*
 * Fuzz the small parsers of client input in src/mcp: list cursors (catalog_page), resource URIs
 * against URI templates (catalog_template_match, with its backtracking bound), and Last-Event-ID
 * values (session_find_stream). The first byte picks the parser; the rest is the input.
 */
#include "config/config.h"
#include "core/rand.h"
#include "mcp/catalog.h"
#include "mcp/session.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct config *cfg;
static struct catalog *cat;
static struct session *sess;
static struct stream *streams[2];

static void setup(void)
{
    static const char yaml[] = "servers:\n"
                               "  - {name: a, transport: stdio, command: 'true'}\n"
                               "  - {name: b, transport: stdio, command: 'true'}\n";
    core_init();
    if (config_load_string(yaml, sizeof(yaml) - 1, "<fuzz>", &cfg, NULL) != 0)
        abort();
    struct catalog_source src[2] = {{.server = "a", .srv = &cfg->servers[0], .ready = 1},
                                    {.server = "b", .srv = &cfg->servers[1], .ready = 1}};
    src[0].lists[CAT_TOOLS] =
        json_loads("[{\"name\":\"x\"},{\"name\":\"y\"},{\"name\":\"z\"}]", 0, NULL);
    src[1].lists[CAT_TOOLS] = json_loads("[{\"name\":\"x\"}]", 0, NULL);
    src[0].lists[CAT_TEMPLATES] =
        json_loads("[{\"uriTemplate\":\"r://{id}/{part}.json\"}]", 0, NULL);
    if (catalog_build(cfg, src, 2, 1, 0, &cat, NULL) != 0)
        abort();
    for (int i = 0; i < 2; i++)
        json_decref(src[i].lists[CAT_TOOLS]), json_decref(src[i].lists[CAT_TEMPLATES]);
    session_table_init(16, 0, 8);
    int err;
    sess = session_new(-1, "2025-11-25", NULL, &err);
    streams[0] = stream_new(sess);
    streams[1] = session_standalone_stream(sess);
    json_t *m = json_pack("{s:s}", "jsonrpc", "2.0");
    for (int i = 0; i < 3; i++)
        stream_push(streams[0], m, false);
    json_decref(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (cfg == NULL)
        setup();
    if (size < 1 || size > 4096)
        return 0;
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0'; /* the parsers take C strings: the input ends at its first NUL */
    switch (data[0] % 3) {
    case 0: { /* a cursor, in both views and for every kind */
        for (int view = -1; view < 2; view++)
            for (int kind = 0; kind < CAT_NKINDS; kind++) {
                json_t *res = NULL;
                if (catalog_page(cat, view, (enum catalog_kind)kind, text, 2, &res) == 0)
                    json_decref(res);
            }
        break;
    }
    case 1: { /* "template\nuri" */
        char *nl = strchr(text, '\n');
        if (nl != NULL) {
            *nl = '\0';
            catalog_template_match(text, nl + 1);
        }
        int server;
        catalog_route_uri(cat, -1, text, &server);
        break;
    }
    case 2: { /* a Last-Event-ID */
        uint64_t after;
        struct stream *st = session_find_stream(sess, text, &after);
        if (st != NULL)
            stream_unref(st);
        break;
    }
    }
    free(text);
    return 0;
}

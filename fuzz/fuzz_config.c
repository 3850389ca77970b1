/*
 * Fuzz target for the configuration loader: any bytes go through config_load_string. A success
 * must yield a snapshot whose invariants hold; a failure must leave a located, NUL-terminated
 * message. Either way nothing may leak (the snapshot is released at once).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config *c = NULL;
    struct err_info ei;
    memset(&ei, 0, sizeof(ei));
    int err = config_load_string((const char *)data, size, "fuzz.yaml", &c, &ei);
    if (err != 0) {
        if (c != NULL || memchr(ei.msg, '\0', sizeof(ei.msg)) == NULL ||
            strncmp(ei.msg, "fuzz.yaml:", 10) != 0)
            abort();
        return 0;
    }
    if (c == NULL || c->nlisteners == 0 || c->log_level == NULL || c->prefix_separator == NULL)
        abort();
    for (size_t i = 0; i < c->nlisteners; i++)
        if ((c->listeners[i].tls_cert == NULL) != (c->listeners[i].tls_key == NULL))
            abort();
    for (size_t i = 0; i < c->nservers; i++) {
        const struct config_server *s = &c->servers[i];
        if (config_find_server(c, s->name) != s) /* names are unique */
            abort();
        if (s->transport == TRANSPORT_STDIO && (s->command == NULL || s->command[0] == '\0' ||
                                                s->args == NULL || s->args[s->nargs] != NULL))
            abort();
        if (s->transport == TRANSPORT_HTTP && (s->url == NULL || s->command != NULL))
            abort();
        (void)config_server_prefix(c, s);
    }
    config_unref(config_ref(c));
    config_unref(c);
    return 0;
}

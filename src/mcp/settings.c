/*
 * Per-user settings of a server (issue 5, "switchable per user at dispatch"): which tools of a
 * server a user has selected (dynamic filtering: tools/list shows them only, tools/call refuses
 * the others) and the discovery mode they asked for. The rules for changing them live here once,
 * for both ways of changing them: `gatehouse user settings` and the gateway's own
 * gatehouse__settings tool. The rows are in the store (store_settings_*).
 */
#include <string.h>

#include "mcp/gateway.h"

int mcp_settings_update(const struct config *cfg, struct store *st, int64_t user_id,
                        const char *server, const char *discovery, json_t *select,
                        struct store_settings *out, struct err_info *ei)
{
    const struct config_server *srv = config_find_server(cfg, server);
    if (srv == NULL)
        return err_info_set(ei, ERR_NOTFOUND, 0, 0, "no server named \"%.64s\" is configured",
                            server);
    if (discovery != NULL && srv->transport != TRANSPORT_OPENAPI)
        return err_info_set(ei, ERR_INVAL, 0, 0,
                            "discovery modes apply to openapi servers; \"%s\" is a %s server",
                            server, config_transport_str(srv->transport));
    struct store_settings v = {0};
    int err = store_settings_get(st, user_id, server, &v);
    if (err && err != ERR_NOTFOUND)
        return err_info_set(ei, err, 0, 0, "cannot read the settings: %s", err_str(err));
    if (discovery != NULL)
        snprintf(v.discovery, sizeof(v.discovery), "%s", discovery);
    if (select != NULL) {
        json_decref(v.tools);
        v.tools = json_is_null(select) ? NULL : json_incref(select);
    }
    if ((err = store_settings_put(st, user_id, server, &v, ei)) != 0) {
        store_settings_release(&v);
        return err;
    }
    *out = v;
    return 0;
}

json_t *mcp_settings_describe(const char *server, const struct store_settings *v)
{
    return json_pack("{s:s, s:s, s:O?}", "server", server, "discovery",
                     v->discovery[0] ? v->discovery : "(the server's)", "selected",
                     v->tools ? v->tools : NULL);
}

/*
 * What fuzz_dcr and fuzz_cimd check of client metadata that was accepted: every redirect URI
 * passes the redirect-URI rules, the authentication method is one of three (none for a
 * document), the grant types are the two that can be registered, and the normalised metadata,
 * checked again, is accepted unchanged (it round-trips).
 */
#ifndef GH_FUZZ_CLIENT_PROPS_H
#define GH_FUZZ_CLIENT_PROPS_H

#include "oauth/oauth.h"

#include <stdlib.h>
#include <string.h>

/* The properties of accepted client metadata (cimd: from a Client ID Metadata Document). */
static inline void check_accepted(const json_t *m, bool cimd)
{
    struct err_info ei = {0};
    json_t *uris = json_object_get(m, "redirect_uris"), *v;
    size_t i;
    if (!json_is_array(uris) || json_array_size(uris) == 0)
        abort();
    json_array_foreach(uris, i, v)
    {
        if (!json_is_string(v) || oauth_redirect_uri_check(json_string_value(v), &ei) != 0)
            abort();
    }
    const char *method = json_string_value(json_object_get(m, "token_endpoint_auth_method"));
    if (method == NULL ||
        (strcmp(method, "none") != 0 && (cimd || (strcmp(method, "client_secret_basic") != 0 &&
                                                  strcmp(method, "client_secret_post") != 0))))
        abort();
    json_t *gt = json_object_get(m, "grant_types");
    if (!json_is_array(gt) || json_array_size(gt) == 0)
        abort();
    json_array_foreach(gt, i, v)
    {
        const char *g = json_string_value(v);
        if (g == NULL || (strcmp(g, "authorization_code") != 0 && strcmp(g, "refresh_token") != 0))
            abort();
    }
    json_t *again = NULL;
    if (oauth_client_metadata_check(m, cimd, &again, &ei) != 0 || !json_equal(again, m))
        abort();
    json_decref(again);
}

#endif

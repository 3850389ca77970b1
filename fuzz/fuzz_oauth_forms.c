/*
 * Fuzz the OAuth parsers of untrusted input: form bodies and query strings, HTTP Basic client
 * credentials, and URLs (redirect URIs, resources, CIMD client_ids) with the redirect-URI
 * rules. The first byte picks the parser; the rest is its input.
 */
#include "oauth/oauth.h"
#include "core/secret.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    struct err_info ei = {0};
    switch (data[0] % 3) {
    case 0: {
        struct oauth_form f;
        if (oauth_form_parse(s, n, &f, &ei) == 0) {
            (void)oauth_form_get(&f, "client_id");
            oauth_form_release(&f);
        }
        break;
    }
    case 1: {
        char *id = NULL, *secret = NULL;
        if (oauth_basic_decode(s, n, &id, &secret, &ei) == 0) {
            free(id);
            secret_free(secret);
        }
        break;
    }
    default: {
        char *z = malloc(n + 1);
        if (z == NULL)
            return 0;
        memcpy(z, s, n);
        z[n] = '\0';
        struct oauth_url u;
        if (oauth_url_parse(z, &u, &ei) == 0) {
            (void)oauth_redirect_uri_check(z, &ei);
            (void)oauth_redirect_uri_match(z, z);
            (void)oauth_redirect_uri_match("http://127.0.0.1:1/cb", z);
        }
        free(z);
        break;
    }
    }
    return 0;
}

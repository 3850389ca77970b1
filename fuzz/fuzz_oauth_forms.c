/*
 * Fuzz the OAuth parsers of untrusted input: form bodies and query strings, HTTP Basic client
 * credentials, and URLs (redirect URIs, resources, CIMD client_ids) with the redirect-URI
 * rules. The first byte picks the parser; the rest is its input.
 *
 * Beyond not crashing (a violation aborts): every refusal says why (a non-empty message); a
 * Basic header is accepted only when its base64 is the canonical encoding of what it decoded to
 * (so that one credential has one spelling), and what it yields is the client_id and secret the
 * decoded text holds.
 */
#include "oauth/oauth.h"
#include "core/secret.h"

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void violated(const char *what, const char *v, size_t n)
{
    fprintf(stderr, "fuzz_oauth_forms: property violated: %s (\"%.*s\")\n", what,
            (int)(n > 300 ? 300 : n), v);
    abort();
}

static void refused(int rc, const struct err_info *ei, const char *v, size_t n)
{
    if (rc != 0 && rc != ERR_NOTFOUND && rc != ERR_NOMEM && ei->msg[0] == '\0')
        violated("a refusal without a message", v, n);
}

/* An accepted Basic header: its base64 (after "Basic " and spaces) re-encodes from its bytes. */
static void check_basic(const char *s, size_t n)
{
    const char *b64 = s + 6;
    size_t blen = n - 6;
    while (blen > 0 && *b64 == ' ')
        b64++, blen--;
    unsigned char raw[4096];
    size_t rlen = 0;
    if (sodium_base642bin(raw, sizeof(raw), b64, blen, NULL, &rlen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
        violated("accepted Basic credentials that are not base64", s, n);
    char enc[8192];
    sodium_bin2base64(enc, sizeof(enc), raw, rlen, sodium_base64_VARIANT_ORIGINAL);
    if (strlen(enc) != blen || memcmp(enc, b64, blen) != 0)
        violated("accepted Basic credentials in a non-canonical base64 spelling", s, n);
    if (memchr(raw, ':', rlen) == NULL)
        violated("accepted Basic credentials without a ':'", s, n);
}

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
        int rc = oauth_form_parse(s, n, &f, &ei);
        if (rc == 0) {
            (void)oauth_form_get(&f, "client_id");
            oauth_form_release(&f);
        }
        refused(rc, &ei, s, n);
        break;
    }
    case 1: {
        char *id = NULL, *secret = NULL;
        int rc = oauth_basic_decode(s, n, &id, &secret, &ei);
        if (rc == 0) {
            if (id == NULL || secret == NULL)
                violated("accepted Basic credentials without a client_id and secret", s, n);
            check_basic(s, n);
            free(id);
            secret_free(secret);
        }
        refused(rc, &ei, s, n);
        break;
    }
    default: {
        char *z = malloc(n + 1);
        if (z == NULL)
            return 0;
        memcpy(z, s, n);
        z[n] = '\0';
        struct oauth_url u;
        int rc = oauth_url_parse(z, &u, &ei);
        refused(rc, &ei, z, n);
        if (rc == 0) {
            memset(&ei, 0, sizeof(ei));
            refused(oauth_redirect_uri_check(z, &ei), &ei, z, n);
            (void)oauth_redirect_uri_match(z, z);
            (void)oauth_redirect_uri_match("http://127.0.0.1:1/cb", z);
        }
        free(z);
        break;
    }
    }
    return 0;
}

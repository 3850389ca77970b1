/*
 * Fuzz the OAuth parsers of untrusted input: form bodies and query strings, HTTP Basic client
 * credentials, and URLs (redirect URIs, resources, CIMD client_ids) with the redirect-URI
 * rules. The first byte picks the parser; the rest is its input.
 *
 * Properties, abort() on violation (crashes, leaks and sanitizer reports are failures too):
 * - what is accepted round-trips: a parsed form, re-encoded, parses to the same parameters in
 *   the same order (with distinct names, at most OAUTH_FORM_MAX_PARAMS); decoded Basic
 *   credentials, re-encoded, decode to the same id and secret; a parsed URL, rebuilt from its
 *   parts, parses to the same parts, and a valid redirect URI matches itself;
 * - accepted Basic credentials are spelled in canonical base64 (one credential, one spelling);
 * - what is refused names why: a non-empty message (a Basic header that is not Basic at all,
 *   ERR_NOTFOUND, is not a refusal), and a refused URL matches no registered redirect URI.
 */
#include "core/secret.h"
#include "oauth/oauth.h"

#include <openssl/evp.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_oauth_forms: %s\n", what);
    abort();
}

static void refusal_named(const struct err_info *ei)
{
    if (ei->msg[0] == '\0')
        fail("a refusal without a message");
}

/* Strict form encoding of s into out (which has room for 3 * strlen(s) + 1). */
static size_t form_enc(char *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
    return n;
}

static void form_check(const char *s, size_t n)
{
    struct oauth_form f;
    struct err_info ei = {0};
    if (oauth_form_parse(s, n, &f, &ei) != 0) {
        refusal_named(&ei);
        return;
    }
    if (f.n > OAUTH_FORM_MAX_PARAMS)
        fail("a form with more parameters than the limit was accepted");
    size_t cap = 1;
    for (size_t i = 0; i < f.n; i++) {
        cap += 3 * (strlen(f.name[i]) + strlen(f.value[i])) + 2;
        for (size_t j = 0; j < i; j++)
            if (strcmp(f.name[i], f.name[j]) == 0)
                fail("a form with a repeated parameter was accepted");
    }
    char *enc = malloc(cap);
    if (enc == NULL)
        goto out;
    size_t len = 0;
    for (size_t i = 0; i < f.n; i++) {
        if (i)
            enc[len++] = '&';
        len += form_enc(enc + len, f.name[i]);
        enc[len++] = '=';
        len += form_enc(enc + len, f.value[i]);
    }
    enc[len] = '\0';
    struct oauth_form g;
    struct err_info e2 = {0};
    if (len <= OAUTH_FORM_MAX_SIZE) {
        if (oauth_form_parse(enc, len, &g, &e2) != 0) {
            fprintf(stderr, "re-encoded form \"%.200s\": %s\n", enc, e2.msg);
            fail("an accepted form does not parse once re-encoded");
        }
        if (g.n != f.n)
            fail("a re-encoded form has another number of parameters");
        for (size_t i = 0; i < f.n; i++)
            if (strcmp(f.name[i], g.name[i]) != 0 || strcmp(f.value[i], g.value[i]) != 0)
                fail("a re-encoded form has other parameters");
        (void)oauth_form_get(&g, "client_id");
        oauth_form_release(&g);
    }
    free(enc);
out:
    oauth_form_release(&f);
}

/* An accepted Basic header: its base64 (after "Basic " and spaces) re-encodes from its bytes. */
static void basic_canonical(const char *s, size_t n)
{
    const char *b64 = s + 6;
    size_t blen = n - 6;
    while (blen > 0 && *b64 == ' ')
        b64++, blen--;
    unsigned char raw[4096];
    size_t rlen = 0;
    if (sodium_base642bin(raw, sizeof(raw), b64, blen, NULL, &rlen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
        fail("accepted Basic credentials that are not base64");
    char enc[8192];
    sodium_bin2base64(enc, sizeof(enc), raw, rlen, sodium_base64_VARIANT_ORIGINAL);
    if (strlen(enc) != blen || memcmp(enc, b64, blen) != 0)
        fail("accepted Basic credentials in a non-canonical base64 spelling");
}

static void basic_check(const char *s, size_t n)
{
    char *id = NULL, *secret = NULL;
    struct err_info ei = {0};
    int rc = oauth_basic_decode(s, n, &id, &secret, &ei);
    if (rc == ERR_NOTFOUND)
        return;
    if (rc != 0) {
        refusal_named(&ei);
        return;
    }
    if (id == NULL || secret == NULL)
        fail("accepted Basic credentials without an id or a secret");
    basic_canonical(s, n);
    size_t il = strlen(id), sl = strlen(secret);
    char *plain = malloc(3 * (il + sl) + 2);
    char *hdr = malloc(6 + 4 * ((3 * (il + sl) + 1) / 3 + 1) + 1);
    if (plain && hdr) {
        size_t pl = form_enc(plain, id);
        plain[pl++] = ':';
        pl += form_enc(plain + pl, secret);
        memcpy(hdr, "Basic ", 6);
        int bl = EVP_EncodeBlock((unsigned char *)hdr + 6, (const unsigned char *)plain, (int)pl);
        char *id2 = NULL, *secret2 = NULL;
        struct err_info e2 = {0};
        if (oauth_basic_decode(hdr, 6 + (size_t)bl, &id2, &secret2, &e2) != 0) {
            fprintf(stderr, "re-encoded Basic credentials: %s\n", e2.msg);
            fail("accepted Basic credentials do not decode once re-encoded");
        }
        if (strcmp(id, id2) != 0 || strcmp(secret, secret2) != 0)
            fail("re-encoded Basic credentials decode to another id or secret");
        free(id2);
        secret_free(secret2);
    }
    free(plain);
    free(hdr);
    free(id);
    secret_free(secret);
}

static void url_check(const char *s, size_t n)
{
    char *z = malloc(n + 1);
    if (z == NULL)
        return;
    memcpy(z, s, n);
    z[n] = '\0';
    struct oauth_url u;
    struct err_info ei = {0};
    if (oauth_url_parse(z, &u, &ei) != 0) {
        refusal_named(&ei);
        if (oauth_redirect_uri_match("http://127.0.0.1:1/cb", z))
            fail("a URL that does not parse matches a registered redirect URI");
        struct err_info e2 = {0};
        if (oauth_redirect_uri_check(z, &e2) == 0)
            fail("a URL that does not parse is a valid redirect URI");
        free(z);
        return;
    }
    if (u.host[0] == '\0' || u.port > 65535 || u.path_off > n)
        fail("a parsed URL has an empty host, a port out of range or a path past its end");
    char again[OAUTH_URL_MAX + 400], port[8] = "";
    if (u.port)
        snprintf(port, sizeof(port), ":%u", u.port);
    snprintf(again, sizeof(again), "%s://%s%s%s", u.https ? "https" : "http", u.host, port,
             z + u.path_off);
    struct oauth_url v;
    struct err_info e3 = {0};
    if (strlen(again) <= OAUTH_URL_MAX) {
        if (oauth_url_parse(again, &v, &e3) != 0) {
            fprintf(stderr, "rebuilt URL \"%.300s\": %s\n", again, e3.msg);
            fail("a parsed URL does not parse once rebuilt from its parts");
        }
        if (v.https != u.https || v.loopback != u.loopback || v.port != u.port ||
            strcmp(v.host, u.host) != 0 || strcmp(again + v.path_off, z + u.path_off) != 0)
            fail("a rebuilt URL parses to other parts");
    }
    struct err_info e4 = {0};
    if (oauth_redirect_uri_check(z, &e4) == 0) {
        if (!oauth_redirect_uri_match(z, z))
            fail("a valid redirect URI does not match itself");
    } else {
        refusal_named(&e4);
    }
    (void)oauth_redirect_uri_match("http://127.0.0.1:1/cb", z);
    free(z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    switch (data[0] % 3) {
    case 0:
        form_check(s, n);
        break;
    case 1:
        basic_check(s, n);
        break;
    default:
        url_check(s, n);
        break;
    }
    return 0;
}

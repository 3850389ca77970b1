/*
 * The parsers of untrusted OAuth input: form bodies and query strings, HTTP Basic client
 * credentials, and the URLs clients register and present (redirect URIs, resources, CIMD
 * client_ids). Pure functions, no I/O: the fuzzer (fuzz/fuzz_oauth_forms.c) drives them all.
 */
#include "oauth/oauth.h"
#include "core/secret.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode one form-encoded component into a new string. */
static int form_decode(const char *s, size_t len, char **out, const char *what, struct err_info *ei)
{
    char *d = malloc(len + 1);
    if (d == NULL)
        return ERR_NOMEM;
    size_t n = 0;
    const char *why = NULL;
    char ctl[32];
    for (size_t i = 0; i < len && why == NULL; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '+') {
            d[n++] = ' ';
        } else if (c == '%') {
            int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(s[i + 2]) : -1;
            if (hi >= 0 && lo >= 0)
                c = (unsigned char)(hi << 4 | lo);
            if (hi < 0 || lo < 0)
                why = "'%' must be followed by two hexadecimal digits";
            else if (c == 0)
                why = "%00 is not allowed";
            else
                d[n++] = (char)c;
            i += 2;
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(ctl, sizeof(ctl), "control character 0x%02x", c);
            why = ctl;
        } else {
            d[n++] = (char)c;
        }
    }
    d[n] = '\0'; /* also on failure: secret_free wipes up to the NUL */
    if (why != NULL) {
        secret_free(d);
        return err_info_set(ei, ERR_PARSE, 0, 0, "%s: %s", what, why);
    }
    *out = d;
    return 0;
}

void oauth_form_release(struct oauth_form *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->name[i]);
        secret_free(f->value[i]);
    }
    f->n = 0;
}

int oauth_form_parse(const char *s, size_t len, struct oauth_form *f, struct err_info *ei)
{
    memset(f, 0, sizeof(*f));
    if (len > OAUTH_FORM_MAX_SIZE)
        return err_info_set(ei, ERR_LIMIT, 0, 0, "the form has %zu bytes, more than %u", len,
                            OAUTH_FORM_MAX_SIZE);
    int err = 0;
    size_t i = 0;
    while (i < len) {
        const char *amp = memchr(s + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - s) : len;
        if (end == i) { /* an empty pair ("a=1&&b=2"): skipped, as browsers do */
            i = end + 1;
            continue;
        }
        const char *eq = memchr(s + i, '=', end - i);
        size_t nend = eq ? (size_t)(eq - s) : end;
        if (f->n == OAUTH_FORM_MAX_PARAMS) {
            err =
                err_info_set(ei, ERR_LIMIT, 0, 0, "more than %d parameters", OAUTH_FORM_MAX_PARAMS);
            goto out;
        }
        char *name = NULL, *value = NULL;
        if ((err = form_decode(s + i, nend - i, &name, "parameter name", ei)) != 0)
            goto out;
        if (name[0] == '\0') {
            free(name);
            err = err_info_set(ei, ERR_PARSE, 0, 0, "a parameter has an empty name");
            goto out;
        }
        char what[80];
        snprintf(what, sizeof(what), "parameter %.40s", name);
        if ((err = form_decode(eq ? eq + 1 : s + end, eq ? end - nend - 1 : 0, &value, what, ei)) !=
            0) {
            free(name);
            goto out;
        }
        for (size_t k = 0; k < f->n; k++) {
            if (strcmp(f->name[k], name) == 0) {
                err = err_info_set(ei, ERR_PARSE, 0, 0,
                                   "parameter %.40s is repeated (RFC 6749 section 3.1)", name);
                free(name);
                secret_free(value);
                goto out;
            }
        }
        f->name[f->n] = name;
        f->value[f->n] = value;
        f->n++;
        i = end + 1;
    }
out:
    if (err)
        oauth_form_release(f);
    return err;
}

const char *oauth_form_get(const struct oauth_form *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->name[i], name) == 0)
            return f->value[i][0] ? f->value[i] : NULL;
    return NULL;
}

int oauth_basic_decode(const char *hdr, size_t len, char **id, char **secret, struct err_info *ei)
{
    if (len < 6 || strncasecmp(hdr, "Basic ", 6) != 0)
        return ERR_NOTFOUND;
    const char *b64 = hdr + 6;
    size_t blen = len - 6;
    while (blen > 0 && *b64 == ' ')
        b64++, blen--;
    if (blen == 0 || blen > 4096)
        return err_info_set(ei, ERR_PARSE, 0, 0, "the Basic credentials are empty or too long");
    size_t cap = blen / 4 * 3 + 3;
    char *raw = malloc(cap + 1);
    if (raw == NULL)
        return ERR_NOMEM;
    size_t rlen = 0;
    int err = 0;
    char *i = NULL, *s = NULL;
    /* libsodium 1.0.18 reads every byte from 0x80 up as the digit 63: check the alphabet, so that
       one credential has one spelling. */
    bool alphabet = true;
    for (size_t k = 0; k < blen; k++) {
        unsigned char c = (unsigned char)b64[k];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/' || c == '='))
            alphabet = false;
    }
    if (!alphabet || sodium_base642bin((unsigned char *)raw, cap, b64, blen, NULL, &rlen, NULL,
                                       sodium_base64_VARIANT_ORIGINAL) != 0) {
        err = err_info_set(ei, ERR_PARSE, 0, 0, "the Basic credentials are not valid base64");
        goto out;
    }
    raw[rlen] = '\0';
    char *colon = memchr(raw, ':', rlen);
    if (colon == NULL) {
        err = err_info_set(ei, ERR_PARSE, 0, 0,
                           "the Basic credentials have no ':' between client_id and secret");
        goto out;
    }
    if ((err = form_decode(raw, (size_t)(colon - raw), &i, "Basic client_id", ei)) != 0)
        goto out;
    if ((err = form_decode(colon + 1, rlen - (size_t)(colon + 1 - raw), &s, "Basic secret", ei)) !=
        0)
        goto out;
    if (i[0] == '\0') {
        err = err_info_set(ei, ERR_PARSE, 0, 0, "the Basic credentials have an empty client_id");
        goto out;
    }
    *id = i;
    *secret = s;
    i = s = NULL;
out:
    free(i);
    secret_free(s);
    sodium_memzero(raw, cap + 1);
    free(raw);
    return err;
}

static bool host_is_loopback(const char *h)
{
    if (strcasecmp(h, "localhost") == 0 || strcmp(h, "[::1]") == 0)
        return true;
    if (strncmp(h, "127.", 4) != 0)
        return false;
    for (const char *p = h + 4; *p; p++)
        if (!(*p == '.' || (*p >= '0' && *p <= '9')))
            return false;
    return true;
}

/* A DNS name (LDH labels; '_' too, which some hosts carry) or a bracketed IPv6 literal without
   a zone id. Nothing else: the host is echoed into the consent page's Content-Security-Policy
   (where ';' and ',' separate directives and policies) and handed to curl. */
static bool host_chars_ok(const char *h, size_t n)
{
    bool v6 = h[0] == '[';
    if (v6 && n < 4) /* "[::]" at least */
        return false;
    for (size_t i = v6 ? 1 : 0; i < (v6 ? n - 1 : n); i++) {
        char c = h[i];
        bool ok = v6 ? (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                           c == ':' || c == '.'
                     : (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           c == '-' || c == '_' || c == '.';
        if (!ok)
            return false;
    }
    return true;
}

int oauth_url_parse(const char *s, struct oauth_url *u, struct err_info *ei)
{
    size_t len = strlen(s);
    if (len > OAUTH_URL_MAX)
        return err_info_set(ei, ERR_LIMIT, 0, 0, "the URL is longer than %d bytes", OAUTH_URL_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '<' || c == '>' || c == '\\' || c == '`')
            return err_info_set(ei, ERR_PARSE, 0, 0,
                                "the URL contains a space, a control or a non-ASCII character");
    }
    struct oauth_url r = {0};
    const char *p;
    if (strncmp(s, "https://", 8) == 0) {
        r.https = true;
        p = s + 8;
    } else if (strncmp(s, "http://", 7) == 0) {
        p = s + 7;
    } else {
        return err_info_set(ei, ERR_PARSE, 0, 0, "the URL must start with https:// or http://");
    }
    if (strchr(s, '#') != NULL)
        return err_info_set(ei, ERR_PARSE, 0, 0, "the URL must not have a fragment");
    size_t alen = strcspn(p, "/?");
    if (memchr(p, '@', alen) != NULL)
        return err_info_set(ei, ERR_PARSE, 0, 0, "the URL must not contain user information");
    size_t hlen;
    if (p[0] == '[') {
        const char *close = memchr(p, ']', alen);
        if (close == NULL)
            return err_info_set(ei, ERR_PARSE, 0, 0, "the URL's IPv6 host has no ']'");
        hlen = (size_t)(close - p) + 1;
    } else {
        const char *colon = memchr(p, ':', alen);
        hlen = colon ? (size_t)(colon - p) : alen;
    }
    if (hlen == 0 || hlen >= sizeof(r.host))
        return err_info_set(ei, ERR_PARSE, 0, 0, "the URL's host is empty or too long");
    memcpy(r.host, p, hlen);
    r.host[hlen] = '\0';
    if (!host_chars_ok(r.host, hlen))
        return err_info_set(ei, ERR_PARSE, 0, 0,
                            "the URL's host must be a DNS name (letters, digits, '-', '_', '.') or "
                            "an IP literal");
    if (hlen < alen) {
        if (p[hlen] != ':' || hlen + 1 == alen || alen - hlen - 1 > 5)
            return err_info_set(ei, ERR_PARSE, 0, 0, "the URL's port is not a number");
        unsigned port = 0;
        for (size_t i = hlen + 1; i < alen; i++) {
            if (p[i] < '0' || p[i] > '9')
                return err_info_set(ei, ERR_PARSE, 0, 0, "the URL's port is not a number");
            port = port * 10 + (unsigned)(p[i] - '0');
        }
        if (port == 0 || port > 65535)
            return err_info_set(ei, ERR_PARSE, 0, 0, "the URL's port is out of range");
        r.port = port;
    }
    r.loopback = host_is_loopback(r.host);
    r.path_off = (size_t)(p - s) + alen;
    *u = r;
    return 0;
}

int oauth_redirect_uri_check(const char *uri, struct err_info *ei)
{
    struct oauth_url u;
    struct err_info e = {0};
    if (oauth_url_parse(uri, &u, &e) != 0)
        return err_info_set(ei, ERR_INVAL, 0, 0, "redirect URI \"%.200s\": %s", uri, e.msg);
    if (!u.https && !u.loopback)
        return err_info_set(ei, ERR_INVAL, 0, 0,
                            "redirect URI \"%.200s\" must use https (http only on a loopback "
                            "host: 127.0.0.1, [::1] or localhost)",
                            uri);
    return 0;
}

bool oauth_redirect_uri_match(const char *registered, const char *presented)
{
    if (strcmp(registered, presented) == 0)
        return true;
    struct oauth_url a, b;
    if (oauth_url_parse(registered, &a, NULL) != 0 || oauth_url_parse(presented, &b, NULL) != 0)
        return false;
    /* Loopback IP literals only (not "localhost", which DNS could answer differently). */
    if (a.https || b.https || strcmp(a.host, b.host) != 0 || strcasecmp(a.host, "localhost") == 0 ||
        !a.loopback)
        return false;
    return strcmp(registered + a.path_off, presented + b.path_off) == 0;
}

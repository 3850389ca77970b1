/*
 * Fuzz target for the OpenAPI importer: arbitrary bytes through the JSON/YAML loader, $ref
 * resolution, the model, the default catalog, and requests built for every tool with arguments
 * taken from the input and from a table of hostile values.
 *
 * Input: the document, optionally followed by a NUL and argument values separated by NULs (a
 * value that parses as JSON is used as JSON, else as a string); value k fills argument k of each
 * tool, cycling. Every tool is also called with {} and with rounds of hostile values ("..", ".",
 * "%2e%2e", "a/b", "?x=1", "#frag", CR/LF, NUL, long, non-ASCII, arrays and objects of them).
 *
 * Properties, abort() on violation (crashes, leaks and sanitizer reports are failures too):
 * - a built URL starts with the base URL and its path has exactly the template's segments: the
 *   same number of "/", each template literal in place, each expansion non-empty and with no
 *   "/", "?" or "#", and no expanded segment a dot segment ("." or "..", or their %2E forms);
 * - a string argument alone in a simple-style segment round-trips: the segment percent-decodes to
 *   the value;
 * - no header value has CR, LF or NUL;
 * - a refusal names why: a non-empty message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "openapi/openapi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUT_VALUES 64
#define ROUNDS 6

static void fail(const char *what, const struct openapi_tool *t, const char *url)
{
    fprintf(stderr, "fuzz_openapi: %s (tool %s, path %s, url %.300s)\n", what, t->name, t->op->path,
            url ? url : "-");
    abort();
}

static json_t *hostile(size_t k)
{
    static const char *const strs[] = {
        "..",   ".", "%2e%2e", "../x",         "a/b", "?x=1",  "#frag",         ";x",
        "\r\n", "",  "...",    "\xc3\xa9\xe4", "%2E", "a=b&c", "x\r\nX-Evil: 1"};
    size_t n = sizeof(strs) / sizeof(strs[0]);
    switch (k % (n + 6)) {
    case 0:
        return json_stringn("a\0b", 3);
    case 1: {
        char *s = malloc(5000);
        for (size_t i = 0; s && i < 4999; i++)
            s[i] = "./"[i % 2];
        if (s)
            s[4999] = '\0';
        json_t *j = s ? json_string(s) : NULL;
        free(s);
        return j;
    }
    case 2:
        return json_pack("[ss]", "..", "a/b");
    case 3:
        return json_pack("{s:s,s:s}", "..", "?", "a/b", "#");
    case 4:
        return json_pack("[s]", "..");
    case 5:
        return json_pack("[]");
    default:
        return json_string(strs[k % (n + 6) - 6]);
    }
}

/* One value from the input's argument section; NULL if there is none. */
static json_t *input_value(const uint8_t *a, size_t alen, size_t k)
{
    size_t starts[MAX_INPUT_VALUES], lens[MAX_INPUT_VALUES], n = 0, from = 0;
    for (size_t i = 0; i <= alen && n < MAX_INPUT_VALUES; i++)
        if (i == alen || a[i] == '\0') {
            starts[n] = from;
            lens[n++] = i - from;
            from = i + 1;
        }
    if (alen == 0 || n == 0)
        return NULL;
    k %= n;
    const char *s = (const char *)a + starts[k];
    json_t *j = json_loadb(s, lens[k], JSON_DECODE_ANY, NULL);
    return j ? j : json_stringn(s, lens[k]);
}

static bool dot_segment(const char *s, size_t n)
{
    size_t dots = 0;
    for (size_t i = 0; i < n; dots++) {
        if (s[i] == '.')
            i++;
        else if (n - i >= 3 && s[i] == '%' && s[i + 1] == '2' && (s[i + 2] | 0x20) == 'e')
            i += 3;
        else
            return false;
    }
    return dots == 1 || dots == 2;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Does the built segment b[0..n) percent-decode to exactly v? */
static bool decodes_to(const char *b, size_t n, const char *v, size_t vlen)
{
    size_t j = 0;
    for (size_t i = 0; i < n; j++) {
        char c = b[i];
        if (c == '%') {
            if (n - i < 3 || hexval(b[i + 1]) < 0 || hexval(b[i + 2]) < 0)
                return false;
            c = (char)(hexval(b[i + 1]) * 16 + hexval(b[i + 2]));
            i += 3;
        } else {
            i++;
        }
        if (j >= vlen || v[j] != c)
            return false;
    }
    return j == vlen;
}

/*
 * Match one template segment tp[0..tn) (literals and {name} expansions, split as the builder
 * splits them) against the built segment b[0..bn): literals in place, each expansion one or more
 * characters. Backtracking over at most a few expansions per segment.
 */
static bool seg_match(const char *tp, size_t tn, const char *b, size_t bn, int budget)
{
    if (budget <= 0)
        return true; /* pathological template: give up matching, the other checks still hold */
    if (tn == 0)
        return bn == 0;
    const char *close = tp[0] == '{' ? memchr(tp, '}', tn) : NULL;
    if (close == NULL)
        return bn > 0 && b[0] == tp[0] && seg_match(tp + 1, tn - 1, b + 1, bn - 1, budget);
    size_t skip = (size_t)(close - tp) + 1;
    for (size_t k = 1; k <= bn; k++)
        if (seg_match(tp + skip, tn - skip, b + k, bn - k, budget - 1))
            return true;
    return false;
}

static const struct openapi_arg *path_arg(const struct openapi_tool *t, const char *nm, size_t n)
{
    for (size_t i = 0; i < t->nargs; i++)
        if (t->args[i].in == OPENAPI_IN_PATH && strlen(t->args[i].wire_name) == n &&
            strncmp(t->args[i].wire_name, nm, n) == 0)
            return &t->args[i];
    return NULL;
}

static void check_request(const struct openapi_catalog *cat, const struct openapi_tool *t,
                          const json_t *args, const struct openapi_request *req)
{
    const char *base = cat->base_url, *url = req->url;
    for (size_t i = 0; i < req->nheaders; i++)
        if (strpbrk(req->headers[i].value, "\r\n") || strpbrk(req->headers[i].name, "\r\n"))
            fail("a header has a line break", t, url);
    if (strncmp(url, base, strlen(base)) != 0)
        fail("the URL does not start with the base URL", t, url);
    if (strpbrk(base, "?#") != NULL)
        return;
    /* the template's path part: up to '#', or '?' outside an expansion (as the builder reads) */
    const char *tpl = t->op->path, *tend = tpl;
    while (*tend && *tend != '#' && *tend != '?') {
        const char *close = *tend == '{' ? strchr(tend, '}') : NULL;
        tend = close ? close + 1 : tend + 1;
    }
    const char *p = url + strlen(base);
    const char *pend = p + strcspn(p, "?#");
    if (*pend == '#' || (*pend == '?' && strchr(pend, '#')))
        fail("the URL has a fragment", t, url);
    /* segment by segment */
    const char *ts = tpl, *bs = p;
    for (;;) {
        const char *te = ts;
        bool expanded = false;
        while (te < tend && *te != '/') {
            const char *close = *te == '{' ? strchr(te, '}') : NULL;
            if (close && close < tend) {
                expanded = true;
                te = close + 1;
            } else {
                te++;
            }
        }
        const char *be = memchr(bs, '/', (size_t)(pend - bs));
        if (be == NULL)
            be = pend;
        if ((te == tend) != (be == pend))
            fail("the path has not the template's number of segments", t, url);
        if (!seg_match(ts, (size_t)(te - ts), bs, (size_t)(be - bs), 8))
            fail("a path segment does not match the template's literals", t, url);
        if (expanded && dot_segment(bs, (size_t)(be - bs)))
            fail("an expanded path segment is a dot segment", t, url);
        /* round trip: a string in a simple-style segment of its own */
        const struct openapi_arg *a = ts[0] == '{' && te - ts >= 2 && te[-1] == '}' &&
                                              memchr(ts + 1, '}', (size_t)(te - ts - 1)) == te - 1
                                          ? path_arg(t, ts + 1, (size_t)(te - ts - 2))
                                          : NULL;
        json_t *v = a && !a->fixed && !a->hidden ? json_object_get(args, a->name) : NULL;
        if (a && (a->param == NULL || a->param->style == OPENAPI_STYLE_SIMPLE) &&
            json_is_string(v) &&
            !decodes_to(bs, (size_t)(be - bs), json_string_value(v), json_string_length(v)))
            fail("a path argument does not round-trip", t, url);
        if (te == tend)
            break;
        ts = te + 1;
        bs = be + 1;
    }
}

static void call(const struct openapi_catalog *cat, const struct openapi_tool *t, json_t *args)
{
    struct openapi_request req;
    struct err_info ei = {0};
    int rc = openapi_request_build(cat, t, args, &req, &ei);
    if (rc != 0) {
        if (ei.msg[0] == '\0')
            fail("a refusal without a message", t, NULL);
        return;
    }
    check_request(cat, t, args, &req);
    openapi_request_release(&req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    const uint8_t *nul = memchr(data, '\0', size);
    size_t dlen = nul ? (size_t)(nul - data) : size;
    const uint8_t *av = nul ? nul + 1 : NULL;
    size_t alen = nul ? size - dlen - 1 : 0;
    struct openapi_doc *doc = NULL;
    struct err_info ei;
    if (openapi_doc_load_mem((const char *)data, dlen, &doc, &ei) != 0)
        return 0;
    struct openapi_catalog *cat = NULL;
    if (openapi_catalog_build(doc, NULL, &cat, &ei) == 0) {
        for (size_t i = 0; i < cat->ntools; i++) {
            const struct openapi_tool *t = &cat->tools[i];
            json_t *j = openapi_tool_to_json(t);
            json_decref(j);
            json_t *args = json_object();
            call(cat, t, args); /* {} */
            for (int r = 0; r <= ROUNDS; r++) {
                json_object_clear(args);
                for (size_t k = 0; k < t->nargs; k++) {
                    if (t->args[k].hidden)
                        continue;
                    json_t *v = r == ROUNDS ? input_value(av, alen, k)
                                            : hostile(i + k * 7 + (size_t)r * 13);
                    if (v)
                        json_object_set_new(args, t->args[k].name, v);
                }
                if (r < ROUNDS || alen)
                    call(cat, t, args);
            }
            json_decref(args);
        }
        openapi_catalog_unref(cat);
    }
    openapi_doc_unref(doc);
    return 0;
}

/*
 * From the document model to the tool catalog: which operations become tools (rules, then the
 * default heuristics, each reported when it fires), what each tool is called (stable names, see
 * tool_names()), and what it takes (one flat inputSchema built from path, query, header and cookie
 * parameters and the body's properties, with the mapping back to the request kept in `args`).
 * Schemas in the model are shared and read-only; everything the editorial layer changes is a copy.
 */
#include <ctype.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "openapi/openapi-int.h"

#define NAME_AIM 48  /* clients add prefixes: aim below the 64 allowed */
#define HASH_SHORT 8 /* hex digits of the disambiguating hash */
#define HASH_LONG 16

/* ---- names ---- */

size_t oa_snake_case(const char *in, char *buf, size_t cap)
{
    size_t n = 0;
    bool sep = false;
    for (size_t i = 0; in[i] && n + 2 < cap; i++) {
        unsigned char c = (unsigned char)in[i];
        if (!isalnum(c)) {
            sep = n > 0;
            continue;
        }
        /* camelCase and HTTPServer boundaries */
        if (isupper(c) && i > 0 &&
            (islower((unsigned char)in[i - 1]) || isdigit((unsigned char)in[i - 1]) ||
             (isupper((unsigned char)in[i - 1]) && islower((unsigned char)in[i + 1]))))
            sep = n > 0;
        if (sep) {
            buf[n++] = '_';
            sep = false;
        }
        buf[n++] = (char)tolower(c);
    }
    buf[n] = '\0';
    return n;
}

void oa_short_hash(const char *method, const char *path, char *out, size_t nhex)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    GH_ASSERT(ctx != NULL);
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, method, strlen(method));
    EVP_DigestUpdate(ctx, " ", 1);
    EVP_DigestUpdate(ctx, path, strlen(path));
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    static const char hex[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < nhex && i / 2 < mdlen; i++)
        out[i] = hex[(md[i / 2] >> (i % 2 ? 0 : 4)) & 0xf];
    out[i] = '\0';
}

/* The base name: operationId snake_cased, else method + path ({id} reads "by_id"). */
static void base_name(const struct openapi_op *op, char *buf, size_t cap)
{
    if (op->operation_id && oa_snake_case(op->operation_id, buf, cap) > 0)
        return;
    char tmp[1024];
    size_t n = (size_t)snprintf(tmp, sizeof(tmp), "%s", op->method);
    for (const char *p = op->path; *p && n + 8 < sizeof(tmp); p++) {
        if (*p == '{') {
            n += (size_t)snprintf(tmp + n, sizeof(tmp) - n, " by ");
            continue;
        }
        tmp[n++] = *p == '}' ? ' ' : *p;
    }
    tmp[n] = '\0';
    if (oa_snake_case(tmp, buf, cap) == 0)
        snprintf(buf, cap, "op");
}

/* Level 0: the base name cut to NAME_AIM; 1 and 2: cut shorter plus a hash of method + path. */
static char *make_name(const struct openapi_op *op, int level)
{
    char base[512], hash[HASH_LONG + 1];
    base_name(op, base, sizeof(base));
    size_t n = strlen(base);
    if (level == 0 && n <= NAME_AIM)
        return strdup(base);
    size_t nhex = level <= 1 ? HASH_SHORT : HASH_LONG;
    oa_short_hash(op->method, op->path, hash, nhex);
    size_t keep = NAME_AIM - 1 - nhex;
    if (n > keep)
        n = keep;
    while (n > 0 && base[n - 1] == '_')
        n--;
    return oa_asprintf("%.*s_%s", (int)n, base, hash);
}

/* ---- schema editing ---- */

#define EDIT_BUDGET 20000 /* schema nodes per tool: shared subtrees must not blow up a copy */

struct edit_stats {
    unsigned first_sentence, shortened, examples, extensions, enums, collapsed, dropped_desc;
    size_t budget; /* nodes left for this tool */
    /* set by the tool_tokens budget (fit_tool) */
    unsigned depth_cap;     /* collapse below this depth instead of max_depth, 0 = max_depth */
    bool flat;              /* collapse the arguments themselves to their type */
    bool optional_bare;     /* optional arguments keep their type only */
    bool nested_desc_off;   /* no descriptions below the arguments */
    bool optional_desc_off; /* no descriptions on optional arguments either */
    bool lean;              /* no length/count bounds (maxLength, minLength, maxItems, minItems) */
    unsigned bounds;        /* bounds dropped by lean */
};

/* Length of the HTML tag at s (`<p>`, `</code>`, `<a href="…">`), 0 when s is not one. */
static size_t html_tag_len(const char *s)
{
    size_t i = 1;
    if (s[0] != '<')
        return 0;
    if (s[i] == '/')
        i++;
    if (!isalpha((unsigned char)s[i]))
        return 0;
    while (s[i] && s[i] != '>' && s[i] != '<' && i < 200)
        i++;
    return s[i] == '>' ? i + 1 : 0;
}

/*
 * s as plain text: HTML tags removed (Stripe writes its descriptions in HTML; `</p>` ends a
 * paragraph), the five predefined entities decoded. A new string, NULL when out of memory.
 */
static char *html_to_text(const char *s)
{
    static const struct {
        const char *ent, *ch;
    } ents[] = {{"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&#39;", "'"}};
    size_t len = strlen(s), n = 0;
    char *out = malloc(len + 2); /* a tag is at least 3 bytes, its replacement at most 2 */
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < len;) {
        size_t tag = html_tag_len(s + i);
        if (tag) {
            /* `</p>` ends a paragraph, a block tag separates words, an inline tag nothing */
            const char *name = s + i + (s[i + 1] == '/' ? 2 : 1);
            size_t nl =
                strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
            static const char *const blocks[] = {"p",  "br",    "li", "ul", "ol", "div", "tr",
                                                 "td", "table", "h1", "h2", "h3", "h4"};
            bool block = false;
            for (size_t b = 0; b < sizeof(blocks) / sizeof(blocks[0]); b++)
                block |= strlen(blocks[b]) == nl && strncasecmp(name, blocks[b], nl) == 0;
            if (s[i + 1] == '/' && nl == 1 && (name[0] == 'p' || name[0] == 'P'))
                n += (size_t)sprintf(out + n, "\n\n");
            else if (block)
                out[n++] = ' ';
            i += tag;
            continue;
        }
        size_t e = 0;
        for (; e < sizeof(ents) / sizeof(ents[0]); e++)
            if (strncmp(s + i, ents[e].ent, strlen(ents[e].ent)) == 0)
                break;
        if (e < sizeof(ents) / sizeof(ents[0])) {
            out[n++] = ents[e].ch[0];
            i += strlen(ents[e].ent);
            continue;
        }
        out[n++] = s[i++];
    }
    out[n] = '\0';
    return out;
}

char *oa_first_sentence(const char *html, bool *trimmed)
{
    char *s = html_to_text(html);
    if (s == NULL)
        return NULL;
    size_t len = strlen(s);
    char *out = malloc(len + 1);
    if (out == NULL) {
        free(s);
        return NULL;
    }
    size_t n = 0;
    *trimmed = false;
    bool space = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '\n' && s[i + 1] == '\n' && n > 0) {
            *trimmed = true;
            break;
        }
        if (isspace((unsigned char)c)) {
            space = n > 0;
            continue;
        }
        if (space)
            out[n++] = ' ';
        space = false;
        out[n++] = c;
        if ((c == '.' || c == '!' || c == '?') && (s[i + 1] == ' ' || s[i + 1] == '\n') &&
            !(i >= 2 && s[i - 2] == 'e' && s[i - 1] == '.') && /* "i.e." "e.g." */
            !(i >= 1 && isupper((unsigned char)s[i - 1]) && (i < 2 || s[i - 2] == ' '))) {
            for (size_t k = i + 1; k < len; k++)
                if (!isspace((unsigned char)s[k])) {
                    *trimmed = true;
                    break;
                }
            break;
        }
    }
    out[n] = '\0';
    free(s);
    return out;
}

/*
 * A schema or parameter description as the catalog ships it: the first sentence (heuristic
 * first_sentence), then at most desc_max bytes, cut at a word boundary (never inside a UTF-8
 * sequence) and ended with "...". NULL when out of memory; the counters say what was done.
 */
static char *trim_description(const char *s, const struct openapi_heuristics *h,
                              struct edit_stats *st)
{
    bool trimmed = false;
    char *d = h->first_sentence ? oa_first_sentence(s, &trimmed) : strdup(s);
    if (d == NULL)
        return NULL;
    st->first_sentence += trimmed;
    size_t n = strlen(d);
    if (h->desc_max == 0 || n <= h->desc_max)
        return d;
    size_t cut = h->desc_max > 3 ? h->desc_max - 3 : 0;
    while (cut > 0 && ((unsigned char)d[cut] & 0xc0) == 0x80)
        cut--; /* not inside a UTF-8 sequence */
    size_t sp = cut;
    while (sp > 0 && d[sp] != ' ')
        sp--;
    if (sp > cut / 2) /* a word boundary, unless that would lose most of the text */
        cut = sp;
    while (cut > 0 && (d[cut - 1] == ' ' || d[cut - 1] == ',' || d[cut - 1] == ';'))
        cut--;
    memcpy(d + cut, "...", 4);
    st->shortened++;
    return d;
}

static bool is_scalar_schema(json_t *s)
{
    const char *t = json_string_value(json_object_get(s, "type"));
    return t && strcmp(t, "object") != 0 && strcmp(t, "array") != 0;
}

static json_t *edit_schema(json_t *s, unsigned depth, const struct openapi_heuristics *h,
                           struct edit_stats *st, bool is_map);

static json_t *edit_value(const char *k, json_t *v, unsigned depth,
                          const struct openapi_heuristics *h, struct edit_stats *st)
{
    if (strcmp(k, "properties") == 0 || strcmp(k, "patternProperties") == 0)
        return edit_schema(v, depth + 1, h, st, true);
    if (strcmp(k, "enum") == 0 || strcmp(k, "default") == 0 || strcmp(k, "const") == 0 ||
        strcmp(k, "required") == 0 || strcmp(k, "discriminator") == 0)
        return json_incref(v);
    if (json_is_array(v)) {
        json_t *arr = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
            json_array_append_new(arr, edit_schema(e, depth + 1, h, st, false));
        return arr;
    }
    if (json_is_object(v))
        return edit_schema(v, depth + 1, h, st, false);
    return json_incref(v);
}

/*
 * A trimmed copy of schema `s` at nesting `depth` (1 = a tool argument). `is_map`: s is a
 * properties map (name -> schema), whose keys are names, not keywords.
 */
static json_t *edit_schema(json_t *s, unsigned depth, const struct openapi_heuristics *h,
                           struct edit_stats *st, bool is_map)
{
    if (!json_is_object(s))
        return json_incref(s);
    json_t *out = json_object();
    if (out == NULL)
        return NULL;
    if (st->budget)
        st->budget--;
    if (!is_map && st->budget == 0) {
        json_object_set_new(out, "type", json_string("object"));
        json_object_set_new(out, "description", json_string("(schema too large, truncated)"));
        st->collapsed++;
        return out;
    }
    unsigned max_depth = st->depth_cap && (st->depth_cap < h->max_depth || !h->max_depth)
                             ? st->depth_cap
                             : h->max_depth;
    if (!is_map && (max_depth || st->flat) && depth > (st->flat ? 0 : max_depth) &&
        !is_scalar_schema(s) &&
        (json_object_get(s, "properties") || json_object_get(s, "items") ||
         json_object_get(s, "oneOf") || json_object_get(s, "anyOf"))) {
        /* collapse: keep the type and what it is, drop the structure */
        const char *t = json_string_value(json_object_get(s, "type"));
        json_object_set_new(out, "type", json_string(t ? t : "object"));
        json_t *d = json_object_get(s, "description");
        if (json_is_string(d) && !(st->nested_desc_off && depth > 1)) {
            char *fs = trim_description(json_string_value(d), h, st);
            json_object_set_new(out, "description", json_string(fs ? fs : ""));
            free(fs);
        }
        st->collapsed++;
        return out;
    }
    const char *k;
    json_t *v;
    json_object_foreach(s, k, v)
    {
        if (is_map) {
            json_object_set_new(out, k, edit_schema(v, depth, h, st, false));
            continue;
        }
        if (strcmp(k, "example") == 0 || strcmp(k, "examples") == 0) {
            if (h->drop_examples) {
                st->examples++;
                continue;
            }
        }
        if (k[0] == 'x' && k[1] == '-' && h->drop_extensions) {
            st->extensions++;
            continue;
        }
        if (strcmp(k, "xml") == 0 || strcmp(k, "externalDocs") == 0)
            continue; /* never useful to a model */
        if (st->lean && (strcmp(k, "maxLength") == 0 || strcmp(k, "minLength") == 0 ||
                         strcmp(k, "maxItems") == 0 || strcmp(k, "minItems") == 0)) {
            st->bounds++; /* still enforced: requests are checked against the document */
            continue;
        }
        if (strcmp(k, "description") == 0 && json_is_string(v)) {
            if (st->nested_desc_off && depth > 1) {
                st->dropped_desc++;
                continue;
            }
            char *fs = trim_description(json_string_value(v), h, st);
            if (fs == NULL) {
                json_decref(out);
                return NULL;
            }
            json_object_set_new(out, k, json_string(fs));
            free(fs);
            continue;
        }
        json_object_set_new(out, k, edit_value(k, v, depth, h, st));
    }
    /*
     * A long enum becomes a plain value with the first enum_cap values as examples: keeping a
     * shortened enum would make the unlisted (valid) values look invalid.
     */
    json_t *en = json_object_get(s, "enum");
    if (h->enum_cap && json_array_size(en) > h->enum_cap) {
        st->enums++;
        const char *d = json_string_value(json_object_get(out, "description"));
        char *nd = oa_asprintf("%s%s(%zu more values not listed)", d ? d : "", d ? " " : "",
                               json_array_size(en) - h->enum_cap);
        if (nd)
            json_object_set_new(out, "description", json_string(nd));
        free(nd);
        json_object_del(out, "enum");
        json_t *ex = json_array();
        for (size_t i = 0; i < h->enum_cap; i++)
            json_array_append(ex, json_array_get(en, i));
        json_object_set_new(out, "examples", ex);
    }
    return out;
}

/* ---- notes ---- */

static int note_add(struct openapi_catalog *cat, size_t *cap, const struct openapi_op *op,
                    const char *tool, bool dropped, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static int note_add(struct openapi_catalog *cat, size_t *cap, const struct openapi_op *op,
                    const char *tool, bool dropped, const char *reason, const char *fmt, ...)
{
    if (cat->nnotes == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        struct openapi_note *nn = realloc(cat->notes, ncap * sizeof(*nn));
        if (nn == NULL)
            return ERR_NOMEM;
        cat->notes = nn;
        *cap = ncap;
    }
    struct openapi_note *n = &cat->notes[cat->nnotes];
    memset(n, 0, sizeof(*n));
    n->op = oa_asprintf("%s %s", op->method, op->path);
    n->tool = oa_strdup(tool);
    n->reason = strdup(reason);
    n->dropped = dropped;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&n->detail, fmt, ap) < 0)
            n->detail = NULL;
        va_end(ap);
    }
    cat->nnotes++;
    return n->op && n->reason ? 0 : ERR_NOMEM;
}

/* ---- heuristics that drop operations ---- */

static bool segment_in(const char *path, const char *const *words, char *hit, size_t cap)
{
    const char *p = path;
    while (*p) {
        while (*p == '/')
            p++;
        const char *e = p;
        while (*e && *e != '/')
            e++;
        size_t n = (size_t)(e - p);
        for (int i = 0; words[i]; i++) {
            if (strlen(words[i]) == n && strncasecmp(p, words[i], n) == 0) {
                snprintf(hit, cap, "%.*s", (int)n, p);
                return true;
            }
        }
        p = e;
    }
    return false;
}

static bool media_binary(const char *m)
{
    return strncmp(m, "application/octet-stream", 24) == 0 || strncmp(m, "image/", 6) == 0 ||
           strncmp(m, "audio/", 6) == 0 || strncmp(m, "video/", 6) == 0 ||
           strcmp(m, "application/zip") == 0 || strcmp(m, "application/pdf") == 0;
}

static bool all_binary(char **types, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!media_binary(types[i]))
            return false;
    return n > 0;
}

/* Returns the heuristic name that drops op (detail in buf), or NULL. */
static const char *heuristic_drop(const struct openapi_heuristics *h, const struct openapi_op *op,
                                  char *buf, size_t cap)
{
    static const char *const infra[] = {
        "health",       "healthz",      "healthcheck", "livez",    "readyz",  "ping",
        "metrics",      "docs",         "swagger",     "api-docs", "openapi", "openapi.json",
        "openapi.yaml", "swagger.json", "redoc",       NULL};
    static const char *const admin[] = {"admin", "internal", "_internal", "__internal", NULL};
    static const char *const auth[] = {"oauth",   "oauth2",    "login", "logout",      "signin",
                                       "signout", "authorize", "token", ".well-known", NULL};
    char hit[128];
    if (h->deprecated && op->deprecated) {
        snprintf(buf, cap, "marked deprecated");
        return "deprecated";
    }
    if (h->head_options &&
        (strcmp(op->method, "HEAD") == 0 || strcmp(op->method, "OPTIONS") == 0)) {
        snprintf(buf, cap, "method %s", op->method);
        return "head_options";
    }
    if (h->infra && segment_in(op->path, infra, hit, sizeof(hit))) {
        snprintf(buf, cap, "path segment '%s'", hit);
        return "infra";
    }
    if (h->admin) {
        if (op->internal) {
            snprintf(buf, cap, "x-internal: true");
            return "admin";
        }
        if (segment_in(op->path, admin, hit, sizeof(hit))) {
            snprintf(buf, cap, "path segment '%s'", hit);
            return "admin";
        }
        for (size_t i = 0; i < op->ntags; i++)
            if (strcasecmp(op->tags[i], "admin") == 0 || strcasecmp(op->tags[i], "internal") == 0) {
                snprintf(buf, cap, "tag '%s'", op->tags[i]);
                return "admin";
            }
    }
    if (h->auth_flow && segment_in(op->path, auth, hit, sizeof(hit))) {
        snprintf(buf, cap, "path segment '%s'", hit);
        return "auth_flow";
    }
    if (h->binary_only) {
        if (all_binary(op->body_media_types, op->nbody_media_types)) {
            snprintf(buf, cap, "request body is %s only", op->body_media_types[0]);
            return "binary_only";
        }
        if (all_binary(op->response_media_types, op->nresponse_media_types)) {
            snprintf(buf, cap, "response is %s only", op->response_media_types[0]);
            return "binary_only";
        }
    }
    return NULL;
}

/* ---- arguments ---- */

/*
 * Does the operation require authentication by OAuth 2 / OpenID Connect only, schemes that do
 * not say where the token travels (so an API may take it as a parameter)? An apiKey or http
 * scheme says where it goes, and a parameter of the same name is then something else (Stripe's
 * card `token`).
 */
static bool op_oauth_only(const struct openapi_doc *doc, const struct openapi_op *op)
{
    size_t i, n = 0;
    json_t *req;
    json_array_foreach(op->security, i, req)
    {
        const char *name;
        json_t *scopes;
        json_object_foreach(req, name, scopes)
        {
            for (size_t k = 0; k < doc->nschemes; k++)
                if (strcmp(doc->schemes[k].name, name) == 0) {
                    if (doc->schemes[k].type != OPENAPI_SCHEME_OAUTH2 &&
                        doc->schemes[k].type != OPENAPI_SCHEME_OPENID)
                        return false;
                    n++;
                }
        }
    }
    return n > 0;
}

/*
 * The names APIs give the credential when they take it as an ordinary parameter (Slack's
 * `token` on every method, Google's `access_token`, next to an OAuth 2 scheme that does not
 * name them). Only counted as the credential on an operation that op_oauth_only() says takes one.
 */
static bool is_credential_name(const char *name)
{
    static const char *const names[] = {"token",   "access_token", "api_key",  "apikey",
                                        "api-key", "x-api-key",    "api_token"};
    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
        if (strcasecmp(names[i], name) == 0)
            return true;
    return false;
}

/* Parameters that carry a credential: never exposed, the gateway's configured credential (the
   vault later) is what authenticates the call. */
static bool is_security_param(const struct openapi_doc *doc, const struct openapi_op *op,
                              const struct openapi_param *p)
{
    if (p->in == OPENAPI_IN_HEADER && strcasecmp(p->name, "Authorization") == 0)
        return true;
    if (p->in != OPENAPI_IN_PATH && op_oauth_only(doc, op) && is_credential_name(p->name))
        return true;
    for (size_t i = 0; i < doc->nschemes; i++) {
        const struct openapi_security_scheme *s = &doc->schemes[i];
        if (s->type != OPENAPI_SCHEME_API_KEY || s->in != p->in)
            continue;
        bool match = p->in == OPENAPI_IN_HEADER ? strcasecmp(s->param_name, p->name) == 0
                                                : strcmp(s->param_name, p->name) == 0;
        if (!match)
            continue;
        /* used by this operation, or declared at all: either way it is a credential */
        return true;
    }
    (void)op;
    return false;
}

static void sanitize_arg_name(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (; *in && n + 1 < cap && n < 64; in++)
        out[n++] =
            isalnum((unsigned char)*in) || *in == '_' || *in == '-' || *in == '.' ? *in : '_';
    out[n] = '\0';
    if (n == 0)
        snprintf(out, cap, "arg");
}

static bool arg_name_taken(const struct openapi_tool *t, const char *name)
{
    for (size_t i = 0; i < t->nargs; i++)
        if (strcmp(t->args[i].name, name) == 0)
            return true;
    return false;
}

static const char *const in_names[] = {"path", "query", "header", "cookie", "body", "body"};

static int arg_add(struct openapi_tool *t, const char *wire, enum openapi_in in,
                   const struct openapi_param *p, json_t *schema, bool required)
{
    char name[80], cand[100];
    sanitize_arg_name(wire, name, sizeof(name));
    snprintf(cand, sizeof(cand), "%s", name);
    /* collisions: body_id, query_id, ...; then a counter (stable: document order) */
    if (arg_name_taken(t, cand))
        snprintf(cand, sizeof(cand), "%s_%s", in_names[in], name);
    for (int k = 2; arg_name_taken(t, cand); k++)
        snprintf(cand, sizeof(cand), "%s_%s_%d", in_names[in], name, k);
    struct openapi_arg *a = &t->args[t->nargs];
    memset(a, 0, sizeof(*a));
    a->name = strdup(cand);
    a->wire_name = strdup(wire);
    a->in = in;
    a->param = p;
    a->schema = json_incref(schema);
    a->required = required;
    t->nargs++;
    return a->name && a->wire_name ? 0 : ERR_NOMEM;
}

static bool body_is_flat(const struct openapi_op *op)
{
    json_t *s = op->body_schema;
    const char *m = op->body_media;
    if (!json_is_object(json_object_get(s, "properties")))
        return false;
    if (json_object_get(s, "oneOf") || json_object_get(s, "anyOf"))
        return false;
    return strstr(m, "json") || strncmp(m, "application/x-www-form-urlencoded", 33) == 0 ||
           strncmp(m, "multipart/form-data", 19) == 0 || strcmp(m, "*/*") == 0;
}

static int build_args(const struct openapi_doc *doc, const struct openapi_op *op,
                      struct openapi_tool *t)
{
    size_t max = op->nparams + 1 + json_object_size(json_object_get(op->body_schema, "properties"));
    t->args = calloc(max, sizeof(*t->args));
    if (t->args == NULL)
        return ERR_NOMEM;
    int rc = 0;
    /* path first: the names the URL template uses keep their names */
    static const enum openapi_in order[] = {OPENAPI_IN_PATH, OPENAPI_IN_QUERY, OPENAPI_IN_HEADER,
                                            OPENAPI_IN_COOKIE};
    for (size_t o = 0; o < 4; o++)
        for (size_t i = 0; i < op->nparams && rc == 0; i++) {
            const struct openapi_param *p = &op->params[i];
            if (p->in != order[o] || is_security_param(doc, op, p))
                continue;
            rc = arg_add(t, p->name, p->in, p, p->schema, p->required);
        }
    if (rc || op->body_schema == NULL)
        return rc;
    if (!body_is_flat(op))
        return arg_add(t, "body", OPENAPI_IN_BODY_WHOLE, NULL, op->body_schema, op->body_required);
    json_t *req = json_object_get(op->body_schema, "required");
    bool form = op->body_media && (strstr(op->body_media, "x-www-form-urlencoded") ||
                                   strstr(op->body_media, "multipart/form-data"));
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(op->body_schema, "properties"), k, v)
    {
        if (json_is_true(json_object_get(v, "readOnly")))
            continue; /* server-assigned: never sent */
        if (form && op_oauth_only(doc, op) && is_credential_name(k))
            continue; /* the credential as a form field (Slack's token) */
        bool required = false;
        size_t i;
        json_t *r;
        json_array_foreach(req, i, r) required |=
            json_is_string(r) && strcmp(json_string_value(r), k) == 0;
        if ((rc = arg_add(t, k, OPENAPI_IN_BODY, NULL, v, required && op->body_required)) != 0)
            return rc;
    }
    return 0;
}

static int apply_override(const struct oa_override *ov, struct openapi_tool *t, char *where,
                          size_t cap, struct err_info *ei)
{
    for (size_t i = 0; i < t->nargs; i++) {
        struct openapi_arg *a = &t->args[i];
        for (size_t k = 0; k < ov->nhide; k++)
            if (strcmp(ov->hide[k], a->name) == 0 || strcmp(ov->hide[k], a->wire_name) == 0)
                a->hidden = true;
        json_t *f = json_object_get(ov->fixed, a->name);
        if (f == NULL)
            f = json_object_get(ov->fixed, a->wire_name);
        if (f) {
            a->fixed = json_incref(f);
            a->hidden = true;
        }
        if (a->hidden && a->required && a->fixed == NULL &&
            json_object_get(a->schema, "default") == NULL)
            return oa_fail(ei, ERR_INVAL, where,
                           "override '%s' hides required parameter '%s' without a fixed value",
                           ov->key, a->name);
    }
    /* every hidden/fixed name must exist: a typo would silently expose the parameter */
    for (size_t k = 0; k < ov->nhide; k++) {
        bool found = false;
        for (size_t i = 0; i < t->nargs; i++)
            found |= strcmp(ov->hide[k], t->args[i].name) == 0 ||
                     strcmp(ov->hide[k], t->args[i].wire_name) == 0;
        if (!found)
            return oa_fail(ei, ERR_INVAL, where, "override '%s' hides unknown parameter '%s'",
                           ov->key, ov->hide[k]);
    }
    const char *fk;
    json_t *fv;
    json_object_foreach(ov->fixed, fk, fv)
    {
        bool found = false;
        for (size_t i = 0; i < t->nargs; i++)
            found |= strcmp(fk, t->args[i].name) == 0 || strcmp(fk, t->args[i].wire_name) == 0;
        if (!found)
            return oa_fail(ei, ERR_INVAL, where, "override '%s' fixes unknown parameter '%s'",
                           ov->key, fk);
    }
    (void)cap;
    return 0;
}

static json_t *build_input_schema(struct openapi_tool *t, const struct openapi_heuristics *h,
                                  struct edit_stats *st)
{
    json_t *props = json_object(), *req = json_array();
    for (size_t i = 0; i < t->nargs; i++) {
        struct openapi_arg *a = &t->args[i];
        if (a->hidden)
            continue;
        json_t *s = edit_schema(a->schema, 1, h, st, false);
        const struct openapi_param *p = a->param;
        if (s && st->optional_bare && !a->required) {
            json_t *ty = json_incref(json_object_get(s, "type"));
            json_object_clear(s);
            if (ty)
                json_object_set_new(s, "type", ty);
        } else if (s && st->optional_desc_off && !a->required) {
            st->dropped_desc += json_object_del(s, "description") == 0;
        } else if (s && p && p->description && json_object_get(s, "description") == NULL) {
            char *d = trim_description(p->description, h, st);
            json_object_set_new(s, "description", json_string(d ? d : ""));
            free(d);
        }
        json_object_set_new(props, a->name, s);
        if (a->required)
            json_array_append_new(req, json_string(a->name));
    }
    json_t *schema = json_pack("{s:s,s:o}", "type", "object", "properties", props);
    if (schema && json_array_size(req))
        json_object_set(schema, "required", req);
    json_decref(req);
    return schema;
}

static size_t token_estimate(const struct openapi_tool *t);

/*
 * The inputSchema of t, within the tool_tokens budget when there is one: the default editing
 * first; if the tool's estimate is over the budget, the schema is rebuilt with nested schemas
 * collapsed at shallower and shallower depths, then without descriptions below the arguments,
 * then without descriptions on optional arguments, until it fits (or nothing is left to cut).
 * Arguments are never removed, so the operation stays callable with everything it accepts.
 * *step is 0 when the default editing fitted.
 */
static int fit_tool(struct openapi_tool *t, const struct openapi_heuristics *h, bool trimmed,
                    struct edit_stats *st, size_t *step)
{
    struct plan {
        unsigned depth;
        bool nested, optional, flat, bare;
    } plan[16];
    size_t n = 0;
    plan[n++] = (struct plan){0, false, false, false, false};
    plan[n++] = (struct plan){0, false, false, false, false}; /* lean: bounds dropped */
    unsigned start = h->max_depth && h->max_depth < 8 ? h->max_depth : 8;
    for (unsigned d = start - 1; d >= 2; d--)
        plan[n++] = (struct plan){d, false, false, false, false};
    plan[n++] = (struct plan){2, true, false, false, false};
    plan[n++] = (struct plan){1, true, false, false, false};
    plan[n++] = (struct plan){1, true, true, false, false};
    plan[n++] = (struct plan){1, true, true, true, false};
    plan[n++] = (struct plan){1, true, true, true, true};
    for (size_t i = 0; i < n; i++) {
        struct edit_stats s2 = {.first_sentence = trimmed,
                                .budget = EDIT_BUDGET,
                                .depth_cap = plan[i].depth,
                                .nested_desc_off = plan[i].nested,
                                .optional_desc_off = plan[i].optional,
                                .flat = plan[i].flat,
                                .optional_bare = plan[i].bare,
                                .lean = i > 0};
        json_decref(t->input_schema);
        if ((t->input_schema = build_input_schema(t, h, &s2)) == NULL)
            return ERR_NOMEM;
        *st = s2;
        *step = i;
        if (h->tool_tokens == 0 || token_estimate(t) <= h->tool_tokens)
            break;
    }
    return 0;
}

static char *tool_description(const struct openapi_op *op, const struct oa_override *ov,
                              const struct openapi_heuristics *h, bool *trimmed)
{
    *trimmed = false;
    if (ov && ov->description)
        return strdup(ov->description);
    const char *sum = op->summary && *op->summary ? op->summary : NULL;
    const char *desc = op->description && *op->description ? op->description : NULL;
    if (h->first_sentence) {
        bool t2 = false;
        char *d = oa_first_sentence(sum ? sum : desc ? desc : "", &t2);
        *trimmed = t2 || (sum && desc);
        if (d && *d == '\0') {
            free(d);
            return oa_asprintf("%s %s", op->method, op->path);
        }
        return d;
    }
    if (sum && desc)
        return oa_asprintf("%s\n\n%s", sum, desc);
    if (sum || desc)
        return strdup(sum ? sum : desc);
    return oa_asprintf("%s %s", op->method, op->path);
}

/* ---- the catalog ---- */

static void tool_release(struct openapi_tool *t)
{
    free(t->name);
    free(t->description);
    json_decref(t->input_schema);
    for (size_t i = 0; i < t->nargs; i++) {
        free(t->args[i].name);
        free(t->args[i].wire_name);
        json_decref(t->args[i].schema);
        json_decref(t->args[i].fixed);
    }
    free(t->args);
    openapi_fields_free(t->response_fields);
}

struct openapi_catalog *openapi_catalog_ref(struct openapi_catalog *cat)
{
    __atomic_add_fetch(&cat->refs, 1, __ATOMIC_RELAXED);
    return cat;
}

void openapi_catalog_unref(struct openapi_catalog *cat)
{
    if (cat == NULL || __atomic_sub_fetch(&cat->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    for (size_t i = 0; i < cat->ntools; i++)
        tool_release(&cat->tools[i]);
    free(cat->tools);
    for (size_t i = 0; i < cat->nnotes; i++) {
        free(cat->notes[i].op);
        free(cat->notes[i].tool);
        free(cat->notes[i].reason);
        free(cat->notes[i].detail);
    }
    free(cat->notes);
    free(cat->base_url);
    openapi_doc_unref(cat->doc);
    free(cat);
}

int openapi_catalog_set_base_url(struct openapi_catalog *cat, const char *url)
{
    char *u = strdup(url);
    if (u == NULL)
        return ERR_NOMEM;
    size_t n = strlen(u);
    while (n > 0 && u[n - 1] == '/')
        u[--n] = '\0';
    free(cat->base_url);
    cat->base_url = u;
    return 0;
}

const struct openapi_tool *openapi_catalog_find(const struct openapi_catalog *cat, const char *name)
{
    for (size_t i = 0; i < cat->ntools; i++)
        if (strcmp(cat->tools[i].name, name) == 0)
            return &cat->tools[i];
    return NULL;
}

json_t *openapi_tool_to_json(const struct openapi_tool *t)
{
    json_t *ann = json_object();
    if (ann == NULL)
        return NULL;
    if (t->read_only)
        json_object_set_new(ann, "readOnlyHint", json_true());
    if (t->destructive)
        json_object_set_new(ann, "destructiveHint", json_true());
    if (t->idempotent)
        json_object_set_new(ann, "idempotentHint", json_true());
    return json_pack("{s:s,s:s,s:O,s:o}", "name", t->name, "description", t->description,
                     "inputSchema", t->input_schema, "annotations", ann);
}

/*
 * Tool names, stable under reordering of the document: a tool's name depends only on its own
 * operation unless names collide, and then every member of the colliding group (not just the
 * later ones) gets a hash of its own method + path appended, first 8 hex digits, then 16. Names
 * fixed by overrides never change; two overrides with one name are an error.
 */
static int tool_names(struct openapi_catalog *cat, const bool *fixed, int *level,
                      struct err_info *ei)
{
    for (int round = 0; round < 4; round++) {
        json_t *count = json_object();
        if (count == NULL)
            return ERR_NOMEM;
        for (size_t i = 0; i < cat->ntools; i++) {
            json_int_t c = json_integer_value(json_object_get(count, cat->tools[i].name));
            json_object_set_new(count, cat->tools[i].name, json_integer(c + 1));
        }
        bool changed = false;
        int rc = 0;
        for (size_t i = 0; i < cat->ntools && rc == 0; i++) {
            struct openapi_tool *t = &cat->tools[i];
            if (json_integer_value(json_object_get(count, t->name)) < 2)
                continue;
            if (fixed[i]) {
                /* another fixed name? */
                for (size_t j = 0; j < cat->ntools; j++)
                    if (j != i && fixed[j] && strcmp(cat->tools[j].name, t->name) == 0)
                        rc = oa_fail(ei, ERR_INVAL, "/overrides",
                                     "overrides give '%s %s' and '%s %s' the same name '%s'",
                                     t->op->method, t->op->path, cat->tools[j].op->method,
                                     cat->tools[j].op->path, t->name);
                continue;
            }
            if (level[i] >= 2) {
                rc = oa_fail(ei, ERR_INTERNAL, t->op->pointer,
                             "cannot give '%s %s' a unique tool name", t->op->method, t->op->path);
                break;
            }
            char *n = make_name(t->op, ++level[i]);
            if (n == NULL) {
                rc = ERR_NOMEM;
                break;
            }
            free(t->name);
            t->name = n;
            changed = true;
        }
        json_decref(count);
        if (rc)
            return rc;
        if (!changed)
            return 0;
    }
    return oa_fail(ei, ERR_INTERNAL, "", "tool names did not converge");
}

/*
 * Heuristic repeated_desc: an argument description repeated word for word under the same
 * argument name on `min` or more tools ("The account owner of the repository." on 500 GitHub
 * tools) is boilerplate the name already carries; it is dropped from every one of them.
 */
static int drop_repeated_descriptions(struct openapi_catalog *cat, unsigned min, size_t *ncap)
{
    json_t *count = json_object();
    if (count == NULL)
        return ERR_NOMEM;
    int rc = 0;
    for (int pass = 0; pass < 2 && rc == 0; pass++)
        for (size_t i = 0; i < cat->ntools && rc == 0; i++) {
            struct openapi_tool *t = &cat->tools[i];
            const char *k;
            json_t *v;
            unsigned dropped = 0;
            json_object_foreach(json_object_get(t->input_schema, "properties"), k, v)
            {
                const char *d = json_string_value(json_object_get(v, "description"));
                char *key = d ? oa_asprintf("%s\x1f%s", k, d) : NULL;
                if (d && key == NULL) {
                    rc = ERR_NOMEM;
                    break;
                }
                if (key == NULL)
                    continue;
                json_int_t c = json_integer_value(json_object_get(count, key));
                if (pass == 0)
                    json_object_set_new(count, key, json_integer(c + 1));
                else if (c >= (json_int_t)min)
                    dropped += json_object_del(v, "description") == 0;
                free(key);
            }
            if (rc == 0 && dropped)
                rc = note_add(cat, ncap, t->op, t->name, false, "repeated_desc",
                              "%u argument descriptions repeated on %u or more tools dropped",
                              dropped, min);
        }
    json_decref(count);
    return rc;
}

static size_t token_estimate(const struct openapi_tool *t)
{
    json_t *j = openapi_tool_to_json(t);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    size_t n = s ? (strlen(s) + 3) / 4 : 0;
    free(s);
    json_decref(j);
    return n;
}

int openapi_catalog_build(struct openapi_doc *doc, const struct openapi_editorial *ed_in,
                          struct openapi_catalog **out, struct err_info *ei)
{
    struct openapi_editorial *own = NULL;
    const struct openapi_editorial *ed = ed_in;
    if (ed == NULL && (ed = own = openapi_editorial_new()) == NULL)
        return ERR_NOMEM;
    /* A large API lists many tools: each one's tokens count many times over, so its tools get
       the tighter budget (large_tool_tokens); a small one keeps richer schemas. */
    struct openapi_heuristics hh = ed->h;
    if (doc->nops > OPENAPI_LARGE_OPS && hh.large_tool_tokens &&
        (hh.tool_tokens == 0 || hh.large_tool_tokens < hh.tool_tokens))
        hh.tool_tokens = hh.large_tool_tokens;
    const struct openapi_heuristics *h = &hh;
    struct openapi_catalog *cat = calloc(1, sizeof(*cat));
    bool *fixed = calloc(doc->nops + 1, sizeof(*fixed));
    int *level = calloc(doc->nops + 1, sizeof(*level));
    int rc = ERR_NOMEM;
    size_t ncap = 0;
    if (cat == NULL || fixed == NULL || level == NULL)
        goto out;
    cat->refs = 1;
    cat->heuristics = *h;
    cat->doc = openapi_doc_ref(doc);
    cat->base_url = strdup(doc->server_url ? doc->server_url : "");
    cat->tools = calloc(doc->nops + 1, sizeof(*cat->tools));
    if (cat->base_url == NULL || cat->tools == NULL)
        goto out;
    rc = 0;
    /* every override must name an operation of this document */
    for (size_t k = 0; k < ed->noverrides; k++) {
        bool found = false;
        for (size_t i = 0; i < doc->nops && !found; i++)
            found = oa_override_find(ed, &doc->ops[i]) == &ed->overrides[k];
        if (!found) {
            char where[300] = "/overrides";
            oa_ptr_push(where, sizeof(where), ed->overrides[k].key);
            rc = oa_fail(ei, ERR_INVAL, where,
                         "override '%s' matches no operation (by operationId or \"METHOD /path\")",
                         ed->overrides[k].key);
            goto out;
        }
    }
    for (size_t i = 0; i < doc->nops && rc == 0; i++) {
        const struct openapi_op *op = &doc->ops[i];
        /* duplicate operationIds are tolerated (names are disambiguated) but reported */
        for (size_t j = 0; op->operation_id && j < i; j++)
            if (doc->ops[j].operation_id &&
                strcmp(doc->ops[j].operation_id, op->operation_id) == 0) {
                rc = note_add(cat, &ncap, op, NULL, false, "duplicate operationId",
                              "'%s' also at %s", op->operation_id, doc->ops[j].pointer);
                break;
            }
        int ri = oa_rules_match(ed, op);
        bool force = false;
        if (ri >= 0 && ed->rules[ri].action == OA_RULE_EXCLUDE) {
            rc = note_add(cat, &ncap, op, NULL, true, "rule", "rule %d (exclude)", ri + 1);
            continue;
        }
        if (ri < 0 && ed->default_exclude) {
            rc = note_add(cat, &ncap, op, NULL, true, "rule", "no include rule matched");
            continue;
        }
        force = ri >= 0 && ed->rules[ri].force;
        char detail[256];
        const char *why = force ? NULL : heuristic_drop(h, op, detail, sizeof(detail));
        if (why) {
            char reason[64];
            snprintf(reason, sizeof(reason), "heuristic %s", why);
            rc = note_add(cat, &ncap, op, NULL, true, reason, "%s", detail);
            continue;
        }
        const struct oa_override *ov = oa_override_find(ed, op);
        struct openapi_tool *t = &cat->tools[cat->ntools];
        t->op = op;
        if ((rc = build_args(doc, op, t)) != 0) {
            tool_release(t);
            memset(t, 0, sizeof(*t));
            break;
        }
        cat->ntools++;
        if (ov) {
            char where[300] = "/overrides";
            oa_ptr_push(where, sizeof(where), ov->key);
            if ((rc = apply_override(ov, t, where, sizeof(where), ei)) != 0)
                break;
            if (ov->response_fields) {
                oa_ptr_push(where, sizeof(where), "response");
                oa_ptr_push(where, sizeof(where), "fields");
                if ((rc = openapi_fields_parse(ov->response_fields, where, &t->response_fields,
                                               ei)) != 0)
                    break;
            }
        }
        fixed[cat->ntools - 1] = ov && ov->name;
        t->name = ov && ov->name ? strdup(ov->name) : make_name(op, 0);
        bool trimmed;
        t->description = tool_description(op, ov, h, &trimmed);
        struct edit_stats st = {0};
        size_t step = 0;
        if (t->name == NULL || t->description == NULL || fit_tool(t, h, trimmed, &st, &step) != 0) {
            rc = ERR_NOMEM;
            break;
        }
        t->read_only = strcmp(op->method, "GET") == 0;
        t->destructive = strcmp(op->method, "DELETE") == 0;
        t->idempotent = strcmp(op->method, "PUT") == 0;
        /* transformations, reported per tool (the name is fixed up below) */
        if (st.first_sentence)
            rc = note_add(cat, &ncap, op, t->name, false, "first_sentence",
                          "%u descriptions cut to their first sentence", st.first_sentence);
        if (rc == 0 && st.examples)
            rc = note_add(cat, &ncap, op, t->name, false, "drop_examples", "%u examples dropped",
                          st.examples);
        if (rc == 0 && st.extensions)
            rc = note_add(cat, &ncap, op, t->name, false, "drop_extensions", "%u x-* keys dropped",
                          st.extensions);
        if (rc == 0 && ov && ov->response_fields)
            rc =
                note_add(cat, &ncap, op, t->name, false, "response_fields",
                         "responses projected to %zu fields", json_array_size(ov->response_fields));
        if (rc == 0 && st.enums)
            rc = note_add(cat, &ncap, op, t->name, false, "enum_cap",
                          "%u enums capped at %u values", st.enums, h->enum_cap);
        if (rc == 0 && st.shortened)
            rc = note_add(cat, &ncap, op, t->name, false, "desc_max",
                          "%u descriptions cut to %u bytes", st.shortened, h->desc_max);
        if (rc == 0 && st.collapsed && step == 0)
            rc = note_add(cat, &ncap, op, t->name, false, "max_depth",
                          "%u nested schemas collapsed below depth %u", st.collapsed, h->max_depth);
        if (rc == 0 && step > 0)
            rc = note_add(cat, &ncap, op, t->name, false, "tool_tokens",
                          "over %u estimated tokens: %u length/count bounds dropped, %u nested "
                          "schemas collapsed below depth %u%s%s",
                          h->tool_tokens, st.bounds, st.collapsed,
                          st.flat        ? 0
                          : st.depth_cap ? st.depth_cap
                                         : h->max_depth,
                          st.nested_desc_off ? ", descriptions below the arguments dropped" : "",
                          st.optional_bare       ? ", optional arguments reduced to their type"
                          : st.optional_desc_off ? ", descriptions of optional arguments dropped"
                                                 : "");
    }
    if (rc == 0 && h->repeated_desc)
        rc = drop_repeated_descriptions(cat, h->repeated_desc, &ncap);
    if (rc)
        goto out;
    if ((rc = tool_names(cat, fixed, level, ei)) != 0)
        goto out;
    for (size_t i = 0; i < cat->ntools; i++) {
        cat->tools[i].token_estimate = token_estimate(&cat->tools[i]);
        cat->total_tokens += cat->tools[i].token_estimate;
    }
    /* notes recorded the provisional names: point them at the final ones */
    for (size_t n = 0; n < cat->nnotes; n++) {
        if (cat->notes[n].tool == NULL)
            continue;
        for (size_t i = 0; i < cat->ntools; i++) {
            char key[1024];
            snprintf(key, sizeof(key), "%s %s", cat->tools[i].op->method, cat->tools[i].op->path);
            if (strcmp(key, cat->notes[n].op) == 0) {
                free(cat->notes[n].tool);
                cat->notes[n].tool = strdup(cat->tools[i].name);
                break;
            }
        }
    }
    *out = cat;
    cat = NULL;
out:
    if (rc == ERR_NOMEM)
        oa_fail(ei, rc, "", "out of memory");
    free(fixed);
    free(level);
    openapi_catalog_unref(cat);
    openapi_editorial_free(own);
    return rc;
}

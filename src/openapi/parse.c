/*
 * Text to tree: JSON through jansson, YAML through libfyaml converted node by node into the same
 * jansson tree, so that everything downstream sees one representation. YAML scalars follow the
 * YAML 1.2 core schema (plain `true`, `null`, `12`, `1.5e3` are typed; quoted ones are strings).
 * Aliases are expanded by copying, against a node budget proportional to the input size, so a
 * "billion laughs" document fails with ERR_LIMIT instead of eating memory. Also the small string
 * and JSON-pointer helpers the module shares.
 */
#include <ctype.h>
#include <errno.h>
#include <libfyaml.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "openapi/openapi-int.h"

char *oa_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

char *oa_asprintf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : s;
}

int oa_fail(struct err_info *ei, int err, const char *where, const char *fmt, ...)
{
    if (ei == NULL)
        return err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ei->msg, sizeof(ei->msg), fmt, ap);
    va_end(ap);
    snprintf(ei->where, sizeof(ei->where), "%s", where ? where : "");
    ei->line = 0;
    ei->column = 0;
    return err;
}

void oa_ptr_push(char *buf, size_t cap, const char *token)
{
    size_t n = strlen(buf);
    if (n + 1 >= cap)
        return;
    buf[n++] = '/';
    for (const char *p = token; *p && n + 2 < cap; p++) {
        if (*p == '~' || *p == '/') {
            buf[n++] = '~';
            buf[n++] = *p == '~' ? '0' : '1';
        } else {
            buf[n++] = *p;
        }
    }
    buf[n] = '\0';
}

json_t *oa_ptr_get(json_t *root, const char *ptr)
{
    json_t *cur = root;
    if (*ptr == '\0')
        return root;
    if (*ptr != '/')
        return NULL;
    char tok[1024];
    const char *p = ptr + 1;
    for (;;) {
        size_t n = 0;
        while (*p && *p != '/') {
            char c = *p++;
            if (c == '~') {
                if (*p == '0')
                    c = '~';
                else if (*p == '1')
                    c = '/';
                else
                    return NULL;
                p++;
            } else if (c == '%' && isxdigit((unsigned char)p[0]) && isxdigit((unsigned char)p[1])) {
                /* $refs are URI fragments: %7B etc. may appear (e.g. paths with braces) */
                char hex[3] = {p[0], p[1], 0};
                c = (char)strtol(hex, NULL, 16);
                p += 2;
            }
            if (n + 1 >= sizeof(tok))
                return NULL;
            tok[n++] = c;
        }
        tok[n] = '\0';
        if (json_is_object(cur)) {
            cur = json_object_get(cur, tok);
        } else if (json_is_array(cur)) {
            char *end;
            errno = 0;
            unsigned long i = strtoul(tok, &end, 10);
            if (n == 0 || *end || errno || (n > 1 && tok[0] == '0'))
                return NULL;
            cur = json_array_get(cur, i);
        } else {
            return NULL;
        }
        if (cur == NULL)
            return NULL;
        if (*p == '\0')
            return cur;
        p++; /* skip '/' */
    }
}

/* ---- YAML ---------------------------------------------------------------------------------- */

struct yconv {
    size_t budget; /* nodes left */
    struct err_info *ei;
};

static bool word_in(const char *s, size_t n, const char *const *words)
{
    for (; *words; words++)
        if (strlen(*words) == n && memcmp(*words, s, n) == 0)
            return true;
    return false;
}

/* A plain scalar typed by the YAML 1.2 core schema. */
static json_t *plain_scalar(const char *s, size_t n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};
    if (word_in(s, n, nulls))
        return json_null();
    if (word_in(s, n, trues))
        return json_true();
    if (word_in(s, n, falses))
        return json_false();
    char tmp[64];
    if (n > 0 && n < sizeof(tmp)) {
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        char *end;
        const char *d = tmp + (tmp[0] == '-' || tmp[0] == '+');
        if (isdigit((unsigned char)d[0])) {
            errno = 0;
            if (d[0] == '0' && d[1] == 'o') {
                long long v = strtoll(d + 2, &end, 8);
                if (*end == '\0' && !errno && d[2])
                    return json_integer(tmp[0] == '-' ? -v : v);
            } else if (d[0] == '0' && d[1] == 'x') {
                long long v = strtoll(d + 2, &end, 16);
                if (*end == '\0' && !errno && d[2])
                    return json_integer(tmp[0] == '-' ? -v : v);
            } else {
                long long v = strtoll(tmp, &end, 10);
                if (*end == '\0' && !errno)
                    return json_integer(v);
            }
        }
        /* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
        const char *q = d;
        size_t digits = 0;
        while (isdigit((unsigned char)*q))
            q++, digits++;
        if (*q == '.') {
            q++;
            while (isdigit((unsigned char)*q))
                q++, digits++;
        }
        if (digits && (*q == 'e' || *q == 'E')) {
            q++;
            if (*q == '-' || *q == '+')
                q++;
            if (!isdigit((unsigned char)*q))
                q = "x";
            while (isdigit((unsigned char)*q))
                q++;
        }
        if (digits && *q == '\0') {
            double v = strtod(tmp, &end);
            if (*end == '\0' && isfinite(v))
                return json_real(v);
        }
        /* .inf / .nan have no JSON form: they stay strings */
    }
    return json_stringn_nocheck(s, n);
}

static int yconv_node(struct yconv *c, struct fy_node *fyn, int depth, json_t **out);

static int yconv_merge(struct yconv *c, json_t *obj, struct fy_node *src, int depth)
{
    /* `<<: *anchor` or `<<: [*a, *b]`: keys not already present are merged in */
    json_t *m = NULL;
    int rc = yconv_node(c, src, depth + 1, &m);
    if (rc)
        return rc;
    json_t *list = json_is_array(m) ? m : NULL;
    size_t n = list ? json_array_size(list) : 1;
    for (size_t i = 0; i < n; i++) {
        json_t *one = list ? json_array_get(list, i) : m;
        const char *k;
        json_t *v;
        if (!json_is_object(one)) {
            json_decref(m);
            return oa_fail(c->ei, ERR_PARSE, "", "YAML merge key '<<' needs a mapping");
        }
        json_object_foreach(one, k, v)
        {
            if (json_object_get(obj, k) == NULL && json_object_set(obj, k, v) != 0) {
                json_decref(m);
                return ERR_NOMEM;
            }
        }
    }
    json_decref(m);
    return 0;
}

static int yconv_node(struct yconv *c, struct fy_node *fyn, int depth, json_t **out)
{
    if (fyn == NULL) {
        *out = json_null();
        return 0;
    }
    if (c->budget == 0)
        return oa_fail(c->ei, ERR_LIMIT, "",
                       "YAML document expands to too many nodes (aliases?); refused");
    c->budget--;
    if (depth > OPENAPI_MAX_DEPTH)
        return oa_fail(c->ei, ERR_LIMIT, "", "YAML nesting deeper than %d", OPENAPI_MAX_DEPTH);
    if (fy_node_is_alias(fyn)) {
        struct fy_node *target = fy_node_resolve_alias(fyn);
        if (target == NULL)
            return oa_fail(c->ei, ERR_PARSE, "", "YAML alias to an unknown anchor");
        return yconv_node(c, target, depth + 1, out);
    }
    switch (fy_node_get_type(fyn)) {
    case FYNT_SCALAR: {
        size_t n;
        const char *s = fy_node_get_scalar(fyn, &n);
        if (s == NULL)
            s = "", n = 0;
        size_t tlen = 0;
        const char *tag = fy_node_get_tag(fyn, &tlen);
        bool is_str_tag = tag && tlen >= 3 && memcmp(tag + tlen - 3, "str", 3) == 0;
        json_t *v = fy_node_get_style(fyn) == FYNS_PLAIN && !is_str_tag
                        ? plain_scalar(s, n)
                        : json_stringn_nocheck(s, n);
        if (v == NULL)
            return ERR_NOMEM;
        *out = v;
        return 0;
    }
    case FYNT_SEQUENCE: {
        json_t *arr = json_array();
        if (arr == NULL)
            return ERR_NOMEM;
        void *it = NULL;
        struct fy_node *item;
        while ((item = fy_node_sequence_iterate(fyn, &it)) != NULL) {
            json_t *v;
            int rc = yconv_node(c, item, depth + 1, &v);
            if (rc == 0 && json_array_append_new(arr, v) != 0)
                rc = ERR_NOMEM;
            if (rc) {
                json_decref(arr);
                return rc;
            }
        }
        *out = arr;
        return 0;
    }
    case FYNT_MAPPING: {
        json_t *obj = json_object();
        if (obj == NULL)
            return ERR_NOMEM;
        void *it = NULL;
        struct fy_node_pair *pair;
        struct fy_node *merge = NULL;
        while ((pair = fy_node_mapping_iterate(fyn, &it)) != NULL) {
            struct fy_node *k = fy_node_pair_key(pair);
            if (k && fy_node_is_alias(k))
                k = fy_node_resolve_alias(k);
            if (k == NULL || fy_node_get_type(k) != FYNT_SCALAR) {
                json_decref(obj);
                return oa_fail(c->ei, ERR_PARSE, "", "YAML mapping key is not a scalar");
            }
            size_t kn;
            const char *ks = fy_node_get_scalar(k, &kn);
            if (ks == NULL)
                ks = "", kn = 0;
            if (kn == 2 && memcmp(ks, "<<", 2) == 0 && fy_node_get_style(k) == FYNS_PLAIN) {
                merge = fy_node_pair_value(pair);
                continue;
            }
            char *key = strndup(ks, kn);
            json_t *v = NULL;
            int rc = key ? yconv_node(c, fy_node_pair_value(pair), depth + 1, &v) : ERR_NOMEM;
            if (rc == 0 && json_object_set_new(obj, key, v) != 0)
                rc = ERR_NOMEM;
            free(key);
            if (rc) {
                json_decref(obj);
                return rc;
            }
        }
        if (merge) {
            int rc = yconv_merge(c, obj, merge, depth);
            if (rc) {
                json_decref(obj);
                return rc;
            }
        }
        *out = obj;
        return 0;
    }
    }
    return oa_fail(c->ei, ERR_PARSE, "", "unknown YAML node type");
}

static void diag_quiet_cb(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
}

/* Offset of the first byte that is not well-formed UTF-8 (or a NUL), or len. */
static size_t utf8_invalid_at(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n = c < 0x80             ? 1
                   : (c & 0xE0) == 0xC0 ? 2
                   : (c & 0xF0) == 0xE0 ? 3
                   : (c & 0xF8) == 0xF0 ? 4
                                        : 0;
        if (n == 0 || c == 0 || c == 0xC0 || c == 0xC1 || c > 0xF4 || i + n > len)
            return i;
        for (size_t k = 1; k < n; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
        if ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] >= 0xA0) ||
            (c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] >= 0x90))
            return i; /* overlong, surrogate, beyond U+10FFFF */
        i += n;
    }
    return len;
}

static int parse_yaml(const char *data, size_t len, json_t **out, struct err_info *ei)
{
    /* YAML is Unicode text; refusing other bytes up front also keeps libfyaml 0.7.12 out of a
     * scanner loop it enters on some invalid sequences (found by fuzz_openapi) */
    size_t bad = utf8_invalid_at((const unsigned char *)data, len);
    if (bad < len) {
        char where[48];
        snprintf(where, sizeof(where), "byte %zu", bad);
        return oa_fail(ei, ERR_PARSE, where, "invalid YAML: not UTF-8 text (byte %zu)", bad);
    }

    struct fy_diag_cfg dcfg = {
        .fp = NULL, .output_fn = diag_quiet_cb, .level = FYET_ERROR, .module_mask = ~0u};
    struct fy_diag *diag = fy_diag_create(&dcfg);
    if (diag == NULL)
        return ERR_NOMEM;
    fy_diag_set_collect_errors(diag, true);
    struct fy_parse_cfg cfg = {.flags = FYPCF_QUIET | FYPCF_COLLECT_DIAG, .diag = diag};
    int rc = 0;
    json_t *root = NULL;
    struct fy_document *fyd = fy_document_build_from_string(&cfg, data, len);
    if (fyd == NULL) {
        void *it = NULL;
        struct fy_diag_error *e = fy_diag_errors_iterate(diag, &it);
        rc = oa_fail(ei, ERR_PARSE, "", "invalid YAML: %s", e && e->msg ? e->msg : "syntax error");
        if (ei && e) {
            ei->line = e->line + 1;
            ei->column = e->column + 1;
            snprintf(ei->where, sizeof(ei->where), "line %d, column %d", ei->line, ei->column);
        }
        goto out;
    }
    /* every node needs at least ~2 bytes of input unless it is an alias expansion */
    struct yconv c = {.budget = len + 100000, .ei = ei};
    rc = yconv_node(&c, fy_document_root(fyd), 0, &root);
    if (rc)
        goto out;
    *out = root;
    root = NULL;
out:
    json_decref(root);
    if (fyd)
        fy_document_destroy(fyd);
    fy_diag_destroy(diag);
    return rc;
}

int openapi_parse_text(const char *data, size_t len, json_t **out, struct err_info *ei)
{
    size_t i = 0;
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
        i = 3; /* BOM */
    while (i < len && isspace((unsigned char)data[i]))
        i++;
    if (i == len)
        return oa_fail(ei, ERR_PARSE, "", "empty document");
    if (data[i] != '{' && data[i] != '[')
        return parse_yaml(data, len, out, ei);
    json_error_t je;
    json_t *root = json_loadb(data + i, len - i, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        oa_fail(ei, ERR_PARSE, "", "invalid JSON: %s", je.text);
        if (ei) {
            ei->line = je.line;
            ei->column = je.column;
            snprintf(ei->where, sizeof(ei->where), "line %d, column %d", je.line, je.column);
        }
        return ERR_PARSE;
    }
    *out = root;
    return 0;
}

/*
 * The JSONPath subset (RFC 9535) that OpenAPI Overlay documents use to target nodes: the root
 * `$`, member names (`.name`, `['name']`, `["name"]`), wildcards (`.*`, `[*]`), array indexes
 * (`[0]`, `[-1]`), descendants (`..name`, `..*`, `..[...]`) and filters over the children of a
 * node (`[?(@.x == 'y')]`, `[?@.deprecated]`, with == != < <= > >=, &&, ||, ! and parentheses;
 * the operands are literals or singular queries from `@` or `$`). Everything else (slices,
 * unions, functions, regular expressions) is refused with a message that names the construct
 * and the character where it starts, never ignored: an overlay whose target silently meant
 * something else would edit the wrong part of an API.
 *
 * A compiled path is immutable. A query returns every node it selects with its parent and its
 * key or index, so that an overlay can replace or remove it; nodes selected twice (through `..`)
 * are returned once.
 */
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "openapi/openapi-int.h"

#define JP_MAX_TEXT 4096    /* bytes of one path */
#define JP_MAX_NESTING 32   /* parentheses and negations in a filter */
#define JP_MAX_NODES 500000 /* nodes one query may select */

enum sel_kind { SEL_NAME, SEL_WILDCARD, SEL_INDEX, SEL_FILTER };

enum ex_kind { EX_OR, EX_AND, EX_NOT, EX_CMP, EX_EXISTS, EX_LITERAL, EX_QUERY };

enum cmp_op { CMP_EQ, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE };

struct jp_expr {
    enum ex_kind kind;
    enum cmp_op op;
    struct jp_expr *a, *b;
    json_t *literal;            /* EX_LITERAL */
    struct openapi_jsonpath *q; /* EX_QUERY, EX_EXISTS: a singular query */
    bool relative;              /* the query starts at @ (else $) */
};

struct jp_segment {
    bool descendant;
    enum sel_kind kind;
    char *name;
    long long index;
    struct jp_expr *filter;
};

struct openapi_jsonpath {
    struct jp_segment *segs;
    size_t nsegs;
};

struct parser {
    const char *text; /* the whole path, for messages */
    const char *p;
    int depth;
    struct err_info *ei;
};

static int perr(struct parser *ps, const char *at, const char *what)
{
    return oa_fail(ps->ei, ERR_INVAL, "", "JSONPath '%.200s' at character %zu: %s", ps->text,
                   (size_t)(at - ps->text) + 1, what);
}

static void skip_ws(struct parser *ps)
{
    while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')
        ps->p++;
}

static void expr_free(struct jp_expr *e);

void openapi_jsonpath_free(struct openapi_jsonpath *jp)
{
    if (jp == NULL)
        return;
    for (size_t i = 0; i < jp->nsegs; i++) {
        free(jp->segs[i].name);
        expr_free(jp->segs[i].filter);
    }
    free(jp->segs);
    free(jp);
}

static void expr_free(struct jp_expr *e)
{
    if (e == NULL)
        return;
    expr_free(e->a);
    expr_free(e->b);
    json_decref(e->literal);
    openapi_jsonpath_free(e->q);
    free(e);
}

static struct jp_segment *seg_push(struct openapi_jsonpath *jp)
{
    struct jp_segment *s = realloc(jp->segs, (jp->nsegs + 1) * sizeof(*s));
    if (s == NULL)
        return NULL;
    jp->segs = s;
    memset(&s[jp->nsegs], 0, sizeof(*s));
    return &s[jp->nsegs++];
}

/* Member-name shorthand: letters, digits, `_`, `$`, non-ASCII; `-` too (x-internal is common in
   overlays, although RFC 9535 asks for the bracket form there). */
static bool name_char(char c, bool first)
{
    unsigned char u = (unsigned char)c;
    return isalpha(u) || c == '_' || c == '$' || u >= 0x80 || (!first && (isdigit(u) || c == '-'));
}

/* A quoted string ('...' or "...") with JSON-style escapes; ps->p is at the quote. */
static int parse_string(struct parser *ps, char **out)
{
    const char *start = ps->p;
    char q = *ps->p++;
    size_t cap = strlen(ps->p) + 1, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        return ERR_NOMEM;
    for (;;) {
        char c = *ps->p;
        if (c == '\0') {
            free(buf);
            return perr(ps, start, "unterminated string");
        }
        ps->p++;
        if (c == q)
            break;
        if (c != '\\') {
            buf[n++] = c;
            continue;
        }
        char e = *ps->p++;
        switch (e) {
        case '\'':
        case '"':
        case '\\':
        case '/':
            buf[n++] = e;
            break;
        case 'b':
            buf[n++] = '\b';
            break;
        case 'f':
            buf[n++] = '\f';
            break;
        case 'n':
            buf[n++] = '\n';
            break;
        case 'r':
            buf[n++] = '\r';
            break;
        case 't':
            buf[n++] = '\t';
            break;
        default:
            free(buf);
            return perr(
                ps, ps->p - 2,
                "unsupported escape in a string (\\' \\\" \\\\ \\/ \\b \\f \\n \\r \\t are)");
        }
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

static int parse_int(struct parser *ps, long long *out)
{
    const char *start = ps->p;
    char *end;
    long long v = strtoll(ps->p, &end, 10);
    if (end == ps->p || (end - ps->p > 1 && ps->p[ps->p[0] == '-'] == '0'))
        return perr(ps, start, "expected an integer");
    ps->p = end;
    *out = v;
    return 0;
}

static int parse_or(struct parser *ps, struct jp_expr **out);

/* The inside of [...] after the '['; ps->p is past the '['. */
static int parse_bracket(struct parser *ps, struct jp_segment *s)
{
    const char *open = ps->p - 1;
    skip_ws(ps);
    const char *at = ps->p;
    int rc;
    if (*ps->p == '\'' || *ps->p == '"') {
        s->kind = SEL_NAME;
        if ((rc = parse_string(ps, &s->name)) != 0)
            return rc;
    } else if (*ps->p == '*') {
        s->kind = SEL_WILDCARD;
        ps->p++;
    } else if (*ps->p == '?') {
        s->kind = SEL_FILTER;
        ps->p++; /* `?(expr)` (the common pre-RFC form) or `?expr`: parentheses nest anyway */
        if ((rc = parse_or(ps, &s->filter)) != 0)
            return rc;
    } else if (*ps->p == '-' || isdigit((unsigned char)*ps->p)) {
        s->kind = SEL_INDEX;
        if ((rc = parse_int(ps, &s->index)) != 0)
            return rc;
        skip_ws(ps);
        if (*ps->p == ':')
            return perr(ps, open, "array slices ([start:end]) are not supported");
    } else if (*ps->p == ':') {
        return perr(ps, open, "array slices ([start:end]) are not supported");
    } else {
        return perr(ps, at, "expected 'name', *, an index or ?filter inside [...]");
    }
    skip_ws(ps);
    if (*ps->p == ',')
        return perr(ps, ps->p,
                    "unions of selectors ([a,b]) are not supported; use one action "
                    "per target");
    if (*ps->p != ']')
        return perr(ps, ps->p, "expected ']'");
    ps->p++;
    return 0;
}

/*
 * Segments until the end of the text (top level) or until a character that cannot continue a
 * path (inside a filter). `singular`: only names and indexes (filter comparisons need one node).
 */
static int parse_segments(struct parser *ps, struct openapi_jsonpath *jp, bool singular)
{
    for (;;) {
        const char *at = ps->p;
        bool desc = false;
        if (ps->p[0] == '.' && ps->p[1] == '.') {
            desc = true;
            ps->p += 2;
        } else if (ps->p[0] == '.') {
            ps->p++;
        } else if (ps->p[0] != '[') {
            return 0;
        }
        if (desc && singular)
            return perr(ps, at, "a filter comparison needs a singular query; '..' is not allowed");
        struct jp_segment *s = seg_push(jp);
        if (s == NULL)
            return ERR_NOMEM;
        s->descendant = desc;
        if (*ps->p == '[' && (desc || at[0] == '[')) {
            ps->p++;
            int rc = parse_bracket(ps, s);
            if (rc)
                return rc;
        } else if (*ps->p == '*') {
            s->kind = SEL_WILDCARD;
            ps->p++;
        } else if (name_char(*ps->p, true)) {
            const char *b = ps->p;
            while (name_char(*ps->p, false))
                ps->p++;
            s->kind = SEL_NAME;
            if ((s->name = strndup(b, (size_t)(ps->p - b))) == NULL)
                return ERR_NOMEM;
            if (*ps->p == '(')
                return perr(ps, b, "functions are not supported");
        } else {
            return perr(ps, ps->p, "expected a member name, * or [ after '.'");
        }
        if (singular && (s->kind == SEL_WILDCARD || s->kind == SEL_FILTER))
            return perr(ps, at,
                        "a filter comparison needs a singular query (names and indexes only)");
    }
}

static struct jp_expr *ex_new(enum ex_kind kind)
{
    struct jp_expr *e = calloc(1, sizeof(*e));
    if (e)
        e->kind = kind;
    return e;
}

/* A comparable: a literal or a singular query from @ or $. */
static int parse_operand(struct parser *ps, struct jp_expr **out, bool *is_query)
{
    skip_ws(ps);
    const char *at = ps->p;
    struct jp_expr *e = NULL;
    int rc = 0;
    *is_query = false;
    if (*ps->p == '@' || *ps->p == '$') {
        if ((e = ex_new(EX_QUERY)) == NULL || (e->q = calloc(1, sizeof(*e->q))) == NULL) {
            rc = ERR_NOMEM;
            goto out;
        }
        e->relative = *ps->p == '@';
        ps->p++;
        /* parsed as singular; an existence test re-checks nothing else, so it is singular too */
        if ((rc = parse_segments(ps, e->q, true)) != 0)
            goto out;
        *is_query = true;
    } else if (*ps->p == '\'' || *ps->p == '"') {
        char *s;
        if ((rc = parse_string(ps, &s)) != 0)
            goto out;
        e = ex_new(EX_LITERAL);
        if (e)
            e->literal = json_string(s);
        free(s);
        if (e == NULL || e->literal == NULL)
            rc = ERR_NOMEM;
    } else if (*ps->p == '-' || isdigit((unsigned char)*ps->p)) {
        char *end;
        double d = strtod(ps->p, &end);
        if (end == ps->p || !isfinite(d)) {
            rc = perr(ps, at, "expected a number");
            goto out;
        }
        ps->p = end;
        if ((e = ex_new(EX_LITERAL)) == NULL || (e->literal = json_real(d)) == NULL)
            rc = ERR_NOMEM;
    } else if (strncmp(ps->p, "true", 4) == 0 || strncmp(ps->p, "false", 5) == 0 ||
               strncmp(ps->p, "null", 4) == 0) {
        bool t = ps->p[0] == 't', n = ps->p[0] == 'n';
        ps->p += t || n ? 4 : 5;
        if ((e = ex_new(EX_LITERAL)) == NULL ||
            (e->literal = n ? json_null() : json_boolean(t)) == NULL)
            rc = ERR_NOMEM;
    } else if (isalpha((unsigned char)*ps->p)) {
        rc = perr(ps, at, "functions (length, count, match, search, value) are not supported");
    } else {
        rc = perr(ps, at, "expected @, $, a string, a number, true, false or null");
    }
out:
    if (rc) {
        expr_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

static int parse_cmp_op(struct parser *ps, enum cmp_op *op)
{
    static const struct {
        const char *s;
        enum cmp_op op;
    } ops[] = {{"==", CMP_EQ}, {"!=", CMP_NE}, {"<=", CMP_LE},
               {">=", CMP_GE}, {"<", CMP_LT},  {">", CMP_GT}};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strncmp(ps->p, ops[i].s, strlen(ops[i].s)) == 0) {
            ps->p += strlen(ops[i].s);
            *op = ops[i].op;
            return 1;
        }
    return 0;
}

/* ! primary, ( or ), comparison, or existence test */
static int parse_unary(struct parser *ps, struct jp_expr **out)
{
    skip_ws(ps);
    if (++ps->depth > JP_MAX_NESTING)
        return perr(ps, ps->p, "filter nested too deeply");
    int rc = 0;
    struct jp_expr *e = NULL, *rhs = NULL;
    if (*ps->p == '!' && ps->p[1] != '=') {
        ps->p++;
        if ((e = ex_new(EX_NOT)) == NULL)
            rc = ERR_NOMEM;
        else
            rc = parse_unary(ps, &e->a);
        goto out;
    }
    if (*ps->p == '(') {
        ps->p++;
        if ((rc = parse_or(ps, &e)) != 0)
            goto out;
        skip_ws(ps);
        if (*ps->p != ')') {
            rc = perr(ps, ps->p, "expected ')'");
            goto out;
        }
        ps->p++;
        goto out;
    }
    if (*ps->p == '=' && ps->p[1] == '~') {
        rc = perr(ps, ps->p, "regular expressions (=~) are not supported");
        goto out;
    }
    bool lq, rq;
    if ((rc = parse_operand(ps, &e, &lq)) != 0)
        goto out;
    skip_ws(ps);
    if (ps->p[0] == '=' && ps->p[1] == '~') {
        rc = perr(ps, ps->p, "regular expressions (=~) are not supported");
        goto out;
    }
    enum cmp_op op;
    if (!parse_cmp_op(ps, &op)) {
        if (!lq) {
            rc = perr(ps, ps->p, "a literal alone is not a test; compare it with == != < <= > >=");
            goto out;
        }
        e->kind = EX_EXISTS;
        goto out;
    }
    if ((rc = parse_operand(ps, &rhs, &rq)) != 0)
        goto out;
    struct jp_expr *c = ex_new(EX_CMP);
    if (c == NULL) {
        rc = ERR_NOMEM;
        goto out;
    }
    c->op = op;
    c->a = e;
    c->b = rhs;
    e = c;
    rhs = NULL;
out:
    ps->depth--;
    expr_free(rhs);
    if (rc) {
        expr_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

static int parse_binary(struct parser *ps, struct jp_expr **out, bool is_or)
{
    struct jp_expr *e = NULL;
    int rc = is_or ? parse_binary(ps, &e, false) : parse_unary(ps, &e);
    while (rc == 0) {
        skip_ws(ps);
        const char *tok = is_or ? "||" : "&&";
        if (strncmp(ps->p, tok, 2) != 0)
            break;
        ps->p += 2;
        struct jp_expr *n = ex_new(is_or ? EX_OR : EX_AND);
        if (n == NULL) {
            rc = ERR_NOMEM;
            break;
        }
        n->a = e;
        e = n;
        rc = is_or ? parse_binary(ps, &n->b, false) : parse_unary(ps, &n->b);
    }
    if (rc) {
        expr_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

static int parse_or(struct parser *ps, struct jp_expr **out)
{
    return parse_binary(ps, out, true);
}

int openapi_jsonpath_compile(const char *text, struct openapi_jsonpath **out, struct err_info *ei)
{
    struct parser ps = {.text = text, .p = text, .ei = ei};
    if (strlen(text) > JP_MAX_TEXT)
        return oa_fail(ei, ERR_LIMIT, "", "JSONPath longer than %d bytes", JP_MAX_TEXT);
    if (*text != '$')
        return perr(&ps, text, "a JSONPath starts with $ (the document root)");
    struct openapi_jsonpath *jp = calloc(1, sizeof(*jp));
    if (jp == NULL)
        return ERR_NOMEM;
    ps.p++;
    int rc = parse_segments(&ps, jp, false);
    if (rc == 0 && *ps.p != '\0')
        rc = perr(&ps, ps.p, "expected '.', '..' or '[' (or the end of the path)");
    if (rc) {
        openapi_jsonpath_free(jp);
        if (rc == ERR_NOMEM)
            oa_fail(ei, rc, "", "out of memory");
        return rc;
    }
    *out = jp;
    return 0;
}

bool oa_jsonpath_is_root(const struct openapi_jsonpath *jp)
{
    return jp->nsegs == 0;
}

/* ---- evaluation ---- */

struct nodes {
    struct openapi_jsonpath_node *v;
    size_t n, cap;
};

static int nodes_push(struct nodes *ns, json_t *parent, const char *key, size_t index, json_t *node)
{
    if (ns->n == JP_MAX_NODES)
        return ERR_LIMIT;
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 16;
        struct openapi_jsonpath_node *v = realloc(ns->v, cap * sizeof(*v));
        if (v == NULL)
            return ERR_NOMEM;
        ns->v = v;
        ns->cap = cap;
    }
    struct openapi_jsonpath_node *e = &ns->v[ns->n++];
    e->parent = parent;
    e->key = key;
    e->index = index;
    e->node = node;
    return 0;
}

/* The value of a singular query from `from`, or NULL ("nothing"). */
static json_t *singular(const struct openapi_jsonpath *q, json_t *from)
{
    json_t *cur = from;
    for (size_t i = 0; cur && i < q->nsegs; i++) {
        const struct jp_segment *s = &q->segs[i];
        if (s->kind == SEL_NAME) {
            cur = json_is_object(cur) ? json_object_get(cur, s->name) : NULL;
        } else {
            long long n = (long long)json_array_size(cur),
                      k = s->index < 0 ? n + s->index : s->index;
            cur = json_is_array(cur) && k >= 0 && k < n ? json_array_get(cur, (size_t)k) : NULL;
        }
    }
    return cur;
}

static bool num_of(json_t *v, double *d)
{
    if (!json_is_number(v))
        return false;
    *d = json_number_value(v);
    return true;
}

static bool values_equal(json_t *a, json_t *b)
{
    double x, y;
    if (a == NULL || b == NULL)
        return a == b;
    if (num_of(a, &x) && num_of(b, &y))
        return x == y;
    return json_equal(a, b);
}

/* a < b for two numbers or two strings; false otherwise */
static bool values_less(json_t *a, json_t *b)
{
    double x, y;
    if (num_of(a, &x) && num_of(b, &y))
        return x < y;
    if (json_is_string(a) && json_is_string(b))
        return strcmp(json_string_value(a), json_string_value(b)) < 0;
    return false;
}

static json_t *operand(const struct jp_expr *e, json_t *cur, json_t *root)
{
    return e->kind == EX_LITERAL ? e->literal : singular(e->q, e->relative ? cur : root);
}

static bool test(const struct jp_expr *e, json_t *cur, json_t *root)
{
    switch (e->kind) {
    case EX_OR:
        return test(e->a, cur, root) || test(e->b, cur, root);
    case EX_AND:
        return test(e->a, cur, root) && test(e->b, cur, root);
    case EX_NOT:
        return !test(e->a, cur, root);
    case EX_EXISTS:
        return singular(e->q, e->relative ? cur : root) != NULL;
    case EX_CMP: {
        json_t *a = operand(e->a, cur, root), *b = operand(e->b, cur, root);
        switch (e->op) {
        case CMP_EQ:
            return values_equal(a, b);
        case CMP_NE:
            return !values_equal(a, b);
        case CMP_LT:
            return values_less(a, b);
        case CMP_LE:
            return values_less(a, b) || (a && b && values_equal(a, b));
        case CMP_GT:
            return values_less(b, a);
        case CMP_GE:
            return values_less(b, a) || (a && b && values_equal(a, b));
        }
        return false;
    }
    case EX_LITERAL:
    case EX_QUERY:
        break;
    }
    return false;
}

/* Apply one selector to the children of `node`. */
static int select_children(const struct jp_segment *s, json_t *node, json_t *root,
                           struct nodes *out)
{
    int rc = 0;
    if (s->kind == SEL_NAME) {
        json_t *v = json_is_object(node) ? json_object_get(node, s->name) : NULL;
        if (v)
            rc = nodes_push(out, node, json_object_iter_key(json_object_iter_at(node, s->name)), 0,
                            v);
    } else if (s->kind == SEL_INDEX) {
        long long n = (long long)json_array_size(node), k = s->index < 0 ? n + s->index : s->index;
        if (json_is_array(node) && k >= 0 && k < n)
            rc = nodes_push(out, node, NULL, (size_t)k, json_array_get(node, (size_t)k));
    } else if (json_is_object(node)) {
        const char *k;
        json_t *v;
        json_object_foreach(node, k, v)
        {
            if (s->kind == SEL_WILDCARD || test(s->filter, v, root))
                if ((rc = nodes_push(out, node, k, 0, v)) != 0)
                    break;
        }
    } else if (json_is_array(node)) {
        size_t i;
        json_t *v;
        json_array_foreach(node, i, v)
        {
            if (s->kind == SEL_WILDCARD || test(s->filter, v, root))
                if ((rc = nodes_push(out, node, NULL, i, v)) != 0)
                    break;
        }
    }
    return rc;
}

/* The selector applied to `node` and to every node below it (document order). */
static int select_descendants(const struct jp_segment *s, json_t *node, json_t *root,
                              struct nodes *out, int depth)
{
    if (depth > OPENAPI_MAX_DEPTH)
        return ERR_LIMIT;
    int rc = select_children(s, node, root, out);
    if (rc)
        return rc;
    if (json_is_object(node)) {
        const char *k;
        json_t *v;
        json_object_foreach(node, k, v)
        {
            if ((rc = select_descendants(s, v, root, out, depth + 1)) != 0)
                return rc;
        }
    } else if (json_is_array(node)) {
        size_t i;
        json_t *v;
        json_array_foreach(node, i, v)
        {
            if ((rc = select_descendants(s, v, root, out, depth + 1)) != 0)
                return rc;
        }
    }
    return 0;
}

static int cmp_node_ptr(const void *a, const void *b)
{
    const struct openapi_jsonpath_node *x = *(struct openapi_jsonpath_node *const *)a;
    const struct openapi_jsonpath_node *y = *(struct openapi_jsonpath_node *const *)b;
    if (x->node != y->node)
        return (uintptr_t)x->node < (uintptr_t)y->node ? -1 : 1;
    return x < y ? -1 : x > y; /* the earlier entry first: it is the one kept */
}

/* Drop later duplicates of a node, keeping document order. */
static int dedupe(struct nodes *ns)
{
    if (ns->n < 2)
        return 0;
    struct openapi_jsonpath_node **by = malloc(ns->n * sizeof(*by));
    if (by == NULL)
        return ERR_NOMEM;
    for (size_t i = 0; i < ns->n; i++)
        by[i] = &ns->v[i];
    qsort(by, ns->n, sizeof(*by), cmp_node_ptr);
    for (size_t i = 1; i < ns->n; i++)
        if (by[i]->node == by[i - 1]->node)
            by[i]->parent = by[i]->node = NULL; /* marked */
    free(by);
    size_t w = 0;
    for (size_t i = 0; i < ns->n; i++)
        if (ns->v[i].node)
            ns->v[w++] = ns->v[i];
    ns->n = w;
    return 0;
}

int openapi_jsonpath_query(const struct openapi_jsonpath *jp, json_t *root,
                           struct openapi_jsonpath_node **out, size_t *count)
{
    struct nodes cur = {0}, next = {0};
    int rc = nodes_push(&cur, NULL, NULL, 0, root);
    for (size_t i = 0; rc == 0 && i < jp->nsegs; i++) {
        next.n = 0;
        for (size_t k = 0; rc == 0 && k < cur.n; k++)
            rc = jp->segs[i].descendant
                     ? select_descendants(&jp->segs[i], cur.v[k].node, root, &next, 0)
                     : select_children(&jp->segs[i], cur.v[k].node, root, &next);
        if (rc == 0 && jp->segs[i].descendant)
            rc = dedupe(&next);
        struct nodes t = cur;
        cur = next;
        next = t;
    }
    free(next.v);
    if (rc) {
        free(cur.v);
        return rc;
    }
    *out = cur.v;
    *count = cur.n;
    return 0;
}

/*
 * The configuration loader. The YAML text goes through libfyaml's event parser into a small tree
 * of our own (struct ynode) that carries a 1-based line:column for every node, including block
 * mappings and empty values; libfyaml 0.7 has no public start mark for document collection
 * nodes, and the tree also lets us refuse aliases (no billion laughs) and keep the walk simple.
 * The schema walk then checks every mapping against a fixed list of keys and copies values into
 * a struct config whose strings and arrays all live in one arena owned by the snapshot, so that
 * the last config_unref frees everything with one call. Every refusal is one message of the form
 * "file:line:column: what is wrong; what was expected".
 */
#include "config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libfyaml.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- arena: every allocation of a snapshot (or of a parse tree) freed at once ---- */

struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    max_align_t data[];
};

struct arena {
    struct arena_block *head;
};

#define ARENA_BLOCK 16384

/* Zeroed memory aligned for any type, or NULL. */
static void *arena_alloc(struct arena *a, size_t n)
{
    size_t al = alignof(max_align_t);
    if (n > SIZE_MAX - al)
        return NULL;
    n = (n + al - 1) & ~(al - 1);
    struct arena_block *b = a->head;
    if (b == NULL || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        b = malloc(sizeof(*b) + cap);
        if (b == NULL)
            return NULL;
        b->used = 0;
        b->cap = cap;
        b->next = a->head;
        a->head = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

static char *arena_strndup(struct arena *a, const char *s, size_t len)
{
    if (len == SIZE_MAX)
        return NULL;
    char *p = arena_alloc(a, len + 1);
    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

static void arena_release(struct arena *a)
{
    struct arena_block *b = a->head;
    while (b != NULL) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}

/* The snapshot: the public struct first, then the arena that owns everything it points to. */
struct snapshot {
    struct config pub;
    struct arena arena;
};

/* ---- the YAML tree ---- */

enum ynode_type { YN_SCALAR, YN_SEQ, YN_MAP };

struct ynode {
    enum ynode_type type;
    int line, col;    /* 1-based */
    bool plain;       /* scalar written without quotes (so may mean null, a bool, a number) */
    const char *text; /* scalar: NUL-terminated copy of the value */
    size_t len;       /* scalar: length, which may include NUL bytes from "\0" escapes */
    size_t n;         /* children (a mapping has key, value, key, value, ...) */
    struct ynode *first, *last, *next;
};

#define TREE_MAX_DEPTH 64
/* Bounds on lists, so that a hostile file cannot make the quadratic duplicate checks slow. */
#define MAX_LISTENERS 64
#define MAX_SERVERS 1024
#define MAX_LIST_ITEMS 1024 /* args, allowed_hosts, allowed_origins, env, headers */

struct loader {
    const char *name; /* file name used in messages */
    const char *base; /* folder relative paths are resolved against, or NULL (config_load_string) */
    struct err_info *ei;
    struct arena tree; /* ynodes, freed when loading ends */
    struct arena *out; /* the snapshot's arena */
    struct config *c;
};

/* Format "name:line:col: msg" into ei and return err. */
static int fail(struct loader *L, int err, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail(struct loader *L, int err, int line, int col, const char *fmt, ...)
{
    struct err_info *ei = L->ei;
    if (ei == NULL)
        return err;
    int o;
    if (line > 0)
        o = snprintf(ei->msg, sizeof(ei->msg), "%s:%d:%d: ", L->name, line, col);
    else
        o = snprintf(ei->msg, sizeof(ei->msg), "%s: ", L->name);
    if (o < 0)
        o = 0;
    if ((size_t)o < sizeof(ei->msg)) { /* a message too long for msg is cut, never overrun */
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ei->msg + o, sizeof(ei->msg) - (size_t)o, fmt, ap);
        va_end(ap);
    }
    snprintf(ei->where, sizeof(ei->where), "%s", L->name);
    ei->line = line > 0 ? line : 0;
    ei->column = line > 0 ? col : 0;
    return err;
}

#define FAILN(L, node, ...) fail((L), ERR_INVAL, (node)->line, (node)->col, __VA_ARGS__)

/* A user value made safe to quote inside a message: escaped, at most ~48 characters. */
struct quoted {
    char s[80];
};

static struct quoted quote_bytes(const char *p, size_t len)
{
    struct quoted q;
    size_t o = 0;
    q.s[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (o > 52) {
            memcpy(q.s + o, "...", 3);
            o += 3;
            break;
        }
        if (ch == '"' || ch == '\\') {
            q.s[o++] = '\\';
            q.s[o++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            o += (size_t)snprintf(q.s + o, sizeof(q.s) - o, "\\x%02x", ch);
        } else {
            q.s[o++] = (char)ch;
        }
    }
    q.s[o++] = '"';
    q.s[o] = '\0';
    return q;
}

static struct quoted quote(const struct ynode *n)
{
    return quote_bytes(n->text, n->len);
}

static bool is_null(const struct ynode *n)
{
    if (n->type != YN_SCALAR || !n->plain)
        return false;
    return n->len == 0 || strcmp(n->text, "~") == 0 || strcmp(n->text, "null") == 0 ||
           strcmp(n->text, "Null") == 0 || strcmp(n->text, "NULL") == 0;
}

static const char *kind(const struct ynode *n)
{
    if (n->type == YN_MAP)
        return "a mapping";
    if (n->type == YN_SEQ)
        return "a sequence";
    return is_null(n) ? "empty" : "a scalar";
}

/* ---- building the tree from libfyaml events ---- */

static struct ynode *node_new(struct loader *L, enum ynode_type t, const struct fy_mark *m,
                              const struct ynode *prev)
{
    struct ynode *n = arena_alloc(&L->tree, sizeof(*n));
    if (n == NULL)
        return NULL;
    n->type = t;
    if (m != NULL && m->line >= 0) {
        n->line = m->line + 1;
        n->col = m->column + 1;
    } else if (prev != NULL) { /* an empty value has no mark: point at what precedes it */
        n->line = prev->line;
        n->col = prev->col;
    } else {
        n->line = 1;
        n->col = 1;
    }
    return n;
}

static void node_add(struct ynode *parent, struct ynode *child)
{
    if (parent->last)
        parent->last->next = child;
    else
        parent->first = child;
    parent->last = child;
    parent->n++;
}

/* The first diagnostic libfyaml collected, as our message. */
static int yaml_syntax_error(struct loader *L, struct fy_diag *diag, const struct ynode *last)
{
    void *it = NULL;
    struct fy_diag_error *de;
    while ((de = fy_diag_errors_iterate(diag, &it)) != NULL) {
        if (de->type != FYET_ERROR)
            continue;
        int line = de->line > 0 ? de->line : 1, col = de->column > 0 ? de->column : 1;
        return fail(L, ERR_PARSE, line, col, "invalid YAML: %s; expected well-formed YAML",
                    de->msg ? de->msg : "syntax error");
    }
    return fail(L, ERR_PARSE, last ? last->line : 1, last ? last->col : 1,
                "invalid YAML after this point; expected well-formed YAML");
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 (overlong, surrogate, > U+10FFFF,
   truncated, stray continuation byte). */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    size_t n = c >= 0xc2 && c <= 0xdf   ? 2
               : c >= 0xe0 && c <= 0xef ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4
                                        : 0;
    if (n == 0 || n > left)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) || (c == 0xf0 && p[1] < 0x90) ||
        (c == 0xf4 && p[1] > 0x8f))
        return 0;
    return n;
}

/* Refuse input that is not UTF-8 before libfyaml sees it: the YAML spec requires Unicode, our
   messages quote values, and libfyaml 0.7.12 loops forever on some invalid bytes (a '%'
   directive line holding 0xff, found by fuzz_config). */
static int check_utf8(struct loader *L, const char *text, size_t len)
{
    const unsigned char *p = (const unsigned char *)text;
    int line = 1, col = 1;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(p + i, len - i);
        if (n == 0)
            return fail(L, ERR_PARSE, line, col,
                        "byte 0x%02x is not valid UTF-8; expected a UTF-8 text file", p[i]);
        if (p[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
        i += n;
    }
    return 0;
}

/* The value of a single-quoted scalar from its raw text (between the quotes): '' is one quote,
   a line break folds to a space, n > 1 breaks to n - 1 newlines, and the blanks around breaks
   go. Done here because fy_token_get_text in libfyaml 0.7.12 leaks on runs of '' (fuzz_config
   found it) and its token iterator miscounts them. Writes at most len bytes to out. */
static size_t single_quoted(const char *raw, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        if (raw[i] == '\'' && i + 1 < len && raw[i + 1] == '\'') {
            out[o++] = '\'';
            i += 2;
        } else if (raw[i] == '\r' || raw[i] == '\n') {
            while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == '\t'))
                o--;
            size_t breaks = 0;
            while (i < len && strchr(" \t\r\n", raw[i]) != NULL) {
                if (raw[i] == '\n' || (raw[i] == '\r' && (i + 1 >= len || raw[i + 1] != '\n')))
                    breaks++;
                i++;
            }
            if (breaks == 1)
                out[o++] = ' ';
            for (size_t b = 1; b < breaks; b++)
                out[o++] = '\n';
        } else {
            out[o++] = raw[i++];
        }
    }
    return o;
}

static int tree_build(struct loader *L, const char *text, size_t len, struct ynode **rootp)
{
    int err = 0;
    struct fy_diag *diag = NULL;
    struct fy_parser *fyp = NULL;
    struct fy_event *ev = NULL;
    struct ynode *stack[TREE_MAX_DEPTH];
    int depth = 0, ndocs = 0;
    struct ynode *root = NULL, *prev = NULL;

    /* No output at all: errors are collected and read back, never printed to stderr. */
    struct fy_diag_cfg dcfg;
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.output_fn = NULL;
    dcfg.colorize = false;
    dcfg.level = FYET_ERROR;
    diag = fy_diag_create(&dcfg);
    if (diag == NULL) {
        err = fail(L, ERR_NOMEM, 0, 0, "out of memory creating the YAML parser");
        goto out;
    }
    fy_diag_set_collect_errors(diag, true);
    struct fy_parse_cfg pcfg = {
        .flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2 | FYPCF_DISABLE_MMAP_OPT,
        .diag = diag,
    };
    fyp = fy_parser_create(&pcfg);
    if (fyp == NULL || fy_parser_set_string(fyp, text, len) != 0) {
        err = fail(L, ERR_NOMEM, 0, 0, "out of memory creating the YAML parser");
        goto out;
    }

    while ((ev = fy_parser_parse(fyp)) != NULL) {
        const struct fy_mark *m = fy_event_start_mark(ev);
        struct ynode *n = NULL;
        struct fy_token *tag = NULL;
        switch (ev->type) {
        case FYET_DOCUMENT_START:
            if (++ndocs > 1) {
                err = fail(L, ERR_INVAL, m ? m->line + 1 : 1, m ? m->column + 1 : 1,
                           "a second YAML document; expected exactly one document");
                goto out;
            }
            break;
        case FYET_ALIAS: /* libfyaml marks the name after '*'; point at the '*' */
            err = fail(L, ERR_INVAL, m ? m->line + 1 : 1, m && m->column > 0 ? m->column : 1,
                       "aliases (*name) are not supported; expected the value written out");
            goto out;
        case FYET_MAPPING_START:
        case FYET_SEQUENCE_START:
        case FYET_SCALAR:
            if (ev->type == FYET_SCALAR) {
                tag = ev->scalar.tag;
                n = node_new(L, YN_SCALAR, m, prev);
            } else if (ev->type == FYET_MAPPING_START) {
                tag = ev->mapping_start.tag;
                n = node_new(L, YN_MAP, m, prev);
            } else {
                tag = ev->sequence_start.tag;
                n = node_new(L, YN_SEQ, m, prev);
            }
            if (n == NULL) {
                err = fail(L, ERR_NOMEM, 0, 0, "out of memory reading the configuration");
                goto out;
            }
            if (tag != NULL) {
                const struct fy_mark *tm = fy_token_start_mark(tag);
                err = fail(L, ERR_INVAL, tm ? tm->line + 1 : n->line, tm ? tm->column + 1 : n->col,
                           "YAML tags (!tag) are not supported; expected a plain or quoted value");
                goto out;
            }
            if (ev->type == FYET_SCALAR) {
                size_t tl = 0;
                const char *t = NULL;
                enum fy_scalar_style st = fy_token_scalar_style(ev->scalar.value);
                const struct fy_mark *sm = fy_token_start_mark(ev->scalar.value);
                const struct fy_mark *em = fy_token_end_mark(ev->scalar.value);
                if (st == FYSS_SINGLE_QUOTED && sm && em && sm->input_pos <= em->input_pos &&
                    em->input_pos <= len) {
                    char *dq = arena_alloc(&L->tree, em->input_pos - sm->input_pos + 1);
                    if (dq != NULL)
                        tl = single_quoted(text + sm->input_pos, em->input_pos - sm->input_pos, dq);
                    t = dq;
                    if (dq == NULL) {
                        err = fail(L, ERR_NOMEM, 0, 0, "out of memory reading the configuration");
                        goto out;
                    }
                } else {
                    t = fy_token_get_text(ev->scalar.value, &tl);
                }
                n->plain = st == FYSS_PLAIN;
                /* a quoted scalar's mark is just inside the opening quote: point at the quote */
                if ((st == FYSS_SINGLE_QUOTED || st == FYSS_DOUBLE_QUOTED) && n->col > 1 &&
                    m != NULL && m->line >= 0)
                    n->col--;
                n->text = arena_strndup(&L->tree, t ? t : "", t ? tl : 0);
                n->len = t ? tl : 0;
                if (n->text == NULL) {
                    err = fail(L, ERR_NOMEM, 0, 0, "out of memory reading the configuration");
                    goto out;
                }
            }
            if (depth > 0)
                node_add(stack[depth - 1], n);
            else if (root == NULL)
                root = n;
            if (n->type != YN_SCALAR) {
                if (depth == TREE_MAX_DEPTH) {
                    err = fail(L, ERR_INVAL, n->line, n->col,
                               "nesting deeper than %d levels; expected a shallow configuration",
                               TREE_MAX_DEPTH);
                    goto out;
                }
                stack[depth++] = n;
            }
            prev = n;
            break;
        case FYET_MAPPING_END:
        case FYET_SEQUENCE_END:
            if (depth > 0)
                depth--;
            break;
        default:
            break;
        }
        fy_parser_event_free(fyp, ev);
        ev = NULL;
    }
    if (fy_parser_get_stream_error(fyp)) {
        err = yaml_syntax_error(L, diag, prev);
        goto out;
    }
    *rootp = root;
out:
    if (ev != NULL)
        fy_parser_event_free(fyp, ev);
    if (fyp != NULL)
        fy_parser_destroy(fyp);
    if (diag != NULL)
        fy_diag_destroy(diag);
    return err;
}

/* ---- value syntaxes ---- */

/* Leading decimal digits of s into *v; returns the number of digits, or -1 on overflow. */
static int parse_digits(const char *s, uint64_t *v)
{
    uint64_t x = 0;
    int i = 0;
    for (; s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *v = x;
    return i;
}

struct unit {
    const char *name;
    uint64_t mul;
};

/* digits + one of units[] (the empty unit is the bare number) → value * mul, at most max. */
static int parse_with_unit(const char *s, const struct unit *units, size_t nunits, uint64_t max,
                           uint64_t *out)
{
    uint64_t v;
    int nd = parse_digits(s, &v);
    if (nd == 0)
        return ERR_INVAL;
    const char *suffix = s + (nd > 0 ? nd : (int)strspn(s, "0123456789"));
    for (size_t i = 0; i < nunits; i++) {
        if (strcmp(suffix, units[i].name) != 0)
            continue;
        if (nd < 0 || v > max / units[i].mul)
            return ERR_LIMIT;
        *out = v * units[i].mul;
        return 0;
    }
    return ERR_INVAL;
}

int config_parse_duration(const char *s, uint32_t *out_ms)
{
    static const struct unit units[] = {{"", 1},      {"ms", 1},      {"s", 1000},
                                        {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    uint64_t v;
    int err = parse_with_unit(s, units, sizeof(units) / sizeof(units[0]), UINT32_MAX, &v);
    if (err == 0)
        *out_ms = (uint32_t)v;
    return err;
}

int config_parse_size(const char *s, size_t *out)
{
    static const struct unit units[] = {
        {"", 1}, {"B", 1}, {"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30}};
    uint64_t v;
    int err = parse_with_unit(s, units, sizeof(units) / sizeof(units[0]), SIZE_MAX, &v);
    if (err == 0)
        *out = (size_t)v;
    return err;
}

/* ---- typed getters: each refuses with the node's location and says what was expected ---- */

/* A scalar that is not null and holds no NUL byte. */
static int want_scalar(struct loader *L, const struct ynode *n, const char *what)
{
    if (n->type != YN_SCALAR || is_null(n))
        return FAILN(L, n, "%s is %s; expected a string", what, kind(n));
    if (strlen(n->text) != n->len)
        return FAILN(L, n, "%s contains a NUL byte; expected text without \\0", what);
    return 0;
}

static int get_str(struct loader *L, const struct ynode *n, const char *what, char **out)
{
    int err = want_scalar(L, n, what);
    if (err)
        return err;
    char *s = arena_strndup(L->out, n->text, n->len);
    if (s == NULL)
        return fail(L, ERR_NOMEM, 0, 0, "out of memory");
    *out = s;
    return 0;
}

static int get_nonempty_str(struct loader *L, const struct ynode *n, const char *what, char **out)
{
    int err = want_scalar(L, n, what);
    if (err)
        return err;
    if (n->len == 0)
        return FAILN(L, n, "%s is an empty string; expected a non-empty string", what);
    return get_str(L, n, what, out);
}

static int get_bool(struct loader *L, const struct ynode *n, const char *what, bool *out)
{
    if (n->type == YN_SCALAR && n->plain) {
        const char *t = n->text;
        if (!strcmp(t, "true") || !strcmp(t, "True") || !strcmp(t, "TRUE")) {
            *out = true;
            return 0;
        }
        if (!strcmp(t, "false") || !strcmp(t, "False") || !strcmp(t, "FALSE")) {
            *out = false;
            return 0;
        }
    }
    if (n->type != YN_SCALAR || is_null(n))
        return FAILN(L, n, "%s is %s; expected true or false", what, kind(n));
    return FAILN(L, n, "%s is not a boolean for %s; expected true or false", quote(n).s, what);
}

static int get_uint(struct loader *L, const struct ynode *n, const char *what, uint64_t min,
                    uint64_t max, uint64_t *out)
{
    if (n->type != YN_SCALAR || is_null(n))
        return FAILN(L, n, "%s is %s; expected an integer from %llu to %llu", what, kind(n),
                     (unsigned long long)min, (unsigned long long)max);
    uint64_t v;
    int nd = parse_digits(n->text, &v);
    if (nd == 0 || (nd > 0 && (size_t)nd != n->len) ||
        (nd < 0 && strspn(n->text, "0123456789") != n->len))
        return FAILN(L, n, "%s is not an integer for %s; expected an integer from %llu to %llu",
                     quote(n).s, what, (unsigned long long)min, (unsigned long long)max);
    if (nd < 0 || v < min || v > max)
        return FAILN(L, n, "%s is out of range for %s; expected an integer from %llu to %llu",
                     quote(n).s, what, (unsigned long long)min, (unsigned long long)max);
    *out = v;
    return 0;
}

static int get_duration(struct loader *L, const struct ynode *n, const char *what, bool zero_ok,
                        uint32_t *out)
{
    static const char expect[] =
        "expected a number with unit ms, s, m, h or d, or a bare number of milliseconds";
    if (n->type != YN_SCALAR || is_null(n))
        return FAILN(L, n, "%s is %s; %s", what, kind(n), expect);
    uint32_t v;
    int err = strlen(n->text) == n->len ? config_parse_duration(n->text, &v) : ERR_INVAL;
    if (err == ERR_LIMIT)
        return FAILN(L, n, "%s is too long for %s; expected at most 4294967295ms (about 49 days)",
                     quote(n).s, what);
    if (err)
        return FAILN(L, n, "%s is not a duration for %s; %s", quote(n).s, what, expect);
    if (v == 0 && !zero_ok)
        return FAILN(L, n, "%s must not be zero; expected a duration such as \"30s\"", what);
    *out = v;
    return 0;
}

static int get_size(struct loader *L, const struct ynode *n, const char *what, size_t *out)
{
    static const char expect[] = "expected a number with optional unit B, KiB, MiB, GiB";
    if (n->type != YN_SCALAR || is_null(n))
        return FAILN(L, n, "%s is %s; %s", what, kind(n), expect);
    size_t v;
    int err = strlen(n->text) == n->len ? config_parse_size(n->text, &v) : ERR_INVAL;
    if (err == ERR_LIMIT)
        return FAILN(L, n, "%s is too large for %s; expected at most %zu bytes", quote(n).s, what,
                     (size_t)SIZE_MAX);
    if (err)
        return FAILN(L, n, "%s is not a size; %s", quote(n).s, expect);
    if (v == 0)
        return FAILN(L, n, "%s must not be zero; expected a size such as \"4MiB\"", what);
    *out = v;
    return 0;
}

static int get_prefix_mode(struct loader *L, const struct ynode *n, const char *what, int *out)
{
    if (n->type == YN_SCALAR && !is_null(n)) {
        if (!strcmp(n->text, "when-needed")) {
            *out = PREFIX_WHEN_NEEDED;
            return 0;
        }
        if (!strcmp(n->text, "always")) {
            *out = PREFIX_ALWAYS;
            return 0;
        }
        if (!strcmp(n->text, "never")) {
            *out = PREFIX_NEVER;
            return 0;
        }
        return FAILN(L, n, "%s is not a prefix mode for %s; expected always, when-needed or never",
                     quote(n).s, what);
    }
    return FAILN(L, n, "%s is %s; expected always, when-needed or never", what, kind(n));
}

/* A sequence of strings into a NULL-terminated array in the snapshot. */
static int get_str_list(struct loader *L, const struct ynode *n, const char *what, bool nonempty,
                        char ***out, size_t *count)
{
    if (n->type != YN_SEQ)
        return FAILN(L, n, "%s is %s; expected a sequence of strings", what, kind(n));
    if (n->n > MAX_LIST_ITEMS)
        return FAILN(L, n, "%s has %zu items; expected at most %d", what, n->n, MAX_LIST_ITEMS);
    char **v = arena_alloc(L->out, (n->n + 1) * sizeof(*v));
    if (v == NULL)
        return fail(L, ERR_NOMEM, 0, 0, "out of memory");
    size_t i = 0;
    char item[96];
    for (const struct ynode *e = n->first; e != NULL; e = e->next, i++) {
        snprintf(item, sizeof(item), "item %zu of %s", i + 1, what);
        int err = nonempty ? get_nonempty_str(L, e, item, &v[i]) : get_str(L, e, item, &v[i]);
        if (err)
            return err;
    }
    *out = v;
    *count = n->n;
    return 0;
}

/* ---- mappings checked against their list of keys ---- */

struct field {
    const struct ynode *key, *val;
};

/* Check that n is a mapping whose keys are distinct members of keys[] (NULL-terminated) and
   put each key's nodes in f[index]. `what` names the mapping in messages. */
static int map_fields(struct loader *L, const struct ynode *n, const char *what,
                      const char *const *keys, struct field *f)
{
    size_t nkeys = 0;
    while (keys[nkeys] != NULL)
        nkeys++;
    char list[512];
    size_t o = 0;
    list[0] = '\0';
    for (size_t i = 0; i < nkeys && o < sizeof(list); i++)
        o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "", keys[i]);

    if (n->type != YN_MAP)
        return FAILN(L, n, "%s is %s; expected a mapping with keys: %s", what, kind(n), list);
    memset(f, 0, nkeys * sizeof(*f));
    for (const struct ynode *k = n->first; k != NULL && k->next != NULL; k = k->next->next) {
        const struct ynode *v = k->next;
        if (k->type != YN_SCALAR)
            return FAILN(L, k, "a key in %s is %s; expected one of: %s", what, kind(k), list);
        size_t i = 0;
        while (i < nkeys && (strlen(keys[i]) != k->len || memcmp(keys[i], k->text, k->len) != 0))
            i++;
        if (i == nkeys)
            return FAILN(L, k, "unknown key %s in %s; expected one of: %s", quote(k).s, what, list);
        if (f[i].key != NULL)
            return FAILN(L, k,
                         "duplicate key \"%s\" in %s (first at line %d column %d); "
                         "expected each key once",
                         keys[i], what, f[i].key->line, f[i].key->col);
        f[i].key = k;
        f[i].val = v;
    }
    return 0;
}

/* A mapping of string to string (env, headers) into key/value pairs in the snapshot. */
static int get_kv(struct loader *L, const struct ynode *n, const char *what, bool is_header,
                  struct config_kv **out, size_t *count)
{
    if (n->type != YN_MAP)
        return FAILN(L, n, "%s is %s; expected a mapping of names to strings", what, kind(n));
    size_t npairs = n->n / 2;
    if (npairs > MAX_LIST_ITEMS)
        return FAILN(L, n, "%s has %zu entries; expected at most %d", what, npairs, MAX_LIST_ITEMS);
    struct config_kv *kv = arena_alloc(L->out, (npairs ? npairs : 1) * sizeof(*kv));
    if (kv == NULL)
        return fail(L, ERR_NOMEM, 0, 0, "out of memory");
    size_t i = 0;
    char item[128];
    for (const struct ynode *k = n->first; k != NULL; k = k->next->next, i++) {
        const struct ynode *v = k->next;
        snprintf(item, sizeof(item), "a name in %s", what);
        int err = get_nonempty_str(L, k, item, &kv[i].key);
        if (err)
            return err;
        for (const char *p = kv[i].key; *p; p++) {
            unsigned char ch = (unsigned char)*p;
            bool ok = is_header ? (ch > 0x20 && ch < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", ch))
                                : (ch != '=');
            if (!ok)
                return FAILN(L, k, "%s is not a valid name in %s; expected %s", quote(k).s, what,
                             is_header ? "an HTTP header name (letters, digits, - and _)"
                                       : "a variable name without '='");
        }
        for (size_t j = 0; j < i; j++) {
            if (is_header ? strcasecmp(kv[j].key, kv[i].key) == 0
                          : strcmp(kv[j].key, kv[i].key) == 0)
                return FAILN(L, k, "duplicate name %s in %s; expected each name once", quote(k).s,
                             what);
        }
        snprintf(item, sizeof(item), "the value of %s in %s", quote(k).s, what);
        if (v->type != YN_SCALAR || is_null(v))
            return FAILN(L, v, "%s is %s; expected a string (write \"\" for an empty value)", item,
                         kind(v));
        err = get_str(L, v, item, &kv[i].value);
        if (err)
            return err;
        if (is_header && strpbrk(kv[i].value, "\r\n") != NULL)
            return FAILN(L, v, "%s contains a line break; expected a single-line header value",
                         item);
    }
    *out = kv;
    *count = npairs;
    return 0;
}

/* ---- sections ---- */

static bool host_char_ok(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f && !strchr("\"<>\\^`{|}/?#@", ch);
}

static int load_listener(struct loader *L, const struct ynode *n, size_t idx,
                         struct config_listener *li)
{
    static const char *const keys[] = {"address", "port", "tls", "share", NULL};
    static const char *const tls_keys[] = {"cert", "key", "min_version", "client_ca", NULL};
    struct field f[4], t[4];
    char what[64], sub[96];
    snprintf(what, sizeof(what), "listener #%zu", idx + 1);
    int err = map_fields(L, n, what, keys, f);
    if (err)
        return err;

    li->port = 8080;
    if (f[0].val) {
        snprintf(sub, sizeof(sub), "address of %s", what);
        char *a;
        if ((err = get_nonempty_str(L, f[0].val, sub, &a)))
            return err;
        size_t al = strlen(a);
        if (al > 2 && a[0] == '[' && a[al - 1] == ']') { /* "[::1]" is accepted as "::1" */
            memmove(a, a + 1, al - 2);
            a[al - 2] = '\0';
        }
        unsigned char tmp[16];
        if (strcmp(a, "localhost") != 0 && inet_pton(AF_INET, a, tmp) != 1 &&
            inet_pton(AF_INET6, a, tmp) != 1)
            return FAILN(L, f[0].val,
                         "%s is not an IP address for %s; expected a numeric IPv4 or IPv6 "
                         "address or \"localhost\"",
                         quote(f[0].val).s, what);
        li->address = a;
    } else if ((li->address = arena_strndup(L->out, "127.0.0.1", 9)) == NULL) {
        return fail(L, ERR_NOMEM, 0, 0, "out of memory");
    }
    if (f[1].val) {
        uint64_t v;
        snprintf(sub, sizeof(sub), "port of %s", what);
        if ((err = get_uint(L, f[1].val, sub, 0, 65535, &v)))
            return err;
        li->port = (uint16_t)v;
    }
    if (f[2].val) {
        snprintf(sub, sizeof(sub), "tls of %s", what);
        if ((err = map_fields(L, f[2].val, sub, tls_keys, t)))
            return err;
        if (t[0].val && (err = get_nonempty_str(L, t[0].val, "tls.cert", &li->tls_cert)))
            return err;
        if (t[1].val && (err = get_nonempty_str(L, t[1].val, "tls.key", &li->tls_key)))
            return err;
        if ((li->tls_cert == NULL) != (li->tls_key == NULL))
            return FAILN(L, f[2].val, "%s has %s but no %s; expected both cert and key, or neither",
                         sub, li->tls_cert ? "cert" : "key", li->tls_cert ? "key" : "cert");
        if (li->tls_cert == NULL && (t[2].val || t[3].val))
            return FAILN(L, f[2].val, "%s has %s but no cert and key; expected cert and key too",
                         sub, t[2].val ? "min_version" : "client_ca");
        if (t[2].val) {
            char *v;
            if ((err = get_nonempty_str(L, t[2].val, "tls.min_version", &v)))
                return err;
            if (strcmp(v, "1.2") == 0)
                li->tls_min_version = 0x0303;
            else if (strcmp(v, "1.3") == 0)
                li->tls_min_version = 0x0304;
            else
                return FAILN(L, t[2].val,
                             "%s is not a TLS version for tls.min_version of %s; expected \"1.2\" "
                             "or \"1.3\" (older versions are never offered)",
                             quote(t[2].val).s, what);
        }
        if (t[3].val && (err = get_nonempty_str(L, t[3].val, "tls.client_ca", &li->tls_client_ca)))
            return err;
    }
    if (li->tls_min_version == 0)
        li->tls_min_version = 0x0303;
    if (f[3].val) {
        snprintf(sub, sizeof(sub), "share of %s", what);
        if ((err = get_bool(L, f[3].val, sub, &li->share)))
            return err;
    }
    return 0;
}

static int load_listen(struct loader *L, const struct ynode *n)
{
    struct config *c = L->c;
    if (n->type != YN_SEQ)
        return FAILN(L, n,
                     "listen is %s; expected a sequence of listeners "
                     "({address, port, tls})",
                     kind(n));
    if (n->n == 0)
        return FAILN(L, n, "listen is empty; expected at least one listener");
    if (n->n > MAX_LISTENERS)
        return FAILN(L, n, "listen has %zu listeners; expected at most %d", n->n, MAX_LISTENERS);
    c->listeners = arena_alloc(L->out, n->n * sizeof(*c->listeners));
    if (c->listeners == NULL)
        return fail(L, ERR_NOMEM, 0, 0, "out of memory");
    size_t i = 0;
    for (const struct ynode *e = n->first; e != NULL; e = e->next, i++) {
        int err = load_listener(L, e, i, &c->listeners[i]);
        if (err)
            return err;
        for (size_t j = 0; j < i; j++) {
            const struct config_listener *a = &c->listeners[j], *b = &c->listeners[i];
            if (a->port != 0 && a->port == b->port && strcmp(a->address, b->address) == 0)
                return FAILN(L, e,
                             "listener #%zu repeats %s port %u of listener #%zu; expected "
                             "distinct address and port pairs",
                             i + 1, b->address, (unsigned)b->port, j + 1);
        }
    }
    c->nlisteners = n->n;
    return 0;
}

static int load_hosts(struct loader *L, const struct ynode *n)
{
    struct config *c = L->c;
    int err = get_str_list(L, n, "allowed_hosts", true, &c->allowed_hosts, &c->nallowed_hosts);
    if (err)
        return err;
    size_t i = 0;
    for (const struct ynode *e = n->first; e != NULL; e = e->next, i++) {
        for (const char *p = c->allowed_hosts[i]; *p; p++)
            if (!host_char_ok((unsigned char)*p))
                return FAILN(L, e,
                             "%s is not a host name in allowed_hosts; expected a host "
                             "such as \"example.com\" or \"[::1]\"",
                             quote(e).s);
    }
    return 0;
}

static int load_origins(struct loader *L, const struct ynode *n)
{
    struct config *c = L->c;
    int err =
        get_str_list(L, n, "allowed_origins", true, &c->allowed_origins, &c->nallowed_origins);
    if (err)
        return err;
    size_t i = 0;
    for (const struct ynode *e = n->first; e != NULL; e = e->next, i++) {
        const char *o = c->allowed_origins[i], *h = NULL;
        if (strncmp(o, "http://", 7) == 0)
            h = o + 7;
        else if (strncmp(o, "https://", 8) == 0)
            h = o + 8;
        bool ok = h != NULL && *h != '\0';
        for (const char *p = h; ok && *p; p++)
            ok = host_char_ok((unsigned char)*p);
        if (!ok)
            return FAILN(L, e,
                         "%s is not an origin in allowed_origins; expected "
                         "\"scheme://host[:port]\" with scheme http or https and no path",
                         quote(e).s);
    }
    return 0;
}

static int load_limits(struct loader *L, const struct ynode *n)
{
    static const char *const keys[] = {"max_body",      "session_idle_timeout", "max_sessions",
                                       "replay_events", "sse_keepalive",        "shutdown_grace",
                                       "mrtr_ttl",      "write_timeout",        NULL};
    struct config *c = L->c;
    struct field f[8];
    uint64_t v;
    int err = map_fields(L, n, "limits", keys, f);
    if (err)
        return err;
    if (f[0].val && (err = get_size(L, f[0].val, "limits.max_body", &c->max_body)))
        return err;
    if (f[1].val && (err = get_duration(L, f[1].val, "limits.session_idle_timeout", false,
                                        &c->session_idle_ms)))
        return err;
    if (f[2].val) {
        if ((err = get_uint(L, f[2].val, "limits.max_sessions", 1, UINT32_MAX, &v)))
            return err;
        c->max_sessions = (uint32_t)v;
    }
    if (f[3].val) {
        if ((err = get_uint(L, f[3].val, "limits.replay_events", 0, 1000000, &v)))
            return err;
        c->replay_events = (uint32_t)v;
    }
    if (f[4].val &&
        (err = get_duration(L, f[4].val, "limits.sse_keepalive", false, &c->sse_keepalive_ms)))
        return err;
    if (f[5].val &&
        (err = get_duration(L, f[5].val, "limits.shutdown_grace", true, &c->shutdown_grace_ms)))
        return err;
    if (f[6].val && (err = get_duration(L, f[6].val, "limits.mrtr_ttl", false, &c->mrtr_ttl_ms)))
        return err;
    if (f[7].val &&
        (err = get_duration(L, f[7].val, "limits.write_timeout", false, &c->write_timeout_ms)))
        return err;
    return 0;
}

static int load_log(struct loader *L, const struct ynode *n)
{
    static const char *const keys[] = {"level", NULL};
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    struct field f[1];
    int err = map_fields(L, n, "log", keys, f);
    if (err || f[0].val == NULL)
        return err;
    if ((err = get_str(L, f[0].val, "log.level", &L->c->log_level)))
        return err;
    for (size_t i = 0; i < 4; i++)
        if (strcmp(L->c->log_level, levels[i]) == 0)
            return 0;
    return FAILN(L, f[0].val, "%s is not a log level; expected debug, info, warn or error",
                 quote(f[0].val).s);
}

static int load_prefix(struct loader *L, const struct ynode *n)
{
    static const char *const keys[] = {"mode", "separator", NULL};
    struct field f[2];
    int err = map_fields(L, n, "prefix", keys, f);
    if (err)
        return err;
    if (f[0].val) {
        int mode;
        if ((err = get_prefix_mode(L, f[0].val, "prefix.mode", &mode)))
            return err;
        L->c->prefix_mode = (enum config_prefix_mode)mode;
    }
    if (f[1].val) {
        char *sep;
        if ((err = get_nonempty_str(L, f[1].val, "prefix.separator", &sep)))
            return err;
        bool ok = strlen(sep) <= 8;
        for (const char *p = sep; ok && *p; p++)
            ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                 strchr("_-./", *p) != NULL;
        if (!ok)
            return FAILN(L, f[1].val,
                         "%s is not a prefix separator; expected 1 to 8 characters "
                         "from letters, digits, _ - . /",
                         quote(f[1].val).s);
        L->c->prefix_separator = sep;
    }
    return 0;
}

enum {
    SK_NAME,
    SK_TRANSPORT,
    SK_COMMAND,
    SK_ARGS,
    SK_ENV,
    SK_CWD,
    SK_URL,
    SK_HEADERS,
    SK_TIMEOUTS,
    SK_RESTART,
    SK_MAX_CONCURRENCY,
    SK_MAX_QUEUE,
    SK_MAX_MESSAGE,
    SK_PREFIX,
    SK_SPEC,
    SK_OVERRIDES,
    SK_BASE_URL,
    SK_DISCOVERY,
    SK_OVERLAYS,
    SK_PROTOCOL,
    SK_VALIDATE_ARGUMENTS,
    SK_CREDENTIALS,
    SK_SESSIONS,
    SK_USER_SESSIONS,
    SK_AUTH,
    SK_COUNT
};

static bool name_ok(const char *s, size_t len)
{
    if (len == 0 || len > CONFIG_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

/* credentials: {<security scheme>: {file: PATH} | {env: VAR}}. Only where the value comes from is
   configured; the value itself is read by the transport when it starts (never into the
   snapshot, so it is in no dump of the configuration). */
static int get_credentials(struct loader *L, const struct ynode *n, const char *what,
                           struct config_credential **out, size_t *count)
{
    static const char *const ckeys[] = {"file", "env", NULL};
    char sub[200];
    if (n->type != YN_MAP)
        return FAILN(L, n,
                     "credentials of %s is %s; expected a mapping of the document's security "
                     "scheme names to {file: PATH} or {env: VARIABLE}",
                     what, kind(n));
    size_t nc = n->n / 2;
    if (nc > MAX_LIST_ITEMS)
        return FAILN(L, n, "credentials of %s has %zu entries; expected at most %d", what, nc,
                     MAX_LIST_ITEMS);
    struct config_credential *c = arena_alloc(L->out, (nc ? nc : 1) * sizeof(*c));
    if (c == NULL)
        return fail(L, ERR_NOMEM, 0, 0, "out of memory");
    size_t i = 0;
    for (const struct ynode *k = n->first; k != NULL; k = k->next->next, i++) {
        struct field f[2];
        int err;
        snprintf(sub, sizeof(sub), "a scheme name in credentials of %s", what);
        if ((err = get_nonempty_str(L, k, sub, &c[i].scheme)))
            return err;
        snprintf(sub, sizeof(sub), "credential %s of %s", quote(k).s, what);
        if ((err = map_fields(L, k->next, sub, ckeys, f)))
            return err;
        if ((f[0].val != NULL) == (f[1].val != NULL))
            return FAILN(L, k->next,
                         "%s has %s; expected exactly one of file: PATH (a file only its owner "
                         "can read, the value on its first line) or env: VARIABLE",
                         sub, f[0].val ? "both file and env" : "neither file nor env");
        char sub2[240];
        snprintf(sub2, sizeof(sub2), "%s of %s", f[0].val ? "file" : "env", sub);
        if ((err = get_nonempty_str(L, f[0].val ? f[0].val : f[1].val, sub2,
                                    f[0].val ? &c[i].file : &c[i].env)))
            return err;
    }
    *out = c;
    *count = nc;
    return 0;
}

static int load_server_stdio(struct loader *L, const struct field *f, const char *what,
                             const struct ynode *map, struct config_server *s)
{
    static const int refused[] = {SK_URL,       SK_HEADERS,     SK_SPEC,
                                  SK_OVERRIDES, SK_BASE_URL,    SK_DISCOVERY,
                                  SK_OVERLAYS,  SK_CREDENTIALS, SK_AUTH};
    static const char *const refused_names[] = {"url",       "headers",     "spec",
                                                "overrides", "base_url",    "discovery",
                                                "overlays",  "credentials", "auth"};
    static const char *const only[] = {
        "transport: http",    "transport: http or openapi", "transport: openapi",
        "transport: openapi", "transport: openapi",         "transport: openapi",
        "transport: openapi", "transport: openapi",         "transport: http"};
    char sub[128];
    int err;
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        if (f[refused[i]].key)
            return FAILN(L, f[refused[i]].key,
                         "%s is not allowed in %s with transport stdio; expected it only with %s",
                         refused_names[i], what, only[i]);
    if (f[SK_COMMAND].val == NULL)
        return FAILN(L, map,
                     "%s has transport stdio but no command; expected command: "
                     "<program to run>",
                     what);
    snprintf(sub, sizeof(sub), "command of %s", what);
    if ((err = get_nonempty_str(L, f[SK_COMMAND].val, sub, &s->command)))
        return err;
    if (f[SK_ARGS].val) {
        snprintf(sub, sizeof(sub), "args of %s", what);
        if ((err = get_str_list(L, f[SK_ARGS].val, sub, false, &s->args, &s->nargs)))
            return err;
    } else if ((s->args = arena_alloc(L->out, sizeof(*s->args))) == NULL) {
        return fail(L, ERR_NOMEM, 0, 0, "out of memory");
    }
    if (f[SK_ENV].val) {
        snprintf(sub, sizeof(sub), "env of %s", what);
        if ((err = get_kv(L, f[SK_ENV].val, sub, false, &s->env, &s->nenv)))
            return err;
    }
    if (f[SK_CWD].val) {
        snprintf(sub, sizeof(sub), "cwd of %s", what);
        if ((err = get_nonempty_str(L, f[SK_CWD].val, sub, &s->cwd)))
            return err;
    }
    return 0;
}

/* An http:// or https:// URL with a host and no space or control character. */
static bool http_url_ok(const char *url)
{
    const char *h = NULL;
    if (strncmp(url, "http://", 7) == 0)
        h = url + 7;
    else if (strncmp(url, "https://", 8) == 0)
        h = url + 8;
    bool ok = h != NULL && *h != '\0' && *h != '/';
    for (const char *p = url; ok && *p; p++)
        ok = (unsigned char)*p > 0x20 && (unsigned char)*p != 0x7f;
    return ok;
}

static int load_server_auth(struct loader *L, const struct field *f, const char *what,
                            struct config_server *s);

static int load_server_http(struct loader *L, const struct field *f, const char *what,
                            const struct ynode *map, struct config_server *s)
{
    static const int refused[] = {SK_COMMAND,  SK_ARGS,       SK_ENV,      SK_CWD,
                                  SK_SPEC,     SK_OVERRIDES,  SK_BASE_URL, SK_DISCOVERY,
                                  SK_OVERLAYS, SK_CREDENTIALS};
    static const char *const refused_names[] = {"command",  "args",       "env",      "cwd",
                                                "spec",     "overrides",  "base_url", "discovery",
                                                "overlays", "credentials"};
    char sub[128];
    int err;
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        if (f[refused[i]].key)
            return FAILN(L, f[refused[i]].key,
                         "%s is not allowed in %s with transport http; expected it only with "
                         "transport: %s",
                         refused_names[i], what, i < 4 ? "stdio" : "openapi");
    if (f[SK_URL].val == NULL)
        return FAILN(L, map,
                     "%s has transport http but no url; expected url: "
                     "http://host/path or https://host/path",
                     what);
    snprintf(sub, sizeof(sub), "url of %s", what);
    if ((err = get_nonempty_str(L, f[SK_URL].val, sub, &s->url)))
        return err;
    if (!http_url_ok(s->url))
        return FAILN(L, f[SK_URL].val,
                     "%s is not a URL for %s; expected http://host/path or "
                     "https://host/path",
                     quote(f[SK_URL].val).s, what);
    if (f[SK_HEADERS].val) {
        snprintf(sub, sizeof(sub), "headers of %s", what);
        if ((err = get_kv(L, f[SK_HEADERS].val, sub, true, &s->headers, &s->nheaders)))
            return err;
    }
    if (f[SK_AUTH].val && (err = load_server_auth(L, f, what, s)))
        return err;
    return 0;
}

static int load_server_openapi(struct loader *L, const struct field *f, const char *what,
                               const struct ynode *map, struct config_server *s)
{
    static const int refused[] = {
        SK_COMMAND, SK_ARGS, SK_ENV, SK_CWD, SK_URL, SK_PROTOCOL, SK_VALIDATE_ARGUMENTS, SK_AUTH};
    static const char *const refused_names[] = {
        "command", "args", "env", "cwd", "url", "protocol", "validate_arguments", "auth"};
    char sub[128];
    int err;
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        if (f[refused[i]].key)
            return FAILN(L, f[refused[i]].key,
                         "%s is not allowed in %s with transport openapi; expected %s",
                         refused_names[i], what,
                         i == 4   ? "base_url: to replace the document's server URL"
                         : i == 5 ? "it only with transport: stdio or http (the gateway serves an "
                                    "OpenAPI document in every protocol era itself)"
                         : i == 6 ? "it only with transport: stdio or http (the arguments of an "
                                    "OpenAPI tool are always checked against its schema)"
                         : i == 7 ? "it only with transport: http (an OpenAPI server's credentials "
                                    "are its credentials: list)"
                                  : "it only with transport: stdio");
    if (f[SK_SPEC].val == NULL)
        return FAILN(L, map,
                     "%s has transport openapi but no spec; expected spec: <path of an OpenAPI "
                     "document, JSON or YAML>",
                     what);
    snprintf(sub, sizeof(sub), "spec of %s", what);
    if ((err = get_nonempty_str(L, f[SK_SPEC].val, sub, &s->spec)))
        return err;
    if (f[SK_OVERRIDES].val) {
        snprintf(sub, sizeof(sub), "overrides of %s", what);
        if ((err = get_nonempty_str(L, f[SK_OVERRIDES].val, sub, &s->overrides)))
            return err;
    }
    if (f[SK_OVERLAYS].val) {
        snprintf(sub, sizeof(sub), "overlays of %s", what);
        if ((err = get_str_list(L, f[SK_OVERLAYS].val, sub, true, &s->overlays, &s->noverlays)))
            return err;
    }
    if (f[SK_BASE_URL].val) {
        snprintf(sub, sizeof(sub), "base_url of %s", what);
        if ((err = get_nonempty_str(L, f[SK_BASE_URL].val, sub, &s->base_url)))
            return err;
        if (!http_url_ok(s->base_url))
            return FAILN(L, f[SK_BASE_URL].val,
                         "%s is not a base URL for %s; expected http://host[/path] or "
                         "https://host[/path]",
                         quote(f[SK_BASE_URL].val).s, what);
    }
    s->discovery_auto = true;
    if (f[SK_DISCOVERY].val) {
        const struct ynode *dv = f[SK_DISCOVERY].val;
        snprintf(sub, sizeof(sub), "discovery of %s", what);
        if ((err = want_scalar(L, dv, sub)))
            return err;
        int mode = config_discovery_parse(dv->text);
        if (mode >= 0) {
            s->discovery = (enum config_discovery)mode;
            s->discovery_auto = false;
        } else if (dv->text && strcmp(dv->text, "auto") == 0)
            s->discovery_auto = true;
        else
            return FAILN(L, dv,
                         "%s is not a discovery mode for %s; expected auto, static, hierarchical "
                         "or search",
                         quote(dv).s, what);
    }
    if (f[SK_HEADERS].val) {
        snprintf(sub, sizeof(sub), "headers of %s", what);
        if ((err = get_kv(L, f[SK_HEADERS].val, sub, true, &s->headers, &s->nheaders)))
            return err;
    }
    if (f[SK_CREDENTIALS].val &&
        (err = get_credentials(L, f[SK_CREDENTIALS].val, what, &s->credentials, &s->ncredentials)))
        return err;
    return 0;
}

const char *config_upstream_registration_str(enum config_upstream_registration r)
{
    switch (r) {
    case UPSTREAM_REG_AUTO:
        return "auto";
    case UPSTREAM_REG_PRE:
        return "pre";
    case UPSTREAM_REG_DYNAMIC:
        return "dynamic";
    case UPSTREAM_REG_CIMD:
        return "cimd";
    }
    return "auto";
}

/* auth: {oauth: {client_id, client_secret_file, registration, scopes, allow_private}} of an http
   server: the gateway is the server's OAuth client with each user's own tokens. */
static int load_server_auth(struct loader *L, const struct field *f, const char *what,
                            struct config_server *s)
{
    static const char *const akeys[] = {"oauth", NULL};
    static const char *const okeys[] = {"client_id", "client_secret_file", "registration",
                                        "scopes",    "allow_private",      NULL};
    struct field a[1], o[5];
    char sub[200];
    int err;
    struct config_upstream_oauth *u = &s->oauth;
    snprintf(sub, sizeof(sub), "auth of %s", what);
    if ((err = map_fields(L, f[SK_AUTH].val, sub, akeys, a)))
        return err;
    if (a[0].val == NULL)
        return FAILN(L, f[SK_AUTH].val,
                     "%s has no oauth; expected auth: {oauth: {registration: auto}} (the gateway "
                     "as the server's OAuth client)",
                     sub);
    snprintf(sub, sizeof(sub), "auth.oauth of %s", what);
    if ((err = map_fields(L, a[0].val, sub, okeys, o))) /* oauth: {} is every default */
        return err;
    u->enabled = true;
    snprintf(sub, sizeof(sub), "auth.oauth.client_id of %s", what);
    if (o[0].val && (err = get_nonempty_str(L, o[0].val, sub, &u->client_id)))
        return err;
    snprintf(sub, sizeof(sub), "auth.oauth.client_secret_file of %s", what);
    if (o[1].val && (err = get_nonempty_str(L, o[1].val, sub, &u->client_secret_file)))
        return err;
    u->registration = UPSTREAM_REG_AUTO;
    if (o[2].val) {
        const struct ynode *rv = o[2].val;
        snprintf(sub, sizeof(sub), "auth.oauth.registration of %s", what);
        if ((err = want_scalar(L, rv, sub)))
            return err;
        if (strcmp(rv->text, "auto") == 0)
            u->registration = UPSTREAM_REG_AUTO;
        else if (strcmp(rv->text, "pre") == 0)
            u->registration = UPSTREAM_REG_PRE;
        else if (strcmp(rv->text, "dynamic") == 0)
            u->registration = UPSTREAM_REG_DYNAMIC;
        else if (strcmp(rv->text, "cimd") == 0)
            u->registration = UPSTREAM_REG_CIMD;
        else
            return FAILN(L, rv,
                         "%s is not a registration for %s; expected auto, pre, dynamic or "
                         "cimd",
                         quote(rv).s, sub);
    }
    if (u->registration == UPSTREAM_REG_PRE && u->client_id == NULL)
        return FAILN(L, o[2].val,
                     "auth.oauth of %s has registration: pre but no client_id; expected the "
                     "client_id the server's authorization server issued to the gateway",
                     what);
    if (u->client_id != NULL &&
        (u->registration == UPSTREAM_REG_DYNAMIC || u->registration == UPSTREAM_REG_CIMD))
        return FAILN(L, o[0].key,
                     "auth.oauth of %s has a client_id with registration: %s; expected "
                     "client_id only with registration: pre or auto (a dynamic or CIMD client "
                     "gets its client_id from the registration)",
                     what, config_upstream_registration_str(u->registration));
    if (u->client_secret_file != NULL && u->client_id == NULL)
        return FAILN(L, o[1].key,
                     "auth.oauth of %s has a client_secret_file but no client_id; expected both "
                     "for a pre-registered confidential client",
                     what);
    if (u->client_id != NULL)
        u->registration = UPSTREAM_REG_PRE;
    snprintf(sub, sizeof(sub), "auth.oauth.scopes of %s", what);
    if (o[3].val) {
        if ((err = get_str_list(L, o[3].val, sub, true, &u->scopes, &u->nscopes)))
            return err;
        for (size_t i = 0; i < u->nscopes; i++)
            for (const char *p = u->scopes[i]; *p; p++)
                if (*p <= 0x20 || *p == 0x7f || *p == '"' || *p == '\\')
                    return FAILN(L, o[3].val,
                                 "scope \"%s\" in %s has a character OAuth does not allow in a "
                                 "scope (space, quote, backslash or a control character)",
                                 u->scopes[i], sub);
    }
    snprintf(sub, sizeof(sub), "auth.oauth.allow_private of %s", what);
    if (o[4].val && (err = get_bool(L, o[4].val, sub, &u->allow_private)))
        return err;
    for (size_t i = 0; i < s->nheaders; i++)
        if (strcasecmp(s->headers[i].key, "authorization") == 0)
            return FAILN(L, f[SK_AUTH].key,
                         "%s has both auth.oauth and an Authorization header in headers; expected "
                         "one of them (with auth.oauth each user's own token is sent)",
                         what);
    return 0;
}

/* sessions and user_sessions {idle_timeout, max} of a server (stdio and http). */
static int load_server_sessions(struct loader *L, const struct field *f, const char *what,
                                struct config_server *s)
{
    static const char *const ukeys[] = {"idle_timeout", "max", NULL};
    struct field u[2];
    char sub[160];
    int err;
    s->sessions = SESSIONS_SHARED;
    s->user_idle_ms = 10 * 60 * 1000;
    s->user_max = 100;
    if (s->oauth.enabled)
        s->sessions = SESSIONS_PER_USER; /* each user's session carries their own token */
    const struct ynode *sv = f[SK_SESSIONS].val;
    if (sv != NULL) {
        snprintf(sub, sizeof(sub), "sessions of %s", what);
        if ((err = want_scalar(L, sv, sub)))
            return err;
        if (strcmp(sv->text, "shared") == 0)
            s->sessions = SESSIONS_SHARED;
        else if (strcmp(sv->text, "per_user") == 0)
            s->sessions = SESSIONS_PER_USER;
        else
            return FAILN(L, sv, "%s is not a sessions mode for %s; expected shared or per_user",
                         quote(sv).s, what);
        if (s->sessions == SESSIONS_SHARED && s->oauth.enabled)
            return FAILN(L, sv,
                         "sessions: shared is not allowed in %s with auth.oauth; expected "
                         "per_user, or no sessions key (each user's upstream session carries "
                         "their own token, so one session is never shared between users)",
                         what);
        if (s->sessions == SESSIONS_PER_USER && s->transport == TRANSPORT_OPENAPI)
            return FAILN(L, sv,
                         "sessions: per_user is not allowed in %s with transport openapi; expected "
                         "it only with transport: stdio or http (an openapi server has no upstream "
                         "session: each call is its own HTTP request)",
                         what);
    }
    if (f[SK_USER_SESSIONS].val == NULL)
        return 0;
    if (s->sessions != SESSIONS_PER_USER)
        return FAILN(L, f[SK_USER_SESSIONS].key,
                     "user_sessions is not allowed in %s without sessions: per_user; expected it "
                     "only with sessions: per_user",
                     what);
    snprintf(sub, sizeof(sub), "user_sessions of %s", what);
    if ((err = map_fields(L, f[SK_USER_SESSIONS].val, sub, ukeys, u)))
        return err;
    snprintf(sub, sizeof(sub), "user_sessions.idle_timeout of %s", what);
    if (u[0].val && (err = get_duration(L, u[0].val, sub, false, &s->user_idle_ms)))
        return err;
    uint64_t v;
    snprintf(sub, sizeof(sub), "user_sessions.max of %s", what);
    if (u[1].val) {
        if ((err = get_uint(L, u[1].val, sub, 1, CONFIG_USER_SESSIONS_MAX, &v)))
            return err;
        s->user_max = (uint32_t)v;
    }
    return 0;
}

static int load_server(struct loader *L, const struct ynode *n, size_t idx, struct config_server *s)
{
    static const char *const keys[] = {"name",
                                       "transport",
                                       "command",
                                       "args",
                                       "env",
                                       "cwd",
                                       "url",
                                       "headers",
                                       "timeouts",
                                       "restart",
                                       "max_concurrency",
                                       "max_queue",
                                       "max_message",
                                       "prefix",
                                       "spec",
                                       "overrides",
                                       "base_url",
                                       "discovery",
                                       "overlays",
                                       "protocol",
                                       "validate_arguments",
                                       "credentials",
                                       "sessions",
                                       "user_sessions",
                                       "auth",
                                       NULL};
    static const char *const tkeys[] = {"connect", "first_byte", "idle", "total", NULL};
    static const char *const rkeys[] = {"initial", "max", NULL};
    struct field f[SK_COUNT], t[4], r[2];
    char what[96], sub[160];
    int err;

    /* Name the server in every later message: find "name" before checking the other keys. */
    snprintf(what, sizeof(what), "server #%zu", idx + 1);
    if (n->type == YN_MAP) {
        for (const struct ynode *k = n->first; k != NULL && k->next != NULL; k = k->next->next) {
            const struct ynode *v = k->next;
            if (k->type == YN_SCALAR && strcmp(k->text, "name") == 0 && v->type == YN_SCALAR &&
                name_ok(v->text, v->len)) {
                snprintf(what, sizeof(what), "server \"%s\"", v->text);
                break;
            }
        }
    }
    if ((err = map_fields(L, n, what, keys, f)))
        return err;

    if (f[SK_NAME].val == NULL)
        return FAILN(L, n, "%s has no name; expected name: matching ^[a-zA-Z0-9_-]{1,64}$", what);
    const struct ynode *nm = f[SK_NAME].val;
    if ((err = want_scalar(L, nm, "name of a server")))
        return err;
    if (!name_ok(nm->text, nm->len))
        return FAILN(L, nm,
                     "%s is not a valid server name; expected 1 to 64 characters from "
                     "a-z A-Z 0-9 _ - (^[a-zA-Z0-9_-]{1,64}$)",
                     quote(nm).s);
    if ((err = get_str(L, nm, "name", &s->name)))
        return err;

    /* transport: explicit, or implied by command / url */
    if (f[SK_TRANSPORT].val) {
        const struct ynode *tv = f[SK_TRANSPORT].val;
        snprintf(sub, sizeof(sub), "transport of %s", what);
        if ((err = want_scalar(L, tv, sub)))
            return err;
        if (strcmp(tv->text, "stdio") == 0)
            s->transport = TRANSPORT_STDIO;
        else if (strcmp(tv->text, "http") == 0)
            s->transport = TRANSPORT_HTTP;
        else if (strcmp(tv->text, "openapi") == 0)
            s->transport = TRANSPORT_OPENAPI;
        else
            return FAILN(L, tv, "%s is not a transport for %s; expected stdio, http or openapi",
                         quote(tv).s, what);
    } else {
        /* Implied by the one key that only one transport has. */
        bool cmd = f[SK_COMMAND].key, url = f[SK_URL].key, spec = f[SK_SPEC].key;
        if (cmd + url + spec != 1)
            return FAILN(L, n,
                         "%s has no transport; expected transport: stdio with a command, "
                         "transport: http with a url, or transport: openapi with a spec",
                         what);
        s->transport = cmd ? TRANSPORT_STDIO : url ? TRANSPORT_HTTP : TRANSPORT_OPENAPI;
    }
    err = s->transport == TRANSPORT_STDIO  ? load_server_stdio(L, f, what, n, s)
          : s->transport == TRANSPORT_HTTP ? load_server_http(L, f, what, n, s)
                                           : load_server_openapi(L, f, what, n, s);
    if (err)
        return err;

    s->timeouts = (struct config_timeouts){5000, 30000, 60000, 300000};
    if (f[SK_TIMEOUTS].val) {
        snprintf(sub, sizeof(sub), "timeouts of %s", what);
        if ((err = map_fields(L, f[SK_TIMEOUTS].val, sub, tkeys, t)))
            return err;
        uint32_t *dst[4] = {&s->timeouts.connect_ms, &s->timeouts.first_byte_ms,
                            &s->timeouts.idle_ms, &s->timeouts.total_ms};
        for (size_t i = 0; i < 4; i++) {
            snprintf(sub, sizeof(sub), "timeouts.%s of %s", tkeys[i], what);
            if (t[i].val && (err = get_duration(L, t[i].val, sub, false, dst[i])))
                return err;
        }
    }

    s->restart_initial_ms = 500;
    s->restart_max_ms = 30000;
    if (f[SK_RESTART].val) {
        snprintf(sub, sizeof(sub), "restart of %s", what);
        if ((err = map_fields(L, f[SK_RESTART].val, sub, rkeys, r)))
            return err;
        snprintf(sub, sizeof(sub), "restart.initial of %s", what);
        if (r[0].val && (err = get_duration(L, r[0].val, sub, false, &s->restart_initial_ms)))
            return err;
        snprintf(sub, sizeof(sub), "restart.max of %s", what);
        if (r[1].val && (err = get_duration(L, r[1].val, sub, false, &s->restart_max_ms)))
            return err;
        if (s->restart_initial_ms > s->restart_max_ms)
            return FAILN(L, f[SK_RESTART].val,
                         "restart.initial (%ums) is larger than restart.max (%ums) in %s; "
                         "expected initial <= max",
                         s->restart_initial_ms, s->restart_max_ms, what);
    }

    uint64_t v;
    s->max_concurrency = 64;
    if (f[SK_MAX_CONCURRENCY].val) {
        snprintf(sub, sizeof(sub), "max_concurrency of %s", what);
        if ((err = get_uint(L, f[SK_MAX_CONCURRENCY].val, sub, 1, 65536, &v)))
            return err;
        s->max_concurrency = (uint32_t)v;
    }
    s->max_queue = (size_t)8 << 20;
    if (f[SK_MAX_QUEUE].val) {
        snprintf(sub, sizeof(sub), "max_queue of %s", what);
        if ((err = get_size(L, f[SK_MAX_QUEUE].val, sub, &s->max_queue)))
            return err;
    }
    s->max_message = (size_t)16 << 20;
    if (f[SK_MAX_MESSAGE].val) {
        snprintf(sub, sizeof(sub), "max_message of %s", what);
        if ((err = get_size(L, f[SK_MAX_MESSAGE].val, sub, &s->max_message)))
            return err;
    }
    s->prefix = -1;
    if (f[SK_PREFIX].val) {
        snprintf(sub, sizeof(sub), "prefix of %s", what);
        if ((err = get_prefix_mode(L, f[SK_PREFIX].val, sub, &s->prefix)))
            return err;
    }
    s->protocol = PROTOCOL_AUTO;
    if (f[SK_PROTOCOL].val) {
        const struct ynode *pv = f[SK_PROTOCOL].val;
        snprintf(sub, sizeof(sub), "protocol of %s", what);
        if ((err = want_scalar(L, pv, sub)))
            return err;
        if (strcmp(pv->text, "auto") == 0)
            s->protocol = PROTOCOL_AUTO;
        else if (strcmp(pv->text, "2025-11-25") == 0)
            s->protocol = PROTOCOL_LEGACY;
        else if (strcmp(pv->text, "2026-07-28") == 0)
            s->protocol = PROTOCOL_MODERN;
        else
            return FAILN(L, pv,
                         "%s is not a protocol for %s; expected auto, 2025-11-25 or 2026-07-28",
                         quote(pv).s, what);
    }
    if (f[SK_VALIDATE_ARGUMENTS].val) {
        snprintf(sub, sizeof(sub), "validate_arguments of %s", what);
        if ((err = get_bool(L, f[SK_VALIDATE_ARGUMENTS].val, sub, &s->validate_arguments)))
            return err;
    }
    return load_server_sessions(L, f, what, s);
}

static int load_servers(struct loader *L, const struct ynode *n)
{
    struct config *c = L->c;
    if (n->type != YN_SEQ)
        return FAILN(L, n, "servers is %s; expected a sequence of servers", kind(n));
    if (n->n > MAX_SERVERS)
        return FAILN(L, n, "servers has %zu servers; expected at most %d", n->n, MAX_SERVERS);
    const struct ynode **names = arena_alloc(&L->tree, (n->n + 1) * sizeof(*names));
    c->servers = arena_alloc(L->out, (n->n + 1) * sizeof(*c->servers));
    if (names == NULL || c->servers == NULL)
        return fail(L, ERR_NOMEM, 0, 0, "out of memory");
    size_t i = 0;
    for (const struct ynode *e = n->first; e != NULL; e = e->next, i++) {
        int err = load_server(L, e, i, &c->servers[i]);
        if (err)
            return err;
        /* the name node, for the duplicate check's two locations */
        for (const struct ynode *k = e->first; k != NULL && k->next != NULL; k = k->next->next)
            if (strcmp(k->text, "name") == 0)
                names[i] = k->next;
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->servers[j].name, c->servers[i].name) == 0)
                return FAILN(L, names[i],
                             "duplicate server name \"%s\" (also at line %d column %d); "
                             "expected unique server names",
                             c->servers[i].name, names[j]->line, names[j]->col);
    }
    c->nservers = n->n;
    return 0;
}

/* ---- store and auth ---- */

/* A duration of at least one second, in whole seconds (the token lifetimes). */
static int get_duration_s(struct loader *L, const struct ynode *n, const char *what, uint32_t *out)
{
    uint32_t ms;
    int err = get_duration(L, n, what, false, &ms);
    if (err)
        return err;
    if (ms < 1000)
        return FAILN(L, n, "%s is %ums; expected at least 1s", what, (unsigned)ms);
    *out = ms / 1000;
    return 0;
}

static int load_store(struct loader *L, const struct ynode *n)
{
    static const char *const keys[] = {"sqlite", "key_file", "postgres", NULL};
    struct field f[3];
    int err = map_fields(L, n, "store", keys, f);
    if (err)
        return err;
    if (f[0].val && (err = get_nonempty_str(L, f[0].val, "store.sqlite", &L->c->store.sqlite)))
        return err;
    if (f[1].val && (err = get_nonempty_str(L, f[1].val, "store.key_file", &L->c->store.key_file)))
        return err;
    L->c->store.key_file_set = f[1].val != NULL;
    if (f[2].val) {
        /* the value is never quoted in a message: it may hold a password */
        if (f[0].val)
            return FAILN(L, f[2].val,
                         "store.postgres and store.sqlite are exclusive; "
                         "expected one of them");
        if ((err = get_nonempty_str(L, f[2].val, "store.postgres", &L->c->store.postgres)))
            return err;
        if (strncmp(L->c->store.postgres, "postgresql://", 13) != 0 &&
            strncmp(L->c->store.postgres, "postgres://", 11) != 0)
            return FAILN(L, f[2].val,
                         "store.postgres is not a connection URI; expected "
                         "postgresql://[user[:password]@]host[:port]/database[?...]");
        if (!f[1].val)
            return FAILN(L, f[2].val,
                         "store.postgres needs store.key_file (the master key: the "
                         "same file on every replica)");
        /* what store_open opens */
        L->c->store.sqlite = L->c->store.postgres;
    }
    return 0;
}

static int load_redis(struct loader *L, const struct ynode *n)
{
    static const char *const keys[] = {"url", "revocation_poll", "prefix", NULL};
    struct field f[3];
    struct config_redis *r = &L->c->redis;
    int err = map_fields(L, n, "redis", keys, f);
    if (err)
        return err;
    if (!f[0].val)
        return FAILN(L, n, "redis needs url; expected redis://[[user]:password@]host[:port][/db]");
    /* the value is never quoted in a message: it may hold a password */
    if ((err = get_nonempty_str(L, f[0].val, "redis.url", &r->url)))
        return err;
    if (strncmp(r->url, "rediss://", 9) == 0)
        return FAILN(L, f[0].val,
                     "redis.url asks for TLS (rediss://), which this build's Redis client "
                     "(hiredis 0.14) cannot speak; expected redis:// to a Redis on a trusted "
                     "network, or a TLS tunnel on localhost");
    if (strncmp(r->url, "redis://", 8) != 0)
        return FAILN(L, f[0].val,
                     "redis.url is not a Redis URL; expected "
                     "redis://[[user]:password@]host[:port][/db]");
    if (f[1].val &&
        (err = get_duration(L, f[1].val, "redis.revocation_poll", false, &r->revocation_poll_ms)))
        return err;
    if (f[2].val && (err = get_nonempty_str(L, f[2].val, "redis.prefix", &r->prefix)))
        return err;
    if (r->prefix == NULL && (r->prefix = arena_strndup(L->out, "gatehouse:", 10)) == NULL)
        return fail(L, ERR_NOMEM, 0, 0, "out of memory");
    if (strlen(r->prefix) > 64)
        return FAILN(L, f[2].val, "redis.prefix is longer than 64 characters");
    return 0;
}

static int load_outbound(struct loader *L, const struct ynode *n)
{
    static const char *const keys[] = {"ca_file", NULL};
    struct field f[1];
    int err = map_fields(L, n, "outbound", keys, f);
    if (err)
        return err;
    if (f[0].val &&
        (err = get_nonempty_str(L, f[0].val, "outbound.ca_file", &L->c->outbound.ca_file)))
        return err;
    return 0;
}

/* "https://host[:port]" or "http://host[:port]", nothing after the authority. */
static bool issuer_ok(const char *s)
{
    if (!http_url_ok(s))
        return false;
    const char *h = s + (s[4] == 's' ? 8 : 7);
    return strpbrk(h, "/?#") == NULL;
}

static int load_registration(struct loader *L, const struct ynode *n)
{
    static const char *const keys[] = {
        "dynamic",    "cimd", "cimd_allow_private", "cimd_max_size", "cimd_timeout",
        "cimd_cache", NULL};
    struct config_auth *a = &L->c->auth;
    struct field f[6];
    int err = map_fields(L, n, "auth.registration", keys, f);
    if (err)
        return err;
    if (f[0].val &&
        (err = get_bool(L, f[0].val, "auth.registration.dynamic", &a->dynamic_registration)))
        return err;
    if (f[1].val && (err = get_bool(L, f[1].val, "auth.registration.cimd", &a->cimd)))
        return err;
    if (f[2].val && (err = get_bool(L, f[2].val, "auth.registration.cimd_allow_private",
                                    &a->cimd_allow_private)))
        return err;
    if (f[3].val &&
        (err = get_size(L, f[3].val, "auth.registration.cimd_max_size", &a->cimd_max_size)))
        return err;
    if (f[3].val && a->cimd_max_size > (1u << 20))
        return FAILN(L, f[3].val,
                     "auth.registration.cimd_max_size is %zu bytes; expected at most 1MiB",
                     a->cimd_max_size);
    if (f[4].val && (err = get_duration(L, f[4].val, "auth.registration.cimd_timeout", false,
                                        &a->cimd_timeout_ms)))
        return err;
    if (f[5].val &&
        (err = get_duration_s(L, f[5].val, "auth.registration.cimd_cache", &a->cimd_cache_s)))
        return err;
    return 0;
}

static int load_idp(struct loader *L, const struct ynode *n, size_t idx, struct config_idp *p)
{
    static const char *const keys[] = {
        "name",         "issuer", "client_id", "client_secret_file", "scopes", "username_claim",
        "groups_claim", "jit",    NULL};
    static const char *const default_scopes[] = {"openid", "profile", "email"};
    char what[96], sub[160];
    struct field f[8];
    snprintf(what, sizeof(what), "identity provider %zu of auth.login.providers", idx + 1);
    int err = map_fields(L, n, what, keys, f);
    if (err)
        return err;
    for (size_t i = 0; i < 3; i++)
        if (f[i].val == NULL)
            return FAILN(L, n, "%s has no %s; expected name, issuer and client_id", what, keys[i]);
    if ((err = get_nonempty_str(L, f[0].val, "the name of an identity provider", &p->name)))
        return err;
    if (!name_ok(p->name, strlen(p->name)))
        return FAILN(L, f[0].val,
                     "%s is not a valid name for %s; expected 1-%d characters "
                     "from a-z A-Z 0-9 _ -",
                     quote(f[0].val).s, what, CONFIG_NAME_MAX);
    if (strcmp(p->name, "callback") == 0)
        return FAILN(L, f[0].val,
                     "%s cannot be called \"callback\": /oauth/sso/callback is where every "
                     "provider sends the browser back",
                     what);
    snprintf(what, sizeof(what), "identity provider \"%s\"", p->name);
    snprintf(sub, sizeof(sub), "issuer of %s", what);
    if ((err = get_nonempty_str(L, f[1].val, sub, &p->issuer)))
        return err;
    if (!http_url_ok(p->issuer))
        return FAILN(L, f[1].val, "%s is not a URL for %s; expected https://idp.example[/path]",
                     quote(f[1].val).s, sub);
    snprintf(sub, sizeof(sub), "client_id of %s", what);
    if ((err = get_nonempty_str(L, f[2].val, sub, &p->client_id)))
        return err;
    snprintf(sub, sizeof(sub), "client_secret_file of %s", what);
    if (f[3].val && (err = get_nonempty_str(L, f[3].val, sub, &p->client_secret_file)))
        return err;
    snprintf(sub, sizeof(sub), "scopes of %s", what);
    if (f[4].val) {
        if ((err = get_str_list(L, f[4].val, sub, true, &p->scopes, &p->nscopes)))
            return err;
        bool openid = false;
        for (size_t i = 0; i < p->nscopes; i++)
            openid |= strcmp(p->scopes[i], "openid") == 0;
        if (!openid)
            return FAILN(L, f[4].val,
                         "%s has no \"openid\"; without it the provider sends no id_token", sub);
    } else {
        if ((p->scopes = arena_alloc(L->out, 4 * sizeof(char *))) == NULL)
            return fail(L, ERR_NOMEM, 0, 0, "out of memory");
        for (size_t i = 0; i < 3; i++)
            if ((p->scopes[i] =
                     arena_strndup(L->out, default_scopes[i], strlen(default_scopes[i]))) == NULL)
                return fail(L, ERR_NOMEM, 0, 0, "out of memory");
        p->nscopes = 3;
    }
    snprintf(sub, sizeof(sub), "username_claim of %s", what);
    if (f[5].val && (err = get_nonempty_str(L, f[5].val, sub, &p->username_claim)))
        return err;
    snprintf(sub, sizeof(sub), "groups_claim of %s", what);
    if (f[6].val && (err = get_nonempty_str(L, f[6].val, sub, &p->groups_claim)))
        return err;
    p->jit = true;
    snprintf(sub, sizeof(sub), "jit of %s", what);
    if (f[7].val && (err = get_bool(L, f[7].val, sub, &p->jit)))
        return err;
    return 0;
}

static int load_login(struct loader *L, const struct ynode *n)
{
    static const char *const keys[] = {"local", "providers", NULL};
    struct config_auth *a = &L->c->auth;
    struct field f[2];
    int err = map_fields(L, n, "auth.login", keys, f);
    if (err)
        return err;
    if (f[0].val && (err = get_bool(L, f[0].val, "auth.login.local", &a->local_login)))
        return err;
    if (f[1].val == NULL)
        return 0;
    const struct ynode *s = f[1].val;
    if (s->type != YN_SEQ)
        return FAILN(L, s, "auth.login.providers is %s; expected a sequence of identity providers",
                     kind(s));
    if (s->n > MAX_LIST_ITEMS)
        return FAILN(L, s, "auth.login.providers has %zu items; expected at most %d", s->n,
                     MAX_LIST_ITEMS);
    if ((a->providers = arena_alloc(L->out, (s->n + 1) * sizeof(*a->providers))) == NULL)
        return fail(L, ERR_NOMEM, 0, 0, "out of memory");
    size_t i = 0;
    for (const struct ynode *e = s->first; e != NULL; e = e->next, i++) {
        if ((err = load_idp(L, e, i, &a->providers[i])))
            return err;
        for (size_t j = 0; j < i; j++)
            if (strcmp(a->providers[j].name, a->providers[i].name) == 0)
                return FAILN(L, e, "duplicate identity provider name \"%s\"; expected unique names",
                             a->providers[i].name);
    }
    a->nproviders = s->n;
    return 0;
}

static int load_client(struct loader *L, const struct ynode *n, size_t idx,
                       struct config_oauth_client *cl)
{
    static const char *const keys[] = {"client_id",   "name",       "redirect_uris",
                                       "secret_file", "introspect", NULL};
    char what[160], sub[224];
    struct field f[5];
    snprintf(what, sizeof(what), "client %zu of auth.clients", idx + 1);
    int err = map_fields(L, n, what, keys, f);
    if (err)
        return err;
    if (f[0].val == NULL || f[2].val == NULL)
        return FAILN(L, n, "%s has no %s; expected client_id and redirect_uris", what,
                     f[0].val == NULL ? "client_id" : "redirect_uris");
    if ((err = get_nonempty_str(L, f[0].val, "a client_id in auth.clients", &cl->client_id)))
        return err;
    if (strlen(cl->client_id) > 128 || strpbrk(cl->client_id, " \t\r\n:/") != NULL)
        return FAILN(L, f[0].val,
                     "%s is not a valid client_id; expected at most 128 characters without "
                     "spaces, ':' or '/' (URL client ids are Client ID Metadata Documents)",
                     quote(f[0].val).s);
    snprintf(what, sizeof(what), "client \"%s\"", cl->client_id);
    snprintf(sub, sizeof(sub), "name of %s", what);
    if (f[1].val && (err = get_nonempty_str(L, f[1].val, sub, &cl->name)))
        return err;
    snprintf(sub, sizeof(sub), "redirect_uris of %s", what);
    if ((err = get_str_list(L, f[2].val, sub, true, &cl->redirect_uris, &cl->nredirect_uris)))
        return err;
    if (cl->nredirect_uris == 0)
        return FAILN(L, f[2].val, "%s is empty; expected at least one redirect URI", sub);
    for (size_t i = 0; i < cl->nredirect_uris; i++)
        if (!http_url_ok(cl->redirect_uris[i]) && strstr(cl->redirect_uris[i], "://") == NULL)
            return FAILN(L, f[2].val,
                         "\"%s\" in %s is not an absolute URI; expected e.g. "
                         "https://app.example/callback or http://127.0.0.1/callback",
                         cl->redirect_uris[i], sub);
    snprintf(sub, sizeof(sub), "secret_file of %s", what);
    if (f[3].val && (err = get_nonempty_str(L, f[3].val, sub, &cl->secret_file)))
        return err;
    snprintf(sub, sizeof(sub), "introspect of %s", what);
    if (f[4].val && (err = get_bool(L, f[4].val, sub, &cl->introspect)))
        return err;
    if (cl->introspect && cl->secret_file == NULL)
        return FAILN(L, f[4].val,
                     "%s is true but the client has no secret_file; a resource server that "
                     "introspects tokens must be a confidential client",
                     sub);
    return 0;
}

static int load_clients(struct loader *L, const struct ynode *n)
{
    struct config_auth *a = &L->c->auth;
    if (n->type != YN_SEQ)
        return FAILN(L, n, "auth.clients is %s; expected a sequence of clients", kind(n));
    if (n->n > MAX_LIST_ITEMS)
        return FAILN(L, n, "auth.clients has %zu items; expected at most %d", n->n, MAX_LIST_ITEMS);
    if ((a->clients = arena_alloc(L->out, (n->n + 1) * sizeof(*a->clients))) == NULL)
        return fail(L, ERR_NOMEM, 0, 0, "out of memory");
    size_t i = 0;
    for (const struct ynode *e = n->first; e != NULL; e = e->next, i++) {
        int err = load_client(L, e, i, &a->clients[i]);
        if (err)
            return err;
        for (size_t j = 0; j < i; j++)
            if (strcmp(a->clients[j].client_id, a->clients[i].client_id) == 0)
                return FAILN(L, e,
                             "duplicate client_id \"%s\" in auth.clients; expected unique ids",
                             a->clients[i].client_id);
    }
    a->nclients = n->n;
    return 0;
}

static bool account_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("._@+-", *s)))
            return false;
    return true;
}

/* auth.client_certificates: [{subject | uri, account}] */
static int load_client_certs(struct loader *L, const struct ynode *n)
{
    static const char *const keys[] = {"subject", "uri", "account", NULL};
    struct config_auth *a = &L->c->auth;
    if (n->type != YN_SEQ)
        return FAILN(L, n,
                     "auth.client_certificates is %s; expected a sequence of {subject or uri, "
                     "account}",
                     kind(n));
    if (n->n > MAX_LIST_ITEMS)
        return FAILN(L, n, "auth.client_certificates has %zu items; expected at most %d", n->n,
                     MAX_LIST_ITEMS);
    if ((a->client_certs = arena_alloc(L->out, (n->n + 1) * sizeof(*a->client_certs))) == NULL)
        return fail(L, ERR_NOMEM, 0, 0, "out of memory");
    size_t i = 0;
    for (const struct ynode *e = n->first; e != NULL; e = e->next, i++) {
        struct config_client_cert *cc = &a->client_certs[i];
        struct field f[3];
        char what[96];
        snprintf(what, sizeof(what), "item %zu of auth.client_certificates", i + 1);
        int err = map_fields(L, e, what, keys, f);
        if (err)
            return err;
        if ((f[0].val == NULL) == (f[1].val == NULL))
            return FAILN(L, e, "%s has %s; expected exactly one of subject and uri", what,
                         f[0].val ? "both subject and uri" : "neither subject nor uri");
        if (f[2].val == NULL)
            return FAILN(L, e,
                         "%s has no account; expected the service account it authenticates "
                         "as",
                         what);
        if (f[0].val && (err = get_nonempty_str(L, f[0].val, "subject", &cc->subject)))
            return err;
        if (f[1].val && (err = get_nonempty_str(L, f[1].val, "uri", &cc->uri)))
            return err;
        if ((err = get_nonempty_str(L, f[2].val, "account", &cc->account)))
            return err;
        if (!account_name_ok(cc->account))
            return FAILN(L, f[2].val,
                         "%s is not a service account name for %s; expected 1 to 128 of "
                         "A-Z a-z 0-9 . _ @ + -",
                         quote(f[2].val).s, what);
        for (size_t j = 0; j < i; j++) {
            const struct config_client_cert *o = &a->client_certs[j];
            if ((cc->subject && o->subject && strcmp(cc->subject, o->subject) == 0) ||
                (cc->uri && o->uri && strcmp(cc->uri, o->uri) == 0))
                return FAILN(L, e,
                             "%s \"%s\" is mapped twice in auth.client_certificates; "
                             "expected each once",
                             cc->subject ? "subject" : "uri", cc->subject ? cc->subject : cc->uri);
        }
    }
    a->nclient_certs = n->n;
    return 0;
}

/* scopes defaults to ["mcp"], required_scope to the first scope. */
static int load_auth_scope_defaults(struct loader *L)
{
    struct config_auth *a = &L->c->auth;
    if (a->scopes == NULL) {
        if ((a->scopes = arena_alloc(L->out, 2 * sizeof(char *))) == NULL ||
            (a->scopes[0] = arena_strndup(L->out, "mcp", 3)) == NULL)
            return fail(L, ERR_NOMEM, 0, 0, "out of memory");
        a->nscopes = 1;
    }
    if (a->required_scope == NULL)
        a->required_scope = a->scopes[0];
    return 0;
}

static int load_auth(struct loader *L, const struct ynode *n)
{
    enum {
        AK_ENABLED,
        AK_ISSUER,
        AK_ACCESS_TTL,
        AK_REFRESH_TTL,
        AK_CODE_TTL,
        AK_LOGIN_TTL,
        AK_ALG,
        AK_SCOPES,
        AK_REQUIRED_SCOPE,
        AK_REGISTRATION,
        AK_LOGIN,
        AK_CLIENTS,
        AK_CLIENT_CERTS,
        AK_COUNT
    };
    static const char *const keys[] = {"enabled",
                                       "issuer",
                                       "access_token_ttl",
                                       "refresh_token_ttl",
                                       "code_ttl",
                                       "login_ttl",
                                       "signing_alg",
                                       "scopes",
                                       "required_scope",
                                       "registration",
                                       "login",
                                       "clients",
                                       "client_certificates",
                                       NULL};
    struct config_auth *a = &L->c->auth;
    struct field f[AK_COUNT];
    int err = map_fields(L, n, "auth", keys, f);
    if (err)
        return err;
    a->enabled = true;
    if (f[AK_ENABLED].val && (err = get_bool(L, f[AK_ENABLED].val, "auth.enabled", &a->enabled)))
        return err;
    if (f[AK_ISSUER].val) {
        if ((err = get_nonempty_str(L, f[AK_ISSUER].val, "auth.issuer", &a->issuer)))
            return err;
        if (!issuer_ok(a->issuer))
            return FAILN(L, f[AK_ISSUER].val,
                         "%s is not an issuer URL; expected https://host[:port] with no path, "
                         "query or trailing slash",
                         quote(f[AK_ISSUER].val).s);
    }
    if (f[AK_ACCESS_TTL].val &&
        (err = get_duration_s(L, f[AK_ACCESS_TTL].val, "auth.access_token_ttl",
                              &a->access_token_ttl_s)))
        return err;
    if (f[AK_REFRESH_TTL].val &&
        (err = get_duration_s(L, f[AK_REFRESH_TTL].val, "auth.refresh_token_ttl",
                              &a->refresh_token_ttl_s)))
        return err;
    if (f[AK_CODE_TTL].val &&
        (err = get_duration_s(L, f[AK_CODE_TTL].val, "auth.code_ttl", &a->code_ttl_s)))
        return err;
    if (f[AK_LOGIN_TTL].val &&
        (err = get_duration_s(L, f[AK_LOGIN_TTL].val, "auth.login_ttl", &a->login_ttl_s)))
        return err;
    if (f[AK_ALG].val) {
        if ((err = get_nonempty_str(L, f[AK_ALG].val, "auth.signing_alg", &a->signing_alg)))
            return err;
        if (strcmp(a->signing_alg, "ES256") != 0 && strcmp(a->signing_alg, "EdDSA") != 0)
            return FAILN(L, f[AK_ALG].val, "%s is not a signing algorithm; expected ES256 or EdDSA",
                         quote(f[AK_ALG].val).s);
    }
    if (f[AK_SCOPES].val) {
        if ((err = get_str_list(L, f[AK_SCOPES].val, "auth.scopes", true, &a->scopes, &a->nscopes)))
            return err;
        for (size_t i = 0; i < a->nscopes; i++)
            for (const char *p = a->scopes[i]; *p; p++)
                if ((unsigned char)*p <= 0x20 || *p == '"' || *p == '\\' || *p == 0x7f)
                    return FAILN(L, f[AK_SCOPES].val,
                                 "scope \"%s\" in auth.scopes has a character OAuth does not "
                                 "allow in a scope; expected printable ASCII without space, \" "
                                 "or \\",
                                 a->scopes[i]);
    }
    if (f[AK_REQUIRED_SCOPE].val &&
        (err = get_nonempty_str(L, f[AK_REQUIRED_SCOPE].val, "auth.required_scope",
                                &a->required_scope)))
        return err;
    if (f[AK_REGISTRATION].val && (err = load_registration(L, f[AK_REGISTRATION].val)))
        return err;
    if (f[AK_LOGIN].val && (err = load_login(L, f[AK_LOGIN].val)))
        return err;
    if (f[AK_CLIENTS].val && (err = load_clients(L, f[AK_CLIENTS].val)))
        return err;
    if (f[AK_CLIENT_CERTS].val && (err = load_client_certs(L, f[AK_CLIENT_CERTS].val)))
        return err;

    if ((err = load_auth_scope_defaults(L)))
        return err;
    bool known = false;
    for (size_t i = 0; i < a->nscopes && !known; i++)
        known = strcmp(a->scopes[i], a->required_scope) == 0;
    if (!known)
        return FAILN(L, f[AK_REQUIRED_SCOPE].val ? f[AK_REQUIRED_SCOPE].val : n,
                     "auth.required_scope \"%s\" is not in auth.scopes; expected one of the "
                     "scopes the server offers",
                     a->required_scope);
    if (!a->local_login && a->nproviders == 0 && a->enabled)
        return FAILN(L, f[AK_LOGIN].val ? f[AK_LOGIN].val : n,
                     "auth.login has local: false and no providers, so nobody could log in; "
                     "expected local: true or at least one identity provider");
    return 0;
}

/* Defaults that depend on other values: the key file next to the database. */
static int finish_store_auth(struct loader *L)
{
    struct config *c = L->c;
    char tmp[600];
    /* A client certificate authenticates as a service account, which lives in the store that
       authentication opens: without it a verified certificate would have nobody to be. */
    /* An upstream's OAuth tokens are each user's own: without authentication there is no user
       to hold them, and no callback endpoint to finish the authorization at. */
    for (size_t i = 0; i < c->nservers; i++)
        if (c->servers[i].oauth.enabled && !c->auth.enabled)
            return fail(L, ERR_INVAL, 0, 0,
                        "server \"%s\" has auth.oauth but authentication is off; expected an "
                        "auth section (each user's upstream tokens belong to the user the gateway "
                        "authenticated)",
                        c->servers[i].name);
    for (size_t i = 0; i < c->nlisteners; i++)
        if (c->listeners[i].tls_client_ca && !c->auth.enabled)
            return fail(L, ERR_INVAL, 0, 0,
                        "listener #%zu has tls.client_ca but authentication is off; expected an "
                        "auth section (a client certificate authenticates as a service account "
                        "mapped in auth.client_certificates)",
                        i + 1);
    if (c->store.sqlite == NULL &&
        (c->store.sqlite = arena_strndup(L->out, "gatehouse.db", 12)) == NULL)
        return fail(L, ERR_NOMEM, 0, 0, "out of memory");
    if (c->store.key_file == NULL) {
        int n = snprintf(tmp, sizeof(tmp), "%s.key", c->store.sqlite);
        if (n < 0 || (size_t)n >= sizeof(tmp))
            return fail(L, ERR_INVAL, 0, 0,
                        "store.sqlite is too long to derive store.key_file; "
                        "expected a path under 590 bytes or an explicit key_file");
        if ((c->store.key_file = arena_strndup(L->out, tmp, (size_t)n)) == NULL)
            return fail(L, ERR_NOMEM, 0, 0, "out of memory");
    }
    return 0;
}

static int set_defaults(struct loader *L)
{
    static const char *const hosts[] = {"localhost", "127.0.0.1", "[::1]"};
    struct config *c = L->c;
    c->http2 = true; /* HTTP/2 through nghttp2 (src/http/h2.c) */
    c->max_body = (size_t)4 << 20;
    c->session_idle_ms = 30 * 60 * 1000;
    c->max_sessions = 100000;
    c->replay_events = 256;
    c->sse_keepalive_ms = 15000;
    c->write_timeout_ms = 60000;
    c->shutdown_grace_ms = 10000;
    c->mrtr_ttl_ms = 60000;
    c->prefix_mode = PREFIX_WHEN_NEEDED;
    c->auth.access_token_ttl_s = 600;
    c->auth.refresh_token_ttl_s = 30u * 24 * 3600;
    c->auth.code_ttl_s = 60;
    c->auth.login_ttl_s = 8u * 3600;
    c->auth.dynamic_registration = true;
    c->auth.cimd = true;
    c->auth.cimd_max_size = 16u << 10;
    c->auth.cimd_timeout_ms = 5000;
    c->auth.cimd_cache_s = 600;
    c->auth.local_login = true;
    c->log_level = arena_strndup(L->out, "info", 4);
    c->auth.signing_alg = arena_strndup(L->out, "ES256", 5);
    c->prefix_separator = arena_strndup(L->out, "__", 2);
    c->allowed_hosts = arena_alloc(L->out, 4 * sizeof(char *));
    c->allowed_origins = arena_alloc(L->out, sizeof(char *));
    if (!c->log_level || !c->auth.signing_alg || !c->prefix_separator || !c->allowed_hosts ||
        !c->allowed_origins)
        return fail(L, ERR_NOMEM, 0, 0, "out of memory");
    for (size_t i = 0; i < 3; i++)
        if ((c->allowed_hosts[i] = arena_strndup(L->out, hosts[i], strlen(hosts[i]))) == NULL)
            return fail(L, ERR_NOMEM, 0, 0, "out of memory");
    c->nallowed_hosts = 3;
    return 0;
}

enum {
    TK_LISTEN,
    TK_WORKERS,
    TK_HTTP2,
    TK_HOSTS,
    TK_ORIGINS,
    TK_LIMITS,
    TK_LOG,
    TK_PREFIX,
    TK_SERVERS,
    TK_STORE,
    TK_AUTH,
    TK_OUTBOUND,
    TK_REDIS,
    TK_COUNT
};

static int load_root(struct loader *L, const struct ynode *root)
{
    static const char *const keys[] = {
        "listen", "workers", "http2", "allowed_hosts", "allowed_origins", "limits", "log",
        "prefix", "servers", "store", "auth",          "outbound",        "redis",  NULL};
    struct config *c = L->c;
    struct field f[TK_COUNT];
    int err = set_defaults(L);
    if (err)
        return err;
    memset(f, 0, sizeof(f));
    if (root != NULL && !is_null(root) && (err = map_fields(L, root, "the top level", keys, f)))
        return err;

    if (f[TK_LISTEN].val) {
        if ((err = load_listen(L, f[TK_LISTEN].val)))
            return err;
    } else {
        c->listeners = arena_alloc(L->out, sizeof(*c->listeners));
        if (c->listeners == NULL ||
            (c->listeners[0].address = arena_strndup(L->out, "127.0.0.1", 9)) == NULL)
            return fail(L, ERR_NOMEM, 0, 0, "out of memory");
        c->listeners[0].port = 8080;
        c->nlisteners = 1;
    }
    if (f[TK_WORKERS].val) {
        uint64_t v;
        if ((err = get_uint(L, f[TK_WORKERS].val, "workers", 0, 256, &v)))
            return err;
        c->workers = (unsigned)v;
    }
    if (f[TK_HTTP2].val && (err = get_bool(L, f[TK_HTTP2].val, "http2", &c->http2)))
        return err;
    if (f[TK_HOSTS].val && (err = load_hosts(L, f[TK_HOSTS].val)))
        return err;
    if (f[TK_ORIGINS].val && (err = load_origins(L, f[TK_ORIGINS].val)))
        return err;
    if (f[TK_LIMITS].val && (err = load_limits(L, f[TK_LIMITS].val)))
        return err;
    if (f[TK_LOG].val && (err = load_log(L, f[TK_LOG].val)))
        return err;
    if (f[TK_PREFIX].val && (err = load_prefix(L, f[TK_PREFIX].val)))
        return err;
    if (f[TK_SERVERS].val && (err = load_servers(L, f[TK_SERVERS].val)))
        return err;
    if (c->servers == NULL && (c->servers = arena_alloc(L->out, sizeof(*c->servers))) == NULL)
        return fail(L, ERR_NOMEM, 0, 0, "out of memory");
    if (f[TK_STORE].val && (err = load_store(L, f[TK_STORE].val)))
        return err;
    if (f[TK_OUTBOUND].val && (err = load_outbound(L, f[TK_OUTBOUND].val)))
        return err;
    c->redis.revocation_poll_ms = 1000;
    if (f[TK_REDIS].val && !is_null(f[TK_REDIS].val) && (err = load_redis(L, f[TK_REDIS].val)))
        return err;
    if (f[TK_AUTH].val && !is_null(f[TK_AUTH].val) && (err = load_auth(L, f[TK_AUTH].val)))
        return err;
    if ((err = load_auth_scope_defaults(L)))
        return err;
    return finish_store_auth(L);
}

/* ---- relative paths ---- */

/* *p made absolute against L->base when it is relative (a file loaded with config_load_file). */
static int resolve_one(struct loader *L, char **p)
{
    if (L->base == NULL || *p == NULL || (*p)[0] == '/')
        return 0;
    size_t bl = strlen(L->base), pl = strlen(*p);
    char *abs = arena_alloc(L->out, bl + pl + 2);
    if (abs == NULL)
        return fail(L, ERR_NOMEM, 0, 0, "out of memory");
    memcpy(abs, L->base, bl);
    abs[bl] = '/';
    memcpy(abs + bl + 1, *p, pl + 1);
    *p = abs;
    return 0;
}

/* Every path in the file is relative to the file's folder, not to the current directory, so
   that `cd elsewhere && gatehouse -c /etc/gh/gatehouse.yaml ...` finds the same store, keys and
   documents as the gateway does. A stdio server runs in that folder unless it names its own cwd
   (itself relative to the folder), so that a relative command (one with a slash; else it is
   looked up in PATH) and relative arguments mean the same thing too. */
static int resolve_paths(struct loader *L)
{
    struct config *c = L->c;
    int err = 0;
    if (L->base == NULL)
        return 0;
    if (c->store.postgres == NULL && strcmp(c->store.sqlite, ":memory:") != 0 &&
        strncmp(c->store.sqlite, "file:", 5) != 0)
        err = resolve_one(L, &c->store.sqlite);
    if (err || (err = resolve_one(L, &c->store.key_file)) ||
        (err = resolve_one(L, &c->outbound.ca_file)))
        return err;
    for (size_t i = 0; i < c->nlisteners; i++)
        if ((err = resolve_one(L, &c->listeners[i].tls_cert)) ||
            (err = resolve_one(L, &c->listeners[i].tls_key)) ||
            (err = resolve_one(L, &c->listeners[i].tls_client_ca)))
            return err;
    for (size_t i = 0; i < c->auth.nclients; i++)
        if ((err = resolve_one(L, &c->auth.clients[i].secret_file)))
            return err;
    for (size_t i = 0; i < c->auth.nproviders; i++)
        if ((err = resolve_one(L, &c->auth.providers[i].client_secret_file)))
            return err;
    for (size_t i = 0; i < c->nservers; i++) {
        struct config_server *s = &c->servers[i];
        if (s->transport == TRANSPORT_STDIO) {
            if (s->cwd == NULL &&
                (s->cwd = arena_strndup(L->out, L->base, strlen(L->base))) == NULL)
                return fail(L, ERR_NOMEM, 0, 0, "out of memory");
            if ((err = resolve_one(L, &s->cwd)))
                return err;
        }
        if (s->transport == TRANSPORT_OPENAPI) {
            if ((!strstr(s->spec, "://") && (err = resolve_one(L, &s->spec))) ||
                (err = resolve_one(L, &s->overrides)))
                return err;
            for (size_t k = 0; k < s->noverlays; k++)
                if ((err = resolve_one(L, &s->overlays[k])))
                    return err;
            for (size_t k = 0; k < s->ncredentials; k++)
                if ((err = resolve_one(L, &s->credentials[k].file)))
                    return err;
        }
    }
    return 0;
}

/* ---- public API ---- */

static int load_text(const char *text, size_t len, const char *name, const char *base,
                     struct config **out, struct err_info *ei)
{
    struct loader L = {.name = name ? name : "<string>", .base = base, .ei = ei};
    struct snapshot *snap = NULL;
    struct ynode *root = NULL;
    int err;

    if (len > CONFIG_MAX_SIZE) {
        err = fail(&L, ERR_LIMIT, 0, 0,
                   "the configuration is %zu bytes; expected at most %d bytes (1 MiB)", len,
                   CONFIG_MAX_SIZE);
        goto out;
    }
    snap = calloc(1, sizeof(*snap));
    if (snap == NULL) {
        err = fail(&L, ERR_NOMEM, 0, 0, "out of memory");
        goto out;
    }
    L.out = &snap->arena;
    L.c = &snap->pub;
    atomic_init(&snap->pub.refcnt, 1);
    snap->pub.source = arena_strndup(L.out, L.name, strlen(L.name));
    if (snap->pub.source == NULL) {
        err = fail(&L, ERR_NOMEM, 0, 0, "out of memory");
        goto out;
    }
    if ((err = check_utf8(&L, text ? text : "", text ? len : 0)))
        goto out;
    if ((err = tree_build(&L, text ? text : "", text ? len : 0, &root)))
        goto out;
    if ((err = load_root(&L, root)) || (err = resolve_paths(&L)))
        goto out;
    *out = &snap->pub;
    snap = NULL;
out:
    if (snap != NULL) {
        arena_release(&snap->arena);
        free(snap);
    }
    arena_release(&L.tree);
    return err;
}

int config_load_string(const char *text, size_t len, const char *name, struct config **out,
                       struct err_info *ei)
{
    return load_text(text, len, name, NULL, out, ei);
}

int config_load_file(const char *path, struct config **out, struct err_info *ei)
{
    struct loader L = {.name = path, .ei = ei};
    char *text = NULL;
    size_t len = 0;
    int fd = -1, err;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err = fail(&L, ERR_IO, 0, 0, "cannot open: %s; expected a readable YAML file",
                   strerror(errno));
        goto out;
    }
    /* Read at most one byte past the limit, so that an oversized (or endless) file is refused
       without reading it all. */
    text = malloc((size_t)CONFIG_MAX_SIZE + 1);
    if (text == NULL) {
        err = fail(&L, ERR_NOMEM, 0, 0, "out of memory");
        goto out;
    }
    while (len <= CONFIG_MAX_SIZE) {
        ssize_t n = read(fd, text + len, (size_t)CONFIG_MAX_SIZE + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = fail(&L, ERR_IO, 0, 0, "cannot read: %s; expected a readable YAML file",
                       strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > CONFIG_MAX_SIZE) {
        err = fail(&L, ERR_LIMIT, 0, 0,
                   "the configuration is larger than %d bytes; expected at most 1 MiB",
                   CONFIG_MAX_SIZE);
        goto out;
    }
    /* the folder of the file, with symbolic links resolved, for its relative paths */
    char *real = realpath(path, NULL);
    if (real == NULL) {
        err = fail(&L, ERR_IO, 0, 0, "cannot resolve the folder of the file: %s", strerror(errno));
        goto out;
    }
    char *slash = strrchr(real, '/');
    if (slash == real)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    err = load_text(text, len, path, real, out, ei);
    free(real);
out:
    if (fd >= 0)
        close(fd);
    free(text);
    return err;
}

const char *config_locate(const char *given, const char **how)
{
    const char *env = getenv("GATEHOUSE_CONFIG");
    if (given) {
        *how = "-c";
        return given;
    }
    if (env && env[0]) {
        *how = "GATEHOUSE_CONFIG";
        return env;
    }
    if (access("gatehouse.yaml", F_OK) == 0) {
        *how = "./gatehouse.yaml";
        return "gatehouse.yaml";
    }
    *how = "none";
    return NULL;
}

struct config *config_ref(struct config *c)
{
    atomic_fetch_add_explicit(&c->refcnt, 1, memory_order_relaxed);
    return c;
}

void config_unref(struct config *c)
{
    if (c == NULL)
        return;
    /* acq_rel: every thread's reads of the snapshot happen before the free */
    if (atomic_fetch_sub_explicit(&c->refcnt, 1, memory_order_acq_rel) != 1)
        return;
    struct snapshot *snap = (struct snapshot *)(void *)c;
    arena_release(&snap->arena);
    free(snap);
}

const char *config_protocol_str(enum config_protocol p)
{
    switch (p) {
    case PROTOCOL_AUTO:
        return "auto";
    case PROTOCOL_LEGACY:
        return "2025-11-25";
    case PROTOCOL_MODERN:
        return "2026-07-28";
    }
    return "?";
}

int config_discovery_parse(const char *s)
{
    for (int d = DISCOVERY_STATIC; d <= DISCOVERY_SEARCH; d++)
        if (s && strcmp(s, config_discovery_str((enum config_discovery)d)) == 0)
            return d;
    return -1;
}

enum config_discovery config_discovery_effective(const struct config_server *srv,
                                                 size_t static_tools)
{
    if (!srv->discovery_auto)
        return srv->discovery;
    return static_tools <= CONFIG_DISCOVERY_AUTO_MAX ? DISCOVERY_STATIC : DISCOVERY_SEARCH;
}

const char *config_discovery_str(enum config_discovery d)
{
    switch (d) {
    case DISCOVERY_STATIC:
        return "static";
    case DISCOVERY_HIERARCHICAL:
        return "hierarchical";
    case DISCOVERY_SEARCH:
        return "search";
    }
    return "?";
}

const char *config_transport_str(enum config_transport t)
{
    switch (t) {
    case TRANSPORT_STDIO:
        return "stdio";
    case TRANSPORT_HTTP:
        return "http";
    case TRANSPORT_OPENAPI:
        return "openapi";
    }
    return "?";
}

const struct config_server *config_find_server(const struct config *c, const char *name)
{
    for (size_t i = 0; i < c->nservers; i++)
        if (strcmp(c->servers[i].name, name) == 0)
            return &c->servers[i];
    return NULL;
}

enum config_prefix_mode config_server_prefix(const struct config *c, const struct config_server *s)
{
    return s->prefix >= 0 ? (enum config_prefix_mode)s->prefix : c->prefix_mode;
}

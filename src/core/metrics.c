/*
 * The metrics registry; see metrics.h for the contract. Each family keeps its series twice: in a
 * list in creation order (for rendering, walked under the family lock) and in an open-addressing
 * hash table of atomic pointers (for updates, read without any lock). Series are never removed
 * before metrics_reset, so a reader that loaded a slot can use it forever. When the table fills
 * past 3/4 it is rebuilt at twice the size under the family lock and published with a release
 * store; the old table stays allocated (readers may still be probing it) until metrics_reset,
 * which costs at most as much again as the live table. A reader that misses in an old table
 * simply takes the slow path, which looks again under the lock.
 *
 * Values are doubles stored as their bit patterns in _Atomic uint64_t and updated with a
 * compare-and-swap loop; histogram buckets are plain atomic counts (one per bucket, made
 * cumulative when rendered, so that _count and the +Inf bucket always agree).
 */
#include "core/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct series {
    struct series *next; /* creation order; written under the family lock */
    uint64_t hash;
    char **values;             /* nlabels copies */
    _Atomic uint64_t value;    /* counter/gauge value, or histogram sum, as double bits */
    _Atomic uint64_t counts[]; /* histogram: one per bucket, then +Inf */
};

struct series_table {
    struct series_table *retired; /* older tables, kept for readers still probing them */
    size_t mask;
    _Atomic(struct series *) slot[];
};

struct metric {
    struct metric *next; /* registration order */
    enum metric_type type;
    char *name, *help;
    int nlabels;
    char *labels[METRICS_MAX_LABELS];
    int nbuckets;
    double *buckets;

    pthread_mutex_t lock; /* series creation and the list */
    _Atomic(struct series_table *) table;
    struct series *first, *last;
    _Atomic size_t nseries;         /* not counting the "_other" series */
    _Atomic(struct series *) other; /* the overflow series, once created */
    _Atomic uint64_t overflow;      /* updates folded into "_other" */
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metric *registry_first, *registry_last;

/* ---- doubles in atomics ---- */

static uint64_t d2u(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static double u2d(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

static void atomic_add_double(_Atomic uint64_t *p, double v)
{
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(p, &old, d2u(u2d(old) + v), memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

/* ---- registration ---- */

static bool name_ok(const char *s, bool colon)
{
    if (s == NULL || *s == '\0')
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (colon && c == ':') || (p != s && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static void metric_free(struct metric *m)
{
    struct series *s = m->first;
    while (s != NULL) {
        struct series *next = s->next;
        for (int i = 0; i < m->nlabels; i++)
            free(s->values[i]);
        free(s->values);
        free(s);
        s = next;
    }
    struct series *o = atomic_load(&m->other);
    if (o != NULL) {
        for (int i = 0; i < m->nlabels; i++)
            free(o->values[i]);
        free(o->values);
        free(o);
    }
    struct series_table *t = atomic_load(&m->table);
    while (t != NULL) {
        struct series_table *r = t->retired;
        free(t);
        t = r;
    }
    for (int i = 0; i < m->nlabels; i++)
        free(m->labels[i]);
    free(m->buckets);
    free(m->name);
    free(m->help);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static struct series_table *table_new(size_t size)
{
    struct series_table *t = calloc(1, sizeof(*t) + size * sizeof(t->slot[0]));
    if (t == NULL)
        return NULL;
    t->mask = size - 1;
    for (size_t i = 0; i < size; i++)
        atomic_init(&t->slot[i], NULL);
    return t;
}

static struct series *series_get(struct metric *m, const char *const *values);

static bool same_family(const struct metric *m, enum metric_type type, int nlabels,
                        const char *const *label_names, const double *buckets, int nbuckets)
{
    if (m->type != type || m->nlabels != nlabels || m->nbuckets != nbuckets)
        return false;
    for (int i = 0; i < nlabels; i++)
        if (strcmp(m->labels[i], label_names[i]) != 0)
            return false;
    for (int i = 0; i < nbuckets; i++)
        if (m->buckets[i] != buckets[i])
            return false;
    return true;
}

static struct metric *metric_register(enum metric_type type, const char *name, const char *help,
                                      int nlabels, const char *const *label_names,
                                      const double *buckets, int nbuckets)
{
    struct metric *m = NULL, *found = NULL;

    if (!name_ok(name, true) || nlabels < 0 || nlabels > METRICS_MAX_LABELS ||
        (nlabels > 0 && label_names == NULL))
        return NULL;
    for (int i = 0; i < nlabels; i++) {
        if (!name_ok(label_names[i], false) || strncmp(label_names[i], "__", 2) == 0 ||
            (type == METRIC_HISTOGRAM && strcmp(label_names[i], "le") == 0))
            return NULL;
        for (int j = 0; j < i; j++)
            if (strcmp(label_names[i], label_names[j]) == 0)
                return NULL;
    }
    if (type == METRIC_HISTOGRAM) {
        if (buckets == NULL || nbuckets < 1 || nbuckets > METRICS_MAX_BUCKETS)
            return NULL;
        for (int i = 0; i < nbuckets; i++)
            if (!isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1]))
                return NULL;
    } else {
        nbuckets = 0;
        buckets = NULL;
    }

    pthread_mutex_lock(&registry_lock);
    for (struct metric *e = registry_first; e != NULL; e = e->next) {
        if (strcmp(e->name, name) == 0) {
            if (same_family(e, type, nlabels, label_names, buckets, nbuckets))
                found = e;
            goto out; /* a clash returns NULL */
        }
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL)
        goto out;
    pthread_mutex_init(&m->lock, NULL);
    m->type = type;
    m->nlabels = nlabels;
    m->nbuckets = nbuckets;
    m->name = strdup(name);
    m->help = strdup(help ? help : "");
    bool ok = m->name != NULL && m->help != NULL;
    for (int i = 0; i < nlabels; i++)
        ok = ok && (m->labels[i] = strdup(label_names[i])) != NULL;
    if (ok && nbuckets > 0) {
        m->buckets = malloc((size_t)nbuckets * sizeof(double));
        ok = m->buckets != NULL;
        if (ok)
            memcpy(m->buckets, buckets, (size_t)nbuckets * sizeof(double));
    }
    struct series_table *t = ok ? table_new(16) : NULL;
    if (t == NULL) {
        metric_free(m); /* labels not yet copied are NULL */
        m = NULL;
        goto out;
    }
    atomic_init(&m->table, t);
    /* A family without labels shows its single series from the start. */
    if (nlabels == 0 && series_get(m, NULL) == NULL) {
        metric_free(m);
        m = NULL;
        goto out;
    }
    if (registry_last)
        registry_last->next = m;
    else
        registry_first = m;
    registry_last = m;
    found = m;
out:
    pthread_mutex_unlock(&registry_lock);
    return found;
}

struct metric *metrics_counter(const char *name, const char *help, int nlabels,
                               const char *const *label_names)
{
    return metric_register(METRIC_COUNTER, name, help, nlabels, label_names, NULL, 0);
}

struct metric *metrics_gauge(const char *name, const char *help, int nlabels,
                             const char *const *label_names)
{
    return metric_register(METRIC_GAUGE, name, help, nlabels, label_names, NULL, 0);
}

struct metric *metrics_histogram(const char *name, const char *help, int nlabels,
                                 const char *const *label_names, const double *buckets,
                                 int nbuckets)
{
    return metric_register(METRIC_HISTOGRAM, name, help, nlabels, label_names, buckets, nbuckets);
}

/* ---- series lookup ---- */

/* A label value's length as stored: cut at METRICS_MAX_LABEL_VALUE, not inside a UTF-8
   sequence. */
static size_t value_len(const char *v)
{
    size_t n = strnlen(v, METRICS_MAX_LABEL_VALUE + 1);
    if (n <= METRICS_MAX_LABEL_VALUE)
        return n;
    n = METRICS_MAX_LABEL_VALUE;
    while (n > 0 && ((unsigned char)v[n] & 0xc0) == 0x80)
        n--;
    return n;
}

static uint64_t values_hash(const struct metric *m, const char *const *values)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, with 0xff between values */
    for (int i = 0; i < m->nlabels; i++) {
        /* values is NULL only for a metric without labels, where this loop does not run */
        // cppcheck-suppress nullPointer
        const char *v = values[i] ? values[i] : "";
        size_t n = value_len(v);
        for (size_t j = 0; j < n; j++)
            h = (h ^ (unsigned char)v[j]) * 0x100000001b3ull;
        h = (h ^ 0xff) * 0x100000001b3ull;
    }
    return h;
}

static bool values_equal(const struct metric *m, const struct series *s, const char *const *values)
{
    for (int i = 0; i < m->nlabels; i++) {
        /* values is NULL only for a metric without labels, where this loop does not run */
        // cppcheck-suppress nullPointer
        const char *v = values[i] ? values[i] : "";
        size_t n = value_len(v);
        if (strncmp(s->values[i], v, n) != 0 || s->values[i][n] != '\0')
            return false;
    }
    return true;
}

static struct series *table_find(const struct metric *m, const struct series_table *t, uint64_t h,
                                 const char *const *values)
{
    for (size_t i = (size_t)h & t->mask;; i = (i + 1) & t->mask) {
        struct series *s = atomic_load_explicit(&t->slot[i], memory_order_acquire);
        if (s == NULL)
            return NULL;
        if (s->hash == h && values_equal(m, s, values))
            return s;
    }
}

static void table_put(struct series_table *t, struct series *s)
{
    size_t i = (size_t)s->hash & t->mask;
    while (atomic_load_explicit(&t->slot[i], memory_order_relaxed) != NULL)
        i = (i + 1) & t->mask;
    atomic_store_explicit(&t->slot[i], s, memory_order_release);
}

static struct series *series_new(const struct metric *m, uint64_t h, const char *const *values,
                                 bool other)
{
    size_t ncounts = m->type == METRIC_HISTOGRAM ? (size_t)m->nbuckets + 1 : 0;
    struct series *s = calloc(1, sizeof(*s) + ncounts * sizeof(s->counts[0]));
    if (s == NULL)
        return NULL;
    s->hash = h;
    atomic_init(&s->value, d2u(0.0));
    for (size_t i = 0; i < ncounts; i++)
        atomic_init(&s->counts[i], 0);
    s->values = calloc((size_t)m->nlabels + 1, sizeof(char *));
    bool ok = s->values != NULL;
    for (int i = 0; ok && i < m->nlabels; i++) {
        const char *v = other ? "_other" : values[i] ? values[i] : "";
        s->values[i] = strndup(v, value_len(v));
        ok = s->values[i] != NULL;
    }
    if (!ok) {
        for (int i = 0; s->values && i < m->nlabels; i++)
            free(s->values[i]);
        free(s->values);
        free(s);
        return NULL;
    }
    return s;
}

/* The slow path: create the series (or the "_other" one) under the family lock. */
static struct series *series_create(struct metric *m, uint64_t h, const char *const *values)
{
    struct series *s = NULL;
    pthread_mutex_lock(&m->lock);
    struct series_table *t = atomic_load_explicit(&m->table, memory_order_relaxed);
    if ((s = table_find(m, t, h, values)) != NULL)
        goto out;
    size_t n = atomic_load_explicit(&m->nseries, memory_order_relaxed);
    if (n >= METRICS_MAX_SERIES) {
        s = atomic_load_explicit(&m->other, memory_order_relaxed);
        if (s == NULL && (s = series_new(m, 0, NULL, true)) != NULL)
            atomic_store_explicit(&m->other, s, memory_order_release);
        if (s != NULL)
            atomic_fetch_add_explicit(&m->overflow, 1, memory_order_relaxed);
        goto out;
    }
    if ((n + 1) * 4 > (t->mask + 1) * 3) { /* keep the load under 3/4: rebuild at twice the size */
        struct series_table *bigger = table_new((t->mask + 1) * 2);
        if (bigger == NULL)
            goto out;
        for (struct series *e = m->first; e != NULL; e = e->next)
            table_put(bigger, e);
        bigger->retired = t;
        atomic_store_explicit(&m->table, bigger, memory_order_release);
        t = bigger;
    }
    if ((s = series_new(m, h, values, false)) == NULL)
        goto out;
    if (m->last)
        m->last->next = s;
    else
        m->first = s;
    m->last = s;
    table_put(t, s);
    atomic_store_explicit(&m->nseries, n + 1, memory_order_relaxed);
out:
    pthread_mutex_unlock(&m->lock);
    return s;
}

/* The series for these label values, or NULL when out of memory. No lock when it exists. */
static struct series *series_get(struct metric *m, const char *const *values)
{
    uint64_t h = values_hash(m, values);
    struct series_table *t = atomic_load_explicit(&m->table, memory_order_acquire);
    struct series *s = table_find(m, t, h, values);
    if (s != NULL)
        return s;
    /* Full: fold into "_other" without the lock once that series exists. */
    if (atomic_load_explicit(&m->nseries, memory_order_relaxed) >= METRICS_MAX_SERIES &&
        (s = atomic_load_explicit(&m->other, memory_order_acquire)) != NULL) {
        atomic_fetch_add_explicit(&m->overflow, 1, memory_order_relaxed);
        return s;
    }
    return series_create(m, h, values);
}

/* ---- updates ---- */

void metrics_inc(struct metric *m, const char *const *label_values, double v)
{
    if (m == NULL || m->type == METRIC_HISTOGRAM || isnan(v) ||
        (m->type == METRIC_COUNTER && v < 0))
        return;
    struct series *s = series_get(m, label_values);
    if (s != NULL)
        atomic_add_double(&s->value, v);
}

void metrics_set(struct metric *m, const char *const *label_values, double v)
{
    if (m == NULL || m->type != METRIC_GAUGE)
        return;
    struct series *s = series_get(m, label_values);
    if (s != NULL)
        atomic_store_explicit(&s->value, d2u(v), memory_order_relaxed);
}

void metrics_observe(struct metric *m, const char *const *label_values, double v)
{
    if (m == NULL || m->type != METRIC_HISTOGRAM || isnan(v))
        return;
    struct series *s = series_get(m, label_values);
    if (s == NULL)
        return;
    int lo = 0, hi = m->nbuckets; /* first bucket with v <= le, or nbuckets for +Inf */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (v <= m->buckets[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_fetch_add_explicit(&s->counts[lo], 1, memory_order_relaxed);
    atomic_add_double(&s->value, v);
}

/* ---- rendering ---- */

/* The shortest decimal that reads back as the same double; +Inf, -Inf, NaN as Prometheus
   spells them. */
static void fmt_double(char *out, size_t cap, double v)
{
    if (isnan(v)) {
        snprintf(out, cap, "NaN");
    } else if (isinf(v)) {
        snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 1e15) { /* whole numbers without an exponent */
        snprintf(out, cap, "%.0f", v);
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(out, cap, "%.*g", prec, v);
            if (strtod(out, NULL) == v)
                return;
        }
    }
}

static int put_escaped(struct buf *out, const char *s, bool quote)
{
    int err = 0;
    const char *run = s;
    for (const char *p = s; *p && !err; p++) {
        const char *esc = *p == '\\'             ? "\\\\"
                          : *p == '\n'           ? "\\n"
                          : (quote && *p == '"') ? "\\\""
                                                 : NULL;
        if (esc == NULL)
            continue;
        if ((err = buf_append(out, run, (size_t)(p - run))) == 0)
            err = buf_append_str(out, esc);
        run = p + 1;
    }
    return err ? err : buf_append_str(out, run);
}

/* `{a="x",b="y"` plus an optional le, then `}`; nothing at all when there are no labels. */
static int put_labels(struct buf *out, const struct metric *m, const struct series *s,
                      const char *le)
{
    int err = 0;
    if (m->nlabels == 0 && le == NULL)
        return 0;
    err = buf_append_str(out, "{");
    for (int i = 0; i < m->nlabels && !err; i++) {
        if ((err = buf_printf(out, "%s%s=\"", i ? "," : "", m->labels[i])) == 0 &&
            (err = put_escaped(out, s->values[i], true)) == 0)
            err = buf_append_str(out, "\"");
    }
    if (!err && le != NULL)
        err = buf_printf(out, "%sle=\"%s\"", m->nlabels ? "," : "", le);
    return err ? err : buf_append_str(out, "}");
}

static int render_series(struct buf *out, const struct metric *m, struct series *s)
{
    char num[64];
    int err;
    if (m->type != METRIC_HISTOGRAM) {
        fmt_double(num, sizeof(num), u2d(atomic_load_explicit(&s->value, memory_order_relaxed)));
        if ((err = buf_append_str(out, m->name)) || (err = put_labels(out, m, s, NULL)))
            return err;
        return buf_printf(out, " %s\n", num);
    }
    uint64_t cum = 0;
    char le[64];
    for (int i = 0; i <= m->nbuckets; i++) {
        cum += atomic_load_explicit(&s->counts[i], memory_order_relaxed);
        if (i < m->nbuckets)
            fmt_double(le, sizeof(le), m->buckets[i]);
        else
            snprintf(le, sizeof(le), "+Inf");
        if ((err = buf_printf(out, "%s_bucket", m->name)) || (err = put_labels(out, m, s, le)) ||
            (err = buf_printf(out, " %llu\n", (unsigned long long)cum)))
            return err;
    }
    fmt_double(num, sizeof(num), u2d(atomic_load_explicit(&s->value, memory_order_relaxed)));
    if ((err = buf_printf(out, "%s_sum", m->name)) || (err = put_labels(out, m, s, NULL)) ||
        (err = buf_printf(out, " %s\n", num)))
        return err;
    if ((err = buf_printf(out, "%s_count", m->name)) || (err = put_labels(out, m, s, NULL)))
        return err;
    return buf_printf(out, " %llu\n", (unsigned long long)cum);
}

static int render_family(struct buf *out, struct metric *m)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    int err;
    if ((err = buf_printf(out, "# HELP %s ", m->name)) ||
        (err = put_escaped(out, m->help, false)) ||
        (err = buf_printf(out, "\n# TYPE %s %s\n", m->name, types[m->type])))
        return err;
    pthread_mutex_lock(&m->lock);
    for (struct series *s = m->first; s != NULL && !err; s = s->next)
        err = render_series(out, m, s);
    struct series *o = atomic_load_explicit(&m->other, memory_order_acquire);
    if (!err && o != NULL)
        err = render_series(out, m, o);
    pthread_mutex_unlock(&m->lock);
    return err;
}

int metrics_render(struct buf *out)
{
    int err = 0;
    bool header = false;
    pthread_mutex_lock(&registry_lock);
    for (struct metric *m = registry_first; m != NULL && !err; m = m->next)
        err = render_family(out, m);
    for (struct metric *m = registry_first; m != NULL && !err; m = m->next) {
        uint64_t n = atomic_load_explicit(&m->overflow, memory_order_relaxed);
        if (n == 0)
            continue;
        if (!header) {
            err =
                buf_append_str(out, "# HELP gatehouse_metrics_series_overflow_total Updates folded "
                                    "into the \"_other\" series of a metric at its series limit.\n"
                                    "# TYPE gatehouse_metrics_series_overflow_total counter\n");
            header = true;
        }
        if (!err)
            err = buf_printf(out, "gatehouse_metrics_series_overflow_total{metric=\"%s\"} %llu\n",
                             m->name, (unsigned long long)n);
    }
    pthread_mutex_unlock(&registry_lock);
    return err;
}

void metrics_reset(void)
{
    pthread_mutex_lock(&registry_lock);
    struct metric *m = registry_first;
    registry_first = registry_last = NULL;
    pthread_mutex_unlock(&registry_lock);
    while (m != NULL) {
        struct metric *next = m->next;
        metric_free(m);
        m = next;
    }
}

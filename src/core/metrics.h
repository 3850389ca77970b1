/*
 * The metrics registry behind /metrics: counters, gauges and histograms with labels, rendered in
 * the Prometheus text exposition format (version 0.0.4). Families are registered once at
 * startup; their series (one per distinct tuple of label values) are created on first use under
 * a per-family lock and then found through a lock-free hash table, so an update of an existing
 * series from any worker thread is a hash lookup and an atomic add, never a mutex. Each family
 * holds at most METRICS_MAX_SERIES series: beyond that, updates are folded into one series whose
 * every label value is "_other" and counted in gatehouse_metrics_series_overflow_total, so that
 * label values taken from hostile input (unknown method names, say) cannot grow memory.
 */
#ifndef GH_CORE_METRICS_H
#define GH_CORE_METRICS_H

#include <stddef.h>

#include "core/buf.h"

#define METRICS_MAX_SERIES 10000    /* series per family before folding into "_other" */
#define METRICS_MAX_LABELS 8        /* label names per family */
#define METRICS_MAX_BUCKETS 64      /* histogram buckets, +Inf not counted */
#define METRICS_MAX_LABEL_VALUE 128 /* bytes kept of a label value; longer ones are cut */

struct metric; /* a family: name, help, type, label names, and its series */

/*
 * Register a family. `name` matches [a-zA-Z_:][a-zA-Z0-9_:]*, label names match
 * [a-zA-Z_][a-zA-Z0-9_]* (not starting with "__", and not "le" for a histogram); strings are
 * copied. Registering an existing name again with the same type and label names returns the
 * existing family (so modules may register idempotently); any other misuse returns NULL, and the
 * update functions ignore a NULL family. Thread-safe, but meant for startup. The registry owns
 * the family until metrics_reset().
 */
struct metric *metrics_counter(const char *name, const char *help, int nlabels,
                               const char *const *label_names);
struct metric *metrics_gauge(const char *name, const char *help, int nlabels,
                             const char *const *label_names);
/* `buckets`: 1..METRICS_MAX_BUCKETS finite upper bounds, strictly increasing; +Inf is implied. */
struct metric *metrics_histogram(const char *name, const char *help, int nlabels,
                                 const char *const *label_names, const double *buckets,
                                 int nbuckets);

/*
 * Updates. `label_values` has the family's nlabels entries (NULL when it has none; a NULL entry
 * is ""); values are copied when a series is created, cut to METRICS_MAX_LABEL_VALUE bytes.
 * Any thread; no lock once the series exists. Misuse is ignored rather than fatal: metrics_inc
 * on a counter with v < 0 or NaN, metrics_set on anything but a gauge, metrics_observe on
 * anything but a histogram, or a NaN observation.
 */
void metrics_inc(struct metric *m, const char *const *label_values, double v); /* counter, gauge */
void metrics_set(struct metric *m, const char *const *label_values, double v); /* gauge */
void metrics_observe(struct metric *m, const char *const *label_values, double v); /* histogram */

/*
 * Append the whole registry to `out` as Prometheus text: families in registration order, series
 * in creation order, label values escaped (\\ \" \n). A family without labels always shows its
 * one series (0 until updated). Returns 0, or ERR_LIMIT / ERR_NOMEM from the buffer (out then
 * holds a partial rendering the caller should discard). Thread-safe; concurrent updates are
 * seen or not, and a histogram's _count always equals its +Inf bucket.
 */
int metrics_render(struct buf *out);

/* Free every family (for tests and for exit). No other thread may use metrics meanwhile, and
   every struct metric pointer becomes invalid. */
void metrics_reset(void);

#endif

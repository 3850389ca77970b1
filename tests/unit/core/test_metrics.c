/*
 * Tests of the metrics registry: the exact Prometheus text for counters, gauges and histograms,
 * label value escaping, registration rules, the series bound with its "_other" fold, and
 * concurrent updates from several threads adding up.
 */
#include "core/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>

#include "core/err.h"
#include "test.h"

/* Render the registry into a fresh string the caller frees with buf_release. */
static void render(struct buf *b)
{
    buf_init(b, 1 << 24);
    CHECK_INT(metrics_render(b), 0);
}

static void test_counter_gauge_text(void)
{
    static const char *const lbl[] = {"method", "code"};
    struct metric *req = metrics_counter("gh_requests_total", "Requests handled.", 2, lbl);
    struct metric *up = metrics_counter("gh_up_total", "No labels.", 0, NULL);
    struct metric *g = metrics_gauge("gh_sessions", "Open sessions.", 0, NULL);
    CHECK(req != NULL && up != NULL && g != NULL);

    metrics_inc(req, (const char *const[]){"tools/call", "200"}, 1);
    metrics_inc(req, (const char *const[]){"tools/list", "200"}, 2);
    metrics_inc(req, (const char *const[]){"tools/call", "200"}, 1.5);
    metrics_inc(req, (const char *const[]){"tools/call", "200"}, -1);  /* ignored: counter */
    metrics_inc(req, (const char *const[]){"tools/call", "200"}, NAN); /* ignored */
    metrics_set(req, (const char *const[]){"tools/call", "200"}, 99);  /* ignored: not a gauge */
    metrics_inc(g, NULL, 3);
    metrics_inc(g, NULL, -1);
    metrics_set(g, NULL, 0.25);
    metrics_set(g, NULL, 0.1);
    metrics_inc(NULL, NULL, 1); /* a failed registration is harmless */

    struct buf b;
    render(&b);
    CHECK_STR(b.data, "# HELP gh_requests_total Requests handled.\n"
                      "# TYPE gh_requests_total counter\n"
                      "gh_requests_total{method=\"tools/call\",code=\"200\"} 2.5\n"
                      "gh_requests_total{method=\"tools/list\",code=\"200\"} 2\n"
                      "# HELP gh_up_total No labels.\n"
                      "# TYPE gh_up_total counter\n"
                      "gh_up_total 0\n"
                      "# HELP gh_sessions Open sessions.\n"
                      "# TYPE gh_sessions gauge\n"
                      "gh_sessions 0.1\n");
    buf_release(&b);
    metrics_reset();
}

static void test_escaping(void)
{
    static const char *const lbl[] = {"name"};
    struct metric *m =
        metrics_counter("gh_esc_total", "Help with \\ and\nnewline \"quoted\".", 1, lbl);
    metrics_inc(m, (const char *const[]){"a\\b\"c\nd"}, 1);
    metrics_inc(m, (const char *const[]){""}, 1);
    metrics_inc(m, (const char *const[]){NULL}, 1); /* NULL is "" */
    struct buf b;
    render(&b);
    CHECK_STR(b.data, "# HELP gh_esc_total Help with \\\\ and\\nnewline \"quoted\".\n"
                      "# TYPE gh_esc_total counter\n"
                      "gh_esc_total{name=\"a\\\\b\\\"c\\nd\"} 1\n"
                      "gh_esc_total{name=\"\"} 2\n");
    buf_release(&b);
    metrics_reset();
}

static void test_histogram_text(void)
{
    static const char *const lbl[] = {"server"};
    static const double bk[] = {0.005, 0.1, 1, 10};
    struct metric *h = metrics_histogram("gh_latency_seconds", "Upstream latency.", 1, lbl, bk, 4);
    struct metric *h0 =
        metrics_histogram("gh_size_bytes", "Sizes.", 0, NULL, (const double[]){100}, 1);
    CHECK(h != NULL && h0 != NULL);
    const char *const ev[] = {"everything"};
    metrics_observe(h, ev, 0.001);
    metrics_observe(h, ev, 0.005); /* le is inclusive */
    metrics_observe(h, ev, 0.5);
    metrics_observe(h, ev, 20);
    metrics_observe(h, ev, NAN); /* ignored */
    metrics_inc(h, ev, 1);       /* ignored: not a counter */
    metrics_observe(h0, NULL, 100);
    metrics_observe(h0, NULL, 101);
    struct buf b;
    render(&b);
    CHECK_STR(b.data, "# HELP gh_latency_seconds Upstream latency.\n"
                      "# TYPE gh_latency_seconds histogram\n"
                      "gh_latency_seconds_bucket{server=\"everything\",le=\"0.005\"} 2\n"
                      "gh_latency_seconds_bucket{server=\"everything\",le=\"0.1\"} 2\n"
                      "gh_latency_seconds_bucket{server=\"everything\",le=\"1\"} 3\n"
                      "gh_latency_seconds_bucket{server=\"everything\",le=\"10\"} 3\n"
                      "gh_latency_seconds_bucket{server=\"everything\",le=\"+Inf\"} 4\n"
                      "gh_latency_seconds_sum{server=\"everything\"} 20.506\n"
                      "gh_latency_seconds_count{server=\"everything\"} 4\n"
                      "# HELP gh_size_bytes Sizes.\n"
                      "# TYPE gh_size_bytes histogram\n"
                      "gh_size_bytes_bucket{le=\"100\"} 1\n"
                      "gh_size_bytes_bucket{le=\"+Inf\"} 2\n"
                      "gh_size_bytes_sum 201\n"
                      "gh_size_bytes_count 2\n");
    buf_release(&b);
    metrics_reset();
}

static void test_registration(void)
{
    static const char *const lbl[] = {"a"};
    static const char *const lbl2[] = {"b"};
    struct metric *m = metrics_counter("gh_x_total", "x", 1, lbl);
    CHECK(m != NULL);
    CHECK(metrics_counter("gh_x_total", "x again", 1, lbl) == m); /* idempotent */
    CHECK(metrics_counter("gh_x_total", "x", 1, lbl2) == NULL);   /* other labels */
    CHECK(metrics_gauge("gh_x_total", "x", 1, lbl) == NULL);      /* other type */
    CHECK(metrics_counter("9bad", "", 0, NULL) == NULL);
    CHECK(metrics_counter("bad-name", "", 0, NULL) == NULL);
    CHECK(metrics_counter("ok:name_1", "", 0, NULL) != NULL);
    CHECK(metrics_counter("gh_y", "", 1, (const char *const[]){"__reserved"}) == NULL);
    CHECK(metrics_counter("gh_y", "", 1, (const char *const[]){"has:colon"}) == NULL);
    CHECK(metrics_counter("gh_y", "", 2, (const char *const[]){"a", "a"}) == NULL);
    CHECK(metrics_counter("gh_y", "", METRICS_MAX_LABELS + 1, lbl) == NULL);
    CHECK(metrics_histogram("gh_h", "", 1, (const char *const[]){"le"}, (const double[]){1}, 1) ==
          NULL);
    CHECK(metrics_histogram("gh_h", "", 0, NULL, (const double[]){2, 1}, 2) == NULL);
    CHECK(metrics_histogram("gh_h", "", 0, NULL, (const double[]){1, INFINITY}, 2) == NULL);
    CHECK(metrics_histogram("gh_h", "", 0, NULL, NULL, 0) == NULL);
    metrics_reset();
}

static void test_series_bound(void)
{
    static const char *const lbl[] = {"method", "kind"};
    struct metric *m = metrics_counter("gh_methods_total", "By method.", 2, lbl);
    char name[32];
    for (int i = 0; i < METRICS_MAX_SERIES + 5; i++) {
        snprintf(name, sizeof(name), "m%d", i);
        metrics_inc(m, (const char *const[]){name, "k"}, 1);
    }
    metrics_inc(m, (const char *const[]){"m0", "k"}, 1); /* existing series still counted */
    metrics_inc(m, (const char *const[]){"another", "k"}, 1);
    /* a long value is cut: two values equal in their first METRICS_MAX_LABEL_VALUE bytes fold */
    struct buf b;
    render(&b);
    CHECK_CONTAINS(b.data, "gh_methods_total{method=\"m0\",kind=\"k\"} 2\n");
    CHECK_CONTAINS(b.data, "gh_methods_total{method=\"m9999\",kind=\"k\"} 1\n");
    CHECK(strstr(b.data, "method=\"m10000\"") == NULL);
    CHECK_CONTAINS(b.data, "gh_methods_total{method=\"_other\",kind=\"_other\"} 6\n");
    CHECK_CONTAINS(b.data, "# TYPE gatehouse_metrics_series_overflow_total counter\n"
                           "gatehouse_metrics_series_overflow_total{metric=\"gh_methods_total\"} "
                           "6\n");
    buf_release(&b);
    metrics_reset();

    m = metrics_counter("gh_long_total", "", 1, (const char *const[]){"v"});
    char a[300], c[300];
    memset(a, 'x', sizeof(a) - 1);
    a[sizeof(a) - 1] = '\0';
    memcpy(c, a, sizeof(c));
    c[200] = 'y';
    metrics_inc(m, (const char *const[]){a}, 1);
    metrics_inc(m, (const char *const[]){c}, 1);
    render(&b);
    char want[METRICS_MAX_LABEL_VALUE + 64];
    snprintf(want, sizeof(want), "gh_long_total{v=\"%.*s\"} 2\n", METRICS_MAX_LABEL_VALUE, a);
    CHECK_CONTAINS(b.data, want);
    buf_release(&b);

    /* a buffer too small is an error, not a truncation */
    buf_init(&b, 16);
    CHECK_INT(metrics_render(&b), ERR_LIMIT);
    buf_release(&b);
    metrics_reset();
}

static struct metric *conc_counter, *conc_hist, *conc_gauge;
#define CONC_ITERS 100000

static void *conc_worker(void *arg)
{
    char name[16];
    long id = (long)arg;
    for (int i = 0; i < CONC_ITERS; i++) {
        snprintf(name, sizeof(name), "s%d", i % 50); /* shared series, created concurrently */
        metrics_inc(conc_counter, (const char *const[]){name}, 1);
        metrics_observe(conc_hist, NULL, (double)(i % 4));
        metrics_inc(conc_gauge, NULL, id % 2 ? 1 : -1);
    }
    return NULL;
}

static void test_concurrent(void)
{
    conc_counter = metrics_counter("gh_conc_total", "", 1, (const char *const[]){"s"});
    conc_hist = metrics_histogram("gh_conc_hist", "", 0, NULL, (const double[]){0.5, 1.5, 2.5}, 3);
    conc_gauge = metrics_gauge("gh_conc_gauge", "", 0, NULL);
    pthread_t th[4];
    for (long i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, conc_worker, (void *)i);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    struct buf b;
    render(&b);
    /* each of 50 series got 4 threads x CONC_ITERS / 50 = 8000 */
    CHECK_CONTAINS(b.data, "gh_conc_total{s=\"s0\"} 8000\n");
    CHECK_CONTAINS(b.data, "gh_conc_total{s=\"s49\"} 8000\n");
    CHECK(strstr(b.data, "s=\"s50\"") == NULL);
    CHECK_CONTAINS(b.data, "gh_conc_hist_bucket{le=\"0.5\"} 100000\n"
                           "gh_conc_hist_bucket{le=\"1.5\"} 200000\n"
                           "gh_conc_hist_bucket{le=\"2.5\"} 300000\n"
                           "gh_conc_hist_bucket{le=\"+Inf\"} 400000\n"
                           "gh_conc_hist_sum 600000\n"
                           "gh_conc_hist_count 400000\n");
    CHECK_CONTAINS(b.data, "gh_conc_gauge 0\n");
    const char *p = b.data;
    int nseries = 0;
    while ((p = strstr(p, "gh_conc_total{")) != NULL) {
        nseries++;
        p++;
    }
    CHECK_INT(nseries, 50);
    buf_release(&b);
    metrics_reset();
}

TEST_MAIN(TEST(test_counter_gauge_text), TEST(test_escaping), TEST(test_histogram_text),
          TEST(test_registration), TEST(test_series_bound), TEST(test_concurrent))

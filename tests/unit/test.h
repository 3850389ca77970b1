/*
 * The in-tree unit test runner: a test file defines static test functions, lists them in
 * TEST_MAIN, and uses CHECK*() inside them. A failed check prints file:line and the expression
 * and marks the test failed; the process exits non-zero when any test failed, which ctest reads.
 */
#ifndef GH_TEST_H
#define GH_TEST_H

#include <stdio.h>
#include <string.h>
#include <time.h>

static int test_failures_;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);               \
            test_failures_++;                                                                      \
        }                                                                                          \
    } while (0)
#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, #a,    \
                    a_, #b, b_);                                                                   \
            test_failures_++;                                                                      \
        }                                                                                          \
    } while (0)
#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {                                     \
            fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a,      \
                    a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                       \
            test_failures_++;                                                                      \
        }                                                                                          \
    } while (0)
#define CHECK_CONTAINS(hay, needle)                                                                \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (h_ == NULL || strstr(h_, n_) == NULL) {                                                \
            fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__,         \
                    h_ ? h_ : "(null)", n_);                                                       \
            test_failures_++;                                                                      \
        }                                                                                          \
    } while (0)

struct test_case {
    const char *name;
    void (*fn)(void);
};

static inline double test_now_ms_(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Runs every case, printing "ok  name (N ms)" or "FAIL name (N ms)": the time is what a ctest
   limit has to allow for, per case. */
static inline int test_run_all(const struct test_case *cases, size_t n)
{
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        int before = test_failures_;
        double t0 = test_now_ms_();
        cases[i].fn();
        int ok = test_failures_ == before;
        printf("%s %s (%.0f ms)\n", ok ? "ok  " : "FAIL", cases[i].name, test_now_ms_() - t0);
        fflush(stdout);
        failed += !ok;
    }
    printf("%zu passed, %d failed\n", n - (size_t)failed, failed);
    return failed ? 1 : 0;
}

#define TEST(fn)                                                                                   \
    {                                                                                              \
#fn, fn                                                                                    \
    }
#define TEST_MAIN(...)                                                                             \
    int main(void)                                                                                 \
    {                                                                                              \
        static const struct test_case cases_[] = {__VA_ARGS__};                                    \
        return test_run_all(cases_, sizeof(cases_) / sizeof(cases_[0]));                           \
    }

#endif

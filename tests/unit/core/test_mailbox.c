/*
 * Mailboxes (src/core/mailbox.c): letters run on the loop's thread, in order, never inside
 * mailbox_post; from another thread through the async handle, from the loop's own thread (once it
 * is known) through the idle handle, without an eventfd write.
 */
#include "core/mailbox.h"
#include "core/err.h"
#include "test.h"

#include <pthread.h>
#include <stdbool.h>

struct seen {
    int n;
    int order[16];
    pthread_t thread[16];
    bool in_post;
};

static struct seen seen;

static void record_cb(void *arg)
{
    CHECK(!seen.in_post); /* never run from inside mailbox_post */
    seen.thread[seen.n] = pthread_self();
    seen.order[seen.n++] = (int)(intptr_t)arg;
}

struct poster {
    struct mailbox *mb;
    int first;
};

static void *post_from_thread(void *arg)
{
    struct poster *p = arg;
    for (int i = 0; i < 3; i++)
        CHECK_INT(mailbox_post(p->mb, record_cb, (void *)(intptr_t)(p->first + i)), 0);
    return NULL;
}

static void run_until_seen(uv_loop_t *loop, int want)
{
    for (int spins = 0; seen.n < want && spins < 10000; spins++)
        uv_run(loop, UV_RUN_NOWAIT);
}

static void test_threads_and_order(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* Made on this thread but, as a worker's, first drained by the loop: another thread posts. */
    struct mailbox *mb = mailbox_new(&loop);
    CHECK(mb != NULL);
    struct poster p = {mb, 1};
    pthread_t th;
    pthread_create(&th, NULL, post_from_thread, &p);
    pthread_join(th, NULL);
    run_until_seen(&loop, 3);
    CHECK_INT(seen.n, 3);
    /* From the loop's own thread now: queued, run at the loop's next turn, in order. */
    CHECK_INT(uv_backend_timeout(&loop), -1); /* nothing to do: the loop would sleep */
    seen.in_post = true;
    for (int i = 4; i <= 6; i++)
        CHECK_INT(mailbox_post(mb, record_cb, (void *)(intptr_t)i), 0);
    seen.in_post = false;
    CHECK_INT(seen.n, 3);
    /* The idle handle is what keeps the loop from sleeping (an async post would leave the
       timeout infinite and count on the eventfd to wake the loop). */
    CHECK_INT(uv_backend_timeout(&loop), 0);
    uv_run(&loop, UV_RUN_NOWAIT); /* one turn is enough: no wake-up to wait for */
    CHECK_INT(seen.n, 6);
    for (int i = 0; i < 6; i++) {
        CHECK_INT(seen.order[i], i + 1);
        CHECK(pthread_equal(seen.thread[i], pthread_self()));
    }
    /* Closed: posts are refused and the loop ends (both handles closed, the memory freed). */
    mailbox_close(mb);
    CHECK_INT(mailbox_post(mb, record_cb, (void *)7), ERR_CLOSED);
    CHECK_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_INT(uv_loop_close(&loop), 0);
}

TEST_MAIN(TEST(test_threads_and_order))

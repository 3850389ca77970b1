/*
 * Mailbox: a mutex-protected singly linked queue drained by a uv_async handle. The lock is held
 * only to link or unlink; callbacks run without it. A post from the owning loop's own thread
 * (an answer stream waking its writer on the same worker, say) starts an idle handle instead of
 * the async one: the letter runs at the loop's next turn all the same, without the eventfd write,
 * the wake-up and the read that uv_async_send costs.
 */
#include "core/mailbox.h"
#include "core/err.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

struct letter {
    struct letter *next;
    mailbox_cb cb;
    void *arg;
};

struct mailbox {
    uv_async_t async;
    uv_idle_t idle;  /* posts from the owning thread */
    pthread_t owner; /* the owning loop's thread, once known (owner_known) */
    atomic_bool owner_known;
    int open_handles; /* freed when both have closed */
    pthread_mutex_t lock;
    struct letter *head, *tail;
    bool closing;
};

static void drain(struct mailbox *mb)
{
    for (;;) {
        pthread_mutex_lock(&mb->lock);
        struct letter *l = mb->head;
        mb->head = mb->tail = NULL;
        pthread_mutex_unlock(&mb->lock);
        if (l == NULL)
            return;
        while (l != NULL) {
            struct letter *next = l->next;
            l->cb(l->arg);
            free(l);
            l = next;
        }
    }
}

static void async_cb(uv_async_t *h)
{
    struct mailbox *mb = h->data;
    /* The loop's thread is learnt here, where it runs, not at creation: a worker's mailbox is
       made before its thread starts. Written once, published by the release store. */
    if (!atomic_load_explicit(&mb->owner_known, memory_order_relaxed)) {
        mb->owner = pthread_self();
        atomic_store_explicit(&mb->owner_known, true, memory_order_release);
    }
    drain(mb);
}

static void idle_cb(uv_idle_t *h)
{
    uv_idle_stop(h);
    drain(h->data);
}

struct mailbox *mailbox_new(uv_loop_t *loop)
{
    struct mailbox *mb = calloc(1, sizeof(*mb));
    if (mb == NULL)
        return NULL;
    pthread_mutex_init(&mb->lock, NULL);
    if (uv_async_init(loop, &mb->async, async_cb) != 0) {
        pthread_mutex_destroy(&mb->lock);
        free(mb);
        return NULL;
    }
    mb->async.data = mb;
    uv_idle_init(loop, &mb->idle);
    mb->idle.data = mb;
    atomic_init(&mb->owner_known, false);
    mb->open_handles = 2;
    return mb;
}

int mailbox_post(struct mailbox *mb, mailbox_cb cb, void *arg)
{
    struct letter *l = malloc(sizeof(*l));
    if (l == NULL)
        return ERR_NOMEM;
    l->next = NULL;
    l->cb = cb;
    l->arg = arg;
    pthread_mutex_lock(&mb->lock);
    if (mb->closing) {
        pthread_mutex_unlock(&mb->lock);
        free(l);
        return ERR_CLOSED;
    }
    if (mb->tail)
        mb->tail->next = l;
    else
        mb->head = l;
    mb->tail = l;
    pthread_mutex_unlock(&mb->lock);
    if (atomic_load_explicit(&mb->owner_known, memory_order_acquire) &&
        pthread_equal(pthread_self(), mb->owner))
        uv_idle_start(&mb->idle, idle_cb); /* no-op when started already */
    else
        uv_async_send(&mb->async);
    return 0;
}

static void close_cb(uv_handle_t *h)
{
    struct mailbox *mb = h->data;
    if (--mb->open_handles > 0)
        return;
    drain(mb);
    pthread_mutex_destroy(&mb->lock);
    free(mb);
}

void mailbox_close(struct mailbox *mb)
{
    drain(mb);
    pthread_mutex_lock(&mb->lock);
    mb->closing = true;
    pthread_mutex_unlock(&mb->lock);
    uv_close((uv_handle_t *)&mb->idle, close_cb);
    uv_close((uv_handle_t *)&mb->async, close_cb);
}

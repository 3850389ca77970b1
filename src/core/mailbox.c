/*
 * Mailbox: a mutex-protected singly linked queue drained by a uv_async handle. The lock is held
 * only to link or unlink; callbacks run without it.
 */
#include "core/mailbox.h"
#include "core/err.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

struct letter {
    struct letter *next;
    mailbox_cb cb;
    void *arg;
};

struct mailbox {
    uv_async_t async;
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
    uv_async_send(&mb->async);
    return 0;
}

static void close_cb(uv_handle_t *h)
{
    struct mailbox *mb = h->data;
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
    uv_close((uv_handle_t *)&mb->async, close_cb);
}

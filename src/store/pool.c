/*
 * A small pool of store connections off the event loop. A store call on PostgreSQL waits for a
 * round trip to the server; made on a worker's loop, it stalls every connection of that worker
 * meanwhile. A job submitted here runs on one of the pool's threads, with that thread's own
 * connection (a struct store belongs to one thread), and its result is posted back to the
 * submitter's loop through its mailbox (core/mailbox.h), where the completion runs.
 *
 * One mutex and one condition variable guard a FIFO of jobs, bounded (STORE_POOL_QUEUE_MAX):
 * past it a submission is refused (ERR_LIMIT) rather than queued without end. Stopping the pool
 * lets the running jobs finish and completes the queued ones with ERR_CLOSED.
 */
#include "store/store-int.h"
#include "core/log.h"
#include "core/mailbox.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define STORE_POOL_QUEUE_MAX 4096

struct store_job {
    struct store_job *next;
    struct store_pool *pool;
    struct mailbox *reply;
    store_job_fn fn;
    store_done_cb done;
    void *arg;
    int rc;
};

struct store_pool_thread {
    struct store_pool *pool;
    struct store *st;
    pthread_t tid;
    bool started;
};

struct store_pool {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct store_job *head, *tail;
    size_t queued;
    bool stopping;
    unsigned nthreads;
    struct store_pool_thread *threads;
};

/* On the submitter's loop. */
static void complete_cb(void *arg)
{
    struct store_job *j = arg;
    j->done(j->rc, j->arg);
    free(j);
}

static void post_result(struct store_job *j)
{
    if (j->reply == NULL) { /* store_pool_post: nobody waits */
        free(j);
        return;
    }
    if (mailbox_post(j->reply, complete_cb, j) != 0) {
        /* the loop is closing: nobody is left to tell */
        log_warn("store", "a store job's result could not be delivered: its loop is closing");
        free(j);
    }
}

static void *pool_main(void *arg)
{
    struct store_pool_thread *t = arg;
    struct store_pool *p = t->pool;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        while (p->head == NULL && !p->stopping)
            pthread_cond_wait(&p->cond, &p->lock);
        struct store_job *j = p->head;
        if (j == NULL) { /* stopping, nothing left */
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        if (p->stopping) { /* leave the queue to store_pool_free */
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        p->head = j->next;
        if (p->head == NULL)
            p->tail = NULL;
        p->queued--;
        pthread_mutex_unlock(&p->lock);
        j->rc = j->fn(t->st, j->arg);
        post_result(j);
    }
}

static int submit(struct store_pool *p, struct mailbox *reply, store_job_fn fn, store_done_cb done,
                  void *arg)
{
    struct store_job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return ERR_NOMEM;
    *j = (struct store_job){.pool = p, .reply = reply, .fn = fn, .done = done, .arg = arg};
    int err = 0;
    pthread_mutex_lock(&p->lock);
    if (p->stopping)
        err = ERR_CLOSED;
    else if (p->queued >= STORE_POOL_QUEUE_MAX)
        err = ERR_LIMIT;
    else {
        if (p->tail)
            p->tail->next = j;
        else
            p->head = j;
        p->tail = j;
        p->queued++;
        pthread_cond_signal(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
    if (err)
        free(j);
    return err;
}

int store_pool_submit(struct store_pool *p, struct mailbox *reply, store_job_fn fn,
                      store_done_cb done, void *arg)
{
    return submit(p, reply, fn, done, arg);
}

int store_pool_post(struct store_pool *p, store_job_fn fn, void *arg)
{
    return submit(p, NULL, fn, NULL, arg);
}

void store_pool_free(struct store_pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->nthreads; i++)
        if (p->threads[i].started)
            pthread_join(p->threads[i].tid, NULL);
    /* what never ran completes with ERR_CLOSED on its loop; a posted write runs now, on this
       thread with the first connection (its threads are gone), so that stopping loses none */
    for (struct store_job *j = p->head, *next; j != NULL; j = next) {
        next = j->next;
        if (j->reply == NULL && p->threads[0].st != NULL)
            j->fn(p->threads[0].st, j->arg);
        j->rc = ERR_CLOSED;
        post_result(j);
    }
    for (unsigned i = 0; i < p->nthreads; i++)
        store_close(p->threads[i].st);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p->threads);
    free(p);
}

int store_pool_new(const char *where, unsigned nthreads, struct store_pool **out,
                   struct err_info *ei)
{
    if (nthreads == 0)
        return err_info_set(ei, ERR_INVAL, 0, 0, "a store pool needs at least one thread");
    struct store_pool *p = calloc(1, sizeof(*p));
    if (p == NULL || (p->threads = calloc(nthreads, sizeof(*p->threads))) == NULL) {
        free(p);
        return ERR_NOMEM;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->nthreads = nthreads;
    int err = 0;
    /* every connection first: a wrong location fails here, with the backend's message */
    for (unsigned i = 0; i < nthreads && err == 0; i++) {
        p->threads[i].pool = p;
        err = store_open(where, &p->threads[i].st, ei);
    }
    for (unsigned i = 0; i < nthreads && err == 0; i++) {
        if (pthread_create(&p->threads[i].tid, NULL, pool_main, &p->threads[i]) != 0)
            err = err_info_set(ei, ERR_NOMEM, 0, 0, "cannot start a store pool thread");
        else
            p->threads[i].started = true;
    }
    if (err) {
        store_pool_free(p);
        return err;
    }
    *out = p;
    return 0;
}

bool store_location_remote(const char *where)
{
    return where != NULL &&
           (strncmp(where, "postgresql://", 13) == 0 || strncmp(where, "postgres://", 11) == 0);
}

/* ---- the caller: pool or inline ---- */

struct store_caller {
    struct store_pool *pool; /* NULL: inline on st */
    struct mailbox *mb;
    struct store *st;
};

int store_caller_new(const char *where, struct store_pool *pool, struct mailbox *mb,
                     struct store_caller **out, struct err_info *ei)
{
    struct store_caller *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return ERR_NOMEM;
    c->pool = pool;
    c->mb = mb;
    int err = pool == NULL ? store_open(where, &c->st, ei) : 0;
    if (err) {
        free(c);
        return err;
    }
    *out = c;
    return 0;
}

void store_caller_free(struct store_caller *c)
{
    if (c == NULL)
        return;
    store_close(c->st);
    free(c);
}

int store_call(struct store_caller *c, store_job_fn fn, store_done_cb done, void *arg)
{
    if (c->pool != NULL)
        return submit(c->pool, c->mb, fn, done, arg);
    done(fn(c->st, arg), arg);
    return 0;
}

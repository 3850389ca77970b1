/*
 * Revocations the store could not write. A revocation that failed to reach the database (the
 * disk is full, the file is read-only) must still take effect: the token's holder was told it
 * could not be stored, but the gateway process that was asked keeps refusing the token. Each
 * failed revocation of an access token (by jti) or of a refresh grant (by family id) is
 * remembered here, process-wide (every worker's connection consults it), and written to the
 * database by a later store_sweep (and leaves the list) once the write succeeds.
 *
 * The list is small and bounded (a revocation is a rare, client-initiated event; past
 * UNSAVED_MAX entries the oldest expired ones go first, then the request is refused), and
 * guarded by one mutex: it is read on every token check, but only while it is not empty.
 */
#include "store/store-int.h"
#include "core/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UNSAVED_MAX 4096
#define UNSAVED_ID_MAX 128

struct unsaved {
    bool family; /* a refresh family id; else an access token's jti */
    int64_t expires_at;
    char id[UNSAVED_ID_MAX];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct unsaved list[UNSAVED_MAX];
static size_t count;
static _Atomic size_t visible;      /* count, for the lock-free "is it empty" test */
static _Atomic uint64_t generation; /* moves with every entry: see store_revocation_seq */

uint64_t store_unsaved_generation(void)
{
    return atomic_load(&generation);
}

int store_unsaved_add(bool family, const char *id, int64_t expires_at)
{
    if (strlen(id) >= UNSAVED_ID_MAX)
        return ERR_INVAL;
    int64_t now = store_now();
    int err = 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < count; i++)
        if (list[i].family == family && strcmp(list[i].id, id) == 0)
            goto out;           /* already remembered */
    if (count == UNSAVED_MAX) { /* drop what has expired */
        size_t k = 0;
        for (size_t i = 0; i < count; i++)
            if (list[i].expires_at > now)
                list[k++] = list[i];
        count = k;
    }
    if (count == UNSAVED_MAX) {
        err = ERR_LIMIT;
        goto out;
    }
    list[count].family = family;
    list[count].expires_at = expires_at;
    snprintf(list[count].id, sizeof(list[count].id), "%s", id);
    count++;
    atomic_store(&visible, count);
    atomic_fetch_add(&generation, 1);
out:
    pthread_mutex_unlock(&lock);
    return err;
}

bool store_unsaved_has(bool family, const char *id)
{
    if (atomic_load(&visible) == 0)
        return false;
    bool found = false;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < count && !found; i++)
        found = list[i].family == family && strcmp(list[i].id, id) == 0;
    pthread_mutex_unlock(&lock);
    return found;
}

/* Write what is not written yet. The list is copied out first: the writes run without the
   lock, so that a token check on another worker never waits on the disk. */
int store_unsaved_flush(struct store *st)
{
    if (atomic_load(&visible) == 0)
        return 0;
    pthread_mutex_lock(&lock);
    size_t n = count;
    struct unsaved *todo = malloc(n * sizeof(*todo));
    if (todo != NULL)
        memcpy(todo, list, n * sizeof(*todo));
    pthread_mutex_unlock(&lock);
    if (todo == NULL)
        return ERR_NOMEM;
    int err = 0;
    for (size_t i = 0; i < n; i++) {
        int e = todo[i].family ? store_family_revoke(st, todo[i].id)
                               : store_jti_revoke(st, todo[i].id, todo[i].expires_at);
        if (e == ERR_NOTFOUND)
            e = 0; /* the family is gone (swept): nothing is left to revoke */
        if (e) {
            err = e;
            continue;
        }
        pthread_mutex_lock(&lock);
        for (size_t k = 0; k < count; k++)
            if (list[k].family == todo[i].family && strcmp(list[k].id, todo[i].id) == 0) {
                list[k] = list[--count];
                break;
            }
        atomic_store(&visible, count);
        pthread_mutex_unlock(&lock);
        log_info("store.revocation",
                 "a revocation (of %s) that could not be written before is stored now",
                 todo[i].family ? "a refresh grant" : "an access token");
    }
    free(todo);
    return err;
}

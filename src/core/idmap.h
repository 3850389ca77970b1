/*
 * A hash map from 64-bit ids to pointers (open addressing, linear probing, tombstones), used for
 * request-id correlation on one thread. Not thread-safe. Id 0 is reserved.
 */
#ifndef GH_CORE_IDMAP_H
#define GH_CORE_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct idmap {
    uint64_t *keys;
    void **vals;
    size_t cap, len, used; /* used counts tombstones too */
};

void idmap_init(struct idmap *m);
void idmap_release(struct idmap *m);
/* 0, or ERR_NOMEM, ERR_EXISTS. */
int idmap_put(struct idmap *m, uint64_t key, void *val);
void *idmap_get(const struct idmap *m, uint64_t key);
/* Remove and return the value, or NULL. */
void *idmap_del(struct idmap *m, uint64_t key);
/* Iterate: call fn for every entry (do not modify the map inside). */
void idmap_foreach(const struct idmap *m, void (*fn)(uint64_t key, void *val, void *arg),
                   void *arg);

#endif

/* Open-addressing id → pointer map; see idmap.h. */
#include "core/idmap.h"
#include "core/err.h"

#include <stdlib.h>

#define TOMB UINT64_MAX

static size_t slot(uint64_t k, size_t cap)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (size_t)k & (cap - 1);
}

void idmap_init(struct idmap *m)
{
    m->keys = NULL;
    m->vals = NULL;
    m->cap = m->len = m->used = 0;
}

void idmap_release(struct idmap *m)
{
    free(m->keys);
    free(m->vals);
    idmap_init(m);
}

static int grow(struct idmap *m)
{
    size_t cap = m->cap ? m->cap : 16;
    if (m->len * 2 >= cap)
        cap *= 2;
    uint64_t *keys = calloc(cap, sizeof(*keys));
    void **vals = calloc(cap, sizeof(*vals));
    if (keys == NULL || vals == NULL) {
        free(keys);
        free(vals);
        return ERR_NOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] == 0 || m->keys[i] == TOMB)
            continue;
        size_t j = slot(m->keys[i], cap);
        while (keys[j] != 0)
            j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    m->used = m->len;
    return 0;
}

int idmap_put(struct idmap *m, uint64_t key, void *val)
{
    GH_ASSERT(key != 0 && key != TOMB);
    if ((m->used + 1) * 4 >= m->cap * 3) {
        int err = grow(m);
        if (err)
            return err;
    }
    size_t j = slot(key, m->cap), tomb = SIZE_MAX;
    while (m->keys[j] != 0) {
        if (m->keys[j] == key)
            return ERR_EXISTS;
        if (m->keys[j] == TOMB && tomb == SIZE_MAX)
            tomb = j;
        j = (j + 1) & (m->cap - 1);
    }
    if (tomb != SIZE_MAX)
        j = tomb;
    else
        m->used++;
    m->keys[j] = key;
    m->vals[j] = val;
    m->len++;
    return 0;
}

static size_t find(const struct idmap *m, uint64_t key)
{
    if (m->cap == 0 || key == 0 || key == TOMB)
        return SIZE_MAX;
    size_t j = slot(key, m->cap);
    while (m->keys[j] != 0) {
        if (m->keys[j] == key)
            return j;
        j = (j + 1) & (m->cap - 1);
    }
    return SIZE_MAX;
}

void *idmap_get(const struct idmap *m, uint64_t key)
{
    size_t j = find(m, key);
    return j == SIZE_MAX ? NULL : m->vals[j];
}

void *idmap_del(struct idmap *m, uint64_t key)
{
    size_t j = find(m, key);
    if (j == SIZE_MAX)
        return NULL;
    void *v = m->vals[j];
    m->keys[j] = TOMB;
    m->vals[j] = NULL;
    m->len--;
    return v;
}

void idmap_foreach(const struct idmap *m, void (*fn)(uint64_t key, void *val, void *arg), void *arg)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i] != 0 && m->keys[i] != TOMB)
            fn(m->keys[i], m->vals[i], arg);
}

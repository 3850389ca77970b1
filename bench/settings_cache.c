/*
 * What reading a user's settings of a server costs on each tools/call and tools/list
 * (src/mcp/settings.c), against a real SQLite store in a temporary directory: straight from the
 * store (the indexed SELECT and the JSON parse of the tool selection) against the per-worker
 * cache (store_revocation_seq's data_version check, a hash lookup and a reference). Prints
 * ns/op for a selection of `tools` names.
 *   build/settings_cache [tools]      (default 20 selected tools)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rand.h"
#include "mcp/gateway.h"

#define RUNS 200000

static void die(const char *what, int rc)
{
    fprintf(stderr, "settings_cache: %s failed: %s\n", what, err_str(rc));
    exit(1);
}

int main(int argc, char **argv)
{
    size_t ntools = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 20;
    if (core_init() != 0)
        die("core_init", ERR_INTERNAL);
    char dir[] = "/tmp/gh-bench-settings-XXXXXX", path[64];
    if (mkdtemp(dir) == NULL)
        die("mkdtemp", ERR_IO);
    snprintf(path, sizeof(path), "%s/store.sqlite", dir);
    struct store *st;
    struct err_info ei = {0};
    int rc = store_open(path, &st, &ei);
    if (rc)
        die("store_open", rc);
    struct store_user u;
    if ((rc = store_user_add(st, "alice", NULL, NULL, false, &u, &ei)) != 0)
        die("store_user_add", rc);
    struct store_settings v = {.tools = json_array()};
    for (size_t i = 0; i < ntools; i++)
        json_array_append_new(v.tools, json_sprintf("operation_number_%zu", i));
    if ((rc = store_settings_put(st, u.id, "pets", &v, &ei)) != 0)
        die("store_settings_put", rc);
    store_settings_release(&v);

    uint64_t t0 = clock_now_ns();
    for (size_t i = 0; i < RUNS; i++) {
        if ((rc = store_settings_get(st, u.id, "pets", &v)) != 0)
            die("store_settings_get", rc);
        store_settings_release(&v);
    }
    double direct = (double)(clock_now_ns() - t0) / RUNS;
    struct mcp_settings_cache *c = mcp_settings_cache_new(16384);
    t0 = clock_now_ns();
    for (size_t i = 0; i < RUNS; i++) {
        if ((rc = mcp_settings_cache_get(c, st, u.id, "pets", &v)) != 0)
            die("mcp_settings_cache_get", rc);
        store_settings_release(&v);
    }
    double cached = (double)(clock_now_ns() - t0) / RUNS;
    printf("settings of one server, %zu tools selected: store %6.0f ns/op   cache %5.0f ns/op   "
           "ratio %4.1fx\n",
           ntools, direct, cached, direct / cached);
    mcp_settings_cache_free(c);
    store_close(st);
    unlink(path);
    char wal[80];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    unlink(wal);
    snprintf(wal, sizeof(wal), "%s-shm", path);
    unlink(wal);
    rmdir(dir);
    return 0;
}

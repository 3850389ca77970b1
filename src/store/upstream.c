/*
 * Upstream connections: each user's tokens at an upstream server, one row per (user, server).
 * The store keeps the vault's sealed record as an opaque blob (the vault in src/vault seals and
 * opens it; nothing here ever sees a token) with the access token's expiry and granted scope in
 * clear beside it, so that a listing needs no key. A user's rows go with the user (a foreign key
 * with ON DELETE CASCADE).
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "store/store-int.h"

void store_upstream_token_release(struct store_upstream_token *t)
{
    if (t->sealed != NULL)
        sodium_memzero(t->sealed, t->sealed_len);
    free(t->sealed);
    t->sealed = NULL;
    t->sealed_len = 0;
}

static bool server_ok(const char *server)
{
    return server != NULL && *server != '\0' && strlen(server) <= STORE_SERVER_MAX;
}

int store_upstream_token_get(struct store *st, int64_t user_id, const char *server,
                             struct store_upstream_token *out)
{
    if (!server_ok(server))
        return ERR_INVAL;
    struct store_stmt *s =
        store_stmt(st, "SELECT sealed, expires_at, scope, updated_at FROM upstream_tokens "
                       "WHERE user_id = ? AND server = ?");
    if (s == NULL)
        return ERR_IO;
    store_bind_int64(s, 1, user_id);
    store_bind_text(s, 2, server);
    int rc = store_step(st, s), err = 0;
    if (rc == STORE_ROW) {
        struct store_upstream_token t = {0};
        const void *blob = store_col_blob(s, 0, &t.sealed_len);
        if ((t.sealed = malloc(t.sealed_len ? t.sealed_len : 1)) == NULL) {
            err = ERR_NOMEM;
        } else {
            if (t.sealed_len)
                memcpy(t.sealed, blob, t.sealed_len);
            t.expires_at = store_col_int64(s, 1);
            store_col_text(s, 2, t.scope, sizeof(t.scope));
            t.updated_at = store_col_int64(s, 3);
            *out = t;
        }
    } else {
        err = rc == STORE_DONE ? ERR_NOTFOUND : store_rc_err(rc);
    }
    store_done(s);
    return err;
}

int store_upstream_token_put(struct store *st, int64_t user_id, const char *server,
                             const struct store_upstream_token *t)
{
    if (!server_ok(server) || t->sealed == NULL || t->sealed_len == 0 ||
        t->sealed_len > STORE_SEALED_MAX || strlen(t->scope) > STORE_SCOPE_MAX)
        return ERR_INVAL;
    struct store_stmt *s = store_stmt(
        st, "INSERT INTO upstream_tokens (server, sealed, expires_at, scope, updated_at, user_id) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, server) DO UPDATE SET "
            "sealed = excluded.sealed, expires_at = excluded.expires_at, scope = excluded.scope, "
            "updated_at = excluded.updated_at");
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, server);
    store_bind_blob(s, 2, t->sealed, t->sealed_len);
    store_bind_int64(s, 3, t->expires_at);
    store_bind_text(s, 4, t->scope);
    store_bind_int64(s, 5, store_now());
    store_bind_int64(s, 6, user_id);
    return store_exec_change(st, s, "upstream token put");
}

int store_upstream_token_delete(struct store *st, int64_t user_id, const char *server)
{
    if (!server_ok(server))
        return ERR_INVAL;
    struct store_stmt *s =
        store_stmt(st, "DELETE FROM upstream_tokens WHERE user_id = ? AND server = ?");
    if (s == NULL)
        return ERR_IO;
    store_bind_int64(s, 1, user_id);
    store_bind_text(s, 2, server);
    return store_exec_change(st, s, "upstream token delete");
}

int store_upstream_token_list(struct store *st, int64_t user_id,
                              int (*cb)(const char *server, const struct store_upstream_token *t,
                                        void *arg),
                              void *arg)
{
    struct store_stmt *s =
        store_stmt(st, "SELECT server, expires_at, scope, updated_at FROM upstream_tokens "
                       "WHERE user_id = ? ORDER BY server");
    if (s == NULL)
        return ERR_IO;
    store_bind_int64(s, 1, user_id);
    int rc = STORE_DONE, ret = 0;
    while (ret == 0 && (rc = store_step(st, s)) == STORE_ROW) {
        char server[STORE_SERVER_MAX + 1];
        struct store_upstream_token t = {0};
        store_col_text(s, 0, server, sizeof(server));
        t.expires_at = store_col_int64(s, 1);
        store_col_text(s, 2, t.scope, sizeof(t.scope));
        t.updated_at = store_col_int64(s, 3);
        ret = cb(server, &t, arg);
    }
    if (ret == 0 && rc != STORE_DONE)
        ret = store_rc_err(rc);
    store_done(s);
    return ret;
}

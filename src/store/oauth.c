/*
 * The OAuth half of the store: clients (their secrets as argon2id), single-use authorization
 * codes, refresh-token families with rotation and reuse detection, revoked access tokens, the
 * revocation of everything a user holds, signing keys (stored sealed by the caller) and the
 * short-lived browser and flow state. Read-modify-write sequences run under BEGIN IMMEDIATE or as
 * one UPDATE ... RETURNING, so that two threads or processes presenting the same code or refresh
 * token can never both win.
 */
#include "store/store-int.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- clients ---- */

void store_client_release(struct store_client *c)
{
    if (c == NULL)
        return;
    json_decref(c->metadata);
    c->metadata = NULL;
}

#define CLIENT_COLS                                                                                \
    "client_id, kind, coalesce(user_id, 0), secret_hash IS NOT NULL, revoked, created_at, "        \
    "expires_at, metadata"

static int client_row(struct store_stmt *s, struct store_client *c)
{
    memset(c, 0, sizeof(*c));
    store_col_text(s, 0, c->client_id, sizeof(c->client_id));
    int kind = store_col_int64(s, 1);
    c->kind = kind >= STORE_CLIENT_CONFIG && kind <= STORE_CLIENT_USER
                  ? (enum store_client_kind)kind
                  : STORE_CLIENT_CONFIG;
    c->user_id = store_col_int64(s, 2);
    c->confidential = store_col_int64(s, 3) != 0;
    c->revoked = store_col_int64(s, 4) != 0;
    c->created_at = store_col_int64(s, 5);
    c->expires_at = store_col_int64(s, 6);
    const char *md = store_col_str(s, 7);
    c->metadata = md ? json_loads(md, 0, NULL) : json_object();
    if (c->metadata == NULL)
        c->metadata = json_object();
    return c->metadata ? 0 : ERR_NOMEM;
}

int store_client_put(struct store *st, const struct store_client *c, const char *secret)
{
    if (strlen(c->client_id) == 0)
        return ERR_INVAL;
    char hash[SECRET_HASH_MAX];
    char *md = NULL;
    int err;
    if (secret && (err = secret_hash(secret, strlen(secret), hash)) != 0)
        return err;
    if ((md = c->metadata ? json_dumps(c->metadata, JSON_COMPACT) : strdup("{}")) == NULL) {
        err = ERR_NOMEM;
        goto out;
    }
    struct store_stmt *s = store_stmt(
        st,
        "INSERT INTO clients (client_id, kind, user_id, secret_hash, revoked, created_at, "
        "expires_at, metadata) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
        "ON CONFLICT (client_id) DO UPDATE SET kind = ?2, user_id = ?3, secret_hash = ?4, revoked = ?5, "
        "expires_at = ?7, metadata = ?8");
    if (s == NULL) {
        err = ERR_IO;
        goto out;
    }
    store_bind_text(s, 1, c->client_id);
    store_bind_int64(s, 2, c->kind);
    if (c->user_id)
        store_bind_int64(s, 3, c->user_id);
    store_bind_text(s, 4, secret ? hash : NULL);
    store_bind_int64(s, 5, c->revoked);
    store_bind_int64(s, 6, c->created_at ? c->created_at : store_now());
    store_bind_int64(s, 7, c->expires_at);
    store_bind_text(s, 8, md);
    err = store_note_change(st, store_exec_step(st, s, "client put"));
out:
    sodium_memzero(hash, sizeof(hash));
    free(md);
    return err;
}

int store_client_get(struct store *st, const char *client_id, struct store_client *out)
{
    struct store_stmt *s =
        store_stmt(st, "SELECT " CLIENT_COLS " FROM clients WHERE client_id = ?");
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, client_id);
    int rc = store_step(st, s), err;
    if (rc == STORE_ROW)
        err = client_row(s, out);
    else
        err = rc == STORE_DONE ? ERR_NOTFOUND : store_rc_err(rc);
    store_done(s);
    return err;
}

int store_client_secret_hash(struct store *st, const char *client_id, char hash[SECRET_HASH_MAX],
                             bool *usable)
{
    struct store_stmt *s = store_stmt(st, "SELECT c.secret_hash, c.revoked = 0 AND "
                                          "coalesce(u.disabled, 0) = 0 FROM clients c "
                                          "LEFT JOIN users u ON u.id = c.user_id "
                                          "WHERE c.client_id = ? AND c.secret_hash IS NOT NULL");
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, client_id);
    int err = ERR_NOTFOUND;
    if (store_step(st, s) == STORE_ROW) {
        store_col_text(s, 0, hash, SECRET_HASH_MAX);
        *usable = store_col_int64(s, 1) != 0;
        err = 0;
    }
    store_done(s);
    return err;
}

int store_client_check_secret(struct store *st, const char *client_id, const char *secret,
                              size_t len)
{
    char hash[SECRET_HASH_MAX];
    bool usable = false;
    bool found = store_client_secret_hash(st, client_id, hash, &usable) == 0;
    return store_secret_matches(found, hash, secret, len) && usable ? 0 : ERR_DENIED;
}

int store_client_revoke(struct store *st, const char *client_id)
{
    /* the schema's trigger revokes the client's refresh families and unused codes too */
    struct store_stmt *s = store_stmt(st, "UPDATE clients SET revoked = 1 WHERE client_id = ?");
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, client_id);
    return store_note_change(st, store_exec_change(st, s, "client revoke"));
}

int store_client_list(struct store *st, int64_t user_id,
                      int (*cb)(const struct store_client *c, void *arg), void *arg)
{
    struct store_stmt *s = store_stmt(
        st, "SELECT " CLIENT_COLS " FROM clients "
            "WHERE CAST(?1 AS BIGINT) = 0 OR user_id = ?1 ORDER BY created_at, client_id");
    if (s == NULL)
        return ERR_IO;
    store_bind_int64(s, 1, user_id);
    int rc, ret = 0;
    while ((rc = store_step(st, s)) == STORE_ROW) {
        struct store_client c;
        if ((ret = client_row(s, &c)) != 0)
            break;
        ret = cb(&c, arg);
        store_client_release(&c);
        if (ret != 0)
            break;
    }
    if (ret == 0 && rc != STORE_DONE)
        ret = store_rc_err(rc);
    store_done(s);
    return ret;
}

/* ---- authorization codes ---- */

int store_code_put(struct store *st, const char *code_hash, const struct store_code *c)
{
    struct store_stmt *s =
        store_stmt(st, "INSERT INTO codes (hash, client_id, user_id, redirect_uri, "
                       "code_challenge, resource, scope, expires_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, code_hash);
    store_bind_text(s, 2, c->client_id);
    store_bind_int64(s, 3, c->user_id);
    store_bind_text(s, 4, c->redirect_uri);
    store_bind_text(s, 5, c->code_challenge);
    store_bind_text(s, 6, c->resource);
    store_bind_text(s, 7, c->scope);
    store_bind_int64(s, 8, c->expires_at);
    return store_exec_step(st, s, "code put");
}

int store_code_take(struct store *st, const char *code_hash, struct store_code *out)
{
    /* One statement takes the write lock, marks the code and reports how often it was taken:
       exactly one caller ever sees used == 1. */
    struct store_stmt *s = store_stmt(st, "UPDATE codes SET used = used + 1 WHERE hash = ? "
                                          "RETURNING used, client_id, user_id, redirect_uri, "
                                          "code_challenge, resource, scope, expires_at, family_id");
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, code_hash);
    struct store_code c;
    int64_t used = 0;
    int rc = store_step(st, s), err = 0;
    if (rc == STORE_ROW) {
        memset(&c, 0, sizeof(c));
        used = store_col_int64(s, 0);
        store_col_text(s, 1, c.client_id, sizeof(c.client_id));
        c.user_id = store_col_int64(s, 2);
        store_col_text(s, 3, c.redirect_uri, sizeof(c.redirect_uri));
        store_col_text(s, 4, c.code_challenge, sizeof(c.code_challenge));
        store_col_text(s, 5, c.resource, sizeof(c.resource));
        store_col_text(s, 6, c.scope, sizeof(c.scope));
        c.expires_at = store_col_int64(s, 7);
        store_col_text(s, 8, c.family_id, sizeof(c.family_id));
        rc = store_step(st, s); /* to DONE: the autocommit transaction ends at the reset */
    }
    if (rc != STORE_DONE)
        err = store_rc_err(rc);
    store_done(s);
    if (err)
        return err;
    if (used == 0)
        return ERR_NOTFOUND;
    if (used > 1) {
        *out = c;
        return ERR_EXISTS;
    }
    if (c.expires_at <= store_now())
        return ERR_NOTFOUND;
    *out = c;
    return 0;
}

int store_code_set_family(struct store *st, const char *code_hash, const char *family_id)
{
    struct store_stmt *s = store_stmt(st, "UPDATE codes SET family_id = ? WHERE hash = ?");
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, family_id);
    store_bind_text(s, 2, code_hash);
    return store_exec_change(st, s, "code family");
}

/* ---- refresh-token families ---- */

#define FAMILY_ID_BYTES 12 /* 24 hex characters */

int store_family_new(struct store *st, struct store_family *f)
{
    char id[2 * FAMILY_ID_BYTES + 1];
    store_random_id(id, FAMILY_ID_BYTES);
    int64_t now = store_now();
    struct store_stmt *s =
        store_stmt(st, "INSERT INTO families (id, client_id, user_id, resource, scope, "
                       "created_at, expires_at, revoked) VALUES (?, ?, ?, ?, ?, ?, ?, 0)");
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, id);
    store_bind_text(s, 2, f->client_id);
    store_bind_int64(s, 3, f->user_id);
    store_bind_text(s, 4, f->resource);
    store_bind_text(s, 5, f->scope);
    store_bind_int64(s, 6, now);
    store_bind_int64(s, 7, f->expires_at);
    int err = store_exec_step(st, s, "family new");
    if (err)
        return err;
    memcpy(f->id, id, sizeof(id));
    f->created_at = now;
    f->revoked = false;
    return 0;
}

/* Make token_hash the family's only live refresh token, inside the caller's transaction. */
static int refresh_put_locked(struct store *st, const char *family_id, const char *token_hash,
                              int64_t expires_at)
{
    struct store_stmt *s = store_stmt(st, "UPDATE refresh_tokens SET used = 1 "
                                          "WHERE family_id = ? AND used = 0");
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, family_id);
    int err = store_exec_step(st, s, "refresh put");
    if (err)
        return err;
    s = store_stmt(st, "INSERT INTO refresh_tokens (hash, family_id, expires_at) VALUES (?, ?, ?)");
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, token_hash);
    store_bind_text(s, 2, family_id);
    store_bind_int64(s, 3, expires_at);
    return store_exec_step(st, s, "refresh put");
}

int store_refresh_put(struct store *st, const char *family_id, const char *token_hash,
                      int64_t expires_at)
{
    int err = store_begin(st);
    if (err)
        return err;
    if ((err = refresh_put_locked(st, family_id, token_hash, expires_at)) == 0)
        err = store_commit(st);
    if (err)
        store_rollback(st);
    return err;
}

/* The refresh token's row and its family. ERR_NOTFOUND when unknown. */
struct refresh_row {
    struct store_family f;
    bool used, user_disabled;
    int64_t expires_at;
};

static int refresh_read(struct store *st, const char *token_hash, struct refresh_row *r)
{
    struct store_stmt *s =
        store_stmt(st, "SELECT r.used, r.expires_at, f.id, f.client_id, "
                       "f.user_id, f.resource, f.scope, f.created_at, "
                       "f.expires_at, f.revoked, coalesce(u.disabled, 0) "
                       "FROM refresh_tokens r JOIN families f ON f.id = r.family_id "
                       "LEFT JOIN users u ON u.id = f.user_id WHERE r.hash = ?");
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, token_hash);
    int rc = store_step(st, s);
    if (rc != STORE_ROW) {
        int err = rc == STORE_DONE ? ERR_NOTFOUND : store_rc_err(rc);
        store_done(s);
        return err;
    }
    memset(r, 0, sizeof(*r));
    r->used = store_col_int64(s, 0) != 0;
    r->expires_at = store_col_int64(s, 1);
    store_col_text(s, 2, r->f.id, sizeof(r->f.id));
    store_col_text(s, 3, r->f.client_id, sizeof(r->f.client_id));
    r->f.user_id = store_col_int64(s, 4);
    store_col_text(s, 5, r->f.resource, sizeof(r->f.resource));
    store_col_text(s, 6, r->f.scope, sizeof(r->f.scope));
    r->f.created_at = store_col_int64(s, 7);
    r->f.expires_at = store_col_int64(s, 8);
    r->f.revoked = store_col_int64(s, 9) != 0;
    r->user_disabled = store_col_int64(s, 10) != 0;
    store_done(s);
    if (!r->f.revoked && store_unsaved_has(true, r->f.id))
        r->f.revoked = true; /* revoked, but not written yet */
    return 0;
}

int store_refresh_peek(struct store *st, const char *token_hash, struct store_family *fam)
{
    struct refresh_row r;
    int err = refresh_read(st, token_hash, &r);
    if (err)
        return err;
    int64_t now = store_now();
    if (r.used || r.f.revoked || r.user_disabled || r.expires_at <= now || r.f.expires_at <= now)
        return ERR_DENIED;
    *fam = r.f;
    return 0;
}

int store_refresh_rotate(struct store *st, const char *token_hash, const char *new_hash,
                         struct store_family *fam)
{
    struct refresh_row r;
    int64_t now = store_now();
    int err = store_begin(st);
    if (err)
        return err;
    struct store_stmt *s;
    if ((err = refresh_read(st, token_hash, &r)) != 0)
        goto out;
    struct store_family f = r.f;
    bool used = r.used, user_disabled = r.user_disabled;
    int64_t token_expires = r.expires_at;

    if (used) { /* a replay: the token leaked or a client misbehaves; the whole grant dies */
        s = store_stmt(st, "UPDATE families SET revoked = 1 WHERE id = ?");
        if (s == NULL)
            err = ERR_IO;
        else {
            store_bind_text(s, 1, f.id);
            if ((err = store_exec_step(st, s, "refresh reuse")) == 0)
                err = store_commit(st);
        }
        if (err) { /* not written: the grant is dead in this process all the same */
            store_rollback(st);
            store_unsaved_add(true, f.id, f.expires_at);
        }
        f.revoked = true;
        *fam = f;
        return ERR_EXISTS;
    }
    if (f.revoked || user_disabled) {
        err = ERR_DENIED;
        goto out;
    }
    if (token_expires <= now || f.expires_at <= now) {
        err = ERR_NOTFOUND;
        goto out;
    }
    s = store_stmt(st, "UPDATE refresh_tokens SET used = 1 WHERE hash = ?");
    if (s == NULL) {
        err = ERR_IO;
        goto out;
    }
    store_bind_text(s, 1, token_hash);
    if ((err = store_exec_step(st, s, "refresh use")) != 0)
        goto out;
    if (new_hash != NULL && (err = refresh_put_locked(st, f.id, new_hash, f.expires_at)) != 0)
        goto out;
    if ((err = store_commit(st)) != 0)
        goto out;
    *fam = f;
    return 0;
out:
    store_rollback(st);
    return err;
}

int store_refresh_use(struct store *st, const char *token_hash, struct store_family *fam)
{
    return store_refresh_rotate(st, token_hash, NULL, fam);
}

int store_family_revoke(struct store *st, const char *family_id)
{
    struct store_stmt *s = store_stmt(st, "UPDATE families SET revoked = 1 WHERE id = ?");
    int err = ERR_IO;
    if (s != NULL) {
        store_bind_text(s, 1, family_id);
        err = store_exec_change(st, s, "family revoke");
    }
    if (err && err != ERR_NOTFOUND) /* in force in this process until it can be written */
        store_unsaved_add(true, family_id, store_now() + UNSAVED_FAMILY_KEEP_S);
    return err;
}

/* ---- revocation ---- */

int store_jti_revoke(struct store *st, const char *jti, int64_t expires_at)
{
    struct store_stmt *s =
        store_stmt(st, "INSERT INTO revoked_jtis (jti, expires_at) VALUES (?, ?) "
                       "ON CONFLICT DO NOTHING");
    int err = ERR_IO;
    if (s != NULL) {
        store_bind_text(s, 1, jti);
        store_bind_int64(s, 2, expires_at);
        err = store_note_change(st, store_exec_step(st, s, "jti revoke"));
    }
    if (err) /* in force in this process until it can be written */
        store_unsaved_add(false, jti, expires_at);
    return err;
}

int store_jti_revoked(struct store *st, const char *jti, bool *revoked)
{
    if (store_unsaved_has(false, jti)) {
        *revoked = true;
        return 0;
    }
    struct store_stmt *s = store_stmt(st, "SELECT 1 FROM revoked_jtis WHERE jti = ?");
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, jti);
    int rc = store_step(st, s);
    int err = rc == STORE_ROW || rc == STORE_DONE ? 0 : store_rc_err(rc);
    store_done(s);
    if (err == 0)
        *revoked = rc == STORE_ROW;
    return err;
}

int store_revoke_user(struct store *st, int64_t user_id)
{
    /* tokens_valid_after is one second ahead: a token issued in this very second (before the
       revocation or racing it) carries iat == now and is refused too. */
    static const char *const steps[] = {
        ("UPDATE users SET tokens_valid_after = CASE WHEN tokens_valid_after > CAST(?2 AS BIGINT) "
         "THEN tokens_valid_after ELSE CAST(?2 AS BIGINT) + 1 END WHERE id = ?1"),
        "UPDATE clients SET revoked = 1 WHERE user_id = ?1 AND revoked = 0",
        "UPDATE families SET revoked = 1 WHERE user_id = ?1 AND revoked = 0",
        "DELETE FROM codes WHERE user_id = ?1 AND used = 0",
        "DELETE FROM ephemeral WHERE user_id = ?1",
    };
    int err = store_begin(st);
    if (err)
        return err;
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        struct store_stmt *s = store_stmt(st, steps[i]);
        if (s == NULL) {
            err = ERR_IO;
            goto out;
        }
        store_bind_int64(s, 1, user_id);
        if (store_param_count(s) >= 2)
            store_bind_int64(s, 2, store_now());
        if ((err = i == 0 ? store_exec_change(st, s, "revoke user")
                          : store_exec_step(st, s, "revoke user")) != 0)
            goto out;
    }
    store_revocation_changed(st); /* said at the COMMIT */
    err = store_commit(st);
out:
    if (err)
        store_rollback(st);
    return err;
}

/* ---- signing keys ---- */

void store_key_release(struct store_key *k)
{
    if (k == NULL)
        return;
    if (k->sealed)
        sodium_memzero(k->sealed, k->sealed_len);
    free(k->sealed);
    free(k->public_jwk);
    k->sealed = NULL;
    k->public_jwk = NULL;
}

int store_key_add(struct store *st, const struct store_key *k)
{
    int err = store_begin(st);
    if (err)
        return err;
    struct store_stmt *s =
        store_stmt(st, "UPDATE signing_keys SET retired_at = ? WHERE retired_at = 0");
    if (s == NULL) {
        err = ERR_IO;
        goto out;
    }
    store_bind_int64(s, 1, store_now());
    if ((err = store_exec_step(st, s, "key retire")) != 0)
        goto out;
    s = store_stmt(st, "INSERT INTO signing_keys (kid, alg, sealed, public_jwk, created_at, "
                       "retired_at) VALUES (?, ?, ?, ?, ?, ?)");
    if (s == NULL) {
        err = ERR_IO;
        goto out;
    }
    store_bind_text(s, 1, k->kid);
    store_bind_text(s, 2, k->alg);
    store_bind_blob(s, 3, k->sealed, k->sealed_len);
    store_bind_text(s, 4, k->public_jwk);
    store_bind_int64(s, 5, k->created_at ? k->created_at : store_now());
    store_bind_int64(s, 6, k->retired_at);
    if ((err = store_exec_step(st, s, "key add")) != 0)
        goto out;
    store_revocation_changed(st); /* said at the COMMIT */
    err = store_commit(st);
out:
    if (err)
        store_rollback(st);
    return err;
}

int store_key_list(struct store *st, int (*cb)(const struct store_key *k, void *arg), void *arg)
{
    struct store_stmt *s = store_stmt(st, "SELECT kid, alg, sealed, public_jwk, created_at, "
                                          "retired_at FROM signing_keys "
                                          "ORDER BY retired_at = 0 DESC, created_at DESC, kid");
    if (s == NULL)
        return ERR_IO;
    int rc, ret = 0;
    while ((rc = store_step(st, s)) == STORE_ROW) {
        struct store_key k = {0};
        store_col_text(s, 0, k.kid, sizeof(k.kid));
        store_col_text(s, 1, k.alg, sizeof(k.alg));
        const void *blob = store_col_blob(s, 2, &k.sealed_len);
        const char *jwk = store_col_str(s, 3);
        k.sealed = malloc(k.sealed_len ? k.sealed_len : 1);
        k.public_jwk = strdup(jwk ? jwk : "");
        if (k.sealed == NULL || k.public_jwk == NULL) {
            store_key_release(&k);
            ret = ERR_NOMEM;
            break;
        }
        if (k.sealed_len)
            memcpy(k.sealed, blob, k.sealed_len);
        k.created_at = store_col_int64(s, 4);
        k.retired_at = store_col_int64(s, 5);
        ret = cb(&k, arg);
        store_key_release(&k);
        if (ret != 0)
            break;
    }
    if (ret == 0 && rc != STORE_DONE)
        ret = store_rc_err(rc);
    store_done(s);
    return ret;
}

int store_key_delete_retired_before(struct store *st, int64_t t)
{
    struct store_stmt *s =
        store_stmt(st, "DELETE FROM signing_keys WHERE retired_at != 0 AND retired_at < ?");
    if (s == NULL)
        return ERR_IO;
    store_bind_int64(s, 1, t);
    int err = store_exec_step(st, s, "key delete");
    return err == 0 && store_changes(st) > 0 ? store_note_change(st, 0) : err;
}

/* ---- ephemeral state ---- */

int store_ephemeral_put(struct store *st, const char *kind, const char *key_hash,
                        const json_t *value, int64_t expires_at)
{
    char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL)
        return ERR_NOMEM;
    int err = ERR_IO;
    struct store_stmt *s = store_stmt(st, "INSERT INTO ephemeral (kind, key_hash, value, "
                                          "expires_at, user_id) VALUES (?, ?, ?, ?, ?) "
                                          "ON CONFLICT (kind, key_hash) DO UPDATE SET "
                                          "value = excluded.value, expires_at = "
                                          "excluded.expires_at, user_id = excluded.user_id");
    if (s != NULL) {
        /* a value naming a user ("user_id") is deleted by store_revoke_user */
        json_t *uid = json_is_object(value) ? json_object_get(value, "user_id") : NULL;
        store_bind_text(s, 1, kind);
        store_bind_text(s, 2, key_hash);
        store_bind_text(s, 3, text);
        store_bind_int64(s, 4, expires_at);
        if (json_is_integer(uid))
            store_bind_int64(s, 5, json_integer_value(uid));
        err = store_exec_step(st, s, "ephemeral put");
    }
    sodium_memzero(text, strlen(text));
    free(text);
    return err;
}

/* Step a statement that yields (value, expires_at) at most once; parse the value if live. */
static int ephemeral_value(struct store *st, struct store_stmt *s, json_t **out)
{
    int rc = store_step(st, s), err = 0;
    json_t *v = NULL;
    if (rc == STORE_ROW) {
        if (store_col_int64(s, 1) > store_now())
            v = json_loads(store_col_str(s, 0), JSON_DECODE_ANY, NULL);
        rc = store_step(st, s);
        err = v ? 0 : ERR_NOTFOUND;
    } else {
        err = ERR_NOTFOUND;
    }
    if (rc != STORE_DONE) {
        json_decref(v);
        v = NULL;
        err = store_rc_err(rc);
    }
    store_done(s);
    if (err == 0)
        *out = v;
    return err;
}

int store_ephemeral_get(struct store *st, const char *kind, const char *key_hash, json_t **out)
{
    struct store_stmt *s = store_stmt(st, "SELECT value, expires_at FROM ephemeral "
                                          "WHERE kind = ? AND key_hash = ?");
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, kind);
    store_bind_text(s, 2, key_hash);
    return ephemeral_value(st, s, out);
}

int store_ephemeral_take(struct store *st, const char *kind, const char *key_hash, json_t **out)
{
    struct store_stmt *s = store_stmt(st, "DELETE FROM ephemeral WHERE kind = ? AND key_hash = ? "
                                          "RETURNING value, expires_at");
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, kind);
    store_bind_text(s, 2, key_hash);
    return ephemeral_value(st, s, out);
}

int store_ephemeral_delete(struct store *st, const char *kind, const char *key_hash)
{
    struct store_stmt *s = store_stmt(st, "DELETE FROM ephemeral WHERE kind = ? AND key_hash = ?");
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, kind);
    store_bind_text(s, 2, key_hash);
    return store_exec_step(st, s, "ephemeral delete");
}

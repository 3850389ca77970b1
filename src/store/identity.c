/*
 * The identity half of the store: users (with argon2id passwords), federated identities, teams
 * and their members (by hand or synced from an identity provider's groups), service accounts and
 * their API keys. Checks of presented secrets take the same time whether the name exists or not.
 */
#include "store/store-int.h"
#include "core/log.h"
#include "core/rand.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USER_COLS "id, name, email, admin, disabled, created_at, tokens_valid_after"
#define APIKEY_PREFIX "ghk_"
#define APIKEY_ID_BYTES 8      /* 16 hex characters */
#define APIKEY_SECRET_BYTES 32 /* 43 base64url characters */

static void user_row(struct store_stmt *s, struct store_user *u)
{
    memset(u, 0, sizeof(*u));
    u->id = store_col_int64(s, 0);
    store_col_text(s, 1, u->name, sizeof(u->name));
    store_col_text(s, 2, u->email, sizeof(u->email));
    u->admin = store_col_int64(s, 3) != 0;
    u->disabled = store_col_int64(s, 4) != 0;
    u->created_at = store_col_int64(s, 5);
    u->tokens_valid_after = store_col_int64(s, 6);
}

/* Step a statement expected to yield at most one row: fills via row() on ROW, ERR_NOTFOUND on
   none. */
static int one_user(struct store *st, struct store_stmt *s, struct store_user *out)
{
    int rc = store_step(st, s);
    int err = rc == STORE_ROW ? 0 : rc == STORE_DONE ? ERR_NOTFOUND : store_rc_err(rc);
    if (rc == STORE_ROW)
        user_row(s, out);
    store_done(s);
    return err;
}

static int hash_password(const char *password, char out[SECRET_HASH_MAX])
{
    return secret_hash(password, strlen(password), out);
}

int store_user_add(struct store *st, const char *name, const char *email, const char *password,
                   bool admin, struct store_user *out, struct err_info *ei)
{
    if (!store_name_valid(name))
        return err_info_set(ei, ERR_INVAL, 0, 0,
                            "user name \"%.*s\" is not 1 to %d of A-Z a-z 0-9 . _ @ + -",
                            STORE_NAME_MAX, name ? name : "", STORE_NAME_MAX);
    if (email && strlen(email) > STORE_EMAIL_MAX)
        return err_info_set(ei, ERR_INVAL, 0, 0, "email is longer than %d bytes", STORE_EMAIL_MAX);
    char hash[SECRET_HASH_MAX];
    int err;
    if (password && (err = hash_password(password, hash)) != 0)
        return err_info_set(ei, err, 0, 0, "cannot hash the password: out of memory");
    struct store_stmt *s =
        store_stmt(st, "INSERT INTO users (name, email, password_hash, admin, "
                       "created_at) VALUES (?, ?, ?, ?, ?) RETURNING " USER_COLS);
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, name);
    store_bind_text(s, 2, email ? email : "");
    store_bind_text(s, 3, password ? hash : NULL);
    store_bind_int64(s, 4, admin);
    store_bind_int64(s, 5, store_now());
    struct store_user u;
    err = one_user(st, s, &u);
    sodium_memzero(hash, sizeof(hash));
    if (err == ERR_EXISTS)
        return err_info_set(ei, err, 0, 0, "user \"%s\" exists already", name);
    if (err)
        return err_info_set(ei, err, 0, 0, "cannot add user \"%s\": %s", name, err_str(err));
    if (out)
        *out = u;
    return 0;
}

int store_user_get(struct store *st, int64_t id, struct store_user *out)
{
    struct store_stmt *s = store_stmt(st, "SELECT " USER_COLS " FROM users WHERE id = ?");
    if (s == NULL)
        return ERR_IO;
    store_bind_int64(s, 1, id);
    return one_user(st, s, out);
}

int store_user_find(struct store *st, const char *name, struct store_user *out)
{
    if (!store_name_valid(name))
        return ERR_NOTFOUND;
    struct store_stmt *s = store_stmt(st, "SELECT " USER_COLS " FROM users WHERE name = ?");
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, name);
    return one_user(st, s, out);
}

int store_user_password_hash(struct store *st, const char *name, struct store_user *out,
                             char hash[SECRET_HASH_MAX])
{
    if (!store_name_valid(name))
        return ERR_NOTFOUND;
    struct store_stmt *s =
        store_stmt(st, "SELECT " USER_COLS ", password_hash FROM users WHERE name = ? "
                       "AND password_hash IS NOT NULL");
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, name);
    int err = ERR_NOTFOUND;
    if (store_step(st, s) == STORE_ROW) {
        user_row(s, out);
        store_col_text(s, 7, hash, SECRET_HASH_MAX);
        err = 0;
    }
    store_done(s);
    return err;
}

int store_user_check_password(struct store *st, const char *name, const char *password,
                              struct store_user *out)
{
    size_t plen = strlen(password);
    char hash[SECRET_HASH_MAX];
    struct store_user u;
    bool found = store_user_password_hash(st, name, &u, hash) == 0;
    if (!store_secret_matches(found, hash, password, plen) || u.disabled)
        return ERR_DENIED;
    if (out)
        *out = u;
    return 0;
}

int store_user_set_password(struct store *st, int64_t id, const char *password)
{
    char hash[SECRET_HASH_MAX];
    int err;
    if (password && (err = hash_password(password, hash)) != 0)
        return err;
    struct store_stmt *s = store_stmt(st, "UPDATE users SET password_hash = ? WHERE id = ?");
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, password ? hash : NULL);
    store_bind_int64(s, 2, id);
    err = store_exec_change(st, s, "set password");
    sodium_memzero(hash, sizeof(hash));
    return err;
}

int store_user_set_disabled(struct store *st, int64_t id, bool disabled)
{
    struct store_stmt *s = store_stmt(st, "UPDATE users SET disabled = ? WHERE id = ?");
    if (s == NULL)
        return ERR_IO;
    store_bind_int64(s, 1, disabled);
    store_bind_int64(s, 2, id);
    return store_note_change(st, store_exec_change(st, s, "set disabled"));
}

int store_user_list(struct store *st, int (*cb)(const struct store_user *u, void *arg), void *arg)
{
    struct store_stmt *s = store_stmt(st, "SELECT " USER_COLS " FROM users ORDER BY name");
    if (s == NULL)
        return ERR_IO;
    int rc, ret = 0;
    while ((rc = store_step(st, s)) == STORE_ROW) {
        struct store_user u;
        user_row(s, &u);
        if ((ret = cb(&u, arg)) != 0)
            break;
    }
    if (ret == 0 && rc != STORE_DONE)
        ret = store_rc_err(rc);
    store_done(s);
    return ret;
}

/* ---- federated identities ---- */

int store_identity_find(struct store *st, const char *provider, const char *subject,
                        struct store_user *out)
{
    struct store_stmt *s = store_stmt(st, "SELECT u.id, u.name, u.email, u.admin, u.disabled, "
                                          "u.created_at, u.tokens_valid_after FROM identities i "
                                          "JOIN users u ON u.id = i.user_id "
                                          "WHERE i.provider = ? AND i.subject = ?");
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, provider);
    store_bind_text(s, 2, subject);
    return one_user(st, s, out);
}

int store_identity_link(struct store *st, int64_t user_id, const char *provider,
                        const char *subject)
{
    /* A subject links to one user for good: linking it to another is ERR_EXISTS. */
    struct store_stmt *s = store_stmt(st, "INSERT INTO identities (provider, subject, user_id) "
                                          "VALUES (?1, ?2, ?3) ON CONFLICT (provider, subject) "
                                          "DO UPDATE SET user_id = identities.user_id "
                                          "WHERE identities.user_id = ?3");
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, provider);
    store_bind_text(s, 2, subject);
    store_bind_int64(s, 3, user_id);
    int err = store_exec_step(st, s, "identity link");
    if (err == 0 && store_changes(st) == 0)
        err = ERR_EXISTS;
    return err;
}

int store_identity_adopt(struct store *st, const char *provider, const char *subject,
                         const char *name, struct store_user *out)
{
    if (!store_name_valid(name))
        return ERR_NOTFOUND;
    /* One statement, so two logins racing for the same name cannot both adopt it. */
    struct store_stmt *s =
        store_stmt(st, "INSERT INTO identities (provider, subject, user_id) "
                       "SELECT ?1, ?2, u.id FROM users u WHERE u.name = ?3 AND "
                       "u.password_hash IS NULL AND NOT EXISTS (SELECT 1 FROM "
                       "identities i WHERE i.provider = ?1 AND i.user_id = u.id) "
                       "ON CONFLICT DO NOTHING");
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, provider);
    store_bind_text(s, 2, subject);
    store_bind_text(s, 3, name);
    int err = store_exec_step(st, s, "identity adopt");
    if (err == 0 && store_changes(st) == 0)
        err = ERR_NOTFOUND;
    return err ? err : store_identity_find(st, provider, subject, out);
}

/* ---- teams ---- */

int store_team_add(struct store *st, const char *name, struct err_info *ei)
{
    if (!store_name_valid(name))
        return err_info_set(ei, ERR_INVAL, 0, 0,
                            "team name \"%.*s\" is not 1 to %d of A-Z a-z 0-9 . _ @ + -",
                            STORE_NAME_MAX, name ? name : "", STORE_NAME_MAX);
    struct store_stmt *s = store_stmt(st, "INSERT INTO teams (name, created_at) VALUES (?, ?)");
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, name);
    store_bind_int64(s, 2, store_now());
    int err = store_exec_step(st, s, "team add");
    if (err == ERR_EXISTS)
        return err_info_set(ei, err, 0, 0, "team \"%s\" exists already", name);
    if (err)
        return err_info_set(ei, err, 0, 0, "cannot add team \"%s\": %s", name, err_str(err));
    return 0;
}

int store_team_add_member(struct store *st, const char *team, int64_t user_id, enum store_role role,
                          struct err_info *ei)
{
    /* Adding a member again sets their role. */
    struct store_stmt *s = store_stmt(st, "INSERT INTO team_members (team_id, user_id, role) "
                                          "SELECT id, CAST(?2 AS BIGINT), CAST(?3 AS BIGINT) "
                                          "FROM teams WHERE name = ?1 ON CONFLICT (team_id, "
                                          "user_id) DO UPDATE SET role = excluded.role");
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, team);
    store_bind_int64(s, 2, user_id);
    store_bind_int64(s, 3, role);
    int err = store_exec_step(st, s, "team member add");
    if (err == ERR_NOTFOUND)
        return err_info_set(ei, err, 0, 0, "no user with id %lld", (long long)user_id);
    if (err)
        return err_info_set(ei, err, 0, 0, "cannot add to team \"%s\": %s", team, err_str(err));
    if (store_changes(st) == 0)
        return err_info_set(ei, ERR_NOTFOUND, 0, 0, "no team named \"%s\"", team);
    return 0;
}

int store_team_remove_member(struct store *st, const char *team, int64_t user_id)
{
    struct store_stmt *s =
        store_stmt(st, "DELETE FROM team_members WHERE user_id = ? AND team_id = "
                       "(SELECT id FROM teams WHERE name = ?)");
    if (s == NULL)
        return ERR_IO;
    store_bind_int64(s, 1, user_id);
    store_bind_text(s, 2, team);
    return store_exec_change(st, s, "team member remove");
}

int store_team_sync(struct store *st, int64_t user_id, const char *const *teams, size_t nteams)
{
    json_t *names = json_array();
    if (names == NULL)
        return ERR_NOMEM;
    for (size_t i = 0; i < nteams; i++) {
        if (!store_name_valid(teams[i])) { /* an IdP group that is no team name: not synced */
            log_warn("store", "group \"%.*s\" is not a valid team name; not synced", STORE_NAME_MAX,
                     teams[i]);
            continue;
        }
        json_array_append_new(names, json_string(teams[i]));
    }
    char *list = json_dumps(names, JSON_COMPACT);
    json_decref(names);
    if (list == NULL)
        return ERR_NOMEM;
    int err = store_begin(st);
    if (err)
        goto out;
    /* ?2 is the JSON array of names: json_each on SQLite, json_array_elements_text on
       PostgreSQL */
    static const char *const steps[][2] = {
        {("INSERT INTO teams (name, synced, created_at) SELECT value, 1, ?3 FROM json_each(?2) "
          "WHERE true ON CONFLICT DO NOTHING"),
         ("INSERT INTO teams (name, synced, created_at) SELECT j.value, 1, CAST(?3 AS BIGINT) "
          "FROM json_array_elements_text(CAST(?2 AS json)) AS j (value) ON CONFLICT DO NOTHING")},
        {("INSERT INTO team_members (team_id, user_id, role) SELECT t.id, ?1, 0 FROM teams t "
          "JOIN json_each(?2) j ON t.name = j.value WHERE true ON CONFLICT DO NOTHING"),
         ("INSERT INTO team_members (team_id, user_id, role) SELECT t.id, CAST(?1 AS BIGINT), 0 "
          "FROM teams t JOIN json_array_elements_text(CAST(?2 AS json)) AS j (value) "
          "ON t.name = j.value ON CONFLICT DO NOTHING")},
        {("DELETE FROM team_members WHERE user_id = ?1 AND team_id IN (SELECT id FROM teams "
          "WHERE synced = 1 AND name NOT IN (SELECT value FROM json_each(?2)))"),
         ("DELETE FROM team_members WHERE user_id = ?1 AND team_id IN (SELECT id FROM teams "
          "WHERE synced = 1 AND name NOT IN (SELECT j.value FROM "
          "json_array_elements_text(CAST(?2 AS json)) AS j (value)))")},
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        struct store_stmt *s = store_stmt(st, store_sql(st, steps[i][0], steps[i][1]));
        if (s == NULL) {
            err = ERR_IO;
            goto out;
        }
        store_bind_int64(s, 1, user_id);
        store_bind_text(s, 2, list);
        if (store_param_count(s) >= 3)
            store_bind_int64(s, 3, store_now());
        if ((err = store_exec_step(st, s, "team sync")) != 0)
            goto out;
    }
    err = store_commit(st);
out:
    if (err)
        store_rollback(st);
    free(list);
    return err;
}

int store_team_list(struct store *st, int (*cb)(const char *team, size_t members, void *arg),
                    void *arg)
{
    struct store_stmt *s = store_stmt(st, "SELECT t.name, count(m.user_id) FROM teams t "
                                          "LEFT JOIN team_members m ON m.team_id = t.id "
                                          "GROUP BY t.id ORDER BY t.name");
    if (s == NULL)
        return ERR_IO;
    int rc, ret = 0;
    while ((rc = store_step(st, s)) == STORE_ROW) {
        if ((ret = cb(store_col_str(s, 0), (size_t)store_col_int64(s, 1), arg)) != 0)
            break;
    }
    if (ret == 0 && rc != STORE_DONE)
        ret = store_rc_err(rc);
    store_done(s);
    return ret;
}

int store_user_teams(struct store *st, int64_t user_id,
                     int (*cb)(const char *team, enum store_role role, void *arg), void *arg)
{
    struct store_stmt *s = store_stmt(st, "SELECT t.name, m.role FROM team_members m "
                                          "JOIN teams t ON t.id = m.team_id WHERE m.user_id = ? "
                                          "ORDER BY t.name");
    if (s == NULL)
        return ERR_IO;
    store_bind_int64(s, 1, user_id);
    int rc, ret = 0;
    while ((rc = store_step(st, s)) == STORE_ROW) {
        enum store_role role =
            store_col_int64(s, 1) == STORE_ROLE_ADMIN ? STORE_ROLE_ADMIN : STORE_ROLE_MEMBER;
        if ((ret = cb(store_col_str(s, 0), role, arg)) != 0)
            break;
    }
    if (ret == 0 && rc != STORE_DONE)
        ret = store_rc_err(rc);
    store_done(s);
    return ret;
}

/* ---- service accounts and API keys ---- */

static void account_row(struct store_stmt *s, int col, struct store_account *a)
{
    memset(a, 0, sizeof(*a));
    a->id = store_col_int64(s, col);
    store_col_text(s, col + 1, a->name, sizeof(a->name));
    a->disabled = store_col_int64(s, col + 2) != 0;
    a->created_at = store_col_int64(s, col + 3);
}

int store_account_add(struct store *st, const char *name, struct store_account *out,
                      struct err_info *ei)
{
    if (!store_name_valid(name))
        return err_info_set(ei, ERR_INVAL, 0, 0,
                            "account name \"%.*s\" is not 1 to %d of A-Z a-z 0-9 . _ @ + -",
                            STORE_NAME_MAX, name ? name : "", STORE_NAME_MAX);
    struct store_stmt *s = store_stmt(st, "INSERT INTO accounts (name, created_at) VALUES (?, ?) "
                                          "RETURNING id, name, disabled, created_at");
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, name);
    store_bind_int64(s, 2, store_now());
    struct store_account a;
    int rc = store_step(st, s);
    if (rc == STORE_ROW)
        account_row(s, 0, &a);
    int err = rc == STORE_ROW ? 0 : store_rc_err(rc);
    store_done(s);
    if (err == ERR_EXISTS)
        return err_info_set(ei, err, 0, 0, "account \"%s\" exists already", name);
    if (err)
        return err_info_set(ei, err, 0, 0, "cannot add account \"%s\": %s", name, err_str(err));
    if (out)
        *out = a;
    return 0;
}

int store_account_find(struct store *st, const char *name, struct store_account *out)
{
    if (!store_name_valid(name))
        return ERR_NOTFOUND;
    struct store_stmt *s =
        store_stmt(st, "SELECT id, name, disabled, created_at FROM accounts WHERE name = ?");
    if (s == NULL)
        return ERR_IO;
    store_bind_text(s, 1, name);
    int rc = store_step(st, s);
    if (rc == STORE_ROW)
        account_row(s, 0, out);
    int err = rc == STORE_ROW ? 0 : rc == STORE_DONE ? ERR_NOTFOUND : store_rc_err(rc);
    store_done(s);
    return err;
}

int store_apikey_create(struct store *st, int64_t account_id, const char *label,
                        char key_out[STORE_APIKEY_SIZE], char id_out[32])
{
    char id[2 * APIKEY_ID_BYTES + 1], secret[64], hash[SECRET_HASH_MAX];
    store_random_id(id, APIKEY_ID_BYTES);
    rand_token(secret, sizeof(secret), APIKEY_SECRET_BYTES);
    int err = secret_hash(secret, strlen(secret), hash);
    if (err)
        goto out;
    struct store_stmt *s =
        store_stmt(st, "INSERT INTO apikeys (id, account_id, label, secret_hash, "
                       "created_at) VALUES (?, ?, ?, ?, ?)");
    if (s == NULL) {
        err = ERR_IO;
        goto out;
    }
    store_bind_text(s, 1, id);
    store_bind_int64(s, 2, account_id);
    store_bind_text(s, 3, label ? label : "");
    store_bind_text(s, 4, hash);
    store_bind_int64(s, 5, store_now());
    if ((err = store_exec_step(st, s, "apikey create")) != 0)
        goto out;
    snprintf(key_out, STORE_APIKEY_SIZE, APIKEY_PREFIX "%s_%s", id, secret);
    snprintf(id_out, 32, "%s", id);
out:
    sodium_memzero(secret, sizeof(secret));
    sodium_memzero(hash, sizeof(hash));
    return err;
}

/* "ghk_<16 hex>_<secret>" → the id (NUL-terminated into id) and where the secret starts. */
static bool apikey_parse(const char *key, size_t len, char id[2 * APIKEY_ID_BYTES + 1],
                         const char **secret, size_t *secret_len)
{
    size_t plen = strlen(APIKEY_PREFIX), idlen = 2 * APIKEY_ID_BYTES;
    if (len < plen + idlen + 2 || memcmp(key, APIKEY_PREFIX, plen) != 0 || key[plen + idlen] != '_')
        return false;
    for (size_t i = 0; i < idlen; i++) {
        char c = key[plen + i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    memcpy(id, key + plen, idlen);
    id[idlen] = '\0';
    *secret = key + plen + idlen + 1;
    *secret_len = len - plen - idlen - 1;
    return true;
}

int store_apikey_check(struct store *st, const char *key, size_t len, struct store_account *out,
                       char id_out[32])
{
    char id[2 * APIKEY_ID_BYTES + 1], hash[SECRET_HASH_MAX];
    const char *secret = key;
    size_t slen = len;
    struct store_account a;
    bool found = false, usable = false;
    struct store_stmt *s;
    if (apikey_parse(key, len, id, &secret, &slen)) {
        s = store_stmt(st, "SELECT k.secret_hash, k.revoked_at IS NULL, a.id, a.name, "
                           "a.disabled, a.created_at FROM apikeys k "
                           "JOIN accounts a ON a.id = k.account_id WHERE k.id = ?");
        if (s == NULL)
            return ERR_IO;
        store_bind_text(s, 1, id);
        int rc = store_step(st, s);
        if (rc == STORE_ROW) {
            store_col_text(s, 0, hash, sizeof(hash));
            account_row(s, 2, &a);
            usable = store_col_int64(s, 1) != 0 && !a.disabled;
            found = true;
        }
        store_done(s);
        if (rc != STORE_ROW && rc != STORE_DONE)
            return rc; /* the store failed: not the key's fault */
    }
    /* A malformed key or an unknown id is refused without the dummy argon2id that hides an
       unknown user name elsewhere: the id is no secret (apikey list shows it, the audit names
       it), and this check runs on the worker's loop, where every anonymous "Bearer ghk_<junk>"
       would otherwise stall all traffic for the length of one hash. */
    if (!found || !store_secret_matches(true, hash, secret, slen) || !usable)
        return ERR_DENIED;
    if (out)
        *out = a;
    if (id_out)
        snprintf(id_out, 32, "%s", id);
    return 0;
}

int store_apikey_revoke(struct store *st, const char *key_id)
{
    struct store_stmt *s = store_stmt(st, "UPDATE apikeys SET revoked_at = coalesce(revoked_at, ?) "
                                          "WHERE id = ?");
    if (s == NULL)
        return ERR_IO;
    store_bind_int64(s, 1, store_now());
    store_bind_text(s, 2, key_id);
    return store_note_change(st, store_exec_change(st, s, "apikey revoke"));
}

/* ---- per-user settings ---- */

void store_settings_release(struct store_settings *s)
{
    json_decref(s->tools);
    s->tools = NULL;
}

/* Fill *out from a row (discovery, tools, updated_at) at column `col`. */
static int settings_row(struct store_stmt *s, int col, struct store_settings *out)
{
    struct store_settings v = {0};
    store_col_text(s, col, v.discovery, sizeof(v.discovery));
    const char *tools = store_col_str(s, col + 1);
    if (tools != NULL && (v.tools = json_loads(tools, 0, NULL)) == NULL)
        return ERR_NOMEM;
    v.updated_at = store_col_int64(s, col + 2);
    *out = v;
    return 0;
}

int store_settings_get(struct store *st, int64_t user_id, const char *server,
                       struct store_settings *out)
{
    struct store_stmt *s = store_stmt(st, "SELECT discovery, tools, updated_at FROM user_settings "
                                          "WHERE user_id = ? AND server = ?");
    if (s == NULL)
        return ERR_IO;
    store_bind_int64(s, 1, user_id);
    store_bind_text(s, 2, server);
    int rc = store_step(st, s), err;
    if (rc == STORE_ROW)
        err = settings_row(s, 0, out);
    else
        err = rc == STORE_DONE ? ERR_NOTFOUND : store_rc_err(rc);
    store_done(s);
    return err;
}

int store_settings_put(struct store *st, int64_t user_id, const char *server,
                       const struct store_settings *v, struct err_info *ei)
{
    if (server == NULL || *server == '\0' || strlen(server) > STORE_SERVER_MAX)
        return err_info_set(ei, ERR_INVAL, 0, 0, "a server name has 1 to %d characters",
                            STORE_SERVER_MAX);
    if (v->discovery[0] && strcmp(v->discovery, "static") != 0 &&
        strcmp(v->discovery, "hierarchical") != 0 && strcmp(v->discovery, "search") != 0)
        return err_info_set(ei, ERR_INVAL, 0, 0,
                            "discovery mode \"%.20s\" is not static, hierarchical or search",
                            v->discovery);
    char *tools = NULL;
    if (v->tools != NULL) {
        size_t i;
        json_t *t;
        if (!json_is_array(v->tools) || json_array_size(v->tools) > STORE_SETTINGS_TOOLS_MAX)
            return err_info_set(ei, ERR_INVAL, 0, 0, "the selection is a list of at most %d tools",
                                STORE_SETTINGS_TOOLS_MAX);
        json_array_foreach(v->tools, i, t) if (!json_is_string(t)) return err_info_set(
            ei, ERR_INVAL, 0, 0, "selected tool %zu is not a name", i + 1);
        if ((tools = json_dumps(v->tools, JSON_COMPACT)) == NULL)
            return ERR_NOMEM;
    }
    struct store_stmt *s = store_stmt(
        st, "INSERT INTO user_settings (user_id, server, discovery, tools, updated_at) "
            "SELECT id, CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT) "
            "FROM users WHERE id = ? ON CONFLICT (user_id, server) DO UPDATE SET "
            "discovery = excluded.discovery, tools = excluded.tools, "
            "updated_at = excluded.updated_at");
    int err = ERR_IO;
    if (s != NULL) {
        store_bind_text(s, 1, server);
        store_bind_text(s, 2, v->discovery);
        if (tools)
            store_bind_text(s, 3, tools);
        else
            store_bind_text(s, 3, NULL);
        store_bind_int64(s, 4, store_now());
        store_bind_int64(s, 5, user_id);
        err = store_note_change(st, store_exec_change(st, s, "settings put"));
    }
    free(tools);
    return err;
}

int store_settings_list(struct store *st, int64_t user_id,
                        int (*cb)(const char *server, const struct store_settings *s, void *arg),
                        void *arg)
{
    struct store_stmt *s = store_stmt(st, "SELECT server, discovery, tools, updated_at "
                                          "FROM user_settings WHERE user_id = ? ORDER BY server");
    if (s == NULL)
        return ERR_IO;
    store_bind_int64(s, 1, user_id);
    int rc, ret = 0;
    while (ret == 0 && (rc = store_step(st, s)) == STORE_ROW) {
        char server[STORE_SERVER_MAX + 1];
        struct store_settings v;
        store_col_text(s, 0, server, sizeof(server));
        if ((ret = settings_row(s, 1, &v)) != 0)
            break;
        ret = cb(server, &v, arg);
        store_settings_release(&v);
    }
    store_done(s);
    return ret;
}

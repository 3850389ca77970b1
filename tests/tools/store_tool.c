/*
 * A test helper that edits a Gatehouse store directly, for the integration tests that need
 * users and per-user clients before the `gatehouse user|client|revoke` commands exist:
 *   gh_store_tool DB user-add NAME PASSWORD
 *   gh_store_tool DB user-disable NAME
 *   gh_store_tool DB revoke-user NAME
 *   gh_store_tool DB client-user NAME      prints "<client_id> <secret>"
 * Not installed; never part of the daemon.
 */
#include "core/err.h"
#include "core/rand.h"
#include "store/store.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static int fail(const char *what, int err)
{
    fprintf(stderr, "gh_store_tool: %s: %s\n", what, err_str(err));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: gh_store_tool DB user-add|user-disable|revoke-user|client-user "
                        "NAME [PASSWORD]\n");
        return 2;
    }
    core_init();
    struct store *st = NULL;
    struct err_info ei = {0};
    int err = store_open(argv[1], &st, &ei);
    if (err)
        return fail(ei.msg, err);
    const char *cmd = argv[2], *name = argv[3];
    struct store_user u;
    int rc = 0;
    if (strcmp(cmd, "user-add") == 0) {
        err = store_user_add(st, name, "", argc > 4 ? argv[4] : NULL, false, &u, &ei);
        rc = err ? fail(ei.msg[0] ? ei.msg : "user-add", err) : 0;
    } else if ((err = store_user_find(st, name, &u)) != 0) {
        rc = fail(name, err);
    } else if (strcmp(cmd, "user-disable") == 0) {
        rc = (err = store_user_set_disabled(st, u.id, true)) ? fail(cmd, err) : 0;
    } else if (strcmp(cmd, "revoke-user") == 0) {
        rc = (err = store_revoke_user(st, u.id)) ? fail(cmd, err) : 0;
    } else if (strcmp(cmd, "client-user") == 0) {
        struct store_client c = {0};
        char id[40] = "ghu_", secret[64];
        rand_token(id + 4, sizeof(id) - 4, 12);
        rand_token(secret, sizeof(secret), 32);
        snprintf(c.client_id, sizeof(c.client_id), "%s", id);
        c.kind = STORE_CLIENT_USER;
        c.user_id = u.id;
        c.confidential = true;
        c.created_at = (int64_t)time(NULL);
        c.metadata =
            json_pack("{s:s, s:[s]}", "client_name", name, "grant_types", "client_credentials");
        err = store_client_put(st, &c, secret);
        json_decref(c.metadata);
        if (err)
            rc = fail(cmd, err);
        else
            printf("%s %s\n", id, secret);
    } else {
        rc = fail(cmd, ERR_INVAL);
    }
    store_close(st);
    return rc;
}

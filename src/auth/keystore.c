/*
 * The keyring's side that talks to the store: rotation (generate, seal, store as current; the
 * store retires the previous key in the same transaction) and loading the keyring from the rows.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509.h>
#include <sodium.h>

#include "auth/auth-int.h"

int auth_key_rotate(struct store *st, const unsigned char master[AUTH_MASTER_KEY_LEN],
                    const char *alg, char kid_out[64], struct err_info *ei)
{
    enum auth_alg a;
    EVP_PKEY *pk = NULL;
    struct store_key k = {0};
    if (auth_alg_parse(alg, &a) != 0 || (a != AUTH_ALG_ES256 && a != AUTH_ALG_EDDSA))
        return err_info_set(ei, ERR_INVAL, 0, 0,
                            "signing algorithm \"%s\" is not supported (ES256 or EdDSA)", alg);
    int rc = auth_key_generate(a, &pk);
    if (rc == 0)
        rc = auth_key_to_store(pk, a, master, &k);
    if (rc) {
        err_info_set(ei, rc, 0, 0, "cannot generate an %s key: %s", alg, err_str(rc));
        goto out;
    }
    rc = store_key_add(st, &k);
    if (rc) {
        err_info_set(ei, rc, 0, 0, "cannot store the new signing key: %s", err_str(rc));
        goto out;
    }
    memcpy(kid_out, k.kid, sizeof(k.kid));
out:
    store_key_release(&k);
    EVP_PKEY_free(pk);
    return rc;
}

struct rows {
    struct store_key *v;
    size_t n, cap;
};

static int collect_cb(const struct store_key *k, void *arg)
{
    struct rows *r = arg;
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 8;
        struct store_key *v = realloc(r->v, cap * sizeof(*v));
        if (!v)
            return ERR_NOMEM;
        r->v = v;
        r->cap = cap;
    }
    struct store_key *c = &r->v[r->n];
    *c = *k;
    c->sealed = malloc(k->sealed_len + 1);
    c->public_jwk = NULL; /* recomputed from the private key, never trusted from the row */
    if (!c->sealed)
        return ERR_NOMEM;
    memcpy(c->sealed, k->sealed, k->sealed_len);
    r->n++;
    return 0;
}

int auth_keyring_load(struct store *st, const unsigned char master[AUTH_MASTER_KEY_LEN],
                      uint32_t verify_grace_s, struct auth_keyring **out, struct err_info *ei)
{
    struct rows r = {0};
    int rc = store_key_list(st, collect_cb, &r);
    if (rc)
        err_info_set(ei, rc, 0, 0, "cannot list the signing keys: %s", err_str(rc));
    else
        rc = auth_keyring_build(r.v, r.n, master, verify_grace_s, (int64_t)time(NULL), out, ei);
    for (size_t i = 0; i < r.n; i++)
        store_key_release(&r.v[i]);
    free(r.v);
    return rc;
}

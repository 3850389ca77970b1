/*
 * Signing keys in memory. A key's private half is serialised (DER) and sealed with the master
 * key into a store row, with its public JWK; a keyring is an immutable, reference-counted
 * snapshot of the usable keys built from such rows, rebuilt (never edited) when keys change.
 * Keys read back are checked against their kid, so a row whose sealed key and kid disagree is
 * refused rather than trusted. No store access here: see keystore.c.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509.h>
#include <sodium.h>

#include "auth/auth-int.h"

int auth_key_to_store(EVP_PKEY *pk, enum auth_alg alg,
                      const unsigned char master[AUTH_MASTER_KEY_LEN], struct store_key *out)
{
    struct store_key k = {0};
    unsigned char *der = NULL;
    json_t *jwk = NULL;
    int rc = auth_jwk_public(pk, alg, &jwk, k.kid);
    if (rc)
        return rc;
    int n = i2d_PrivateKey(pk, &der);
    if (n <= 0) {
        rc = ERR_INTERNAL;
        goto out;
    }
    rc = auth_seal(master, der, (size_t)n, &k.sealed, &k.sealed_len);
    if (rc)
        goto out;
    k.public_jwk = json_dumps(jwk, JSON_COMPACT | JSON_SORT_KEYS);
    if (!k.public_jwk) {
        rc = ERR_NOMEM;
        goto out;
    }
    snprintf(k.alg, sizeof(k.alg), "%s", auth_alg_name(alg));
    k.created_at = (int64_t)time(NULL);
    *out = k;
    memset(&k, 0, sizeof(k));
out:
    if (der) {
        sodium_memzero(der, (size_t)n);
        OPENSSL_free(der);
    }
    free(k.sealed);
    json_decref(jwk);
    return rc;
}

static void keyring_free(struct auth_keyring *kr)
{
    for (size_t i = 0; i < kr->n; i++) {
        EVP_PKEY_free(kr->keys[i].pkey);
        json_decref(kr->keys[i].jwk);
    }
    free(kr->keys);
    free(kr);
}

/* Unseal one row into key and check that it is the key its kid names. */
static int key_load(const struct store_key *row, const unsigned char master[AUTH_MASTER_KEY_LEN],
                    struct auth_key *key, struct err_info *ei)
{
    unsigned char *der = NULL;
    size_t len = 0;
    EVP_PKEY *pk = NULL;
    json_t *jwk = NULL;
    char kid[64];
    enum auth_alg alg;
    int rc;
    if (auth_alg_parse(row->alg, &alg) != 0 || (alg != AUTH_ALG_ES256 && alg != AUTH_ALG_EDDSA))
        return err_info_set(ei, ERR_INVAL, 0, 0, "signing key %s has an unknown alg \"%s\"",
                            row->kid, row->alg);
    rc = auth_unseal(master, row->sealed, row->sealed_len, &der, &len);
    if (rc)
        return err_info_set(ei, rc, 0, 0,
                            "signing key %s cannot be unsealed: wrong master key or tampered row",
                            row->kid);
    const unsigned char *p = der;
    pk = d2i_AutoPrivateKey(NULL, &p, (long)len);
    sodium_memzero(der, len);
    free(der);
    if (!pk)
        return err_info_set(ei, ERR_PARSE, 0, 0, "signing key %s is not a private key", row->kid);
    rc = auth_jwk_public(pk, alg, &jwk, kid);
    if (rc == 0 && strcmp(kid, row->kid) != 0)
        rc = ERR_INVAL;
    if (rc) {
        EVP_PKEY_free(pk);
        json_decref(jwk);
        return err_info_set(ei, rc, 0, 0, "signing key %s does not match its kid or alg %s",
                            row->kid, row->alg);
    }
    memcpy(key->kid, kid, sizeof(kid));
    key->alg = alg;
    key->pkey = pk;
    key->jwk = jwk;
    key->retired_at = row->retired_at;
    return 0;
}

int auth_keyring_build(const struct store_key *rows, size_t n,
                       const unsigned char master[AUTH_MASTER_KEY_LEN], uint32_t verify_grace_s,
                       int64_t now, struct auth_keyring **out, struct err_info *ei)
{
    struct auth_keyring *kr = calloc(1, sizeof(*kr));
    if (!kr || !(kr->keys = calloc(n + 1, sizeof(*kr->keys)))) {
        free(kr);
        return ERR_NOMEM;
    }
    atomic_init(&kr->refcnt, 1);
    for (size_t i = 0; i < n; i++) {
        if (rows[i].retired_at != 0 && rows[i].retired_at + (int64_t)verify_grace_s < now)
            continue; /* every token it signed has expired */
        int rc = key_load(&rows[i], master, &kr->keys[kr->n], ei);
        if (rc) {
            keyring_free(kr);
            return rc;
        }
        kr->n++;
    }
    for (size_t i = 0; i < kr->n; i++)
        if (kr->keys[i].retired_at == 0)
            kr->current = &kr->keys[i];
    *out = kr;
    return 0;
}

struct auth_keyring *auth_keyring_ref(struct auth_keyring *kr)
{
    atomic_fetch_add_explicit(&kr->refcnt, 1, memory_order_relaxed);
    return kr;
}

void auth_keyring_unref(struct auth_keyring *kr)
{
    if (kr && atomic_fetch_sub_explicit(&kr->refcnt, 1, memory_order_acq_rel) == 1)
        keyring_free(kr);
}

json_t *auth_keyring_jwks(const struct auth_keyring *kr)
{
    json_t *keys = json_array();
    for (size_t i = 0; keys && i < kr->n; i++)
        json_array_append_new(keys, json_deep_copy(kr->keys[i].jwk)); /* the caller's to edit */
    return keys ? json_pack("{s:o}", "keys", keys) : NULL;
}

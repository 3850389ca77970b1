/*
 * The master key and sealing. The master key is 32 random bytes in store.key_file (base64url
 * text when we create it; raw bytes are accepted too), readable by the gateway's user only.
 * Sealed blobs are: a version byte, a 24-byte random nonce, then the XChaCha20-Poly1305
 * ciphertext with its tag; the version byte is authenticated as associated data, so a blob
 * cannot be replayed under another format later.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "auth/auth.h"
#include "core/rand.h"

#define SEAL_VERSION 1
#define SEAL_NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define SEAL_TAG crypto_aead_xchacha20poly1305_ietf_ABYTES
#define SEAL_OVERHEAD (1 + SEAL_NONCE + SEAL_TAG)
#define KEY_FILE_MAX 128 /* raw 32 bytes or 43 base64url characters and a newline */

static int master_key_create(const char *path, unsigned char key[AUTH_MASTER_KEY_LEN],
                             struct err_info *ei)
{
    unsigned char k[AUTH_MASTER_KEY_LEN];
    char text[64];
    int rc = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno == EEXIST ? ERR_EXISTS
                               : err_info_set(ei, ERR_IO, 0, 0, "cannot create the key file %s: %s",
                                              path, strerror(errno));
    rand_bytes(k, sizeof(k));
    b64url_encode(text, sizeof(text), k, sizeof(k));
    size_t n = strlen(text);
    text[n++] = '\n';
    if (write(fd, text, n) != (ssize_t)n || fsync(fd) != 0) {
        rc = err_info_set(ei, ERR_IO, 0, 0, "cannot write the key file %s: %s", path,
                          strerror(errno));
        unlink(path);
        goto out;
    }
    memcpy(key, k, sizeof(k));
out:
    close(fd);
    sodium_memzero(k, sizeof(k));
    sodium_memzero(text, sizeof(text));
    return rc;
}

int auth_master_key_load(const char *path, bool create, unsigned char key[AUTH_MASTER_KEY_LEN],
                         struct err_info *ei)
{
    unsigned char buf[KEY_FILE_MAX + 1];
    struct stat sb;
    ssize_t n = 0;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT && create) {
        rc = master_key_create(path, key, ei);
        if (rc != ERR_EXISTS) /* created, or failed; EEXIST: another process won the race */
            return rc;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    }
    if (fd < 0)
        return err_info_set(ei, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, 0, 0,
                            "cannot open the key file %s: %s", path, strerror(errno));
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        rc = err_info_set(ei, ERR_INVAL, 0, 0, "the key file %s is not a regular file", path);
        goto out;
    }
    if (sb.st_mode & 077) {
        rc = err_info_set(ei, ERR_DENIED, 0, 0,
                          "the key file %s has mode %04o: readable by group or others; "
                          "chmod 600 it",
                          path, (unsigned)(sb.st_mode & 07777));
        goto out;
    }
    n = read(fd, buf, sizeof(buf));
    if (n < 0) {
        rc = err_info_set(ei, ERR_IO, 0, 0, "cannot read the key file %s: %s", path,
                          strerror(errno));
        goto out;
    }
    if (n == AUTH_MASTER_KEY_LEN) {
        memcpy(key, buf, AUTH_MASTER_KEY_LEN);
        goto out;
    }
    size_t len = (size_t)n;
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    unsigned char k[AUTH_MASTER_KEY_LEN + 1];
    if (b64url_decode(k, sizeof(k), (const char *)buf, len) != AUTH_MASTER_KEY_LEN) {
        rc = err_info_set(ei, ERR_PARSE, 0, 0,
                          "the key file %s holds neither 32 raw bytes nor 32 bytes in base64url",
                          path);
    } else {
        memcpy(key, k, AUTH_MASTER_KEY_LEN);
    }
    sodium_memzero(k, sizeof(k));
out:
    sodium_memzero(buf, sizeof(buf));
    close(fd);
    return rc;
}

#define KEY_CHECK_LABEL "gatehouse master key check v1"
#define KEY_CHECK_PREFIX "hmac-sha256:"

int auth_master_key_verify(struct store *st, const unsigned char key[AUTH_MASTER_KEY_LEN],
                           const char *key_file, struct err_info *ei)
{
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    char kcv[STORE_KEY_CHECK_MAX], found[STORE_KEY_CHECK_MAX];
    crypto_auth_hmacsha256(mac, (const unsigned char *)KEY_CHECK_LABEL, sizeof(KEY_CHECK_LABEL) - 1,
                           key);
    memcpy(kcv, KEY_CHECK_PREFIX, sizeof(KEY_CHECK_PREFIX) - 1);
    sodium_bin2hex(kcv + sizeof(KEY_CHECK_PREFIX) - 1, sizeof(kcv) - sizeof(KEY_CHECK_PREFIX) + 1,
                   mac, sizeof(mac));
    int err = store_key_check(st, kcv, found);
    if (err)
        return err_info_set(ei, err, 0, 0,
                            "cannot read the master key's check value from the %s store: %s",
                            store_backend_name(st), err_str(err));
    if (strcmp(found, kcv) != 0)
        return err_info_set(ei, ERR_DENIED, 0, 0,
                            "the master key in %s is not the one this %s store was first used with "
                            "(their check values differ): every replica on one store needs the "
                            "same key file; copy it from a replica that runs, or use the store "
                            "that goes with this key",
                            key_file ? key_file : "store.key_file", store_backend_name(st));
    return 0;
}

int auth_seal(const unsigned char key[AUTH_MASTER_KEY_LEN], const void *in, size_t n,
              unsigned char **out, size_t *out_len)
{
    unsigned char *b = malloc(n + SEAL_OVERHEAD);
    if (!b)
        return ERR_NOMEM;
    b[0] = SEAL_VERSION;
    randombytes_buf(b + 1, SEAL_NONCE);
    unsigned long long clen;
    crypto_aead_xchacha20poly1305_ietf_encrypt(b + 1 + SEAL_NONCE, &clen, in, n, b, 1, NULL, b + 1,
                                               key);
    *out = b;
    *out_len = 1 + SEAL_NONCE + (size_t)clen;
    return 0;
}

int auth_unseal(const unsigned char key[AUTH_MASTER_KEY_LEN], const unsigned char *in, size_t n,
                unsigned char **out, size_t *out_len)
{
    if (n < SEAL_OVERHEAD || in[0] != SEAL_VERSION)
        return ERR_DENIED;
    size_t clen = n - 1 - SEAL_NONCE;
    unsigned char *b = malloc(clen - SEAL_TAG + 1); /* +1: never malloc(0) */
    if (!b)
        return ERR_NOMEM;
    unsigned long long mlen;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(b, &mlen, NULL, in + 1 + SEAL_NONCE, clen, in, 1,
                                                   in + 1, key) != 0) {
        free(b);
        return ERR_DENIED;
    }
    *out = b;
    *out_len = (size_t)mlen;
    return 0;
}

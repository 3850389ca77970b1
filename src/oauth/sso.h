/*
 * Single sign-on: Gatehouse as an OpenID Connect relying party to the organisation's identity
 * providers (auth.login.providers). The authorization server's login page sends the browser to
 * sso_begin(); the provider sends it back to <issuer>/oauth/sso/callback, where sso_finish()
 * exchanges the code (PKCE S256 + nonce + state, client_secret_basic when a secret is
 * configured), verifies the id_token (signature against the provider's JWKS, issuer, audience,
 * authorized party, expiry, nonce), maps the claims to a user (just-in-time provisioning when
 * allowed) and the groups to teams.
 *
 * Internal to the oauth module. A struct sso belongs to one worker thread (its fetcher and store
 * connection); provider metadata (discovery document, JWKS) is cached process-wide.
 */
#ifndef GH_OAUTH_SSO_H
#define GH_OAUTH_SSO_H

#include <stdbool.h>

#include <uv.h>

#include "config/config.h"
#include "store/store.h"

struct sso;
struct sso_op;

/* The path of the callback under the issuer, registered at every provider. */
#define SSO_CALLBACK_PATH "/oauth/sso/callback"

/* cfg: borrowed for the lifetime of the sso (the snapshot the oauth module started with);
   issuer: the effective issuer URL (copied); st: this thread's store connection. Reads each
   provider's client_secret_file now: a missing or unreadable file is ERR_IO with ei naming it. */
int sso_new(uv_loop_t *loop, const struct config *cfg, const char *issuer, struct store *st,
            struct sso **out, struct err_info *ei);
void sso_free(struct sso *s);

/* The configured provider called `name`, or NULL. */
const struct config_idp *sso_provider(const struct sso *s, const char *name);

/* err 0: location is the provider's authorization URL to redirect the browser to. Otherwise why
   is a sentence for the user (the provider is unreachable, its discovery document is bad). */
typedef void (*sso_begin_cb)(void *arg, int err, const char *location, const char *why);
/* Start a login at `idp`. return_to (at most 512 bytes) is handed back by sso_finish: the
   caller's reference to what the login was for (a pending authorization). browser is a random
   value the caller also gives the browser (a cookie): only its hash is kept with the login, and
   sso_finish refuses an answer that does not come back with it (login CSRF). When the provider's
   discovery document is cached the callback runs before sso_begin returns (and *op is NULL);
   otherwise after a fetch, and *op can cancel it until then. */
int sso_begin(struct sso *s, const struct config_idp *idp, const char *return_to,
              const char *browser, sso_begin_cb cb, void *arg, struct sso_op **op);

/* err 0: u is the logged-in user (created or updated), return_to what sso_begin was given.
   Otherwise why names the cause (state unknown or expired, the provider refused, the id_token
   did not verify and why, the user is disabled or not provisioned). */
typedef void (*sso_finish_cb)(void *arg, int err, const struct store_user *u, const char *return_to,
                              const char *why);
/* Finish at the callback with its query parameters (any may be NULL) and the browser value
   sso_begin was given, as the browser presents it (NULL when it has none). The state is taken
   once: a replayed callback is refused. The callback may run before this returns (*op NULL). */
int sso_finish(struct sso *s, const char *state, const char *code, const char *iss,
               const char *error, const char *error_description, const char *browser,
               sso_finish_cb cb, void *arg, struct sso_op **op);

/* Cancel an operation: its callback will not run. */
void sso_op_cancel(struct sso_op *op);

#endif

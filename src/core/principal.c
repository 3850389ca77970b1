/*
 * The principal value (principal.h): the few operations every layer needs on it.
 */
#include "core/principal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "core/rand.h"

void principal_init_anonymous(struct principal *p)
{
    memset(p, 0, sizeof(*p));
    p->kind = PRINCIPAL_ANONYMOUS;
}

int64_t principal_user_id(const struct principal *p)
{
    return p != NULL && p->kind == PRINCIPAL_USER && p->id > 0 ? p->id : 0;
}

const char *principal_key(const struct principal *p, char *key, size_t cap)
{
    if (p == NULL || p->kind == PRINCIPAL_ANONYMOUS)
        snprintf(key, cap, "%s", "");
    else
        snprintf(key, cap, "%c:%lld", p->kind == PRINCIPAL_USER ? 'u' : 's', (long long)p->id);
    return key;
}

void principal_set_session(struct principal *p, const char *id, size_t len)
{
    if (len == 0) {
        p->session[0] = '\0';
        return;
    }
    unsigned char h[16];
    crypto_generichash(h, sizeof(h), (const unsigned char *)id, len, NULL, 0);
    b64url_encode(p->session, sizeof(p->session), h, sizeof(h));
}

const char *principal_address(const struct principal *p, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (p->addr_len == 0)
        return buf;
    const struct sockaddr *sa = (const struct sockaddr *)&p->addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)cap);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)cap);
    return buf;
}

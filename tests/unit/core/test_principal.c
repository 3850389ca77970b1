/* The principal value: its binding key (whose format sealed session ids carry), the user id that
   per-user settings key on, the session fingerprint and the source address. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>

#include "core/principal.h"
#include "test.h"

static void test_key_and_user(void)
{
    struct principal p;
    char key[PRINCIPAL_KEY_MAX + 1];
    principal_init_anonymous(&p);
    CHECK_INT(p.kind, PRINCIPAL_ANONYMOUS);
    CHECK_STR(principal_key(&p, key, sizeof(key)), "");
    CHECK_INT(principal_user_id(&p), 0);
    CHECK_INT(principal_user_id(NULL), 0);
    p.kind = PRINCIPAL_USER;
    p.id = 9223372036854775807LL;
    CHECK_STR(principal_key(&p, key, sizeof(key)), "u:9223372036854775807");
    CHECK_INT(principal_user_id(&p), 9223372036854775807LL);
    p.kind = PRINCIPAL_SERVICE;
    p.id = 7;
    CHECK_STR(principal_key(&p, key, sizeof(key)), "s:7");
    CHECK_INT(principal_user_id(&p), 0); /* a service account has no per-user settings */
    p.kind = PRINCIPAL_USER;
    p.id = 0;
    CHECK_INT(principal_user_id(&p), 0);
}

static void test_session(void)
{
    struct principal p, q;
    principal_init_anonymous(&p);
    principal_init_anonymous(&q);
    CHECK_STR(p.session, "");
    principal_set_session(&p, "gs1.abc", 7);
    CHECK_INT(strlen(p.session), PRINCIPAL_SESSION_LEN);
    CHECK(strstr(p.session, "abc") == NULL); /* a fingerprint, not the id */
    principal_set_session(&q, "gs1.abc", 7);
    CHECK_STR(p.session, q.session);
    principal_set_session(&q, "gs1.abd", 7);
    CHECK(strcmp(p.session, q.session) != 0);
    principal_set_session(&q, "", 0);
    CHECK_STR(q.session, "");
}

static void test_address(void)
{
    struct principal p;
    char buf[64];
    principal_init_anonymous(&p);
    CHECK_STR(principal_address(&p, buf, sizeof(buf)), "");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(80)};
    inet_pton(AF_INET, "192.0.2.1", &a.sin_addr);
    memcpy(&p.addr, &a, sizeof(a));
    p.addr_len = sizeof(a);
    CHECK_STR(principal_address(&p, buf, sizeof(buf)), "192.0.2.1");
    struct sockaddr_in6 b = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "2001:db8::1", &b.sin6_addr);
    memcpy(&p.addr, &b, sizeof(b));
    p.addr_len = sizeof(b);
    CHECK_STR(principal_address(&p, buf, sizeof(buf)), "2001:db8::1");
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    static const struct test_case cases[] = {TEST(test_key_and_user), TEST(test_session),
                                             TEST(test_address)};
    return test_run_all(cases, sizeof(cases) / sizeof(cases[0]));
}

/*
 * Error codes shared by every Gatehouse module. Functions return 0 on success or one of the
 * negative codes below; err_str() names them. Parsers of untrusted input also fill an optional
 * struct err_info with a human-readable message and a location, and that message is what a user
 * or a client sees.
 */
#ifndef GH_CORE_ERR_H
#define GH_CORE_ERR_H

#include <stddef.h>

enum {
    ERR_OK = 0,
    ERR_NOMEM = -1,       /* allocation failed */
    ERR_INVAL = -2,       /* invalid argument or input */
    ERR_IO = -3,          /* system call or I/O failure */
    ERR_PARSE = -4,       /* malformed input */
    ERR_LIMIT = -5,       /* a configured bound was reached */
    ERR_NOTFOUND = -6,    /* no such object */
    ERR_TIMEOUT = -7,     /* a deadline passed */
    ERR_UNAVAILABLE = -8, /* the peer or resource is down */
    ERR_PROTOCOL = -9,    /* the peer broke the protocol */
    ERR_EXISTS = -10,     /* already exists */
    ERR_DENIED = -11,     /* refused by policy */
    ERR_CANCELLED = -12,  /* cancelled by the caller */
    ERR_CLOSED = -13,     /* the object was closed */
    ERR_INTERNAL = -14,   /* a bug: an invariant did not hold */
};

/* A static, human-readable name for an error code. Never NULL. */
const char *err_str(int err);

/*
 * Where and why untrusted input was refused. `msg` is complete and safe to show to the sender;
 * `line`/`column` are 1-based, 0 when not applicable; `where` is a file name or JSON pointer.
 */
struct err_info {
    char msg[512];
    char where[256];
    int line;
    int column;
};

/* Set ei (if not NULL) to the formatted message and location; returns `err` for tail calls. */
int err_info_set(struct err_info *ei, int err, int line, int column, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Always-on assertion for invariants whose breach would be a security hole: logs and aborts. */
#define GH_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            gh_assert_fail(#cond, __FILE__, __LINE__);                                             \
    } while (0)
#define GH_UNREACHABLE() gh_assert_fail("unreachable", __FILE__, __LINE__)
void gh_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

#endif

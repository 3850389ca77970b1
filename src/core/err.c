/* Error names and the err_info helper; see err.h. */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

const char *err_str(int err)
{
    switch (err) {
    case ERR_OK:
        return "success";
    case ERR_NOMEM:
        return "out of memory";
    case ERR_INVAL:
        return "invalid argument";
    case ERR_IO:
        return "I/O error";
    case ERR_PARSE:
        return "malformed input";
    case ERR_LIMIT:
        return "limit reached";
    case ERR_NOTFOUND:
        return "not found";
    case ERR_TIMEOUT:
        return "timed out";
    case ERR_UNAVAILABLE:
        return "unavailable";
    case ERR_PROTOCOL:
        return "protocol error";
    case ERR_EXISTS:
        return "already exists";
    case ERR_DENIED:
        return "denied";
    case ERR_CANCELLED:
        return "cancelled";
    case ERR_CLOSED:
        return "closed";
    case ERR_INTERNAL:
        return "internal error";
    }
    return "unknown error";
}

int err_info_set(struct err_info *ei, int err, int line, int column, const char *fmt, ...)
{
    if (ei != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ei->msg, sizeof(ei->msg), fmt, ap);
        va_end(ap);
        ei->line = line;
        ei->column = column;
    }
    return err;
}

void gh_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr,
            "{\"level\":\"fatal\",\"event\":\"assertion\",\"expr\":\"%s\",\"at\":\"%s:%d\"}\n",
            expr, file, line);
    abort();
}

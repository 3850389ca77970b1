/* HTTP reason phrases; see http_reason.h. */
#include "core/http_reason.h"

const char *http_reason(int status)
{
    static const char *const reasons[600] = {[200] = "OK",
                                             [201] = "Created",
                                             [202] = "Accepted",
                                             [204] = "No Content",
                                             [302] = "Found",
                                             [303] = "See Other",
                                             [400] = "Bad Request",
                                             [401] = "Unauthorized",
                                             [403] = "Forbidden",
                                             [404] = "Not Found",
                                             [405] = "Method Not Allowed",
                                             [406] = "Not Acceptable",
                                             [409] = "Conflict",
                                             [413] = "Payload Too Large",
                                             [415] = "Unsupported Media Type",
                                             [429] = "Too Many Requests",
                                             [500] = "Internal Server Error",
                                             [502] = "Bad Gateway",
                                             [503] = "Service Unavailable",
                                             [504] = "Gateway Timeout"};
    return status > 0 && status < 600 && reasons[status] ? reasons[status] : "Status";
}

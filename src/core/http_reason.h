/*
 * HTTP reason phrases, for the status lines of HTTP/1.1 responses (h2o sends what it is given).
 * Shared by every module that answers HTTP requests.
 */
#ifndef GH_CORE_HTTP_REASON_H
#define GH_CORE_HTTP_REASON_H

/* The standard phrase of `status`, or "Status" for a code without one here. Never NULL. */
const char *http_reason(int status);

#endif

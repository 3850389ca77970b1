/*
 * Fuzz dynamic client registration bodies (RFC 7591), straight from anyone on the network:
 * oauth_register_parse (JSON, then the client metadata rules). Properties:
 * - a refusal names its cause (a non-empty, terminated message);
 * - what is accepted is normalised: every redirect URI passes the redirect-URI rules, the
 *   authentication method is one of three, the grant types are the two that can be registered,
 *   and the normalised metadata, checked again, is accepted unchanged (it round-trips).
 */
#include "client_props.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *m = NULL;
    struct err_info ei;
    memset(&ei, 0, sizeof(ei));
    if (oauth_register_parse((const char *)data, size, &m, &ei) == 0) {
        check_accepted(m, false);
        json_decref(m);
    } else if (memchr(ei.msg, '\0', sizeof(ei.msg)) == NULL || ei.msg[0] == '\0' || m != NULL) {
        abort();
    }
    return 0;
}

/*
 * Fuzz Client ID Metadata Documents, which Gatehouse fetches from any https URL a client names:
 * oauth_cimd_document_check against a fixed client_id URL. Properties: a refusal names its
 * cause; an accepted document had exactly that client_id, is a public client (a document cannot
 * carry a shared secret), and its normalised metadata round-trips (client_props.h).
 */
#include "client_props.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CIMD_URL "https://app.example/oauth/client.json"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *m = NULL;
    struct err_info ei;
    memset(&ei, 0, sizeof(ei));
    if (oauth_cimd_document_check((const char *)data, size, CIMD_URL, &m, &ei) == 0) {
        json_error_t je;
        json_t *doc = json_loadb((const char *)data, size, 0, &je);
        const char *cid = json_string_value(json_object_get(doc, "client_id"));
        if (cid == NULL || strcmp(cid, CIMD_URL) != 0)
            abort();
        json_decref(doc);
        check_accepted(m, true);
        json_decref(m);
    } else if (memchr(ei.msg, '\0', sizeof(ei.msg)) == NULL || ei.msg[0] == '\0' || m != NULL) {
        abort();
    }
    return 0;
}

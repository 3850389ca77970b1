/*
 * Private to src/openapi: helpers shared by the loader, the resolver, the catalog builder and
 * the request builder. Nothing here is part of the module's contract.
 */
#ifndef GH_OPENAPI_INT_H
#define GH_OPENAPI_INT_H

#include "openapi/openapi.h"

/* strdup that tolerates NULL (returns NULL) */
char *oa_strdup(const char *s);
/* sprintf into a new heap string; NULL on allocation failure */
char *oa_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Append one JSON-pointer token (escaping ~ and /) to the pointer in buf (cap bytes). */
void oa_ptr_push(char *buf, size_t cap, const char *token);
/* The value at JSON pointer `ptr` ("" is the root) within root, or NULL. */
json_t *oa_ptr_get(json_t *root, const char *ptr);

/* Read a whole file (bounded by OPENAPI_MAX_DOC_BYTES), NUL-terminated. */
int oa_read_file(const char *path, char **data, size_t *len, struct err_info *ei);

/* Fill ei with err, message and the JSON pointer `where`. Returns err. */
int oa_fail(struct err_info *ei, int err, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- $ref resolution (resolve.c) ---- */

struct oa_resolver;
struct oa_resolver *oa_resolver_new(json_t *root);
void oa_resolver_free(struct oa_resolver *r);
/*
 * Fully resolve a schema found at `ptr`: every local $ref inlined, allOf merged, cycles cut (see
 * docs/openapi.md). Returns a new reference in *out. The result may share subtrees with other
 * results: treat it as read-only.
 */
int oa_resolve_schema(struct oa_resolver *r, json_t *schema, const char *ptr, json_t **out,
                      struct err_info *ei);
/*
 * Follow a chain of $ref on a non-schema object (parameter, requestBody, response, path item):
 * returns the target (borrowed) and writes its pointer into ptr (cap bytes).
 */
int oa_follow_ref(struct oa_resolver *r, json_t *obj, char *ptr, size_t cap, json_t **out,
                  struct err_info *ei);

/* ---- JSONPath (jsonpath.c) ---- */

/* True when the path is `$` alone (it selects the document root). */
bool oa_jsonpath_is_root(const struct openapi_jsonpath *jp);

/* ---- naming (catalog.c) ---- */

/* The first sentence of s: up to the first ". " (or the end of a paragraph), whitespace
   collapsed; *trimmed tells whether anything was cut. A new string, NULL when out of memory. */
char *oa_first_sentence(const char *s, bool *trimmed);

/* snake_case an identifier into buf (cap bytes); returns the length. */
size_t oa_snake_case(const char *in, char *buf, size_t cap);
/* The first `nhex` hex digits of SHA-256(method " " path). */
void oa_short_hash(const char *method, const char *path, char *out, size_t nhex);

/* ---- editorial (editorial.c) ---- */

struct oa_override {
    char *key; /* operationId or "METHOD /path" */
    char *name;
    char *description;
    char **hide;
    size_t nhide;
    json_t *fixed;           /* object: argument/wire name -> value */
    json_t *response_fields; /* response.fields as written (checked when loaded), or NULL */
    bool used;
};

enum oa_rule_action { OA_RULE_INCLUDE, OA_RULE_EXCLUDE };

struct oa_rule {
    enum oa_rule_action action;
    bool force; /* include even if a heuristic would drop it */
    char *method;
    char *path; /* glob: * within a segment, ** across segments */
    char *tag;
    char *operation_id; /* glob */
};

struct openapi_editorial {
    struct openapi_heuristics h;
    bool default_exclude;
    struct oa_rule *rules;
    size_t nrules;
    struct oa_override *overrides;
    size_t noverrides;
};

bool oa_glob_match(const char *pat, const char *s);
/* Index of the first rule matching op, or -1. */
int oa_rules_match(const struct openapi_editorial *ed, const struct openapi_op *op);
/* The override for op (operationId first, then "METHOD /path"), or NULL. */
const struct oa_override *oa_override_find(const struct openapi_editorial *ed,
                                           const struct openapi_op *op);

#endif

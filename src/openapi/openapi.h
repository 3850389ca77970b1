/*
 * OpenAPI import: turns a REST API description (OpenAPI 3.0 / 3.1 or Swagger 2.0, JSON or YAML)
 * into a curated catalog of MCP tools, and turns a tool call back into the exact HTTP request the
 * API expects. Four stages, each its own object:
 *
 *   document  (openapi_doc)        load + normalise + resolve local $refs into one model
 *   editorial (openapi_editorial)  include/exclude rules, heuristics, overrides (data, not code)
 *   catalog   (openapi_catalog)    the tools: names, descriptions, inputSchema, annotations,
 *                                  token estimates, and the report of what was dropped and why
 *   request   (openapi_request)    one tool call -> method, URL, headers, body
 *
 * Documents and catalogs are immutable once built and reference-counted, so a configuration
 * snapshot can share them across worker threads; building a request only reads them.
 *
 * Every failure on untrusted input returns a negative ERR_* (src/core/err.h) and, when `ei` is not
 * NULL, fills it with a message for the user and `ei->where` with the JSON pointer (or file
 * position for YAML syntax errors) where the problem is.
 */
#ifndef GH_OPENAPI_H
#define GH_OPENAPI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/err.h"

/* ---- document model ------------------------------------------------------------------------ */

enum openapi_in {
    OPENAPI_IN_PATH,
    OPENAPI_IN_QUERY,
    OPENAPI_IN_HEADER,
    OPENAPI_IN_COOKIE,
    OPENAPI_IN_BODY,      /* one property of an object request body */
    OPENAPI_IN_BODY_WHOLE /* the whole request body (non-object or free-form bodies) */
};

enum openapi_style {
    OPENAPI_STYLE_FORM,
    OPENAPI_STYLE_SIMPLE,
    OPENAPI_STYLE_LABEL,
    OPENAPI_STYLE_MATRIX,
    OPENAPI_STYLE_SPACE_DELIMITED,
    OPENAPI_STYLE_PIPE_DELIMITED,
    OPENAPI_STYLE_DEEP_OBJECT
};

struct openapi_param {
    enum openapi_in in; /* PATH, QUERY, HEADER or COOKIE */
    char *name;
    char *description; /* may be NULL */
    bool required;
    bool deprecated;
    enum openapi_style style;
    bool explode;
    json_t *schema; /* resolved (no $ref), never NULL; shared, do not modify */
};

struct openapi_op {
    char *method;       /* upper case: GET, POST, ... */
    char *path;         /* as written in the document, e.g. /pets/{petId} */
    char *operation_id; /* may be NULL */
    char *summary;      /* may be NULL */
    char *description;  /* may be NULL */
    char **tags;
    size_t ntags;
    bool deprecated;
    bool internal; /* x-internal: true */
    struct openapi_param *params;
    size_t nparams;
    /* request body: media types in document order; the chosen one is body_media */
    char **body_media_types;
    size_t nbody_media_types;
    const char *body_media; /* points into body_media_types, NULL without a body */
    json_t *body_schema;    /* resolved schema of body_media, NULL without a body */
    bool body_required;
    /* success response (first 2xx, else "default"): media types and the JSON schema if any */
    char **response_media_types;
    size_t nresponse_media_types;
    json_t *response_schema; /* may be NULL */
    /* effective security requirements (operation's, else the document's): array of objects
     * {scheme name: [scopes]}; an empty array means "no authentication". Never NULL. */
    json_t *security;
    char *pointer; /* JSON pointer of the operation object, for messages */
};

enum openapi_scheme_type {
    OPENAPI_SCHEME_API_KEY,
    OPENAPI_SCHEME_HTTP, /* basic, bearer, ... (Swagger "basic" maps here) */
    OPENAPI_SCHEME_OAUTH2,
    OPENAPI_SCHEME_OPENID,
    OPENAPI_SCHEME_OTHER
};

struct openapi_security_scheme {
    char *name; /* key under components/securitySchemes or securityDefinitions */
    enum openapi_scheme_type type;
    enum openapi_in in; /* apiKey only: HEADER, QUERY or COOKIE */
    char *param_name;   /* apiKey only */
    char *http_scheme;  /* http only: "basic", "bearer", ... */
};

struct openapi_doc {
    int refs;
    char *version;     /* "2.0", "3.0.3", "3.1.0", ... */
    char *title;       /* info.title, may be NULL */
    char *api_version; /* info.version, may be NULL */
    char *server_url;  /* base URL without trailing slash; may be relative or "" */
    struct openapi_op *ops;
    size_t nops;
    struct openapi_security_scheme *schemes;
    size_t nschemes;
    json_t *root;    /* the raw document (after overlays) */
    char **warnings; /* what loading reported without failing (overlay actions that matched
                        nothing), for the operator's log and `openapi inspect` */
    size_t nwarnings;
};

/* Limits applied while loading untrusted documents. */
#define OPENAPI_MAX_DOC_BYTES (256u << 20) /* file size */
#define OPENAPI_MAX_DEPTH 200              /* nesting of the raw document and of resolved schemas */

/*
 * Load a document from a file (JSON if its first non-blank byte is '{', YAML otherwise), resolve
 * local $refs and build the model. `*out` gets a new reference (free with openapi_doc_unref).
 * Errors: ERR_IO (file), ERR_PARSE (JSON/YAML syntax, ei has line/column), ERR_INVAL (not an
 * OpenAPI document, or a structural error; ei->where is the JSON pointer), ERR_NOTFOUND (a broken
 * $ref), ERR_DENIED (an external $ref), ERR_LIMIT (a bound was reached), ERR_NOMEM.
 */
int openapi_doc_load_file(const char *path, struct openapi_doc **out, struct err_info *ei);
/*
 * The same with OpenAPI Overlay 1.0 documents applied, in order, to the raw document before it
 * is converted (see "Overlays" below). An overlay that does not load, or an action that fails, is
 * an error whose message names the overlay file and the action (ei->where is the JSON pointer in
 * the overlay); an action whose target matches nothing is a warning in doc->warnings.
 */
int openapi_doc_load_overlaid(const char *path, const char *const *overlays, size_t noverlays,
                              struct openapi_doc **out, struct err_info *ei);
/* Same, from memory (`data` need not be NUL-terminated). */
int openapi_doc_load_mem(const char *data, size_t len, struct openapi_doc **out,
                         struct err_info *ei);
struct openapi_doc *openapi_doc_ref(struct openapi_doc *doc);
void openapi_doc_unref(struct openapi_doc *doc);

/*
 * Parse JSON or YAML text into a jansson tree (the same loader the documents use; also used for
 * editorial files). YAML 1.2 core schema scalars; aliases are expanded within a node budget.
 * Returns a new reference in *out.
 */
int openapi_parse_text(const char *data, size_t len, json_t **out, struct err_info *ei);

/* ---- overlays (OpenAPI Overlay 1.0; src/openapi/overlay.c, src/openapi/jsonpath.c) ---------- */

/*
 * A compiled JSONPath of the subset overlays use (docs/openapi.md, "Overlays"): $, .name,
 * ['name'], [*] and .*, [index], .. and filters [?(@.x == 'y')] with == != < <= > >= && || ! and
 * parentheses over literals and singular queries. Anything else fails with ERR_INVAL and a message
 * naming the construct and the character where it starts ("array slices ... are not supported").
 */
struct openapi_jsonpath;
int openapi_jsonpath_compile(const char *text, struct openapi_jsonpath **out, struct err_info *ei);
void openapi_jsonpath_free(struct openapi_jsonpath *jp);

/* One selected node: its parent (NULL for the root) and its key (objects) or index (arrays). */
struct openapi_jsonpath_node {
    json_t *parent;
    const char *key; /* borrowed from the parent: valid while the parent keeps that member */
    size_t index;
    json_t *node;
};
/*
 * The nodes `jp` selects in `root`, in document order, each once. *out is malloc'ed (free it);
 * the pointers are borrowed from `root`. Errors: ERR_LIMIT (over 500,000 nodes, or nesting),
 * ERR_NOMEM.
 */
int openapi_jsonpath_query(const struct openapi_jsonpath *jp, json_t *root,
                           struct openapi_jsonpath_node **out, size_t *count);

struct openapi_overlay;
/* Load an Overlay document (JSON or YAML). Errors name the field or the action and its target. */
int openapi_overlay_load_file(const char *path, struct openapi_overlay **out, struct err_info *ei);
/* The same from a parsed tree; `name` names it in messages (NULL: "<memory>"). */
int openapi_overlay_from_json(const json_t *root, const char *name, struct openapi_overlay **out,
                              struct err_info *ei);
void openapi_overlay_free(struct openapi_overlay *ov);
/*
 * Apply the actions in order to `root` (modified in place): `update` merged into each selected
 * object (objects recursively, other values replaced), appended to a selected array (an array
 * update item by item), or replacing a selected scalar; `remove: true` deletes each selected node
 * from its parent. An action matching nothing appends a message naming it to `warnings` (a JSON
 * array; may be NULL). Errors: ERR_INVAL, ERR_LIMIT, ERR_NOMEM with ei naming the action.
 */
int openapi_overlay_apply(const struct openapi_overlay *ov, json_t *root, json_t *warnings,
                          struct err_info *ei);

/* ---- editorial layer ----------------------------------------------------------------------- */

/* The default heuristics. Each can be switched off; each reports when it fires. */
/* Documents with more operations than this are "large": their tools get large_tool_tokens. */
#define OPENAPI_LARGE_OPS 40

struct openapi_heuristics {
    bool deprecated;        /* drop deprecated operations */
    bool head_options;      /* drop HEAD and OPTIONS */
    bool infra;             /* drop health/metrics/docs endpoints */
    bool admin;             /* drop admin/internal paths, tags, x-internal */
    bool auth_flow;         /* drop OAuth/login/token endpoints */
    bool binary_only;       /* drop operations whose body or response is binary only */
    bool first_sentence;    /* keep only the first sentence of descriptions */
    bool drop_examples;     /* drop example/examples from schemas */
    bool drop_extensions;   /* drop x-* keys from schemas */
    unsigned enum_cap;      /* cap enums at this many values, 0 = off (default 10) */
    unsigned max_depth;     /* collapse nested objects deeper than this, 0 = off (default 3) */
    unsigned desc_max;      /* argument and schema descriptions cut to this many bytes, 0 = off
                               (default 80) */
    unsigned repeated_desc; /* drop an argument description repeated under the same name on this
                               many tools or more, 0 = off (default 5) */
    unsigned tool_tokens;   /* per-tool budget in estimated tokens, 0 = off (default 250): a tool
                               over it is collapsed and stripped further (docs/openapi.md) */
    unsigned large_tool_tokens; /* the tighter budget for documents with more than
                                   OPENAPI_LARGE_OPS operations, 0 = off (default 100) */
    /* response projection (openapi_response_project) */
    unsigned response_array_max; /* arrays in responses cut to this many items, 0 = off
                                    (default 20) */
    bool response_drop_empty;    /* drop null, "", [] and {} members */
    bool response_drop_links;    /* drop _links, and url / *_url members into the API itself */
};

struct openapi_editorial;

/* A new editorial layer with the default heuristics and no rules or overrides. */
struct openapi_editorial *openapi_editorial_new(void);
/* All heuristics off, no rules: the naive 1:1 mapping (for comparisons). */
struct openapi_editorial *openapi_editorial_new_naive(void);
/* Load rules, heuristics and overrides from a JSON or YAML file (format in docs/openapi.md). */
int openapi_editorial_load_file(const char *path, struct openapi_editorial **out,
                                struct err_info *ei);
int openapi_editorial_from_json(const json_t *root, struct openapi_editorial **out,
                                struct err_info *ei);
void openapi_editorial_free(struct openapi_editorial *ed);
/* Mutable access to the heuristics (before building a catalog). */
struct openapi_heuristics *openapi_editorial_heuristics(struct openapi_editorial *ed);

/* ---- catalog ------------------------------------------------------------------------------- */

/* How one tool argument travels in the request. */
struct openapi_arg {
    char *name;      /* the name in inputSchema (after collision renaming) */
    char *wire_name; /* the name in the request (parameter or body property name) */
    enum openapi_in in;
    const struct openapi_param *param; /* PATH/QUERY/HEADER/COOKIE; NULL for body */
    json_t *schema;                    /* the original (unedited) schema, shared */
    bool required;
    bool hidden;   /* not in inputSchema (override); sent with `fixed` if set */
    json_t *fixed; /* fixed value from an override, or NULL */
};

/* A compiled selection of response fields (override `response: {fields: [...]}`). */
struct openapi_fields;

struct openapi_tool {
    char *name;
    char *description;
    json_t *input_schema; /* JSON Schema object; owned by the tool */
    bool read_only, destructive, idempotent;
    size_t token_estimate; /* ceil(bytes of the compact MCP tool JSON / 4) */
    const struct openapi_op *op;
    struct openapi_arg *args;
    size_t nargs;
    struct openapi_fields *response_fields; /* owned; NULL: the default projection */
};

/* One line of the report: an operation dropped, or a transformation applied to a tool. */
struct openapi_note {
    char *op;     /* "METHOD /path" */
    char *tool;   /* the tool name, NULL when the operation was dropped */
    char *reason; /* "rule 2 (exclude)", "heuristic deprecated", "first_sentence", ... */
    char *detail; /* human-readable detail, may be NULL */
    bool dropped;
};

struct openapi_catalog {
    int refs;
    struct openapi_doc *doc; /* a reference */
    char *base_url;
    struct openapi_tool *tools;
    size_t ntools;
    struct openapi_note *notes;
    size_t nnotes;
    size_t total_tokens;
    struct openapi_heuristics heuristics; /* those it was built with (response projection) */
};

/*
 * Build the catalog of `doc` under `ed` (NULL = default heuristics). Tool names are unique and
 * match ^[a-zA-Z0-9_-]{1,64}$; see docs/openapi.md for the naming rule. Errors: ERR_INVAL with
 * a message naming the override/rule at fault (unknown operation in an override, a name clash
 * between overrides, a hidden required parameter without a fixed value), ERR_NOMEM.
 */
int openapi_catalog_build(struct openapi_doc *doc, const struct openapi_editorial *ed,
                          struct openapi_catalog **out, struct err_info *ei);
struct openapi_catalog *openapi_catalog_ref(struct openapi_catalog *cat);
void openapi_catalog_unref(struct openapi_catalog *cat);
/* Replace the base URL (e.g. from the gateway configuration). Not thread-safe: before sharing. */
int openapi_catalog_set_base_url(struct openapi_catalog *cat, const char *url);
const struct openapi_tool *openapi_catalog_find(const struct openapi_catalog *cat,
                                                const char *name);
/* The MCP tool object {name, description, inputSchema, annotations}; a new reference. */
json_t *openapi_tool_to_json(const struct openapi_tool *tool);

/* ---- requests ------------------------------------------------------------------------------ */

struct openapi_header {
    char *name;
    char *value;
};

struct openapi_request {
    char *method;
    char *url;
    struct openapi_header *headers;
    size_t nheaders;
    char *body; /* NULL without a body; may contain NUL bytes (multipart) */
    size_t body_len;
};

/*
 * Build the HTTP request for one call of `tool` with `args` (a JSON object). Validates: unknown
 * arguments, missing required ones and values of the wrong shape are refused with a message
 * naming the argument (ERR_INVAL). The credential is not added here (the vault injects it).
 * `*req` is written only on success; release it with openapi_request_release().
 */
int openapi_request_build(const struct openapi_catalog *cat, const struct openapi_tool *tool,
                          const json_t *args, struct openapi_request *req, struct err_info *ei);
void openapi_request_release(struct openapi_request *req);
/* The value of header `name` (case-insensitive) or NULL. */
const char *openapi_request_header(const struct openapi_request *req, const char *name);

/* ---- response projection (src/openapi/project.c) ------------------------------------------- */

/*
 * Compile a list of response fields: JSON pointers (`/user/login`, ~0 ~1 escapes) or dotted paths
 * (`user.login`), with `[]` after a name for every element of an array (`items[].title`, `[].id`).
 * `where` is the JSON pointer of the list, for messages. Errors (ERR_INVAL) name the field, its
 * index and the character where it goes wrong. Limits: 64 fields, 256 bytes and 16 steps each.
 */
int openapi_fields_parse(const json_t *list, const char *where, struct openapi_fields **out,
                         struct err_info *ei);
void openapi_fields_free(struct openapi_fields *f);

/* What a projection left out, for the note the model reads. */
struct openapi_projection_stats {
    const char *fields; /* the selected fields as written (borrowed from the tool), or NULL */
    size_t empty;       /* null/empty members dropped */
    size_t links;       /* links into the API dropped */
    size_t arrays_cut;  /* arrays cut to response_array_max */
    size_t items_cut;   /* items of those not shown */
};

/*
 * The part of a JSON response `v` of `tool` a model is given (a new reference; NULL when out of
 * memory): the tool's response fields if it has some, else the default projection of the
 * catalog's heuristics (docs/openapi.md, "Response projection"). `v` is not modified. Read-only
 * on the catalog: any thread.
 */
json_t *openapi_response_project(const struct openapi_catalog *cat, const struct openapi_tool *tool,
                                 json_t *v, struct openapi_projection_stats *st);
/* The line that tells the model what was left out, "[projected by gatehouse: ...]", or NULL
   when nothing was (or out of memory). Free it. */
char *openapi_projection_note(const struct openapi_projection_stats *st);

/* ---- discovery modes ------------------------------------------------------------------------ */

/*
 * How a catalog is presented to a client (docs/openapi.md, "Discovery modes"). Every mode keeps
 * the whole curated catalog internally, so tool names and the requests they build are identical;
 * the lazy modes only change what tools/list shows and add navigation tools.
 */
enum openapi_discovery_mode {
    OPENAPI_DISCOVERY_STATIC,       /* tools/list is the catalog */
    OPENAPI_DISCOVERY_HIERARCHICAL, /* list_categories, list_operations, describe_operation,
                                       call_operation */
    OPENAPI_DISCOVERY_SEARCH        /* search_operations, call_operation */
};
/* "static", "hierarchical", "search"; openapi_discovery_mode_parse returns -1 for other text. */
const char *openapi_discovery_mode_str(enum openapi_discovery_mode mode);
int openapi_discovery_mode_parse(const char *s);

struct openapi_discovery;

/*
 * The state of one mode over `cat` (a reference is taken): categories, the search index. Built
 * once (on a worker thread for large catalogs), then read-only and safe to share.
 * Errors: ERR_NOMEM.
 */
int openapi_discovery_new(struct openapi_catalog *cat, enum openapi_discovery_mode mode,
                          struct openapi_discovery **out);
void openapi_discovery_free(struct openapi_discovery *d);
/* The tools/list array of the mode (a new reference), NULL when out of memory. */
json_t *openapi_discovery_tools(const struct openapi_discovery *d);

/*
 * One tools/call of tool `name` with `args` (an object or NULL) in the mode. Three outcomes:
 *  - answered here (a navigation tool, or a call_operation naming no operation): returns 0 and
 *    *result is an MCP tool result (new reference; isError for unknown categories/operations);
 *  - a call of an operation (a catalog tool called by name, or through call_operation): returns
 *    0, *result NULL, *tool the catalog tool and *tool_args its arguments (borrowed from `args`,
 *    or NULL for none); the caller builds and performs the request as in static mode;
 *  - ERR_NOTFOUND when `name` is neither a tool of the mode nor of the catalog.
 * ERR_NOMEM otherwise. `selection` (an array of operation names, or NULL for all) is the user's:
 * list_operations and search_operations show only those, describe_operation and call_operation
 * refuse the others (an isError result naming the cause). A catalog tool called by its own name
 * is not checked here (the gateway checks it, as for any server).
 */
int openapi_discovery_call(const struct openapi_discovery *d, const char *name, json_t *args,
                           const json_t *selection, json_t **result,
                           const struct openapi_tool **tool, json_t **tool_args);

/*
 * BM25 ranking over small text documents (the search mode's index; src/openapi/search.c).
 * Tokens are maximal runs of ASCII letters and digits, lower-cased; k1 = 1.2, b = 0.75,
 * idf = ln(1 + (N - df + 0.5) / (df + 0.5)); a query term counts once however often it repeats.
 * Ties are broken by document name (byte order), so results are deterministic.
 */
struct openapi_bm25;

/* An index of `n` documents, names[i] (borrowed, must outlive the index) and texts[i] (copied
   as tokens). Errors: ERR_NOMEM. */
int openapi_bm25_new(const char *const *names, const char *const *texts, size_t n,
                     struct openapi_bm25 **out);

/*
 * The index the search mode uses: each document is `nfields` (1 to 4) texts,
 * texts[i * nfields + f], each field scored by BM25 on its own (its own average length) and the
 * field scores added with weights[f]; and the API vocabulary analyzer on documents and queries
 * alike: English stop words dropped, camelCase split, a phrasal verb made one word (look up ->
 * lookup), words of the documents that are two other words of them run together also counted as
 * those (worklog = work + log), each word of a group of the built-in API vocabulary
 * (remove/delete/erase, ticket/issue, ...) also counted as its group, an agent noun as its verb
 * when the documents have it (watcher -> watch) and a noun in -ion as its verb's stem; in queries,
 * words with digits (values such as PROJ-123) dropped; a document's score multiplied by the square
 * of the share of the query's words it matches, divided by 1 + 0.06 per extra word in its name, and
 * multiplied by 0.3 when the query's first word is a verb that reads (show, list, find) or a
 * question word and reads[i] is false, or a verb that writes (cancel, add, send) and reads[i]
 * is true (reads may be NULL).
 * Errors: ERR_INVAL (nfields), ERR_NOMEM.
 */
int openapi_bm25_new_fields(const char *const *names, const char *const *texts, size_t nfields,
                            const double *weights, const bool *reads, size_t n,
                            struct openapi_bm25 **out);
void openapi_bm25_free(struct openapi_bm25 *ix);
/* The indexes of the at most `max` best documents with a positive score for `query`, best
   first, in out[] (and their scores in scores[] when not NULL). Returns how many. */
/*
 * Marks the documents that read one item (item[i]: a GET of a path that ends in a parameter), so
 * that a request to read things in the plural ("show my meetings") prefers the lists: their
 * scores are halved for it. item may be NULL (none).
 */
void openapi_bm25_set_items(struct openapi_bm25 *ix, const bool *item);

size_t openapi_bm25_rank(const struct openapi_bm25 *ix, const char *query, size_t max, size_t *out,
                         double *scores);

/* ---- inspection ---------------------------------------------------------------------------- */

/* What to inspect: the document, its overlays (applied in order) and the editorial file. */
struct openapi_sources {
    const char *spec;
    const char *const *overlays;
    size_t noverlays;
    const char *overrides; /* NULL = default heuristics */
};

/*
 * Print the catalog report of `src`: tools with one-line descriptions and token estimates,
 * totals (also for the naive 1:1 mapping), overlay warnings, dropped operations and applied
 * transformations with reasons. Returns 0 or a negative ERR_* after printing the error to `out`.
 */
int openapi_inspect(const struct openapi_sources *src, FILE *out);
/*
 * The same report as one JSON object for programs (bench/openapi_tokens.mjs):
 * {document: {title, version, format, operations, server}, tools: [MCP tool + "tokens" and
 * "operation" ("METHOD /path")],
 *  naive: {tools: [MCP tool of every operation, all heuristics off]}, totals: {...},
 *  dropped: [{operation, reason, detail}], notes: [{tool, operation, reason, detail}],
 *  warnings: [text]}. On error prints {"error": message, "where": pointer} and returns the
 * negative ERR_*.
 */
int openapi_inspect_json(const struct openapi_sources *src, FILE *out);
/*
 * The tools/list answer a server in discovery `mode` would give, as one JSON object
 * {"mode": "...", "tools": [...]} (compact, one line); errors as openapi_inspect_json.
 */
int openapi_inspect_discovery(const struct openapi_sources *src, enum openapi_discovery_mode mode,
                              FILE *out);
/*
 * Read one JSON response of `tool` from `in` and print what the model would be given: the
 * projected compact JSON, then the projection's note line when something was left out (before
 * the transport's 16 KiB cap). Errors are printed to `err`; returns 0 or the negative ERR_*.
 */
int openapi_inspect_project(const struct openapi_sources *src, const char *tool, FILE *in,
                            FILE *out, FILE *err);

#endif

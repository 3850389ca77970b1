/*
 * The catalog: an immutable, reference-counted snapshot of what the upstream servers offer
 * (tools, prompts, resources, resource templates) under the names the gateway exposes, with the
 * routes back to each server. Rebuilt whenever a server's lists change; each worker holds the
 * current one, so lookups on the request path take no lock.
 *
 * Naming: in the aggregate view a tool or prompt is exposed as "<server><sep><name>" when the
 * prefix mode says so (always; when-needed and two servers offer the name); in a server's own
 * view (/mcp/<server>) names are never prefixed. Resource URIs are never rewritten: they are
 * routed by exact URI, then by template match.
 */
#ifndef GH_MCP_CATALOG_H
#define GH_MCP_CATALOG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"

enum catalog_kind { CAT_TOOLS = 0, CAT_PROMPTS, CAT_RESOURCES, CAT_TEMPLATES, CAT_NKINDS };

/* The longest exposed tool or prompt name; a longer one (with its prefix) is not exposed, and
   that is logged. MCP 2025-11-25 recommends names of at most 128 characters. */
#define CATALOG_NAME_MAX 255

/* What one server offers, as fetched (arrays of the server's own item objects; NULL = none). */
struct catalog_source {
    const char *server; /* name */
    const struct config_server
        *srv;  /* its configuration (its prefix mode), or NULL: the global mode */
    int ready; /* 0 = down: contributes nothing */
    json_t *lists[CAT_NKINDS];
};

struct catalog;

/*
 * Build from sources[0..n) (index = server index). With prefix mode never, a name offered by two
 * servers is an error naming both (ERR_EXISTS, ei filled) when `strict`; otherwise the first
 * server keeps the name and the collision is logged. Returns 0 and a new catalog in *out.
 */
int catalog_build(const struct config *cfg, const struct catalog_source *sources, size_t n,
                  uint64_t generation, int strict, struct catalog **out, struct err_info *ei);
struct catalog *catalog_ref(struct catalog *c);
void catalog_unref(struct catalog *c);
uint64_t catalog_generation(const struct catalog *c);

/*
 * One page of a list for a view (-1 = aggregate): a new reference to a result object
 * {"tools": [...], "nextCursor": "..."} (key per kind). ERR_INVAL for a cursor that is not ours.
 */
int catalog_page(const struct catalog *c, int view, enum catalog_kind kind, const char *cursor,
                 size_t page_size, json_t **result);
/* Whether a tool or prompt goes in a page: `server` and `orig` as catalog_route gives them,
   `modes` as catalog_modes. */
typedef bool (*catalog_keep_cb)(void *ud, int server, const char *orig, unsigned modes);
/* catalog_page of the items `keep` keeps (every one when NULL): each page has page_size of them
   but the last, and cursors stay valid across calls with different filters. */
int catalog_page_filtered(const struct catalog *c, int view, enum catalog_kind kind,
                          const char *cursor, size_t page_size, catalog_keep_cb keep, void *ud,
                          json_t **result);

/* Route an exposed tool/prompt name in a view to (server index, the server's own name). The name
   pointer stays valid while the catalog is referenced. ERR_NOTFOUND. */
int catalog_route(const struct catalog *c, int view, enum catalog_kind kind, const char *name,
                  int *server, const char **orig_name);
/* The discovery modes an exposed tool belongs to, a bit (1u << enum config_discovery) each, from
   the _meta CONFIG_META_MODES tag its server listed it with (the catalog strips the tag from
   what clients see); 0 for an untagged tool (every server but openapi ones), or an unknown name. */
unsigned catalog_modes(const struct catalog *c, int view, enum catalog_kind kind, const char *name);
/* An exposed tool's inputSchema (borrowed: valid while the catalog is referenced), or NULL. */
json_t *catalog_input_schema(const struct catalog *c, int view, const char *name);
/* Whether a user has anything to choose in a view: one of its servers has discovery modes (an
   openapi server: tools tagged with modes) or at least two tools to select among. Computed once
   per catalog. */
bool catalog_offers_choice(const struct catalog *c, int view);
/* How many of a server's listed tools (as it sent them) a client sees in discovery mode `mode`. */
size_t catalog_count_in_mode(const json_t *tools, enum config_discovery mode);
/* Route a resource URI (exact, then template match). ERR_NOTFOUND. */
int catalog_route_uri(const struct catalog *c, int view, const char *uri, int *server);
/* The one server behind view (a server's own view, or the aggregate of a single server):
   0 and *server, or ERR_NOTFOUND when the view spans several servers. */
int catalog_sole_server(const struct catalog *c, int view, int *server);

/* Does the template (RFC 6570 level 1: literals and {var}) match uri? Exposed for tests. */
int catalog_template_match(const char *tmpl, const char *uri);

#endif

/*
 * Tool arguments checked against the subset of JSON Schema that decides whether the receiving
 * side can parse them: what OpenAPI tools check before a request is built (src/openapi) and what
 * MCP tools are checked against when their server has `validate_arguments` (src/mcp).
 */
#ifndef GH_CORE_SCHEMA_H
#define GH_CORE_SCHEMA_H

#include <jansson.h>

#include "core/err.h"

/* Nesting checked below the value given; deeper values are accepted as they are. */
#define SCHEMA_CHECK_DEPTH_MAX 16

/*
 * Check `value` against `schema`. Keywords checked: type (a name or a list of names; OpenAPI
 * 3.0's nullable), enum, and for objects required and properties, for arrays items, recursively
 * up to SCHEMA_CHECK_DEPTH_MAX levels. Every other keyword ($ref, allOf/anyOf/oneOf, not,
 * additionalProperties, format, pattern, minimum/maximum, lengths...) is ignored. So is a keyword
 * whose own value is malformed (a schema that is not an object, a type that is not a string or a
 * list of strings, a type name JSON Schema does not define, an enum that is not a non-empty list,
 * required that is not a list of strings, properties or items that are not objects): a broken
 * schema can let a wrong value through, never refuse a right one.
 *
 * `name` names the value in messages (an argument's name), or is NULL when the value is a tool's
 * whole arguments object, whose members are then named by themselves. `tool` names the tool.
 * Returns 0, or ERR_INVAL with ei (if not NULL) holding a message that names the value's path
 * ("limit", "filter.status", "ids[2]"), the rule broken and what came instead, and ei->where the
 * path. Neither argument is modified; safe from any thread.
 */
int schema_check(const json_t *schema, const json_t *value, const char *name, const char *tool,
                 struct err_info *ei);

#endif

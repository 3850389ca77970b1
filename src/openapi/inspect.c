/*
 * `gatehouse openapi inspect`: the catalog a document would produce, printed for a human who
 * curates it (or, with --json, for a program). Token counts here are estimates (compact JSON bytes
 * / 4); the real tokenizer measurement lives in the test harness (docs/openapi.md).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "openapi/openapi-int.h"

static void one_line(const char *s, char *buf, size_t cap)
{
    size_t n = 0;
    for (; *s && n + 4 < cap; s++)
        buf[n++] = *s == '\n' || *s == '\r' || *s == '\t' ? ' ' : *s;
    if (*s && cap > 4)
        memcpy(buf + n - (n >= 3 ? 3 : 0), "...", 3);
    buf[n] = '\0';
}

/*
 * The curated catalog of the document at path (with the overrides file, if any). On failure
 * *what names the file at fault (the overrides file for its own errors and for catalog errors it
 * may have caused). Whatever was built is returned for the caller to free either way.
 */
static int load_catalog(const struct openapi_sources *src, struct openapi_doc **doc,
                        struct openapi_editorial **ed, struct openapi_catalog **cat,
                        const char **what, struct err_info *ei)
{
    *what = src->spec;
    int rc = openapi_doc_load_overlaid(src->spec, src->overlays, src->noverlays, doc, ei);
    if (rc == 0 && src->overrides) {
        *what = src->overrides;
        rc = openapi_editorial_load_file(src->overrides, ed, ei);
    }
    if (rc == 0)
        rc = openapi_catalog_build(*doc, *ed, cat, ei);
    return rc;
}

/* The naive 1:1 catalog of the same document, for comparison; *what becomes path. */
static int load_naive(struct openapi_doc *doc, struct openapi_editorial **naive,
                      struct openapi_catalog **ncat, const char *path, const char **what,
                      struct err_info *ei)
{
    if ((*naive = openapi_editorial_new_naive()) == NULL)
        return ERR_NOMEM;
    *what = path;
    return openapi_catalog_build(doc, *naive, ncat, ei);
}

int openapi_inspect(const struct openapi_sources *src, FILE *out)
{
    struct err_info ei = {0};
    struct openapi_doc *doc = NULL;
    struct openapi_editorial *ed = NULL, *naive = NULL;
    struct openapi_catalog *cat = NULL, *ncat = NULL;
    const char *what;
    int rc = load_catalog(src, &doc, &ed, &cat, &what, &ei);
    if (rc == 0)
        rc = load_naive(doc, &naive, &ncat, src->spec, &what, &ei);
    if (rc) {
        fprintf(out, "error: %s: %s%s%s%s\n", what, ei.msg[0] ? ei.msg : err_str(rc),
                ei.where[0] ? " (at " : "", ei.where, ei.where[0] ? ")" : "");
        goto out;
    }
    fprintf(out, "%s %s (%s %s), %zu operations, server %s\n\n",
            doc->title ? doc->title : "(untitled)", doc->api_version ? doc->api_version : "",
            strcmp(doc->version, "2.0") == 0 ? "swagger" : "openapi", doc->version, doc->nops,
            cat->base_url[0] ? cat->base_url : "(none)");
    size_t width = 4, maxtok = 0;
    for (size_t i = 0; i < cat->ntools; i++) {
        size_t n = strlen(cat->tools[i].name);
        width = n > width ? n : width;
        if (cat->tools[i].token_estimate > maxtok)
            maxtok = cat->tools[i].token_estimate;
    }
    fprintf(out, "%-*s  %6s  %s\n", (int)width, "tool", "tokens", "description");
    for (size_t i = 0; i < cat->ntools; i++) {
        const struct openapi_tool *t = &cat->tools[i];
        char d[100];
        one_line(t->description, d, sizeof(d));
        fprintf(out, "%-*s  %6zu  %s\n", (int)width, t->name, t->token_estimate, d);
    }
    fprintf(out, "\ntotals (estimated tokens = compact JSON bytes / 4):\n");
    fprintf(out, "  curated static: %zu tools, %zu tokens, %zu per tool on average, max %zu\n",
            cat->ntools, cat->total_tokens, cat->ntools ? cat->total_tokens / cat->ntools : 0,
            maxtok);
    fprintf(out, "  naive 1:1:      %zu tools, %zu tokens", ncat->ntools, ncat->total_tokens);
    if (ncat->total_tokens)
        fprintf(out, " (curated saves %.1f%%)",
                100.0 * (1.0 - (double)cat->total_tokens / (double)ncat->total_tokens));
    fprintf(out, "\n");
    for (int m = OPENAPI_DISCOVERY_HIERARCHICAL; m <= OPENAPI_DISCOVERY_SEARCH; m++) {
        struct openapi_discovery *d = NULL;
        char label[32];
        if (openapi_discovery_new(cat, (enum openapi_discovery_mode)m, &d) != 0)
            continue;
        json_t *tools = openapi_discovery_tools(d);
        char *js = tools ? json_dumps(tools, JSON_COMPACT) : NULL;
        snprintf(label, sizeof(label), "%s:", openapi_discovery_mode_str(m));
        fprintf(out, "  %-16s%zu tools, %zu tokens to start (tools/list)\n", label,
                json_array_size(tools), js ? (strlen(js) + 3) / 4 : 0);
        free(js);
        json_decref(tools);
        openapi_discovery_free(d);
    }
    if (doc->nwarnings)
        fprintf(out, "\nwarnings (%zu):\n", doc->nwarnings);
    for (size_t i = 0; i < doc->nwarnings; i++)
        fprintf(out, "  %s\n", doc->warnings[i]);
    size_t ndrop = 0;
    for (size_t i = 0; i < cat->nnotes; i++)
        ndrop += cat->notes[i].dropped;
    fprintf(out, "\ndropped (%zu):\n", ndrop);
    for (size_t i = 0; i < cat->nnotes; i++) {
        const struct openapi_note *n = &cat->notes[i];
        if (n->dropped)
            fprintf(out, "  %-40s %s: %s\n", n->op, n->reason, n->detail ? n->detail : "");
    }
    fprintf(out, "\nnotes and transformations:\n");
    for (size_t i = 0; i < cat->nnotes; i++) {
        const struct openapi_note *n = &cat->notes[i];
        if (!n->dropped)
            fprintf(out, "  %-40s %s: %s\n", n->tool ? n->tool : n->op, n->reason,
                    n->detail ? n->detail : "");
    }
out:
    openapi_catalog_unref(cat);
    openapi_catalog_unref(ncat);
    openapi_editorial_free(ed);
    openapi_editorial_free(naive);
    openapi_doc_unref(doc);
    return rc;
}

static json_t *tools_json(const struct openapi_catalog *cat, bool with_tokens)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < cat->ntools; i++) {
        json_t *t = openapi_tool_to_json(&cat->tools[i]);
        if (t && with_tokens) {
            const struct openapi_op *op = cat->tools[i].op;
            json_object_set_new(t, "tokens",
                                json_integer((json_int_t)cat->tools[i].token_estimate));
            json_object_set_new(t, "operation", json_sprintf("%s %s", op->method, op->path));
        }
        json_array_append_new(a, t);
    }
    return a;
}

static json_t *note_json(const struct openapi_note *n)
{
    json_t *o = json_pack("{s:s, s:s}", "operation", n->op, "reason", n->reason);
    if (o && n->tool)
        json_object_set_new(o, "tool", json_string(n->tool));
    if (o && n->detail)
        json_object_set_new(o, "detail", json_string(n->detail));
    return o;
}

int openapi_inspect_json(const struct openapi_sources *src, FILE *out)
{
    struct err_info ei = {0};
    struct openapi_doc *doc = NULL;
    struct openapi_editorial *ed = NULL, *naive = NULL;
    struct openapi_catalog *cat = NULL, *ncat = NULL;
    json_t *root = NULL;
    const char *what;
    int rc = load_catalog(src, &doc, &ed, &cat, &what, &ei);
    if (rc == 0)
        rc = load_naive(doc, &naive, &ncat, src->spec, &what, &ei);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s: %s", what, ei.msg[0] ? ei.msg : err_str(rc));
        root = json_pack("{s:s, s:s}", "error", msg, "where", ei.where);
        goto out;
    }
    json_t *dropped = json_array(), *notes = json_array();
    for (size_t i = 0; i < cat->nnotes; i++)
        json_array_append_new(cat->notes[i].dropped ? dropped : notes, note_json(&cat->notes[i]));
    root = json_pack("{s:{s:s?, s:s?, s:s, s:s, s:I, s:s}, s:o, s:{s:o}, s:{s:I, s:I, s:I, s:I},"
                     " s:o, s:o}",
                     "document", "title", doc->title, "version", doc->api_version, "format",
                     strcmp(doc->version, "2.0") == 0 ? "swagger" : "openapi", "spec_version",
                     doc->version, "operations", (json_int_t)doc->nops, "server", cat->base_url,
                     "tools", tools_json(cat, true), "naive", "tools", tools_json(ncat, false),
                     "totals", "tools", (json_int_t)cat->ntools, "estimated_tokens",
                     (json_int_t)cat->total_tokens, "naive_tools", (json_int_t)ncat->ntools,
                     "naive_estimated_tokens", (json_int_t)ncat->total_tokens, "dropped", dropped,
                     "notes", notes);
    json_t *warnings = json_array();
    for (size_t i = 0; i < doc->nwarnings; i++)
        json_array_append_new(warnings, json_string(doc->warnings[i]));
    if (root == NULL || json_object_set_new(root, "warnings", warnings) != 0)
        rc = ERR_NOMEM;
out:
    if (root) {
        json_dumpf(root, out, JSON_COMPACT);
        fputc('\n', out);
    }
    json_decref(root);
    openapi_catalog_unref(cat);
    openapi_catalog_unref(ncat);
    openapi_editorial_free(ed);
    openapi_editorial_free(naive);
    openapi_doc_unref(doc);
    return rc;
}

int openapi_inspect_discovery(const struct openapi_sources *src, enum openapi_discovery_mode mode,
                              FILE *out)
{
    struct err_info ei = {0};
    struct openapi_doc *doc = NULL;
    struct openapi_editorial *ed = NULL;
    struct openapi_catalog *cat = NULL;
    struct openapi_discovery *d = NULL;
    json_t *root = NULL;
    const char *what;
    int rc = load_catalog(src, &doc, &ed, &cat, &what, &ei);
    if (rc == 0)
        rc = openapi_discovery_new(cat, mode, &d);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof(msg), "%s: %s", what, ei.msg[0] ? ei.msg : err_str(rc));
        root = json_pack("{s:s, s:s}", "error", msg, "where", ei.where);
        goto out;
    }
    root = json_pack("{s:s, s:o}", "mode", openapi_discovery_mode_str(mode), "tools",
                     openapi_discovery_tools(d));
    if (root == NULL)
        rc = ERR_NOMEM;
out:
    if (root) {
        json_dumpf(root, out, JSON_COMPACT);
        fputc('\n', out);
    }
    json_decref(root);
    openapi_discovery_free(d);
    openapi_catalog_unref(cat);
    openapi_editorial_free(ed);
    openapi_doc_unref(doc);
    return rc;
}

int openapi_inspect_project(const struct openapi_sources *src, const char *tool, FILE *in,
                            FILE *out, FILE *err)
{
    struct err_info ei = {0};
    struct openapi_doc *doc = NULL;
    struct openapi_editorial *ed = NULL;
    struct openapi_catalog *cat = NULL;
    json_t *body = NULL, *projected = NULL;
    char *text = NULL, *note = NULL;
    const char *what;
    int rc = load_catalog(src, &doc, &ed, &cat, &what, &ei);
    if (rc) {
        fprintf(err, "error: %s: %s%s%s%s\n", what, ei.msg[0] ? ei.msg : err_str(rc),
                ei.where[0] ? " (at " : "", ei.where, ei.where[0] ? ")" : "");
        goto out;
    }
    /* the tool's name, its operationId, or "METHOD /path" */
    const struct openapi_tool *t = openapi_catalog_find(cat, tool);
    for (size_t i = 0; t == NULL && i < cat->ntools; i++) {
        const struct openapi_op *op = cat->tools[i].op;
        size_t ml = strlen(op->method);
        if ((op->operation_id && strcmp(op->operation_id, tool) == 0) ||
            (strncasecmp(tool, op->method, ml) == 0 && tool[ml] == ' ' &&
             strcmp(tool + ml + 1, op->path) == 0))
            t = &cat->tools[i];
    }
    if (t == NULL) {
        fprintf(err,
                "error: %s has no tool, operationId or \"METHOD /path\" \"%s\" (openapi inspect "
                "lists the tools)\n",
                src->spec, tool);
        rc = ERR_NOTFOUND;
        goto out;
    }
    json_error_t je;
    if ((body = json_loadf(in, JSON_DECODE_ANY, &je)) == NULL) {
        fprintf(err, "error: the response on standard input is not JSON: %s (line %d)\n", je.text,
                je.line);
        rc = ERR_PARSE;
        goto out;
    }
    struct openapi_projection_stats st;
    projected = openapi_response_project(cat, t, body, &st);
    text = projected ? json_dumps(projected, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (text == NULL) {
        rc = ERR_NOMEM;
        goto out;
    }
    note = openapi_projection_note(&st);
    fprintf(out, "%s\n%s%s", text, note ? note : "", note ? "\n" : "");
out:
    free(note);
    free(text);
    json_decref(projected);
    json_decref(body);
    openapi_catalog_unref(cat);
    openapi_editorial_free(ed);
    openapi_doc_unref(doc);
    return rc;
}

/*
 * `gatehouse openapi inspect`: the catalog a document would produce, printed for a human who
 * curates it. Token counts here are estimates (compact JSON bytes / 4); the real tokenizer
 * measurement lives in the test harness (docs/openapi.md).
 */
#include <stdlib.h>
#include <string.h>

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

int openapi_inspect(const char *path, const char *overrides_path, FILE *out)
{
    struct err_info ei = {0};
    struct openapi_doc *doc = NULL;
    struct openapi_editorial *ed = NULL, *naive = NULL;
    struct openapi_catalog *cat = NULL, *ncat = NULL;
    int rc = openapi_doc_load_file(path, &doc, &ei);
    const char *what = path;
    if (rc == 0 && overrides_path) {
        what = overrides_path;
        rc = openapi_editorial_load_file(overrides_path, &ed, &ei);
    }
    if (rc == 0) {
        what = overrides_path ? overrides_path : path;
        rc = openapi_catalog_build(doc, ed, &cat, &ei);
    }
    if (rc == 0 && (naive = openapi_editorial_new_naive()) == NULL)
        rc = ERR_NOMEM;
    if (rc == 0) {
        what = path;
        rc = openapi_catalog_build(doc, naive, &ncat, &ei);
    }
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

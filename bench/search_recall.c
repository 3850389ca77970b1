/*
 * Recall of the search discovery mode on plain-language tasks (bench/search_tasks/NAME.json): for
 * each task, `search_operations {query: task}` is called exactly as a model would call it
 * (openapi_discovery_call, default limit 5) on the catalog the gateway would serve (default
 * heuristics, no overrides), and the answer is checked for one of the task's expected
 * operations ("METHOD /path"). Prints recall@1 and recall@5 per API and overall (and recall@2:
 * the answer carries the expected tool's full definition), the start cost
 * of the search mode (its tools/list) and the size of the search answers, in bytes and in
 * estimated tokens (ceil(bytes / 4), the catalog's estimate; bench/openapi_tokens.mjs counts the
 * start cost with a real tokenizer).
 *
 *   build/search_recall [-v] [-m] [--modules DIR] [--answers FILE] [TASKFILE...]
 *
 * Defaults: every bench/search_tasks/NAME.json (heldout.json, which holds several APIs, is the
 * held-out set: never tuned on, reported after the tuning set with its own total), documents under
 * bench/node/node_modules (each task file names its document relative to it). -v prints every task
 * with its rank; -m a Markdown table. --answers writes one JSON object per line, {api, kind:
 * "start" | "answer", text}: the tools/list of the search mode and each answer's text, for
 * bench/search_tokens.mjs to count with a real tokenizer. Exit status 1 when a document or a task
 * file cannot be read, or a task expects an operation the catalog does not have.
 */
#include <glob.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "openapi/openapi.h"

struct totals {
    size_t tasks, at1, at2, at5, answer_bytes, answers, start_bytes;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int rank_of(const json_t *answer, const struct openapi_catalog *cat, const json_t *expect)
{
    size_t i;
    json_t *tool;
    json_array_foreach(answer, i, tool)
    {
        const struct openapi_tool *t =
            openapi_catalog_find(cat, json_string_value(json_object_get(tool, "name")));
        if (t == NULL)
            continue;
        char op[1024];
        snprintf(op, sizeof(op), "%s %s", t->op->method, t->op->path);
        size_t k;
        json_t *e;
        json_array_foreach(expect, k, e)
        {
            if (strcmp(json_string_value(e) ? json_string_value(e) : "", op) == 0)
                return (int)i + 1;
        }
    }
    return 0;
}

/* Does the catalog have every expected operation of the task? */
static bool expected_exist(const struct openapi_catalog *cat, const json_t *expect,
                           const char **bad)
{
    size_t k;
    json_t *e;
    json_array_foreach(expect, k, e)
    {
        bool found = false;
        for (size_t i = 0; i < cat->ntools && !found; i++) {
            char op[1024];
            snprintf(op, sizeof(op), "%s %s", cat->tools[i].op->method, cat->tools[i].op->path);
            found = strcmp(op, json_string_value(e) ? json_string_value(e) : "") == 0;
        }
        if (!found) {
            *bad = json_string_value(e);
            return false;
        }
    }
    return true;
}

static size_t dumped_bytes(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    size_t n = s ? strlen(s) : 0;
    free(s);
    return n;
}

static FILE *answers_out;

static void dump_line(const char *api, const char *kind, const char *text)
{
    if (answers_out == NULL)
        return;
    json_t *j = json_pack("{s:s, s:s, s:s}", "api", api, "kind", kind, "text", text ? text : "");
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (s)
        fprintf(answers_out, "%s\n", s);
    free(s);
    json_decref(j);
}

/* One API of a task file: {api, spec, tasks}. */
static int run_api(const char *file, json_t *spec, const char *modules, bool verbose, bool markdown,
                   struct totals *all)
{
    const char *api = json_string_value(json_object_get(spec, "api"));
    const char *rel = json_string_value(json_object_get(spec, "spec"));
    json_t *tasks = json_object_get(spec, "tasks");
    if (api == NULL || rel == NULL || !json_is_array(tasks)) {
        fprintf(stderr, "search_recall: %s: an API needs api, spec, tasks\n", file);
        return 1;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", modules, rel);
    struct openapi_doc *doc = NULL;
    struct openapi_catalog *cat = NULL;
    struct openapi_discovery *d = NULL;
    struct err_info ei = {0};
    int rc = openapi_doc_load_file(path, &doc, &ei);
    if (rc == 0)
        rc = openapi_catalog_build(doc, NULL, &cat, &ei);
    double t0 = now_ms(), index_ms = 0, query_ms = 0;
    if (rc == 0)
        rc = openapi_discovery_new(cat, OPENAPI_DISCOVERY_SEARCH, &d);
    index_ms = now_ms() - t0;
    if (rc) {
        fprintf(stderr, "search_recall: %s: %s %s (bench/node installed? scripts/deps.sh bench)\n",
                path, err_str(rc), ei.msg);
        openapi_catalog_unref(cat);
        openapi_doc_unref(doc);
        return 1;
    }
    json_t *start = openapi_discovery_tools(d);
    struct totals t = {.start_bytes = dumped_bytes(start)};
    char *start_text = json_dumps(start, JSON_COMPACT);
    dump_line(api, "start", start_text);
    free(start_text);
    json_decref(start);
    int failed = 0;
    size_t i;
    json_t *task;
    json_array_foreach(tasks, i, task)
    {
        const char *q = json_string_value(json_object_get(task, "task"));
        json_t *expect = json_object_get(task, "expect");
        const char *bad = NULL;
        if (q == NULL || !json_is_array(expect) || !expected_exist(cat, expect, &bad)) {
            fprintf(stderr, "search_recall: %s task %zu: %s%s\n", file, i,
                    bad ? "the catalog has no operation " : "needs task and expect",
                    bad ? bad : "");
            failed = 1;
            continue;
        }
        json_t *args = json_pack("{s:s}", "query", q), *res = NULL, *targs = NULL;
        const struct openapi_tool *tool = NULL;
        double q0 = now_ms();
        rc = openapi_discovery_call(d, "search_operations", args, NULL, &res, &tool, &targs);
        query_ms += now_ms() - q0;
        const char *text = json_string_value(
            json_object_get(json_array_get(json_object_get(res, "content"), 0), "text"));
        json_t *answer = text && text[0] == '[' ? json_loads(text, 0, NULL) : NULL;
        int r = answer ? rank_of(answer, cat, expect) : 0;
        t.tasks++;
        t.at1 += r == 1;
        t.at2 += r >= 1 && r <= 2; /* answered with its full definition */
        t.at5 += r >= 1 && r <= 5;
        t.answers++;
        t.answer_bytes += text ? strlen(text) : 0;
        dump_line(api, "answer", text);
        if (verbose) {
            printf("  %s %-60s", r == 1 ? "1" : r ? "5" : "-", q);
            size_t k;
            json_t *tl;
            json_array_foreach(answer, k, tl)
            {
                printf(" %s", json_string_value(json_object_get(tl, "name")));
            }
            printf("\n");
        }
        json_decref(answer);
        json_decref(res);
        json_decref(args);
    }
    double r1 = t.tasks ? 100.0 * (double)t.at1 / (double)t.tasks : 0,
           r5 = t.tasks ? 100.0 * (double)t.at5 / (double)t.tasks : 0;
    size_t avg = t.answers ? t.answer_bytes / t.answers : 0;
    if (markdown)
        printf("| %s | %zu | %zu | %.1f%% | %.1f%% | %zu | %zu |\n", api, cat->ntools, t.tasks, r1,
               r5, (t.start_bytes + 3) / 4, (avg + 3) / 4);
    else
        printf("%-32s %5zu tools %4zu tasks  recall@1 %5.1f%%  recall@5 %5.1f%%  start %4zu B "
               "(~%zu tokens)  answer avg %5zu B (~%zu tokens)  index %.0f ms, query %.2f ms  "
               "recall@2 %.1f%%\n",
               api, cat->ntools, t.tasks, r1, r5, t.start_bytes, (t.start_bytes + 3) / 4, avg,
               (avg + 3) / 4, index_ms, t.tasks ? query_ms / (double)t.tasks : 0,
               t.tasks ? 100.0 * (double)t.at2 / (double)t.tasks : 0);
    all->tasks += t.tasks;
    all->at1 += t.at1;
    all->at2 += t.at2;
    all->at5 += t.at5;
    all->answers += t.answers;
    all->answer_bytes += t.answer_bytes;
    if (t.start_bytes > all->start_bytes)
        all->start_bytes = t.start_bytes;
    openapi_discovery_free(d);
    openapi_catalog_unref(cat);
    openapi_doc_unref(doc);
    return failed;
}

/*
 * A task file: one API ({api, spec, tasks}) or several ({apis: [...]}, with "heldout": true in
 * the held-out set's). Its totals go to sets[1] when it is held out, else to sets[0]; pass 0 runs
 * only the tuning files, pass 1 only the held-out ones (a file is read twice, cheaply).
 */
static int run_file(const char *file, const char *modules, bool verbose, bool markdown,
                    struct totals *sets, int pass)
{
    json_error_t je;
    json_t *spec = json_load_file(file, 0, &je);
    if (spec == NULL) {
        fprintf(stderr, "search_recall: %s: %s\n", file, je.text);
        return 1;
    }
    bool heldout = json_is_true(json_object_get(spec, "heldout"));
    if (heldout != (pass == 1)) { /* the tuning set first, then the held-out set */
        json_decref(spec);
        return 0;
    }
    json_t *apis = json_object_get(spec, "apis");
    int failed = 0;
    if (json_is_array(apis)) {
        size_t i;
        json_t *a;
        json_array_foreach(apis, i, a)
        {
            failed |= run_api(file, a, modules, verbose, markdown, &sets[heldout]);
        }
    } else {
        failed = run_api(file, spec, modules, verbose, markdown, &sets[heldout]);
    }
    json_decref(spec);
    return failed;
}

static void print_total(const char *label, const struct totals *t, bool markdown)
{
    if (t->tasks == 0)
        return;
    double r1 = 100.0 * (double)t->at1 / (double)t->tasks,
           r5 = 100.0 * (double)t->at5 / (double)t->tasks;
    size_t avg = t->answers ? t->answer_bytes / t->answers : 0;
    if (markdown)
        printf("| %s | | %zu | %.1f%% | %.1f%% | ≤ %zu | %zu |\n", label, t->tasks, r1, r5,
               (t->start_bytes + 3) / 4, (avg + 3) / 4);
    else
        printf("%-32s %15zu tasks  recall@1 %5.1f%%  recall@5 %5.1f%%  start ≤ %zu B  answer avg "
               "%zu B (~%zu tokens)  recall@2 %.1f%%\n",
               label, t->tasks, r1, r5, t->start_bytes, avg, (avg + 3) / 4,
               100.0 * (double)t->at2 / (double)t->tasks);
}

int main(int argc, char **argv)
{
    const char *modules = "bench/node/node_modules";
    bool verbose = false, markdown = false;
    int first = 1;
    for (; first < argc && argv[first][0] == '-'; first++) {
        if (strcmp(argv[first], "-v") == 0) {
            verbose = true;
        } else if (strcmp(argv[first], "-m") == 0) {
            markdown = true;
        } else if (strcmp(argv[first], "--modules") == 0 && first + 1 < argc) {
            modules = argv[++first];
        } else if (strcmp(argv[first], "--answers") == 0 && first + 1 < argc) {
            if ((answers_out = fopen(argv[++first], "w")) == NULL) {
                perror(argv[first]);
                return 1;
            }
        } else {
            fprintf(stderr, "usage: search_recall [-v] [-m] [--modules DIR] [--answers FILE] "
                            "[TASKFILE...]\n");
            return 2;
        }
    }
    glob_t g = {0};
    char **files = argv + first;
    size_t nfiles = (size_t)(argc - first);
    if (nfiles == 0) {
        if (glob("bench/search_tasks/*.json", 0, NULL, &g) != 0) {
            fprintf(stderr, "search_recall: no bench/search_tasks/*.json (run from the source "
                            "directory)\n");
            return 1;
        }
        files = g.gl_pathv;
        nfiles = g.gl_pathc;
    }
    if (markdown)
        printf("| API | tools | tasks | recall@1 | recall@5 | start (est. tokens) | answer avg "
               "(est. tokens) |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    struct totals sets[2] = {{0}, {0}}; /* the tuning set, the held-out set */
    int failed = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < nfiles; i++)
            failed |= run_file(files[i], modules, verbose, markdown, sets, pass);
        print_total(pass ? "all (held-out set)" : "all (tuning set)", &sets[pass], markdown);
    }
    globfree(&g);
    if (answers_out)
        fclose(answers_out);
    return failed;
}

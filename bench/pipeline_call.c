/*
 * What the call pipeline (src/mcp/pipeline.c) adds to each call, apart from the call itself: a
 * call object made, its request stages run, its end (done stages) and its free, for
 *   none      no stage at all (a NULL pipeline: one pointer test per kind)
 *   builtin   the built-in list (call_outcomes: a counter in gatehouse_calls_total)
 *   three     three request stages that let the call pass
 * and the emitter's message stage cost per message (a deep copy of a small result, then the
 * stages) against none. Prints ns/op. One thread, no loop: the cost itself, not a call's latency.
 *   build/pipeline_call
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rand.h"
#include "mcp/pipeline.h"

#define RUNS 1000000

static enum stage_verdict pass_cb(struct call *c, void *conf, struct call_refusal *why)
{
    (void)c;
    (void)conf;
    (void)why;
    return STAGE_CONTINUE;
}

static void look_cb(struct call *c, json_t **msg, void *conf)
{
    (void)c;
    (void)conf;
    (void)msg;
}

static double calls(struct pipeline *pl, const struct principal *who, json_t *req)
{
    uint64_t t0 = clock_now_ns();
    for (int i = 0; i < RUNS; i++) {
        struct call *c = call_new(pl, who, "tools/call", 0, "bench", "echo", json_incref(req));
        if (pipeline_request(c, NULL, NULL) != STAGE_CONTINUE)
            abort();
        pipeline_done(c, CALL_OK, 0);
        call_free(c);
    }
    return (double)(clock_now_ns() - t0) / RUNS;
}

int main(void)
{
    if (core_init() != 0)
        return 1;
    struct principal who;
    principal_init_anonymous(&who);
    json_t *req =
        json_pack("{s:s, s:i, s:s, s:{s:s, s:{s:s}}}", "jsonrpc", "2.0", "id", 1, "method",
                  "tools/call", "params", "name", "echo", "arguments", "text", "hello");
    struct pipeline *builtin = pipeline_builtin();
    struct pipeline *three = pipeline_new();
    struct stage pass = {.name = "pass", .request = pass_cb};
    for (int i = 0; i < 3; i++)
        pipeline_add(three, &pass);
    struct stage look = {.name = "look", .message = look_cb};
    struct pipeline *msgs = pipeline_new();
    pipeline_add(msgs, &look);
    calls(NULL, &who, req); /* warm up */
    printf("call, no stage:              %6.1f ns/call\n", calls(NULL, &who, req));
    printf("call, built-in done stage:   %6.1f ns/call\n", calls(builtin, &who, req));
    printf("call, 3 request stages:      %6.1f ns/call\n", calls(three, &who, req));
    json_t *result = json_pack("{s:s, s:i, s:{s:[{s:s, s:s}]}}", "jsonrpc", "2.0", "id", 1,
                               "result", "content", "type", "text", "text", "hello");
    uint64_t t0 = clock_now_ns();
    for (int i = 0; i < RUNS; i++) {
        json_t *m = mcp_emit_era(result, "tools/call", false, false);
        json_decref(m);
    }
    double none = (double)(clock_now_ns() - t0) / RUNS;
    t0 = clock_now_ns();
    for (int i = 0; i < RUNS; i++) {
        json_t *m = json_deep_copy(result); /* what mcp_emit does when a message stage exists */
        look_cb(NULL, &m, NULL);
        json_decref(m);
    }
    double one = (double)(clock_now_ns() - t0) / RUNS;
    printf("message, no message stage:   %6.1f ns/message\n", none);
    printf("message, one message stage:  %6.1f ns/message (the private copy)\n", one);
    json_decref(result);
    json_decref(req);
    pipeline_unref(builtin);
    pipeline_unref(three);
    pipeline_unref(msgs);
    return 0;
}

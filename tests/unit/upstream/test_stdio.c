/*
 * Unit tests for the stdio transport, against real child processes: `cat` as an echo server and
 * small `sh -c` scripts that misbehave in the ways real servers do. Every wait is bounded by a
 * timer, so a broken transport fails a test instead of hanging it. The transport's log goes to
 * a memfd that the tests read back (and print when a test fails).
 *
 * The tests call the vtable directly (transport-int.h) so that they link without http.c.
 */
#include "test.h"

#include "core/log.h"
#include "upstream/transport-int.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_EVENTS 32

struct fixture {
    uv_loop_t loop;
    struct config_server srv;
    char *args[8];
    struct config_kv env[4];
    struct transport *t;
    int logfd;
    int failures_before;

    /* what the owner saw */
    json_t *msgs;
    int ups, downs;
    uint64_t up_at[MAX_EVENTS], down_at[MAX_EVENTS];
    char why[512];
    bool closed;           /* transport_close called */
    int calls_after_close; /* must stay 0 */
    bool close_in_message; /* call transport_close from the first message_cb */
};

static void on_message(void *owner, json_t *msg, void *related)
{
    struct fixture *f = owner;
    CHECK(related == NULL);
    if (f->closed)
        f->calls_after_close++;
    json_array_append(f->msgs, msg);
    if (f->close_in_message && !f->closed) {
        f->closed = true;
        f->t->ops->close(f->t);
    }
}

static void on_done(void *owner, void *related, int err, const char *why)
{
    struct fixture *f = owner;
    (void)related;
    (void)err;
    (void)why;
    CHECK(!"done_cb is never called for stdio");
    f->calls_after_close++;
}

static void on_state(void *owner, enum transport_state st, const char *why)
{
    struct fixture *f = owner;
    if (f->closed)
        f->calls_after_close++;
    snprintf(f->why, sizeof(f->why), "%s", why);
    CHECK_INT(f->t->ops->state(f->t), st);
    if (st == TRANSPORT_UP && f->ups < MAX_EVENTS)
        f->up_at[f->ups++] = uv_now(&f->loop);
    else if (st == TRANSPORT_DOWN && f->downs < MAX_EVENTS)
        f->down_at[f->downs++] = uv_now(&f->loop);
}

/* fx_init(f, command, arg..., NULL) */
static void fx_init(struct fixture *f, const char *command, ...)
{
    memset(f, 0, sizeof(*f));
    f->failures_before = test_failures_;
    CHECK_INT(uv_loop_init(&f->loop), 0);
    f->logfd = memfd_create("gh-test-log", 0);
    CHECK(f->logfd >= 0);
    log_set_fd(f->logfd);
    log_set_level(LOG_DEBUG);
    f->msgs = json_array();

    f->srv.name = strdup("test-srv");
    f->srv.transport = TRANSPORT_STDIO;
    f->srv.command = strdup(command);
    va_list ap;
    va_start(ap, command);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && f->srv.nargs < 7)
        f->args[f->srv.nargs++] = strdup(a);
    va_end(ap);
    f->srv.args = f->args;
    f->srv.restart_initial_ms = 5000; /* tests about restarts lower these */
    f->srv.restart_max_ms = 30000;
    f->srv.max_queue = 1 << 20;
    f->srv.max_message = 1 << 20;
}

static void fx_start(struct fixture *f)
{
    struct transport_cbs cbs = {
        .owner = f, .message_cb = on_message, .done_cb = on_done, .state_cb = on_state};
    f->t = stdio_transport_new(&f->loop, &f->srv, &cbs);
    CHECK(f->t != NULL);
    CHECK_INT(f->t->ops->state(f->t), TRANSPORT_STARTING);
}

static char *log_text(struct fixture *f)
{
    struct stat st;
    if (fstat(f->logfd, &st) != 0)
        return strdup("");
    char *s = calloc(1, (size_t)st.st_size + 1);
    ssize_t n = pread(f->logfd, s, (size_t)st.st_size, 0);
    (void)n;
    return s;
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void on_deadline(uv_timer_t *timer)
{
    *(bool *)timer->data = true;
}

/* Run the loop until pred(f) holds or ms pass; returns whether pred held. */
static bool wait_for(struct fixture *f, bool (*pred)(struct fixture *), unsigned ms)
{
    uv_timer_t timer;
    bool fired = false;
    uv_timer_init(&f->loop, &timer);
    timer.data = &fired;
    uv_timer_start(&timer, on_deadline, ms, 0);
    while (!pred(f) && !fired)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    return pred(f);
}

static bool is_up(struct fixture *f)
{
    return f->ups > 0 && f->t->ops->state(f->t) == TRANSPORT_UP;
}

static bool is_down(struct fixture *f)
{
    return f->downs > 0;
}

static size_t want_msgs;
static bool has_msgs(struct fixture *f)
{
    return json_array_size(f->msgs) >= want_msgs;
}

/* Close the transport (unless done already) and run the loop until it has freed itself;
   returns the milliseconds that took, or -1 if it did not within 6 s. */
static long fx_close_and_drain(struct fixture *f)
{
    uint64_t t0 = uv_hrtime();
    if (!f->closed) {
        f->closed = true;
        f->t->ops->close(f->t);
    }
    uv_timer_t watchdog;
    bool fired = false;
    uv_timer_init(&f->loop, &watchdog);
    watchdog.data = &fired;
    uv_timer_start(&watchdog, on_deadline, 6000, 0);
    uv_unref((uv_handle_t *)&watchdog); /* the transport's handles alone keep the loop alive */
    while (uv_loop_alive(&f->loop) && !fired)
        uv_run(&f->loop, UV_RUN_ONCE);
    CHECK(!fired);
    uv_close((uv_handle_t *)&watchdog, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    return fired ? -1 : (long)((uv_hrtime() - t0) / 1000000);
}

static void fx_release(struct fixture *f)
{
    CHECK_INT(f->calls_after_close, 0);
    CHECK_INT(uv_loop_close(&f->loop), 0); /* every handle closed: the transport freed itself */
    if (test_failures_ != f->failures_before) {
        char *log = log_text(f);
        fprintf(stderr, "---- transport log ----\n%s-----------------------\n", log);
        free(log);
    }
    log_set_fd(2);
    close(f->logfd);
    json_decref(f->msgs);
    free(f->srv.name);
    free(f->srv.command);
    for (size_t i = 0; i < f->srv.nargs; i++)
        free(f->args[i]);
    for (size_t i = 0; i < f->srv.nenv; i++) {
        free(f->env[i].key);
        free(f->env[i].value);
    }
}

static int send_text(struct fixture *f, const char *text)
{
    json_error_t je;
    json_t *m = json_loads(text, 0, &je);
    CHECK(m != NULL);
    int err = f->t->ops->send(f->t, m, NULL, NULL);
    json_decref(m);
    return err;
}

static const char *msg_str(struct fixture *f, size_t i, const char *key)
{
    return json_string_value(json_object_get(json_array_get(f->msgs, i), key));
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_echo_through_cat(void)
{
    struct fixture f;
    fx_init(&f, "cat", NULL);
    fx_start(&f);
    CHECK_INT(send_text(&f, "{\"early\":true}"), ERR_UNAVAILABLE); /* not spawned yet */
    CHECK(wait_for(&f, is_up, 3000));
    CHECK_CONTAINS(f.why, "started pid ");
    CHECK_INT(f.t->ops->listen(f.t), 0);
    f.t->ops->cancel(f.t, NULL);
    f.t->ops->set_protocol_version(f.t, "2025-11-25");
    f.t->ops->reset_session(f.t);

    const char *sent[] = {
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"x\",\"params\":{\"s\":\"two\\nlines\\r\\u00e9\"}}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"n\":[1,2,{}]}}",
    };
    for (size_t i = 0; i < 3; i++)
        CHECK_INT(send_text(&f, sent[i]), 0);
    json_t *scalar = json_integer(1);
    CHECK_INT(f.t->ops->send(f.t, scalar, NULL, NULL), ERR_INVAL);
    json_decref(scalar);

    want_msgs = 3;
    CHECK(wait_for(&f, has_msgs, 3000));
    for (size_t i = 0; i < 3 && i < json_array_size(f.msgs); i++) {
        json_t *want = json_loads(sent[i], 0, NULL);
        CHECK(json_equal(want, json_array_get(f.msgs, i)));
        json_decref(want);
    }
    CHECK_INT(f.t->ops->restarts(f.t), 0);

    /* cat exits when its stdin closes: no signal needed, and quick */
    long ms = fx_close_and_drain(&f);
    CHECK(ms >= 0 && ms < 450);
    char *log = log_text(&f);
    CHECK_CONTAINS(log, "\"event\":\"upstream_exited\"");
    CHECK(strstr(log, "\"signal\":\"TERM\"") == NULL);
    free(log);
    fx_release(&f);
}

static void test_garbage_lines_dropped(void)
{
    struct fixture f;
    fx_init(&f, "sh", "-c",
            "printf 'not json\\n[1,2]\\n42\\n\\r\\n\\n{\"a\":1,\"a\":2}\\n{\"ok\":1}\\r\\n'\n"
            "printf '{\"bad\":\"\\\\u0000\"}\\n\\377\\376{}\\n'\n"
            "printf '{\"part\":'; sleep 0.2; printf 'true}\\n'\n"
            "echo '{\"last\":1}'\n"
            "exec sleep 10",
            NULL);
    fx_start(&f);
    want_msgs = 4;
    CHECK(wait_for(&f, has_msgs, 3000));
    CHECK_INT(json_array_size(f.msgs), 4);
    CHECK(json_integer_value(json_object_get(json_array_get(f.msgs, 0), "ok")) == 1);
    /* \u0000 is JSON: delivered, the string keeps its length */
    CHECK_INT((int)json_string_length(json_object_get(json_array_get(f.msgs, 1), "bad")), 1);
    CHECK(json_is_true(json_object_get(json_array_get(f.msgs, 2), "part")));
    CHECK(json_integer_value(json_object_get(json_array_get(f.msgs, 3), "last")) == 1);
    CHECK_INT(f.downs, 0); /* garbage never stops the reading */
    CHECK(fx_close_and_drain(&f) >= 0);

    char *log = log_text(&f);
    CHECK_INT(count_of(log, "\"event\":\"upstream_bad_message\""), 5);
    CHECK_CONTAINS(log, "\"server\":\"test-srv\"");
    CHECK_CONTAINS(log, "batches are not allowed");
    CHECK_CONTAINS(log, "duplicate");
    CHECK_CONTAINS(log, "\"bytes\":8,"); /* the size of "not json", never its bytes */
    CHECK(strstr(log, "not json\"") == NULL);
    CHECK(strstr(log, "xfe{}") == NULL);
    free(log);
    fx_release(&f);
}

static void test_huge_line_skipped(void)
{
    struct fixture f;
    fx_init(&f, "sh", "-c",
            "head -c 100000 /dev/zero | tr '\\0' x; echo\n"
            "echo '{\"after\":1}'\n"
            "y=$(head -c 990 /dev/zero | tr '\\0' y)\n"
            "echo \"{\\\"big\\\":\\\"$y\\\"}\"\n"    /* exactly 1000 bytes: accepted */
            "echo \"{\\\"big\\\":\\\"${y}z\\\"}\"\n" /* 1001 bytes: dropped */
            "echo '{\"end\":1}'\n"
            "exec sleep 10",
            NULL);
    f.srv.max_message = 1000;
    fx_start(&f);
    want_msgs = 3;
    CHECK(wait_for(&f, has_msgs, 3000));
    CHECK_INT(json_array_size(f.msgs), 3);
    CHECK(json_object_get(json_array_get(f.msgs, 0), "after") != NULL);
    CHECK_INT(strlen(msg_str(&f, 1, "big") ? msg_str(&f, 1, "big") : ""), 990);
    CHECK(json_object_get(json_array_get(f.msgs, 2), "end") != NULL);
    CHECK(fx_close_and_drain(&f) >= 0);
    char *log = log_text(&f);
    CHECK_INT(count_of(log, "longer than max_message (1000 bytes)"), 2);
    CHECK(strstr(log, "xxxx") == NULL && strstr(log, "yyyy") == NULL);
    free(log);
    fx_release(&f);
}

static void test_stderr_forwarded_and_exit_status(void)
{
    struct fixture f;
    fx_init(&f, "sh", "-c",
            "echo hello >&2; printf 'caf\\303\\251\\r\\n' >&2; printf 'bin\\377\\n' >&2\n"
            "head -c 5000 /dev/zero | tr '\\0' e >&2; echo >&2\n"
            "printf partial >&2; exit 3",
            NULL);
    fx_start(&f);
    CHECK(wait_for(&f, is_down, 3000));
    CHECK_CONTAINS(f.why, "exited with status 3");
    CHECK(strstr(f.why, "stdout") == NULL);
    CHECK_INT(f.t->ops->state(f.t), TRANSPORT_DOWN);
    CHECK_INT(send_text(&f, "{}"), ERR_UNAVAILABLE);
    CHECK(fx_close_and_drain(&f) >= 0);
    char *log = log_text(&f);
    CHECK_CONTAINS(log, "\"event\":\"upstream_stderr\",\"server\":\"test-srv\",\"line\":\"hello\"");
    CHECK_CONTAINS(log, "\"line\":\"caf\\u00E9\"");
    CHECK_CONTAINS(log, "\"line\":\"bin\\\\xff\"");
    CHECK_CONTAINS(log, "\"truncated\":true");
    CHECK_CONTAINS(log, "\"line\":\"partial\"");
    CHECK_CONTAINS(log, "\"status\":3");
    free(log);
    fx_release(&f);
}

static bool five_spawns(struct fixture *f)
{
    return f->ups >= 5;
}

static void test_restart_backoff(void)
{
    struct fixture f;
    fx_init(&f, "sh", "-c", "exit 1", NULL);
    f.srv.restart_initial_ms = 50;
    f.srv.restart_max_ms = 200;
    fx_start(&f);
    CHECK(wait_for(&f, five_spawns, 5000));
    CHECK_INT(f.ups, 5);
    CHECK(f.downs >= 4);
    CHECK_INT(f.t->ops->restarts(f.t), 4);
    /* delays: 50, 100, 200, 200 (capped); jitter adds at most 10% and never passes the cap */
    static const long base[] = {50, 100, 200, 200};
    for (int i = 0; i < 4 && i + 1 < f.ups; i++) {
        long d = (long)(f.up_at[i + 1] - f.down_at[i]);
        if (d < base[i] - 2 || d > base[i] + base[i] / 10 + 150) {
            fprintf(stderr, "restart %d after %ld ms, expected about %ld\n", i + 1, d, base[i]);
            CHECK(!"back-off out of bounds");
        }
    }
    CHECK(fx_close_and_drain(&f) >= 0);
    char *log = log_text(&f);
    CHECK_CONTAINS(log, "\"event\":\"upstream_restart_scheduled\"");
    free(log);
    fx_release(&f);
}

static void test_no_tight_loop(void)
{
    struct fixture f;
    fx_init(&f, "false", NULL);
    f.srv.restart_initial_ms = 0;
    f.srv.restart_max_ms = 0;
    fx_start(&f);
    uv_timer_t timer;
    bool fired = false;
    uv_timer_init(&f.loop, &timer);
    timer.data = &fired;
    uv_timer_start(&timer, on_deadline, 600, 0);
    while (!fired)
        uv_run(&f.loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&timer, NULL);
    /* at least 50 ms between spawns, whatever the configuration says */
    CHECK(f.t->ops->restarts(f.t) >= 3);
    CHECK(f.t->ops->restarts(f.t) <= 12);
    CHECK(fx_close_and_drain(&f) >= 0);
    fx_release(&f);
}

static bool two_downs(struct fixture *f)
{
    return f->downs >= 2;
}

static void test_command_not_found(void)
{
    struct fixture f;
    fx_init(&f, "gh-no-such-command-xyz", "--flag", NULL);
    f.srv.restart_initial_ms = 50;
    fx_start(&f);
    CHECK(wait_for(&f, two_downs, 3000));
    CHECK_STR(f.why, "cannot start \"gh-no-such-command-xyz\": no such file or directory");
    CHECK_INT(f.ups, 0);
    CHECK_INT(f.t->ops->restarts(f.t), 1);
    CHECK_INT(send_text(&f, "{}"), ERR_UNAVAILABLE);
    CHECK(fx_close_and_drain(&f) >= 0);
    char *log = log_text(&f);
    CHECK_CONTAINS(log, "\"event\":\"upstream_spawn_failed\"");
    free(log);
    fx_release(&f);

    fx_init(&f, "/nonexistent/server", NULL);
    fx_start(&f);
    CHECK(wait_for(&f, is_down, 3000));
    CHECK_STR(f.why, "cannot start \"/nonexistent/server\": no such file or directory");
    CHECK(fx_close_and_drain(&f) >= 0);
    fx_release(&f);

    static char nodir[] = "/nonexistent-dir";
    fx_init(&f, "sh", "-c", "true", NULL);
    f.srv.cwd = nodir;
    fx_start(&f);
    CHECK(wait_for(&f, is_down, 3000));
    CHECK_STR(f.why, "cannot start \"sh\" in \"/nonexistent-dir\": no such file or directory");
    CHECK(fx_close_and_drain(&f) >= 0);
    fx_release(&f);
}

/* The process has exited: no such pid, or a zombie nobody has reaped yet. */
static bool gone_or_zombie(pid_t pid)
{
    char path[64], stat[256];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return true;
    size_t n = fread(stat, 1, sizeof(stat) - 1, fp);
    fclose(fp);
    stat[n] = '\0';
    const char *close_paren = strrchr(stat, ')'); /* "pid (comm) S ..." */
    return close_paren != NULL && close_paren[1] == ' ' && close_paren[2] == 'Z';
}

static void test_sigterm_ignored_group_killed(void)
{
    struct fixture f;
    /* Orphans of the killed group are re-parented to us, and reaped here, rather than left as
       zombies to an init that may not reap them (in a container). */
    CHECK_INT(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
    fx_init(&f, "sh", "-c",
            "trap '' TERM; sleep 30 & echo \"{\\\"gc\\\":$!}\"\n"
            "while :; do sleep 1; done",
            NULL);
    fx_start(&f);
    want_msgs = 1;
    CHECK(wait_for(&f, has_msgs, 3000));
    pid_t gc = (pid_t)json_integer_value(json_object_get(json_array_get(f.msgs, 0), "gc"));
    CHECK(gc > 0);
    CHECK_INT(kill(gc, 0), 0);

    long ms = fx_close_and_drain(&f);
    /* stdin closed, 500 ms, SIGTERM (ignored), 2000 ms, SIGKILL */
    CHECK(ms >= 2400 && ms < 4000);
    bool gone = false;
    for (int i = 0; i < 200 && !(gone = gone_or_zombie(gc)); i++)
        usleep(10000);
    CHECK(gone);
    while (waitpid(-1, NULL, WNOHANG) > 0) /* reap the orphans of the killed group */
        ;
    CHECK_INT(prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0), 0);

    char *log = log_text(&f);
    CHECK_CONTAINS(log, "\"signal\":\"TERM\"");
    CHECK_CONTAINS(log, "\"signal\":\"KILL\"");
    free(log);
    fx_release(&f);
}

static void test_stdout_closed_child_stopped(void)
{
    struct fixture f;
    fx_init(&f, "sh", "-c", "exec >&-; exec sleep 30", NULL);
    fx_start(&f);
    CHECK(wait_for(&f, is_down, 3000));
    CHECK_CONTAINS(f.why, "killed by SIGTERM after closing its stdout");
    CHECK(fx_close_and_drain(&f) >= 0);
    fx_release(&f);
}

static void test_queue_limit(void)
{
    struct fixture f;
    fx_init(&f, "sleep", "30", NULL); /* never reads its stdin */
    f.srv.max_queue = 4096;
    fx_start(&f);
    CHECK(wait_for(&f, is_up, 3000));

    char pad[991];
    memset(pad, 'p', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    json_t *m = json_pack("{s:s}", "pad", pad); /* 1000 bytes + '\n' on the wire */
    int ok = 0, err = 0;
    while (ok < 100 && (err = f.t->ops->send(f.t, m, NULL, NULL)) == 0)
        ok++;
    CHECK_INT(ok, 4);
    CHECK_INT(err, ERR_LIMIT);
    /* the bytes fit in the socket buffer: once the loop has run their callbacks, room again */
    uv_run(&f.loop, UV_RUN_NOWAIT);
    CHECK_INT(f.t->ops->send(f.t, m, NULL, NULL), 0);
    json_decref(m);

    char *big = calloc(1, 5000);
    memset(big, 'b', 4999);
    m = json_pack("{s:s}", "big", big);
    CHECK_INT(f.t->ops->send(f.t, m, NULL, NULL), ERR_LIMIT); /* larger than the whole queue */
    json_decref(m);
    free(big);
    CHECK(fx_close_and_drain(&f) >= 0);
    fx_release(&f);
}

static void test_close_inside_callback(void)
{
    struct fixture f;
    fx_init(&f, "cat", NULL);
    f.close_in_message = true;
    fx_start(&f);
    CHECK(wait_for(&f, is_up, 3000));
    /* two lines in one write: the second must not be delivered after close */
    CHECK_INT(send_text(&f, "{\"n\":1}"), 0);
    CHECK_INT(send_text(&f, "{\"n\":2}"), 0);
    want_msgs = 1;
    CHECK(wait_for(&f, has_msgs, 3000));
    CHECK(f.closed);
    CHECK(fx_close_and_drain(&f) >= 0);
    CHECK_INT(json_array_size(f.msgs), 1);
    fx_release(&f);
}

static void test_close_before_spawn_and_while_down(void)
{
    struct fixture f;
    fx_init(&f, "cat", NULL);
    fx_start(&f);
    long ms = fx_close_and_drain(&f); /* before the loop ever ran: nothing spawned */
    CHECK(ms >= 0 && ms < 100);
    CHECK_INT(f.ups + f.downs, 0);
    fx_release(&f);

    fx_init(&f, "sh", "-c", "exit 0", NULL);
    fx_start(&f);
    CHECK(wait_for(&f, is_down, 3000));
    CHECK_CONTAINS(f.why, "exited with status 0");
    ms = fx_close_and_drain(&f); /* the child is already gone; a restart is pending */
    CHECK(ms >= 0 && ms < 200);
    fx_release(&f);
}

static void test_env_and_cwd(void)
{
    struct fixture f;
    fx_init(&f, "sh", "-c",
            "printf '{\"v\":\"%s\",\"home\":\"%s\",\"pwd\":\"%s\",\"path\":\"%s\"}\\n' "
            "\"$GH_TEST_VAR\" \"$HOME\" \"$(pwd)\" \"${PATH:+set}\"; exec cat",
            NULL);
    f.env[0].key = strdup("GH_TEST_VAR");
    f.env[0].value = strdup("hello world");
    f.env[1].key = strdup("HOME");
    f.env[1].value = strdup("/nonexistent-home");
    f.srv.env = f.env;
    f.srv.nenv = 2;
    static char root[] = "/";
    f.srv.cwd = root;
    fx_start(&f);
    want_msgs = 1;
    CHECK(wait_for(&f, has_msgs, 3000));
    CHECK_STR(msg_str(&f, 0, "v"), "hello world");
    CHECK_STR(msg_str(&f, 0, "home"), "/nonexistent-home");
    CHECK_STR(msg_str(&f, 0, "pwd"), "/");
    CHECK_STR(msg_str(&f, 0, "path"), "set"); /* inherited */
    CHECK(fx_close_and_drain(&f) >= 0);
    fx_release(&f);
}

/* What the gateway adds to a child's environment at spawn (transport_new_ex): after the
   configured env, replacing it and the inherited one; kept for every respawn. */
static void test_spawn_outbound_env(void)
{
    struct fixture f;
    fx_init(&f, "sh", "-c",
            "printf '{\"v\":\"%s\",\"only\":\"%s\",\"home\":\"%s\"}\\n' "
            "\"$GH_TEST_VAR\" \"$GH_SPAWN_ONLY\" \"$HOME\"; exec cat",
            NULL);
    f.env[0].key = strdup("GH_TEST_VAR");
    f.env[0].value = strdup("configured");
    f.srv.env = f.env;
    f.srv.nenv = 1;
    struct outbound spawn;
    outbound_init(&spawn);
    CHECK_INT(outbound_add(&spawn, OUTBOUND_ENV, 0, "GH_TEST_VAR", "per user", 8), 0);
    CHECK_INT(outbound_add(&spawn, OUTBOUND_ENV, 0, "GH_SPAWN_ONLY", "yes", 3), 0);
    CHECK_INT(outbound_add(&spawn, OUTBOUND_ENV, 0, "HOME", "/home/alice", 11), 0);
    CHECK_INT(outbound_add(&spawn, OUTBOUND_HEADER, 0, "X-Not-Env", "1", 1), 0); /* ignored */
    CHECK_INT(outbound_add(&spawn, OUTBOUND_ENV, 0, "A=B", "1", 1), ERR_INVAL);
    struct transport_cbs cbs = {
        .owner = &f, .message_cb = on_message, .done_cb = on_done, .state_cb = on_state};
    f.t = stdio_transport_new_ex(&f.loop, &f.srv, &cbs, &spawn);
    outbound_release(&spawn); /* copied at creation */
    CHECK(f.t != NULL);
    want_msgs = 1;
    CHECK(wait_for(&f, has_msgs, 3000));
    CHECK_STR(msg_str(&f, 0, "v"), "per user");
    CHECK_STR(msg_str(&f, 0, "only"), "yes");
    CHECK_STR(msg_str(&f, 0, "home"), "/home/alice");
    CHECK(fx_close_and_drain(&f) >= 0);
    fx_release(&f);
}

TEST_MAIN(TEST(test_echo_through_cat), TEST(test_garbage_lines_dropped),
          TEST(test_huge_line_skipped), TEST(test_stderr_forwarded_and_exit_status),
          TEST(test_restart_backoff), TEST(test_no_tight_loop), TEST(test_command_not_found),
          TEST(test_sigterm_ignored_group_killed), TEST(test_stdout_closed_child_stopped),
          TEST(test_queue_limit), TEST(test_close_inside_callback),
          TEST(test_close_before_spawn_and_while_down), TEST(test_env_and_cwd),
          TEST(test_spawn_outbound_env))

/*
 * The stdio upstream transport: one MCP server run as a supervised child process, spoken to in
 * newline-delimited JSON-RPC on its stdin and stdout, its stderr forwarded line by line to the
 * log. The transport owns a sequence of "generations", one per child it starts:
 *
 *   spawn ──► UP ──► child exits ──► DOWN ──► back-off ──► spawn ──► …
 *
 * A generation is the child's process handle and its three pipes. It ends when the child has
 * exited and all four handles have closed; only then is the next child spawned (or the
 * transport freed, after transport_close). The child runs in a session and process group of its
 * own (UV_PROCESS_DETACHED makes it call setsid(2): it also loses our controlling terminal, so a
 * ^C at the gateway's terminal reaches the gateway alone, which then stops its children in
 * order). Signals always go to the whole group, so helpers a server starts die with it.
 *
 * Stopping a child, whether on transport_close or because it closed its stdout while still
 * alive: close its stdin (what the MCP spec asks a client to do first), SIGTERM the group after
 * STDIO_STDIN_GRACE_MS, SIGKILL it STDIO_TERM_GRACE_MS later. When the group leader exits on
 * its own, the rest of its group is SIGKILLed at once: a server that is gone has no helpers
 * worth keeping, and leaving them would run two copies after the restart. Its stdout and
 * stderr are still read to the end, for at most STDIO_DRAIN_MS: a last response is still
 * delivered (after the DOWN report), a partial last stderr line is still logged.
 *
 * Restart back-off: restart_initial_ms, doubled after each restart up to restart_max_ms, plus up
 * to 10% jitter (the result never exceeds restart_max_ms) and never below STDIO_RESTART_FLOOR_MS,
 * so a server that dies at once cannot make a tight loop. A child that stayed up for
 * STDIO_STABLE_MS before exiting is considered to have worked: the back-off starts over.
 */
#include "upstream/lines.h"
#include "upstream/transport-int.h"
#include "upstream/upstream.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"

extern char **environ;

#define STDIO_STDIN_GRACE_MS 500   /* after closing stdin, before SIGTERM */
#define STDIO_TERM_GRACE_MS 2000   /* after SIGTERM, before SIGKILL */
#define STDIO_DRAIN_MS 1000        /* reading stdout/stderr after the child exited */
#define STDIO_STABLE_MS 10000      /* uptime after which the back-off starts over */
#define STDIO_RESTART_FLOOR_MS 50  /* no restart sooner than this, whatever the config says */
#define STDIO_STDERR_LINE_MAX 4096 /* longer stderr lines are logged truncated */
#define STDIO_READ_BUF (64 * 1024)
#define STDIO_STDOUT_READ (8 * 1024) /* see on_alloc */
#define STDIO_DEFAULT_MAX_MESSAGE (16u * 1024 * 1024)
#define STDIO_DEFAULT_MAX_QUEUE (8u * 1024 * 1024)

enum stop_phase {
    STOP_NONE = 0, /* not stopping */
    STOP_STDIN,    /* stdin closed, waiting for the child to exit by itself */
    STOP_TERM,     /* SIGTERM sent to the group */
    STOP_KILL,     /* SIGKILL sent to the group */
};

struct stdio_transport {
    struct transport base; /* first: the public handle */
    uv_loop_t *loop;
    const struct config_server *srv;
    struct transport_cbs cbs;
    enum transport_state state;
    unsigned restarts;
    bool closing;       /* transport_close was called: no more callbacks, no restart */
    bool timers_closed; /* uv_close called on the three timers */
    unsigned open;      /* handles initialised whose close callback has not run yet */

    char **argv;             /* command, args..., NULL; strings borrowed from srv */
    char **envp;             /* owned */
    uint32_t backoff_ms;     /* the next restart delay, before jitter */
    uint32_t min_backoff_ms; /* restart_initial_ms, floored */
    uint32_t max_backoff_ms;
    uint64_t jitter_state;

    /* The current generation. */
    bool gen_active;   /* handles below are initialised (some may be closing) */
    bool exited;       /* the child is gone (or never started) */
    bool stdout_ended; /* stdout reached EOF or failed while the child was alive */
    bool write_failed; /* a write to stdin failed (logged once) */
    bool paused;       /* transport_pause: stdout is not read (back-pressure) */
    enum stop_phase stop;
    int pid;
    uint64_t started_at; /* uv_now at spawn */
    unsigned bad_lines;  /* refused stdout lines this generation (log throttling) */
    size_t queued;       /* bytes handed to uv_write whose callback has not run */
    uv_process_t proc;
    uv_pipe_t in, out, err;
    struct line_splitter out_lines, err_lines;

    uv_timer_t restart_timer; /* spawn; also the deferred first spawn */
    uv_timer_t stop_timer;    /* stop_phase steps */
    uv_timer_t drain_timer;   /* bound on reading after exit */

    char readbuf[STDIO_READ_BUF]; /* shared by stdout and stderr reads: libuv consumes each
                                     read in its callback before the next alloc */
};

struct stdio_write {
    uv_write_t req;
    struct stdio_transport *t;
    size_t len; /* counted in t->queued */
    char *text; /* from json_dumps */
};

static void spawn_child(struct stdio_transport *t);
static void progress(struct stdio_transport *t);

static struct stdio_transport *from_base(const struct transport *base)
{
    return (struct stdio_transport *)(uintptr_t)base;
}

static json_t *fields_new(const struct stdio_transport *t)
{
    json_t *f = json_object();
    if (f != NULL)
        json_object_set_new(f, "server", json_string(t->srv->name));
    return f;
}

/* {"event":event,"server":name,"msg":formatted} */
static void log_server(const struct stdio_transport *t, enum log_level level, const char *event,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void log_server(const struct stdio_transport *t, enum log_level level, const char *event,
                       const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *f = fields_new(t);
    json_object_set_new(f, "msg", json_string(msg));
    log_fields(level, event, f);
}

static void set_state(struct stdio_transport *t, enum transport_state st, const char *why)
{
    t->state = st;
    if (!t->closing && t->cbs.state_cb != NULL)
        t->cbs.state_cb(t->cbs.owner, st, why);
}

/* ---- handles --------------------------------------------------------------------------- */

static void on_closed(uv_handle_t *h)
{
    struct stdio_transport *t = h->data;
    t->open--;
    progress(t);
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, on_closed);
}

/* uv_close has been called on all four handles of the generation. */
static bool gen_handles_closed(const struct stdio_transport *t)
{
    return uv_is_closing((const uv_handle_t *)&t->proc) &&
           uv_is_closing((const uv_handle_t *)&t->in) &&
           uv_is_closing((const uv_handle_t *)&t->out) &&
           uv_is_closing((const uv_handle_t *)&t->err);
}

/* ---- process group signals ------------------------------------------------------------- */

static void signal_group(struct stdio_transport *t, int sig)
{
    if (t->pid <= 0)
        return;
    if (kill(-t->pid, sig) == 0) {
        json_t *f = fields_new(t);
        json_object_set_new(f, "pgid", json_integer(t->pid));
        json_object_set_new(f, "signal", json_string(sigabbrev_np(sig)));
        log_fields(LOG_INFO, "upstream_signal", f);
    } else if (errno != ESRCH) {
        log_server(t, LOG_WARN, "upstream_signal", "kill(-%d, SIG%s): %s", t->pid,
                   sigabbrev_np(sig), strerror(errno));
    }
}

static void on_stop_timer(uv_timer_t *timer)
{
    struct stdio_transport *t = timer->data;
    if (t->exited)
        return;
    if (t->stop == STOP_STDIN) {
        if (t->stdout_ended && !t->closing)
            log_server(t, LOG_WARN, "upstream_stdout_closed",
                       "pid %d closed its stdout but is still running; stopping it", t->pid);
        t->stop = STOP_TERM;
        signal_group(t, SIGTERM);
        uv_timer_start(&t->stop_timer, on_stop_timer, STDIO_TERM_GRACE_MS, 0);
    } else if (t->stop == STOP_TERM) {
        t->stop = STOP_KILL;
        signal_group(t, SIGKILL);
    }
}

/* Begin stopping a live child: close its stdin, then escalate on stop_timer. */
static void stop_child(struct stdio_transport *t)
{
    if (!t->gen_active || t->exited || t->stop != STOP_NONE)
        return;
    t->stop = STOP_STDIN;
    close_handle((uv_handle_t *)&t->in); /* pending writes end with UV_ECANCELED */
    uv_timer_start(&t->stop_timer, on_stop_timer, STDIO_STDIN_GRACE_MS, 0);
}

/* ---- stdout and stderr ----------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct stdio_transport *t = h->data;
    (void)suggested;
    /* stdout in smaller reads: back-pressure (transport_pause) stops the next read, but every
       line of the current one is delivered, so a read must not hold more messages than a
       stream has room for past its back-pressure mark (half of limits.replay_events). */
    size_t n = h == (uv_handle_t *)&t->out ? STDIO_STDOUT_READ : sizeof(t->readbuf);
    *b = uv_buf_init(t->readbuf, (unsigned)n);
}

static void bad_message(struct stdio_transport *t, const char *line, size_t len, const char *why)
{
    /* Log the first few, then every power of two, so a server spewing garbage cannot flood
       the log. Never the bytes themselves: they may be a tool's output, secrets and all. */
    t->bad_lines++;
    if (t->bad_lines <= 10 || (t->bad_lines & (t->bad_lines - 1)) == 0) {
        json_t *f = fields_new(t);
        json_object_set_new(f, "msg", json_string(why));
        json_object_set_new(f, "bytes", json_integer((json_int_t)len));
        json_object_set_new(f, "dropped", json_integer(t->bad_lines));
        log_fields(LOG_WARN, "upstream_bad_message", f);
    }
    if (t->cbs.bad_message_cb != NULL)
        t->cbs.bad_message_cb(t->cbs.owner, NULL, line_find_id(line, len), why);
}

static void on_stdout_line(void *arg, const char *line, size_t len, bool too_long)
{
    struct stdio_transport *t = arg;
    struct err_info ei;
    json_t *msg = NULL;

    if (t->closing)
        return;
    if (too_long) {
        char why[160];
        snprintf(why, sizeof(why), "a message longer than max_message (%zu bytes) was dropped",
                 t->out_lines.max_line);
        bad_message(t, line, len, why);
        return;
    }
    int err = line_parse_message(line, len, &msg, &ei);
    if (err) {
        bad_message(t, line, len, ei.msg);
        return;
    }
    t->cbs.message_cb(t->cbs.owner, msg, NULL);
    json_decref(msg);
}

static void on_stderr_line(void *arg, const char *line, size_t len, bool too_long)
{
    struct stdio_transport *t = arg;
    json_t *f = fields_new(t);
    json_t *s = json_stringn(line, len);
    if (s == NULL) { /* not UTF-8 */
        char esc[4 * STDIO_STDERR_LINE_MAX + 8];
        s = json_string(line_escape(esc, sizeof(esc), line, len, len));
    }
    json_object_set_new(f, "line", s);
    if (too_long)
        json_object_set_new(f, "truncated", json_true());
    log_fields(LOG_INFO, "upstream_stderr", f);
}

/*
 * The child's stdout is over: it can no longer answer. Usually it is exiting and its exit is
 * about to be reported; if not, it is stopped like on transport_close (the warning comes when
 * the grace period expires, so that an ordinary exit does not log one).
 */
static void stdout_ended(struct stdio_transport *t, const char *what)
{
    t->stdout_ended = true;
    if (!t->exited) {
        log_server(t, LOG_DEBUG, "upstream_stdout_closed", "%s (pid %d)", what, t->pid);
        stop_child(t);
    }
}

static void on_stdout_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct stdio_transport *t = s->data;
    if (nread > 0) {
        if (t->closing)
            return; /* read only to keep the child from blocking on a full pipe */
        if (line_splitter_feed(&t->out_lines, b->base, (size_t)nread, on_stdout_line, t) != 0)
            log_server(t, LOG_WARN, "upstream_bad_message",
                       "out of memory buffering a line; dropped");
        return;
    }
    if (nread == 0)
        return;
    line_splitter_finish(&t->out_lines, on_stdout_line, t);
    close_handle((uv_handle_t *)s);
    if (nread == UV_EOF) {
        stdout_ended(t, "end of stdout");
    } else {
        char what[128];
        snprintf(what, sizeof(what), "reading its stdout failed: %s", uv_strerror((int)nread));
        stdout_ended(t, what);
    }
}

static void on_stderr_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct stdio_transport *t = s->data;
    if (nread > 0) {
        (void)line_splitter_feed(&t->err_lines, b->base, (size_t)nread, on_stderr_line, t);
        return;
    }
    if (nread == 0)
        return;
    line_splitter_finish(&t->err_lines, on_stderr_line, t);
    close_handle((uv_handle_t *)s);
}

static void on_drain_timer(uv_timer_t *timer)
{
    struct stdio_transport *t = timer->data;
    /* Someone outside the group (a daemonised helper) still holds the pipes: stop waiting. */
    if (!uv_is_closing((uv_handle_t *)&t->out)) {
        line_splitter_finish(&t->out_lines, on_stdout_line, t);
        close_handle((uv_handle_t *)&t->out);
    }
    if (!uv_is_closing((uv_handle_t *)&t->err)) {
        line_splitter_finish(&t->err_lines, on_stderr_line, t);
        close_handle((uv_handle_t *)&t->err);
    }
}

/* ---- exit and restart ------------------------------------------------------------------ */

static void on_child_exit(uv_process_t *p, int64_t status, int term_signal)
{
    struct stdio_transport *t = p->data;
    char why[256];
    uint64_t uptime = uv_now(t->loop) - t->started_at;

    t->exited = true;
    uv_timer_stop(&t->stop_timer);
    signal_group(t, SIGKILL); /* helpers left behind by the leader */
    if (t->paused) {          /* what it wrote before it went is read (and bounded) as usual */
        t->paused = false;
        if (!uv_is_closing((uv_handle_t *)&t->out))
            (void)uv_read_start((uv_stream_t *)&t->out, on_alloc, on_stdout_read);
    }

    json_t *f = fields_new(t);
    json_object_set_new(f, "pid", json_integer(t->pid));
    if (term_signal != 0) {
        const char *name = sigabbrev_np(term_signal);
        json_object_set_new(f, "signal", json_string(name != NULL ? name : "?"));
        snprintf(why, sizeof(why), "pid %d killed by SIG%s", t->pid, name != NULL ? name : "?");
    } else {
        json_object_set_new(f, "status", json_integer((json_int_t)status));
        snprintf(why, sizeof(why), "pid %d exited with status %lld", t->pid, (long long)status);
    }
    if (t->stdout_ended && t->stop >= STOP_TERM && !t->closing)
        strncat(why, " after closing its stdout", sizeof(why) - strlen(why) - 1);
    json_object_set_new(f, "uptime_ms", json_integer((json_int_t)uptime));
    log_fields(t->closing ? LOG_INFO : LOG_WARN, "upstream_exited", f);

    if (uptime >= STDIO_STABLE_MS)
        t->backoff_ms = t->min_backoff_ms;
    close_handle((uv_handle_t *)&t->proc);
    close_handle((uv_handle_t *)&t->in);
    if (!uv_is_closing((uv_handle_t *)&t->out) || !uv_is_closing((uv_handle_t *)&t->err))
        uv_timer_start(&t->drain_timer, on_drain_timer, STDIO_DRAIN_MS, 0);
    set_state(t, TRANSPORT_DOWN, why); /* last: the owner may call transport_close */
}

static uint32_t next_delay(struct stdio_transport *t)
{
    uint32_t base = t->backoff_ms;
    /* xorshift64: jitter needs no more than to keep restarts of many servers apart */
    uint64_t x = t->jitter_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    t->jitter_state = x;
    uint64_t delay = base + (base >= 10 ? x % (base / 10 + 1) : 0);
    if (delay > t->max_backoff_ms)
        delay = t->max_backoff_ms;
    t->backoff_ms = base > t->max_backoff_ms / 2 ? t->max_backoff_ms : base * 2;
    return (uint32_t)delay;
}

static void on_restart_timer(uv_timer_t *timer)
{
    struct stdio_transport *t = timer->data;
    if (!t->closing && !t->gen_active)
        spawn_child(t);
}

static void free_transport(struct stdio_transport *t)
{
    line_splitter_release(&t->out_lines);
    line_splitter_release(&t->err_lines);
    if (t->envp != NULL) {
        for (char **e = t->envp; *e != NULL; e++)
            free(*e);
        free(t->envp);
    }
    free(t->argv);
    free(t);
    transport_live_dec();
}

/* Called whenever a handle has closed or closing began: move the lifecycle on. */
static void progress(struct stdio_transport *t)
{
    /* The generation is over once its four handles have closed: only the three timers remain
       open (they are closed only after the last generation). */
    if (t->gen_active && gen_handles_closed(t)) {
        if (t->open == 3) {
            t->gen_active = false;
            line_splitter_release(&t->out_lines);
            line_splitter_release(&t->err_lines);
            uv_timer_stop(&t->drain_timer);
            if (!t->closing) {
                uint32_t delay = next_delay(t);
                json_t *f = fields_new(t);
                json_object_set_new(f, "delay_ms", json_integer(delay));
                json_object_set_new(f, "restarts", json_integer(t->restarts));
                log_fields(LOG_INFO, "upstream_restart_scheduled", f);
                uv_timer_start(&t->restart_timer, on_restart_timer, delay, 0);
            }
        }
    }
    if (t->closing && !t->gen_active && !t->timers_closed) {
        t->timers_closed = true;
        close_handle((uv_handle_t *)&t->restart_timer);
        close_handle((uv_handle_t *)&t->stop_timer);
        close_handle((uv_handle_t *)&t->drain_timer);
    }
    if (t->closing && t->timers_closed && t->open == 0)
        free_transport(t);
}

static void spawn_child(struct stdio_transport *t)
{
    const struct config_server *srv = t->srv;
    uv_stdio_container_t stdio[3];
    uv_process_options_t opt;
    char why[512];

    if (t->state != TRANSPORT_STARTING)
        t->restarts++;
    t->gen_active = true;
    t->exited = false;
    t->stdout_ended = false;
    t->paused = false;
    t->write_failed = false;
    t->stop = STOP_NONE;
    t->pid = 0;
    t->bad_lines = 0;
    line_splitter_init(&t->out_lines,
                       srv->max_message ? srv->max_message : STDIO_DEFAULT_MAX_MESSAGE);
    line_splitter_init(&t->err_lines, STDIO_STDERR_LINE_MAX);

    uv_pipe_t *pipes[3] = {&t->in, &t->out, &t->err};
    for (int i = 0; i < 3; i++) {
        uv_pipe_init(t->loop, pipes[i], 0); /* cannot fail on unix */
        pipes[i]->data = t;
        t->open++;
        stdio[i].flags = UV_CREATE_PIPE | (i == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE);
        stdio[i].data.stream = (uv_stream_t *)pipes[i];
    }
    memset(&opt, 0, sizeof(opt));
    opt.exit_cb = on_child_exit;
    opt.file = srv->command;
    opt.args = t->argv;
    opt.env = t->envp;
    opt.cwd = srv->cwd;
    opt.flags = UV_PROCESS_DETACHED; /* setsid(): its own session and process group */
    opt.stdio_count = 3;
    opt.stdio = stdio;

    t->proc.data = t;
    int r = uv_spawn(t->loop, &t->proc, &opt);
    t->proc.data = t; /* uv_spawn initialises the handle, even when it fails */
    t->open++;
    t->started_at = uv_now(t->loop);
    if (r < 0) {
        if (srv->cwd != NULL)
            snprintf(why, sizeof(why), "cannot start \"%s\" in \"%s\": %s", srv->command, srv->cwd,
                     uv_strerror(r));
        else
            snprintf(why, sizeof(why), "cannot start \"%s\": %s", srv->command, uv_strerror(r));
        json_t *f = fields_new(t);
        json_object_set_new(f, "msg", json_string(why));
        log_fields(LOG_ERROR, "upstream_spawn_failed", f);
        t->exited = true;
        close_handle((uv_handle_t *)&t->proc);
        for (int i = 0; i < 3; i++)
            close_handle((uv_handle_t *)pipes[i]);
        set_state(t, TRANSPORT_DOWN, why);
        return;
    }
    t->pid = t->proc.pid;
    if (uv_read_start((uv_stream_t *)&t->err, on_alloc, on_stderr_read) < 0)
        close_handle((uv_handle_t *)&t->err);
    r = uv_read_start((uv_stream_t *)&t->out, on_alloc, on_stdout_read);
    if (r < 0) { /* cannot happen with a fresh pipe; if it does, this child is of no use */
        close_handle((uv_handle_t *)&t->out);
        stdout_ended(t, uv_strerror(r));
    }

    json_t *f = fields_new(t);
    json_object_set_new(f, "pid", json_integer(t->pid));
    json_object_set_new(f, "command", json_string(srv->command));
    json_object_set_new(f, "restarts", json_integer(t->restarts));
    log_fields(LOG_INFO, "upstream_started", f);
    snprintf(why, sizeof(why), "started pid %d", t->pid);
    set_state(t, TRANSPORT_UP, why);
}

/* ---- operations ------------------------------------------------------------------------ */

static void on_write(uv_write_t *req, int status)
{
    struct stdio_write *w = req->data;
    struct stdio_transport *t = w->t;
    t->queued -= w->len;
    free(w->text);
    free(w);
    if (status < 0 && status != UV_ECANCELED && !t->write_failed) {
        t->write_failed = true;
        if (!t->closing && !t->exited) {
            log_server(t, LOG_WARN, "upstream_write_failed",
                       "writing to the stdin of pid %d: %s; stopping it", t->pid,
                       uv_strerror(status));
            stop_child(t);
        }
    }
}

static int stdio_send(struct transport *base, json_t *msg, void *related,
                      const struct outbound *out)
{
    struct stdio_transport *t = from_base(base);
    struct stdio_write *w = NULL;
    char *text = NULL;
    int err = 0;
    (void)related;
    (void)out; /* a child has no headers; its environment is set at spawn (build_env) */

    if (t->closing || !t->gen_active || t->exited || t->stop != STOP_NONE ||
        t->state != TRANSPORT_UP) {
        err = ERR_UNAVAILABLE;
        goto out;
    }
    if (!json_is_object(msg)) {
        err = ERR_INVAL;
        goto out;
    }
    text = json_dumps(msg, JSON_COMPACT);
    if (text == NULL) {
        err = ERR_NOMEM;
        goto out;
    }
    size_t n = strlen(text);
    /* Compact JSON escapes every control character: a raw newline would split the message
       into two and let content choose what the server reads. */
    GH_ASSERT(memchr(text, '\n', n) == NULL);
    size_t max_queue = t->srv->max_queue ? t->srv->max_queue : STDIO_DEFAULT_MAX_QUEUE;
    if (n + 1 > max_queue || n + 1 > max_queue - t->queued) {
        err = ERR_LIMIT;
        goto out;
    }
    w = malloc(sizeof(*w));
    if (w == NULL) {
        err = ERR_NOMEM;
        goto out;
    }
    w->t = t;
    w->len = n + 1;
    w->text = text;
    w->req.data = w;
    uv_buf_t bufs[2] = {uv_buf_init(text, (unsigned)n), uv_buf_init((char *)(uintptr_t) "\n", 1)};
    int r = uv_write(&w->req, (uv_stream_t *)&t->in, bufs, 2, on_write);
    if (r < 0) {
        err = ERR_UNAVAILABLE;
        goto out;
    }
    t->queued += n + 1;
    text = NULL;
    w = NULL;
out:
    free(w);
    free(text);
    return err;
}

static void stdio_cancel(struct transport *base, void *related)
{
    (void)base;
    (void)related;
}

static void stdio_set_protocol_version(struct transport *base, const char *version)
{
    (void)base;
    (void)version;
}

static void stdio_reset_session(struct transport *base)
{
    (void)base;
}

static int stdio_listen(struct transport *base)
{
    (void)base;
    return 0;
}

static enum transport_state stdio_state(const struct transport *base)
{
    return from_base(base)->state;
}

static unsigned stdio_restarts(const struct transport *base)
{
    return from_base(base)->restarts;
}

static void stdio_close(struct transport *base)
{
    struct stdio_transport *t = from_base(base);
    GH_ASSERT(!t->closing);
    t->closing = true;
    t->state = TRANSPORT_STOPPED;
    uv_update_time(t->loop); /* the grace periods count from now, also outside a callback */
    uv_timer_stop(&t->restart_timer);
    if (t->gen_active && !t->exited)
        log_server(t, LOG_INFO, "upstream_stopping", "stopping pid %d", t->pid);
    else
        log_server(t, LOG_INFO, "upstream_stopping", "stopping (no child running)");
    stop_child(t);
    progress(t);
}

/* Back-pressure: one pipe carries every call, so pausing holds back the whole server until the
   slow client catches up (the child blocks on a full pipe; its stdin is still written). */
static void stdio_pause(struct transport *base, void *related, bool on)
{
    struct stdio_transport *t = from_base(base);
    (void)related;
    if (t->closing || !t->gen_active || t->exited || t->stdout_ended || t->paused == on ||
        uv_is_closing((uv_handle_t *)&t->out))
        return;
    t->paused = on;
    if (on)
        uv_read_stop((uv_stream_t *)&t->out);
    else if (uv_read_start((uv_stream_t *)&t->out, on_alloc, on_stdout_read) < 0)
        t->paused = false;
}

static const struct transport_ops stdio_ops = {
    .send = stdio_send,
    .cancel = stdio_cancel,
    .pause = stdio_pause,
    .set_protocol_version = stdio_set_protocol_version,
    .reset_session = stdio_reset_session,
    .listen = stdio_listen,
    .state = stdio_state,
    .restarts = stdio_restarts,
    .close = stdio_close,
};

/* ---- construction ---------------------------------------------------------------------- */

static bool env_key_eq(const char *entry, const char *key)
{
    size_t k = strlen(key);
    return strncmp(entry, key, k) == 0 && entry[k] == '=';
}

/* Is `key` set by an OUTBOUND_ENV entry of spawn at index > after (-1: any)? */
static bool spawn_sets(const struct outbound *spawn, const char *key, long after)
{
    for (size_t i = 0; spawn != NULL && i < spawn->n; i++)
        if ((long)i > after && spawn->v[i].where == OUTBOUND_ENV &&
            strcmp(spawn->v[i].name, key) == 0)
            return true;
    return false;
}

/* The inherited environment with srv->env, then spawn's OUTBOUND_ENV entries, added or
   replacing (the last one of a key wins); NULL on allocation failure. */
static char **build_env(const struct config_server *srv, const struct outbound *spawn)
{
    size_t n = 0, o = 0;
    size_t nspawn = outbound_count(spawn, OUTBOUND_ENV);
    while (environ != NULL && environ[n] != NULL)
        n++;
    char **env = calloc(n + srv->nenv + nspawn + 1, sizeof(*env));
    if (env == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        bool replaced = false;
        for (size_t j = 0; j < srv->nenv && !replaced; j++)
            replaced = env_key_eq(environ[i], srv->env[j].key);
        for (size_t j = 0; spawn != NULL && j < spawn->n && !replaced; j++)
            replaced =
                spawn->v[j].where == OUTBOUND_ENV && env_key_eq(environ[i], spawn->v[j].name);
        if (replaced)
            continue;
        if ((env[o++] = strdup(environ[i])) == NULL)
            goto fail;
    }
    for (size_t j = 0; j < srv->nenv; j++) {
        bool later = spawn_sets(spawn, srv->env[j].key, -1); /* a key given twice: the last wins */
        for (size_t k = j + 1; k < srv->nenv && !later; k++)
            later = strcmp(srv->env[j].key, srv->env[k].key) == 0;
        if (later)
            continue;
        if (asprintf(&env[o], "%s=%s", srv->env[j].key, srv->env[j].value) < 0) {
            env[o] = NULL;
            goto fail;
        }
        o++;
    }
    for (size_t j = 0; spawn != NULL && j < spawn->n; j++) {
        const struct outbound_entry *e = &spawn->v[j];
        if (e->where != OUTBOUND_ENV || spawn_sets(spawn, e->name, (long)j))
            continue;
        if (strlen(e->value) != e->value_len) /* a NUL cannot be in an environment value */
            goto fail;
        if (asprintf(&env[o], "%s=%s", e->name, e->value) < 0) {
            env[o] = NULL;
            goto fail;
        }
        o++;
    }
    return env;
fail:
    for (size_t i = 0; i < o; i++)
        free(env[i]);
    free(env);
    return NULL;
}

/* A gateway must not die because a child closed its stdin: writes then fail with EPIPE, which
   libuv reports, instead of raising SIGPIPE. Left alone if the program chose a handler. */
static void ignore_sigpipe(void)
{
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_IGN;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGPIPE, &sa, NULL);
    }
}

struct transport *stdio_transport_new(uv_loop_t *loop, const struct config_server *srv,
                                      const struct transport_cbs *cbs)
{
    return stdio_transport_new_ex(loop, srv, cbs, NULL);
}

struct transport *stdio_transport_new_ex(uv_loop_t *loop, const struct config_server *srv,
                                         const struct transport_cbs *cbs,
                                         const struct outbound *spawn)
{
    struct stdio_transport *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->base.ops = &stdio_ops;
    t->loop = loop;
    t->srv = srv;
    t->cbs = *cbs;
    t->state = TRANSPORT_STARTING;
    t->backoff_ms = srv->restart_initial_ms;
    if (t->backoff_ms < STDIO_RESTART_FLOOR_MS)
        t->backoff_ms = STDIO_RESTART_FLOOR_MS;
    t->min_backoff_ms = t->backoff_ms;
    t->max_backoff_ms = srv->restart_max_ms > t->backoff_ms ? srv->restart_max_ms : t->backoff_ms;
    t->jitter_state = uv_hrtime() ^ (uint64_t)(uintptr_t)t ^ 0x9e3779b97f4a7c15ull;
    line_splitter_init(&t->out_lines, 1);
    line_splitter_init(&t->err_lines, 1);

    t->argv = calloc(srv->nargs + 2, sizeof(*t->argv));
    t->envp = build_env(srv, spawn);
    if (t->argv == NULL || t->envp == NULL) {
        free_transport(t);
        return NULL;
    }
    t->argv[0] = srv->command;
    for (size_t i = 0; i < srv->nargs; i++)
        t->argv[i + 1] = srv->args[i];

    ignore_sigpipe();
    uv_timer_t *timers[3] = {&t->restart_timer, &t->stop_timer, &t->drain_timer};
    for (int i = 0; i < 3; i++) {
        uv_timer_init(loop, timers[i]);
        timers[i]->data = t;
        t->open++;
    }
    /* Spawn from the loop, not from here: the owner gets its pointer before any callback. */
    uv_timer_start(&t->restart_timer, on_restart_timer, 0, 0);
    transport_live_inc();
    return &t->base;
}

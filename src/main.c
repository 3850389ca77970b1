/*
 * The gatehouse command. `main` only parses the command line and starts things; everything it
 * calls lives in the internal library.
 *
 *   gatehouse [run] [-c FILE] [--share]   start the gateway
 *   gatehouse check-config [FILE]    validate a configuration and exit
 *   gatehouse openapi inspect FILE [--overlay FILE]... [--overrides FILE] [--json]
 *                                    the MCP tools an OpenAPI document would become
 *                                    (--project TOOL: what a model reads of the response on
 *                                    stdin)
 *   gatehouse user|team|account|apikey|client|revoke|keys ...
 *                                    administration of the store (src/admin/cli.c)
 *   gatehouse version
 */
#include "admin/cli.h"
#include "config/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/rand.h"
#include "http/server.h"
#include "mcp/gateway.h"
#include "mcp/session.h"
#include "openapi/openapi.h"
#include "upstream/upstream.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define STARTUP_WAIT_MS 30000
#define SWEEP_INTERVAL_MS 10000

static const char config_rule[] =
    "Every command reads one configuration file: -c FILE, else $GATEHOUSE_CONFIG, else\n"
    "./gatehouse.yaml when it exists, else none (the built-in defaults: 127.0.0.1:8080, no\n"
    "servers, store ./gatehouse.db). Relative paths in the file are relative to its folder.\n";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: gatehouse [run] [-c FILE] [--share]\n"
            "                                     start the gateway (bare `gatehouse` means run)\n"
            "       gatehouse check-config [FILE] validate a configuration file\n"
            "       gatehouse openapi inspect FILE [--overlay FILE]... [--overrides FILE]\n"
            "                                     [--json | --discovery MODE | --project TOOL]\n"
            "                                     the MCP tools an OpenAPI document becomes\n"
            "                                     (--project: what a model reads of the JSON\n"
            "                                     response of TOOL on standard input)\n"
            "       gatehouse version\n");
    admin_cli_usage(out);
    fprintf(out, "%s", config_rule);
    fprintf(out, "Every command answers --help. Exit codes: 0 done, 1 refused, 2 usage error.\n"
                 "Reference: docs/cli.md\n");
}

static bool is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

static int run_usage(FILE *out)
{
    fprintf(out,
            "usage: gatehouse [run] [-c FILE] [--share]\n"
            "Start the gateway and serve until SIGTERM or Ctrl-C (SIGHUP reloads the file).\n"
            "  -c, --config FILE  the configuration file\n"
            "  --share            join listeners another process already serves on the same\n"
            "                     address and port (a zero-downtime restart); without it a port\n"
            "                     in use is refused with \"address in use\"\n"
            "%s",
            config_rule);
    return out == stdout ? 0 : 2;
}

static int check_usage(FILE *out)
{
    fprintf(out,
            "usage: gatehouse check-config [FILE | -c FILE]\n"
            "Validate a configuration file as `run` would load it, and exit: 0 and \"ok\" when it\n"
            "is valid (warnings, such as a stdio command that is not there, on stderr), 1 with\n"
            "the place and the cause when it is not.\n"
            "%s",
            config_rule);
    return out == stdout ? 0 : 2;
}

static int openapi_usage(FILE *out)
{
    fprintf(
        out,
        "usage: gatehouse openapi inspect FILE [--overlay FILE]... [--overrides FILE]\n"
        "                                 [--json | --discovery MODE | --project TOOL]\n"
        "The MCP tools an OpenAPI document becomes, as the gateway would serve them.\n"
        "  --overlay FILE     an OpenAPI Overlay applied first (repeatable, in order)\n"
        "  --overrides FILE   the editorial file (names, descriptions, hidden operations)\n"
        "  --json             the tools as JSON\n"
        "  --discovery MODE   the tools/list of a discovery mode: static, hierarchical, search\n"
        "  --project TOOL     what a model reads of TOOL's JSON response given on stdin\n");
    return out == stdout ? 0 : 2;
}

/* The configuration file by the one rule (config_locate), loaded; the built-in defaults when
   there is none. *path_out is the file or NULL. */
static int load_located(const char *given, const char **path_out, struct config **cfg)
{
    const char *how;
    const char *path = config_locate(given, &how);
    struct err_info ei = {0};
    int err = path ? config_load_file(path, cfg, &ei)
                   : config_load_string("{}", 2, "<built-in defaults>", cfg, &ei);
    if (err) {
        fprintf(stderr, "gatehouse: %s\n", ei.msg[0] ? ei.msg : err_str(err));
        if (path && strcmp(how, "-c") != 0)
            fprintf(stderr, "gatehouse: (%s was chosen by %s; give another with -c FILE)\n", path,
                    how);
        return err;
    }
    *path_out = path;
    return 0;
}

/* true when an executable `name` is in one of the folders of $PATH */
static bool in_path(const char *name)
{
    const char *p = getenv("PATH");
    char file[4096];
    while (p && *p) {
        size_t n = strcspn(p, ":");
        if (snprintf(file, sizeof(file), "%.*s/%s", (int)n, n ? p : ".", name) <
                (int)sizeof(file) &&
            access(file, X_OK) == 0)
            return true;
        p += n + (p[n] == ':');
    }
    return false;
}

/* Warnings about what a valid file names but `run` would not find: on stderr, exit still 0. */
static size_t check_warnings(const struct config *cfg)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->nservers; i++) {
        const struct config_server *s = &cfg->servers[i];
        char file[4096];
        if (s->transport == TRANSPORT_STDIO && strchr(s->command, '/'))
            snprintf(file, sizeof(file), "%s%s%s", s->command[0] == '/' || !s->cwd ? "" : s->cwd,
                     s->command[0] == '/' || !s->cwd ? "" : "/", s->command);
        if (s->transport == TRANSPORT_STDIO && strchr(s->command, '/') && access(file, X_OK) != 0) {
            fprintf(stderr, "gatehouse: warning: server \"%s\": command %s: %s\n", s->name, file,
                    strerror(errno));
            n++;
        } else if (s->transport == TRANSPORT_STDIO && !strchr(s->command, '/') &&
                   !in_path(s->command)) {
            fprintf(stderr, "gatehouse: warning: server \"%s\": command \"%s\" is not in PATH\n",
                    s->name, s->command);
            n++;
        }
        if (s->transport == TRANSPORT_STDIO && s->cwd && access(s->cwd, X_OK) != 0) {
            fprintf(stderr, "gatehouse: warning: server \"%s\": cwd %s: %s\n", s->name, s->cwd,
                    strerror(errno));
            n++;
        }
        if (s->transport == TRANSPORT_OPENAPI && !strstr(s->spec, "://") &&
            access(s->spec, R_OK) != 0) {
            fprintf(stderr, "gatehouse: warning: server \"%s\": spec %s: %s\n", s->name, s->spec,
                    strerror(errno));
            n++;
        }
    }
    return n;
}

static int cmd_check_config(int argc, char **argv)
{
    const char *given = NULL;
    for (int i = 0; i < argc; i++) {
        if (is_help(argv[i]))
            return check_usage(stdout);
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc &&
            given == NULL)
            given = argv[++i];
        else if (argv[i][0] != '-' && given == NULL)
            given = argv[i];
        else {
            fprintf(stderr, "gatehouse: unexpected argument \"%s\"\n", argv[i]);
            return check_usage(stderr);
        }
    }
    struct config *cfg;
    const char *path;
    if (load_located(given, &path, &cfg) != 0)
        return 1;
    const char *name = path ? path : "(no configuration file: the built-in defaults)";
    struct err_info ei = {0};
    if (server_check_tls(cfg, &ei) != 0) { /* what `run` would refuse, check-config refuses too */
        fprintf(stderr, "gatehouse: %s: %s\n", name, ei.msg);
        config_unref(cfg);
        return 1;
    }
    size_t warnings = check_warnings(cfg);
    printf("%s: ok (%zu listener(s), %zu server(s)", name, cfg->nlisteners, cfg->nservers);
    if (warnings)
        printf(", %zu warning(s) on stderr", warnings);
    printf(")\n");
    config_unref(cfg);
    return 0;
}

static int cmd_openapi(int argc, char **argv)
{
    const char *file = NULL, *overrides = NULL, *overlays[16];
    size_t noverlays = 0;
    bool json = false;
    int mode = -1;              /* --discovery: print the tools/list of that mode */
    const char *project = NULL; /* --project TOOL: project the response on stdin */
    for (int i = 0; i < argc; i++)
        if (is_help(argv[i]))
            return openapi_usage(stdout);
    if (argc < 1 || strcmp(argv[0], "inspect") != 0) {
        if (argc >= 1)
            fprintf(stderr, "gatehouse: unknown command \"openapi %s\"\n", argv[0]);
        return openapi_usage(stderr);
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--overrides") == 0 && i + 1 < argc && overrides == NULL) {
            overrides = argv[++i];
        } else if (strcmp(argv[i], "--overlay") == 0 && i + 1 < argc &&
                   noverlays < sizeof(overlays) / sizeof(overlays[0])) {
            overlays[noverlays++] = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--discovery") == 0 && i + 1 < argc && mode < 0) {
            if ((mode = openapi_discovery_mode_parse(argv[++i])) < 0) {
                fprintf(stderr,
                        "gatehouse: unknown discovery mode \"%s\"; expected static, "
                        "hierarchical or search\n",
                        argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--project") == 0 && i + 1 < argc && project == NULL) {
            project = argv[++i];
        } else if (argv[i][0] != '-' && file == NULL) {
            file = argv[i];
        } else {
            fprintf(stderr, "gatehouse: unexpected argument \"%s\"\n", argv[i]);
            return openapi_usage(stderr);
        }
    }
    if (file == NULL) {
        return openapi_usage(stderr);
    }
    if ((json && mode >= 0) || (project && (json || mode >= 0))) {
        return openapi_usage(stderr);
    }
    const struct openapi_sources src = {
        .spec = file, .overlays = overlays, .noverlays = noverlays, .overrides = overrides};
    if (project)
        return openapi_inspect_project(&src, project, stdin, stdout, stderr) ? 1 : 0;
    int err = mode >= 0 ? openapi_inspect_discovery(&src, (enum openapi_discovery_mode)mode, stdout)
              : json    ? openapi_inspect_json(&src, stdout)
                        : openapi_inspect(&src, stdout);
    return err ? 1 : 0;
}

struct runtime {
    const char *path;
    struct config *cfg;
    struct server *srv;
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t sweep;
    bool stopping;
};

static void on_stop_signal(uv_signal_t *h, int signum)
{
    struct runtime *rt = h->data;
    if (rt->stopping)
        return;
    rt->stopping = true;
    log_info("shutdown", "signal %d: draining (at most %u ms)", signum, rt->cfg->shutdown_grace_ms);
    uv_stop(h->loop);
}

static bool listeners_differ(const struct config *a, const struct config *b)
{
    if (a->nlisteners != b->nlisteners || a->workers != b->workers || a->http2 != b->http2 ||
        a->max_body != b->max_body)
        return true;
    for (size_t i = 0; i < a->nlisteners; i++) {
        const struct config_listener *x = &a->listeners[i], *y = &b->listeners[i];
        if (strcmp(x->address, y->address) != 0 || x->port != y->port ||
            (x->tls_cert == NULL) != (y->tls_cert == NULL) ||
            (x->tls_cert && strcmp(x->tls_cert, y->tls_cert) != 0) ||
            (x->tls_key && y->tls_key && strcmp(x->tls_key, y->tls_key) != 0) ||
            x->tls_min_version != y->tls_min_version ||
            (x->tls_client_ca == NULL) != (y->tls_client_ca == NULL) ||
            (x->tls_client_ca && strcmp(x->tls_client_ca, y->tls_client_ca) != 0))
            return true;
    }
    return false;
}

static void on_reload_signal(uv_signal_t *h, int signum)
{
    struct runtime *rt = h->data;
    struct config *cfg;
    struct err_info ei = {0};
    /* The listeners' certificates first, and whatever becomes of the configuration: a renewed
       certificate must not wait for a configuration that loads (tls_reload log lines). */
    server_reload_tls(rt->srv);
    if (rt->path == NULL) {
        log_warn("reload", "no configuration file to reload (the built-in defaults are in force)");
        return;
    }
    int err = config_load_file(rt->path, &cfg, &ei);
    if (err) {
        log_error("reload", "configuration not reloaded, the running one stays in force: %s",
                  ei.msg[0] ? ei.msg : err_str(err));
        return;
    }
    if ((err = gateway_reload(cfg, &ei)) != 0) {
        log_error("reload", "servers not reloaded, the running ones stay in force: %s",
                  ei.msg[0] ? ei.msg : err_str(err));
        config_unref(cfg);
        return;
    }
    enum log_level lvl;
    if (log_level_parse(cfg->log_level, &lvl) == 0)
        log_set_level(lvl);
    server_reconfigure(rt->srv, cfg);
    session_table_init(cfg->max_sessions, cfg->session_idle_ms, cfg->replay_events);
    const struct config_redis *r0 = &rt->cfg->redis, *r1 = &cfg->redis;
    if ((r0->url == NULL) != (r1->url == NULL) ||
        (r0->url != NULL && (strcmp(r0->url, r1->url) != 0 || strcmp(r0->prefix, r1->prefix) != 0 ||
                             r0->revocation_poll_ms != r1->revocation_poll_ms)))
        log_warn("reload", "the redis section changed in %s; it takes effect on restart", rt->path);
    if (listeners_differ(rt->cfg, cfg))
        log_warn(
            "reload",
            "the listeners, workers or http2 setting changed in %s; they take effect on restart",
            rt->path);
    log_info(
        "reload",
        "configuration reloaded from %s (servers, log level, allowed hosts and origins, limits)",
        rt->path);
    config_unref(rt->cfg);
    rt->cfg = cfg;
}

static void on_sweep(uv_timer_t *t)
{
    session_table_sweep();
}

static void print_banner(struct runtime *rt)
{
    const struct config *cfg = rt->cfg;
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct config_listener *l = &cfg->listeners[i];
        const char *scheme = l->tls_cert ? "https" : "http";
        int v6 = strchr(l->address, ':') != NULL;
        char url[300];
        snprintf(url, sizeof(url), "%s://%s%s%s:%u/mcp", scheme, v6 ? "[" : "", l->address,
                 v6 ? "]" : "", server_port(rt->srv, i));
        json_t *f = json_pack("{s:s, s:s, s:i}", "url", url, "address", l->address, "port",
                              server_port(rt->srv, i));
        if (rt->path)
            json_object_set_new(f, "config", json_string(rt->path));
        log_fields_always(LOG_INFO, "listening", f); /* shown at every log level */
        printf("Gatehouse %s is listening. Point an MCP client at:\n  %s\n", GATEHOUSE_VERSION,
               url);
    }
    if (rt->path)
        printf("Configuration: %s\n", rt->path);
    else
        printf("Configuration: none (no -c FILE, no $GATEHOUSE_CONFIG, no ./gatehouse.yaml): the "
               "built-in defaults\n");
    for (size_t i = 0; i < cfg->nservers; i++) {
        const struct config_server *s = &cfg->servers[i];
        printf("  /mcp/%s  (%s: %s)\n", s->name, config_transport_str(s->transport),
               s->transport == TRANSPORT_STDIO  ? s->command
               : s->transport == TRANSPORT_HTTP ? s->url
                                                : s->spec);
    }
    printf(
        "Health: /healthz  Readiness: /readyz  Metrics: /metrics  (Ctrl-C or SIGTERM stops, SIGHUP reloads)\n");
    fflush(stdout);
}

static int cmd_run(int argc, char **argv)
{
    struct runtime rt = {0};
    const char *given = NULL;
    bool share = false;
    for (int i = 0; i < argc; i++) {
        if (is_help(argv[i]))
            return run_usage(stdout);
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            given = argv[++i];
        } else if (strcmp(argv[i], "--share") == 0) {
            share = true;
        } else {
            fprintf(stderr, "gatehouse: unexpected argument \"%s\" for run\n", argv[i]);
            return run_usage(stderr);
        }
    }
    if (load_located(given, &rt.path, &rt.cfg) != 0)
        return 1;
    if (share) /* the snapshot is not shared yet: the command line completes it */
        for (size_t i = 0; i < rt.cfg->nlisteners; i++)
            rt.cfg->listeners[i].share = true;
    enum log_level lvl;
    if (log_level_parse(rt.cfg->log_level, &lvl) == 0)
        log_set_level(lvl);
    signal(SIGPIPE, SIG_IGN);
    if (core_init() != 0 || upstream_global_init() != 0) {
        fprintf(stderr, "gatehouse: could not initialise libsodium or libcurl\n");
        return 1;
    }
    session_table_init(rt.cfg->max_sessions, rt.cfg->session_idle_ms, rt.cfg->replay_events);

    struct err_info ei = {0};
    int err = server_new(rt.cfg, &rt.srv, &ei);
    if (err) {
        fprintf(stderr, "gatehouse: %s\n", ei.msg[0] ? ei.msg : err_str(err));
        config_unref(rt.cfg);
        return 1;
    }
    int rc = 0;
    unsigned nworkers;
    if ((err = server_start(rt.srv)) != 0) {
        fprintf(stderr, "gatehouse: cannot start the workers: %s\n", err_str(err));
        rc = 1;
        goto out;
    }
    struct mcp_worker **workers = server_workers(rt.srv, &nworkers);
    if ((err = gateway_start(rt.cfg, workers, nworkers)) != 0) {
        fprintf(stderr, "gatehouse: cannot start the servers: %s\n", err_str(err));
        rc = 1;
        goto stop;
    }
    mcp_xr_start(); /* with Redis: server-to-client traffic across replicas */
    if (gateway_wait_ready(STARTUP_WAIT_MS, &ei) != 0) {
        fprintf(stderr, "gatehouse: %s\n", ei.msg);
        rc = 1;
        goto stop;
    }
    if (!gateway_ready())
        log_warn("startup",
                 "not every server is ready; see /readyz (the others are served meanwhile)");
    /* The handlers first: a script may send SIGTERM as soon as it reads "listening". */
    uv_loop_t *loop = uv_default_loop();
    uv_signal_init(loop, &rt.sigterm);
    uv_signal_init(loop, &rt.sigint);
    uv_signal_init(loop, &rt.sighup);
    rt.sigterm.data = rt.sigint.data = rt.sighup.data = &rt;
    uv_signal_start(&rt.sigterm, on_stop_signal, SIGTERM);
    uv_signal_start(&rt.sigint, on_stop_signal, SIGINT);
    uv_signal_start(&rt.sighup, on_reload_signal, SIGHUP);
    server_listen(rt.srv);
    print_banner(&rt);
    uv_timer_init(loop, &rt.sweep);
    rt.sweep.data = &rt;
    uv_timer_start(&rt.sweep, on_sweep, SWEEP_INTERVAL_MS, SWEEP_INTERVAL_MS);
    uv_run(loop, UV_RUN_DEFAULT);

    server_drain(rt.srv, rt.cfg->shutdown_grace_ms);
    uv_close((uv_handle_t *)&rt.sigterm, NULL);
    uv_close((uv_handle_t *)&rt.sigint, NULL);
    uv_close((uv_handle_t *)&rt.sighup, NULL);
    uv_close((uv_handle_t *)&rt.sweep, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
stop:
    /* Calls still in flight are answered "shutting down" by the engine; give the writers a
       moment to send that, then end every stream by closing the sessions. */
    mcp_xr_stop();
    gateway_stop();
    server_wait_idle(rt.srv, 1000);
out:
    session_table_close_all();
    server_free(rt.srv);
    gateway_free();
    config_unref(rt.cfg);
    log_info("shutdown", "stopped");
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return cmd_run(0, NULL);
    const char *cmd = argv[1];
    if (strcmp(cmd, "help") == 0 && argc >= 3 && argc <= 5) { /* help user add: user add --help */
        static char help[] = "--help";
        char *v[6] = {argv[0]};
        int n = 1;
        for (int i = 2; i < argc; i++)
            v[n++] = argv[i];
        v[n++] = help;
        return main(n, v);
    }
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 2, argv + 2);
    if (strcmp(cmd, "-c") == 0 || strcmp(cmd, "--config") == 0) {
        if (argc >= 4 && admin_cli_handles(argv[3])) /* gatehouse -c FILE user list */
            return admin_cli_main(argc - 1, argv + 1);
        if (argc >= 4 && strcmp(argv[3], "check-config") == 0) /* gatehouse -c FILE check-config */
            return cmd_check_config(2, argv + 1);
        if (argc >= 4 && strcmp(argv[3], "run") == 0) { /* gatehouse -c FILE run ... */
            argv[3] = argv[2];                          /* -c FILE run ...: run -c FILE ... */
            argv[2] = argv[1];
            return cmd_run(argc - 2, argv + 2);
        }
        return cmd_run(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "--share") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "check-config") == 0)
        return cmd_check_config(argc - 2, argv + 2);
    if (strcmp(cmd, "openapi") == 0)
        return cmd_openapi(argc - 2, argv + 2);
    if (admin_cli_handles(cmd))
        return admin_cli_main(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        if (argc >= 3 && is_help(argv[2])) {
            printf("usage: gatehouse version\nPrint the version of gatehouse.\n");
            return 0;
        }
        printf("gatehouse %s\n", GATEHOUSE_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || is_help(cmd)) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "gatehouse: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 2;
}

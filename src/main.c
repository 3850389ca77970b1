/*
 * The gatehouse command. `main` only parses the command line and starts things; everything it
 * calls lives in the internal library.
 *
 *   gatehouse run [-c FILE]          start the gateway (default FILE: examples/gatehouse.yaml)
 *   gatehouse check-config FILE      validate a configuration and exit
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

#define DEFAULT_CONFIG "examples/gatehouse.yaml"
#define STARTUP_WAIT_MS 30000
#define SWEEP_INTERVAL_MS 10000

static void usage(FILE *out)
{
    fprintf(out,
            "usage: gatehouse run [-c FILE]       start the gateway\n"
            "       gatehouse check-config FILE   validate a configuration file\n"
            "       gatehouse openapi inspect FILE [--overlay FILE]... [--overrides FILE]\n"
            "                                     [--json | --discovery MODE | --project TOOL]\n"
            "                                     the MCP tools an OpenAPI document becomes\n"
            "                                     (--project: what a model reads of the JSON\n"
            "                                     response of TOOL on standard input)\n"
            "       gatehouse version\n");
    admin_cli_usage(out);
    fprintf(out, "The administration commands use the store of -c FILE (default ./gatehouse.yaml "
                 "when present, else gatehouse.db).\n"
                 "Exit codes: 0 done, 1 refused, 2 usage error.\n");
}

static int load(const char *path, struct config **cfg)
{
    struct err_info ei = {0};
    int err = config_load_file(path, cfg, &ei);
    if (err)
        fprintf(stderr, "gatehouse: %s\n", ei.msg[0] ? ei.msg : err_str(err));
    return err;
}

static int cmd_check_config(int argc, char **argv)
{
    if (argc != 1) {
        usage(stderr);
        return 2;
    }
    struct config *cfg;
    if (load(argv[0], &cfg) != 0)
        return 1;
    struct err_info ei = {0};
    if (server_check_tls(cfg, &ei) != 0) { /* what `run` would refuse, check-config refuses too */
        fprintf(stderr, "gatehouse: %s: %s\n", argv[0], ei.msg);
        config_unref(cfg);
        return 1;
    }
    printf("%s: ok (%zu listener(s), %zu server(s))\n", argv[0], cfg->nlisteners, cfg->nservers);
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
    if (argc < 1 || strcmp(argv[0], "inspect") != 0) {
        usage(stderr);
        return 2;
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
            usage(stderr);
            return 2;
        }
    }
    if (file == NULL) {
        usage(stderr);
        return 2;
    }
    if ((json && mode >= 0) || (project && (json || mode >= 0))) {
        usage(stderr);
        return 2;
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
            (x->tls_key && y->tls_key && strcmp(x->tls_key, y->tls_key) != 0))
            return true;
    }
    return false;
}

static void on_reload_signal(uv_signal_t *h, int signum)
{
    struct runtime *rt = h->data;
    struct config *cfg;
    struct err_info ei = {0};
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
        log_fields(LOG_WARN, "listening", f); /* at warn so that it shows at every log level */
        printf("Gatehouse %s is listening. Point an MCP client at:\n  %s\n", GATEHOUSE_VERSION,
               url);
    }
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
    struct runtime rt = {.path = DEFAULT_CONFIG};
    for (int i = 0; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc) {
            rt.path = argv[++i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (load(rt.path, &rt.cfg) != 0)
        return 1;
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
    if (gateway_wait_ready(STARTUP_WAIT_MS, &ei) != 0) {
        fprintf(stderr, "gatehouse: %s\n", ei.msg);
        rc = 1;
        goto stop;
    }
    if (!gateway_ready())
        log_warn("startup",
                 "not every server is ready; see /readyz (the others are served meanwhile)");
    server_listen(rt.srv);
    print_banner(&rt);

    uv_loop_t *loop = uv_default_loop();
    uv_signal_init(loop, &rt.sigterm);
    uv_signal_init(loop, &rt.sigint);
    uv_signal_init(loop, &rt.sighup);
    rt.sigterm.data = rt.sigint.data = rt.sighup.data = &rt;
    uv_signal_start(&rt.sigterm, on_stop_signal, SIGTERM);
    uv_signal_start(&rt.sigint, on_stop_signal, SIGINT);
    uv_signal_start(&rt.sighup, on_reload_signal, SIGHUP);
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
    if (strcmp(argv[1], "run") == 0)
        return cmd_run(argc - 2, argv + 2);
    if (strcmp(argv[1], "-c") == 0 || strcmp(argv[1], "--config") == 0) {
        if (argc >= 4 && admin_cli_handles(argv[3])) /* gatehouse -c FILE user list */
            return admin_cli_main(argc - 1, argv + 1);
        return cmd_run(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "check-config") == 0)
        return cmd_check_config(argc - 2, argv + 2);
    if (strcmp(argv[1], "openapi") == 0)
        return cmd_openapi(argc - 2, argv + 2);
    if (admin_cli_handles(argv[1]))
        return admin_cli_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("gatehouse %s\n", GATEHOUSE_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "gatehouse: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return 2;
}

/*
 * Tests of the configuration loader: a full file with every key, the defaults, the example file,
 * one test per class of refusal with its exact message and line:column, the duration and size
 * notations at their edges, and the snapshot's reference count.
 */
#include "config/config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "test.h"

static struct config *load_ok(const char *yaml)
{
    struct config *c = NULL;
    struct err_info ei = {0};
    int err = config_load_string(yaml, strlen(yaml), "t.yaml", &c, &ei);
    if (err != 0)
        fprintf(stderr, "unexpected error %d: %s\n", err, ei.msg);
    CHECK_INT(err, 0);
    return c;
}

/* Load must fail with exactly this code, message and location. */
#define EXPECT_ERR(yaml, code, ln, cl, message)                                                    \
    do {                                                                                           \
        struct config *c_ = NULL;                                                                  \
        struct err_info ei_ = {0};                                                                 \
        const char *y_ = (yaml);                                                                   \
        CHECK_INT(config_load_string(y_, strlen(y_), "t.yaml", &c_, &ei_), code);                  \
        CHECK(c_ == NULL);                                                                         \
        CHECK_STR(ei_.msg, message);                                                               \
        CHECK_INT(ei_.line, ln);                                                                   \
        CHECK_INT(ei_.column, cl);                                                                 \
        CHECK_STR(ei_.where, "t.yaml");                                                            \
    } while (0)

static const char full_yaml[] =
    "listen:\n"
    "  - address: 0.0.0.0\n"
    "    port: 8443\n"
    "    tls: {cert: /etc/gh/cert.pem, key: /etc/gh/key.pem}\n"
    "  - address: \"[::1]\"\n"
    "    port: 0\n"
    "workers: 8\n"
    "http2: true\n"
    "allowed_hosts: [gw.example.com, localhost]\n"
    "allowed_origins: [\"https://app.example.com\", \"http://localhost:3000\"]\n"
    "limits:\n"
    "  max_body: 1MiB\n"
    "  session_idle_timeout: 1h\n"
    "  max_sessions: 500\n"
    "  replay_events: 64\n"
    "  sse_keepalive: 20s\n"
    "  shutdown_grace: 0\n"
    "  mrtr_ttl: 2s\n"
    "log: {level: debug}\n"
    "prefix: {mode: always, separator: \".\"}\n"
    "servers:\n"
    "  - name: everything\n"
    "    transport: stdio\n"
    "    command: /usr/bin/mcp\n"
    "    args: [stdio, \"--flag=1\", \"\"]\n"
    "    env: {A: \"1\", EMPTY: \"\"}\n"
    "    cwd: /tmp\n"
    "    timeouts: {connect: 1s, first_byte: 2s, idle: 3s, total: 4m}\n"
    "    restart: {initial: 100ms, max: 1m}\n"
    "    max_concurrency: 8\n"
    "    max_queue: 512KiB\n"
    "    max_message: 2MiB\n"
    "    prefix: never\n"
    "  - name: remote_1\n"
    "    transport: http\n"
    "    url: https://mcp.example.com/mcp\n"
    "    headers:\n"
    "      X-Team: blue\n"
    "      User-Agent: gatehouse\n";

static void test_full_file(void)
{
    struct config *c = load_ok(full_yaml);
    if (c == NULL)
        return;
    CHECK_STR(c->source, "t.yaml");
    CHECK_INT(c->nlisteners, 2);
    CHECK_STR(c->listeners[0].address, "0.0.0.0");
    CHECK_INT(c->listeners[0].port, 8443);
    CHECK_STR(c->listeners[0].tls_cert, "/etc/gh/cert.pem");
    CHECK_STR(c->listeners[0].tls_key, "/etc/gh/key.pem");
    CHECK_STR(c->listeners[1].address, "::1");
    CHECK_INT(c->listeners[1].port, 0);
    CHECK(c->listeners[1].tls_cert == NULL && c->listeners[1].tls_key == NULL);
    CHECK_INT(c->workers, 8);
    CHECK(c->http2);
    CHECK_INT(c->nallowed_hosts, 2);
    CHECK_STR(c->allowed_hosts[0], "gw.example.com");
    CHECK_STR(c->allowed_hosts[1], "localhost");
    CHECK_INT(c->nallowed_origins, 2);
    CHECK_STR(c->allowed_origins[1], "http://localhost:3000");
    CHECK_INT(c->max_body, 1 << 20);
    CHECK_INT(c->session_idle_ms, 3600000);
    CHECK_INT(c->max_sessions, 500);
    CHECK_INT(c->replay_events, 64);
    CHECK_INT(c->sse_keepalive_ms, 20000);
    CHECK_INT(c->shutdown_grace_ms, 0);
    CHECK_INT(c->mrtr_ttl_ms, 2000);
    CHECK_STR(c->log_level, "debug");
    CHECK_INT(c->prefix_mode, PREFIX_ALWAYS);
    CHECK_STR(c->prefix_separator, ".");
    CHECK_INT(c->nservers, 2);

    const struct config_server *s = config_find_server(c, "everything");
    CHECK(s == &c->servers[0]);
    CHECK_INT(s->transport, TRANSPORT_STDIO);
    CHECK_STR(s->command, "/usr/bin/mcp");
    CHECK_INT(s->nargs, 3);
    CHECK_STR(s->args[0], "stdio");
    CHECK_STR(s->args[1], "--flag=1");
    CHECK_STR(s->args[2], "");
    CHECK(s->args[3] == NULL);
    CHECK_INT(s->nenv, 2);
    CHECK_STR(s->env[0].key, "A");
    CHECK_STR(s->env[0].value, "1");
    CHECK_STR(s->env[1].key, "EMPTY");
    CHECK_STR(s->env[1].value, "");
    CHECK_STR(s->cwd, "/tmp");
    CHECK_INT(s->timeouts.connect_ms, 1000);
    CHECK_INT(s->timeouts.first_byte_ms, 2000);
    CHECK_INT(s->timeouts.idle_ms, 3000);
    CHECK_INT(s->timeouts.total_ms, 240000);
    CHECK_INT(s->restart_initial_ms, 100);
    CHECK_INT(s->restart_max_ms, 60000);
    CHECK_INT(s->max_concurrency, 8);
    CHECK_INT(s->max_queue, 512 * 1024);
    CHECK_INT(s->max_message, 2 << 20);
    CHECK_INT(s->prefix, PREFIX_NEVER);
    CHECK_INT(config_server_prefix(c, s), PREFIX_NEVER);
    CHECK(s->url == NULL && s->nheaders == 0);

    s = config_find_server(c, "remote_1");
    CHECK(s == &c->servers[1]);
    CHECK_INT(s->transport, TRANSPORT_HTTP);
    CHECK_STR(s->url, "https://mcp.example.com/mcp");
    CHECK_INT(s->nheaders, 2);
    CHECK_STR(s->headers[0].key, "X-Team");
    CHECK_STR(s->headers[1].value, "gatehouse");
    CHECK(s->command == NULL && s->nargs == 0 && s->nenv == 0);
    CHECK_INT(s->prefix, -1);
    CHECK_INT(config_server_prefix(c, s), PREFIX_ALWAYS);
    CHECK(config_find_server(c, "nope") == NULL);
    config_unref(c);
}

static void check_defaults(const struct config *c)
{
    CHECK_INT(c->nlisteners, 1);
    CHECK_STR(c->listeners[0].address, "127.0.0.1");
    CHECK_INT(c->listeners[0].port, 8080);
    CHECK(c->listeners[0].tls_cert == NULL);
    CHECK_INT(c->workers, 0);
    CHECK(c->http2); /* on by default: HTTP/2 through nghttp2 */
    CHECK_INT(c->nallowed_hosts, 3);
    CHECK_STR(c->allowed_hosts[0], "localhost");
    CHECK_STR(c->allowed_hosts[1], "127.0.0.1");
    CHECK_STR(c->allowed_hosts[2], "[::1]");
    CHECK_INT(c->nallowed_origins, 0);
    CHECK_INT(c->max_body, 4 << 20);
    CHECK_INT(c->session_idle_ms, 30 * 60 * 1000);
    CHECK_INT(c->max_sessions, 100000);
    CHECK_INT(c->replay_events, 256);
    CHECK_INT(c->sse_keepalive_ms, 15000);
    CHECK_INT(c->shutdown_grace_ms, 10000);
    CHECK_INT(c->mrtr_ttl_ms, 60000);
    CHECK_STR(c->log_level, "info");
    CHECK_INT(c->prefix_mode, PREFIX_WHEN_NEEDED);
    CHECK_STR(c->prefix_separator, "__");
}

static void test_defaults(void)
{
    static const char *const empties[] = {"", "# only a comment\n", "~\n", "{}\n", "---\n"};
    for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
        struct config *c = load_ok(empties[i]);
        if (c == NULL)
            continue;
        check_defaults(c);
        CHECK_INT(c->nservers, 0);
        CHECK_STR(c->source, "t.yaml");
        config_unref(c);
    }

    struct config *c =
        load_ok("# caf\xc3\xa9 \xf0\x9f\x9a\xaa\nservers:\n  - name: a\n    command: x\n");
    if (c == NULL)
        return;
    check_defaults(c);
    const struct config_server *s = &c->servers[0];
    CHECK_INT(s->transport, TRANSPORT_STDIO); /* implied by command */
    CHECK_INT(s->nargs, 0);
    CHECK(s->args != NULL && s->args[0] == NULL);
    CHECK(s->cwd == NULL);
    CHECK_INT(s->timeouts.connect_ms, 5000);
    CHECK_INT(s->timeouts.first_byte_ms, 30000);
    CHECK_INT(s->timeouts.idle_ms, 60000);
    CHECK_INT(s->timeouts.total_ms, 300000);
    CHECK_INT(s->restart_initial_ms, 500);
    CHECK_INT(s->restart_max_ms, 30000);
    CHECK_INT(s->max_concurrency, 64);
    CHECK_INT(s->max_queue, 8 << 20);
    CHECK_INT(s->max_message, 16 << 20);
    CHECK_INT(s->prefix, -1);
    CHECK_INT(config_server_prefix(c, s), PREFIX_WHEN_NEEDED);
    config_unref(c);

    c = load_ok("servers: [{name: r, url: \"http://h:1/x\"}]\nlisten: [{port: 9000}]\n");
    if (c == NULL)
        return;
    CHECK_INT(c->servers[0].transport, TRANSPORT_HTTP); /* implied by url */
    CHECK_STR(c->listeners[0].address, "127.0.0.1");
    CHECK_INT(c->listeners[0].port, 9000);
    config_unref(c);
}

static void test_example_file(void)
{
    struct config *c = NULL;
    struct err_info ei = {0};
    int err = config_load_file("examples/gatehouse.yaml", &c, &ei);
    if (err)
        fprintf(stderr, "%s\n", ei.msg);
    CHECK_INT(err, 0);
    if (c == NULL)
        return;
    CHECK_STR(c->source, "examples/gatehouse.yaml");
    CHECK_INT(c->nlisteners, 1);
    CHECK_STR(c->listeners[0].address, "127.0.0.1");
    CHECK_INT(c->listeners[0].port, 8080);
    CHECK_INT(c->prefix_mode, PREFIX_WHEN_NEEDED);
    CHECK(c->auth.enabled && c->auth.local_login);
    char *dir = realpath("examples", NULL), want[4096];
    snprintf(want, sizeof(want), "%s/gatehouse.db", dir);
    CHECK_STR(c->store.sqlite, want); /* next to the file, not in the working directory */
    CHECK_INT(c->nservers, 2);
    const struct config_server *s = config_find_server(c, "everything");
    CHECK(s != NULL);
    if (s) {
        CHECK_INT(s->transport, TRANSPORT_STDIO);
        CHECK_STR(s->command, "../tests/interop/node_modules/.bin/mcp-server-everything");
        CHECK_STR(s->cwd, dir);
        CHECK_INT(s->nargs, 1);
        CHECK_STR(s->args[0], "stdio");
    }
    s = config_find_server(c, "fixture");
    CHECK(s != NULL);
    if (s) {
        CHECK_STR(s->command, "node");
        CHECK_INT(s->nargs, 1);
        CHECK_STR(s->args[0], "../tests/interop/fixtures/server.mjs");
    }
    free(dir);
    config_unref(c);
}

/* Relative paths of a file are relative to its folder; absolute ones, URLs and the paths of a
   configuration given as a string stay as written. */
static void test_relative_paths(void)
{
    char tmpl[] = "/tmp/gh-config-XXXXXX", file[600], want[700];
    char *dir = mkdtemp(tmpl);
    CHECK(dir != NULL);
    if (dir == NULL)
        return;
    char *real = realpath(dir, NULL);
    snprintf(file, sizeof(file), "%s/gh.yaml", dir);
    FILE *f = fopen(file, "w");
    fputs("listen: [{port: 9, tls: {cert: tls/c.pem, key: /abs/k.pem}}, {port: 10, share: true}]\n"
          "store: {sqlite: data/gh.db}\n"
          "outbound: {ca_file: ca.pem}\n"
          "servers:\n"
          "  - {name: a, command: ./bin/srv, args: [x.js]}\n"
          "  - {name: b, command: node, cwd: sub}\n"
          "  - {name: c, command: node, cwd: /srv}\n"
          "  - {name: d, spec: api.yaml, overrides: ed.yaml, overlays: [o1.yaml],\n"
          "     credentials: {k: {file: keys/k.key}, e: {env: API_KEY}}}\n"
          "  - {name: e, spec: \"https://api.example/openapi.json\"}\n",
          f);
    fclose(f);
    struct config *c = NULL;
    struct err_info ei = {0};
    CHECK_INT(config_load_file(file, &c, &ei), 0);
    if (c) {
        snprintf(want, sizeof(want), "%s/data/gh.db", real);
        CHECK_STR(c->store.sqlite, want);
        snprintf(want, sizeof(want), "%s/data/gh.db.key", real);
        CHECK_STR(c->store.key_file, want);
        CHECK(!c->store.key_file_set);
        snprintf(want, sizeof(want), "%s/tls/c.pem", real);
        CHECK_STR(c->listeners[0].tls_cert, want);
        CHECK_STR(c->listeners[0].tls_key, "/abs/k.pem");
        CHECK(!c->listeners[0].share && c->listeners[1].share);
        snprintf(want, sizeof(want), "%s/ca.pem", real);
        CHECK_STR(c->outbound.ca_file, want);
        CHECK_STR(c->servers[0].command, "./bin/srv"); /* relative to its cwd: */
        CHECK_STR(c->servers[0].cwd, real);
        CHECK_STR(c->servers[0].args[0], "x.js");
        snprintf(want, sizeof(want), "%s/sub", real);
        CHECK_STR(c->servers[1].cwd, want);
        CHECK_STR(c->servers[2].cwd, "/srv");
        snprintf(want, sizeof(want), "%s/api.yaml", real);
        CHECK_STR(c->servers[3].spec, want);
        snprintf(want, sizeof(want), "%s/ed.yaml", real);
        CHECK_STR(c->servers[3].overrides, want);
        snprintf(want, sizeof(want), "%s/o1.yaml", real);
        CHECK_STR(c->servers[3].overlays[0], want);
        CHECK_INT(c->servers[3].ncredentials, 2);
        snprintf(want, sizeof(want), "%s/keys/k.key", real);
        CHECK_STR(c->servers[3].credentials[0].scheme, "k");
        CHECK_STR(c->servers[3].credentials[0].file, want);
        CHECK(c->servers[3].credentials[0].env == NULL);
        CHECK_STR(c->servers[3].credentials[1].env, "API_KEY");
        CHECK(c->servers[3].credentials[1].file == NULL);
        CHECK_STR(c->servers[4].spec, "https://api.example/openapi.json");
        config_unref(c);
    }
    unlink(file);
    rmdir(dir);
    free(real);

    c = load_ok("store: {key_file: k.key}\nservers: [{name: a, command: node}]\n");
    CHECK_STR(c->store.key_file, "k.key"); /* a string has no folder */
    CHECK(c->store.key_file_set);
    CHECK(c->servers[0].cwd == NULL);
    config_unref(c);
    EXPECT_ERR(
        "listen: [{share: 1}]\n", ERR_INVAL, 1, 18,
        "t.yaml:1:18: \"1\" is not a boolean for share of listener #1; expected true or false");
    EXPECT_ERR("servers: [{name: a, spec: x.yaml, credentials: {k: {file: f, env: V}}}]\n",
               ERR_INVAL, 1, 52,
               "t.yaml:1:52: credential \"k\" of server \"a\" has both file and env; expected ex"
               "actly one of file: PATH (a file only its owner can read, the value on its first "
               "line) or env: VARIABLE");
    EXPECT_ERR("servers: [{name: a, spec: x.yaml, credentials: {k: {}}}]\n", ERR_INVAL, 1, 52,
               "t.yaml:1:52: credential \"k\" of server \"a\" has neither file nor env; expected"
               " exactly one of file: PATH (a file only its owner can read, the value on its fir"
               "st line) or env: VARIABLE");
    EXPECT_ERR("servers: [{name: a, spec: x.yaml, credentials: {k: {value: s}}}]\n", ERR_INVAL, 1,
               53,
               "t.yaml:1:53: unknown key \"value\" in credential \"k\" of server \"a\"; expected"
               " one of: file, env");
    EXPECT_ERR("servers: [{name: a, command: x, credentials: {k: {env: V}}}]\n", ERR_INVAL, 1, 33,
               "t.yaml:1:33: credentials is not allowed in server \"a\" with transport stdio; ex"
               "pected it only with transport: openapi");
}

/* The complete example in docs/configuration.md must load, so the documentation stays true. */
static void test_docs_example(void)
{
    FILE *f = fopen("docs/configuration.md", "rb");
    CHECK(f != NULL);
    if (f == NULL)
        return;
    static char doc[65536];
    size_t n = fread(doc, 1, sizeof(doc) - 1, f);
    fclose(f);
    doc[n] = '\0';
    char *start = strstr(doc, "## A complete example");
    start = start ? strstr(start, "```yaml\n") : NULL;
    char *end = start ? strstr(start + 8, "```") : NULL;
    CHECK(start != NULL && end != NULL);
    if (start == NULL || end == NULL)
        return;
    start += 8;
    struct config *c = NULL;
    struct err_info ei = {0};
    int err = config_load_string(start, (size_t)(end - start), "configuration.md", &c, &ei);
    if (err)
        fprintf(stderr, "%s\n", ei.msg);
    CHECK_INT(err, 0);
    if (c == NULL)
        return;
    CHECK_INT(c->nservers, 2);
    CHECK_INT(c->nlisteners, 2);
    config_unref(c);
}

static void test_quoting(void)
{
    struct config *c = load_ok("servers:\n"
                               "  - name: q\n"
                               "    command: 'it''s'\n"
                               "    args:\n"
                               "      - ''\n"
                               "      - 'one  \n"
                               "         two\n"
                               "\n"
                               "        three'\n"
                               "      - \"tab\\there \\u00e9\"\n"
                               "      - |\n"
                               "        lit\n"
                               "        block\n"
                               "      - >\n"
                               "        folded\n"
                               "        block\n"
                               "      - ''\n");
    if (c == NULL)
        return;
    const struct config_server *s = &c->servers[0];
    CHECK_STR(s->command, "it's");
    CHECK_INT(s->nargs, 6);
    CHECK_STR(s->args[0], ""); /* 18 quotes; libfyaml 0.7.12 leaked here */
    CHECK_STR(s->args[1], "one two\nthree");
    CHECK_STR(s->args[2], "tab\there \xc3\xa9");
    CHECK_STR(s->args[3], "lit\nblock\n");
    CHECK_STR(s->args[4], "folded block\n");
    CHECK_STR(s->args[5], "");
    config_unref(c);
}

static void test_file_errors(void)
{
    struct config *c = NULL;
    struct err_info ei = {0};
    CHECK_INT(config_load_file("/nonexistent/gh.yaml", &c, &ei), ERR_IO);
    CHECK_STR(ei.msg, "/nonexistent/gh.yaml: cannot open: No such file or directory; expected a "
                      "readable YAML file");
    CHECK_INT(ei.line, 0);
    CHECK_STR(ei.where, "/nonexistent/gh.yaml");
    CHECK(c == NULL);

    size_t n = CONFIG_MAX_SIZE + 1;
    char *big = malloc(n);
    memset(big, '#', n);
    CHECK_INT(config_load_string(big, n, "big.yaml", &c, &ei), ERR_LIMIT);
    CHECK_STR(ei.msg, "big.yaml: the configuration is 1048577 bytes; expected at most 1048576 "
                      "bytes (1 MiB)");
    free(big);
    CHECK(c == NULL);
    /* NULL err_info is allowed */
    CHECK_INT(config_load_string("x: 1", 4, NULL, &c, NULL), ERR_INVAL);
}

static void test_yaml_syntax(void)
{
    EXPECT_ERR("servers: [a, b\n", ERR_PARSE, 2, 1,
               "t.yaml:2:1: invalid YAML: flow sequence without a closing bracket; expected "
               "well-formed YAML");
    EXPECT_ERR("a:\n  - b\n  c: d\n", ERR_PARSE, 3, 3,
               "t.yaml:3:3: invalid YAML: invalid scalar at the end of block sequence; expected "
               "well-formed YAML");
    EXPECT_ERR("log: &x {level: info}\nlimits: *x\n", ERR_INVAL, 2, 9,
               "t.yaml:2:9: aliases (*name) are not supported; expected the value written out");
    EXPECT_ERR("workers: !!int 3\n", ERR_INVAL, 1, 10,
               "t.yaml:1:10: YAML tags (!tag) are not supported; expected a plain or quoted "
               "value");
    /* libfyaml 0.7.12 hangs on this one; we must refuse it before the parser sees it */
    EXPECT_ERR("servers:\n%    com\xff\xff\n", ERR_PARSE, 2, 9,
               "t.yaml:2:9: byte 0xff is not valid UTF-8; expected a UTF-8 text file");
    EXPECT_ERR("log: {level: \"\xc3\xa9\xed\xa0\x80\"}\n", ERR_PARSE, 1, 16,
               "t.yaml:1:16: byte 0xed is not valid UTF-8; expected a UTF-8 text file");
    EXPECT_ERR("workers: 1\n---\nworkers: 2\n", ERR_INVAL, 2, 1,
               "t.yaml:2:1: a second YAML document; expected exactly one document");
}

static void test_unknown_keys(void)
{
    EXPECT_ERR(
        "servers:\n  - name: everything\n    comand: x\n", ERR_INVAL, 3, 5,
        "t.yaml:3:5: unknown key \"comand\" in server \"everything\"; expected one of: "
        "name, transport, command, args, env, cwd, url, headers, timeouts, restart, "
        "max_concurrency, max_queue, max_message, prefix, spec, overrides, base_url, discovery, "
        "overlays, protocol, validate_arguments, credentials, sessions, user_sessions, auth");
    EXPECT_ERR(
        "workers: 1\nlisen: []\n", ERR_INVAL, 2, 1,
        "t.yaml:2:1: unknown key \"lisen\" in the top level; expected one of: listen, "
        "workers, http2, allowed_hosts, allowed_origins, limits, log, prefix, servers, store, auth, "
        "outbound, redis");
    EXPECT_ERR("limits:\n  max_bdy: 1\n", ERR_INVAL, 2, 3,
               "t.yaml:2:3: unknown key \"max_bdy\" in limits; expected one of: max_body, "
               "session_idle_timeout, max_sessions, replay_events, sse_keepalive, "
               "shutdown_grace, mrtr_ttl, write_timeout");
    EXPECT_ERR("listen:\n  - port: 1\n    tls: {cert: a, key: b, ca: c}\n", ERR_INVAL, 3, 28,
               "t.yaml:3:28: unknown key \"ca\" in tls of listener #1; expected one of: cert, "
               "key, min_version, client_ca");
    EXPECT_ERR("servers:\n  - name: a\n    command: x\n    timeouts: {conect: 1s}\n", ERR_INVAL, 4,
               16,
               "t.yaml:4:16: unknown key \"conect\" in timeouts of server \"a\"; expected one "
               "of: connect, first_byte, idle, total");
    EXPECT_ERR("log: {level: info}\nlog: {level: debug}\n", ERR_INVAL, 2, 1,
               "t.yaml:2:1: duplicate key \"log\" in the top level (first at line 1 column 1); "
               "expected each key once");
}

static void test_wrong_types(void)
{
    EXPECT_ERR("servers: {name: a}\n", ERR_INVAL, 1, 10,
               "t.yaml:1:10: servers is a mapping; expected a sequence of servers");
    EXPECT_ERR("limits: [1]\n", ERR_INVAL, 1, 9,
               "t.yaml:1:9: limits is a sequence; expected a mapping with keys: max_body, "
               "session_idle_timeout, max_sessions, replay_events, sse_keepalive, "
               "shutdown_grace, mrtr_ttl, write_timeout");
    EXPECT_ERR("http2: yes\n", ERR_INVAL, 1, 8,
               "t.yaml:1:8: \"yes\" is not a boolean for http2; expected true or false");
    EXPECT_ERR("servers:\n  - name: a\n    command: [x]\n", ERR_INVAL, 3, 14,
               "t.yaml:3:14: command of server \"a\" is a sequence; expected a string");
    EXPECT_ERR("servers:\n  - name: a\n    command: x\n    args: stdio\n", ERR_INVAL, 4, 11,
               "t.yaml:4:11: args of server \"a\" is a scalar; expected a sequence of strings");
    EXPECT_ERR("servers:\n  - name: a\n    command: x\n    env:\n      HOME:\n", ERR_INVAL, 5, 7,
               "t.yaml:5:7: the value of \"HOME\" in env of server \"a\" is empty; expected a "
               "string (write \"\" for an empty value)");
    EXPECT_ERR("workers: 3x\n", ERR_INVAL, 1, 10,
               "t.yaml:1:10: \"3x\" is not an integer for workers; expected an integer from 0 "
               "to 256");
    EXPECT_ERR("log: {level: loud}\n", ERR_INVAL, 1, 14,
               "t.yaml:1:14: \"loud\" is not a log level; expected debug, info, warn or error");
    EXPECT_ERR("prefix: {mode: sometimes}\n", ERR_INVAL, 1, 16,
               "t.yaml:1:16: \"sometimes\" is not a prefix mode for prefix.mode; expected "
               "always, when-needed or never");
    EXPECT_ERR("allowed_origins: [\"https://a.com/path\"]\n", ERR_INVAL, 1, 19,
               "t.yaml:1:19: \"https://a.com/path\" is not an origin in allowed_origins; "
               "expected \"scheme://host[:port]\" with scheme http or https and no path");
}

static void test_servers(void)
{
    EXPECT_ERR("servers:\n  - name: a\n    command: x\n  - name: b\n    command: y\n"
               "  - name: a\n    command: z\n",
               ERR_INVAL, 6, 11,
               "t.yaml:6:11: duplicate server name \"a\" (also at line 2 column 11); expected "
               "unique server names");
    EXPECT_ERR("servers:\n  - name: \"bad name\"\n    command: x\n", ERR_INVAL, 2, 11,
               "t.yaml:2:11: \"bad name\" is not a valid server name; expected 1 to 64 "
               "characters from a-z A-Z 0-9 _ - (^[a-zA-Z0-9_-]{1,64}$)");
    EXPECT_ERR("servers:\n  - name: "
               "a234567890123456789012345678901234567890123456789012345678901234X\n"
               "    command: x\n",
               ERR_INVAL, 2, 11,
               "t.yaml:2:11: \"a234567890123456789012345678901234567890123456789012...\" is "
               "not a valid server name; expected 1 to 64 characters from a-z A-Z 0-9 _ - "
               "(^[a-zA-Z0-9_-]{1,64}$)");
    EXPECT_ERR("servers:\n  - command: x\n", ERR_INVAL, 2, 5,
               "t.yaml:2:5: server #1 has no name; expected name: matching "
               "^[a-zA-Z0-9_-]{1,64}$");
    EXPECT_ERR("servers:\n  - name: a\n    transport: stdio\n", ERR_INVAL, 2, 5,
               "t.yaml:2:5: server \"a\" has transport stdio but no command; expected command: "
               "<program to run>");
    EXPECT_ERR("servers:\n  - name: a\n    transport: stdio\n    command: \"\"\n", ERR_INVAL, 4, 14,
               "t.yaml:4:14: command of server \"a\" is an empty string; expected a non-empty "
               "string");
    EXPECT_ERR("servers:\n  - name: a\n    command: x\n    url: http://h/\n", ERR_INVAL, 2, 5,
               "t.yaml:2:5: server \"a\" has no transport; expected transport: stdio with a "
               "command, transport: http with a url, or transport: openapi with a spec");
    EXPECT_ERR("servers:\n  - name: a\n    transport: stdio\n    command: x\n"
               "    headers: {A: b}\n",
               ERR_INVAL, 5, 5,
               "t.yaml:5:5: headers is not allowed in server \"a\" with transport stdio; "
               "expected it only with transport: http or openapi");
    EXPECT_ERR("servers:\n  - name: a\n    transport: http\n    url: http://h/\n"
               "    cwd: /tmp\n",
               ERR_INVAL, 5, 5,
               "t.yaml:5:5: cwd is not allowed in server \"a\" with transport http; expected it "
               "only with transport: stdio");
    EXPECT_ERR("servers:\n  - name: a\n    transport: http\n", ERR_INVAL, 2, 5,
               "t.yaml:2:5: server \"a\" has transport http but no url; expected url: "
               "http://host/path or https://host/path");
    EXPECT_ERR("servers:\n  - name: a\n    transport: http\n    url: ftp://h/x\n", ERR_INVAL, 4, 10,
               "t.yaml:4:10: \"ftp://h/x\" is not a URL for server \"a\"; expected "
               "http://host/path or https://host/path");
    EXPECT_ERR("servers:\n  - name: a\n    transport: pipe\n", ERR_INVAL, 3, 16,
               "t.yaml:3:16: \"pipe\" is not a transport for server \"a\"; expected stdio, "
               "http or openapi");
    EXPECT_ERR("servers:\n  - name: a\n    url: http://h/\n    headers: {\"Bad Name\": x}\n",
               ERR_INVAL, 4, 15,
               "t.yaml:4:15: \"Bad Name\" is not a valid name in headers of server \"a\"; "
               "expected an HTTP header name (letters, digits, - and _)");
    EXPECT_ERR("servers:\n  - name: a\n    url: http://h/\n    headers: {X-A: \"1\\r\\nX: 2\"}\n",
               ERR_INVAL, 4, 20,
               "t.yaml:4:20: the value of \"X-A\" in headers of server \"a\" contains a line "
               "break; expected a single-line header value");
    EXPECT_ERR("servers:\n  - name: a\n    command: x\n    restart: {initial: 1m, max: 1s}\n",
               ERR_INVAL, 4, 14,
               "t.yaml:4:14: restart.initial (60000ms) is larger than restart.max (1000ms) in "
               "server \"a\"; expected initial <= max");
    EXPECT_ERR("servers:\n  - name: a\n    command: \"x\\0y\"\n", ERR_INVAL, 3, 14,
               "t.yaml:3:14: command of server \"a\" contains a NUL byte; expected text without "
               "\\0");
}

/* protocol: which MCP era the gateway speaks to a server (docs/configuration.md). */
static void test_protocol(void)
{
    struct config *c = NULL;
    struct err_info ei = {0};
    const char *y = "servers:\n"
                    "  - {name: a, command: x}\n"
                    "  - {name: b, command: x, protocol: auto}\n"
                    "  - {name: c, url: http://127.0.0.1:9/mcp, protocol: 2025-11-25}\n"
                    "  - {name: d, command: x, protocol: \"2026-07-28\"}\n";
    CHECK_INT(config_load_string(y, strlen(y), "t.yaml", &c, &ei), 0);
    if (c == NULL)
        return;
    CHECK_INT(c->servers[0].protocol, PROTOCOL_AUTO); /* the default */
    CHECK_INT(c->servers[1].protocol, PROTOCOL_AUTO);
    CHECK_INT(c->servers[2].protocol, PROTOCOL_LEGACY);
    CHECK_INT(c->servers[3].protocol, PROTOCOL_MODERN);
    CHECK_STR(config_protocol_str(c->servers[3].protocol), "2026-07-28");
    config_unref(c);
    EXPECT_ERR("servers:\n  - name: a\n    command: x\n    protocol: 2026\n", ERR_INVAL, 4, 15,
               "t.yaml:4:15: \"2026\" is not a protocol for server \"a\"; expected auto, "
               "2025-11-25 or 2026-07-28");
    EXPECT_ERR("servers:\n  - name: a\n    spec: x.json\n    protocol: auto\n", ERR_INVAL, 4, 5,
               "t.yaml:4:5: protocol is not allowed in server \"a\" with transport openapi; "
               "expected it only with transport: stdio or http (the gateway serves an OpenAPI "
               "document in every protocol era itself)");
}

/* validate_arguments: tools/call arguments checked against the tool's inputSchema. */
static void test_validate_arguments(void)
{
    struct config *c = NULL;
    struct err_info ei = {0};
    const char *y = "servers:\n"
                    "  - {name: a, command: x}\n"
                    "  - {name: b, command: x, validate_arguments: true}\n"
                    "  - {name: c, url: http://127.0.0.1:9/mcp, validate_arguments: false}\n";
    CHECK_INT(config_load_string(y, strlen(y), "t.yaml", &c, &ei), 0);
    if (c == NULL)
        return;
    CHECK(!c->servers[0].validate_arguments); /* the default */
    CHECK(c->servers[1].validate_arguments);
    CHECK(!c->servers[2].validate_arguments);
    config_unref(c);
    EXPECT_ERR("servers:\n  - name: a\n    command: x\n    validate_arguments: yes\n", ERR_INVAL, 4,
               25,
               "t.yaml:4:25: \"yes\" is not a boolean for validate_arguments of server \"a\"; "
               "expected true or false");
    EXPECT_ERR("servers:\n  - name: a\n    command: x\n    validate_arguments: [true]\n", ERR_INVAL,
               4, 25,
               "t.yaml:4:25: validate_arguments of server \"a\" is a sequence; expected true or "
               "false");
    EXPECT_ERR("servers:\n  - name: a\n    spec: x.json\n    validate_arguments: true\n", ERR_INVAL,
               4, 5,
               "t.yaml:4:5: validate_arguments is not allowed in server \"a\" with transport "
               "openapi; expected it only with transport: stdio or http (the arguments of an "
               "OpenAPI tool are always checked against its schema)");
}

/* sessions: shared | per_user, and user_sessions {idle_timeout, max}. */
static void test_sessions(void)
{
    struct config *c = NULL;
    struct err_info ei = {0};
    const char *y = "servers:\n"
                    "  - {name: a, command: x}\n"
                    "  - {name: b, command: x, sessions: shared}\n"
                    "  - {name: c, url: http://127.0.0.1:9/mcp, sessions: per_user}\n"
                    "  - name: d\n"
                    "    command: x\n"
                    "    sessions: per_user\n"
                    "    user_sessions: {idle_timeout: 30s, max: 2}\n";
    CHECK_INT(config_load_string(y, strlen(y), "t.yaml", &c, &ei), 0);
    if (c == NULL)
        return;
    CHECK_INT(c->servers[0].sessions, SESSIONS_SHARED); /* the default */
    CHECK_INT(c->servers[1].sessions, SESSIONS_SHARED);
    CHECK_INT(c->servers[2].sessions, SESSIONS_PER_USER);
    CHECK_INT(c->servers[2].user_idle_ms, 600000); /* the defaults */
    CHECK_INT(c->servers[2].user_max, 100);
    CHECK_INT(c->servers[3].sessions, SESSIONS_PER_USER);
    CHECK_INT(c->servers[3].user_idle_ms, 30000);
    CHECK_INT(c->servers[3].user_max, 2);
    config_unref(c);
    EXPECT_ERR("servers:\n  - name: a\n    command: x\n    sessions: per-user\n", ERR_INVAL, 4, 15,
               "t.yaml:4:15: \"per-user\" is not a sessions mode for server \"a\"; expected "
               "shared or per_user");
    EXPECT_ERR("servers:\n  - name: a\n    spec: x.json\n    sessions: per_user\n", ERR_INVAL, 4,
               15,
               "t.yaml:4:15: sessions: per_user is not allowed in server \"a\" with transport "
               "openapi; expected it only with transport: stdio or http (an openapi server has no "
               "upstream session: each call is its own HTTP request)");
    EXPECT_ERR("servers:\n  - name: a\n    command: x\n    user_sessions: {max: 3}\n", ERR_INVAL, 4,
               5,
               "t.yaml:4:5: user_sessions is not allowed in server \"a\" without sessions: "
               "per_user; expected it only with sessions: per_user");
    EXPECT_ERR("servers:\n  - name: a\n    command: x\n    sessions: per_user\n"
               "    user_sessions: {max: 0}\n",
               ERR_INVAL, 5, 26,
               "t.yaml:5:26: \"0\" is out of range for user_sessions.max of server \"a\"; "
               "expected an integer from 1 to 10000");
    EXPECT_ERR("servers:\n  - name: a\n    command: x\n    sessions: per_user\n"
               "    user_sessions: {idle_timeout: 0}\n",
               ERR_INVAL, 5, 35,
               "t.yaml:5:35: user_sessions.idle_timeout of server \"a\" must not be zero; "
               "expected a duration such as \"30s\"");
    EXPECT_ERR("servers:\n  - name: a\n    command: x\n    sessions: per_user\n"
               "    user_sessions: {idle: 1m}\n",
               ERR_INVAL, 5, 21,
               "t.yaml:5:21: unknown key \"idle\" in user_sessions of server \"a\"; expected one "
               "of: idle_timeout, max");
}

/* An http server's auth: {oauth: …}: the gateway as its OAuth client (docs/configuration.md,
   "Upstream OAuth"). */
static void test_upstream_oauth(void)
{
    struct config *c = NULL;
    struct err_info ei = {0};
    const char *y = "auth: {issuer: https://gw.example}\n"
                    "servers:\n"
                    "  - {name: a, url: http://127.0.0.1:9/mcp, auth: {oauth: {}}}\n"
                    "  - name: b\n"
                    "    url: https://b.example/mcp\n"
                    "    auth:\n"
                    "      oauth:\n"
                    "        client_id: gw-client\n"
                    "        client_secret_file: /run/secrets/b\n"
                    "        scopes: [read, write]\n"
                    "        allow_private: true\n"
                    "  - {name: c, url: https://c.example/mcp, auth: {oauth: {registration: cimd}},"
                    " sessions: per_user, user_sessions: {max: 5}}\n"
                    "  - {name: d, url: https://d.example/mcp}\n";
    CHECK_INT(config_load_string(y, strlen(y), "t.yaml", &c, &ei), 0);
    if (c == NULL) {
        fprintf(stderr, "%s\n", ei.msg);
        return;
    }
    CHECK(c->servers[0].oauth.enabled);
    CHECK_INT(c->servers[0].oauth.registration, UPSTREAM_REG_AUTO);
    CHECK(c->servers[0].oauth.client_id == NULL && c->servers[0].oauth.nscopes == 0);
    CHECK(!c->servers[0].oauth.allow_private);
    CHECK_INT(c->servers[0].sessions, SESSIONS_PER_USER);          /* implied */
    CHECK_INT(c->servers[1].oauth.registration, UPSTREAM_REG_PRE); /* implied by client_id */
    CHECK_STR(c->servers[1].oauth.client_id, "gw-client");
    CHECK_STR(c->servers[1].oauth.client_secret_file, "/run/secrets/b");
    CHECK_INT(c->servers[1].oauth.nscopes, 2);
    CHECK_STR(c->servers[1].oauth.scopes[1], "write");
    CHECK(c->servers[1].oauth.allow_private);
    CHECK_INT(c->servers[2].oauth.registration, UPSTREAM_REG_CIMD);
    CHECK_INT(c->servers[2].user_max, 5);
    CHECK(!c->servers[3].oauth.enabled);
    CHECK_INT(c->servers[3].sessions, SESSIONS_SHARED);
    config_unref(c);

    EXPECT_ERR("auth: {}\nservers:\n  - {name: a, url: http://h/mcp, auth: {oauth: {}}, "
               "sessions: shared}\n",
               ERR_INVAL, 3, 63,
               "t.yaml:3:63: sessions: shared is not allowed in server \"a\" with auth.oauth; "
               "expected per_user, or no sessions key (each user's upstream session carries "
               "their own token, so one session is never shared between users)");
    EXPECT_ERR("servers:\n  - {name: a, url: http://h/mcp, auth: {oauth: {}}}\n", ERR_INVAL, 0, 0,
               "t.yaml: server \"a\" has auth.oauth but authentication is off; expected an auth "
               "section (each user's upstream tokens belong to the user the gateway "
               "authenticated)");
    EXPECT_ERR("auth: {}\nservers:\n  - {name: a, command: x, auth: {oauth: {}}}\n", ERR_INVAL, 3,
               27,
               "t.yaml:3:27: auth is not allowed in server \"a\" with transport stdio; expected "
               "it only with transport: http");
    EXPECT_ERR("auth: {}\nservers:\n  - {name: a, spec: x.json, auth: {oauth: {}}}\n", ERR_INVAL, 3,
               29,
               "t.yaml:3:29: auth is not allowed in server \"a\" with transport openapi; expected "
               "it only with transport: http (an OpenAPI server's credentials are its "
               "credentials: list)");
    EXPECT_ERR("auth: {}\nservers:\n  - {name: a, url: http://h/mcp, auth: {basic: {}}}\n",
               ERR_INVAL, 3, 41,
               "t.yaml:3:41: unknown key \"basic\" in auth of server \"a\"; expected one of: "
               "oauth");
    EXPECT_ERR("auth: {}\nservers:\n  - {name: a, url: http://h/mcp, auth: {oauth: "
               "{registration: manual}}}\n",
               ERR_INVAL, 3, 63,
               "t.yaml:3:63: \"manual\" is not a registration for auth.oauth.registration of "
               "server \"a\"; expected auto, pre, dynamic or cimd");
    EXPECT_ERR("auth: {}\nservers:\n  - {name: a, url: http://h/mcp, auth: {oauth: "
               "{registration: pre}}}\n",
               ERR_INVAL, 3, 63,
               "t.yaml:3:63: auth.oauth of server \"a\" has registration: pre but no client_id; "
               "expected the client_id the server's authorization server issued to the gateway");
    EXPECT_ERR("auth: {}\nservers:\n  - {name: a, url: http://h/mcp, auth: {oauth: "
               "{registration: dynamic, client_id: x}}}\n",
               ERR_INVAL, 3, 72,
               "t.yaml:3:72: auth.oauth of server \"a\" has a client_id with registration: "
               "dynamic; expected client_id only with registration: pre or auto (a dynamic or "
               "CIMD client gets its client_id from the registration)");
    EXPECT_ERR("auth: {}\nservers:\n  - {name: a, url: http://h/mcp, auth: {oauth: "
               "{client_secret_file: /s}}}\n",
               ERR_INVAL, 3, 49,
               "t.yaml:3:49: auth.oauth of server \"a\" has a client_secret_file but no "
               "client_id; expected both for a pre-registered confidential client");
    EXPECT_ERR("auth: {}\nservers:\n  - {name: a, url: http://h/mcp, headers: {Authorization: "
               "x}, auth: {oauth: {}}}\n",
               ERR_INVAL, 3, 63,
               "t.yaml:3:63: server \"a\" has both auth.oauth and an Authorization header in "
               "headers; expected one of them (with auth.oauth each user's own token is sent)");
}

/* transport: openapi (docs/configuration.md, "servers"). */
static void test_openapi_servers(void)
{
    struct config *c = NULL;
    struct err_info ei = {0};
    const char *y = "servers:\n"
                    "  - name: pets\n"
                    "    spec: tests/openapi/petstore-3.0.yaml\n"
                    "    overrides: tests/openapi/editorial.yaml\n"
                    "    overlays: [tests/openapi/petstore-overlay.yaml, b.yaml]\n"
                    "    base_url: http://127.0.0.1:9/v1\n"
                    "    headers: {X-API-Key: k}\n"
                    "    timeouts: {total: 10s}\n"
                    "    max_concurrency: 8\n"
                    "  - name: bare\n"
                    "    transport: openapi\n"
                    "    spec: a.json\n"
                    "  - name: tree\n"
                    "    spec: a.json\n"
                    "    discovery: hierarchical\n"
                    "  - name: find\n"
                    "    spec: a.json\n"
                    "    discovery: search\n"
                    "  - name: flat\n"
                    "    spec: a.json\n"
                    "    discovery: static\n";
    CHECK_INT(config_load_string(y, strlen(y), "t.yaml", &c, &ei), 0);
    if (c == NULL)
        return;
    const struct config_server *s = &c->servers[0];
    CHECK_INT(s->transport, TRANSPORT_OPENAPI); /* implied by spec */
    CHECK_STR(config_transport_str(s->transport), "openapi");
    CHECK_STR(s->spec, "tests/openapi/petstore-3.0.yaml");
    CHECK_STR(s->overrides, "tests/openapi/editorial.yaml");
    CHECK_INT(s->noverlays, 2);
    CHECK_STR(s->overlays[0], "tests/openapi/petstore-overlay.yaml");
    CHECK_STR(s->overlays[1], "b.yaml");
    CHECK_STR(s->base_url, "http://127.0.0.1:9/v1");
    CHECK_INT(s->nheaders, 1);
    CHECK_STR(s->headers[0].key, "X-API-Key");
    CHECK_INT(s->timeouts.total_ms, 10000);
    CHECK_INT(s->timeouts.connect_ms, 5000);
    CHECK_INT(s->max_concurrency, 8);
    CHECK(s->url == NULL && s->command == NULL);
    s = &c->servers[1];
    CHECK_INT(s->transport, TRANSPORT_OPENAPI);
    CHECK(s->overrides == NULL && s->base_url == NULL && s->nheaders == 0 && s->noverlays == 0);
    CHECK_INT(s->max_message, (size_t)16 << 20);
    CHECK(s->discovery_auto); /* the default: static when small, else search */
    CHECK_INT(config_discovery_effective(s, CONFIG_DISCOVERY_AUTO_MAX), DISCOVERY_STATIC);
    CHECK_INT(config_discovery_effective(s, CONFIG_DISCOVERY_AUTO_MAX + 1), DISCOVERY_SEARCH);
    CHECK(!c->servers[2].discovery_auto && !c->servers[4].discovery_auto);
    CHECK_INT(config_discovery_effective(&c->servers[4], 1000), DISCOVERY_STATIC); /* explicit */
    CHECK_INT(config_discovery_effective(&c->servers[2], 1), DISCOVERY_HIERARCHICAL);
    CHECK_INT(c->servers[2].discovery, DISCOVERY_HIERARCHICAL);
    CHECK_INT(c->servers[3].discovery, DISCOVERY_SEARCH);
    CHECK_INT(c->servers[4].discovery, DISCOVERY_STATIC);
    CHECK_STR(config_discovery_str(c->servers[3].discovery), "search");
    config_unref(c);

    EXPECT_ERR("servers:\n  - name: a\n    spec: x.json\n    discovery: lazy\n", ERR_INVAL, 4, 16,
               "t.yaml:4:16: \"lazy\" is not a discovery mode for server \"a\"; expected auto, "
               "static, hierarchical or search");
    EXPECT_ERR("servers:\n  - name: a\n    spec: x.json\n    discovery: [search]\n", ERR_INVAL, 4,
               16, "t.yaml:4:16: discovery of server \"a\" is a sequence; expected a string");
    EXPECT_ERR("servers:\n  - name: a\n    command: x\n    discovery: search\n", ERR_INVAL, 4, 5,
               "t.yaml:4:5: discovery is not allowed in server \"a\" with transport stdio; "
               "expected it only with transport: openapi");
    EXPECT_ERR("servers:\n  - name: a\n    url: http://h/\n    discovery: search\n", ERR_INVAL, 4,
               5,
               "t.yaml:4:5: discovery is not allowed in server \"a\" with transport http; "
               "expected it only with transport: openapi");

    EXPECT_ERR("servers:\n  - name: a\n    transport: openapi\n", ERR_INVAL, 2, 5,
               "t.yaml:2:5: server \"a\" has transport openapi but no spec; expected spec: <path "
               "of an OpenAPI document, JSON or YAML>");
    EXPECT_ERR("servers:\n  - name: a\n    spec: \"\"\n", ERR_INVAL, 3, 11,
               "t.yaml:3:11: spec of server \"a\" is an empty string; expected a non-empty "
               "string");
    EXPECT_ERR("servers:\n  - name: a\n    spec: x.json\n    url: http://h/\n", ERR_INVAL, 2, 5,
               "t.yaml:2:5: server \"a\" has no transport; expected transport: stdio with a "
               "command, transport: http with a url, or transport: openapi with a spec");
    EXPECT_ERR("servers:\n  - name: a\n    transport: openapi\n    spec: x.json\n"
               "    url: http://h/\n",
               ERR_INVAL, 5, 5,
               "t.yaml:5:5: url is not allowed in server \"a\" with transport openapi; expected "
               "base_url: to replace the document's server URL");
    EXPECT_ERR("servers:\n  - name: a\n    spec: x.json\n    command: x\n    transport: openapi\n",
               ERR_INVAL, 4, 5,
               "t.yaml:4:5: command is not allowed in server \"a\" with transport openapi; "
               "expected it only with transport: stdio");
    EXPECT_ERR("servers:\n  - name: a\n    command: x\n    overrides: o.yaml\n", ERR_INVAL, 4, 5,
               "t.yaml:4:5: overrides is not allowed in server \"a\" with transport stdio; "
               "expected it only with transport: openapi");
    EXPECT_ERR("servers:\n  - name: a\n    url: http://h/\n    spec: x.json\n    transport: http\n",
               ERR_INVAL, 4, 5,
               "t.yaml:4:5: spec is not allowed in server \"a\" with transport http; expected it "
               "only with transport: openapi");
    EXPECT_ERR("servers:\n  - name: a\n    spec: x.json\n    base_url: file:///etc\n", ERR_INVAL, 4,
               15,
               "t.yaml:4:15: \"file:///etc\" is not a base URL for server \"a\"; expected "
               "http://host[/path] or https://host[/path]");
    EXPECT_ERR("servers:\n  - name: a\n    spec: x.json\n    headers: {X-A: \"1\\nX: 2\"}\n",
               ERR_INVAL, 4, 20,
               "t.yaml:4:20: the value of \"X-A\" in headers of server \"a\" contains a line "
               "break; expected a single-line header value");
}

static void test_listeners(void)
{
    char many[2048] = "listen:\n";
    for (int i = 0; i < 65; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "  - {port: %d}\n", i + 1);
    EXPECT_ERR(many, ERR_INVAL, 2, 3, "t.yaml:2:3: listen has 65 listeners; expected at most 64");
    EXPECT_ERR("listen: []\n", ERR_INVAL, 1, 9,
               "t.yaml:1:9: listen is empty; expected at least one listener");
    EXPECT_ERR("listen:\n  - port: 65536\n", ERR_INVAL, 2, 11,
               "t.yaml:2:11: \"65536\" is out of range for port of listener #1; expected an "
               "integer from 0 to 65535");
    EXPECT_ERR("listen:\n  - port: -1\n", ERR_INVAL, 2, 11,
               "t.yaml:2:11: \"-1\" is not an integer for port of listener #1; expected an "
               "integer from 0 to 65535");
    EXPECT_ERR("workers: 257\n", ERR_INVAL, 1, 10,
               "t.yaml:1:10: \"257\" is out of range for workers; expected an integer from 0 to "
               "256");
    EXPECT_ERR("listen:\n  - port: 1\n    tls:\n      cert: a.pem\n", ERR_INVAL, 4, 7,
               "t.yaml:4:7: tls of listener #1 has cert but no key; expected both cert and key, "
               "or neither");
    EXPECT_ERR("listen:\n  - address: example.com\n", ERR_INVAL, 2, 14,
               "t.yaml:2:14: \"example.com\" is not an IP address for listener #1; expected a "
               "numeric IPv4 or IPv6 address or \"localhost\"");
    EXPECT_ERR("listen:\n  - {port: 80}\n  - {address: 127.0.0.1, port: 80}\n", ERR_INVAL, 3, 5,
               "t.yaml:3:5: listener #2 repeats 127.0.0.1 port 80 of listener #1; expected "
               "distinct address and port pairs");
}

static void test_durations_sizes_in_file(void)
{
    EXPECT_ERR("limits:\n  max_body: 4XB\n", ERR_INVAL, 2, 13,
               "t.yaml:2:13: \"4XB\" is not a size; expected a number with optional unit B, "
               "KiB, MiB, GiB");
    EXPECT_ERR("limits:\n  max_body: 0\n", ERR_INVAL, 2, 13,
               "t.yaml:2:13: limits.max_body must not be zero; expected a size such as "
               "\"4MiB\"");
    EXPECT_ERR("limits:\n  max_body: 99999999999999999999\n", ERR_INVAL, 2, 13,
               "t.yaml:2:13: \"99999999999999999999\" is too large for limits.max_body; expected "
               "at most 18446744073709551615 bytes");
    EXPECT_ERR("limits: {sse_keepalive: 10 s}\n", ERR_INVAL, 1, 25,
               "t.yaml:1:25: \"10 s\" is not a duration for limits.sse_keepalive; expected a "
               "number with unit ms, s, m, h or d, or a bare number of milliseconds");
    EXPECT_ERR("limits: {session_idle_timeout: 0s}\n", ERR_INVAL, 1, 32,
               "t.yaml:1:32: limits.session_idle_timeout must not be zero; expected a duration "
               "such as \"30s\"");
    EXPECT_ERR("limits: {mrtr_ttl: 0}\n", ERR_INVAL, 1, 20,
               "t.yaml:1:20: limits.mrtr_ttl must not be zero; expected a duration such as "
               "\"30s\"");
    EXPECT_ERR("limits: {shutdown_grace: 1200h}\n", ERR_INVAL, 1, 26,
               "t.yaml:1:26: \"1200h\" is too long for limits.shutdown_grace; expected at most "
               "4294967295ms (about 49 days)");
    EXPECT_ERR("limits: {max_sessions: 0}\n", ERR_INVAL, 1, 24,
               "t.yaml:1:24: \"0\" is out of range for limits.max_sessions; expected an integer "
               "from 1 to 4294967295");
    /* quoted numbers and durations are accepted */
    struct config *c = load_ok("limits: {max_body: \"100B\", sse_keepalive: \"250\"}\n");
    if (c) {
        CHECK_INT(c->max_body, 100);
        CHECK_INT(c->sse_keepalive_ms, 250);
        config_unref(c);
    }
}

static void test_duration_parse(void)
{
    uint32_t ms = 7;
    CHECK_INT(config_parse_duration("500ms", &ms), 0);
    CHECK_INT(ms, 500);
    CHECK_INT(config_parse_duration("30s", &ms), 0);
    CHECK_INT(ms, 30000);
    CHECK_INT(config_parse_duration("5m", &ms), 0);
    CHECK_INT(ms, 300000);
    CHECK_INT(config_parse_duration("1h", &ms), 0);
    CHECK_INT(ms, 3600000);
    CHECK_INT(config_parse_duration("2d", &ms), 0);
    CHECK_INT(ms, 172800000);
    CHECK_INT(config_parse_duration("250", &ms), 0);
    CHECK_INT(ms, 250);
    CHECK_INT(config_parse_duration("0", &ms), 0);
    CHECK_INT(ms, 0);
    CHECK_INT(config_parse_duration("4294967295", &ms), 0);
    CHECK_INT(ms, 4294967295u);
    CHECK_INT(config_parse_duration("4294967295ms", &ms), 0);
    CHECK_INT(config_parse_duration("4294967s", &ms), 0);
    CHECK_INT(ms, 4294967000u);
    CHECK_INT(config_parse_duration("1193h", &ms), 0);
    ms = 7;
    CHECK_INT(config_parse_duration("4294967296", &ms), ERR_LIMIT);
    CHECK_INT(config_parse_duration("4294968s", &ms), ERR_LIMIT);
    CHECK_INT(config_parse_duration("1194h", &ms), ERR_LIMIT);
    CHECK_INT(config_parse_duration("99999999999999999999999h", &ms), ERR_LIMIT);
    CHECK_INT(config_parse_duration("", &ms), ERR_INVAL);
    CHECK_INT(config_parse_duration("s", &ms), ERR_INVAL);
    CHECK_INT(config_parse_duration("-1s", &ms), ERR_INVAL);
    CHECK_INT(config_parse_duration("1.5s", &ms), ERR_INVAL);
    CHECK_INT(config_parse_duration("1S", &ms), ERR_INVAL);
    CHECK_INT(config_parse_duration("1sec", &ms), ERR_INVAL);
    CHECK_INT(config_parse_duration(" 1s", &ms), ERR_INVAL);
    CHECK_INT(config_parse_duration("1s ", &ms), ERR_INVAL);
    CHECK_INT(config_parse_duration("1w", &ms), ERR_INVAL);
    CHECK_INT(config_parse_duration("99999999999999999999999x", &ms), ERR_INVAL);
    CHECK_INT(ms, 7); /* untouched on failure */
}

static void test_size_parse(void)
{
    size_t n = 7;
    CHECK_INT(config_parse_size("100B", &n), 0);
    CHECK_INT(n, 100);
    CHECK_INT(config_parse_size("100", &n), 0);
    CHECK_INT(n, 100);
    CHECK_INT(config_parse_size("512KiB", &n), 0);
    CHECK_INT(n, 512 * 1024);
    CHECK_INT(config_parse_size("4MiB", &n), 0);
    CHECK_INT(n, 4 << 20);
    CHECK_INT(config_parse_size("1GiB", &n), 0);
    CHECK_INT(n, 1 << 30);
    CHECK_INT(config_parse_size("0", &n), 0);
    CHECK_INT(n, 0);
    CHECK_INT(config_parse_size("18446744073709551615", &n), 0);
    CHECK(n == SIZE_MAX);
    CHECK_INT(config_parse_size("17179869183GiB", &n), 0);
    n = 7;
    CHECK_INT(config_parse_size("18446744073709551616", &n), ERR_LIMIT);
    CHECK_INT(config_parse_size("17179869184GiB", &n), ERR_LIMIT);
    CHECK_INT(config_parse_size("4MB", &n), ERR_INVAL);
    CHECK_INT(config_parse_size("4mib", &n), ERR_INVAL);
    CHECK_INT(config_parse_size("4 MiB", &n), ERR_INVAL);
    CHECK_INT(config_parse_size("MiB", &n), ERR_INVAL);
    CHECK_INT(config_parse_size("-4", &n), ERR_INVAL);
    CHECK_INT(config_parse_size("0x10", &n), ERR_INVAL);
    CHECK_INT(config_parse_size("", &n), ERR_INVAL);
    CHECK_INT(n, 7);
}

static void *unref_worker(void *arg)
{
    struct config *c = arg;
    for (int i = 0; i < 10000; i++)
        config_unref(config_ref(c));
    config_unref(c); /* the reference the main thread took for us */
    return NULL;
}

static void test_refcount(void)
{
    struct config *c = load_ok(full_yaml);
    if (c == NULL)
        return;
    CHECK_INT(atomic_load(&c->refcnt), 1);
    CHECK(config_ref(c) == c);
    CHECK_INT(atomic_load(&c->refcnt), 2);
    config_unref(c);
    CHECK_INT(atomic_load(&c->refcnt), 1);

    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, unref_worker, config_ref(c));
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    CHECK_INT(atomic_load(&c->refcnt), 1);
    CHECK_STR(c->servers[1].headers[0].key, "X-Team"); /* still intact */
    config_unref(c); /* frees: LeakSanitizer checks nothing is left */
    config_unref(NULL);
}

static void test_store_auth(void)
{
    /* Without the sections: no authentication, the store next to the working directory. */
    struct config *c = load_ok("servers: []\n");
    CHECK(!c->auth.enabled);
    CHECK_STR(c->store.sqlite, "gatehouse.db");
    CHECK_STR(c->store.key_file, "gatehouse.db.key");
    CHECK_STR(c->auth.required_scope, "mcp");
    CHECK_INT(c->auth.access_token_ttl_s, 600);
    CHECK_INT(c->auth.refresh_token_ttl_s, 30 * 24 * 3600);
    CHECK_STR(c->auth.signing_alg, "ES256");
    CHECK(c->auth.dynamic_registration && c->auth.cimd && !c->auth.cimd_allow_private);
    CHECK(c->auth.issuer == NULL);
    config_unref(c);

    c = load_ok("store: {sqlite: /var/lib/gh/gh.db, key_file: /etc/gh/master.key}\n"
                "auth:\n"
                "  issuer: https://gw.example\n"
                "  access_token_ttl: 5m\n"
                "  refresh_token_ttl: 14d\n"
                "  signing_alg: EdDSA\n"
                "  scopes: [mcp, mcp.admin]\n"
                "  registration: {dynamic: false, cimd_allow_private: true, cimd_max_size: 4KiB}\n"
                "  login:\n"
                "    local: false\n"
                "    providers:\n"
                "      - {name: corp, issuer: \"https://idp.example\", client_id: gh,\n"
                "         groups_claim: groups, jit: false}\n"
                "  clients:\n"
                "    - {client_id: cli, name: CLI, redirect_uris: [\"http://127.0.0.1/cb\"]}\n");
    CHECK(c->auth.enabled);
    CHECK_STR(c->store.sqlite, "/var/lib/gh/gh.db");
    CHECK_STR(c->store.key_file, "/etc/gh/master.key");
    CHECK_STR(c->auth.issuer, "https://gw.example");
    CHECK_INT(c->auth.access_token_ttl_s, 300);
    CHECK_INT(c->auth.refresh_token_ttl_s, 14 * 24 * 3600);
    CHECK_STR(c->auth.signing_alg, "EdDSA");
    CHECK_INT(c->auth.nscopes, 2);
    CHECK_STR(c->auth.required_scope, "mcp");
    CHECK(!c->auth.dynamic_registration && c->auth.cimd_allow_private);
    CHECK_INT(c->auth.cimd_max_size, 4096);
    CHECK(!c->auth.local_login);
    CHECK_INT(c->auth.nproviders, 1);
    CHECK_STR(c->auth.providers[0].name, "corp");
    CHECK_INT(c->auth.providers[0].nscopes, 3);
    CHECK_STR(c->auth.providers[0].scopes[0], "openid");
    CHECK_STR(c->auth.providers[0].groups_claim, "groups");
    CHECK(!c->auth.providers[0].jit);
    CHECK_INT(c->auth.nclients, 1);
    CHECK_STR(c->auth.clients[0].redirect_uris[0], "http://127.0.0.1/cb");
    CHECK(c->auth.clients[0].secret_file == NULL);
    CHECK(!c->auth.clients[0].introspect);
    config_unref(c);

    c = load_ok("auth:\n  clients:\n    - {client_id: rs, redirect_uris: [\"https://rs/cb\"], "
                "secret_file: /etc/gh/rs.secret, introspect: true}\n");
    CHECK(c->auth.clients[0].introspect);
    config_unref(c);
    EXPECT_ERR("auth: {clients: [{client_id: rs, redirect_uris: [\"https://rs/cb\"], introspect: "
               "true}]}\n",
               ERR_INVAL, 1, 80,
               "t.yaml:1:80: introspect of client \"rs\" is true but the client has no "
               "secret_file; a resource server that introspects tokens must be a confidential "
               "client");

    c = load_ok("auth: {enabled: false}\n");
    CHECK(!c->auth.enabled);
    config_unref(c);

    EXPECT_ERR("auth: {issuer: \"https://gw.example/\"}\n", ERR_INVAL, 1, 16,
               "t.yaml:1:16: \"https://gw.example/\" is not an issuer URL; expected "
               "https://host[:port] with no path, query or trailing slash");
    EXPECT_ERR("auth: {signing_alg: HS256}\n", ERR_INVAL, 1, 21,
               "t.yaml:1:21: \"HS256\" is not a signing algorithm; expected ES256 or EdDSA");
    EXPECT_ERR("auth: {scopes: [a], required_scope: mcp}\n", ERR_INVAL, 1, 37,
               "t.yaml:1:37: auth.required_scope \"mcp\" is not in auth.scopes; expected one of "
               "the scopes the server offers");
    EXPECT_ERR("auth: {login: {local: false}}\n", ERR_INVAL, 1, 15,
               "t.yaml:1:15: auth.login has local: false and no providers, so nobody could log "
               "in; expected local: true or at least one identity provider");
    EXPECT_ERR("auth: {access_token_ttl: 500ms}\n", ERR_INVAL, 1, 26,
               "t.yaml:1:26: auth.access_token_ttl is 500ms; expected at least 1s");
    EXPECT_ERR("auth: {clients: [{client_id: \"https://x/y\", redirect_uris: [\"http://a/\"]}]}\n",
               ERR_INVAL, 1, 30,
               "t.yaml:1:30: \"https://x/y\" is not a valid client_id; expected at most 128 "
               "characters without spaces, ':' or '/' (URL client ids are Client ID Metadata "
               "Documents)");
    EXPECT_ERR("auth: {login: {providers: [{name: a, issuer: \"https://i\"}]}}\n", ERR_INVAL, 1, 28,
               "t.yaml:1:28: identity provider 1 of auth.login.providers has no client_id; "
               "expected name, issuer and client_id");
    EXPECT_ERR(
        "auth: {login: {providers: [{name: callback, issuer: \"https://i\", client_id: c}]}}\n",
        ERR_INVAL, 1, 35,
        "t.yaml:1:35: identity provider 1 of auth.login.providers cannot be called "
        "\"callback\": /oauth/sso/callback is where every provider sends the browser back");
    EXPECT_ERR("auth: {login: {providers: [{name: a, issuer: \"https://i\", client_id: c, scopes: "
               "[email]}]}}\n",
               ERR_INVAL, 1, 81,
               "t.yaml:1:81: scopes of identity provider \"a\" has no \"openid\"; without it the "
               "provider sends no id_token");
    c = load_ok("outbound: {ca_file: /etc/gh/ca.pem}\n");
    CHECK_STR(c->outbound.ca_file, "/etc/gh/ca.pem");
    config_unref(c);
    EXPECT_ERR("store: {sqlite: \"\"}\n", ERR_INVAL, 1, 17,
               "t.yaml:1:17: store.sqlite is an empty string; expected a non-empty string");
}

/* store.postgres: what store_open opens, never made a path, and never quoted in an error. */
static void test_store_postgres(void)
{
    struct config *c =
        load_ok("store: {postgres: \"postgresql://gh:S3cret-pw@db.internal:5432/gatehouse\","
                " key_file: /etc/gh/master.key}\n");
    CHECK_STR(c->store.postgres, "postgresql://gh:S3cret-pw@db.internal:5432/gatehouse");
    CHECK_STR(c->store.sqlite, c->store.postgres);
    CHECK_STR(c->store.key_file, "/etc/gh/master.key");
    config_unref(c);
    static const struct {
        const char *yaml, *msg;
    } bad[] = {
        {"store: {postgres: \"host=db password=S3cret-pw\", key_file: k}\n",
         "store.postgres is not a connection URI"},
        {"store: {postgres: \"postgresql://gh:S3cret-pw@db/gh\"}\n",
         "store.postgres needs store.key_file"},
        {"store: {sqlite: a.db, postgres: \"postgresql://gh:S3cret-pw@db/gh\", key_file: k}\n",
         "store.postgres and store.sqlite are exclusive"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct err_info ei = {0};
        c = NULL;
        CHECK_INT(config_load_string(bad[i].yaml, strlen(bad[i].yaml), "t.yaml", &c, &ei),
                  ERR_INVAL);
        CHECK(c == NULL);
        CHECK_CONTAINS(ei.msg, bad[i].msg);
        CHECK(strstr(ei.msg, "S3cret") == NULL);
    }
}

/* listen[].tls.min_version and client_ca, auth.client_certificates (docs/configuration.md, TLS). */
static void test_tls_keys(void)
{
    struct config *c =
        load_ok("listen:\n"
                "  - {port: 1, tls: {cert: c, key: k}}\n"
                "  - {port: 2, tls: {cert: c, key: k, min_version: '1.3', client_ca: ca}}\n"
                "auth:\n"
                "  client_certificates:\n"
                "    - {subject: 'CN=ci,O=Example', account: ci-bot}\n"
                "    - {uri: 'spiffe://example.org/x', account: x}\n");
    if (c != NULL) {
        CHECK_INT(c->listeners[0].tls_min_version, 0x0303);
        CHECK(c->listeners[0].tls_client_ca == NULL);
        CHECK_INT(c->listeners[1].tls_min_version, 0x0304);
        CHECK_STR(c->listeners[1].tls_client_ca, "ca");
        CHECK_INT(c->auth.nclient_certs, 2);
        CHECK_STR(c->auth.client_certs[0].subject, "CN=ci,O=Example");
        CHECK(c->auth.client_certs[0].uri == NULL);
        CHECK_STR(c->auth.client_certs[0].account, "ci-bot");
        CHECK_STR(c->auth.client_certs[1].uri, "spiffe://example.org/x");
        config_unref(c);
    }
    EXPECT_ERR("listen:\n  - {port: 1, tls: {cert: c, key: k, min_version: '1.1'}}\n", ERR_INVAL, 2,
               51,
               "t.yaml:2:51: \"1.1\" is not a TLS version for tls.min_version of listener #1; "
               "expected \"1.2\" or \"1.3\" (older versions are never offered)");
    EXPECT_ERR("listen:\n  - {port: 1, tls: {client_ca: ca}}\n", ERR_INVAL, 2, 20,
               "t.yaml:2:20: tls of listener #1 has client_ca but no cert and key; expected cert "
               "and key too");
    EXPECT_ERR(
        "listen:\n  - {port: 1, tls: {cert: c, key: k, client_ca: ca}}\n", ERR_INVAL, 0, 0,
        "t.yaml: listener #1 has tls.client_ca but authentication is off; expected an auth section "
        "(a client certificate authenticates as a service account mapped in "
        "auth.client_certificates)");
    EXPECT_ERR("auth:\n  client_certificates:\n    - {subject: a, uri: b, account: c}\n", ERR_INVAL,
               3, 7,
               "t.yaml:3:7: item 1 of auth.client_certificates has both subject and uri; "
               "expected exactly one of subject and uri");
    EXPECT_ERR("auth:\n  client_certificates:\n    - {subject: a}\n", ERR_INVAL, 3, 7,
               "t.yaml:3:7: item 1 of auth.client_certificates has no account; expected the "
               "service account it authenticates as");
    EXPECT_ERR("auth:\n  client_certificates:\n    - {uri: a, account: 'no way'}\n", ERR_INVAL, 3,
               25,
               "t.yaml:3:25: \"no way\" is not a service account name for item 1 of "
               "auth.client_certificates; expected 1 to 128 of A-Z a-z 0-9 . _ @ + -");
    EXPECT_ERR("auth:\n  client_certificates:\n    - {uri: a, account: b}\n    - {uri: a, account: "
               "c}\n",
               ERR_INVAL, 4, 7,
               "t.yaml:4:7: uri \"a\" is mapped twice in auth.client_certificates; expected each "
               "once");
}

static void test_redis(void)
{
    struct config *c = load_ok("workers: 1\n");
    CHECK(c->redis.url == NULL); /* absent: no Redis */
    config_unref(c);
    c = load_ok("redis: {url: \"redis://:S3cret-pw@10.0.0.5:6380/2\"}\n");
    CHECK_STR(c->redis.url, "redis://:S3cret-pw@10.0.0.5:6380/2");
    CHECK_INT(c->redis.revocation_poll_ms, 1000);
    CHECK_STR(c->redis.prefix, "gatehouse:");
    config_unref(c);
    c = load_ok("redis: {url: \"redis://r\", revocation_poll: 30s, prefix: \"gh-prod:\"}\n");
    CHECK_INT(c->redis.revocation_poll_ms, 30000);
    CHECK_STR(c->redis.prefix, "gh-prod:");
    config_unref(c);
    static const struct {
        const char *yaml, *msg;
    } bad[] = {
        {"redis: {revocation_poll: 1s}\n", "redis needs url"},
        {"redis: {url: \"rediss://:S3cret-pw@r:6380\"}\n", "asks for TLS (rediss://)"},
        {"redis: {url: \"http://:S3cret-pw@r\"}\n", "redis.url is not a Redis URL"},
        {"redis: {url: \"redis://r\", revocation_poll: 0}\n", "must not be zero"},
        {"redis: {url: \"redis://:S3cret-pw@r\", pool: 3}\n", "unknown key \"pool\" in redis"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct err_info ei = {0};
        c = NULL;
        CHECK_INT(config_load_string(bad[i].yaml, strlen(bad[i].yaml), "t.yaml", &c, &ei),
                  ERR_INVAL);
        CHECK(c == NULL);
        CHECK_CONTAINS(ei.msg, bad[i].msg);
        CHECK(strstr(ei.msg, "S3cret") == NULL);
    }
}

TEST_MAIN(TEST(test_full_file), TEST(test_defaults), TEST(test_example_file),
          TEST(test_docs_example), TEST(test_quoting), TEST(test_file_errors),
          TEST(test_yaml_syntax), TEST(test_unknown_keys), TEST(test_wrong_types),
          TEST(test_servers), TEST(test_openapi_servers), TEST(test_protocol),
          TEST(test_validate_arguments), TEST(test_sessions), TEST(test_upstream_oauth),
          TEST(test_listeners), TEST(test_durations_sizes_in_file), TEST(test_duration_parse),
          TEST(test_size_parse), TEST(test_refcount), TEST(test_store_auth),
          TEST(test_relative_paths), TEST(test_store_postgres), TEST(test_tls_keys),
          TEST(test_redis))

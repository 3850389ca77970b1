/*
 * `gatehouse user|team|account|apikey|client|revoke ...`: the administration commands, run in
 * their own process against the store the configuration names. Each command is a row of the
 * table at the bottom: its words, its usage line and a handler that gets the positional
 * arguments and the options already parsed.
 *
 * Secrets (passwords, API keys, client secrets) are printed once on stdout, alone on their line
 * so that scripts can take them, with the explanation on stderr; they are never written anywhere
 * else, and the buffers that held them are wiped.
 */
#include "admin/cli.h"
#include "auth/auth.h"
#include "config/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/secret.h"
#include "mcp/gateway.h"
#include "oauth/oauth.h"
#include "shared/redis.h"
#include "store/store.h"
#include "vault/vault.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARGS 16
#define MAX_REDIRECTS 16
#define PASSWORD_MIN 8
#define PASSWORD_MAX 1024
#define RANDOM_PASSWORD_BYTES 18 /* 24 base64url characters */
#define CLIENT_ID_BYTES 8        /* "ghc_" and 16 hex characters */

enum { EXIT_OK = 0, EXIT_REFUSED = 1, EXIT_USAGE = 2 };

/* What a command line carried, parsed once for every command; a command refuses the options it
   does not take (see `takes` in the table). */
struct args {
    const char *pos[MAX_ARGS];
    size_t npos;
    const char *email, *account, *label, *user, *name, *role, *alg, *server, *discovery, *select;
    const char *redirects[MAX_REDIRECTS];
    size_t nredirects;
    bool admin, json, password_stdin, random, no_password, select_all;
};

enum opt_bit {
    O_EMAIL = 1 << 0,
    O_ADMIN = 1 << 1,
    O_PASSWORD = 1 << 2, /* --password-stdin, --random, --no-password */
    O_JSON = 1 << 3,
    O_ROLE = 1 << 4,
    O_ACCOUNT = 1 << 5,
    O_LABEL = 1 << 6,
    O_USER = 1 << 7,
    O_NAME = 1 << 8,
    O_REDIRECT = 1 << 9,
    O_ALG = 1 << 10,
    O_SETTINGS = 1 << 11, /* --server, --discovery, --select, --select-all */
    C_CREATES = 1 << 16,  /* not an option: the command may create the store when it is missing */
};

struct command;

struct cli {
    struct config *cfg;
    struct store *st;
    const struct command *cmd; /* the one running */
};

struct command {
    const char *words[3]; /* "team", "member", "add" */
    size_t npos;          /* positional arguments after the words */
    unsigned takes;       /* enum opt_bit, and C_CREATES */
    const char *usage;
    int (*run)(struct cli *c, const struct args *a);
};

__attribute__((format(printf, 1, 2))) static int refuse(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("gatehouse: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_REFUSED;
}

static void print_usage(FILE *out, const struct command *cmd)
{
    fprintf(out, "usage: gatehouse %s [-c FILE]\n", cmd->usage);
}

__attribute__((format(printf, 2, 3))) static int usage_error(const struct command *cmd,
                                                             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("gatehouse: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    print_usage(stderr, cmd);
    return EXIT_USAGE;
}

static const char *iso_time(int64_t t, char buf[32])
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (t == 0 || gmtime_r(&tt, &tm) == NULL)
        return "-";
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

/* ---- looking things up by name, with the refusal naming what is missing ---- */

static int find_user(struct cli *c, const char *name, struct store_user *u)
{
    int err = store_user_find(c->st, name, u);
    if (err == ERR_NOTFOUND)
        return refuse("no user named \"%s\"", name);
    if (err)
        return refuse("cannot read user \"%s\": %s", name, err_str(err));
    return 0;
}

static int store_failed(const char *what, int err)
{
    return refuse("%s: %s", what, err_str(err));
}

/* ---- passwords ---- */

/* Read one line (without its newline) from fd into out; false when empty or too long. */
static bool read_line(int fd, char *out, size_t size)
{
    size_t n = 0;
    char ch;
    ssize_t r;
    while ((r = read(fd, &ch, 1)) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || ch == '\n')
            break;
        if (n + 1 >= size) {
            sodium_memzero(out, size);
            return false;
        }
        out[n++] = ch;
    }
    if (n > 0 && out[n - 1] == '\r')
        n--;
    out[n] = '\0';
    return n > 0;
}

/* Ask on the terminal, echo off. */
static bool prompt_line(int tty, const char *prompt, char *out, size_t size)
{
    struct termios old, quiet;
    bool restore = tcgetattr(tty, &old) == 0;
    if (restore) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        quiet.c_lflag |= ECHONL;
        tcsetattr(tty, TCSAFLUSH, &quiet);
    }
    if (write(tty, prompt, strlen(prompt)) < 0) {
        /* the read below fails the same way */
    }
    bool ok = read_line(tty, out, size);
    if (restore)
        tcsetattr(tty, TCSAFLUSH, &old);
    return ok;
}

/* The password for `user add` / `user passwd`, by the options given: --password-stdin (first
   line of stdin), --random (generated; *generated set so that the caller prints it once),
   --no-password (none: out stays ""), or asked twice on the terminal. Returns 0, EXIT_REFUSED or
   EXIT_USAGE. */
static int get_password(const struct command *cmd, const struct args *a, char *out, size_t size,
                        bool *generated)
{
    *generated = false;
    if (a->password_stdin + a->random + a->no_password > 1)
        return usage_error(cmd, "--password-stdin, --random and --no-password exclude each other");
    if (a->no_password)
        return 0;
    if (a->random) {
        rand_token(out, size, RANDOM_PASSWORD_BYTES);
        *generated = true;
        return 0;
    }
    if (a->password_stdin) {
        if (!read_line(STDIN_FILENO, out, size))
            return refuse("no password on stdin (expected one line of at most %d bytes)",
                          PASSWORD_MAX);
    } else {
        int tty = isatty(STDIN_FILENO) ? open("/dev/tty", O_RDWR | O_CLOEXEC) : -1;
        if (tty < 0)
            return usage_error(cmd, "no terminal to ask for the password on; use "
                                    "--password-stdin or --random");
        char again[PASSWORD_MAX + 2];
        bool ok = prompt_line(tty, "Password: ", out, size) &&
                  prompt_line(tty, "Again: ", again, sizeof(again));
        bool same = ok && secret_equal(out, strlen(out), again, strlen(again));
        sodium_memzero(again, sizeof(again));
        close(tty);
        if (!ok)
            return refuse("no password entered");
        if (!same)
            return refuse("the two passwords differ; nothing changed");
    }
    if (strlen(out) < PASSWORD_MIN)
        return refuse("the password is shorter than %d characters", PASSWORD_MIN);
    return 0;
}

static void print_generated_password(const char *user, const char *pw)
{
    fprintf(stderr, "The password of user \"%s\" (shown once; store it now):\n", user);
    printf("%s\n", pw);
    fflush(stdout);
}

/* ---- users ---- */

static int user_add(struct cli *c, const struct args *a)
{
    char pw[PASSWORD_MAX + 2] = "";
    bool generated = false;
    int rc = get_password(c->cmd, a, pw, sizeof(pw), &generated);
    if (rc != 0)
        goto out;
    struct store_user u;
    struct err_info ei = {0};
    int err =
        store_user_add(c->st, a->pos[0], a->email, a->no_password ? NULL : pw, a->admin, &u, &ei);
    if (err) {
        rc = refuse("%s", ei.msg[0] ? ei.msg : err_str(err));
        goto out;
    }
    if (generated)
        print_generated_password(u.name, pw);
    fprintf(stderr, "user \"%s\" added (id %lld%s%s)\n", u.name, (long long)u.id,
            u.admin ? ", administrator" : "", a->no_password ? ", no password: SSO only" : "");
out:
    sodium_memzero(pw, sizeof(pw));
    return rc;
}

struct list_ctx {
    struct cli *c;
    json_t *arr; /* --json */
};

static int team_json_cb(const char *team, enum store_role role, void *arg)
{
    json_array_append_new(arg, json_pack("{s:s, s:s}", "name", team, "role",
                                         role == STORE_ROLE_ADMIN ? "admin" : "member"));
    return 0;
}

static int team_text_cb(const char *team, enum store_role role, void *arg)
{
    size_t *n = arg;
    printf("%s%s%s", (*n)++ ? "," : "", team, role == STORE_ROLE_ADMIN ? "(admin)" : "");
    return 0;
}

static int user_list_cb(const struct store_user *u, void *arg)
{
    struct list_ctx *l = arg;
    char t1[32];
    if (l->arr) {
        json_t *teams = json_array();
        int err = store_user_teams(l->c->st, u->id, team_json_cb, teams);
        json_array_append_new(l->arr,
                              json_pack("{s:I, s:s, s:s, s:b, s:b, s:I, s:I, s:o}", "id",
                                        (json_int_t)u->id, "name", u->name, "email", u->email,
                                        "admin", u->admin, "disabled", u->disabled, "created_at",
                                        (json_int_t)u->created_at, "tokens_valid_after",
                                        (json_int_t)u->tokens_valid_after, "teams", teams));
        return err;
    }
    printf("%-20s %-28s %-5s %-8s %-20s ", u->name, u->email[0] ? u->email : "-",
           u->admin ? "yes" : "no", u->disabled ? "disabled" : "active",
           iso_time(u->created_at, t1));
    size_t n = 0;
    int err = store_user_teams(l->c->st, u->id, team_text_cb, &n);
    printf("%s\n", n ? "" : "-");
    return err;
}

static int user_list(struct cli *c, const struct args *a)
{
    struct list_ctx l = {c, a->json ? json_array() : NULL};
    if (!a->json)
        printf("%-20s %-28s %-5s %-8s %-20s %s\n", "NAME", "EMAIL", "ADMIN", "STATE", "CREATED",
               "TEAMS");
    int err = store_user_list(c->st, user_list_cb, &l);
    if (err == 0 && l.arr) {
        json_dumpf(l.arr, stdout, JSON_INDENT(2));
        putchar('\n');
    }
    json_decref(l.arr);
    return err ? store_failed("cannot list users", err) : 0;
}

static int user_set_disabled(struct cli *c, const struct args *a, bool disabled)
{
    struct store_user u;
    int rc = find_user(c, a->pos[0], &u);
    if (rc)
        return rc;
    int err = store_user_set_disabled(c->st, u.id, disabled);
    if (err)
        return store_failed("cannot change the user", err);
    if (disabled)
        printf("user \"%s\" disabled: they cannot log in and every token they hold is refused\n",
               u.name);
    else
        printf("user \"%s\" enabled\n", u.name);
    return 0;
}

static int user_disable(struct cli *c, const struct args *a)
{
    return user_set_disabled(c, a, true);
}

static int user_enable(struct cli *c, const struct args *a)
{
    return user_set_disabled(c, a, false);
}

/* `user settings USER --server S [--discovery M] [--select a,b | --select-all]`: without a change,
   prints the settings; with one, changes them (mcp_settings_update: the rules the gateway's
   gatehouse__settings tool follows too). A running gateway reads them at the user's next list or
   call. */
static int user_settings(struct cli *c, const struct args *a)
{
    struct store_user u;
    int rc = find_user(c, a->pos[0], &u);
    if (rc)
        return rc;
    if (a->server == NULL)
        return usage_error(c->cmd, "--server is required");
    if (a->select && a->select_all)
        return usage_error(c->cmd, "--select and --select-all exclude each other");
    json_t *select = a->select_all ? json_null() : NULL;
    if (a->select) {
        select = json_array();
        for (const char *p = a->select; *p;) {
            size_t n = strcspn(p, ",");
            if (n == 0 || n > 128) {
                json_decref(select);
                return usage_error(c->cmd, "--select takes tool names separated by commas");
            }
            json_array_append_new(select, json_stringn(p, n));
            p += n + (p[n] == ',');
        }
    }
    struct store_settings v = {0};
    struct err_info ei = {0};
    int err;
    if (a->discovery || select)
        err = mcp_settings_update(c->cfg, c->st, u.id, a->server, a->discovery, select, &v, &ei);
    else if ((err = store_settings_get(c->st, u.id, a->server, &v)) == ERR_NOTFOUND)
        err = 0; /* no row: every default */
    json_decref(select);
    if (err)
        return refuse("%s", ei.msg[0] ? ei.msg : err_str(err));
    json_t *d = mcp_settings_describe(a->server, &v);
    if (a->json) {
        json_dumpf(d, stdout, JSON_INDENT(2));
        putchar('\n');
    } else {
        printf("user \"%s\", server \"%s\": discovery %s; ", u.name, a->server,
               json_string_value(json_object_get(d, "discovery")));
        if (v.tools == NULL)
            printf("every tool selected\n");
        else {
            printf("%zu tools selected:", json_array_size(v.tools));
            size_t i;
            json_t *t;
            json_array_foreach(v.tools, i, t) printf(" %s", json_string_value(t));
            putchar('\n');
        }
    }
    json_decref(d);
    store_settings_release(&v);
    return 0;
}

/* ---- upstream connections (servers with auth.oauth; the vault) ---- */

static const struct config_server *oauth_server(struct cli *c, const char *name)
{
    for (size_t i = 0; i < c->cfg->nservers; i++)
        if (strcmp(c->cfg->servers[i].name, name) == 0)
            return c->cfg->servers[i].oauth.enabled ? &c->cfg->servers[i] : NULL;
    return NULL;
}

static int connections_cb(const char *server, int64_t expires_at, const char *scope, void *arg)
{
    json_t *list = arg;
    json_array_append_new(list, json_pack("{s:s, s:I, s:s}", "server", server, "expires_at",
                                          (json_int_t)expires_at, "scope", scope));
    return 0;
}

/* `user connections NAME [--json]`: the servers the user has connected (expiry and scope only:
   the vault never shows a token). */
static int user_connections(struct cli *c, const struct args *a)
{
    struct store_user u;
    int rc = find_user(c, a->pos[0], &u);
    if (rc)
        return rc;
    json_t *list = json_array();
    int err = vault_list(c->st, u.id, connections_cb, list);
    if (err) {
        json_decref(list);
        return store_failed("cannot list the connections", err);
    }
    if (a->json) {
        json_dumpf(list, stdout, JSON_INDENT(2));
        putchar('\n');
    } else {
        printf("%-24s %-20s %s\n", "SERVER", "EXPIRES", "SCOPE");
        size_t i;
        json_t *r;
        json_array_foreach(list, i, r)
        {
            char t[32];
            int64_t x = json_integer_value(json_object_get(r, "expires_at"));
            printf("%-24s %-20s %s\n", json_string_value(json_object_get(r, "server")),
                   x ? iso_time(x, t) : "-", json_string_value(json_object_get(r, "scope")));
        }
    }
    json_decref(list);
    return 0;
}

/* `user connect NAME SERVER`: a link for the user to open in a browser, which connects their
   account at the server (15 minutes, once). */
static int user_connect(struct cli *c, const struct args *a)
{
    struct store_user u;
    int rc = find_user(c, a->pos[0], &u);
    if (rc)
        return rc;
    if (oauth_server(c, a->pos[1]) == NULL)
        return refuse("no server \"%s\" with auth.oauth in %s", a->pos[1], c->cfg->source);
    if (c->cfg->auth.issuer == NULL)
        return refuse("auth.issuer is not set in %s; the link needs the gateway's public base URL",
                      c->cfg->source);
    unsigned char master[AUTH_MASTER_KEY_LEN];
    struct err_info ei = {0};
    int err = auth_master_key_load(c->cfg->store.key_file, false, master, &ei);
    if (err)
        return refuse("%s", ei.msg);
    char url[4096];
    err = oauth_upstream_start_url(master, c->cfg->auth.issuer, u.id, a->pos[1], NULL,
                                   (int64_t)time(NULL), url, sizeof(url));
    sodium_memzero(master, sizeof(master));
    if (err)
        return refuse("cannot make the link: %s", err_str(err));
    printf("%s\n", url);
    return 0;
}

/* `user disconnect NAME SERVER`: forget the user's tokens for the server. */
static int user_disconnect(struct cli *c, const struct args *a)
{
    struct store_user u;
    int rc = find_user(c, a->pos[0], &u);
    if (rc)
        return rc;
    int err = vault_forget(c->st, u.id, a->pos[1]);
    if (err == ERR_NOTFOUND || err == ERR_INVAL)
        return refuse("user \"%s\" has no connection to \"%s\"", u.name, a->pos[1]);
    if (err)
        return store_failed("cannot forget the connection", err);
    printf("user \"%s\" disconnected from \"%s\"\n", u.name, a->pos[1]);
    return 0;
}

static int user_passwd(struct cli *c, const struct args *a)
{
    struct store_user u;
    int rc = find_user(c, a->pos[0], &u);
    if (rc)
        return rc;
    char pw[PASSWORD_MAX + 2] = "";
    bool generated;
    if ((rc = get_password(c->cmd, a, pw, sizeof(pw), &generated)) != 0)
        goto out;
    int err = store_user_set_password(c->st, u.id, a->no_password ? NULL : pw);
    if (err) {
        rc = store_failed("cannot set the password", err);
        goto out;
    }
    if (generated)
        print_generated_password(u.name, pw);
    fprintf(stderr, "password of user \"%s\" %s\n", u.name,
            a->no_password ? "removed: SSO only" : "changed");
out:
    sodium_memzero(pw, sizeof(pw));
    return rc;
}

static int has_admin_cb(const struct store_user *u, void *arg)
{
    return u->admin && !u->disabled;
}

/* `make run`: the first administrator, so that a fresh checkout can log in. Does nothing when
   authentication is off or an active administrator exists. */
static int user_bootstrap(struct cli *c, const struct args *a)
{
    if (!c->cfg->auth.enabled)
        return 0;
    int err = store_user_list(c->st, has_admin_cb, NULL);
    if (err == 1)
        return 0;
    if (err)
        return store_failed("cannot list users", err);
    char pw[RANDOM_PASSWORD_BYTES * 2];
    rand_token(pw, sizeof(pw), RANDOM_PASSWORD_BYTES);
    struct store_user u;
    struct err_info ei = {0};
    err = store_user_add(c->st, "admin", NULL, pw, true, &u, &ei);
    if (err == ERR_EXISTS) {
        sodium_memzero(pw, sizeof(pw));
        fprintf(stderr,
                "gatehouse: no active administrator, and the name \"admin\" is taken; make one "
                "with: gatehouse user add NAME --admin\n");
        return 0;
    }
    if (err) {
        sodium_memzero(pw, sizeof(pw));
        return refuse("%s", ei.msg[0] ? ei.msg : err_str(err));
    }
    char issuer[300];
    const struct config_listener *l = c->cfg->nlisteners ? &c->cfg->listeners[0] : NULL;
    if (c->cfg->auth.issuer)
        snprintf(issuer, sizeof(issuer), "%s", c->cfg->auth.issuer);
    else if (l && strchr(l->address, ':')) /* IPv6 */
        snprintf(issuer, sizeof(issuer), "%s://[%s]:%u", l->tls_cert ? "https" : "http", l->address,
                 l->port);
    else
        snprintf(issuer, sizeof(issuer), "%s://%s:%u", l && l->tls_cert ? "https" : "http",
                 l ? l->address : "127.0.0.1", (unsigned)(l ? l->port : 8080));
    /* A box of its own, so that it stands out after the build output and before the
       gateway's log lines. */
    char line1[200], line3[360];
    snprintf(line1, sizeof(line1), "Administrator \"admin\" created. Password (shown once):");
    snprintf(line3, sizeof(line3), "Log in at %s/oauth/authorize", issuer);
    const char *lines[] = {line1, pw, line3,
                           "Change the password with: gatehouse user passwd admin"};
    size_t width = 0;
    for (size_t i = 0; i < 4; i++)
        width = strlen(lines[i]) > width ? strlen(lines[i]) : width;
    printf("\n+");
    for (size_t k = 0; k < width + 2; k++)
        putchar('-');
    printf("+\n");
    for (size_t i = 0; i < 4; i++)
        printf("| %s%*s |\n", lines[i], (int)(width - strlen(lines[i])), "");
    putchar('+');
    for (size_t k = 0; k < width + 2; k++)
        putchar('-');
    printf("+\n\n");
    fflush(stdout);
    sodium_memzero(pw, sizeof(pw));
    return 0;
}

/* ---- teams ---- */

static int team_add(struct cli *c, const struct args *a)
{
    struct err_info ei = {0};
    int err = store_team_add(c->st, a->pos[0], &ei);
    if (err)
        return refuse("%s", ei.msg[0] ? ei.msg : err_str(err));
    printf("team \"%s\" added\n", a->pos[0]);
    return 0;
}

static int team_list_cb(const char *team, size_t members, void *arg)
{
    printf("%-28s %zu\n", team, members);
    return 0;
}

static int team_list(struct cli *c, const struct args *a)
{
    printf("%-28s %s\n", "TEAM", "MEMBERS");
    int err = store_team_list(c->st, team_list_cb, NULL);
    return err ? store_failed("cannot list teams", err) : 0;
}

static int team_member_add(struct cli *c, const struct args *a)
{
    enum store_role role = STORE_ROLE_MEMBER;
    if (a->role && strcmp(a->role, "admin") == 0)
        role = STORE_ROLE_ADMIN;
    else if (a->role && strcmp(a->role, "member") != 0)
        return usage_error(c->cmd, "unknown role \"%s\"; expected admin or member", a->role);
    struct store_user u;
    int rc = find_user(c, a->pos[1], &u);
    if (rc)
        return rc;
    struct err_info ei = {0};
    int err = store_team_add_member(c->st, a->pos[0], u.id, role, &ei);
    if (err)
        return refuse("%s", ei.msg[0] ? ei.msg : err_str(err));
    printf("user \"%s\" is a%s of team \"%s\"\n", u.name,
           role == STORE_ROLE_ADMIN ? "n administrator" : " member", a->pos[0]);
    return 0;
}

static int team_member_remove(struct cli *c, const struct args *a)
{
    struct store_user u;
    int rc = find_user(c, a->pos[1], &u);
    if (rc)
        return rc;
    int err = store_team_remove_member(c->st, a->pos[0], u.id);
    if (err == ERR_NOTFOUND)
        return refuse("user \"%s\" is not a member of a team named \"%s\"", u.name, a->pos[0]);
    if (err)
        return store_failed("cannot remove the member", err);
    printf("user \"%s\" removed from team \"%s\"\n", u.name, a->pos[0]);
    return 0;
}

/* ---- service accounts and API keys ---- */

static int account_add(struct cli *c, const struct args *a)
{
    struct store_account acc;
    struct err_info ei = {0};
    int err = store_account_add(c->st, a->pos[0], &acc, &ei);
    if (err)
        return refuse("%s", ei.msg[0] ? ei.msg : err_str(err));
    printf("service account \"%s\" added (id %lld); create a key with: gatehouse apikey create "
           "--account %s\n",
           acc.name, (long long)acc.id, acc.name);
    return 0;
}

static int apikey_create(struct cli *c, const struct args *a)
{
    if (a->account == NULL)
        return usage_error(c->cmd, "--account is required");
    if (a->label && strlen(a->label) > STORE_NAME_MAX)
        return refuse("the label is longer than %d bytes", STORE_NAME_MAX);
    struct store_account acc;
    int err = store_account_find(c->st, a->account, &acc);
    if (err == ERR_NOTFOUND)
        return refuse("no service account named \"%s\" (create it with: gatehouse account add "
                      "%s)",
                      a->account, a->account);
    if (err)
        return store_failed("cannot read the account", err);
    char key[STORE_APIKEY_SIZE], id[32];
    if ((err = store_apikey_create(c->st, acc.id, a->label, key, id)) != 0)
        return store_failed("cannot create the API key", err);
    fprintf(stderr,
            "API key %s for service account \"%s\" (shown once; store it now; send it as "
            "\"Authorization: Bearer <key>\"):\n",
            id, acc.name);
    printf("%s\n", key);
    fflush(stdout);
    sodium_memzero(key, sizeof(key));
    return 0;
}

static int apikey_revoke(struct cli *c, const struct args *a)
{
    int err = store_apikey_revoke(c->st, a->pos[0]);
    if (err == ERR_NOTFOUND)
        return refuse("no API key with id \"%s\"", a->pos[0]);
    if (err)
        return store_failed("cannot revoke the API key", err);
    printf("API key %s revoked\n", a->pos[0]);
    return 0;
}

/* ---- per-user OAuth clients ---- */

static bool redirect_uri_ok(const char *uri)
{
    static const char *const loopback[] = {"http://127.0.0.1", "http://localhost", "http://[::1]"};
    if (strlen(uri) >= 1024 || strchr(uri, '#') != NULL)
        return false;
    if (strncmp(uri, "https://", 8) == 0)
        return uri[8] != '\0' && uri[8] != '/';
    for (size_t i = 0; i < sizeof(loopback) / sizeof(loopback[0]); i++) {
        size_t n = strlen(loopback[i]);
        if (strncmp(uri, loopback[i], n) == 0 && (uri[n] == '\0' || uri[n] == ':' || uri[n] == '/'))
            return true;
    }
    return false;
}

static int client_create(struct cli *c, const struct args *a)
{
    if (a->user == NULL)
        return usage_error(c->cmd, "--user is required");
    if (a->name && strlen(a->name) > STORE_NAME_MAX)
        return refuse("the client name is longer than %d bytes", STORE_NAME_MAX);
    for (size_t i = 0; i < a->nredirects; i++) {
        if (!redirect_uri_ok(a->redirects[i]))
            return refuse("redirect URI \"%s\" is not https:// (or http:// on a loopback "
                          "address) without a fragment",
                          a->redirects[i]);
    }
    struct store_user u;
    int rc = find_user(c, a->user, &u);
    if (rc)
        return rc;
    if (u.disabled)
        return refuse("user \"%s\" is disabled; enable them first", u.name);

    unsigned char raw[CLIENT_ID_BYTES];
    char id[2 * CLIENT_ID_BYTES + 1], secret[64];
    struct store_client cl = {.kind = STORE_CLIENT_USER, .user_id = u.id, .confidential = true};
    rand_bytes(raw, sizeof(raw));
    sodium_bin2hex(id, sizeof(id), raw, sizeof(raw));
    snprintf(cl.client_id, sizeof(cl.client_id), "ghc_%s", id);
    memcpy(secret, "ghs_", 4);
    rand_token(secret + 4, sizeof(secret) - 4, 32);

    json_t *uris = json_array(), *grants = json_array();
    for (size_t i = 0; i < a->nredirects; i++)
        json_array_append_new(uris, json_string(a->redirects[i]));
    json_array_append_new(grants, json_string("client_credentials"));
    if (a->nredirects) {
        json_array_append_new(grants, json_string("authorization_code"));
        json_array_append_new(grants, json_string("refresh_token"));
    }
    char defname[STORE_NAME_MAX + 16];
    snprintf(defname, sizeof(defname), "%s's client", u.name);
    cl.metadata = json_pack("{s:s, s:o, s:o, s:s}", "client_name", a->name ? a->name : defname,
                            "redirect_uris", uris, "grant_types", grants,
                            "token_endpoint_auth_method", "client_secret_basic");
    int err = cl.metadata ? store_client_put(c->st, &cl, secret) : ERR_NOMEM;
    json_decref(cl.metadata);
    if (err) {
        rc = store_failed("cannot create the client", err);
        goto out;
    }
    fprintf(stderr, "OAuth client of user \"%s\" (the secret is shown once; store it now):\n",
            u.name);
    printf("client_id: %s\nclient_secret: %s\n", cl.client_id, secret);
    fflush(stdout);
out:
    sodium_memzero(secret, sizeof(secret));
    return rc;
}

static const char *client_kind_str(enum store_client_kind k)
{
    switch (k) {
    case STORE_CLIENT_CONFIG:
        return "config";
    case STORE_CLIENT_DCR:
        return "dcr";
    case STORE_CLIENT_CIMD:
        return "cimd";
    case STORE_CLIENT_USER:
        return "user";
    }
    return "?";
}

static int client_list_cb(const struct store_client *cl, void *arg)
{
    struct cli *c = arg;
    struct store_user u;
    char t1[32];
    const char *owner = "-";
    if (cl->user_id && store_user_get(c->st, cl->user_id, &u) == 0)
        owner = u.name;
    const char *name = json_string_value(json_object_get(cl->metadata, "client_name"));
    printf("%-36s %-6s %-16s %-8s %-20s %s\n", cl->client_id, client_kind_str(cl->kind), owner,
           cl->revoked ? "revoked" : "active", iso_time(cl->created_at, t1), name ? name : "-");
    return 0;
}

static int client_list(struct cli *c, const struct args *a)
{
    struct store_user u = {0};
    int rc;
    if (a->user && (rc = find_user(c, a->user, &u)) != 0)
        return rc;
    printf("%-36s %-6s %-16s %-8s %-20s %s\n", "CLIENT_ID", "KIND", "USER", "STATE", "CREATED",
           "NAME");
    int err = store_client_list(c->st, u.id, client_list_cb, c);
    return err ? store_failed("cannot list clients", err) : 0;
}

static int client_revoke(struct cli *c, const struct args *a)
{
    int err = store_client_revoke(c->st, a->pos[0]);
    if (err == ERR_NOTFOUND)
        return refuse("no client with client_id \"%s\"", a->pos[0]);
    if (err)
        return store_failed("cannot revoke the client", err);
    printf("client %s revoked, and every grant it held\n", a->pos[0]);
    return 0;
}

/* ---- revocation ---- */

static int revoke_everything(struct cli *c, const struct args *a)
{
    if (a->user == NULL)
        return usage_error(c->cmd, "--user is required");
    struct store_user u;
    int rc = find_user(c, a->user, &u);
    if (rc)
        return rc;
    int err = store_revoke_user(c->st, u.id);
    if (err)
        return store_failed("cannot revoke", err);
    printf("everything user \"%s\" held is revoked: tokens issued until now are refused, their "
           "clients, refresh grants and login sessions are gone (a running gateway sees it on "
           "its next request)\n",
           u.name);
    return 0;
}

/* ---- signing keys ---- */

static int keys_rotate(struct cli *c, const struct args *a)
{
    const char *alg = a->alg                     ? a->alg
                      : c->cfg->auth.signing_alg ? c->cfg->auth.signing_alg
                                                 : "ES256";
    if (strcmp(alg, "ES256") != 0 && strcmp(alg, "EdDSA") != 0)
        return usage_error(c->cmd, "unknown algorithm \"%s\"; expected ES256 or EdDSA", alg);
    unsigned char master[AUTH_MASTER_KEY_LEN];
    struct err_info ei = {0};
    char kid[64];
    int rc = 0, err = auth_master_key_load(c->cfg->store.key_file, true, master, &ei);
    if (err == 0)
        err = auth_master_key_verify(c->st, master, c->cfg->store.key_file, &ei);
    if (err == 0)
        err = auth_key_rotate(c->st, master, alg, kid, &ei);
    sodium_memzero(master, sizeof(master));
    if (err)
        return refuse("%s", ei.msg[0] ? ei.msg : err_str(err));
    /* keys retired longer ago than a token lives verify nothing any more */
    int64_t grace = c->cfg->auth.access_token_ttl_s ? c->cfg->auth.access_token_ttl_s : 600;
    if ((err = store_key_delete_retired_before(c->st, (int64_t)time(NULL) - grace)) != 0)
        rc = store_failed("the new key is current, but old keys could not be pruned", err);
    printf("signing key %s (%s) is current; a previous key still verifies for %lld s "
           "(access_token_ttl); a running gateway picks the new one up on its next request\n",
           kid, alg, (long long)grace);
    return rc;
}

static int key_list_cb(const struct store_key *k, void *arg)
{
    int64_t grace = *(const int64_t *)arg;
    char t1[32], t2[32];
    const char *state = k->retired_at == 0                            ? "current"
                        : k->retired_at + grace > (int64_t)time(NULL) ? "verifies"
                                                                      : "expired";
    printf("%-44s %-6s %-9s %-20s %s\n", k->kid, k->alg, state, iso_time(k->created_at, t1),
           iso_time(k->retired_at, t2));
    return 0;
}

static int keys_list(struct cli *c, const struct args *a)
{
    int64_t grace = c->cfg->auth.access_token_ttl_s ? c->cfg->auth.access_token_ttl_s : 600;
    printf("%-44s %-6s %-9s %-20s %s\n", "KID", "ALG", "STATE", "CREATED", "RETIRED");
    int err = store_key_list(c->st, key_list_cb, &grace);
    return err ? store_failed("cannot list keys", err) : 0;
}

/* ---- the table, argument parsing, dispatch ---- */

static const struct command commands[] = {
    {{"user", "add"},
     1,
     O_EMAIL | O_ADMIN | O_PASSWORD | C_CREATES,
     "user add NAME [--email E] [--admin] [--password-stdin | --random | --no-password]",
     user_add},
    {{"user", "list"}, 0, O_JSON, "user list [--json]", user_list},
    {{"user", "bootstrap"}, 0, C_CREATES, "user bootstrap", user_bootstrap},
    {{"user", "disable"}, 1, 0, "user disable NAME", user_disable},
    {{"user", "enable"}, 1, 0, "user enable NAME", user_enable},
    {{"user", "passwd"},
     1,
     O_PASSWORD,
     "user passwd NAME [--password-stdin | --random | --no-password]",
     user_passwd},
    {{"user", "settings"},
     1,
     O_SETTINGS | O_JSON,
     "user settings NAME --server S [--discovery static|hierarchical|search] "
     "[--select TOOL,... | --select-all] [--json]",
     user_settings},
    {{"user", "connections"}, 1, O_JSON, "user connections NAME [--json]", user_connections},
    {{"user", "connect"}, 2, 0, "user connect NAME SERVER", user_connect},
    {{"user", "disconnect"}, 2, 0, "user disconnect NAME SERVER", user_disconnect},
    {{"team", "add"}, 1, C_CREATES, "team add NAME", team_add},
    {{"team", "list"}, 0, 0, "team list", team_list},
    {{"team", "member", "add"},
     2,
     O_ROLE,
     "team member add TEAM USER [--role admin|member]",
     team_member_add},
    {{"team", "member", "remove"}, 2, 0, "team member remove TEAM USER", team_member_remove},
    {{"account", "add"}, 1, C_CREATES, "account add NAME", account_add},
    {{"apikey", "create"},
     0,
     O_ACCOUNT | O_LABEL,
     "apikey create --account A [--label L]",
     apikey_create},
    {{"apikey", "revoke"}, 1, 0, "apikey revoke ID", apikey_revoke},
    {{"client", "create"},
     0,
     O_USER | O_NAME | O_REDIRECT,
     "client create --user U [--name N] [--redirect-uri URI]...",
     client_create},
    {{"client", "list"}, 0, O_USER, "client list [--user U]", client_list},
    {{"client", "revoke"}, 1, 0, "client revoke CLIENT_ID", client_revoke},
    {{"revoke"}, 0, O_USER, "revoke --user U", revoke_everything},
    {{"keys", "rotate"}, 0, O_ALG | C_CREATES, "keys rotate [--alg ES256|EdDSA]", keys_rotate},
    {{"keys", "list"}, 0, 0, "keys list", keys_list},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

void admin_cli_usage(FILE *out)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "       gatehouse %s [-c FILE]\n", commands[i].usage);
}

bool admin_cli_handles(const char *cmd)
{
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(commands[i].words[0], cmd) == 0)
            return true;
    }
    return false;
}

/* The command whose words start argv; *nwords says how many it took. */
static const struct command *find_command(int argc, char **argv, size_t *nwords)
{
    for (size_t i = 0; i < NCOMMANDS; i++) {
        size_t n = 0;
        while (n < 3 && commands[i].words[n] && (int)n < argc &&
               strcmp(commands[i].words[n], argv[n]) == 0)
            n++;
        if (n == 3 || commands[i].words[n] == NULL) {
            *nwords = n;
            return &commands[i];
        }
    }
    return NULL;
}

struct option_def {
    const char *name;
    unsigned bit;
    size_t value_off; /* offset of the const char * in struct args, or 0 */
    size_t flag_off;  /* offset of the bool, or 0 */
};

#define VAL(f) offsetof(struct args, f), 0
#define FLAG(f) 0, offsetof(struct args, f)
static const struct option_def options[] = {
    {"--email", O_EMAIL, VAL(email)},
    {"--admin", O_ADMIN, FLAG(admin)},
    {"--password-stdin", O_PASSWORD, FLAG(password_stdin)},
    {"--random", O_PASSWORD, FLAG(random)},
    {"--no-password", O_PASSWORD, FLAG(no_password)},
    {"--json", O_JSON, FLAG(json)},
    {"--role", O_ROLE, VAL(role)},
    {"--account", O_ACCOUNT, VAL(account)},
    {"--label", O_LABEL, VAL(label)},
    {"--user", O_USER, VAL(user)},
    {"--name", O_NAME, VAL(name)},
    {"--alg", O_ALG, VAL(alg)},
    {"--server", O_SETTINGS, VAL(server)},
    {"--discovery", O_SETTINGS, VAL(discovery)},
    {"--select", O_SETTINGS, VAL(select)},
    {"--select-all", O_SETTINGS, FLAG(select_all)},
    {"--redirect-uri", O_REDIRECT, 0, 0}, /* repeated: handled below */
};

/* Options and positional arguments of `cmd` (argv after its words; -c already removed). */
static int parse_args(const struct command *cmd, int argc, char **argv, struct args *a)
{
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-' || strcmp(arg, "-") == 0) {
            if (a->npos >= cmd->npos)
                return usage_error(cmd, "unexpected argument \"%s\"", arg);
            a->pos[a->npos++] = arg;
            continue;
        }
        const struct option_def *o = NULL;
        for (size_t k = 0; k < sizeof(options) / sizeof(options[0]); k++) {
            if (strcmp(options[k].name, arg) == 0)
                o = &options[k];
        }
        if (o == NULL || !(cmd->takes & o->bit))
            return usage_error(cmd, "unknown option \"%s\" for this command", arg);
        if (o->flag_off) {
            *(bool *)((char *)a + o->flag_off) = true;
            continue;
        }
        if (i + 1 >= argc)
            return usage_error(cmd, "%s needs a value", arg);
        const char *v = argv[++i];
        if (o->bit == O_REDIRECT) {
            if (a->nredirects >= MAX_REDIRECTS)
                return usage_error(cmd, "at most %d --redirect-uri", MAX_REDIRECTS);
            a->redirects[a->nredirects++] = v;
            continue;
        }
        const char **slot = (const char **)((char *)a + o->value_off);
        if (*slot != NULL)
            return usage_error(cmd, "%s given twice", arg);
        *slot = v;
    }
    if (a->npos < cmd->npos) { /* name the missing one by its word in the usage line */
        size_t skip = a->npos;
        while (skip - a->npos < 3 && cmd->words[skip - a->npos])
            skip++;
        const char *u = cmd->usage;
        for (size_t w = 0; w < skip && *u; w++) {
            u += strcspn(u, " ");
            u += strspn(u, " ");
        }
        return usage_error(cmd, "missing %.*s", (int)strcspn(u, " "), u);
    }
    return 0;
}

/* The configuration by the one rule of every command (config_locate): -c FILE, else
   $GATEHOUSE_CONFIG, else ./gatehouse.yaml, else the built-in defaults. *path_out: the file, or
   NULL for the defaults. */
static int load_config(const char *given, const char **path_out, struct config **cfg)
{
    struct err_info ei = {0};
    const char *how;
    const char *path = config_locate(given, &how);
    int err = path ? config_load_file(path, cfg, &ei)
                   : config_load_string("{}", 2, "<built-in defaults>", cfg, &ei);
    if (err)
        return refuse("%s", ei.msg[0] ? ei.msg : err_str(err));
    *path_out = path;
    return 0;
}

static bool is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

/* true when the words of argv (up to its first option) begin a command without completing it */
static bool is_prefix(int argc, char **argv)
{
    for (size_t i = 0; i < NCOMMANDS; i++) {
        int n = 0;
        while (n < argc && n < 3 && commands[i].words[n] && argv[n][0] != '-' &&
               strcmp(commands[i].words[n], argv[n]) == 0)
            n++;
        if (n > 0 && (n == argc || argv[n][0] == '-') && n < 3 && commands[i].words[n])
            return true;
    }
    return false;
}

/* The commands whose first word is `group`, on out. */
static void group_usage(FILE *out, const char *group)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].words[0], group) == 0)
            fprintf(out, "  gatehouse %s [-c FILE]\n", commands[i].usage);
}

static const char help_tail[] =
    "The store is the one the configuration names (store.sqlite, relative to the file's folder):\n"
    "-c FILE, else $GATEHOUSE_CONFIG, else ./gatehouse.yaml, else ./gatehouse.db. Only commands\n"
    "that add something create a missing store. Reference: docs/cli.md\n";

int admin_cli_main(int argc, char **argv)
{
    const char *config_path = NULL;
    char *rest[64];
    int nrest = 0;
    bool help = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "gatehouse: %s needs a file name\n", argv[i]);
                return EXIT_USAGE;
            }
            config_path = argv[++i];
        } else if (is_help(argv[i])) {
            help = true;
        } else if (nrest < (int)(sizeof(rest) / sizeof(rest[0]))) {
            rest[nrest++] = argv[i];
        } else {
            fprintf(stderr, "gatehouse: too many arguments\n");
            return EXIT_USAGE;
        }
    }
    size_t nwords;
    const struct command *cmd = find_command(nrest, rest, &nwords);
    if (help && cmd) {
        print_usage(stdout, cmd);
        fputs(help_tail, stdout);
        return EXIT_OK;
    }
    if (cmd == NULL) {
        FILE *out = help ? stdout : stderr;
        if (help) {
            fprintf(out, "usage: the %s commands are:\n", nrest ? rest[0] : "");
        } else {
            fprintf(out, "gatehouse: %s \"",
                    is_prefix(nrest, rest) ? "missing a command after" : "unknown command");
            for (int i = 0; i < nrest && i < 3 && rest[i][0] != '-'; i++)
                fprintf(out, "%s%s", i ? " " : "", rest[i]);
            fprintf(out, "\"; the %s commands are:\n", nrest ? rest[0] : "");
        }
        group_usage(out, nrest ? rest[0] : "");
        if (help)
            fputs(help_tail, out);
        return help ? EXIT_OK : EXIT_USAGE;
    }
    struct args a = {0};
    int rc = parse_args(cmd, nrest - (int)nwords, rest + nwords, &a);
    if (rc)
        return rc;

    struct cli c = {.cmd = cmd};
    const char *path = NULL;
    log_set_level(LOG_WARN); /* a CLI: no info lines around its output */
    if (core_init() != 0)
        return refuse("cannot initialise libsodium");
    if ((rc = load_config(config_path, &path, &c.cfg)) != 0)
        return rc;
    if (cmd->run == user_bootstrap && !c.cfg->auth.enabled) /* nothing to do: no store made */
        goto out;
    const char *db = c.cfg->store.sqlite;
    const char *which = path ? path : "none (the built-in defaults)";
    /* a PostgreSQL store is a server, not a file (and its URI is never printed: a password) */
    if (c.cfg->store.postgres == NULL && access(db, F_OK) != 0 && strcmp(db, ":memory:") != 0 &&
        strncmp(db, "file:", 5) != 0) {
        if (!(cmd->takes & C_CREATES)) {
            rc = refuse("there is no store at %s (configuration: %s); nothing to show or "
                        "change. Give the configuration the gateway runs with (-c FILE), or "
                        "create the store by adding a user (gatehouse user add NAME)",
                        db, which);
            goto out;
        }
        fprintf(stderr, "gatehouse: creating a new store at %s (configuration: %s)\n", db, which);
    }
    struct err_info ei = {0};
    int err = store_open(db, &c.st, &ei);
    if (err) {
        rc = refuse("%s", ei.msg[0] ? ei.msg : err_str(err));
        goto out;
    }
    /* with Redis, the replicas hear of a revocation at once (else within revocation_poll) */
    if (c.cfg->redis.url != NULL && shared_init_cli(c.cfg->redis.url, c.cfg->redis.prefix, &ei))
        fprintf(stderr, "gatehouse: %s; replicas see changes within redis.revocation_poll\n",
                ei.msg);
    rc = cmd->run(&c, &a);
out:
    shared_release();
    store_close(c.st);
    config_unref(c.cfg);
    return rc;
}

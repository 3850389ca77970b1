/*
 * The administration subcommands of the `gatehouse` command: users, teams, service accounts and
 * their API keys, per-user OAuth clients, and revocation. They work on the store named by the
 * configuration (`-c FILE`), in a process of their own, next to a running daemon: what they
 * change takes effect there through the store's revocation counter.
 */
#ifndef GH_ADMIN_CLI_H
#define GH_ADMIN_CLI_H

#include <stdbool.h>
#include <stdio.h>

/* true when `cmd` (argv[1]) is one of the subcommands below. */
bool admin_cli_handles(const char *cmd);

/* Run `gatehouse <argv[0]> <argv[1..]>`. Messages go to stdout (results, and a secret printed
   once) and stderr (refusals naming their cause). Returns the process exit code: 0 done,
   1 refused (unknown name, existing name, bad value), 2 usage error. Not thread-safe: a CLI. */
int admin_cli_main(int argc, char **argv);

/* The usage lines of these subcommands, for the command's help text. */
void admin_cli_usage(FILE *out);

#endif

/*
 * Structured logging: one JSON object per line on stderr (or a configured file descriptor).
 * Safe to call from any thread; each line is written with a single write(2) so lines from
 * different threads never interleave. Never pass a secret to these functions.
 */
#ifndef GH_CORE_LOG_H
#define GH_CORE_LOG_H

#include <jansson.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parse "debug"/"info"/"warn"/"error"; returns 0 or ERR_INVAL. */
int log_level_parse(const char *s, enum log_level *out);
/* Redirect output (default 2). */
void log_set_fd(int fd);

/* {"ts":…,"level":…,"event":event,"msg":formatted} */
void log_msg(enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* {"ts":…,"level":…,"event":event, ...fields}. Steals the reference to `fields` (may be NULL). */
void log_fields(enum log_level level, const char *event, json_t *fields);

/* The same, at every log level: for the few milestones of a normal start (listening) that
   operators and scripts wait for, logged at their true level rather than raised to warn. */
void log_fields_always(enum log_level level, const char *event, json_t *fields);

#define log_debug(ev, ...) log_msg(LOG_DEBUG, ev, __VA_ARGS__)
#define log_info(ev, ...) log_msg(LOG_INFO, ev, __VA_ARGS__)
#define log_warn(ev, ...) log_msg(LOG_WARN, ev, __VA_ARGS__)
#define log_error(ev, ...) log_msg(LOG_ERROR, ev, __VA_ARGS__)

#endif

/*
 * JSON-lines logger. Formatting happens on the calling thread into a local buffer; the line is
 * emitted with one write(2), which POSIX keeps whole for pipes up to PIPE_BUF and which Linux
 * keeps whole for regular files, so no lock is needed.
 */
#include "core/log.h"
#include "core/err.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_level = LOG_INFO;
static _Atomic int log_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level)
{
    log_level = level;
}

enum log_level log_get_level(void)
{
    return (enum log_level)log_level;
}

int log_level_parse(const char *s, enum log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return ERR_INVAL;
}

void log_set_fd(int fd)
{
    log_fd = fd;
}

static void emit(enum log_level level, const char *event, json_t *obj)
{
    struct timeval tv;
    struct tm tm;
    char ts[80];
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));

    /* Fixed keys first, in a stable order, then the caller's fields. */
    json_t *line = json_object();
    if (line == NULL)
        return;
    json_object_set_new(line, "ts", json_string(ts));
    json_object_set_new(line, "level", json_string(level_names[level]));
    json_object_set_new(line, "event", json_string(event));
    if (obj != NULL)
        json_object_update_missing(line, obj);
    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII |
                                      JSON_REAL_PRECISION(6));
    json_decref(line);
    if (text == NULL)
        return;
    size_t n = strlen(text);
    text[n] = '\n'; /* replaces the NUL: we write exactly n + 1 bytes */
    ssize_t r = write(log_fd, text, n + 1);
    (void)r;
    free(text);
}

void log_msg(enum log_level level, const char *event, const char *fmt, ...)
{
    if ((int)level < log_level)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *f = json_object();
    if (f == NULL)
        return;
    json_t *m = json_string(msg);
    if (m == NULL) { /* not UTF-8: keep the line readable rather than drop it */
        for (char *c = msg; *c; c++)
            if ((unsigned char)*c >= 0x80)
                *c = '?';
        m = json_string(msg);
    }
    json_object_set_new(f, "msg", m);
    emit(level, event, f);
    json_decref(f);
}

void log_fields(enum log_level level, const char *event, json_t *fields)
{
    if ((int)level >= log_level)
        emit(level, event, fields);
    json_decref(fields);
}

void log_fields_always(enum log_level level, const char *event, json_t *fields)
{
    emit(level, event, fields);
    json_decref(fields);
}

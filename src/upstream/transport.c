/* Dispatch from the public transport API to the stdio, HTTP or OpenAPI implementation, and the
   outbound additions every transport honours. */
#include "upstream/transport-int.h"
#include "core/err.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

void outbound_init(struct outbound *o)
{
    memset(o, 0, sizeof(*o));
}

void outbound_release(struct outbound *o)
{
    for (size_t i = 0; o != NULL && i < o->n; i++) {
        free(o->v[i].name);
        if (o->v[i].value != NULL) /* a credential the vault injected, maybe */
            sodium_memzero(o->v[i].value, o->v[i].value_len);
        free(o->v[i].value);
    }
    if (o != NULL) {
        free(o->v);
        memset(o, 0, sizeof(*o));
    }
}

int outbound_add(struct outbound *o, enum outbound_where where, unsigned flags, const char *name,
                 const char *value, size_t value_len)
{
    if (name == NULL || name[0] == '\0' || strpbrk(name, "\r\n") != NULL ||
        (where == OUTBOUND_HEADER && strchr(name, ':') != NULL) ||
        ((where == OUTBOUND_ENV || where == OUTBOUND_COOKIE) && strchr(name, '=') != NULL))
        return ERR_INVAL;
    if (o->n >= OUTBOUND_MAX)
        return ERR_LIMIT;
    if (o->n == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 4;
        struct outbound_entry *v = realloc(o->v, cap * sizeof(*v));
        if (v == NULL)
            return ERR_NOMEM;
        o->v = v;
        o->cap = cap;
    }
    struct outbound_entry *e = &o->v[o->n];
    e->where = where;
    e->flags = flags;
    e->name = strdup(name);
    e->value = malloc(value_len + 1);
    if (e->name == NULL || e->value == NULL) {
        free(e->name);
        free(e->value);
        return ERR_NOMEM;
    }
    if (value_len)
        memcpy(e->value, value, value_len);
    e->value[value_len] = '\0';
    e->value_len = value_len;
    o->n++;
    return 0;
}

size_t outbound_count(const struct outbound *o, enum outbound_where where)
{
    size_t n = 0;
    for (size_t i = 0; o != NULL && i < o->n; i++)
        n += o->v[i].where == where;
    return n;
}

const char *transport_state_str(enum transport_state st)
{
    switch (st) {
    case TRANSPORT_STARTING:
        return "starting";
    case TRANSPORT_UP:
        return "up";
    case TRANSPORT_DOWN:
        return "down";
    case TRANSPORT_STOPPED:
        return "stopped";
    }
    return "unknown";
}

struct transport *transport_new(uv_loop_t *loop, const struct config_server *srv,
                                const struct transport_cbs *cbs)
{
    return transport_new_ex(loop, srv, cbs, NULL);
}

static transport_factory factory; /* tests only */

void transport_set_factory(transport_factory fn)
{
    factory = fn;
}

struct transport *transport_new_ex(uv_loop_t *loop, const struct config_server *srv,
                                   const struct transport_cbs *cbs, const struct outbound *spawn)
{
    if (factory != NULL)
        return factory(loop, srv, cbs, spawn);
    switch (srv->transport) {
    case TRANSPORT_STDIO:
        return stdio_transport_new_ex(loop, srv, cbs, spawn);
    case TRANSPORT_HTTP:
        return http_transport_new(loop, srv, cbs);
    case TRANSPORT_OPENAPI:
        return openapi_transport_new(loop, srv, cbs);
    }
    return NULL;
}

int transport_send(struct transport *t, json_t *msg, void *related)
{
    return t->ops->send(t, msg, related, NULL);
}

int transport_send_call(struct transport *t, json_t *msg, void *related, const struct outbound *out)
{
    return t->ops->send(t, msg, related, out);
}

void transport_cancel(struct transport *t, void *related)
{
    t->ops->cancel(t, related);
}

void transport_pause(struct transport *t, void *related)
{
    if (t->ops->pause)
        t->ops->pause(t, related, true);
}

void transport_resume(struct transport *t, void *related)
{
    if (t->ops->pause)
        t->ops->pause(t, related, false);
}

void transport_set_protocol_version(struct transport *t, const char *version)
{
    t->ops->set_protocol_version(t, version);
}

void transport_reset_session(struct transport *t)
{
    t->ops->reset_session(t);
}

int transport_listen(struct transport *t)
{
    return t->ops->listen(t);
}

enum transport_state transport_state(const struct transport *t)
{
    return t->ops->state(t);
}

unsigned transport_restarts(const struct transport *t)
{
    return t->ops->restarts(t);
}

void transport_close(struct transport *t)
{
    t->ops->close(t);
}

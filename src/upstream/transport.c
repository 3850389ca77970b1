/* Dispatch from the public transport API to the stdio, HTTP or OpenAPI implementation. */
#include "upstream/transport-int.h"

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
    switch (srv->transport) {
    case TRANSPORT_STDIO:
        return stdio_transport_new(loop, srv, cbs);
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

int transport_send_call(struct transport *t, json_t *msg, void *related, json_t *params)
{
    return t->ops->send(t, msg, related, params);
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

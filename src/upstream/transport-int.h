/* Private to src/upstream: the vtable behind struct transport, filled by stdio.c, http.c and
   openapi.c. */
#ifndef GH_UPSTREAM_TRANSPORT_INT_H
#define GH_UPSTREAM_TRANSPORT_INT_H

#include "upstream/transport.h"

#include <stdbool.h>

struct transport_ops {
    int (*send)(struct transport *t, json_t *msg, void *related, const struct outbound *out);
    void (*cancel)(struct transport *t, void *related);
    void (*pause)(struct transport *t, void *related, bool on); /* optional */
    void (*set_protocol_version)(struct transport *t, const char *version);
    void (*reset_session)(struct transport *t);
    int (*listen)(struct transport *t);
    enum transport_state (*state)(const struct transport *t);
    unsigned (*restarts)(const struct transport *t);
    void (*close)(struct transport *t);
};

/* Every concrete transport embeds this as its first member. */
struct transport {
    const struct transport_ops *ops;
};

struct transport *stdio_transport_new(uv_loop_t *loop, const struct config_server *srv,
                                      const struct transport_cbs *cbs);
/* With spawn's OUTBOUND_ENV entries in the child's environment (transport_new_ex). */
struct transport *stdio_transport_new_ex(uv_loop_t *loop, const struct config_server *srv,
                                         const struct transport_cbs *cbs,
                                         const struct outbound *spawn);
struct transport *http_transport_new(uv_loop_t *loop, const struct config_server *srv,
                                     const struct transport_cbs *cbs);

/* Tests of the layers above (tests/unit/mcp/test_pipeline.c): every transport_new_ex makes its
   transport with fn instead (NULL: the real ones again). Main thread, before the engine starts;
   not for production code. */
typedef struct transport *(*transport_factory)(uv_loop_t *loop, const struct config_server *srv,
                                               const struct transport_cbs *cbs,
                                               const struct outbound *spawn);
void transport_set_factory(transport_factory fn);

struct transport *openapi_transport_new(uv_loop_t *loop, const struct config_server *srv,
                                        const struct transport_cbs *cbs);

#endif

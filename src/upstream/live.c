/*
 * How many upstream transports exist. Each implementation counts itself in when it is created
 * and out when its memory is freed (after transport_close, once its handles have closed), so
 * that shutdown can wait for the last child process and connection to be gone before it stops
 * the loops.
 */
#include "upstream/upstream.h"

#include <stdatomic.h>

static atomic_int live;

void transport_live_inc(void)
{
    atomic_fetch_add(&live, 1);
}

void transport_live_dec(void)
{
    atomic_fetch_sub(&live, 1);
}

int transport_live_count(void)
{
    return atomic_load(&live);
}

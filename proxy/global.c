/* Process-wide state: the configuration and the current route table. */
#include "proxy.h"

#include <errno.h>
#include <stdlib.h>

#include "banned.h"

struct px_global px_g = {
    .table_lock = PTHREAD_MUTEX_INITIALIZER,
};

int px_global_rebuild(struct rt_err *err)
{
    pthread_mutex_lock(&px_g.table_lock);
    struct px_table *t =
        px_table_build(&px_g.cfg, px_g.feed, px_g.nfeed, px_g.feed_generation, px_g.table, err);
    if (!t) {
        pthread_mutex_unlock(&px_g.table_lock);
        return -err->code;
    }
    struct px_table *old = px_g.table;
    px_g.table = t;
    atomic_fetch_add_explicit(&px_g.table_serial, 1, memory_order_release);
    pthread_mutex_unlock(&px_g.table_lock);
    px_table_unref(old);
    px_global_kick();
    return 0;
}

void px_global_kick(void)
{
    for (unsigned i = 0; i < px_g.nloops; i++)
        if (px_g.loops && px_g.loops[i])
            px_loop_kick(px_g.loops[i]);
}

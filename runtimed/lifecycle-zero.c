/* The lifecycle's side of ZeroGPU (gpuzero.h): a zero Space's sandbox gets the pool's
 * nodes and the device API's environment, and each of its running instances a listener
 * inside its network namespace, from start (or reattach) to stop. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gpuzero.h"
#include "lifecycle-internal.h"
#include "banned.h"

/* Weak: the lifecycle's unit tests link no device API, and never set one. */
#pragma weak rt_gpuzero_sandbox
#pragma weak rt_gpuzero_attach
#pragma weak rt_gpuzero_detach

int lc__zero_sandbox(struct rt_lifecycle *lc, const char *space, struct lc_inst *in,
                     struct rt_strv *env, const char **nodes, size_t *n, size_t cap,
                     struct rt_err *err)
{
    if (!lc->zero)
        return rt_err_set(err, ENODEV, "this node has no ZeroGPU pool (zero_gpus: 0)");
    if (rt_gpuzero_sandbox(lc->zero, env, nodes, n, cap) < 0)
        return rt_err_set(err, ENOMEM, "ZeroGPU sandbox for '%s'", space);
    (void) snprintf(in->zero_space, sizeof(in->zero_space), "%s", space);
    return 0;
}

int lc__zero_attach(struct rt_lifecycle *lc, struct lc_inst *in, pid_t pid, struct rt_err *err)
{
    int r;

    if (!in->zero_space[0] || in->zero_attached || !lc->zero)
        return 0;
    r = rt_gpuzero_attach(lc->zero, in->dir, in->zero_space, pid, err);
    if (r == 0)
        in->zero_attached = true;
    return r;
}

void lc__zero_reattach(struct rt_lifecycle *lc, struct lc_space *sp, struct lc_inst *in)
{
    struct rt_shim_status ss = { 0 };
    struct rt_err err = { 0 };

    if (!in->zero_space[0] || in->zero_attached || !lc->zero || !live(in) || in->zero_failed)
        return;
    if (rt_shim_command(in->dir, "status", &ss, &err) < 0 || ss.pid <= 0 ||
        lc__zero_attach(lc, in, ss.pid, &err) < 0) {
        in->zero_failed = true; /* said once; the Space runs on without its GPU API */
        lc__log(sp, RT_LOG_WARN, "ZeroGPU device API after reattach: %s", err.msg);
        return;
    }
    lc__log(sp, RT_LOG_INFO, "ZeroGPU device API back on 127.0.0.1:%d", RT_GPUZERO_PORT);
}

void lc__zero_detach(struct rt_lifecycle *lc, struct lc_inst *in)
{
    if (!in->zero_attached || !lc->zero)
        return;
    rt_gpuzero_detach(lc->zero, in->dir, in->zero_space);
    in->zero_attached = false;
}

/* lc__gpu_rebuild() after a restart: every running Space's dedicated units are held
 * again however many Spaces run (it once stopped at 256 Spaces with units, ZeroGPU ones
 * included, so a later Space's units looked free: a double grant), and a node whose
 * holdings could not be rebuilt grants nothing.  Fake inventory, specs written here; no
 * sandbox, no root. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tap.h"
#include "log.h"
#include "runtimed/gpunode.h"
#include "runtimed/lifecycle-internal.h"

#define N_ZERO_SPACES 299

static char tmp[] = "/tmp/spt-gpurebuild-XXXXXX";

/* A Space whose instance dir holds a spec.json naming @unit's own nodes. */
static struct lc_space *space(const struct gpu_inventory *inv, unsigned unit, const char *id,
                              struct lc_space *next)
{
    struct lc_space *sp = calloc(1, sizeof(*sp));
    json_t *gpus = json_array(), *spec;
    char path[PATH_MAX];

    if (!sp || !gpus)
        exit(1);
    for (size_t k = 0; k < inv->units[unit].n_nodes; k++)
        (void) json_array_append_new(gpus, json_string(inv->units[unit].nodes[k].path));
    (void) snprintf(sp->cur.dir, sizeof(sp->cur.dir), "%s/%s", tmp, id);
    for (char *c = sp->cur.dir + strlen(tmp) + 1; *c; c++)
        if (*c == '/')
            *c = '_';
    if (mkdir(sp->cur.dir, 0700) < 0)
        exit(1);
    spec = json_pack("{s:s, s:o}", "id", id, "gpus", gpus);
    (void) snprintf(path, sizeof(path), "%s/spec.json", sp->cur.dir);
    if (!spec || json_dump_file(spec, path, 0) < 0)
        exit(1);
    json_decref(spec);
    sp->next = next;
    return sp;
}

int main(void)
{
    struct rt_gpunode_config gc = { .backend = "fake", .fake_spec = "2xa10g:24G", .zero_gpus = 1 };
    struct rt_gpunode *g = NULL;
    struct rt_lifecycle lc = { 0 };
    struct rt_gpu_grant gr;
    struct rt_err err = { 0 };
    const struct gpu_inventory *inv;
    unsigned pool, dedicated;
    char id[64];

    tap_start();
    rt_log_level = RT_LOG_ERR;
    if (!mkdtemp(tmp))
        return 1;
    is_int(rt_gpunode_new(&gc, &g, &err), 0, "a fake node with 2 units, 1 in the ZeroGPU pool");
    if (!g)
        return 1;
    inv = rt_gpunode_inventory(g);
    pool = rt_gpunode_zero_units(g)[0];
    dedicated = pool == 0 ? 1 : 0;

    /* The dedicated Space comes last, after more ZeroGPU Spaces than the old cut. */
    lc.gpus = g;
    lc.spaces = space(inv, dedicated, "alice/big", NULL);
    for (int i = 0; i < N_ZERO_SPACES; i++) {
        (void) snprintf(id, sizeof(id), "alice/zero%d", i);
        lc.spaces = space(inv, pool, id, lc.spaces);
    }
    lc__gpu_rebuild(&lc);
    is_int((int) rt_gpunode_held(g, "alice/big", &gr), 1,
           "the Space after 299 ZeroGPU Spaces holds its unit again");
    is_int(rt_gpunode_reserve(g, "bob/other", "a10g", 1, &gr, &err), -EBUSY,
           "so nobody else gets it");
    is_int((int) rt_gpunode_free_count(g, "a10g"), 0, "no unit is free");

    /* Holdings that cannot be rebuilt: the node grants nothing. */
    is_int((int) rt_gpunode_release(g, "alice/big"), 1, "released");
    rt_gpunode_fence(g, "its holdings could not be rebuilt after a restart");
    err = (struct rt_err){ 0 };
    is_int(rt_gpunode_reserve(g, "bob/other", "a10g", 1, &gr, &err), -EBUSY,
           "a fenced node grants nothing, even a free unit");
    ok(strstr(err.msg, "could not be rebuilt") != NULL, "and says why: %s", err.msg);

    for (struct lc_space *sp = lc.spaces, *next; sp; sp = next) {
        char path[PATH_MAX + 16];

        next = sp->next;
        (void) snprintf(path, sizeof(path), "%s/spec.json", sp->cur.dir);
        (void) unlink(path);
        (void) rmdir(sp->cur.dir);
        free(sp);
    }
    (void) rmdir(tmp);
    rt_gpunode_free(g);
    return tap_done();
}

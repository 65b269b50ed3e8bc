/* Reading a shim's spec.json into a sandbox spec. */
#ifndef SP_RUNTIMED_SHIM_SPEC_H
#define SP_RUNTIMED_SHIM_SPEC_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "sandbox/sandbox.h"

struct rt_shim_spec {
    struct sbx_spec sbx;
    char *id;      /* "owner/name" */
    bool egress;   /* with net "veth": may reach public addresses */
    uint16_t port; /* the app's port inside, for the upstream address */
    void *json;    /* owns every string sbx points at */
    const char *argv[64];
    char *strs[SBX_MAX_MOUNTS]; /* "SRC:DST" copies handed to sbx_spec_add_mount */
    size_t n_strs;
};

/* Parses spec.json.  Every field is checked; unknown fields are errors, so a typo in
 * runtimed cannot silently drop a limit.  The caller wires the network hook, then runs
 * sbx_spec_validate().  Free with rt_shim_spec_done(). */
int rt_shim_spec_load(const char *path, struct rt_shim_spec *ret, struct rt_err *err);
void rt_shim_spec_done(struct rt_shim_spec *s);

#endif

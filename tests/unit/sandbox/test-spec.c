/* Unit tests for sandbox/spec.c and the mount plan: defaults, "SRC:DST" parsing, the
 * environment, validation of every field, and what the default root is made of. */
#include <errno.h>
#include <string.h>

#include "../tap.h"
#include "sandbox/internal.h"
#include "sandbox/sandbox.h"

static const char *const argv_true[] = { "/bin/true", NULL };

static void test_defaults(void)
{
    struct sbx_spec s;

    sbx_spec_init(&s);
    is_int(s.uid, 1000, "default uid inside is 1000");
    is_int(s.gid, 1000, "default gid inside is 1000");
    is_int(s.net, SBX_NET_NONE, "default network is loopback only");
    is_str(s.chdir, "/", "default cwd");
    ok(s.die_with_parent, "dies with its parent by default");
    is_int(s.stdio[0], -1, "stdio inherited by default");
    ok(s.upper_size >= (1ULL << 20), "writable layer is bounded by default");
}

static void test_mounts(void)
{
    struct sbx_spec s;
    struct rt_err err = { 0 };
    char a[] = "/src:/dst", b[] = "/same", c[] = "rel:/x", d[] = "/t";

    sbx_spec_init(&s);
    is_int(sbx_spec_add_mount(&s, SBX_MOUNT_BIND, a, &err), 0, "SRC:DST parses");
    is_str(s.mounts[0].src, "/src", "source");
    is_str(s.mounts[0].dst, "/dst", "destination");
    is_int(sbx_spec_add_mount(&s, SBX_MOUNT_RO_BIND, b, &err), 0, "PATH alone parses");
    is_str(s.mounts[1].dst, "/same", "PATH is both source and destination");
    is_int(sbx_spec_add_mount(&s, SBX_MOUNT_BIND, c, &err), -EINVAL, "relative source refused");
    ok(strstr(err.msg, "absolute") != NULL, "message says why: %s", err.msg);
    is_int(sbx_spec_add_mount(&s, SBX_MOUNT_TMPFS, d, &err), 0, "tmpfs takes only DST");
    is_int(s.n_mounts, 3, "three mounts recorded");
    s.n_mounts = SBX_MAX_MOUNTS;
    is_int(sbx_spec_add_mount(&s, SBX_MOUNT_TMPFS, d, &err), -E2BIG, "too many mounts refused");
}

static void test_env(void)
{
    struct sbx_spec s;
    struct rt_err err = { 0 };

    sbx_spec_init(&s);
    is_int(sbx_spec_add_env(&s, "A=1", &err), 0, "K=V accepted");
    is_int(sbx_spec_add_env(&s, "B=2", &err), 0, "second variable");
    is_int(sbx_spec_add_env(&s, "A=3", &err), 0, "same key replaces");
    is_int(s.n_env, 2, "no duplicate key");
    is_str(s.env[0], "A=3", "latest value wins");
    is_int(sbx_spec_add_env(&s, "noequals", &err), -EINVAL, "no '=' refused");
    is_int(sbx_spec_add_env(&s, "=v", &err), -EINVAL, "empty key refused");
}

static int validate_with(void (*edit)(struct sbx_spec *), struct rt_err *err)
{
    struct sbx_spec s;

    sbx_spec_init(&s);
    s.argv = argv_true;
    edit(&s);
    return sbx_spec_validate(&s, err);
}

static void e_none(struct sbx_spec *s)
{
    (void) s;
}
static void e_no_argv(struct sbx_spec *s)
{
    s->argv = NULL;
}
static void e_dotdot(struct sbx_spec *s)
{
    static char m[] = "/x:/a/../etc";
    (void) sbx_spec_add_mount(s, SBX_MOUNT_BIND, m, NULL);
}
static void e_root_dst(struct sbx_spec *s)
{
    static char m[] = "/x:/";
    (void) sbx_spec_add_mount(s, SBX_MOUNT_BIND, m, NULL);
}
static void e_uid(struct sbx_spec *s)
{
    s->uid = 70000;
}
static void e_low_base(struct sbx_spec *s)
{
    s->host_uid_base = 1000; /* would map host users (or root) inside */
}
static void e_veth(struct sbx_spec *s)
{
    s->net = SBX_NET_VETH;
}
static void e_hostname(struct sbx_spec *s)
{
    s->hostname = "";
}
static void e_name(struct sbx_spec *s)
{
    s->name = "../escape";
}
static void e_layer_no_root(struct sbx_spec *s)
{
    s->layers[0] = "/l";
    s->n_layers = 1;
}
static void e_layer_comma(struct sbx_spec *s)
{
    s->rootfs = "/r";
    s->layers[0] = "/l,upperdir=/etc";
    s->n_layers = 1;
}
static void e_gpu(struct sbx_spec *s)
{
    s->gpus[0] = "/etc/passwd";
    s->n_gpus = 1;
}
static void e_small_upper(struct sbx_spec *s)
{
    s->upper_size = 1000;
}
static void e_cgroup_parent(struct sbx_spec *s)
{
    s->cgroup_parent = "../../x";
}

static void test_validate(void)
{
    static const struct {
        void (*edit)(struct sbx_spec *);
        int want;
        const char *name;
    } cases[] = {
        { e_none, 0, "defaults plus a command are valid" },
        { e_no_argv, -EINVAL, "no command" },
        { e_dotdot, -EINVAL, "'..' in a destination" },
        { e_root_dst, -EINVAL, "a mount over /" },
        { e_uid, -EINVAL, "uid beyond the mapped range" },
        { e_low_base, -EINVAL, "host uid base among host users" },
        { e_veth, -ENOTSUP, "veth without the network hook" },
        { e_hostname, -EINVAL, "empty hostname" },
        { e_name, -EINVAL, "cgroup name with '/'" },
        { e_layer_no_root, -EINVAL, "layer without rootfs" },
        { e_layer_comma, -EINVAL, "a layer path that would inject overlay options" },
        { e_gpu, -EINVAL, "device outside /dev" },
        { e_small_upper, -EINVAL, "writable layer under 1M" },
        { e_cgroup_parent, -EINVAL, "cgroup parent with '..'" },
    };
    struct rt_err err = { 0 };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rt_err_clear(&err);
        int r = validate_with(cases[i].edit, &err);
        is_int(r, cases[i].want, cases[i].name);
        if (cases[i].want)
            ok(err.msg[0] != '\0', "  with a message: %s", err.msg);
    }
}

static const struct sbx__op *find_op(const struct sbx__plan *p, const char *dst)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->ops[i].dst, dst) == 0)
            return &p->ops[i];
    return NULL;
}

static void test_plan(void)
{
    static struct sbx__plan plan;
    struct sbx_spec s;
    struct rt_err err = { 0 };
    const struct sbx__op *op;
    char missing[] = "/nonexistent-sbx-src:/x";

    sbx_spec_init(&s);
    s.argv = argv_true;
    is_int(sbx__plan_build(&s, &plan, &err), 0, "default plan builds");
    op = find_op(&plan, "/usr");
    ok(op && op->kind == SBX_OP_BIND && op->ro, "/usr is a read-only bind");
    op = find_op(&plan, "/etc/passwd");
    ok(op && op->kind == SBX_OP_FILE && strstr(op->data, "user:x:1000:1000:"),
       "passwd is generated with the sandbox user");
    ok(find_op(&plan, "/etc/shadow") == NULL, "no shadow file in the minimal /etc");
    op = find_op(&plan, "/tmp");
    ok(op && op->kind == SBX_OP_TMPFS && op->size == s.upper_size, "/tmp is the bounded layer");
    ok(find_op(&plan, "/proc") && find_op(&plan, "/dev"), "proc and dev are planned");
    ok(find_op(&plan, "/sys") == NULL, "no /sys unless asked for");
    s.sysfs = true;
    is_int(sbx__plan_build(&s, &plan, &err), 0, "plan with sysfs builds");
    ok(find_op(&plan, "/sys") && find_op(&plan, "/sys")->kind == SBX_OP_SYS,
       "sysfs (read-only) with a private netns");

    s.net = SBX_NET_HOST;
    is_int(sbx__plan_build(&s, &plan, &err), 0, "host-network plan builds");
    ok(find_op(&plan, "/sys") == NULL, "no sysfs without our own netns");

    s.net = SBX_NET_NONE;
    (void) sbx_spec_add_mount(&s, SBX_MOUNT_BIND, missing, &err);
    is_int(sbx__plan_build(&s, &plan, &err), -ENOENT, "a missing bind source is an error");
    ok(strstr(err.msg, "/nonexistent-sbx-src") != NULL, "naming the source: %s", err.msg);

    is_str(sbx_step_name(SBX_STEP_PROC), "mount /proc", "step names read as actions");
    is_str(sbx_step_name((enum sbx_step) 999), "setup", "unknown step has a name too");
}

int main(void)
{
    tap_start();
    test_defaults();
    test_mounts();
    test_env();
    test_validate();
    test_plan();
    return tap_done();
}

/* Device access for cgroup v2 (devcg.h): a straight-line BPF allowlist. */
#include <errno.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cleanup.h"
#include "devcg.h"

#include "banned.h"

/* Registers: r1 = ctx on entry; we load the fields into r2..r5, r6 is scratch. */
static struct bpf_insn ins(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
    return (
        struct bpf_insn){ .code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm };
}

#define LDX_W(dst, off) ins(BPF_LDX | BPF_MEM | BPF_W, dst, 1, off, 0)
#define AND32(dst, imm) ins(BPF_ALU | BPF_AND | BPF_K, dst, 0, 0, imm)
#define RSH32(dst, imm) ins(BPF_ALU | BPF_RSH | BPF_K, dst, 0, 0, imm)
#define MOV32_REG(dst, src) ins(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0)
#define MOV64_IMM(dst, imm) ins(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm)
#define JNE_IMM(dst, imm, off) ins(BPF_JMP | BPF_JNE | BPF_K, dst, 0, off, imm)
#define EXIT() ins(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

#define MAX_RULE_INSNS 8

/* Emits one rule: fall through to "return 1" when it matches, jump past its end
 * otherwise.  Returns the instruction count. */
static size_t emit_rule(const struct rt_dev_rule *r, struct bpf_insn *out)
{
    size_t n = 0, jumps[4], nj = 0;
    unsigned all = RT_DEV_MKNOD | RT_DEV_READ | RT_DEV_WRITE;

    if (r->type != 'a') {
        jumps[nj++] = n;
        out[n++] = JNE_IMM(2, r->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR, 0);
    }
    if ((r->access & all) != all) {
        /* Every access asked for must be in the rule: (asked & ~allowed) == 0. */
        out[n++] = MOV32_REG(6, 3);
        out[n++] = AND32(6, (int32_t) (~r->access & all));
        jumps[nj++] = n;
        out[n++] = JNE_IMM(6, 0, 0);
    }
    if (r->major >= 0) {
        jumps[nj++] = n;
        out[n++] = JNE_IMM(4, r->major, 0);
    }
    if (r->minor >= 0) {
        jumps[nj++] = n;
        out[n++] = JNE_IMM(5, r->minor, 0);
    }
    out[n++] = MOV64_IMM(0, 1);
    out[n++] = EXIT();
    for (size_t i = 0; i < nj; i++)
        out[jumps[i]].off = (int16_t) (n - jumps[i] - 1);
    return n;
}

static int sys_bpf(int cmd, union bpf_attr *attr)
{
    return (int) syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

int rt_devcg_v2_attach(int cgroup_fd, const struct rt_dev_rule *rules, size_t n, int replace_fd,
                       struct rt_err *err)
{
    _cleanup_free_ struct bpf_insn *prog = calloc(6 + n * MAX_RULE_INSNS + 2, sizeof(*prog));
    _cleanup_close_ int prog_fd = -1;
    char log[4096] = "";
    union bpf_attr attr;
    size_t len = 0;

    if (!prog)
        return rt_err_set(err, ENOMEM, "build device program");
    for (size_t i = 0; i < n; i++)
        if (!strchr("abc", rules[i].type) || !rules[i].type || rules[i].major < -1 ||
            rules[i].minor < -1)
            return rt_err_set(err, EINVAL, "device rule %zu: bad type or number", i);
    /* struct bpf_cgroup_dev_ctx: access_type = access << 16 | type; major; minor. */
    prog[len++] = LDX_W(2, 0);
    prog[len++] = AND32(2, 0xffff);
    prog[len++] = LDX_W(3, 0);
    prog[len++] = RSH32(3, 16);
    prog[len++] = LDX_W(4, 4);
    prog[len++] = LDX_W(5, 8);
    for (size_t i = 0; i < n; i++)
        len += emit_rule(&rules[i], prog + len);
    prog[len++] = MOV64_IMM(0, 0); /* default deny */
    prog[len++] = EXIT();

    memset(&attr, 0, sizeof(attr));
    attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    attr.insns = (uintptr_t) prog;
    attr.insn_cnt = (uint32_t) len;
    attr.license = (uintptr_t) "GPL"; /* no GPL-only helpers are used; any string loads */
    attr.log_buf = (uintptr_t) log;
    attr.log_size = sizeof(log);
    attr.log_level = 1;
    /* The kernel creates every bpf fd close-on-exec. */
    prog_fd = sys_bpf(BPF_PROG_LOAD, &attr);
    if (prog_fd < 0 && errno == ENOSPC) {
        /* The log was too small for a verbose success; try without it. */
        attr.log_level = 0;
        attr.log_buf = 0;
        attr.log_size = 0;
        prog_fd = sys_bpf(BPF_PROG_LOAD, &attr);
    }
    if (prog_fd < 0)
        return rt_err_set(err, errno, "load device program (%zu insns)%s%.200s", len,
                          log[0] ? ": " : "", log);

    memset(&attr, 0, sizeof(attr));
    attr.target_fd = (uint32_t) cgroup_fd;
    attr.attach_bpf_fd = (uint32_t) prog_fd;
    attr.attach_type = BPF_CGROUP_DEVICE;
    /* ALLOW_MULTI so REPLACE can swap our program atomically: no window in which
     * the cgroup has no program (all devices open) or two (the AND of both). */
    attr.attach_flags = BPF_F_ALLOW_MULTI;
    if (replace_fd >= 0) {
        attr.attach_flags |= BPF_F_REPLACE;
        attr.replace_bpf_fd = (uint32_t) replace_fd;
    }
    if (sys_bpf(BPF_PROG_ATTACH, &attr) < 0)
        return rt_err_set(err, errno, "attach device program to cgroup");
    return TAKE_FD(prog_fd);
}

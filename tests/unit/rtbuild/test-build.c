/* Unit tests for runtimed/build.c with the real git and the real sandbox: layers are
 * built once and reused by key, failures and timeouts say why, cancel works, and
 * hostile trees never reach a layer.  Needs root (sandboxes); skips otherwise. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tap.h"
#include "cleanup.h"
#include "runtimed/build.h"
#include "runtimed/gitrepo.h"
#include "runtimed/lfs.h"
#include "sha256.h"
#include "spawn.h"

static char tmp[PATH_MAX], bare[PATH_MAX + 16], work[PATH_MAX + 16];

static int sh(const char *script)
{
    struct rt_err err = { 0 };
    char full[8192];

    (void) snprintf(full, sizeof(full),
                    "export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t "
                    "GIT_COMMITTER_EMAIL=t@t GIT_CONFIG_NOSYSTEM=1 HOME=%s; cd %s; %s",
                    tmp, work, script);
    return rt_run_capture((const char *const[]){ "sh", "-ec", full, NULL }, NULL, NULL, 0, NULL, 0,
                          &err);
}

/* Commits what @script did in the work tree, pushes it, and returns the commit id. */
static int commit(const char *script, char sha[RT_GIT_SHA_LEN + 1])
{
    struct rt_err err = { 0 };
    char full[4096];

    (void) snprintf(full, sizeof(full), "%s; git add -A; git commit -qm c; git push -qf %s main",
                    script, bare);
    if (sh(full) != 0)
        return -1;
    return rt_git_resolve(bare, "refs/heads/main", sha, &err);
}

static char lines[64][256];
static int n_lines;
static void on_line(void *data, const char *line)
{
    if (n_lines < 64)
        (void) snprintf(lines[n_lines++], sizeof(lines[0]), "%s", line);
}

static struct rt_build_plan plan = {
    .deps_script = "mkdir -p /home/user/.venv/venv; id -u > /home/user/.venv/uid; "
                   "cat /src/requirements.txt > /home/user/.venv/venv/reqs; echo installed",
    .key_files = { "requirements.txt" },
    .n_key_files = 1,
    .key_extra = "test-template-v1",
};
static struct rt_build_limits limits = { .timeout_s = 60, .memory_max = 256 << 20 };

static int run(const char *sha, const struct rt_build_plan *p, bool no_cache,
               struct rt_build_result *res, struct rt_err *err)
{
    struct rt_build *b = rt_build_new();
    char log[PATH_MAX + 16];
    struct rt_build_job job = { .data_dir = tmp,
                                .space_id = "alice/demo",
                                .repo_dir = bare,
                                .commit = sha,
                                .log_path = log,
                                .no_cache = no_cache,
                                .plan = p,
                                .limits = &limits,
                                .on_line = on_line };
    int r;

    (void) snprintf(log, sizeof(log), "%s/build.log", tmp);
    n_lines = 0;
    r = rt_build_run(b, &job, res, err);
    rt_build_free(b);
    return r;
}

static bool file_has(const char *dir, const char *name, const char *want)
{
    char path[PATH_MAX * 2], buf[256] = "";
    FILE *f;

    (void) snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "re");
    if (!f)
        return false;
    if (!fgets(buf, sizeof(buf), f))
        buf[0] = '\0';
    (void) fclose(f);
    return strcmp(buf, want) == 0;
}

static void test_layers_and_reuse(void)
{
    struct rt_err err = { 0 };
    struct rt_build_result a, b, c, d;
    char sha1[41], sha2[41], sha3[41];
    struct stat st;

    is_int(commit("echo 'print(1)' > app.py; echo gradio==5.0 > requirements.txt", sha1), 0,
           "first commit");
    is_int(run(sha1, &plan, false, &a, &err), 0, "first build succeeds");
    if (err.code)
        printf("# %s\n", err.msg);
    ok(!a.deps_reused, "the dependency layer is built");
    ok(file_has(a.deps_layer, "venv/reqs", "gradio==5.0\n"),
       "the layer holds what the script made");
    ok(file_has(a.deps_layer, "uid", "1000\n"), "the build ran as uid 1000 inside");
    ok(file_has(a.app_layer, "app.py", "print(1)\n"), "the app layer holds the commit's files");
    ok(stat(a.deps_layer, &st) == 0 && st.st_uid == 0 && (st.st_mode & 0777) == 0755,
       "the finished layer is sealed (root-owned, 0755)");
    ok(n_lines > 0 && strstr(lines[0], "building alice/demo") != NULL, "progress streamed live");

    is_int(commit("echo 'print(2)' > app.py", sha2), 0, "a code-only commit");
    is_int(run(sha2, &plan, false, &b, &err), 0, "code-only rebuild succeeds");
    ok(b.deps_reused, "the dependency layer is reused");
    is_str(b.deps_layer, a.deps_layer, "it is the same layer");
    ok(file_has(b.app_layer, "app.py", "print(2)\n"), "with the new app files");

    is_int(commit("echo numpy >> requirements.txt", sha3), 0, "a requirements change");
    is_int(run(sha3, &plan, false, &c, &err), 0, "rebuild succeeds");
    ok(!c.deps_reused && strcmp(c.deps_key, a.deps_key) != 0, "a new key and a new layer");

    is_int(run(sha3, &plan, true, &d, &err), 0, "factory rebuild succeeds");
    ok(!d.deps_reused, "factory rebuild ignores the layer cache");
    is_str(d.deps_key, c.deps_key, "with the same key");
}

static void test_failures(void)
{
    struct rt_err err = { 0 };
    struct rt_build_result r;
    struct rt_build_plan bad = plan, slow = plan;
    char sha[41];

    bad.deps_script = "echo Collecting nosuchpkg; echo 'ERROR: No matching distribution found "
                      "for nosuchpkg' >&2; exit 1";
    bad.key_extra = "bad";
    is_int(commit("echo nosuchpkg > requirements.txt", sha), 0, "a commit that cannot install");
    is_int(run(sha, &bad, false, &r, &err), -EIO, "a failing install fails the build");
    is_str(err.msg,
           "installing dependencies failed (exit 1): ERROR: No matching distribution found for "
           "nosuchpkg",
           "the message says why, with the last line of output");

    slow.deps_script = "echo working; sleep 60";
    slow.key_extra = "slow";
    limits.timeout_s = 1;
    is_int(run(sha, &slow, false, &r, &err), -ETIMEDOUT, "a build past its timeout is stopped");
    is_str(err.msg, "build timed out after 1 s", "and says so");
    limits.timeout_s = 60;

    is_int(commit("ln -sf /etc/shadow evil", sha), 0, "a commit with an escaping symlink");
    is_int(run(sha, &plan, false, &r, &err), -EPERM, "a hostile tree fails the build");
    is_str(err.msg, "symlink 'evil' points outside the repository ('/etc/shadow')",
           "naming the path");
    (void) sh("git rm -q evil; git commit -qm fix");
}

struct cancel_arg {
    struct rt_build *b;
};

static void *cancel_later(void *p)
{
    usleep(500 * 1000);
    rt_build_cancel(p);
    return NULL;
}

static void test_cancel(void)
{
    struct rt_err err = { 0 };
    struct rt_build_result r;
    struct rt_build_plan slow = plan;
    struct rt_build *b = rt_build_new();
    char sha[41], log[PATH_MAX + 16];
    pthread_t t;
    struct rt_build_job job = { .data_dir = tmp,
                                .space_id = "alice/demo",
                                .repo_dir = bare,
                                .plan = &slow,
                                .limits = &limits };

    slow.deps_script = "sleep 60";
    slow.key_extra = "cancel";
    is_int(commit("echo x > x.txt", sha), 0, "a commit to cancel");
    job.commit = sha;
    (void) snprintf(log, sizeof(log), "%s/cancel.log", tmp);
    job.log_path = log;
    pthread_create(&t, NULL, cancel_later, b);
    is_int(rt_build_run(b, &job, &r, &err), -ECANCELED, "a cancelled build stops");
    pthread_join(t, NULL);
    rt_build_free(b);
}

/* LFS pointers in a commit become their objects in the app layer; a pointer whose object
 * never arrived stays a pointer and says so; the caller's file size limit holds. */
static void test_lfs_and_limits(void)
{
    static const char content[] = "weights of a model\n";
    struct rt_err err = { 0 };
    struct rt_build_result r;
    struct rt_lfs *store = NULL;
    struct rt_lfs_writer *w = NULL;
    struct rt_sha256 h;
    uint8_t sum[RT_SHA256_LEN];
    char oid[RT_LFS_OID_LEN + 1], ptr[RT_LFS_POINTER_MAX], script[1024], sha[41];
    char missing_ptr[RT_LFS_POINTER_MAX];
    struct rt_git_limits small = { .max_file_bytes = 1000 };
    struct rt_build_plan none = { 0 };
    struct rt_build *b;
    struct rt_build_job job = { .data_dir = tmp,
                                .space_id = "alice/demo",
                                .repo_dir = bare,
                                .lfs_scope = "7-1",
                                .plan = &none,
                                .limits = &limits };

    rt_sha256_init(&h);
    rt_sha256_update(&h, content, sizeof(content) - 1);
    rt_sha256_final(&h, sum);
    for (int i = 0; i < RT_SHA256_LEN; i++)
        (void) snprintf(oid + 2 * i, 3, "%02x", sum[i]);
    is_int(rt_lfs_open_space(tmp, 7, 1, &store, &err), 0, "open Space 7's LFS store");
    is_int(rt_lfs_writer_start(store, oid, sizeof(content) - 1, &w, &err), 0, "upload an object");
    is_int(rt_lfs_writer_write(w, content, sizeof(content) - 1, &err), 0, "its bytes");
    is_int(rt_lfs_writer_finish(w, &err), 0, "stored");
    rt_lfs_writer_free(w);
    rt_lfs_free(store);
    ok(rt_lfs_pointer_format(oid, sizeof(content) - 1, ptr) > 0, "a pointer");
    ok(rt_lfs_pointer_format("aa00000000000000000000000000000000000000000000000000000000000000", 5,
                             missing_ptr) > 0,
       "a pointer to nothing");
    (void) snprintf(script, sizeof(script),
                    "git rm -rqf . ; mkdir -p models; printf '%%s' '%s' > models/model.bin; "
                    "printf '%%s' '%s' > gone.bin",
                    ptr, missing_ptr);
    is_int(commit(script, sha), 0, "a commit with LFS pointers");
    job.commit = sha;
    b = rt_build_new();
    is_int(rt_build_run(b, &job, &r, &err), 0, "it builds");
    rt_build_free(b);
    ok(file_has(r.app_layer, "models/model.bin", content), "the pointer became the object");
    ok(file_has(r.app_layer, "gone.bin", "version https://git-lfs.github.com/spec/v1\n"),
       "a missing object leaves the pointer");
    /* The same commit in another Space: its objects were never uploaded there. */
    job.lfs_scope = "8-1";
    b = rt_build_new();
    is_int(rt_build_run(b, &job, &r, &err), 0, "the same commit builds for Space 8");
    rt_build_free(b);
    ok(strstr(r.app_layer, "-8-1") != NULL, "into a layer of its own: %s", r.app_layer);
    ok(file_has(r.app_layer, "models/model.bin", "version https://git-lfs.github.com/spec/v1\n"),
       "with the pointer, not Space 7's object");
    job.lfs_scope = "7-1";

    is_int(commit("head -c 2000 /dev/zero > big.bin", sha), 0, "a commit with a 2000-byte file");
    job.commit = sha;
    job.git_limits = &small;
    b = rt_build_new();
    is_int(rt_build_run(b, &job, &r, &err), -EFBIG, "over the caller's 1000-byte limit");
    rt_build_free(b);
    ok(strstr(err.msg, "big.bin") != NULL, "naming the file: %s", err.msg);
}

int main(void)
{
    struct rt_err err;
    char script[PATH_MAX * 2];

    if (geteuid() != 0) {
        printf("1..0 # SKIP builds need root for sandboxes\n");
        return 0;
    }
    tap_start();
    (void) snprintf(tmp, sizeof(tmp), "/tmp/spt-build-XXXXXX");
    if (!mkdtemp(tmp))
        return 1;
    (void) chmod(tmp, 0755);
    (void) snprintf(bare, sizeof(bare), "%s/repo.git", tmp);
    (void) snprintf(work, sizeof(work), "%s/work", tmp);
    (void) rt_git_init_bare(bare, 0, &err);
    (void) snprintf(script, sizeof(script), "git init -q -b main %s", work);
    (void) rt_run_capture((const char *const[]){ "sh", "-c", script, NULL }, NULL, NULL, 0, NULL, 0,
                          &err);
    test_layers_and_reuse();
    test_failures();
    test_cancel();
    test_lfs_and_limits();
    (void) rt_run_capture((const char *const[]){ "rm", "-rf", tmp, NULL }, NULL, NULL, 0, NULL, 0,
                          &err);
    return tap_done();
}

/* Unit tests for runtimed/gitrepo.c and githttp.c against the real git: bare repos,
 * refs, reading files, checked checkouts of hostile trees, and git-http-backend. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tap.h"
#include "cleanup.h"
#include "runtimed/githttp.h"
#include "runtimed/gitrepo.h"
#include "spawn.h"

static char tmp[PATH_MAX], bare[PATH_MAX + 16];

/* Runs a shell snippet in @dir with git's identity set; returns its exit status. */
static int sh(const char *dir, const char *script, char *out, size_t cap)
{
    struct rt_err err = { 0 };
    char full[8192];
    char scratch[8];

    (void) snprintf(full, sizeof(full),
                    "export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t "
                    "GIT_COMMITTER_EMAIL=t@t GIT_CONFIG_NOSYSTEM=1 HOME=%s; %s",
                    tmp, script);
    return rt_run_capture((const char *const[]){ "sh", "-ec", full, NULL }, dir,
                          out ? out : scratch, out ? cap : sizeof(scratch), NULL, 0, &err);
}

/* Makes a commit whose tree is given as mktree lines ("MODE TYPE SHA\tNAME"), built
 * from blobs with the given contents; prints the commit id. */
static int commit_tree(const char *entries_script, char sha[RT_GIT_SHA_LEN + 1])
{
    char out[256], script[4096];
    int r;

    (void) snprintf(script, sizeof(script),
                    "cd %s; %s; c=$(echo hostile | git commit-tree $(printf \"$T\" | git mktree)); "
                    "git update-ref refs/heads/main $c; echo $c",
                    bare, entries_script);
    r = sh(tmp, script, out, sizeof(out));
    if (r == 0) {
        memcpy(sha, out, RT_GIT_SHA_LEN);
        sha[RT_GIT_SHA_LEN] = '\0';
    }
    return r;
}

static void test_init_and_read(void)
{
    struct rt_err err = { 0 };
    char sha[RT_GIT_SHA_LEN + 1], buf[64], script[2048], dest[PATH_MAX + 16], link[64];
    struct rt_git_checkout_report rep;
    size_t len;
    ssize_t n;

    is_int(rt_git_init_bare(bare, 1 << 20, &err), 0, "init a bare repo");
    is_int(rt_git_init_bare(bare, 1 << 20, &err), 0, "init is idempotent");
    is_int(rt_git_resolve(bare, "refs/heads/main", sha, &err), -ENOENT, "no main before a push");
    (void) snprintf(script, sizeof(script),
                    "git init -q -b main work; cd work; printf -- '---\\nsdk: gradio\\n---\\n' > "
                    "README.md; echo 'print(1)' > app.py; mkdir -p sub; ln -s ../app.py "
                    "sub/link.py; git add .; git commit -qm one; git push -q %s main",
                    bare);
    is_int(sh(tmp, script, NULL, 0), 0, "push a commit from a work tree");
    is_int(rt_git_resolve(bare, "refs/heads/main", sha, &err), 0, "main resolves after a push");
    is_int(strlen(sha), RT_GIT_SHA_LEN, "a full commit id");
    is_int(rt_git_read_file(bare, sha, "README.md", buf, sizeof(buf), &len, &err), 0,
           "read README.md of the commit");
    is_str(buf, "---\nsdk: gradio\n---\n", "its content");
    is_int(rt_git_read_file(bare, sha, "nope.py", buf, sizeof(buf), &len, &err), -ENOENT,
           "a missing file is ENOENT");
    is_int(rt_git_read_file(bare, sha, "README.md", buf, 8, &len, &err), -EFBIG,
           "a file larger than the buffer is EFBIG");
    is_int(rt_git_read_file(bare, "main; rm -rf /", "x", buf, 8, &len, &err), -EINVAL,
           "only commit ids are accepted");

    (void) snprintf(dest, sizeof(dest), "%s/co", tmp);
    ok(mkdir(dest, 0755) == 0, "make the checkout dir");
    is_int(rt_git_checkout(bare, sha, dest, NULL, &rep, &err), 0, "checkout the commit");
    is_int(rep.files, 2, "two files");
    is_int(rep.symlinks, 1, "one symlink");
    (void) snprintf(script, sizeof(script), "%s/sub/link.py", dest);
    n = readlink(script, link, sizeof(link) - 1);
    ok(n > 0, "the contained symlink exists");
    if (n > 0) {
        link[n] = '\0';
        is_str(link, "../app.py", "its target");
    }
}

static void test_hostile_trees(void)
{
    struct rt_err err = { 0 };
    char sha[RT_GIT_SHA_LEN + 1], dest[PATH_MAX + 32];
    static const struct {
        const char *name, *script, *want;
        int code;
    } cases[] = {
        { "symlink to /etc/shadow",
          "b=$(printf /etc/shadow | git hash-object -w --stdin); T=\"120000 blob $b\\tevil\\n\"",
          "symlink 'evil' points outside the repository ('/etc/shadow')", -EPERM },
        { "symlink climbing out",
          "b=$(printf ../../etc | git hash-object -w --stdin); T=\"120000 blob $b\\tup\\n\"",
          "symlink 'up' points outside the repository ('../../etc')", -EPERM },
        { "a .git entry",
          "b=$(echo x | git hash-object -w --stdin); T=\"100644 blob $b\\t.GIT\\n\"",
          "unsafe path '.GIT' in the repository", -EPERM },
        { "an oversized file",
          "b=$(head -c 5000 /dev/zero | git hash-object -w --stdin); T=\"100644 blob "
          "$b\\tbig.bin\\n\"",
          "'big.bin' is 5000 bytes, over the 4096-byte file limit", -EFBIG },
    };
    struct rt_git_limits lim = { .max_file_bytes = 4096 };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        (void) snprintf(dest, sizeof(dest), "%s/hostile%zu", tmp, i);
        (void) mkdir(dest, 0755);
        is_int(commit_tree(cases[i].script, sha), 0, cases[i].name);
        is_int(rt_git_checkout(bare, sha, dest, &lim, NULL, &err), cases[i].code,
               "refused with the right code");
        is_str(err.msg, cases[i].want, "and a message naming the path");
    }
}

static void test_symlink_containment(void)
{
    ok(rt_git_symlink_is_contained("a/b", "../c"), "sibling dir is inside");
    ok(rt_git_symlink_is_contained("a", "b/../c"), "down then up is inside");
    ok(!rt_git_symlink_is_contained("a", "../x"), "up from the root is outside");
    ok(!rt_git_symlink_is_contained("a/b", "../../x"), "two up from depth one is outside");
    ok(!rt_git_symlink_is_contained("a/b", "x/../../../y"), "climbing through a subdir");
    ok(!rt_git_symlink_is_contained("a", "/etc"), "absolute is outside");
    ok(!rt_git_symlink_is_contained("a", ""), "empty target refused");
}

struct membuf {
    char data[65536];
    size_t len;
};

static ssize_t no_body(void *ctx, void *buf, size_t len)
{
    return 0;
}

static int to_mem(void *ctx, const void *buf, size_t len)
{
    struct membuf *m = ctx;
    if (m->len + len >= sizeof(m->data))
        return -1;
    memcpy(m->data + m->len, buf, len);
    m->len += len;
    m->data[m->len] = '\0';
    return 0;
}

static void test_http_backend(void)
{
    struct rt_err err = { 0 };
    struct membuf *m = calloc(1, sizeof(*m));
    struct rt_git_http_request req = { .method = "GET",
                                       .suffix = "/info/refs",
                                       .query = "service=git-upload-pack",
                                       .content_length = -1 };
    bool write;

    is_int(rt_git_http_classify("GET", "/info/refs", "service=git-receive-pack", &write),
           RT_GIT_INFO_REFS, "receive-pack advertisement");
    ok(write, "is a write");
    is_int(rt_git_http_classify("POST", "/git-upload-pack", NULL, &write), RT_GIT_UPLOAD_PACK,
           "upload-pack");
    ok(!write, "is a read");
    is_int(rt_git_http_classify("GET", "/info/refs", NULL, &write), RT_GIT_NONE,
           "the dumb protocol is not served");
    is_int(rt_git_http_classify("GET", "/HEAD", NULL, &write), RT_GIT_NONE, "nor raw files");

    if (!m)
        return;
    is_int(rt_git_http_serve(bare, &req, no_body, to_mem, m, &err), 200, "info/refs served");
    ok(strncmp(m->data, "HTTP/1.1 200 OK\r\n", 17) == 0, "an HTTP/1.1 status line");
    ok(strstr(m->data, "Content-Type: application/x-git-upload-pack-advertisement") != NULL,
       "git's content type passed through");
    ok(strstr(m->data, "Transfer-Encoding: chunked\r\n\r\n") != NULL, "a chunked body");
    ok(strstr(m->data, "# service=git-upload-pack") != NULL, "the advertisement itself");
    ok(m->len > 5 && memcmp(m->data + m->len - 5, "0\r\n\r\n", 5) == 0, "the last chunk");
    free(m);
}

int main(void)
{
    char cmd[PATH_MAX + 16];
    struct rt_err err;

    tap_start();
    (void) snprintf(tmp, sizeof(tmp), "/tmp/spt-gitrepo-XXXXXX");
    if (!mkdtemp(tmp))
        return 1;
    (void) snprintf(bare, sizeof(bare), "%s/demo.git", tmp);
    test_init_and_read();
    test_hostile_trees();
    test_symlink_containment();
    test_http_backend();
    (void) snprintf(cmd, sizeof(cmd), "%s", tmp);
    (void) rt_run_capture((const char *const[]){ "rm", "-rf", cmd, NULL }, NULL, NULL, 0, NULL, 0,
                          &err);
    return tap_done();
}

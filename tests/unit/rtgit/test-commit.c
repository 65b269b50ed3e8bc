/* Unit tests for runtimed/gitcommit.c against the real git: commits made from operation
 * lists on bare repositories (first commit, add, replace, delete, delete folder, rename),
 * parentCommit and concurrent-update refusals that leave the branch alone, hostile paths,
 * checkouts of the result, LFS pointers, file listings, preupload decisions and base64.
 * The .c is included to reach its static helpers (the ref race, the glob matcher). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tap.h"
#include "cleanup.h"
#include "runtimed/gitcommit.c"
#include "runtimed/gitrepo.h"
#include "sha256.h"
#include "spawn.h"

static char tmp[PATH_MAX], bare[PATH_MAX + 16], work[PATH_MAX + 16];

/* Runs a shell snippet in the test dir with git's identity set; returns its status. */
static int sh(const char *script, char *out, size_t cap)
{
    struct rt_err err = { 0 };
    char full[8192], scratch[8];

    (void) snprintf(full, sizeof(full),
                    "export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t "
                    "GIT_COMMITTER_EMAIL=t@t GIT_CONFIG_NOSYSTEM=1 HOME=%s; %s",
                    tmp, script);
    if (out && cap)
        out[0] = '\0';
    return rt_run_capture((const char *const[]){ "sh", "-ec", full, NULL }, tmp,
                          out ? out : scratch, out ? cap : sizeof(scratch), NULL, 0, &err);
}

/* "MODE PATH" lines of a commit's tree, to compare with what a test expects. */
static const char *tree_of(const char *commit)
{
    static char out[8192];
    char script[1024];

    (void) snprintf(script, sizeof(script),
                    "git --git-dir=%s ls-tree -r --full-tree %s | awk -F'\\t' "
                    "'{split($1,a,\" \"); print a[1] \" \" $2}'",
                    bare, commit);
    if (sh(script, out, sizeof(out)) != 0)
        return "(ls-tree failed)";
    return out;
}

static const char *head(void)
{
    static char sha[RT_GIT_SHA_LEN + 1];
    struct rt_err err = { 0 };

    if (rt_git_resolve(bare, "refs/heads/main", sha, &err) < 0)
        return "";
    return sha;
}

static const char *blob(const char *commit, const char *path)
{
    static char buf[4096];
    struct rt_err err = { 0 };
    size_t len;

    if (rt_git_read_file(bare, commit, path, buf, sizeof(buf), &len, &err) < 0)
        return "(missing)";
    return buf;
}

static int count_entries(const char *dir)
{
    struct dirent *e;
    DIR *d = opendir(dir);
    int n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

#define FILE_OP(p, s)                                                                              \
    {                                                                                              \
        .kind = RT_GIT_OP_FILE, .path = (p), .data = (s), .len = strlen(s)                         \
    }

static int commit(const struct rt_git_op *ops, size_t n, const char *parent,
                  struct rt_git_commit_result *res, struct rt_err *err)
{
    struct rt_git_commit_req req = { .summary = "Upload files",
                                     .author_name = "Ada",
                                     .author_email = "ada@example.org",
                                     .parent_commit = parent,
                                     .ops = ops,
                                     .n_ops = n };
    return rt_git_commit(bare, &req, res, err);
}

static char first[RT_GIT_SHA_LEN + 1], second[RT_GIT_SHA_LEN + 1];
static char weights_oid[RT_SHA256_HEX_LEN];

static void test_first_commit(void)
{
    static const char weights[] = "pretend these are weights";
    struct rt_err err = { 0 };
    struct rt_git_commit_result res = { 0 };
    struct rt_git_op ops[] = {
        FILE_OP("README.md", "---\nsdk: gradio\n---\n"),
        FILE_OP("app.py", "import gradio\n"),
        { .kind = RT_GIT_OP_LFS_FILE,
          .path = "model.bin",
          .lfs_oid = weights_oid,
          .lfs_size = sizeof(weights) - 1 },
        FILE_OP("empty.txt", ""),
    };
    struct rt_git_commit_req req = { .summary = "Initial commit",
                                     .description = "made by the API",
                                     .author_name = "Ada Lovelace",
                                     .author_email = "ada@example.org",
                                     .ops = ops,
                                     .n_ops = ARRAY_SIZE(ops) };
    char expect_ptr[RT_LFS_POINTER_MAX], out[512], script[1024], dest[PATH_MAX + 16];
    struct rt_git_checkout_report rep = { 0 };

    rt_sha256_hex(weights, sizeof(weights) - 1, weights_oid);
    is_int(rt_git_init_bare(bare, 0, &err), 0, "init a bare repo");
    is_int(rt_git_commit(bare, &req, &res, &err), 0, "the first commit of an empty repo");
    if (res.commit[0] == '\0') {
        printf("# %s\n", err.msg);
        return;
    }
    memcpy(first, res.commit, sizeof(first));
    is_str(head(), first, "main points at it");
    is_str(res.parent, "", "it has no parent");
    ok(res.changed, "it changed the (empty) tree");
    is_str(tree_of(first), "100644 README.md\n100644 app.py\n100644 empty.txt\n100644 model.bin\n",
           "exactly the files committed");
    is_str(blob(first, "app.py"), "import gradio\n", "app.py holds its bytes");
    (void) rt_lfs_pointer_format(weights_oid, sizeof(weights) - 1, expect_ptr);
    is_str(blob(first, "model.bin"), expect_ptr, "model.bin is a well-formed LFS pointer");
    (void) snprintf(script, sizeof(script),
                    "git --git-dir=%s log -1 --format='%%an|%%ae|%%cn|%%s|%%b|%%P' %s", bare,
                    first);
    is_int(sh(script, out, sizeof(out)), 0, "git log reads the commit");
    is_str(out, "Ada Lovelace|ada@example.org|Ada Lovelace|Initial commit|made by the API\n|\n",
           "author, committer, summary and description as given");
    (void) snprintf(script, sizeof(script), "git --git-dir=%s fsck --strict --no-dangling", bare);
    is_int(sh(script, out, sizeof(out)), 0, "git fsck --strict is happy with the repository");

    (void) snprintf(dest, sizeof(dest), "%s/co1", tmp);
    (void) mkdir(dest, 0755);
    is_int(rt_git_checkout(bare, first, dest, NULL, &rep, &err), 0, "the commit checks out");
    is_int(rep.files, 4, "four files");
    (void) snprintf(
        script, sizeof(script),
        "git clone -q %s clone && cd clone && cat README.md app.py && ls -A | tr '\\n' ' '", bare);
    is_int(sh(script, out, sizeof(out)), 0, "git clone works");
    is_str(out, "---\nsdk: gradio\n---\nimport gradio\n.git README.md app.py empty.txt model.bin ",
           "the clone has exactly the committed files");
}

static void test_edit_commits(void)
{
    struct rt_err err = { 0 };
    struct rt_git_commit_result res = { 0 };
    struct rt_git_op ops2[] = {
        FILE_OP("README.md", "---\nsdk: streamlit\n---\n"),
        { .kind = RT_GIT_OP_DELETE_FILE, .path = "empty.txt" },
        FILE_OP("sub/a.txt", "a\n"),
        FILE_OP("sub/b.txt", "b\n"),
        FILE_OP("sub/deep/c.txt", "c\n"),
        FILE_OP("subway.txt", "not in sub/\n"),
        FILE_OP("run.sh", "#!/bin/sh\necho one\n"),
    };
    struct rt_git_op ops3[] = {
        { .kind = RT_GIT_OP_DELETE_FOLDER, .path = "sub/" },
        { .kind = RT_GIT_OP_RENAME, .old_path = "README.md", .path = "docs/README.md" },
        { .kind = RT_GIT_OP_FILE,
          .path = "main.py",
          .old_path = "app.py",
          .data = "print(2)\n",
          .len = 9 },
        FILE_OP("run.sh", "#!/bin/sh\necho two\n"),
        FILE_OP("tmp/x", "x"),
        { .kind = RT_GIT_OP_DELETE_ENTRY, .path = "tmp" },
        FILE_OP("later.txt", "1"),
        { .kind = RT_GIT_OP_RENAME, .old_path = "later.txt", .path = "deeper/later.txt" },
    };
    char script[1024], out[256];

    is_int(commit(ops2, ARRAY_SIZE(ops2), first, &res, &err), 0,
           "replace, delete and add on top of the first commit (parentCommit given)");
    memcpy(second, res.commit, sizeof(second));
    is_str(res.parent, first, "the parent is the first commit");
    is_str(tree_of(second),
           "100644 README.md\n100644 app.py\n100644 model.bin\n100644 run.sh\n100644 sub/a.txt\n"
           "100644 sub/b.txt\n100644 sub/deep/c.txt\n100644 subway.txt\n",
           "the tree after the second commit");
    is_str(blob(second, "README.md"), "---\nsdk: streamlit\n---\n", "README.md replaced");

    /* An executable pushed with git stays executable when the API replaces it. */
    (void) snprintf(script, sizeof(script),
                    "cd clone && git pull -q && chmod +x run.sh && git commit -qam x && "
                    "git push -q origin main && git rev-parse HEAD");
    is_int(sh(script, out, sizeof(out)), 0, "a push makes run.sh executable");
    out[RT_GIT_SHA_LEN] = '\0';
    is_int(commit(ops3, ARRAY_SIZE(ops3), out, &res, &err), 0,
           "delete a folder, rename, move with new content, a file and its folder undone");
    if (res.commit[0] == '\0')
        printf("# %s\n", err.msg);
    is_str(tree_of(res.commit),
           "100644 deeper/later.txt\n100644 docs/README.md\n100644 main.py\n100644 model.bin\n"
           "100755 run.sh\n100644 subway.txt\n",
           "the folder is gone (and only it), moves landed, run.sh kept its mode");
    is_str(blob(res.commit, "docs/README.md"), "---\nsdk: streamlit\n---\n",
           "a rename keeps the content");
    is_str(blob(res.commit, "main.py"), "print(2)\n", "a move with oldPath takes the new content");
    is_str(blob(res.commit, "run.sh"), "#!/bin/sh\necho two\n", "run.sh has the new content");
}

static void test_refusals_leave_main(void)
{
    struct rt_err err = { 0 };
    struct rt_git_commit_result res = { 0 };
    struct rt_git_op one[] = { FILE_OP("x.txt", "x") };
    char before[RT_GIT_SHA_LEN + 1], wdir[PATH_MAX + 16], shortp[8];

    memcpy(before, head(), sizeof(before));
    is_int(commit(one, 1, first, &res, &err), -ESTALE, "a stale parentCommit is refused");
    ok(strstr(err.msg, first) && strstr(err.msg, before), "the message names both commits");
    is_str(head(), before, "main did not move");
    is_int(commit(one, 1, "not-hex", &res, &err), -EINVAL, "a malformed parentCommit is EINVAL");
    is_int(commit(one, 1, "abcd", &res, &err), -EINVAL, "four digits are too few");
    memcpy(shortp, before, 7);
    shortp[7] = '\0';
    is_int(commit(one, 1, shortp, &res, &err), 0, "an abbreviated parentCommit that matches works");
    memcpy(before, head(), sizeof(before));

    {
        struct rt_git_op del[] = { { .kind = RT_GIT_OP_DELETE_FILE, .path = "nope.txt" } };
        struct rt_git_op delf[] = { { .kind = RT_GIT_OP_DELETE_FOLDER, .path = "nope/" } };
        struct rt_git_op delx[] = { { .kind = RT_GIT_OP_DELETE_FILE, .path = "docs" } };
        struct rt_git_op mv[] = { { .kind = RT_GIT_OP_RENAME, .old_path = "a", .path = "b" } };
        struct rt_git_op df1[] = { FILE_OP("main.py/x", "x") };
        struct rt_git_op df2[] = { FILE_OP("docs", "x") };
        struct rt_git_op lfs[] = {
            { .kind = RT_GIT_OP_LFS_FILE, .path = "m.bin", .lfs_oid = "zz", .lfs_size = 1 }
        };
        struct rt_git_op norename[] = { { .kind = RT_GIT_OP_RENAME, .path = "b" } };
        struct rt_git_op bad_kind[] = { { .kind = (enum rt_git_op_kind) 42, .path = "b" } };

        is_int(commit(del, 1, NULL, &res, &err), -ENOENT, "deleting a missing file is ENOENT");
        ok(strstr(err.msg, "a file with this name doesn't exist") != NULL,
           "with the Hub's wording ('%s')", err.msg);
        is_int(commit(delf, 1, NULL, &res, &err), -ENOENT, "deleting a missing folder is ENOENT");
        is_int(commit(delx, 1, NULL, &res, &err), -ENOENT, "deleteFile on a folder is ENOENT");
        is_int(commit(mv, 1, NULL, &res, &err), -ENOENT, "renaming a missing file is ENOENT");
        is_int(commit(df1, 1, NULL, &res, &err), -EEXIST, "a file under a file is EEXIST");
        is_str(err.msg, "cannot add 'main.py/x': 'main.py' is a file", "and says which");
        is_int(commit(df2, 1, NULL, &res, &err), -EEXIST, "a file over a folder is EEXIST");
        is_int(commit(lfs, 1, NULL, &res, &err), -EINVAL, "a bad LFS oid is EINVAL");
        is_int(commit(norename, 1, NULL, &res, &err), -EINVAL, "a rename without a source");
        is_int(commit(bad_kind, 1, NULL, &res, &err), -EINVAL, "an unknown operation kind");
    }
    {
        struct rt_git_op big[] = { FILE_OP("big.txt", "0123456789a") };
        struct rt_git_op many[] = { FILE_OP("m1", "1"), FILE_OP("m2", "2"), FILE_OP("m3", "3") };
        struct rt_git_commit_req req = {
            .summary = "s", .ops = big, .n_ops = 1, .max_file_bytes = 10
        };
        is_int(rt_git_commit(bare, &req, &res, &err), -EFBIG, "a file over the cap is EFBIG");
        req.max_file_bytes = 0;
        req.max_commit_bytes = 5;
        req.ops = many;
        req.n_ops = 3;
        is_int(rt_git_commit(bare, &req, &res, &err), 0, "three small files fit 5 bytes");
        memcpy(before, head(), sizeof(before));
        req.max_commit_bytes = 2;
        is_int(rt_git_commit(bare, &req, &res, &err), -EFBIG, "but not 2 bytes");
        req.max_commit_bytes = 0;
        req.max_files = 2;
        is_int(rt_git_commit(bare, &req, &res, &err), -EFBIG, "more operations than max_files");
        req.max_files = 9;
        req.n_ops = 1;
        is_int(rt_git_commit(bare, &req, &res, &err), -EFBIG, "a tree over max_files");
        req.max_files = 0;
        req.summary = "  \n";
        is_int(rt_git_commit(bare, &req, &res, &err), -EINVAL, "a blank summary is refused");
        req.summary = "s";
        req.author_name = "Eve <evil@x> 0 +0000\ncommitter x";
        is_int(rt_git_commit(bare, &req, &res, &err), -EINVAL, "an identity that forges a header");
        req.author_name = NULL;
        req.branch = "../../config";
        is_int(rt_git_commit(bare, &req, &res, &err), -EINVAL, "a hostile branch name");
        req.branch = "main.lock";
        is_int(rt_git_commit(bare, &req, &res, &err), -EINVAL, "a lock-file branch name");
        req.branch = NULL;
        (void) snprintf(wdir, sizeof(wdir), "%s/not-a-repo", tmp);
        is_int(rt_git_commit(wdir, &req, &res, &err), -EIO,
               "a missing repository is an error, not a first commit");
        ok(strstr(err.msg, "not a git repository") != NULL, "saying so ('%s')", err.msg);
    }
    is_str(head(), before, "none of the refusals moved main");
    (void) snprintf(wdir, sizeof(wdir), "%s/work", tmp);
    is_int(count_entries(wdir), 0, "and no work directory is left behind");
}

static void test_hostile_paths(void)
{
    static const struct {
        const char *path;
        size_t len;
        const char *why;
    } cases[] = {
        { "../x", 0, "a parent component" },
        { "a/../../x", 0, "a parent component inside" },
        { "/etc/passwd", 0, "an absolute path" },
        { ".git/config", 0, "the git directory" },
        { "a/.GIT/x", 0, "the git directory in any case" },
        { "a/.git", 0, "a file named .git" },
        { "", 0, "an empty path" },
        { "a\0b", 3, "a NUL byte" },
        { "a//b", 0, "an empty component" },
        { "./a", 0, "a '.' component" },
        { "a/", 0, "a trailing slash on a file" },
        { "a\nb", 0, "a newline" },
        { "a\x1b[31m", 0, "an escape sequence" },
    };
    struct rt_err err = { 0 };
    struct rt_git_commit_result res = { 0 };
    char before[RT_GIT_SHA_LEN + 1], *longp = malloc(RT_GIT_PATH_MAX + 2);

    memcpy(before, head(), sizeof(before));
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct rt_git_op op = { .kind = RT_GIT_OP_FILE,
                                .path = cases[i].path,
                                .path_len = cases[i].len,
                                .data = "x",
                                .len = 1 };
        struct rt_git_op mv = { .kind = RT_GIT_OP_RENAME,
                                .path = "ok.txt",
                                .old_path = cases[i].path,
                                .old_path_len = cases[i].len };
        is_int(commit(&op, 1, NULL, &res, &err), -EINVAL, cases[i].why);
        is_int(commit(&mv, 1, NULL, &res, &err), -EINVAL, "also as a rename source");
    }
    if (longp) {
        memset(longp, 'a', RT_GIT_PATH_MAX + 1);
        longp[RT_GIT_PATH_MAX + 1] = '\0';
        struct rt_git_op op = FILE_OP(longp, "x");
        is_int(commit(&op, 1, NULL, &res, &err), -EINVAL, "a path over RT_GIT_PATH_MAX");
        longp[RT_GIT_PATH_MAX] = '\0';
        is_int(rt_git_path_check(longp, RT_GIT_PATH_MAX, &err), 0, "a path at the limit is fine");
        free(longp);
    }
    {
        struct rt_git_op op = { .kind = RT_GIT_OP_DELETE_FOLDER, .path = "/" };
        is_int(commit(&op, 1, NULL, &res, &err), -EINVAL, "deleting the root folder");
    }
    is_int(rt_git_path_check("a/.github/x.yml", 15, &err), 0, ".github is not .git");
    is_int(rt_git_path_check("a/b..c/.d", 9, &err), 0, "dots inside names are fine");
    is_str(head(), before, "main did not move");
}

static void test_empty_and_race(void)
{
    struct rt_err err = { 0 };
    struct rt_git_commit_result res = { 0 };
    struct rt_git_op same[] = { FILE_OP("main.py", "print(2)\n") };
    struct rt_git_commit_req req = { .summary = "same again", .ops = same, .n_ops = 1 };
    char before[RT_GIT_SHA_LEN + 1], lock[PATH_MAX + 64];
    struct git g;
    int fd;

    memcpy(before, head(), sizeof(before));
    /* Inherited GIT_* variables must not send the commit elsewhere. */
    (void) setenv("GIT_DIR", "/nonexistent", 1);
    (void) setenv("GIT_INDEX_FILE", "/nonexistent/index", 1);
    is_int(rt_git_commit(bare, &req, &res, &err), 0,
           "re-uploading an unchanged file makes a commit, as on the Hub");
    (void) unsetenv("GIT_DIR");
    (void) unsetenv("GIT_INDEX_FILE");
    ok(!res.changed, "reported as not changing the tree");
    is_str(res.parent, before, "on top of the old head");
    memcpy(before, head(), sizeof(before));
    req.refuse_empty = true;
    is_int(rt_git_commit(bare, &req, &res, &err), -ENODATA, "refused when the caller asks");
    is_str(head(), before, "main stays");
    req.refuse_empty = false;
    req.n_ops = 0;
    is_int(rt_git_commit(bare, &req, &res, &err), 0, "a commit with no operation is allowed");
    memcpy(before, head(), sizeof(before));

    /* A push holding the ref lock at the moment of our update. */
    (void) snprintf(lock, sizeof(lock), "%s/refs/heads/main.lock", bare);
    fd = open(lock, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    req.n_ops = 1;
    same[0].data = "print(3)\n";
    is_int(rt_git_commit(bare, &req, &res, &err), -EAGAIN, "a locked branch is EAGAIN");
    if (fd >= 0)
        (void) close(fd);
    (void) unlink(lock);
    is_str(head(), before, "main stays");

    /* A push that moved the branch after we read it. */
    if (git_init(&g, bare, NULL, NULL, &err) == 0) {
        is_int(move_branch(&g, "refs/heads/main", "main", before, first, &err), -EAGAIN,
               "a branch that moved since it was read is EAGAIN");
        ok(strstr(err.msg, "moved to") != NULL, "saying it moved ('%s')", err.msg);
        is_int(move_branch(&g, "refs/heads/fresh", "fresh", before, first, &err), -EAGAIN,
               "so is one that vanished");
        git_done(&g);
    }
    is_str(head(), before, "main stays");
}

/* With a store given, a pointer is committed only to an object that was uploaded. */
static void test_lfs_checked(void)
{
    static const char data[] = "0123456789";
    struct rt_err err = { 0 };
    struct rt_git_commit_result res = { 0 };
    struct rt_lfs *store = NULL;
    struct rt_lfs_writer *w = NULL;
    char oid[RT_SHA256_HEX_LEN], missing[RT_SHA256_HEX_LEN], before[RT_GIT_SHA_LEN + 1];
    struct rt_git_op op = {
        .kind = RT_GIT_OP_LFS_FILE, .path = "w.bin", .lfs_oid = oid, .lfs_size = 10
    };
    struct rt_git_commit_req req = { .summary = "lfs", .ops = &op, .n_ops = 1 };

    rt_sha256_hex(data, 10, oid);
    rt_sha256_hex("nobody uploaded this", 20, missing);
    if (rt_lfs_open(tmp, 0, &store, &err) < 0 ||
        rt_lfs_writer_start(store, oid, 10, &w, &err) < 0 ||
        rt_lfs_writer_write(w, data, 10, &err) < 0 || rt_lfs_writer_finish(w, &err) < 0) {
        ok(0, "store an LFS object: %s", err.msg);
        rt_lfs_writer_free(w);
        rt_lfs_free(store);
        return;
    }
    rt_lfs_writer_free(w);
    memcpy(before, head(), sizeof(before));
    req.lfs = store;
    op.lfs_oid = missing;
    is_int(rt_git_commit(bare, &req, &res, &err), -ENOENT, "a pointer to a missing object");
    ok(strstr(err.msg, "was not uploaded") != NULL, "says it was not uploaded");
    op.lfs_oid = oid;
    op.lfs_size = 11;
    is_int(rt_git_commit(bare, &req, &res, &err), -EINVAL, "a pointer with the wrong size");
    is_str(head(), before, "neither moved main");
    op.lfs_size = 10;
    is_int(rt_git_commit(bare, &req, &res, &err), 0, "a pointer to a stored object commits");
    rt_lfs_free(store);
}

static void test_list_files(void)
{
    struct rt_err err = { 0 };
    struct rt_git_file_list l = { 0 };
    const struct rt_git_file *f;
    char h[RT_GIT_SHA_LEN + 1];
    struct rt_git_commit_result res = { 0 };
    char text[300];

    memset(text, 'x', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    {
        struct rt_git_op op = FILE_OP("notes.txt", text);
        is_int(commit(&op, 1, NULL, &res, &err), 0, "add a 299-byte text file");
    }
    memcpy(h, head(), sizeof(h));
    is_int(rt_git_list_files(bare, h, 0, &l, &err), 0, "list the files of main");
    is_int(l.n, 12, "every file");
    ok(l.n && strcmp(l.files[0].path, "deeper/later.txt") == 0, "sorted by path");
    f = rt_git_file_list_find(&l, "model.bin");
    ok(f && f->lfs, "model.bin is recognised as LFS");
    if (f) {
        is_str(f->lfs_oid, weights_oid, "with its oid");
        is_int(f->size, 25, "the size is the object's");
        ok(f->blob_size > 100 && f->blob_size < 200, "the blob is the pointer");
    }
    f = rt_git_file_list_find(&l, "notes.txt");
    ok(f && !f->lfs && f->size == 299, "a plain text file is not LFS");
    f = rt_git_file_list_find(&l, "run.sh");
    ok(f && f->mode == 0100755 && strlen(f->blob_id) == 40, "modes and blob ids are listed");
    ok(rt_git_file_list_find(&l, "nope") == NULL, "a missing path is not found");
    rt_git_file_list_done(&l);
    is_int(rt_git_list_files(bare, h, 3, &l, &err), -EFBIG, "more files than the cap is EFBIG");
    is_int(rt_git_list_files(bare, "main", 0, &l, &err), -EINVAL, "only commit ids are listed");
    is_int(rt_git_list_files(bare, "0123456789012345678901234567890123456789", 0, &l, &err),
           -ENOENT, "an unknown commit is ENOENT");
    ok(l.n == 0 && l.files == NULL, "and the list stays empty");
}

/* What huggingface_hub's upload_folder does, end to end on the library: preupload sorts
 * the files, the binary goes to the LFS store, the text comes base64-encoded in the
 * commit, and a checkout with the LFS content exported has the original bytes. */
static void test_client_flow(void)
{
    static const unsigned char png[] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13 };
    static const char b64_app[] = "aW1wb3J0IGdyYWRpbwo="; /* "import gradio\n" */
    struct rt_err err = { 0 };
    struct rt_git_commit_result res = { 0 };
    struct rt_git_file_list l = { 0 };
    struct rt_lfs *store = NULL;
    struct rt_lfs_writer *w = NULL;
    unsigned char *app = NULL;
    size_t app_len = 0;
    char oid[RT_SHA256_HEX_LEN], repo[PATH_MAX + 16], dest[PATH_MAX + 16], buf[64];
    const struct rt_git_file *f;
    int dfd, fd;
    ssize_t n;

    (void) snprintf(repo, sizeof(repo), "%s/flow.git", tmp);
    (void) snprintf(dest, sizeof(dest), "%s/flow-co", tmp);
    is_int(rt_git_preupload_mode("logo.png", sizeof(png), png, sizeof(png), NULL),
           RT_GIT_UPLOAD_LFS, "preupload: the PNG goes to LFS");
    is_int(rt_git_preupload_mode("app.py", 14, "import gradio\n", 14, NULL), RT_GIT_UPLOAD_REGULAR,
           "preupload: app.py is regular");
    rt_sha256_hex(png, sizeof(png), oid);
    if (rt_git_init_bare(repo, 0, &err) < 0 || rt_lfs_open(tmp, 0, &store, &err) < 0 ||
        rt_lfs_writer_start(store, oid, sizeof(png), &w, &err) < 0 ||
        rt_lfs_writer_write(w, png, sizeof(png), &err) < 0 || rt_lfs_writer_finish(w, &err) < 0 ||
        rt_git_base64_decode(b64_app, strlen(b64_app), RT_GIT_LFS_THRESHOLD, &app, &app_len, &err) <
            0) {
        ok(0, "set up the flow: %s", err.msg);
        rt_lfs_writer_free(w);
        rt_lfs_free(store);
        free(app);
        return;
    }
    rt_lfs_writer_free(w);
    {
        struct rt_git_op ops[] = {
            { .kind = RT_GIT_OP_FILE, .path = "app.py", .data = app, .len = app_len },
            { .kind = RT_GIT_OP_LFS_FILE,
              .path = "static/logo.png",
              .lfs_oid = oid,
              .lfs_size = sizeof(png) },
        };
        struct rt_git_commit_req req = {
            .summary = "Upload folder using huggingface_hub", .ops = ops, .n_ops = 2, .lfs = store
        };
        is_int(rt_git_commit(repo, &req, &res, &err), 0, "commit both");
    }
    is_int(rt_git_list_files(repo, res.commit, 0, &l, &err), 0, "list the commit");
    f = rt_git_file_list_find(&l, "static/logo.png");
    ok(f && f->lfs && f->size == sizeof(png) && strcmp(f->lfs_oid, oid) == 0,
       "the PNG is listed as LFS with its real size and oid");
    (void) mkdir(dest, 0755);
    is_int(rt_git_checkout(repo, res.commit, dest, NULL, NULL, &err), 0, "check it out");
    (void) snprintf(buf, sizeof(buf), "static");
    dfd = openat(AT_FDCWD, dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    fd = dfd >= 0 ? openat(dfd, buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    is_int(fd >= 0 && f ? rt_lfs_export(store, f->lfs_oid, fd, "logo.png", 0644, &err) : -1, 0,
           "export the LFS content over the pointer");
    if (fd >= 0)
        (void) close(fd);
    if (dfd >= 0)
        (void) close(dfd);
    (void) snprintf(repo, sizeof(repo), "%s/static/logo.png", dest);
    fd = open(repo, O_RDONLY | O_CLOEXEC);
    n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
    if (fd >= 0)
        (void) close(fd);
    ok(n == (ssize_t) sizeof(png) && memcmp(buf, png, sizeof(png)) == 0,
       "the checkout holds the PNG's bytes");
    rt_git_file_list_done(&l);
    rt_lfs_free(store);
    free(app);
}

/* Enough files to grow the tables many times, in one batch of git processes. */
static void test_many_files(void)
{
    enum { N = 3000 };
    struct rt_err err = { 0 };
    struct rt_git_commit_result res = { 0 };
    struct rt_git_file_list l = { 0 };
    struct rt_git_op *ops = calloc(N, sizeof(*ops));
    char(*names)[32] = calloc(N, sizeof(*names));
    char repo[PATH_MAX + 16];
    struct rt_git_commit_req req = { .summary = "many", .ops = ops, .n_ops = N };
    uint64_t t0 = rt_now_ns();

    if (!ops || !names) {
        ok(0, "allocate %d operations", N);
        free(ops);
        free(names);
        return;
    }
    (void) snprintf(repo, sizeof(repo), "%s/many.git", tmp);
    for (int i = 0; i < N; i++) {
        (void) snprintf(names[i], sizeof(names[i]), "%s/d%d/f%d.txt", i % 2 ? "odd" : "even",
                        i % 50, i);
        ops[i] = (struct rt_git_op){
            .kind = RT_GIT_OP_FILE, .path = names[i], .data = names[i], .len = strlen(names[i])
        };
    }
    is_int(rt_git_init_bare(repo, 0, &err), 0, "init a second repository");
    is_int(rt_git_commit(repo, &req, &res, &err), 0, "commit 3000 files at once");
    printf("# 3000 files committed in %.2f s\n", (double) (rt_now_ns() - t0) / 1e9);
    ops[0] = (struct rt_git_op){ .kind = RT_GIT_OP_DELETE_FOLDER, .path = "odd" };
    req.n_ops = 1;
    is_int(rt_git_commit(repo, &req, &res, &err), 0, "delete the folder holding half of them");
    is_int(rt_git_list_files(repo, res.commit, 0, &l, &err), 0, "list what is left");
    is_int(l.n, N / 2, "exactly the other half");
    ok(l.n && strncmp(l.files[0].path, "even/", 5) == 0, "all under even/");
    rt_git_file_list_done(&l);
    free(ops);
    free(names);
}

static void test_preupload(void)
{
    static const char bin[] = { 'P', 'K', 3, 4, 0, 0, 1 };
    static const char latin1[] = "caf\xe9 au lait";
    static const char cut[] = "na\xc3"; /* a 2-byte UTF-8 character cut by the sample end */
    const char *attrs = "*.png filter=lfs diff=lfs merge=lfs -text\n"
                        "# a comment\n"
                        "/top.dat filter=lfs\n"
                        "docs/*.md filter=lfs\n"
                        "**/data/*.csv filter=lfs\n"
                        "big.bin -filter\n"
                        "nested/ filter=lfs\n";
    char *hostile = malloc(1001);

    is_int(rt_git_preupload_mode("app.py", 12, "print('hi')\n", 12, NULL), RT_GIT_UPLOAD_REGULAR,
           "text is regular");
    is_int(rt_git_preupload_mode("x.zip", sizeof(bin), bin, sizeof(bin), NULL), RT_GIT_UPLOAD_LFS,
           "a NUL byte makes it binary: LFS");
    is_int(rt_git_preupload_mode("a.txt", 13, latin1, 13, NULL), RT_GIT_UPLOAD_LFS,
           "invalid UTF-8 is binary");
    is_int(rt_git_preupload_mode("a.txt", 10, "h\xc3\xa9llo", 6, NULL), RT_GIT_UPLOAD_REGULAR,
           "valid UTF-8 is text");
    is_int(rt_git_preupload_mode("a.txt", 600, cut, 3, NULL), RT_GIT_UPLOAD_REGULAR,
           "a character cut by the end of a partial sample is forgiven");
    is_int(rt_git_preupload_mode("a.txt", 3, cut, 3, NULL), RT_GIT_UPLOAD_LFS,
           "but not at the real end of the file");
    is_int(rt_git_preupload_mode("log.txt", RT_GIT_LFS_THRESHOLD + 1, "text", 4, NULL),
           RT_GIT_UPLOAD_LFS, "over 10 MiB is LFS");
    is_int(rt_git_preupload_mode("log.txt", RT_GIT_LFS_THRESHOLD, "text", 4, NULL),
           RT_GIT_UPLOAD_REGULAR, "exactly 10 MiB is still regular");
    is_int(rt_git_preupload_mode("x.png", 0, "", 0, attrs), RT_GIT_UPLOAD_REGULAR,
           "an empty file is always regular");
    is_int(rt_git_preupload_mode("img/x.png", 10, "image data", 10, attrs), RT_GIT_UPLOAD_LFS,
           "a .gitattributes pattern makes text LFS");
    ok(rt_git_attributes_lfs(attrs, "top.dat"), "an anchored pattern matches at the root");
    ok(!rt_git_attributes_lfs(attrs, "sub/top.dat"), "and only there");
    ok(rt_git_attributes_lfs(attrs, "docs/a.md"), "a pattern with a folder");
    ok(!rt_git_attributes_lfs(attrs, "docs/x/a.md"), "'*' does not cross '/'");
    ok(rt_git_attributes_lfs(attrs, "data/x.csv"), "'**/' matches no folder");
    ok(rt_git_attributes_lfs(attrs, "a/b/data/x.csv"), "and several");
    ok(!rt_git_attributes_lfs(attrs, "nested/x"), "folder-only patterns match no file");
    ok(!rt_git_attributes_lfs("*.bin filter=lfs\nbig.bin -filter\n", "big.bin"),
       "a later line unsets the filter");
    ok(rt_git_attributes_lfs("*.bin filter=lfs\nbig.bin -filter\n", "small.bin"),
       "other files keep it");
    ok(!rt_git_attributes_lfs("*.bin diff=lfs\n", "x.bin"), "only filter=lfs counts");
    ok(rt_git_attributes_lfs("f[0-9].bin filter=lfs\n", "f7.bin"), "classes");
    ok(!rt_git_attributes_lfs("f[!0-9].bin filter=lfs\n", "f7.bin"), "negated classes");
    ok(rt_git_attributes_lfs("a?c filter=lfs\n", "abc"), "'?'");
    ok(rt_git_attributes_lfs(rt_git_default_gitattributes, "model.safetensors"),
       "the Hub's defaults send weights to LFS");
    ok(rt_git_attributes_lfs(rt_git_default_gitattributes, "saved_model/v1/variables/x"),
       "saved_model/**/* included");
    ok(rt_git_attributes_lfs(rt_git_default_gitattributes, "runs/events.out.tfevents.1"),
       "*tfevents* included");
    ok(!rt_git_attributes_lfs(rt_git_default_gitattributes, "app.py"), "but not code");
    if (hostile) {
        char pat[128];
        uint64_t t0 = rt_now_ns();
        memset(hostile, 'a', 1000);
        hostile[1000] = '\0';
        (void) snprintf(pat, sizeof(pat), "%s filter=lfs\n",
                        "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b");
        ok(!rt_git_attributes_lfs(pat, hostile), "a backtracking-hostile pattern does not match");
        ok(rt_now_ns() - t0 < 1000000000ULL, "and answers within a second");
        free(hostile);
    }
}

static void test_gitignore(void)
{
    const char *rules = "# build output\n"
                        "*.pyc\n"
                        "build/\n"
                        "/secret.txt\n"
                        "*.log\n"
                        "!keep.log\n"
                        "logs/**/debug.txt\n"
                        "cache/\n"
                        "!cache/wanted.txt\n"
                        "trailing.txt   \n"
                        "\\#hash\n";

    ok(rt_git_ignored(rules, "a/b/x.pyc"), "a basename pattern matches at any depth");
    ok(rt_git_ignored(rules, "build/x.o"), "a folder pattern ignores what is inside");
    ok(rt_git_ignored(rules, "src/build/x.o"), "at any depth");
    ok(!rt_git_ignored(rules, "build"), "but not a file of that name");
    ok(rt_git_ignored(rules, "secret.txt"), "an anchored pattern at the root");
    ok(!rt_git_ignored(rules, "docs/secret.txt"), "and only there");
    ok(rt_git_ignored(rules, "app.log"), "*.log");
    ok(!rt_git_ignored(rules, "keep.log"), "re-included by '!'");
    ok(rt_git_ignored(rules, "logs/debug.txt") && rt_git_ignored(rules, "logs/a/b/debug.txt"),
       "'**' spans zero or more folders");
    ok(rt_git_ignored(rules, "cache/wanted.txt"), "nothing re-included inside an ignored folder");
    ok(rt_git_ignored(rules, "trailing.txt"), "trailing blanks do not count");
    ok(rt_git_ignored(rules, "#hash"), "an escaped '#' is a pattern");
    ok(!rt_git_ignored(rules, "app.py"), "other files are kept");
    ok(!rt_git_ignored(NULL, "x.pyc"), "no .gitignore ignores nothing");
}

static size_t b64_encode(const unsigned char *in, size_t len, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = 0;

    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t) in[i] << 16 | (i + 1 < len ? (uint32_t) in[i + 1] << 8 : 0) |
                     (i + 2 < len ? in[i + 2] : 0);
        out[n++] = a[v >> 18 & 63];
        out[n++] = a[v >> 12 & 63];
        out[n++] = i + 1 < len ? a[v >> 6 & 63] : '=';
        out[n++] = i + 2 < len ? a[v & 63] : '=';
    }
    out[n] = '\0';
    return n;
}

static void test_base64(void)
{
    struct rt_err err = { 0 };
    unsigned char *out = NULL, all[256];
    char enc[400];
    size_t len = 0, n;

    is_int(rt_git_base64_decode("aGVsbG8=", 8, 100, &out, &len, &err), 0, "decode 'hello'");
    is_str((char *) out, "hello", "the bytes");
    free(out);
    out = NULL;
    is_int(rt_git_base64_decode("", 0, 100, &out, &len, &err), 0, "empty decodes");
    is_int(len, 0, "to nothing");
    free(out);
    out = NULL;
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char) i;
    for (size_t k = 254; k <= 256; k++) {
        n = b64_encode(all, k, enc);
        is_int(rt_git_base64_decode(enc, n, 1000, &out, &len, &err), 0, "every byte value");
        ok(len == k && out && memcmp(out, all, k) == 0, "round trip of %zu bytes", k);
        free(out);
        out = NULL;
    }
    is_int(rt_git_base64_decode("aGVsbG8", 7, 100, &out, &len, &err), -EINVAL, "missing padding");
    is_int(rt_git_base64_decode("aGVs bG8=", 9, 100, &out, &len, &err), -EINVAL, "whitespace");
    is_int(rt_git_base64_decode("aGVsbG9=", 8, 100, &out, &len, &err), -EINVAL, "stray bits");
    is_int(rt_git_base64_decode("aG=sbG8=", 8, 100, &out, &len, &err), -EINVAL, "inner padding");
    is_int(rt_git_base64_decode("a===", 4, 100, &out, &len, &err), -EINVAL, "three '='");
    is_int(rt_git_base64_decode("aGVs-G8=", 8, 100, &out, &len, &err), -EINVAL, "url alphabet");
    is_str(err.msg, "invalid base64 at byte 4", "the offset is named");
    is_int(rt_git_base64_decode("aGVsbG8=", 8, 4, &out, &len, &err), -EFBIG, "over the cap");
    ok(out == NULL, "nothing returned on failure");
}

int main(void)
{
    struct rt_err err;

    tap_start();
    (void) snprintf(tmp, sizeof(tmp), "/tmp/spt-commit-test-XXXXXX");
    if (!mkdtemp(tmp))
        return 1;
    (void) snprintf(bare, sizeof(bare), "%s/demo.git", tmp);
    (void) snprintf(work, sizeof(work), "%s/work", tmp);
    (void) mkdir(work, 0700);
    (void) setenv("TMPDIR", work, 1);
    test_first_commit();
    test_edit_commits();
    test_refusals_leave_main();
    test_hostile_paths();
    test_empty_and_race();
    test_lfs_checked();
    test_list_files();
    test_many_files();
    test_client_flow();
    test_preupload();
    test_gitignore();
    test_base64();
    is_int(count_entries(work), 0, "every work directory was removed");
    (void) rt_run_capture((const char *const[]){ "rm", "-rf", tmp, NULL }, NULL, NULL, 0, NULL, 0,
                          &err);
    return tap_done();
}

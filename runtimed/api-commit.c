/* The Hub's commit API for Space repositories: POST …/preupload/REV (regular or LFS for
 * each file) and POST …/commit/REV in NDJSON (files inline, LFS pointers, deletions,
 * parentCommit).  Each commit is a real git commit on the branch, recorded as a revision
 * and built exactly like a push. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-repo.h"
#include "builder.h"
#include "cleanup.h"
#include "lifecycle.h"
#include "log.h"
#include "banned.h"

/* One commit's request body: inline files are base64 in it, so it is larger than any
 * JSON body the other endpoints take.  Files over RT_GIT_LFS_THRESHOLD go through LFS. */
#define COMMIT_BODY_MAX (256ULL << 20)
#define GITFILE_MAX (1 << 20) /* .gitattributes / .gitignore read for preupload */

/* Reads the whole body, at most @max bytes, growing the buffer as it comes (a chunked
 * body has no length to size it by).  Returns 0, or -1 after replying. */
static int read_body(struct rt_req *r, uint64_t max, char **ret, size_t *ret_len)
{
    long long declared = r->ri->content_length;
    size_t cap = declared >= 0 ? (size_t) declared : (64u << 10), got = 0;
    _cleanup_free_ char *buf = NULL;

    if (declared > (long long) max) {
        mg_disable_connection_keep_alive(r->conn);
        return rt__reply_error(r, 413, "request body larger than %llu bytes",
                               (unsigned long long) max),
               -1;
    }
    buf = malloc(cap + 1);
    if (!buf)
        return rt__reply_error(r, 413, "request body too large"), -1;
    for (;;) {
        int n;
        if (got == cap) {
            char *bigger;
            if (declared >= 0 || cap > max)
                break;
            cap = cap * 2 > max + 1 ? (size_t) max + 1 : cap * 2;
            if (!(bigger = realloc(buf, cap + 1)))
                return rt__reply_error(r, 413, "request body too large"), -1;
            buf = bigger;
        }
        n = mg_read(r->conn, buf + got, cap - got);
        if (n <= 0)
            break;
        got += (size_t) n;
    }
    if (got > max) {
        mg_disable_connection_keep_alive(r->conn);
        return rt__reply_error(r, 413, "request body larger than %llu bytes",
                               (unsigned long long) max),
               -1;
    }
    if (declared >= 0 && got < (size_t) declared) {
        mg_disable_connection_keep_alive(r->conn);
        return rt__reply_error(r, 400, "request body shorter than its Content-Length"), -1;
    }
    buf[got] = '\0';
    *ret = TAKE_PTR(buf);
    *ret_len = got;
    return 0;
}

/* --- commit ---------------------------------------------------------------------------- */

struct commit_parse {
    json_t *lines;         /* the parsed NDJSON lines, which the ops point into */
    struct rt_git_op *ops; /* one per operation line */
    unsigned char **bufs;  /* decoded contents, one per op (NULL when none) */
    size_t n_ops;
    const char *summary, *description, *parent;
};

static void commit_parse_done(struct commit_parse *p)
{
    for (size_t i = 0; i < p->n_ops; i++)
        free(p->bufs[i]);
    free(p->bufs);
    free(p->ops);
    json_decref(p->lines);
}

static int str_of(struct rt_req *r, json_t *v, const char *key, bool required, const char **ret,
                  size_t *ret_len)
{
    json_t *f = json_object_get(v, key);

    if (!f || json_is_null(f)) {
        if (required)
            return rt__reply_error(r, 400, "commit: '%s' is required", key), -1;
        return 0;
    }
    if (!json_is_string(f))
        return rt__reply_error(r, 400, "commit: '%s' must be a string", key), -1;
    *ret = json_string_value(f);
    if (ret_len)
        *ret_len = json_string_length(f);
    return 1;
}

static int parse_op(struct rt_req *r, const char *key, json_t *v, struct rt_git_op *op,
                    unsigned char **buf)
{
    const char *enc = NULL, *content = NULL, *algo = NULL;
    size_t clen = 0;
    struct rt_err err = { 0 };
    int rc;

    if (str_of(r, v, "path", true, &op->path, &op->path_len) < 0 ||
        str_of(r, v, "oldPath", false, &op->old_path, &op->old_path_len) < 0)
        return -1;
    if (strcmp(key, "deletedFile") == 0 || strcmp(key, "deletedFolder") == 0 ||
        strcmp(key, "deletedEntry") == 0) {
        op->kind = key[7] == 'F' && key[8] == 'i'   ? RT_GIT_OP_DELETE_FILE
                   : key[7] == 'F' && key[8] == 'o' ? RT_GIT_OP_DELETE_FOLDER
                                                    : RT_GIT_OP_DELETE_ENTRY;
        op->old_path = NULL;
        return 0;
    }
    if (strcmp(key, "lfsFile") == 0) {
        json_t *size = json_object_get(v, "size");
        op->kind = RT_GIT_OP_LFS_FILE;
        if (str_of(r, v, "oid", true, &op->lfs_oid, NULL) < 0 ||
            str_of(r, v, "algo", false, &algo, NULL) < 0)
            return -1;
        if (algo && strcmp(algo, "sha256") != 0)
            return rt__reply_error(r, 400, "commit: lfsFile algo must be sha256"), -1;
        if (!json_is_integer(size) || json_integer_value(size) < 0)
            return rt__reply_error(r, 400, "commit: lfsFile size must be an integer >= 0"), -1;
        op->lfs_size = (uint64_t) json_integer_value(size);
        return 0;
    }
    if (strcmp(key, "file") != 0)
        return rt__reply_error(r, 400, "commit: unknown line key '%.40s'", key), -1;
    if (str_of(r, v, "content", false, &content, &clen) < 0 ||
        str_of(r, v, "encoding", false, &enc, NULL) < 0)
        return -1;
    if (!content) {
        if (!op->old_path)
            return rt__reply_error(r, 400, "commit: file '%.200s' has no content", op->path), -1;
        op->kind = RT_GIT_OP_RENAME;
        return 0;
    }
    op->kind = RT_GIT_OP_FILE;
    if (!enc || strcmp(enc, "base64") == 0) {
        size_t n;
        rc = rt_git_base64_decode(content, clen, RT_GIT_LFS_THRESHOLD, buf, &n, &err);
        if (rc == -EFBIG)
            return rt__reply_error(r, 413,
                                   "commit: file '%.200s' is over 10 MiB: upload it "
                                   "through LFS",
                                   op->path),
                   -1;
        if (rc < 0)
            return rt__reply_error(r, 400, "commit: file '%.200s': %s", op->path, err.msg), -1;
        op->data = *buf;
        op->len = n;
    } else if (strcmp(enc, "utf-8") == 0 || strcmp(enc, "utf8") == 0) {
        op->data = content;
        op->len = clen;
    } else {
        return rt__reply_error(r, 400, "commit: unknown encoding '%.40s'", enc), -1;
    }
    return 0;
}

static int parse_ndjson(struct rt_req *r, char *body, size_t len, struct commit_parse *p)
{
    size_t cap = 0;

    p->lines = json_array();
    if (!p->lines)
        return rt__reply_error(r, 503, "out of memory"), -1;
    for (size_t off = 0; off < len;) {
        char *nl = memchr(body + off, '\n', len - off);
        size_t end = nl ? (size_t) (nl - body) : len, n = end - off;
        json_error_t jerr;
        const char *key;
        json_t *line, *v;

        if (n == 0 || (n == 1 && body[off] == '\r')) {
            off = end + 1;
            continue;
        }
        line = json_loadb(body + off, n, JSON_REJECT_DUPLICATES, &jerr);
        off = end + 1;
        if (!line)
            return rt__reply_error(r, 400, "commit: malformed NDJSON line: %s", jerr.text), -1;
        if (json_array_append_new(p->lines, line) < 0)
            return rt__reply_error(r, 503, "out of memory"), -1;
        key = json_string_value(json_object_get(line, "key"));
        v = json_object_get(line, "value");
        if (!key || !json_is_object(v))
            return rt__reply_error(r, 400, "commit: each line needs 'key' and an object 'value'"),
                   -1;
        if (strcmp(key, "header") == 0) {
            if (str_of(r, v, "summary", true, &p->summary, NULL) < 0 ||
                str_of(r, v, "description", false, &p->description, NULL) < 0 ||
                str_of(r, v, "parentCommit", false, &p->parent, NULL) < 0)
                return -1;
            continue;
        }
        if (p->n_ops == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct rt_git_op *ops = reallocarray(p->ops, ncap, sizeof(*ops));
            unsigned char **bufs;
            if (!ops)
                return rt__reply_error(r, 503, "out of memory"), -1;
            p->ops = ops;
            bufs = reallocarray(p->bufs, ncap, sizeof(*bufs));
            if (!bufs)
                return rt__reply_error(r, 503, "out of memory"), -1;
            p->bufs = bufs;
            cap = ncap;
        }
        memset(&p->ops[p->n_ops], 0, sizeof(p->ops[0]));
        p->bufs[p->n_ops] = NULL;
        p->n_ops++;
        if (parse_op(r, key, v, &p->ops[p->n_ops - 1], &p->bufs[p->n_ops - 1]) < 0)
            return -1;
    }
    if (!p->summary || !*p->summary)
        return rt__reply_error(r, 400, "commit: a header line with a summary is required"), -1;
    return 0;
}

static int reply_commit_error(struct rt_req *r, int rc, const struct rt_err *err)
{
    switch (-rc) {
    case EINVAL:
        return rt__reply_error(r, 400, "%s", err->msg);
    case ENOENT:
        return rt__reply_coded(r, 404, "EntryNotFound", "A file with this name doesn't exist: %s",
                               err->msg);
    case EEXIST:
    case EAGAIN:
        return rt__reply_error(r, 409, "%s", err->msg);
    case EFBIG:
        return rt__reply_error(r, 413, "%s", err->msg);
    case ESTALE:
        return rt__reply_error(r, 412, "%s", err->msg);
    default:
        return rt__reply_err(r, rc, err);
    }
}

/* What a push does after it lands (as api-git.c's after_push): a revision row, BUILDING
 * shown at once, and a build queued. */
static void after_commit(struct rt_req *r, const struct rt_space *sp, const char *sha)
{
    struct rt_log_ctx ctx = { .app = sp->host, .action = "commit" };
    bool running = r->api->lc && rt_lifecycle_is_running(r->api->lc, sp->id);
    struct rt_err err = { 0 };
    struct rt_space s;

    rt_log(RT_LOG_INFO, &ctx, "main of '%s/%s' is now %.12s (commit API)", sp->owner, sp->name,
           sha);
    rt_store_lock(r->st);
    if (rt_store_space_get(r->st, sp->owner, sp->name, &s, &err) == 0 && s.id == sp->id) {
        (void) rt_store_revision_add(r->st, s.id, sha, "refs/heads/main", &err);
        if (r->api->builder) {
            (void) snprintf(s.stage, sizeof(s.stage), "%s",
                            running ? "RUNNING_BUILDING" : "BUILDING");
            s.error[0] = '\0';
            (void) rt_store_space_update(r->st, &s, &err);
        }
    }
    rt_store_unlock(r->st);
    if (r->api->builder && rt_builder_enqueue(r->api->builder, sp->id, sha, false, &err) < 0)
        rt_log(RT_LOG_ERR, &ctx, "queue the build of %.12s: %s", sha, err.msg);
}

int rt__api_commit(struct rt_req *r, const struct rt_space *s, const char *rev)
{
    _cleanup_(commit_parse_done) struct commit_parse p = { 0 };
    struct rt_git_commit_result res = { 0 };
    char dir[RT_REPO_DIR_MAX], sha[RT_GIT_SHA_LEN + 1], base[300], email[RT_NAME_SIZE + 32];
    _cleanup_free_ char *body = NULL;
    struct rt_lfs *lfs = NULL;
    struct rt_err err = { 0 };
    size_t len;
    int rc;

    if (rt__query_true(r, "create_pr"))
        return rt__reply_error(r, 400, "pull requests are not supported for Spaces here");
    rt__repo_dir(r->api, s, dir, sizeof(dir));
    if (rt__repo_ensure(r->api, s, &err) < 0)
        return rt__reply_err(r, -EIO, &err);
    if (rt__repo_rev(r, dir, rev, sha) < 0)
        return r->status;
    if (strcmp(rev, "main") != 0)
        return rt__reply_coded(r, 404, "RevisionNotFound",
                               "commits go to 'main' (the branch a Space runs)");
    if (read_body(r, COMMIT_BODY_MAX, &body, &len) < 0 || parse_ndjson(r, body, len, &p) < 0)
        return r->status;
    if ((rc = rt_lfs_open_space(r->api->cfg->data_dir, s->id, s->created_at, &lfs, &err)) < 0)
        return rt__reply_err(r, rc, &err);
    (void) snprintf(email, sizeof(email), "%s@spaceport",
                    r->who.anonymous ? "anonymous" : r->who.token.user);
    struct rt_git_commit_req req = {
        .branch = "main",
        .parent_commit = p.parent,
        .summary = p.summary,
        .description = p.description,
        .author_name = r->who.anonymous ? NULL : r->who.token.user,
        .author_email = email,
        .ops = p.ops,
        .n_ops = p.n_ops,
        .max_file_bytes = r->api->cfg->max_file_size < RT_GIT_LFS_THRESHOLD
                              ? r->api->cfg->max_file_size
                              : RT_GIT_LFS_THRESHOLD,
        .lfs = lfs,
    };
    rc = rt_git_commit(dir, &req, &res, &err);
    rt_lfs_free(lfs);
    if (rc < 0)
        return reply_commit_error(r, rc, &err);
    after_commit(r, s, res.commit);
    rt__base_url(r, base, sizeof(base));
    (void) snprintf(dir, sizeof(dir), "%s/spaces/%s/%s/commit/%s", base, s->owner, s->name,
                    res.commit);
    return rt__reply_json(r, 200,
                          json_pack("{s:b, s:s, s:s, s:s}", "success", 1, "commitOid", res.commit,
                                    "commitUrl", dir, "hookOutput", ""));
}

/* --- preupload ------------------------------------------------------------------------- */

/* The text of @name at @sha, or NULL when there is none. */
static char *read_repo_text(const char *dir, const char *sha, const char *name)
{
    _cleanup_free_ char *buf = malloc(GITFILE_MAX + 1);
    struct rt_err err = { 0 };
    size_t n;

    if (!buf || !sha[0] || rt_git_read_file(dir, sha, name, buf, GITFILE_MAX + 1, &n, &err) < 0)
        return NULL;
    return TAKE_PTR(buf);
}

int rt__api_preupload(struct rt_req *r, const struct rt_space *s, const char *rev)
{
    char dir[RT_REPO_DIR_MAX], sha[RT_GIT_SHA_LEN + 1];
    _cleanup_free_ char *attrs_repo = NULL, *ignore_repo = NULL;
    struct rt_git_file_list files = { 0 };
    const char *attrs = NULL, *ignore = NULL;
    struct rt_err err = { 0 };
    json_t *body = NULL, *list, *out = NULL, *f;
    size_t i;
    int rc;

    rt__repo_dir(r->api, s, dir, sizeof(dir));
    if ((rc = rt__repo_rev(r, dir, rev, sha)) < 0)
        return r->status;
    body = rt__req_object(r, false);
    if (!body)
        return r->status;
    list = json_object_get(body, "files");
    if (!json_is_array(list)) {
        rt__reply_error(r, 400, "preupload: 'files' must be a list");
        goto out;
    }
    if (rt__field_str(r, body, "gitAttributes", false, &attrs) < 0 ||
        rt__field_str(r, body, "gitIgnore", false, &ignore) < 0)
        goto out;
    if (sha[0]) {
        if (!attrs)
            attrs = attrs_repo = read_repo_text(dir, sha, ".gitattributes");
        if (!ignore)
            ignore = ignore_repo = read_repo_text(dir, sha, ".gitignore");
        if ((rc = rt_git_list_files(dir, sha, 0, &files, &err)) < 0) {
            rt__reply_err(r, rc, &err);
            goto out;
        }
    }
    out = json_array();
    json_array_foreach(list, i, f)
    {
        const char *path = json_string_value(json_object_get(f, "path"));
        const char *sample = json_string_value(json_object_get(f, "sample"));
        json_t *size = json_object_get(f, "size"), *o;
        _cleanup_free_ unsigned char *bytes = NULL;
        const struct rt_git_file *have;
        size_t n = 0;
        enum rt_git_upload_mode mode;

        if (!path || !json_is_integer(size) || json_integer_value(size) < 0) {
            rt__reply_error(r, 400, "preupload: each file needs 'path' and an integer 'size'");
            goto out;
        }
        if (rt_git_path_check(path, json_string_length(json_object_get(f, "path")), &err) < 0) {
            rt__reply_error(r, 400, "preupload: %s", err.msg);
            goto out;
        }
        if (sample && rt_git_base64_decode(sample, strlen(sample), 4096, &bytes, &n, &err) < 0) {
            rt__reply_error(r, 400, "preupload: sample of '%.200s': %s", path, err.msg);
            goto out;
        }
        mode = rt_git_preupload_mode(path, (uint64_t) json_integer_value(size), bytes, n, attrs);
        have = rt_git_file_list_find(&files, path);
        o = json_pack("{s:s, s:s, s:b}", "path", path, "uploadMode",
                      mode == RT_GIT_UPLOAD_LFS ? "lfs" : "regular", "shouldIgnore",
                      rt_git_ignored(ignore, path));
        if (o && have)
            (void) json_object_set_new(o, "oid",
                                       json_string(have->lfs ? have->lfs_oid : have->blob_id));
        if (!o || json_array_append_new(out, o) < 0) {
            rt__reply_error(r, 503, "out of memory");
            goto out;
        }
    }
    rt__reply_json(r, 200,
                   json_pack("{s:O, s:o}", "files", out, "commitOid",
                             sha[0] ? json_string(sha) : json_null()));
out:
    json_decref(out);
    json_decref(body);
    rt_git_file_list_done(&files);
    return r->status;
}

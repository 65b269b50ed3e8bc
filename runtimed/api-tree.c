/* Listing a Space repository's files as the Hub does: GET …/tree/REV[/PATH]
 * (list_repo_files, list_repo_tree), POST …/paths-info/REV (get_paths_info), and the
 * "sha" and "siblings" of space_info. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api-repo.h"
#include "cleanup.h"
#include "spawn.h"
#include "banned.h"

#define TREE_LIST_MAX (16u << 20) /* git ls-tree output of the folders */
#define PATHS_BODY_MAX (4u << 20)
#define PATHS_MAX 1000

struct folders {
    char *out; /* "MODE tree OID\tPATH\0" records from git ls-tree -r -d -z */
    size_t len;
};

static void folders_done(struct folders *f)
{
    free(f->out);
}

/* Every folder of @sha with its tree id (list_repo_tree shows them). */
static int list_folders(const char *dir, const char *sha, struct folders *ret, struct rt_err *err)
{
    char gitdir[RT_REPO_DIR_MAX + 16];
    int rc;

    (void) snprintf(gitdir, sizeof(gitdir), "--git-dir=%s", dir);
    rc = rt_run_output((const char *const[]){ "git", gitdir, "ls-tree", "-r", "-d", "-z",
                                              "--full-tree", sha, NULL },
                       NULL, TREE_LIST_MAX, &ret->out, &ret->len, NULL, 0, err);
    if (rc < 0)
        return rc;
    if (rc != 0)
        return rt_err_set(err, EIO, "git ls-tree -d %.12s failed", sha);
    return 0;
}

/* Calls @fn for each folder record: its oid and path. */
static int folders_each(const struct folders *f,
                        int (*fn)(const char *oid, const char *path, void *), void *ud)
{
    for (size_t off = 0; off < f->len;) {
        const char *rec = f->out + off, *tab = strchr(rec, '\t'), *sp = strrchr(rec, ' ');
        size_t n = strlen(rec);
        char oid[RT_GIT_SHA_LEN + 1];

        off += n + 1;
        if (!tab || !sp || sp > tab || tab - sp - 1 != RT_GIT_SHA_LEN)
            continue;
        memcpy(oid, sp + 1, RT_GIT_SHA_LEN);
        oid[RT_GIT_SHA_LEN] = '\0';
        if (fn(oid, tab + 1, ud) < 0)
            return -1;
    }
    return 0;
}

static json_t *json_file(const struct rt_git_file *f)
{
    json_t *j = json_pack("{s:s, s:s, s:I, s:s}", "type", "file", "oid", f->blob_id, "size",
                          (json_int_t) f->size, "path", f->path);

    if (j && f->lfs)
        (void) json_object_set_new(j, "lfs",
                                   json_pack("{s:s, s:I, s:I}", "oid", f->lfs_oid, "size",
                                             (json_int_t) f->size, "pointerSize",
                                             (json_int_t) f->blob_size));
    return j;
}

static json_t *json_folder(const char *oid, const char *path)
{
    return json_pack("{s:s, s:s, s:i, s:s}", "type", "directory", "oid", oid, "size", 0, "path",
                     path);
}

/* Whether @path lies under @prefix ("" is the root): directly when !@recursive. */
static bool under(const char *path, const char *prefix, bool recursive)
{
    size_t n = strlen(prefix);
    const char *rest = path;

    if (n) {
        if (strncmp(path, prefix, n) != 0 || path[n] != '/')
            return false;
        rest = path + n + 1;
    }
    return *rest && (recursive || !strchr(rest, '/'));
}

struct tree_walk {
    json_t *out;
    const char *prefix;
    bool recursive;
    bool found; /* the prefix itself is a folder */
};

static int on_folder(const char *oid, const char *path, void *ud)
{
    struct tree_walk *w = ud;

    if (w->prefix[0] && strcmp(path, w->prefix) == 0)
        w->found = true;
    if (!under(path, w->prefix, w->recursive))
        return 0;
    return json_array_append_new(w->out, json_folder(oid, path));
}

struct paths_walk {
    json_t *out;
    char **paths;
    size_t n;
};

static int on_folder_path(const char *oid, const char *path, void *ud)
{
    struct paths_walk *w = ud;

    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->paths[i], path) == 0)
            return json_array_append_new(w->out, json_folder(oid, path));
    return 0;
}

/* Repeated "paths" fields of a form body (what httpx sends for a list). */
static int read_paths(struct rt_req *r, struct paths_walk *w, char **ret_body)
{
    long long declared = r->ri->content_length;
    size_t got = 0, cap = declared >= 0 ? (size_t) declared : PATHS_BODY_MAX + 1;
    char *body;
    json_t *j;

    if (declared > (long long) PATHS_BODY_MAX || !(body = malloc(cap + 1)))
        return rt__reply_error(r, 413, "paths-info: body too large"), -1;
    *ret_body = body;
    while (got < cap) {
        int n = mg_read(r->conn, body + got, cap - got);
        if (n <= 0)
            break;
        got += (size_t) n;
    }
    body[got] = '\0';
    w->paths = calloc(PATHS_MAX, sizeof(*w->paths));
    if (!w->paths)
        return rt__reply_error(r, 503, "out of memory"), -1;
    /* A JSON body {"paths": [...]} is accepted too. */
    j = got && body[0] == '{' ? json_loadb(body, got, 0, NULL) : NULL;
    if (j) {
        json_t *v;
        size_t i;
        json_array_foreach(json_object_get(j, "paths"), i, v)
        {
            if (w->n == PATHS_MAX || !json_is_string(v))
                break;
            if (!(w->paths[w->n] = strdup(json_string_value(v)))) {
                json_decref(j);
                return rt__reply_error(r, 503, "out of memory"), -1;
            }
            w->n++;
        }
        json_decref(j);
        return 0;
    }
    for (int i = 0; w->n < PATHS_MAX; i++) {
        char buf[RT_GIT_PATH_MAX + 1];
        int n = mg_get_var2(body, got, "paths", buf, sizeof(buf), i);
        if (n < 0)
            break;
        if (!(w->paths[w->n] = strdup(buf)))
            return rt__reply_error(r, 503, "out of memory"), -1;
        w->n++;
    }
    return 0;
}

static void paths_walk_done(struct paths_walk *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->paths[i]);
    free(w->paths);
}

int rt__api_tree(struct rt_req *r, const struct rt_space *s, const char *rev, bool paths_info)
{
    char dir[RT_REPO_DIR_MAX], sha[RT_GIT_SHA_LEN + 1], prefix[RT_GIT_PATH_MAX + 1] = "";
    _cleanup_(folders_done) struct folders folders = { 0 };
    _cleanup_(paths_walk_done) struct paths_walk pw = { 0 };
    _cleanup_free_ char *body = NULL;
    struct rt_git_file_list files = { 0 };
    struct rt_err err = { 0 };
    json_t *out = NULL;
    int rc;

    rt__repo_dir(r->api, s, dir, sizeof(dir));
    if ((rc = rt__repo_rev(r, dir, rev, sha)) < 0)
        return r->status;
    if (paths_info && read_paths(r, &pw, &body) < 0)
        return r->status;
    /* tree/REV/a/b: the rest of the path, which civetweb has decoded and we split. */
    for (int i = 5; !paths_info && i < r->nseg; i++) {
        size_t n = strlen(prefix);
        (void) snprintf(prefix + n, sizeof(prefix) - n, "%s%s", n ? "/" : "", r->seg[i]);
    }
    if (rc == 1) { /* no commit yet: an empty tree */
        if (prefix[0])
            return rt__reply_coded(r, 404, "EntryNotFound", "%s does not exist on \"%s\"", prefix,
                                   rev);
        return rt__reply_json(r, 200, json_array());
    }
    if ((rc = rt_git_list_files(dir, sha, 0, &files, &err)) < 0 ||
        (rc = list_folders(dir, sha, &folders, &err)) < 0) {
        rt_git_file_list_done(&files);
        return rt__reply_err(r, rc, &err);
    }
    out = json_array();
    if (paths_info) {
        pw.out = out;
        for (size_t i = 0; out && i < pw.n; i++) {
            const struct rt_git_file *f = rt_git_file_list_find(&files, pw.paths[i]);
            if (f)
                (void) json_array_append_new(out, json_file(f));
        }
        if (out)
            (void) folders_each(&folders, on_folder_path, &pw);
    } else {
        struct tree_walk w = { .out = out,
                               .prefix = prefix,
                               .recursive = rt__query_true(r, "recursive") };
        if (out)
            (void) folders_each(&folders, on_folder, &w);
        for (size_t i = 0; out && i < files.n; i++)
            if (under(files.files[i].path, prefix, w.recursive))
                (void) json_array_append_new(out, json_file(&files.files[i]));
        if (prefix[0] && !w.found) {
            rt_git_file_list_done(&files);
            json_decref(out);
            return rt__reply_coded(r, 404, "EntryNotFound", "%s does not exist on \"%s\"", prefix,
                                   rev);
        }
    }
    rt_git_file_list_done(&files);
    if (!out)
        return rt__reply_error(r, 503, "out of memory");
    return rt__reply_json(r, 200, out);
}

int rt__repo_add_siblings(struct rt_req *r, const struct rt_space *s, json_t *info)
{
    char dir[RT_REPO_DIR_MAX], sha[RT_GIT_SHA_LEN + 1];
    struct rt_git_file_list files = { 0 };
    struct rt_err err = { 0 };
    json_t *sib;
    /* GET /api/spaces/ID/revision/REV shows that revision's files. */
    bool at_rev = r->nseg == 5 && strcmp(r->seg[3], "revision") == 0;
    const char *rev = at_rev ? r->seg[4] : "main";
    char ref[300];

    rt__repo_dir(r->api, s, dir, sizeof(dir));
    if (strlen(rev) == RT_GIT_SHA_LEN && strspn(rev, "0123456789abcdef") == RT_GIT_SHA_LEN) {
        memcpy(sha, rev, sizeof(sha));
    } else {
        (void) snprintf(ref, sizeof(ref), "refs/heads/%.200s", rev);
        if (rt_git_resolve(dir, ref, sha, &err) < 0)
            /* main without a commit yet: the siblings stay [] */
            return at_rev && strcmp(rev, "main") != 0 ? -ENOENT : 0;
    }
    if (rt_git_list_files(dir, sha, 0, &files, &err) < 0)
        return at_rev ? -ENOENT : 0;
    sib = json_array();
    for (size_t i = 0; sib && i < files.n; i++) {
        const struct rt_git_file *f = &files.files[i];
        json_t *o = json_pack("{s:s, s:I, s:s}", "rfilename", f->path, "size", (json_int_t) f->size,
                              "blobId", f->blob_id);
        if (o && f->lfs)
            (void) json_object_set_new(o, "lfs",
                                       json_pack("{s:s, s:I, s:I}", "sha256", f->lfs_oid, "size",
                                                 (json_int_t) f->size, "pointerSize",
                                                 (json_int_t) f->blob_size));
        (void) json_array_append_new(sib, o);
    }
    rt_git_file_list_done(&files);
    if (sib)
        (void) json_object_set_new(info, "siblings", sib);
    (void) json_object_set_new(info, "sha", json_string(sha));
    return 0;
}

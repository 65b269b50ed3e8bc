#include "gitcommit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "spawn.h"
#include "util.h"
#include "banned.h"

extern char **environ;

#define GIT_ERR_MAX 512
#define DEFAULT_MAX_FILES 100000
#define DEFAULT_MAX_COMMIT (1ULL << 30)
#define MESSAGE_MAX (1U << 20)
#define IDENT_MAX 256
#define BRANCH_MAX 200
#define ZERO_SHA "0000000000000000000000000000000000000000"
#define MSG_PATH_MAX 200 /* bytes of a path quoted in an error message */

/* ---- running git -------------------------------------------------------------------- */

/* One git invocation context: the repository, a private directory to run in, and an
 * environment without any inherited GIT_* variable (GIT_DIR, GIT_INDEX_FILE or
 * GIT_OBJECT_DIRECTORY from runtimed's own environment would send git elsewhere). */
struct git {
    const char *repo;
    const char *cwd;
    char **envp;
    char errline[GIT_ERR_MAX]; /* first line of the last failed run's stderr */
};

/* Set for every run: English messages (a few are matched below) and no prompt. */
static const char *const base_env[] = {
    "LC_ALL=C",
    "LANGUAGE=C",
    "GIT_TERMINAL_PROMPT=0",
    NULL,
};

static void git_done(struct git *g)
{
    free(g->envp);
    g->envp = NULL;
}

/* Whether @entry ("KEY=VALUE") sets a key that one of @list sets. */
static bool env_overridden(const char *entry, const char *const *list)
{
    size_t klen = strcspn(entry, "=");

    for (; list && *list; list++)
        if (strncmp(*list, entry, klen) == 0 && (*list)[klen] == '=')
            return true;
    return false;
}

/* @extra: "KEY=VALUE" strings the caller keeps alive while the context is used. */
static int git_init(struct git *g, const char *repo, const char *cwd, const char *const *extra,
                    struct rt_err *err)
{
    size_t n = ARRAY_SIZE(base_env), k = 0;

    memset(g, 0, sizeof(*g));
    g->repo = repo;
    g->cwd = cwd;
    for (char **e = environ; e && *e; e++)
        n++;
    for (size_t x = 0; extra && extra[x]; x++)
        n++;
    g->envp = calloc(n + 1, sizeof(char *));
    if (!g->envp)
        return rt_err_set(err, ENOMEM, "allocate git's environment");
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, "GIT_", 4) != 0 && !env_overridden(*e, base_env) &&
            !env_overridden(*e, extra))
            g->envp[k++] = *e;
    for (size_t i = 0; base_env[i]; i++)
        g->envp[k++] = (char *) base_env[i];
    for (size_t i = 0; extra && extra[i]; i++)
        g->envp[k++] = (char *) extra[i];
    g->envp[k] = NULL;
    return 0;
}

static int new_memfd(const char *name, struct rt_err *err)
{
    int fd = memfd_create(name, MFD_CLOEXEC);

    if (fd < 0)
        return rt_err_set(err, errno, "memfd_create '%s'", name);
    return fd;
}

/* Reads the whole memfd (at most @max bytes, else -EFBIG) into a new NUL-terminated
 * buffer. */
static int slurp(int fd, size_t max, char **ret, size_t *ret_len, struct rt_err *err)
{
    _cleanup_free_ char *buf = NULL;
    struct stat st;
    ssize_t n;

    if (fstat(fd, &st) < 0)
        return rt_err_set(err, errno, "stat git's output");
    if ((uint64_t) st.st_size > max)
        return rt_err_set(err, EFBIG, "git's output exceeds %zu bytes", max);
    buf = malloc((size_t) st.st_size + 1);
    if (!buf)
        return rt_err_set(err, ENOMEM, "allocate %lld bytes for git's output",
                          (long long) st.st_size);
    if (lseek(fd, 0, SEEK_SET) < 0)
        return rt_err_set(err, errno, "rewind git's output");
    n = rt_read_all(fd, buf, (size_t) st.st_size);
    if (n < 0)
        return rt_err_set(err, (int) -n, "read git's output");
    buf[n] = '\0';
    *ret_len = (size_t) n;
    *ret = TAKE_PTR(buf);
    return 0;
}

/* Runs "git --git-dir=REPO @args..." with @in as stdin.  Returns git's exit status (its
 * stdout in *ret_out when 0 and @ret_out is non-NULL, the first line of its stderr in
 * g->errline otherwise), or -errno when git could not be run. */
static int git_run(struct git *g, const char *const *args, const void *in, size_t in_len,
                   size_t max_out, char **ret_out, size_t *ret_len, struct rt_err *err)
{
    char gitdir[PATH_MAX + 16];
    const char *argv[16];
    _cleanup_close_ int in_fd = -1, out_fd = -1, err_fd = -1;
    struct rt_spawn_opts o = { 0 };
    size_t n = 0;
    pid_t pid;
    int r, status;

    (void) snprintf(gitdir, sizeof(gitdir), "--git-dir=%s", g->repo);
    argv[n++] = "git";
    argv[n++] = gitdir;
    for (size_t i = 0; args[i]; i++) {
        if (n + 1 >= ARRAY_SIZE(argv))
            return rt_err_set(err, E2BIG, "too many arguments for git %s", args[0]);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    g->errline[0] = '\0';
    if (in) {
        in_fd = new_memfd("git-in", err);
        if (in_fd < 0)
            return in_fd;
        r = rt_write_all(in_fd, in, in_len);
        if (r < 0)
            return rt_err_set(err, -r, "write git's input");
        if (lseek(in_fd, 0, SEEK_SET) < 0)
            return rt_err_set(err, errno, "rewind git's input");
    }
    out_fd = new_memfd("git-out", err);
    if (out_fd < 0)
        return out_fd;
    err_fd = new_memfd("git-err", err);
    if (err_fd < 0)
        return err_fd;
    o.argv = argv;
    o.envp = (const char *const *) g->envp;
    o.cwd = g->cwd;
    o.stdin_fd = in_fd;
    o.stdout_fd = out_fd;
    o.stderr_fd = err_fd;
    r = rt_spawn(&o, &pid, err);
    if (r < 0)
        return r;
    status = rt_spawn_wait(pid);
    if (status < 0)
        return rt_err_set(err, -status, "wait for git %s", args[0]);
    if (status != 0) {
        ssize_t len = pread(err_fd, g->errline, sizeof(g->errline) - 1, 0);
        char *nl;
        g->errline[len > 0 ? len : 0] = '\0';
        nl = strchr(g->errline, '\n');
        if (nl)
            *nl = '\0';
        if (!g->errline[0])
            (void) snprintf(g->errline, sizeof(g->errline), "exit status %d", status);
        return status;
    }
    if (ret_out) {
        r = slurp(out_fd, max_out, ret_out, ret_len, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Runs git and turns any failure into -EIO naming the command. */
static int git_ok(struct git *g, const char *const *args, const void *in, size_t in_len,
                  size_t max_out, char **ret_out, size_t *ret_len, struct rt_err *err)
{
    int r = git_run(g, args, in, in_len, max_out, ret_out, ret_len, err);

    if (r > 0)
        return rt_err_set(err, EIO, "git %s: %s", args[0], g->errline);
    return r;
}

static bool is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* Reads a 40-digit id from git's output ("sha\n"). */
static int take_sha(const char *out, size_t len, char sha[RT_GIT_SHA_LEN + 1], const char *what,
                    struct rt_err *err)
{
    if (len < RT_GIT_SHA_LEN || !is_hex(out, RT_GIT_SHA_LEN) ||
        (len > RT_GIT_SHA_LEN && out[RT_GIT_SHA_LEN] != '\n'))
        return rt_err_set(err, EIO, "git %s gave '%.60s'", what, out);
    memcpy(sha, out, RT_GIT_SHA_LEN);
    sha[RT_GIT_SHA_LEN] = '\0';
    return 0;
}

/* Resolves "SPEC" to an object id.  Returns 0, -ENOENT when it does not resolve, or
 * -EIO when @g->repo is no repository. */
static int git_resolve(struct git *g, const char *spec, char sha[RT_GIT_SHA_LEN + 1],
                       struct rt_err *err)
{
    const char *args[] = { "rev-parse", "--verify", "--quiet", spec, NULL };
    _cleanup_free_ char *out = NULL;
    size_t len = 0;
    int r = git_run(g, args, NULL, 0, 256, &out, &len, err);

    if (r < 0)
        return r;
    if (r == 1) /* --verify --quiet: the name does not resolve */
        return -ENOENT;
    if (r > 0) /* 128: not a repository, or a broken one */
        return rt_err_set(err, EIO, "git rev-parse in '%s': %s", g->repo, g->errline);
    return take_sha(out, len, sha, "rev-parse", err);
}

/* ---- the private work directory ----------------------------------------------------- */

struct workdir {
    char path[PATH_MAX];
    bool made;
};

/* Removes the files we put there (index, message, blobs) and the directory. */
static void workdir_remove(struct workdir *w)
{
    int fd;
    DIR *d;
    struct dirent *e;

    if (!w->made)
        return;
    fd = open(w->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        d = fdopendir(fd);
        if (!d) {
            (void) rt_close(fd);
        } else {
            while ((e = readdir(d)))
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                    (void) unlinkat(dirfd(d), e->d_name, 0);
            closedir(d);
        }
    }
    (void) rmdir(w->path);
    w->made = false;
}

static int workdir_make(struct workdir *w, struct rt_err *err)
{
    const char *base = getenv("TMPDIR");

    if (!base || base[0] != '/')
        base = "/tmp";
    (void) snprintf(w->path, sizeof(w->path), "%s/spt-commit-XXXXXX", base);
    if (!mkdtemp(w->path)) /* mode 0700: nobody else reads the blobs or the index */
        return rt_err_set(err, errno, "create a work directory in '%s'", base);
    w->made = true;
    return 0;
}

static int workdir_write(struct workdir *w, const char *name, const void *data, size_t len,
                         struct rt_err *err)
{
    char path[PATH_MAX + 32];
    _cleanup_close_ int fd = -1;
    int r;

    (void) snprintf(path, sizeof(path), "%s/%s", w->path, name);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return rt_err_set(err, errno, "create '%s'", path);
    r = rt_write_all(fd, data, len);
    if (r < 0)
        return rt_err_set(err, -r, "write '%s'", path);
    return 0;
}

/* ---- paths -------------------------------------------------------------------------- */

static int msg_len(size_t len)
{
    return (int) (len > MSG_PATH_MAX ? MSG_PATH_MAX : len);
}

int rt_git_path_check(const char *path, size_t len, struct rt_err *err)
{
    size_t start = 0;

    if (!path || len == 0)
        return rt_err_set(err, EINVAL, "empty path");
    if (len > RT_GIT_PATH_MAX)
        return rt_err_set(err, EINVAL, "path '%.*s...' is longer than %d bytes", 60, path,
                          RT_GIT_PATH_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) path[i];
        if (c == '\0')
            return rt_err_set(err, EINVAL, "path '%.*s' contains a NUL byte", msg_len(i), path);
        /* A newline or escape in a path breaks logs, listings and shells downstream. */
        if (c < 0x20 || c == 0x7f)
            return rt_err_set(err, EINVAL, "path contains control character 0x%02x at byte %zu", c,
                              i);
    }
    if (path[0] == '/')
        return rt_err_set(err, EINVAL, "path '%.*s' is absolute", msg_len(len), path);
    for (size_t i = 0; i <= len; i++) {
        const char *comp = path + start;
        size_t n = i - start;
        if (i < len && path[i] != '/')
            continue;
        if (n == 0)
            return rt_err_set(err, EINVAL, "path '%.*s' has an empty component", msg_len(len),
                              path);
        if ((n == 1 && comp[0] == '.') || (n == 2 && comp[0] == '.' && comp[1] == '.'))
            return rt_err_set(err, EINVAL, "path '%.*s' has a '%.*s' component", msg_len(len), path,
                              (int) n, comp);
        /* Any case: on a case-insensitive checkout ".GIT" is the git directory. */
        if (n == 4 && strncasecmp(comp, ".git", 4) == 0)
            return rt_err_set(err, EINVAL, "path '%.*s' is inside a '.git' directory", msg_len(len),
                              path);
        start = i + 1;
    }
    return 0;
}

/* ---- the tree being edited: files and the folders that hold them -------------------- */

struct slot {
    const char *key; /* NULL: empty */
    size_t klen;
    uint32_t hash;
    size_t val;
};

/* Open addressing over (key, length).  Keys are never removed: a deleted file keeps its
 * slot with its entry marked dead, and a folder's count drops to 0. */
struct table {
    struct slot *slots;
    size_t cap, n;
    bool owns_keys;
};

static uint32_t seed;

static uint32_t hash_key(const char *key, size_t len)
{
    uint32_t h = 2166136261u ^ seed; /* FNV-1a, seeded so that paths cannot be chosen to
                                        collide */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char) key[i];
        h *= 16777619u;
    }
    return h;
}

static void table_done(struct table *t)
{
    if (t->owns_keys)
        for (size_t i = 0; i < t->cap; i++)
            free((char *) t->slots[i].key);
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

static struct slot *table_find(struct table *t, const char *key, size_t len)
{
    uint32_t h;

    if (!t->cap)
        return NULL;
    h = hash_key(key, len);
    for (size_t i = h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        struct slot *s = &t->slots[i];
        if (!s->key)
            return NULL;
        if (s->hash == h && s->klen == len && memcmp(s->key, key, len) == 0)
            return s;
    }
}

static int table_grow(struct table *t)
{
    size_t cap = t->cap ? t->cap * 2 : 64;
    struct slot *slots = calloc(cap, sizeof(*slots));

    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i < t->cap; i++) {
        struct slot *s = &t->slots[i];
        size_t j;
        if (!s->key)
            continue;
        for (j = s->hash & (cap - 1); slots[j].key; j = (j + 1) & (cap - 1))
            ;
        slots[j] = *s;
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

/* Adds a key known to be absent.  Returns the slot or NULL when out of memory. */
static struct slot *table_add(struct table *t, const char *key, size_t len, size_t val)
{
    uint32_t h = hash_key(key, len);
    size_t i;

    if ((t->n + 1) * 2 > t->cap && table_grow(t) < 0)
        return NULL;
    for (i = h & (t->cap - 1); t->slots[i].key; i = (i + 1) & (t->cap - 1))
        ;
    t->slots[i] = (struct slot){ .key = key, .klen = len, .hash = h, .val = val };
    t->n++;
    return &t->slots[i];
}

struct entry {
    char *path;
    size_t len;
    unsigned mode, orig_mode;
    char sha[RT_GIT_SHA_LEN + 1];      /* "" while the blob is still to be written */
    char orig_sha[RT_GIT_SHA_LEN + 1]; /* in the parent tree; "" when new */
    long op;                           /* the operation whose content this is, or -1 */
    bool live;
};

struct model {
    struct entry *e;
    size_t n, cap;
    struct table files; /* path -> index in e */
    struct table dirs;  /* folder path -> number of live files under it */
    size_t live;
};

static void model_done(struct model *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->e[i].path);
    free(m->e);
    table_done(&m->files);
    table_done(&m->dirs);
    memset(m, 0, sizeof(*m));
}

static struct entry *model_file(struct model *m, const char *path, size_t len)
{
    struct slot *s = table_find(&m->files, path, len);

    return s && m->e[s->val].live ? &m->e[s->val] : NULL;
}

static size_t model_dir_count(struct model *m, const char *path, size_t len)
{
    struct slot *s = table_find(&m->dirs, path, len);

    return s ? s->val : 0;
}

/* Adds @delta to the count of every folder above @path. */
static int model_count_dirs(struct model *m, const char *path, size_t len, int delta)
{
    for (size_t i = 0; i < len; i++) {
        struct slot *s;
        if (path[i] != '/')
            continue;
        s = table_find(&m->dirs, path, i);
        if (!s) {
            char *key = strndup(path, i);
            if (!key)
                return -ENOMEM;
            s = table_add(&m->dirs, key, i, 0);
            if (!s) {
                free(key);
                return -ENOMEM;
            }
        }
        s->val = delta > 0 ? s->val + 1 : s->val - 1;
    }
    return 0;
}

static void model_remove(struct model *m, struct entry *e)
{
    e->live = false;
    m->live--;
    (void) model_count_dirs(m, e->path, e->len, -1); /* existing folders: no allocation */
}

/* Puts a file at @path: content @sha (or the blob of operation @op), mode @mode (0: a
 * regular file, kept executable when it replaces an executable one). */
static int model_put(struct model *m, const char *path, size_t len, unsigned mode, const char *sha,
                     long op, struct rt_err *err)
{
    struct slot *s;
    struct entry *e;
    int r;

    for (size_t i = 0; i < len; i++)
        if (path[i] == '/' && model_file(m, path, i))
            return rt_err_set(err, EEXIST, "cannot add '%.*s': '%.*s' is a file", msg_len(len),
                              path, msg_len(i), path);
    if (model_dir_count(m, path, len) > 0)
        return rt_err_set(err, EEXIST, "cannot add '%.*s': it is a folder", msg_len(len), path);
    s = table_find(&m->files, path, len);
    if (!s) {
        if (m->n == m->cap) {
            size_t cap = m->cap ? m->cap * 2 : 64;
            struct entry *grown = realloc(m->e, cap * sizeof(*grown));
            if (!grown)
                return rt_err_set(err, ENOMEM, "allocate the file list");
            m->e = grown;
            m->cap = cap;
        }
        e = &m->e[m->n];
        memset(e, 0, sizeof(*e));
        e->path = strndup(path, len);
        if (!e->path)
            return rt_err_set(err, ENOMEM, "allocate a path");
        e->len = len;
        if (!table_add(&m->files, e->path, len, m->n)) {
            free(e->path);
            return rt_err_set(err, ENOMEM, "allocate the file table");
        }
        m->n++;
    } else {
        e = &m->e[s->val];
    }
    if (!mode)
        mode = (e->live && e->mode == 0100755) ? 0100755 : 0100644;
    if (!e->live) {
        r = model_count_dirs(m, path, len, +1);
        if (r < 0)
            return rt_err_set(err, -r, "count folders");
        e->live = true;
        m->live++;
    }
    e->mode = mode;
    e->op = op;
    if (sha)
        memcpy(e->sha, sha, RT_GIT_SHA_LEN + 1);
    else
        e->sha[0] = '\0';
    return 0;
}

/* Loads the parent tree ("MODE TYPE SHA\tPATH" records of ls-tree -r -z). */
static int model_load(struct model *m, char *list, size_t len, struct rt_err *err)
{
    for (size_t off = 0; off < len;) {
        char *rec = list + off, *tab, *sp1, *sp2;
        size_t n = strlen(rec);
        unsigned mode = 0;
        struct entry *e;
        int r;

        off += n + 1;
        tab = strchr(rec, '\t');
        sp1 = strchr(rec, ' ');
        sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
        if (!tab || !sp1 || !sp2 || sp2 > tab || tab - sp2 - 1 != RT_GIT_SHA_LEN ||
            sscanf(rec, "%o", &mode) != 1)
            return rt_err_set(err, EIO, "unexpected ls-tree record '%.80s'", rec);
        *tab = '\0';
        r = model_put(m, tab + 1, strlen(tab + 1), mode, sp2 + 1, -1, err);
        if (r < 0)
            return rt_err_wrap(err, "load the parent tree");
        e = model_file(m, tab + 1, strlen(tab + 1));
        e->orig_mode = mode;
        memcpy(e->orig_sha, e->sha, RT_GIT_SHA_LEN + 1);
    }
    return 0;
}

static int model_delete_folder(struct model *m, const char *path, size_t len, struct rt_err *err)
{
    if (model_dir_count(m, path, len) == 0)
        return rt_err_set(err, ENOENT,
                          "cannot delete '%.*s/': a folder with this name doesn't exist",
                          msg_len(len), path);
    for (size_t i = 0; i < m->n; i++) {
        struct entry *e = &m->e[i];
        if (e->live && e->len > len && e->path[len] == '/' && memcmp(e->path, path, len) == 0)
            model_remove(m, e);
    }
    return 0;
}

static size_t op_path_len(const char *p, size_t len)
{
    return len ? len : (p ? strlen(p) : 0);
}

/* Applies operation @i to the tree. */
static int model_apply(struct model *m, const struct rt_git_op *op, long i, struct rt_err *err)
{
    size_t len = op_path_len(op->path, op->path_len);
    size_t olen = op_path_len(op->old_path, op->old_path_len);
    struct entry *e;

    switch (op->kind) {
    case RT_GIT_OP_FILE:
    case RT_GIT_OP_LFS_FILE:
        if (op->old_path && !(olen == len && memcmp(op->old_path, op->path, len) == 0)) {
            e = model_file(m, op->old_path, olen);
            if (!e)
                return rt_err_set(err, ENOENT,
                                  "cannot move '%.*s': a file with this name doesn't exist",
                                  msg_len(olen), op->old_path);
            model_remove(m, e);
        }
        return model_put(m, op->path, len, 0, NULL, i, err);
    case RT_GIT_OP_DELETE_FILE:
        e = model_file(m, op->path, len);
        if (!e)
            return rt_err_set(err, ENOENT,
                              "cannot delete '%.*s': a file with this name doesn't exist",
                              msg_len(len), op->path);
        model_remove(m, e);
        return 0;
    case RT_GIT_OP_DELETE_FOLDER:
        if (len > 1 && op->path[len - 1] == '/')
            len--;
        return model_delete_folder(m, op->path, len, err);
    case RT_GIT_OP_DELETE_ENTRY:
        if (len > 1 && op->path[len - 1] == '/')
            len--;
        e = model_file(m, op->path, len);
        if (e) {
            model_remove(m, e);
            return 0;
        }
        if (model_dir_count(m, op->path, len) == 0)
            return rt_err_set(err, ENOENT, "cannot delete '%.*s': no file or folder with this name",
                              msg_len(len), op->path);
        return model_delete_folder(m, op->path, len, err);
    case RT_GIT_OP_RENAME: {
        char sha[RT_GIT_SHA_LEN + 1];
        unsigned mode;
        long src_op;

        e = model_file(m, op->old_path, olen);
        if (!e)
            return rt_err_set(err, ENOENT,
                              "cannot move '%.*s': a file with this name doesn't exist",
                              msg_len(olen), op->old_path);
        if (olen == len && memcmp(op->old_path, op->path, len) == 0)
            return 0;
        memcpy(sha, e->sha, sizeof(sha));
        mode = e->mode;
        src_op = e->op;
        model_remove(m, e);
        return model_put(m, op->path, len, mode, sha[0] ? sha : NULL, src_op, err);
    }
    }
    return rt_err_set(err, EINVAL, "unknown operation %d", (int) op->kind);
}

/* ---- checking a request before anything is written ---------------------------------- */

static int check_ident(const char *what, const char *s, struct rt_err *err)
{
    size_t len = strlen(s);

    if (len > IDENT_MAX)
        return rt_err_set(err, EINVAL, "%s is longer than %d bytes", what, IDENT_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) s[i];
        /* git's ident line is "Name <email> time zone": these would forge or break it. */
        if (c < 0x20 || c == 0x7f || c == '<' || c == '>')
            return rt_err_set(err, EINVAL, "%s contains a forbidden character (0x%02x)", what, c);
    }
    return 0;
}

static int check_branch(const char *b, struct rt_err *err)
{
    size_t len = strlen(b);

    if (len == 0 || len > BRANCH_MAX || b[0] == '-' || b[0] == '/' || b[0] == '.' ||
        b[len - 1] == '/' || b[len - 1] == '.' || strstr(b, "..") || strstr(b, "//") ||
        strstr(b, "/.") || (len >= 5 && strcmp(b + len - 5, ".lock") == 0))
        return rt_err_set(err, EINVAL, "'%.*s' is not a valid branch name", msg_len(len), b);
    for (size_t i = 0; i < len; i++) {
        char c = b[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == '/'))
            return rt_err_set(err, EINVAL, "'%.*s' is not a valid branch name", msg_len(len), b);
    }
    return 0;
}

/* A parentCommit is 5 to 40 hex digits, as huggingface_hub checks before sending it. */
static int check_parent(const char *p, struct rt_err *err)
{
    size_t len = strlen(p);

    for (size_t i = 0; i < len; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f') ||
              (p[i] >= 'A' && p[i] <= 'F')))
            len = 0;
    if (len < 5 || len > RT_GIT_SHA_LEN)
        return rt_err_set(err, EINVAL, "parent commit '%.60s' is not 5 to 40 hex digits", p);
    return 0;
}

static int check_ops(const struct rt_git_commit_req *req, uint64_t max_file, uint64_t max_commit,
                     uint32_t max_files, struct rt_err *err)
{
    uint64_t total = 0;
    int r;

    if (req->n_ops > max_files)
        return rt_err_set(err, EFBIG, "%zu operations, over the limit of %u", req->n_ops,
                          max_files);
    if (req->n_ops && !req->ops)
        return rt_err_set(err, EINVAL, "no operations given");
    for (size_t i = 0; i < req->n_ops; i++) {
        const struct rt_git_op *op = &req->ops[i];
        size_t len = op_path_len(op->path, op->path_len);

        if ((op->kind == RT_GIT_OP_DELETE_FOLDER || op->kind == RT_GIT_OP_DELETE_ENTRY) &&
            len > 1 && op->path[len - 1] == '/')
            len--;
        r = rt_git_path_check(op->path, len, err);
        if (r < 0)
            return rt_err_wrap(err, "operation %zu", i + 1);
        if (op->kind == RT_GIT_OP_RENAME && !op->old_path)
            return rt_err_set(err, EINVAL, "operation %zu: a rename needs the old path", i + 1);
        if (op->old_path) {
            r = rt_git_path_check(op->old_path, op_path_len(op->old_path, op->old_path_len), err);
            if (r < 0)
                return rt_err_wrap(err, "operation %zu: old path", i + 1);
        }
        switch (op->kind) {
        case RT_GIT_OP_FILE:
            if (op->len && !op->data)
                return rt_err_set(err, EINVAL, "operation %zu: no content", i + 1);
            if (op->len > max_file)
                return rt_err_set(err, EFBIG,
                                  "'%.*s' is %zu bytes, over the %" PRIu64
                                  "-byte limit for a regular file (upload it with LFS)",
                                  msg_len(len), op->path, op->len, max_file);
            total += op->len;
            if (total > max_commit)
                return rt_err_set(err, EFBIG, "the commit holds over %" PRIu64 " bytes",
                                  max_commit);
            break;
        case RT_GIT_OP_LFS_FILE:
            if (!rt_lfs_oid_is_valid(op->lfs_oid))
                return rt_err_set(err, EINVAL,
                                  "'%.*s': LFS oid '%.80s' is not 64 lowercase hex digits",
                                  msg_len(len), op->path, op->lfs_oid ? op->lfs_oid : "");
            if (req->lfs) {
                uint64_t have = 0;
                /* A pointer to an object nobody uploaded would check out as a broken file. */
                r = rt_lfs_has(req->lfs, op->lfs_oid, &have, err);
                if (r == -ENOENT)
                    return rt_err_set(err, ENOENT, "'%.*s': LFS object %s was not uploaded",
                                      msg_len(len), op->path, op->lfs_oid);
                if (r < 0)
                    return rt_err_wrap(err, "'%.*s'", msg_len(len), op->path);
                if (have != op->lfs_size)
                    return rt_err_set(err, EINVAL,
                                      "'%.*s': LFS object %s has %" PRIu64 " bytes, not %" PRIu64,
                                      msg_len(len), op->path, op->lfs_oid, have, op->lfs_size);
            }
            break;
        case RT_GIT_OP_DELETE_FILE:
        case RT_GIT_OP_DELETE_FOLDER:
        case RT_GIT_OP_DELETE_ENTRY:
        case RT_GIT_OP_RENAME:
            break;
        default:
            return rt_err_set(err, EINVAL, "operation %zu: unknown kind %d", i + 1, (int) op->kind);
        }
    }
    return 0;
}

/* ---- making the commit ------------------------------------------------------------- */

/* Writes every FILE and LFS_FILE content (a pointer for LFS) as a blob with one
 * `git hash-object -w --stdin-paths` and stores the ids in @shas. */
static int write_blobs(struct git *g, struct workdir *w, const struct rt_git_commit_req *req,
                       char (*shas)[RT_GIT_SHA_LEN + 1], struct rt_err *err)
{
    const char *args[] = { "hash-object", "-w", "--no-filters", "--stdin-paths", NULL };
    _cleanup_free_ char *list = NULL, *out = NULL;
    size_t nblobs = 0, listlen = 0, outlen = 0, off = 0;
    int r;

    list = malloc(req->n_ops * 24 + 1);
    if (!list)
        return rt_err_set(err, ENOMEM, "allocate the blob list");
    for (size_t i = 0; i < req->n_ops; i++) {
        const struct rt_git_op *op = &req->ops[i];
        char name[24], ptr[RT_LFS_POINTER_MAX];

        if (op->kind != RT_GIT_OP_FILE && op->kind != RT_GIT_OP_LFS_FILE)
            continue;
        (void) snprintf(name, sizeof(name), "b%zu", i);
        if (op->kind == RT_GIT_OP_FILE) {
            r = workdir_write(w, name, op->data, op->len, err);
        } else {
            int n = rt_lfs_pointer_format(op->lfs_oid, op->lfs_size, ptr);
            r = n < 0 ? rt_err_set(err, EINVAL, "bad LFS oid")
                      : workdir_write(w, name, ptr, (size_t) n, err);
        }
        if (r < 0)
            return r;
        listlen += (size_t) snprintf(list + listlen, 24, "%s\n", name);
        nblobs++;
    }
    if (!nblobs)
        return 0;
    r = git_ok(g, args, list, listlen, nblobs * (RT_GIT_SHA_LEN + 1) + 1, &out, &outlen, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < req->n_ops; i++) {
        if (req->ops[i].kind != RT_GIT_OP_FILE && req->ops[i].kind != RT_GIT_OP_LFS_FILE)
            continue;
        if (outlen - off < RT_GIT_SHA_LEN + 1)
            return rt_err_set(err, EIO, "git hash-object gave %zu ids for %zu blobs",
                              off / (RT_GIT_SHA_LEN + 1), nblobs);
        r = take_sha(out + off, RT_GIT_SHA_LEN + 1, shas[i], "hash-object", err);
        if (r < 0)
            return r;
        off += RT_GIT_SHA_LEN + 1;
    }
    return 0;
}

/* Builds update-index --index-info input: removals first, so that a file may replace a
 * folder (or a folder a file) in the same commit. */
static int index_info(struct model *m, char (*shas)[RT_GIT_SHA_LEN + 1], char **ret,
                      size_t *ret_len, struct rt_err *err)
{
    size_t cap = 0, len = 0;
    _cleanup_free_ char *buf = NULL;

    for (size_t i = 0; i < m->n; i++)
        cap += m->e[i].len + RT_GIT_SHA_LEN + 16;
    buf = malloc(cap + 1);
    if (!buf)
        return rt_err_set(err, ENOMEM, "allocate the index update");
    for (size_t i = 0; i < m->n; i++) {
        struct entry *e = &m->e[i];
        if (!e->live && e->orig_sha[0]) {
            len += (size_t) snprintf(buf + len, cap - len, "0 %s\t", ZERO_SHA);
            memcpy(buf + len, e->path, e->len + 1); /* -z: the NUL ends the record */
            len += e->len + 1;
        }
    }
    for (size_t i = 0; i < m->n; i++) {
        struct entry *e = &m->e[i];
        if (!e->live)
            continue;
        if (!e->sha[0])
            memcpy(e->sha, shas[e->op], RT_GIT_SHA_LEN + 1);
        if (e->orig_sha[0] && e->mode == e->orig_mode && strcmp(e->sha, e->orig_sha) == 0)
            continue;
        len += (size_t) snprintf(buf + len, cap - len, "%o %s\t", e->mode, e->sha);
        memcpy(buf + len, e->path, e->len + 1);
        len += e->len + 1;
    }
    *ret_len = len;
    *ret = TAKE_PTR(buf);
    return 0;
}

static int write_message(struct workdir *w, const struct rt_git_commit_req *req, struct rt_err *err)
{
    const char *desc = req->description && req->description[0] ? req->description : NULL;
    size_t slen = strlen(req->summary), dlen = desc ? strlen(desc) : 0;
    _cleanup_free_ char *msg = NULL;
    int n;

    if (slen + dlen > MESSAGE_MAX)
        return rt_err_set(err, EFBIG, "the commit message is over %u bytes", MESSAGE_MAX);
    msg = malloc(slen + dlen + 4);
    if (!msg)
        return rt_err_set(err, ENOMEM, "allocate the commit message");
    n = snprintf(msg, slen + dlen + 4, "%s\n%s%s%s", req->summary, desc ? "\n" : "",
                 desc ? desc : "", desc && desc[dlen - 1] != '\n' ? "\n" : "");
    return workdir_write(w, "msg", msg, (size_t) n, err);
}

static bool blank(const char *s)
{
    for (; s && *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return false;
    return true;
}

/* Moves the branch from @old (or from nothing) to @new, atomically in git's ref lock. */
static int move_branch(struct git *g, const char *ref, const char *branch, const char *new,
                       const char *old, struct rt_err *err)
{
    const char *args[] = { "update-ref", ref, new, old[0] ? old : ZERO_SHA, NULL };
    char now[RT_GIT_SHA_LEN + 1] = "";
    char spec[BRANCH_MAX + 32], why[GIT_ERR_MAX];
    int r = git_run(g, args, NULL, 0, 0, NULL, NULL, err);

    if (r <= 0)
        return r;
    memcpy(why, g->errline, sizeof(why));
    (void) snprintf(spec, sizeof(spec), "%s^{commit}", ref);
    if (git_resolve(g, spec, now, err) == 0 ? strcmp(now, old) != 0 : old[0] != '\0')
        return rt_err_set(err, EAGAIN, "branch '%s' moved to %.12s while the commit was made",
                          branch, now[0] ? now : "nothing");
    if (strstr(why, "cannot lock"))
        return rt_err_set(err, EAGAIN, "branch '%s' is being updated by someone else: %s", branch,
                          why);
    return rt_err_set(err, EIO, "git update-ref: %s", why);
}

struct commit_job {
    struct workdir w;
    struct git g;
    struct model m;
    char (*shas)[RT_GIT_SHA_LEN + 1];
};

static void commit_job_done(struct commit_job *j)
{
    model_done(&j->m);
    git_done(&j->g);
    workdir_remove(&j->w);
    free(j->shas);
}

int rt_git_commit(const char *repo, const struct rt_git_commit_req *req,
                  struct rt_git_commit_result *ret, struct rt_err *err)
{
    uint64_t max_file = req->max_file_bytes ? req->max_file_bytes : RT_GIT_LFS_THRESHOLD;
    uint64_t max_commit = req->max_commit_bytes ? req->max_commit_bytes : DEFAULT_MAX_COMMIT;
    uint32_t max_files = req->max_files ? req->max_files : DEFAULT_MAX_FILES;
    const char *branch = req->branch ? req->branch : "main";
    const char *name = req->author_name && req->author_name[0] ? req->author_name : "Spaceport";
    const char *email =
        req->author_email && req->author_email[0] ? req->author_email : "spaceport@localhost";
    char ref[BRANCH_MAX + 16], spec[BRANCH_MAX + 32], old[RT_GIT_SHA_LEN + 1] = "";
    char tree[RT_GIT_SHA_LEN + 1], old_tree[RT_GIT_SHA_LEN + 1] = "", commit[RT_GIT_SHA_LEN + 1];
    char env[6][PATH_MAX + IDENT_MAX];
    const char *extra[7];
    _cleanup_(commit_job_done) struct commit_job j = { 0 };
    _cleanup_free_ char *out = NULL, *info = NULL;
    size_t outlen = 0, infolen = 0;
    bool changed;
    int r;

    j.m.dirs.owns_keys = true; /* folder names are copies; file names belong to entries */
    if (!seed)
        seed = (uint32_t) rt_now_ns() ^ (uint32_t) getpid();
    if (!req->summary || blank(req->summary))
        return rt_err_set(err, EINVAL, "a commit needs a summary");
    if ((r = check_branch(branch, err)) < 0 || (r = check_ident("author name", name, err)) < 0 ||
        (r = check_ident("author email", email, err)) < 0)
        return r;
    if (req->parent_commit && (r = check_parent(req->parent_commit, err)) < 0)
        return r;
    if ((r = check_ops(req, max_file, max_commit, max_files, err)) < 0)
        return r;

    if ((r = workdir_make(&j.w, err)) < 0)
        return r;
    (void) snprintf(env[0], sizeof(env[0]), "GIT_INDEX_FILE=%s/index", j.w.path);
    (void) snprintf(env[1], sizeof(env[1]), "GIT_AUTHOR_NAME=%s", name);
    (void) snprintf(env[2], sizeof(env[2]), "GIT_AUTHOR_EMAIL=%s", email);
    (void) snprintf(env[3], sizeof(env[3]), "GIT_COMMITTER_NAME=%s", name);
    (void) snprintf(env[4], sizeof(env[4]), "GIT_COMMITTER_EMAIL=%s", email);
    /* Paths given to git are file names, never glob patterns. */
    (void) snprintf(env[5], sizeof(env[5]), "GIT_LITERAL_PATHSPECS=1");
    for (size_t i = 0; i < 6; i++)
        extra[i] = env[i];
    extra[6] = NULL;
    if ((r = git_init(&j.g, repo, j.w.path, extra, err)) < 0)
        return r;

    (void) snprintf(ref, sizeof(ref), "refs/heads/%s", branch);
    (void) snprintf(spec, sizeof(spec), "%s^{commit}", ref);
    r = git_resolve(&j.g, spec, old, err);
    if (r < 0 && r != -ENOENT)
        return r;
    if (req->parent_commit) {
        size_t plen = strlen(req->parent_commit);
        if (!old[0])
            return rt_err_set(err, ESTALE, "parent commit %s: branch '%s' has no commit yet",
                              req->parent_commit, branch);
        if (strncasecmp(old, req->parent_commit, plen) != 0)
            return rt_err_set(err, ESTALE, "parent commit %s is not the head of '%s' (%s)",
                              req->parent_commit, branch, old);
    }

    if (old[0]) {
        const char *ls[] = { "ls-tree", "-r", "-z", "--full-tree", old, NULL };
        const char *rt[] = { "read-tree", old, NULL };
        char tspec[RT_GIT_SHA_LEN + 8];

        r = git_ok(&j.g, ls, NULL, 0, (size_t) max_files * 600 + (1 << 20), &out, &outlen, err);
        if (r == -EFBIG)
            return rt_err_set(err, EFBIG, "the repository has too many files");
        if (r < 0)
            return r;
        if ((r = model_load(&j.m, out, outlen, err)) < 0)
            return r;
        (void) snprintf(tspec, sizeof(tspec), "%s^{tree}", old);
        if ((r = git_resolve(&j.g, tspec, old_tree, err)) < 0)
            return r == -ENOENT ? rt_err_set(err, EIO, "no tree for commit %s", old) : r;
        if ((r = git_ok(&j.g, rt, NULL, 0, 0, NULL, NULL, err)) < 0)
            return r;
    }
    for (size_t i = 0; i < req->n_ops; i++)
        if ((r = model_apply(&j.m, &req->ops[i], (long) i, err)) < 0)
            return r;
    if (j.m.live > max_files)
        return rt_err_set(err, EFBIG, "the commit would hold %zu files, over the limit of %u",
                          j.m.live, max_files);

    /* Everything is checked: only now does anything reach the repository. */
    j.shas = calloc(req->n_ops ? req->n_ops : 1, sizeof(*j.shas));
    if (!j.shas)
        return rt_err_set(err, ENOMEM, "allocate blob ids");
    if ((r = write_blobs(&j.g, &j.w, req, j.shas, err)) < 0)
        return r;
    if ((r = index_info(&j.m, j.shas, &info, &infolen, err)) < 0)
        return r;
    if (infolen) {
        const char *ui[] = { "update-index", "-z", "--index-info", NULL };
        if ((r = git_ok(&j.g, ui, info, infolen, 0, NULL, NULL, err)) < 0)
            return r;
    }
    {
        const char *wt[] = { "write-tree", NULL };
        free(out);
        out = NULL;
        if ((r = git_ok(&j.g, wt, NULL, 0, 256, &out, &outlen, err)) < 0 ||
            (r = take_sha(out, outlen, tree, "write-tree", err)) < 0)
            return r;
    }
    changed = old[0] ? strcmp(tree, old_tree) != 0 : j.m.live > 0;
    if (!changed && req->refuse_empty)
        return rt_err_set(err, ENODATA, "no changes: the files are the same as in %s",
                          old[0] ? old : "an empty repository");
    if ((r = write_message(&j.w, req, err)) < 0)
        return r;
    {
        const char *ct[] = { "commit-tree", tree, "-F", "msg", old[0] ? "-p" : NULL, old, NULL };
        free(out);
        out = NULL;
        if ((r = git_ok(&j.g, ct, NULL, 0, 256, &out, &outlen, err)) < 0 ||
            (r = take_sha(out, outlen, commit, "commit-tree", err)) < 0)
            return r;
    }
    if ((r = move_branch(&j.g, ref, branch, commit, old, err)) < 0)
        return r;
    memcpy(ret->commit, commit, sizeof(commit));
    memcpy(ret->parent, old, sizeof(old));
    ret->changed = changed;
    return 0;
}

/* ---- listing the files of a commit -------------------------------------------------- */

void rt_git_file_list_done(struct rt_git_file_list *list)
{
    for (size_t i = 0; list->files && i < list->n; i++)
        free(list->files[i].path);
    free(list->files);
    list->files = NULL;
    list->n = 0;
}

static void file_list_donep(struct rt_git_file_list *l)
{
    rt_git_file_list_done(l);
}

static int file_cmp(const void *a, const void *b)
{
    return strcmp(((const struct rt_git_file *) a)->path, ((const struct rt_git_file *) b)->path);
}

const struct rt_git_file *rt_git_file_list_find(const struct rt_git_file_list *list,
                                                const char *path)
{
    struct rt_git_file key = { .path = (char *) path };

    if (!list->n)
        return NULL;
    return bsearch(&key, list->files, list->n, sizeof(key), file_cmp);
}

/* Reads the candidate pointer blobs with one `git cat-file --batch` and marks the ones
 * that are LFS pointers. */
static int detect_pointers(struct git *g, struct rt_git_file_list *l, struct rt_err *err)
{
    const char *args[] = { "cat-file", "--batch", NULL };
    _cleanup_free_ char *in = NULL, *out = NULL;
    size_t n = 0, inlen = 0, outlen = 0, off = 0, max = 0;
    int r;

    for (size_t i = 0; i < l->n; i++)
        if (l->files[i].mode != 0160000 && l->files[i].mode != 0120000 &&
            l->files[i].blob_size >= 100 && l->files[i].blob_size <= RT_LFS_POINTER_SCAN_MAX)
            n++;
    if (!n)
        return 0;
    in = malloc(n * (RT_GIT_SHA_LEN + 1) + 1);
    if (!in)
        return rt_err_set(err, ENOMEM, "allocate the blob list");
    for (size_t i = 0; i < l->n; i++) {
        struct rt_git_file *f = &l->files[i];
        if (f->mode == 0160000 || f->mode == 0120000 || f->blob_size < 100 ||
            f->blob_size > RT_LFS_POINTER_SCAN_MAX)
            continue;
        memcpy(in + inlen, f->blob_id, RT_GIT_SHA_LEN);
        in[inlen + RT_GIT_SHA_LEN] = '\n';
        inlen += RT_GIT_SHA_LEN + 1;
        max += f->blob_size + 64;
    }
    r = git_ok(g, args, in, inlen, max + 1, &out, &outlen, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < l->n; i++) {
        struct rt_git_file *f = &l->files[i];
        char *nl;
        uint64_t size = 0;
        if (f->mode == 0160000 || f->mode == 0120000 || f->blob_size < 100 ||
            f->blob_size > RT_LFS_POINTER_SCAN_MAX)
            continue;
        nl = off < outlen ? memchr(out + off, '\n', outlen - off) : NULL;
        if (!nl || strncmp(out + off, f->blob_id, RT_GIT_SHA_LEN) != 0)
            return rt_err_set(err, EIO, "git cat-file --batch: unexpected output for %s",
                              f->blob_id);
        off = (size_t) (nl - out) + 1;
        if (outlen - off < f->blob_size + 1)
            return rt_err_set(err, EIO, "git cat-file --batch: short blob %s", f->blob_id);
        if (rt_lfs_pointer_parse(out + off, f->blob_size, f->lfs_oid, &size)) {
            f->lfs = true;
            f->size = size;
        }
        off += f->blob_size + 1;
    }
    return 0;
}

int rt_git_list_files(const char *repo, const char *commit, uint32_t max_files,
                      struct rt_git_file_list *ret, struct rt_err *err)
{
    const char *args[] = { "ls-tree", "-r", "-l", "-z", "--full-tree", commit, NULL };
    _cleanup_(file_list_donep) struct rt_git_file_list l = { 0 };
    _cleanup_(git_done) struct git g = { 0 };
    _cleanup_free_ char *out = NULL;
    size_t outlen = 0, cap = 0;
    int r;

    if (!max_files)
        max_files = DEFAULT_MAX_FILES;
    if (!commit || strlen(commit) != RT_GIT_SHA_LEN || !is_hex(commit, RT_GIT_SHA_LEN))
        return rt_err_set(err, EINVAL, "'%.60s' is not a commit id", commit ? commit : "");
    if ((r = git_init(&g, repo, NULL, NULL, err)) < 0)
        return r;
    r = git_run(&g, args, NULL, 0, (size_t) max_files * 600 + (1 << 20), &out, &outlen, err);
    if (r == -EFBIG)
        return rt_err_set(err, EFBIG, "commit %.12s has too many files", commit);
    if (r < 0)
        return r;
    if (r > 0 && (strstr(g.errline, "Not a valid object name") || strstr(g.errline, "not a tree")))
        return rt_err_set(err, ENOENT, "no commit %s in '%s'", commit, repo);
    if (r > 0)
        return rt_err_set(err, EIO, "list commit %.12s: %s", commit, g.errline);
    for (size_t off = 0; off < outlen;) {
        char *rec = out + off, *tab = strchr(rec, '\t');
        char type[16], sha[48], size[32];
        struct rt_git_file *f;
        unsigned mode;

        off += strlen(rec) + 1;
        if (!tab)
            return rt_err_set(err, EIO, "unexpected ls-tree record '%.80s'", rec);
        *tab = '\0';
        if (sscanf(rec, "%o %15s %47s %31s", &mode, type, sha, size) != 4 ||
            strlen(sha) != RT_GIT_SHA_LEN)
            return rt_err_set(err, EIO, "unexpected ls-tree record '%.80s'", rec);
        if (mode == 0160000) /* a submodule is a link to another repository, not a file */
            continue;
        if (l.n == max_files)
            return rt_err_set(err, EFBIG, "commit %.12s has more than %u files", commit, max_files);
        if (l.n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct rt_git_file *grown = realloc(l.files, ncap * sizeof(*grown));
            if (!grown)
                return rt_err_set(err, ENOMEM, "allocate the file list");
            l.files = grown;
            cap = ncap;
        }
        f = &l.files[l.n];
        memset(f, 0, sizeof(*f));
        f->path = strdup(tab + 1);
        if (!f->path)
            return rt_err_set(err, ENOMEM, "allocate a path");
        l.n++;
        f->mode = mode;
        memcpy(f->blob_id, sha, RT_GIT_SHA_LEN + 1);
        if (rt_parse_u64(size, &f->blob_size) < 0)
            return rt_err_set(err, EIO, "unexpected size '%s' of '%s'", size, f->path);
        f->size = f->blob_size;
    }
    if ((r = detect_pointers(&g, &l, err)) < 0)
        return r;
    if (l.n)
        qsort(l.files, l.n, sizeof(*l.files), file_cmp);
    *ret = l;
    memset(&l, 0, sizeof(l));
    return 0;
}

/* ---- preupload: regular or LFS ------------------------------------------------------ */

const char rt_git_default_gitattributes[] = "*.7z filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.arrow filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.bin filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.bz2 filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.ckpt filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.ftz filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.gz filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.h5 filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.joblib filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.lfs.* filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.mlmodel filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.model filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.msgpack filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.npy filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.npz filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.onnx filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.ot filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.parquet filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.pb filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.pickle filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.pkl filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.pt filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.pth filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.rar filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
                                            "saved_model/**/* filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.tar.* filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.tar filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.tflite filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.tgz filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.wasm filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.xz filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.zip filter=lfs diff=lfs merge=lfs -text\n"
                                            "*.zst filter=lfs diff=lfs merge=lfs -text\n"
                                            "*tfevents* filter=lfs diff=lfs merge=lfs -text\n";

/* A "[...]" class at @p against @c.  Returns the class's length, or 0 when it is not a
 * closed class (then '[' is literal); *ret_match tells whether @c is in it. */
static size_t match_class(const char *p, size_t plen, char c, bool *ret_match)
{
    size_t i = 1;
    bool neg = false, in = false;

    if (i < plen && (p[i] == '!' || p[i] == '^')) {
        neg = true;
        i++;
    }
    for (bool first = true; i < plen; first = false) {
        char lo = p[i], hi;
        if (lo == ']' && !first) {
            *ret_match = in != neg;
            return i + 1;
        }
        if (lo == '\\' && i + 1 < plen)
            lo = p[++i];
        hi = lo;
        if (i + 2 < plen && p[i + 1] == '-' && p[i + 2] != ']') {
            hi = p[i + 2];
            i += 2;
        }
        if (c >= lo && c <= hi)
            in = true;
        i++;
    }
    return 0;
}

/* One path component against one pattern component: '*', '?', classes and '\' escapes.
 * Greedy with one backtrack point, so time stays O(pattern * name). */
static bool match_component(const char *p, size_t plen, const char *s, size_t slen)
{
    size_t pi = 0, si = 0, star_p = SIZE_MAX, star_s = 0;

    while (si < slen) {
        if (pi < plen && p[pi] == '*') {
            while (pi < plen && p[pi] == '*')
                pi++;
            star_p = pi;
            star_s = si;
            continue;
        }
        if (pi < plen) {
            bool hit = false;
            size_t adv = 1;
            if (p[pi] == '?') {
                hit = true;
            } else if (p[pi] == '[' && (adv = match_class(p + pi, plen - pi, s[si], &hit))) {
                /* hit set by match_class */
            } else {
                size_t at = pi;
                adv = 1;
                if (p[at] == '\\' && at + 1 < plen) {
                    at++;
                    adv = 2;
                }
                hit = p[at] == s[si];
            }
            if (hit) {
                pi += adv;
                si++;
                continue;
            }
        }
        if (star_p == SIZE_MAX)
            return false;
        pi = star_p;
        si = ++star_s;
    }
    while (pi < plen && p[pi] == '*')
        pi++;
    return pi == plen;
}

/* Splits @s at '/' into (offset, length) pairs.  Returns the count, or -1 past @max. */
static int split(const char *s, size_t len, size_t (*out)[2], int max)
{
    int n = 0;
    size_t start = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '/')
            continue;
        if (n == max)
            return -1;
        out[n][0] = start;
        out[n][1] = i - start;
        n++;
        start = i + 1;
    }
    return n;
}

#define MAX_COMPONENTS 128

/* A pattern with a '/' matches the whole path from the root; "**" as a component matches
 * any number of folders.  Dynamic programming over components keeps hostile patterns
 * with many "**" polynomial. */
static bool match_path(const char *pat, size_t plen, const char *path, size_t len)
{
    size_t pc[MAX_COMPONENTS][2], sc[MAX_COMPONENTS][2];
    bool row[MAX_COMPONENTS + 1], next[MAX_COMPONENTS + 1];
    int np = split(pat, plen, pc, MAX_COMPONENTS), ns = split(path, len, sc, MAX_COMPONENTS);

    if (np < 0 || ns < 0)
        return false;
    for (int j = 0; j <= ns; j++)
        next[j] = j == ns;
    for (int i = np - 1; i >= 0; i--) {
        const char *p = pat + pc[i][0];
        bool globstar = pc[i][1] == 2 && p[0] == '*' && p[1] == '*';
        for (int j = ns; j >= 0; j--) {
            if (globstar)
                row[j] = next[j] || (j < ns && row[j + 1]);
            else
                row[j] = j < ns && next[j + 1] &&
                         match_component(p, pc[i][1], path + sc[j][0], sc[j][1]);
        }
        memcpy(next, row, sizeof(row));
    }
    return next[0];
}

/* A gitignore-style pattern against the first @len bytes of @path: without a '/', it
 * matches the last component at any depth; with one, the whole path from the root. */
static bool pattern_matches(const char *pat, size_t plen, const char *path, size_t len)
{
    size_t b = len;

    if (!memchr(pat, '/', plen)) {
        while (b > 0 && path[b - 1] != '/')
            b--;
        return match_component(pat, plen, path + b, len - b);
    }
    if (pat[0] == '/') {
        pat++;
        plen--;
    }
    return match_path(pat, plen, path, len);
}

static bool attr_pattern_matches(const char *pat, size_t plen, const char *path)
{
    if (plen && pat[plen - 1] == '/') /* folder-only patterns name no file */
        return false;
    return pattern_matches(pat, plen, path, strlen(path));
}

bool rt_git_attributes_lfs(const char *attrs, const char *path)
{
    bool lfs = false;

    while (attrs && *attrs) {
        const char *eol = strchr(attrs, '\n');
        size_t n = eol ? (size_t) (eol - attrs) : strlen(attrs);
        const char *p = attrs, *end = attrs + n;
        const char *pat;
        size_t plen;
        int set = -1; /* -1: the line says nothing about filter */

        attrs = eol ? eol + 1 : attrs + n;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p == end || *p == '#' || *p == '[')
            continue;
        pat = p;
        while (p < end && *p != ' ' && *p != '\t' && *p != '\r')
            p++;
        plen = (size_t) (p - pat);
        while (p < end) {
            const char *tok;
            size_t tlen;
            while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
                p++;
            tok = p;
            while (p < end && *p != ' ' && *p != '\t' && *p != '\r')
                p++;
            tlen = (size_t) (p - tok);
            if (tlen == 10 && memcmp(tok, "filter=lfs", 10) == 0)
                set = 1;
            else if ((tlen > 7 && memcmp(tok, "filter=", 7) == 0) ||
                     (tlen == 7 &&
                      (memcmp(tok, "-filter", 7) == 0 || memcmp(tok, "!filter", 7) == 0)))
                set = 0;
        }
        if (set >= 0 && attr_pattern_matches(pat, plen, path))
            lfs = set == 1;
    }
    return lfs;
}

/* The last line of @rules that matches the first @len bytes of @path (a folder when
 * @dir): 1 when it ignores it, 0 when it re-includes it ("!"), -1 when no line matches. */
static int ignore_verdict(const char *rules, const char *path, size_t len, bool dir)
{
    int verdict = -1;

    while (rules && *rules) {
        const char *eol = strchr(rules, '\n');
        size_t n = eol ? (size_t) (eol - rules) : strlen(rules);
        const char *pat = rules;
        bool neg = false, dir_only = false;

        rules = eol ? eol + 1 : rules + n;
        /* Trailing blanks do not count unless escaped. */
        while (n && (pat[n - 1] == '\r' || pat[n - 1] == ' ' || pat[n - 1] == '\t') &&
               !(n >= 2 && pat[n - 2] == '\\'))
            n--;
        if (!n || pat[0] == '#')
            continue;
        if (pat[0] == '!') {
            neg = true;
            pat++;
            n--;
        } else if (pat[0] == '\\' && n > 1 && (pat[1] == '#' || pat[1] == '!')) {
            pat++;
            n--;
        }
        if (n && pat[n - 1] == '/') {
            dir_only = true;
            n--;
        }
        if (!n || (dir_only && !dir))
            continue;
        if (pattern_matches(pat, n, path, len))
            verdict = neg ? 0 : 1;
    }
    return verdict;
}

bool rt_git_ignored(const char *gitignore, const char *path)
{
    size_t len = strlen(path);

    /* As in git, nothing inside an ignored folder can be re-included. */
    for (size_t i = 0; i < len; i++)
        if (path[i] == '/' && ignore_verdict(gitignore, path, i, true) == 1)
            return true;
    return ignore_verdict(gitignore, path, len, false) == 1;
}

/* Binary as the Hub sees it: a NUL byte, or bytes that are not UTF-8.  A multi-byte
 * character cut by the end of a partial sample is not held against the file. */
static bool looks_binary(const unsigned char *s, size_t len, bool partial)
{
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        size_t need;
        uint32_t cp;

        if (c == 0)
            return true;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return true;
        }
        for (size_t k = 1; k <= need; k++) {
            if (i + k >= len)
                return !partial;
            if ((s[i + k] & 0xc0) != 0x80)
                return true;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return true;
        i += need + 1;
    }
    return false;
}

enum rt_git_upload_mode rt_git_preupload_mode(const char *path, uint64_t size, const void *sample,
                                              size_t sample_len, const char *gitattributes)
{
    if (size == 0)
        return RT_GIT_UPLOAD_REGULAR;
    if (path && rt_git_attributes_lfs(gitattributes, path))
        return RT_GIT_UPLOAD_LFS;
    if (size > RT_GIT_LFS_THRESHOLD)
        return RT_GIT_UPLOAD_LFS;
    if (sample && looks_binary(sample, sample_len, sample_len < size))
        return RT_GIT_UPLOAD_LFS;
    return RT_GIT_UPLOAD_REGULAR;
}

/* ---- base64 ------------------------------------------------------------------------- */

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int rt_git_base64_decode(const char *in, size_t len, uint64_t max, unsigned char **ret_out,
                         size_t *ret_len, struct rt_err *err)
{
    _cleanup_free_ unsigned char *out = NULL;
    size_t n = 0, pad = 0;

    if (len % 4)
        return rt_err_set(err, EINVAL, "base64 length %zu is not a multiple of 4", len);
    if (len && in[len - 1] == '=')
        pad = (len >= 2 && in[len - 2] == '=') ? 2 : 1;
    if ((uint64_t) (len / 4 * 3 - pad) > max)
        return rt_err_set(err, EFBIG, "decoded content is over %" PRIu64 " bytes", max);
    out = malloc(len / 4 * 3 + 1);
    if (!out)
        return rt_err_set(err, ENOMEM, "allocate %zu bytes for decoded content", len / 4 * 3);
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        bool last = i + 4 == len;
        for (int k = 0; k < 4; k++) {
            v[k] = b64_value(in[i + k]);
            if (v[k] < 0 && !(last && in[i + k] == '=' && k >= 4 - (int) pad))
                return rt_err_set(err, EINVAL, "invalid base64 at byte %zu", i + (size_t) k);
        }
        out[n++] = (unsigned char) (v[0] << 2 | v[1] >> 4);
        if (last && pad == 2) {
            if (v[1] & 0x0f)
                return rt_err_set(err, EINVAL, "invalid base64: stray bits before the padding");
            break;
        }
        out[n++] = (unsigned char) ((v[1] & 0x0f) << 4 | v[2] >> 2);
        if (last && pad == 1) {
            if (v[2] & 0x03)
                return rt_err_set(err, EINVAL, "invalid base64: stray bits before the padding");
            break;
        }
        out[n++] = (unsigned char) ((v[2] & 0x03) << 6 | v[3]);
    }
    out[n] = '\0';
    *ret_len = n;
    *ret_out = TAKE_PTR(out);
    return 0;
}

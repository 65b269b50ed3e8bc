/* Unit tests for runtimed/lfs.c: the content-addressed LFS store on a real directory
 * (hash and size checked before an object lands, nothing left behind on refusal) and
 * the pointer text git-lfs keeps in trees. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../tap.h"
#include "cleanup.h"
#include "runtimed/lfs.h"
#include "sha256.h"
#include "spawn.h"

static char tmp[PATH_MAX];

/* Entries in @sub of the data dir, "." and ".." aside. */
static int count_entries(const char *sub)
{
    char path[PATH_MAX + 64];
    struct dirent *e;
    DIR *d;
    int n = 0;

    (void) snprintf(path, sizeof(path), "%s/%s", tmp, sub);
    d = opendir(path);
    if (!d)
        return -1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static int put(struct rt_lfs *s, const char *oid, uint64_t size, const void *data, size_t len,
               struct rt_err *err)
{
    struct rt_lfs_writer *w = NULL;
    int r = rt_lfs_writer_start(s, oid, size, &w, err);

    if (r < 0)
        return r;
    r = rt_lfs_writer_write(w, data, len, err);
    if (r == 0)
        r = rt_lfs_writer_finish(w, err);
    rt_lfs_writer_free(w);
    return r;
}

static void test_oids(void)
{
    ok(rt_lfs_oid_is_valid("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
       "a sha256 is an oid");
    ok(!rt_lfs_oid_is_valid("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"),
       "uppercase is refused");
    ok(!rt_lfs_oid_is_valid("e3b0c442"), "short is refused");
    ok(!rt_lfs_oid_is_valid("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855a"),
       "long is refused");
    ok(!rt_lfs_oid_is_valid("../../../../etc/passwd/0000000000000000000000000000000000000000000"),
       "a path is refused");
    ok(!rt_lfs_oid_is_valid(NULL), "NULL is refused");
}

static void test_store(void)
{
    static const char data[] = "model weights, honestly\n";
    struct rt_err err = { 0 };
    char oid[RT_SHA256_HEX_LEN], other[RT_SHA256_HEX_LEN], path[PATH_MAX + 160], buf[64];
    struct rt_lfs *s = NULL;
    struct rt_lfs_writer *w = NULL;
    uint64_t size = 0;
    struct stat st;
    int fd;

    rt_sha256_hex(data, strlen(data), oid);
    rt_sha256_hex("other", 5, other);
    is_int(rt_lfs_open(tmp, 1 << 20, &s, &err), 0, "open a store in a fresh data dir");
    if (!s)
        return;
    rt_lfs_free(s);
    s = NULL;
    {
        /* What a crash mid-upload leaves: an old temporary file, and a fresh one that may
         * belong to an upload in progress. */
        struct timespec old[2] = { { .tv_sec = time(NULL) - 2 * RT_LFS_STALE_UPLOAD_S },
                                   { .tv_sec = time(NULL) - 2 * RT_LFS_STALE_UPLOAD_S } };
        (void) snprintf(path, sizeof(path), "%s/lfs/tmp/up-stale", tmp);
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0)
            (void) close(fd);
        (void) utimensat(AT_FDCWD, path, old, 0);
        (void) snprintf(path, sizeof(path), "%s/lfs/tmp/up-fresh", tmp);
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0)
            (void) close(fd);
    }
    is_int(rt_lfs_open(tmp, 1 << 20, &s, &err), 0, "reopen the store");
    if (!s)
        return;
    (void) snprintf(path, sizeof(path), "%s/lfs/tmp/up-stale", tmp);
    ok(access(path, F_OK) < 0, "a day-old temporary file is swept");
    (void) snprintf(path, sizeof(path), "%s/lfs/tmp/up-fresh", tmp);
    ok(access(path, F_OK) == 0, "a fresh one is kept");
    (void) unlink(path);
    is_int(rt_lfs_has(s, oid, &size, &err), -ENOENT, "an object not uploaded is absent");
    is_int(rt_lfs_has(s, "nope", &size, &err), -EINVAL, "a bad oid is EINVAL");
    is_str(err.msg, "'nope' is not an LFS oid (64 lowercase hex digits)", "and says so");

    is_int(put(s, oid, strlen(data), data, strlen(data), &err), 0, "a correct upload is stored");
    is_int(rt_lfs_has(s, oid, &size, &err), 0, "the object is present");
    is_int(size, strlen(data), "with its size");
    (void) snprintf(path, sizeof(path), "%s/lfs/objects/%.2s/%.2s/%s", tmp, oid, oid + 2, oid);
    ok(stat(path, &st) == 0 && S_ISREG(st.st_mode), "at lfs/objects/ab/cd/<oid>");
    fd = rt_lfs_open_object(s, oid, &size, &err);
    ok(fd >= 0, "open it for a download");
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        buf[n > 0 ? n : 0] = '\0';
        is_str(buf, data, "the bytes read back are the bytes uploaded");
        ok(fcntl(fd, F_GETFD) & FD_CLOEXEC, "the fd is close-on-exec");
        (void) close(fd);
    }
    is_int(put(s, oid, strlen(data), data, strlen(data), &err), 0,
           "uploading the same object again succeeds");
    is_int(count_entries("lfs/tmp"), 0, "no temporary file is left");

    {
        /* A checkout's pointer file, then a symlink planted where a file should go. */
        char dir[PATH_MAX + 16], target[PATH_MAX + 32];
        int dfd;
        ssize_t n;
        (void) snprintf(dir, sizeof(dir), "%s/co", tmp);
        (void) mkdir(dir, 0755);
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        (void) snprintf(path, sizeof(path), "%s/co/model.bin", tmp);
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0)
            (void) close(fd);
        is_int(rt_lfs_export(s, oid, dfd, "model.bin", 0644, &err), 0,
               "export the object over a pointer file");
        fd = open(path, O_RDONLY | O_CLOEXEC);
        n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
        buf[n > 0 ? n : 0] = '\0';
        if (fd >= 0)
            (void) close(fd);
        is_str(buf, data, "the file holds the object");
        ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644, "with the mode asked for");
        (void) snprintf(target, sizeof(target), "%s/victim", tmp);
        fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0)
            (void) close(fd);
        (void) snprintf(path, sizeof(path), "%s/co/link.bin", tmp);
        ok(symlink(target, path) == 0, "plant a symlink to a file outside");
        is_int(rt_lfs_export(s, oid, dfd, "link.bin", 0755, &err), 0, "export over the symlink");
        ok(lstat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0755,
           "the symlink was replaced by a file");
        ok(stat(target, &st) == 0 && st.st_size == 0, "and its target was not written");
        is_int(rt_lfs_export(s, other, dfd, "x", 0644, &err), -ENOENT, "a missing object");
        is_int(rt_lfs_export(s, oid, dfd, "../x", 0644, &err), -EINVAL, "a name with a slash");
        is_int(rt_lfs_export(s, oid, dfd, "..", 0644, &err), -EINVAL, "'..'");
        is_int(count_entries("co"), 2, "no temporary file left in the directory");
        if (dfd >= 0)
            (void) close(dfd);
    }

    is_int(put(s, other, strlen(data), data, strlen(data), &err), -EBADMSG,
           "content that does not hash to the oid is refused");
    ok(strstr(err.msg, "the content hashes to") != NULL, "the message names the real hash");
    is_int(rt_lfs_has(s, other, NULL, &err), -ENOENT, "and is not stored");
    is_int(count_entries("lfs/tmp"), 0, "nor left in tmp");

    rt_sha256_hex(data, 5, other);
    is_int(put(s, other, strlen(data), data, 5, &err), -EBADMSG, "a short upload is refused");
    ok(strstr(err.msg, "got 5 bytes, declared 24") != NULL, "the message gives both sizes");
    is_int(rt_lfs_has(s, other, NULL, &err), -ENOENT, "and is not stored");
    is_int(count_entries("lfs/tmp"), 0, "nor left in tmp");

    is_int(rt_lfs_writer_start(s, oid, 4, &w, &err), 0, "start an upload declaring 4 bytes");
    is_int(rt_lfs_writer_write(w, data, strlen(data), &err), -EFBIG,
           "writing more than declared is EFBIG");
    is_int(rt_lfs_writer_write(w, data, 1, &err), -EFBIG, "and the upload stays dead");
    is_int(rt_lfs_writer_finish(w, &err), -EBADMSG, "finish refuses it");
    rt_lfs_writer_free(w);
    w = NULL;
    is_int(count_entries("lfs/tmp"), 0, "nothing left in tmp");

    is_int(rt_lfs_writer_start(s, oid, (1 << 20) + 1, &w, &err), -EFBIG,
           "a declared size over the store's limit is refused up front");
    ok(w == NULL, "and no writer is made");
    is_int(rt_lfs_writer_start(s, "../x", 1, &w, &err), -EINVAL, "a bad oid cannot start");

    is_int(rt_lfs_writer_start(s, oid, strlen(data), &w, &err), 0, "start an upload");
    is_int(rt_lfs_writer_write(w, data, 3, &err), 0, "write part of it");
    rt_lfs_writer_free(w);
    w = NULL;
    is_int(count_entries("lfs/tmp"), 0, "an abandoned upload leaves nothing behind");
    rt_lfs_free(s);
}

/* A megabyte of pseudo-random bytes in odd-sized pieces hashes as one buffer does. */
static void test_streaming(void)
{
    struct rt_err err = { 0 };
    size_t len = 1 << 20, off = 0;
    char oid[RT_SHA256_HEX_LEN];
    struct rt_lfs *s = NULL;
    struct rt_lfs_writer *w = NULL;
    unsigned char *data = malloc(len);
    uint32_t x = 12345;
    int failures = 0;
    uint64_t size = 0;

    if (!data || rt_lfs_open(tmp, 0, &s, &err) < 0) {
        ok(0, "set up the streaming test");
        free(data);
        return;
    }
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245 + 12345;
        data[i] = (unsigned char) (x >> 16);
    }
    rt_sha256_hex(data, len, oid);
    is_int(rt_lfs_writer_start(s, oid, len, &w, &err), 0, "start a 1 MiB upload");
    while (w && off < len) {
        size_t n = len - off < 7001 ? len - off : 7001;
        if (rt_lfs_writer_write(w, data + off, n, &err) < 0)
            failures++;
        off += n;
    }
    is_int(failures, 0, "every piece is accepted");
    is_int(w ? rt_lfs_writer_finish(w, &err) : -1, 0, "the streamed hash matches");
    rt_lfs_writer_free(w);
    is_int(rt_lfs_has(s, oid, &size, &err), 0, "the object is stored");
    is_int(size, len, "with its full size");
    rt_lfs_free(s);
    free(data);
}

static void test_pointer(void)
{
    const char *oid = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393";
    char buf[RT_LFS_POINTER_MAX], got[RT_LFS_OID_LEN + 1];
    uint64_t size = 0;
    int n = rt_lfs_pointer_format(oid, 12345, buf);

    is_int(n, (int) strlen(buf), "the pointer length is returned");
    is_str(buf,
           "version https://git-lfs.github.com/spec/v1\n"
           "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
           "size 12345\n",
           "the pointer text is git-lfs's");
    ok(rt_lfs_pointer_parse(buf, (size_t) n, got, &size), "it parses back");
    is_str(got, oid, "same oid");
    is_int(size, 12345, "same size");
    is_int(rt_lfs_pointer_format("xyz", 1, buf), -EINVAL, "a bad oid makes no pointer");
    n = rt_lfs_pointer_format(oid, UINT64_MAX, buf);
    ok(n > 0 && n < RT_LFS_POINTER_MAX, "the largest size fits the buffer");

    {
        static const char *bad[] = {
            "version https://git-lfs.github.com/spec/v1\nsize 3\n",
            "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 3\n",
            "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
            "size 3\n",
            "version https://git-lfs.github.com/spec/v1\n"
            "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
            "size -3\n",
            "version https://git-lfs.github.com/spec/v1\n"
            "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
            "size 3",
            "print('not a pointer')\n",
        };
        int accepted = 0;
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
            if (rt_lfs_pointer_parse(bad[i], strlen(bad[i]), got, &size))
                accepted++;
        is_int(accepted, 0, "malformed pointers and ordinary files are not pointers");
    }
    {
        static const char ext[] = "version https://git-lfs.github.com/spec/v1\n"
                                  "ext-0-foo sha256:00\n"
                                  "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daa"
                                  "a5e2ca24d17e2393\nsize 7\n";
        ok(rt_lfs_pointer_parse(ext, strlen(ext), got, &size) && size == 7,
           "extension keys are skipped");
    }
}

/* Objects are per Space: a scoped store sees only what was uploaded into its scope. */
static void test_scopes(void)
{
    static const char data[] = "scoped bytes";
    char oid[RT_SHA256_HEX_LEN], a_key[RT_LFS_SCOPE_KEY_MAX], b_key[RT_LFS_SCOPE_KEY_MAX];
    struct rt_lfs *a = NULL, *b = NULL, *all = NULL;
    struct rt_err err = { 0 };
    uint64_t size = 0;

    rt_sha256_hex(data, sizeof(data) - 1, oid);
    rt_lfs_scope_key(7, 1700000000000, a_key);
    rt_lfs_scope_key(8, 1700000000001, b_key);
    is_str(a_key, "7-1700000000000", "a scope key is id-created_at");
    ok(rt_lfs_open_space(tmp, 7, 1700000000000, &a, &err) == 0, "open Space 7's scope");
    ok(rt_lfs_open_space(tmp, 8, 1700000000001, &b, &err) == 0, "open Space 8's scope");
    ok(rt_lfs_open(tmp, 0, &all, &err) == 0, "open unscoped");
    ok(put(a, oid, sizeof(data) - 1, data, sizeof(data) - 1, &err) == 0, "upload into Space 7");
    ok(rt_lfs_has(a, oid, &size, &err) == 0 && size == sizeof(data) - 1, "Space 7 sees it");
    ok(rt_lfs_has(b, oid, NULL, &err) == -ENOENT, "Space 8 does not, though the bytes are stored");
    ok(strstr(err.msg, "in this Space") != NULL, "and says so: %s", err.msg);
    ok(rt_lfs_open_object(b, oid, NULL, &err) == -ENOENT, "nor can it open it");
    ok(rt_lfs_has(all, oid, NULL, &err) == 0, "an unscoped store sees every object");
    ok(rt_lfs_set_scope(all, "../etc", &err) == -EINVAL, "a scope key is digits and '-' only");
    ok(rt_lfs_scope_copy(b, a_key, &err) == 0, "a duplicate links the original's objects");
    ok(rt_lfs_has(b, oid, NULL, &err) == 0, "then Space 8 sees it");
    rt_lfs_scope_remove(tmp, a_key);
    ok(rt_lfs_has(a, oid, NULL, &err) == -ENOENT, "a removed scope sees nothing");
    ok(rt_lfs_has(b, oid, NULL, &err) == 0, "the object stays for the Spaces still using it");
    rt_lfs_free(a);
    rt_lfs_free(b);
    rt_lfs_free(all);
}

int main(void)
{
    struct rt_err err;

    tap_start();
    (void) snprintf(tmp, sizeof(tmp), "/tmp/spt-lfs-XXXXXX");
    if (!mkdtemp(tmp))
        return 1;
    test_oids();
    test_store();
    test_streaming();
    test_pointer();
    test_scopes();
    (void) rt_run_capture((const char *const[]){ "rm", "-rf", tmp, NULL }, NULL, NULL, 0, NULL, 0,
                          &err);
    return tap_done();
}

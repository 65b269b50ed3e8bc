/* Unit tests for runtimed's core: SHA-256, names and host labels, tokens, config. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tap.h"
#include "runtimed/auth.h"
#include "runtimed/config.h"
#include "error.h"
#include "runtimed/names.h"
#include "sha256.h"
#include "runtimed/tiers.h"
#include "util.h"

static void test_sha256(void)
{
    char hex[RT_SHA256_HEX_LEN];
    char million[1000];
    struct rt_sha256 c;
    uint8_t md[RT_SHA256_LEN];

    rt_sha256_hex("", 0, hex);
    is_str(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "sha256('')");
    rt_sha256_hex("abc", 3, hex);
    is_str(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
           "sha256('abc')");
    rt_sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, hex);
    is_str(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
           "sha256 of 56 bytes (padding spills into a second block)");
    /* One million 'a', fed in pieces that do not line up with blocks. */
    memset(million, 'a', sizeof(million));
    rt_sha256_init(&c);
    for (int i = 0; i < 1000; i++)
        rt_sha256_update(&c, million, sizeof(million));
    rt_sha256_final(&c, md);
    for (int i = 0; i < RT_SHA256_LEN; i++)
        (void) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    is_str(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
           "sha256 of a million 'a'");
}

static void test_names(void)
{
    static const struct {
        const char *s;
        int ok;
    } cases[] = {
        { "demo", 1 }, { "Demo_App.v2", 1 }, { "a", 1 },  { "", 0 },     { "-a", 0 },
        { "a-", 0 },   { ".a", 0 },          { "a.", 0 }, { "a--b", 0 }, { "a..b", 0 },
        { "a b", 0 },  { "a/b", 0 },         { "é", 0 },  { "a\nb", 0 }, { "a-b.c_d", 1 },
    };
    struct rt_err err = { 0 };
    char owner[RT_NAME_SIZE], name[RT_NAME_SIZE], host[RT_HOST_SIZE], longname[200];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        is_int(rt_name_check(cases[i].s, "name", &err) == 0, cases[i].ok, cases[i].s);
    memset(longname, 'a', 96);
    longname[96] = '\0';
    is_int(rt_name_check(longname, "name", &err), 0, "96 characters is the limit");
    longname[96] = 'a';
    longname[97] = '\0';
    is_int(rt_name_check(longname, "name", &err), -EINVAL, "97 characters is too long");
    ok(strstr(err.msg, "longer") != NULL, "the reason is given: %s", err.msg);

    is_int(rt_id_split("alice/demo", owner, name, &err), 0, "split a Space id");
    is_str(owner, "alice", "owner part");
    is_str(name, "demo", "name part");
    is_int(rt_id_split("alice", owner, name, &err), -EINVAL, "an id needs a slash");
    is_int(rt_id_split("a/b/c", owner, name, &err), -EINVAL, "only one slash");
    is_int(rt_id_split("/demo", owner, name, &err), -EINVAL, "empty owner");
    is_int(rt_id_split("alice/", owner, name, &err), -EINVAL, "empty name");

    rt_space_host("Alice_B", "My.Demo", host);
    is_str(host, "alice-b-my-demo", "host label: lowercased, '_' and '.' become '-'");
    rt_space_host("a-b", "c", host);
    is_str(host, "a-b-c", "'a-b/c' has host a-b-c");
    rt_space_host("a", "b-c", host);
    is_str(host, "a-b-c", "and so does 'a/b-c' (the store refuses the second)");

    is_int(rt_env_key_check("HF_TOKEN", &err), 0, "env key");
    is_int(rt_env_key_check("_x1", &err), 0, "leading underscore");
    is_int(rt_env_key_check("1X", &err), -EINVAL, "leading digit refused");
    is_int(rt_env_key_check("A-B", &err), -EINVAL, "dash refused");
    is_int(rt_env_key_check("", &err), -EINVAL, "empty refused");
}

static void test_tokens(void)
{
    struct rt_err err = { 0 };
    char a[RT_TOKEN_SIZE], b[RT_TOKEN_SIZE], id[RT_TOKEN_ID_SIZE];
    int good = 1;

    is_int(rt_auth_token_new(a, &err), 0, "make a token");
    is_int(rt_auth_token_new(b, &err), 0, "make another");
    is_int(strlen(a), 43, "sp_ and 40 characters");
    ok(strncmp(a, "sp_", 3) == 0, "prefix sp_: %s...", "sp_");
    for (size_t i = 3; i < strlen(a); i++)
        good = good && ((a[i] >= 'a' && a[i] <= 'z') || (a[i] >= 'A' && a[i] <= 'Z') ||
                        (a[i] >= '0' && a[i] <= '9'));
    ok(good, "only letters and digits");
    ok(strcmp(a, b) != 0, "two tokens differ");
    is_int(rt_auth_token_id_new(id, &err), 0, "token id");
    is_int(strlen(id), 16, "16 hex digits");
}

static void test_scopes(void)
{
    char spaces[1][RT_ID_SIZE] = { "alice/a" };
    struct rt_principal anon = { .anonymous = true };
    struct rt_principal alice_read = { .token = { .user = "alice", .role = "read" } };
    struct rt_principal alice_a = {
        .token = { .user = "alice", .role = "write", .n_spaces = 1, .spaces = spaces }
    };
    struct rt_principal bob = { .token = { .user = "bob", .role = "write" } };
    struct rt_principal root = { .token = { .user = "admin", .role = "write", .admin = true } };
    struct rt_principal proxy = { .token = { .role = "proxy" } };
    struct rt_space pub = { .owner = "alice", .name = "b" };
    struct rt_space priv_a = { .owner = "alice", .name = "a", .private_ = true };
    struct rt_space priv_b = { .owner = "alice", .name = "b", .private_ = true };

    ok(rt_auth_can_read(&anon, &pub), "anyone reads a public Space");
    ok(!rt_auth_can_read(&anon, &priv_a), "anonymous cannot read a private one");
    ok(!rt_auth_can_read(&proxy, &priv_a), "nor can the proxy token");
    ok(!rt_auth_can_read(&bob, &priv_a), "nor another user");
    ok(rt_auth_can_read(&alice_read, &priv_a), "its owner can");
    ok(rt_auth_can_read(&root, &priv_a), "an admin can");
    ok(!rt_auth_can_write(&alice_read, &priv_a), "a read token cannot write");
    ok(rt_auth_can_write(&alice_a, &priv_a), "a token for Space A writes A");
    ok(!rt_auth_can_write(&alice_a, &priv_b), "but not B");
    ok(!rt_auth_can_read(&alice_a, &priv_b), "and cannot even read private B");
    ok(!rt_auth_can_write(&bob, &pub), "another user cannot write");
    ok(rt_auth_can_create(&bob, "bob", "x"), "a user creates in their own namespace");
    ok(!rt_auth_can_create(&bob, "alice", "x"), "not in someone else's");
    ok(rt_auth_can_create(&root, "alice", "x"), "an admin creates anywhere");
    ok(!rt_auth_can_create(&alice_a, "alice", "c"), "a scoped token creates only in its scope");
    ok(rt_auth_in_scope(&alice_a, "ALICE", "A"), "scope matches case-insensitively");
    ok(!rt_auth_is_admin(&proxy), "the proxy is not an admin");
}

static void test_tiers(void)
{
    struct rt_err err = { 0 };
    struct rt_tier gpu = {
        .name = "a10g-small", .cpus = 4, .memory = 1 << 30, .gpus = 1, .gpu_kind = "a10g"
    };
    struct rt_tier zero = {
        .name = "zero-a10g", .cpus = 2, .memory = 1 << 30, .zero = true, .gpu_kind = "a10g"
    };
    struct rt_tier cpu = { .name = "big-cpu", .cpus = 512, .memory = 1ULL << 40 };

    is_int(rt_tiers_check_node(&gpu, &(struct rt_tier_gpus){ 0 }, &err), -ENODEV,
           "a GPU tier on a node without GPUs");
    ok(strstr(err.msg, "needs 1 GPU of kind 'a10g' and this node has 0") != NULL, "says why: %s",
       err.msg);
    is_int(rt_tiers_check_node(&gpu, &(struct rt_tier_gpus){ .have = 2, .free = 0 }, &err), -ENODEV,
           "none of its kind free");
    ok(strstr(err.msg, "0 of this node's 2 are free") != NULL, "says why: %s", err.msg);
    is_int(rt_tiers_check_node(&gpu, &(struct rt_tier_gpus){ .have = 1, .free = 1 }, &err), 0,
           "fits a node with one free GPU of its kind");
    is_int(rt_tiers_check_node(&zero, &(struct rt_tier_gpus){ .have = 1, .free = 1 }, &err),
           -ENODEV, "ZeroGPU needs a pool");
    is_int(rt_tiers_check_node(&zero, &(struct rt_tier_gpus){ .zero = 1 }, &err), 0,
           "ZeroGPU with a pool");
    is_int(rt_tiers_check_node(&cpu, &(struct rt_tier_gpus){ 0 }, &err), 0,
           "CPU and memory are ceilings, not refusals");
    is_int(rt_tiers_validate(&gpu, &err), 0, "valid tier");
    gpu.gpu_kind[0] = '\0';
    is_int(rt_tiers_validate(&gpu, &err), -EINVAL, "GPU tier without a kind");
    zero.gpus = 2;
    is_int(rt_tiers_validate(&zero, &err), -EINVAL, "ZeroGPU with dedicated GPUs");
    cpu.cpus = 0;
    is_int(rt_tiers_validate(&cpu, &err), -EINVAL, "zero CPUs");
}

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    if (fd >= 0) {
        (void) rt_write_all(fd, text, strlen(text));
        (void) close(fd);
    }
}

static void test_config(void)
{
    char dir[] = "/tmp/rtcore-config-XXXXXX", path[256];
    struct rt_config c;
    struct rt_err err = { 0 };

    if (!mkdtemp(dir)) {
        ok(0, "mkdtemp");
        return;
    }
    (void) snprintf(path, sizeof(path), "%s/runtimed.yaml", dir);
    rt_config_defaults(&c);
    is_str(c.listen, "127.0.0.1:8080", "default listen");
    is_str(c.data_dir, "/var/lib/spaceport", "default data dir");

    write_file(path, "# comment\nlisten: 127.0.0.1:9999\nmax_body: 64k\nlog_level: debug\n"
                     "gpu_backend: fake\ngpu_fake: 2xa10g:24G\nzero_gpus: 1\n");
    is_int(rt_config_load(&c, path, &err), 0, "load a config");
    is_str(c.listen, "127.0.0.1:9999", "listen from the file");
    is_int(c.max_body, 65536, "size with a unit");
    is_str(c.gpu_backend, "fake", "gpu_backend");
    is_str(c.gpu_fake, "2xa10g:24G", "gpu_fake");
    is_int(c.zero_gpus, 1, "zero_gpus");
    is_int(c.log_level, 3, "log level by name");

    write_file(path, "gpus: 2\n");
    is_int(rt_config_load(&c, path, &err), -EINVAL, "the old gpus count is refused");
    ok(strstr(err.msg, "gpus: replaced by gpu_backend") != NULL, "says what replaced it: %s",
       err.msg);
    write_file(path, "gpu_backend: cuda\n");
    is_int(rt_config_load(&c, path, &err), -EINVAL, "unknown gpu backend");
    write_file(path, "gpu_backend: fake\n");
    c.gpu_fake[0] = '\0';
    is_int(rt_config_load(&c, path, &err), -EINVAL, "fake needs gpu_fake");
    (void) snprintf(c.gpu_backend, sizeof(c.gpu_backend), "auto");

    write_file(path, "listen: 127.0.0.1:1\nnope: 1\n");
    is_int(rt_config_load(&c, path, &err), -EINVAL, "unknown key refused");
    ok(strstr(err.msg, ":2: unknown setting 'nope'") != NULL, "names file, line, key: %s", err.msg);
    is_str(c.listen, "127.0.0.1:9999", "a bad file changes nothing");

    write_file(path, "api_threads: lots\n");
    is_int(rt_config_load(&c, path, &err), -EINVAL, "bad integer");
    ok(strstr(err.msg, "api_threads") != NULL, "names the key: %s", err.msg);
    write_file(path, "listen: [1, 2]\n");
    is_int(rt_config_load(&c, path, &err), -EINVAL, "a list is not a value");
    write_file(path, "listen: 'x\n");
    is_int(rt_config_load(&c, path, &err), -EINVAL, "YAML syntax error");
    write_file(path, "listen: nowhere\n");
    is_int(rt_config_load(&c, path, &err), -EINVAL, "listen without a port");
    write_file(path, "");
    is_int(rt_config_load(&c, path, &err), 0, "an empty file is fine");
    (void) snprintf(path + strlen(path), sizeof(path) - strlen(path), ".missing");
    is_int(rt_config_load(&c, path, &err), -ENOENT, "a missing file is an error");

    (void) snprintf(path, sizeof(path), "%s/runtimed.yaml", dir);
    (void) unlink(path);
    (void) rmdir(dir);
}

int main(void)
{
    tap_start();
    test_sha256();
    test_names();
    test_tokens();
    test_scopes();
    test_tiers();
    test_config();
    return tap_done();
}

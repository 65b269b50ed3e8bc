/* Runs the fuzz target (tests/fuzz/fuzz-spaceconfig.c) in `make test`, where clang and
 * libFuzzer may be missing: the committed corpus first, then a fixed number of
 * deterministic mutations of it (byte flips, YAML tokens, cuts, splices).  The ASan+UBSan
 * build of this test turns any memory error or undefined behaviour into a failure.
 * SP_FUZZ_RUNS overrides the number of mutations (default 50000). */
#define SP_FUZZ_NO_MAIN
#include "../../fuzz/fuzz-spaceconfig.c"

#include "../tap.h"

#include "banned.h"

#define CORPUS "tests/fuzz/corpus/spaceconfig"
#define MAX_INPUTS 256
#define MAX_LEN (70 * 1024)

struct corpus {
    char *data[MAX_INPUTS];
    size_t len[MAX_INPUTS];
    size_t n;
};

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void load_corpus(struct corpus *c)
{
    DIR *d = opendir(CORPUS);
    struct dirent *e;

    if (!d)
        return;
    while ((e = readdir(d)) && c->n < MAX_INPUTS) {
        _cleanup_close_ int fd = -1;
        char *buf;
        ssize_t n;

        if (e->d_name[0] == '.')
            continue;
        fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || !(buf = malloc(MAX_LEN)))
            continue;
        n = rt_read_all(fd, buf, MAX_LEN);
        if (n < 0) {
            free(buf);
            continue;
        }
        c->data[c->n] = buf;
        c->len[c->n++] = (size_t) n;
    }
    (void) closedir(d);
}

static const char *const tokens[] = {
    "---\n",
    "\n",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "&a ",
    "*a",
    "!!str ",
    "'",
    "\"",
    "\\0",
    "\\x",
    "|\n",
    ">-\n",
    "? ",
    "#",
    "~",
    "null",
    "true",
    "  ",
    "\t",
    "\r\n",
    "...\n",
    "sdk: ",
    "gradio",
    "static",
    "docker",
    "app_file: ",
    "app_port: ",
    "custom_headers:\n  ",
    "preload_from_hub: ",
    "${",
    "}",
    "$$",
    "run:\n  ",
    "port: ",
    "command: ",
    "build:\n  steps:\n",
    "\xf0\x9f\x94\xa5",
    "\xff",
    "\xc3",
    "99999999999999999999",
    "-1",
    "1h30m",
};

/* One mutation of buf (len bytes, room for MAX_LEN).  Returns the new length. */
static size_t mutate(char *buf, size_t len, const struct corpus *c)
{
    size_t at = len ? next() % len : 0;

    switch (next() % 6) {
    case 0: /* flip a byte */
        if (len)
            buf[at] = (char) next();
        return len;
    case 1: { /* insert a token */
        const char *t = tokens[next() % ARRAY_SIZE(tokens)];
        size_t tl = strlen(t);

        if (len + tl >= MAX_LEN)
            return len;
        memmove(buf + at + tl, buf + at, len - at);
        memcpy(buf + at, t, tl);
        return len + tl;
    }
    case 2: { /* cut a range */
        size_t l = len - at ? next() % (len - at) % 64 : 0;

        memmove(buf + at, buf + at + l, len - at - l);
        return len - l;
    }
    case 3: { /* duplicate a range */
        size_t l = len - at ? next() % (len - at) % 256 : 0;

        if (len + l >= MAX_LEN)
            return len;
        memmove(buf + at + l, buf + at, len - at);
        return len + l;
    }
    case 4: { /* splice in part of another input */
        size_t o = next() % c->n, ol = c->len[o], from = ol ? next() % ol : 0;
        size_t l = ol - from ? next() % (ol - from) % 512 : 0;

        if (len + l >= MAX_LEN)
            return len;
        memmove(buf + at + l, buf + at, len - at);
        memcpy(buf + at, c->data[o] + from, l);
        return len + l;
    }
    default: /* truncate */
        return at;
    }
}

int main(void)
{
    struct corpus c = { .n = 0 };
    const char *env = getenv("SP_FUZZ_RUNS");
    uint64_t runs = 50000;
    char *buf;
    int replayed;

    tap_start();
    if (env && rt_parse_u64(env, &runs) < 0)
        runs = 50000;
    load_corpus(&c);
    ok(c.n >= 10, "the corpus has %zu inputs", c.n);
    replayed = fuzz_replay(CORPUS);
    is_int(replayed, (int) c.n, "the corpus replays without a crash");
    buf = malloc(MAX_LEN);
    if (!buf || c.n == 0)
        return tap_done();
    for (uint64_t i = 0; i < runs; i++) {
        size_t k = next() % c.n, len = c.len[k], rounds = 1 + next() % 8;

        memcpy(buf, c.data[k], len);
        for (size_t j = 0; j < rounds; j++)
            len = mutate(buf, len, &c);
        (void) LLVMFuzzerTestOneInput((const uint8_t *) buf, len);
    }
    ok(1, "%" PRIu64 " mutated inputs ran without a crash", runs);
    free(buf);
    for (size_t i = 0; i < c.n; i++)
        free(c.data[i]);
    rt_templates_free(fuzz_templates());
    rt_strmap_done((struct rt_strmap *) fuzz_extra());
    return tap_done();
}

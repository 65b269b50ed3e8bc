/* Replays the committed HTTP corpus (tests/fuzz/corpus/http) through the fuzz target,
 * then deterministic mutations of it (byte flips, HTTP tokens, cuts, splices), so the
 * request path is fuzzed under ASan+UBSan even where clang/libFuzzer is missing.
 * SP_FUZZ_RUNS sets the number of mutations (default 3000). */
#define SP_FUZZ_NO_MAIN
#include "../../fuzz/fuzz-http.c"

#include <inttypes.h>

#include "../tap.h"

#define CORPUS "tests/fuzz/corpus/http"
#define MAX_IN 16384

static char corpus[64][MAX_IN];
static size_t corpus_len[64], ncorpus;

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static const char *const tokens[] = {
    "\r\n",
    "\r\n\r\n",
    "Content-Length: 5\r\n",
    "Transfer-Encoding: chunked\r\n",
    "Connection: close\r\n",
    "Upgrade: websocket\r\n",
    "Host: a.localhost\r\n",
    "0\r\n\r\n",
    "HTTP/1.1 101 Switching Protocols\r\n",
    "Expect: 100-continue\r\n",
    "\n--UP--\n",
    ":",
    "ffffffff\r\n",
    " ",
    "\0",
    "GET / HTTP/1.1\r\n",
    "HTTP/1.1 200 OK\r\n",
};

static size_t mutate(char *buf, size_t len)
{
    switch (next_rand() % 5) {
    case 0: /* flip bytes */
        for (int i = 0; i < 4 && len; i++)
            buf[next_rand() % len] ^= (char) (1u << (next_rand() % 8));
        return len;
    case 1: { /* insert a token */
        const char *t = tokens[next_rand() % ARRAY_SIZE(tokens)];
        size_t tl = strlen(t) ? strlen(t) : 1, at = len ? next_rand() % len : 0;
        if (len + tl >= MAX_IN)
            return len;
        memmove(buf + at + tl, buf + at, len - at);
        memcpy(buf + at, t, tl);
        return len + tl;
    }
    case 2: /* cut */
        return len ? next_rand() % len : 0;
    case 3: { /* splice another input in */
        size_t o = next_rand() % ncorpus, at = len ? next_rand() % len : 0;
        size_t take = corpus_len[o] ? next_rand() % corpus_len[o] : 0;
        if (at + take >= MAX_IN)
            return len;
        memcpy(buf + at, corpus[o], take);
        return at + take;
    }
    default: { /* duplicate a slice (pipelining, repeated headers) */
        if (!len)
            return len;
        size_t a = next_rand() % len, l = next_rand() % (len - a + 1);
        if (len + l >= MAX_IN)
            return len;
        memmove(buf + a + l, buf + a, len - a);
        return len + l;
    }
    }
}

int main(void)
{
    DIR *d;
    struct dirent *e;
    static char buf[MAX_IN];
    uint64_t runs = 3000;
    const char *env = getenv("SP_FUZZ_RUNS");

    tap_start();
    if (env)
        (void) rt_parse_u64(env, &runs);
    d = opendir(CORPUS);
    ok(d != NULL, "corpus directory '%s' opened", CORPUS);
    while (d && (e = readdir(d)) && ncorpus < ARRAY_SIZE(corpus)) {
        char p[512];
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof(p), "%s/%s", CORPUS, e->d_name);
        _cleanup_close_ int fd = open(p, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? rt_read_all(fd, corpus[ncorpus], MAX_IN) : -1;
        if (n > 0)
            corpus_len[ncorpus++] = (size_t) n;
    }
    if (d)
        closedir(d);
    ok(ncorpus >= 8, "the corpus has %zu inputs", ncorpus);
    for (size_t i = 0; i < ncorpus; i++)
        LLVMFuzzerTestOneInput((const uint8_t *) corpus[i], corpus_len[i]);
    ok(1, "the corpus replays without a crash");
    for (uint64_t r = 0; r < runs && ncorpus; r++) {
        size_t o = next_rand() % ncorpus, len = corpus_len[o];
        memcpy(buf, corpus[o], len);
        for (int k = 0, m = 1 + (int) (next_rand() % 3); k < m; k++)
            len = mutate(buf, len);
        LLVMFuzzerTestOneInput((const uint8_t *) buf, len);
    }
    ok(1, "%" PRIu64 " mutated inputs ran without a crash", runs);
    ok(fz_loop && !fz_loop->conns, "no connection left behind");
    fz_teardown();
    return tap_done();
}

/* Private Spaces and visitor identity.
 *
 * - Bearer tokens are checked by runtimed (POST /api/proxy/check-token, on the feed
 *   thread); answers are cached here, so a running private Space keeps admitting its
 *   readers while runtimed restarts.
 * - The sign-in cookie is "EXPIRY.HMAC(host, expiry)": it names one host, so a cookie
 *   for Space A is worthless on Space B even if a visitor copies it over.
 * - X-IP-Token is "v1;ip=IP;t=UNIX;sig=HMAC": the Space (and the ZeroGPU quota) can
 *   trust who the visitor is because only Spaceport knows the key.
 * Keys are derived from the proxy token that runtimed wrote, so runtimed can check the
 * same signatures: key = HMAC-SHA256(proxy token, "spaceport-cookie-v1" or
 * "spaceport-visitor-v1"); without a token they are random for this process. */
#include "proxy.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util.h"
#include "banned.h"

#define CACHE_SLOTS 4096
#define OK_TTL_MS 60000
#define DENY_TTL_MS 10000
#define PENDING_MS 3000

struct slot {
    unsigned char key[32]; /* SHA-256 of id NUL token: tokens are not kept in clear */
    uint8_t state;         /* enum px_token_state; UNKNOWN = asked, no answer yet */
    bool used;
    uint64_t at_ms;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot *cache;

static void hmac(const unsigned char *key, size_t kl, const void *msg, size_t ml,
                 unsigned char out[32])
{
    unsigned int len = 32;
    if (!HMAC(EVP_sha256(), key, (int) kl, msg, ml, out, &len))
        memset(out, 0, 32); /* cannot happen with SHA-256; never sign with garbage */
}

static void hex(const unsigned char *in, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[in[i] >> 4];
        out[2 * i + 1] = d[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void px_auth_init(const char *token)
{
    unsigned char seed[32];

    if (token && *token) {
        hmac((const unsigned char *) token, strlen(token), "spaceport-cookie-v1", 19,
             px_g.cookie_key);
        hmac((const unsigned char *) token, strlen(token), "spaceport-visitor-v1", 20,
             px_g.visitor_key);
    } else {
        if (getrandom(seed, sizeof(seed), 0) != sizeof(seed))
            (void) RAND_bytes(seed, sizeof(seed));
        hmac(seed, sizeof(seed), "spaceport-cookie-v1", 19, px_g.cookie_key);
        hmac(seed, sizeof(seed), "spaceport-visitor-v1", 20, px_g.visitor_key);
    }
    pthread_mutex_lock(&lock);
    if (!cache)
        cache = calloc(CACHE_SLOTS, sizeof(*cache));
    pthread_mutex_unlock(&lock);
}

void px_auth_done(void)
{
    pthread_mutex_lock(&lock);
    free(cache);
    cache = NULL;
    pthread_mutex_unlock(&lock);
}

static void key_of(const char *id, const char *tok, size_t tl, unsigned char out[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int len = 32;

    memset(out, 0, 32);
    if (!ctx)
        return;
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
        EVP_DigestUpdate(ctx, id, strlen(id) + 1) == 1 && EVP_DigestUpdate(ctx, tok, tl) == 1)
        (void) EVP_DigestFinal_ex(ctx, out, &len);
    EVP_MD_CTX_free(ctx);
}

/* The slot for @key: its own, or a free or oldest one in a short probe window. */
static struct slot *find(const unsigned char key[32], bool create)
{
    unsigned h;
    struct slot *victim = NULL;

    if (!cache)
        return NULL;
    memcpy(&h, key, sizeof(h));
    for (unsigned i = 0; i < 8; i++) {
        struct slot *s = &cache[(h + i) % CACHE_SLOTS];
        if (s->used && memcmp(s->key, key, 32) == 0)
            return s;
        if (!victim || !s->used || (victim->used && s->at_ms < victim->at_ms))
            victim = s;
    }
    if (!create)
        return NULL;
    memset(victim, 0, sizeof(*victim));
    memcpy(victim->key, key, 32);
    victim->used = true;
    return victim;
}

enum px_token_state px_auth_token(const char *id, const char *token, size_t token_len)
{
    unsigned char key[32];
    uint64_t now = rt_now_ns() / 1000000;
    enum px_token_state st = PX_TOKEN_UNKNOWN;
    bool ask = false;
    char tok[512];

    if (token_len >= sizeof(tok))
        return PX_TOKEN_DENIED;
    key_of(id, token, token_len, key);
    pthread_mutex_lock(&lock);
    struct slot *s = find(key, true);
    if (!s) {
        pthread_mutex_unlock(&lock);
        return PX_TOKEN_DENIED;
    }
    if (s->at_ms == 0) {
        s->state = PX_TOKEN_UNKNOWN;
        s->at_ms = now;
        ask = true;
    } else {
        st = (enum px_token_state) s->state;
        uint64_t age = now - s->at_ms;
        /* A stale answer still counts (runtimed may be down); it is refreshed behind. */
        if ((st == PX_TOKEN_OK && age > OK_TTL_MS) ||
            (st == PX_TOKEN_DENIED && age > DENY_TTL_MS) ||
            (st == PX_TOKEN_UNKNOWN && age > PENDING_MS)) {
            if (st == PX_TOKEN_DENIED)
                st = PX_TOKEN_UNKNOWN; /* a denial is not kept past its time */
            s->at_ms = now;
            if (s->state == PX_TOKEN_DENIED)
                s->state = PX_TOKEN_UNKNOWN;
            ask = true;
        }
    }
    pthread_mutex_unlock(&lock);
    if (ask) {
        memcpy(tok, token, token_len);
        tok[token_len] = '\0';
        (void) px_feed_post(PX_JOB_CHECK_TOKEN, id, tok);
    }
    return st;
}

void px_auth_token_store(const char *id, const char *token, bool read)
{
    unsigned char key[32];

    key_of(id, token, strlen(token), key);
    pthread_mutex_lock(&lock);
    struct slot *s = find(key, true);
    if (s) {
        s->state = read ? PX_TOKEN_OK : PX_TOKEN_DENIED;
        s->at_ms = rt_now_ns() / 1000000;
    }
    pthread_mutex_unlock(&lock);
}

void px_auth_token_failed(const char *id, const char *token)
{
    unsigned char key[32];
    uint64_t now = rt_now_ns() / 1000000;

    key_of(id, token, strlen(token), key);
    pthread_mutex_lock(&lock);
    struct slot *s = find(key, true);
    if (s && s->state == PX_TOKEN_OK) {
        /* runtimed is away: a reader stays a reader; ask again in a few seconds */
        s->at_ms = now > OK_TTL_MS ? now - OK_TTL_MS + 5000 : now;
    } else if (s) {
        s->state = PX_TOKEN_DENIED; /* unknown while runtimed is away: no, for now */
        s->at_ms = now;
    }
    pthread_mutex_unlock(&lock);
}

size_t px_auth_cookie_make(const char *host, uint64_t now_s, char *buf, size_t cap)
{
    char msg[320];
    unsigned char mac[32];
    char mh[65];
    unsigned long long exp = (unsigned long long) now_s + PX_COOKIE_TTL_S;
    int n = snprintf(msg, sizeof(msg), "%s\n%llu", host, exp);

    hmac(px_g.cookie_key, 32, msg, (size_t) n, mac);
    hex(mac, 32, mh);
    n = snprintf(buf, cap, "%llu.%s", exp, mh);
    return n > 0 ? (size_t) n : 0;
}

bool px_auth_cookie_check(const char *host, const char *val, size_t len, uint64_t now_s)
{
    char msg[320], mh[65];
    unsigned char mac[32];
    unsigned long long exp = 0;
    size_t i = 0;

    while (i < len && i < 20 && val[i] >= '0' && val[i] <= '9')
        exp = exp * 10 + (unsigned long long) (val[i++] - '0');
    if (i == 0 || i >= len || val[i] != '.' || len - i - 1 != 64 || exp < now_s)
        return false;
    int n = snprintf(msg, sizeof(msg), "%s\n%llu", host, exp);
    if (n <= 0 || (size_t) n >= sizeof(msg))
        return false;
    hmac(px_g.cookie_key, 32, msg, (size_t) n, mac);
    hex(mac, 32, mh);
    return CRYPTO_memcmp(mh, val + i + 1, 64) == 0;
}

size_t px_auth_visitor(const char *ip, uint64_t now_s, char *buf, size_t cap)
{
    /* One HMAC per visitor per second and loop thread, not one per request. */
    static __thread char last_ip[48], last_val[200];
    static __thread uint64_t last_t;
    static __thread size_t last_len;
    char msg[128], mh[65];
    unsigned char mac[32];
    int n;

    if (last_len && last_t == now_s && strcmp(last_ip, ip) == 0 && last_len < cap) {
        memcpy(buf, last_val, last_len + 1);
        return last_len;
    }
    n = snprintf(msg, sizeof(msg), "v1;ip=%s;t=%llu", ip, (unsigned long long) now_s);
    if (n <= 0 || (size_t) n >= sizeof(msg))
        return 0;
    hmac(px_g.visitor_key, 32, msg, (size_t) n, mac);
    hex(mac, 32, mh);
    n = snprintf(buf, cap, "%s;sig=%s", msg, mh);
    if (n <= 0 || (size_t) n >= cap)
        return 0;
    if ((size_t) n < sizeof(last_val) && strlen(ip) < sizeof(last_ip)) {
        memcpy(last_val, buf, (size_t) n + 1);
        snprintf(last_ip, sizeof(last_ip), "%s", ip);
        last_t = now_s;
        last_len = (size_t) n;
    }
    return (size_t) n;
}

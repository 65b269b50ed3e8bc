/* Private Spaces and visitor identity.
 *
 * - Bearer tokens are checked by runtimed (POST /api/proxy/check-token, on the feed
 *   thread); answers are cached here, so a running private Space keeps admitting its
 *   readers while runtimed restarts.
 * - The sign-in cookie is "EXPIRY.CLASS.USER.HMAC(host, expiry, user, class)" (or, from
 *   an older proxy, "EXPIRY.HMAC(host, expiry)", no one in particular): it names one
 *   host, so a cookie for Space A is worthless on Space B even if a visitor copies it.
 * - X-IP-Token is an HS256 JWT {"ip", "user" (signed-in only), "class", "exp"}, the
 *   Hub's shape: the Space (and the ZeroGPU quota) can trust who the visitor is because
 *   only Spaceport knows the key.
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
#define OK_TTL_MS (px_g.cfg.token_cache_ms ? px_g.cfg.token_cache_ms : 60000)
#define DENY_TTL_MS 10000
#define PENDING_MS 3000

struct slot {
    unsigned char key[32]; /* SHA-256 of id NUL token: tokens are not kept in clear */
    uint8_t state;         /* enum px_token_state; UNKNOWN = asked, no answer yet */
    bool used;
    uint8_t cls; /* enum px_class of user */
    uint64_t at_ms;
    char user[PX_USER_MAX]; /* whose token: "" when runtimed did not say */
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

enum px_class px_class_from_name(const char *s)
{
    if (s && strcmp(s, "pro") == 0)
        return PX_CLASS_PRO;
    if (s && strcmp(s, "anonymous") == 0)
        return PX_CLASS_ANON;
    return PX_CLASS_USER;
}

const char *px_class_name(enum px_class c)
{
    return c == PX_CLASS_PRO ? "pro" : c == PX_CLASS_USER ? "user" : "anonymous";
}

bool px_user_name_ok(const char *s, size_t len)
{
    if (len == 0 || len >= PX_USER_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return false;
    }
    return true;
}

enum px_token_state px_auth_token(const char *id, const char *token, size_t token_len,
                                  struct px_who *who)
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
    if (who && st == PX_TOKEN_OK) {
        memcpy(who->user, s->user, sizeof(who->user));
        who->cls = s->user[0] ? s->cls : PX_CLASS_ANON;
    }
    pthread_mutex_unlock(&lock);
    if (ask) {
        memcpy(tok, token, token_len);
        tok[token_len] = '\0';
        (void) px_feed_post(PX_JOB_CHECK_TOKEN, id, tok);
    }
    return st;
}

void px_auth_token_store(const char *id, const char *token, bool read, const char *user,
                         enum px_class cls)
{
    unsigned char key[32];

    key_of(id, token, strlen(token), key);
    pthread_mutex_lock(&lock);
    struct slot *s = find(key, true);
    if (s) {
        s->state = read ? PX_TOKEN_OK : PX_TOKEN_DENIED;
        s->at_ms = rt_now_ns() / 1000000;
        /* A name we could not put in a header or cookie safely: an anonymous reader. */
        if (user && px_user_name_ok(user, strlen(user))) {
            snprintf(s->user, sizeof(s->user), "%s", user);
            s->cls = (uint8_t) (cls == PX_CLASS_PRO ? PX_CLASS_PRO : PX_CLASS_USER);
        } else {
            s->user[0] = '\0';
            s->cls = PX_CLASS_ANON;
        }
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

/* "host\nexpiry" (no one in particular) or "host\nexpiry\nuser\nclass". */
static int cookie_msg(char *msg, size_t cap, const char *host, unsigned long long exp,
                      const char *user, size_t ul, const char *cls)
{
    int n = user ? snprintf(msg, cap, "%s\n%llu\n%.*s\n%s", host, exp, (int) ul, user, cls)
                 : snprintf(msg, cap, "%s\n%llu", host, exp);
    return n > 0 && (size_t) n < cap ? n : -1;
}

size_t px_auth_cookie_make(const char *host, const struct px_who *who, uint64_t now_s, char *buf,
                           size_t cap)
{
    char msg[400];
    unsigned char mac[32];
    char mh[65];
    unsigned long long exp = (unsigned long long) now_s + PX_COOKIE_TTL_S;
    bool named = who && who->user[0];
    const char *cls = named ? px_class_name((enum px_class) who->cls) : "";
    int n = cookie_msg(msg, sizeof(msg), host, exp, named ? who->user : NULL,
                       named ? strlen(who->user) : 0, cls);

    if (n < 0)
        return 0;
    hmac(px_g.cookie_key, 32, msg, (size_t) n, mac);
    hex(mac, 32, mh);
    n = named ? snprintf(buf, cap, "%llu.%s.%s.%s", exp, cls, who->user, mh)
              : snprintf(buf, cap, "%llu.%s", exp, mh);
    return n > 0 && (size_t) n < cap ? (size_t) n : 0;
}

bool px_auth_cookie_check(const char *host, const char *val, size_t len, uint64_t now_s,
                          struct px_who *who)
{
    char msg[400], mh[65], cls[16] = "";
    unsigned char mac[32];
    unsigned long long exp = 0;
    const char *user = NULL;
    size_t i = 0, ul = 0;
    int n;

    while (i < len && i < 20 && val[i] >= '0' && val[i] <= '9')
        exp = exp * 10 + (unsigned long long) (val[i++] - '0');
    if (i == 0 || i >= len || val[i] != '.' || len - i - 1 < 64 || exp < now_s)
        return false;
    if (len - i - 1 > 64) {
        /* ".CLASS.USER." between the expiry and the MAC (user names may hold dots) */
        const char *c0 = val + i + 1, *end = val + len - 65, *dot;
        if (*end != '.' || !(dot = memchr(c0, '.', (size_t) (end - c0))) ||
            (size_t) (dot - c0) >= sizeof(cls))
            return false;
        memcpy(cls, c0, (size_t) (dot - c0));
        user = dot + 1;
        ul = (size_t) (end - user);
        if ((strcmp(cls, "user") != 0 && strcmp(cls, "pro") != 0) || !px_user_name_ok(user, ul))
            return false;
    }
    n = cookie_msg(msg, sizeof(msg), host, exp, user, ul, cls);
    if (n < 0)
        return false;
    hmac(px_g.cookie_key, 32, msg, (size_t) n, mac);
    hex(mac, 32, mh);
    if (CRYPTO_memcmp(mh, val + len - 64, 64) != 0)
        return false;
    if (who) {
        memset(who, 0, sizeof(*who));
        if (user) {
            memcpy(who->user, user, ul);
            who->cls = (uint8_t) px_class_from_name(cls);
        }
    }
    return true;
}

static size_t b64url(const void *in, size_t n, char *out, size_t cap)
{
    static const char d[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = in;
    size_t o = 0;

    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t) p[i] << 16;
        size_t k = n - i >= 3 ? 4 : n - i + 1; /* unpadded, as JWTs are */

        if (i + 1 < n)
            v |= (uint32_t) p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        if (o + k >= cap)
            return 0;
        for (size_t j = 0; j < k; j++)
            out[o++] = d[(v >> (18 - 6 * j)) & 63];
    }
    out[o] = '\0';
    return o;
}

size_t px_auth_visitor(const char *ip, const struct px_who *who, uint64_t now_s, char *buf,
                       size_t cap)
{
    /* One HMAC per visitor per second and loop thread, not one per request. */
    static __thread char last_ip[48], last_user[PX_USER_MAX], last_val[600];
    static __thread uint64_t last_t;
    static __thread uint8_t last_cls;
    static __thread size_t last_len;
    /* base64url of {"alg":"HS256","typ":"JWT"} */
    static const char hdr[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
    const char *user = who && who->user[0] ? who->user : "";
    enum px_class cls = user[0] ? (enum px_class) who->cls : PX_CLASS_ANON;
    char pl[256];
    unsigned char mac[32];
    size_t n, m;
    int pn;

    if (last_len && last_t == now_s && last_cls == cls && strcmp(last_ip, ip) == 0 &&
        strcmp(last_user, user) == 0 && last_len < cap) {
        memcpy(buf, last_val, last_len + 1);
        return last_len;
    }
    /* ip is an address we printed, user passed px_user_name_ok: no JSON escaping needed */
    if (user[0] && px_user_name_ok(user, strlen(user)))
        pn = snprintf(pl, sizeof(pl),
                      "{\"ip\":\"%s\",\"user\":\"%s\",\"class\":\"%s\",\"exp\":%llu}", ip, user,
                      px_class_name(cls), (unsigned long long) now_s + PX_VISITOR_TTL_S);
    else
        pn = snprintf(pl, sizeof(pl), "{\"ip\":\"%s\",\"class\":\"anonymous\",\"exp\":%llu}", ip,
                      (unsigned long long) now_s + PX_VISITOR_TTL_S);
    if (pn <= 0 || (size_t) pn >= sizeof(pl) || cap < sizeof(hdr) + 1)
        return 0;
    memcpy(buf, hdr, sizeof(hdr) - 1);
    n = sizeof(hdr) - 1;
    buf[n++] = '.';
    m = b64url(pl, (size_t) pn, buf + n, cap - n);
    if (!m || n + m + 1 >= cap)
        return 0;
    n += m;
    hmac(px_g.visitor_key, 32, buf, n, mac);
    buf[n++] = '.';
    m = b64url(mac, sizeof(mac), buf + n, cap - n);
    if (!m)
        return 0;
    n += m;
    if (n < sizeof(last_val) && strlen(ip) < sizeof(last_ip)) {
        memcpy(last_val, buf, n + 1);
        snprintf(last_ip, sizeof(last_ip), "%s", ip);
        snprintf(last_user, sizeof(last_user), "%s", user);
        last_cls = (uint8_t) cls;
        last_t = now_s;
        last_len = n;
    }
    return n;
}

/* Visitor tokens: who is calling a ZeroGPU function, signed by Spaceport so that a
 * Space cannot pick whose quota it spends.  The JWT shape is the Hub's X-IP-Token's,
 * which the spaces client decodes (unverified) to show "Falling back to IP-based
 * quotas"; spaceproxy's "v1;" header is accepted as well. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cleanup.h"
#include "devapi.h"
#include "sha256.h"

#include "banned.h"

void gpu_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t len, uint8_t out[32])
{
    uint8_t k[64] = { 0 }, pad[64], inner[RT_SHA256_LEN];
    struct rt_sha256 c;

    if (key_len > sizeof(k)) {
        rt_sha256_init(&c);
        rt_sha256_update(&c, key, key_len);
        rt_sha256_final(&c, k);
    } else if (key_len) {
        memcpy(k, key, key_len);
    }
    for (size_t i = 0; i < sizeof(pad); i++)
        pad[i] = k[i] ^ 0x36;
    rt_sha256_init(&c);
    rt_sha256_update(&c, pad, sizeof(pad));
    rt_sha256_update(&c, msg, len);
    rt_sha256_final(&c, inner);
    for (size_t i = 0; i < sizeof(pad); i++)
        pad[i] = k[i] ^ 0x5c;
    rt_sha256_init(&c);
    rt_sha256_update(&c, pad, sizeof(pad));
    rt_sha256_update(&c, inner, sizeof(inner));
    rt_sha256_final(&c, out);
}

void gpu_visitor_key(const void *secret, size_t len, uint8_t key[GPU_VISITOR_KEY_LEN])
{
    gpu_hmac_sha256(secret, len, "spaceport-visitor-v1", 20, key);
}

/* Constant time: a timing oracle must not reveal how much of a signature matched. */
static bool same(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint8_t d = 0;

    for (size_t i = 0; i < n; i++)
        d |= a[i] ^ b[i];
    return d == 0;
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64url_encode(const uint8_t *in, size_t n, char *out, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t) in[i] << 16;
        size_t k = n - i >= 3 ? 4 : n - i + 1;

        if (i + 1 < n)
            v |= (uint32_t) in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        if (o + k >= cap)
            return 0;
        for (size_t j = 0; j < k; j++)
            out[o++] = b64url[(v >> (18 - 6 * j)) & 63];
    }
    if (o >= cap)
        return 0;
    out[o] = '\0';
    return o;
}

static int b64val(char c)
{
    const char *p = c ? memchr(b64url, c, 64) : NULL;

    return p ? (int) (p - b64url) : -1;
}

/* Unpadded base64url only (what JWTs use).  Returns the length or -1. */
static ssize_t b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;

    if (n % 4 == 1)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int v = b64val(in[i]);

        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t) v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return -1;
            out[o++] = (uint8_t) (acc >> bits);
        }
    }
    return (ssize_t) o;
}

/* Identities end up in quota keys and listings: printable ASCII, no separators. */
static bool id_ok(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n == 0 || n >= max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] >= 0x7f || s[i] == '"' || s[i] == '\\' || s[i] == ';')
            return false;
    return true;
}

#define PART_MAX 1024

static json_t *decode_json(const char *in, size_t n)
{
    uint8_t buf[PART_MAX];
    ssize_t len = b64url_decode(in, n, buf, sizeof(buf));

    if (len <= 0)
        return NULL;
    return json_loadb((const char *) buf, (size_t) len, JSON_REJECT_DUPLICATES, NULL);
}

static int verify_jwt(const uint8_t *key, const char *tok, size_t len, uint64_t now_s,
                      struct gpu_visitor *ret)
{
    const char *d1 = memchr(tok, '.', len), *d2;
    uint8_t mac[32], sig[40];
    json_t *hdr, *pl, *v;
    const char *alg, *user, *ip, *cls;
    struct gpu_visitor out = { 0 };
    int r = -EINVAL;

    if (!d1)
        return -EINVAL;
    d2 = memchr(d1 + 1, '.', len - (size_t) (d1 + 1 - tok));
    if (!d2 || memchr(d2 + 1, '.', len - (size_t) (d2 + 1 - tok)))
        return -EINVAL;
    gpu_hmac_sha256(key, GPU_VISITOR_KEY_LEN, tok, (size_t) (d2 - tok), mac);
    if (b64url_decode(d2 + 1, len - (size_t) (d2 + 1 - tok), sig, sizeof(sig)) != 32 ||
        !same(mac, sig, 32))
        return -EINVAL;
    /* Signed by us: still parse strictly, a key may leak to a test or a log. */
    hdr = decode_json(tok, (size_t) (d1 - tok));
    alg = json_string_value(json_object_get(hdr, "alg"));
    if (!alg || strcmp(alg, "HS256") != 0) {
        json_decref(hdr);
        return -EINVAL;
    }
    json_decref(hdr);
    pl = decode_json(d1 + 1, (size_t) (d2 - d1 - 1));
    if (!json_is_object(pl))
        goto out;
    v = json_object_get(pl, "exp");
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        goto out;
    if ((uint64_t) json_integer_value(v) <= now_s) {
        r = -ETIMEDOUT;
        goto out;
    }
    user = json_string_value(json_object_get(pl, "user"));
    ip = json_string_value(json_object_get(pl, "ip"));
    cls = json_string_value(json_object_get(pl, "class"));
    if (user) {
        int c = cls ? gpu_class_from_name(cls) : GPU_CLASS_USER;

        if (c < 0 || !id_ok(user, GPU_ID_MAX - 5))
            goto out;
        snprintf(out.identity, sizeof(out.identity), "user:%s", user);
        out.cls = (enum gpu_class) c;
    } else if (ip && id_ok(ip, GPU_ID_MAX - 3)) {
        snprintf(out.identity, sizeof(out.identity), "ip:%s", ip);
        out.cls = GPU_CLASS_ANON;
    } else {
        goto out;
    }
    *ret = out;
    r = 0;
out:
    json_decref(pl);
    return r;
}

/* "v1;ip=IP;t=UNIX;sig=HEX": spaceproxy's header, anonymous by address. */
static int verify_v1(const uint8_t *key, const char *tok, size_t len, uint64_t now_s,
                     uint32_t max_age_s, struct gpu_visitor *ret)
{
    char msg[160], ip[64], hex[65];
    uint8_t mac[32], sig[32];
    unsigned long long t;
    size_t mlen;
    int n = 0;

    if (len < 8 + 64 || len - 64 - 5 >= sizeof(msg))
        return -EINVAL;
    mlen = len - 64 - 5;
    if (memcmp(tok + mlen, ";sig=", 5) != 0)
        return -EINVAL;
    memcpy(msg, tok, mlen);
    msg[mlen] = '\0';
    memcpy(hex, tok + mlen + 5, 64);
    hex[64] = '\0';
    for (size_t i = 0; i < 32; i++) {
        unsigned b;

        if (sscanf(hex + 2 * i, "%2x", &b) != 1 || !strchr("0123456789abcdef", hex[2 * i]) ||
            !strchr("0123456789abcdef", hex[2 * i + 1]))
            return -EINVAL;
        sig[i] = (uint8_t) b;
    }
    gpu_hmac_sha256(key, GPU_VISITOR_KEY_LEN, msg, mlen, mac);
    if (!same(mac, sig, 32))
        return -EINVAL;
    if (sscanf(msg, "v1;ip=%63[^;];t=%llu%n", ip, &t, &n) != 2 || (size_t) n != mlen ||
        !id_ok(ip, sizeof(ip)))
        return -EINVAL;
    /* Issued per request by the proxy: old ones expire, and a clock skew of a few
     * minutes into the future is tolerated. */
    if (t + max_age_s <= now_s || t > now_s + 300)
        return -ETIMEDOUT;
    snprintf(ret->identity, sizeof(ret->identity), "ip:%s", ip);
    ret->cls = GPU_CLASS_ANON;
    return 0;
}

int gpu_visitor_verify(const uint8_t key[GPU_VISITOR_KEY_LEN], const char *tok, size_t len,
                       uint64_t now_s, uint32_t max_age_s, struct gpu_visitor *ret)
{
    if (!key || !tok || len == 0 || len > 2048)
        return -EINVAL;
    if (len > 3 && memcmp(tok, "v1;", 3) == 0)
        return verify_v1(key, tok, len, now_s, max_age_s, ret);
    return verify_jwt(key, tok, len, now_s, ret);
}

size_t gpu_visitor_sign(const uint8_t key[GPU_VISITOR_KEY_LEN], const char *ip, const char *user,
                        enum gpu_class cls, uint64_t exp_s, char *buf, size_t cap)
{
    static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    json_t *pl = json_object();
    _cleanup_free_ char *js = NULL;
    uint8_t mac[32];
    size_t n, m, k;

    if (!pl)
        return 0;
    if (ip)
        json_object_set_new(pl, "ip", json_string(ip));
    if (user) {
        json_object_set_new(pl, "user", json_string(user));
        json_object_set_new(pl, "class", json_string(gpu_class_name(cls)));
    }
    json_object_set_new(pl, "exp", json_integer((json_int_t) exp_s));
    js = json_dumps(pl, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(pl);
    if (!js)
        return 0;
    n = b64url_encode((const uint8_t *) hdr, sizeof(hdr) - 1, buf, cap);
    if (!n || n + 1 >= cap)
        return 0;
    buf[n++] = '.';
    m = b64url_encode((const uint8_t *) js, strlen(js), buf + n, cap - n);
    if (!m)
        return 0;
    n += m;
    gpu_hmac_sha256(key, GPU_VISITOR_KEY_LEN, buf, n, mac);
    if (n + 1 >= cap)
        return 0;
    buf[n++] = '.';
    k = b64url_encode(mac, sizeof(mac), buf + n, cap - n);
    return k ? n + k : 0;
}

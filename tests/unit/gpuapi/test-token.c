/* Unit tests for visitor tokens (gpu-sched/devapi-token.c): HMAC-SHA256 against
 * RFC 4231, base64url, JWT sign/verify, tampering, expiry, spaceproxy's "v1;"
 * header, and hostile shapes. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../tap.h"
#include "gpu-sched/devapi-token.c"

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static void test_hmac_rfc4231(void)
{
    uint8_t key[131], mac[32];
    char h[65];

    /* Test case 1 */
    memset(key, 0x0b, 20);
    gpu_hmac_sha256(key, 20, "Hi There", 8, mac);
    hex(mac, 32, h);
    is_str(h, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", "rfc4231 #1");
    /* Test case 2: a short key */
    gpu_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac);
    hex(mac, 32, h);
    is_str(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", "rfc4231 #2");
    /* Test case 6: a key longer than the block is hashed first */
    memset(key, 0xaa, sizeof(key));
    gpu_hmac_sha256(key, 131, "Test Using Larger Than Block-Size Key - Hash Key First", 54, mac);
    hex(mac, 32, h);
    is_str(h, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", "rfc4231 #6");
}

static void test_b64url(void)
{
    char out[16];
    uint8_t back[16];

    is_int(b64url_encode((const uint8_t *) "f", 1, out, sizeof(out)), 2, "f: 2 chars");
    is_str(out, "Zg", "unpadded");
    b64url_encode((const uint8_t *) "\xfb\xff", 2, out, sizeof(out));
    is_str(out, "-_8", "url alphabet");
    is_int(b64url_decode("-_8", 3, back, sizeof(back)), 2, "decodes back");
    ok(back[0] == 0xfb && back[1] == 0xff, "same bytes");
    is_int(b64url_decode("Zg==", 4, back, sizeof(back)), -1, "padding refused");
    is_int(b64url_decode("Z", 1, back, sizeof(back)), -1, "impossible length refused");
    is_int(b64url_decode("a+b/", 4, back, sizeof(back)), -1, "standard alphabet refused");
    is_int(b64url_encode((const uint8_t *) "abcdef", 6, out, 8), 0, "too small a buffer: 0");
}

static void test_jwt(void)
{
    uint8_t key[32], other[32];
    char tok[1024], bad[1024];
    struct gpu_visitor v;
    size_t n;

    gpu_visitor_key("proxy-token", 11, key);
    gpu_visitor_key("another", 7, other);
    n = gpu_visitor_sign(key, NULL, "alice", GPU_CLASS_PRO, 2000, tok, sizeof(tok));
    ok(n > 0 && strlen(tok) == n, "signed");
    is_int(gpu_visitor_verify(key, tok, n, 1000, 3600, &v), 0, "verifies");
    is_str(v.identity, "user:alice", "user identity");
    is_int(v.cls, GPU_CLASS_PRO, "pro class");
    is_int(gpu_visitor_verify(key, tok, n, 2000, 3600, &v), -ETIMEDOUT, "expired at exp");
    is_int(gpu_visitor_verify(other, tok, n, 1000, 3600, &v), -EINVAL, "another key: invalid");

    n = gpu_visitor_sign(key, "203.0.113.7", NULL, GPU_CLASS_USER, 2000, tok, sizeof(tok));
    is_int(gpu_visitor_verify(key, tok, n, 1000, 3600, &v), 0, "ip token verifies");
    is_str(v.identity, "ip:203.0.113.7", "ip identity");
    is_int(v.cls, GPU_CLASS_ANON, "anonymous class");

    /* Flip one character of the payload: the MAC no longer matches. */
    memcpy(bad, tok, n + 1);
    bad[strchr(bad, '.') - bad + 3] ^= 1;
    is_int(gpu_visitor_verify(key, bad, n, 1000, 3600, &v), -EINVAL, "tampered payload");
    /* Cut the signature short, add a fourth part, drop a part. */
    is_int(gpu_visitor_verify(key, tok, n - 1, 1000, 3600, &v), -EINVAL, "short signature");
    snprintf(bad, sizeof(bad), "%s.x", tok);
    is_int(gpu_visitor_verify(key, bad, strlen(bad), 1000, 3600, &v), -EINVAL, "four parts");
    is_int(gpu_visitor_verify(key, tok, (size_t) (strrchr(tok, '.') - tok), 1000, 3600, &v),
           -EINVAL, "two parts");
    is_int(gpu_visitor_verify(key, "", 0, 1000, 3600, &v), -EINVAL, "empty");
    is_int(gpu_visitor_verify(key, "..", 2, 1000, 3600, &v), -EINVAL, "only dots");
    is_int(gpu_visitor_verify(NULL, tok, n, 1000, 3600, &v), -EINVAL, "no key: invalid");
}

/* A correctly signed token whose payload is @json: only parsing can refuse it. */
static int verify_payload(const uint8_t *key, const char *json)
{
    static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char tok[1024];
    uint8_t mac[32];
    size_t n = b64url_encode((const uint8_t *) hdr, strlen(hdr), tok, sizeof(tok));
    struct gpu_visitor v;

    tok[n++] = '.';
    n += b64url_encode((const uint8_t *) json, strlen(json), tok + n, sizeof(tok) - n);
    gpu_hmac_sha256(key, 32, tok, n, mac);
    tok[n++] = '.';
    n += b64url_encode(mac, 32, tok + n, sizeof(tok) - n);
    return gpu_visitor_verify(key, tok, n, 1000, 3600, &v);
}

static void test_jwt_payloads(void)
{
    uint8_t key[32];

    gpu_visitor_key("k", 1, key);
    is_int(verify_payload(key, "{\"user\":\"bob\",\"exp\":2000}"), 0, "minimal user payload");
    is_int(verify_payload(key, "{\"user\":\"bob\"}"), -EINVAL, "no exp");
    is_int(verify_payload(key, "{\"user\":\"bob\",\"exp\":\"2000\"}"), -EINVAL, "string exp");
    is_int(verify_payload(key, "{\"user\":\"bob\",\"exp\":-1}"), -EINVAL, "negative exp");
    is_int(verify_payload(key, "{\"exp\":2000}"), -EINVAL, "nobody named");
    is_int(verify_payload(key, "{\"user\":\"b b\",\"exp\":2000}"), -EINVAL, "space in a name");
    is_int(verify_payload(key, "{\"user\":\"bob;x\",\"exp\":2000}"), -EINVAL, "separator");
    is_int(verify_payload(key, "{\"user\":\"bob\",\"class\":\"root\",\"exp\":2000}"), -EINVAL,
           "unknown class");
    is_int(verify_payload(key, "{\"user\":\"bob\",\"user\":\"eve\",\"exp\":2000}"), -EINVAL,
           "duplicate key");
    is_int(verify_payload(key, "[1,2]"), -EINVAL, "not an object");
    is_int(verify_payload(key, "{\"user\":\"bob\",\"exp\":2000"), -EINVAL, "truncated JSON");
}

static void test_v1(void)
{
    uint8_t key[32], mac[32];
    char msg[128], tok[256], h[65];
    struct gpu_visitor v;

    gpu_visitor_key("proxy-token", 11, key);
    snprintf(msg, sizeof(msg), "v1;ip=192.0.2.1;t=1000");
    gpu_hmac_sha256(key, 32, msg, strlen(msg), mac);
    hex(mac, 32, h);
    snprintf(tok, sizeof(tok), "%s;sig=%s", msg, h);
    is_int(gpu_visitor_verify(key, tok, strlen(tok), 1010, 3600, &v), 0, "v1 verifies");
    is_str(v.identity, "ip:192.0.2.1", "v1 identity");
    is_int(gpu_visitor_verify(key, tok, strlen(tok), 1000 + 3600, 3600, &v), -ETIMEDOUT,
           "v1 too old");
    is_int(gpu_visitor_verify(key, tok, strlen(tok), 500, 3600, &v), -ETIMEDOUT,
           "v1 from the future");
    tok[strlen(tok) - 1] = tok[strlen(tok) - 1] == '0' ? '1' : '0';
    is_int(gpu_visitor_verify(key, tok, strlen(tok), 1010, 3600, &v), -EINVAL, "v1 bad sig");
    snprintf(tok, sizeof(tok), "%s;sig=%s", msg, h);
    tok[strlen(tok) - 1] = 'G';
    is_int(gpu_visitor_verify(key, tok, strlen(tok), 1010, 3600, &v), -EINVAL, "v1 non-hex");
    is_int(gpu_visitor_verify(key, "v1;", 3, 1010, 3600, &v), -EINVAL, "v1 stub");
}

int main(void)
{
    tap_start();
    test_hmac_rfc4231();
    test_b64url();
    test_jwt();
    test_jwt_payloads();
    test_v1();
    return tap_done();
}

/* X-IP-Token as spaceproxy builds it (proxy/auth.c): an HS256 JWT the ZeroGPU device
 * API verifies (gpu-sched/devapi-token.c).  Checked here with an independent HMAC and
 * base64url decoder, the key derived from the proxy token as runtimed derives it; and
 * the sign-in cookie that carries a user and class. */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "proxy/proxy.h"

#define SECRET "a proxy token"

static int b64val(char ch)
{
    static const char d[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *p = ch ? strchr(d, ch) : NULL;
    return p ? (int) (p - d) : -1;
}

/* Unpadded base64url; returns the length or -1. */
static int unb64(const char *in, size_t n, unsigned char *out, size_t cap)
{
    unsigned acc = 0, bits = 0;
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        int v = b64val(in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned) v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return -1;
            out[o++] = (unsigned char) (acc >> bits);
        }
    }
    return (int) o;
}

/* Verifies @tok under the key runtimed derives from SECRET; returns its payload. */
static json_t *verify(const char *tok)
{
    unsigned char key[32], mac[32], sig[64], part[512];
    unsigned int kl = 32, ml = 32;
    const char *d1 = strchr(tok, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    json_t *hdr;
    int n;

    if (!d2 || strchr(d2 + 1, '.'))
        return NULL;
    HMAC(EVP_sha256(), SECRET, (int) strlen(SECRET), (const unsigned char *) "spaceport-visitor-v1",
         20, key, &kl);
    HMAC(EVP_sha256(), key, 32, (const unsigned char *) tok, (size_t) (d2 - tok), mac, &ml);
    if (unb64(d2 + 1, strlen(d2 + 1), sig, sizeof(sig)) != 32 || memcmp(sig, mac, 32) != 0)
        return NULL;
    n = unb64(tok, (size_t) (d1 - tok), part, sizeof(part));
    hdr = n > 0 ? json_loadb((const char *) part, (size_t) n, 0, NULL) : NULL;
    if (!hdr || strcmp(json_string_value(json_object_get(hdr, "alg")) ?: "", "HS256") != 0 ||
        strcmp(json_string_value(json_object_get(hdr, "typ")) ?: "", "JWT") != 0) {
        json_decref(hdr);
        return NULL;
    }
    json_decref(hdr);
    n = unb64(d1 + 1, (size_t) (d2 - d1 - 1), part, sizeof(part));
    return n > 0 ? json_loadb((const char *) part, (size_t) n, JSON_REJECT_DUPLICATES, NULL) : NULL;
}

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void test_anonymous(void)
{
    char v[640];
    size_t n = px_auth_visitor("192.0.2.1", NULL, 1000, v, sizeof(v));
    json_t *pl;

    ok(n > 0 && n == strlen(v), "anonymous token made (%zu bytes)", n);
    pl = verify(v);
    ok(pl != NULL, "signature valid under the key derived from the proxy token");
    is_str(str(pl, "ip"), "192.0.2.1", "ip");
    is_str(str(pl, "class"), "anonymous", "class anonymous");
    ok(json_object_get(pl, "user") == NULL, "no user");
    is_int((int) json_integer_value(json_object_get(pl, "exp")), 1000 + PX_VISITOR_TTL_S,
           "expires an hour on");
    json_decref(pl);
    v[n - 2] = v[n - 2] == 'A' ? 'B' : 'A';
    ok(verify(v) == NULL, "a changed signature fails");
    ok(px_auth_visitor("192.0.2.1", NULL, 1000, v, 40) == 0, "too small a buffer: nothing");
}

static void test_user(void)
{
    struct px_who who = { .user = "alice", .cls = PX_CLASS_USER };
    char v[640], a[640];
    json_t *pl;

    ok(px_auth_visitor("2001:db8::1", &who, 2000, v, sizeof(v)) > 0, "user token made");
    pl = verify(v);
    ok(pl != NULL, "user token verifies");
    is_str(str(pl, "user"), "alice", "user");
    is_str(str(pl, "class"), "user", "class user");
    is_str(str(pl, "ip"), "2001:db8::1", "ip kept for a user");
    json_decref(pl);

    who.cls = PX_CLASS_PRO;
    ok(px_auth_visitor("2001:db8::1", &who, 2000, a, sizeof(a)) > 0 && strcmp(a, v) != 0,
       "the per-second memo tells classes apart");
    pl = verify(a);
    is_str(str(pl, "class"), "pro", "class pro");
    json_decref(pl);

    /* a longest case fits the header buffer http1.c uses */
    memset(who.user, 'u', PX_USER_MAX - 1);
    who.user[PX_USER_MAX - 1] = '\0';
    ok(px_auth_visitor("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", &who, 4000000000ULL, v,
                       sizeof(v)) > 0,
       "longest address and user fit (%zu bytes)", strlen(v));
    pl = verify(v);
    ok(pl && strlen(str(pl, "user")) == PX_USER_MAX - 1, "longest user kept");
    json_decref(pl);

    snprintf(who.user, sizeof(who.user), "bad\"name");
    pl = verify(px_auth_visitor("192.0.2.1", &who, 3000, v, sizeof(v)) ? v : "");
    ok(pl && json_object_get(pl, "user") == NULL && strcmp(str(pl, "class"), "anonymous") == 0,
       "a name that is not a user name is not put in the JSON");
    json_decref(pl);
}

static void test_cookie_user(void)
{
    struct px_who who = { .user = "al.ice", .cls = PX_CLASS_PRO }, got;
    const char *h = "alice-demo.localhost";
    char v[320];
    size_t n = px_auth_cookie_make(h, &who, 1000, v, sizeof(v));

    ok(n > 64 && strstr(v, ".pro.al.ice.") != NULL, "cookie names user and class: %s", v);
    ok(px_auth_cookie_check(h, v, n, 1000, &got) && strcmp(got.user, "al.ice") == 0 &&
           got.cls == PX_CLASS_PRO,
       "read back: %s/%d", got.user, got.cls);
    ok(!px_auth_cookie_check("bob-demo.localhost", v, n, 1000, &got), "only on its host");
    ok(!px_auth_cookie_check(h, v, n, 1000 + PX_COOKIE_TTL_S + 1, &got), "expires");
    {
        char f[320];
        /* promote oneself: the class is under the MAC */
        snprintf(f, sizeof(f), "%s", v);
        char *p = strstr(f, ".pro.");
        memcpy(p, ".usr.", 5);
        ok(!px_auth_cookie_check(h, f, n, 1000, &got), "changed class refused");
        snprintf(f, sizeof(f), "%s", v);
        p = strstr(f, "al.ice");
        p[0] = 'b';
        ok(!px_auth_cookie_check(h, f, n, 1000, &got), "changed user refused");
    }
    n = px_auth_cookie_make(h, NULL, 1000, v, sizeof(v));
    ok(px_auth_cookie_check(h, v, n, 1000, &got) && got.user[0] == '\0',
       "a cookie of no one: anonymous, still signed in (private Spaces)");

    px_auth_token_store("o/s", "tok-a", true, "alice", PX_CLASS_PRO);
    memset(&got, 0, sizeof(got));
    ok(px_auth_token("o/s", "tok-a", 5, &got) == PX_TOKEN_OK && strcmp(got.user, "alice") == 0 &&
           got.cls == PX_CLASS_PRO,
       "check-token answer cached with its user and class");
    px_auth_token_store("o/s", "tok-b", true, "x\"y", PX_CLASS_USER);
    ok(px_auth_token("o/s", "tok-b", 5, &got) == PX_TOKEN_OK && got.user[0] == '\0' &&
           got.cls == PX_CLASS_ANON,
       "an unsafe name from runtimed is not kept");
}

int main(void)
{
    tap_start();
    px_config_defaults(&px_g.cfg);
    px_auth_init(SECRET);
    test_anonymous();
    test_user();
    test_cookie_user();
    px_auth_done();
    px_config_done(&px_g.cfg);
    return tap_done();
}

/* SHA-256 (FIPS 180-4), small and dependency-free: runtimed stores API tokens only as
 * their hash and names LFS objects by it, and none of our libraries (sqlite, jansson,
 * civetweb) exports one.  In common/ so that rtgit (LFS) and rtcore (tokens) share it. */
#ifndef SP_COMMON_SHA256_H
#define SP_COMMON_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define RT_SHA256_LEN 32
#define RT_SHA256_HEX_LEN 65 /* 64 hex digits and the NUL */

struct rt_sha256 {
    uint32_t h[8];
    uint64_t len; /* bytes hashed so far */
    uint8_t buf[64];
    size_t used;
};

void rt_sha256_init(struct rt_sha256 *c);
void rt_sha256_update(struct rt_sha256 *c, const void *data, size_t len);
void rt_sha256_final(struct rt_sha256 *c, uint8_t out[RT_SHA256_LEN]);

/* One-shot: hashes @len bytes of @data and writes 64 lowercase hex digits to @hex. */
void rt_sha256_hex(const void *data, size_t len, char hex[RT_SHA256_HEX_LEN]);

#endif

/* Small helpers every module needs: whole-buffer I/O, checked number parsing. */
#ifndef SP_COMMON_UTIL_H
#define SP_COMMON_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Writes all @len bytes, retrying on EINTR and short writes.  Returns 0 or -errno. */
int rt_write_all(int fd, const void *buf, size_t len);

/* Reads until EOF or @cap bytes.  Returns the count read or -errno. */
ssize_t rt_read_all(int fd, void *buf, size_t cap);

/* Parses a decimal unsigned integer with no sign, no junk and no overflow into *ret.
 * Returns 0 or -EINVAL / -ERANGE; *ret is untouched on failure. */
int rt_parse_u64(const char *s, uint64_t *ret);
/* True when @s is one or more ASCII digits and nothing else (a numeric dir name). */
bool rt_is_digits(const char *s);

/* Parses a size such as "512", "64k", "512M", "2G", "1.5G" (powers of 1024,
 * optional trailing "b"/"iB").  Returns 0 or -EINVAL / -ERANGE. */
int rt_parse_size(const char *s, uint64_t *ret);

/* Formats @bytes as the largest exact unit ("512M", "2G", "1000").  Returns @buf. */
const char *rt_format_size(uint64_t bytes, char *buf, size_t len);

/* Monotonic time in nanoseconds. */
uint64_t rt_now_ns(void);

#endif

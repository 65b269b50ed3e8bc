/* Include after every system header.  Calls that leak fds into sandboxes or overflow
 * buffers fail to compile, with the replacement named next to each. */
#ifndef SP_COMMON_BANNED_H
#define SP_COMMON_BANNED_H

#define BANNED(func) sorry_##func##_is_banned_in_spaceport

#undef pipe
#define pipe(p) BANNED(pipe) /* use pipe2(p, O_CLOEXEC) */
#undef dup
#define dup(fd) BANNED(dup) /* use fcntl(fd, F_DUPFD_CLOEXEC, 3) */
#undef accept
#define accept(...) BANNED(accept) /* use accept4(..., SOCK_CLOEXEC) */
#undef epoll_create
#define epoll_create(n) BANNED(epoll_create) /* use epoll_create1(EPOLL_CLOEXEC) */
#undef popen
#define popen(...) BANNED(popen) /* fork and exec with a CLOEXEC error pipe */
#undef system
#define system(c) BANNED(system) /* fork and exec with a CLOEXEC error pipe */
#undef sprintf
#define sprintf(...) BANNED(sprintf) /* use snprintf */
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf) /* use vsnprintf */
#undef strcpy
#define strcpy(d, s) BANNED(strcpy) /* use snprintf or memcpy with a length */
#undef strcat
#define strcat(d, s) BANNED(strcat) /* use snprintf */
#undef strtok
#define strtok(s, d) BANNED(strtok) /* use strtok_r */
#undef atoi
#define atoi(s) BANNED(atoi) /* use rt_parse_u64 or strtol with checks */

#endif

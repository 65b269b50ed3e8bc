/* sbxnet configuration: the address pool, link names, and the owner record in an alias. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "net-internal.h"
#include "util.h"
#include "banned.h"

void sbx_net_conf_init(struct sbx_net_conf *c)
{
    memset(c, 0, sizeof(*c));
    (void) sbx_net_conf_set_pool(c, SBX_NET_POOL_DEFAULT, NULL);
    (void) snprintf(c->ifprefix, sizeof(c->ifprefix), "%s", SBX_NET_IFPREFIX_DEFAULT);
    (void) snprintf(c->table, sizeof(c->table), "%s", SBX_NET_TABLE_DEFAULT);
    (void) snprintf(c->lock_path, sizeof(c->lock_path), "%s", SBX_NET_LOCK_DEFAULT);
}

int sbx_net_conf_set_pool(struct sbx_net_conf *c, const char *cidr, struct rt_err *err)
{
    char buf[INET_ADDRSTRLEN + 4];
    struct in_addr a;
    uint64_t prefix;
    char *slash;

    if (snprintf(buf, sizeof(buf), "%s", cidr) >= (int) sizeof(buf))
        return rt_err_set(err, EINVAL, "pool '%s': expected A.B.C.D/N", cidr);
    slash = strchr(buf, '/');
    if (!slash)
        return rt_err_set(err, EINVAL, "pool '%s': expected A.B.C.D/N", cidr);
    *slash = '\0';
    if (inet_pton(AF_INET, buf, &a) != 1)
        return rt_err_set(err, EINVAL, "pool '%s': bad address", cidr);
    /* at least two /30 links, and no pool so big it swallows whole private ranges by mistake */
    if (rt_parse_u64(slash + 1, &prefix) < 0 || prefix < 8 || prefix > 29)
        return rt_err_set(err, EINVAL, "pool '%s': prefix must be 8..29", cidr);
    if (ntohl(a.s_addr) & ~(UINT32_MAX << (32 - prefix)))
        return rt_err_set(err, EINVAL, "pool '%s': host bits set", cidr);
    c->pool = a;
    c->pool_prefix = (unsigned) prefix;
    return 0;
}

int sbx_net_conf_set_ifprefix(struct sbx_net_conf *c, const char *prefix, struct rt_err *err)
{
    size_t n = strlen(prefix);

    /* 7 chars + up to 8 digits of slot fit IFNAMSIZ (15 + NUL) */
    if (n == 0 || n >= sizeof(c->ifprefix))
        return rt_err_set(err, EINVAL, "interface prefix '%s': 1..7 characters", prefix);
    for (size_t i = 0; i < n; i++)
        if (!((prefix[i] >= 'a' && prefix[i] <= 'z') || (prefix[i] >= '0' && prefix[i] <= '9') ||
              prefix[i] == '-'))
            return rt_err_set(err, EINVAL, "interface prefix '%s': only a-z, 0-9 and '-'", prefix);
    memcpy(c->ifprefix, prefix, n + 1);
    return 0;
}

int sbx_net_conf_set_table(struct sbx_net_conf *c, const char *table, struct rt_err *err)
{
    size_t n = strlen(table);

    if (n == 0 || n >= sizeof(c->table) || table[0] < 'a' || table[0] > 'z')
        return rt_err_set(err, EINVAL, "table '%s': 1..31 characters, starting with a-z", table);
    /* the name is pasted into nft commands: nothing that could end or extend one */
    for (size_t i = 0; i < n; i++)
        if (!((table[i] >= 'a' && table[i] <= 'z') || (table[i] >= '0' && table[i] <= '9') ||
              table[i] == '_'))
            return rt_err_set(err, EINVAL, "table '%s': only a-z, 0-9 and '_'", table);
    memcpy(c->table, table, n + 1);
    return 0;
}

int sbx_net_conf_allow_uid(struct sbx_net_conf *c, uid_t uid, struct rt_err *err)
{
    for (size_t i = 0; i < c->n_allow_uids; i++)
        if (c->allow_uids[i] == uid)
            return 0;
    if (c->n_allow_uids >= SBX_NET_MAX_UIDS)
        return rt_err_set(err, E2BIG, "at most %d uids may reach spaces", SBX_NET_MAX_UIDS);
    c->allow_uids[c->n_allow_uids++] = uid;
    return 0;
}

unsigned sbx_net_pool_slots(const struct sbx_net_conf *c)
{
    return 1u << (32 - c->pool_prefix - 2);
}

int sbx_net_slot_link(const struct sbx_net_conf *c, unsigned slot, struct sbx_net_link *ret_link,
                      struct rt_err *err)
{
    struct sbx_net_link l = { .slot = slot, .prefix = 30 };
    uint32_t base = ntohl(c->pool.s_addr) + 4 * slot;
    struct in_addr h = { htonl(base + 1) }, s = { htonl(base + 2) };

    if (slot >= sbx_net_pool_slots(c))
        return rt_err_set(err, ERANGE, "slot %u outside the pool (%u slots)", slot,
                          sbx_net_pool_slots(c));
    (void) snprintf(l.host_if, sizeof(l.host_if), "%s%u", c->ifprefix, slot);
    (void) snprintf(l.space_if, sizeof(l.space_if), "%s", SBX_NET_SPACE_IF);
    (void) inet_ntop(AF_INET, &h, l.host_ip, sizeof(l.host_ip));
    (void) inet_ntop(AF_INET, &s, l.space_ip, sizeof(l.space_ip));
    *ret_link = l;
    return 0;
}

bool sbx__net_name_slot(const struct sbx_net_conf *c, const char *name, unsigned *ret_slot)
{
    size_t n = strlen(c->ifprefix);
    uint64_t slot;

    if (strncmp(name, c->ifprefix, n) != 0 || rt_parse_u64(name + n, &slot) < 0 ||
        slot >= sbx_net_pool_slots(c))
        return false;
    /* "spv01" is not ours: we only ever make canonical names */
    if (name[n] == '0' && name[n + 1] != '\0')
        return false;
    *ret_slot = (unsigned) slot;
    return true;
}

int sbx__net_alias_format(pid_t pid, unsigned long long start, char *buf, size_t len)
{
    int n = snprintf(buf, len, SBX__ALIAS_TAG " pid=%d start=%llu", (int) pid, start);

    return n < 0 || (size_t) n >= len ? -ENAMETOOLONG : 0;
}

int sbx__net_alias_parse(const char *alias, pid_t *ret_pid, unsigned long long *ret_start)
{
    unsigned long long start;
    int pid, end = 0;

    if (!alias || sscanf(alias, SBX__ALIAS_TAG " pid=%d start=%llu%n", &pid, &start, &end) != 2 ||
        alias[end] != '\0' || pid <= 0)
        return -EINVAL;
    *ret_pid = pid;
    *ret_start = start;
    return 0;
}

int sbx__net_pid_start(pid_t pid, unsigned long long *ret_start)
{
    char path[64], buf[1024], *p, state;
    unsigned long long start;
    _cleanup_close_ int fd = -1;
    ssize_t n;

    (void) snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -ESRCH : -errno;
    n = rt_read_all(fd, buf, sizeof(buf) - 1);
    if (n < 0)
        return (int) n;
    buf[n] = '\0';
    /* comm may hold spaces and ')': the fields start after the last ')' */
    p = strrchr(buf, ')');
    if (!p)
        return -EINVAL;
    /* after ") " comes field 3 (state); starttime is field 22 */
    if (sscanf(p + 2,
               "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d "
               "%*d %llu",
               &state, &start) != 2)
        return -EINVAL;
    /* a zombie has already left its namespaces: it owns nothing any more */
    if (state == 'Z' || state == 'X')
        return -ESRCH;
    *ret_start = start;
    return 0;
}

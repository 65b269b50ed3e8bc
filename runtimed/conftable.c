/* Table-driven YAML configuration: a bounded YAML tree, then one table that binds it
 * onto a struct.  See conftable.h. */
#include "conftable.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "cleanup.h"

#include "banned.h"

const struct rt_yaml_limits rt_yaml_default_limits = {
    .max_bytes = 64 * 1024,
    .max_depth = 16,
    .max_nodes = 10000,
    .max_scalar = 8192,
};

/* --- the tree ----------------------------------------------------------------------- */

void rt_ynode_free(struct rt_ynode *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++)
        rt_ynode_free(n->items[i]);
    free(n->items);
    free(n->text);
    free(n);
}

void rt_ynode_freep(struct rt_ynode **n)
{
    rt_ynode_free(*n);
    *n = NULL;
}

const struct rt_ynode *rt_ynode_get(const struct rt_ynode *map, const char *key)
{
    if (!map || map->kind != RT_YNODE_MAP)
        return NULL;
    for (size_t i = 0; i + 1 < map->n; i += 2)
        if (strcmp(map->items[i]->text, key) == 0)
            return map->items[i + 1];
    return NULL;
}

/* [-+]?[0-9]+ */
static bool is_decimal(const char *s)
{
    if (*s == '-' || *s == '+')
        s++;
    return *s && strspn(s, "0123456789") == strlen(s);
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?, with at least one of '.' or 'e';
 * .inf and .nan have no JSON form and stay strings. */
static bool is_float(const char *s)
{
    size_t before, after = 0;
    bool dot = false, exp = false;

    if (*s == '-' || *s == '+')
        s++;
    before = strspn(s, "0123456789");
    s += before;
    if (*s == '.') {
        dot = true;
        after = strspn(++s, "0123456789");
        s += after;
    }
    if (before + after == 0)
        return false;
    if (*s == 'e' || *s == 'E') {
        exp = true;
        s++;
        if (*s == '-' || *s == '+')
            s++;
        if (!*s || strspn(s, "0123456789") != strlen(s))
            return false;
        s += strlen(s);
    }
    return !*s && (dot || exp);
}

enum rt_yscalar rt_ynode_scalar_type(const struct rt_ynode *n)
{
    static const char *const bools[] = { "true", "True", "TRUE", "false", "False", "FALSE" };

    if (!n || n->kind != RT_YNODE_SCALAR || !n->plain)
        return RT_YSCALAR_STRING;
    for (size_t i = 0; i < ARRAY_SIZE(bools); i++)
        if (strcmp(n->text, bools[i]) == 0)
            return RT_YSCALAR_BOOL;
    if (is_decimal(n->text))
        return RT_YSCALAR_INT;
    if (is_float(n->text))
        return RT_YSCALAR_FLOAT;
    return RT_YSCALAR_STRING;
}

const char *rt_conf_quote(const char *s, size_t len, char *buf, size_t size)
{
    size_t o = 0;

    if (size < 8) {
        if (size)
            buf[0] = '\0';
        return buf;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) s[i];

        if (i >= 40 || o + 8 >= size) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (c < 0x20 || c >= 0x7f || c == '\\')
            o += (size_t) snprintf(buf + o, size - o, "\\x%02x", c);
        else
            buf[o++] = (char) c;
    }
    buf[o] = '\0';
    return buf;
}

static const char *kind_name(enum rt_ynode_kind k)
{
    static const char *const names[_RT_YNODE_MAX] = {
        [RT_YNODE_NULL] = "nothing",
        [RT_YNODE_SCALAR] = "a string",
        [RT_YNODE_SEQ] = "a list",
        [RT_YNODE_MAP] = "a mapping",
    };
    return names[k];
}

static bool is_null_text(const char *s)
{
    return !*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
           strcmp(s, "NULL") == 0;
}

struct ytree {
    const char *file;
    unsigned first_line;
    const struct rt_yaml_limits *lim;
    struct rt_ynode **stack;
    size_t depth;
    size_t nodes;
    size_t docs;
    struct rt_ynode *root;
    struct rt_err *err;
};

static int node_append(struct rt_ynode *parent, struct rt_ynode *child)
{
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 4;
        struct rt_ynode **items = reallocarray(parent->items, cap, sizeof(*items));

        if (!items)
            return -ENOMEM;
        parent->items = items;
        parent->cap = cap;
    }
    parent->items[parent->n++] = child;
    return 0;
}

static int cmp_key(const void *a, const void *b)
{
    const struct rt_ynode *x = *(const struct rt_ynode *const *) a;
    const struct rt_ynode *y = *(const struct rt_ynode *const *) b;
    int r = strcmp(x->text, y->text);

    if (r)
        return r;
    return (x->line > y->line) - (x->line < y->line);
}

/* Duplicate keys are an error in YAML; sorting finds them in n log n, whatever the
 * number of keys a hostile document brings. */
static int check_duplicates(struct ytree *t, const struct rt_ynode *map)
{
    size_t pairs = map->n / 2;
    _cleanup_free_ const struct rt_ynode **keys = NULL;
    char q[200];

    if (pairs < 2)
        return 0;
    keys = calloc(pairs, sizeof(*keys));
    if (!keys)
        return rt_err_set(t->err, ENOMEM, "%s: parse YAML", t->file);
    for (size_t i = 0; i < pairs; i++)
        keys[i] = map->items[2 * i];
    qsort(keys, pairs, sizeof(*keys), cmp_key);
    for (size_t i = 1; i < pairs; i++)
        if (strcmp(keys[i - 1]->text, keys[i]->text) == 0)
            return rt_err_set(t->err, EINVAL, "%s:%u: duplicate key '%s'", t->file, keys[i]->line,
                              rt_conf_quote(keys[i]->text, keys[i]->len, q, sizeof(q)));
    return 0;
}

/* Attaches a new node to the container being filled, or makes it the root. */
static int ytree_add(struct ytree *t, struct rt_ynode *n)
{
    struct rt_ynode *parent;

    if (++t->nodes > t->lim->max_nodes)
        return rt_err_set(t->err, E2BIG, "%s:%u: YAML has more than %zu nodes", t->file, n->line,
                          t->lim->max_nodes);
    if (t->depth == 0) {
        if (t->root)
            return rt_err_set(t->err, EINVAL, "%s:%u: only one YAML document is allowed", t->file,
                              n->line);
        t->root = n;
        return 0;
    }
    parent = t->stack[t->depth - 1];
    if (parent->kind == RT_YNODE_MAP && parent->n % 2 == 0) {
        if (n->kind == RT_YNODE_NULL && n->text)
            n->kind = RT_YNODE_SCALAR; /* a key spelled 'null' is the text 'null' */
        if (n->kind != RT_YNODE_SCALAR || n->len == 0)
            return rt_err_set(t->err, EINVAL, "%s:%u: mapping keys must be non-empty strings",
                              t->file, n->line);
    }
    if (node_append(parent, n) < 0)
        return rt_err_set(t->err, ENOMEM, "%s: parse YAML", t->file);
    return 0;
}

static int ytree_event(struct ytree *t, const yaml_event_t *ev)
{
    _cleanup_(rt_ynode_freep) struct rt_ynode *n = NULL;
    unsigned line = (unsigned) ev->start_mark.line + t->first_line;
    int r;

    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++t->docs > 1)
            return rt_err_set(t->err, EINVAL, "%s:%u: only one YAML document is allowed", t->file,
                              line);
        return 0;
    case YAML_ALIAS_EVENT:
        /* Nothing is expanded, so no "billion laughs"; but a config that needs
         * references is not a Space config: refuse rather than half-support it. */
        return rt_err_set(t->err, EINVAL, "%s:%u: YAML aliases ('*name') are not supported",
                          t->file, line);
    case YAML_SCALAR_EVENT:
        if (ev->data.scalar.length > t->lim->max_scalar)
            return rt_err_set(t->err, E2BIG, "%s:%u: a value is longer than %zu bytes", t->file,
                              line, t->lim->max_scalar);
        if (memchr(ev->data.scalar.value, '\0', ev->data.scalar.length))
            return rt_err_set(t->err, EINVAL, "%s:%u: a value contains a NUL byte", t->file, line);
        n = calloc(1, sizeof(*n));
        if (!n ||
            !(n->text = strndup((const char *) ev->data.scalar.value, ev->data.scalar.length)))
            return rt_err_set(t->err, ENOMEM, "%s: parse YAML", t->file);
        n->len = ev->data.scalar.length;
        n->line = line;
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        n->kind = n->plain && is_null_text(n->text) ? RT_YNODE_NULL : RT_YNODE_SCALAR;
        r = ytree_add(t, n);
        if (r < 0)
            return r;
        TAKE_PTR(n);
        return 0;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        if (t->depth >= t->lim->max_depth)
            return rt_err_set(t->err, E2BIG, "%s:%u: YAML is nested deeper than %zu levels",
                              t->file, line, t->lim->max_depth);
        n = calloc(1, sizeof(*n));
        if (!n)
            return rt_err_set(t->err, ENOMEM, "%s: parse YAML", t->file);
        n->kind = ev->type == YAML_SEQUENCE_START_EVENT ? RT_YNODE_SEQ : RT_YNODE_MAP;
        n->line = line;
        r = ytree_add(t, n);
        if (r < 0)
            return r;
        t->stack[t->depth++] = TAKE_PTR(n);
        return 0;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        if (t->depth == 0)
            return rt_err_set(t->err, EINVAL, "%s:%u: invalid YAML", t->file, line);
        t->depth--;
        if (ev->type == YAML_MAPPING_END_EVENT)
            return check_duplicates(t, t->stack[t->depth]);
        return 0;
    default:
        return 0;
    }
}

/* Feeds libyaml's events into the tree.  Returns 0 or -errno with t->err set. */
static int ytree_parse(struct ytree *t, const char *buf, size_t len)
{
    yaml_parser_t parser;
    bool done = false;
    int r = 0;

    if (!yaml_parser_initialize(&parser))
        return rt_err_set(t->err, ENOMEM, "%s: parse YAML", t->file);
    /* UTF-8 only: libyaml would otherwise honour a UTF-16 byte-order mark. */
    yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);
    yaml_parser_set_input_string(&parser, (const unsigned char *) buf, len);
    while (!done && r == 0) {
        yaml_event_t ev;

        if (!yaml_parser_parse(&parser, &ev)) {
            if (parser.error == YAML_MEMORY_ERROR)
                r = rt_err_set(t->err, ENOMEM, "%s: parse YAML", t->file);
            else
                r = rt_err_set(t->err, EINVAL, "%s:%u: invalid YAML: %s%s%s", t->file,
                               (unsigned) parser.problem_mark.line + t->first_line,
                               parser.problem ? parser.problem : "syntax error",
                               parser.context ? " " : "", parser.context ? parser.context : "");
            break;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        r = ytree_event(t, &ev);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return r;
}

int rt_yaml_parse(const char *buf, size_t len, const char *file, unsigned first_line,
                  const struct rt_yaml_limits *lim, struct rt_ynode **ret_root, struct rt_err *err)
{
    _cleanup_free_ struct rt_ynode **stack = NULL;
    struct ytree t = {
        .file = file,
        .first_line = first_line,
        .lim = lim ? lim : &rt_yaml_default_limits,
        .err = err,
    };
    int r;

    if (len > t.lim->max_bytes)
        return rt_err_set(err, E2BIG, "%s: YAML is larger than %zu bytes", file, t.lim->max_bytes);
    if (memchr(buf, '\0', len))
        return rt_err_set(err, EINVAL, "%s: YAML contains a NUL byte", file);
    stack = calloc(t.lim->max_depth + 1, sizeof(*stack));
    if (!stack)
        return rt_err_set(err, ENOMEM, "%s: parse YAML", file);
    t.stack = stack;
    r = ytree_parse(&t, buf, len);
    if (r < 0) {
        rt_ynode_free(t.root);
        return r;
    }
    if (!t.root) {
        t.root = calloc(1, sizeof(*t.root));
        if (!t.root)
            return rt_err_set(err, ENOMEM, "%s: parse YAML", file);
        t.root->kind = RT_YNODE_NULL;
        t.root->line = first_line;
    }
    *ret_root = t.root;
    return 0;
}

/* --- values ------------------------------------------------------------------------- */

void rt_strv_done(struct rt_strv *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->v[i]);
    free(v->v);
    v->v = NULL;
    v->n = 0;
}

void rt_strmap_done(struct rt_strmap *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->keys[i]);
        free(m->values[i]);
    }
    free(m->keys);
    free(m->values);
    m->keys = m->values = NULL;
    m->n = 0;
}

const char *rt_strmap_get(const struct rt_strmap *m, const char *key)
{
    for (size_t i = 0; m && i < m->n; i++)
        if (strcmp(m->keys[i], key) == 0)
            return m->values[i];
    return NULL;
}

int rt_strv_push(struct rt_strv *v, const char *s)
{
    _cleanup_free_ char *copy = strdup(s);
    char **nv;

    if (!copy)
        return -ENOMEM;
    nv = reallocarray(v->v, v->n + 1, sizeof(*nv));
    if (!nv)
        return -ENOMEM;
    v->v = nv;
    v->v[v->n++] = TAKE_PTR(copy);
    return 0;
}

int rt_strmap_push(struct rt_strmap *m, const char *key, const char *value)
{
    _cleanup_free_ char *k = strdup(key);
    _cleanup_free_ char *val = strdup(value);
    char **nk, **nv;

    if (!k || !val)
        return -ENOMEM;
    nk = reallocarray(m->keys, m->n + 1, sizeof(*nk));
    if (!nk)
        return -ENOMEM;
    m->keys = nk;
    nv = reallocarray(m->values, m->n + 1, sizeof(*nv));
    if (!nv)
        return -ENOMEM;
    m->values = nv;
    m->keys[m->n] = TAKE_PTR(k);
    m->values[m->n] = TAKE_PTR(val);
    m->n++;
    return 0;
}

int rt_parse_duration_ms(const char *s, uint64_t *ret_ms)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {
        { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 },
    };
    uint64_t total = 0;

    if (!s || !*s)
        return -EINVAL;
    while (*s) {
        uint64_t v = 0;
        size_t u;

        if (*s < '0' || *s > '9')
            return -EINVAL;
        while (*s >= '0' && *s <= '9') {
            if (v > (UINT64_MAX - 9) / 10)
                return -ERANGE;
            v = v * 10 + (uint64_t) (*s++ - '0');
        }
        for (u = 0; u < ARRAY_SIZE(units); u++) {
            size_t l = strlen(units[u].unit);

            if (strncmp(s, units[u].unit, l) == 0 && (s[l] < 'a' || s[l] > 'z'))
                break;
        }
        if (u == ARRAY_SIZE(units))
            return -EINVAL;
        if (v > (UINT64_MAX - total) / units[u].ms)
            return -ERANGE;
        total += v * units[u].ms;
        s += strlen(units[u].unit);
    }
    *ret_ms = total;
    return 0;
}

static const char *format_duration(uint64_t ms, char *buf, size_t size)
{
    if (ms % 86400000 == 0 && ms)
        (void) snprintf(buf, size, "%" PRIu64 "d", ms / 86400000);
    else if (ms % 3600000 == 0 && ms)
        (void) snprintf(buf, size, "%" PRIu64 "h", ms / 3600000);
    else if (ms % 60000 == 0 && ms)
        (void) snprintf(buf, size, "%" PRIu64 "m", ms / 60000);
    else if (ms % 1000 == 0)
        (void) snprintf(buf, size, "%" PRIu64 "s", ms / 1000);
    else
        (void) snprintf(buf, size, "%" PRIu64 "ms", ms);
    return buf;
}

/* --- messages ----------------------------------------------------------------------- */

static void format_where(char *buf, size_t size, const struct rt_conf_ctx *ctx, unsigned line,
                         const char *key)
{
    if (line && key && *key)
        (void) snprintf(buf, size, "%s:%u: %s: ", ctx->file, line, key);
    else if (line)
        (void) snprintf(buf, size, "%s:%u: ", ctx->file, line);
    else if (key && *key)
        (void) snprintf(buf, size, "%s: %s: ", ctx->file, key);
    else
        (void) snprintf(buf, size, "%s: ", ctx->file);
}

int rt_conf_fail(struct rt_conf_ctx *ctx, unsigned line, const char *key, const char *fmt, ...)
{
    char where[256], what[RT_ERR_MSG_MAX];
    va_list ap;

    format_where(where, sizeof(where), ctx, line, key);
    va_start(ap, fmt);
    (void) vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return rt_err_set(ctx->err, EINVAL, "%s%s", where, what);
}

int rt_conf_warn(struct rt_conf_ctx *ctx, unsigned line, const char *key, const char *fmt, ...)
{
    char where[256], what[RT_ERR_MSG_MAX], all[RT_ERR_MSG_MAX];
    va_list ap;

    if (!ctx->warnings || ctx->warnings->n > RT_CONF_MAX_WARNINGS)
        return 0;
    if (ctx->warnings->n == RT_CONF_MAX_WARNINGS) {
        (void) snprintf(all, sizeof(all), "%s: more warnings not shown", ctx->file);
    } else {
        format_where(where, sizeof(where), ctx, line, key);
        va_start(ap, fmt);
        (void) vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        (void) snprintf(all, sizeof(all), "%s%s", where, what);
    }
    if (rt_strv_push(ctx->warnings, all) < 0)
        return rt_err_set(ctx->err, ENOMEM, "%s: record a warning", ctx->file);
    return 0;
}

/* "one of a, b, c" */
static const char *format_names(const char *const *names, char *buf, size_t size)
{
    size_t o = 0;

    buf[0] = '\0';
    for (size_t i = 0; names[i] && o < size; i++)
        o += (size_t) snprintf(buf + o, size - o, "%s%s", i ? ", " : "", names[i]);
    return buf;
}

static int name_index(const char *const *names, const char *s)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

/* --- binding ------------------------------------------------------------------------ */

static int bind_map(const struct rt_conf_key *keys, size_t n_keys, const struct rt_ynode *root,
                    void *obj, const char *prefix, struct rt_conf_ctx *ctx);

static size_t max_len(const struct rt_conf_key *k)
{
    return k->max_len ? k->max_len : 1024;
}

static size_t max_items(const struct rt_conf_key *k)
{
    return k->max_items ? k->max_items : 256;
}

/* Checks one string item (STR, STRV item, STRMAP value) against length, names and
 * check(). */
static int check_text(const struct rt_conf_key *k, const char *name, const struct rt_ynode *v,
                      const char *const *names, rt_conf_check_fn check, struct rt_conf_ctx *ctx)
{
    char q[200], list[400];
    const char *why;

    if (v->kind != RT_YNODE_SCALAR)
        return rt_conf_fail(ctx, v->line, name, "expected a string, got %s", kind_name(v->kind));
    if (v->len > max_len(k))
        return rt_conf_fail(ctx, v->line, name, "longer than %zu bytes", max_len(k));
    if (names && name_index(names, v->text) < 0)
        return rt_conf_fail(ctx, v->line, name, "expected one of %s, got '%s'",
                            format_names(names, list, sizeof(list)),
                            rt_conf_quote(v->text, v->len, q, sizeof(q)));
    if (check && (why = check(v->text)))
        return rt_conf_fail(ctx, v->line, name, "expected %s, got '%s'", why,
                            rt_conf_quote(v->text, v->len, q, sizeof(q)));
    return 0;
}

static int set_bool(const struct rt_conf_key *k, const char *name, const struct rt_ynode *v,
                    bool *field, struct rt_conf_ctx *ctx)
{
    /* YAML 1.1 spellings too: PyYAML, which huggingface_hub uses, reads them as bools. */
    static const char *const yes[] = { "true", "True", "TRUE", "yes", "Yes",
                                       "YES",  "on",   "On",   "ON",  NULL };
    static const char *const no[] = { "false", "False", "FALSE", "no",  "No",
                                      "NO",    "off",   "Off",   "OFF", NULL };
    char q[200];

    if (v->kind == RT_YNODE_SCALAR && name_index(yes, v->text) >= 0)
        *field = true;
    else if (v->kind == RT_YNODE_SCALAR && name_index(no, v->text) >= 0)
        *field = false;
    else if (v->kind != RT_YNODE_SCALAR)
        return rt_conf_fail(ctx, v->line, name, "expected true or false, got %s",
                            kind_name(v->kind));
    else
        return rt_conf_fail(ctx, v->line, name, "expected true or false, got '%s'",
                            rt_conf_quote(v->text, v->len, q, sizeof(q)));
    return 0;
}

static int set_int(const struct rt_conf_key *k, const char *name, const struct rt_ynode *v,
                   int64_t *field, struct rt_conf_ctx *ctx)
{
    const char *s = v->kind == RT_YNODE_SCALAR ? v->text : "";
    bool neg = *s == '-';
    const char *p = s + neg;
    uint64_t mag = 0;
    int64_t val;
    char q[200], range[80] = "";
    bool ok = *p != '\0';

    if (k->min || k->max)
        (void) snprintf(range, sizeof(range), " in %" PRId64 "..%" PRId64, k->min, k->max);
    for (; ok && *p; p++) {
        if (*p < '0' || *p > '9' || mag > ((uint64_t) INT64_MAX) / 10)
            ok = false;
        else
            mag = mag * 10 + (uint64_t) (*p - '0');
    }
    ok = ok && mag <= (uint64_t) INT64_MAX;
    val = neg ? -(int64_t) mag : (int64_t) mag;
    if (ok && (k->min || k->max) && (val < k->min || val > k->max))
        ok = false;
    if (!ok) {
        if (v->kind != RT_YNODE_SCALAR)
            return rt_conf_fail(ctx, v->line, name, "expected an integer%s, got %s", range,
                                kind_name(v->kind));
        return rt_conf_fail(ctx, v->line, name, "expected an integer%s, got '%s'", range,
                            rt_conf_quote(v->text, v->len, q, sizeof(q)));
    }
    *field = val;
    return 0;
}

static int set_duration(const struct rt_conf_key *k, const char *name, const struct rt_ynode *v,
                        uint64_t *field, struct rt_conf_ctx *ctx)
{
    uint64_t ms;
    char q[200], lo[32], hi[32], range[100] = "";
    bool ok = v->kind == RT_YNODE_SCALAR && rt_parse_duration_ms(v->text, &ms) == 0;

    if (k->min || k->max)
        (void) snprintf(range, sizeof(range), " between %s and %s",
                        format_duration((uint64_t) k->min, lo, sizeof(lo)),
                        format_duration((uint64_t) k->max, hi, sizeof(hi)));
    if (ok && (k->min || k->max) && (ms < (uint64_t) k->min || ms > (uint64_t) k->max))
        ok = false;
    if (!ok) {
        if (v->kind != RT_YNODE_SCALAR)
            return rt_conf_fail(ctx, v->line, name,
                                "expected a duration%s such as '30m' or "
                                "'1h', got %s",
                                range, kind_name(v->kind));
        return rt_conf_fail(ctx, v->line, name,
                            "expected a duration%s such as '30m' or '1h', got '%s'", range,
                            rt_conf_quote(v->text, v->len, q, sizeof(q)));
    }
    *field = ms;
    return 0;
}

static int set_strv(const struct rt_conf_key *k, const char *name, const struct rt_ynode *v,
                    struct rt_strv *field, struct rt_conf_ctx *ctx)
{
    struct rt_strv out = { 0 };
    const struct rt_ynode *const *items = &v;
    size_t n = 1;
    char iname[300];
    int r = 0;

    if (v->kind == RT_YNODE_SEQ) {
        items = (const struct rt_ynode *const *) v->items;
        n = v->n;
    } else if (v->kind != RT_YNODE_SCALAR) {
        return rt_conf_fail(ctx, v->line, name, "expected a list of strings, got %s",
                            kind_name(v->kind));
    }
    if (n > max_items(k))
        return rt_conf_fail(ctx, v->line, name, "more than %zu items", max_items(k));
    for (size_t i = 0; i < n && r == 0; i++) {
        (void) snprintf(iname, sizeof(iname), "%s[%zu]", name, i);
        r = check_text(k, iname, items[i], k->names, k->check, ctx);
        if (r == 0 && rt_strv_push(&out, items[i]->text) < 0)
            r = rt_err_set(ctx->err, ENOMEM, "%s: %s", ctx->file, name);
    }
    if (r < 0) {
        rt_strv_done(&out);
        return r;
    }
    rt_strv_done(field);
    *field = out;
    return 0;
}

static int set_strmap(const struct rt_conf_key *k, const char *name, const struct rt_ynode *v,
                      struct rt_strmap *field, struct rt_conf_ctx *ctx)
{
    struct rt_strmap out = { 0 };
    char iname[300], q[200], list[400];
    const char *why;
    int r = 0;

    if (v->kind != RT_YNODE_MAP)
        return rt_conf_fail(ctx, v->line, name, "expected a mapping, got %s", kind_name(v->kind));
    if (v->n / 2 > max_items(k))
        return rt_conf_fail(ctx, v->line, name, "more than %zu entries", max_items(k));
    for (size_t i = 0; i + 1 < v->n && r == 0; i += 2) {
        const struct rt_ynode *key = v->items[i], *val = v->items[i + 1];

        (void) snprintf(iname, sizeof(iname), "%s.%s", name,
                        rt_conf_quote(key->text, key->len, q, sizeof(q)));
        if (k->names && name_index(k->names, key->text) < 0)
            r = rt_conf_fail(ctx, key->line, name, "expected a key among %s, got '%s'",
                             format_names(k->names, list, sizeof(list)), q);
        else if (k->check_key && (why = k->check_key(key->text)))
            r = rt_conf_fail(ctx, key->line, name, "expected %s as a key, got '%s'", why, q);
        else
            r = check_text(k, iname, val, NULL, k->check, ctx);
        if (r == 0 && rt_strmap_push(&out, key->text, val->text) < 0)
            r = rt_err_set(ctx->err, ENOMEM, "%s: %s", ctx->file, name);
    }
    if (r < 0) {
        rt_strmap_done(&out);
        return r;
    }
    rt_strmap_done(field);
    *field = out;
    return 0;
}

static int set_list(const struct rt_conf_key *k, const char *name, const struct rt_ynode *v,
                    struct rt_conf_list *field, struct rt_conf_ctx *ctx)
{
    char iname[300];
    int r = 0;

    if (v->kind != RT_YNODE_SEQ)
        return rt_conf_fail(ctx, v->line, name, "expected a list, got %s", kind_name(v->kind));
    if (v->n > max_items(k))
        return rt_conf_fail(ctx, v->line, name, "more than %zu items", max_items(k));
    /* Replace: free what a default or an earlier value left. */
    for (size_t i = 0; i < field->n; i++)
        rt_conf_done(k->sub, k->n_sub, (char *) field->items + i * k->item_size);
    free(field->items);
    field->items = NULL;
    field->n = 0;
    if (v->n == 0)
        return 0;
    field->items = calloc(v->n, k->item_size);
    if (!field->items)
        return rt_err_set(ctx->err, ENOMEM, "%s: %s", ctx->file, name);
    for (size_t i = 0; i < v->n && r == 0; i++) {
        void *item = (char *) field->items + i * k->item_size;

        field->n = i + 1; /* so rt_conf_done() frees a half-bound item too */
        (void) snprintf(iname, sizeof(iname), "%s[%zu].", name, i);
        if (v->items[i]->kind != RT_YNODE_MAP)
            r = rt_conf_fail(ctx, v->items[i]->line, name, "item %zu: expected a mapping, got %s",
                             i, kind_name(v->items[i]->kind));
        else
            r = bind_map(k->sub, k->n_sub, v->items[i], item, iname, ctx);
    }
    return r;
}

static int set_value(const struct rt_conf_key *k, const char *name, const struct rt_ynode *v,
                     void *obj, struct rt_conf_ctx *ctx)
{
    void *field = (char *) obj + k->offset;
    char q[200], list[400];
    int r, idx;

    if (v->kind == RT_YNODE_NULL)
        return 0; /* "key:" with no value keeps the default */
    switch (k->type) {
    case RT_CONF_STR: {
        char **s = field, *copy;

        r = check_text(k, name, v, k->names, k->check, ctx);
        if (r < 0)
            return r;
        copy = strdup(v->text);
        if (!copy)
            return rt_err_set(ctx->err, ENOMEM, "%s: %s", ctx->file, name);
        free(*s);
        *s = copy;
        return 0;
    }
    case RT_CONF_BOOL:
        return set_bool(k, name, v, field, ctx);
    case RT_CONF_INT:
        return set_int(k, name, v, field, ctx);
    case RT_CONF_ENUM:
        if (v->kind != RT_YNODE_SCALAR)
            return rt_conf_fail(ctx, v->line, name, "expected one of %s, got %s",
                                format_names(k->names, list, sizeof(list)), kind_name(v->kind));
        idx = name_index(k->names, v->text);
        if (idx < 0)
            return rt_conf_fail(ctx, v->line, name, "expected one of %s, got '%s'",
                                format_names(k->names, list, sizeof(list)),
                                rt_conf_quote(v->text, v->len, q, sizeof(q)));
        *(int *) field = idx;
        return 0;
    case RT_CONF_DURATION:
        return set_duration(k, name, v, field, ctx);
    case RT_CONF_STRV:
        return set_strv(k, name, v, field, ctx);
    case RT_CONF_STRMAP:
        return set_strmap(k, name, v, field, ctx);
    case RT_CONF_LIST:
        return set_list(k, name, v, field, ctx);
    case RT_CONF_CUSTOM:
        return k->parse(k, v, field, ctx);
    default:
        return rt_conf_fail(ctx, v->line, name, "unsupported key type");
    }
}

int rt_conf_set(const struct rt_conf_key *k, const struct rt_ynode *v, void *obj,
                struct rt_conf_ctx *ctx)
{
    return set_value(k, k->name, v, obj, ctx);
}

static int find_key(const struct rt_conf_key *keys, size_t n_keys, const char *path)
{
    for (size_t i = 0; i < n_keys; i++)
        if (strcmp(keys[i].name, path) == 0)
            return (int) i;
    return -1;
}

/* Is @path ("run") the parent of some key ("run.port")? */
static bool is_section(const struct rt_conf_key *keys, size_t n_keys, const char *path)
{
    size_t l = strlen(path);

    for (size_t i = 0; i < n_keys; i++)
        if (strncmp(keys[i].name, path, l) == 0 && keys[i].name[l] == '.')
            return true;
    return false;
}

static int walk(const struct rt_conf_key *keys, size_t n_keys, const struct rt_ynode *map,
                void *obj, const char *section, const char *prefix, bool *seen,
                struct rt_conf_ctx *ctx)
{
    char path[256], shown[600], q[200];
    int r;

    for (size_t i = 0; i + 1 < map->n; i += 2) {
        const struct rt_ynode *key = map->items[i], *val = map->items[i + 1];
        int len = snprintf(path, sizeof(path), "%s%s%s", section, *section ? "." : "", key->text);
        int idx = -1;
        bool fits = len > 0 && (size_t) len < sizeof(path) && !strchr(key->text, '.');

        (void) snprintf(shown, sizeof(shown), "%s%s%s%s", prefix, section, *section ? "." : "",
                        rt_conf_quote(key->text, key->len, q, sizeof(q)));
        if (fits)
            idx = find_key(keys, n_keys, path);
        if (idx >= 0) {
            if (keys[idx].deprecated) {
                r = rt_conf_warn(ctx, key->line, shown, "%s", keys[idx].doc);
                if (r < 0)
                    return r;
            }
            r = set_value(&keys[idx], shown, val, obj, ctx);
            if (r < 0)
                return r;
            if (val->kind != RT_YNODE_NULL)
                seen[idx] = true;
        } else if (fits && is_section(keys, n_keys, path)) {
            if (val->kind == RT_YNODE_NULL)
                continue;
            if (val->kind != RT_YNODE_MAP)
                return rt_conf_fail(ctx, val->line, shown, "expected a mapping, got %s",
                                    kind_name(val->kind));
            r = walk(keys, n_keys, val, obj, path, prefix, seen, ctx);
            if (r < 0)
                return r;
        } else if (ctx->unknown_is_error) {
            return rt_conf_fail(ctx, key->line, shown, "unknown key");
        } else {
            r = rt_conf_warn(ctx, key->line, shown, "unknown key, ignored");
            if (r == 0 && ctx->unknown && rt_strv_push(ctx->unknown, shown) < 0)
                r = rt_err_set(ctx->err, ENOMEM, "%s: record an unknown key", ctx->file);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

static int bind_map(const struct rt_conf_key *keys, size_t n_keys, const struct rt_ynode *root,
                    void *obj, const char *prefix, struct rt_conf_ctx *ctx)
{
    bool seen[RT_CONF_MAX_KEYS] = { false };
    char shown[300];
    int r;

    if (n_keys > RT_CONF_MAX_KEYS)
        return rt_err_set(ctx->err, EINVAL, "%s: table has more than %d keys", ctx->file,
                          RT_CONF_MAX_KEYS);
    for (size_t i = 0; i < n_keys; i++) {
        const struct rt_conf_key *k = &keys[i];
        struct rt_ynode def = { .kind = RT_YNODE_SCALAR, .plain = true };

        if (k->type == RT_CONF_ENUM)
            *(int *) ((char *) obj + k->offset) = -1;
        if (!k->def)
            continue;
        def.text = (char *) k->def;
        def.len = strlen(k->def);
        r = set_value(k, k->name, &def, obj, ctx);
        if (r < 0)
            return rt_err_wrap(ctx->err, "default");
    }
    if (root && root->kind != RT_YNODE_NULL) {
        if (root->kind != RT_YNODE_MAP)
            return rt_conf_fail(ctx, root->line, prefix, "expected a mapping of keys, got %s",
                                kind_name(root->kind));
        r = walk(keys, n_keys, root, obj, "", prefix, seen, ctx);
        if (r < 0)
            return r;
    }
    for (size_t i = 0; i < n_keys; i++) {
        if (!keys[i].required || seen[i])
            continue;
        (void) snprintf(shown, sizeof(shown), "%s%s", prefix, keys[i].name);
        return rt_conf_fail(ctx, 0, shown, "missing%s%s%s", keys[i].doc ? " (" : "",
                            keys[i].doc ? keys[i].doc : "", keys[i].doc ? ")" : "");
    }
    return 0;
}

int rt_conf_bind(const struct rt_conf_key *keys, size_t n_keys, const struct rt_ynode *root,
                 void *obj, struct rt_conf_ctx *ctx)
{
    return bind_map(keys, n_keys, root, obj, "", ctx);
}

void rt_conf_done(const struct rt_conf_key *keys, size_t n_keys, void *obj)
{
    for (size_t i = 0; i < n_keys; i++) {
        const struct rt_conf_key *k = &keys[i];
        void *field = (char *) obj + k->offset;

        switch (k->type) {
        case RT_CONF_STR:
            free(*(char **) field);
            *(char **) field = NULL;
            break;
        case RT_CONF_STRV:
            rt_strv_done(field);
            break;
        case RT_CONF_STRMAP:
            rt_strmap_done(field);
            break;
        case RT_CONF_LIST: {
            struct rt_conf_list *l = field;

            for (size_t j = 0; j < l->n; j++)
                rt_conf_done(k->sub, k->n_sub, (char *) l->items + j * k->item_size);
            free(l->items);
            l->items = NULL;
            l->n = 0;
            break;
        }
        case RT_CONF_CUSTOM:
            if (k->done)
                k->done(field);
            break;
        default:
            break;
        }
    }
}

/* --- docs --------------------------------------------------------------------------- */

static void describe_type(const struct rt_conf_key *k, char *buf, size_t size)
{
    char list[400], lo[32], hi[32];

    switch (k->type) {
    case RT_CONF_STR:
        if (k->names)
            (void) snprintf(buf, size, "one of %s", format_names(k->names, list, sizeof(list)));
        else
            (void) snprintf(buf, size, "string");
        break;
    case RT_CONF_BOOL:
        (void) snprintf(buf, size, "true or false");
        break;
    case RT_CONF_INT:
        if (k->min || k->max)
            (void) snprintf(buf, size, "integer in %" PRId64 "..%" PRId64, k->min, k->max);
        else
            (void) snprintf(buf, size, "integer");
        break;
    case RT_CONF_ENUM:
        (void) snprintf(buf, size, "one of %s", format_names(k->names, list, sizeof(list)));
        break;
    case RT_CONF_DURATION:
        (void) snprintf(buf, size, "duration in %s..%s",
                        format_duration((uint64_t) k->min, lo, sizeof(lo)),
                        format_duration((uint64_t) k->max, hi, sizeof(hi)));
        break;
    case RT_CONF_STRV:
        if (k->names)
            (void) snprintf(buf, size, "list of: %s", format_names(k->names, list, sizeof(list)));
        else
            (void) snprintf(buf, size, "list of strings (at most %zu)", max_items(k));
        break;
    case RT_CONF_STRMAP:
        (void) snprintf(buf, size, "mapping of strings (at most %zu)", max_items(k));
        break;
    case RT_CONF_LIST:
        (void) snprintf(buf, size, "list of mappings (at most %zu)", max_items(k));
        break;
    default:
        (void) snprintf(buf, size, "see notes");
        break;
    }
}

static int describe(const struct rt_conf_key *keys, size_t n_keys, const char *prefix, FILE *out)
{
    for (size_t i = 0; i < n_keys; i++) {
        const struct rt_conf_key *k = &keys[i];
        char type[512], sub[300];

        describe_type(k, type, sizeof(type));
        if (fprintf(out, "| `%s%s` | %s | %s | %s%s |\n", prefix, k->name, type,
                    k->def ? k->def : (k->required ? "required" : "-"),
                    k->deprecated ? "deprecated: " : "", k->doc ? k->doc : "") < 0)
            return -EIO;
        if (k->type == RT_CONF_LIST) {
            int r;

            (void) snprintf(sub, sizeof(sub), "%s%s[].", prefix, k->name);
            r = describe(k->sub, k->n_sub, sub, out);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

int rt_conf_describe(const struct rt_conf_key *keys, size_t n_keys, FILE *out)
{
    if (fprintf(out, "| key | type | default | notes |\n|---|---|---|---|\n") < 0)
        return -EIO;
    return describe(keys, n_keys, "", out);
}

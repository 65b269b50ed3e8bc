/* Table-driven YAML configuration (STYLE.md section 7).
 *
 * A YAML document is first read into a small tree (rt_ynode) under hard limits: size,
 * nesting depth, node count, no aliases, one document.  Then one table of keys
 * (rt_conf_key) binds that tree onto a C struct: the table gives each key's type,
 * default, bounds and allowed names, so parsing, defaults, validation and the docs come
 * from one place.  Every message names the file, the line and the key:
 *   templates/gradio.yaml:14: run.port: expected an integer in 1..65535, got 'abc'
 */
#ifndef SP_RUNTIMED_CONFTABLE_H
#define SP_RUNTIMED_CONFTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"

/* --- the tree ----------------------------------------------------------------------- */

enum rt_ynode_kind {
    RT_YNODE_NULL,   /* an empty value, '~' or 'null' */
    RT_YNODE_SCALAR, /* text, as written (numbers are not converted) */
    RT_YNODE_SEQ,
    RT_YNODE_MAP, /* items[2i] is a scalar key, items[2i + 1] its value */
    _RT_YNODE_MAX,
};

struct rt_ynode {
    enum rt_ynode_kind kind;
    unsigned line; /* 1-based line in the file the document came from */
    bool plain;    /* a scalar written without quotes or block style */
    char *text;    /* scalar text, NUL-terminated (NUL bytes are refused) */
    size_t len;    /* strlen(text) */
    struct rt_ynode **items;
    size_t n; /* items; for a mapping, twice the number of pairs */
    size_t cap;
};

struct rt_yaml_limits {
    size_t max_bytes;  /* input size */
    size_t max_depth;  /* nested sequences and mappings */
    size_t max_nodes;  /* every scalar, sequence and mapping, keys included */
    size_t max_scalar; /* bytes in one scalar */
};

/* The limits used for README front matter and templates: 64 KiB, depth 16,
 * 10,000 nodes, 8 KiB scalars. */
extern const struct rt_yaml_limits rt_yaml_default_limits;

/* Parses one YAML document from @buf (UTF-8 only).  @file and @first_line name where
 * the text came from, for messages.  An empty document gives a RT_YNODE_NULL root.
 * Returns 0 and the tree in *ret_root (free with rt_ynode_free()), or -EINVAL with
 * a message ("README.md:3: invalid YAML: ..."), -E2BIG past a limit, -ENOMEM. */
int rt_yaml_parse(const char *buf, size_t len, const char *file, unsigned first_line,
                  const struct rt_yaml_limits *lim, struct rt_ynode **ret_root, struct rt_err *err);

void rt_ynode_free(struct rt_ynode *n);
void rt_ynode_freep(struct rt_ynode **n);

/* Looks a key up in a mapping node.  Returns the value or NULL. */
const struct rt_ynode *rt_ynode_get(const struct rt_ynode *map, const char *key);

/* How the YAML 1.2 core schema types a scalar, for callers that turn the tree into JSON
 * (the API's cardData).  Only plain (unquoted) scalars are bools or numbers; the tree
 * itself keeps every scalar as the text written. */
enum rt_yscalar {
    RT_YSCALAR_STRING,
    RT_YSCALAR_BOOL,
    RT_YSCALAR_INT,
    RT_YSCALAR_FLOAT,
    _RT_YSCALAR_MAX,
};
enum rt_yscalar rt_ynode_scalar_type(const struct rt_ynode *n);

/* Writes @s into @buf for a message: at most about 40 characters, control characters
 * and bytes >= 0x7f shown as \xNN, so hostile text cannot forge log lines. */
const char *rt_conf_quote(const char *s, size_t len, char *buf, size_t size);

/* --- values ------------------------------------------------------------------------- */

struct rt_strv {
    char **v;
    size_t n;
};

/* Ordered pairs, keys unique. */
struct rt_strmap {
    char **keys;
    char **values;
    size_t n;
};

/* A list of structs described by a sub-table: items is an array of n * key.item_size. */
struct rt_conf_list {
    void *items;
    size_t n;
};

void rt_strv_done(struct rt_strv *v);
void rt_strmap_done(struct rt_strmap *m);
/* Returns the value for @key or NULL. */
const char *rt_strmap_get(const struct rt_strmap *m, const char *key);
/* Appends a copy of @s.  Returns 0 or -ENOMEM. */
int rt_strv_push(struct rt_strv *v, const char *s);
/* Appends copies of @key and @value (no duplicate check).  Returns 0 or -ENOMEM. */
int rt_strmap_push(struct rt_strmap *m, const char *key, const char *value);

/* Parses "500ms", "90s", "30m", "1h", "1h30m", "2d" into milliseconds.
 * Returns 0 or -EINVAL / -ERANGE; *ret_ms is untouched on failure. */
int rt_parse_duration_ms(const char *s, uint64_t *ret_ms);

/* --- the table ---------------------------------------------------------------------- */

enum rt_conf_type {
    RT_CONF_STR,      /* char *; any scalar, kept as written */
    RT_CONF_BOOL,     /* bool; true/false (also yes/no/on/off), unquoted */
    RT_CONF_INT,      /* int64_t in min..max; unquoted decimal */
    RT_CONF_ENUM,     /* int: index into names, -1 when unset */
    RT_CONF_DURATION, /* uint64_t milliseconds in min..max */
    RT_CONF_STRV,     /* struct rt_strv; a list of scalars (or one scalar); names, check */
    RT_CONF_STRMAP,   /* struct rt_strmap; a mapping of scalars; names limit the keys */
    RT_CONF_LIST,     /* struct rt_conf_list of structs described by sub */
    RT_CONF_CUSTOM,   /* parse() and done() do everything */
    _RT_CONF_TYPE_MAX,
};

struct rt_conf_ctx;
struct rt_conf_key;

/* Returns NULL when @s is acceptable, else what was expected ("a path relative to the
 * repository root"), used as "KEY: expected WHAT, got 'S'". */
typedef const char *(*rt_conf_check_fn)(const char *s);

struct rt_conf_key {
    const char *name; /* "run.port": a dot walks into a nested mapping */
    enum rt_conf_type type;
    size_t offset;
    bool required;
    bool deprecated;               /* accepted, with a warning naming doc */
    const char *def;               /* default, written as in YAML ("7860", "30m", "true") */
    int64_t min, max;              /* INT and DURATION (ms) bounds; both 0: no bound */
    size_t max_len;                /* STR and items; 0: 1024 */
    size_t max_items;              /* STRV, STRMAP, LIST; 0: 256 */
    const char *const *names;      /* ENUM values, STRV items, STRMAP keys; NULL-terminated */
    rt_conf_check_fn check;        /* STR, STRV items, STRMAP values */
    rt_conf_check_fn check_key;    /* STRMAP keys */
    const struct rt_conf_key *sub; /* LIST: the item's table */
    size_t n_sub;
    size_t item_size;
    int (*parse)(const struct rt_conf_key *k, const struct rt_ynode *v, void *field,
                 struct rt_conf_ctx *ctx);
    void (*done)(void *field);
    const char *doc; /* one line for the docs and for deprecation warnings */
};

#define RT_CONF_MAX_KEYS 64
#define RT_CONF_MAX_WARNINGS 32

struct rt_conf_ctx {
    const char *file;      /* "README.md" or "templates/gradio.yaml" */
    bool unknown_is_error; /* templates: yes; README: kept as warnings */
    struct rt_strv *warnings;
    struct rt_strv *unknown; /* when set, the unknown keys' names are kept here */
    struct rt_err *err;
};

/* Formats "FILE:LINE: KEY: MSG" (or "FILE: KEY: MSG" when line is 0) into ctx->err.
 * Returns -EINVAL. */
int rt_conf_fail(struct rt_conf_ctx *ctx, unsigned line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Adds "FILE:LINE: KEY: MSG" to ctx->warnings (at most RT_CONF_MAX_WARNINGS; then one
 * "... more warnings" line).  Returns 0 or -ENOMEM. */
int rt_conf_warn(struct rt_conf_ctx *ctx, unsigned line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Sets every field of @obj to its default, then overlays the mapping @root (NULL or a
 * RT_YNODE_NULL node means empty), then checks required keys.  @obj must start zeroed.
 * On failure ctx->err says why and @obj may be half-filled: free it with
 * rt_conf_done() either way. */
int rt_conf_bind(const struct rt_conf_key *keys, size_t n_keys, const struct rt_ynode *root,
                 void *obj, struct rt_conf_ctx *ctx);

/* Frees what rt_conf_bind() allocated in @obj and zeroes those fields. */
void rt_conf_done(const struct rt_conf_key *keys, size_t n_keys, void *obj);

/* Writes the table as Markdown rows "| `key` | type | default | notes |" (the docs and
 * `config show` come from the same table as the parser).  Returns 0 or -errno. */
int rt_conf_describe(const struct rt_conf_key *keys, size_t n_keys, FILE *out);

/* Parses one scalar as key @k would (for custom parsers reusing the table's types). */
int rt_conf_set(const struct rt_conf_key *k, const struct rt_ynode *v, void *obj,
                struct rt_conf_ctx *ctx);

#endif

/* Output for people: aligned tables and JSON values rendered as short text. */
#ifndef SP_RUNTIMED_SPACECTL_FMT_H
#define SP_RUNTIMED_SPACECTL_FMT_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#define SC_TABLE_MAX_COLS 16

struct sc_table {
    size_t ncols, nrows; /* row 0 holds the headers */
    char **cells;        /* nrows * ncols strings, owned */
};

/* Starts a table with @ncols (1..SC_TABLE_MAX_COLS) columns named by @headers.
 * Returns 0, -EINVAL or -ENOMEM; sc_table_done() is safe either way. */
int sc_table_init(struct sc_table *t, size_t ncols, const char *const *headers);

/* Appends a row of ncols strings (copied; NULL prints as "-").  Returns 0 or -ENOMEM. */
int sc_table_add(struct sc_table *t, const char *const *cells);

/* Prints the rows with columns two spaces apart and no trailing blanks. */
void sc_table_print(const struct sc_table *t, FILE *out);

void sc_table_done(struct sc_table *t);

/* Renders a JSON value for a table cell: a string as it is, a number, "yes"/"no",
 * "-" for null or absent, compact JSON for arrays and objects.  Returns a malloc'd
 * string or NULL when out of memory. */
char *sc_fmt_value(const json_t *v);

/* Renders a byte count: exact powers of 1024 as "16G" or "1536M", exact decimal
 * sizes as the Hub writes them ("16GB", "500MB"), anything else rounded ("~1.5K").
 * A value that is not a count of bytes goes through sc_fmt_value.  Returns a malloc'd
 * string or NULL. */
char *sc_fmt_bytes(const json_t *v);

#endif

/* Tables and values for people; --json bypasses all of this. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "spacectl-fmt.h"
#include "util.h"
#include "banned.h"

int sc_table_init(struct sc_table *t, size_t ncols, const char *const *headers)
{
    memset(t, 0, sizeof(*t));
    if (ncols == 0 || ncols > SC_TABLE_MAX_COLS)
        return -EINVAL;
    t->ncols = ncols;
    return sc_table_add(t, headers);
}

int sc_table_add(struct sc_table *t, const char *const *cells)
{
    char **n = realloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(char *));

    if (!n)
        return -ENOMEM;
    t->cells = n;
    for (size_t c = 0; c < t->ncols; c++) {
        char *s = strdup(cells[c] ? cells[c] : "-");

        if (!s) {
            while (c-- > 0)
                free(t->cells[t->nrows * t->ncols + c]);
            return -ENOMEM;
        }
        /* a newline or tab inside a cell would break the columns */
        for (char *p = s; *p; p++)
            if (*p == '\n' || *p == '\t' || *p == '\r')
                *p = ' ';
        t->cells[t->nrows * t->ncols + c] = s;
    }
    t->nrows++;
    return 0;
}

void sc_table_print(const struct sc_table *t, FILE *out)
{
    size_t width[SC_TABLE_MAX_COLS] = { 0 };
    size_t ncols = t->ncols;

    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < ncols; c++) {
            size_t w = strlen(t->cells[r * t->ncols + c]);

            if (w > width[c])
                width[c] = w;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t c = 0; c < ncols; c++) {
            const char *s = t->cells[r * t->ncols + c];

            if (c + 1 == ncols)
                fprintf(out, "%s", s); /* no trailing blanks */
            else
                fprintf(out, "%-*s  ", (int) width[c], s);
        }
        fputc('\n', out);
    }
}

void sc_table_done(struct sc_table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    t->cells = NULL;
    t->nrows = 0;
}

char *sc_fmt_value(const json_t *v)
{
    char buf[64];

    if (!v || json_is_null(v))
        return strdup("-");
    if (json_is_string(v))
        return strdup(json_string_value(v));
    if (json_is_true(v))
        return strdup("yes");
    if (json_is_false(v))
        return strdup("no");
    if (json_is_integer(v)) {
        (void) snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return strdup(buf);
    }
    if (json_is_real(v)) {
        (void) snprintf(buf, sizeof(buf), "%g", json_real_value(v));
        return strdup(buf);
    }
    return json_dumps(v, JSON_COMPACT);
}

char *sc_fmt_bytes(const json_t *v)
{
    static const char units[] = "KMGT";
    char buf[32], dec[32] = "";
    uint64_t b;
    double d;
    int u;

    if (!json_is_number(v))
        return sc_fmt_value(v);
    d = json_number_value(v);
    if (d < 0 || d >= 18446744073709551615.0 || d != floor(d))
        return sc_fmt_value(v);
    b = (uint64_t) d;
    /* exact binary sizes read as typed ("16G"), the Hub's decimal ones as it writes
     * them ("16GB"): whichever is shorter; anything else is rounded, and says so */
    if (b >= 1000000 && b % 1000000000ULL == 0)
        (void) snprintf(dec, sizeof(dec), "%lluGB", (unsigned long long) (b / 1000000000ULL));
    else if (b >= 1000000 && b % 1000000ULL == 0)
        (void) snprintf(dec, sizeof(dec), "%lluMB", (unsigned long long) (b / 1000000ULL));
    if (b < 1024 || b % 1024 == 0) {
        (void) rt_format_size(b, buf, sizeof(buf));
        return strdup(dec[0] && strlen(dec) < strlen(buf) ? dec : buf);
    }
    if (dec[0])
        return strdup(dec);
    for (u = 0, d /= 1024; d >= 1024 && u < 3; u++)
        d /= 1024;
    (void) snprintf(buf, sizeof(buf), "~%.1f%c", d, units[u]);
    return strdup(buf);
}

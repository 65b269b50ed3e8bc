/* Unit tests for spacectl's tables and value rendering (runtimed/spacectl-fmt.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../tap.h"
#include "runtimed/spacectl-fmt.h"
#include "cleanup.h"

static void test_table(void)
{
    static const char *const headers[] = { "ID", "SDK", "STAGE" };
    _cleanup_free_ char *text = NULL;
    struct sc_table t;
    size_t len = 0;
    FILE *f;

    is_int(sc_table_init(&t, 3, headers), 0, "init");
    is_int(sc_table_add(&t, (const char *const[]){ "alice/demo", "gradio", "RUNNING" }), 0, "row");
    is_int(sc_table_add(&t, (const char *const[]){ "bob/x", NULL, "multi\nline" }), 0, "row 2");
    f = open_memstream(&text, &len);
    sc_table_print(&t, f);
    fclose(f);
    sc_table_done(&t);
    is_str(text,
           "ID          SDK     STAGE\n"
           "alice/demo  gradio  RUNNING\n"
           "bob/x       -       multi line\n",
           "columns aligned, NULL as '-', newlines flattened, no trailing blanks");

    is_int(sc_table_init(&t, 0, headers), -EINVAL, "zero columns refused");
    sc_table_done(&t);
    is_int(sc_table_init(&t, SC_TABLE_MAX_COLS + 1, headers), -EINVAL, "too many columns");
    sc_table_done(&t);
}

static void check_value(json_t *v, const char *want, const char *name)
{
    _cleanup_free_ char *s = sc_fmt_value(v);

    is_str(s, want, name);
    json_decref(v);
}

static void check_bytes(json_t *v, const char *want, const char *name)
{
    _cleanup_free_ char *s = sc_fmt_bytes(v);

    is_str(s, want, name);
    json_decref(v);
}

static void test_values(void)
{
    check_value(json_string("x y"), "x y", "string");
    check_value(json_integer(-3), "-3", "integer");
    check_value(json_real(2.5), "2.5", "real");
    check_value(json_real(2.0), "2", "whole real without a fraction");
    check_value(json_true(), "yes", "true");
    check_value(json_false(), "no", "false");
    check_value(json_null(), "-", "null");
    check_value(NULL, "-", "absent");
    check_value(json_pack("[i,s]", 1, "a"), "[1,\"a\"]", "array as compact JSON");
    check_value(json_pack("{s:i}", "k", 1), "{\"k\":1}", "object as compact JSON");

    check_bytes(json_integer(16LL << 30), "16G", "16 GiB");
    check_bytes(json_integer(1536LL << 20), "1536M", "1.5 GiB is exact in M");
    check_bytes(json_integer(1000), "1000", "below 1K, plain bytes");
    check_bytes(json_integer(16000000000LL), "16GB", "the Hub's decimal 16 GB");
    check_bytes(json_integer(500000000LL), "500MB", "decimal MB");
    check_bytes(json_integer(1536 + 100), "~1.6K", "inexact sizes are rounded and marked");
    check_bytes(json_integer(0), "0", "zero");
    check_bytes(json_real(1024.0), "1K", "a real that is whole");
    check_bytes(json_integer(-1), "-1", "negative passes through");
    check_bytes(json_string("16 GB"), "16 GB", "Hub display string passes through");
    check_bytes(NULL, "-", "absent");
}

int main(void)
{
    tap_start();
    test_table();
    test_values();
    return tap_done();
}

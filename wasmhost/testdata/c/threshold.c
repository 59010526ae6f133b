/*
 * The threshold filter in C (the benchmarks compare it with the Go one): keep events whose
 * numeric JSON field (config "field", default "amount") is at least config "min" (default 0).
 */
#define WASMROUTER_IMPLEMENTATION
#include "../../../guest/c/wasmrouter.h"

#include <stdlib.h>

static char field[128] = "amount";
static double min;

__attribute__((constructor)) static void init(void) {
    char buf[64];
    int32_t n = wr_config_s("field", field, sizeof field - 1);
    if (n < 0 || n >= (int32_t)sizeof field) strcpy(field, "amount");
    else field[n] = 0;
    n = wr_config_s("min", buf, sizeof buf - 1);
    if (n >= 0 && n < (int32_t)sizeof buf) {
        buf[n] = 0;
        min = strtod(buf, NULL);
    }
}

WR_EXPORT(wr_filter) int32_t wr_filter(const uint8_t *body, int32_t len) {
    double v;
    if (!wr_json_number(body, len, field, &v)) return wr_fail(WR_DEAD_LETTER, "missing or non-numeric field");
    return v >= min ? WR_CONTINUE : WR_DROP;
}

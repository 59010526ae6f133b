/*
 * keyfilter: a filter guest in C that keeps events by header value and/or routing-key prefix.
 *
 * Config: header + value (keep only events whose header's text equals value), prefix (keep
 * only events whose routing key starts with it). When both are set, both must hold; at least
 * one is required (the module fails to start otherwise).
 *
 *   clang --target=wasm32-wasi -O2 -mexec-model=reactor -Wl,--strip-all -o keyfilter.wasm keyfilter.c
 */
#define WASMROUTER_IMPLEMENTATION
#define WASMROUTER_NO_JSON
#include "../../../guest/c/wasmrouter.h"

#include <stdlib.h>

static char *header, *value, *prefix;
static int32_t header_len, value_len, prefix_len;
static char *scratch; /* value_len + 1 bytes: one more than a match needs */

/* config reads a config value into a malloc'd buffer; NULL when absent. */
static char *config(const char *name, int32_t *len) {
    int32_t n = wr_config_s(name, NULL, 0);
    if (n < 0) return NULL;
    char *v = malloc((size_t)n + 1);
    wr_config_s(name, v, n);
    v[n] = 0;
    *len = n;
    return v;
}

/* Runs in _initialize: a module without a usable config fails at start-up. */
__attribute__((constructor)) static void init(void) {
    header = config("header", &header_len);
    value = config("value", &value_len);
    prefix = config("prefix", &prefix_len);
    if ((header == NULL) != (value == NULL)) {
        wr_error_s("keyfilter: config \"header\" and \"value\" go together");
        __builtin_trap();
    }
    if (header == NULL && prefix == NULL) {
        wr_error_s("keyfilter: config needs \"header\" and \"value\", or \"prefix\"");
        __builtin_trap();
    }
    if (prefix_len > 255) {
        wr_error_s("keyfilter: config \"prefix\" is longer than any routing key");
        __builtin_trap();
    }
    if (header) scratch = malloc((size_t)value_len + 1);
}

WR_EXPORT(wr_filter) int32_t wr_filter(const uint8_t *body, int32_t len) {
    (void)body;
    (void)len;
    if (prefix) {
        char key[255];
        int32_t n = wr_meta_get(WR_STR("routing_key"), key, sizeof key);
        if (n < prefix_len || memcmp(key, prefix, (size_t)prefix_len) != 0) return WR_DROP;
    }
    if (header) {
        /* One byte more than value: a longer header cannot pass for an equal one. */
        int32_t n = wr_header_get(header, header_len, scratch, value_len + 1);
        if (n != value_len || memcmp(scratch, value, (size_t)value_len) != 0) return WR_DROP;
    }
    return WR_CONTINUE;
}

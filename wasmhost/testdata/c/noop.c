/* The cheapest C filter: the floor of a guest call in the benchmarks. */
#define WASMROUTER_IMPLEMENTATION
#define WASMROUTER_NO_JSON
#include "../../../guest/c/wasmrouter.h"

WR_EXPORT(wr_filter) int32_t wr_filter(const uint8_t *body, int32_t len) {
    (void)body;
    (void)len;
    return WR_CONTINUE;
}

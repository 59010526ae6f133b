/* A command module (it has _start, not _initialize): the host refuses it. */
#define WASMROUTER_IMPLEMENTATION
#define WASMROUTER_NO_JSON
#include "../../../guest/c/wasmrouter.h"

WR_EXPORT(wr_filter) int32_t wr_filter(const uint8_t *body, int32_t len) {
    (void)body;
    return len > 0 ? WR_CONTINUE : WR_DROP;
}

int main(void) { return 0; }

/*
 * Modules the host must refuse at load (or whose instances it must replace), one per variant:
 * build with -DVARIANT=name (see Makefile). Each lacks or breaks exactly one thing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT(name) __attribute__((export_name(#name)))
#define IMPORT(mod, name) __attribute__((import_module(#mod), import_name(#name)))

#define V_noentry 1
#define V_badsig 2
#define V_badimport 3
#define V_unknownimport 4
#define V_envimport 5
#define V_nomarker 6
#define V_initfail 7
#define V_bigmem 8
#define V_badbuffer 9
#define V_badbuffersig 10
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define IS(v) (CAT(V_, VARIANT) == CAT(V_, v))

#if !IS(nomarker)
EXPORT(wr_abi_v1) void wr_abi_v1(void) {}
#endif

static uint8_t *buffer __attribute__((unused));

#if IS(badbuffer)
EXPORT(wr_buffer) uint8_t *wr_buffer(int32_t size) { (void)size; return (uint8_t *)0xFFFF0000u; }
#elif IS(badbuffersig)
EXPORT(wr_buffer) int64_t wr_buffer(int64_t size) { return size; }
#else
EXPORT(wr_buffer) uint8_t *wr_buffer(int32_t size) {
    free(buffer);
    buffer = malloc((size_t)size);
    return buffer;
}
#endif

#if IS(badimport)
IMPORT(wasmrouter_v1, meta_get) int32_t meta_get(const char *name, int32_t len, char *buf);
#elif IS(unknownimport)
IMPORT(wasmrouter_v1, nope) void nope(void);
#elif IS(envimport)
IMPORT(env, secret) int32_t secret(void);
#endif

#if IS(initfail)
IMPORT(wasmrouter_v1, error_set) void error_set(const char *reason, int32_t len);
__attribute__((constructor)) static void init(void) {
    error_set("init refused", 12);
    __builtin_trap();
}
#endif

#if IS(bigmem)
static volatile uint8_t big[8 << 20]; /* 8 MiB of initial memory */
#endif

#if IS(badsig)
EXPORT(wr_filter) int32_t wr_filter(int32_t ptr) { return ptr; }
#elif !IS(noentry)
EXPORT(wr_filter) int32_t wr_filter(const uint8_t *body, int32_t len) {
    (void)body;
    (void)len;
#if IS(badimport)
    char buf[8];
    return meta_get("x", 1, buf);
#elif IS(unknownimport)
    nope();
#elif IS(envimport)
    return secret();
#elif IS(bigmem)
    return big[len];
#endif
    return 0;
}
#endif

EXPORT(wr_transform) int32_t wr_transform(const uint8_t *body, int32_t len) {
    (void)body;
    return len > 0 ? 0 : 1;
}

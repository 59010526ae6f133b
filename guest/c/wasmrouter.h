/*
 * wasmrouter.h: the wasmrouter guest ABI, version 1, for C (one header, no library).
 *
 * Build a reactor with clang and wasi-libc:
 *
 *   clang --target=wasm32-wasi -O2 -mexec-model=reactor -Wl,--strip-all -o guest.wasm guest.c
 *
 * In exactly one file, define WASMROUTER_IMPLEMENTATION before including this header: it
 * defines the wr_abi_v1 and wr_buffer exports. Then export the entry points your module's roles
 * need, each (body, len) -> result code:
 *
 *   #define WASMROUTER_IMPLEMENTATION
 *   #include "wasmrouter.h"
 *
 *   WR_EXPORT(wr_filter) int32_t wr_filter(const uint8_t *body, int32_t len) {
 *       char key[256];
 *       int32_t n = wr_meta_get(WR_STR("routing_key"), key, sizeof key);
 *       return n >= 0 && n <= (int32_t)sizeof key && memcmp(key, "order.", 6) == 0 ? WR_CONTINUE : WR_DROP;
 *   }
 *
 * Getters write at most cap bytes and return the value's full length, or -1 when it is absent:
 * a result larger than cap means "call again with a buffer of that size". The body pointer is
 * valid only during the call. Define WASMROUTER_NO_JSON to leave out the small JSON reader.
 */
#ifndef WASMROUTER_H
#define WASMROUTER_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Result codes of wr_filter, wr_transform and wr_handle. */
#define WR_CONTINUE 0    /* keep the event */
#define WR_DROP 1        /* stop the event for this route */
#define WR_RETRY 2       /* transient failure */
#define WR_DEAD_LETTER 3 /* permanent failure */

/* Levels of wr_log. */
#define WR_LOG_DEBUG 0
#define WR_LOG_INFO 1
#define WR_LOG_WARN 2
#define WR_LOG_ERROR 3

#define WR_EXPORT(name) __attribute__((export_name(#name)))
#define WR_IMPORT(name) __attribute__((import_module("wasmrouter_v1"), import_name(#name)))

/* WR_STR("literal") expands to the pointer and length arguments of a string literal. */
#define WR_STR(s) (s), (int32_t)(sizeof(s) - 1)

/* The raw imports, as the ABI defines them. */
WR_IMPORT(meta_get) int32_t wr_meta_get(const char *name, int32_t name_len, char *buf, int32_t cap);
WR_IMPORT(header_get) int32_t wr_header_get(const char *name, int32_t name_len, char *buf, int32_t cap);
WR_IMPORT(config_get) int32_t wr_config_get(const char *name, int32_t name_len, char *buf, int32_t cap);
WR_IMPORT(body_set) void wr_body_set(const void *body, int32_t len);
WR_IMPORT(routing_key_set) void wr_routing_key_set(const char *key, int32_t len);
WR_IMPORT(header_set) void wr_header_set(const char *name, int32_t name_len, const char *val, int32_t val_len);
WR_IMPORT(emit) int32_t wr_emit(const char *target, int32_t target_len, const char *key, int32_t key_len,
                                const void *body, int32_t body_len);
WR_IMPORT(error_set) void wr_error_set(const char *reason, int32_t len);
WR_IMPORT(log) void wr_log_raw(int32_t level, const char *msg, int32_t len);
/* Extensions of version 1 (a module that does not call them does not import them, and loads on
 * any host): headers for the next wr_emit. wr_emit_headers_copy starts them from the event's
 * headers (typed as they arrived); wr_emit_header_set adds a string header over those. Both are
 * for handlers, and are forgotten after each wr_emit. */
WR_IMPORT(emit_header_set) void wr_emit_header_set(const char *name, int32_t name_len, const char *val, int32_t val_len);
WR_IMPORT(emit_headers_copy) void wr_emit_headers_copy(void);

/* Convenience forms taking NUL-terminated strings. */
static inline int32_t wr_meta_s(const char *name, char *buf, int32_t cap) {
    return wr_meta_get(name, (int32_t)strlen(name), buf, cap);
}
static inline int32_t wr_header_s(const char *name, char *buf, int32_t cap) {
    return wr_header_get(name, (int32_t)strlen(name), buf, cap);
}
static inline int32_t wr_config_s(const char *name, char *buf, int32_t cap) {
    return wr_config_get(name, (int32_t)strlen(name), buf, cap);
}
static inline void wr_header_set_s(const char *name, const char *val) {
    wr_header_set(name, (int32_t)strlen(name), val, (int32_t)strlen(val));
}
static inline void wr_error_s(const char *reason) { wr_error_set(reason, (int32_t)strlen(reason)); }
static inline void wr_log_s(int32_t level, const char *msg) { wr_log_raw(level, msg, (int32_t)strlen(msg)); }

static inline void wr_routing_key_set_s(const char *key) { wr_routing_key_set(key, (int32_t)strlen(key)); }
static inline void wr_body_set_s(const char *body) { wr_body_set(body, (int32_t)strlen(body)); }
static inline void wr_emit_header_set_s(const char *name, const char *val) {
    wr_emit_header_set(name, (int32_t)strlen(name), val, (int32_t)strlen(val));
}
/* wr_emit_s emits body (len bytes) to target with routing key key; 0, or -1 for an unknown target. */
static inline int32_t wr_emit_s(const char *target, const char *key, const void *body, int32_t len) {
    return wr_emit(target, (int32_t)strlen(target), key, (int32_t)strlen(key), body, len);
}

/* wr__str copies a getter's value into buf as a NUL-terminated string. It returns the length,
 * or -1 when the value is absent or does not fit in cap - 1 bytes (buf is then ""). */
static inline int32_t wr__str(int32_t (*get)(const char *, int32_t, char *, int32_t), const char *name, char *buf,
                              int32_t cap) {
    if (cap <= 0) return -1;
    int32_t n = get(name, (int32_t)strlen(name), buf, cap - 1);
    if (n < 0 || n > cap - 1) {
        buf[0] = 0;
        return -1;
    }
    buf[n] = 0;
    return n;
}
/* wr_meta_str, wr_header_str: the value as a C string in buf (see wr__str). */
static inline int32_t wr_meta_str(const char *name, char *buf, int32_t cap) { return wr__str(wr_meta_get, name, buf, cap); }
static inline int32_t wr_header_str(const char *name, char *buf, int32_t cap) {
    return wr__str(wr_header_get, name, buf, cap);
}
/* wr_config_str copies config value name into buf as a C string, or def when the module's
 * config lacks it. It returns the length, or -1 when the value does not fit (buf is then ""). */
static inline int32_t wr_config_str(const char *name, char *buf, int32_t cap, const char *def) {
    int32_t n = wr__str(wr_config_get, name, buf, cap);
    if (n >= 0 || !def) return n;
    if (wr_config_get(name, (int32_t)strlen(name), NULL, 0) >= 0 || cap <= 0) return -1; /* present, too long */
    size_t d = strlen(def);
    if (d >= (size_t)cap) {
        buf[0] = 0;
        return -1;
    }
    memcpy(buf, def, d + 1);
    return (int32_t)d;
}

/* wr_fail records reason and returns code, for `return wr_fail(WR_DEAD_LETTER, "...");`. */
static inline int32_t wr_fail(int32_t code, const char *reason) {
    wr_error_s(reason);
    return code;
}

#ifndef WASMROUTER_NO_JSON
/*
 * A small allocation-free JSON reader. wr_json_get finds the value at a dotted path of object
 * keys ("customer.address.city"; a segment of digits indexes an array) and returns its kind, with
 * *val and *val_len set to the value's raw text (strings keep their quotes), or WR_JSON_NONE.
 * Keys are compared byte for byte with the raw key text (no escape decoding).
 */
enum { WR_JSON_NONE, WR_JSON_OBJECT, WR_JSON_ARRAY, WR_JSON_STRING, WR_JSON_NUMBER, WR_JSON_BOOL, WR_JSON_NULL };

static inline const uint8_t *wr__json_ws(const uint8_t *p, const uint8_t *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* Eight-byte steps: masks with one bit per byte (bit k = byte k) of the bytes equal to c. */
#define WR__LOWS 0x0101010101010101ull

static inline uint32_t wr__eq_mask(uint64_t x, uint8_t c) {
    const uint64_t low7 = 0x7f7f7f7f7f7f7f7full;
    uint64_t t = x ^ (WR__LOWS * c);
    uint64_t zero = ~(((t & low7) + low7) | t | low7); /* high bit of each zero byte, exactly */
    return (uint32_t)(((zero >> 7) * 0x0102040810204080ull) >> 56);
}

/* wr__json_skip_container skips the object or array starting at p by counting brackets outside
 * strings, eight bytes per step (branching per byte costs more in WebAssembly). Escapes are
 * found with simdjson's odd-backslash-run arithmetic; a backslash escapes the next byte
 * wherever it is (outside strings the document is invalid anyway). */
static inline const uint8_t *wr__json_skip_container(const uint8_t *p, const uint8_t *end) {
    int depth = 0;
    uint32_t in_string = 0, escape = 0;
    while (end - p >= 8) {
        uint64_t x;
        memcpy(&x, p, 8);
        uint32_t bs = wr__eq_mask(x, '\\') & ~escape;
        uint32_t follows = (bs << 1) | escape;
        uint32_t seq = (bs & ~0x55u & ~follows) + bs;
        uint32_t esc = (0x55u ^ (seq << 1)) & follows & 0xff;
        escape = (seq >> 8) & 1;
        uint32_t quotes = wr__eq_mask(x, '"') & ~esc;
        uint64_t folded = x | (WR__LOWS * 0x20); /* '[' -> '{', ']' -> '}' */
        uint32_t in = quotes;
        in ^= in << 1;
        in ^= in << 2;
        in ^= in << 4;
        in = (in ^ (in_string ? 0xffu : 0)) & 0xff; /* bytes inside strings */
        uint32_t opens = wr__eq_mask(folded, '{') & ~(in | esc);
        uint32_t closes = wr__eq_mask(folded, '}') & ~(in | esc);
        in_string ^= (uint32_t)__builtin_popcount(quotes) & 1;
        int nclose = __builtin_popcount(closes);
        if (closes && depth <= nclose) {
            for (uint32_t m = opens | closes; m; m &= m - 1) {
                uint32_t bit = m & (0u - m);
                if (opens & bit) depth++;
                else if (--depth == 0) return p + __builtin_ctz(bit) + 1;
            }
        } else {
            depth += __builtin_popcount(opens) - nclose;
        }
        p += 8;
    }
    if (escape) {
        if (p >= end) return NULL;
        p++;
    }
    for (; p < end; p++) {
        if (*p == '\\') {
            if (++p >= end) return NULL;
            continue;
        }
        if (in_string) {
            in_string = *p != '"';
        } else if (*p == '"') {
            in_string = 1;
        } else if (*p == '{' || *p == '[') {
            depth++;
        } else if ((*p == '}' || *p == ']') && --depth == 0) {
            return p + 1;
        }
    }
    return NULL;
}

/* wr__json_skip returns the end of the value starting at p, or NULL when it is malformed. */
static inline const uint8_t *wr__json_skip(const uint8_t *p, const uint8_t *end) {
    if (p >= end) return NULL;
    if (*p == '"') {
        for (p++; p < end; p++) {
            if (*p == '\\') p++;
            else if (*p == '"') return p + 1;
        }
        return NULL;
    }
    if (*p == '{' || *p == '[') return wr__json_skip_container(p, end);
    const uint8_t *start = p;
    while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
        p++;
    return p > start ? p : NULL;
}

static inline int wr__json_kind(uint8_t c) {
    switch (c) {
    case '{': return WR_JSON_OBJECT;
    case '[': return WR_JSON_ARRAY;
    case '"': return WR_JSON_STRING;
    case 't': case 'f': return WR_JSON_BOOL;
    case 'n': return WR_JSON_NULL;
    }
    return WR_JSON_NUMBER;
}

static inline int wr_json_get(const uint8_t *json, int32_t len, const char *path, const uint8_t **val, int32_t *val_len) {
    const uint8_t *p = wr__json_ws(json, json + len), *end = json + len;
    const char *seg = path;
    for (;;) {
        const char *dot = strchr(seg, '.');
        size_t seg_len = dot ? (size_t)(dot - seg) : strlen(seg);
        int found = 0;
        if (p < end && *p == '{') {
            p = wr__json_ws(p + 1, end);
            while (p < end && *p == '"') {
                const uint8_t *key = p + 1, *key_end = wr__json_skip(p, end);
                if (!key_end) return WR_JSON_NONE;
                p = wr__json_ws(key_end, end);
                if (p >= end || *p != ':') return WR_JSON_NONE;
                p = wr__json_ws(p + 1, end);
                if ((size_t)(key_end - 1 - key) == seg_len && memcmp(key, seg, seg_len) == 0) {
                    found = 1;
                    break;
                }
                p = wr__json_skip(p, end);
                if (!p) return WR_JSON_NONE;
                p = wr__json_ws(p, end);
                if (p < end && *p == ',') p = wr__json_ws(p + 1, end);
            }
        } else if (p < end && *p == '[' && seg_len > 0 && seg[0] >= '0' && seg[0] <= '9') {
            size_t index = 0;
            for (size_t i = 0; i < seg_len; i++) {
                if (seg[i] < '0' || seg[i] > '9') return WR_JSON_NONE;
                index = index * 10 + (size_t)(seg[i] - '0');
            }
            p = wr__json_ws(p + 1, end);
            for (size_t i = 0; p < end && *p != ']'; i++) {
                if (i == index) {
                    found = 1;
                    break;
                }
                p = wr__json_skip(p, end);
                if (!p) return WR_JSON_NONE;
                p = wr__json_ws(p, end);
                if (p < end && *p == ',') p = wr__json_ws(p + 1, end);
            }
        }
        if (!found) return WR_JSON_NONE;
        if (!dot) {
            const uint8_t *v_end = wr__json_skip(p, end);
            if (!v_end) return WR_JSON_NONE;
            *val = p;
            *val_len = (int32_t)(v_end - p);
            return wr__json_kind(*p);
        }
        seg = dot + 1;
    }
}

/* wr_json_number parses the number at path into *out (integers and plain decimals, with an
 * optional exponent); returns 1 on success. */
static inline int wr_json_number(const uint8_t *json, int32_t len, const char *path, double *out) {
    const uint8_t *v;
    int32_t n;
    if (wr_json_get(json, len, path, &v, &n) != WR_JSON_NUMBER) return 0;
    const uint8_t *p = v, *end = v + n;
    int neg = 0, digits = 0;
    double x = 0, scale = 1;
    if (p < end && *p == '-') neg = 1, p++;
    for (; p < end && *p >= '0' && *p <= '9'; p++, digits++) x = x * 10 + (*p - '0');
    if (p < end && *p == '.')
        for (p++; p < end && *p >= '0' && *p <= '9'; p++, digits++) scale /= 10, x += (*p - '0') * scale;
    if (!digits) return 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        int eneg = 0, e = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-')) eneg = *p++ == '-';
        if (p >= end) return 0;
        for (; p < end && *p >= '0' && *p <= '9'; p++) e = e < 400 ? e * 10 + (*p - '0') : e;
        for (; e > 0; e--) x = eneg ? x / 10 : x * 10;
    }
    if (p != end) return 0;
    *out = neg ? -x : x;
    return 1;
}
#endif /* WASMROUTER_NO_JSON */

#ifdef WASMROUTER_IMPLEMENTATION
#include <stdlib.h>

/* The body buffer: grown on demand, reused between calls. */
static uint8_t *wr__buffer;
static int32_t wr__buffer_cap;

WR_EXPORT(wr_abi_v1) void wr_abi_v1(void) {}

WR_EXPORT(wr_buffer) uint8_t *wr_buffer(int32_t size) {
    if (size < 0) return NULL;
    if (size > wr__buffer_cap || !wr__buffer) {
        free(wr__buffer);
        wr__buffer = (uint8_t *)malloc(size > 0 ? (size_t)size : 1);
        wr__buffer_cap = wr__buffer ? size : 0;
    }
    return wr__buffer;
}
#endif /* WASMROUTER_IMPLEMENTATION */

#ifdef __cplusplus
}
#endif
#endif /* WASMROUTER_H */

/*
 * ABI conformance guest in C; testdata/go/conformance is the same in Go, and one test table
 * (conformance_test.go) runs against both. The header "op" selects what a call does; see
 * run() below. Every entry point runs the same ops, so tests can also check which host
 * functions each role may call.
 */
#define WASMROUTER_IMPLEMENTATION
#include "../../../guest/c/wasmrouter.h"

#include <stdio.h>
#include <stdlib.h>

typedef int32_t (*getter)(const char *, int32_t, char *, int32_t);

/* get reads a value with a 16-byte first try, then again with the size the host reported.
 * Returns a NUL-terminated malloc'd copy (*len bytes), or NULL when absent. */
static char *get(getter fn, const char *name, int32_t name_len, int32_t *len) {
    char *buf = malloc(17);
    int32_t n = fn(name, name_len, buf, 16);
    if (n < 0) {
        free(buf);
        return NULL;
    }
    if (n > 16) {
        buf = realloc(buf, (size_t)n + 1);
        int32_t again = fn(name, name_len, buf, n);
        if (again != n) {
            wr_error_s("getter returned a different length on the second call");
            free(buf);
            return NULL;
        }
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static char *header(const char *name, int32_t *len) {
    return get(wr_header_get, name, (int32_t)strlen(name), len);
}

static char *header_or(const char *name, const char *def) {
    int32_t n;
    char *v = header(name, &n);
    if (!v) {
        v = malloc(strlen(def) + 1);
        strcpy(v, def);
    }
    return v;
}

/* report sets header prefix+name to the value of the getter, or "<absent>". */
static void report(getter fn, const char *prefix, const char *name, int32_t name_len) {
    char key[300];
    int32_t n;
    snprintf(key, sizeof key, "%s%.*s", prefix, (int)name_len, name);
    char *v = get(fn, name, name_len, &n);
    if (v) {
        wr_header_set(key, (int32_t)strlen(key), v, n);
        free(v);
    } else {
        wr_header_set_s(key, "<absent>");
    }
}

/* report_list reports every name of the comma-separated header "names". */
static void report_list(getter fn, const char *prefix) {
    int32_t n;
    char *names = header("names", &n);
    if (!names) return;
    for (char *p = names; *p;) {
        char *comma = strchr(p, ',');
        int32_t len = comma ? (int32_t)(comma - p) : (int32_t)strlen(p);
        report(fn, prefix, p, len);
        p += len + (comma ? 1 : 0);
    }
    free(names);
}

static uint64_t fnv1a(const uint8_t *p, int32_t n) {
    uint64_t h = 14695981039346656037ull;
    for (int32_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static char init_config[64] = "<unset>";

__attribute__((constructor)) static void init(void) {
    int32_t n = wr_config_get(WR_STR("init"), init_config, sizeof init_config - 1);
    if (n < 0) strcpy(init_config, "<absent>");
    else init_config[n < (int32_t)sizeof init_config - 1 ? n : (int32_t)sizeof init_config - 1] = 0;
}

static const char *meta_names[] = {"routing_key", "exchange", "source", "route", "message_id",
    "correlation_id", "content_type", "type", "app_id", "timestamp", "seq", "nope"};

static int32_t run(const uint8_t *body, int32_t len) {
    char *op = header_or("op", "");
    int32_t result = WR_CONTINUE;
    if (!strcmp(op, "return")) {
        char *code = header_or("code", "0");
        result = atoi(code);
        free(code);
    } else if (!strcmp(op, "meta")) {
        for (size_t i = 0; i < sizeof meta_names / sizeof meta_names[0]; i++)
            report(wr_meta_get, "m.", meta_names[i], (int32_t)strlen(meta_names[i]));
    } else if (!strcmp(op, "header")) {
        report_list(wr_header_get, "h.");
    } else if (!strcmp(op, "config")) {
        report_list(wr_config_get, "c.");
    } else if (!strcmp(op, "small")) {
        char buf[9] = "########";
        int32_t n = wr_meta_get(WR_STR("routing_key"), buf, 3);
        int32_t n0 = wr_meta_get(WR_STR("routing_key"), NULL, 0);
        char out[64];
        snprintf(out, sizeof out, "%d:%s:%d", n, buf, n0);
        wr_header_set_s("small", out);
    } else if (!strcmp(op, "body")) {
        uint8_t *b = malloc((size_t)len + 2);
        b[0] = '<';
        memcpy(b + 1, body, (size_t)len);
        b[len + 1] = '>';
        wr_body_set(b, len + 2);
        free(b);
    } else if (!strcmp(op, "rk")) {
        int32_t n;
        char *v = header("value", &n);
        if (v) wr_routing_key_set(v, n);
        free(v);
    } else if (!strcmp(op, "hset")) {
        int32_t nn, vn;
        char *name = header("name", &nn), *value = header("value", &vn);
        if (name && value) wr_header_set(name, nn, value, vn);
        free(name);
        free(value);
    } else if (!strcmp(op, "emit")) {
        char *count = header_or("count", "1");
        int32_t tn, kn;
        char *target = header("target", &tn), *key = header("key", &kn);
        for (int i = 0; i < atoi(count) && target && key; i++) {
            int32_t r = wr_emit(target, tn, key, kn, body, len);
            if (r != 0) {
                char reason[64];
                snprintf(reason, sizeof reason, "emit returned %d", r);
                result = wr_fail(WR_DEAD_LETTER, reason);
                break;
            }
        }
        free(count);
        free(target);
        free(key);
    } else if (!strcmp(op, "error")) {
        int32_t n;
        char *reason = header("reason", &n), *code = header_or("code", "3");
        if (reason) wr_error_set(reason, n);
        result = atoi(code);
        free(reason);
        free(code);
    } else if (!strcmp(op, "log")) {
        int32_t n;
        char *level = header_or("level", "1"), *msg = header("msg", &n);
        if (msg) wr_log_raw(atoi(level), msg, n);
        free(level);
        free(msg);
    } else if (!strcmp(op, "print")) {
        char *msg = header_or("msg", "");
        printf("%s\n", msg);
        fflush(stdout);
        fprintf(stderr, "err:%s\n", msg);
        free(msg);
    } else if (!strcmp(op, "hash")) {
        char out[32];
        snprintf(out, sizeof out, "%d", len);
        wr_header_set_s("len", out);
        snprintf(out, sizeof out, "%016llx", (unsigned long long)fnv1a(body, len));
        wr_header_set_s("fnv", out);
    } else if (!strcmp(op, "json")) {
        static const char *kinds[] = {"invalid", "object", "array", "string", "number", "bool", "null"};
        char *path = header_or("path", "");
        const uint8_t *raw;
        int32_t raw_len;
        int kind = wr_json_get(body, len, path, &raw, &raw_len);
        wr_header_set_s("kind", kinds[kind]);
        if (kind != WR_JSON_NONE) wr_header_set(WR_STR("raw"), (const char *)raw, raw_len);
        double num;
        if (wr_json_number(body, len, path, &num)) {
            char out[64];
            snprintf(out, sizeof out, "%.6f", num);
            wr_header_set_s("num", out);
        }
        free(path);
    } else if (!strcmp(op, "emith")) { /* emit with headers, then once without */
        char *copy = header_or("copy", "0"), *value = header_or("value", "v");
        if (!strcmp(copy, "1")) wr_emit_headers_copy();
        wr_emit_header_set_s("x-e", value);
        if (wr_emit_s("out", "k", body, len) != 0 || wr_emit_s("out", "k", body, len) != 0)
            result = wr_fail(WR_DEAD_LETTER, "emit returned -1");
        free(copy);
        free(value);
    } else if (!strcmp(op, "cfgdef")) { /* config with defaults, and values that do not fit */
        char buf[8], out[64];
        int32_t a = wr_config_str("a", buf, sizeof buf, "dflt");
        snprintf(out, sizeof out, "%d:%s", a, buf);
        int32_t m = wr_config_str("missing", buf, sizeof buf, "dflt");
        snprintf(out + strlen(out), sizeof out - strlen(out), "|%d:%s", m, buf);
        int32_t l = wr_config_str("long", buf, sizeof buf, "dflt");
        snprintf(out + strlen(out), sizeof out - strlen(out), "|%d:%s", l, buf);
        wr_header_set_s("d", out);
    } else if (!strcmp(op, "initcfg")) {
        wr_header_set_s("init", init_config);
    } else {
        result = wr_fail(WR_DEAD_LETTER, "unknown op");
    }
    free(op);
    return result;
}

WR_EXPORT(wr_filter) int32_t wr_filter(const uint8_t *body, int32_t len) { return run(body, len); }
WR_EXPORT(wr_transform) int32_t wr_transform(const uint8_t *body, int32_t len) { return run(body, len); }
WR_EXPORT(wr_handle) int32_t wr_handle(const uint8_t *body, int32_t len) { return run(body, len); }

/*
 * A guest that misbehaves on purpose; the header "op" picks how. The host must turn every one of
 * these into a failed call (or a refused operation) without harm to itself or other calls.
 */
#define WASMROUTER_IMPLEMENTATION
#define WASMROUTER_NO_JSON
#include "../../../guest/c/wasmrouter.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wasi/api.h>

extern char **environ;

#define BAD ((char *)0xFFFFFF00u)

static char op[32];
static int32_t calls;

static int32_t header_int(const char *name, int32_t def) {
    char buf[16];
    int32_t n = wr_header_s(name, buf, sizeof buf - 1);
    if (n < 0 || n >= (int32_t)sizeof buf) return def;
    buf[n] = 0;
    return atoi(buf);
}

static int is(const char *name) { return strcmp(op, name) == 0; }

/* Exponential recursion: runs for ages without a single loop. */
__attribute__((noinline)) static int fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

#pragma clang diagnostic ignored "-Winfinite-recursion"
static int recurse(int n) {
    volatile char pad[256];
    pad[0] = (char)n;
    return recurse(n + 1) + pad[0];
}

/* denied reports a sandbox escape as a dead-letter naming it, or continues when all failed. */
static int32_t denied(int escaped, const char *what) {
    return escaped ? wr_fail(WR_DEAD_LETTER, what) : WR_CONTINUE;
}

static int32_t run(const uint8_t *body, int32_t len) {
    (void)body;
    (void)len;
    calls++;
    int32_t n = wr_header_s("op", op, sizeof op - 1);
    op[n < 0 ? 0 : n < (int32_t)sizeof op - 1 ? n : (int32_t)sizeof op - 1] = 0;
    char buf[64];

    if (is("ok")) return WR_CONTINUE;
    if (is("raw")) { /* for the fuzzer: host function "fn" with raw pointers and lengths a..f */
        int32_t a = header_int("a", 0), b = header_int("b", 0), c = header_int("c", 0);
        int32_t d = header_int("d", 0), e = header_int("e", 0), f = header_int("f", 0);
#define P(x) ((char *)(uintptr_t)(uint32_t)(x))
        switch (header_int("fn", 0)) {
        case 0: wr_meta_get(P(a), b, P(c), d); break;
        case 1: wr_header_get(P(a), b, P(c), d); break;
        case 2: wr_config_get(P(a), b, P(c), d); break;
        case 3: wr_body_set(P(a), b); break;
        case 4: wr_routing_key_set(P(a), b); break;
        case 5: wr_header_set(P(a), b, P(c), d); break;
        case 6: wr_emit(P(a), b, P(c), d, P(e), f); break;
        case 7: wr_error_set(P(a), b); break;
        default: wr_log_raw(c, P(a), b); break;
        }
#undef P
        return WR_CONTINUE;
    }
    if (is("calls")) return calls == 1 ? WR_CONTINUE : wr_fail(WR_DEAD_LETTER, "not a fresh instance");
    if (is("code")) return header_int("code", 7);
    if (is("loop")) {
        for (volatile int i = 0;; i++) {
        }
    }
    if (is("trap")) __builtin_trap();
    if (is("exit")) _Exit(3);
    if (is("recurse")) return recurse(0);
    if (is("fib")) return fib(header_int("n", 60)) == 7 ? WR_DEAD_LETTER : WR_CONTINUE;
    if (is("bomb")) { /* grow until refused, then give up as a real program would */
        while (__builtin_wasm_memory_grow(0, 16) != (size_t)-1) {
        }
        __builtin_trap();
    }
    if (is("bloat")) { /* grow by "pages" pages, touch them, and return normally */
        int32_t pages = header_int("pages", 16);
        size_t old = __builtin_wasm_memory_grow(0, (size_t)pages);
        if (old == (size_t)-1) return wr_fail(WR_DEAD_LETTER, "grow refused");
        memset((void *)(old * 65536), 1, (size_t)pages * 65536);
        return WR_CONTINUE;
    }
    if (is("pages")) { /* report the memory size */
        snprintf(buf, sizeof buf, "%d", (int)__builtin_wasm_memory_size(0));
        wr_header_set_s("pages", buf);
        return WR_CONTINUE;
    }

    /* Bad pointers and lengths given to host functions. */
    if (is("bad_name")) wr_meta_get(BAD, 1000, buf, sizeof buf);
    if (is("neg_name_len")) wr_meta_get("routing_key", -5, buf, sizeof buf);
    if (is("huge_name_len")) wr_header_get("x", 0x7FFFFFFF, buf, sizeof buf);
    if (is("bad_buf")) wr_meta_get(WR_STR("routing_key"), BAD, 1000);
    if (is("neg_cap")) wr_config_get(WR_STR("x"), buf, -1);
    if (is("bad_body")) wr_body_set((const void *)16, 0x7FFFFFFF);
    if (is("neg_body")) wr_body_set(buf, -1);
    if (is("bad_key")) wr_routing_key_set(BAD, 300);
    if (is("bad_header_set")) wr_header_set(WR_STR("h"), buf, -2);
    if (is("bad_emit")) wr_emit(WR_STR("t"), WR_STR("k"), BAD, 0x1000);
    if (is("bad_error")) wr_error_set(BAD, 0x7FFFFFFF);
    if (is("bad_log")) wr_log_raw(WR_LOG_INFO, BAD, 10);
    if (is("long_key")) {
        char key[300];
        memset(key, 'k', sizeof key);
        wr_routing_key_set(key, sizeof key);
    }

    /* Writes the host must refuse or bound. */
    if (is("long_header")) {
        char name[256];
        memset(name, 'h', sizeof name);
        wr_header_set(name, sizeof name, WR_STR("v"));
    }
    if (is("empty_header")) wr_header_set("", 0, WR_STR("v"));
    if (is("router_header")) wr_header_set_s("X-Router-Error", "forged");
    if (is("header_flood")) { /* "n" distinct headers */
        for (int32_t i = 0; i < header_int("n", 1000); i++) {
            snprintf(buf, sizeof buf, "h%d", (int)i);
            wr_header_set_s(buf, "v");
        }
    }
    if (is("body_set")) { /* a body of "size" bytes */
        int32_t size = header_int("size", 1 << 20);
        char *big = malloc((size_t)size);
        if (!big) return wr_fail(WR_DEAD_LETTER, "malloc");
        memset(big, 'b', (size_t)size);
        wr_body_set(big, size);
    }
    if (is("emit_flood")) { /* emit "size"-byte bodies "n" times, or forever when n is 0 */
        int32_t size = header_int("size", 1 << 20), n = header_int("n", 0);
        char *big = malloc((size_t)size);
        if (!big) return wr_fail(WR_DEAD_LETTER, "malloc");
        memset(big, 'e', (size_t)size);
        for (int32_t i = 0; n == 0 || i < n; i++) wr_emit(WR_STR("out"), WR_STR("k"), big, size);
    }
    if (is("log_flood")) {
        for (;;) wr_log_raw(WR_LOG_DEBUG, "x", 1);
    }

    /* The sandbox: no files, no environment, no arguments, no sockets. */
    if (is("file")) {
        int escaped = 0;
        const char *paths[] = {"/etc/passwd", "/", ".", "/proc/self/environ", "data.txt"};
        for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
            int fd = open(paths[i], O_RDONLY);
            if (fd >= 0) escaped = 1, close(fd);
            int wfd = open(paths[i], O_WRONLY | O_CREAT, 0644);
            if (wfd >= 0) escaped = 1, close(wfd);
            DIR *d = opendir(paths[i]);
            if (d) escaped = 1, closedir(d);
        }
        /* Raw WASI: fds from 3 up would be preopened directories; there must be none. */
        for (int fd = 3; fd < 16; fd++) {
            __wasi_fd_t opened;
            __wasi_prestat_t pre;
            if (__wasi_fd_prestat_get(fd, &pre) == 0) escaped = 1;
            if (__wasi_path_open(fd, 0, "etc/passwd", 0, __WASI_RIGHTS_FD_READ, 0, 0, &opened) == 0) escaped = 1;
        }
        return denied(escaped, "opened a file");
    }
    if (is("env")) {
        int escaped = getenv("HOME") || getenv("PATH") || (environ && environ[0]);
        __wasi_size_t argc = 0, argv_size = 0, envc = 0, env_size = 0;
        if (__wasi_args_sizes_get(&argc, &argv_size) == 0 && argc > 0) escaped = 1;
        if (__wasi_environ_sizes_get(&envc, &env_size) == 0 && envc > 0) escaped = 1;
        return denied(escaped, "read arguments or environment");
    }
    if (is("socket")) {
        int escaped = 0;
        for (int fd = 0; fd < 16; fd++) {
            __wasi_fd_t conn;
            if (__wasi_sock_accept(fd, 0, &conn) == 0) escaped = 1;
            if (accept(fd, NULL, NULL) >= 0) escaped = 1;
        }
        return denied(escaped, "accepted a connection");
    }
    if (is("stdin")) {
        char c;
        return denied(read(0, &c, 1) > 0, "read stdin");
    }
    return WR_CONTINUE;
}

WR_EXPORT(wr_filter) int32_t wr_filter(const uint8_t *body, int32_t len) { return run(body, len); }
WR_EXPORT(wr_transform) int32_t wr_transform(const uint8_t *body, int32_t len) { return run(body, len); }
WR_EXPORT(wr_handle) int32_t wr_handle(const uint8_t *body, int32_t len) { return run(body, len); }

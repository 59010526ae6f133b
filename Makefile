# wasmrouter. `make setup` installs and starts what is missing; `make run` does the same, then
# runs the router on router.hcl; `make test` runs every test, integration tests against the real broker included.
GO      ?= go
BIN     := bin/router
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all setup build wasm run demo test test-allocs test-short lint bench fuzz fuzz-long chaos cluster clean

all: build wasm

setup:
	scripts/setup.sh
	$(MAKE) build wasm

# Without cgo: the binary links no C library (Go's own DNS resolver and user lookup), which
# keeps libc's pages out of the router's resident set (BENCHMARKS.md, "Memory").
build:
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/router

wasm:
	$(MAKE) -C examples/wasm

# Sets up what is missing first (as make test does), so a fresh machine needs only this.
run:
	scripts/setup.sh
	$(MAKE) build wasm
	./$(BIN) run -c router.hcl

# With the router running: publish sample events and show what each target received.
demo:
	$(GO) run ./examples/demo -c router.hcl

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Every test, against a real RabbitMQ (installed and started when missing). The fuzz targets'
# seed corpora run as tests; exploring beyond them (make fuzz) is not deterministic, so it is
# not part of the test run. The timeout only catches a hung test binary: the e2e package
# alone took over 20 minutes under -race on a 2-core machine busy with other work.
test:
	scripts/setup.sh
	$(MAKE) wasm
	$(MAKE) lint
	$(GO) test -race -count=1 -timeout 45m ./...
	cd third_party/amqp091-go && $(GO) test -race -count=1 ./...
	cd third_party/rabbitmq-stream-go-client && $(GO) test -race -count=1 ./...
	cd third_party/bbolt && $(GO) test -race -count=1 ./...
	$(MAKE) test-allocs

# Allocation tests skip themselves under the race detector (sync.Pool drops items at random
# there), so they run again without it: every test whose name says NoAlloc.
test-allocs:
	$(GO) test -count=1 -run 'NoAlloc' ./filters/ ./wasmhost/ ./guest/wr/ ./router/
	cd third_party/amqp091-go && $(GO) test -count=1 -run 'Allocations' ./...

# Unit tests only (no broker).
test-short:
	$(GO) test -short -race ./...

bench: build wasm
	scripts/bench.sh

fuzz:
	scripts/fuzz.sh 10s

fuzz-long:
	scripts/fuzz.sh 10m

chaos: build wasm
	$(GO) run ./chaos $(CHAOS_FLAGS)

# A local three-node RabbitMQ cluster of private nodes (own names, ports, data, cookie), for
# trying several routers on one stream by hand; Ctrl-C stops it. The machine's broker is untouched.
cluster:
	$(GO) run ./internal/testutil/rabbitnode/cmd/rabbitcluster $(CLUSTER_FLAGS)

clean:
	rm -rf bin

// Command baseline is the plain amqp091-go consume-and-republish loop (package loop) as a
// process of its own, so that the benchmark can read its CPU time and memory from /proc the
// same way as the router's. It runs until SIGINT/SIGTERM, then drains and exits 0.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/wasmrouter/wasmrouter/bench/loop"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "broker `URL` (default: $WASMROUTER_AMQP_URL, else the local broker as guest)")
	queue := fs.String("queue", "", "source `QUEUE` to consume (must exist)")
	exchange := fs.String("exchange", "", "target `EXCHANGE` to republish to")
	prefetch := fs.Int("prefetch", loop.DefaultPrefetch, "consumer prefetch `COUNT`")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if *url == "" {
		*url = os.Getenv("WASMROUTER_AMQP_URL")
	}
	if *url == "" {
		*url = "amqp://guest:guest@127.0.0.1:5672/"
	}
	if *queue == "" {
		fmt.Fprintln(stderr, "baseline: -queue is required")
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	stats, err := loop.Run(ctx, loop.Options{URL: *url, Queue: *queue, Exchange: *exchange, Prefetch: *prefetch, Logger: log})
	log.Info("baseline stopped", "republished", stats.Republished, "nacked", stats.Nacked, "returned", stats.Returned)
	if err != nil {
		log.Error("baseline failed", "error", err)
		return 1
	}
	return 0
}

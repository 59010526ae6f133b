package app

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/amqpx"
	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/router"
	"github.com/wasmrouter/wasmrouter/store"
	"github.com/wasmrouter/wasmrouter/store/streamlog"
)

// EventLog is the log a router runs on, behind the engine's port: the bbolt file (the
// default) or a RabbitMQ stream shared with other routers (store.backend = "stream").
type EventLog interface {
	router.Log
	Close() error
}

// openLog opens the configuration's log. A stream log gets a connection of its own to
// store.cluster, with a heartbeat derived from store.takeover, so that the broker notices a
// router that vanished and hands its pairs over in time; it waits for the broker until ctx
// ends.
func openLog(ctx context.Context, cfg *config.Config, log *slog.Logger, m *store.Metrics, readOnly bool) (EventLog, error) {
	if cfg.Store.Backend != config.BackendStream {
		st, err := store.Open(store.Options{
			Path: cfg.Store.Path, ReadOnly: readOnly, Retention: cfg.Store.Retention, MaxSize: cfg.Store.MaxSize,
			OnFull: cfg.Store.OnFull, Logger: log.With("component", "store"), Metrics: m,
			RecentIndex: recentIndex(cfg),
		})
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	return openStreamLog(ctx, cfg, log)
}

// recentIndex is how many of the latest events the log's redelivery index covers: twice the
// widest window the engine asks about (after a restart, twice the sources' prefetch and
// batch), or the store's least, when that is more.
func recentIndex(cfg *config.Config) int {
	width := 0
	for _, s := range cfg.Sources {
		width += 2 * (s.Prefetch + 64)
	}
	return 2 * width
}

// OpenLog opens the configuration's log for the command-line tools that work without a
// running router: the bbolt file (read-only when readOnly), or the stream, whichever router
// wrote it, waiting for its cluster at most openTimeout.
func OpenLog(ctx context.Context, cfg *config.Config, log *slog.Logger, readOnly bool) (EventLog, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	return openLog(ctx, cfg, log, nil, readOnly)
}

// openTimeout bounds the wait of a command-line tool for the cluster that holds a stream log.
const openTimeout = 30 * time.Second

// streamLog is the Reopening stream log with the connection it runs on.
type streamLog struct {
	*streamlog.Reopening
	stopConn func()
}

// Close gives this router's pairs up, then closes the log's connection.
func (s *streamLog) Close() error {
	err := s.Reopening.Close()
	s.stopConn()
	return err
}

func openStreamLog(ctx context.Context, cfg *config.Config, log *slog.Logger) (*streamLog, error) {
	spec := cfg.Cluster(cfg.Store.Cluster)
	if spec == nil { // the configuration check refuses this; a Config built by hand may not
		return nil, cfg.Errorf("store.cluster", "store.cluster %q names no cluster", cfg.Store.Cluster)
	}
	cluster, err := amqpx.NewCluster(*spec, amqpx.Options{
		Logger:    log.With("component", "store"),
		Heartbeat: streamlog.HeartbeatFor(cfg.Store.Takeover),
		Only:      "log", // one connection, wasmrouter/NAME/log
	})
	if err != nil {
		return nil, cfg.Errorf("cluster."+spec.Name+".url", "%w", err)
	}
	connCtx, cancel := context.WithCancel(context.Background())
	connDone := make(chan struct{})
	go func() { defer close(connDone); cluster.Run(connCtx) }()
	stop := func() { cancel(); <-connDone }
	url, tlsConfig := cluster.Endpoint()
	native, err := streamlog.NativeFromURL(url, tlsConfig, cfg.Store.StreamPort)
	if err != nil {
		stop()
		return nil, cfg.Errorf("cluster."+spec.Name+".url", "%w", err)
	}
	native.Heartbeat = streamlog.HeartbeatFor(cfg.Store.Takeover)
	log.Info("opening the event log on a RabbitMQ stream", "cluster", spec.Name, "stream", cfg.Store.Stream, "stream_port", native.Addr())
	r, err := streamlog.OpenReopening(ctx, cluster, streamlog.Options{
		Stream: cfg.Store.Stream, MaxAge: cfg.Store.Retention, MaxBytes: cfg.Store.MaxSize,
		Unacked: unackedWidth(cfg), Native: native,
	}, HolderName())
	if err != nil {
		stop()
		return nil, cfg.Errorf("store.stream", "opening the event log on stream %q of cluster %s: %w", cfg.Store.Stream, spec.Name, err)
	}
	return &streamLog{Reopening: r, stopConn: stop}, nil
}

// unackedWidth is how many of a router's latest events can be unacknowledged when it dies,
// with room to spare: its sources' prefetch windows (the engine's window after a crash of a
// router on its own log).
func unackedWidth(cfg *config.Config) int {
	n := 0
	for _, src := range cfg.Sources {
		n += 2 * (src.Prefetch + 64)
	}
	return n
}

// HolderName names this router among those sharing a stream log: in the pairs' tokens, as
// their consumer, and in the status of the pairs it delivers.
func HolderName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "router"
	}
	return host + "/" + strconv.Itoa(os.Getpid())
}

// logOpenError explains a failed open of the configuration's log.
func logOpenError(cfg *config.Config, err error) error {
	if errors.Is(err, store.ErrLocked) {
		return cfg.Errorf("store.path", "event log %s is locked: is another router running with this store?", cfg.Store.Path)
	}
	if cfg.Store.Backend == config.BackendStream {
		return err
	}
	return cfg.Errorf("store.path", "opening event log: %w", err)
}

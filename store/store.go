// Package store is the router's event log: an embedded bbolt file that every consumed message
// is appended to (in group commits, one fsync per batch) before its source is acknowledged, and
// that delivery reads from, with one cursor per (route, target). It also keeps the
// fingerprint index that recognises broker redeliveries, the dead letters, and retention.
//
// Events handed to Append, and events returned by Get and Scan, are shared with other readers
// (recent ones are served from memory): callers must not modify them; Clone first.
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/wasmrouter/wasmrouter/event"
)

// Errors returned by the store; test for them with errors.Is.
var (
	ErrLocked      = errors.New("store: file is locked by another process")
	ErrClosed      = errors.New("store: closed")
	ErrFull        = errors.New("store: full")
	ErrNotFound    = event.ErrNotFound
	ErrReadOnly    = errors.New("store: opened read-only")
	ErrCorrupt     = errors.New("store: corrupt record")
	ErrUnsupported = event.ErrUnsupported
)

// On-full policies.
const (
	OnFullBlock      = "block"
	OnFullDropOldest = "drop_oldest"
)

// Options configure a Store. Zero values take the defaults noted.
type Options struct {
	Path        string        // bbolt file; its parent directory is created (0700)
	NoSync      bool          // skip fsync: tests and benchmarks only
	MaxBatch    int           // events per transaction, default 2048
	OpenTimeout time.Duration // wait for the file lock this long, default 1s; then ErrLocked
	ReadOnly    bool          // inspection tools; a file a writer holds fails with ErrLocked
	Retention   time.Duration // remove events older than this; 0 keeps them forever
	// MaxSize caps the used bytes of the file (its size less the free pages bbolt will reuse);
	// 0 = unlimited. It is checked after each commit, so one batch may go beyond it.
	MaxSize int64
	// OnFull says what happens at MaxSize. OnFullBlock (default): appends are held (not
	// failed) until retention frees space, so the router stops acknowledging its sources and
	// the broker keeps the messages. OnFullDropOldest: the oldest events are removed, delivered
	// or not, down to 90% of MaxSize; undelivered ones count in Metrics.Lost.
	OnFull string
	// RecentIndex is how many of the latest events the redelivery index covers (index.go), at
	// least (and by default) 16,384: it must cover the redelivery windows the router asks
	// about, which are as wide as the sources' prefetch (RATIONALE.md); wider only costs
	// memory, 28 bytes an event.
	RecentIndex int
	Logger      *slog.Logger
	Metrics     *Metrics         // may be nil
	Now         func() time.Time // clock for ingest times and retention, default time.Now

	// While the machine is busy (machineBusy), a batch of fewer than batchMin events waits up
	// to batchWait for more before it is committed (default 64 and 2ms; a negative batchWait
	// commits at once): see gather.
	batchMin       int
	batchWait      time.Duration
	machineBusy    func() bool   // default: less than busyThreshold of the CPU time idle lately
	ringSize       int           // recent events kept in memory; default 16384, <0 none
	ringBytes      int           // and at most about this many bytes of them; default 2 MiB
	retentionEvery time.Duration // retention run interval, default 5s
	commitHook     func() error  // tests: called in every write transaction of the appender; an error fails it
}

const (
	defaultMaxBatch    = 2048
	defaultBatchMin    = 64
	defaultBatchWait   = 2 * time.Millisecond
	defaultRingSize    = 16384
	defaultRecentIndex = 1 << 14 // see index.go
	// 1 MiB: a stream that keeps up lags by about a commit and reads it from here; one that
	// lags further reads from disk whatever the ring's size, while the ring still holds its
	// bytes (BENCHMARKS.md, "Memory": 4 MiB, then 2 MiB before). Events every live stream has
	// read are forgotten sooner (ReleaseRead).
	defaultRingBytes  = 1 << 20
	cursorFlushDelay  = 100 * time.Millisecond
	sizeEvery         = time.Second
	retentionChunk    = 5000
	defaultRetainTick = 5 * time.Second
)

func (o *Options) setDefaults() error {
	if o.Path == "" {
		return errors.New("store: no path")
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = defaultMaxBatch
	}
	if o.batchMin <= 0 {
		o.batchMin = min(defaultBatchMin, o.MaxBatch)
	}
	if o.batchWait == 0 {
		o.batchWait = defaultBatchWait
	}
	if o.OpenTimeout <= 0 {
		o.OpenTimeout = time.Second
	}
	switch o.OnFull {
	case "":
		o.OnFull = OnFullBlock
	case OnFullBlock, OnFullDropOldest:
	default:
		return fmt.Errorf("store: on_full %q: want %q or %q", o.OnFull, OnFullBlock, OnFullDropOldest)
	}
	if o.Retention < 0 || o.MaxSize < 0 {
		return errors.New("store: negative retention or max size")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RecentIndex < defaultRecentIndex {
		o.RecentIndex = defaultRecentIndex
	}
	if o.ringSize == 0 {
		o.ringSize = defaultRingSize
	}
	if o.ringBytes <= 0 {
		o.ringBytes = defaultRingBytes
	}
	if o.retentionEvery <= 0 {
		o.retentionEvery = defaultRetainTick
	}
	return nil
}

var (
	bucketEvents  = []byte("events")  // seq -> record
	bucketCursors = []byte("cursors") // name -> seq
	bucketDead    = []byte("dead")    // id -> dead letter
	bucketDeadIdx = []byte("deadidx") // route, target, seq -> id
	bucketJobs    = []byte("jobs")    // id -> an unfinished job's description
)

// Store is the event log. Its methods are safe for concurrent use.
type Store struct {
	opts Options
	db   *bolt.DB
	log  *slog.Logger
	m    *Metrics

	queue queue // input of the appender goroutine

	rmu            sync.RWMutex // guards ring and notify; orders updates of the two seqs below
	lastSeq        atomic.Uint64
	deletedThrough atomic.Uint64 // every seq up to this one has been removed
	ring           ring
	index          *fpIndex              // recent fingerprints; the appender's own, nil until its first append
	gatherSkip     int                   // small batches to commit without waiting (appender's own, see gather)
	commitErr      atomic.Pointer[error] // set while commits fail
	notify         chan struct{}

	cursors    cursorState
	lastDeadID atomic.Uint64

	full          atomic.Bool
	fullLoggedAt  time.Time // appender and retention goroutines only, under fullMu
	fullMu        sync.Mutex
	commits       atomic.Uint64
	idle          cpuIdle
	sizeAt        time.Time    // the appender's last update of the size gauge
	tail          zeroTail     // the appender's own
	mapRead       atomic.Int64 // bytes read through the file mapping since its pages were let go
	retentionKick chan struct{}
	stop          chan struct{}
	wg            sync.WaitGroup
	closed        atomic.Bool
	closeOnce     sync.Once
	closeErr      error
}

// Open opens or creates the log file.
func Open(opts Options) (*Store, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if !opts.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(opts.Path), 0o700); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	db, err := bolt.Open(opts.Path, 0o600, &bolt.Options{
		Timeout:      opts.OpenTimeout,
		ReadOnly:     opts.ReadOnly,
		NoSync:       opts.NoSync,
		NoGrowSync:   opts.NoSync,
		FreelistType: bolt.FreelistMapType,
		// The freelist is rebuilt at open instead of written by every commit: commits are the
		// hot path, opens are rare.
		NoFreelistSync: true,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s", ErrLocked, opts.Path)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", opts.Path, err)
	}
	s := &Store{
		opts:          opts,
		db:            db,
		log:           opts.Logger,
		m:             opts.Metrics,
		ring:          newRing(opts.ringSize, opts.ringBytes),
		notify:        make(chan struct{}),
		retentionKick: make(chan struct{}, 1),
		stop:          make(chan struct{}),
	}
	s.queue.wake = make(chan struct{}, 1)
	if s.opts.machineBusy == nil {
		s.idle.read = cpuTimes
		s.opts.machineBusy = func() bool { return s.idle.machineBusy(time.Now()) }
	}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	if !opts.ReadOnly && !opts.NoSync {
		// Without it commits still work, only their fdatasyncs flush more: not an error.
		if zf, err := openZeroFile(opts.Path); err == nil {
			s.tail.zf = zf
		}
	}
	s.Size()
	if !opts.ReadOnly {
		s.wg.Add(2)
		go s.runAppender()
		go s.runRetention()
		s.kickRetention() // apply retention and the size cap now, not at the first tick
	}
	return s, nil
}

// load creates missing buckets and reads the state kept in memory.
func (s *Store) load() error {
	if !s.opts.ReadOnly {
		err := s.db.Update(func(tx *bolt.Tx) error {
			for _, name := range [][]byte{bucketEvents, bucketCursors, bucketDead, bucketDeadIdx} {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: init: %w", err)
		}
	}
	cursors := map[string]uint64{}
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketEvents); b != nil {
			last := b.Sequence()
			s.lastSeq.Store(last)
			s.deletedThrough.Store(last)
			if k, _ := b.Cursor().First(); len(k) == 8 {
				s.deletedThrough.Store(seqOf(k) - 1)
			}
		}
		if b := tx.Bucket(bucketDead); b != nil {
			s.lastDeadID.Store(b.Sequence())
		}
		if b := tx.Bucket(bucketCursors); b != nil {
			return b.ForEach(func(k, v []byte) error {
				if len(v) == 8 {
					cursors[string(k)] = seqOf(v)
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: load: %w", err)
	}
	s.cursors.init(cursors)
	return nil
}

// Close commits every queued append, dead letter and cursor, then closes the file. Appends
// still held because the store is full (OnFull "block") fail with ErrFull. Idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.queue.close()
		close(s.stop)
		s.wg.Wait()
		s.closed.Store(true)
		s.closeErr = s.db.Close()
		if s.tail.zf != nil {
			s.tail.zf.close()
		}
		if s.closeErr != nil {
			s.closeErr = fmt.Errorf("store: close: %w", s.closeErr)
		}
	})
	return s.closeErr
}

// LastSeq is the highest seq ever committed (0 if none). It does not go back when retention
// empties the log, and seqs are never reused.
func (s *Store) LastSeq() uint64 { return s.lastSeq.Load() }

// FirstSeq is the lowest seq still in the log, 0 if the log is empty.
func (s *Store) FirstSeq() uint64 {
	d, l := s.deletedThrough.Load(), s.lastSeq.Load()
	if d >= l {
		return 0
	}
	return d + 1
}

// Notify returns a channel closed at the next commit that adds events. Call it again after it
// fires, and check for new events after calling it, not before, to miss none.
func (s *Store) Notify() <-chan struct{} {
	s.rmu.RLock()
	defer s.rmu.RUnlock()
	return s.notify
}

// Full reports whether appends are being held because the store reached MaxSize with
// OnFull "block". Meanwhile no Append completes, so the router acknowledges nothing and the
// broker keeps the messages.
func (s *Store) Full() bool { return s.full.Load() }

// Size returns the size of the file in bytes and exports it as Metrics.Size.
func (s *Store) Size() int64 {
	fi, err := os.Stat(s.opts.Path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("store: stat", "err", err)
		}
		return 0
	}
	if s.m != nil {
		s.m.Size.Set(float64(fi.Size()))
	}
	return fi.Size()
}

// view runs a read transaction, reporting ErrClosed if the store closed meanwhile.
func (s *Store) view(fn func(*bolt.Tx) error) error {
	err := s.db.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

func (s *Store) checkOpen() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq) }

func seqOf(k []byte) uint64 { return binary.BigEndian.Uint64(k) }

// storeMax raises a to v unless it is already higher.
func storeMax(a *atomic.Uint64, v uint64) {
	for cur := a.Load(); v > cur; cur = a.Load() {
		if a.CompareAndSwap(cur, v) {
			return
		}
	}
}

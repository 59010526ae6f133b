package streamlog

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
	"github.com/wasmrouter/wasmrouter/store"
)

// delivered is what the pairs' deliverers did, standing for the targets' confirmed messages.
type delivered struct {
	mu   sync.Mutex
	log  map[string][]uint64 // pair -> seqs in delivery order
	by   map[string][]string // pair -> the router of each delivery
	seen map[string]map[uint64]int
}

func (d *delivered) add(pair, router string, seq uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.log[pair] = append(d.log[pair], seq)
	d.by[pair] = append(d.by[pair], router)
	if d.seen[pair] == nil {
		d.seen[pair] = map[uint64]int{}
	}
	d.seen[pair][seq]++
}

func (d *delivered) distinct(pair string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.seen[pair])
}

// deliverPair is one router's delivery loop for one pair, as the engine runs it on a stream
// log: wait to hold the pair, resume at its cursor, deliver in log order and move the cursor,
// stop at once when the pair is lost.
func deliverPair(ctx context.Context, s *Store, router, pair string, out *delivered) {
	lease, err := s.Claim(pair)
	if err != nil {
		return
	}
	select {
	case <-lease.Granted():
	case <-lease.Lost():
		return
	case <-ctx.Done():
		return
	}
	pos, _ := s.Cursor(pair)
	for {
		notify := s.Notify()
		var batch []uint64
		_, err := s.Scan(pos+1, 100, nil, func(ev *event.Event) bool { batch = append(batch, ev.Seq); return true })
		if err != nil {
			return
		}
		for _, seq := range batch {
			select {
			case <-lease.Lost():
				return
			default:
			}
			out.add(pair, router, seq)
			pos = seq
			s.SetCursor(pair, seq)
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-notify:
		case <-lease.Lost():
			return
		case <-ctx.Done():
			return
		}
	}
}

// Three routers deliver two pairs from one stream while events keep coming; the router holding
// the pairs is killed (its socket closed without a word), twice. Every event reaches every pair,
// each pair in log order per holder, and the duplicates stay within what the last position
// flush before a kill had not yet written.
func TestPairsMoveWhenTheirRouterIsKilled(t *testing.T) {
	stream := rabbit.Unique("streamlog.pairs")
	rabbit.DeleteQueueAtCleanup(t, stream)
	rabbit.DeleteQueueAtCleanup(t, ControlStream(stream))
	pairs := []string{store.DeliveryCursorPrefix + "r1/t", store.DeliveryCursorPrefix + "r2/t"}
	for _, p := range pairs {
		rabbit.DeleteQueueAtCleanup(t, LeaseQueue(stream, p))
	}
	writer := openStore(t, stream, "writer")

	out := &delivered{log: map[string][]uint64{}, by: map[string][]string{}, seen: map[string]map[uint64]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type router struct {
		name  string
		conn  *killable
		store *Store
	}
	var routers []*router
	var wg sync.WaitGroup
	for i := range 3 {
		r := &router{name: fmt.Sprintf("router-%d", i), conn: dialKillable(t)}
		var err error
		if r.store, err = OpenStore(r.conn.Connection, Options{Native: mainNative(t), Stream: stream, BalanceEvery: -1}, r.name); err != nil { // pairs move only at a kill or a node restart here, not to even them out
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.store.Close() })
		routers = append(routers, r)
		for _, p := range pairs {
			wg.Add(1)
			go func() { defer wg.Done(); deliverPair(ctx, r.store, r.name, p, out) }()
		}
	}

	// Steady traffic: batches of events, appended by another router.
	const total = 3000
	var seqs []uint64
	appended := make(chan struct{})
	go func() {
		defer close(appended)
		for i := 0; i < total; i += 50 {
			evs := make([]*event.Event, 50)
			for j := range evs {
				evs[j] = &event.Event{Source: "in", RoutingKey: fmt.Sprint("k.", i+j), Body: []byte(fmt.Sprint(i + j))}
			}
			done := make(chan error, len(evs))
			for _, ev := range evs {
				writer.Append(ev, writer.Fingerprint(ev), store.Window{}, func(seq uint64, _ bool, err error) {
					if err == nil {
						seqs = append(seqs, seq) // done calls come one at a time, in order
					}
					done <- err
				})
			}
			for range evs {
				if err := <-done; err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()

	holderOf := func(pair string) *router {
		for _, r := range routers {
			r.store.mu.Lock()
			l := r.store.leases[pair]
			r.store.mu.Unlock()
			if l == nil {
				continue
			}
			select {
			case <-l.Granted():
				select {
				case <-l.Lost():
				default:
					return r
				}
			default:
			}
		}
		return nil
	}
	var takeovers []time.Duration
	killed := map[*router]bool{}
	// Per killed router and pair: the position its token last recorded. What it delivered past
	// that is counted from the deliveries once every loop has ended: its delivery loop may be
	// between a delivery and the cursor's move when the loss is noticed (and a cursor does not
	// move on a router whose connection is gone), so its cursor can lag its last delivery.
	type victimPair struct {
		router, pair string
	}
	writtenAtDeath := map[victimPair]uint64{}
	for kill := 1; kill <= 2; kill++ {
		eventuallyWithin(t, time.Minute, "deliveries before the kill", func() bool { return out.distinct(pairs[0]) >= kill*total/3 })
		victim := holderOf(pairs[0])
		if victim == nil {
			t.Fatal("nobody holds the pair")
		}
		start := time.Now()
		victim.conn.kill()
		killed[victim] = true
		eventually(t, "takeover", func() bool { h := holderOf(pairs[0]); return h != nil && !killed[h] })
		takeovers = append(takeovers, time.Since(start))
		for _, p := range pairs {
			victim.store.mu.Lock()
			l := victim.store.leases[p]
			victim.store.mu.Unlock()
			if l == nil {
				continue
			}
			eventually(t, "the killed router notices", func() bool {
				select {
				case <-l.Lost():
					return true
				default:
					return false
				}
			})
			// The new holder resumes at the position last written, or later.
			victim.store.mu.Lock()
			writtenAtDeath[victimPair{victim.name, p}] = victim.store.written[p]
			victim.store.mu.Unlock()
		}
	}
	<-appended
	for _, p := range pairs {
		eventuallyWithin(t, time.Minute, "every event delivered to "+p, func() bool { return out.distinct(p) == total })
	}
	cancel()
	for _, r := range routers {
		_ = r.store.Close()
	}
	wg.Wait()

	out.mu.Lock()
	defer out.mu.Unlock()
	unwritten := map[string]uint64{} // per pair: what the killed holders delivered past their tokens
	for vp, written := range writtenAtDeath {
		var last uint64
		for i, seq := range out.log[vp.pair] {
			if out.by[vp.pair][i] == vp.router {
				last = seq
			}
		}
		if last > written {
			unwritten[vp.pair] += last - written
		}
	}
	for _, p := range pairs {
		dups := 0
		for _, n := range out.seen[p] {
			dups += n - 1
		}
		for _, seq := range seqs {
			if out.seen[p][seq] == 0 {
				t.Fatalf("%s: event %d never delivered", p, seq)
			}
		}
		// In log order while one router holds the pair; a takeover may step back to the
		// position last written.
		log, by := out.log[p], out.by[p]
		for i := 1; i < len(log); i++ {
			if by[i] == by[i-1] && log[i] != log[i-1]+1 {
				t.Fatalf("%s: %s delivered %d after %d", p, by[i], log[i], log[i-1])
			}
		}
		t.Logf("%s: %d events, %d delivered twice; the killed holders were %d past their tokens", p, total, dups, unwritten[p])
		if uint64(dups) > unwritten[p] {
			t.Errorf("%s: %d duplicates, more than the %d deliveries the tokens had not recorded", p, dups, unwritten[p])
		}
	}
	t.Logf("takeovers after a kill: %v", takeovers)
}

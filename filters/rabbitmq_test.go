package filters

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func amqpURL() string {
	if u := os.Getenv("WASMROUTER_AMQP_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// differentialCases returns binding patterns and routing keys: hand-picked corner cases,
// then deterministic random ones over a small alphabet so that pairs often match.
func differentialCases() (patterns, keys []string) {
	patterns = []string{"", "#", "*", "#.#", "*.#", "#.*", "#.#.#", "*.*", "#.*.#", "*.#.*",
		"a.#", "#.a", "a.#.b", "#.a.#", "a.#.#.b", "#.b.#.b", ".", "..", "a.", ".a", "a..b",
		"#.", ".#", "*.", ".*", "a.*.b", "a.#b", "#b", "a#", "*a", "**", "##", "#*",
		strings.Repeat("x", 253) + ".#"} // 255 bytes, the longest allowed
	keys = []string{"", ".", "..", "a", "a.", ".a", "a..b", "a.b", "a.b.c", "a.x.b", "b.b.b",
		"#", "*", "a.#b", "a.#", "a.*", "##", "**", "#b",
		strings.Repeat("x", 253) + ".a", "a." + strings.Repeat("x", 251) + ".b"}
	rng := rand.New(rand.NewPCG(0x7075, 0x6273))
	// Few '#' per pattern and few words per key: RabbitMQ's own matcher backtracks, and
	// many '#' on long keys would keep the broker busy for minutes.
	patternWords := []string{"a", "b", "c", "", "*", "*", "#", "#", "#", "a#", "#b", "*a", "a*b", "##"}
	keyWords := []string{"a", "b", "c", "", "a", "b", "#", "*", "a#", "#b", "*a"}
	randomWords := func(alphabet []string, max int) string {
		words := make([]string, rng.IntN(max+1))
		for i := range words {
			words[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return strings.Join(words, ".")
	}
	for len(patterns) < 300 {
		patterns = append(patterns, randomWords(patternWords, 5))
	}
	for len(keys) < 300 {
		keys = append(keys, randomWords(keyWords, 6))
	}
	return patterns, keys
}

// TestDifferentialAgainstRabbitMQ binds one queue per pattern to a fresh topic exchange,
// publishes every key once, and compares what each queue received with the Matcher and
// Match. Every queue is also bound to a sentinel key that is published last: a queue's
// messages arrive in publish order, so once its sentinel is read, everything routed to it
// before has been read too.
func TestDifferentialAgainstRabbitMQ(t *testing.T) {
	if testing.Short() {
		t.Skip("needs RabbitMQ")
	}
	// The bound only stops a hang: on a busy two-core machine the broker took over 90 s for the
	// 300 queues.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	conn, err := amqp.DialConfig(amqpURL(), amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)})
	if err != nil {
		t.Fatalf("connect to RabbitMQ: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() }) // also deletes the exclusive queues
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	suffix := strconv.FormatUint(rand.Uint64(), 36)
	exchange := "wasmrouter.test.filters." + suffix
	if err := ch.ExchangeDeclare(exchange, "topic", false, true, false, false, nil); err != nil {
		t.Fatalf("declare exchange: %v", err)
	}
	t.Cleanup(func() { deleteExchange(t, conn, exchange) })

	patterns, keys := differentialCases()
	sentinel := "sentinel-" + suffix
	m := NewMatcher()
	for i, p := range patterns {
		mustAdd(t, m, p, i)
		q := fmt.Sprintf("%s.q%d", exchange, i)
		if _, err := ch.QueueDeclare(q, false, true, true, false, nil); err != nil {
			t.Fatalf("declare queue %d: %v", i, err)
		}
		for _, k := range []string{p, sentinel} {
			if err := ch.QueueBind(q, k, exchange, false, nil); err != nil {
				t.Fatalf("bind queue %d to %q: %v", i, k, err)
			}
		}
	}

	publishAll(ctx, t, ch, exchange, append(keys, sentinel))
	delivered := make([]map[int]bool, len(patterns)) // per pattern: indexes of keys received
	for i := range patterns {
		delivered[i] = drainUntilSentinel(ctx, t, ch, fmt.Sprintf("%s.q%d", exchange, i), len(keys))
	}

	var mismatches []string
	pairs, matched := 0, 0
	var ids []int
	for k, key := range keys {
		ids = m.Match(key, ids[:0])
		for i, p := range patterns {
			pairs++
			broker, trie, single := delivered[i][k], containsSorted(ids, i), Match(p, key)
			if broker {
				matched++
			}
			if broker != trie || broker != single {
				mismatches = append(mismatches, fmt.Sprintf("pattern %q key %q: RabbitMQ %v, Matcher %v, Match %v",
					p, key, broker, trie, single))
			}
		}
	}
	t.Logf("%d patterns x %d keys = %d pairs, %d routed by RabbitMQ", len(patterns), len(keys), pairs, matched)
	for i, s := range mismatches {
		if i == 50 {
			t.Errorf("... and %d more mismatches", len(mismatches)-50)
			break
		}
		t.Error(s)
	}
}

func publishAll(ctx context.Context, t *testing.T, ch *amqp.Channel, exchange string, keys []string) {
	t.Helper()
	if err := ch.Confirm(false); err != nil {
		t.Fatalf("enable publisher confirms: %v", err)
	}
	confirms := make([]*amqp.DeferredConfirmation, len(keys))
	for i, key := range keys {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false,
			amqp.Publishing{MessageId: strconv.Itoa(i), Body: []byte(key)})
		if err != nil {
			t.Fatalf("publish %q: %v", key, err)
		}
		confirms[i] = dc
	}
	for i, dc := range confirms {
		if ok, err := dc.WaitContext(ctx); err != nil || !ok {
			t.Fatalf("publish %q not confirmed (acked=%v): %v", keys[i], ok, err)
		}
	}
}

// drainUntilSentinel consumes queue q and returns the indexes (message ids) of the keys it
// received before the sentinel, whose id is sentinelID.
func drainUntilSentinel(ctx context.Context, t *testing.T, ch *amqp.Channel, q string, sentinelID int) map[int]bool {
	t.Helper()
	deliveries, err := ch.ConsumeWithContext(ctx, q, "", true, true, false, false, nil)
	if err != nil {
		t.Fatalf("consume %s: %v", q, err)
	}
	got := make(map[int]bool)
	for {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: no sentinel after %d messages: %v", q, len(got), ctx.Err())
		case d, ok := <-deliveries:
			if !ok {
				t.Fatalf("%s: delivery channel closed before the sentinel", q)
			}
			id, err := strconv.Atoi(d.MessageId)
			if err != nil {
				t.Fatalf("%s: unexpected message id %q", q, d.MessageId)
			}
			if id == sentinelID {
				if err := ch.Cancel(d.ConsumerTag, false); err != nil {
					t.Fatalf("cancel consumer on %s: %v", q, err)
				}
				return got
			}
			if got[id] {
				t.Errorf("%s: key %q delivered twice", q, d.Body)
			}
			got[id] = true
		}
	}
}

func deleteExchange(t *testing.T, conn *amqp.Connection, exchange string) {
	ch, err := conn.Channel()
	if err != nil {
		t.Logf("cleanup: open channel: %v", err)
		return
	}
	defer func() { _ = ch.Close() }()
	if err := ch.ExchangeDelete(exchange, false, false); err != nil {
		t.Logf("cleanup: delete exchange %s: %v", exchange, err)
	}
}

func containsSorted(ids []int, id int) bool {
	for _, x := range ids {
		if x >= id {
			return x == id
		}
	}
	return false
}

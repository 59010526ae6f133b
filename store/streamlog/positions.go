package streamlog

import (
	"encoding/json"
	"errors"
	"maps"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The pairs' positions, for every router's status. A pair's position lives in its token,
// which only its holder sees (it keeps the token unacknowledged). So each router sends the
// positions of the pairs it holds to a fanout exchange (the log's name plus ".positions")
// when they moved, at most every flushEvery, and every positionsEvery when they did not, for
// routers that started since; every router follows the exchange through a queue of its own
// (exclusive, deleted with its connection; the exchange goes with the last queue). The messages are transient and unconfirmed: a
// lost one is replaced by the next, and delivery never reads them.

// PositionsExchange is the name of the exchange the routers sharing stream send their pairs'
// positions to.
func PositionsExchange(stream string) string { return stream + ".positions" }

// positionsEvery is how often a router sends the positions of the pairs it holds when none
// moved.
const positionsEvery = time.Second

const positionsType = "wasmrouter.positions"

type positionsMsg struct {
	Holder    string            `json:"holder"`
	Positions map[string]uint64 `json:"positions"` // by delivery cursor: the last delivered seq
}

// peerPositions are the positions the other routers sent, by delivery cursor.
type peerPositions struct {
	ch       *amqp.Channel
	exchange string

	mu   sync.Mutex
	pos  map[string]uint64
	sent map[string]uint64 // what this router sent last
	at   time.Time         // when it sent last
}

// openPositions declares the exchange and this router's queue on it and follows it.
func openPositions(conn *amqp.Connection, stream, self string) (*peerPositions, error) {
	var err error
	for range 3 {
		var p *peerPositions
		if p, err = tryOpenPositions(conn, stream, self); err == nil {
			return p, nil
		}
		// The exchange is deleted with its last queue: the last router that followed it
		// stopped between this router's declare and its bind. Declare it again.
		var amqpErr *amqp.Error
		if !errors.As(err, &amqpErr) || amqpErr.Code != amqp.NotFound {
			return nil, err
		}
	}
	return nil, err
}

func tryOpenPositions(conn *amqp.Connection, stream, self string) (*peerPositions, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	p := &peerPositions{ch: ch, exchange: PositionsExchange(stream), pos: map[string]uint64{}}
	fail := func(err error) (*peerPositions, error) { _ = ch.Close(); return nil, err }
	// Auto-deleted with the last router's queue: nothing is left behind.
	if err := ch.ExchangeDeclare(p.exchange, amqp.ExchangeFanout, false, true, false, false, nil); err != nil {
		return fail(err)
	}
	// Bounded: a router that does not keep up loses old positions, which newer ones replace.
	q, err := ch.QueueDeclare("", false, true, true, false, amqp.Table{"x-max-length": int32(1000)})
	if err != nil {
		return fail(err)
	}
	if err := ch.QueueBind(q.Name, "", p.exchange, false, nil); err != nil {
		return fail(err)
	}
	deliveries, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		return fail(err)
	}
	go p.follow(deliveries, self)
	return p, nil
}

func (p *peerPositions) follow(deliveries <-chan amqp.Delivery, self string) {
	for d := range deliveries {
		var m positionsMsg
		if d.Type != positionsType || json.Unmarshal(d.Body, &m) != nil || m.Holder == self {
			continue
		}
		p.mu.Lock()
		maps.Copy(p.pos, m.Positions)
		p.mu.Unlock()
	}
}

// get is the position another router last sent for cursor.
func (p *peerPositions) get(cursor string) (uint64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pos, ok := p.pos[cursor]
	return pos, ok
}

// send sends held (the pairs this router holds and their positions) when they differ from
// what it sent last, or positionsEvery after that.
func (p *peerPositions) send(self string, held map[string]uint64) {
	p.mu.Lock()
	due := time.Since(p.at) >= positionsEvery || !maps.Equal(held, p.sent)
	if !due || len(held) == 0 {
		p.mu.Unlock()
		return
	}
	p.sent, p.at = held, time.Now()
	p.mu.Unlock()
	body, err := json.Marshal(positionsMsg{Holder: self, Positions: held})
	if err != nil {
		return
	}
	// Unconfirmed: a lost message is replaced by the next.
	_ = p.ch.Publish(p.exchange, "", false, false, amqp.Publishing{Type: positionsType, ContentType: "application/json", Body: body})
}

func (p *peerPositions) close() { _ = p.ch.Close() }

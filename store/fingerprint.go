package store

import (
	"crypto/sha256"
	"encoding/binary"
	"maps"
	"sync"

	"github.com/wasmrouter/wasmrouter/event"
)

// Fingerprint identifies a message by where it came from and its content: the source, the
// exchange, routing key, every property (message id included), the headers and the body. Seq
// and ingest time are left out, so a broker redelivery of a message has the fingerprint of the
// original, while two messages with equal bodies but different ids or headers do not, nor do
// copies of one message that two sources consumed.
type Fingerprint [16]byte

// fingerprintDomain prefixes the hashed encoding, so that the hash cannot be confused with
// a hash of anything else and can be versioned.
const fingerprintDomain = "wasmrouter fingerprint v1\x00"

var fingerprintBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// brokerHeaders are added or changed by the broker on each delivery (quorum queues count
// deliveries in x-delivery-count), so they are not part of a message's identity.
var brokerHeaders = []string{"x-delivery-count"}

// FingerprintOf returns the first 16 bytes of SHA-256 over a canonical encoding of ev: the
// record encoding of those fields, header keys sorted. Header values of types a record cannot
// hold are included by their printed form rather than rejected. Changing this encoding changes
// every fingerprint, which breaks redelivery detection across an upgrade.
func FingerprintOf(ev *event.Event) Fingerprint {
	bp := fingerprintBufs.Get().(*[]byte)
	buf := append((*bp)[:0], fingerprintDomain...)
	buf = appendString(buf, ev.Source)
	buf = appendString(buf, ev.Exchange)
	buf = appendString(buf, ev.RoutingKey)
	buf = appendProps(buf, &ev.Props)
	buf, _ = appendTable(buf, withoutBrokerHeaders(ev.Headers), 1, false) // never fails when not strict
	buf = binary.AppendUvarint(buf, uint64(len(ev.Body)))

	h := sha256.New()
	h.Write(buf)
	h.Write(ev.Body)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])

	if cap(buf) <= 64<<10 { // do not keep the buffer of an unusually large header table
		*bp = buf
		fingerprintBufs.Put(bp)
	}
	var fp Fingerprint
	copy(fp[:], sum[:])
	return fp
}

// fingerprintOfRecord computes FingerprintOf(ev) from ev's record encoding rec, whose parts
// are at: the record holds every byte the fingerprint hashes (the strict encoding of a table
// equals the lenient one when it succeeds), only the routing key and exchange are in the other
// order. It does not apply to an event with broker headers, which the fingerprint leaves out.
func fingerprintOfRecord(rec []byte, at recordParts) Fingerprint {
	h := sha256.New()
	h.Write([]byte(fingerprintDomain))
	h.Write(rec[at.source:at.routingKey])
	h.Write(rec[at.exchange:at.props])
	h.Write(rec[at.routingKey:at.exchange])
	h.Write(rec[at.props:])
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	var fp Fingerprint
	copy(fp[:], sum[:])
	return fp
}

func hasBrokerHeaders(h event.Table) bool {
	for _, name := range brokerHeaders {
		if _, ok := h[name]; ok {
			return true
		}
	}
	return false
}

// withoutBrokerHeaders returns h, or a shallow copy without the broker's per-delivery headers.
func withoutBrokerHeaders(h event.Table) event.Table {
	for _, name := range brokerHeaders {
		if _, ok := h[name]; ok {
			c := maps.Clone(h)
			for _, n := range brokerHeaders {
				delete(c, n)
			}
			return c
		}
	}
	return h
}

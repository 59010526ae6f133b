package store

import (
	"time"

	"github.com/wasmrouter/wasmrouter/event"
)

// EncodeRecord appends the log's record encoding of ev (with fingerprint fp) to dst: the same
// bytes the bbolt log stores, for logs kept elsewhere (a RabbitMQ stream carries them as the
// message body).
func EncodeRecord(dst []byte, ev *event.Event, fp Fingerprint) ([]byte, error) {
	return appendRecord(dst, ev, fp)
}

// DecodeRecord decodes a record written by EncodeRecord and gives the event the seq. Anything
// EncodeRecord would not produce is an error wrapping ErrCorrupt.
func DecodeRecord(b []byte, seq uint64) (*event.Event, Fingerprint, error) {
	return decodeRecord(b, seq)
}

// RecordFingerprint returns the fingerprint a record carries without decoding the rest.
func RecordFingerprint(b []byte) (Fingerprint, error) {
	_, fp, err := peekMeta(b)
	return fp, err
}

// PeekHead returns the head of a record stored under seq without decoding the rest. Source and
// RoutingKey alias b.
func PeekHead(b []byte, seq uint64) (RecordHead, error) {
	source, routingKey, err := peekRecord(b)
	if err != nil {
		return RecordHead{}, err
	}
	ingest, _, err := peekMeta(b)
	h := RecordHead{Seq: seq, Source: source, RoutingKey: routingKey}
	if ingest != zeroTimeNanos {
		h.IngestTime = time.Unix(0, ingest).UTC()
	}
	return h, err
}

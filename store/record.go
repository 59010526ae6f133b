package store

import "github.com/wasmrouter/wasmrouter/event"

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

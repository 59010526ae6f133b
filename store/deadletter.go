package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/wasmrouter/wasmrouter/event"
)

// DeadLetter is an event that failed for a route or one of its targets (see event.DeadLetter).
type DeadLetter = event.DeadLetter

const (
	deadLetterVersion = 1
	maxDeadKey        = 16 << 10 // route and target names together
	deadChunk         = 1024
)

// Dead letter layout: version byte, route, target (strings), seq (uvarint), reason (string),
// attempts (varint), time (varint seconds, uvarint nanoseconds), redriven (byte 0/1).
func encodeDeadLetter(dl *DeadLetter) []byte {
	b := []byte{deadLetterVersion}
	b = appendString(b, dl.Route)
	b = appendString(b, dl.Target)
	b = binary.AppendUvarint(b, dl.Seq)
	b = appendString(b, dl.Reason)
	b = binary.AppendVarint(b, int64(dl.Attempts))
	b = appendTime(b, dl.Time)
	if dl.Redriven {
		return append(b, 1)
	}
	return append(b, 0)
}

func decodeDeadLetter(id uint64, b []byte) (DeadLetter, error) {
	d := decoder{b: b}
	if v := d.byte(); d.err == nil && v != deadLetterVersion {
		return DeadLetter{}, fmt.Errorf("%w: dead letter %d: unknown version %d", ErrCorrupt, id, v)
	}
	dl := DeadLetter{ID: id, Route: d.string(), Target: d.string(), Seq: d.uvarint(), Reason: d.string()}
	dl.Attempts = int(d.varint())
	dl.Time = d.time()
	switch d.byte() {
	case 0:
	case 1:
		dl.Redriven = true
	default:
		d.fail("bad redriven flag")
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return DeadLetter{}, fmt.Errorf("dead letter %d: %w", id, d.err)
	}
	return dl, nil
}

func deadIndexKey(dl *DeadLetter) []byte {
	k := appendString(nil, dl.Route)
	k = appendString(k, dl.Target)
	return binary.BigEndian.AppendUint64(k, dl.Seq)
}

// AddDeadLetter records dl durably (through the group commit; it returns after the fsync) and
// returns its ID. It is idempotent on (Route, Target, Seq) until the dead letter is redriven:
// recording the same again returns the existing ID and changes nothing.
func (s *Store) AddDeadLetter(dl DeadLetter) (uint64, error) {
	if len(dl.Route)+len(dl.Target) > maxDeadKey {
		return 0, fmt.Errorf("store: dead letter: route and target names too long")
	}
	if dl.Time.IsZero() {
		dl.Time = s.opts.Now().UTC()
	}
	dl.Redriven = false
	rec, key := encodeDeadLetter(&dl), deadIndexKey(&dl)
	var id uint64
	err := s.doOp(func(tx *bolt.Tx) error {
		idx := tx.Bucket(bucketDeadIdx)
		if v := idx.Get(key); len(v) == 8 {
			id = seqOf(v)
			return nil
		}
		b := tx.Bucket(bucketDead)
		n, err := b.NextSequence()
		if err != nil {
			return err
		}
		if err := b.Put(seqKey(n), rec); err != nil {
			return err
		}
		id = n
		return idx.Put(key, seqKey(n))
	})
	if err != nil {
		return 0, fmt.Errorf("store: dead letter: %w", err)
	}
	storeMax(&s.lastDeadID, id)
	return id, nil
}

// DeadLetters visits the dead letters with ID >= fromID in ID order, at most limit of them
// (limit <= 0: all), until fn returns false.
func (s *Store) DeadLetters(fromID uint64, limit int, fn func(DeadLetter) bool) error {
	if err := s.checkOpen(); err != nil {
		return err
	}
	next := max(fromID, 1)
	for seen := 0; limit <= 0 || seen < limit; {
		want := deadChunk
		if limit > 0 {
			want = min(want, limit-seen)
		}
		var chunk []DeadLetter
		err := s.view(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketDead)
			if b == nil {
				return nil
			}
			c := b.Cursor()
			for k, v := c.Seek(seqKey(next)); k != nil && len(chunk) < want; k, v = c.Next() {
				dl, err := decodeDeadLetter(seqOf(k), v)
				if err != nil {
					return fmt.Errorf("store: %w", err)
				}
				chunk = append(chunk, dl)
			}
			return nil
		})
		for _, dl := range chunk {
			if !fn(dl) {
				return err
			}
		}
		if err != nil || len(chunk) < want {
			return err
		}
		seen += len(chunk)
		next = chunk[len(chunk)-1].ID + 1
	}
	return nil
}

// LastDeadLetterID returns the highest dead letter ID assigned, 0 if none.
func (s *Store) LastDeadLetterID() uint64 { return s.lastDeadID.Load() }

// MarkRedriven flags the dead letter as sent again; durable on return. ErrNotFound if absent.
func (s *Store) MarkRedriven(id uint64) error {
	err := s.doOp(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDead)
		v := b.Get(seqKey(id))
		if v == nil {
			return fmt.Errorf("%w: dead letter %d", ErrNotFound, id)
		}
		dl, err := decodeDeadLetter(id, v)
		if err != nil {
			return err
		}
		dl.Redriven = true
		if err := b.Put(seqKey(id), encodeDeadLetter(&dl)); err != nil {
			return err
		}
		// A redriven event that fails again is a new dead letter, not this one.
		idx := tx.Bucket(bucketDeadIdx)
		if v := idx.Get(deadIndexKey(&dl)); len(v) == 8 && seqOf(v) == id {
			return idx.Delete(deadIndexKey(&dl))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: mark redriven: %w", err)
	}
	return nil
}

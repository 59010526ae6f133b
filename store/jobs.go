package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/wasmrouter/wasmrouter/event"
)

// maxJobKey bounds a job's id.
const maxJobKey = 256

// SaveJob records an unfinished job (a replay) under id with the caller's description of it,
// durably: after a crash, Jobs still has it, so that the job can be resumed from its cursors.
func (s *Store) SaveJob(id string, spec []byte) error {
	if id == "" || len(id) > maxJobKey {
		return fmt.Errorf("store: bad job id %q", id)
	}
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	return s.doOp(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketJobs)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), spec)
	})
}

// DeleteJob forgets a job; durable on return. Deleting an unknown job is not an error.
func (s *Store) DeleteJob(id string) error {
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	return s.doOp(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketJobs); b != nil {
			return b.Delete([]byte(id))
		}
		return nil
	})
}

// ErrNoJob is returned by Job for an id with no record.
var ErrNoJob = event.ErrNoJob

// Job returns the description saved under id, or ErrNoJob.
func (s *Store) Job(id string) ([]byte, error) {
	var spec []byte
	err := s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketJobs); b != nil {
			if v := b.Get([]byte(id)); v != nil {
				spec = append([]byte(nil), v...)
			}
		}
		return nil
	})
	if err == nil && spec == nil {
		err = fmt.Errorf("%w: %q", ErrNoJob, id)
	}
	return spec, err
}

// Jobs returns every saved job's id, in order.
func (s *Store) Jobs() ([]string, error) {
	var ids []string
	err := s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketJobs); b != nil {
			return b.ForEach(func(k, _ []byte) error {
				ids = append(ids, string(k))
				return nil
			})
		}
		return nil
	})
	return ids, err
}

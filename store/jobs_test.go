package store

import (
	"errors"
	"fmt"
	"testing"
)

func TestJobsSurviveReopenUntilDeleted(t *testing.T) {
	opts := testOptions(t)
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveJob("b", []byte(`{"n":2}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveJob("a", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveJob("", nil); err == nil {
		t.Error("an empty job id was accepted")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, opts)
	if ids, err := s.Jobs(); err != nil || fmt.Sprint(ids) != "[a b]" {
		t.Fatalf("Jobs after reopen = %v, %v", ids, err)
	}
	if spec, err := s.Job("b"); err != nil || string(spec) != `{"n":2}` {
		t.Fatalf("Job(b) = %s, %v", spec, err)
	}
	if err := s.DeleteJob("b"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Job("b"); !errors.Is(err, ErrNoJob) {
		t.Fatalf("Job(b) after delete: %v, want ErrNoJob", err)
	}
	if err := s.DeleteJob("never"); err != nil {
		t.Fatalf("deleting an unknown job: %v", err)
	}
	if ids, _ := s.Jobs(); fmt.Sprint(ids) != "[a]" {
		t.Fatalf("Jobs after delete = %v", ids)
	}
}

func TestJobsOnAReadOnlyStore(t *testing.T) {
	opts := testOptions(t)
	s, err := Open(opts) // creates the file; no job was ever saved, so there is no bucket
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	opts.ReadOnly = true
	ro := openStore(t, opts)
	if ids, err := ro.Jobs(); err != nil || len(ids) != 0 {
		t.Fatalf("Jobs = %v, %v", ids, err)
	}
	if err := ro.SaveJob("x", nil); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("SaveJob on a read-only store: %v", err)
	}
}

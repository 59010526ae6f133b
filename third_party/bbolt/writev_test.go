package bbolt

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"testing"
)

// TestCommitWritesAdjacentPagesTogether: a commit's adjacent dirty pages go out in one write
// (patched), and what was written reads back after a reopen, overflow pages included.
func TestCommitWritesAdjacentPagesTogether(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db, err := Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	var writes, bufs int
	writev := db.ops.writevAt
	db.ops.writevAt = func(b [][]byte, off int64) error {
		writes++
		bufs += len(b)
		return writev(b, off)
	}
	value := func(i int) []byte {
		n := 1000
		if i%50 == 0 {
			n = 3*db.pageSize + 100 // spans several pages
		}
		v := bytes.Repeat([]byte{byte(i)}, n)
		binary.BigEndian.PutUint32(v, uint32(i))
		return v
	}
	const commits, perCommit = 40, 25
	for c := 0; c < commits; c++ {
		if err := db.Update(func(tx *Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("events"))
			if err != nil {
				return err
			}
			b.FillPercent = 1
			for i := c * perCommit; i < (c+1)*perCommit; i++ {
				k := binary.BigEndian.AppendUint64(nil, uint64(i))
				if err := b.Put(k, value(i)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if writes == 0 || bufs <= writes {
		t.Fatalf("%d writes of %d pages: no adjacent pages written together", writes, bufs)
	}
	// grow skips its stat only below a size the file has: never past the file's end.
	hwm := int(db.meta().Pgid()) * db.pageSize
	if size, err := db.fileSize(); err != nil || db.grownTo < hwm || db.grownTo > size {
		t.Fatalf("grownTo %d, high-water mark %d, file size %d (%v)", db.grownTo, hwm, size, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *Tx) error {
		b := tx.Bucket([]byte("events"))
		n := 0
		if err := b.ForEach(func(k, v []byte) error {
			i := int(binary.BigEndian.Uint64(k))
			if i != n {
				t.Fatalf("key %d, want %d", i, n)
			}
			if !bytes.Equal(v, value(i)) {
				t.Fatalf("value of key %d differs after reopen", i)
			}
			n++
			return nil
		}); err != nil {
			return err
		}
		if n != commits*perCommit {
			t.Fatalf("%d keys, want %d", n, commits*perCommit)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.View(func(tx *Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	}); err != nil {
		t.Fatalf("check after reopen: %v", err)
	}
}

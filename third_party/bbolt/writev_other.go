//go:build !linux

package bbolt

// maxWriteRun bounds the buffers of one write.
const maxWriteRun = 1024

// writevAt writes bufs one after another from off, one write each (patched: Linux writes them
// with one pwritev).
func (db *DB) writevAt(bufs [][]byte, off int64) error {
	for _, b := range bufs {
		if _, err := db.ops.writeAt(b, off); err != nil {
			return err
		}
		off += int64(len(b))
	}
	return nil
}

package bbolt

import (
	"io"

	"golang.org/x/sys/unix"
)

// maxWriteRun bounds the buffers of one write: IOV_MAX on Linux.
const maxWriteRun = 1024

// writevAt writes bufs one after another from off with pwritev (patched: a commit's adjacent
// pages in one system call instead of one pwrite each), resuming after a short write.
func (db *DB) writevAt(bufs [][]byte, off int64) error {
	fd := int(db.file.Fd())
	for len(bufs) > 0 {
		n, err := unix.Pwritev(fd, bufs[:min(len(bufs), maxWriteRun)], off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		off += int64(n)
		for n > 0 {
			if n < len(bufs[0]) {
				bufs[0] = bufs[0][n:]
				break
			}
			n -= len(bufs[0])
			bufs = bufs[1:]
		}
	}
	return nil
}

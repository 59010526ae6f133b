package store

import (
	"os"

	"golang.org/x/sys/unix"
)

type linuxZeroFile struct {
	f     *os.File
	zeros []byte
}

func openZeroFile(path string) (zeroFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	return &linuxZeroFile{f: f}, nil
}

func (z *linuxZeroFile) writtenFrom(off int64) (int64, error) {
	hole, err := unix.Seek(int(z.f.Fd()), off, unix.SEEK_HOLE)
	if err == unix.ENXIO { // off is at or past the end of the file
		return off, nil
	}
	return hole, err
}

func (z *linuxZeroFile) writeZeros(off int64, n int) error {
	if len(z.zeros) < n {
		z.zeros = make([]byte, n)
	}
	_, err := z.f.WriteAt(z.zeros[:n], off)
	return err
}

func (z *linuxZeroFile) close() error { return z.f.Close() }

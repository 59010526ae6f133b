package amqpx

import (
	"net"
	"sync"
)

// batchLimit bounds what a held connection buffers before it writes anyway: about fifty 1 KiB
// messages, so that holding saves most write calls while the first message of a burst waits
// only as long as encoding the next ones takes.
const batchLimit = 64 << 10

// batchConn lets a burst of publishes go out in a few large writes instead of one write per
// message. amqp091-go flushes its buffer after every publish, so without it each message is a
// write system call here and a separate read and TCP segment for the broker, which costs the
// broker more CPU per message than the message itself; with it a burst costs one of each per
// batchLimit bytes. Writes are buffered only while some holder has the connection held (see
// hold), so heartbeats and lone publishes are never delayed.
type batchConn struct {
	net.Conn

	mu      sync.Mutex
	holders int
	direct  int // open bypasses: an exchange that waits for the broker's answer is under way
	buf     []byte
	err     error // the first failed write; every later one fails with it

	// returns counts the basic.return frames the frame filter reads on this connection (see
	// returnCounts): kept with the writer because the cluster keeps one of each per connection.
	returns returnCounts
}

func newBatchConn(c net.Conn) *batchConn { return &batchConn{Conn: c} }

func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.holders > 0 && c.direct == 0 && len(c.buf)+len(p) <= batchLimit {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	if err := c.flushLocked(); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	if err != nil {
		c.err = err
	}
	return n, err
}

// hold starts buffering writes until the matching release.
func (c *batchConn) hold() {
	c.mu.Lock()
	c.holders++
	c.mu.Unlock()
}

// release ends a hold and writes what was buffered, so that no burst waits for another
// holder's. A failed write closes the connection, so that the library, which was told the
// buffered writes succeeded, sees the failure on its reading side and reports the connection
// lost: the publishes whose bytes were lost are then resolved as outages and sent again.
func (c *batchConn) release() {
	c.mu.Lock()
	c.holders--
	err := c.flushLocked()
	c.mu.Unlock()
	if err != nil {
		_ = c.Conn.Close()
	}
}

// bypass writes what is buffered and lets writes through at once until endBypass, even while
// held: a request whose answer the holder waits for (opening a channel in the middle of a
// burst) must reach the broker.
func (c *batchConn) bypass() {
	c.mu.Lock()
	c.direct++
	err := c.flushLocked()
	c.mu.Unlock()
	if err != nil {
		_ = c.Conn.Close()
	}
}

func (c *batchConn) endBypass() {
	c.mu.Lock()
	c.direct--
	c.mu.Unlock()
}

func (c *batchConn) flushLocked() error {
	if c.err != nil {
		return c.err
	}
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	if err != nil {
		c.err = err
	}
	return err
}

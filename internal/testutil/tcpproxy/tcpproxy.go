// Package tcpproxy is a TCP proxy for tests that simulates network trouble between a client
// and a server: cut every connection (and refuse new ones) until restored, or delay the data.
package tcpproxy

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy forwards connections from Addr to an upstream address.
type Proxy struct {
	upstream string
	ln       net.Listener
	wg       sync.WaitGroup

	mu      sync.Mutex
	cut     bool
	closed  bool
	latency time.Duration
	links   map[*link]struct{}
}

// link is one proxied connection: the client side and the upstream side.
type link struct {
	client, server net.Conn
	once           sync.Once
}

func (l *link) close() {
	l.once.Do(func() {
		_ = l.client.Close()
		_ = l.server.Close()
	})
}

// Start listens on 127.0.0.1 (a free port) and forwards to upstream. The proxy is closed when
// the test ends.
func Start(t testing.TB, upstream string) *Proxy {
	t.Helper()
	p, err := New(upstream)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// New listens on 127.0.0.1 (a free port) and forwards to upstream, for programs that are not
// tests; the caller closes the proxy.
func New(upstream string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("tcpproxy: listen: %w", err)
	}
	p := &Proxy{upstream: upstream, ln: ln, links: make(map[*link]struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every live connection, and closes new ones as soon as they are accepted, until
// Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.cut = true
	links := p.takeLinksLocked()
	p.mu.Unlock()
	for _, l := range links {
		l.close()
	}
}

// Restore lets connections through again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// SetLatency delays data forwarded in either direction by d, from now on.
func (p *Proxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	p.latency = d
	p.mu.Unlock()
}

// Close stops listening, closes every connection and waits for the proxy's goroutines.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	links := p.takeLinksLocked()
	p.mu.Unlock()
	_ = p.ln.Close()
	for _, l := range links {
		l.close()
	}
	p.wg.Wait()
}

func (p *Proxy) takeLinksLocked() []*link {
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	clear(p.links)
	return links
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	if !p.open() {
		_ = client.Close()
		return
	}
	server, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
	if err != nil {
		_ = client.Close()
		return
	}
	l := &link{client: client, server: server}
	p.mu.Lock()
	if p.cut || p.closed {
		p.mu.Unlock()
		l.close()
		return
	}
	p.links[l] = struct{}{}
	p.mu.Unlock()

	var pipes sync.WaitGroup
	pipes.Add(2)
	go func() { defer pipes.Done(); p.pipe(l, server, client) }()
	go func() { defer pipes.Done(); p.pipe(l, client, server) }()
	pipes.Wait()
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

func (p *Proxy) open() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.cut && !p.closed
}

func (p *Proxy) currentLatency() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.latency
}

// chunk is data read at a time, to be written once its delay has passed.
type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst. Reading and writing run separately, so that latency delays the data
// without limiting throughput. Either side ending closes the whole link.
func (p *Proxy) pipe(l *link, dst, src net.Conn) {
	defer l.close()
	queue := make(chan chunk, 64)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		defer l.close()
		for c := range queue {
			if wait := time.Until(c.due); wait > 0 {
				time.Sleep(wait)
			}
			if _, err := dst.Write(c.data); err != nil {
				return
			}
		}
	}()
	defer func() {
		close(queue)
		<-writerDone
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			data := append([]byte(nil), buf[:n]...)
			select {
			case queue <- chunk{data: data, due: time.Now().Add(p.currentLatency())}:
			case <-writerDone:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

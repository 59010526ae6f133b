package admin

import (
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Bounds of the admin server, so that slow or idle clients cannot hold it: a client that sends
// its headers or body slowly is cut off, an idle keep-alive connection is closed, and the
// number of connections stays below the process's file limit (when it is reached, idle
// connections are closed first, then new ones are refused), so /healthz keeps answering.
// Variables, not constants, so that tests can shorten them.
var (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second // headers and body (bodies are at most MaxBodyBytes)
	writeTimeout      = 60 * time.Second // per answer, except streams and profiles
	idleTimeout       = 60 * time.Second
)

const (
	maxHeaderBytes = 64 << 10
	// DefaultMaxConns bounds open connections unless Options.MaxConns says otherwise.
	DefaultMaxConns = 128
)

// longLived are the paths whose answers last as long as the client wants (server-sent
// events, CPU profiles and traces): no write deadline, and no read deadline once the request
// is read.
func longLived(path string) bool {
	return path == "/api/v1/events/stream" || strings.HasPrefix(path, "/debug/pprof/")
}

// deadlines gives each answer its write deadline, and lifts both deadlines for long-lived ones.
func deadlines(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if longLived(r.URL.Path) {
			_ = rc.SetReadDeadline(time.Time{})
			_ = rc.SetWriteDeadline(time.Time{})
		} else {
			_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		}
		next.ServeHTTP(w, r)
	})
}

// connLimiter is a listener that keeps at most max connections open, with the connection
// states the server reports (see http.Server.ConnState).
type connLimiter struct {
	net.Listener
	max int

	mu    sync.Mutex
	conns map[net.Conn]http.ConnState
}

func newConnLimiter(ln net.Listener, max int) *connLimiter {
	return &connLimiter{Listener: ln, max: max, conns: map[net.Conn]http.ConnState{}}
}

// Accept takes the next connection. At the limit it closes an idle connection to make room,
// or, when none is idle, closes the new one at once.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		if len(l.conns) >= l.max && !l.closeIdleLocked() {
			l.mu.Unlock()
			_ = c.Close()
			continue
		}
		lc := &limitedConn{Conn: c, l: l}
		l.conns[lc] = http.StateNew
		l.mu.Unlock()
		return lc, nil
	}
}

// closeIdleLocked closes one idle connection; false when there is none.
func (l *connLimiter) closeIdleLocked() bool {
	for c, state := range l.conns {
		if state == http.StateIdle {
			delete(l.conns, c)
			_ = c.(*limitedConn).Conn.Close()
			return true
		}
	}
	return false
}

// track is the server's ConnState hook.
func (l *connLimiter) track(c net.Conn, state http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.conns[c]; !ok {
		return
	}
	switch state {
	case http.StateClosed, http.StateHijacked:
		delete(l.conns, c)
	default:
		l.conns[c] = state
	}
}

// open is the number of connections held.
func (l *connLimiter) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

type limitedConn struct {
	net.Conn
	l    *connLimiter
	once sync.Once
}

func (c *limitedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

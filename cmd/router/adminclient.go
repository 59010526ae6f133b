package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/app"
	"github.com/wasmrouter/wasmrouter/router"
)

// errNoRouter means nothing accepted a connection at the admin address: no router runs there.
var errNoRouter = errors.New("no router answers")

// adminConnectTimeout is short: a router on the same machine accepts at once, and the command
// falls back to working offline when none does.
const adminConnectTimeout = time.Second

// adminClient talks to a running router's admin API (CONTRACT section 5).
type adminClient struct {
	addr  string // host:port as configured
	base  string // http://host:port
	token string
	http  *http.Client
}

func newAdminClient(addr, token string) (*adminClient, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("router.admin_addr %q: %w", addr, err)
	}
	// A router listening on every interface answers on loopback.
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	dialer := &net.Dialer{Timeout: adminConnectTimeout}
	return &adminClient{
		addr:  addr,
		base:  "http://" + net.JoinHostPort(host, port),
		token: token,
		http: &http.Client{Transport: &http.Transport{
			DialContext:         dialer.DialContext,
			TLSHandshakeTimeout: adminConnectTimeout,
			MaxIdleConns:        2,
			IdleConnTimeout:     30 * time.Second,
		}},
	}, nil
}

// startReplay posts a replay request and returns the job's id.
func (c *adminClient) startReplay(ctx context.Context, body app.ReplayBody) (string, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return "", err
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := c.do(ctx, http.MethodPost, "/api/v1/replay", b, http.StatusAccepted, &out); err != nil {
		return "", err
	}
	if out.ID == "" {
		return "", fmt.Errorf("admin API at %s: no job id in the answer", c.addr)
	}
	return out.ID, nil
}

// replayStatus fetches a job's progress.
func (c *adminClient) replayStatus(ctx context.Context, id string) (router.ReplayProgress, error) {
	var p router.ReplayProgress
	err := c.do(ctx, http.MethodGet, "/api/v1/replay/"+id, nil, http.StatusOK, &p)
	return p, err
}

// stopReplay cancels a job running in the router.
func (c *adminClient) stopReplay(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/replay/"+url.PathEscape(id), nil, http.StatusAccepted, nil)
}

func (c *adminClient) do(ctx context.Context, method, path string, body []byte, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if isDialError(err) && ctx.Err() == nil {
			return fmt.Errorf("%w at %s", errNoRouter, c.addr)
		}
		return fmt.Errorf("admin API at %s: %w", c.addr, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("admin API at %s: reading the answer: %w", c.addr, err)
	}
	if resp.StatusCode != want {
		return c.statusError(method, path, resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("admin API at %s: %s %s: unexpected answer: %w", c.addr, method, path, err)
	}
	return nil
}

func (c *adminClient) statusError(method, path string, code int, data []byte) error {
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(data, &e)
	switch {
	case code == http.StatusUnauthorized && c.token == "":
		return fmt.Errorf("admin API at %s wants a bearer token: set router.admin_token in the configuration to the router's token", c.addr)
	case code == http.StatusUnauthorized:
		return fmt.Errorf("admin API at %s refused router.admin_token (401): it differs from the running router's", c.addr)
	case e.Error != "":
		return fmt.Errorf("admin API at %s: %s", c.addr, e.Error)
	default:
		return fmt.Errorf("admin API at %s: %s %s: %s (is this a wasmrouter admin API?)", c.addr, method, path, http.StatusText(code))
	}
}

// isDialError reports a failure to connect at all (refused, unreachable, timed out), as
// opposed to a router that accepted and then failed.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

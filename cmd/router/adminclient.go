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
	"slices"
	"time"

	"github.com/wasmrouter/wasmrouter/cmd/router/app"
	"github.com/wasmrouter/wasmrouter/router"
)

// errNoRouter means nothing accepted a connection at the admin address: no router runs there.
var errNoRouter = errors.New("no router answers")

// adminConnectTimeout is short: a router on the same machine accepts at once, and the command
// falls back to working offline when none does.
const adminConnectTimeout = time.Second

// adminClient talks to a running router's admin API (docs/admin-api.md).
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
	if err := c.do(ctx, http.MethodPost, "/api/v1/replay", b, &out, http.StatusAccepted); err != nil {
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
	err := c.do(ctx, http.MethodGet, "/api/v1/replay/"+url.PathEscape(id), nil, &p, http.StatusOK)
	return p, err
}

// stopReplay cancels a job running in the router.
func (c *adminClient) stopReplay(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/replay/"+url.PathEscape(id), nil, nil, http.StatusAccepted)
}

// follow polls a job in the router until it ends, showing its progress on view. When ctx
// ends first, it stops the job in the router; what names the job in messages.
func (c *adminClient) follow(ctx context.Context, id, what string, view *progressView) (router.ReplayProgress, error) {
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		p, err := c.replayStatus(ctx, id)
		if err != nil && ctx.Err() == nil {
			// Not %w: the job has started, and errNoRouter would make the caller run it again offline.
			return p, fmt.Errorf("following %s %s: %v", what, id, err)
		}
		if err == nil && p.State != "running" {
			view.finish(p.Done, p.Total)
			return p, nil
		}
		if err == nil {
			view.update(p.Done, p.Total)
		}
		select {
		case <-ctx.Done():
			stopCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err := c.stopReplay(stopCtx, id)
			cancel()
			if err != nil {
				return p, fmt.Errorf("interrupted, but stopping %s %s in the router failed: %w (GET http://%s/api/v1/replay/%s shows its progress)",
					what, id, err, c.addr, id)
			}
			return p, fmt.Errorf("%s %s stopped", what, id)
		case <-tick.C:
		}
	}
}

// redrive posts a dead-letter redrive and returns the job's id and the dead letters it
// redrives; no id when the selection is empty (the router started no job).
func (c *adminClient) redrive(ctx context.Context, body app.RedriveBody) (string, []uint64, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return "", nil, err
	}
	var out struct {
		ID  string   `json:"id"`
		IDs []uint64 `json:"ids"`
	}
	if err := c.do(ctx, http.MethodPost, "/api/v1/dlq/replay", b, &out, http.StatusAccepted, http.StatusOK); err != nil {
		return "", nil, err
	}
	if out.ID == "" && len(out.IDs) > 0 {
		return "", nil, fmt.Errorf("admin API at %s: no job id in the answer", c.addr)
	}
	return out.ID, out.IDs, nil
}

// deadLetters lists dead letters (GET /api/v1/dlq with query) and hands each to fn as it is
// decoded, so that a long list is neither held nor cut at a size limit.
func (c *adminClient) deadLetters(ctx context.Context, query url.Values, fn func(app.DeadLetterRecord) error) error {
	const path = "/api/v1/dlq"
	resp, err := c.send(ctx, http.MethodGet, path+"?"+query.Encode(), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return c.statusError(http.MethodGet, path, resp.StatusCode, readAnswer(resp.Body))
	}
	dec := json.NewDecoder(resp.Body)
	unexpected := func(err error) error {
		return fmt.Errorf("admin API at %s: GET %s: unexpected answer: %w", c.addr, path, err)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return unexpected(fmt.Errorf("not a JSON array (%v)", err))
	}
	for dec.More() {
		var rec app.DeadLetterRecord
		if err := dec.Decode(&rec); err != nil {
			return unexpected(err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return unexpected(err)
	}
	return nil
}

// do sends a request and decodes the answer into out (unless nil), which must come with one of
// the wanted status codes.
func (c *adminClient) do(ctx context.Context, method, path string, body []byte, out any, want ...int) error {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("admin API at %s: reading the answer: %w", c.addr, err)
	}
	if !slices.Contains(want, resp.StatusCode) {
		return c.statusError(method, path, resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("admin API at %s: %s %s: unexpected answer: %w", c.addr, method, path, err)
	}
	return nil
}

// send makes a request with the token; errNoRouter when nothing accepts the connection.
func (c *adminClient) send(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
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
			return nil, fmt.Errorf("%w at %s", errNoRouter, c.addr)
		}
		return nil, fmt.Errorf("admin API at %s: %w", c.addr, err)
	}
	return resp, nil
}

// readAnswer reads an error answer, bounded: only its message is of use.
func readAnswer(r io.Reader) []byte {
	data, _ := io.ReadAll(io.LimitReader(r, 64<<10))
	return data
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

package config

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/hashicorp/hcl/v2"
)

// Defaults of the router and store blocks.
const (
	DefaultAdminAddr    = "127.0.0.1:9464"
	DefaultStorePath    = "data/router.db"
	DefaultRetention    = 168 * time.Hour
	DefaultStoreMaxSize = 10 << 30
	DefaultStream       = "wasmrouter.log"
	DefaultTakeover     = 15 * time.Second
	// MinTakeover: AMQP heartbeats count whole seconds and the broker drops a connection after
	// about two missed ones, so a vanished router cannot be noticed much sooner than in 4 s
	// (a heartbeat of a quarter of takeover, docs/stream-log.md).
	MinTakeover           = 4 * time.Second
	DefaultMaxMessageSize = 128 << 20
	// rabbitMaxMessageSize is RabbitMQ's hard limit: a larger max_message_size could never be used.
	rabbitMaxMessageSize = 512 << 20
)

var routerSchema = schema{
	attrs:  []string{"admin_addr", "admin_token", "log_level", "log_format", "max_message_size", "memory_limit"},
	secret: []string{"admin_token"},
}

func defaultRouter() RouterSpec {
	return RouterSpec{AdminAddr: DefaultAdminAddr, LogLevel: "info", LogFormat: "text", MaxMessageSize: DefaultMaxMessageSize}
}

func (d *decoder) decodeRouter(b *hcl.Block, r *RouterSpec) {
	s := d.open(b.Body, routerSchema, "router", b.DefRange)
	addrRange, addrSet := s.str("admin_addr", &r.AdminAddr)
	if addrSet {
		d.attrs["router.admin_addr"] = addrRange
	}
	if _, ok := s.str("admin_token", &r.AdminToken); ok {
		d.addSecret(r.AdminToken)
	}
	s.oneOf("log_level", &r.LogLevel, "debug", "info", "warn", "error")
	s.oneOf("log_format", &r.LogFormat, "text", "json")
	s.size("max_message_size", &r.MaxMessageSize, 1, rabbitMaxMessageSize)
	s.size("memory_limit", &r.MemoryLimit, 16<<20, 1<<50)
	if addrSet {
		d.checkAdminAddr(r.AdminAddr, r.AdminToken, addrRange)
	}
}

// checkAdminAddr wants host:port, and a token unless the host is loopback (docs/admin-api.md).
func (d *decoder) checkAdminAddr(addr, token string, rng hcl.Range) {
	host, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		d.errorf(rng, "Invalid address", "admin_addr must be host:port, such as %q; got %s.", DefaultAdminAddr, quote(addr))
		return
	}
	if token == "" && !isLoopback(host) {
		d.errorf(rng, "Admin API exposed without a token",
			"admin_addr %s is not a loopback address; set admin_token so that mutating endpoints need it.", quote(addr))
	}
}

// isLoopback is true for "localhost" and loopback IPs; "" (every interface) and other names are not.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

var storeSchema = schema{attrs: []string{"backend", "path", "retention", "max_size", "on_full", "cluster", "stream", "takeover", "stream_port"}}

// Values of StoreSpec.Backend.
const (
	BackendBbolt  = "bbolt"
	BackendStream = "stream"
)

func (d *decoder) defaultStore() StoreSpec {
	return StoreSpec{
		Backend:   BackendBbolt,
		Path:      resolvePath(d.dir, DefaultStorePath),
		Retention: DefaultRetention,
		MaxSize:   DefaultStoreMaxSize,
		OnFull:    "block",
	}
}

func (d *decoder) decodeStore(b *hcl.Block, st *StoreSpec) {
	s := d.open(b.Body, storeSchema, "store", b.DefRange)
	_, backendSet := s.has("backend")
	_, backendOK := s.oneOf("backend", &st.Backend, BackendBbolt, BackendStream)
	s.duration("retention", &st.Retention, true)
	s.size("max_size", &st.MaxSize, 1, math.MaxInt64)
	if backendSet && !backendOK {
		return // the other arguments depend on the backend; one error is enough
	}
	if st.Backend == BackendStream {
		d.decodeStreamStore(s, b, st)
		return
	}
	for _, name := range []string{"cluster", "stream", "takeover", "stream_port"} {
		if rng, ok := s.has(name); ok {
			d.errorf(rng, "Unexpected argument", "%s applies to the log on a RabbitMQ stream (backend = %q); this store is the bbolt log.", name, BackendStream)
		}
	}
	var path string
	if rng, ok := s.nonEmpty("path", &path); ok {
		st.Path = resolvePath(d.dir, path)
		d.attrs["store.path"] = rng
	}
	s.oneOf("on_full", &st.OnFull, "block", "drop_oldest")
}

// decodeStreamStore reads the store block of the log on a RabbitMQ stream: the bbolt log's
// file and its on_full policy do not apply (the broker removes the stream's oldest segments
// at its limits, it never refuses appends).
func (d *decoder) decodeStreamStore(s *section, b *hcl.Block, st *StoreSpec) {
	st.Path, st.OnFull = "", ""
	st.Stream, st.Takeover = DefaultStream, DefaultTakeover
	for _, name := range []string{"path", "on_full"} {
		if rng, ok := s.has(name); ok {
			d.errorf(rng, "Unexpected argument", "%s applies to the bbolt log; a log on a RabbitMQ stream (backend = %q) has no file, and the broker removes its oldest events at its limits.", name, BackendStream)
		}
	}
	if rng, ok := s.nonEmpty("cluster", &st.Cluster); ok {
		d.ref(kindCluster, st.Cluster, "store", rng)
		d.attrs["store.cluster"] = rng
	} else if _, set := s.has("cluster"); !set {
		d.errorf(b.DefRange, "Missing required argument", "The argument \"cluster\" is required in store with backend = %q: it names the cluster that holds the stream.", BackendStream)
	}
	if rng, ok := s.nonEmpty("stream", &st.Stream); ok {
		d.attrs["store.stream"] = rng
		d.checkStreamName(st.Stream, rng)
	}
	s.integer("stream_port", &st.StreamPort, 1, 65535)
	if rng, ok := s.duration("takeover", &st.Takeover, true); ok && st.Takeover < MinTakeover {
		d.errorf(rng, "Invalid duration", "takeover must be at least %s: a router that vanishes is noticed through AMQP heartbeats, counted in whole seconds; got %s.", MinTakeover, quote(st.Takeover.String()))
	}
}

// checkStreamName refuses names RabbitMQ would: the amq. prefix is the broker's own, and a
// queue name is at most 255 bytes, with room left for the pairs' queues named after it.
func (d *decoder) checkStreamName(name string, rng hcl.Range) {
	switch {
	case strings.HasPrefix(name, "amq."):
		d.errorf(rng, "Invalid value", "stream %s starts with \"amq.\", which RabbitMQ reserves for its own queues.", quote(name))
	case len(name) > maxStreamName:
		d.errorf(rng, "Invalid value", "stream must be at most %d bytes (RabbitMQ names the pairs' queues after it); got %d.", maxStreamName, len(name))
	}
}

// maxStreamName leaves room in RabbitMQ's 255 bytes for ".control" and ".pair.ROUTE/TARGET".
const maxStreamName = 128

var clusterSchema = schema{
	attrs:    []string{"url"},
	required: []string{"url"},
	blocks:   []string{"tls"},
	secret:   []string{"url"},
}

func (d *decoder) decodeCluster(b *hcl.Block) ClusterSpec {
	c := ClusterSpec{Name: b.Labels[0], Range: b.LabelRanges[0]}
	what := fmt.Sprintf("cluster %q", c.Name)
	s := d.open(b.Body, clusterSchema, what, b.DefRange)
	scheme := ""
	if rng, ok := s.str("url", &c.URL); ok {
		d.attrs["cluster."+c.Name+".url"] = rng
		scheme = d.checkURL(c.URL, what, rng)
	}
	if tb := s.nested("tls"); tb != nil {
		c.TLS = d.decodeTLS(tb, what)
		if scheme != "" && scheme != "amqps" {
			d.warnf(tb.DefRange, "TLS settings unused", "%s has a tls block but its url is not amqps://, so the settings are ignored.", what)
		}
	}
	return c
}

// checkURL checks an AMQP URL without ever quoting its password, and returns its scheme ("" when
// invalid). Only RedactURL's form of the URL may appear in a message.
func (d *decoder) checkURL(raw, what string, rng hcl.Range) string {
	u, err := url.Parse(raw)
	if err != nil || strings.ContainsAny(raw, " \t\r\n") {
		d.errorf(rng, "Invalid URL", "The url of %s cannot be parsed (the value is not shown: it may hold a password). "+
			"Reserved characters in a user name or password must be percent-encoded.", what)
		return ""
	}
	if pw, ok := u.User.Password(); ok {
		d.addSecret(pw)
		d.addSecret(url.QueryEscape(pw))
	}
	if (u.Scheme != "amqp" && u.Scheme != "amqps") || u.Opaque != "" {
		d.errorf(rng, "Invalid URL", "The url of %s must start with amqp:// or amqps://; got %s.", what, RedactURL(raw))
		return ""
	}
	uri, err := amqp.ParseURI(raw)
	if err != nil {
		d.errorf(rng, "Invalid URL", "The url of %s, %s, is not a valid AMQP URI: %s.", what, RedactURL(raw), err)
		return ""
	}
	if uri.Port < 1 || uri.Port > 65535 {
		d.errorf(rng, "Invalid URL", "The url of %s, %s, has port %d; a port is from 1 to 65535.", what, RedactURL(raw), uri.Port)
		return ""
	}
	if uri.Host == "" {
		d.errorf(rng, "Invalid URL", "The url of %s, %s, names no host.", what, RedactURL(raw))
		return ""
	}
	return u.Scheme
}

var tlsSchema = schema{attrs: []string{"ca_file", "cert_file", "key_file", "server_name"}}

func (d *decoder) decodeTLS(b *hcl.Block, what string) *TLSSpec {
	s := d.open(b.Body, tlsSchema, "the tls block of "+what, b.DefRange)
	t := &TLSSpec{}
	paths := []struct {
		name string
		dst  *string
	}{{"ca_file", &t.CAFile}, {"cert_file", &t.CertFile}, {"key_file", &t.KeyFile}}
	for _, p := range paths {
		if _, ok := s.str(p.name, p.dst); ok {
			*p.dst = resolvePath(d.dir, *p.dst)
		}
	}
	s.str("server_name", &t.ServerName)
	if (t.CertFile == "") != (t.KeyFile == "") {
		d.errorf(b.DefRange, "Incomplete client certificate", "cert_file and key_file of %s must be given together.", what)
	}
	return t
}

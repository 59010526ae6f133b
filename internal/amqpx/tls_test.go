package amqpx

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/config"
	"github.com/wasmrouter/wasmrouter/internal/testutil/rabbit"
)

// certAuthority signs test certificates.
type certAuthority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string) *certAuthority {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &certAuthority{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate for host (server) or for a client, and its key, in PEM.
func (ca *certAuthority) issue(t *testing.T, host string, client bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{host},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tlsFront terminates TLS with the given server certificate and forwards plain AMQP to the
// broker. With clientCA set it requires a client certificate signed by it.
func tlsFront(t *testing.T, certPEM, keyPEM []byte, clientCA *certAuthority) string {
	t.Helper()
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	if clientCA != nil {
		pool := x509.NewCertPool()
		pool.AddCert(clientCA.cert)
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	upstream := rabbit.Addr(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				u, err := net.Dial("tcp", upstream)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c); _ = u.Close() }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
	return ln.Addr().String()
}

func TestTLS(t *testing.T) {
	rabbit.SkipIfShort(t)
	dir := t.TempDir()
	ca, other := newCA(t, "test ca"), newCA(t, "other ca")
	srvCert, srvKey := ca.issue(t, "rabbit.test", false)
	cliCert, cliKey := ca.issue(t, "router", true)
	caFile := writeFile(t, dir, "ca.pem", ca.pem)
	otherFile := writeFile(t, dir, "other.pem", other.pem)
	certFile := writeFile(t, dir, "client.pem", cliCert)
	keyFile := writeFile(t, dir, "client.key", cliKey)

	mutual := tlsFront(t, srvCert, srvKey, ca)
	url := strings.Replace(rabbit.URLVia(t, mutual), "amqp://", "amqps://", 1)

	connect := func(tlsSpec *config.TLSSpec) error {
		c, err := NewCluster(config.ClusterSpec{Name: "secure", URL: url, TLS: tlsSpec}, Options{DialTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		conn, err := c.connect(ctx, c.publish)
		if err == nil {
			_ = conn.Close()
		}
		return err
	}

	t.Run("unknown authority", func(t *testing.T) {
		err := connect(&config.TLSSpec{CAFile: otherFile, ServerName: "rabbit.test"})
		want := "cluster secure: tls: x509: certificate signed by unknown authority"
		var unknown x509.UnknownAuthorityError
		if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.As(err, &unknown) {
			t.Fatalf("got %v, want %q", err, want)
		}
	})
	t.Run("wrong host name", func(t *testing.T) {
		err := connect(&config.TLSSpec{CAFile: caFile, ServerName: "elsewhere.test", CertFile: certFile, KeyFile: keyFile})
		var host x509.HostnameError
		if err == nil || !strings.HasPrefix(err.Error(), "cluster secure: tls: x509: certificate is valid for rabbit.test, not elsewhere.test") || !errors.As(err, &host) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("host name defaults to the url's", func(t *testing.T) {
		// The URL's host is 127.0.0.1, which the certificate does not name.
		err := connect(&config.TLSSpec{CAFile: caFile, CertFile: certFile, KeyFile: keyFile})
		if err == nil || !strings.Contains(err.Error(), "cluster secure: tls: x509: cannot validate certificate for 127.0.0.1") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("missing client certificate", func(t *testing.T) {
		err := connect(&config.TLSSpec{CAFile: caFile, ServerName: "rabbit.test"})
		if err == nil || !strings.HasPrefix(err.Error(), "cluster secure: tls: ") || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("got %v, want a tls error about the client certificate", err)
		}
	})
	t.Run("mutual tls", func(t *testing.T) {
		if err := connect(&config.TLSSpec{CAFile: caFile, ServerName: "rabbit.test", CertFile: certFile, KeyFile: keyFile}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("amqps default port", func(t *testing.T) {
		d, err := newDialer(config.ClusterSpec{Name: "p", URL: "amqps://u:pw@broker.example/vh?heartbeat=5"}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if d.url != "amqp://u:pw@broker.example:5671/vh?heartbeat=5" || d.tls == nil || d.tls.ServerName != "broker.example" {
			t.Fatalf("dial url %q, tls %+v", d.url, d.tls)
		}
	})
	t.Run("bad ca file", func(t *testing.T) {
		_, err := NewCluster(config.ClusterSpec{Name: "x", URL: url, TLS: &config.TLSSpec{CAFile: keyFile}}, Options{})
		if err == nil || !strings.Contains(err.Error(), "cluster x: tls: ca_file \""+keyFile+"\" holds no PEM certificate") {
			t.Fatalf("got %v", err)
		}
	})
}

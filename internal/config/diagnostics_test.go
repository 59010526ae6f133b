package config

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

func TestRedactURL(t *testing.T) {
	cases := []struct{ in, want string }{
		{"amqp://user:pass@host:5672/vhost", "amqp://user:****@host:5672/vhost"},
		{"amqps://user:p%40ss@host/", "amqps://user:****@host/"},
		{"amqp://user@host/", "amqp://user@host/"},
		{"amqp://:secret@host", "amqp://:****@host"},
		{"amqp://host", "amqp://host"},
		{"amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:****@127.0.0.1:5672/"},
		{"amqp://u:p@host/%2F?heartbeat=10", "amqp://u:****@host/%2F?heartbeat=10"},
		{"amqp://u:p@[::1]:5672/", "amqp://u:****@[::1]:5672/"},
		{"http://u:p@host/", "http://u:****@host/"},
		// Unparsable, or a password the parser would not see as one: nothing is shown.
		{"amqp://u:p@host:port/", invalidURL},
		{"amqp://u:p ss@host/", invalidURL},
		{"amqp://u:p%zz@host/", invalidURL},
		{"u:secret@host", invalidURL},
		{"amqp:u:secret@host", invalidURL},
		{"amqp//u:secret@host", invalidURL},
		{"amqp:///u:secret@host", invalidURL},
		{"amqp://host/?password=x@y", invalidURL},
		{"amqp://host/#u:secret@x", invalidURL},
		{"", invalidURL},
		{"\x7f", invalidURL},
	}
	for _, tc := range cases {
		if got := RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFormatDiagnostics(t *testing.T) {
	at := &hcl.Range{Filename: "dir/router.hcl", Start: hcl.Pos{Line: 3, Column: 7, Byte: 40}}
	diags := hcl.Diagnostics{
		{Severity: hcl.DiagError, Summary: "Bad thing", Detail: "It is bad.", Subject: at},
		{Severity: hcl.DiagWarning, Summary: "Odd thing", Subject: at},
		{Severity: hcl.DiagError, Summary: "Same", Detail: "Same", Subject: at},
		{Severity: hcl.DiagError, Summary: "Wrapped", Detail: "first line\n  second line", Subject: at},
		{Severity: hcl.DiagError, Summary: "Leaky", Detail: `got "amqp://me:hunter2@host/" and amqps://x:y@z`, Subject: at},
		{Severity: hcl.DiagError, Summary: "Whole file", Subject: &hcl.Range{Filename: "router.hcl"}},
		{Severity: hcl.DiagError, Summary: "Nowhere"},
	}
	want := strings.Join([]string{
		"dir/router.hcl:3:7: error: Bad thing: It is bad.",
		"dir/router.hcl:3:7: warning: Odd thing",
		"dir/router.hcl:3:7: error: Same",
		"dir/router.hcl:3:7: error: Wrapped: first line second line",
		`dir/router.hcl:3:7: error: Leaky: got "amqp://me:****@host/" and amqps://x:****@z`,
		"router.hcl: error: Whole file",
		"error: Nowhere",
	}, "\n") + "\n"
	if got := formatted(diags); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestScrubKnownSecrets(t *testing.T) {
	diags := hcl.Diagnostics{{Summary: "token hunter2-xyz in summary", Detail: "and hunter2-xyz, x, in detail"}}
	scrub(diags, []string{"hunter2-xyz", "x"}, nil)
	if diags[0].Summary != "token **** in summary" || diags[0].Detail != "and ****, x, in detail" {
		t.Errorf("scrubbed to %q / %q", diags[0].Summary, diags[0].Detail)
	}
}

func TestClosest(t *testing.T) {
	names := map[string]hcl.Range{"analytics": {}, "archive": {}, "main": {}}
	for name, want := range map[string]string{"analytic": "analytics", "mian": "main", "nothing": "", "": ""} {
		if got := closest(name, names); got != want {
			t.Errorf("closest(%q) = %q, want %q", name, got, want)
		}
	}
}

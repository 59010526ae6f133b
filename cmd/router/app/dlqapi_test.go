package app

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wasmrouter/wasmrouter/internal/admin"
	"github.com/wasmrouter/wasmrouter/store"
)

// deadLetterLog is a log with dead letters 1 (orders -> a, 3h ago), 2 (pay, a module failure,
// redriven), 3 (orders -> a, 1h ago) and 4 (pay -> b); the API has no engine, so a redrive
// that got as far as starting a job would panic.
func deadLetterLog(t *testing.T) (deadLetterAPI, time.Time) {
	t.Helper()
	st, err := store.Open(store.Options{Path: filepath.Join(t.TempDir(), "router.db"), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	base := time.Now().Add(-3 * time.Hour).UTC().Truncate(time.Second)
	for _, dl := range []store.DeadLetter{
		{Route: "orders", Target: "a", Seq: 1, Reason: "NO_ROUTE", Attempts: 1, Time: base},
		{Route: "pay", Seq: 2, Reason: "module check: bad", Attempts: 3, Time: base.Add(time.Hour)},
		{Route: "orders", Target: "a", Seq: 3, Reason: "NO_ROUTE", Attempts: 1, Time: base.Add(2 * time.Hour)},
		{Route: "pay", Target: "b", Seq: 4, Reason: "NACK", Attempts: 2, Time: base.Add(2 * time.Hour)},
	} {
		if _, err := st.AddDeadLetter(dl); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.MarkRedriven(2); err != nil {
		t.Fatal(err)
	}
	return deadLetterAPI{store: st}, base
}

func listIDs(t *testing.T, api deadLetterAPI, query string) []uint64 {
	t.Helper()
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	got, err := api.ListDeadLetters(q)
	if err != nil {
		t.Fatalf("%q: %v", query, err)
	}
	ids := []uint64{}
	for _, rec := range got.([]DeadLetterRecord) {
		ids = append(ids, rec.ID)
	}
	return ids
}

func TestListDeadLettersSelects(t *testing.T) {
	api, base := deadLetterLog(t)
	for _, tc := range []struct {
		query string
		want  []uint64
	}{
		{"", []uint64{1, 3, 4}},
		{"all=true", []uint64{1, 2, 3, 4}},
		{"all", []uint64{1, 2, 3, 4}},
		{"all=false", []uint64{1, 3, 4}},
		{"route=orders", []uint64{1, 3}},
		{"route=pay&all=1", []uint64{2, 4}},
		{"since=90m", []uint64{3, 4}},
		{"since=" + url.QueryEscape(base.Add(time.Hour).Format(time.RFC3339)) + "&all=true", []uint64{2, 3, 4}},
		{"ids=2,4&all=true", []uint64{2, 4}},
		{"ids=2&ids=4", []uint64{4}},
		{"ids=4,1,3", []uint64{1, 3, 4}},
		{"all=true&limit=2", []uint64{1, 2}},
		{"limit=0", []uint64{1, 3, 4}},
		{"route=nosuch", []uint64{}},
	} {
		if got := listIDs(t, api, tc.query); !slices.Equal(got, tc.want) {
			t.Errorf("%q: ids %v, want %v", tc.query, got, tc.want)
		}
	}
}

func TestListDeadLettersShape(t *testing.T) {
	api, base := deadLetterLog(t)
	got, err := api.ListDeadLetters(url.Values{"ids": {"2"}, "all": {"true"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"id":2,"route":"pay","target":"","seq":2,"reason":"module check: bad","attempts":3,"time":"` +
		base.Add(time.Hour).Format(time.RFC3339Nano) + `","redriven":true}]`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}

func TestDeadLetterAPIRefusals(t *testing.T) {
	api, _ := deadLetterLog(t)
	for _, query := range []string{"since=soon", "all=maybe", "ids=x", "ids=0", "limit=-1", "limit=many", "routes=orders"} {
		q, _ := url.ParseQuery(query)
		if _, err := api.ListDeadLetters(q); !errors.Is(err, admin.ErrBadRequest) {
			t.Errorf("list %q: %v, want a bad request", query, err)
		}
	}
	for _, tc := range []struct{ body, want string }{
		{``, "EOF"},
		{`{}`, "select dead letters by id or by route"},
		{`{"all":true,"since":"1h"}`, "select dead letters by id or by route"},
		{`{"ids":[2,9,9]}`, "no dead letter with id [2 9] to redrive"},
		{`{"ids":[1],"route":"pay"}`, "no dead letter with id [1] to redrive"},
		{`{"route":"orders","since":"soon"}`, "since:"},
		{`{"routes":["orders"]}`, "unknown field"},
		{`{"ids":"1"}`, "cannot unmarshal"},
	} {
		id, _, err := api.RedriveDeadLetters(context.Background(), []byte(tc.body))
		if !errors.Is(err, admin.ErrBadRequest) || !strings.Contains(err.Error(), tc.want) || id != "" {
			t.Errorf("redrive %s: id %q, %v; want a bad request saying %q", tc.body, id, err, tc.want)
		}
	}
	// Nothing selected is no mistake: no job, and nothing to report.
	id, ids, err := api.RedriveDeadLetters(context.Background(), []byte(`{"route":"orders","since":"30m"}`))
	if id != "" || len(ids) != 0 || err != nil {
		t.Errorf("empty selection: id %q, ids %v, %v", id, ids, err)
	}
}

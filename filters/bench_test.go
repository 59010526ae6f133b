package filters

import (
	"fmt"
	"testing"
)

// benchMatcher builds 1,000 patterns of the kinds routes use, and keys that hit them in
// different ways (and one that hits nothing).
func benchMatcher(tb testing.TB) (*Matcher, []string) {
	tb.Helper()
	domains := []string{"order", "payment", "invoice", "shipment", "user", "account",
		"inventory", "notification", "audit", "cart"}
	events := []string{"created", "updated", "deleted", "failed", "completed", "cancelled"}
	regions := []string{"eu", "us", "apac"}
	var patterns []string
	for i := range 100 {
		patterns = append(patterns, fmt.Sprintf("tenant.%d.#", i), fmt.Sprintf("tenant.%d.order.*", i),
			fmt.Sprintf("tenant.%d.*.created", i), fmt.Sprintf("tenant.%d.payment.#.failed", i))
	}
	for _, d := range domains {
		patterns = append(patterns, d+".#")
		for _, e := range events {
			patterns = append(patterns, d+".*."+e, d+"."+e)
			for _, r := range regions {
				patterns = append(patterns, d+"."+r+"."+e)
			}
		}
		for _, r := range regions {
			patterns = append(patterns, d+"."+r+".#")
		}
	}
	for _, e := range events {
		patterns = append(patterns, "#."+e)
	}
	for i := 0; len(patterns) < 1000; i++ {
		patterns = append(patterns, fmt.Sprintf("svc%d.%s.*", i, domains[i%len(domains)]))
	}
	m := NewMatcher()
	for i, p := range patterns {
		mustAdd(tb, m, p, i)
	}
	keys := []string{
		"order.eu.created", "tenant.42.order.created", "payment.card.captured.v2", "user.signup",
		"tenant.7.payment.card.visa.failed", "inventory.us.updated", "svc3.user.login",
		"unknown.key.nothing", "audit.login.attempt.failed",
	}
	return m, keys
}

func BenchmarkMatch1000Patterns(b *testing.B) {
	m, keys := benchMatcher(b)
	dst := make([]int, 0, m.Len())
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		dst = m.Match(keys[i%len(keys)], dst[:0])
	}
}

func BenchmarkMatches1000Patterns(b *testing.B) {
	m, keys := benchMatcher(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m.Matches(keys[i%len(keys)])
	}
}

func BenchmarkMatch1000PatternsParallel(b *testing.B) {
	m, keys := benchMatcher(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]int, 0, m.Len())
		for i := 0; pb.Next(); i++ {
			dst = m.Match(keys[i%len(keys)], dst[:0])
		}
	})
}

func BenchmarkMatchSinglePattern(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		Match("order.*.#.created", "order.eu.web.v2.created")
	}
}

func BenchmarkMatcherSinglePattern(b *testing.B) {
	m := NewMatcher()
	mustAdd(b, m, "order.*.#.created", 1)
	dst := make([]int, 0, 1)
	b.ReportAllocs()
	for b.Loop() {
		dst = m.Match("order.eu.web.v2.created", dst[:0])
	}
}

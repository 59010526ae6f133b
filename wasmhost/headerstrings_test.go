package wasmhost

import (
	"testing"
	"unsafe"
)

// TestHeaderStringsReuse holds the reuse of recently set header strings: the same name and
// value give back the very strings of the last time, a new value replaces the old one for
// that name, and more names than slots push out the oldest without mixing values up.
func TestHeaderStringsReuse(t *testing.T) {
	inst := &instance{}
	k1, v1 := inst.headerStrings([]byte("x-redacted"), []byte("1"))
	k2, v2 := inst.headerStrings([]byte("x-redacted"), []byte("1"))
	if k1 != "x-redacted" || v1 != "1" || unsafe.StringData(k1) != unsafe.StringData(k2) || v1 != v2 {
		t.Fatalf("got %q=%v then %q=%v, want the same strings", k1, v1, k2, v2)
	}
	if s1, s2 := v1.(string), v2.(string); unsafe.StringData(s1) != unsafe.StringData(s2) {
		t.Errorf("the value was not reused")
	}
	if _, v := inst.headerStrings([]byte("x-redacted"), []byte("2")); v != "2" {
		t.Errorf("new value: got %v, want 2", v)
	}
	if !inst.headerKnown([]byte("x-redacted")) || inst.headerKnown([]byte("x-other")) {
		t.Errorf("headerKnown: x-redacted %v, x-other %v", inst.headerKnown([]byte("x-redacted")), inst.headerKnown([]byte("x-other")))
	}
	names := []string{"a", "b", "c", "d", "e", "f"}
	for i, n := range names {
		if k, v := inst.headerStrings([]byte(n), []byte(n+"-value")); k != n || v != n+"-value" {
			t.Errorf("%d: got %q=%v", i, k, v)
		}
	}
	for _, n := range names[len(names)-len(inst.headers):] {
		if !inst.headerKnown([]byte(n)) {
			t.Errorf("%s: not among the recent headers", n)
		}
	}
	if inst.headerKnown([]byte("a")) {
		t.Errorf("a outlived %d newer names", len(inst.headers))
	}
	// A value may be empty, and an empty value is not taken for a missing one.
	if _, v := inst.headerStrings([]byte("f"), nil); v != "" {
		t.Errorf("empty value: got %v", v)
	}
}

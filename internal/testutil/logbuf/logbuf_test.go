package logbuf

import (
	"fmt"
	"sync"
	"testing"
)

func TestTailAndConcurrentWrites(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 25 {
				fmt.Fprintf(&b, "w%d line %d\n", i, j)
			}
		}()
	}
	wg.Wait()
	if got := len(b.String()); got == 0 {
		t.Fatal("nothing written")
	}
	var one Buffer
	fmt.Fprint(&one, "a\nb\nc\n")
	if got := one.Tail(2); got != "b\nc" {
		t.Fatalf("Tail(2) = %q", got)
	}
	if got := one.Tail(10); got != "a\nb\nc" {
		t.Fatalf("Tail(10) = %q", got)
	}
}

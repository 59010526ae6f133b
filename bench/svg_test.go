package bench

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

// checkSVG fails unless data is well-formed XML with an svg root and at least one polyline.
func checkSVG(t *testing.T, data []byte) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(data))
	root, lines := "", 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed: %v", err)
		}
		if el, ok := tok.(xml.StartElement); ok {
			if root == "" {
				root = el.Name.Local
			}
			if el.Name.Local == "polyline" {
				lines++
			}
		}
	}
	if root != "svg" || lines != 4 {
		t.Fatalf("root %q with %d polylines, want svg with 4", root, lines)
	}
}

func TestWriteMemorySVG(t *testing.T) {
	res := MemoryResult{Phases: []MemPhase{
		{Name: "run", Start: 0, End: 2 * time.Second, Peak: 20 << 20},
		{Name: "out<age>", Start: 2 * time.Second, End: 5 * time.Second, Peak: 25 << 20},
	}}
	for i := range 50 {
		res.Samples = append(res.Samples, MemSample{At: time.Duration(i) * 100 * time.Millisecond, RSS: int64(10+i%7) << 20, Anon: 8 << 20})
	}
	var b bytes.Buffer
	if err := WriteMemorySVG(&b, "a & b", res, 32<<20); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, b.Bytes())
	for _, want := range []string{"a &amp; b", "out&lt;age&gt;", "peak 25.0 MiB", "goal 32 MiB"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the plot lacks %q", want)
		}
	}
}

func TestNiceCeil(t *testing.T) {
	for v, want := range map[float64]float64{0: 1, 0.7: 0.8, 7: 8, 33: 40, 110: 150, 201: 250, 1000: 1000} {
		if got := niceCeil(v); got != want {
			t.Errorf("niceCeil(%v) = %v, want %v", v, got, want)
		}
	}
}

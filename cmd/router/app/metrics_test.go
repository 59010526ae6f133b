package app

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// recorder registers with a registry and keeps what it was given.
type recorder struct {
	*prometheus.Registry
	collectors []prometheus.Collector
}

func (r *recorder) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return r.Registry.Register(c)
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

var descParts = regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)

// The collectors every package registers are, together, the table of docs/metrics.md: the
// same names, types and labels, each once (one registry refuses a name registered twice).
func TestCollectorsAreTheDocumentedMetrics(t *testing.T) {
	reg := &recorder{Registry: prometheus.NewRegistry()}
	NewCollectors(reg)
	// A vector exports nothing until it has a child: give each one, its labels from its Desc.
	for _, c := range reg.collectors {
		descs := make(chan *prometheus.Desc, 8)
		c.Describe(descs)
		close(descs)
		for d := range descs {
			parts := descParts.FindStringSubmatch(d.String())
			if parts == nil {
				t.Fatalf("cannot read %s", d)
			}
			var values []string
			if parts[2] != "" {
				values = make([]string, len(strings.Split(parts[2], ",")))
			}
			switch v := c.(type) {
			case *prometheus.CounterVec:
				v.WithLabelValues(values...)
			case *prometheus.GaugeVec:
				v.WithLabelValues(values...)
			case *prometheus.HistogramVec:
				v.WithLabelValues(values...)
			}
		}
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fams {
		var labels []string
		for _, l := range f.GetMetric()[0].GetLabel() {
			labels = append(labels, l.GetName())
		}
		slices.Sort(labels)
		got = append(got, f.GetName()+" "+strings.ToLower(dto.MetricType_name[int32(f.GetType())])+" "+strings.Join(labels, ","))
	}
	slices.Sort(got)

	doc, err := os.ReadFile("../../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(router_[a-z_]+)` \\| ([a-z]+) \\|([^|]*)\\|")
	var want []string
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		var labels []string
		for _, l := range strings.Split(m[3], ",") {
			if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" {
				labels = append(labels, l)
			}
		}
		slices.Sort(labels)
		want = append(want, m[1]+" "+m[2]+" "+strings.Join(labels, ","))
	}
	slices.Sort(want)
	if len(want) < 25 {
		t.Fatalf("read only %d rows of docs/metrics.md", len(want))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("exported:\n%s\n\ndocumented:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

package config

import (
	"fmt"
	"math"

	"github.com/hashicorp/hcl/v2"
)

// Defaults of the source block.
const (
	DefaultPrefetch  = 256
	QueueTypeClassic = "classic"
	QueueTypeQuorum  = "quorum"
)

var sourceSchema = schema{
	attrs: []string{"cluster", "exchange", "queue", "bindings", "prefetch", "queue_type",
		"delivery_limit", "dead_letter_exchange"},
	required: []string{"cluster", "exchange", "queue"},
}

func (d *decoder) decodeSource(b *hcl.Block) SourceSpec {
	src := SourceSpec{Name: b.Labels[0], Range: b.LabelRanges[0], Bindings: []string{"#"},
		Prefetch: DefaultPrefetch, QueueType: QueueTypeClassic}
	what := fmt.Sprintf("source %q", src.Name)
	mark := d.errorCount()
	s := d.open(b.Body, sourceSchema, what, b.DefRange)
	if rng, ok := s.str("cluster", &src.Cluster); ok {
		d.ref(kindCluster, src.Cluster, what, rng)
	}
	s.nonEmpty("exchange", &src.Exchange)
	s.nonEmpty("queue", &src.Queue)
	ranges, bindingsOK := s.stringList("bindings", &src.Bindings)
	for i, binding := range src.Bindings[:len(ranges)] {
		d.checkLength("binding key", binding, ranges[i])
	}
	s.integer("prefetch", &src.Prefetch, 1, math.MaxUint16)
	s.oneOf("queue_type", &src.QueueType, QueueTypeClassic, QueueTypeQuorum)
	limitRange, limitSet := s.integer("delivery_limit", &src.DeliveryLimit, 1, math.MaxInt32)
	s.str("dead_letter_exchange", &src.DeadLetterExchange)
	if limitSet && src.QueueType != QueueTypeQuorum {
		d.errorf(limitRange, "Quorum queue setting", "delivery_limit needs queue_type = \"quorum\"; %s has a %s queue.", what, src.QueueType)
	}
	if d.errorsSince(mark) {
		return src
	}
	if limitSet && src.DeadLetterExchange == "" {
		d.warnf(limitRange, "Messages may be discarded",
			"%s has a delivery_limit but no dead_letter_exchange: the broker discards a message that reaches the limit.", what)
	}
	if bindingsOK && len(src.Bindings) == 0 {
		d.warnf(s.attrs["bindings"].Expr.Range(), "No binding", "%s binds its queue to nothing; it receives only what other bindings route to it.", what)
	}
	return src
}

var targetSchema = schema{attrs: []string{"cluster", "clusters", "mode", "exchange", "routing_key", "unroutable"}, required: []string{"exchange"}}

func (d *decoder) decodeTarget(b *hcl.Block) TargetSpec {
	t := TargetSpec{Name: b.Labels[0], Range: b.LabelRanges[0], Unroutable: UnroutableFail}
	what := fmt.Sprintf("target %q", t.Name)
	s := d.open(b.Body, targetSchema, what, b.DefRange)
	_, hasOne := s.has("cluster")
	manyRange, hasMany := s.has("clusters")
	switch {
	case hasOne && hasMany:
		d.errorf(manyRange, "Conflicting arguments", "%s sets both cluster and clusters; use cluster for one, clusters for several.", what)
	case !hasOne && !hasMany:
		d.errorf(b.DefRange, "Missing required argument", "%s needs cluster = \"name\" or clusters = [\"a\", \"b\"].", what)
	}
	if hasOne {
		var cluster string
		if rng, ok := s.str("cluster", &cluster); ok {
			t.Clusters = []string{cluster}
			d.ref(kindCluster, cluster, what, rng)
		}
		t.Mode = ModeSingle
		if modeRange, hasMode := s.has("mode"); hasMode && !hasMany {
			d.errorf(modeRange, "Unexpected argument", "mode applies to clusters = [...]; %s has a single cluster.", what)
		}
	}
	if hasMany {
		d.decodeTargetClusters(s, &t, what)
	}
	s.nonEmpty("exchange", &t.Exchange)
	s.oneOf("unroutable", &t.Unroutable, UnroutableFail, UnroutableDrop)
	if rng, ok := s.str("routing_key", &t.RoutingKey); ok {
		d.checkLength("routing_key", t.RoutingKey, rng)
	}
	return t
}

// decodeTargetClusters reads the several-clusters form, where mode must say how they are used.
func (d *decoder) decodeTargetClusters(s *section, t *TargetSpec, what string) {
	ranges, ok := s.stringList("clusters", &t.Clusters)
	if ok && len(t.Clusters) == 0 {
		d.errorf(s.attrs["clusters"].Expr.Range(), "Invalid value", "clusters of %s must name at least one cluster.", what)
	}
	d.refList(kindCluster, t.Clusters[:len(ranges)], ranges, what)
	if _, hasMode := s.has("mode"); !hasMode {
		d.errorf(s.def, "Missing required argument",
			"%s has clusters, so it needs mode = %q (every cluster gets every event) or %q (the first healthy one).",
			what, ModeAll, ModeFailover)
		return
	}
	s.oneOf("mode", &t.Mode, ModeAll, ModeFailover)
}

package amqp091

import "testing"

// TestDeferredConfirmations: confirmations kept in publish order settle by tag, one at a time
// (in any order) or up to a tag; a done channel is made
// only for a confirmation waited on before it arrives.
func TestDeferredConfirmations(t *testing.T) {
	d := newDeferredConfirmations()
	var dcs []*DeferredConfirmation
	for tag := uint64(1); tag <= 10; tag++ {
		dcs = append(dcs, d.Add(tag))
	}
	waited := dcs[4].Done() // made before the outcome
	d.Confirm(Confirmation{DeliveryTag: 3, Ack: true})
	d.Confirm(Confirmation{DeliveryTag: 3, Ack: false}) // again: ignored
	d.ConfirmMultiple(Confirmation{DeliveryTag: 5, Ack: true})
	d.Confirm(Confirmation{DeliveryTag: 7, Ack: false})
	d.Confirm(Confirmation{DeliveryTag: 10, Ack: false})
	for i, dc := range dcs {
		tag := i + 1
		settled := tag <= 5 || tag == 7 || tag == 10
		if dc.Settled() != settled {
			t.Fatalf("tag %d: settled %v, want %v", tag, dc.Settled(), settled)
		}
		if acked := tag <= 5; dc.Acked() != acked {
			t.Fatalf("tag %d: acked %v, want %v", tag, dc.Acked(), acked)
		}
	}
	select {
	case <-waited:
	default:
		t.Fatal("the waited-on confirmation's channel is not closed")
	}
	if dcs[0].done != nil || dcs[1].done != nil {
		t.Fatal("a done channel was made for a confirmation no one waited on")
	}
	if !dcs[0].Wait() || dcs[6].Wait() {
		t.Fatal("Wait on a settled confirmation")
	}
	// Tags 6, 8 and 9 are pending (10 was settled out of order); more publishes reuse the
	// list's room.
	for tag := uint64(11); tag <= 40; tag++ {
		dcs = append(dcs, d.Add(tag))
	}
	d.ConfirmMultiple(Confirmation{DeliveryTag: 39, Ack: true})
	for i, dc := range dcs {
		tag := i + 1
		if want := tag != 40; dc.Settled() != want {
			t.Fatalf("tag %d: settled %v, want %v", tag, dc.Settled(), want)
		}
	}
	d.Close()
	if !dcs[39].Settled() || dcs[39].Acked() {
		t.Fatal("Close did not nack the last pending confirmation")
	}
	// After a reset, tags start at 1 again.
	dc := d.Add(1)
	d.ConfirmMultiple(Confirmation{DeliveryTag: 1, Ack: true})
	if !dc.Acked() {
		t.Fatal("tag 1 after Close not acked")
	}
}

// TestDeferredConfirmationUnpublished: the tag of a publish that failed is published again,
// and its confirmation is the new publish's.
func TestDeferredConfirmationUnpublished(t *testing.T) {
	c := newConfirms()
	first := c.publish(nil)
	failed := c.publish(nil)
	c.unpublish()
	if !failed.Settled() || failed.Acked() {
		t.Fatal("the failed publish's confirmation is not settled as a nack")
	}
	again := c.publish(nil)
	if again.DeliveryTag != 2 {
		t.Fatalf("tag %d, want 2", again.DeliveryTag)
	}
	c.Multiple(Confirmation{DeliveryTag: 2, Ack: true})
	if !first.Acked() || !again.Acked() {
		t.Fatal("the confirm of tag 2 did not settle both publishes")
	}
	c.One(Confirmation{DeliveryTag: 3, Ack: true}) // never published: ignored
}

func TestDeferredConfirmationsAllocations(t *testing.T) {
	d := newDeferredConfirmations()
	tag := uint64(0)
	allocs := testing.AllocsPerRun(100, func() {
		for i := 0; i < 50; i++ {
			tag++
			d.Add(tag)
		}
		d.ConfirmMultiple(Confirmation{DeliveryTag: tag - 10, Ack: true})
	})
	// One DeferredConfirmation per publish, no channel and no bookkeeping.
	if allocs > 50 {
		t.Fatalf("%.0f allocations per 50 publishes", allocs)
	}
}

// TestDeferredConfirmationInto: a publish can settle a DeferredConfirmation its caller owns.
func TestDeferredConfirmationInto(t *testing.T) {
	c := newConfirms()
	var mine struct {
		other int
		dc    DeferredConfirmation
	}
	dc := c.publish(&mine.dc)
	if dc != &mine.dc || dc.DeliveryTag != 1 {
		t.Fatalf("got %p tag %d, want the caller's %p with tag 1", dc, dc.DeliveryTag, &mine.dc)
	}
	c.One(Confirmation{DeliveryTag: 1, Ack: true})
	if !mine.dc.Acked() {
		t.Fatal("the caller's confirmation not acked")
	}
	allocs := testing.AllocsPerRun(100, func() {
		var d DeferredConfirmation
		c.publish(&d)
		c.Multiple(Confirmation{DeliveryTag: c.published, Ack: true})
	})
	if allocs > 1 { // d itself, moved to the heap by the list
		t.Fatalf("%.0f allocations per publish into a caller's confirmation", allocs)
	}
}

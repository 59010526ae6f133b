// Copyright (c) 2021 VMware, Inc. or its affiliates. All Rights Reserved.
// Copyright (c) 2012-2021, Sean Treadway, SoundCloud Ltd.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package amqp091

import (
	"context"
	"sync"
)

// confirms resequences and notifies one or multiple publisher confirmation listeners
type confirms struct {
	m                     sync.Mutex
	listeners             []chan Confirmation
	sequencer             map[uint64]Confirmation
	deferredConfirmations *deferredConfirmations
	published             uint64
	publishedMut          sync.Mutex
	expecting             uint64
}

// newConfirms allocates a confirms
func newConfirms() *confirms {
	return &confirms{
		sequencer:             map[uint64]Confirmation{},
		deferredConfirmations: newDeferredConfirmations(),
		published:             0,
		expecting:             1,
	}
}

func (c *confirms) Listen(l chan Confirmation) {
	c.m.Lock()
	defer c.m.Unlock()

	c.listeners = append(c.listeners, l)
}

// Publish increments the publishing counter; into, if not nil, is the caller's zero
// DeferredConfirmation to use.
func (c *confirms) publish(into *DeferredConfirmation) *DeferredConfirmation {
	c.publishedMut.Lock()
	defer c.publishedMut.Unlock()

	c.published++
	return c.deferredConfirmations.add(c.published, into)
}

// unpublish decrements the publishing counter and removes the
// DeferredConfirmation. It must be called immediately after a publish fails.
func (c *confirms) unpublish() {
	c.publishedMut.Lock()
	defer c.publishedMut.Unlock()
	c.deferredConfirmations.remove(c.published)
	c.published--
}

// confirm confirms one publishing, increments the expecting delivery tag, and
// removes bookkeeping for that delivery tag.
func (c *confirms) confirm(confirmation Confirmation) {
	delete(c.sequencer, c.expecting)
	c.expecting++
	notifyAll(c.listeners, confirmation)
}

// resequence confirms any out of order delivered confirmations
func (c *confirms) resequence() {
	c.publishedMut.Lock()
	defer c.publishedMut.Unlock()

	for c.expecting <= c.published {
		sequenced, found := c.sequencer[c.expecting]
		if !found {
			return
		}
		c.confirm(sequenced)
	}
}

// One confirms one publishing and all following in the publishing sequence
func (c *confirms) One(confirmed Confirmation) {
	c.m.Lock()
	defer c.m.Unlock()

	c.deferredConfirmations.Confirm(confirmed)

	if c.expecting == confirmed.DeliveryTag {
		c.confirm(confirmed)
	} else {
		c.sequencer[confirmed.DeliveryTag] = confirmed
	}
	c.resequence()
}

// Multiple confirms all publishings up until the delivery tag
func (c *confirms) Multiple(confirmed Confirmation) {
	c.m.Lock()
	defer c.m.Unlock()

	c.deferredConfirmations.ConfirmMultiple(confirmed)

	for c.expecting <= confirmed.DeliveryTag {
		c.confirm(Confirmation{c.expecting, confirmed.Ack})
	}
	c.resequence()
}

// Cleans up the confirms struct and its dependencies.
// Closes all listeners, discarding any out of sequence confirmations
func (c *confirms) Close() error {
	c.m.Lock()
	defer c.m.Unlock()

	c.deferredConfirmations.Close()

	for _, l := range c.listeners {
		close(l)
	}
	c.listeners = nil
	return nil
}

// reset clears any pending deferred confirmations and resets the sequencer
// state for recovery, while keeping the listeners intact.
func (c *confirms) reset() {
	c.m.Lock()
	defer c.m.Unlock()

	c.publishedMut.Lock()
	defer c.publishedMut.Unlock()

	c.published = 0
	c.expecting = 1
	c.deferredConfirmations.Close()
	c.sequencer = map[uint64]Confirmation{}
}

// deferredConfirmations holds the unconfirmed publishes' DeferredConfirmations in publish
// order: their delivery tags are consecutive, so a confirm finds its own by index and a
// multiple one takes a prefix. Upstream kept a map, and walked all of it for every multiple
// confirm.
type deferredConfirmations struct {
	m sync.Mutex
	// buf[head:] are the unsettled publishes, buf[head+i] of tag first+i, nil once settled
	// out of order; the head moves up as they are confirmed, and back down when buf is full.
	buf   []*DeferredConfirmation
	head  int
	first uint64
}

func newDeferredConfirmations() *deferredConfirmations {
	return &deferredConfirmations{}
}

func (d *deferredConfirmations) Add(tag uint64) *DeferredConfirmation {
	return d.add(tag, nil)
}

// add is Add into dc, a zero DeferredConfirmation, or a new one if dc is nil.
func (d *deferredConfirmations) add(tag uint64, dc *DeferredConfirmation) *DeferredConfirmation {
	d.m.Lock()
	defer d.m.Unlock()

	if dc == nil {
		dc = new(DeferredConfirmation)
	}
	dc.DeliveryTag = tag
	if d.head == len(d.buf) {
		d.buf, d.head, d.first = d.buf[:0], 0, tag
	} else if len(d.buf) == cap(d.buf) && d.head > 0 {
		n := copy(d.buf, d.buf[d.head:])
		for i := n; i < len(d.buf); i++ {
			d.buf[i] = nil
		}
		d.buf, d.head = d.buf[:n], 0
	}
	d.buf = append(d.buf, dc)
	return dc
}

// at returns the index in buf of tag's confirmation, or -1 if it is not pending.
func (d *deferredConfirmations) at(tag uint64) int {
	if tag < d.first || tag-d.first >= uint64(len(d.buf)-d.head) {
		return -1
	}
	i := d.head + int(tag-d.first)
	if d.buf[i] == nil {
		return -1
	}
	return i
}

// trim moves the head past the settled confirmations.
func (d *deferredConfirmations) trim() {
	for d.head < len(d.buf) && d.buf[d.head] == nil {
		d.head++
		d.first++
	}
}

// remove is only used to drop a tag whose publish failed
func (d *deferredConfirmations) remove(tag uint64) {
	d.m.Lock()
	defer d.m.Unlock()
	i := d.at(tag)
	if i < 0 {
		return
	}
	d.buf[i].setAck(false)
	d.buf[i] = nil
	if i == len(d.buf)-1 {
		// The last publish's (unpublish): its tag is published again next.
		d.buf = d.buf[:i]
	}
	d.trim()
}

func (d *deferredConfirmations) Confirm(confirmation Confirmation) {
	d.m.Lock()
	defer d.m.Unlock()

	i := d.at(confirmation.DeliveryTag)
	if i < 0 {
		// We should never receive a confirmation for a tag that hasn't
		// been published, but a test causes this to happen.
		return
	}
	d.buf[i].setAck(confirmation.Ack)
	d.buf[i] = nil
	d.trim()
}

func (d *deferredConfirmations) ConfirmMultiple(confirmation Confirmation) {
	d.m.Lock()
	defer d.m.Unlock()

	for d.head < len(d.buf) && d.first <= confirmation.DeliveryTag {
		if dc := d.buf[d.head]; dc != nil {
			dc.setAck(confirmation.Ack)
			d.buf[d.head] = nil
		}
		d.head++
		d.first++
	}
	d.trim()
}

// Close nacks all pending DeferredConfirmations being blocked by dc.Wait().
func (d *deferredConfirmations) Close() {
	d.m.Lock()
	defer d.m.Unlock()

	for i := d.head; i < len(d.buf); i++ {
		if dc := d.buf[i]; dc != nil {
			dc.setAck(false)
			d.buf[i] = nil
		}
	}
	d.buf, d.head = d.buf[:0], 0
}

// closedChan is the done channel of a confirmation settled before anyone asked for one.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// setAck sets the acknowledgement status of the confirmation. Note that it must
// not be called more than once.
func (d *DeferredConfirmation) setAck(ack bool) {
	d.m.Lock()
	d.ack = ack
	d.settled = true
	if d.done != nil {
		close(d.done)
	}
	d.m.Unlock()
}

// Done returns the channel that can be used to wait for the publisher
// confirmation.
//
// The channel is made by the first call before the confirmation arrives: most confirmations
// of a stream of publishes arrive before anyone waits on them, and need none.
func (d *DeferredConfirmation) Done() <-chan struct{} {
	d.m.Lock()
	defer d.m.Unlock()
	if d.done == nil {
		if d.settled {
			return closedChan
		}
		d.done = make(chan struct{})
	}
	return d.done
}

// Settled reports, without waiting, whether the confirmation has arrived (or the publish was
// settled by the channel's close): whether Done is closed.
func (d *DeferredConfirmation) Settled() bool {
	d.m.Lock()
	defer d.m.Unlock()
	return d.settled
}

// Acked returns the publisher confirmation in a non-blocking manner. It returns
// false if the confirmation was not acknowledged yet or received negative
// acknowledgement.
func (d *DeferredConfirmation) Acked() bool {
	d.m.Lock()
	defer d.m.Unlock()
	return d.settled && d.ack
}

// Wait blocks until the publisher confirmation. It returns true if the server
// successfully received the publishing.
func (d *DeferredConfirmation) Wait() bool {
	<-d.Done()
	return d.Acked()
}

// WaitContext waits until the publisher confirmation. It returns true if the
// server successfully received the publishing. If the context expires before
// that, ctx.Err() is returned.
func (d *DeferredConfirmation) WaitContext(ctx context.Context) (bool, error) {
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-d.Done():
	}
	return d.Acked(), nil
}

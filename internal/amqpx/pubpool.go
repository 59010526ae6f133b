package amqpx

import (
	"errors"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// channelReserve channels of the publishing connection are left to others than the publishers:
// the OnConnect hooks declare the target exchanges on a channel of their own.
const channelReserve = 1

// pubPool hands out the publishing connection's confirm-mode channels: a channel of its own to
// each publisher while the connection's negotiated channel_max allows, then the least shared
// one. A shared channel serialises its publishers' writes; each publisher's confirmations still
// resolve in its own publish order, since the channel's do.
type pubPool struct {
	mu    sync.Mutex
	conn  *amqp.Connection // the connection chans belong to
	chans []*pooled
}

type pooled struct {
	pc    *pubChannel
	users int
}

// acquire returns a channel on conn for one more publisher.
func (p *pubPool) acquire(c *Cluster, conn *amqp.Connection) (*pubChannel, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != conn {
		p.conn, p.chans = conn, nil
	}
	live := p.chans[:0]
	for _, e := range p.chans {
		if !e.pc.ch.IsClosed() {
			live = append(live, e)
		}
	}
	clear(p.chans[len(live):])
	p.chans = live
	if len(p.chans) < max(1, int(conn.Config.ChannelMax)-channelReserve) {
		pc, err := openPubChannel(c, conn)
		if err == nil {
			p.chans = append(p.chans, &pooled{pc: pc, users: 1})
			return pc, nil
		}
		// Channels taken by others on the connection: share one of ours, if there is one.
		if !errors.Is(err, amqp.ErrChannelMax) || len(p.chans) == 0 {
			return nil, err
		}
	}
	least := p.chans[0]
	for _, e := range p.chans[1:] {
		if e.users < least.users {
			least = e
		}
	}
	least.users++
	return least.pc, nil
}

// release gives back a publisher's channel; it reports whether no other publisher uses it (the
// caller then closes it).
func (p *pubPool) release(pc *pubChannel) (last bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, e := range p.chans {
		if e.pc == pc {
			if e.users--; e.users > 0 {
				return false
			}
			p.chans = append(p.chans[:i], p.chans[i+1:]...)
			return true
		}
	}
	// Forgotten since it closed or its connection went: no one else holds it.
	return true
}

// usage reports the publishers on the current connection's channels, and how many of those
// channels more than one publisher shares.
func (p *pubPool) usage() (publishers, shared int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.chans {
		if e.pc.ch.IsClosed() {
			continue
		}
		publishers += e.users
		if e.users > 1 {
			shared++
		}
	}
	return publishers, shared
}

// Package amqptable reads the entries of an AMQP 0-9-1 field table, as a publisher writes them
// into a content header, into an event.Table with the Go types amqp091-go's reader gives each
// field type (event.Decimal and event.Table for decimals and nested tables), for tests of
// encoders that write tables without amqp091-go.
package amqptable

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/wasmrouter/wasmrouter/event"
)

// Parse reads a table's entries (without the table's 4-byte length). A name seen twice is an
// error: a consumer would see only one of them.
func Parse(b []byte) (event.Table, error) {
	p := parser{b: b}
	t := p.entries(len(b))
	if p.err != nil {
		return nil, p.err
	}
	return t, nil
}

type parser struct {
	b   []byte
	err error
}

func (p *parser) take(n int) []byte {
	if p.err != nil || n < 0 || len(p.b) < n {
		if p.err == nil {
			p.err = fmt.Errorf("truncated table")
		}
		return make([]byte, max(n, 0))
	}
	v := p.b[:n]
	p.b = p.b[n:]
	return v
}

func (p *parser) entries(n int) event.Table {
	end := len(p.b) - n
	t := event.Table{}
	for p.err == nil && len(p.b) > end {
		k := string(p.take(int(p.take(1)[0])))
		if _, dup := t[k]; dup {
			p.err = fmt.Errorf("header %q twice", k)
		}
		t[k] = p.value()
	}
	if p.err == nil && len(p.b) != end {
		p.err = fmt.Errorf("table overruns its length")
	}
	return t
}

func (p *parser) value() any {
	be := binary.BigEndian
	switch tag := p.take(1)[0]; tag {
	case 'V':
		return nil
	case 't':
		return p.take(1)[0] != 0
	case 'b':
		return int8(p.take(1)[0])
	case 'B':
		return p.take(1)[0]
	case 's':
		return int16(be.Uint16(p.take(2)))
	case 'u':
		return be.Uint16(p.take(2))
	case 'I':
		return int32(be.Uint32(p.take(4)))
	case 'i':
		return be.Uint32(p.take(4))
	case 'l':
		return int64(be.Uint64(p.take(8)))
	case 'f':
		return math.Float32frombits(be.Uint32(p.take(4)))
	case 'd':
		return math.Float64frombits(be.Uint64(p.take(8)))
	case 'D':
		scale := p.take(1)[0]
		return event.Decimal{Scale: scale, Value: int32(be.Uint32(p.take(4)))}
	case 'S':
		return string(p.take(int(be.Uint32(p.take(4)))))
	case 'x':
		return append([]byte{}, p.take(int(be.Uint32(p.take(4))))...)
	case 'T':
		return time.Unix(int64(be.Uint64(p.take(8))), 0).UTC()
	case 'F':
		return p.entries(int(be.Uint32(p.take(4))))
	case 'A':
		n := int(be.Uint32(p.take(4)))
		end := len(p.b) - n
		a := []any{}
		for p.err == nil && len(p.b) > end {
			a = append(a, p.value())
		}
		if p.err == nil && len(p.b) != end {
			p.err = fmt.Errorf("array overruns its length")
		}
		return a
	default:
		if p.err == nil {
			p.err = fmt.Errorf("unknown field type %q", tag)
		}
		return nil
	}
}

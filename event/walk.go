package event

// A Walker rebuilds a header value for another representation (amqp091-go's types, JSON, a
// copy): every conversion of header tables is the same walk, with its own three functions.
// Arrays ([]any) are rebuilt element by element, tables entry by entry; every other value
// goes through Leaf.
type Walker struct {
	// AsTable recognises a table in the source representation and returns its entries.
	AsTable func(v any) (entries map[string]any, ok bool)
	// MakeTable gives rebuilt entries the target representation's table type (a conversion of
	// the map's type, which copies nothing).
	MakeTable func(entries map[string]any) any
	// Leaf converts a value that is neither a table nor an array.
	Leaf func(v any) any
}

// Table rebuilds a table's entries; nil stays nil.
func (w *Walker) Table(t map[string]any) map[string]any {
	if t == nil {
		return nil
	}
	out := make(map[string]any, len(t))
	for k, v := range t {
		out[k] = w.Value(v)
	}
	return out
}

// Value rebuilds one value.
func (w *Walker) Value(v any) any {
	if t, ok := w.AsTable(v); ok {
		return w.MakeTable(w.Table(t))
	}
	if a, ok := v.([]any); ok {
		out := make([]any, len(a))
		for i, e := range a {
			out[i] = w.Value(e)
		}
		return out
	}
	return w.Leaf(v)
}

// AsEventTable recognises the tables of the event representation: Table, and a plain
// map[string]any as JSON decoding and guests' callers build them.
func AsEventTable(v any) (map[string]any, bool) {
	switch x := v.(type) {
	case Table:
		return x, true
	case map[string]any:
		return x, true
	}
	return nil, false
}

// MakeEventTable types rebuilt entries as a Table.
func MakeEventTable(entries map[string]any) any { return Table(entries) }

// cloner deep-copies header values: tables, arrays and byte arrays are copied.
var cloner = Walker{
	AsTable:   func(v any) (map[string]any, bool) { t, ok := v.(Table); return t, ok },
	MakeTable: MakeEventTable,
	Leaf: func(v any) any {
		if b, ok := v.([]byte); ok {
			return append([]byte(nil), b...)
		}
		return v
	},
}

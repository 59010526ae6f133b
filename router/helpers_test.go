package router_test

import "sync"

// madeCursors is the set of cursors a listing fake log has made, as the logs that list their
// cursors keep it.
type madeCursors struct {
	names sync.Map
}

func (m *madeCursors) add(name string)    { m.names.Store(name, true) }
func (m *madeCursors) remove(name string) { m.names.Delete(name) }

// list is what the log's Cursors returns: each made cursor at the position cursor reads.
func (m *madeCursors) list(cursor func(string) (uint64, error)) (map[string]uint64, error) {
	out := map[string]uint64{}
	var err error
	m.names.Range(func(k, _ any) bool {
		out[k.(string)], err = cursor(k.(string))
		return err == nil
	})
	return out, err
}

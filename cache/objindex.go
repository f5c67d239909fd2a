package cache

// objectIndex finds the blocks of one object without scanning a whole
// cache: Invalidate runs for every unlink, rename and overwrite, and a scan
// of every cached block under the cache's lock cost more CPU than the
// request that the unlink itself sends (and held off every read meanwhile).
// It is guarded by the lock of the cache that owns it.
type objectIndex map[string]map[BlockKey]struct{}

func (x objectIndex) add(k BlockKey) {
	s := x[k.Key]
	if s == nil {
		s = make(map[BlockKey]struct{})
		x[k.Key] = s
	}
	s[k] = struct{}{}
}

func (x objectIndex) remove(k BlockKey) {
	s := x[k.Key]
	delete(s, k)
	if len(s) == 0 {
		delete(x, k.Key)
	}
}

// blocks returns the keys of object key's blocks, a copy the caller may
// hold while it removes them.
func (x objectIndex) blocks(key string) []BlockKey {
	s := x[key]
	out := make([]BlockKey, 0, len(s))
	for k := range s {
		out = append(out, k)
	}
	return out
}

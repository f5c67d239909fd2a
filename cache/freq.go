package cache

// freqSketch estimates how often each block has been read lately, for the
// admission of disk-tier hits into memory (promoteLocked). It is one row of
// saturating 8-bit counters indexed by a hash of the block key: collisions
// can only overestimate, which costs at worst a promotion too many. All
// counters are halved once the increments since the last halving reach ten
// times the number of counters, so that what was hot an hour ago does not
// stay hot forever. Not safe for concurrent use: it lives under the
// BlockCache lock.
type freqSketch struct {
	counts   []uint8 // len is a power of two; nil until first used
	mask     uint64
	width    int   // counters to allocate on first use
	incs     int64 // increments since the last halving
	halveAt  int64
	halvings int64 // for tests
}

func newFreqSketch(blocks int64) freqSketch {
	w := 1024
	for int64(w) < 4*blocks && w < 1<<20 {
		w <<= 1
	}
	return freqSketch{width: w}
}

// hash returns the block's counter index (before masking): FNV-1a over the
// key, the ETag and the index, then a 64-bit finalizer so that the low bits
// (the ones the mask keeps) depend on every input byte. It is the same in
// every run, so tests see the same collisions every time; that anyone can
// aim collisions at it costs at worst a few promotions too many.
func (f *freqSketch) hash(k BlockKey) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for i := 0; i < len(k.Key); i++ {
		h = (h ^ uint64(k.Key[i])) * prime
	}
	h = (h ^ 0xff) * prime // separates key from ETag
	for i := 0; i < len(k.ETag); i++ {
		h = (h ^ uint64(k.ETag[i])) * prime
	}
	h ^= uint64(k.Index)
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// add counts one read of the block and returns its new estimate.
func (f *freqSketch) add(k BlockKey) uint8 {
	if f.counts == nil {
		// Allocated on first use: a mount that never reads from the
		// disk tier does not pay for it.
		f.counts = make([]uint8, f.width)
		f.mask = uint64(f.width - 1)
		f.halveAt = 10 * int64(f.width)
	}
	i := f.hash(k) & f.mask
	if f.counts[i] < 255 {
		f.counts[i]++
	}
	f.incs++
	if f.incs >= f.halveAt {
		for j := range f.counts {
			f.counts[j] >>= 1
		}
		f.incs = 0
		f.halvings++
	}
	return f.counts[i]
}

// get returns the block's estimate.
func (f *freqSketch) get(k BlockKey) uint8 {
	if f.counts == nil {
		return 0
	}
	return f.counts[f.hash(k)&f.mask]
}

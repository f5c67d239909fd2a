package cache

import (
	"bytes"
	"context"
	"testing"
	"unsafe"
)

func TestSlabBuffers(t *testing.T) {
	const bs = 1 << 20
	var a slabAlloc
	seen := map[uintptr]bool{}
	var bufs [][]byte
	for i := 0; i < 2*slabBytes/bs+1; i++ { // across three slabs
		b := a.get(bs)
		if len(b) != bs || cap(b) != bs {
			t.Fatalf("buffer %d: len %d cap %d, want %d", i, len(b), cap(b), bs)
		}
		if !bytes.Equal(b, make([]byte, bs)) {
			t.Fatalf("buffer %d not zeroed", i)
		}
		p := uintptr(unsafe.Pointer(&b[0]))
		if seen[p] {
			t.Fatalf("buffer %d handed out twice", i)
		}
		seen[p] = true
		bufs = append(bufs, b)
	}
	// No buffer overlaps another: fill each with its index and check.
	for i, b := range bufs {
		for j := range b {
			b[j] = byte(i)
		}
	}
	for i, b := range bufs {
		if b[0] != byte(i) || b[bs-1] != byte(i) {
			t.Fatalf("buffer %d overwritten by another", i)
		}
	}
}

func TestSlabHugeRange(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		p      uintptr
		n      int
		lo, hi int
	}{
		{0x40000000, 8 * mib, 0, 8 * mib},                        // aligned: all of it
		{0x40000000 + 4096, 8 * mib, 2*mib - 4096, 8*mib - 4096}, // three pages
		{0x40000000 + 4096, 2 * mib, 0, 0},                       // no whole aligned page
	} {
		lo, hi := hugeRange(tc.p, tc.n)
		if lo != tc.lo || hi != tc.hi {
			t.Errorf("hugeRange(%#x, %d) = %d, %d; want %d, %d", tc.p, tc.n, lo, hi, tc.lo, tc.hi)
		}
	}
	for _, tc := range []struct {
		bs, max int64
		want    bool
	}{
		{1 << 20, 256 << 20, true},
		{4 << 20, 256 << 20, true},
		{8 << 20, 256 << 20, false}, // one per slab: no gain
		{3 << 20, 256 << 20, false}, // does not divide a slab
		{64 << 10, 256 << 20, false},
		{1 << 20, 16 << 20, false}, // budget smaller than a few slabs
	} {
		if got := slabbed(tc.bs, tc.max); got != tc.want {
			t.Errorf("slabbed(%d, %d) = %v, want %v", tc.bs, tc.max, got, tc.want)
		}
	}
}

// TestSlabBackedReads reads an object through a cache whose buffers come
// from slabs, recycling them (the budget is smaller than the object), and
// checks every byte.
func TestSlabBackedReads(t *testing.T) {
	const bs = 1 << 20
	data := make([]byte, 40*bs+123)
	for i := range data {
		data[i] = byte(i * 7 / 13)
	}
	c, err := New(Options{BlockSize: bs, MaxBytes: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !slabbed(c.bs, c.max) {
		t.Fatal("this cache should use slabs")
	}
	c.poison = true
	rd := c.NewReader(Object{Key: "k", ETag: "e", Size: int64(len(data))}, memRange(data, 0))
	defer rd.Close()
	buf := make([]byte, 256<<10)
	for off := 0; off < len(data); off += len(buf) {
		n, err := rd.ReadAt(context.Background(), buf, int64(off))
		if err != nil && off+n < len(data) {
			t.Fatalf("read at %d: %v", off, err)
		}
		if !bytes.Equal(buf[:n], data[off:off+n]) {
			t.Fatalf("read at %d: wrong bytes", off)
		}
	}
	if s := c.Stats(); s.Recycled == 0 {
		t.Errorf("no buffer was recycled: %+v", s)
	}
}

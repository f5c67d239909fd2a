package cache

import (
	"bytes"
	"context"
	"testing"
)

// A block put by its owner is read without a fetch, by a Reader and by
// GetOrFill, under the ETag it was put as only.
func TestPutServesReaders(t *testing.T) {
	s := newFakeStore()
	data, etag := s.put("k", 5000, 1)
	c := newCache(t, Options{BlockSize: 64 << 10, MaxBytes: 1 << 20})
	if !c.Put(BlockKey{Key: "k", ETag: etag}, bytes.Clone(data)) {
		t.Fatal("Put kept nothing in an empty cache")
	}
	if c.Put(BlockKey{Key: "k", ETag: etag}, bytes.Clone(data)) {
		t.Fatal("a second Put of a held block kept it again")
	}
	rd := c.NewReader(Object{Key: "k", ETag: etag, Size: 5000}, s.rangeFunc("k", etag))
	defer rd.Close()
	got := make([]byte, 5000)
	if n, err := rd.ReadAt(context.Background(), got, 0); n != 5000 || (err != nil && err.Error() != "EOF") {
		t.Fatalf("ReadAt: %d, %v", n, err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("wrong bytes")
	}
	sl, err := rd.ReadSlices(context.Background(), 4096, 4096)
	if err != nil && err.Error() != "EOF" {
		t.Fatal(err)
	}
	if sl.Len() != 5000-4096 {
		t.Fatalf("ReadSlices gave %d bytes", sl.Len())
	}
	sl.Release()
	if g := s.gets.Load(); g != 0 {
		t.Fatalf("%d GETs for a block that was put", g)
	}
	// Another version of the object is not the block put.
	rd2 := c.NewReader(Object{Key: "k", ETag: "other", Size: 5000}, s.rangeFunc("k", etag))
	defer rd2.Close()
	rd2.ReadAt(context.Background(), got, 0)
	if g := s.gets.Load(); g != 1 {
		t.Fatalf("%d GETs for another version, want 1", g)
	}
}

// Put evicts blocks that have been read to make room, never more than the
// budget, and refuses a block bigger than BlockSize.
func TestPutBounded(t *testing.T) {
	c := newCache(t, Options{BlockSize: 1024, MaxBytes: 4 << 10})
	if c.Put(BlockKey{Key: "big"}, make([]byte, 1025)) {
		t.Fatal("kept a block bigger than BlockSize")
	}
	for i := range 10 {
		if !c.Put(BlockKey{Key: "k", Index: int64(i)}, make([]byte, 1000)) {
			t.Fatalf("Put %d kept nothing", i)
		}
	}
	st := c.Stats()
	if st.ResidentBytes > 4<<10 {
		t.Fatalf("resident %d over the budget", st.ResidentBytes)
	}
	if _, ok := c.Get(BlockKey{Key: "k", Index: 9}); !ok {
		t.Fatal("the newest block was evicted")
	}
	if _, ok := c.Get(BlockKey{Key: "k", Index: 0}); ok {
		t.Fatal("the oldest block survived past the budget")
	}
}

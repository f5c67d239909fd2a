package cache

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// readAllSlices reads [0, size) through rd in reads of n bytes, releasing
// each result, and checks the bytes against data.
func readAllSlices(t *testing.T, rd *Reader, data []byte, n int) {
	t.Helper()
	for off := 0; off < len(data); off += n {
		s, err := rd.ReadSlices(context.Background(), int64(off), n)
		if err != nil && off+n < len(data) {
			t.Fatalf("read at %d: %v", off, err)
		}
		var got []byte
		for _, v := range s.Vecs {
			got = append(got, v...)
		}
		s.Release()
		end := min(off+n, len(data))
		if !bytes.Equal(got, data[off:end]) {
			t.Fatalf("read at %d: wrong bytes", off)
		}
	}
}

func TestReaderDropConsumed(t *testing.T) {
	const bs = 64 << 10
	data := make([]byte, 40*bs)
	for i := range data {
		data[i] = byte(i*31 + i>>9)
	}
	for _, tc := range []struct {
		name string
		drop bool
		read int // bytes per read
	}{
		{"keeps", false, bs},
		{"drops whole blocks", true, bs},
		{"drops blocks read in parts once read to their end", true, bs / 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Options{BlockSize: bs, MaxBytes: 64 * bs})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.poison = true // a recycled buffer still read shows as 0xA5
			rd := c.NewReader(Object{Key: "k", ETag: "e", Size: int64(len(data))}, memRange(data, 0))
			if tc.drop {
				rd.DropConsumed()
			}
			readAllSlices(t, rd, data, tc.read)
			rd.Close()
			// A read returns once its bytes are in, before the fetch
			// that brought them is counted done.
			settle(t, c, 1)
			st := c.Stats()
			if !tc.drop {
				if st.ConsumedDropped != 0 || st.ResidentBytes != int64(len(data)) {
					t.Fatalf("without DropConsumed: %d dropped, %d resident, want 0 and %d; %+v", st.ConsumedDropped, st.ResidentBytes, len(data), st)
				}
				return
			}
			// The first blocks are read before the window opens; every
			// block read after is dropped once read to its end.
			if st.ConsumedDropped < 30 {
				t.Errorf("%d blocks dropped, want most of 40", st.ConsumedDropped)
			}
			if st.ResidentBytes > 10*bs {
				t.Errorf("%d bytes resident after a sequential read with DropConsumed, want a few blocks", st.ResidentBytes)
			}
			if st.Fetches == 0 || st.FetchedBytes != int64(len(data)) {
				t.Errorf("fetched %d bytes in %d fetches, want each byte once", st.FetchedBytes, st.Fetches)
			}
		})
	}
}

// TestReaderDropConsumedKeepsRandomReads: a random reader (no readahead
// window) keeps what it reads, DropConsumed or not.
func TestReaderDropConsumedKeepsRandomReads(t *testing.T) {
	const bs = 64 << 10
	data := make([]byte, 16*bs)
	for i := range data {
		data[i] = byte(i * 7)
	}
	c, err := New(Options{BlockSize: bs, MaxBytes: 64 * bs})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rd := c.NewReader(Object{Key: "k", ETag: "e", Size: int64(len(data))}, memRange(data, 0))
	rd.DropConsumed()
	defer rd.Close()
	for _, i := range []int{9, 2, 14, 5, 11} {
		s, err := rd.ReadSlices(context.Background(), int64(i*bs), bs)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(s.Vecs[0], data[i*bs:(i+1)*bs]) {
			t.Fatalf("block %d: wrong bytes", i)
		}
		s.Release()
	}
	// A read returns once its bytes have arrived, which may be before its
	// block is counted as resident: wait for the fetches to settle.
	deadline := time.Now().Add(30 * time.Second)
	st := c.Stats()
	for st.ResidentBytes < 5*bs && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		st = c.Stats()
	}
	if st.ConsumedDropped != 0 || st.ResidentBytes != 5*bs {
		t.Errorf("random reads: %d dropped, %d resident, want 0 and %d", st.ConsumedDropped, st.ResidentBytes, 5*bs)
	}
}

// readSlice reads n bytes at off through rd, checks them and releases them.
func readSlice(t *testing.T, rd *Reader, data []byte, off, n int) {
	t.Helper()
	s, err := rd.ReadSlices(context.Background(), int64(off), n)
	if err != nil {
		t.Fatalf("read at %d: %v", off, err)
	}
	var got []byte
	for _, v := range s.Vecs {
		got = append(got, v...)
	}
	s.Release()
	if !bytes.Equal(got, data[off:off+n]) {
		t.Fatalf("read at %d: wrong bytes", off)
	}
}

// dropConsumedReader returns a cache of bs-byte blocks holding 64 of them
// (buffers poisoned when recycled) and a DropConsumed Reader of an object
// of nblocks blocks, with its bytes; both are closed at the test's end.
func dropConsumedReader(t *testing.T, bs, nblocks int) (*BlockCache, *Reader, []byte) {
	t.Helper()
	data := make([]byte, nblocks*bs)
	for i := range data {
		data[i] = byte(i*13 + i>>10)
	}
	c, err := New(Options{BlockSize: int64(bs), MaxBytes: 64 * int64(bs)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	c.poison = true
	rd := c.NewReader(Object{Key: "k", ETag: "e", Size: int64(len(data))}, memRange(data, 0))
	rd.DropConsumed()
	t.Cleanup(rd.Close)
	return c, rd, data
}

// TestReaderDropConsumedOutOfOrder: the kernel serves a file's readahead
// requests concurrently, so the request that reads a block to its end may
// be answered before one for the middle of that block. The block must
// still be in memory for the late one (it was fetched again, a flaky
// failure of TestReadPathFetchesEachByteOnce), and leave once the reader
// has consumed the next block.
func TestReaderDropConsumedOutOfOrder(t *testing.T) {
	const bs = 64 << 10
	const q = bs / 4
	c, rd, data := dropConsumedReader(t, bs, 8)

	readSlice(t, rd, data, 0, q)
	readSlice(t, rd, data, q, q)
	readSlice(t, rd, data, 3*q, q) // the end of block 0, before its third quarter
	settle(t, c, 1)
	fetched := c.Stats().FetchedBytes
	readSlice(t, rd, data, 2*q, q) // the late request
	if st := c.Stats(); st.FetchedBytes != fetched || st.ConsumedDropped != 0 {
		t.Fatalf("late read of block 0's middle: fetched %d more bytes, %d blocks dropped; want 0 and 0", st.FetchedBytes-fetched, st.ConsumedDropped)
	}
	if !inMemory(c, rd, 0) {
		t.Fatal("block 0 left memory before the reader consumed block 1")
	}
	for off := bs; off < 2*bs; off += q {
		readSlice(t, rd, data, off, q)
	}
	// A read returns once its bytes are in, before the block is counted
	// as held: wait for the fetches to end.
	settle(t, c, 1)
	if inMemory(c, rd, 0) || !inMemory(c, rd, 1) {
		t.Fatalf("after block 1 was consumed: block 0 in memory %v (want false), block 1 %v (want true)", inMemory(c, rd, 0), inMemory(c, rd, 1))
	}
	rd.Close()
	if inMemory(c, rd, 1) {
		t.Fatal("the last consumed block stayed in memory after Close")
	}
	settle(t, c, 1)
	if st := c.Stats(); st.ConsumedDropped != 2 || st.FetchedBytes > int64(len(data)) {
		t.Errorf("%d blocks dropped (want 2), %d bytes fetched (at most %d)", st.ConsumedDropped, st.FetchedBytes, len(data))
	}
}

// TestReaderDropConsumedOnlyWholeRuns: a run of sequential reads that
// starts in the middle of a block (two random reads that happen to be
// adjacent) has not read that block, so reaching its end keeps it.
func TestReaderDropConsumedOnlyWholeRuns(t *testing.T) {
	const bs = 64 << 10
	const q = bs / 4
	c, rd, data := dropConsumedReader(t, bs, 8)
	readSlice(t, rd, data, 5*bs+q, q) // random
	readSlice(t, rd, data, 3*bs+2*q, q)
	readSlice(t, rd, data, 3*bs+3*q, q) // adjacent: the window opens, and this read ends block 3
	if w := rd.Window().Blocks(); w == 0 {
		t.Fatal("the window did not open on two sequential reads")
	}
	readSlice(t, rd, data, 4*bs, bs) // block 4, whole
	// Blocks are held once their fetches end, a little after the reads
	// that waited for their bytes: only a held block can be dropped.
	settle(t, c, 1)
	readSlice(t, rd, data, 5*bs, bs) // block 5, whole: block 4 may go, block 3 must stay
	settle(t, c, 1)
	if !inMemory(c, rd, 3) {
		t.Error("block 3, of which the run read only the end, left memory")
	}
	if inMemory(c, rd, 4) {
		t.Error("block 4, read whole by the run, stayed in memory after block 5 was consumed")
	}
}

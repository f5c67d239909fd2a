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

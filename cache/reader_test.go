package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// readAll reads obj sequentially in chunks of chunk bytes.
func readAll(t testing.TB, r *Reader, chunk int) []byte {
	t.Helper()
	var out []byte
	buf := make([]byte, chunk)
	for off := int64(0); ; {
		n, err := r.ReadAt(context.Background(), buf, off)
		out = append(out, buf[:n]...)
		off += int64(n)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
	}
}

func TestReaderSequentialByteExact(t *testing.T) {
	for _, tc := range []struct {
		name             string
		size, chunk      int
		bs, max, maxWin  int64
		runBytes         int64
		wantFewerFetches bool
	}{
		{"aligned", 64 << 10, 4 << 10, 4 << 10, 256 << 10, 64 << 10, 16 << 10, true},
		{"unaligned-tail", 64<<10 + 123, 3000, 4 << 10, 256 << 10, 64 << 10, 16 << 10, true},
		{"reads-span-blocks", 50 << 10, 10 << 10, 4 << 10, 256 << 10, 32 << 10, 8 << 10, true},
		{"tiny-budget", 64<<10 + 7, 4 << 10, 4 << 10, 12 << 10, 64 << 10, 16 << 10, false},
		{"no-readahead", 20 << 10, 4 << 10, 4 << 10, 256 << 10, -1, 0, false},
		{"empty", 0, 4 << 10, 4 << 10, 256 << 10, 64 << 10, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newFakeStore()
			data, etag := st.put("obj", tc.size, 1)
			c := newCache(t, Options{BlockSize: tc.bs, MaxBytes: tc.max, Readahead: ReadaheadConfig{MaxWindowBytes: tc.maxWin, RunBytes: tc.runBytes}})
			r := c.NewReader(Object{Key: "obj", ETag: etag, Size: int64(tc.size)}, st.rangeFunc("obj", etag))
			defer r.Close()
			got := readAll(t, r, tc.chunk)
			if !bytes.Equal(got, data) {
				t.Fatalf("read %d bytes, want %d; equal prefix %d", len(got), len(data), commonPrefix(got, data))
			}
			nblocks := (int64(tc.size) + tc.bs - 1) / tc.bs
			s := c.Stats()
			if tc.wantFewerFetches && st.gets.Load() >= nblocks {
				t.Errorf("%d GETs for %d blocks: readahead did not batch", st.gets.Load(), nblocks)
			}
			if st.bytesSent.Load() > int64(tc.size) && tc.max >= int64(tc.size) {
				t.Errorf("fetched %d bytes of a %d-byte object", st.bytesSent.Load(), tc.size)
			}
			t.Logf("GETs %d for %d blocks; stats %+v", st.gets.Load(), nblocks, s)
			checkInvariants(t, c, false)
		})
	}
}

func commonPrefix(a, b []byte) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

func TestReaderRandomFetchesOnlyWhatIsAsked(t *testing.T) {
	const size, bs = 8 << 20, 16 << 10
	st := newFakeStore()
	st.countBytes = true
	data, etag := st.put("obj", size, 2)
	c := newCache(t, Options{BlockSize: bs, MaxBytes: 16 << 20})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := c.NewReader(Object{Key: "obj", ETag: etag, Size: size}, st.rangeFunc("obj", etag))
			defer r.Close()
			rng := rand.New(rand.NewPCG(uint64(g), 3))
			buf := make([]byte, 4096)
			for range 500 {
				off := rng.Int64N(size/4096) * 4096
				n, err := r.ReadAt(context.Background(), buf, off)
				if err != nil || n != 4096 || !bytes.Equal(buf, data[off:off+4096]) {
					t.Errorf("read at %d: %d %v", off, n, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for i, n := range st.fetchedAt["obj"] {
		if n > 1 {
			t.Fatalf("byte %d fetched %d times", i, n)
		}
	}
	s := c.Stats()
	// Two reads that happen to be adjacent open a small window: rare.
	if s.PrefetchBlocks*10 > s.Misses {
		t.Errorf("random readers prefetched %d blocks for %d misses", s.PrefetchBlocks, s.Misses)
	}
	t.Logf("stats %+v", s)
}

func TestReaderReadsAtEdges(t *testing.T) {
	const size, bs = 10000, 1024
	st := newFakeStore()
	data, etag := st.put("obj", size, 3)
	c := newCache(t, Options{BlockSize: bs, MaxBytes: 64 << 10})
	r := c.NewReader(Object{Key: "obj", ETag: etag, Size: size}, st.rangeFunc("obj", etag))
	defer r.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		off     int64
		n       int
		wantN   int
		wantEOF bool
	}{
		{0, 1, 1, false},
		{1023, 2, 2, false},       // across a boundary
		{1000, 3000, 3000, false}, // across several
		{9990, 10, 10, false},     // exactly to EOF
		{9990, 20, 10, true},      // past EOF
		{size, 10, 0, true},       // at EOF
		{size + 5, 10, 0, true},   // beyond
		{0, size, size, false},    // the whole object in one read
		{9216, 1024, 784, true},   // the short last block
		{5, 0, 0, false},          // empty read
	} {
		buf := make([]byte, tc.n)
		n, err := r.ReadAt(ctx, buf, tc.off)
		if n != tc.wantN || (err == io.EOF) != tc.wantEOF || (err != nil && err != io.EOF) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", tc.off, tc.n, n, err)
		}
		if n > 0 && !bytes.Equal(buf[:n], data[tc.off:tc.off+int64(n)]) {
			t.Fatalf("ReadAt(%d, %d): wrong bytes", tc.off, tc.n)
		}
	}
	if _, err := r.ReadAt(ctx, make([]byte, 1), -1); err == nil {
		t.Fatal("negative offset accepted")
	}
}

func TestReaderPinnedToETag(t *testing.T) {
	st := newFakeStore()
	_, oldTag := st.put("obj", 8192, 4)
	c := newCache(t, Options{BlockSize: 1024, MaxBytes: 64 << 10, Readahead: ReadaheadConfig{MaxWindowBytes: -1}})
	r := c.NewReader(Object{Key: "obj", ETag: oldTag, Size: 8192}, st.rangeFunc("obj", oldTag))
	defer r.Close()
	buf := make([]byte, 1024)
	if _, err := r.ReadAt(context.Background(), buf, 0); err != nil {
		t.Fatal(err)
	}
	newData, newTag := st.put("obj", 8192, 5) // another writer replaces it
	// Block 0 is cached for the old ETag: the old bytes, consistently.
	if _, err := r.ReadAt(context.Background(), buf, 0); err != nil {
		t.Fatal(err)
	}
	// Block 1 is not: the pinned GET fails; never the new bytes.
	_, err := r.ReadAt(context.Background(), buf, 1024)
	if !errors.Is(err, errPrecondition) {
		t.Fatalf("read of a replaced object: %v", err)
	}
	// The caller invalidates and reopens with the new version.
	c.Invalidate("obj")
	r2 := c.NewReader(Object{Key: "obj", ETag: newTag, Size: 8192}, st.rangeFunc("obj", newTag))
	defer r2.Close()
	if got := readAll(t, r2, 1000); !bytes.Equal(got, newData) {
		t.Fatal("new version read wrong")
	}
}

func TestReaderBrokenStreamReopens(t *testing.T) {
	st := newFakeStore()
	data, etag := st.put("obj", 64<<10, 6)
	st.breakAfter = 5000
	st.breakCount.Store(2)
	c := newCache(t, Options{BlockSize: 4096, MaxBytes: 1 << 20})
	r := c.NewReader(Object{Key: "obj", ETag: etag, Size: 64 << 10}, st.rangeFunc("obj", etag))
	defer r.Close()
	if got := readAll(t, r, 4096); !bytes.Equal(got, data) {
		t.Fatal("wrong bytes after reopening")
	}
	// A stream that keeps breaking fails the read with the transport's
	// error (EIO for fs), after maxReopens attempts.
	st2 := newFakeStore()
	_, etag2 := st2.put("o2", 64<<10, 7)
	st2.breakAfter = 100
	st2.breakCount.Store(1000)
	r2 := c.NewReader(Object{Key: "o2", ETag: etag2, Size: 64 << 10}, st2.rangeFunc("o2", etag2))
	defer r2.Close()
	if _, err := r2.ReadAt(context.Background(), make([]byte, 4096), 0); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v", err)
	}
	if n := st2.gets.Load(); n != 1+maxReopens {
		t.Fatalf("%d GETs, want %d", n, 1+maxReopens)
	}
	// A stream that ends cleanly but early: the object is shorter than
	// the size the Reader was given.
	st3 := newFakeStore()
	_, etag3 := st3.put("o3", 10000, 8)
	r3 := c.NewReader(Object{Key: "o3", ETag: etag3, Size: 10100}, st3.rangeFunc("o3", etag3))
	defer r3.Close()
	if _, err := r3.ReadAt(context.Background(), make([]byte, 100), 10000); !errors.Is(err, ErrShortObject) {
		t.Fatalf("got %v", err)
	}
	checkInvariants(t, c, false)
}

// TestReaderServesBlockPrefixWhileItArrives: a read that needs only the
// first bytes of a block returns as soon as they are in, not when the
// whole block is: the first byte of a file costs a small GET's time.
func TestReaderServesBlockPrefixWhileItArrives(t *testing.T) {
	st := newFakeStore()
	data, etag := st.put("obj", 4<<20, 12)
	st.stallAfter = 64 << 10
	st.stall = make(chan struct{})
	c := newCache(t, Options{BlockSize: 1 << 20, MaxBytes: 16 << 20})
	r := c.NewReader(Object{Key: "obj", ETag: etag, Size: 4 << 20}, st.rangeFunc("obj", etag))
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	buf := make([]byte, 4096)
	for _, off := range []int64{0, 4096, 60 << 10} {
		if n, err := r.ReadAt(ctx, buf, off); err != nil || n != len(buf) || !bytes.Equal(buf, data[off:off+4096]) {
			t.Fatalf("read at %d while the block streams: %d %v", off, n, err)
		}
	}
	// Past what has arrived: waits; a deadline ends the wait.
	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()
	if _, err := r.ReadAt(short, buf, 100<<10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read past the stall: %v", err)
	}
	close(st.stall)
	if got := readAll(t, r, 128<<10); !bytes.Equal(got, data) {
		t.Fatal("wrong bytes once the stream went on")
	}
}

func TestReaderCloseCancelsPrefetch(t *testing.T) {
	st := newFakeStore()
	_, etag := st.put("obj", 1<<20, 8)
	st.hangFrom.Store(3 * 4096) // only the first GET (blocks 0-2) answers
	c := newCache(t, Options{BlockSize: 4096, MaxBytes: 1 << 20})
	r := c.NewReader(Object{Key: "obj", ETag: etag, Size: 1 << 20}, st.rangeFunc("obj", etag))
	buf := make([]byte, 4096)
	for off := int64(0); off < 3*4096; off += 4096 {
		if _, err := r.ReadAt(context.Background(), buf, off); err != nil {
			t.Fatal(err)
		}
	}
	for st.inflight.Load() == 0 { // the prefetch goroutines are on their way
		time.Sleep(time.Millisecond)
	}
	s := c.Stats()
	if s.PrefetchBlocks <= 2 || s.InflightBytes == 0 {
		t.Fatalf("no prefetch in flight: %+v", s)
	}
	r.Close()
	c.wg.Wait() // every fetch goroutine ends: the hanging GETs were cancelled
	s = c.Stats()
	if s.PrefetchCancelled == 0 || s.InflightBytes != 0 || s.FetchErrors != 0 {
		t.Fatalf("stats after Close: %+v", s)
	}
	if st.inflight.Load() != 0 {
		t.Fatalf("%d GETs still open", st.inflight.Load())
	}
	if n := c.Readahead().Active(); n != 0 {
		t.Fatalf("%d active windows after Close", n)
	}
	checkInvariants(t, c, false)
}

func TestReaderSharedPrefetchNotCancelledByOtherClose(t *testing.T) {
	st := newFakeStore()
	data, etag := st.put("obj", 256<<10, 9)
	c := newCache(t, Options{BlockSize: 4096, MaxBytes: 4 << 20})
	obj := Object{Key: "obj", ETag: etag, Size: 256 << 10}
	a := c.NewReader(obj, st.rangeFunc("obj", etag))
	b := c.NewReader(obj, st.rangeFunc("obj", etag))
	defer b.Close()
	buf := make([]byte, 4096)
	ctx := context.Background()
	st.delay = 2 * time.Millisecond
	for off := int64(0); off < 16*4096; off += 4096 {
		if _, err := a.ReadAt(ctx, buf, off); err != nil {
			t.Fatal(err)
		}
		if _, err := b.ReadAt(ctx, buf, off); err != nil {
			t.Fatal(err)
		}
	}
	a.Close()
	if got := readAll(t, b, 4096); !bytes.Equal(got, data) {
		t.Fatal("wrong bytes")
	}
	t.Logf("GETs %d stats %+v", st.gets.Load(), c.Stats())
}

func TestReaderInterruptedReadLeavesFetchRunning(t *testing.T) {
	st := newFakeStore()
	data, etag := st.put("obj", 64<<10, 10)
	st.gate = make(chan struct{})
	c := newCache(t, Options{BlockSize: 4096, MaxBytes: 1 << 20})
	r := c.NewReader(Object{Key: "obj", ETag: etag, Size: 64 << 10}, st.rangeFunc("obj", etag))
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() {
		_, err := r.ReadAt(ctx, make([]byte, 4096), 0)
		res <- err
	}()
	for st.gets.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel() // FUSE interrupt
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	close(st.gate)
	// The kernel retries the read: it joins or hits the fetch that went on.
	buf := make([]byte, 4096)
	if _, err := r.ReadAt(context.Background(), buf, 0); err != nil || !bytes.Equal(buf, data[:4096]) {
		t.Fatalf("retry: %v", err)
	}
	if st.gets.Load() != 1 {
		t.Fatalf("%d GETs: the interrupted fetch was restarted", st.gets.Load())
	}
}

// TestFourSequentialReadersStayInBudget is the memory scenario in
// miniature: four sequential readers of different objects with deep
// readahead and a small budget. The budget (held + in flight) must hold at
// every instant, every byte must be right, and every reader must get a
// share of the readahead.
func TestFourSequentialReadersStayInBudget(t *testing.T) {
	const bs, size = 16 << 10, 2 << 20
	st := newFakeStore()
	st.delay = 200 * time.Microsecond
	c := newCache(t, Options{BlockSize: bs, MaxBytes: 512 << 10, Readahead: ReadaheadConfig{MaxWindowBytes: 1 << 20, RunBytes: 64 << 10}})
	stop := make(chan struct{})
	peakCh := watchBudget(t, c, stop)
	var wg sync.WaitGroup
	for i := range 4 {
		key := string(rune('a' + i))
		data, etag := st.put(key, size, uint64(i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := c.NewReader(Object{Key: key, ETag: etag, Size: size}, st.rangeFunc(key, etag))
			defer r.Close()
			maxWin := int64(0)
			buf := make([]byte, 8<<10)
			var got []byte
			for off := int64(0); ; {
				n, err := r.ReadAt(context.Background(), buf, off)
				got = append(got, buf[:n]...)
				off += int64(n)
				maxWin = max(maxWin, r.Window().Blocks())
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
			if !bytes.Equal(got, data) {
				t.Errorf("reader %s: wrong bytes", key)
			}
			if maxWin < 2 {
				t.Errorf("reader %s never read ahead", key)
			}
		}()
	}
	wg.Wait()
	close(stop)
	peak := <-peakCh
	checkInvariants(t, c, false)
	s := c.Stats()
	if s.FetchedBytes > 4*size*11/10 {
		t.Errorf("fetched %d bytes for %d", s.FetchedBytes, 4*size)
	}
	t.Logf("peak %d of %d; GETs %d (peak %d concurrent); stats %+v", peak, c.MaxBytes(), st.gets.Load(), st.peakConc.Load(), s)
}

// TestRandomizedReadersInvariants mixes sequential, random and abandoned
// readers, interrupts and closes, with and without the disk tier, and
// checks bytes and accounting. The budget is small, so buffers are
// recycled all the time, and poisoned when they are: a block read after its
// buffer was reused would show as wrong bytes.
func TestRandomizedReadersInvariants(t *testing.T) {
	for _, withDisk := range []bool{false, true} {
		t.Run(fmt.Sprintf("disk=%v", withDisk), func(t *testing.T) { randomizedReaders(t, withDisk) })
	}
}

func randomizedReaders(t *testing.T, withDisk bool) {
	const bs = 4 << 10
	st := newFakeStore()
	objs := map[string][]byte{}
	tags := map[string]string{}
	for i, size := range []int{0, 100, bs, 3*bs + 1, 40 * bs, 100*bs + 17} {
		key := string(rune('a' + i))
		objs[key], tags[key] = st.put(key, size, uint64(i+100))
	}
	keys := []string{"a", "b", "c", "d", "e", "f"}
	var disk *DiskCache
	if withDisk {
		disk, _ = openDisk(t, DiskOptions{Dir: t.TempDir(), MaxBytes: 64 * bs, QueueBlocks: 4})
	}
	c := newCache(t, Options{BlockSize: bs, MaxBytes: 24 * bs, Disk: disk, Readahead: ReadaheadConfig{MaxWindowBytes: 16 * bs, RunBytes: 4 * bs}})
	stop := make(chan struct{})
	peakCh := watchBudget(t, c, stop)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 99))
			for range 30 {
				key := keys[rng.IntN(len(keys))]
				data := objs[key]
				r := c.NewReader(Object{Key: key, ETag: tags[key], Size: int64(len(data))}, st.rangeFunc(key, tags[key]))
				off := int64(0)
				for range rng.IntN(40) {
					if rng.IntN(4) == 0 && len(data) > 0 {
						off = rng.Int64N(int64(len(data)))
					}
					buf := make([]byte, 1+rng.IntN(3*bs))
					ctx, cancel := context.WithCancel(context.Background())
					if rng.IntN(15) == 0 {
						cancel() // interrupted before it starts
					}
					n, err := r.ReadAt(ctx, buf, off)
					cancel()
					if errors.Is(err, context.Canceled) {
						continue
					}
					if err != nil && err != io.EOF {
						t.Errorf("%s at %d: %v", key, off, err)
						return
					}
					if !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
						t.Errorf("%s at %d: wrong bytes", key, off)
						return
					}
					off += int64(n)
				}
				r.Close()
			}
		}()
	}
	wg.Wait()
	c.wg.Wait()
	close(stop)
	peak := <-peakCh
	checkInvariants(t, c, false)
	s := c.Stats()
	if s.InflightBytes != 0 || s.AheadBytes != 0 {
		t.Fatalf("leaked after every reader closed: %+v", s)
	}
	if c.Readahead().Active() != 0 {
		t.Fatalf("%d windows still active", c.Readahead().Active())
	}
	if s.Recycled == 0 {
		t.Fatal("no buffer was recycled")
	}
	if withDisk && s.DiskHits == 0 {
		t.Error("no disk hits")
	}
	t.Logf("peak %d of %d; stats %+v", peak, c.MaxBytes(), s)
}

// TestReaderWaitsForBudgetAndGivesUp: with the budget taken by fetches in
// flight, a read waits for them, and gives up when its ctx does.
func TestReaderWaitsForBudgetAndGivesUp(t *testing.T) {
	const bs = 4096
	st := newFakeStore()
	data, etag := st.put("obj", 64*bs, 14)
	st.hangFrom.Store(0) // every GET hangs until cancelled
	c := newCache(t, Options{BlockSize: bs, MaxBytes: 4 * bs, Readahead: ReadaheadConfig{MaxWindowBytes: -1}})
	obj := Object{Key: "obj", ETag: etag, Size: 64 * bs}
	r := c.NewReader(obj, st.rangeFunc("obj", etag))
	defer r.Close()
	// Four interrupted reads leave four fetches in flight: the budget.
	for i := range 4 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := r.ReadAt(ctx, make([]byte, bs), int64(i*10)*bs)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("read %d: %v", i, err)
		}
	}
	if s := c.Stats(); s.InflightBytes != 4*bs {
		t.Fatalf("in flight: %+v", s)
	}
	// A read spanning three more blocks cannot get budget: it waits, then
	// its deadline ends it, with nothing pinned or leaked.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := r.ReadAt(ctx, make([]byte, 2*bs+2), 20*bs+bs-1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if c.Stats().BudgetWaits == 0 {
		t.Fatal("the read did not wait for budget")
	}
	// Let the store answer again: cancel the hung GETs by closing the
	// cache's fetches, then a new cache reads fine.
	c.Close()
	checkInvariants(t, c, false)
	st.hangFrom.Store(1 << 62)
	c2 := newCache(t, Options{BlockSize: bs, MaxBytes: 4 * bs})
	r2 := c2.NewReader(obj, st.rangeFunc("obj", etag))
	defer r2.Close()
	if got := readAll(t, r2, 3*bs+5); !bytes.Equal(got, data) {
		t.Fatal("wrong bytes")
	}
}

// TestReadSlicesZeroCopy: ReadSlices returns the cache's own bytes, pinned
// until Release, across blocks and at EOF.
func TestReadSlicesZeroCopy(t *testing.T) {
	const bs = 4096
	st := newFakeStore()
	data, etag := st.put("obj", 10*bs+100, 15)
	c := newCache(t, Options{BlockSize: bs, MaxBytes: 4 * bs, Readahead: ReadaheadConfig{MaxWindowBytes: -1}})
	r := c.NewReader(Object{Key: "obj", ETag: etag, Size: 10*bs + 100}, st.rangeFunc("obj", etag))
	defer r.Close()
	ctx := context.Background()
	s, err := r.ReadSlices(ctx, bs-10, 2*bs)
	if err != nil || s.Len() != 2*bs || len(s.Vecs) != 3 {
		t.Fatalf("len %d, %d vecs, %v", s.Len(), len(s.Vecs), err)
	}
	// Churn the cache while s is held: its blocks must not be reused.
	for off := int64(4 * bs); off < 10*bs; off += bs {
		if _, err := r.ReadAt(ctx, make([]byte, bs), off); err != nil {
			t.Fatal(err)
		}
	}
	if got := bytes.Join(s.Vecs, nil); !bytes.Equal(got, data[bs-10:3*bs-10]) {
		t.Fatal("pinned slices changed")
	}
	s.Release()
	s.Release() // idempotent
	tail, err := r.ReadSlices(ctx, 10*bs, 500)
	if err != io.EOF || tail.Len() != 100 || !bytes.Equal(bytes.Join(tail.Vecs, nil), data[10*bs:]) {
		t.Fatalf("tail: %d bytes, %v", tail.Len(), err)
	}
	tail.Release()
	empty, err := r.ReadSlices(ctx, 20*bs, 10)
	if err != io.EOF || empty.Len() != 0 {
		t.Fatalf("past EOF: %v", err)
	}
	empty.Release()
	c.mu.Lock()
	for _, k := range c.lru.Keys() {
		if b, _ := c.lru.Peek(k); b.pins != 0 {
			t.Errorf("block %v still pinned %d times", k, b.pins)
		}
	}
	c.mu.Unlock()
}

package cache

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestGetOrFillHitAndMiss(t *testing.T) {
	c := newCache(t, Options{BlockSize: 1024, MaxBytes: 8 << 10})
	k := BlockKey{Key: "a", ETag: "e1", Index: 3}
	var fills atomic.Int64
	fill := func(context.Context) ([]byte, error) {
		fills.Add(1)
		return blockOf(k, 1024), nil
	}
	if _, ok := c.Get(k); ok {
		t.Fatal("Get hit on an empty cache")
	}
	for i := 0; i < 3; i++ {
		got, err := c.GetOrFill(context.Background(), k, fill)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, blockOf(k, 1024)) {
			t.Fatal("wrong block")
		}
	}
	if got, ok := c.Get(k); !ok || !bytes.Equal(got, blockOf(k, 1024)) {
		t.Fatal("Get missed a cached block")
	}
	s := c.Stats()
	if fills.Load() != 1 || s.Misses != 1 || s.Hits != 3 || s.Fetches != 1 {
		t.Fatalf("fills %d, stats %+v", fills.Load(), s)
	}
	if s.ResidentBytes != 1024 || s.Blocks != 1 || s.InflightBytes != 0 {
		t.Fatalf("gauges: %+v", s)
	}
	checkInvariants(t, c, false)
}

func TestETagChangeMisses(t *testing.T) {
	c := newCache(t, Options{BlockSize: 16, MaxBytes: 1024})
	old := BlockKey{Key: "obj", ETag: `"v1"`, Index: 0}
	cur := BlockKey{Key: "obj", ETag: `"v2"`, Index: 0}
	if _, err := c.GetOrFill(context.Background(), old, func(context.Context) ([]byte, error) {
		return []byte("old old old old "), nil
	}); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetOrFill(context.Background(), cur, func(context.Context) ([]byte, error) {
		return []byte("new new new new "), nil
	})
	if err != nil || string(got) != "new new new new " {
		t.Fatalf("new ETag served %q, %v", got, err)
	}
	if s := c.Stats(); s.Misses != 2 {
		t.Fatalf("want 2 misses, got %+v", s)
	}
	// Invalidate drops every version.
	c.Invalidate("obj")
	if _, ok := c.Get(old); ok {
		t.Fatal("old version survived Invalidate")
	}
	if _, ok := c.Get(cur); ok {
		t.Fatal("new version survived Invalidate")
	}
	if s := c.Stats(); s.ResidentBytes != 0 {
		t.Fatalf("resident after Invalidate: %d", s.ResidentBytes)
	}
	checkInvariants(t, c, false)
}

func TestGetOrFillDedup(t *testing.T) {
	c := newCache(t, Options{BlockSize: 4096, MaxBytes: 1 << 20})
	k := BlockKey{Key: "k", ETag: "e", Index: 0}
	release := make(chan struct{})
	var fills atomic.Int64
	fill := func(ctx context.Context) ([]byte, error) {
		fills.Add(1)
		<-release
		return blockOf(k, 4096), nil
	}
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := c.GetOrFill(context.Background(), k, fill)
			if err == nil && !bytes.Equal(got, blockOf(k, 4096)) {
				err = errors.New("wrong block")
			}
			errs <- err
		}()
	}
	// Let every goroutine reach the cache before the fill returns.
	for c.Stats().Joins+c.Stats().Misses < n {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if fills.Load() != 1 {
		t.Fatalf("%d fills for one block", fills.Load())
	}
	if s := c.Stats(); s.Misses != 1 || s.Joins != n-1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestFirstWaiterCancelledOthersServed(t *testing.T) {
	c := newCache(t, Options{BlockSize: 100, MaxBytes: 1000})
	k := BlockKey{Key: "k", ETag: "e", Index: 1}
	release := make(chan struct{})
	fillCtxErr := make(chan error, 1)
	fill := func(ctx context.Context) ([]byte, error) {
		<-release
		fillCtxErr <- ctx.Err()
		if _, ok := ctx.Deadline(); !ok {
			return nil, errors.New("fill context has no deadline")
		}
		return blockOf(k, 100), nil
	}
	firstCtx, cancelFirst := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() {
		_, err := c.GetOrFill(firstCtx, k, fill)
		firstErr <- err
	}()
	for c.Stats().Misses == 0 {
		time.Sleep(time.Millisecond)
	}
	second := make(chan error, 1)
	go func() {
		got, err := c.GetOrFill(context.Background(), k, fill)
		if err == nil && !bytes.Equal(got, blockOf(k, 100)) {
			err = errors.New("wrong block")
		}
		second <- err
	}()
	for c.Stats().Joins == 0 {
		time.Sleep(time.Millisecond)
	}
	cancelFirst()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("first caller: %v, want context.Canceled", err)
	}
	close(release)
	if err := <-second; err != nil {
		t.Fatalf("second caller: %v", err)
	}
	if err := <-fillCtxErr; err != nil {
		t.Fatalf("the fill's context was cancelled with the first caller: %v", err)
	}
	if _, ok := c.Get(k); !ok {
		t.Fatal("block not cached after its first caller gave up")
	}
}

func TestAllWaitersGoneFillStillCached(t *testing.T) {
	c := newCache(t, Options{BlockSize: 10, MaxBytes: 100})
	k := BlockKey{Key: "k", ETag: "e"}
	release := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.GetOrFill(ctx, k, func(context.Context) ([]byte, error) {
		<-release
		return make([]byte, 10), nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok := c.Get(k); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an abandoned fill was not cached")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFillErrorNotCached(t *testing.T) {
	c := newCache(t, Options{BlockSize: 10, MaxBytes: 100})
	k := BlockKey{Key: "k", ETag: "e"}
	boom := errors.New("boom")
	_, err := c.GetOrFill(context.Background(), k, func(context.Context) ([]byte, error) { return nil, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	got, err := c.GetOrFill(context.Background(), k, func(context.Context) ([]byte, error) { return []byte("0123456789"), nil })
	if err != nil || string(got) != "0123456789" {
		t.Fatalf("retry: %q %v", got, err)
	}
	s := c.Stats()
	if s.FetchErrors != 1 || s.InflightBytes != 0 || s.ResidentBytes != 10 {
		t.Fatalf("stats %+v", s)
	}
}

func TestFillTimeout(t *testing.T) {
	c := newCache(t, Options{BlockSize: 10, MaxBytes: 100, FillTimeout: 20 * time.Millisecond})
	_, err := c.GetOrFill(context.Background(), BlockKey{Key: "k"}, func(ctx context.Context) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
}

func TestLRUEvictsOldestByBytes(t *testing.T) {
	c := newCache(t, Options{BlockSize: 100, MaxBytes: 300})
	ctx := context.Background()
	get := func(i int64) {
		k := BlockKey{Key: "k", ETag: "e", Index: i}
		if _, err := c.GetOrFill(ctx, k, func(context.Context) ([]byte, error) { return blockOf(k, 100), nil }); err != nil {
			t.Fatal(err)
		}
	}
	get(0)
	get(1)
	get(2)
	get(0) // 1 is now the oldest
	get(3)
	if _, ok := c.Get(BlockKey{Key: "k", ETag: "e", Index: 1}); ok {
		t.Fatal("block 1 should have been evicted")
	}
	for _, i := range []int64{0, 2, 3} {
		if _, ok := c.Get(BlockKey{Key: "k", ETag: "e", Index: i}); !ok {
			t.Fatalf("block %d evicted", i)
		}
	}
	s := c.Stats()
	if s.Evictions != 1 || s.EvictedBytes != 100 || s.ResidentBytes != 300 {
		t.Fatalf("stats %+v", s)
	}
	checkInvariants(t, c, false)
}

func TestBlockLargerThanBudgetIsServedNotKept(t *testing.T) {
	c := newCache(t, Options{BlockSize: 100, MaxBytes: 100})
	got, err := c.GetOrFill(context.Background(), BlockKey{Key: "big"}, func(context.Context) ([]byte, error) {
		return make([]byte, 250), nil // a fill may return more than a block
	})
	if err != nil || len(got) != 250 {
		t.Fatalf("%d bytes, %v", len(got), err)
	}
	if s := c.Stats(); s.ResidentBytes != 0 || s.InflightBytes != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestBudgetNeverExceededConcurrent hammers GetOrFill with many goroutines,
// slow fills and a small budget, and checks the budget (held + in flight)
// at every sample and at every fill.
func TestBudgetNeverExceededConcurrent(t *testing.T) {
	const bs = 1 << 10
	c := newCache(t, Options{BlockSize: bs, MaxBytes: 16 * bs})
	stop := make(chan struct{})
	peakCh := watchBudget(t, c, stop)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 300 {
				k := BlockKey{Key: []string{"a", "b", "c"}[r.IntN(3)], ETag: "e", Index: int64(r.IntN(40))}
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(r.IntN(3000))*time.Microsecond)
				delay := time.Duration(r.IntN(500)) * time.Microsecond
				flaky := r.IntN(20) == 0
				got, err := c.GetOrFill(ctx, k, func(ctx context.Context) ([]byte, error) {
					size := bs
					if k.Index == 39 {
						size = bs / 3 // a short last block
					}
					time.Sleep(delay)
					if flaky {
						return nil, errors.New("flaky")
					}
					return blockOf(k, size), nil
				})
				cancel()
				if err == nil {
					want := bs
					if k.Index == 39 {
						want = bs / 3
					}
					if !bytes.Equal(got, blockOf(k, want)) {
						t.Errorf("wrong data for %v", k)
					}
				}
				if r.IntN(50) == 0 {
					checkInvariants(t, c, false)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	peak := <-peakCh
	c.wg.Wait() // abandoned fills finish
	checkInvariants(t, c, false)
	if s := c.Stats(); s.InflightBytes != 0 {
		t.Fatalf("reservations leaked: %+v", s)
	}
	t.Logf("peak held+in flight %d of %d; stats %+v", peak, c.MaxBytes(), c.Stats())
}

func TestCloseCancelsFills(t *testing.T) {
	c, err := New(Options{BlockSize: 10, MaxBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	res := make(chan error, 1)
	go func() {
		_, err := c.GetOrFill(context.Background(), BlockKey{Key: "k"}, func(ctx context.Context) ([]byte, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		})
		res <- err
	}()
	<-started
	c.Close()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	if _, err := c.GetOrFill(context.Background(), BlockKey{Key: "k"}, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

type countingObserver struct {
	NopObserver
	mu       sync.Mutex
	lookups  map[Lookup]int
	fetched  map[Tier]int
	evicted  int
	disabled int
}

func (o *countingObserver) Lookup(l Lookup) {
	o.mu.Lock()
	o.lookups[l]++
	o.mu.Unlock()
}
func (o *countingObserver) Fetched(t Tier, _ int64, _ time.Duration, _ error) {
	o.mu.Lock()
	o.fetched[t]++
	o.mu.Unlock()
}
func (o *countingObserver) Evicted(_ Tier, n, _ int, _ int64) {
	o.mu.Lock()
	o.evicted += n
	o.mu.Unlock()
}
func (o *countingObserver) DiskDisabled(error) {
	o.mu.Lock()
	o.disabled++
	o.mu.Unlock()
}

func TestObserver(t *testing.T) {
	obs := &countingObserver{lookups: map[Lookup]int{}, fetched: map[Tier]int{}}
	c := newCache(t, Options{BlockSize: 10, MaxBytes: 20, Observer: obs})
	for _, i := range []int64{0, 0, 1, 2} {
		k := BlockKey{Key: "k", Index: i}
		if _, err := c.GetOrFill(context.Background(), k, func(context.Context) ([]byte, error) { return make([]byte, 10), nil }); err != nil {
			t.Fatal(err)
		}
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.lookups[LookupMiss] != 3 || obs.lookups[LookupHit] != 1 || obs.fetched[TierStore] != 3 || obs.evicted != 1 {
		t.Fatalf("observer saw %+v %+v evicted %d", obs.lookups, obs.fetched, obs.evicted)
	}
}

// TestHandedOutBlocksAreNeverRecycled: blocks returned by Get and
// GetOrFill may be kept by their callers, so their buffers must never be
// reused, however hard the cache churns.
func TestHandedOutBlocksAreNeverRecycled(t *testing.T) {
	const bs = 4096
	st := newFakeStore()
	data, etag := st.put("obj", 64*bs, 13)
	c := newCache(t, Options{BlockSize: bs, MaxBytes: 8 * bs})
	r := c.NewReader(Object{Key: "obj", ETag: etag, Size: 64 * bs}, st.rangeFunc("obj", etag))
	defer r.Close()
	buf := make([]byte, bs)
	if _, err := r.ReadAt(context.Background(), buf, 0); err != nil {
		t.Fatal(err)
	}
	k0 := BlockKey{Key: "obj", ETag: etag, Index: 0}
	// The read may return before block 0 is complete: wait for it.
	deadline := time.Now().Add(5 * time.Second)
	var viaGet []byte
	for ok := false; !ok; {
		if viaGet, ok = c.Get(k0); !ok && time.Now().After(deadline) {
			t.Fatal("block 0 not cached")
		}
		time.Sleep(time.Millisecond)
	}
	k1 := BlockKey{Key: "obj", ETag: etag, Index: 1}
	viaFill, err := c.GetOrFill(context.Background(), k1, func(context.Context) ([]byte, error) {
		return nil, errors.New("block 1 should be in flight or cached by readahead")
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // churn: every block evicted and its buffer reused
		if got := readAll(t, r, 3000); !bytes.Equal(got, data) {
			t.Fatal("wrong bytes")
		}
	}
	if c.Stats().Recycled == 0 {
		t.Fatal("nothing recycled: the test proves nothing")
	}
	if !bytes.Equal(viaGet, data[:bs]) || !bytes.Equal(viaFill, data[bs:2*bs]) {
		t.Fatal("a block handed out was overwritten")
	}
}

package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var errPrecondition = errors.New("precondition failed (test store)")

// fakeStore is an in-memory object store with the knobs the tests need.
type fakeStore struct {
	mu   sync.Mutex
	objs map[string]fakeObj

	gets      atomic.Int64 // GETs opened
	bytesSent atomic.Int64 // bytes delivered
	inflight  atomic.Int64 // GETs open now
	peakConc  atomic.Int64

	delay time.Duration // before each GET answers
	// gate, if set, is received from before each GET answers.
	gate chan struct{}
	// GETs from hangFrom on hang until cancelled.
	hangFrom atomic.Int64
	// stallAfter, if > 0, makes streams stop after that many bytes until
	// stall is closed.
	stallAfter int64
	stall      chan struct{}
	// breakAfter, if > 0, makes every stream fail after that many bytes
	// the first time breakCount is positive.
	breakAfter int
	breakCount atomic.Int64
	// perByte counts fetches of each byte offset (in blocks of 1 byte:
	// too big for large objects; only used when countBytes is set).
	countBytes bool
	fetchedAt  map[string][]int32
}

type fakeObj struct {
	data []byte
	etag string
}

func newFakeStore() *fakeStore {
	s := &fakeStore{objs: map[string]fakeObj{}, fetchedAt: map[string][]int32{}}
	s.hangFrom.Store(1 << 62)
	return s
}

// put stores random content and returns it with its ETag.
func (s *fakeStore) put(key string, size int, seed uint64) ([]byte, string) {
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, 7))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	etag := fmt.Sprintf("\"etag-%s-%d\"", key, seed)
	s.mu.Lock()
	s.objs[key] = fakeObj{data, etag}
	s.fetchedAt[key] = make([]int32, size)
	s.mu.Unlock()
	return data, etag
}

// rangeFunc is what fs would build from ObjectStore.GetRange.
func (s *fakeStore) rangeFunc(key, etag string) RangeFunc {
	return func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
		s.gets.Add(1)
		c := s.inflight.Add(1)
		for {
			p := s.peakConc.Load()
			if c <= p || s.peakConc.CompareAndSwap(p, c) {
				break
			}
		}
		done := func() { s.inflight.Add(-1) }
		if off >= s.hangFrom.Load() {
			<-ctx.Done()
			done()
			return nil, ctx.Err()
		}
		if s.gate != nil {
			select {
			case <-s.gate:
			case <-ctx.Done():
				done()
				return nil, ctx.Err()
			}
		}
		if s.delay > 0 {
			select {
			case <-time.After(s.delay):
			case <-ctx.Done():
				done()
				return nil, ctx.Err()
			}
		}
		s.mu.Lock()
		o, ok := s.objs[key]
		if ok && s.countBytes {
			for i := off; i < min(off+n, int64(len(o.data))); i++ {
				s.fetchedAt[key][i]++
			}
		}
		s.mu.Unlock()
		if !ok {
			done()
			return nil, errors.New("no such key")
		}
		if o.etag != etag {
			done()
			return nil, fmt.Errorf("get %q: %w", key, errPrecondition)
		}
		end := min(off+n, int64(len(o.data)))
		var r io.Reader = bytes.NewReader(o.data[off:end])
		if s.breakAfter > 0 && s.breakCount.Add(-1) >= 0 {
			r = io.MultiReader(io.LimitReader(r, int64(s.breakAfter)), errReader{io.ErrUnexpectedEOF})
		}
		if s.stallAfter > 0 {
			r = io.MultiReader(io.LimitReader(r, s.stallAfter), stallReader{ctx, s.stall}, r)
		}
		return &ctxBody{ctx: ctx, r: r, s: s, done: done}, nil
	}
}

// stallReader blocks until release is closed, then reads as EOF.
type stallReader struct {
	ctx     context.Context
	release chan struct{}
}

func (s stallReader) Read([]byte) (int, error) {
	select {
	case <-s.release:
		return 0, io.EOF
	case <-s.ctx.Done():
		return 0, s.ctx.Err()
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// ctxBody is a response body that fails once its request's ctx is done,
// as an HTTP body does.
type ctxBody struct {
	ctx  context.Context
	r    io.Reader
	s    *fakeStore
	once sync.Once
	done func()
}

func (b *ctxBody) Read(p []byte) (int, error) {
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	// Small reads, like a socket, so cancellation is noticed mid-block.
	if len(p) > 64<<10 {
		p = p[:64<<10]
	}
	n, err := b.r.Read(p)
	b.s.bytesSent.Add(int64(n))
	return n, err
}

func (b *ctxBody) Close() error {
	b.once.Do(b.done)
	return nil
}

// checkInvariants verifies the cache's accounting against its contents.
func checkInvariants(t testing.TB, c *BlockCache, allowOver bool) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var lruB, aheadB, res, pf int64
	for _, k := range c.lru.Keys() {
		b, _ := c.lru.Peek(k)
		lruB += b.size
		if !b.held || b.data == nil {
			t.Errorf("block %v in the LRU: held %v, data %v", k, b.held, b.data != nil)
		}
		if _, dup := c.ahead[k]; dup {
			t.Errorf("block %v both read and unread", k)
		}
	}
	for k, b := range c.ahead {
		aheadB += b.size
		if !b.held || b.data == nil || b.owner == nil {
			t.Errorf("unread block %v: held %v, data %v, owner %v", k, b.held, b.data != nil, b.owner != nil)
		}
	}
	for _, cl := range c.inflight {
		res += cl.reserved
		if cl.prefetch {
			pf += cl.reserved
		}
	}
	indexed := 0
	for key, blocks := range c.byObject {
		for k := range blocks {
			indexed++
			_, inAhead := c.ahead[k]
			if k.Key != key || !inAhead && !c.lru.Contains(k) {
				t.Errorf("byObject[%q] lists %v, which the cache does not hold", key, k)
			}
		}
	}
	if want := c.lru.Len() + len(c.ahead); indexed != want {
		t.Errorf("byObject lists %d blocks, the cache holds %d", indexed, want)
	}
	if lruB+aheadB != c.resident {
		t.Errorf("resident %d, blocks hold %d", c.resident, lruB+aheadB)
	}
	if aheadB != c.aheadB {
		t.Errorf("aheadB %d, unread blocks hold %d", c.aheadB, aheadB)
	}
	if int64(len(c.free))*c.bs != c.freeB {
		t.Errorf("freeB %d, free list holds %d buffers", c.freeB, len(c.free))
	}
	// Cancelled calls leave inflight but keep their reservation until
	// their goroutine finishes, so inflight can only account for less.
	if res > c.reserved || pf > c.pfRes {
		t.Errorf("reserved %d (prefetch %d), inflight calls hold %d (%d)", c.reserved, c.pfRes, res, pf)
	}
	if !allowOver && c.resident+c.reserved+c.freeB > c.max {
		t.Errorf("budget exceeded: resident %d + in flight %d + free %d > %d", c.resident, c.reserved, c.freeB, c.max)
	}
	if c.pfRes+c.aheadB > c.pfMax {
		t.Errorf("prefetch budget exceeded: %d + %d > %d", c.pfRes, c.aheadB, c.pfMax)
	}
}

// watchBudget samples the budget until stop is closed and fails the test
// if it is ever exceeded. It returns the peak of resident+in-flight.
func watchBudget(t *testing.T, c *BlockCache, stop <-chan struct{}) <-chan int64 {
	peak := make(chan int64, 1)
	go func() {
		var p int64
		for {
			s := c.Stats()
			v := s.ResidentBytes + s.InflightBytes + s.FreeBytes
			p = max(p, v)
			if v > c.MaxBytes() {
				t.Errorf("budget exceeded: %d + %d + %d > %d", s.ResidentBytes, s.InflightBytes, s.FreeBytes, c.MaxBytes())
			}
			select {
			case <-stop:
				peak <- p
				return
			default:
				time.Sleep(20 * time.Microsecond)
			}
		}
	}()
	return peak
}

// logCapture is a slog handler that records messages.
type logCapture struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
	l.msgs = append(l.msgs, b.String())
	return nil
}
func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCapture) WithGroup(string) slog.Handler      { return l }

func (l *logCapture) count(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

// newCache returns a cache that poisons recycled buffers: a block read
// after its buffer was reused shows as wrong bytes.
func newCache(t testing.TB, opts Options) *BlockCache {
	t.Helper()
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	c.poison = true
	t.Cleanup(c.Close)
	return c
}

func blockOf(k BlockKey, size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(int(k.Index) + i + len(k.ETag))
	}
	return b
}

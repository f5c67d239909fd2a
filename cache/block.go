package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// BlockKey names one block of one version of an object. The ETag is part of
// the key so that a replaced object can never be served from the blocks of
// the version it replaced.
type BlockKey struct {
	Key   string // object key, as the store knows it
	ETag  string // the object's ETag when the block was read
	Index int64  // block number: bytes [Index*BlockSize, (Index+1)*BlockSize)
}

// FillFunc produces one block for GetOrFill: typically one ranged GET
// pinned to the key's ETag. It runs on a context detached from the caller
// that asked first (see GetOrFill).
type FillFunc func(ctx context.Context) ([]byte, error)

// RangeFunc opens a stream of n bytes of one object version from offset off:
// s3backend.ObjectStore.GetRange with the key and If-Match ETag bound. The
// cache reads the stream in block-sized pieces and closes it.
type RangeFunc func(ctx context.Context, off, n int64) (io.ReadCloser, error)

// Errors.
var (
	// ErrClosed: the cache was closed.
	ErrClosed = errors.New("block cache closed")
	// ErrShortObject: the store delivered fewer bytes than the object's
	// size promised, even after re-opening the stream: the object changed
	// or shrank under a read that was not pinned to its ETag.
	ErrShortObject = errors.New("object shorter than expected")
)

// Options configure a BlockCache. Zero fields take the defaults noted.
type Options struct {
	// BlockSize is the size of a block in bytes (default 1 MiB).
	BlockSize int64
	// MaxBytes bounds the memory the cache holds: blocks kept plus blocks
	// being fetched (default 256 MiB). See the package documentation for
	// the little that lives outside it.
	MaxBytes int64
	// PrefetchBytes bounds readahead: unread prefetched blocks plus
	// prefetches in flight (default MaxBytes/2, at most MaxBytes minus two
	// blocks), so that readahead cannot take the whole budget from reads
	// that are waiting. It is also the Readahead's TotalBytes, shared
	// fairly among sequential readers.
	PrefetchBytes int64
	// FillTimeout bounds one fetch, which runs detached from the reads
	// waiting for it (default 2 minutes).
	FillTimeout time.Duration
	// Readahead is the sequential-readahead policy of Readers (BlockSize
	// and TotalBytes are filled in by New). MaxWindowBytes < 0 disables it.
	Readahead ReadaheadConfig
	// Disk is an optional second tier, consulted before the store; filled
	// blocks are written to it asynchronously. The caller owns it and
	// closes it after the BlockCache.
	Disk *DiskCache
	// Observer receives events for metrics. Optional.
	Observer Observer
}

// Defaults.
const (
	DefaultBlockSize   = 1 << 20
	DefaultMaxBytes    = 256 << 20
	DefaultFillTimeout = 2 * time.Minute
)

// maxReopens is how many times a run re-opens a stream that broke mid-body
// (a dropped connection) before failing the blocks it has not delivered.
const maxReopens = 2

// BlockCache is an in-memory cache of fixed-size blocks of objects, bounded
// in bytes, whose fills are shared: however many readers want a block at
// once, it is fetched once. Safe for concurrent use.
type BlockCache struct {
	bs      int64
	max     int64
	pfMax   int64
	timeout time.Duration
	disk    *DiskCache
	obs     Observer
	ra      *Readahead

	base context.Context // parent of every fetch; cancelled by Close
	stop context.CancelFunc
	wg   sync.WaitGroup // fetch goroutines

	// mu guards everything below, and the fields of calls, runs and
	// Readers documented as guarded by the cache lock. It is a leaf: no
	// I/O, no observer call and no other lock is taken while it is held.
	mu       sync.Mutex
	lru      *simplelru.LRU[BlockKey, []byte] // blocks that have been read; evicted by bytes, never by count
	ahead    map[BlockKey]aheadBlock          // prefetched blocks nobody has read yet; not in lru
	inflight map[BlockKey]*call               // blocks being fetched
	resident int64                            // bytes in lru and ahead
	aheadB   int64                            // bytes in ahead
	reserved int64                            // budget held by calls in flight
	pfRes    int64                            // the part of reserved held by prefetch runs
	freed    chan struct{}                    // closed when budget is released, if someone waits; else nil
	closed   bool

	ctr counters
}

// aheadBlock is a prefetched block waiting for its first read.
type aheadBlock struct {
	data  []byte
	owner *Reader // whose readahead fetched it; its Close moves the block to the LRU
}

// call is the fetch of one block. Its result fields are written once,
// before done is closed, and only read after.
type call struct {
	key  BlockKey
	size int64 // expected length; -1 when unknown (GetOrFill)
	run  *run
	done chan struct{}
	data []byte
	err  error

	// Guarded by the cache lock.
	reserved   int64 // budget held until the call finishes
	prefetch   bool  // reserved counts against PrefetchBytes (pfRes)
	wanted     bool  // a foreground read waits or waited for it: keep it in the LRU, not in ahead
	registered bool  // still in inflight (false once finished or cancelled)
}

// run is one fetch goroutine: a FillFunc for one block, or one ranged GET
// streaming consecutive blocks of one object.
type run struct {
	calls  []*call
	fill   FillFunc
	fetch  RangeFunc
	owner  *Reader // the Reader whose readahead started it, if any
	ctx    context.Context
	cancel context.CancelFunc

	// Guarded by the cache lock.
	keep   bool // a foreground read wants one of its blocks: never cancel
	owners int  // open Readers whose readahead wants it
	done   bool // the goroutine has finished every call
}

// New returns a BlockCache.
func New(opts Options) (*BlockCache, error) {
	if opts.BlockSize == 0 {
		opts.BlockSize = DefaultBlockSize
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.FillTimeout <= 0 {
		opts.FillTimeout = DefaultFillTimeout
	}
	if opts.BlockSize < 0 || opts.MaxBytes < 0 || opts.PrefetchBytes < 0 {
		return nil, fmt.Errorf("cache: negative size in options")
	}
	if opts.PrefetchBytes == 0 {
		opts.PrefetchBytes = opts.MaxBytes / 2
	}
	opts.PrefetchBytes = min(opts.PrefetchBytes, opts.MaxBytes-2*opts.BlockSize)
	if opts.PrefetchBytes < opts.BlockSize {
		// Too small a budget to read ahead without starving reads.
		opts.PrefetchBytes = 0
		opts.Readahead.MaxWindowBytes = -1
	}
	if opts.Observer == nil {
		opts.Observer = NopObserver{}
	}
	// Entries are evicted by bytes (makeRoomLocked), so the count limit is
	// only there because simplelru requires one.
	lru, err := simplelru.NewLRU[BlockKey, []byte](math.MaxInt, nil)
	if err != nil {
		return nil, err
	}
	ra := opts.Readahead
	ra.BlockSize = opts.BlockSize
	if ra.TotalBytes == 0 {
		ra.TotalBytes = opts.PrefetchBytes
	}
	c := &BlockCache{
		bs:       opts.BlockSize,
		max:      opts.MaxBytes,
		pfMax:    opts.PrefetchBytes,
		timeout:  opts.FillTimeout,
		disk:     opts.Disk,
		obs:      opts.Observer,
		ra:       NewReadahead(ra),
		lru:      lru,
		ahead:    make(map[BlockKey]aheadBlock),
		inflight: make(map[BlockKey]*call),
	}
	c.base, c.stop = context.WithCancel(context.Background())
	return c, nil
}

// BlockSize returns the block size in bytes.
func (c *BlockCache) BlockSize() int64 { return c.bs }

// MaxBytes returns the memory budget in bytes.
func (c *BlockCache) MaxBytes() int64 { return c.max }

// Readahead returns the readahead policy shared by this cache's Readers.
func (c *BlockCache) Readahead() *Readahead { return c.ra }

// Get returns the block if it is in memory. It never fetches and never
// consults the disk tier. The slice must not be modified.
func (c *BlockCache) Get(k BlockKey) ([]byte, bool) {
	c.mu.Lock()
	data, res, ok := c.lookupLocked(k)
	c.mu.Unlock()
	if ok {
		c.countLookup(res)
	}
	return data, ok
}

// GetOrFill returns the block, from memory, else from the disk tier, else by
// calling fill. Concurrent calls for one key share one fill. The fill runs
// on a context of its own (with FillTimeout), not on ctx: if the caller
// that started it gives up (ctx cancelled, e.g. a FUSE interrupt), the fill
// goes on for the others and its block is still cached. Each caller stops
// waiting when its own ctx is done and gets ctx.Err(). Errors are not
// cached: the next call fills again. The slice must not be modified.
//
// A fill whose block does not fit in the budget waits for fetches in flight
// to finish (evicting older blocks first); it never waits when nothing else
// is in flight, so a block larger than the budget is still returned, just
// not kept.
func (c *BlockCache) GetOrFill(ctx context.Context, k BlockKey, fill FillFunc) ([]byte, error) {
	c.mu.Lock()
	for {
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		if data, res, ok := c.lookupLocked(k); ok {
			c.mu.Unlock()
			c.countLookup(res)
			return data, nil
		}
		if cl := c.inflight[k]; cl != nil {
			c.wantLocked(cl)
			c.mu.Unlock()
			c.countLookup(LookupJoin)
			return cl.wait(ctx)
		}
		ev, ok := c.makeRoomLocked(c.bs, true)
		if ok || c.reserved == 0 {
			r := &run{fill: fill, keep: true}
			cl := c.newCallLocked(r, k, -1, c.bs, false)
			cl.wanted = true
			c.startLocked(r)
			c.mu.Unlock()
			c.reportEvictions(ev)
			c.countLookup(LookupMiss)
			return cl.wait(ctx)
		}
		if err := c.waitBudgetLocked(ctx, ev); err != nil {
			return nil, err
		}
	}
}

// Invalidate drops every block of the object key, whatever its ETag, from
// memory and from the disk tier. Fetches in flight are left alone: their
// blocks are keyed by the ETag they were pinned to, so caching them is
// harmless. Call it when a read found the object changed, to free the
// memory its old blocks hold.
func (c *BlockCache) Invalidate(key string) {
	c.mu.Lock()
	for _, k := range c.lru.Keys() {
		if k.Key == key {
			data, _ := c.lru.Peek(k)
			c.lru.Remove(k)
			c.resident -= int64(len(data))
		}
	}
	for k, a := range c.ahead {
		if k.Key == key {
			delete(c.ahead, k)
			c.resident -= int64(len(a.data))
			c.aheadB -= int64(len(a.data))
		}
	}
	c.signalFreedLocked()
	c.mu.Unlock()
	if c.disk != nil {
		c.disk.Invalidate(key)
	}
}

// Stats returns a snapshot of the cache's counters and gauges.
func (c *BlockCache) Stats() Stats {
	c.mu.Lock()
	s := Stats{
		ResidentBytes: c.resident,
		AheadBytes:    c.aheadB,
		InflightBytes: c.reserved,
		Blocks:        c.lru.Len() + len(c.ahead),
	}
	c.mu.Unlock()
	s.Hits = c.ctr.hits.Load()
	s.PrefetchHits = c.ctr.prefetchHits.Load()
	s.Joins = c.ctr.joins.Load()
	s.Misses = c.ctr.misses.Load()
	s.Fetches = c.ctr.fetches.Load()
	s.FetchErrors = c.ctr.fetchErrors.Load()
	s.FetchedBytes = c.ctr.fetchedBytes.Load()
	s.DiskHits = c.ctr.diskHits.Load()
	s.PrefetchBlocks = c.ctr.prefetchBlocks.Load()
	s.PrefetchSkipped = c.ctr.prefetchSkipped.Load()
	s.PrefetchCancelled = c.ctr.prefetchCancelled.Load()
	s.Evictions = c.ctr.evictions.Load()
	s.EvictedUnread = c.ctr.evictedUnread.Load()
	s.EvictedBytes = c.ctr.evictedBytes.Load()
	s.BudgetWaits = c.ctr.budgetWaits.Load()
	return s
}

// Close cancels every fetch in flight, waits for their goroutines and
// empties the cache. Later calls fail with ErrClosed. It does not close the
// disk tier.
func (c *BlockCache) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.stop()
	c.wg.Wait()
	c.mu.Lock()
	c.lru.Purge()
	clear(c.ahead)
	c.resident, c.aheadB = 0, 0
	c.mu.Unlock()
}

// lookupLocked returns a block held in memory. A prefetched block's first
// read moves it into the LRU, where it ages like any block read.
func (c *BlockCache) lookupLocked(k BlockKey) ([]byte, Lookup, bool) {
	if data, ok := c.lru.Get(k); ok {
		return data, LookupHit, true
	}
	if a, ok := c.ahead[k]; ok {
		delete(c.ahead, k)
		c.aheadB -= int64(len(a.data))
		c.lru.Add(k, a.data)
		return a.data, LookupPrefetchHit, true
	}
	return nil, 0, false
}

// heldLocked reports whether the block is in memory or being fetched,
// without touching its recency.
func (c *BlockCache) heldLocked(k BlockKey) bool {
	if c.lru.Contains(k) {
		return true
	}
	if _, ok := c.ahead[k]; ok {
		return true
	}
	_, ok := c.inflight[k]
	return ok
}

// wantLocked marks an in-flight call as wanted by a foreground read: its
// run must not be cancelled and its block goes to the LRU.
func (c *BlockCache) wantLocked(cl *call) {
	cl.wanted = true
	cl.run.keep = true
}

// evictions tallies what makeRoomLocked dropped, reported after unlocking.
type evictions struct {
	blocks, unread int
	bytes          int64
}

// makeRoomLocked evicts until need more bytes fit in the budget, and
// reports whether they do. It evicts blocks that have been read, oldest
// first; a foreground read may also evict prefetched blocks nobody has read
// yet, rather than wait.
func (c *BlockCache) makeRoomLocked(need int64, foreground bool) (evictions, bool) {
	var ev evictions
	for c.resident+c.reserved+need > c.max {
		if _, data, ok := c.lru.RemoveOldest(); ok {
			c.resident -= int64(len(data))
			ev.blocks++
			ev.bytes += int64(len(data))
			continue
		}
		if !foreground || len(c.ahead) == 0 {
			return ev, false
		}
		for k, a := range c.ahead { // any one: they are all unread
			delete(c.ahead, k)
			c.resident -= int64(len(a.data))
			c.aheadB -= int64(len(a.data))
			ev.blocks++
			ev.unread++
			ev.bytes += int64(len(a.data))
			break
		}
	}
	return ev, true
}

func (c *BlockCache) reportEvictions(ev evictions) {
	if ev.blocks == 0 {
		return
	}
	c.ctr.evictions.Add(int64(ev.blocks))
	c.ctr.evictedUnread.Add(int64(ev.unread))
	c.ctr.evictedBytes.Add(ev.bytes)
	c.obs.Evicted(TierMemory, ev.blocks, ev.unread, ev.bytes)
}

// waitBudgetLocked waits, without the lock, until some budget is released
// or ctx is done, and returns with the lock held unless it returns an error.
func (c *BlockCache) waitBudgetLocked(ctx context.Context, ev evictions) error {
	if c.freed == nil {
		c.freed = make(chan struct{})
	}
	ch := c.freed
	c.mu.Unlock()
	c.reportEvictions(ev)
	c.ctr.budgetWaits.Add(1)
	select {
	case <-ch:
		c.mu.Lock()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// signalFreedLocked wakes the reads waiting for budget.
func (c *BlockCache) signalFreedLocked() {
	if c.freed != nil {
		close(c.freed)
		c.freed = nil
	}
}

// newCallLocked registers the fetch of block k (expected size bytes, -1 if
// unknown) in run r, holding reserve bytes of budget until it finishes;
// prefetch says whether they count against PrefetchBytes too.
func (c *BlockCache) newCallLocked(r *run, k BlockKey, size, reserve int64, prefetch bool) *call {
	cl := &call{key: k, size: size, run: r, done: make(chan struct{}), reserved: reserve, prefetch: prefetch, registered: true}
	r.calls = append(r.calls, cl)
	c.inflight[k] = cl
	c.reserved += reserve
	if prefetch {
		c.pfRes += reserve
	}
	return cl
}

// startLocked starts the goroutine of a run whose calls are registered.
func (c *BlockCache) startLocked(r *run) {
	r.ctx, r.cancel = context.WithTimeout(c.base, c.timeout)
	c.wg.Add(1)
	go c.runFetch(r)
}

// cancelRunLocked abandons a prefetch run nobody wants any more: its
// blocks leave inflight at once (a later read starts a fresh fetch rather
// than join a doomed one) and its goroutine stops at the next read.
func (c *BlockCache) cancelRunLocked(r *run) {
	n := 0
	for _, cl := range r.calls {
		if cl.registered {
			cl.registered = false
			delete(c.inflight, cl.key)
			n++
		}
	}
	c.ctr.prefetchCancelled.Add(int64(n))
	r.cancel()
}

// finish publishes a call's result: it releases the call's budget, keeps a
// good block (in the LRU if a read wants it, else among the unread
// prefetched blocks) and wakes its waiters.
func (c *BlockCache) finish(cl *call, data []byte, err error) {
	if err != nil {
		data = nil
	}
	var ev evictions
	c.mu.Lock()
	c.reserved -= cl.reserved
	if cl.prefetch {
		c.pfRes -= cl.reserved
	}
	cl.reserved = 0
	if cl.registered {
		cl.registered = false
		delete(c.inflight, cl.key)
		if err == nil && !c.closed {
			ev = c.insertLocked(cl, data)
		}
	}
	c.signalFreedLocked()
	cl.data, cl.err = data, err
	c.mu.Unlock()
	close(cl.done)
	c.reportEvictions(ev)
}

// insertLocked keeps a fetched block. The call's reservation covered it
// unless its size was unknown; if it does not fit even after evicting, it
// is handed to its waiters but not kept.
func (c *BlockCache) insertLocked(cl *call, data []byte) evictions {
	n := int64(len(data))
	ev, ok := c.makeRoomLocked(n, false)
	if !ok {
		return ev
	}
	c.resident += n
	if cl.wanted || cl.run.owner == nil || cl.run.owner.closed {
		c.lru.Add(cl.key, data)
	} else {
		c.ahead[cl.key] = aheadBlock{data: data, owner: cl.run.owner}
		c.aheadB += n
	}
	return ev
}

// wait returns the call's result, or ctx's error if ctx is done first.
func (cl *call) wait(ctx context.Context) ([]byte, error) {
	select {
	case <-cl.done:
		return cl.data, cl.err
	default:
	}
	select {
	case <-cl.done:
		return cl.data, cl.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// runFetch is a run's goroutine.
func (c *BlockCache) runFetch(r *run) {
	defer c.wg.Done()
	defer r.cancel()
	if r.fill != nil {
		c.runFill(r)
	} else {
		c.runRange(r)
	}
	c.mu.Lock()
	r.done = true
	c.mu.Unlock()
}

// fromDisk serves a call from the disk tier if it has the block.
func (c *BlockCache) fromDisk(cl *call) bool {
	if c.disk == nil {
		return false
	}
	t0 := time.Now()
	data, ok := c.disk.Get(cl.key, cl.size)
	if !ok {
		return false
	}
	c.ctr.diskHits.Add(1)
	c.obs.Fetched(TierDisk, int64(len(data)), time.Since(t0), nil)
	c.finish(cl, data, nil)
	return true
}

func (c *BlockCache) noteFetch(bytes int64, d time.Duration, err error) {
	c.ctr.fetches.Add(1)
	c.ctr.fetchedBytes.Add(bytes)
	if err != nil && !errors.Is(err, context.Canceled) {
		c.ctr.fetchErrors.Add(1)
	}
	c.obs.Fetched(TierStore, bytes, d, err)
}

func (c *BlockCache) runFill(r *run) {
	cl := r.calls[0]
	if c.fromDisk(cl) {
		return
	}
	t0 := time.Now()
	data, err := r.fill(r.ctx)
	if err == nil && cl.size >= 0 && int64(len(data)) != cl.size {
		err = fmt.Errorf("block %d of %q: fill returned %d bytes, want %d: %w", cl.key.Index, cl.key.Key, len(data), cl.size, ErrShortObject)
	}
	c.noteFetch(int64(len(data)), time.Since(t0), err)
	c.finish(cl, data, err)
	if err == nil && c.disk != nil {
		c.disk.Put(cl.key, data)
	}
}

// runRange fetches consecutive blocks with one ranged GET, delivering each
// block as soon as its bytes are in. A stream that breaks is re-opened
// where it broke, at most maxReopens times.
func (c *BlockCache) runRange(r *run) {
	var (
		body    io.ReadCloser
		t0      time.Time
		got     int64 // bytes delivered by the current stream
		reopens int
	)
	closeBody := func(err error) {
		if body != nil {
			body.Close()
			body = nil
			c.noteFetch(got, time.Since(t0), err)
		}
	}
	end := r.calls[len(r.calls)-1].key.Index*c.bs + r.calls[len(r.calls)-1].size
	for i := 0; i < len(r.calls); i++ {
		cl := r.calls[i]
		if err := r.ctx.Err(); err != nil {
			closeBody(err)
			c.failFrom(r, i, err)
			return
		}
		if body == nil && c.fromDisk(cl) {
			continue
		}
		off := cl.key.Index * c.bs
		if body == nil {
			var err error
			t0, got = time.Now(), 0
			body, err = r.fetch(r.ctx, off, end-off)
			if err != nil {
				body = nil
				c.noteFetch(0, time.Since(t0), err)
				c.failFrom(r, i, fmt.Errorf("block %d of %q: %w", cl.key.Index, cl.key.Key, err))
				return
			}
		}
		buf := make([]byte, cl.size)
		n, err := io.ReadFull(body, buf)
		got += int64(n)
		if err == nil {
			c.finish(cl, buf, nil)
			if c.disk != nil {
				c.disk.Put(cl.key, buf)
			}
			continue
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("block %d of %q: stream ended after %d of %d bytes: %w", cl.key.Index, cl.key.Key, n, cl.size, ErrShortObject)
		} else {
			err = fmt.Errorf("block %d of %q: %w", cl.key.Index, cl.key.Key, err)
		}
		closeBody(err)
		if reopens >= maxReopens || r.ctx.Err() != nil {
			c.failFrom(r, i, err)
			return
		}
		reopens++
		i-- // retry this block on a new stream
	}
	closeBody(nil)
}

// failFrom fails the calls of r from index i on.
func (c *BlockCache) failFrom(r *run, i int, err error) {
	for _, cl := range r.calls[i:] {
		c.finish(cl, nil, err)
	}
}

func (c *BlockCache) countLookup(l Lookup) {
	switch l {
	case LookupHit:
		c.ctr.hits.Add(1)
	case LookupPrefetchHit:
		c.ctr.prefetchHits.Add(1)
	case LookupJoin:
		c.ctr.joins.Add(1)
	case LookupMiss:
		c.ctr.misses.Add(1)
	}
	c.obs.Lookup(l)
}

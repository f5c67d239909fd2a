package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
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
	// DiskSequential writes the blocks fetched by sequential readahead to
	// the disk tier too. By default only blocks fetched for the reads
	// themselves go there, which for a sequential reader is almost none:
	// a stream of a big file would otherwise cost a disk write per byte
	// read and push out of the tier what random readers come back to.
	DiskSequential bool
	// Observer receives events for metrics. Optional.
	Observer Observer
}

// Defaults. The readahead defaults (RunBytes 16 MiB, MaxWindowBytes 64
// MiB) come from BenchmarkMinIO: against MinIO on loopback, 8 MiB GETs
// reached about 80% of the throughput of 16 MiB ones.
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
//
// Block buffers are recycled: an evicted block's buffer is reused by the
// next fetch instead of being left to the garbage collector, which saves
// zeroing a fresh buffer per block (a fifth of the read path's CPU) and
// keeps garbage from piling up beyond the budget. A buffer is only reused
// once nothing can read it any more: Reader copies pin the blocks they copy
// from, queued disk writes pin theirs, and blocks handed out by Get and
// GetOrFill (whose callers may keep them) are never reused.
type BlockCache struct {
	bs      int64
	max     int64
	pfMax   int64
	timeout time.Duration
	disk    *DiskCache
	diskSeq bool // Options.DiskSequential
	obs     Observer
	ra      *Readahead
	poison  bool // tests: overwrite recycled buffers, so that a use after recycling shows

	base context.Context // parent of every fetch; cancelled by Close
	stop context.CancelFunc
	wg   sync.WaitGroup // fetch goroutines

	// mu guards everything below, and the fields of blocks, calls, runs
	// and Readers documented as guarded by the cache lock. It is a leaf:
	// no I/O, no observer call and no other lock is taken while it is
	// held (the calls' own pmu excepted, which is a leaf too).
	mu       sync.Mutex
	lru      *simplelru.LRU[BlockKey, *block] // blocks that have been read; evicted by bytes, never by count
	ahead    map[BlockKey]*block              // prefetched blocks nobody has read yet; not in lru
	byObject objectIndex                      // the keys of lru and ahead, by object
	inflight map[BlockKey]*call               // blocks being fetched
	free     [][]byte                         // recycled buffers, each of capacity bs
	resident int64                            // bytes of the blocks in lru and ahead
	aheadB   int64                            // the part of resident in ahead
	reserved int64                            // budget held by calls in flight
	pfRes    int64                            // the part of reserved held by prefetches
	freeB    int64                            // bytes in free
	freed    chan struct{}                    // closed when budget is released, if someone waits; else nil
	closed   bool
	freq     freqSketch // recent reads per block, for promoting disk hits; only with a disk tier

	slabs     slabAlloc // where fresh block buffers come from (slab.go)
	rangeBufs bufPool   // buffers of disk-tier range reads handed out in Slices

	ctr counters
}

// block is a block's bytes and what may still read them.
type block struct {
	data []byte
	size int64 // bytes accounted while held: cap(data) for our buffers, len for a FillFunc's

	// Guarded by the cache lock.
	pins     int32   // Reader copies in progress and queued disk writes
	fetching bool    // its call has not finished: the run goroutine still writes data
	held     bool    // in lru or ahead
	escaped  bool    // handed to a GetOrFill or Get caller, or a FillFunc's own: never recycled
	owner    *Reader // while in ahead: whose readahead fetched it
}

// call is the fetch of one block. Its result fields are written once,
// before done is closed, and only read after.
//
// A block streamed by a ranged GET is also readable while it arrives: the
// run goroutine writes blk.data in order and publishes how much is written
// in filled, so that a read needing only the first bytes of the block (the
// first read of a file, or a reader that caught up with readahead) does not
// wait for the whole block. Bytes below filled are never written again.
type call struct {
	key  BlockKey
	size int64 // expected length; -1 when unknown (GetOrFill)
	run  *run
	blk  *block // its data is set (by the run, or from free) before filled first moves
	done chan struct{}
	data []byte
	err  error

	filled atomic.Int64 // bytes of blk.data written

	pmu sync.Mutex    // guards pch
	pch chan struct{} // closed when filled moves or the call ends, if someone waits; else nil

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
	owner  *Reader // the Reader whose readahead its blocks are for, if any
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
		diskSeq:  opts.DiskSequential,
		obs:      opts.Observer,
		ra:       NewReadahead(ra),
		ahead:    make(map[BlockKey]*block),
		byObject: make(objectIndex),
		inflight: make(map[BlockKey]*call),
	}
	// Entries are evicted by bytes (reserveLocked), so the count limit is
	// only there because simplelru requires one. Its callback runs under
	// c.mu, as every call to lru does.
	lru, err := simplelru.NewLRU[BlockKey, *block](math.MaxInt, func(k BlockKey, _ *block) { c.unindexLocked(k) })
	if err != nil {
		return nil, err
	}
	c.lru = lru
	if opts.Disk != nil {
		blocks := opts.MaxBytes / opts.BlockSize
		if dm := opts.Disk.max / opts.BlockSize; dm > blocks {
			blocks = dm
		}
		c.freq = newFreqSketch(blocks)
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
	b, res, ok := c.lookupLocked(k)
	if ok {
		b.escaped = true
	}
	c.mu.Unlock()
	if !ok {
		return nil, false
	}
	c.countLookup(res)
	return b.data, true
}

// Peek returns block k if it is in memory, pinned so that its buffer is not
// reused until the result is Released, without counting a lookup or
// refreshing its recency: it is for copying a block somewhere else (the
// kernel's page cache), not for serving a read. A block still being
// fetched is waited for (a read returns once its own bytes are in, often
// before the rest of the block), unless ctx ends first.
func (c *BlockCache) Peek(ctx context.Context, k BlockKey) (*Slices, bool) {
	for range 2 {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, false
		}
		b, ok := c.lru.Peek(k)
		if !ok {
			b, ok = c.ahead[k]
		}
		if ok && b.data != nil {
			b.pins++
			c.mu.Unlock()
			return &Slices{Vecs: [][]byte{b.data}, c: c, pins: []*block{b}}, true
		}
		cl := c.inflight[k]
		c.mu.Unlock()
		if cl == nil {
			return nil, false
		}
		select {
		case <-cl.done:
		case <-ctx.Done():
			return nil, false
		}
	}
	return nil, false
}

// GetOrFill returns the block, from memory, else from the disk tier, else by
// calling fill. Concurrent calls for one key share one fill. The fill runs
// on a context of its own (with FillTimeout), not on ctx: if the caller
// that started it gives up (ctx cancelled, e.g. a FUSE interrupt), the fill
// goes on for the others and its block is still cached. Each caller stops
// waiting when its own ctx is done and gets ctx.Err(). Errors are not
// cached: the next call fills again. The slice must not be modified.
//
// The fill must return the block's exact bytes (BlockSize of them, fewer
// only for an object's last block) if Readers read the same object: they
// share the blocks.
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
		if b, res, ok := c.lookupLocked(k); ok {
			b.escaped = true
			c.mu.Unlock()
			c.countLookup(res)
			return b.data, nil
		}
		if cl := c.inflight[k]; cl != nil {
			c.wantLocked(cl)
			cl.blk.escaped = true
			c.mu.Unlock()
			c.countLookup(LookupJoin)
			return cl.wait(ctx)
		}
		var ev evictions
		if _, ok := c.reserveLocked(true, false, &ev); ok || c.forceLocked(1) {
			r := &run{fill: fill, keep: true}
			cl := c.newCallLocked(r, k, -1, false, nil)
			cl.wanted = true
			cl.blk.escaped = true
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
	for _, k := range c.byObject.blocks(key) {
		if b, ok := c.lru.Peek(k); ok {
			c.lru.Remove(k)
			c.dropLocked(b)
		}
		if b, ok := c.ahead[k]; ok {
			c.dropAheadLocked(k, b)
			c.dropLocked(b)
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
		FreeBytes:     c.freeB,
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
	s.DiskRangeHits = c.ctr.diskRangeHits.Load()
	s.DiskPromotions = c.ctr.diskPromotions.Load()
	s.PrefetchBlocks = c.ctr.prefetchBlocks.Load()
	s.PrefetchSkipped = c.ctr.prefetchSkipped.Load()
	s.PrefetchCancelled = c.ctr.prefetchCancelled.Load()
	s.Evictions = c.ctr.evictions.Load()
	s.EvictedUnread = c.ctr.evictedUnread.Load()
	s.EvictedBytes = c.ctr.evictedBytes.Load()
	s.BudgetWaits = c.ctr.budgetWaits.Load()
	s.Recycled = c.ctr.recycled.Load()
	s.ConsumedDropped = c.ctr.consumedDropped.Load()
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
	for _, b := range c.lru.Values() {
		b.held = false
	}
	for _, b := range c.ahead {
		b.held = false
	}
	c.lru.Purge()
	clear(c.ahead)
	clear(c.byObject)
	c.free = nil
	c.resident, c.aheadB, c.freeB = 0, 0, 0
	c.mu.Unlock()
}

// lookupLocked returns a block held in memory. A prefetched block's first
// read moves it into the LRU, where it ages like any block read.
func (c *BlockCache) lookupLocked(k BlockKey) (*block, Lookup, bool) {
	if b, ok := c.lru.Get(k); ok {
		return b, LookupHit, true
	}
	if b, ok := c.ahead[k]; ok {
		delete(c.ahead, k)
		c.aheadB -= b.size
		b.owner = nil
		c.lru.Add(k, b)
		return b, LookupPrefetchHit, true
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

// evictions tallies what was evicted under the lock, reported after it.
type evictions struct {
	blocks, unread int
	bytes          int64
}

func (e *evictions) add(b *block, unread bool) {
	e.blocks++
	e.bytes += b.size
	if unread {
		e.unread++
	}
}

// dropLocked takes a block out of the accounting once it has left lru or
// ahead, and recycles its buffer if nothing can read it any more.
func (c *BlockCache) dropLocked(b *block) {
	b.held = false
	b.owner = nil
	c.resident -= b.size
	c.recycleLocked(b)
}

// recycleLocked puts the buffer of a block that is neither being fetched,
// held, pinned nor escaped on the free list, if the budget has room for it (a block
// evicted while pinned left the accounting then), and forgets it.
func (c *BlockCache) recycleLocked(b *block) {
	if b.fetching || b.held || b.pins > 0 || b.escaped || b.data == nil {
		return
	}
	buf := b.data[:cap(b.data)]
	b.data = nil
	if int64(len(buf)) != c.bs || c.closed || c.resident+c.reserved+c.freeB+c.bs > c.max {
		return // to the garbage collector
	}
	if c.poison {
		for i := range buf {
			buf[i] = 0xA5
		}
	}
	c.free = append(c.free, buf)
	c.freeB += c.bs
	c.ctr.recycled.Add(1)
}

// unpin releases pins taken by a Reader or a disk write; nil entries (not
// pinned) are skipped.
func (c *BlockCache) unpin(bs ...*block) {
	c.mu.Lock()
	for _, b := range bs {
		if b == nil {
			continue
		}
		b.pins--
		if b.pins < 0 {
			// Never reuse a buffer whose pins went wrong: a leak
			// beats handing one reader another reader's block.
			b.pins = 0
			b.escaped = true
		}
		c.recycleLocked(b)
	}
	c.mu.Unlock()
}

// dropConsumed records that r's sequential run read the blocks keys to
// their end (Slices.Release, once the read's pins are released): the block
// r consumed before them leaves memory now, and the last of them when r
// consumes a later one or closes (Reader.DropConsumed says why one block
// stays).
func (c *BlockCache) dropConsumed(r *Reader, keys []BlockKey) {
	c.mu.Lock()
	n := 0
	for _, k := range keys {
		switch {
		case r.closed:
			// Released after its Reader closed: nothing keeps it.
		case !r.hasConsumed:
			r.consumed, r.hasConsumed = k, true
			continue
		case k.Index == r.consumed.Index:
			continue
		case k.Index < r.consumed.Index:
			// A request the kernel sent out of order, reading an
			// earlier block to its end: that one goes now.
		default:
			k, r.consumed = r.consumed, k
		}
		if c.dropHeldLocked(k) {
			n++
		}
	}
	if n > 0 {
		c.signalFreedLocked()
	}
	c.mu.Unlock()
	c.ctr.consumedDropped.Add(int64(n))
}

// dropHeldLocked takes block k out of memory if the LRU holds it, fully
// fetched, with no read pinning it and not handed out (escaped), and
// reports whether it did.
func (c *BlockCache) dropHeldLocked(k BlockKey) bool {
	b, ok := c.lru.Peek(k)
	if !ok || b.fetching || b.escaped || b.pins > 0 {
		return false
	}
	c.lru.Remove(k)
	c.dropLocked(b)
	return true
}

// evictOneLocked evicts the least recently read block, or for a foreground
// read any unread prefetched block once none is left. It reports whether
// it evicted something.
func (c *BlockCache) evictOneLocked(foreground bool, ev *evictions) bool {
	if _, b, ok := c.lru.RemoveOldest(); ok {
		ev.add(b, false)
		c.dropLocked(b)
		return true
	}
	if !foreground {
		return false
	}
	for k, b := range c.ahead { // any one: they are all unread
		c.dropAheadLocked(k, b)
		ev.add(b, true)
		c.dropLocked(b)
		return true
	}
	return false
}

// reserveLocked reserves one block's budget (BlockSize) for a fetch, and
// returns a recycled buffer for it if one is free. It evicts what it must;
// readahead (foreground false) may only evict blocks that have been read,
// and must also fit in PrefetchBytes.
func (c *BlockCache) reserveLocked(foreground, prefetch bool, ev *evictions) ([]byte, bool) {
	if prefetch && c.pfRes+c.aheadB+c.bs > c.pfMax {
		return nil, false
	}
	for {
		if n := len(c.free); n > 0 {
			buf := c.free[n-1]
			c.free[n-1] = nil
			c.free = c.free[:n-1]
			c.freeB -= c.bs
			c.reserved += c.bs
			return buf, true
		}
		if c.resident+c.reserved+c.freeB+c.bs <= c.max {
			c.reserved += c.bs
			return nil, true
		}
		if !c.evictOneLocked(foreground, ev) {
			return nil, false
		}
	}
}

// unreserveLocked undoes a reserveLocked whose call was not made.
func (c *BlockCache) unreserveLocked(buf []byte) {
	c.reserved -= c.bs
	if buf != nil {
		c.free = append(c.free, buf)
		c.freeB += c.bs
	}
}

// forceLocked reserves n blocks beyond the budget when nothing is in
// flight, so that a read bigger than the whole budget still makes progress;
// otherwise it reports false and the read waits for fetches in flight.
func (c *BlockCache) forceLocked(n int) bool {
	if c.reserved != 0 {
		return false
	}
	c.reserved += int64(n) * c.bs
	return true
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
// unknown) in run r, with the block's budget already reserved (BlockSize)
// and buf, if not nil, a recycled buffer for it; prefetch says whether the
// reservation counts against PrefetchBytes too.
func (c *BlockCache) newCallLocked(r *run, k BlockKey, size int64, prefetch bool, buf []byte) *call {
	b := &block{fetching: true}
	if buf != nil {
		b.data = buf[:size]
	}
	cl := &call{key: k, size: size, run: r, blk: b, done: make(chan struct{}), reserved: c.bs, prefetch: prefetch, registered: true}
	r.calls = append(r.calls, cl)
	c.inflight[k] = cl
	if prefetch {
		c.pfRes += c.bs
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
// prefetched blocks), wakes its waiters and queues it for the disk tier.
// The run goroutine must not touch the block after calling it.
func (c *BlockCache) finish(cl *call, data []byte, err error, toDisk bool) {
	if err != nil {
		data = nil
	}
	b := cl.blk
	var ev evictions
	c.mu.Lock()
	c.reserved -= cl.reserved
	if cl.prefetch {
		c.pfRes -= cl.reserved
	}
	cl.reserved = 0
	b.fetching = false
	if err == nil && b.data == nil {
		b.data = data // a FillFunc's block, or one read from disk
	}
	if err == nil {
		b.size = int64(cap(b.data))
		if b.escaped {
			b.size = int64(len(b.data))
		}
	}
	kept := false
	if cl.registered {
		cl.registered = false
		delete(c.inflight, cl.key)
		if err == nil && !c.closed {
			kept = c.insertLocked(cl, &ev)
		}
	}
	toDisk = toDisk && kept && c.disk != nil && (c.diskSeq || !onlyBlock(cl.key, int64(len(data)), c.bs))
	if toDisk {
		b.pins++ // until the disk tier has written it
	}
	if !kept {
		c.recycleLocked(b)
	}
	c.signalFreedLocked()
	cl.data, cl.err = data, err
	c.mu.Unlock()
	close(cl.done)
	cl.notify()
	c.reportEvictions(ev)
	if toDisk {
		// A block a read fetched waits a little for the disk queue:
		// dropping it would mean fetching it again (readahead does not).
		c.disk.putWait(cl.key, data, func() { c.unpin(b) }, !cl.prefetch)
	}
}

// onlyBlock reports whether a block of n bytes at k is all of its object
// (the object is smaller than a block). The automatic disk tier keeps what
// random readers read of objects memory cannot hold; a small file is read
// whole, and fetching it again costs one GET where writing it costs a file
// create (slow on a VM's disk) and a slot in the disk queue its read would
// wait for: grep -r over a source tree spent more CPU writing the tier than
// fetching.
func onlyBlock(k BlockKey, n, bs int64) bool { return k.Index == 0 && n < bs }

// insertLocked keeps a fetched block. The call's reservation covered it
// unless its size was unknown (a FillFunc's); if it does not fit even after
// evicting, it is handed to its waiters but not kept.
func (c *BlockCache) insertLocked(cl *call, ev *evictions) bool {
	b := cl.blk
	if !c.makeRoomLocked(b.size, ev) {
		return false
	}
	c.resident += b.size
	b.held = true
	if cl.wanted || cl.run.owner == nil || cl.run.owner.closed {
		c.lru.Add(cl.key, b)
	} else {
		b.owner = cl.run.owner
		c.ahead[cl.key] = b
		c.aheadB += b.size
	}
	c.byObject.add(cl.key)
	return true
}

// makeRoomLocked frees budget for size more resident bytes: recycled buffers
// first, then the least recently read blocks (never unread prefetched
// ones). It reports whether they fit.
func (c *BlockCache) makeRoomLocked(size int64, ev *evictions) bool {
	for c.resident+c.reserved+c.freeB+size > c.max {
		if n := len(c.free); n > 0 { // to the garbage collector
			c.free[n-1] = nil
			c.free = c.free[:n-1]
			c.freeB -= c.bs
			continue
		}
		if !c.evictOneLocked(false, ev) {
			return false
		}
	}
	return true
}

// Put keeps data as block k in memory, as if a read had just fetched it,
// for bytes the caller already holds and knows to be exactly the block's
// (BlockSize of them, fewer only for the object's last block): a file the
// mount has just uploaded, whose next read would otherwise GET what it
// sent. The cache owns data from then on. Nothing is kept if k is in
// memory or being fetched, if data is bigger than a block, or if it does
// not fit after evicting blocks that have been read. Put writes nothing
// to the disk tier. It reports whether the block was kept.
func (c *BlockCache) Put(k BlockKey, data []byte) bool {
	if int64(len(data)) > c.bs {
		return false
	}
	var ev evictions
	c.mu.Lock()
	kept := false
	if !c.closed && !c.heldLocked(k) && c.makeRoomLocked(int64(len(data)), &ev) {
		// escaped: the buffer is not one of ours to recycle.
		b := &block{data: data, size: int64(len(data)), held: true, escaped: true}
		c.resident += b.size
		c.lru.Add(k, b)
		c.byObject.add(k)
		kept = true
	}
	c.signalFreedLocked()
	c.mu.Unlock()
	c.reportEvictions(ev)
	return kept
}

// dropAheadLocked takes the prefetched block b out of ahead.
func (c *BlockCache) dropAheadLocked(k BlockKey, b *block) {
	delete(c.ahead, k)
	c.aheadB -= b.size
	c.unindexLocked(k)
}

// unindexLocked forgets k in byObject once neither lru nor ahead holds it.
// It is lru's eviction callback too, so every way out of lru comes here.
func (c *BlockCache) unindexLocked(k BlockKey) {
	if _, ok := c.ahead[k]; ok || c.lru.Contains(k) {
		return
	}
	c.byObject.remove(k)
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

// waitPrefix returns at least the first n bytes of the block (the whole
// block once it is complete) as soon as they have arrived, or the call's
// error, or ctx's. The caller holds a pin on the block.
func (cl *call) waitPrefix(ctx context.Context, n int64) ([]byte, error) {
	for {
		select {
		case <-cl.done:
			return cl.data, cl.err
		default:
		}
		if f := cl.filled.Load(); f >= n {
			return cl.blk.data[:f], nil
		}
		cl.pmu.Lock()
		if cl.pch == nil {
			cl.pch = make(chan struct{})
		}
		ch := cl.pch
		cl.pmu.Unlock()
		// Re-check after registering, so that a store of filled that
		// came before it is not missed.
		if f := cl.filled.Load(); f >= n {
			return cl.blk.data[:f], nil
		}
		select {
		case <-ch:
		case <-cl.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// progress publishes that blk.data[:f] is written.
func (cl *call) progress(f int64) {
	cl.filled.Store(f)
	cl.notify()
}

// notify wakes the waitPrefix callers.
func (cl *call) notify() {
	cl.pmu.Lock()
	if cl.pch != nil {
		close(cl.pch)
		cl.pch = nil
	}
	cl.pmu.Unlock()
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

func (c *BlockCache) noteFetch(bytes int64, d time.Duration, err error) {
	c.ctr.fetches.Add(1)
	c.ctr.fetchedBytes.Add(bytes)
	if err != nil && !errors.Is(err, context.Canceled) {
		c.ctr.fetchErrors.Add(1)
	}
	c.obs.Fetched(TierStore, bytes, d, err)
}

func (c *BlockCache) noteDiskHit(bytes int64, d time.Duration) {
	c.ctr.diskHits.Add(1)
	c.ctr.diskPromotions.Add(1)
	c.obs.Fetched(TierDisk, bytes, d, nil)
}

// noteRangeHit counts a read served by the disk tier at its own size: a
// miss of the memory tier, a hit of the disk tier.
func (c *BlockCache) noteRangeHit() {
	c.ctr.diskHits.Add(1)
	c.ctr.diskRangeHits.Add(1)
	c.countLookup(LookupMiss)
}

// promoteLocked decides whether a read of a block that the disk tier holds
// and memory does not, read f times lately (this read included), brings
// the whole block into memory instead of reading just its bytes from disk.
//
// A range read from disk costs about what the read asks for; a promotion
// costs a whole block's read and, once memory is full, the eviction of
// another block, which the next read of that one pays for again. So
// promotion must be rare when the working set is larger than memory, and
// must not let a scan push out what is read often:
//   - the first read of a block (since the sketch last aged) never
//     promotes it;
//   - while memory has room, the second read does;
//   - once memory is full, a block is promoted only if it is read more
//     than twice as often as the block it would evict (the least recently
//     read one). Under uniform random reads their counts are alike and
//     memory stays as it is instead of churning; a hot block among cold
//     ones gets in.
func (c *BlockCache) promoteLocked(f uint8) bool {
	if f < 2 {
		return false
	}
	if len(c.free) > 0 || c.resident+c.reserved+c.freeB+c.bs <= c.max {
		return true
	}
	vk, _, ok := c.lru.GetOldest()
	if !ok {
		return false // only unread prefetched blocks: leave them
	}
	return int(f) > 2*int(c.freq.get(vk))
}

// CopyBlock copies block k, of size bytes, into dst from memory, else from
// the disk tier, without counting a lookup or changing what memory holds:
// it is for copying a block somewhere else (the kernel's page cache), not
// for serving a read. A block being fetched is waited for as in Peek.
func (c *BlockCache) CopyBlock(ctx context.Context, k BlockKey, size int64, dst []byte) (int, bool) {
	if s, ok := c.Peek(ctx, k); ok {
		n := copy(dst, s.Vecs[0])
		s.Release()
		return n, true
	}
	if c.disk == nil || size > int64(len(dst)) || !c.disk.has(k) {
		return 0, false
	}
	if !c.disk.readRange(k, dst[:size], 0) {
		return 0, false
	}
	return int(size), true
}

func (c *BlockCache) runFill(r *run) {
	cl := r.calls[0]
	if c.disk != nil {
		t0 := time.Now()
		if data, ok := c.disk.Get(cl.key, cl.size); ok {
			c.noteDiskHit(int64(len(data)), time.Since(t0))
			c.finish(cl, data, nil, false)
			return
		}
	}
	t0 := time.Now()
	data, err := r.fill(r.ctx)
	if err == nil && cl.size >= 0 && int64(len(data)) != cl.size {
		err = fmt.Errorf("block %d of %q: fill returned %d bytes, want %d: %w", cl.key.Index, cl.key.Key, len(data), cl.size, ErrShortObject)
	}
	c.noteFetch(int64(len(data)), time.Since(t0), err)
	c.finish(cl, data, err, true)
}

// buffer gives a call of a range run its buffer: the recycled one it was
// given, else a fresh one (of capacity BlockSize, so that it can be
// recycled in turn, unless the block is short; from a huge-page slab when
// the block size allows, see slab.go).
func (c *BlockCache) buffer(cl *call) []byte {
	if cl.blk.data == nil {
		if cl.size == c.bs && slabbed(c.bs, c.max) {
			cl.blk.data = c.slabs.get(int(c.bs))
		} else if cl.size == c.bs {
			cl.blk.data = make([]byte, c.bs)
		} else {
			cl.blk.data = make([]byte, cl.size)
		}
	}
	return cl.blk.data
}

// runRange fetches consecutive blocks with one ranged GET, publishing each
// block's bytes as they arrive. A stream that breaks is re-opened where it
// broke, at most maxReopens times. Blocks the disk tier has are read from
// it instead, while no stream is open.
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
		buf := c.buffer(cl)
		filled := cl.filled.Load()
		if body == nil && filled == 0 && c.disk != nil {
			t0 := time.Now()
			if c.disk.getInto(cl.key, buf) {
				c.noteDiskHit(cl.size, time.Since(t0))
				c.finish(cl, buf, nil, false)
				continue
			}
		}
		if body == nil {
			var err error
			t0, got = time.Now(), 0
			off := cl.key.Index*c.bs + filled
			body, err = r.fetch(r.ctx, off, end-off)
			if err != nil {
				body = nil
				c.noteFetch(0, time.Since(t0), err)
				c.failFrom(r, i, fmt.Errorf("block %d of %q: %w", cl.key.Index, cl.key.Key, err))
				return
			}
		}
		var err error
		for filled < cl.size && err == nil {
			var n int
			n, err = body.Read(buf[filled:])
			if n > 0 {
				filled += int64(n)
				got += int64(n)
				cl.progress(filled)
			}
		}
		if filled == cl.size {
			c.finish(cl, buf, nil, c.diskSeq || !cl.prefetch)
			continue
		}
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("block %d of %q: stream ended after %d of %d bytes: %w", cl.key.Index, cl.key.Key, filled, cl.size, ErrShortObject)
		} else {
			err = fmt.Errorf("block %d of %q: %w", cl.key.Index, cl.key.Key, err)
		}
		closeBody(err)
		if reopens >= maxReopens || r.ctx.Err() != nil {
			c.failFrom(r, i, err)
			return
		}
		reopens++
		i-- // go on with this block, where it broke, on a new stream
	}
	closeBody(nil)
}

// failFrom fails the calls of r from index i on.
func (c *BlockCache) failFrom(r *run, i int, err error) {
	for _, cl := range r.calls[i:] {
		c.finish(cl, nil, err, false)
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

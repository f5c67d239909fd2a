package cache

import (
	"sync/atomic"
	"time"
)

// Tier names where a block came from or was evicted from.
type Tier uint8

const (
	TierMemory Tier = iota // the in-memory LRU
	TierDisk               // the optional disk tier
	TierStore              // the object store (a fetch)
)

func (t Tier) String() string {
	switch t {
	case TierMemory:
		return "memory"
	case TierDisk:
		return "disk"
	case TierStore:
		return "store"
	}
	return "unknown"
}

// Lookup is the outcome of asking the cache for one block on behalf of a
// foreground read.
type Lookup uint8

const (
	// LookupHit: the block was in memory and had been read before.
	LookupHit Lookup = iota
	// LookupPrefetchHit: the block was in memory because readahead
	// fetched it, and this is its first read: prefetch paid off.
	LookupPrefetchHit
	// LookupJoin: a fetch of the block was already in flight (usually a
	// prefetch) and the reader waited for it instead of starting another.
	LookupJoin
	// LookupMiss: nothing had the block; the reader started a fetch (which
	// may still be served by the disk tier).
	LookupMiss
)

func (l Lookup) String() string {
	switch l {
	case LookupHit:
		return "hit"
	case LookupPrefetchHit:
		return "prefetch_hit"
	case LookupJoin:
		return "join"
	case LookupMiss:
		return "miss"
	}
	return "unknown"
}

// Observer receives cache events, so that metrics (package internal/metrics)
// can hook in without this package importing a metrics library. Methods are
// called without any cache lock held, possibly from many goroutines at once;
// they must be cheap and must not block. Embed NopObserver to implement only
// some of them and stay source-compatible when methods are added.
type Observer interface {
	// Lookup is called once per block a foreground read asked for.
	Lookup(result Lookup)
	// Fetched is called once per fetch: a ranged GET (which may carry
	// several blocks) or a fill call (from = TierStore), or one block read
	// from the disk tier (from = TierDisk). bytes is what was delivered.
	Fetched(from Tier, bytes int64, d time.Duration, err error)
	// Evicted is called after blocks left a tier to make room (not for
	// Invalidate). unread counts prefetched blocks nobody had read: wasted
	// readahead.
	Evicted(from Tier, blocks, unread int, bytes int64)
	// DiskDisabled is called once when the disk tier turns itself off
	// after a write error.
	DiskDisabled(err error)
}

// NopObserver ignores every event. Embed it in partial observers.
type NopObserver struct{}

func (NopObserver) Lookup(Lookup)                             {}
func (NopObserver) Fetched(Tier, int64, time.Duration, error) {}
func (NopObserver) Evicted(Tier, int, int, int64)             {}
func (NopObserver) DiskDisabled(error)                        {}

// Stats is a snapshot of a BlockCache's counters (monotonic, since New) and
// gauges (current values). Metrics can export the gauges with a GaugeFunc.
type Stats struct {
	// Per block asked for by a foreground read (see Lookup).
	Hits, PrefetchHits, Joins, Misses int64

	// Fetches counts store round trips (ranged GETs or fill calls) and
	// FetchErrors the failed ones; FetchedBytes is what they delivered.
	Fetches, FetchErrors, FetchedBytes int64
	// DiskHits counts blocks served by the disk tier instead of the store:
	// DiskRangeHits of them were read at the size the read asked for and
	// left out of memory, DiskPromotions were read whole into memory
	// because they had been read often enough (see promoteLocked).
	DiskHits, DiskRangeHits, DiskPromotions int64

	// PrefetchBlocks counts blocks whose fetch readahead started;
	// PrefetchSkipped counts readahead requests refused for lack of budget.
	PrefetchBlocks, PrefetchSkipped int64
	// PrefetchCancelled counts blocks whose prefetch was abandoned because
	// every reader that wanted them closed first.
	PrefetchCancelled int64

	// Evictions and EvictedBytes count blocks dropped to make room;
	// EvictedUnread those among them that had been prefetched and never read.
	Evictions, EvictedUnread, EvictedBytes int64

	// Recycled counts block buffers reused instead of allocated.
	Recycled int64
	// ConsumedDropped counts blocks that left memory once a sequential
	// reader of a Reader with DropConsumed had read them to their end.
	ConsumedDropped int64

	// Gauges. ResidentBytes = bytes of blocks held (read or prefetched and
	// unread); AheadBytes is the unread part. InflightBytes is the budget
	// reserved by fetches in flight; FreeBytes the recycled buffers
	// waiting for a fetch. Resident + Inflight + Free never exceeds
	// MaxBytes. Blocks is the number held.
	ResidentBytes, AheadBytes, InflightBytes, FreeBytes int64
	Blocks                                              int
	// BudgetWaits counts foreground reads that had to wait for in-flight
	// fetches to finish because the memory budget was full.
	BudgetWaits int64
}

// counters are the monotonic parts of Stats, updated without the cache lock.
type counters struct {
	hits, prefetchHits, joins, misses       atomic.Int64
	fetches, fetchErrors, fetchedBytes      atomic.Int64
	diskHits, diskRangeHits, diskPromotions atomic.Int64
	prefetchBlocks, prefetchSkipped         atomic.Int64
	prefetchCancelled                       atomic.Int64
	evictions, evictedUnread, evictedBytes  atomic.Int64
	budgetWaits                             atomic.Int64
	recycled                                atomic.Int64
	consumedDropped                         atomic.Int64
}

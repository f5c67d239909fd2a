package cache

import (
	"sync"
	"sync/atomic"
)

// ReadaheadConfig is the sequential-readahead policy. Zero fields take the
// defaults noted.
type ReadaheadConfig struct {
	// BlockSize is the cache's block size in bytes. Set by BlockCache;
	// required when calling NewReadahead directly.
	BlockSize int64
	// InitialBlocks is the window a reader gets when it turns sequential
	// (default 2): small, so that a reader that stops after the first
	// bytes (file(1), a header parser) costs little.
	InitialBlocks int64
	// MaxWindowBytes caps one reader's window: how far ahead of the
	// reader blocks are fetched or held (default 64 MiB). Negative
	// disables readahead.
	MaxWindowBytes int64
	// TotalBytes is shared by all sequential readers: each one's window is
	// also capped at TotalBytes / (number of sequential readers), so that
	// four readers get a quarter each instead of the first one starving
	// the rest. 0 means no shared cap (BlockCache sets it to its prefetch
	// budget).
	TotalBytes int64
	// RunBytes is the largest single fetch readahead asks for (default
	// 16 MiB). A window is topped up in chunks of up to this much so that
	// a steady reader causes a few large GETs instead of one GET per block.
	RunBytes int64
}

// reorderReads is how many reads' worth behind the furthest read a read
// may start and still count as sequential.
const reorderReads = 4

// Readahead defaults.
const (
	DefaultInitialBlocks  = 2
	DefaultMaxWindowBytes = 64 << 20
	DefaultRunBytes       = 16 << 20
)

func (cfg ReadaheadConfig) withDefaults() ReadaheadConfig {
	if cfg.InitialBlocks <= 0 {
		cfg.InitialBlocks = DefaultInitialBlocks
	}
	if cfg.MaxWindowBytes == 0 {
		cfg.MaxWindowBytes = DefaultMaxWindowBytes
	}
	if cfg.RunBytes <= 0 {
		cfg.RunBytes = DefaultRunBytes
	}
	return cfg
}

// Readahead is the policy shared by the windows of all open files: it knows
// how many readers are sequential right now and splits TotalBytes between
// them. It does no I/O. Safe for concurrent use.
type Readahead struct {
	cfg       ReadaheadConfig
	maxBlocks int64 // per-window cap from MaxWindowBytes, in blocks
	runBlocks int64 // RunBytes in blocks, at least 1
	active    atomic.Int64
}

// NewReadahead returns a policy. cfg.BlockSize must be positive. A negative
// MaxWindowBytes gives a policy whose windows never fetch ahead.
func NewReadahead(cfg ReadaheadConfig) *Readahead {
	if cfg.BlockSize <= 0 {
		panic("cache: ReadaheadConfig.BlockSize must be positive")
	}
	cfg = cfg.withDefaults()
	ra := &Readahead{cfg: cfg, runBlocks: max(1, cfg.RunBytes/cfg.BlockSize)}
	if cfg.MaxWindowBytes > 0 {
		ra.maxBlocks = max(1, cfg.MaxWindowBytes/cfg.BlockSize)
	}
	return ra
}

// Config returns the policy's configuration, defaults applied.
func (ra *Readahead) Config() ReadaheadConfig { return ra.cfg }

// Active is the number of windows currently fetching ahead.
func (ra *Readahead) Active() int { return int(ra.active.Load()) }

// capBlocks is the largest window a reader may have now: the configured
// maximum, or its fair share of TotalBytes if that is smaller.
func (ra *Readahead) capBlocks() int64 {
	c := ra.maxBlocks
	if ra.cfg.TotalBytes > 0 {
		share := ra.cfg.TotalBytes / ra.cfg.BlockSize / max(1, ra.active.Load())
		c = min(c, share)
	}
	return max(1, c)
}

// NewWindow returns the readahead state of one open file of size bytes.
// Close it when the file is closed.
func (ra *Readahead) NewWindow(size int64) *Window {
	return &Window{ra: ra, nblocks: (size + ra.cfg.BlockSize - 1) / ra.cfg.BlockSize}
}

// Window is the readahead state of one open file: it watches the reads and
// says which blocks to fetch ahead of them. It does no I/O.
//
// A read is sequential when it starts where the reads so far reached, give
// or take a few reads' length: the kernel may deliver its own readahead
// requests slightly out of order. The window opens at InitialBlocks on the first read at offset 0
// or on the second sequential read in a row, doubles each time the reader
// moves into a new block, up to the policy's cap, and collapses to nothing
// on any other read: a random reader fetches only what it asks for.
type Window struct {
	ra      *Readahead
	nblocks int64

	mu      sync.Mutex // guards the fields below; reads on one file may be concurrent
	started bool       // a read was observed
	hiEnd   int64      // furthest byte offset the reads of this run reached
	hiLast  int64      // furthest block the reads of this run touched
	runFrom int64      // lowest byte offset the reads of this run started at
	run     int        // consecutive sequential reads, counting the first of the run
	win     int64      // window in blocks; 0 = not fetching ahead
	ahead   int64      // blocks below this index have been handed out for fetching
	active  bool       // counted in ra.active
	closed  bool
}

// Observe records a read of n bytes at off and returns the indexes of the
// blocks to start fetching now, in increasing order, none of which it has
// returned before in this sequential run (unless Skipped since). The blocks
// the read itself touches are never included: the caller fetches those in
// the foreground.
func (w *Window) Observe(off, n int64) []int64 {
	if n <= 0 || off < 0 || w.ra.maxBlocks == 0 {
		return nil
	}
	bs := w.ra.cfg.BlockSize
	last := (off + n - 1) / bs
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	// Sequential: starts at most one read past where the run reached, and
	// ends at most reorderReads reads before it.
	seq := w.started && off <= w.hiEnd+n && off+n >= w.hiEnd-reorderReads*n
	advanced := last > w.hiLast
	switch {
	case !w.started:
		w.run = 1
		w.runFrom = off
		if off == 0 {
			w.openLocked()
		}
	case seq:
		w.run++
		w.runFrom = min(w.runFrom, off)
		if w.win == 0 {
			if w.run >= 2 {
				w.openLocked()
			}
		} else if advanced {
			w.win *= 2
		}
	default:
		w.run = 1
		w.runFrom = off
		w.collapseLocked()
	}
	if w.started && seq {
		w.hiEnd, w.hiLast = max(w.hiEnd, off+n), max(w.hiLast, last)
	} else {
		w.hiEnd, w.hiLast = off+n, last
	}
	w.started = true
	if w.win == 0 {
		return nil
	}

	w.win = min(w.win, w.ra.capBlocks(), max(w.nblocks, 1))
	target := min(last+w.win, w.nblocks-1) // last block we want requested
	from := max(w.ahead, last+1)
	if target < from {
		return nil
	}
	// Top up in chunks: while a good part of the window is still
	// requested, wait until a chunk's worth is missing so that fetches
	// are large. Never wait when nothing ahead is requested, or at EOF.
	chunk := min(w.ra.runBlocks, max(1, w.win/4))
	if target-from+1 < chunk && from > last+1 && target < w.nblocks-1 {
		return nil
	}
	out := make([]int64, 0, target-from+1)
	for i := from; i <= target; i++ {
		out = append(out, i)
	}
	w.ahead = target + 1
	return out
}

// Skipped tells the window that the fetch of block index (and of every
// block after it that Observe returned) was not started, e.g. because the
// memory budget was full; a later Observe hands them out again.
func (w *Window) Skipped(index int64) {
	w.mu.Lock()
	if index < w.ahead {
		w.ahead = index
	}
	w.mu.Unlock()
}

// Blocks returns the current window in blocks (0 when not sequential).
func (w *Window) Blocks() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.win
}

// SequentialFrom reports whether the window is open (the reader is
// sequential) and, if so, the lowest offset its current run of sequential
// reads started at: the blocks from there on are the ones the run has read
// from their start.
func (w *Window) SequentialFrom() (int64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.runFrom, w.win > 0
}

// Close releases the window's share of the policy. Idempotent.
func (w *Window) Close() {
	w.mu.Lock()
	w.collapseLocked()
	w.closed = true
	w.mu.Unlock()
}

func (w *Window) openLocked() {
	w.win = w.ra.cfg.InitialBlocks
	if !w.active {
		w.active = true
		w.ra.active.Add(1)
	}
}

func (w *Window) collapseLocked() {
	w.win = 0
	w.ahead = 0
	if w.active {
		w.active = false
		w.ra.active.Add(-1)
	}
}

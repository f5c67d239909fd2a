package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
)

// Object identifies the version of an object a Reader reads: the ETag and
// size seen when the file was opened.
type Object struct {
	Key  string
	ETag string
	Size int64
}

// Reader reads one version of one object through the cache, with
// sequential readahead. Make one per open file handle (NewReader) and Close
// it when the handle is released: Close cancels the readahead nobody else
// wants. Safe for concurrent use.
type Reader struct {
	c     *BlockCache
	obj   Object
	fetch RangeFunc
	win   *Window // nil when readahead is disabled

	// dropConsumed: see DropConsumed. Set before the first read.
	dropConsumed bool

	// Guarded by the cache lock.
	runs   map[*run]struct{} // prefetch runs this reader owns a share of
	closed bool
	// consumed is the last block a DropConsumed read of this reader read
	// to its end, kept in memory until the reader reads a later block to
	// its end (or closes): the kernel may still deliver, out of order, a
	// request for an earlier part of it, which must not fetch it again.
	consumed    BlockKey
	hasConsumed bool
}

// DropConsumed makes the blocks that a sequential run of reads (one with
// the readahead window open) read from their start to their end leave the
// memory tier, unless another read holds them: for a caller that
// keeps those bytes itself, as the kernel's page cache does for a buffered
// FUSE reader. A stream through a big object then holds about its
// readahead window in memory instead of filling the whole budget, pushes
// out nothing that random readers come back to, and reuses buffers that
// are still in the CPU's caches. A block leaves once the run has read a
// later block to its end (or the Reader closes), not at once: the kernel's
// readahead requests for a file are served concurrently and may arrive out
// of order, and a request for the middle of a block answered after the
// block's end would otherwise fetch it again. Random reads, and blocks read
// only in part, stay as before. Call it before the first read.
func (r *Reader) DropConsumed() { r.dropConsumed = true }

// NewReader returns a Reader of obj. fetch opens a ranged stream of obj;
// it must be pinned to obj.ETag (If-Match) so that a replaced object fails
// (s3backend.ErrPreconditionFailed) instead of mixing versions.
func (c *BlockCache) NewReader(obj Object, fetch RangeFunc) *Reader {
	r := &Reader{c: c, obj: obj, fetch: fetch, runs: make(map[*run]struct{})}
	if c.ra.maxBlocks > 0 {
		r.win = c.ra.NewWindow(obj.Size)
	}
	return r
}

// Object returns what the Reader reads.
func (r *Reader) Object() Object { return r.obj }

// Window returns the Reader's readahead window (nil if disabled).
func (r *Reader) Window() *Window { return r.win }

// ReadAt reads len(dest) bytes at off, as io.ReaderAt does: fewer only at
// the end of the object, with io.EOF. It waits for the blocks the read
// touches (fetching those nobody is fetching yet; for a block still
// arriving, only until the bytes it needs are in) and starts the readahead
// its window asks for, which it does not wait for. If ctx is done first it
// returns ctx.Err(); the fetches it started go on and are cached.
//
// Errors from fetch come back wrapped (errors.Is works): with an If-Match
// fetch, s3backend.ErrPreconditionFailed means the object changed; the
// caller should then Invalidate the key and return ESTALE.
func (r *Reader) ReadAt(ctx context.Context, dest []byte, off int64) (int, error) {
	n, first, k, err := r.span(off, int64(len(dest)))
	if n == 0 {
		return 0, err
	}
	ahead := r.observe(off, n)
	if k == 1 && r.rangeFromDisk(first, ahead) {
		if r.c.disk.readRange(r.blockKey(first), dest[:n], off-first*r.c.bs) {
			r.c.noteRangeHit()
			if n < int64(len(dest)) {
				return int(n), io.EOF
			}
			return int(n), nil
		}
	}
	// Most reads touch one or two blocks: no allocation for those.
	var smallData [4][]byte
	var smallPins [4]*block
	data, pins := smallData[:0], smallPins[:0]
	if k > len(smallData) {
		data, pins = make([][]byte, 0, k), make([]*block, 0, k)
	}
	data, pins = data[:k], pins[:k]
	if err := r.acquire(ctx, off, off+n, data, pins, ahead); err != nil {
		r.c.unpin(pins...)
		return 0, err
	}
	done := 0
	for i, b := range data {
		from, to := r.within(first+int64(i), off, n, b)
		done += copy(dest[done:], b[from:to])
	}
	r.c.unpin(pins...)
	if done < len(dest) {
		return done, io.EOF
	}
	return done, nil
}

// observe tells the readahead window about a read of n bytes at off and
// returns the blocks it wants prefetched.
func (r *Reader) observe(off, n int64) []int64 {
	if r.win == nil {
		return nil
	}
	return r.win.Observe(off, n)
}

// rangeFromDisk decides whether a read within block i, which wants the
// blocks ahead prefetched, is served by the disk tier at the size it asks
// for (a pread of just its bytes, the block staying out of memory) rather
// than through memory. That is the case for a random read (no readahead) of
// a block the disk tier has and memory neither holds nor is fetching,
// unless the block is read often enough to be promoted into memory
// (promoteLocked). It counts the read in the frequency sketch when it says
// yes; acquire counts it otherwise.
func (r *Reader) rangeFromDisk(i int64, ahead []int64) bool {
	c := r.c
	if c.disk == nil || len(ahead) > 0 {
		return false
	}
	k := r.blockKey(i)
	if !c.disk.has(k) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.heldLocked(k) || c.promoteLocked(c.freq.get(k)+1) {
		return false
	}
	c.freq.add(k)
	return true
}

// Slices is a read's bytes left where they are, in the cache's blocks, for
// a zero-copy reply (writev straight from the blocks). The blocks stay
// valid, and their buffers are not reused, until Release. A go-fuse
// ReadResult can wrap it: Size is Len, Bytes concatenates Vecs, Done calls
// Release, and a Slices() ([][]byte, fuse.Status) method returning Vecs
// makes go-fuse write them with one writev.
type Slices struct {
	Vecs [][]byte // the bytes, in order; do not modify

	c        *BlockCache
	pins     []*block
	buf      *[]byte // a disk range read's buffer, from c.rangeBufs
	released atomic.Bool
	// consumed lists the keys of the blocks the read consumed, which are
	// to leave memory (DropConsumed) after the reader's next one; nil
	// when none is. rd is the Reader that read them.
	consumed []BlockKey
	rd       *Reader
}

// Len returns the number of bytes in Vecs.
func (s *Slices) Len() int {
	n := 0
	for _, v := range s.Vecs {
		n += len(v)
	}
	return n
}

// Release lets the cache reuse the blocks. Call it once the bytes are
// sent; later calls do nothing. Vecs must not be used after it.
func (s *Slices) Release() {
	if s.c != nil && s.released.CompareAndSwap(false, true) {
		s.c.unpin(s.pins...)
		if s.consumed != nil {
			s.c.dropConsumed(s.rd, s.consumed)
		}
		if s.buf != nil {
			s.c.rangeBufs.put(s.buf)
			s.buf = nil
		}
		s.Vecs = nil
	}
}

// ReadSlices is ReadAt without the copy: it returns the n bytes at off (fewer
// only at the end of the object, with io.EOF) as slices of the cache's
// blocks. The caller must Release the result, also when err is io.EOF; on
// any other error there is nothing to release.
func (r *Reader) ReadSlices(ctx context.Context, off int64, n int) (*Slices, error) {
	m, first, k, err := r.span(off, int64(n))
	if m == 0 {
		return &Slices{}, err
	}
	ahead := r.observe(off, m)
	if k == 1 && r.rangeFromDisk(first, ahead) {
		c := r.c
		bp := c.rangeBufs.get(int(m))
		if c.disk.readRange(r.blockKey(first), *bp, off-first*c.bs) {
			c.noteRangeHit()
			s := &Slices{Vecs: [][]byte{*bp}, c: c, buf: bp}
			if m < int64(n) {
				return s, io.EOF
			}
			return s, nil
		}
		c.rangeBufs.put(bp)
	}
	data, pins := make([][]byte, k), make([]*block, k)
	if err := r.acquire(ctx, off, off+m, data, pins, ahead); err != nil {
		r.c.unpin(pins...)
		return nil, err
	}
	// Blocks this read ends and that its sequential run read from
	// their start.
	runFrom, sequential := int64(0), false
	if r.dropConsumed && r.win != nil {
		runFrom, sequential = r.win.SequentialFrom()
	}
	var consumed []BlockKey
	for i, b := range data {
		j := first + int64(i)
		from, to := r.within(j, off, m, b)
		data[i] = b[from:to]
		if sequential && to == r.blockLen(j) && j*r.c.bs >= runFrom {
			consumed = append(consumed, r.blockKey(j))
		}
	}
	s := &Slices{Vecs: data, c: r.c, pins: pins, consumed: consumed, rd: r}
	if m < int64(n) {
		return s, io.EOF
	}
	return s, nil
}

// span clips a read of n bytes at off to the object: it returns the bytes
// to read (0 with the error to return when there are none), the first
// block and the number of blocks touched.
func (r *Reader) span(off, n int64) (int64, int64, int, error) {
	if off < 0 {
		return 0, 0, 0, errors.New("cache: negative offset")
	}
	if off >= r.obj.Size {
		return 0, 0, 0, io.EOF
	}
	n = min(n, r.obj.Size-off)
	if n <= 0 {
		return 0, 0, 0, nil
	}
	first, last := off/r.c.bs, (off+n-1)/r.c.bs
	return n, first, int(last - first + 1), nil
}

// within returns the part [from, to) of block i (whose bytes, or at least
// the ones the read needs, are b) that the read of n bytes at off covers.
func (r *Reader) within(i, off, n int64, b []byte) (int64, int64) {
	boff := i * r.c.bs
	return max(off-boff, 0), min(off+n-boff, int64(len(b)))
}

// Close stops the readahead only this Reader wanted, hands its unread
// prefetched blocks to the LRU (a reopen may want them) and releases its
// share of the readahead budget. Idempotent. Reads after Close still work,
// without readahead.
func (r *Reader) Close() {
	c := r.c
	c.mu.Lock()
	if !r.closed {
		r.closed = true
		for ru := range r.runs {
			ru.owners--
			if ru.owners == 0 && !ru.keep && !ru.done {
				c.cancelRunLocked(ru)
			}
		}
		clear(r.runs)
		if r.hasConsumed {
			r.hasConsumed = false
			if c.dropHeldLocked(r.consumed) {
				c.ctr.consumedDropped.Add(1)
				c.signalFreedLocked()
			}
		}
		for k, b := range c.ahead {
			if b.owner == r {
				delete(c.ahead, k)
				c.aheadB -= b.size
				b.owner = nil
				c.lru.Add(k, b)
			}
		}
	}
	c.mu.Unlock()
	if r.win != nil {
		r.win.Close()
	}
}

// blockKey returns the key of block i of the Reader's object.
func (r *Reader) blockKey(i int64) BlockKey {
	return BlockKey{Key: r.obj.Key, ETag: r.obj.ETag, Index: i}
}

// blockLen is the length of block i: BlockSize except for the last block.
func (r *Reader) blockLen(i int64) int64 {
	return min(r.c.bs, r.obj.Size-i*r.c.bs)
}

// acquire serves a read of [off, end): it sets data[j] to block first+j
// (or, while it is still arriving, to at least its bytes below end),
// pinning each in pins[j] (the caller unpins them, even on error), fetches
// what is missing, and starts the readahead the window asked for (ahead).
func (r *Reader) acquire(ctx context.Context, off, end int64, data [][]byte, pins []*block, ahead []int64) error {
	c := r.c
	first := off / c.bs
	var (
		waits   []*call
		waitIdx []int
		lookups [int(LookupMiss) + 1]int
		started []*run
		skipped int64 = -1
		ev      evictions
		missing []int
		bufs    [][]byte
	)
	c.mu.Lock()
	if c.disk != nil {
		// Only the reads themselves count towards promoting disk
		// hits, not readahead.
		for j := range data {
			c.freq.add(r.blockKey(first + int64(j)))
		}
	}
	for {
		if c.closed {
			c.mu.Unlock()
			return ErrClosed
		}
		// What is held, what is in flight, what is missing.
		missing = missing[:0]
		for j := range data {
			if pins[j] != nil {
				continue
			}
			k := r.blockKey(first + int64(j))
			if b, res, ok := c.lookupLocked(k); ok {
				b.pins++
				data[j], pins[j] = b.data, b
				lookups[res]++
				continue
			}
			if cl := c.inflight[k]; cl != nil {
				c.wantLocked(cl)
				cl.blk.pins++
				pins[j] = cl.blk
				waits = append(waits, cl)
				waitIdx = append(waitIdx, j)
				lookups[LookupJoin]++
				continue
			}
			missing = append(missing, j)
		}
		if len(missing) == 0 {
			break
		}
		bufs = bufs[:0]
		for range missing {
			buf, ok := c.reserveLocked(true, false, &ev)
			if !ok {
				break
			}
			bufs = append(bufs, buf)
		}
		if len(bufs) == len(missing) {
			break
		}
		for _, buf := range bufs {
			c.unreserveLocked(buf)
		}
		bufs = bufs[:0]
		if c.forceLocked(len(missing)) {
			bufs = append(bufs, make([][]byte, len(missing))...)
			break
		}
		if err := c.waitBudgetLocked(ctx, ev); err != nil {
			return err
		}
		ev = evictions{}
	}

	// Foreground runs: maximal stretches of consecutive missing blocks.
	var tail *run // the run ending at the last block the read touches, if any
	for x := 0; x < len(missing); {
		ru := &run{fetch: r.fetch, keep: true}
		for {
			j := missing[x]
			i := first + int64(j)
			cl := c.newCallLocked(ru, r.blockKey(i), r.blockLen(i), false, bufs[x])
			cl.wanted = true
			cl.blk.pins++
			pins[j] = cl.blk
			waits = append(waits, cl)
			waitIdx = append(waitIdx, j)
			lookups[LookupMiss]++
			x++
			if x == len(missing) || missing[x] != j+1 {
				break
			}
		}
		started = append(started, ru)
		if missing[x-1] == len(data)-1 {
			tail = ru
		}
	}

	// Readahead: skip what is held or in flight (taking a share of a
	// prefetch in flight, so that it is not cancelled while we want it),
	// extend the foreground run that ends where readahead starts, else
	// group into runs of at most RunBytes.
	if !r.closed {
		last := first + int64(len(data)) - 1
		var cur *run
		for _, i := range ahead {
			k := r.blockKey(i)
			if c.heldLocked(k) {
				if cl := c.inflight[k]; cl != nil && !cl.run.keep {
					if _, mine := r.runs[cl.run]; !mine {
						cl.run.owners++
						r.runs[cl.run] = struct{}{}
					}
				}
				cur = nil
				continue
			}
			buf, ok := c.reserveLocked(false, true, &ev)
			if !ok {
				skipped = i
				break
			}
			switch {
			case cur != nil && len(cur.calls) < int(c.ra.runBlocks) && cur.calls[len(cur.calls)-1].key.Index == i-1:
			case cur == nil && tail != nil && i == last+1:
				// The foreground run that fetches the end of this
				// read goes on with readahead: one GET for both.
				// Its readahead blocks still go to the unread set.
				cur = tail
				cur.owner = r
				tail = nil
			default:
				cur = &run{fetch: r.fetch, owner: r, owners: 1}
				r.runs[cur] = struct{}{}
				started = append(started, cur)
			}
			c.newCallLocked(cur, k, r.blockLen(i), true, buf)
			c.ctr.prefetchBlocks.Add(1)
		}
		for ru := range r.runs {
			if ru.done {
				delete(r.runs, ru)
			}
		}
	}
	for _, ru := range started {
		c.startLocked(ru)
	}
	c.mu.Unlock()

	c.reportEvictions(ev)
	for l, n := range lookups {
		for range n {
			c.countLookup(Lookup(l))
		}
	}
	if skipped >= 0 {
		c.ctr.prefetchSkipped.Add(1)
		r.win.Skipped(skipped)
	}
	for x, cl := range waits {
		j := waitIdx[x]
		need := min(end-(first+int64(j))*c.bs, cl.size)
		b, err := cl.waitPrefix(ctx, need)
		if err != nil {
			return err
		}
		data[j] = b
	}
	// Only a GetOrFill fill can have cached a block of another size than
	// the Reader expects (its caller mixing the two on one object).
	for j, b := range data {
		i := first + int64(j)
		if need := min(end-i*c.bs, r.blockLen(i)); int64(len(b)) < need {
			return fmt.Errorf("block %d of %q: %d bytes, want at least %d: %w", i, r.obj.Key, len(b), need, ErrShortObject)
		}
	}
	return nil
}

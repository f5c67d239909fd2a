package cache

import (
	"context"
	"errors"
	"io"
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

	// Guarded by the cache lock.
	runs   map[*run]struct{} // prefetch runs this reader owns a share of
	closed bool
}

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
// touches (fetching those nobody is fetching yet) and starts the readahead
// its window asks for, which it does not wait for. If ctx is done first it
// returns ctx.Err(); the fetches it started go on and are cached.
//
// Errors from fetch come back wrapped (errors.Is works): with an If-Match
// fetch, s3backend.ErrPreconditionFailed means the object changed; the
// caller should then Invalidate the key and return ESTALE.
func (r *Reader) ReadAt(ctx context.Context, dest []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("cache: negative offset")
	}
	if off >= r.obj.Size {
		return 0, io.EOF
	}
	n := min(int64(len(dest)), r.obj.Size-off)
	if n == 0 {
		return 0, nil
	}
	bs := r.c.bs
	first, last := off/bs, (off+n-1)/bs
	var ahead []int64
	if r.win != nil {
		ahead = r.win.Observe(off, n)
	}
	var small [4][]byte // most reads touch one or two blocks: no allocation
	blocks := small[:0]
	if k := int(last - first + 1); k > len(small) {
		blocks = make([][]byte, 0, k)
	}
	blocks = blocks[:last-first+1]
	if err := r.acquire(ctx, first, blocks, ahead); err != nil {
		return 0, err
	}
	done := 0
	for i, b := range blocks {
		boff := (first + int64(i)) * bs
		from := max(off-boff, 0)
		to := min(off+n-boff, int64(len(b)))
		done += copy(dest[done:], b[from:to])
	}
	if done < len(dest) {
		return done, io.EOF
	}
	return done, nil
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
		for k, a := range c.ahead {
			if a.owner == r {
				delete(c.ahead, k)
				c.aheadB -= int64(len(a.data))
				c.lru.Add(k, a.data)
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

// acquire fills blocks[j] with block first+j, fetching what is missing,
// and starts readahead of the blocks in ahead.
func (r *Reader) acquire(ctx context.Context, first int64, blocks [][]byte, ahead []int64) error {
	c := r.c
	var (
		waits    []*call
		waitIdx  []int
		lookups  [int(LookupMiss) + 1]int
		started  []*run
		skipped  int64 = -1
		evTotal  evictions
		fgNeeded bool
	)
	c.mu.Lock()
	for {
		if c.closed {
			c.mu.Unlock()
			return ErrClosed
		}
		// What is held, what is in flight, what is missing.
		var missing int64
		fgNeeded = false
		for j := range blocks {
			if blocks[j] != nil || containsIdx(waitIdx, j) {
				continue
			}
			k := r.blockKey(first + int64(j))
			if data, res, ok := c.lookupLocked(k); ok {
				blocks[j] = data
				lookups[res]++
				continue
			}
			if cl := c.inflight[k]; cl != nil {
				c.wantLocked(cl)
				waits = append(waits, cl)
				waitIdx = append(waitIdx, j)
				lookups[LookupJoin]++
				continue
			}
			missing += r.blockLen(first + int64(j))
			fgNeeded = true
		}
		if !fgNeeded {
			break
		}
		ev, ok := c.makeRoomLocked(missing, true)
		evTotal.add(ev)
		if ok || c.reserved == 0 {
			break
		}
		if err := c.waitBudgetLocked(ctx, evTotal); err != nil {
			return err
		}
		evTotal = evictions{}
	}

	// Foreground runs: maximal stretches of missing blocks.
	var tail *run // the run ending at the last block the read touches, if any
	for j := 0; j < len(blocks); {
		if blocks[j] != nil || containsIdx(waitIdx, j) {
			j++
			continue
		}
		ru := &run{fetch: r.fetch, keep: true}
		for ; j < len(blocks) && blocks[j] == nil && !containsIdx(waitIdx, j); j++ {
			i := first + int64(j)
			cl := c.newCallLocked(ru, r.blockKey(i), r.blockLen(i), r.blockLen(i), false)
			cl.wanted = true
			waits = append(waits, cl)
			waitIdx = append(waitIdx, j)
			lookups[LookupMiss]++
		}
		started = append(started, ru)
		if j == len(blocks) {
			tail = ru
		}
	}

	// Readahead: skip what is held or in flight (taking a share of a
	// prefetch in flight, so that it is not cancelled while we want it),
	// extend the foreground run that ends where readahead starts, else
	// group into runs of at most RunBytes.
	if !r.closed {
		last := first + int64(len(blocks)) - 1
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
			size := r.blockLen(i)
			if c.pfRes+c.aheadB+size > c.pfMax {
				skipped = i
				break
			}
			ev, ok := c.makeRoomLocked(size, false)
			evTotal.add(ev)
			if !ok {
				skipped = i
				break
			}
			switch {
			case cur != nil && len(cur.calls) < int(c.ra.runBlocks) && cur.calls[len(cur.calls)-1].key.Index == i-1:
			case cur == nil && tail != nil && i == last+1 && tail.calls[len(tail.calls)-1].key.Index == last:
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
			c.newCallLocked(cur, k, size, size, true)
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

	c.reportEvictions(evTotal)
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
		data, err := cl.wait(ctx)
		if err != nil {
			return err
		}
		blocks[waitIdx[x]] = data
	}
	return nil
}

func (e *evictions) add(o evictions) {
	e.blocks += o.blocks
	e.unread += o.unread
	e.bytes += o.bytes
}

func containsIdx(s []int, j int) bool {
	for _, x := range s {
		if x == j {
			return true
		}
	}
	return false
}

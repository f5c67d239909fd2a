package fs

// Kernel page-cache fill for random readers.
//
// A random reader (fio, a database, an index lookup in a zip or parquet
// file) misses the kernel's page cache on nearly every read, and each miss
// is a FUSE round trip for one 4 KiB page, even when the block cache holds
// the whole block around it. After such a read, the blocks it touched are
// pushed into the page cache with FUSE_NOTIFY_STORE, so that later reads
// anywhere in those blocks never leave the kernel: a block crosses into the
// kernel once instead of once per page, and the object's bytes are fetched
// from the store once for as long as the page cache keeps them. Sequential
// readers are left alone: the kernel's own readahead already fills the
// page cache for them.
//
// A push writes the object's bytes over whatever the page cache holds for
// that range, so it must never land on pages a writer has changed, nor past
// a truncation (NOTIFY_STORE even extends i_size). Hence:
//   - a push starts only while the node is clean (no staging file), still
//     has the key, ETag and size the block was read at, and nobody holds
//     pushes off;
//   - writable handles (from open to release) and truncates hold pushes
//     off, and wait for the pushes already running to finish ("fencing");
//   - an open that makes the kernel drop the page cache (a new version of
//     the object) fences too, so that no push of the old version lands
//     after the drop.
//
// Pushes run after the read's reply has been sent (the kernel keeps the
// page being read locked until then, and NOTIFY_STORE waits for that
// lock), on at most pushSlots goroutines; when they are all busy a push is
// skipped, not queued: the next miss in that block asks again. A push
// copies the block out of the block cache first and does not hold it while
// it waits for the kernel, so that a read waiting for cache memory can
// never wait on a push.

import (
	"context"
	"sync"
	"time"

	"github.com/novitalabs/bucketfs/cache"
)

// pushWaitFetch bounds how long a push waits for the rest of its block to
// arrive.
const pushWaitFetch = 30 * time.Second

// pushSlots bounds the pushes running at once (and the memory they copy
// blocks into).
const pushSlots = 2

// kernelFill is the FS-wide state of the page-cache fill.
type kernelFill struct {
	slots chan struct{}  // a token per running push
	wg    sync.WaitGroup // running pushes, for Close
	bufs  sync.Pool      // block-sized copy buffers (*[]byte)
}

func newKernelFill(blockSize int64) *kernelFill {
	k := &kernelFill{slots: make(chan struct{}, pushSlots)}
	k.bufs.New = func() any {
		b := make([]byte, blockSize)
		return &b
	}
	return k
}

// pushState is a node's part of the page-cache fill, guarded by Node.mu.
type pushState struct {
	holds   int        // writable handles and truncates in progress: no push may start
	running int        // pushes being written to the kernel now
	idle    *sync.Cond // on Node.mu; broadcast when running drops to 0; made on first wait
	epoch   uint64     // bumped by every fence; a push of an older epoch is dropped
	// recent maps a block to when its last push started (time.Now
	// nanoseconds). The kernel may drop pushed pages at any time
	// (fadvise DONTNEED, memory pressure) without telling us, so a block
	// is pushed again when a read misses it later; only the reads that
	// were already on their way while it was pushed are not answered with
	// another push.
	recent map[int64]int64
}

// pushAgainAfter is how long after a push of a block a miss in it counts as
// the kernel having dropped it, rather than as a read already on its way.
const pushAgainAfter = 200 * time.Millisecond

// maxRecent bounds pushState.recent; past it the map starts over (which at
// worst repeats a few pushes).
const maxRecent = 1 << 14

func (p *pushState) isRecent(i int64, now int64) bool {
	t, ok := p.recent[i]
	return ok && now-t < int64(pushAgainAfter)
}

func (p *pushState) markPushed(i int64, now int64) {
	if p.recent == nil || len(p.recent) >= maxRecent {
		p.recent = make(map[int64]int64)
	}
	p.recent[i] = now
}

// pushes returns n's page-cache fill state, made on first use (most nodes
// are never read through the page cache). n.mu held.
func (n *Node) pushes() *pushState {
	if n.pushSt == nil {
		n.pushSt = new(pushState)
	}
	return n.pushSt
}

// fencePushesLocked drops the pushes not yet started and waits for the
// running ones. n.mu held; it is released while waiting.
func (n *Node) fencePushesLocked() {
	if n.pushSt == nil {
		return // no push ever started or was planned
	}
	n.pushes().epoch++
	n.pushes().recent = nil
	for n.pushes().running > 0 {
		if n.pushes().idle == nil {
			n.pushes().idle = sync.NewCond(&n.mu)
		}
		n.pushes().idle.Wait()
	}
}

// holdPushes fences and keeps pushes off until releasePushes. Never call it
// holding dataMu: a running push may be waiting for a read that needs it.
func (n *Node) holdPushes() {
	n.mu.Lock()
	n.pushes().holds++
	n.fencePushesLocked()
	n.mu.Unlock()
}

func (n *Node) releasePushes() {
	n.mu.Lock()
	n.pushes().holds--
	n.mu.Unlock()
}

// fillKernelCache pushes, in the background, the blocks of [off, off+length)
// of the version (key, etag, size) that the block cache holds and that have
// not been pushed yet. Call it after a read of a random reader.
func (n *Node) fillKernelCache(key, etag string, size, off, length int64) {
	if length <= 0 {
		return
	}
	kf := n.fsys.fill
	bs := n.fsys.blocks.BlockSize()
	first, last := off/bs, (off+length-1)/bs
	var todo [2]int64 // a read spans one block, rarely two
	blocks := todo[:0]
	now := time.Now().UnixNano()
	n.mu.Lock()
	epoch := n.pushes().epoch
	if n.pushes().holds == 0 && n.staging == nil {
		for i := first; i <= last; i++ {
			if !n.pushes().isRecent(i, now) {
				blocks = append(blocks, i)
			}
		}
	}
	n.mu.Unlock()
	for _, i := range blocks {
		select {
		case kf.slots <- struct{}{}:
		default:
			return // all busy: a later miss in this block asks again
		}
		kf.wg.Add(1)
		go func() {
			defer kf.wg.Done()
			defer func() { <-kf.slots }()
			n.pushBlock(key, etag, size, i, epoch)
		}()
	}
}

// pushBlock copies block i out of the block cache (either tier) and stores
// it in the kernel's page cache, if the node still is what the block was read from.
func (n *Node) pushBlock(key, etag string, size, i int64, epoch uint64) {
	kf := n.fsys.fill
	bs := n.fsys.blocks.BlockSize()
	ctx, cancel := context.WithTimeout(context.Background(), pushWaitFetch)
	defer cancel()
	off := i * bs
	if off >= size {
		return
	}
	bp := kf.bufs.Get().(*[]byte)
	defer kf.bufs.Put(bp)
	// From memory, or from the disk tier, which serves random readers'
	// blocks without bringing them into memory.
	got, ok := n.fsys.blocks.CopyBlock(ctx, cache.BlockKey{Key: key, ETag: etag, Index: i}, min(bs, size-off), *bp)
	if !ok {
		return
	}
	data := (*bp)[:min(int64(got), size-off)]

	now := time.Now().UnixNano()
	n.mu.Lock()
	if n.pushes().epoch != epoch || n.pushes().holds > 0 || n.staging != nil || n.unlinked ||
		n.key != key || n.etag != etag || n.size != size || n.pushes().isRecent(i, now) {
		n.mu.Unlock()
		return
	}
	n.pushes().markPushed(i, now)
	n.pushes().running++
	n.mu.Unlock()

	errno := n.WriteCache(off, data)

	n.mu.Lock()
	n.pushes().running--
	if n.pushes().running == 0 && n.pushes().idle != nil {
		n.pushes().idle.Broadcast()
	}
	n.mu.Unlock()
	if errno != 0 {
		// The kernel forgot the inode, or does not support it: the
		// reads just keep coming to us.
		n.fsys.log.Debug("page cache fill failed", "key", key, "block", i, "errno", errno)
	}
}

// Package cache is the read-side cache of bucketfs: a block cache bounded in
// bytes with shared fills and sequential readahead, an optional disk tier
// with a hard cap, and a small TTL cache for metadata. It is a pure library:
// no FUSE, no AWS types. It reaches the store only through functions the
// caller passes in (RangeFunc, FillFunc), and reports to metrics only
// through the Observer interface.
//
// # Pieces
//
//   - BlockCache: blocks of BlockSize bytes keyed by BlockKey{Key, ETag,
//     Index}, so a replaced object never reads the old version's blocks.
//     One budget, MaxBytes, covers the blocks held and the blocks being
//     fetched. Concurrent requests for a block share one fetch, which runs
//     on a context of its own with a deadline, so a reader that gives up
//     (a FUSE interrupt) never fails the others, and the block it started
//     is still cached.
//   - Reader: one per open file handle. ReadAt serves a read from blocks,
//     fetching missing ones with ranged GETs, and keeps a readahead window
//     of GETs in flight for a sequential reader. A block is readable while
//     it arrives: a read waits only for the bytes it needs, so the first
//     4 KiB of a file cost one GET's time to first byte, not a whole
//     block's transfer. ReadSlices is ReadAt without the copy, for a
//     zero-copy (writev) reply. Close cancels the readahead only that
//     handle wanted.
//   - Readahead and Window: the readahead policy, pure logic. A window opens
//     small (2 blocks) on a read at offset 0 or on the second sequential
//     read, doubles each time the reader enters a new block, up to
//     MaxWindowBytes and to a fair share of the prefetch budget among the
//     sequential readers, and collapses on a random read. It is topped up
//     in chunks of up to RunBytes (16 MiB), so a steady reader makes a few
//     large GETs, not one per block: against MinIO, 8 MiB GETs gave about
//     80% of the throughput of 16 MiB ones.
//   - DiskCache: an optional second tier of block files under a directory,
//     with a hard byte cap and LRU eviction. Any write error turns it off
//     with one warning; it never fails a read.
//   - TTLCache: a bounded LRU of values that expire, with an injectable
//     Clock, for stat results, listings and negative entries.
//
// # Wiring into the read path (package fs)
//
// At mount, from the flags (--block-size, --memory-cache-size, --cache-dir,
// --cache-size):
//
//	var disk *cache.DiskCache
//	if cfg.CacheDir != "" {
//		disk, err = cache.OpenDisk(cache.DiskOptions{Dir: cfg.CacheDir, MaxBytes: cfg.CacheSize, Logger: log})
//	}
//	bc, err := cache.New(cache.Options{
//		BlockSize: cfg.BlockSize,       // 0: 1 MiB
//		MaxBytes:  cfg.MemoryCacheSize, // 0: 256 MiB
//		Disk:      disk,                // nil: no disk tier
//		Observer:  metricsObserver,     // nil: none
//	})
//	// at unmount: bc.Close(), then disk.Close()
//
// At Open of a file with no local (staged) data, one Reader per handle,
// pinned to the ETag and size seen at open:
//
//	h.rd = bc.NewReader(cache.Object{Key: key, ETag: etag, Size: size},
//		func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
//			return store.GetRange(ctx, key, off, n, etag) // If-Match: etag
//		})
//
// In Read, when the node has no staging file (the staging file still wins,
// as today), with no fs lock held, because ReadAt waits for the network:
//
//	n, err := h.rd.ReadAt(ctx, dest[:want], off)
//	switch {
//	case err == nil || err == io.EOF:
//		return fuse.ReadResultData(dest[:n]), 0
//	case errors.Is(err, s3backend.ErrPreconditionFailed), errors.Is(err, cache.ErrShortObject):
//		bc.Invalidate(key) // the object changed: free the old blocks
//		node.expire()      // the next open sees the new ETag
//		return nil, syscall.ESTALE
//	default:
//		return nil, toErrno(err) // ctx errors: EINTR
//	}
//
// or, without the copy into dest, with a ReadResult that sends the blocks
// themselves (go-fuse calls Done once the reply is written, and writes the
// vectors with one writev when the result has a Slices method):
//
//	s, err := h.rd.ReadSlices(ctx, off, want) // err handling as above; release on io.EOF too
//	return sliceResult{s}, 0
//
//	type sliceResult struct{ s *cache.Slices }
//	func (r sliceResult) Size() int                           { return r.s.Len() }
//	func (r sliceResult) Bytes(buf []byte) ([]byte, fuse.Status) { /* append r.s.Vecs to buf[:0] */ }
//	func (r sliceResult) Slices() ([][]byte, fuse.Status)       { return r.s.Vecs, fuse.OK }
//	func (r sliceResult) Done()                               { r.s.Release() }
//
// In Release: h.rd.Close(). A Reader is safe for concurrent ReadAt calls, so
// handles need no lock of their own around it, and one Reader may serve a
// handle-less Read too (create one, read, Close).
//
// The fetch function may resolve the node's current key at call time, so
// that a rename under an open file keeps reading the renamed object; block
// keys keep the key seen at open, which is harmless since the ETag pins the
// content. Whether to set FOPEN_KEEP_CACHE stays the caller's decision
// (same ETag as at the previous open).
//
// # Memory
//
// The blocks held, the blocks being fetched and the recycled buffers
// waiting for a fetch never exceed MaxBytes together (tested under
// concurrent fills, cancellations and readers). Readahead may use at most
// PrefetchBytes of it (default half), counting both its fetches in flight
// and the prefetched blocks not read yet, so that reads waiting for data
// always find room. When the budget is full a read evicts least recently
// read blocks first, then unread prefetched ones, and waits only for
// fetches in flight; readahead never waits: it is skipped and retried on a
// later read.
//
// Block buffers are recycled rather than left to the garbage collector: an
// evicted block's buffer goes to the next fetch once nothing can read it
// (Reader copies and ReadSlices results pin blocks, queued disk writes
// too; blocks handed out by Get and GetOrFill are never reused). This
// saves zeroing a new buffer per block, a fifth of the read path's CPU, and
// keeps garbage from growing the heap: four sequential readers through a
// 128 MiB cache peak at 131 MiB of RSS, where plain allocation peaked at
// 247 MiB (BenchmarkFourSequentialReaders). What lives outside MaxBytes:
//
//   - evicted blocks still pinned by a reader (one read's worth per
//     concurrent read, or per unreleased Slices);
//   - the disk tier's write queue (DiskOptions.QueueBlocks + 1 blocks);
//   - one read's blocks when a single read needs more than the whole
//     budget and nothing else is in flight (so that it can proceed at all);
//   - the rest of the daemon's garbage. A soft memory limit
//     (debug.SetMemoryLimit, or GOMEMLIMIT) of MaxBytes plus what the rest
//     of the daemon needs is still a good safety net.
//
// # Disk tier
//
// The cap counts 4 KiB filesystem blocks per file, as du(1) does, and holds
// at every instant: bytes are accounted before a file is created and until
// it is removed. Files are named by a SHA-256 of the BlockKey. At start the
// directory is locked (flock: a second mount on the same directory runs
// without a disk tier rather than share the cap) and the block files a
// previous run left are deleted: they would still be valid (ETag-keyed), but
// starting empty keeps the accounting exact. Close deletes them too. Blocks
// are written asynchronously by one goroutine behind a short queue; when the
// queue is full a block is not written, so the disk never slows a read.
// Unless the tier keeps everything (Options.DiskSequential), a block that
// is all of its object (a file smaller than a block) is not written: it is
// read whole and one GET fetches it again.
//
// A random read (one within a block, with no readahead) of a block that
// only the disk tier holds is served by a pread of just the bytes it asks
// for, and the block stays out of memory: a 4 KiB read costs 4 KiB, not a
// 1 MiB copy and an eviction. A block is promoted into memory (read whole)
// on its second read while memory has room, and once memory is full only
// when it is read more than twice as often as the block it would evict, as
// counted by a small frequency sketch that ages by halving: under uniform
// random reads of more than memory holds, memory stays put instead of
// churning, and a scan cannot push out what is read often.
//
// # Locks
//
// Each type has one mutex, documented on its fields. They are leaves: no
// I/O, no callback (Observer, fetch, fill) and no other lock runs under
// them. Fetches run in their own goroutines, without locks.
package cache

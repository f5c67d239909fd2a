package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/novitalabs/bucketfs/cache"
	"github.com/novitalabs/bucketfs/s3backend"
)

var errEOF = io.EOF

var _ fuse.ReadResult = sliceResult{}

// handle is one open file description.
type handle struct {
	n        *Node
	writable bool
	append   bool
	// direct: opened with O_DIRECT. The kernel sends all its reads to us
	// and never looks at the page cache for them, so pushing blocks into
	// it (kernelfill.go) would be work for nothing.
	direct bool
	// pageCached: an open(2) without O_DIRECT, whose reads the kernel
	// keeps in its page cache; the block cache need not keep what a
	// sequential reader of it has read (cache.Reader.DropConsumed).
	pageCached bool

	// mu guards rd, the block-cache reader of this handle, pinned to the
	// object version it was made for (a newer version gets a new one).
	mu sync.Mutex
	rd *cache.Reader

	// served: a read through this handle has returned bytes of the
	// object. Until then a replaced object is simply the one to read
	// (revalidated on 412); after, it is ESTALE, never a mix of versions.
	served atomic.Bool
	// pinned is the version served (guarded by mu): after a refresh
	// found another writer's version (Node.replaced moved on), reads go
	// on from this one, pinned by If-Match, so that the cached blocks of
	// the old version still serve and a fetch gets ESTALE.
	pinned       cache.Object
	pinnedCount  uint64 // Node.replaced when pinned
	pinnedLoaded bool

	// unflushed: written through since its last FLUSH (guarded by the
	// node's mu, counted in Node.unflushed).
	unflushed bool

	// owners: the processes that opened this description for writing or
	// wrote through it (flushowner.go; guarded by the node's mu), and
	// lastWriter the thread of the last write whose process they hold.
	owners     owners
	lastWriter atomic.Uint32
}

// pin records obj as the version this handle serves, once.
func (h *handle) pin(obj cache.Object, replaced uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.pinnedLoaded {
		h.pinned, h.pinnedCount, h.pinnedLoaded = obj, replaced, true
	}
	h.served.Store(true)
}

// version returns the object version a read through h must use: obj, or
// the version h already served if another writer's has replaced it since.
func (h *handle) version(obj cache.Object, replaced uint64) cache.Object {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pinnedLoaded && h.pinnedCount != replaced && h.pinned.Key == obj.Key {
		return h.pinned
	}
	return obj
}

func newHandle(n *Node, flags uint32) *handle {
	acc := flags & syscall.O_ACCMODE
	return &handle{
		n:        n,
		writable: acc == syscall.O_WRONLY || acc == syscall.O_RDWR,
		append:   flags&syscall.O_APPEND != 0,
		direct:   flags&syscall.O_DIRECT != 0,

		pageCached: flags&syscall.O_DIRECT == 0,
	}
}

// Open opens a file. A stale file is re-checked first so that a reader sees
// another writer's replacement once the stat cache has expired. The
// kernel's page cache is kept when the object is the one the last open saw.
func (n *Node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if n.kind != kindFile {
		return nil, 0, syscall.EISDIR
	}
	h := newHandle(n, flags)
	if h.writable && n.fsys.cfg.ReadOnly {
		return nil, 0, syscall.EROFS
	}
	if errno := n.refreshIfStale(ctx); errno != 0 {
		return nil, 0, errno
	}
	if h.writable {
		// Page-cache pushes must not land on what this handle writes.
		n.holdPushes()
	}
	// The open is counted before an O_TRUNC makes the file dirty: the
	// retry loop uploads dirty files nobody has open, and in between it
	// would send the emptied file over the old object, which must change
	// only at this handle's close (CI caught it: TestWritebackOTruncIsAtomic
	// found an empty object).
	// An O_TRUNC open changes the file as a write through the handle
	// does: its close is to come, and uploads attributes set before
	// (Setattr), never the emptied file on its own.
	truncating := h.writable && flags&syscall.O_TRUNC != 0
	var openerPid uint32
	var opener int32
	if h.writable {
		openerPid, opener = n.opener(ctx)
	}
	n.mu.Lock()
	n.openCount++
	if h.writable {
		h.owners.add(openerPid, opener) // an owner: flushowner.go
	}
	if truncating {
		n.writtenThroughLocked(h)
	}
	n.mu.Unlock()
	if truncating {
		n.killSuidFor(ctx)
		errno := n.truncate(ctx, 0)
		if testHookOpenTruncated != nil {
			testHookOpenTruncated(n)
		}
		if errno != 0 {
			n.releasePushes()
			n.uncountOpen(h)
			return nil, 0, errno
		}
	}
	var fuseFlags uint32
	n.mu.Lock()
	// Our own writes go through the page cache, so it stays right while
	// the object changes only through us; another writer's version has a
	// new ETag, and then the kernel must drop what it has.
	if n.etag != "" && n.etag == n.openedETag && n.staging == nil {
		fuseFlags |= fuse.FOPEN_KEEP_CACHE
		// The kernel may serve this handle's first reads from pages of
		// this version that we never see: count them as served, so
		// that a replacement found later is ESTALE, not a mix.
		h.pin(cache.Object{Key: n.key, ETag: n.etag, Size: n.size}, n.replaced)
	} else {
		// The kernel drops the page cache after this open: no push of
		// the version it held may land after that.
		n.fencePushesLocked()
	}
	n.openedETag = n.etag
	n.mu.Unlock()
	if !h.writable {
		n.noteOpenForRead()
	}
	return h, fuseFlags, 0
}

// testHookOpenTruncated, when set by a test, runs in Open right after an
// O_TRUNC open emptied the file, before the handle exists.
var testHookOpenTruncated func(*Node)

// uncountOpen takes back the count of h's open, which failed after it
// was counted, as Release would for its last handle.
func (n *Node) uncountOpen(h *handle) {
	n.mu.Lock()
	n.flushedLocked(h)
	n.openCount--
	wake := n.openCount == 0 && n.hasPendingLocked()
	n.mu.Unlock()
	if wake {
		n.fsys.wakeRetries()
	}
}

// Read serves from the staging file when the node has one, else from the
// block cache, whose fetches are ranged GETs pinned to the ETag seen at
// lookup (If-Match): a replaced object gives ESTALE, never a mix.
func (n *Node) Read(ctx context.Context, f gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n.dataMu.RLock()
	n.mu.Lock()
	if n.mem != nil {
		// The newest bytes are in memory (streammem.go): staging first.
		n.mu.Unlock()
		n.dataMu.RUnlock()
		if errno := n.lockDataWhole(); errno != 0 {
			return nil, errno
		}
		n.dataMu.Unlock()
		return n.Read(ctx, f, dest, off)
	}
	if n.punchedBelowLocked(off) {
		// Released bytes (stream.go): store them first, then read.
		n.mu.Unlock()
		n.dataMu.RUnlock()
		n.dataMu.Lock()
		errno := n.settleStreamLocked(ctx)
		n.dataMu.Unlock()
		if errno != 0 {
			return nil, errno
		}
		return n.Read(ctx, f, dest, off)
	}
	staging, size, key, etag, replaced := n.staging, n.size, n.key, n.etag, n.replaced
	var base editBase
	sparse := n.editBase != nil
	var dirty rangeSet
	if sparse {
		base, dirty = *n.editBase, slices.Clone(n.dirty)
	}
	n.mu.Unlock()
	if staging != nil {
		defer n.dataMu.RUnlock()
		if off >= size {
			return fuse.ReadResultData(nil), 0
		}
		want := min(int64(len(dest)), size-off)
		if sparse {
			h, _ := f.(*handle)
			if h == nil {
				h = &handle{n: n}
				defer h.closeReader()
			}
			if err := n.readSparse(ctx, h, staging, base, dirty, dest[:want], off); err != nil {
				errno := toErrno(err)
				if errors.Is(err, cache.ErrShortObject) {
					errno = syscall.ESTALE
				}
				n.fsys.logFailure("read", key, err, errno)
				return nil, errno
			}
			return fuse.ReadResultData(dest[:want]), 0
		}
		got, err := staging.ReadAt(dest[:want], off)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, toErrno(err)
		}
		// The staging file may be shorter than size after an extending
		// truncate that wrote no data: the rest reads as zeros.
		clear(dest[got:want])
		return fuse.ReadResultData(dest[:want]), 0
	}
	n.dataMu.RUnlock()
	h, _ := f.(*handle)
	if h == nil {
		h = &handle{n: n}
		defer h.closeReader()
	}
	obj := h.version(cache.Object{Key: key, ETag: etag, Size: size}, replaced)
	etag, size = obj.ETag, obj.Size
	if off >= size || etag == "" {
		return fuse.ReadResultData(nil), 0
	}
	want := min(int64(len(dest)), size-off)
	rd := h.reader(obj)
	// Not interruptible, as metaContext explains; the cache bounds each
	// fetch with its own deadline.
	slices, err := rd.ReadSlices(context.WithoutCancel(ctx), off, int(want))
	if err != nil && !errors.Is(err, io.EOF) {
		errno := toErrno(err)
		if errno == syscall.ESTALE || errors.Is(err, cache.ErrShortObject) {
			errno = syscall.ESTALE
			n.fsys.blocks.Invalidate(key)
			n.expire()
			if f != nil && !h.served.Load() && n.revalidate(ctx, key, etag) {
				// Another writer replaced the object before this
				// handle returned any byte: read the new version.
				return n.Read(ctx, f, dest, off)
			}
		}
		if errno != syscall.EINTR {
			n.fsys.logFailure("read", key, err, errno)
		}
		return nil, errno
	}
	if w := rd.Window(); w != nil && w.Blocks() == 0 && f != nil && !h.direct {
		// A random buffered reader: let its next reads in these
		// blocks stay in the kernel (kernelfill.go).
		n.fillKernelCache(key, etag, size, off, want)
	}
	if slices.Len() > 0 && f != nil {
		h.pin(obj, replaced)
	}
	return sliceResult{slices}, 0
}

// revalidate asks the store for the object at key after a read pinned to
// etag found it replaced, and takes its new version; it reports whether
// there is one (another ETag) to read.
func (n *Node) revalidate(ctx context.Context, key, etag string) bool {
	mctx, cancel := n.fsys.metaContext(ctx)
	defer cancel()
	info, err := n.fsys.store.Head(mctx, key)
	if err != nil || info.ETag == etag {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.key != key || n.etag != etag || n.staging != nil || n.kind != kindFile {
		return false // changed meanwhile: let the caller's next read see it
	}
	n.applyInfoLocked(info, true)
	n.validUntil = time.Now().Add(n.fsys.cfg.StatCacheTTL)
	n.fsys.log.Info("object replaced by another writer before this reader read any of it: reading the new version",
		"key", key, "old_etag", etag, "new_etag", info.ETag, "size", info.Size)
	return true
}

// reader returns the handle's block reader for obj, replacing one made for
// another version of the object.
func (h *handle) reader(obj cache.Object) *cache.Reader {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rd != nil && h.rd.Object() == obj {
		return h.rd
	}
	if h.rd != nil {
		h.rd.Close()
	}
	store, key, etag := h.n.fsys.store, obj.Key, obj.ETag
	h.rd = h.n.fsys.blocks.NewReader(obj, func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
		return store.GetRange(ctx, key, off, n, etag)
	})
	if h.pageCached {
		h.rd.DropConsumed()
	}
	return h.rd
}

func (h *handle) closeReader() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rd != nil {
		h.rd.Close()
		h.rd = nil
	}
}

// sliceResult hands the cache's blocks to go-fuse without a copy: its
// Slices method lets go-fuse write them with one writev, and Done (after
// the reply is sent) lets the cache reuse them.
type sliceResult struct{ s *cache.Slices }

func (r sliceResult) Size() int { return r.s.Len() }

func (r sliceResult) Bytes(buf []byte) ([]byte, fuse.Status) {
	out := buf[:0]
	for _, v := range r.s.Vecs {
		out = append(out, v...)
	}
	return out, fuse.OK
}

func (r sliceResult) Slices() ([][]byte, fuse.Status) { return r.s.Vecs, fuse.OK }

func (r sliceResult) Done() { r.s.Release() }

// expire makes the next stat re-read the object.
func (n *Node) expire() {
	n.mu.Lock()
	n.validUntil = time.Time{}
	n.mu.Unlock()
}

// Write stages data locally; the upload happens at flush or fsync.
func (n *Node) Write(ctx context.Context, f gofs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if n.fsys.cfg.ReadOnly {
		return 0, syscall.EROFS
	}
	n.dataMu.Lock()
	defer n.dataMu.Unlock()
	n.mu.Lock()
	retired := n.retired
	n.mu.Unlock()
	if retired {
		// Its data moved to another node (adopt): a write here would go
		// to a staging file nothing uploads. Refuse it loudly.
		n.fsys.log.Error("internal invariant broken: write to a node whose data moved to another; refused with EIO", "key", n.currentKey())
		return 0, syscall.EIO
	}
	if errno := n.ensureStagedLocked(ctx); errno != 0 {
		return 0, errno
	}
	h, _ := f.(*handle)
	pid := callerPid(ctx)
	var writer int32
	known := true
	if h != nil {
		writer, known = h.writerOf(pid)
	}
	n.mu.Lock()
	killed := n.killSuidForLocked(ctx)
	if h != nil {
		if h.append {
			off = n.size // O_APPEND: always at the end we know, whatever the kernel thinks
		}
		n.writtenThroughLocked(h)
		n.noteWriterLocked(h, pid, writer, known)
	} else {
		n.anonWrites = true
	}
	m := n.mem
	toMem := m != nil && off == n.size && m.st == n.stream && m.st.key == n.key
	n.mu.Unlock()
	if killed {
		n.forgetKernelAttrs()
	}
	took := 0
	if toMem {
		var errno syscall.Errno
		took, errno = n.writeMem(data)
		if errno != 0 || took == len(data) {
			return uint32(took), errno
		}
		data, off = data[took:], off+int64(took) // it spilled: the rest goes to staging
	} else if m != nil {
		// Not an append to the stream's file: staging must hold every byte.
		if errno := n.spillLocked(); errno != 0 {
			return 0, errno
		}
	}
	written, errno := n.writeStaged(data, off)
	return uint32(took + written), errno
}

// writeStaged writes data at off to the staging file. dataMu held for
// writing.
func (n *Node) writeStaged(data []byte, off int64) (int, syscall.Errno) {
	n.mu.Lock()
	staging := n.staging
	n.mu.Unlock()
	if errno := n.reserveStaging(off, int64(len(data))); errno != 0 {
		return 0, errno
	}
	written, err := staging.WriteAt(data, off)
	n.mu.Lock()
	appended := off == n.size
	if n.editBase != nil {
		n.growLocked(n.size, off) // a hole past the old end reads zeros
		n.dirty = n.dirty.add(off, int64(written))
	}
	if end := off + int64(written); end > n.size {
		n.size = end
	}
	if written > 0 {
		n.markDirtyLocked()
		n.attrs.mtime = time.Now()
		n.attrs.ctime = n.attrs.mtime
	}
	key := n.key
	n.mu.Unlock()
	if err != nil {
		errno := toErrno(err)
		n.fsys.log.Warn("staging write failed", "key", key, "errno", errno.Error(), "err", err)
		return written, errno
	}
	if errno := n.feedStream(off, written, appended); errno != 0 {
		return 0, errno
	}
	return written, 0
}

// truncate sets the size of a file, staging it first. An extension adds
// zeros; a shrink drops the tail.
func (n *Node) truncate(ctx context.Context, size int64) syscall.Errno {
	// Before dataMu: a running push may wait for a read that needs it.
	n.holdPushes()
	defer n.releasePushes()
	if errno := n.lockDataWhole(); errno != 0 {
		return errno
	}
	defer n.dataMu.Unlock()
	if errno := n.settleStreamLocked(ctx); errno != 0 {
		return errno
	}
	n.mu.Lock()
	same := n.size == size
	staged := n.staging != nil
	n.mu.Unlock()
	if same && staged {
		return 0
	}
	if size == 0 {
		// Emptied (open with O_TRUNC, truncate to 0): a new staging file
		// replaces whatever n held, a sparse edit's base included, and
		// appends from here may stream as a new file's do. Truncated in
		// place, a file once written kept seqOnly unset and an overwrite
		// of a big file was staged whole.
		if errno := n.stageEmptyLocked(); errno != 0 {
			return errno
		}
		n.mu.Lock()
	} else {
		if errno := n.ensureStagedLocked(ctx); errno != 0 {
			return errno
		}
		n.mu.Lock()
		n.fsys.abortStream(n.dropStreamLocked(), "truncate")
		if err := n.staging.Truncate(size); err != nil {
			n.mu.Unlock()
			return toErrno(err)
		}
		n.releaseStagingLocked(size)
		if n.editBase != nil {
			n.dirty = n.dirty.clip(size)
			n.growLocked(n.size, size)
		}
		n.size = size
	}
	n.markDirtyLocked()
	n.attrs.mtime = time.Now()
	n.attrs.ctime = n.attrs.mtime
	n.mu.Unlock()
	// A restart takes the longer of the sidecar's size and the data
	// file's (loadOne): after a shrink the sidecar must say so.
	n.saveSidecar()
	return 0
}

// preserveIfOpen stages an open file's content before its object is
// deleted or overwritten, so its open descriptors keep reading and writing
// what they had (POSIX: an unlinked file lives while it is open). Failing
// that, the descriptors get ESTALE later; the unlink itself goes on.
func (n *Node) preserveIfOpen(ctx context.Context) {
	n.mu.Lock()
	need := n.kind == kindFile && n.openCount > 0 && n.staging == nil
	streamed := n.kind == kindFile && n.openCount > 0 && n.staging != nil && (n.mem != nil || n.punched > 0)
	n.mu.Unlock()
	if streamed {
		n.preserveStreamed(ctx)
		return
	}
	if !need {
		return
	}
	n.dataMu.Lock()
	defer n.dataMu.Unlock()
	errno := n.ensureStagedLocked(ctx)
	if errno == 0 {
		errno = n.fillCleanLocked(ctx) // the base is about to go
	}
	if errno != 0 {
		n.fsys.log.Warn("could not keep an open file's content before removing it; its descriptors will see ESTALE",
			"key", n.currentKey(), "errno", errno.Error())
	}
}

// stageEmpty gives a new file an empty staging file.
func (n *Node) stageEmpty() syscall.Errno {
	n.dataMu.Lock()
	defer n.dataMu.Unlock()
	return n.stageEmptyLocked()
}

// stageEmptyLocked replaces any content with an empty staging file. dataMu held.
func (n *Node) stageEmptyLocked() syscall.Errno {
	f, id, err := n.fsys.createStagingFile(n)
	if err != nil {
		n.fsys.log.Warn("cannot create staging file", "dir", n.fsys.cfg.StagingDir, "err", err)
		return toErrno(err)
	}
	n.mu.Lock()
	old, oldID := n.staging, n.stage
	n.staging, n.stage = f, id
	n.size = 0
	n.releaseStagingLocked(0)
	n.punched, n.resume = 0, nil
	n.editBase, n.dirty = nil, nil
	n.releaseMemLocked(false)
	st := n.dropStreamLocked()
	n.seqOnly = true // an empty file: appends from here may stream
	n.mu.Unlock()
	n.fsys.abortStream(st, "emptied")
	if old != nil {
		old.Close()
		n.fsys.removeStage(oldID)
	}
	n.fsys.register(n)
	return 0
}

// ensureStagedLocked makes sure n has a staging file holding its current
// content, downloading the object if need be. dataMu held for writing.
func (n *Node) ensureStagedLocked(ctx context.Context) syscall.Errno {
	n.mu.Lock()
	if n.staging != nil {
		n.mu.Unlock()
		return 0
	}
	key, etag, size := n.key, n.etag, n.size
	sparse := n.sparseCandidateLocked()
	n.mu.Unlock()

	f, id, err := n.fsys.createStagingFile(n)
	if err != nil {
		n.fsys.log.Warn("cannot create staging file", "dir", n.fsys.cfg.StagingDir, "err", err)
		return toErrno(err)
	}
	if sparse {
		// Nothing to download: untouched bytes stay in the object.
	} else if size > 0 && etag != "" {
		// The download runs on its own context: an interrupted write
		// must not leave a half-filled staging file behind.
		dctx, cancel := n.fsys.downloadContext()
		err := downloadInto(dctx, n.fsys.store, key, etag, size, f)
		cancel()
		if err != nil {
			f.Close()
			n.fsys.removeStage(id)
			errno := toErrno(err)
			if errno == syscall.ESTALE {
				n.expire()
			}
			n.fsys.logFailure("stage", key, err, errno)
			return errno
		}
	}
	n.mu.Lock()
	n.staging, n.stage = f, id
	if sparse {
		n.editBase, n.dirty = &editBase{key: key, etag: etag, size: size}, nil
	}
	unlinked := n.unlinked
	n.mu.Unlock()
	if unlinked {
		// Kept for the open descriptors only: no sidecar, not registered.
		n.fsys.removeStage(id)
		return 0
	}
	// The sidecar was written as dirty; say what it really is.
	n.saveSidecar()
	n.fsys.register(n)
	return 0
}

func downloadInto(ctx context.Context, store s3backend.ObjectStore, key, etag string, size int64, f *os.File) error {
	body, err := store.GetRange(ctx, key, 0, -1, etag)
	if err != nil {
		return err
	}
	defer body.Close()
	copied, err := io.Copy(f, body)
	if err != nil {
		return fmt.Errorf("download %q: %w", key, err)
	}
	if copied != size {
		return fmt.Errorf("download %q: got %d bytes, expected %d: %w", key, copied, size, s3backend.ErrPreconditionFailed)
	}
	return nil
}

// Flush runs at every close of a descriptor: upload if there is anything
// new. The upload's error is close()'s error.
func (n *Node) Flush(ctx context.Context, f gofs.FileHandle) syscall.Errno {
	h, ok := f.(*handle)
	if ok && !h.writable {
		return 0
	}
	if ok && n.flushByBystander(ctx, h) {
		// A process that inherited the descriptor closed its copy
		// (flushowner.go): the owners' closes upload.
		return 0
	}
	if ok {
		n.mu.Lock()
		n.flushedLocked(h)
		n.mu.Unlock()
	}
	return n.upload(ctx, "close")
}

// writtenThroughLocked records a write through h: a FLUSH of h is to come
// (the close of the descriptor it came through), and its upload carries
// whatever changes until then (see Setattr). n.mu held.
func (n *Node) writtenThroughLocked(h *handle) {
	if !h.unflushed {
		h.unflushed = true
		n.unflushed++
	}
}

// flushedLocked records that h's writes so far are flushed: a later FLUSH
// of h comes only if it is written again (another descriptor of the same
// open file). Also at release, for writes no close followed (a shared
// mapping's pages written back after the last close). n.mu held.
func (n *Node) flushedLocked(h *handle) {
	if h.unflushed {
		h.unflushed = false
		n.unflushed--
	}
}

// Fsync uploads dirty data and reports the result.
func (n *Node) Fsync(ctx context.Context, f gofs.FileHandle, flags uint32) syscall.Errno {
	if n.kind != kindFile {
		return 0
	}
	return n.upload(ctx, "fsync")
}

// Release drops a handle. When the last one goes, a clean staging file is
// freed; a file with pending data (its upload failed at close, or it
// changed after the last flush) is left to the retry loop (retry.go).
func (n *Node) Release(ctx context.Context, f gofs.FileHandle) syscall.Errno {
	if h, ok := f.(*handle); ok {
		h.closeReader()
		if h.writable {
			n.releasePushes()
		}
	}
	n.mu.Lock()
	if h, ok := f.(*handle); ok {
		n.flushedLocked(h)
	}
	n.openCount--
	last := n.openCount == 0
	pending := n.hasPendingLocked()
	n.mu.Unlock()
	if !last {
		return 0
	}
	if pending {
		n.fsys.wakeRetries()
		return 0
	}
	n.dropStagingIfIdle()
	return 0
}

// dropStagingIfIdle frees the staging file of a clean node nobody has open.
func (n *Node) dropStagingIfIdle() {
	n.dataMu.Lock()
	defer n.dataMu.Unlock()
	n.mu.Lock()
	if n.openCount > 0 || n.hasPendingLocked() || n.staging == nil || n.mem != nil {
		n.mu.Unlock()
		return
	}
	f, id := n.staging, n.stage
	n.staging, n.stage = nil, ""
	n.releaseStagingLocked(0)
	// Under n.mu (FS.mu nests inside it): no one sees a registered node
	// without its staging file.
	n.fsys.unregister(n, n.key)
	n.mu.Unlock()
	f.Close()
	n.fsys.removeStage(id)
}

// hasPending reports whether n has data the bucket lacks.
func (n *Node) hasPending() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.hasPendingLocked()
}

// upload sends the staging file as the whole object when it has pending
// data. It runs on its own context with a deadline: a FUSE interrupt must
// not abort it half-way. Only uploads, renames, unlinks and metadata
// rewrites hold uploadMu.
func (n *Node) upload(ctx context.Context, why string) syscall.Errno {
	errno, created, sent := n.uploadLocking(why)
	switch {
	case created:
		// A listing loaded while the file was pending lacks it, and it is
		// no longer pending: put it in the parent's cached listing. Done
		// here, with none of our locks held, as go-fuse's tree is asked.
		if name, parent := n.Parent(); parent != nil {
			parent.Operations().(*Node).listingAdd(name, n.kind)
		}
	case sent:
		n.changedInParent()
	}
	return errno
}

// uploadLocking is upload's locked part; created reports that the object
// did not exist in the bucket before, sent that the object changed.
func (n *Node) uploadLocking(why string) (errno syscall.Errno, created, sent bool) {
	n.uploadMu.Lock()
	defer n.uploadMu.Unlock()
	defer n.enterMoves()()
	if errno := n.prepareUpload(); errno != 0 {
		return errno, false, false
	}

	// dataMu (read) is held from the snapshot below until the outcome is
	// recorded, so no write, truncate or stream start can fall between
	// them: the dirty ranges the upload leaves are exactly those it did
	// not send, and no second stream reads the staging file while this
	// upload's completion releases its bytes.
	n.dataMu.RLock()
	n.mu.Lock()
	if !n.hasPendingLocked() || n.retired || n.staging == nil {
		n.mu.Unlock()
		n.dataMu.RUnlock()
		return 0, false, false
	}
	if why == "retry" && n.openDirtyLocked() {
		// Opened since the retry loop picked it (an O_TRUNC open may
		// have emptied it): its own close uploads it.
		n.mu.Unlock()
		n.dataMu.RUnlock()
		return 0, false, false
	}
	if why == "close" {
		if err := n.recentFailureLocked(time.Now()); err != nil {
			key := n.key
			n.mu.Unlock()
			n.dataMu.RUnlock()
			errno := toErrno(err)
			n.fsys.log.Debug("close: the upload of this data failed just now; answered without trying again", "key", key, "errno", errno.Error())
			return errno, false, false
		}
	}
	created = n.etag == ""
	gen := n.beginUploadLocked()
	key, size, staging := n.key, n.size, n.staging
	base, dirty := n.editBase, slices.Clone(n.dirty)
	opts := putOptions(n.kind, key, n.attrs, n.foreign)
	st, resume := n.stream, n.resume
	n.stream = nil
	n.mu.Unlock()

	uctx, cancel := n.fsys.uploadContext()
	defer cancel()
	var etag string
	var err error
	streamed := false
	if resume != nil {
		etag, err = n.finishResume(uctx, resume, zeroPadded{staging, size}, key, size)
		streamed = true
	} else if st != nil && st.key == key {
		etag, err = n.completeStream(uctx, st, zeroPadded{staging, size}, size)
		streamed = !errors.Is(err, errStreamStale)
	} else {
		n.fsys.abortStream(st, "renamed")
	}
	switch {
	case streamed:
	case base != nil:
		etag, err = n.applyEdit(uctx, key, *base, dirty, zeroPadded{staging, size}, size, opts)
	default:
		etag, err = n.fsys.store.Upload(uctx, key, zeroPadded{staging, size}, size, opts)
	}
	var keep []byte
	if err == nil && !streamed && base == nil {
		// Still under dataMu: the staging file holds what was sent.
		keep = n.fsys.smallUploaded(key, staging, size)
	}
	n.mu.Lock()
	n.endUploadLocked(gen, etag, err, time.Now())
	if err == nil {
		n.afterUploadLocked(key, etag, size, false) // dataMu held since the snapshot
		n.validUntil = time.Now().Add(n.fsys.cfg.StatCacheTTL)
		// The object's headers are what opts said: a rewrite needs no
		// HEAD first (until the stat cache says to look again).
		n.metaLoaded = true
	}
	n.mu.Unlock()
	n.dataMu.RUnlock()
	if err != nil && n.inMem() {
		// The EIO to come promises the bytes are kept: on disk, then.
		n.dataMu.Lock()
		n.spillLocked()
		n.dataMu.Unlock()
	}
	if err == nil && (streamed || base != nil) {
		// A sparse edit's stored bytes leave the staging disk too, not
		// only a stream's: a writer flushed more often than a stream
		// starts (every exec of a forking program flushes) would
		// otherwise keep every byte it appended staged and charged
		// until ENOSPC.
		n.releaseStored(staging, etag)
	}
	n.saveSidecar()
	if err != nil {
		errno := toErrno(err)
		n.fsys.logFailure("upload ("+why+")", key, err, errno)
		return errno, false, false
	}
	// The previous version's blocks can never be read again: free them.
	n.fsys.blocks.Invalidate(key)
	if keep != nil {
		n.fsys.blocks.Put(cache.BlockKey{Key: key, ETag: etag}, keep)
	}
	return 0, created, true
}

// giveUp moves a file the retry loop could not upload within its window
// to the recovery directory (by rename, sidecar included) and takes it out
// of the namespace: the bucket does not have it. It does nothing if the
// file was opened, changed or uploaded meanwhile. The returned error names
// the file.
func (n *Node) giveUp(why string) error {
	n.uploadMu.Lock()
	defer n.uploadMu.Unlock()
	if errno := n.lockDataWhole(); errno != 0 {
		return nil // still in memory: not given up while it cannot be kept on disk
	}
	defer n.dataMu.Unlock()
	n.mu.Lock()
	if n.up.state != stateFailed || n.openCount > 0 || n.unlinked || n.retired || n.staging == nil {
		n.mu.Unlock()
		return nil
	}
	key, id, size, staging, lastErr := n.key, n.stage, n.size, n.staging, n.up.lastFailure()
	n.mu.Unlock()
	// The data file must hold exactly size bytes (an extending truncate
	// leaves it short, reading as zeros).
	if err := staging.Truncate(size); err != nil {
		n.fsys.log.Warn("recovery: could not size the data file", "key", key, "err", err)
	}
	path, err := n.fsys.moveToRecovery(id, key)
	if err != nil {
		n.fsys.log.Error("upload failed for good and the data could not be moved to the recovery directory; it stays in the staging directory for the next start",
			"key", key, "why", why, "staging_dir", n.fsys.cfg.StagingDir, "err", err)
		err = fmt.Errorf("%s: upload failed, kept in %s: %w", key, n.fsys.cfg.StagingDir, err)
		n.fsys.noteRecovered(err)
		return err
	}
	n.mu.Lock()
	n.up.state = stateRecovered
	n.unlinked = true
	n.staging, n.stage = nil, ""
	n.releaseStagingLocked(0)
	n.fsys.unregister(n, n.key)
	n.mu.Unlock()
	staging.Close()
	n.fsys.log.Error("upload failed for good; data moved to the recovery directory",
		"key", key, "why", why, "recovery_file", path, "sidecar", strings.TrimSuffix(path, dataSuffix)+sidecarSuffix,
		"bytes", size, "last_error", errString(lastErr),
		"reupload", fmt.Sprintf("copy %s into the mount as %s, or PUT it to the bucket as %s%s", path, key, n.fsys.cfg.Prefix, key))
	if name, parent := n.Parent(); parent != nil {
		parent.Operations().(*Node).listingRemove(name)
	}
	err = fmt.Errorf("%s: not uploaded, moved to %s", key, path)
	n.fsys.noteRecovered(err)
	return err
}

// zeroPadded reads a staging file as size bytes: past the file's end (an
// extending truncate that wrote nothing there) it reads zeros.
type zeroPadded struct {
	f    *os.File
	size int64
}

func (z zeroPadded) ReadAt(p []byte, off int64) (int, error) {
	if off >= z.size {
		return 0, io.EOF
	}
	if int64(len(p)) > z.size-off {
		p = p[:z.size-off]
	}
	n, err := z.f.ReadAt(p, off)
	if errors.Is(err, io.EOF) {
		clear(p[n:])
		n, err = len(p), nil
	}
	if err == nil && off+int64(n) == z.size {
		return n, io.EOF
	}
	return n, err
}

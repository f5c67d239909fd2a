package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// DiskOptions configure a DiskCache.
type DiskOptions struct {
	// Dir holds the cache files (created 0700 if missing). Only files the
	// cache names itself (64 hex digits + ".blk", and their ".tmp"
	// siblings) and its lock file are ever touched; anything else in Dir
	// is left alone.
	Dir string
	// MaxBytes is the hard cap on the space the cache files take, counted
	// in 4 KiB filesystem blocks as du(1) does. Required.
	MaxBytes int64
	// QueueBlocks is how many blocks may wait to be written (default 8).
	// When the queue is full a block is simply not written: the disk tier
	// never slows a read down. Queued blocks are memory outside the
	// BlockCache's budget, so keep this small.
	QueueBlocks int
	// Logger receives the one warning when the tier turns itself off.
	Logger *slog.Logger
	// Observer receives DiskDisabled and disk evictions. Optional.
	Observer Observer
}

// DefaultDiskQueueBlocks is the default write queue depth.
const DefaultDiskQueueBlocks = 8

// diskBlockSize is the allocation unit the cap is counted in.
const diskBlockSize = 4096

const (
	diskExt      = ".blk"
	diskTmpMark  = ".tmp"
	diskLockName = ".bucketfs-cache.lock"
)

// DiskCache is the optional second tier: blocks in files under one
// directory, LRU-evicted under a hard byte cap. It is an accelerator only:
// on any write error (ENOSPC, EROFS, EACCES…) it logs one warning, deletes
// its files and turns itself off, and from then on every Get misses and
// every Put is dropped. It never makes a read fail.
//
// At start it deletes the block files a previous run left (they are not
// wrong, being keyed by ETag, but starting empty keeps the accounting
// exact without trusting a directory another process may have touched) and
// takes an exclusive flock on Dir, so that two mounts never share one cap;
// a second mount pointed at the same Dir runs without a disk tier.
//
// The cap holds at every instant, not just on average: a file's bytes are
// accounted before it is created and stay accounted until it is removed.
// Safe for concurrent use.
type DiskCache struct {
	dir   string
	max   int64
	log   *slog.Logger
	obs   Observer
	queue chan diskWrite // never closed: Put must not panic after Close
	quit  chan struct{}  // closed by Close
	wg    sync.WaitGroup // the writer goroutine

	disabled  atomic.Bool
	syncWrite bool // benchmarks: write in Put, not in the writer goroutine

	// mu guards the fields below. It is a leaf, and no file I/O happens
	// under it: files are created and removed outside it, with the
	// accounting done before a create and after a remove.
	mu       sync.Mutex
	index    *simplelru.LRU[BlockKey, int64] // complete files: block → accounted bytes
	byObject objectIndex                     // the keys of index, by object
	pending  map[BlockKey]bool               // files being written
	used     int64                           // accounted bytes of index
	reserved int64                           // accounted bytes of files being written
	removing int64                           // accounted bytes of files dropped from index, not yet removed
	lock     *os.File                        // holds the flock; nil if none or closed
	closed   bool
	// fds keeps block files open for range reads, so that a 4 KiB read
	// costs one pread rather than open, pread and close (which cost
	// three times the pread). A descriptor leaves it when its file is
	// dropped (dropLocked) or to make room; it is closed once no read
	// uses it, outside the lock: descriptors to close wait in fdClose.
	fds     *simplelru.LRU[BlockKey, *diskFD]
	fdClose []int

	hits, misses, writes, dropped, evictions, errs atomic.Int64
	readBytes                                      atomic.Int64
}

// diskWrite is one queued block, or with done set a marker that Drain
// waits for. release, if set, is called once the block has been written or
// dropped: the BlockCache then may reuse the buffer.
type diskWrite struct {
	key     BlockKey
	data    []byte
	release func()
	done    chan struct{}
}

// diskFD is an open block file shared by range reads. Its fields are
// guarded by DiskCache.mu.
type diskFD struct {
	fd   int
	refs int  // reads using fd now
	dead bool // out of DiskCache.fds: the last read closes it
}

// maxOpenFDs bounds DiskCache.fds: a quarter of the descriptors the process
// may open, within [16, 4096].
func maxOpenFDs() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 16
	}
	return int(min(max(rl.Cur/4, 16), 4096))
}

// victim is a file dropped from the index whose bytes stay accounted (in
// removing) until removeFiles has deleted it.
type victim struct {
	key BlockKey
	acc int64
}

// DiskStats is a snapshot of a DiskCache.
type DiskStats struct {
	Enabled      bool
	Hits, Misses int64
	// Writes counts blocks written; Dropped those not written because
	// the queue was full or the cap was taken by writes in progress.
	Writes, Dropped int64
	// Evictions counts files removed to stay under the cap; ReadErrors
	// files that could not be read back (and were dropped).
	Evictions, ReadErrors int64
	// ReadBytes counts the bytes read back from cache files.
	ReadBytes int64
	// UsedBytes: accounted bytes of complete files; ReservedBytes: of
	// files being written or removed. Their sum never exceeds the cap.
	UsedBytes, ReservedBytes int64
	Files                    int
}

// OpenDisk prepares the disk tier. It fails only on bad options; a
// directory that cannot be used gives a DiskCache that is already off,
// with one warning, because a cache must not stop a mount.
func OpenDisk(opts DiskOptions) (*DiskCache, error) {
	if opts.Dir == "" {
		return nil, errors.New("cache: disk cache needs a directory")
	}
	if opts.MaxBytes <= 0 {
		return nil, errors.New("cache: disk cache needs a positive size")
	}
	if opts.QueueBlocks <= 0 {
		opts.QueueBlocks = DefaultDiskQueueBlocks
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Observer == nil {
		opts.Observer = NopObserver{}
	}
	d := &DiskCache{
		dir:      opts.Dir,
		max:      opts.MaxBytes,
		log:      opts.Logger,
		obs:      opts.Observer,
		queue:    make(chan diskWrite, opts.QueueBlocks),
		quit:     make(chan struct{}),
		byObject: make(objectIndex),
		pending:  make(map[BlockKey]bool),
	}
	// Its callback runs under d.mu, as every call to index does.
	var err error
	d.index, err = simplelru.NewLRU[BlockKey, int64](math.MaxInt, func(k BlockKey, _ int64) { d.byObject.remove(k) })
	if err != nil {
		return nil, err
	}
	d.fds, err = simplelru.NewLRU[BlockKey, *diskFD](maxOpenFDs(), d.fdEvictedLocked)
	if err != nil {
		return nil, err
	}
	if err := d.prepare(); err != nil {
		d.disable(err)
	}
	d.wg.Add(1)
	go d.writer()
	return d, nil
}

// prepare creates and locks the directory and deletes what a previous run
// left in it.
func (d *DiskCache) prepare() error {
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(d.dir, diskLockName), os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("%s is in use by another bucketfs: %w", d.dir, err)
	}
	d.mu.Lock()
	d.lock = f
	d.mu.Unlock()
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if ownedName(e.Name()) {
			if err := os.Remove(filepath.Join(d.dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	// Probe: a read-only directory is found now rather than at the first
	// block.
	probe := filepath.Join(d.dir, strings.Repeat("0", 64)+diskTmpMark)
	if err := os.WriteFile(probe, nil, 0o600); err != nil {
		return err
	}
	return os.Remove(probe)
}

// ownedName reports whether a file name is one the cache creates.
func ownedName(name string) bool {
	if len(name) < 64 {
		return false
	}
	if _, err := hex.DecodeString(name[:64]); err != nil {
		return false
	}
	rest := name[64:]
	return rest == diskExt || strings.HasPrefix(rest, diskTmpMark) || strings.HasPrefix(rest, diskExt+diskTmpMark)
}

// path names the file of a block: a hash of the key, so that any object key
// makes a safe, fixed-length file name. Lengths are hashed too, so that no
// two keys can be spelled alike.
func (d *DiskCache) path(k BlockKey) string {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(k.Key)))
	h.Write(n[:])
	h.Write([]byte(k.Key))
	binary.BigEndian.PutUint64(n[:], uint64(len(k.ETag)))
	h.Write(n[:])
	h.Write([]byte(k.ETag))
	binary.BigEndian.PutUint64(n[:], uint64(k.Index))
	h.Write(n[:])
	return filepath.Join(d.dir, hex.EncodeToString(h.Sum(nil))+diskExt)
}

// accounted is the space a file of n bytes takes, rounded up to whole
// filesystem blocks (an empty file still costs an inode: count a block).
func accounted(n int64) int64 {
	return max(1, (n+diskBlockSize-1)/diskBlockSize) * diskBlockSize
}

// Enabled reports whether the tier is on.
func (d *DiskCache) Enabled() bool { return !d.disabled.Load() }

// RemoveIfUnused removes dir and everything in it if no DiskCache has it
// open, i.e. if its lock file can be locked: for sweeping the private cache
// directories of daemons that were killed before they could remove them.
// It reports whether it removed dir. A directory without the lock file is
// not a cache directory and is left alone.
func RemoveIfUnused(dir string) (bool, error) {
	f, err := os.Open(filepath.Join(dir, diskLockName))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return false, nil // in use
	}
	if err := os.RemoveAll(dir); err != nil {
		return false, fmt.Errorf("remove unused cache dir: %w", err)
	}
	return true, nil
}

// Get reads a block from disk. size is the expected length (-1: any); a
// file of another length, or one that cannot be read, is dropped and
// counts as a miss.
func (d *DiskCache) Get(k BlockKey, size int64) ([]byte, bool) {
	if !d.lookup(k) {
		return nil, false
	}
	data, err := readFile(d.path(k), size)
	if err == nil {
		d.readBytes.Add(int64(len(data)))
	}
	return data, d.readDone(k, err)
}

// getInto reads a block into buf, which must be its exact length.
func (d *DiskCache) getInto(k BlockKey, buf []byte) bool {
	if !d.lookup(k) {
		return false
	}
	err := readFileInto(d.path(k), buf)
	if err == nil {
		d.readBytes.Add(int64(len(buf)))
	}
	return d.readDone(k, err)
}

// has reports whether the tier holds block k, without counting a lookup or
// refreshing its recency: for deciding how to serve a read before reading.
func (d *DiskCache) has(k BlockKey) bool {
	if d.disabled.Load() {
		return false
	}
	d.mu.Lock()
	ok := d.index.Contains(k)
	d.mu.Unlock()
	return ok
}

// readRange fills dst with the bytes at off within block k: one pread of
// just those bytes, not of the whole block, so that a 4 KiB read costs 4
// KiB of disk (or of the kernel's page cache), on a descriptor kept open
// for the next read. A file too short for the range is dropped and counts
// as a miss, as in Get.
func (d *DiskCache) readRange(k BlockKey, dst []byte, off int64) bool {
	if d.disabled.Load() {
		return false
	}
	d.mu.Lock()
	if _, ok := d.index.Get(k); !ok {
		d.mu.Unlock()
		d.misses.Add(1)
		return false
	}
	e, ok := d.fds.Get(k)
	if ok {
		e.refs++
	}
	d.mu.Unlock()
	var err error
	if !ok {
		e, err = d.openFD(k)
	}
	if err == nil {
		err = preadFull(e.fd, dst, off)
		d.releaseFD(e)
	}
	if err == nil {
		d.readBytes.Add(int64(len(dst)))
	}
	return d.readDone(k, err)
}

// openFD opens block k's file for range reads, with one reference taken,
// and keeps it in fds if the file is still in the index.
func (d *DiskCache) openFD(k BlockKey) (*diskFD, error) {
	path := d.path(k)
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	e := &diskFD{fd: fd, refs: 1}
	d.mu.Lock()
	if _, cached := d.fds.Peek(k); cached || d.closed || !d.index.Contains(k) {
		// Another read cached one first, or the file was dropped
		// while we opened it: use this one once. (If it was dropped
		// and written again meanwhile, we may cache the old file:
		// the same bytes, whose space stays taken until this
		// descriptor leaves fds, at the latest when the new file is
		// dropped.)
		e.dead = true
	} else {
		d.fds.Add(k, e)
	}
	closing := d.takeFDCloseLocked()
	d.mu.Unlock()
	closeFDs(closing)
	return e, nil
}

// releaseFD drops a read's reference, closing the descriptor if it has left
// the cache and this was the last read using it.
func (d *DiskCache) releaseFD(e *diskFD) {
	d.mu.Lock()
	e.refs--
	last := e.dead && e.refs == 0
	d.mu.Unlock()
	if last {
		syscall.Close(e.fd)
	}
}

// fdEvictedLocked is fds' eviction callback (Add past the bound, Remove,
// Purge).
func (d *DiskCache) fdEvictedLocked(_ BlockKey, e *diskFD) {
	e.dead = true
	if e.refs == 0 {
		d.fdClose = append(d.fdClose, e.fd)
	}
}

func (d *DiskCache) takeFDCloseLocked() []int {
	fds := d.fdClose
	d.fdClose = nil
	return fds
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		syscall.Close(fd)
	}
}

// preadFull reads len(dst) bytes at off from fd.
func preadFull(fd int, dst []byte, off int64) error {
	for done := 0; done < len(dst); {
		n, err := syscall.Pread(fd, dst[done:], off+int64(done))
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return fmt.Errorf("read cache file: %w", err)
		case n == 0:
			return fmt.Errorf("read cache file: %w", io.ErrUnexpectedEOF)
		}
		done += n
	}
	return nil
}

// lookup reports whether the index has k, counting a miss if not.
func (d *DiskCache) lookup(k BlockKey) bool {
	if d.disabled.Load() {
		return false
	}
	d.mu.Lock()
	_, ok := d.index.Get(k)
	d.mu.Unlock()
	if !ok {
		d.misses.Add(1)
	}
	return ok
}

// readDone counts a read of k and, if it failed, drops the file: evicted
// under us (ENOENT) or bad, either way it is a miss.
func (d *DiskCache) readDone(k BlockKey, err error) bool {
	if err == nil {
		d.hits.Add(1)
		return true
	}
	if !errors.Is(err, os.ErrNotExist) {
		d.errs.Add(1)
	}
	d.misses.Add(1)
	d.mu.Lock()
	var vs []victim
	if acc, ok := d.index.Peek(k); ok {
		d.index.Remove(k)
		vs = d.dropLocked(vs, k, acc)
	}
	d.mu.Unlock()
	d.removeFiles(vs)
	return false
}

func readFile(path string, size int64) ([]byte, error) {
	if size < 0 {
		fi, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		size = fi.Size()
	}
	buf := make([]byte, size)
	if err := readFileInto(path, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// readFileInto fills buf from the file, which must be exactly that long.
func readFileInto(path string, buf []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.ReadFull(f, buf); err != nil {
		return err
	}
	var one [1]byte
	if n, _ := f.Read(one[:]); n != 0 {
		return errors.New("cache file longer than expected")
	}
	return nil
}

// Put queues a block to be written. It never blocks: if the queue is full
// or the tier is off, the block is not written. data must not be modified
// afterwards (blocks are immutable).
func (d *DiskCache) Put(k BlockKey, data []byte) { d.put(k, data, nil) }

// put is Put with release, if not nil, called exactly once when the disk
// tier is done with data (written, dropped or skipped).
func (d *DiskCache) put(k BlockKey, data []byte, release func()) {
	d.putWait(k, data, release, false)
}

// diskPutWait is how long putWait may wait for room in the queue.
const diskPutWait = 250 * time.Millisecond

// putWait is put that, when wait is set and the queue is full, waits a
// little for room instead of dropping the block: for the blocks a read
// fetched, whose loss would mean fetching them again, as opposed to
// readahead. It is only called from fetch goroutines, never by a read.
func (d *DiskCache) putWait(k BlockKey, data []byte, release func(), wait bool) {
	if release == nil {
		release = func() {}
	}
	if d.disabled.Load() {
		release()
		return
	}
	if d.syncWrite {
		d.write(k, data)
		release()
		return
	}
	w := diskWrite{key: k, data: data, release: release}
	select {
	case <-d.quit:
		release()
		return
	case d.queue <- w:
		return
	default:
	}
	if wait {
		t := time.NewTimer(diskPutWait)
		defer t.Stop()
		select {
		case <-d.quit:
			release()
			return
		case d.queue <- w:
			return
		case <-t.C:
		}
	}
	d.dropped.Add(1)
	release()
}

func (d *DiskCache) writer() {
	defer d.wg.Done()
	for {
		select {
		case <-d.quit:
			// Release what is still queued: Put never blocks, so
			// the queue only holds what was sent before quit.
			for {
				select {
				case w := <-d.queue:
					if w.release != nil {
						w.release()
					}
					if w.done != nil {
						close(w.done)
					}
				default:
					return
				}
			}
		case w := <-d.queue:
			if w.done != nil {
				close(w.done)
				continue
			}
			if !d.disabled.Load() {
				d.write(w.key, w.data)
			}
			w.release()
		}
	}
}

// Drain waits until the blocks queued so far have been written (or
// dropped). For tests and benchmarks.
func (d *DiskCache) Drain() {
	done := make(chan struct{})
	select {
	case d.queue <- diskWrite{done: done}:
	case <-d.quit:
		return
	}
	select {
	case <-done:
	case <-d.quit:
	}
}

// dropLocked moves a file out of the index into removing, and its
// descriptor, if open, out of fds.
func (d *DiskCache) dropLocked(vs []victim, k BlockKey, acc int64) []victim {
	d.used -= acc
	d.removing += acc
	d.fds.Remove(k)
	return append(vs, victim{k, acc})
}

// removeFiles deletes dropped files, then stops accounting for them. Their
// descriptors are closed first, so that the space is free when it stops
// being accounted; one that a read is using still is closed by that read,
// a pread later.
func (d *DiskCache) removeFiles(vs []victim) {
	d.mu.Lock()
	closing := d.takeFDCloseLocked()
	d.mu.Unlock()
	closeFDs(closing)
	if len(vs) == 0 {
		return
	}
	for _, v := range vs {
		if err := os.Remove(d.path(v.key)); err != nil && !errors.Is(err, os.ErrNotExist) {
			d.log.Debug("cannot remove disk cache file", "err", err)
		}
	}
	d.mu.Lock()
	for _, v := range vs {
		d.removing -= v.acc
	}
	d.mu.Unlock()
}

// skipLocked reports whether a write of k is pointless now.
func (d *DiskCache) skipLocked(k BlockKey) bool {
	return d.closed || d.disabled.Load() || d.pending[k] || d.index.Contains(k)
}

// write stores one block: it evicts (oldest first) until the block fits,
// accounts for it, then writes a temporary file and renames it into place,
// so that a reader never sees half a block.
func (d *DiskCache) write(k BlockKey, data []byte) {
	need := accounted(int64(len(data)))
	if need > d.max {
		return
	}
	d.mu.Lock()
	if d.skipLocked(k) {
		d.mu.Unlock()
		return
	}
	var vs []victim
	var freeing int64
	for d.used+d.reserved+d.removing-freeing+need > d.max {
		vk, acc, ok := d.index.RemoveOldest()
		if !ok {
			break // the rest is being written or removed
		}
		vs = d.dropLocked(vs, vk, acc)
		freeing += acc
	}
	d.mu.Unlock()
	if len(vs) > 0 {
		d.removeFiles(vs)
		d.evictions.Add(int64(len(vs)))
		var bytes int64
		for _, v := range vs {
			bytes += v.acc
		}
		d.obs.Evicted(TierDisk, len(vs), 0, bytes)
	}

	d.mu.Lock()
	if d.skipLocked(k) {
		d.mu.Unlock()
		return
	}
	if d.used+d.reserved+d.removing+need > d.max {
		d.mu.Unlock()
		d.dropped.Add(1) // concurrent writes took the room
		return
	}
	d.reserved += need
	d.pending[k] = true
	d.mu.Unlock()

	path := d.path(k)
	err := d.writeFile(path, data)

	d.mu.Lock()
	delete(d.pending, k)
	keep := err == nil && !d.closed && !d.disabled.Load()
	if keep {
		d.reserved -= need
		d.index.Add(k, need)
		d.byObject.add(k)
		d.used += need
	}
	d.mu.Unlock()
	if err != nil {
		d.mu.Lock()
		d.reserved -= need // writeFile removed its temporary file
		d.mu.Unlock()
		d.disable(err)
		return
	}
	if !keep {
		// Closed or disabled while we wrote: take the file back, and
		// only then its accounting.
		os.Remove(path)
		d.mu.Lock()
		d.reserved -= need
		d.mu.Unlock()
		return
	}
	d.writes.Add(1)
}

func (d *DiskCache) writeFile(path string, data []byte) error {
	f, err := os.CreateTemp(d.dir, filepath.Base(path)+diskTmpMark+"*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// disable turns the tier off for good, with one warning, and deletes its
// files: a cache disk that filled up wants its space back.
func (d *DiskCache) disable(err error) {
	if !d.disabled.CompareAndSwap(false, true) {
		return
	}
	d.log.Warn("disk cache disabled; reads go on from memory and the store", "dir", d.dir, "err", err)
	d.obs.DiskDisabled(err)
	d.removeAll()
}

// removeAll drops every file of the index.
func (d *DiskCache) removeAll() {
	var vs []victim
	d.mu.Lock()
	for _, k := range d.index.Keys() {
		acc, _ := d.index.Peek(k)
		vs = d.dropLocked(vs, k, acc)
	}
	d.index.Purge()
	d.mu.Unlock()
	d.removeFiles(vs)
}

// Invalidate drops every block of the object key, whatever its ETag.
func (d *DiskCache) Invalidate(key string) {
	var vs []victim
	d.mu.Lock()
	for _, k := range d.byObject.blocks(key) {
		if acc, ok := d.index.Peek(k); ok {
			d.index.Remove(k)
			vs = d.dropLocked(vs, k, acc)
		}
	}
	d.mu.Unlock()
	d.removeFiles(vs)
}

// Stats returns a snapshot.
func (d *DiskCache) Stats() DiskStats {
	d.mu.Lock()
	s := DiskStats{UsedBytes: d.used, ReservedBytes: d.reserved + d.removing, Files: d.index.Len()}
	d.mu.Unlock()
	s.Enabled = d.Enabled()
	s.Hits, s.Misses = d.hits.Load(), d.misses.Load()
	s.Writes, s.Dropped = d.writes.Load(), d.dropped.Load()
	s.Evictions, s.ReadErrors = d.evictions.Load(), d.errs.Load()
	s.ReadBytes = d.readBytes.Load()
	return s
}

// Close stops the writer (queued blocks are not written), deletes the
// cache files (the next start would; this gives the space back now) and
// releases the directory. Close the BlockCache that uses it first.
func (d *DiskCache) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	lock := d.lock
	d.lock = nil
	d.mu.Unlock()
	close(d.quit)
	d.wg.Wait()
	d.removeAll()
	if lock != nil {
		return lock.Close() // releases the flock
	}
	return nil
}

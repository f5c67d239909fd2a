package fs

// Lock order (outermost first). A goroutine may take locks only in this order
// and never two locks of the same rank:
//
//	Node.uploadMu   per file: serialises uploads and renames of that file;
//	                the only lock held across network I/O (with the two below)
//	FS.moves        not a mutex: the gate (movegate.go) that keeps uploads,
//	                metadata rewrites and file renames off the keys a
//	                directory rename is moving; entered holding uploadMu,
//	                a directory rename waits in it holding nothing
//	Node.dataMu     per file: the staging file's content (write: writes,
//	                truncates and the initial download; read: reads, uploads)
//	Node.sidecarMu  per file: serialises sidecar writes (staging.go); held
//	                across a local file write, never across network I/O
//	dirHandle.mu    per open directory: its pass over the listing
//	                (readdir.go); held while waiting for the next listing
//	                page, which a goroutine of its own fetches holding none
//	                of these locks
//	Node.mu         per node: attributes, key, the upload state machine
//	                (state.go); never held across I/O or while calling go-fuse
//	FS.mu           the registry of files with local data, the recovered
//	                list; a leaf
//	listBound.mu    the account of cached listing entries (listbound.go);
//	                a leaf, taken holding a directory's Node.mu
//	treeWalks.mu    walks of subtrees and the listings they keep
//	                (treewalk.go); a leaf, taken holding a Node.mu
//	tgidCache.mu    threads' processes (flushowner.go); a leaf, taken
//	                holding a Node.dataMu at most
//
// go-fuse's tree methods (GetChild, NewInode, Children…) and Notify* are never
// called while holding Node.mu or FS.mu. The page-cache fill (kernelfill.go)
// keeps its per-node state under Node.mu; a fence waits on a condition of
// Node.mu and is never entered holding dataMu, since a running push may be
// waiting (in the kernel, for a page lock) on a read that needs dataMu.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/novitalabs/bucketfs/cache"
	"github.com/novitalabs/bucketfs/s3backend"
)

// FS is one mounted bucket.
type FS struct {
	cfg    Config
	store  s3backend.ObjectStore
	log    *slog.Logger
	root   *Node
	blocks *cache.BlockCache // the read cache; safe for concurrent use
	fill   *kernelFill       // pushes random readers' blocks into the page cache
	// ownsBlocks: New made blocks, so Close frees it.
	ownsBlocks bool

	inos *inodeNumbers // inodes.go

	// moves: see the lock order above.
	moves *moveGate

	// noListHeaders: a listing asked for objects' headers came without
	// any (not MinIO, or --list-metadata=false); prefetches HEAD (dir.go).
	noListHeaders atomic.Bool

	// listBound bounds the entries of cached listings (listbound.go).
	listBound *listBound
	// treeWalks: listings of whole subtrees (treewalk.go).
	treeWalks treeWalks
	// tgids caches the processes of the threads that open files for
	// writing and write (flushowner.go).
	tgids tgidCache

	// mu guards files, recovered, dirChanged and walked (a leaf).
	mu sync.Mutex
	// walked: directories (by key) whose entries a program is stat-ing,
	// until when (dir.go, statWalkWindow).
	walked map[string]time.Time
	// files is the registry (registry.go): every file with local data, by
	// object key, whether or not the kernel still knows its node.
	files map[string]*Node

	// dirChanged: when entries of a directory (by key) last changed
	// through this mount; see dirChangedAt.
	dirChanged map[string]time.Time

	// recovered lists the files moved to the recovery directory this
	// session, for FlushAll's report.
	recovered []error

	// staged: bytes charged to the staging area, bounded by
	// stagingLimit (pressure.go).
	staged       atomic.Int64
	stagingLimit int64

	// streamBufs: the streaming writers' memory (streammem.go).
	streamBufs streamBuffers

	// listPageKeys is the number of keys a listing page asks for; 0:
	// the store's most (1,000). Tests make pages small.
	listPageKeys int

	// The small-file read-ahead (smallahead.go): its queue of fetches, the
	// workers serving it (started with the first fetch), and when an open
	// last kept to a directory's order (unix nanoseconds).
	smallAheadQ     chan smallAheadJob
	smallAheadStart sync.Once
	smallAheadLast  atomic.Int64

	// ctx lives as long as the filesystem (cancelled by Close): streaming
	// uploads run under it, each request with its own deadline.
	ctx    context.Context
	cancel context.CancelCauseFunc

	// The retry loop (retry.go): wake asks it for a pass now; shutdown
	// (closed by FlushAll) ends it; retryStopped is closed when it has.
	wake         chan struct{}
	shutdown     chan struct{}
	shutdownOnce sync.Once
	retryStopped chan struct{}
}

const rootIno = 1

// New checks cfg and builds the filesystem.
func New(cfg Config) (*FS, error) {
	if cfg.Store == nil {
		return nil, errors.New("fs: no object store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.FileMode == 0 {
		cfg.FileMode = 0o644
	}
	if cfg.DirMode == 0 {
		cfg.DirMode = 0o755
	}
	if cfg.StagingDir == "" {
		dir, err := os.MkdirTemp("", "bucketfs-staging-")
		if err != nil {
			return nil, fmt.Errorf("fs: create staging dir: %w", err)
		}
		cfg.StagingDir = dir
	}
	if st, err := os.Stat(cfg.StagingDir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("fs: staging dir %q is not a directory: %v", cfg.StagingDir, err)
	}
	if cfg.RecoveryDir == "" {
		cfg.RecoveryDir = filepath.Join(cfg.StagingDir, "recovery")
	}
	f := &FS{
		cfg:    cfg,
		store:  cfg.Store,
		log:    cfg.Logger,
		blocks: cfg.Blocks,
		files:  make(map[string]*Node),

		dirChanged: make(map[string]time.Time),
		listBound:  newListBound(cfg.MaxStatEntries),
	}
	if f.blocks == nil {
		bc, err := cache.New(cache.Options{})
		if err != nil {
			return nil, fmt.Errorf("fs: read cache: %w", err)
		}
		f.blocks, f.ownsBlocks = bc, true
	}
	f.fill = newKernelFill(f.blocks.BlockSize())
	if f.cfg.SparseEditMin == 0 {
		f.cfg.SparseEditMin = defaultSparseEditMin
	}
	if f.cfg.RetryFor <= 0 {
		f.cfg.RetryFor = defaultRetryFor
	}
	f.stagingLimit = stagingLimit(f.cfg.StagingDir, f.cfg.StagingSize)
	switch {
	case f.cfg.StreamMemory == 0:
		f.streamBufs.limit = defaultStreamMemory
	case f.cfg.StreamMemory > 0:
		f.streamBufs.limit = f.cfg.StreamMemory
	}
	f.ctx, f.cancel = context.WithCancelCause(context.Background())
	f.wake = make(chan struct{}, 1)
	f.smallAheadQ = make(chan smallAheadJob, smallAheadQueue)
	f.moves = newMoveGate()
	f.shutdown = make(chan struct{})
	f.retryStopped = make(chan struct{})
	f.inos = newInodeNumbers()
	f.root = &Node{fsys: f, kind: kindDir, ino: rootIno, dirSt: new(dirState)}
	rootPerm := cfg.DirMode
	if cfg.RootMode != nil {
		rootPerm = *cfg.RootMode
	}
	f.root.attrs = posixAttrs{perm: rootPerm, uid: cfg.UID, gid: cfg.GID, mtime: time.Now()}
	f.root.isRoot = true
	if err := f.loadStaged(); err != nil {
		return nil, err
	}
	go f.retryLoop()
	return f, nil
}

// Mount mounts the filesystem on mountpoint and serves it in the background.
// It returns once the kernel has completed the FUSE handshake.
func (f *FS) Mount(mountpoint string, mc MountConfig) (*fuse.Server, error) {
	ttl, negTTL := f.cfg.StatCacheTTL, min(f.cfg.NegativeTTL, f.cfg.StatCacheTTL)
	opts := &gofs.Options{
		MountOptions: fuse.MountOptions{
			FsName:      mc.FsName,
			Name:        "bucketfs",
			AllowOther:  mc.AllowOther,
			DirectMount: true,
			MaxWrite:    1 << 20,
			// Reads may arrive in parallel and slightly out of order:
			// the block cache's readahead window tolerates that.
			MaxReadAhead: 1 << 20,
			// Readahead requests are "background" requests; the
			// kernel's default of 12 in flight throttled several
			// sequential readers at once: 4 readers of 4 objects went
			// from 544 to 637-692 MB/s in total with 64 (make bench,
			// workload 1b), one reader from 569 to 623-642.
			MaxBackground: 64,
			DisableXAttrs: mc.NoXattr,
			// open(O_TRUNC) arrives as an open with O_TRUNC, not as a
			// size-0 setattr before it: the object then changes only when
			// the new content is flushed, never to an empty one first.
			//
			// HANDLE_KILLPRIV_V2: we clear set-user-ID and set-group-ID
			// bits on write, truncate and chown (suid.go). Without it the
			// kernel asks for security.capability before every write(2),
			// a round trip as long as the write's own: a third of the
			// time of writing in 4 KiB pieces.
			ExtraCapabilities: fuse.CAP_ATOMIC_O_TRUNC | fuse.CAP_HANDLE_KILLPRIV_V2,
			Debug:             mc.Debug,
		},
		EntryTimeout:    &ttl,
		AttrTimeout:     &ttl,
		NegativeTimeout: &negTTL,
		// A mode of 0000 is a mode (chmod 0, pjdfstest): without this,
		// go-fuse shows it as 0644. Every node sets its own mode.
		NullPermissions: true,
		RootStableAttr:  &gofs.StableAttr{Ino: rootIno, Mode: syscall.S_IFDIR},
		// No go-fuse UID/GID: it would show an owner of 0 (an object
		// stored as root's) as the default owner; every node sets its own.
	}
	if mc.AllowOther {
		// Other users see the mount: let the kernel enforce the modes.
		opts.MountOptions.Options = append(opts.MountOptions.Options, "default_permissions")
	}
	if mc.ReadOnly || f.cfg.ReadOnly {
		opts.MountOptions.Options = append(opts.MountOptions.Options, "ro")
	}
	server, err := gofs.Mount(mountpoint, f.root, opts)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	f.raiseReadahead(mountpoint)
	return server, nil
}

// mountReadaheadKiB is the kernel readahead asked for the mount: as large
// as the reads go-fuse accepts (MaxReadAhead), so a sequential reader's
// requests arrive 1 MiB at a time instead of 128 KiB.
const mountReadaheadKiB = 1024

// raiseReadahead sets the mount's readahead. The kernel starts a FUSE
// mount at the block-device default of 128 KiB whatever max_readahead says,
// and every request costs a round trip through the daemon: measured here,
// 1 MiB made a cold sequential read 29% faster. Best effort: without root
// or sysfs the mount works as before.
func (f *FS) raiseReadahead(mountpoint string) {
	var st syscall.Stat_t
	if err := syscall.Stat(mountpoint, &st); err != nil {
		f.log.Debug("readahead: cannot stat the mount", "err", err)
		return
	}
	bdi := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	if err := os.WriteFile(bdi, []byte(strconv.Itoa(mountReadaheadKiB)), 0); err != nil {
		f.log.Debug("readahead: left at the kernel default", "path", bdi, "err", err)
	}
}

// Close frees the read cache if New made it. Call it after the mount is
// gone and FlushAll has run.
func (f *FS) Close() {
	f.stopRetries()
	f.cancel(errClosed)
	f.fill.wg.Wait()
	if f.ownsBlocks {
		f.blocks.Close()
	}
}

func (f *FS) noteRecovered(err error) {
	f.mu.Lock()
	f.recovered = append(f.recovered, err)
	f.mu.Unlock()
}

// errClosed is why the filesystem's own work stops after Close.
var errClosed = errors.New("filesystem closed")

// uploadContext is the context uploads run on: the filesystem's lifetime,
// not the FUSE request's, which an interrupt (Go programs send them on
// every preemption signal) would cancel halfway through an upload. It has
// no deadline of its own: the store bounds each request (a part, a PUT, a
// copy), so a big upload on a slow link goes on while a hung request fails
// and is retried; CutOffUploads ends them all at once.
func (f *FS) uploadContext() (context.Context, context.CancelFunc) {
	return context.WithCancel(f.ctx)
}

// downloadTimeout bounds a download into a staging file (an object below
// SparseEditMin about to be edited whole, or at most maxPreserveDownload
// bytes kept for a reader of a file about to go): ample for a slow link,
// while a stalled response body cannot hang the write that waits on it.
const downloadTimeout = 30 * time.Minute

// downloadContext is the context of such a download: like uploadContext
// no FUSE interrupt reaches it, and CutOffUploads ends it.
func (f *FS) downloadContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(f.ctx, downloadTimeout)
}

// CutOffUploads makes every upload in flight, and any started after, fail
// at once with cause: the shutdown deadline. Their data stays in the
// staging directory, where a daemon started again on the same bucket and
// prefix finds it; FlushAll reports them.
func (f *FS) CutOffUploads(cause error) {
	f.log.Warn("uploads cut off; what is not stored stays in the staging directory for the next mount",
		"why", cause.Error(), "staging_dir", f.cfg.StagingDir)
	f.cancel(cause)
}

// metaContext bounds a store request that serves a FUSE call. It drops
// the request's cancellation: the kernel turns any signal the caller gets
// (Go's runtime sends them all the time) into a FUSE interrupt, and an
// open(2) or stat(2) of a regular file failing with EINTR breaks programs
// that rightly never expect it. A fatal signal still ends the caller: the
// kernel does not wait for us then.
func (f *FS) metaContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), metaTimeout)
}

// metaTimeout is the deadline of one metadata request (a HEAD, a listing
// page).
const metaTimeout = 2 * time.Minute

// logFailure writes the one line per failed operation that operators read.
func (f *FS) logFailure(op, key string, err error, errno syscall.Errno) {
	// The S3 error code, when the chain carries one (the backend's errors
	// and the SDK's both have ErrorCode), without importing AWS types.
	var coded interface{ ErrorCode() string }
	code := ""
	if errors.As(err, &coded) {
		code = coded.ErrorCode()
	}
	f.log.Warn("operation failed", "op", op, "key", key, "s3_code", code, "errno", errno.Error(), "err", err)
	if f.cfg.OnFailure != nil {
		f.cfg.OnFailure(op, errno)
	}
}

package fs

// Lock order (outermost first). A goroutine may take locks only in this order
// and never two locks of the same rank:
//
//	Node.uploadMu   per file: serialises uploads and renames of that file;
//	                the only lock held across network I/O (with the two below)
//	FS.renameMu     shared by uploads, exclusive for a directory rename, so
//	                that no upload runs with a key the rename is moving
//	Node.dataMu     per file: the staging file's content (write: writes,
//	                truncates and the initial download; read: reads, uploads)
//	Node.mu         per node: attributes, key and state fields; a leaf,
//	                never held across network I/O or while calling go-fuse
//	FS.mu           staged nodes, retry count, recovered list; a leaf
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
	"io"
	"log/slog"
	"net/url"
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

	nextIno atomic.Uint64

	// renameMu: see the lock order above.
	renameMu sync.RWMutex

	// mu guards staged.
	mu sync.Mutex
	// staged holds every node that has a staging file, dirty or not, so
	// that FlushAll can find dirty data even for nodes the kernel forgot.
	staged map[*Node]struct{}

	// recovered lists the files saved to the recovery directory this
	// session (guarded by mu), for FlushAll's report.
	recovered []error

	// retrying counts background uploads started at release (guarded by
	// mu); retryIdle is signalled when it drops to zero, for FlushAll.
	retrying  int
	retryIdle *sync.Cond

	// shutdown is closed by FlushAll: background retries stop waiting out
	// their back-off and leave what is still dirty to FlushAll.
	shutdown     chan struct{}
	shutdownOnce sync.Once
}

const (
	defaultUploadTimeout = 30 * time.Minute
	rootIno              = 1
)

// New checks cfg and builds the filesystem.
func New(cfg Config) (*FS, error) {
	if cfg.Store == nil {
		return nil, errors.New("fs: no object store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.UploadTimeout <= 0 {
		cfg.UploadTimeout = defaultUploadTimeout
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
		staged: make(map[*Node]struct{}),
	}
	if f.blocks == nil {
		bc, err := cache.New(cache.Options{})
		if err != nil {
			return nil, fmt.Errorf("fs: read cache: %w", err)
		}
		f.blocks, f.ownsBlocks = bc, true
	}
	f.fill = newKernelFill(f.blocks.BlockSize())
	f.retryIdle = sync.NewCond(&f.mu)
	f.shutdown = make(chan struct{})
	f.nextIno.Store(rootIno)
	f.root = &Node{fsys: f, kind: kindDir}
	rootPerm := cfg.DirMode
	if cfg.RootMode != nil {
		rootPerm = *cfg.RootMode
	}
	f.root.attrs = posixAttrs{perm: rootPerm, uid: cfg.UID, gid: cfg.GID, mtime: time.Now()}
	f.root.isRoot = true
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
			DisableXAttrs: true,
			Debug:         mc.Debug,
		},
		EntryTimeout:    &ttl,
		AttrTimeout:     &ttl,
		NegativeTimeout: &negTTL,
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

// FlushAll uploads every dirty file. Data that cannot be uploaded is copied
// to the recovery directory and named in the log; the returned error lists
// those files.
func (f *FS) FlushAll(ctx context.Context) error {
	f.shutdownOnce.Do(func() { close(f.shutdown) })
	f.mu.Lock()
	for f.retrying > 0 {
		f.retryIdle.Wait()
	}
	f.mu.Unlock()
	for _, n := range f.stagedNodes() {
		if !n.isDirty() {
			continue
		}
		if errno := n.upload(ctx, "shutdown"); errno != 0 {
			n.recover("shutdown")
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return errors.Join(f.recovered...)
}

func (f *FS) retryStarted() {
	f.mu.Lock()
	f.retrying++
	f.mu.Unlock()
}

func (f *FS) retryDone() {
	f.mu.Lock()
	f.retrying--
	if f.retrying == 0 {
		f.retryIdle.Broadcast()
	}
	f.mu.Unlock()
}

// Close frees the read cache if New made it. Call it after the mount is
// gone and FlushAll has run.
func (f *FS) Close() {
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

func (f *FS) stagedNodes() []*Node {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*Node, 0, len(f.staged))
	for n := range f.staged {
		out = append(out, n)
	}
	return out
}

func (f *FS) trackStaged(n *Node, staged bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if staged {
		f.staged[n] = struct{}{}
	} else {
		delete(f.staged, n)
	}
}

func (f *FS) newIno() uint64 { return f.nextIno.Add(1) }

// uploadContext is the context uploads run on: not the FUSE request's, which
// an interrupt (Go programs send them on every preemption signal) would
// cancel halfway through an upload.
func (f *FS) uploadContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), f.cfg.UploadTimeout)
}

// metaContext bounds a store request that serves a FUSE call. It drops
// the request's cancellation: the kernel turns any signal the caller gets
// (Go's runtime sends them all the time) into a FUSE interrupt, and an
// open(2) or stat(2) of a regular file failing with EINTR breaks programs
// that rightly never expect it. A fatal signal still ends the caller: the
// kernel does not wait for us then.
func (f *FS) metaContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
}

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

// copyToRecovery saves the staged bytes of key in the recovery directory and
// returns the path.
func (f *FS) copyToRecovery(key string, src io.ReaderAt, size int64) (string, error) {
	if err := os.MkdirAll(f.cfg.RecoveryDir, 0o700); err != nil {
		return "", fmt.Errorf("create recovery dir: %w", err)
	}
	name := fmt.Sprintf("%s.%s", time.Now().UTC().Format("20060102T150405.000000000Z"), url.PathEscape(key))
	if len(name) > 250 {
		name = name[:250]
	}
	path := filepath.Join(f.cfg.RecoveryDir, name)
	dst, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", fmt.Errorf("create recovery file: %w", err)
	}
	if _, err := io.Copy(dst, io.NewSectionReader(src, 0, size)); err != nil {
		dst.Close()
		return "", fmt.Errorf("write recovery file %s: %w", path, err)
	}
	if err := dst.Close(); err != nil {
		return "", fmt.Errorf("close recovery file %s: %w", path, err)
	}
	return path, nil
}

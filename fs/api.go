// Package fs is the FUSE filesystem of bucketfs: go-fuse nodes and handles
// over an s3backend.ObjectStore, write staging in local files, and the
// mapping of store errors to errno values.
//
// This file is the package's contract with cmd/bucketfs: Config, New, Mount,
// FlushAll and Close.
package fs

import (
	"log/slog"
	"syscall"
	"time"

	"github.com/novitalabs/bucketfs/cache"
	"github.com/novitalabs/bucketfs/s3backend"
)

// Config configures a filesystem.
type Config struct {
	Store s3backend.ObjectStore

	ReadOnly     bool          // every change fails with EROFS
	StatCacheTTL time.Duration // how long metadata and listings are trusted
	// NegativeTTL is how long "no such name" is trusted, by the kernel and
	// from a cached listing (at most StatCacheTTL). 0, the default, asks
	// the store every time, so that an object another tool just created
	// is found by name at once, as with s3fs.
	NegativeTTL time.Duration

	// ListingMetadata: attributes come from listings alone (size, mtime =
	// LastModified, modes and owners the defaults below), and no stat,
	// lookup or readdir sends a HEAD. False ("full") shows what each
	// object's metadata says, fetching it when a stat asks for it.
	ListingMetadata bool

	// Attributes for objects that carry no metadata.
	UID, GID uint32
	FileMode uint32 // permission bits, e.g. 0644
	DirMode  uint32 // permission bits, e.g. 0755

	// RootMode, when set, is the permission bits of the mount root, which
	// has no object of its own (s3fs shows an allow_other mount's root as
	// 0777 &^ mp_umask); nil means DirMode.
	RootMode *uint32

	// Override replaces, for every object, what the kernel is shown,
	// whatever the object's metadata says: libfuse's -o uid=, gid= and
	// umask= as s3fs users know them. Stored metadata is not changed.
	Override Override

	// StagingDir holds the local copies of files being written, each with
	// a sidecar naming its key (staging.go). It must exist and belong to
	// this process alone (ClaimStagingDir); what a killed daemon left in it
	// is picked up and uploaded by New. "" means a fresh temporary one.
	StagingDir string
	// Bucket and Prefix are written into the staging sidecars, and only
	// sidecars that name them are picked up.
	Bucket, Prefix string
	// RecoveryDir receives, by rename, the staged data and sidecar of
	// files whose upload kept failing for RetryFor. Created on demand.
	RecoveryDir string
	// StagingSize bounds the bytes staged at once; a write over it waits
	// for uploads to drain, then fails with ENOSPC. 0 means half the free
	// space of StagingDir's filesystem.
	StagingSize int64
	// RetryFor is how long failed uploads are retried in the background
	// (capped exponential back-off with jitter) before their data goes to
	// RecoveryDir; 0 means 30 minutes.
	RetryFor time.Duration

	// MaxRenameObjects bounds the objects a directory rename copies: a
	// bigger tree gets EXDEV, on which mv(1) moves it file by file,
	// instead of a rename(2) that copies for an hour. 0 means no bound.
	MaxRenameObjects int

	// MaxStatEntries bounds the entries that the cached listings of all
	// directories hold together (listbound.go); 0: no bound.
	MaxStatEntries int

	// SparseEditMin: edits of objects bigger than this send only what
	// changed instead of downloading the object (edit.go); 0 means 16 MiB,
	// negative means always.
	SparseEditMin int64

	// PartSize and UploadConcurrency size the multipart uploads of edits
	// and streams (compose.Policy; 0: the defaults). EnsureDiskFree is the
	// free space (bytes) staging should leave on its filesystem (s3fs's
	// ensure_diskfree); the daemon already lowers StagingSize to keep it
	// at mount, fs does nothing more with it yet.
	PartSize          int64
	UploadConcurrency int
	EnsureDiskFree    int64
	// StreamMemory bounds the memory that streaming writers' newest
	// bytes take instead of the staging file (streammem.go); 0 means
	// 64 MiB, negative means none (every byte goes to the staging file).
	StreamMemory int64

	// Blocks is the read cache (blocks in memory, an optional disk tier,
	// readahead). nil means a default in-memory cache, which Close frees.
	Blocks *cache.BlockCache

	Logger *slog.Logger

	// OnFailure, when set, is called with every failed operation that is
	// logged (the op as logged, e.g. "upload (close)", and the errno
	// returned to the kernel), so that the daemon can count errors by errno
	// without fs depending on a metrics library. It must not block.
	OnFailure func(op string, errno syscall.Errno)
}

// Override is the set of attribute overrides; a nil field overrides nothing.
type Override struct {
	UID, GID *uint32
	// Umask makes every object's permission bits 0777 &^ Umask (the type
	// bits stay). Symlinks keep 0777: Linux ignores their mode.
	Umask *uint32
}

// MountConfig is how the filesystem is presented to the kernel.
type MountConfig struct {
	FsName     string // shown in /proc/mounts, e.g. "bucketfs:mybucket"
	AllowOther bool
	ReadOnly   bool
	Debug      bool // log every FUSE request (very verbose)
	// NoXattr turns extended attributes off (ENOTSUP, and the kernel
	// stops asking): with them on, the kernel asks for
	// security.capability before every write(2), one more round trip.
	NoXattr bool
}

// The rest of the contract, implemented in fs.go:
//
//	func New(cfg Config) (*FS, error)
//	func (f *FS) Mount(mountpoint string, mc MountConfig) (*fuse.Server, error)
//	func (f *FS) FlushAll(ctx context.Context) error // upload every pending file; failures stay in StagingDir
//	func (f *FS) Close()                             // free the read cache if New made it

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/novitalabs/bucketfs/cache"
	bfs "github.com/novitalabs/bucketfs/fs"
	"github.com/novitalabs/bucketfs/internal/metrics"

	"github.com/novitalabs/bucketfs/s3backend"
)

// bucketStore is what run needs from the backend: the filesystem's
// ObjectStore plus the start-up check.
type bucketStore interface {
	s3backend.ObjectStore
	CheckBucket(ctx context.Context) error
}

// openStore builds the backend; a variable so that tests can substitute a
// fake store.
var openStore = func(ctx context.Context, c s3backend.Config) (bucketStore, error) {
	return s3backend.New(ctx, c)
}

// run checks everything, mounts, calls cfg.OnReady once the mount answers,
// and serves until ctx is cancelled (a shutdown request: SIGTERM/SIGINT in
// main) or the filesystem is unmounted from outside. Either way it uploads
// pending writes before returning. An error before OnReady means nothing
// is left mounted.
func run(ctx context.Context, cfg *Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}

	startCtx, cancelStart := context.WithTimeout(ctx, startupBudget-5*time.Second)
	defer cancelStart()

	if cfg.ReadyFile != "" {
		// A ready file left by a daemon that was killed would tell the
		// caller that this one is ready before it is.
		removeReadyFile(cfg.ReadyFile, log)
	}
	if err := replaceDeadMount(cfg.Mountpoint, log); err != nil {
		return err
	}
	if err := localChecks(cfg); err != nil {
		return err
	}
	env := cfg.env
	if env.Getenv == nil {
		env = realSysEnv()
	}
	creds, err := selectCredentials(cfg, env)
	if err != nil {
		return err
	}
	enc, err := encryption(cfg)
	if err != nil {
		return err
	}
	where := describeEndpoint(cfg)
	// Debug only: in the foreground a failed start must print one line.
	log.Debug("starting", "bucket", cfg.Bucket, "prefix", cfg.Prefix, "endpoint", where,
		"path_style", cfg.PathStyle, "credentials", creds.Source, "mountpoint", cfg.Mountpoint,
		"read_only", cfg.ReadOnly, "sse", cfg.SSE, "storage_class", cfg.StorageClass, "acl", cfg.ACL,
		"requester_pays", cfg.RequesterPays)

	if plainHTTPWithStaticKeys(cfg.Endpoint, creds.Provider) && os.Getenv("AWS_CA_BUNDLE") != "" {
		// Nothing will verify a certificate: the store speaks plain HTTP
		// and the keys are at hand (no STS or SSO call). The SDK would
		// still parse the whole bundle (in many images the system's,
		// some 140 certificates) before the first request, a cost on
		// every launch-to-first-read.
		log.Debug("not loading AWS_CA_BUNDLE: the endpoint is plain HTTP and the credentials static")
		os.Unsetenv("AWS_CA_BUNDLE")
	}
	store, err := openStore(startCtx, s3backend.Config{
		Bucket:             cfg.Bucket,
		Prefix:             cfg.Prefix,
		Endpoint:           cfg.Endpoint,
		Region:             cfg.Region,
		PathStyle:          cfg.PathStyle,
		Credentials:        creds.Provider,
		Profile:            cfg.Profile,
		InsecureSkipVerify: cfg.InsecureSkipVerify,
		PartSize:           cfg.PartSize,
		UploadConcurrency:  cfg.UploadConcurrency,
		RequestTimeout:     cfg.UploadTimeout,
		UploadChecksum:     cfg.UploadChecksum,
		NoListMetadata:     cfg.NoListMetadata,
		MaxAttempts:        cfg.MaxAttempts,
		Encryption:         enc,
		StorageClass:       cfg.StorageClass,
		ACL:                cfg.ACL,
		RequesterPays:      cfg.RequesterPays,
		Logger:             log.With("component", "s3"),
	})
	if err != nil {
		return describeStoreError(err, cfg, creds, where)
	}
	// The bucket check's round trip overlaps the local set-up (staging,
	// read cache), which needs nothing from the store: a launch to first
	// read waits for the longer of the two, not both. Its failure is
	// still the one reported when both fail, as when it came first.
	checked := make(chan error, 1)
	go func() { checked <- store.CheckBucket(startCtx) }()
	local, localErr := setUpLocal(cfg, log)
	if err := <-checked; err != nil {
		local.release()
		return describeStoreError(err, cfg, creds, where)
	}
	if cfg.MetricsAddr != "" {
		stopMetrics, err := startMetrics(cfg.MetricsAddr, log)
		if err != nil {
			local.release()
			return err
		}
		// Deferred before the final flush is: scrapes keep working while
		// pending writes drain.
		defer stopMetrics()
	}
	if localErr != nil {
		return localErr
	}
	defer local.release()
	staging, stagingSize, blocks := local.staging, local.stagingSize, local.blocks
	buildCommit := commit
	if buildCommit == "" {
		buildCommit = "unknown"
	}
	metrics.Default.SetBuildInfo(version, buildCommit)
	// The filesystem sees the store through the metrics.
	fsStore := metrics.InstrumentStore(store)

	fsys, err := bfs.New(bfs.Config{
		Blocks:           blocks,
		Store:            fsStore,
		ReadOnly:         cfg.ReadOnly,
		StatCacheTTL:     cfg.StatCacheTTL,
		NegativeTTL:      cfg.NegativeTTL,
		ListingMetadata:  cfg.Metadata == "listing",
		UID:              cfg.UID,
		GID:              cfg.GID,
		FileMode:         cfg.FileMode,
		DirMode:          cfg.DirMode,
		RootMode:         cfg.RootMode,
		Override:         cfg.Override,
		StagingDir:       staging,
		Bucket:           cfg.Bucket,
		Prefix:           cfg.Prefix,
		RecoveryDir:      cfg.RecoveryDir,
		RetryFor:         cfg.RetryFor,
		SparseEditMin:    sparseEditMin(cfg.SparseEditMin),
		StreamMemory:     streamMemory(cfg.StreamMemory),
		MaxRenameObjects: cfg.MaxRenameObjects,
		MaxStatEntries:   cfg.MaxStatEntries,
		StagingSize:      stagingSize,

		PartSize:          cfg.PartSize,
		UploadConcurrency: cfg.UploadConcurrency,
		EnsureDiskFree:    cfg.EnsureDiskFree,
		Logger:            log.With("component", "fs"),
		OnFailure:         metrics.FSFailure,
	})
	if err != nil {
		return fmt.Errorf("setting up the filesystem: %w", err)
	}
	server, err := fsys.Mount(cfg.Mountpoint, bfs.MountConfig{
		FsName:     "bucketfs:" + cfg.Bucket,
		AllowOther: cfg.AllowOther,
		ReadOnly:   cfg.ReadOnly,
		Debug:      cfg.DebugFUSE,
		NoXattr:    cfg.NoXattr,
	})
	if err != nil {
		return describeMountError(err, cfg)
	}
	// After the mount, not before: go-fuse sizes its pool of /dev/fuse
	// readers from GOMAXPROCS when the server is made, and one per CPU
	// (at least two) serves better than one per P. Each reader waiting
	// is a thread blocked in read(2); with twice as many, a request that
	// waits on the network (an unlink, a small read) waited longer for
	// its wake-ups, and nothing measured gained from them.
	raiseProcs()
	if err := waitAnswering(startCtx, server, cfg.Mountpoint); err != nil {
		unmount(server, cfg.Mountpoint, log)
		return err
	}
	if cfg.ReadyFile != "" {
		if err := writeReadyFile(cfg.ReadyFile); err != nil {
			unmount(server, cfg.Mountpoint, log)
			return err
		}
		defer removeReadyFile(cfg.ReadyFile, log)
	}
	log.Info("mounted", "mountpoint", cfg.Mountpoint, "bucket", cfg.Bucket, "prefix", cfg.Prefix,
		"endpoint", where, "credentials", creds.Source, "read_only", cfg.ReadOnly,
		"staging_dir", staging, "recovery_dir", cfg.RecoveryDir)
	if cfg.OnReady != nil {
		cfg.OnReady()
	}
	// Starting up (credentials, the SDK's tables, the mount) leaves a few
	// MiB of garbage that the next collection, far off on an idle mount,
	// would only then give back: give it back, and likewise the
	// executable's pages that starting up mapped (startpages.go). Not at
	// once: the program that started the mount reads it right away, and
	// its first requests would wait for the collection and fault back
	// the code they run.
	release := time.AfterFunc(startupReleaseDelay, func() {
		debug.FreeOSMemory()
		log.Debug("released startup pages", "bytes", releaseStartupPages())
	})
	defer release.Stop()

	served := make(chan struct{})
	go func() { server.Wait(); close(served) }()
	var fromOutside bool
	select {
	case <-served:
		fromOutside = true
		log.Info("unmounted from outside; uploading pending writes", "mountpoint", cfg.Mountpoint)
	case <-ctx.Done():
		log.Info("shutting down: uploading pending writes, then unmounting", "mountpoint", cfg.Mountpoint,
			"deadline", cfg.ShutdownTimeout)
	}
	d := startDrain(cfg, fsys, log)
	defer d.stop()
	flushErr := d.flush(fsys)
	if !fromOutside {
		if lazy := unmount(server, cfg.Mountpoint, log); lazy {
			// Open files kept the mount busy and it was only detached:
			// their writers may have written since the first flush.
			flushErr = d.flush(fsys)
		}
	}
	log.Info("stopped", "mountpoint", cfg.Mountpoint)
	// Data that reached only the recovery directory is not in the bucket:
	// a supervisor must be able to tell from the exit status.
	return flushErr
}

// localChecks are the start-up checks that need no network: the
// mountpoint and the FUSE device.
func localChecks(cfg *Config) error {
	if err := checkMountpoint(cfg.Mountpoint, cfg.NonEmpty, readMounts()); err != nil {
		return err
	}
	return checkFuseDevice(os.Geteuid())
}

// drain is the shutdown of one mount: every flush shares one deadline,
// --shutdown-timeout from the start of the shutdown, and a second
// SIGINT/SIGTERM ends it at once. Then the filesystem cuts off the uploads
// still running (they run on its own lifetime, each request under its own
// deadline, so nothing else would end them): their data stays in the
// staging directory for the next mount, and an impatient operator or
// supervisor loses no data.
type drain struct {
	cfg      *Config
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelFunc
	stopCut  func() bool
	stopSigs func()
}

func startDrain(cfg *Config, fsys *bfs.FS, log *slog.Logger) *drain {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	d := &drain{cfg: cfg, log: log, ctx: ctx, cancel: cancel}
	d.stopCut = context.AfterFunc(ctx, func() {
		why := errSecondSignal
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			why = errShutdownDeadline
			log.Warn("shutdown deadline passed: cutting off uploads", "deadline", cfg.ShutdownTimeout)
		}
		fsys.CutOffUploads(why)
	})
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			log.Warn("second signal: giving up on pending uploads (their data stays in the staging directory)", "signal", s.String())
			cancel()
		case <-done:
		}
	}()
	d.stopSigs = func() { signal.Stop(sigs); close(done) }
	return d
}

// stop releases the drain's timer and signal handler. It does not cut
// anything off: nothing uploads after the drain.
func (d *drain) stop() {
	d.stopCut()
	d.stopSigs()
	d.cancel()
}

// flush uploads every dirty file within the drain's deadline.
func (d *drain) flush(fsys *bfs.FS) error {
	start := time.Now()
	if err := fsys.FlushAll(d.ctx); err != nil {
		d.log.Error("some writes could not be uploaded; their data is kept (each error says where)",
			"recovery_dir", d.cfg.RecoveryDir, "err", err)
		return fmt.Errorf("some writes were not uploaded (kept as each error says): %w", err)
	}
	d.log.Debug("pending writes uploaded", "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// waitAnswering returns once the kernel has sent INIT and a stat of the
// mountpoint is answered by us, so that whoever waits on "ready" can use
// the mount at once.
func waitAnswering(ctx context.Context, server *fuse.Server, mnt string) error {
	done := make(chan error, 1)
	go func() {
		if err := server.WaitMount(); err != nil {
			done <- fmt.Errorf("mount %s did not come up: %w", mnt, err)
			return
		}
		if _, err := os.Stat(mnt); err != nil {
			done <- fmt.Errorf("mount %s does not answer: %w", mnt, err)
			return
		}
		done <- nil
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("mount %s did not answer in time", mnt)
	}
}

// unmount takes the filesystem down. If it is busy (open files, a shell
// inside it), it is detached lazily instead so that we can still exit; it
// reports whether that happened.
func unmount(server *fuse.Server, mnt string, log *slog.Logger) (lazy bool) {
	err := server.Unmount()
	if err == nil {
		return false
	}
	log.Warn("unmount failed (busy?); detaching lazily", "mountpoint", mnt, "err", err)
	if err := lazyUnmount(mnt); err != nil {
		log.Error("lazy unmount failed", "mountpoint", mnt, "err", err)
	}
	return true
}

func lazyUnmount(mnt string) error {
	if os.Geteuid() == 0 {
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("umount -l %s: %w", mnt, err)
		}
		return nil
	}
	for _, helper := range []string{"fusermount3", "fusermount"} {
		if path, err := exec.LookPath(helper); err == nil {
			out, err := exec.Command(path, "-u", "-z", mnt).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%s -u -z %s: %w: %s", helper, mnt, err, out)
			}
			return nil
		}
	}
	return errors.New("no fusermount3 for a lazy unmount")
}

// describeEndpoint names the endpoint for humans.
func describeEndpoint(cfg *Config) string {
	if cfg.Endpoint != "" {
		return cfg.Endpoint
	}
	if cfg.Region != "" {
		return "AWS S3 (" + cfg.Region + ")"
	}
	return "AWS S3"
}

// describeStoreError turns a backend error into the one line a user needs.
func describeStoreError(err error, cfg *Config, creds credChoice, where string) error {
	var opErr *s3backend.OpError
	answered := errors.As(err, &opErr) && opErr.StatusCode != 0
	switch {
	case errors.Is(err, s3backend.ErrNoSuchBucket):
		return fmt.Errorf("bucket %q does not exist at %s", cfg.Bucket, where)
	case errors.Is(err, s3backend.ErrBadCredentials) && !answered:
		// The store never saw a request: no provider produced credentials.
		// The SDK's reason is a long chain about the metadata service; it
		// goes to the debug log, the fix goes on the one line.
		slog.Debug("credential retrieval failed", "err", err)
		return fmt.Errorf("no usable credentials found (tried %s); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, write ~/.passwd-s3fs, or pass -o passwd_file=", creds.Source)
	case errors.Is(err, s3backend.ErrBadCredentials):
		return fmt.Errorf("credentials rejected by %s for bucket %q (credentials from %s)", where, cfg.Bucket, creds.Source)
	case errors.Is(err, s3backend.ErrAccessDenied):
		return fmt.Errorf("access denied to bucket %q at %s (credentials from %s)", cfg.Bucket, where, creds.Source)
	case errors.Is(err, s3backend.ErrUnreachable):
		return fmt.Errorf("cannot reach %s: %v", where, networkCause(err))
	case errors.Is(err, s3backend.ErrNotFound):
		// A 404 without NoSuchBucket: something answered that is not S3,
		// or a gateway that hides the bucket.
		return fmt.Errorf("bucket %q not found at %s (%v; is that the S3 endpoint?)", cfg.Bucket, where, err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("cannot reach %s: no answer in time", where)
	}
	return fmt.Errorf("checking bucket %q at %s: %w", cfg.Bucket, where, err)
}

// networkCause digs out the part of a backend error that says what went
// wrong on the wire (DNS, connection, TLS), without the SDK's layers.
func networkCause(err error) error {
	var (
		dnsErr  *net.DNSError
		netErr  *net.OpError
		certErr *tls.CertificateVerificationError
		opErr   *s3backend.OpError
	)
	switch {
	case errors.As(err, &dnsErr):
		return dnsErr
	case errors.As(err, &certErr):
		return certErr
	case errors.As(err, &netErr):
		return netErr
	case errors.As(err, &opErr) && opErr.Cause != nil:
		return opErr.Cause
	}
	return err
}

// describeMountError adds the usual cause to a failed mount.
func describeMountError(err error, cfg *Config) error {
	msg := strings.TrimSpace(err.Error())
	if !strings.Contains(msg, cfg.Mountpoint) {
		msg = "mount " + cfg.Mountpoint + ": " + msg
	}
	if os.Geteuid() != 0 && !canOpen(fuseDevice) {
		msg += fmt.Sprintf(" (%s is not accessible to uid %d: run as root, or make the device usable, e.g. mode 0666 and user_allow_other in /etc/fuse.conf)", fuseDevice, os.Geteuid())
	} else if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		msg += " (mounting needs root with CAP_SYS_ADMIN, e.g. a privileged container, or a setuid fusermount3; allow_other needs user_allow_other in /etc/fuse.conf for non-root)"
	}
	return &annotatedError{msg: msg, err: err}
}

func canOpen(path string) bool {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// annotatedError replaces an error's message while keeping it for errors.Is.
type annotatedError struct {
	msg string
	err error
}

func (e *annotatedError) Error() string { return e.msg }
func (e *annotatedError) Unwrap() error { return e.err }

// openReadCache builds the read cache from the flags: the memory tier, the
// optional disk tier, their metrics, and a soft memory limit for the Go
// runtime so that garbage around the cache cannot carry the daemon far past
// its budget. The returned func closes both tiers (the disk tier removes
// its files); call it after the mount is gone.
func openReadCache(cfg *Config, log *slog.Logger) (*cache.BlockCache, func(), error) {
	disk, closeDisk, err := openDiskTier(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	blocks, err := cache.New(cache.Options{
		BlockSize: cfg.BlockSize,
		MaxBytes:  cfg.MemoryCacheSize,
		Disk:      disk,
		// A disk tier the user asked for keeps everything read, as
		// s3fs's use_cache does; the automatic one only what random
		// readers read (see cache.Options.DiskSequential).
		DiskSequential: cfg.CacheDir != "",
		Observer:       metrics.CacheObserver(),
	})
	if err != nil {
		closeDisk()
		return nil, nil, fmt.Errorf("read cache: %w", err)
	}
	// GOGC, if the user set it, is theirs to choose. The default lets the
	// heap grow to twice what is live before a collection; the cache's
	// blocks are recycled, not garbage, so what grows is metadata (nodes
	// and listings: a 100,000-entry directory holds over 100 MiB live),
	// and its peak would be twice that. Half as much growth costs a
	// metadata-heavy walk about a sixth more of the daemon's CPU and
	// reads and writes nothing measurable.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	// GOMEMLIMIT, if the user set it, is theirs to choose.
	if os.Getenv("GOMEMLIMIT") == "" {
		soft := goSoftLimit(cfg.MemoryCacheSize+cfg.StreamMemory, cfg.MemoryLimit)
		debug.SetMemoryLimit(soft)
		if cfg.MemoryLimit > 0 {
			log.Info("under a memory limit", "limit", formatByteSize(cfg.MemoryLimit),
				"memory_cache", formatByteSize(cfg.MemoryCacheSize), "go_soft_limit", formatByteSize(soft))
		}
	}
	stop := make(chan struct{})
	go func() { // the cache-bytes gauge, sampled: the cache keeps no callback for it
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				metrics.SetCacheBytes(blocks.Stats().ResidentBytes)
			case <-stop:
				return
			}
		}
	}()
	return blocks, func() {
		close(stop)
		blocks.Close()
		closeDisk()
	}, nil
}

// autoCacheDirPattern names the private disk-tier directories under
// $TMPDIR (os.MkdirTemp pattern).
const autoCacheDirPattern = "bucketfs-cache-"

// openDiskTier opens the read cache's disk tier as cfg says, or returns nil
// when it is off. The automatic tier (no --cache-dir) lives in a fresh
// private directory under $TMPDIR, removed by the returned close; those
// left by daemons that were killed are removed here first. Being only an
// accelerator, the automatic tier never fails the mount: without room or
// a writable $TMPDIR the mount runs without it, with a log line.
func openDiskTier(cfg *Config, log *slog.Logger) (*cache.DiskCache, func(), error) {
	noop := func() {}
	if cfg.CacheSize == 0 {
		return nil, noop, nil
	}
	dlog := log.With("component", "disk-cache")
	dir, auto := cfg.CacheDir, cfg.CacheDir == ""
	if auto {
		removeStaleCacheDirs(os.TempDir(), dlog)
		d, err := os.MkdirTemp("", autoCacheDirPattern+"*")
		if err != nil {
			dlog.Warn("running without a disk tier", "err", err)
			return nil, noop, nil
		}
		dir = d
	}
	size := cfg.CacheSize
	if size == autoCacheSize {
		size = autoDiskTierSize(dir, dlog)
		if inMemoryFS(dir) {
			// Files on tmpfs are memory, charged to our cgroup and
			// never reclaimed without swap: under a memory limit an
			// uncapped tier is an OOM kill once enough has been read.
			size = memoryBackedTierSize(size, cfg.MemoryLimit, cfg.BlockSize)
		}
	}
	if cfg.EnsureDiskFree > 0 {
		// ensure_diskfree: the tier may only fill what is free beyond the
		// reserve now (its cap is hard, so it never eats into it later).
		size = min(size, freeBytes(dir, dlog)-cfg.EnsureDiskFree)
	}
	if size < 4*cfg.BlockSize {
		if auto {
			_ = os.RemoveAll(dir)
		}
		dlog.Info("running without a disk tier: too little room", "dir", dir, "cap", formatByteSize(size))
		return nil, noop, nil
	}
	disk, err := cache.OpenDisk(cache.DiskOptions{Dir: dir, MaxBytes: size, Logger: dlog})
	if err != nil {
		if auto {
			_ = os.RemoveAll(dir)
			dlog.Warn("running without a disk tier", "err", err)
			return nil, noop, nil
		}
		return nil, nil, fmt.Errorf("--cache-dir %s: %w", dir, err)
	}
	keeps := "everything read"
	if auto {
		keeps = "what random readers read"
	}
	dlog.Info("disk tier", "dir", dir, "cap", formatByteSize(size), "keeps", keeps)
	return disk, func() {
		st := disk.Stats()
		dlog.Info("disk tier closed", "hits", st.Hits, "writes", st.Writes, "dropped", st.Dropped, "evictions", st.Evictions, "used", formatByteSize(st.UsedBytes))
		disk.Close()
		if auto {
			_ = os.RemoveAll(dir)
		}
	}, nil
}

// autoDiskTierSize is --cache-size auto: a quarter of the space free in
// dir's filesystem now, at most maxAutoCacheSize, so that a sandbox's disk
// is never filled by a cache (the tier's cap is hard).
func autoDiskTierSize(dir string, log *slog.Logger) int64 {
	return min(freeBytes(dir, log)/4, maxAutoCacheSize)
}

// inMemoryFS reports whether dir lives on tmpfs or ramfs, whose files are
// held in memory.
func inMemoryFS(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC
}

// memoryBackedTierSize caps an automatic disk tier of size bytes that lives
// in memory (tmpfs) under a memory limit (0: none) as the memory tier is
// capped: at most an eighth of the limit, in whole blocks (below the 4
// blocks a tier needs, openDiskTier runs without one).
func memoryBackedTierSize(size, limit, blockSize int64) int64 {
	if limit <= 0 {
		return size
	}
	return min(size, limit/8/blockSize*blockSize)
}

// freeBytes is the space unprivileged users may still fill in dir's
// filesystem; 0 (with a log line) if that cannot be seen.
func freeBytes(dir string, log *slog.Logger) int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		log.Warn("cannot see the free space", "dir", dir, "err", err)
		return 0
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// removeStaleCacheDirs removes the automatic disk-tier directories under
// tmp that no running daemon holds (see cache.RemoveIfUnused). Directories
// changed in the last minute are left alone: a daemon starting right now
// may have made one and not locked it yet.
func removeStaleCacheDirs(tmp string, log *slog.Logger) {
	dirs, _ := filepath.Glob(filepath.Join(tmp, autoCacheDirPattern+"*"))
	for _, d := range dirs {
		if st, err := os.Stat(d); err != nil || time.Since(st.ModTime()) < time.Minute {
			continue
		}
		if ok, err := cache.RemoveIfUnused(d); err != nil {
			log.Warn("could not remove a stale disk-tier directory", "dir", d, "err", err)
		} else if ok {
			log.Info("removed a stale disk-tier directory", "dir", d)
		}
	}
}

// streamMemory is fs.Config's StreamMemory for --stream-memory: 0 (none)
// is fs's negative.
func streamMemory(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

// defaultGCPercent is the Go collector's GOGC unless the environment sets
// one (openReadCache says why it is below Go's 100).
const defaultGCPercent = 50

// memoryHeadroom is what the daemon may use beyond the read cache: FUSE
// buffers, listings, the SDK. The Go runtime's soft limit is the sum.
const memoryHeadroom = 96 << 20

// localSetUp is what a mount holds on this machine before it mounts: its
// staging directory (claimed) and the read cache.
type localSetUp struct {
	staging     string
	stagingSize int64
	blocks      *cache.BlockCache
	releases    []func() // in the order taken
}

// release gives back what was taken, the last first; it may be called on
// a partial set-up, once.
func (l *localSetUp) release() {
	for i := len(l.releases) - 1; i >= 0; i-- {
		l.releases[i]()
	}
	l.releases = nil
}

// setUpLocal claims the staging directory and opens the read cache. On
// an error what it had taken is released already.
func setUpLocal(cfg *Config, log *slog.Logger) (*localSetUp, error) {
	l := &localSetUp{}
	staging, releaseStaging, err := bfs.ClaimStagingDir(stagingDirFor(cfg.StagingDir, cfg))
	if err != nil {
		return l, err
	}
	l.staging = staging
	l.releases = append(l.releases, releaseStaging)
	if l.stagingSize, err = stagingSizeFor(cfg, staging, log); err != nil {
		l.release()
		return l, err
	}
	blocks, closeBlocks, err := openReadCache(cfg, log)
	if err != nil {
		l.release()
		return l, err
	}
	l.blocks = blocks
	l.releases = append(l.releases, closeBlocks)
	return l, nil
}

// stagingSizeFor is fs.Config's StagingSize: --staging-size, else (0) fs's
// default, half the free space where staging lives; with ensure_diskfree
// at most what is free beyond that reserve. A reserve larger than the free
// space is refused: every write would fail with ENOSPC.
func stagingSizeFor(cfg *Config, dir string, log *slog.Logger) (int64, error) {
	if cfg.EnsureDiskFree <= 0 || cfg.StagingSize > 0 {
		return cfg.StagingSize, nil
	}
	free := freeBytes(dir, log)
	room := free - cfg.EnsureDiskFree
	if room <= 0 {
		return 0, fmt.Errorf("ensure_diskfree=%dMiB: only %s free where files are staged (%s)",
			cfg.EnsureDiskFree>>20, formatByteSize(free&^(1<<20-1)), dir)
	}
	return min(free/2, room), nil
}

// sparseEditMin maps the flag (0: every edit) to fs.Config's (0: default,
// negative: every edit).
func sparseEditMin(flag int64) int64 {
	if flag == 0 {
		return -1
	}
	return flag
}

// plainHTTPWithStaticKeys tells whether the daemon makes no TLS connection
// at all: an http:// endpoint, and credentials it holds itself rather than
// the SDK's chain (which may call STS or SSO over HTTPS).
// startupReleaseDelay is how long after the mount answers its start-up
// memory is given back.
const startupReleaseDelay = 2 * time.Second

func plainHTTPWithStaticKeys(endpoint string, creds aws.CredentialsProvider) bool {
	return creds != nil && strings.HasPrefix(strings.ToLower(endpoint), "http://")
}

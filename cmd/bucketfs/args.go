package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	bfs "github.com/novitalabs/bucketfs/fs"
	"github.com/novitalabs/bucketfs/s3backend"
)

// errHelp and errVersion are returned by parseArgs when --help or
// --version was asked for; the caller prints and exits 0.
var (
	errHelp    = errors.New("help requested")
	errVersion = errors.New("version requested")
)

// usageError is a mistake on the command line (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, a ...any) error {
	return &usageError{msg: fmt.Sprintf(format, a...)}
}

const usageHeader = `Usage: bucketfs [flags] BUCKET[:PREFIX] MOUNTPOINT [-o OPTIONS]

Mounts an S3 bucket (or the PREFIX inside it) on MOUNTPOINT. Without -f the
command returns once the mount answers and the daemon keeps running in the
background; it exits after "umount MOUNTPOINT" or SIGTERM, uploading
pending writes first.

Flags:
`

const usageFooter = `
-o OPTIONS (s3fs-compatible, comma-separated, repeatable; flags win over -o):
  url=URL                  endpoint URL (https://s3.amazonaws.com means AWS)
  endpoint=REGION          signing region (s3fs's name for it)
  use_path_request_style   path-style addressing (default with any url=)
  passwd_file=PATH         s3fs password file (ACCESS:SECRET or BUCKET:ACCESS:SECRET)
  profile=NAME             AWS shared-config profile
  allow_other              let other users in; the mount root shows 0777
                           (&^ mp_umask=OCTAL), as with s3fs
  uid=N, gid=N, umask=OCTAL  overrides (libfuse's): every object shows this
                           owner, group, mode 0777 &^ umask, whatever its
                           metadata; --uid/--gid/--file-mode/--dir-mode are
                           only defaults for objects without metadata
  ro, nonempty
  stat_cache_expire=SECS   same as --stat-cache-ttl
  enable_noobj_cache       --negative-ttl of the stat cache TTL (disable_noobj_cache: 0)
  no_check_certificate     do not verify TLS certificates (insecure)
  public_bucket=1          anonymous, unsigned requests
  use_sse                  SSE-S3 for objects written (also use_sse=1);
                           use_sse=kmsid:ID (k:ID) SSE-KMS with key ID
                           (kmsid alone: $AWSSSEKMSID, else the default key);
                           use_sse=custom:FILE (c:FILE) SSE-C with the one
                           key in FILE (mode 600; 32 bytes raw or base64;
                           custom alone: $AWSSSECKEYS); same as --sse*
  storage_class=CLASS      e.g. standard_ia (use_rrs: reduced_redundancy)
  default_acl=ACL          canned ACL of objects written, e.g. public-read
  requester_pays           for Requester Pays buckets
  use_cache=DIR            same as --cache-dir DIR
  multipart_size=MIB       part size of uploads (5 to 5120)
  parallel_count=N         parts of one upload in flight
  retries=N                attempts per S3 request (default 5)
  ensure_diskfree=MIB      the disk tier leaves this much free
  max_stat_cache_size=N    0 caches no metadata (--stat-cache-ttl 0); other
                           sizes need nothing (the kernel bounds the nodes
                           that hold metadata; --max-stat-entries the
                           listings)
  dbglevel=LEVEL           same as --log-level (crit, err, warn, info, debug)
  Other s3fs options (del_cache, nomultipart, ...) are accepted with a
  warning and ignored; mount(8) options (rw, _netdev, noatime, ...) are
  accepted silently; anything else is refused.

Credentials, first that applies: passwd_file=; AWS_ACCESS_KEY_ID in the
environment (AWS SDK chain); AWSACCESSKEYID/AWSSECRETACCESSKEY (s3fs); a
--profile, AWS_PROFILE or ~/.aws/{credentials,config} (AWS SDK chain);
$HOME/.passwd-s3fs; /etc/passwd-s3fs; else the full AWS SDK chain
(container and instance roles). Password files must not be readable by
others (group may read /etc/passwd-s3fs only).

As a mount helper (/sbin/mount.fuse.bucketfs, a link to this binary), for
"mount -t fuse.bucketfs BUCKET DIR -o OPTIONS" and fstab lines, these
flags are written as -o options with underscores: log_file=, log_level=,
log_format=, metrics_addr=, ready_file=, shutdown_timeout=, upload_timeout=,
recovery_dir=, staging_dir=, stat_cache_ttl=, negative_ttl=, region=, file_mode=,
dir_mode=, debug_fuse, insecure_skip_verify, read_only.

A dead mount left on MOUNTPOINT by a killed daemon ("Transport endpoint is
not connected") is detached and replaced, with a log line.

Logging: with -f, to stderr unless --log-file. In the background, to
--log-file, else /var/log/bucketfs.log for root and
$XDG_STATE_HOME/bucketfs/bucketfs.log (~/.local/state/...) for others.
Uploads that fail for good are saved under --recovery-dir and named there.
`

// octalValue is a pflag.Value for permission bits written in octal.
type octalValue struct{ v *uint32 }

func (o octalValue) String() string {
	if o.v == nil {
		return "0"
	}
	return fmt.Sprintf("%04o", *o.v)
}
func (o octalValue) Set(s string) error {
	m, err := parseOctalMode(s)
	if err != nil {
		return err
	}
	*o.v = m
	return nil
}
func (o octalValue) Type() string { return "mode" }

// byteSizeValue is a flag holding a size in bytes, written as a number
// with an optional unit: 1048576, 512KiB, 256MiB, 1GiB, 10G (powers of 1024
// either way: nobody sizes a cache in powers of 1000).
type byteSizeValue struct{ v *int64 }

func (b byteSizeValue) String() string {
	if b.v == nil {
		return "0"
	}
	if *b.v == autoCacheSize {
		return "auto"
	}
	return formatByteSize(*b.v)
}

// Set parses a size; "auto" is accepted too, for the flags whose default
// is worked out at mount (--cache-size).
func (b byteSizeValue) Set(s string) error {
	if strings.EqualFold(strings.TrimSpace(s), "auto") {
		*b.v = autoCacheSize
		return nil
	}
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b.v = n
	return nil
}

func (b byteSizeValue) Type() string { return "bytes" }

func parseByteSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q (want e.g. 256MiB, 1GiB or a number of bytes)", s)
	}
	return n * mult, nil
}

func formatByteSize(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// flagValues holds what pflag parses into before it is merged with -o.
type flagValues struct {
	foreground, pathStyle, readOnly, allowOther, debugFUSE, noXattr   bool
	xattr                                                             bool
	insecure, showVersion, showHelp, requesterPays, listMetadata      bool
	sse, sseKMSKeyID, sseCKeyFile, storageClass, acl                  string
	endpoint, region, profile, logLevel, logFile                      string
	logFormat, readyFile, metricsAddr, metadata, uploadChecksum       string
	stagingDir, recoveryDir, cacheDir                                 string
	blockSize, memoryCacheSize, cacheSize, sparseEditMin, stagingSize int64
	streamMemory                                                      int64
	statTTL, negativeTTL, uploadTimeout, shutdownTimeout, retryFor    time.Duration
	uid, gid, fileMode, dirMode                                       uint32
	maxRenameObjects                                                  int
	maxStatEntries                                                    int
	options                                                           []string
}

func newFlagSet(env sysEnv, fv *flagValues) *pflag.FlagSet {
	fs := pflag.NewFlagSet("bucketfs", pflag.ContinueOnError)
	fs.SetInterspersed(true)
	fs.SortFlags = false
	fs.SetOutput(io.Discard) // errors are returned, usage printed by the caller

	fs.BoolVarP(&fv.foreground, "foreground", "f", false, "stay in the foreground (default: return once the mount answers)")
	fs.StringVar(&fv.endpoint, "endpoint", "", "S3 endpoint URL, e.g. http://127.0.0.1:9000 (default: AWS for the region)")
	fs.StringVar(&fv.region, "region", "", "signing region (default: AWS config, else us-east-1)")
	fs.BoolVar(&fv.pathStyle, "path-style", false, "path-style addressing (default: on whenever an endpoint is given)")
	fs.BoolVar(&fv.insecure, "insecure-skip-verify", false, "do not verify the endpoint's TLS certificate (insecure; same as -o no_check_certificate)")
	fs.BoolVar(&fv.readOnly, "read-only", false, "mount read-only: every change fails with EROFS")
	fs.DurationVar(&fv.statTTL, "stat-cache-ttl", defaultStatCacheTTL, "how long metadata and listings are trusted")
	fs.DurationVar(&fv.negativeTTL, "negative-ttl", 0, "how long a name found missing stays missing without asking the store (at most --stat-cache-ttl; default 0: objects other tools create are visible at once, as with s3fs)")
	fs.StringVar(&fv.metadata, "metadata", "full", "full: attributes as each object's metadata says (a HEAD when a stat asks for what a listing lacks); listing: from listings alone (size, mtime = LastModified, --uid/--gid/--file-mode/--dir-mode), never a HEAD")
	fs.BoolVar(&fv.listMetadata, "list-metadata", true, "on a MinIO store, ask listings for each object's headers (MinIO's metadata=true), so that --metadata full shows listed objects without a HEAD each; false: a HEAD per entry, as with other stores")
	fs.StringVar(&fv.uploadChecksum, "upload-checksum", string(s3backend.ChecksumCRC32C), "how uploads are protected in transit: crc32c (a CRC-32C the store verifies, unsigned payload) or sha256 (SigV4-signed payload over HTTP, the SDK's default)")
	fs.Uint32Var(&fv.uid, "uid", uint32(env.UID), "owner of objects that carry no metadata (default: the daemon's uid)")
	fs.Uint32Var(&fv.gid, "gid", uint32(env.GID), "group of objects that carry no metadata (default: the daemon's gid)")
	fv.fileMode, fv.dirMode = defaultFileMode, defaultDirMode
	fs.Var(octalValue{&fv.fileMode}, "file-mode", "permissions of files that carry no metadata (octal)")
	fs.Var(octalValue{&fv.dirMode}, "dir-mode", "permissions of directories that carry no metadata (octal)")
	fs.BoolVar(&fv.allowOther, "allow-other", false, "let other users see the mount")
	fs.StringVar(&fv.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&fv.logFile, "log-file", "", "log to this file (appended)")
	fs.StringVar(&fv.logFormat, "log-format", "text", "log line format: text (key=value) or json")
	fs.StringVar(&fv.profile, "profile", "", "AWS shared-config profile")
	fs.StringVar(&fv.stagingDir, "staging-dir", defaultStagingBase(env), "local copies of files being written, with sidecars naming their keys, in a subdirectory per bucket and prefix; a daemon started again on the same bucket and prefix uploads what a killed one left there")
	fs.StringVar(&fv.recoveryDir, "recovery-dir", defaultRecoveryDir(env), "data whose upload kept failing for --upload-retry-time is moved here, with its sidecar")
	fs.DurationVar(&fv.retryFor, "upload-retry-time", defaultRetryFor, "how long failed uploads are retried in the background (capped exponential back-off with jitter) before their data goes to --recovery-dir")
	fv.blockSize, fv.memoryCacheSize, fv.cacheSize = defaultBlockSize, defaultMemoryCacheSize, autoCacheSize
	fv.sparseEditMin = defaultSparseEditMin
	fv.streamMemory = defaultStreamMemory
	fs.Var(byteSizeValue{&fv.stagingSize}, "staging-size", "bound on the bytes staged at once; a write over it waits for uploads to drain, then fails with ENOSPC (default 0: half the free space where --staging-dir lives)")
	fs.IntVar(&fv.maxStatEntries, "max-stat-entries", defaultMaxStatEntries, "bound on the directory entries that cached listings hold together; past it the listings used least recently are dropped (a directory bigger than the bound is listed anew each time); 0: no bound")
	fs.IntVar(&fv.maxRenameObjects, "max-rename-objects", defaultMaxRenameObjects, "a directory rename copying more objects than this fails with EXDEV (mv then moves the tree file by file); 0: no bound")
	fs.Var(byteSizeValue{&fv.sparseEditMin}, "sparse-edit-min", "edits (append, pwrite, truncate) of objects bigger than this send only what changed (server-side copies of the rest) instead of downloading the object; 0: every edit")
	fs.Var(byteSizeValue{&fv.streamMemory}, "stream-memory", "memory for the newest bytes of big files being written sequentially, which are uploaded from there as parts instead of from the staging file (written to staging only if an upload fails or the file is read back); 0: none (default 64MiB, at most a sixteenth of the cgroup's memory limit)")
	fs.Var(byteSizeValue{&fv.memoryCacheSize}, "memory-cache-size", "read cache in memory, fetches in flight included (e.g. 256MiB, 1GiB; default 256MiB, at most an eighth of the cgroup's memory limit)")
	fs.Var(byteSizeValue{&fv.blockSize}, "block-size", "read cache block size")
	fs.StringVar(&fv.cacheDir, "cache-dir", "", "disk tier of the read cache in this directory, keeping everything read (default: a private directory in $TMPDIR, removed at exit, keeping what random readers read)")
	fs.Var(byteSizeValue{&fv.cacheSize}, "cache-size", "hard cap of the disk tier; 0 turns it off; auto is a quarter of the free space there at mount, at most 10GiB")
	fs.DurationVar(&fv.uploadTimeout, "upload-timeout", defaultUploadTimeout, "bound on one write request (a PUT, one part, a copy, a delete), its retries included; a whole upload is not bounded")
	fs.DurationVar(&fv.shutdownTimeout, "shutdown-timeout", defaultShutdownTimeout, "bound on uploading pending writes at exit; what is left goes to --recovery-dir")
	fs.StringVar(&fv.readyFile, "ready-file", "", "write this file (atomically, with the daemon's pid) once the mount answers; removed at exit")
	fs.StringVar(&fv.metricsAddr, "metrics-addr", "", "serve Prometheus metrics on HOST:PORT at /metrics (e.g. 127.0.0.1:9100)")
	fs.BoolVar(&fv.debugFUSE, "debug-fuse", false, "log every FUSE request (very verbose)")
	fs.BoolVar(&fv.noXattr, "no-xattr", false, "turn extended attributes off (ENOTSUP); saves the kernel's security.capability query before every write(2)")
	fs.BoolVar(&fv.xattr, "xattr", false, "extended attributes on with --metadata listing too, where they are off by default (same as -o use_xattr)")
	fs.StringVar(&fv.sse, "sse", "", "server-side encryption of objects written: s3 (SSE-S3), kms (SSE-KMS) or c (SSE-C); same as -o use_sse")
	fs.StringVar(&fv.sseKMSKeyID, "sse-kms-key-id", "", "SSE-KMS with this key (implies --sse kms)")
	fs.StringVar(&fv.sseCKeyFile, "sse-c-key-file", "", "SSE-C with the key in this file, 32 bytes raw or base64, not readable by others; every read needs it (implies --sse c)")
	fs.StringVar(&fv.storageClass, "storage-class", "", "storage class of objects written, e.g. STANDARD_IA (same as -o storage_class)")
	fs.StringVar(&fv.acl, "acl", "", "canned ACL of objects written, e.g. public-read (same as -o default_acl)")
	fs.BoolVar(&fv.requesterPays, "requester-pays", false, "send x-amz-request-payer: requester, for Requester Pays buckets (same as -o requester_pays)")
	fs.StringArrayVarP(&fv.options, "options", "o", nil, "s3fs-compatible mount options, comma-separated (see below)")
	fs.BoolVar(&fv.showVersion, "version", false, "print the version and exit")
	fs.BoolVarP(&fv.showHelp, "help", "h", false, "print this help and exit")
	return fs
}

// usage writes the help text.
func usage(w io.Writer, env sysEnv) {
	var fv flagValues
	fs := newFlagSet(env, &fv)
	fmt.Fprint(w, usageHeader)
	fmt.Fprint(w, fs.FlagUsages())
	fmt.Fprint(w, usageFooter)
}

// parseArgs turns the command line (without the program name) into a
// Config. It is pure: it reads no files and touches no mount.
func parseArgs(args []string, env sysEnv) (*Config, error) {
	var fv flagValues
	fs := newFlagSet(env, &fv)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, errHelp
		}
		return nil, usageErrorf("%v", err)
	}
	if fv.showHelp {
		return nil, errHelp
	}
	if fv.showVersion {
		return nil, errVersion
	}
	pos := fs.Args()
	if len(pos) != 2 {
		return nil, usageErrorf("expected BUCKET[:PREFIX] and MOUNTPOINT, got %d argument(s) (see bucketfs --help)", len(pos))
	}
	bucket, prefix, err := parseBucketArg(pos[0])
	if err != nil {
		return nil, &usageError{msg: err.Error()}
	}
	if pos[1] == "" {
		return nil, usageErrorf("empty MOUNTPOINT")
	}
	mo, err := parseMountOptions(fv.options)
	if err != nil {
		return nil, &usageError{msg: err.Error()}
	}

	cfg := &Config{
		Bucket:           bucket,
		Prefix:           prefix,
		Mountpoint:       env.abs(pos[1]),
		Foreground:       fv.foreground,
		StatCacheTTL:     fv.statTTL,
		UID:              fv.uid,
		GID:              fv.gid,
		FileMode:         fv.fileMode,
		DirMode:          fv.dirMode,
		RecoveryDir:      env.abs(fv.recoveryDir),
		UploadTimeout:    fv.uploadTimeout,
		RetryFor:         fv.retryFor,
		ShutdownTimeout:  fv.shutdownTimeout,
		BlockSize:        fv.blockSize,
		MemoryCacheSize:  fv.memoryCacheSize,
		SparseEditMin:    fv.sparseEditMin,
		StreamMemory:     fv.streamMemory,
		MaxRenameObjects: fv.maxRenameObjects,
		MaxStatEntries:   fv.maxStatEntries,
		StagingSize:      fv.stagingSize,
		CacheSize:        fv.cacheSize,
		DebugFUSE:        fv.debugFUSE,
		NoXattr:          fv.noXattr,
		env:              env,
	}
	if fv.stagingDir != "" {
		cfg.StagingDir = env.abs(fv.stagingDir)
	}
	if fv.cacheDir != "" {
		cfg.CacheDir = env.abs(fv.cacheDir)
	}
	cfg.MemoryLimit = env.MemLimit
	if !fs.Changed("memory-cache-size") {
		cfg.MemoryCacheSize = defaultMemoryCacheFor(env.MemLimit, cfg.BlockSize)
	}
	if !fs.Changed("stream-memory") && env.MemLimit > 0 {
		cfg.StreamMemory = min(cfg.StreamMemory, env.MemLimit/16)
	}
	if cfg.BlockSize < 4096 || cfg.BlockSize > 64<<20 || cfg.BlockSize&(cfg.BlockSize-1) != 0 {
		return nil, usageErrorf("--block-size must be a power of two from 4KiB to 64MiB")
	}
	if cfg.MemoryCacheSize < 4*cfg.BlockSize {
		return nil, usageErrorf("--memory-cache-size must hold at least 4 blocks (%s)", formatByteSize(4*cfg.BlockSize))
	}
	if fv.logFile != "" {
		cfg.LogFile = env.abs(fv.logFile)
	}
	if cfg.LogLevel, err = parseLogLevel(fv.logLevel); err != nil {
		return nil, &usageError{msg: err.Error()}
	}
	switch cfg.LogFormat = strings.ToLower(fv.logFormat); cfg.LogFormat {
	case "text", "json":
	default:
		return nil, usageErrorf("--log-format %q: want text or json", fv.logFormat)
	}
	switch cfg.Metadata = strings.ToLower(fv.metadata); cfg.Metadata {
	case "full", "listing":
	default:
		return nil, usageErrorf("--metadata %q: want full or listing", fv.metadata)
	}
	checksum, err := s3backend.ParseUploadChecksum(strings.ToLower(fv.uploadChecksum))
	if err != nil {
		return nil, usageErrorf("--upload-checksum: %v", err)
	}
	cfg.UploadChecksum = checksum
	// With --metadata listing the headers would go unused.
	cfg.NoListMetadata = !fv.listMetadata || cfg.Metadata == "listing"
	// Extended attributes live in the headers that --metadata listing
	// never reads; there they are off unless asked for, so that the
	// kernel, told once (ENOSYS), stops sending the two xattr queries
	// ls -l makes per entry and the one before every write(2).
	if cfg.Metadata == "listing" && !fv.xattr && !mo.UseXattr {
		cfg.NoXattr = true
	}
	if fv.xattr && fv.noXattr {
		return nil, usageErrorf("--xattr and --no-xattr contradict each other")
	}
	if fv.readyFile != "" {
		cfg.ReadyFile = env.abs(fv.readyFile)
	}
	if fv.metricsAddr != "" {
		if _, _, err := net.SplitHostPort(fv.metricsAddr); err != nil {
			return nil, usageErrorf("--metrics-addr %q: want HOST:PORT, e.g. 127.0.0.1:9100", fv.metricsAddr)
		}
		cfg.MetricsAddr = fv.metricsAddr
	}

	// -o first, explicit flags on top.
	changed := fs.Changed
	cfg.Endpoint, cfg.Region = mo.Endpoint, mo.Region
	if changed("endpoint") {
		ep, region, err := normalizeEndpoint(fv.endpoint)
		if err != nil {
			return nil, usageErrorf("--endpoint: %v", err)
		}
		cfg.Endpoint = ep
		if region != "" {
			cfg.Region = region
		}
	}
	if changed("region") {
		cfg.Region = fv.region
	}
	// Custom endpoints (MinIO, R2, Ceph...) rarely have wildcard DNS for
	// virtual-hosted buckets, so path style is the default there; an
	// explicit --path-style=false still wins.
	cfg.PathStyle = cfg.Endpoint != "" || mo.PathStyle
	if changed("path-style") {
		cfg.PathStyle = fv.pathStyle
	}
	cfg.Profile = mo.Profile
	if changed("profile") {
		cfg.Profile = fv.profile
	}
	if mo.PasswdFile != "" {
		cfg.PasswdFile = env.abs(mo.PasswdFile)
	}
	cfg.Anonymous = mo.Anonymous
	cfg.ReadOnly = mo.ReadOnly || fv.readOnly
	if changed("read-only") {
		cfg.ReadOnly = fv.readOnly
	}
	cfg.AllowOther = mo.AllowOther || fv.allowOther
	if changed("allow-other") {
		cfg.AllowOther = fv.allowOther
	}
	cfg.NonEmpty = mo.NonEmpty
	cfg.InsecureSkipVerify = mo.Insecure || fv.insecure
	if changed("insecure-skip-verify") {
		cfg.InsecureSkipVerify = fv.insecure
	}
	// -o uid=, gid=, umask= override what every object shows (libfuse's
	// meaning, which s3fs users rely on); the flags stay defaults.
	cfg.Override = bfs.Override{UID: mo.UID, GID: mo.GID, Umask: mo.Umask}
	if cfg.AllowOther {
		// s3fs shows an allow_other mount's root as 0777 &^ mp_umask, so
		// that every user can create files at the top of the mount.
		root := uint32(0o777)
		if mo.MpUmask != nil {
			root &^= *mo.MpUmask
		}
		cfg.RootMode = &root
	}
	if mo.StatTTL != nil && !changed("stat-cache-ttl") {
		cfg.StatCacheTTL = *mo.StatTTL
	}
	// s3fs's max_stat_cache_size=0 caches no metadata at all. Other sizes
	// need nothing: metadata lives on the nodes the kernel holds, and the
	// kernel bounds those.
	if mo.MaxStatCacheSize != nil && *mo.MaxStatCacheSize == 0 && !changed("stat-cache-ttl") {
		cfg.StatCacheTTL = 0
	}
	// s3fs's enable_noobj_cache caches "no such object" as long as stats.
	cfg.NegativeTTL = fv.negativeTTL
	if mo.NoObjCache != nil && !changed("negative-ttl") {
		cfg.NegativeTTL = 0
		if *mo.NoObjCache {
			cfg.NegativeTTL = cfg.StatCacheTTL
		}
	}

	if err := applyObjectSettings(cfg, mo, &fv, changed, env); err != nil {
		return nil, err
	}
	applyTuning(cfg, mo, changed)

	if cfg.MaxRenameObjects < 0 || cfg.MaxStatEntries < 0 {
		return nil, usageErrorf("--max-rename-objects and --max-stat-entries must not be negative")
	}
	if cfg.StatCacheTTL < 0 || cfg.NegativeTTL < 0 || cfg.UploadTimeout <= 0 || cfg.ShutdownTimeout <= 0 {
		return nil, usageErrorf("--stat-cache-ttl and --negative-ttl must not be negative, --upload-timeout and --shutdown-timeout must be positive")
	}
	if len(mo.Ignored) > 0 {
		cfg.Warnings = append(cfg.Warnings, "ignoring s3fs options that have no meaning for bucketfs: "+strings.Join(mo.Ignored, ", "))
	}
	if cfg.InsecureSkipVerify {
		what := "no_check_certificate"
		if changed("insecure-skip-verify") {
			what = "--insecure-skip-verify"
		}
		cfg.Warnings = append(cfg.Warnings, what+": TLS certificates of the endpoint are NOT verified")
	}
	if mo.IAMRole && cfg.PasswdFile == "" {
		// iam_role means "use the instance role": skip password files.
		cfg.useSDKChain = true
	}
	return cfg, nil
}

// parseBucketArg splits BUCKET[:PREFIX]. s3fs writes the prefix as
// "bucket:/path", so a leading slash is dropped; the prefix is normalised
// to end with "/" ("" means the whole bucket).
func parseBucketArg(s string) (bucket, prefix string, err error) {
	bucket, prefix, _ = strings.Cut(s, ":")
	if bucket == "" {
		return "", "", fmt.Errorf("empty bucket name in %q", s)
	}
	if strings.ContainsAny(bucket, "/ \t\n") {
		return "", "", fmt.Errorf("invalid bucket name %q", bucket)
	}
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return bucket, "", nil
	}
	for _, seg := range strings.Split(prefix, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", "", fmt.Errorf("invalid prefix %q: empty, \".\" or \"..\" path element", prefix)
		}
	}
	return bucket, prefix + "/", nil
}

func parseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	// Also accept slog's numeric form, e.g. "-4".
	if n, err := strconv.Atoi(s); err == nil {
		return slog.Level(n), nil
	}
	return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
}

// applyObjectSettings sets what objects written get (encryption, storage
// class, ACL) and requester pays: -o first, the flags on top.
func applyObjectSettings(cfg *Config, mo mountOptions, fv *flagValues, changed func(string) bool, env sysEnv) error {
	sse := mo.SSE
	if changed("sse") || changed("sse-kms-key-id") || changed("sse-c-key-file") {
		var err error
		if sse, err = sseFromFlags(fv); err != nil {
			return err
		}
	}
	if sse != nil {
		cfg.SSE = sse.Mode
		switch sse.Mode {
		case s3backend.SSEKMS:
			// s3fs's use_sse=kmsid without an id takes it from AWSSSEKMSID.
			cfg.SSEKMSKeyID = sse.KMSKeyID
			if cfg.SSEKMSKeyID == "" && env.Getenv != nil {
				cfg.SSEKMSKeyID = env.Getenv("AWSSSEKMSID")
			}
		case s3backend.SSEC:
			if sse.KeyFile != "" {
				cfg.SSECKeyFile = env.abs(sse.KeyFile)
				break
			}
			// s3fs's use_sse=custom without a file: the keys are in
			// AWSSSECKEYS, ":"-separated.
			if env.Getenv != nil {
				cfg.sseCKeys = env.Getenv("AWSSSECKEYS")
			}
			if cfg.sseCKeys == "" {
				return usageErrorf("use_sse=custom without a key file needs the key in AWSSSECKEYS (or give use_sse=custom:FILE)")
			}
		}
	}
	cfg.StorageClass = mo.StorageClass
	if changed("storage-class") {
		c := strings.ToUpper(fv.storageClass)
		if c != "" && !s3backend.ValidStorageClass(c) {
			return usageErrorf("--storage-class %q: not an S3 storage class (e.g. STANDARD_IA, REDUCED_REDUNDANCY)", fv.storageClass)
		}
		cfg.StorageClass = c
	}
	cfg.ACL = mo.ACL
	if changed("acl") {
		acl, err := parseCannedACL(fv.acl)
		if err != nil {
			return usageErrorf("--acl %q: %v", fv.acl, err)
		}
		cfg.ACL = acl
	}
	cfg.RequesterPays = mo.RequesterPays
	if changed("requester-pays") {
		cfg.RequesterPays = fv.requesterPays
	}
	return nil
}

// sseFromFlags reads --sse, --sse-kms-key-id and --sse-c-key-file; a key
// id or key file implies its mode, and contradicting one is an error.
func sseFromFlags(fv *flagValues) (*sseOption, error) {
	var o sseOption
	switch strings.ToLower(fv.sse) {
	case "":
	case "s3", "sse-s3", "aes256":
		o.Mode = s3backend.SSES3
	case "kms", "sse-kms", "aws:kms":
		o.Mode = s3backend.SSEKMS
	case "c", "sse-c", "custom":
		o.Mode = s3backend.SSEC
	default:
		return nil, usageErrorf("--sse %q: want s3, kms or c", fv.sse)
	}
	if fv.sseKMSKeyID != "" && fv.sseCKeyFile != "" {
		return nil, usageErrorf("--sse-kms-key-id and --sse-c-key-file exclude each other")
	}
	for _, implied := range []struct {
		given bool
		mode  s3backend.SSEMode
		flag  string
	}{{fv.sseKMSKeyID != "", s3backend.SSEKMS, "--sse-kms-key-id"}, {fv.sseCKeyFile != "", s3backend.SSEC, "--sse-c-key-file"}} {
		if !implied.given {
			continue
		}
		if o.Mode != s3backend.SSENone && o.Mode != implied.mode {
			return nil, usageErrorf("%s contradicts --sse %s", implied.flag, fv.sse)
		}
		o.Mode = implied.mode
	}
	switch o.Mode {
	case s3backend.SSENone:
		return nil, nil
	case s3backend.SSEC:
		if fv.sseCKeyFile == "" {
			return nil, usageErrorf("--sse c needs --sse-c-key-file")
		}
	}
	o.KMSKeyID, o.KeyFile = fv.sseKMSKeyID, fv.sseCKeyFile
	return &o, nil
}

// applyTuning maps s3fs's tuning options: use_cache (the disk tier's
// directory), multipart_size and parallel_count (uploads), retries,
// ensure_diskfree and dbglevel. Explicit flags win.
func applyTuning(cfg *Config, mo mountOptions, changed func(string) bool) {
	if mo.UseCache != "" && !changed("cache-dir") {
		cfg.CacheDir = cfg.env.abs(mo.UseCache)
	}
	cfg.PartSize = mo.PartSize
	cfg.UploadConcurrency = mo.ParallelCount
	if mo.Retries != nil {
		// s3fs counts attempts (its retries=N tries N times); 0 would
		// send nothing at all, so it means one attempt.
		cfg.MaxAttempts = max(*mo.Retries, 1)
	}
	cfg.EnsureDiskFree = mo.EnsureDiskFree
	if mo.DbgLevel != nil && !changed("log-level") {
		cfg.LogLevel = *mo.DbgLevel
	}
}

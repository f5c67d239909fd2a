package main

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	bfs "github.com/novitalabs/bucketfs/fs"
	"github.com/novitalabs/bucketfs/s3backend"
)

// Config is everything the command line says, resolved to concrete values.
// parseArgs builds it without touching the network or the mountpoint, so
// tests can check the mapping of flags and -o options in isolation; run
// does the rest.
type Config struct {
	Bucket     string
	Prefix     string // "" or ending with "/", never starting with "/"
	Mountpoint string // absolute

	Foreground bool

	Endpoint           string // "" means AWS
	Region             string // "" means AWS config, else us-east-1
	PathStyle          bool
	InsecureSkipVerify bool
	Profile            string
	PasswdFile         string // explicit passwd_file=; "" means search the usual places
	Anonymous          bool   // public_bucket=1: send unsigned requests
	useSDKChain        bool   // iam_role=: skip password files, use the AWS SDK chain

	// What every object written gets; SSE-C's key is read from
	// SSECKeyFile (or sseCKeys, from AWSSSECKEYS) at start-up.
	SSE           s3backend.SSEMode
	SSEKMSKeyID   string
	SSECKeyFile   string
	sseCKeys      string
	StorageClass  string
	ACL           string
	RequesterPays bool

	// Uploads: part size (0: the default) and parts in flight (0: the
	// default); SDK attempts per request (0: the default).
	PartSize          int64
	UploadConcurrency int
	MaxAttempts       int
	// EnsureDiskFree is the free space (bytes) that staging and the disk
	// tier leave on their filesystem (s3fs's ensure_diskfree).
	EnsureDiskFree int64

	ReadOnly     bool
	StatCacheTTL time.Duration
	NegativeTTL  time.Duration // how long "no such name" is trusted
	// Metadata is "full" (attributes from each object's metadata) or
	// "listing" (from listings alone, never a HEAD).
	Metadata string
	// UploadChecksum: how uploads are protected in transit (s3backend).
	UploadChecksum s3backend.UploadChecksum
	// NoListMetadata: --list-metadata=false (s3backend.Config).
	NoListMetadata bool
	UID, GID       uint32
	FileMode       uint32
	DirMode        uint32
	AllowOther     bool
	NonEmpty       bool

	// Override holds -o uid=, gid=, umask= (libfuse's overrides: what every
	// object shows, whatever its metadata), unlike UID, GID, FileMode and
	// DirMode, which are defaults for objects without metadata.
	Override bfs.Override
	// RootMode is the mount root's permission bits: with allow_other 0777
	// &^ mp_umask, as s3fs shows it; nil means DirMode.
	RootMode *uint32

	// StagingDir is the base of the staging directories: each mount
	// claims StagingDir/<bucket>-<hash of endpoint, bucket, prefix>
	// (stagingDirFor), so that a daemon started again on the same bucket
	// and prefix finds what a killed one left.
	StagingDir  string
	RecoveryDir string
	RetryFor    time.Duration // background retries of failed uploads, before recovery
	// SparseEditMin: edits of bigger objects send only what changed.
	SparseEditMin int64
	// MaxRenameObjects bounds a directory rename (0: no bound).
	MaxRenameObjects int
	// MaxStatEntries bounds the entries of cached listings (0: no bound).
	MaxStatEntries int
	// StagingSize bounds the staged bytes (0: half the free space there).
	StagingSize int64
	// StreamMemory bounds the memory streaming writers' newest bytes
	// take (0: none; fs.Config.StreamMemory).
	StreamMemory int64

	// Read cache: blocks of BlockSize bytes in memory, at most
	// MemoryCacheSize bytes (fetches in flight included), and a disk
	// tier capped at CacheSize bytes: in CacheDir, caching everything
	// read, when one is given; else in a private directory under $TMPDIR,
	// removed at exit, caching what random readers read. CacheSize
	// autoCacheSize means a quarter of the free space there, at most
	// maxAutoCacheSize; 0 turns the disk tier off.
	BlockSize       int64
	MemoryCacheSize int64
	// MemoryLimit is the cgroup memory limit the daemon runs under (0:
	// none). The default MemoryCacheSize and the Go runtime's soft limit
	// are derived from it (memlimit.go).
	MemoryLimit     int64
	CacheDir        string
	CacheSize       int64
	UploadTimeout   time.Duration
	ShutdownTimeout time.Duration // bound on draining uploads at exit

	LogLevel  slog.Level
	LogFile   string // "" means stderr (the default log file is chosen by the daemon parent)
	LogFormat string // "text" or "json"
	DebugFUSE bool
	NoXattr   bool // --no-xattr

	// ReadyFile, when set, is written once the mount answers and removed
	// at exit, for callers that start "bucketfs -f" in the background.
	ReadyFile string
	// MetricsAddr, when set, is the HOST:PORT that serves /metrics.
	MetricsAddr string

	// Warnings collected while parsing (accepted but meaningless s3fs
	// options, insecure settings); logged once the logger exists.
	Warnings []string

	// OnReady, when set, is called once the mount answers. It is not a
	// flag: the daemon child uses it to tell its parent, tests to proceed.
	OnReady func()
	// Logger, when set, is used instead of slog.Default().
	Logger *slog.Logger

	env sysEnv // the environment parseArgs saw, for credential selection
}

// Defaults that are not derived from the environment.
const (
	defaultStatCacheTTL    = 5 * time.Second
	defaultFileMode        = 0o644
	defaultDirMode         = 0o755
	defaultUploadTimeout   = 10 * time.Minute
	defaultShutdownTimeout = 2 * time.Minute
	defaultRetryFor        = 30 * time.Minute
	defaultSparseEditMin   = 16 << 20
	defaultStreamMemory    = 64 << 20
	// defaultMaxRenameObjects: minutes of server-side copies at most.
	defaultMaxRenameObjects = 100000
	// defaultMaxStatEntries: a 100,000-entry directory stays cached, at
	// about 150 bytes an entry.
	defaultMaxStatEntries  = 200000
	defaultBlockSize       = 1 << 20
	defaultMemoryCacheSize = 256 << 20
	autoCacheSize          = -1
	maxAutoCacheSize       = 10 << 30

	// startupBudget bounds everything between the command and a mounted,
	// answering filesystem (or a one-line error). Scripts wait on us, so a
	// hang is worse than a clear failure.
	startupBudget = 30 * time.Second
)

// sysEnv is the part of the process environment that parsing and
// credential selection depend on, injectable for tests.
type sysEnv struct {
	Getenv    func(string) string
	UID, GID  int
	Home      string // $HOME, or the user's home directory from the passwd database
	DBHome    string // the effective user's home from the passwd database (differs from $HOME under some sudo setups)
	EtcPasswd string // the system-wide s3fs password file, /etc/passwd-s3fs
	Cwd       string // to make relative paths absolute
	MemLimit  int64  // the cgroup's memory limit in bytes; 0: none (cgroupMemoryLimit)
}

// realSysEnv describes the running process.
func realSysEnv() sysEnv {
	home := os.Getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	cwd, _ := os.Getwd()
	var dbHome string
	if u, err := user.LookupId(strconv.Itoa(os.Geteuid())); err == nil {
		dbHome = u.HomeDir
	}
	return sysEnv{
		DBHome:    dbHome,
		Getenv:    os.Getenv,
		UID:       os.Geteuid(),
		GID:       os.Getegid(),
		Home:      home,
		EtcPasswd: "/etc/passwd-s3fs",
		Cwd:       cwd,
		MemLimit:  cgroupMemoryLimit("/"),
	}
}

func (e sysEnv) abs(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(e.Cwd, p)
}

// defaultStagingBase is where files being written are staged: a system
// directory for root, otherwise the user's XDG state directory. Stable
// across runs, unlike $TMPDIR, so that nothing a killed daemon held is
// lost.
func defaultStagingBase(e sysEnv) string {
	return e.dataDir("staging", "XDG_STATE_HOME", ".local/state")
}

// dataDir is /var/lib/bucketfs/leaf for root (the usual case in sandboxes,
// where the mount runs under sudo), else $xdgVar/bucketfs/leaf, else
// ~/homeRel/bucketfs/leaf.
func (e sysEnv) dataDir(leaf, xdgVar, homeRel string) string {
	if e.UID == 0 {
		return filepath.Join("/var/lib/bucketfs", leaf)
	}
	if d := e.Getenv(xdgVar); filepath.IsAbs(d) {
		return filepath.Join(d, "bucketfs", leaf)
	}
	return filepath.Join(e.Home, homeRel, "bucketfs", leaf)
}

// stagingDirFor names the staging directory of one bucket and prefix on
// one endpoint under base.
func stagingDirFor(base string, cfg *Config) string {
	sum := sha256.Sum256([]byte(cfg.Endpoint + "\x00" + cfg.Bucket + "\x00" + cfg.Prefix))
	name := cfg.Bucket
	if len(name) > 64 {
		name = name[:64]
	}
	return filepath.Join(base, name+"-"+hex.EncodeToString(sum[:6]))
}

// defaultRecoveryDir is where data whose upload failed for good is kept.
func defaultRecoveryDir(e sysEnv) string {
	return e.dataDir("recovery", "XDG_DATA_HOME", ".local/share")
}

// defaultDaemonLogFile is where a background daemon logs when --log-file
// is not given. Its stderr goes nowhere once detached, and the log is the
// only place that names data moved to the recovery directory, so it must
// not be discarded.
func defaultDaemonLogFile(e sysEnv) string {
	if e.UID == 0 {
		return "/var/log/bucketfs.log"
	}
	if d := e.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "bucketfs", "bucketfs.log")
	}
	return filepath.Join(e.Home, ".local", "state", "bucketfs", "bucketfs.log")
}

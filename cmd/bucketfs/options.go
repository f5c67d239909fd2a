package main

import (
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/novitalabs/bucketfs/s3backend"
)

// mountOptions is what a set of s3fs-style "-o" options asks for. Pointer
// and *Set fields distinguish "not given" from a zero value, so that the
// options can be layered under explicit flags.
type mountOptions struct {
	Endpoint    string // from url=, normalised; "" with EndpointSet means AWS
	EndpointSet bool
	Region      string // from endpoint= (s3fs calls the region "endpoint"), or implied by an AWS url=
	PathStyle   bool
	PasswdFile  string
	Profile     string
	AllowOther  bool
	ReadOnly    bool
	NonEmpty    bool
	UseXattr    bool
	Insecure    bool
	Anonymous   bool
	IAMRole     bool // iam_role=...: credentials come from the instance role (SDK chain)
	// UID, GID and Umask are libfuse's overrides: every object shows them.
	UID, GID *uint32
	Umask    *uint32
	MpUmask  *uint32 // mp_umask=: the mount root's mode with allow_other
	StatTTL  *time.Duration
	// NoObjCache: enable_noobj_cache (true) or disable_noobj_cache (false).
	NoObjCache *bool

	// What objects written get: use_sse, storage_class= (or use_rrs),
	// default_acl=; requester_pays for every request.
	SSE           *sseOption
	StorageClass  string // upper case, as S3 names it
	ACL           string // canned ACL; "" for private, the default
	RequesterPays bool

	UseCache         string // use_cache=DIR: the read cache's disk tier there
	PartSize         int64  // multipart_size= (MiB) in bytes; 0: not given
	ParallelCount    int    // parallel_count=; 0: not given
	Retries          *int   // retries=: attempts per request
	EnsureDiskFree   int64  // ensure_diskfree= (MiB) in bytes
	MaxStatCacheSize *int64 // max_stat_cache_size=: 0 turns the stat cache off
	DbgLevel         *slog.Level

	// Ignored lists the s3fs options that were accepted but mean nothing
	// to bucketfs, in order, for one warning line.
	Ignored []string
}

// s3fsIgnored are s3fs (and FUSE) options that scripts pass and that have
// no meaning here: bucketfs has its own caching, retry and multipart
// logic. They are accepted so that an s3fs command line keeps working, and
// named in a warning so nobody believes they took effect.
var s3fsIgnored = map[string]bool{
	"del_cache": true, "multipart_copy_size": true,
	"complement_stat": true, "compat_dir": true, "notsup_compat_dir": true,
	"sigv2": true, "sigv4": true,
	"nomultipart": true, "curldbg": true, "connect_timeout": true,
	"readwrite_timeout": true, "list_object_max_keys": true, "max_dirty_data": true,
	"fake_diskfree": true, "multireq_max": true,
	"singlepart_copy_limit": true, "stat_cache_interval_expire": true,
	"check_cache_dir_exist": true, "enable_content_md5": true, "ssl_verify_hostname": true,
	"instance_name": true,
	"cipher_suites": true, "noxmlns": true, "nocopyapi": true, "norenameapi": true,
	"listobjectsv2": true, "streamupload": true,
	"logfile": true, "direct_read": true, "noua": true, "host": true, "servicepath": true,
	"kernel_cache": true, "auto_cache": true, "big_writes": true, "max_read": true,
	"max_write": true, "max_background": true, "congestion_threshold": true,
	"default_permissions": true, "allow_root": true, "auto_unmount": true,
	"fsname": true, "subtype": true, "entry_timeout": true, "attr_timeout": true,
	"negative_timeout": true, "noforget": true, "umount_timeout": true,
}

// genericMountOptions are mount(8)/fstab options that mount.fuse or an
// fstab line may hand us. They are accepted silently: either they are the
// default anyway or the kernel already applied them.
var genericMountOptions = map[string]bool{
	"rw": true, "dev": true, "nodev": true, "suid": true, "nosuid": true,
	"exec": true, "noexec": true, "auto": true, "noauto": true, "user": true,
	"nouser": true, "users": true, "_netdev": true, "defaults": true, "async": true,
	"sync": true, "atime": true, "noatime": true, "relatime": true,
	"norelatime": true, "strictatime": true, "nodiratime": true, "diratime": true,
	"nofail": true, "owner": true, "group": true, "lazytime": true, "nolazytime": true,
}

// parseMountOptions parses the values of every -o in order; a later value
// for the same option wins, as with mount(8).
func parseMountOptions(values []string) (mountOptions, error) {
	var mo mountOptions
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			if err := mo.apply(item); err != nil {
				return mountOptions{}, err
			}
		}
	}
	return mo, nil
}

func (mo *mountOptions) apply(item string) error {
	key, val, hasVal := strings.Cut(item, "=")
	needVal := func() error {
		if !hasVal || val == "" {
			return fmt.Errorf("mount option %q needs a value (%s=...)", key, key)
		}
		return nil
	}
	switch key {
	case "url":
		if err := needVal(); err != nil {
			return err
		}
		ep, region, err := normalizeEndpoint(val)
		if err != nil {
			return fmt.Errorf("mount option url: %w", err)
		}
		mo.Endpoint, mo.EndpointSet = ep, true
		if region != "" && mo.Region == "" {
			mo.Region = region
		}
	case "endpoint":
		// s3fs's endpoint= is the signing region, not a URL.
		if err := needVal(); err != nil {
			return err
		}
		if strings.Contains(val, "/") {
			return fmt.Errorf("mount option endpoint=%s: s3fs's endpoint= is a region such as us-east-1; give the URL with url=", val)
		}
		mo.Region = val
	case "use_path_request_style":
		mo.PathStyle = true
	case "passwd_file":
		if err := needVal(); err != nil {
			return err
		}
		mo.PasswdFile = val
	case "profile":
		if err := needVal(); err != nil {
			return err
		}
		mo.Profile = val
	case "allow_other":
		mo.AllowOther = true
	case "ro":
		mo.ReadOnly = true
	case "nonempty":
		mo.NonEmpty = true
	case "use_xattr":
		// s3fs's switch for extended attributes, stored in s3fs's format
		// (fs/xattr.go). They are on by default with --metadata full;
		// this turns them on with --metadata listing too.
		mo.UseXattr = !hasVal || val == "1"
	case "public_bucket":
		mo.Anonymous = !hasVal || val == "1"
	case "no_check_certificate":
		mo.Insecure = true
	case "iam_role":
		// The SDK chain finds the instance role by itself; the name of the
		// role is not needed, so the value is ignored (with a warning).
		mo.IAMRole = true
		mo.Ignored = append(mo.Ignored, item)
	case "uid", "gid":
		if err := needVal(); err != nil {
			return err
		}
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return fmt.Errorf("mount option %s=%s: not a numeric id", key, val)
		}
		id := uint32(n)
		if key == "uid" {
			mo.UID = &id
		} else {
			mo.GID = &id
		}
	case "umask", "mp_umask":
		if err := needVal(); err != nil {
			return err
		}
		m, err := parseOctalMode(val)
		if err != nil {
			return fmt.Errorf("mount option %s=%s: %w", key, val, err)
		}
		m &= 0o777
		if key == "umask" {
			mo.Umask = &m
		} else {
			mo.MpUmask = &m
		}
	case "enable_noobj_cache", "disable_noobj_cache":
		on := key == "enable_noobj_cache"
		mo.NoObjCache = &on
	case "use_sse":
		o, err := parseUseSSE(val, hasVal)
		if err != nil {
			return err
		}
		mo.SSE = o
	case "load_sse_c":
		return fmt.Errorf("mount option load_sse_c: keys only for reading are not supported; give the one SSE-C key with use_sse=custom:FILE")
	case "storage_class":
		if err := needVal(); err != nil {
			return err
		}
		c := strings.ToUpper(val)
		if !s3backend.ValidStorageClass(c) {
			return fmt.Errorf("mount option storage_class=%s: not an S3 storage class (e.g. standard, standard_ia, reduced_redundancy)", val)
		}
		mo.StorageClass = c
	case "use_rrs":
		// s3fs's older spelling of storage_class=reduced_redundancy.
		on, err := parseOptBool(key, val, hasVal)
		if err != nil {
			return err
		}
		mo.StorageClass = ""
		if on {
			mo.StorageClass = "REDUCED_REDUNDANCY"
		}
	case "default_acl":
		if err := needVal(); err != nil {
			return err
		}
		acl, err := parseCannedACL(val)
		if err != nil {
			return fmt.Errorf("mount option default_acl=%s: %w", val, err)
		}
		mo.ACL = acl
	case "requester_pays":
		on, err := parseOptBool(key, val, hasVal)
		if err != nil {
			return err
		}
		mo.RequesterPays = on
	case "use_cache":
		// s3fs: use_cache= (empty) means no cache directory.
		mo.UseCache = val
	case "multipart_size", "ensure_diskfree":
		// Both in MiB, as s3fs takes them.
		lo, hi := int64(5), int64(5<<10) // S3's part size limits
		if key == "ensure_diskfree" {
			lo, hi = 0, 1<<40
		}
		n, err := parseIntOption(key, val, hasVal, lo, hi)
		if err != nil {
			return err
		}
		if key == "multipart_size" {
			mo.PartSize = n << 20
		} else {
			mo.EnsureDiskFree = n << 20
		}
	case "parallel_count":
		n, err := parseIntOption(key, val, hasVal, 1, 1000)
		if err != nil {
			return err
		}
		mo.ParallelCount = int(n)
	case "retries":
		n, err := parseIntOption(key, val, hasVal, 0, 100)
		if err != nil {
			return err
		}
		r := int(n)
		mo.Retries = &r
	case "max_stat_cache_size":
		n, err := parseIntOption(key, val, hasVal, 0, 1<<40)
		if err != nil {
			return err
		}
		mo.MaxStatCacheSize = &n
	case "dbglevel":
		if err := needVal(); err != nil {
			return err
		}
		l, err := parseDbgLevel(val)
		if err != nil {
			return err
		}
		mo.DbgLevel = &l
	case "stat_cache_expire":
		if err := needVal(); err != nil {
			return err
		}
		d, err := parseSecondsOrDuration(val)
		if err != nil {
			return fmt.Errorf("mount option stat_cache_expire=%s: %w", val, err)
		}
		mo.StatTTL = &d
	default:
		switch {
		case s3fsIgnored[key]:
			mo.Ignored = append(mo.Ignored, key)
		case genericMountOptions[key] && !hasVal:
		default:
			return fmt.Errorf("unknown mount option %q (see bucketfs --help)", item)
		}
	}
	return nil
}

// parseOctalMode parses permission bits written in octal, with or without
// a leading 0 or 0o.
func parseOctalMode(s string) (uint32, error) {
	t := strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O")
	if t == "" {
		t = "0"
	}
	n, err := strconv.ParseUint(t, 8, 32)
	if err != nil || n > 0o7777 {
		return 0, fmt.Errorf("%q is not an octal mode (e.g. 0644)", s)
	}
	return uint32(n), nil
}

// parseSecondsOrDuration accepts s3fs's integer seconds as well as a Go
// duration such as "90s".
func parseSecondsOrDuration(s string) (time.Duration, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is neither a number of seconds nor a duration such as 30s", s)
	}
	return d, nil
}

// normalizeEndpoint checks an endpoint URL and strips trailing slashes.
// AWS's own S3 hosts mean "no custom endpoint" (the SDK then picks the
// regional, virtual-hosted endpoint); a regional AWS host also yields its
// region, because s3fs users often write url=https://s3.REGION.amazonaws.com.
func normalizeEndpoint(raw string) (endpoint, region string, err error) {
	s := strings.TrimRight(strings.TrimSpace(raw), "/")
	u, perr := url.Parse(s)
	if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", "", fmt.Errorf("%q is not an http:// or https:// URL", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("%q: an endpoint URL carries no user, query or fragment", raw)
	}
	if u.Port() != "" {
		if p, err := strconv.ParseUint(u.Port(), 10, 16); err != nil || p == 0 {
			return "", "", fmt.Errorf("%q: bad port", raw)
		}
	}
	host := strings.ToLower(u.Hostname())
	if u.Path == "" && u.Port() == "" {
		if host == "s3.amazonaws.com" {
			return "", "", nil
		}
		if r, ok := awsRegionalHost(host); ok {
			return "", r, nil
		}
	}
	return s, "", nil
}

// awsRegionalHost recognises s3.REGION.amazonaws.com and the legacy
// s3-REGION.amazonaws.com.
func awsRegionalHost(host string) (string, bool) {
	rest, ok := strings.CutSuffix(host, ".amazonaws.com")
	if !ok {
		return "", false
	}
	var r string
	switch {
	case strings.HasPrefix(rest, "s3."):
		r = rest[len("s3."):]
	case strings.HasPrefix(rest, "s3-"):
		r = rest[len("s3-"):]
	default:
		return "", false
	}
	// A region is letters, digits and dashes (us-east-1); anything with
	// more dots (dualstack, fips, accesspoints) stays a custom endpoint.
	if r == "" || strings.ContainsFunc(r, func(c rune) bool {
		return (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-'
	}) {
		return "", false
	}
	return r, true
}

// sseOption is what use_sse (or the --sse flags) asks for. The SSE-C key
// is read at start-up, not while parsing (parseArgs reads no files).
type sseOption struct {
	Mode     s3backend.SSEMode
	KMSKeyID string // SSE-KMS; "" means AWSSSEKMSID, else the store's default key
	KeyFile  string // SSE-C; "" means the AWSSSECKEYS variable
}

// parseUseSSE reads s3fs's use_sse values: none or 1 for SSE-S3;
// kmsid[:ID] (k[:ID]) for SSE-KMS; custom[:FILE] (c[:FILE]), or a bare
// FILE (s3fs's old form), for SSE-C.
func parseUseSSE(val string, hasVal bool) (*sseOption, error) {
	kind, arg, hasArg := strings.Cut(val, ":")
	switch {
	case !hasVal || val == "1":
		return &sseOption{Mode: s3backend.SSES3}, nil
	case val == "0":
		return nil, nil
	case kind == "kmsid" || kind == "k":
		if hasArg && arg == "" {
			return nil, fmt.Errorf("mount option use_sse=%s: empty KMS key id", val)
		}
		return &sseOption{Mode: s3backend.SSEKMS, KMSKeyID: arg}, nil
	case kind == "custom" || kind == "c":
		if hasArg && arg == "" {
			return nil, fmt.Errorf("mount option use_sse=%s: empty key file name", val)
		}
		return &sseOption{Mode: s3backend.SSEC, KeyFile: arg}, nil
	case val == "":
		return nil, fmt.Errorf("mount option use_sse=: want 1, kmsid[:ID] or custom[:FILE]")
	}
	return &sseOption{Mode: s3backend.SSEC, KeyFile: val}, nil
}

// parseCannedACL checks a canned ACL; private, S3's default, becomes ""
// so that no header is sent (buckets that disable ACLs refuse most).
func parseCannedACL(s string) (string, error) {
	acl := strings.ToLower(s)
	if !s3backend.ValidCannedACL(acl) {
		return "", fmt.Errorf("not a canned ACL (e.g. private, public-read, bucket-owner-full-control)")
	}
	if acl == "private" {
		return "", nil
	}
	return acl, nil
}

// parseOptBool reads a switch written bare or as =1/=0 (true/false).
func parseOptBool(key, val string, hasVal bool) (bool, error) {
	if !hasVal {
		return true, nil
	}
	b, err := strconv.ParseBool(val)
	if err != nil {
		return false, fmt.Errorf("mount option %s=%s: want %s, %s=1 or %s=0", key, val, key, key, key)
	}
	return b, nil
}

// parseIntOption reads a whole number in [lo, hi].
func parseIntOption(key, val string, hasVal bool, lo, hi int64) (int64, error) {
	if !hasVal || val == "" {
		return 0, fmt.Errorf("mount option %q needs a value (%s=...)", key, key)
	}
	n, err := strconv.ParseInt(val, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("mount option %s=%s: want a whole number from %d to %d", key, val, lo, hi)
	}
	return n, nil
}

// parseDbgLevel maps s3fs's dbglevel= names to log levels. s3fs's "crit"
// has no slog counterpart: it becomes error, the quietest level here.
func parseDbgLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "crit", "critical", "err", "error":
		return slog.LevelError, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "info", "information":
		return slog.LevelInfo, nil
	case "dbg", "debug":
		return slog.LevelDebug, nil
	}
	return 0, fmt.Errorf("mount option dbglevel=%s: want crit, err, warn, info or debug", s)
}

package main

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
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

	// Ignored lists the s3fs options that were accepted but mean nothing
	// to bucketfs, in order, for one warning line.
	Ignored []string
}

// s3fsIgnored are s3fs (and FUSE) options that scripts pass and that have
// no meaning here: bucketfs has its own caching, retry and multipart
// logic. They are accepted so that an s3fs command line keeps working, and
// named in a warning so nobody believes they took effect.
var s3fsIgnored = map[string]bool{
	"use_cache": true, "del_cache": true, "dbglevel": true, "retries": true,
	"multipart_size": true, "multipart_copy_size": true, "parallel_count": true,
	"max_stat_cache_size": true,
	"complement_stat":     true, "compat_dir": true, "notsup_compat_dir": true,
	"default_acl": true, "sigv2": true, "sigv4": true,
	"nomultipart": true, "curldbg": true, "connect_timeout": true,
	"readwrite_timeout": true, "list_object_max_keys": true, "max_dirty_data": true,
	"ensure_diskfree": true, "fake_diskfree": true, "multireq_max": true,
	"singlepart_copy_limit": true, "stat_cache_interval_expire": true,
	"check_cache_dir_exist": true, "enable_content_md5": true, "ssl_verify_hostname": true,
	"storage_class": true, "use_sse": true, "use_rrs": true, "instance_name": true,
	"cipher_suites": true, "noxmlns": true, "nocopyapi": true, "norenameapi": true,
	"use_xattr": true, "listobjectsv2": true, "requester_pays": true, "streamupload": true,
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

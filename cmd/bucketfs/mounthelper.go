package main

// mount(8) runs /sbin/mount.TYPE for "mount -t TYPE" and for fstab lines
// of that type; for "fuse.bucketfs" it looks for /sbin/mount.fuse.bucketfs.
// `make install` links that name to the bucketfs binary, which then reads
// mount's argument convention:
//
//	mount.fuse.bucketfs SOURCE DIR [-s] [-f] [-n] [-v] [-N NS] [-o OPTIONS] [-t TYPE]
//
// and runs as "bucketfs [FLAGS] SOURCE DIR -o OPTIONS" would: in the
// background, exiting 0 once the mount answers, as mount(8) expects of a
// helper. An fstab line therefore reads
//
//	mybucket  /mnt/data  fuse.bucketfs  _netdev,allow_other,url=https://...,passwd_file=/root/.passwd-s3fs  0 0
//
// Because a helper only receives -o options, bucketfs's own flags can be
// given there too, with underscores: log_file=, metrics_addr=,
// shutdown_timeout=, ready_file=...

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// mountHelperNames are the program names under which bucketfs behaves as
// a mount helper: for "-t fuse.bucketfs" and for "-t bucketfs".
var mountHelperNames = map[string]bool{
	"mount.fuse.bucketfs": true,
	"mount.bucketfs":      true,
}

func isMountHelper(argv0 string) bool { return mountHelperNames[filepath.Base(argv0)] }

// helperFlagOptions are the -o names that become bucketfs flags in helper
// mode, and whether the flag takes a value. s3fs-compatible options (url=,
// uid=, allow_other...) are not here: they stay -o options.
var helperFlagOptions = map[string]bool{
	"log_file": true, "log_level": true, "log_format": true,
	"metrics_addr": true, "ready_file": true,
	"shutdown_timeout": true, "upload_timeout": true,
	"recovery_dir": true, "staging_dir": true, "stat_cache_ttl": true, "negative_ttl": true,
	"region": true, "file_mode": true, "dir_mode": true,
	"debug_fuse": false, "insecure_skip_verify": false, "read_only": false,
}

// mountHelperArgs turns mount(8)'s helper arguments into a bucketfs command
// line. fake reports mount's -f (do everything but mount).
func mountHelperArgs(args []string) (out []string, fake bool, err error) {
	var pos, opts []string
	verbose := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		value := func(flag string) (string, error) {
			if len(a) > 2 {
				return a[2:], nil // -oOPTS
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("%s needs a value", flag)
			}
			i++
			return args[i], nil
		}
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-o"):
			v, err := value("-o")
			if err != nil {
				return nil, false, err
			}
			opts = append(opts, v)
		case strings.HasPrefix(a, "-t"):
			// The type (fuse.bucketfs) is what brought mount here.
			if _, err := value("-t"); err != nil {
				return nil, false, err
			}
		case strings.HasPrefix(a, "-N"):
			return nil, false, errors.New("mounting in another mount namespace (-N) is not supported")
		case len(a) > 1 && a[0] == '-':
			for _, c := range a[1:] {
				switch c {
				case 'f':
					fake = true
				case 'v':
					verbose = true
				case 's', 'n':
					// sloppy, no mtab: nothing to do
				default:
					return nil, false, fmt.Errorf("unknown option -%c (mount passes -s, -f, -n, -v, -o, -t)", c)
				}
			}
		default:
			pos = append(pos, a)
		}
	}
	if len(pos) != 2 {
		return nil, false, fmt.Errorf("expected SOURCE and MOUNTPOINT, got %d argument(s)", len(pos))
	}
	// Old fuse fstab lines write the source as "bucketfs#BUCKET".
	source := strings.TrimPrefix(pos[0], "bucketfs#")

	var flags, keep []string
	for _, o := range opts {
		for _, item := range strings.Split(o, ",") {
			item = strings.TrimSpace(item)
			key, val, hasVal := strings.Cut(item, "=")
			takesValue, isFlag := helperFlagOptions[key]
			switch {
			case item == "":
			case strings.HasPrefix(key, "x-") || key == "comment" || (key == "user" && hasVal):
				// For userspace tools (systemd, mount's own bookkeeping),
				// never for the filesystem.
			case !isFlag:
				keep = append(keep, item)
			case takesValue:
				if !hasVal || val == "" {
					return nil, false, fmt.Errorf("mount option %s needs a value (%s=...)", key, key)
				}
				flags = append(flags, "--"+strings.ReplaceAll(key, "_", "-")+"="+val)
			default:
				if hasVal {
					return nil, false, fmt.Errorf("mount option %s takes no value", key)
				}
				flags = append(flags, "--"+strings.ReplaceAll(key, "_", "-"))
			}
		}
	}
	out = append(flags, source, pos[1])
	if len(keep) > 0 {
		out = append(out, "-o", strings.Join(keep, ","))
	}
	if verbose {
		// No secrets: bucketfs takes none on its command line.
		fmt.Fprintf(os.Stderr, "mount.fuse.bucketfs: bucketfs %s\n", strings.Join(out, " "))
	}
	return out, fake, nil
}

package test

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// posixSkips are the go-fuse posixtest cases that cannot hold on bucketfs,
// with the reason (listed in README's semantics section). Cases that could
// hold and fail are bugs, not skips.
var posixSkips = map[string]string{
	"Link":                "hard links: S3 keys cannot share an object (ENOTSUP)",
	"LinkUnlinkRename":    "needs hard links (ENOTSUP on bucketfs)",
	"FcntlFlockLocksFile": "file locks are not supported: a lock cannot span the mounts of a bucket",
	"Fallocate":           "fallocate is not supported (ENOTSUP): objects have no preallocated blocks",
	"FallocateKeepSize":   "fallocate is not supported (ENOTSUP)",
	"Tmpfile":             "O_TMPFILE is not supported (ENOTSUP): an object needs a name",
}

// TestReliabilityPOSIX runs go-fuse's posixtest suite against a bucketfs
// mount, each case in a fresh directory of its own mount.
func TestReliabilityPOSIX(t *testing.T) {
	needSuite(t)
	names := make([]string, 0, len(posixtest.All))
	for name := range posixtest.All {
		names = append(names, name)
	}
	sort.Strings(names)
	m := mount(t)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			if why, ok := posixSkips[name]; ok {
				t.Skip(why)
			}
			dir := filepath.Join(m.Dir, name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			posixtest.All[name](t, dir)
		})
	}
}

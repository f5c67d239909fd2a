package fs

import (
	"strings"
	"syscall"
)

// maxKeyLen is the longest key S3 stores, in bytes of UTF-8, the mount
// prefix included.
const maxKeyLen = 1024

// keyFits tells whether key (relative to the mount prefix) can be stored
// as an object of kind k: a directory is its marker, key + "/".
func (f *FS) keyFits(key string, k kind) bool {
	n := len(key)
	if k == kindDir {
		n++
	}
	return f.prefixLen()+n <= maxKeyLen
}

// prefixLen is the length of the mount prefix as the store writes it
// ("" or ending in "/", leading slashes dropped).
func (f *FS) prefixLen() int {
	p := strings.TrimLeft(f.cfg.Prefix, "/")
	if p != "" && !strings.HasSuffix(p, "/") {
		return len(p) + 1
	}
	return len(p)
}

// newNameErrno checks name for a new child of n of kind k: ENAMETOOLONG
// when the kernel's limit on a name or S3's on a key is passed, so that
// the create fails at once, rather than its upload at close (EIO, and a
// file that can never be stored).
func (n *Node) newNameErrno(name string, k kind) syscall.Errno {
	if len(name) > maxNameLen || !n.fsys.keyFits(n.childKey(name), k) {
		return syscall.ENAMETOOLONG
	}
	return 0
}

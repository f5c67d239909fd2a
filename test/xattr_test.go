package test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Issue 11/12: extended attributes in s3fs's format (x-amz-meta-xattr, a
// percent-encoded {"name":"base64(value)"} object), so that s3fs with
// use_xattr and bucketfs read each other's.

// s3fsXattrKeyValue is the header s3fs writes for {"key":"value"} (from
// s3fs's own test suite).
const s3fsXattrKeyValue = "%7B%22key%22%3A%22dmFsdWU%3D%22%7D"

func getxattr(t *testing.T, path, name string) []byte {
	t.Helper()
	sz, err := unix.Getxattr(path, name, nil)
	if err != nil {
		t.Fatalf("getxattr(%s, %s, size probe): %v", path, name, err)
	}
	buf := make([]byte, sz)
	n, err := unix.Getxattr(path, name, buf)
	if err != nil {
		t.Fatalf("getxattr(%s, %s): %v", path, name, err)
	}
	return buf[:n]
}

func setxattr(t *testing.T, path, name, value string) {
	t.Helper()
	if err := unix.Setxattr(path, name, []byte(value), 0); err != nil {
		t.Fatalf("setxattr(%s, %s): %v", path, name, err)
	}
}

func listxattr(t *testing.T, path string) []string {
	t.Helper()
	sz, err := unix.Listxattr(path, nil)
	if err != nil {
		t.Fatalf("listxattr(%s): %v", path, err)
	}
	buf := make([]byte, sz)
	n, err := unix.Listxattr(path, buf)
	if err != nil {
		t.Fatalf("listxattr(%s): %v", path, err)
	}
	var names []string
	for _, s := range strings.Split(string(buf[:n]), "\x00") {
		if s != "" {
			names = append(names, s)
		}
	}
	return names
}

// TestXattrFile: get, set, list and remove on a file with Linux's flag and
// errno semantics; the object carries them in s3fs's header, keeps its
// foreign metadata and its mtime, and its ctime moves.
func TestXattrFile(t *testing.T) {
	t.Parallel()
	needSuite(t)
	m := mount(t, withTTL(time.Second))
	m.Put("f", []byte("data"), map[string]string{"foreign": "keepme", "mtime": "1000000000", "ctime": "1000000000"})
	p := m.Path("f")
	before := lstat(t, p)

	_, err := unix.Getxattr(p, "user.k1", make([]byte, 16))
	wantErrno(t, "getxattr of a missing name", err, syscall.ENODATA)
	setxattr(t, p, "user.k1", "v1")
	setxattr(t, p, "user.k2", "value two")
	if got := getxattr(t, p, "user.k1"); string(got) != "v1" {
		t.Errorf("user.k1 = %q, want v1", got)
	}
	_, err = unix.Getxattr(p, "user.k2", make([]byte, 3))
	wantErrno(t, "getxattr into a small buffer", err, syscall.ERANGE)
	if got := listxattr(t, p); !slices.Equal(got, []string{"user.k1", "user.k2"}) {
		t.Errorf("listxattr = %q", got)
	}
	_, err = unix.Listxattr(p, make([]byte, 3))
	wantErrno(t, "listxattr into a small buffer", err, syscall.ERANGE)
	wantErrno(t, "XATTR_CREATE of an existing name", unix.Setxattr(p, "user.k1", []byte("x"), unix.XATTR_CREATE), syscall.EEXIST)
	wantErrno(t, "XATTR_REPLACE of a missing name", unix.Setxattr(p, "user.nope", []byte("x"), unix.XATTR_REPLACE), syscall.ENODATA)
	if err := unix.Setxattr(p, "user.k1", []byte("v1b"), unix.XATTR_REPLACE); err != nil {
		t.Fatalf("XATTR_REPLACE: %v", err)
	}
	if err := unix.Removexattr(p, "user.k2"); err != nil {
		t.Fatalf("removexattr: %v", err)
	}
	wantErrno(t, "removexattr of a missing name", unix.Removexattr(p, "user.k2"), syscall.ENODATA)
	wantErrno(t, "setxattr in trusted.", unix.Setxattr(p, "trusted.x", []byte("x"), 0), syscall.ENOTSUP, syscall.EPERM)

	after := lstat(t, p)
	if after.Mtim != before.Mtim {
		t.Errorf("mtime moved: %v -> %v", before.Mtim, after.Mtim)
	}
	if after.Ctim.Sec <= before.Ctim.Sec {
		t.Errorf("ctime did not move: %v -> %v", before.Ctim, after.Ctim)
	}
	h := m.Head("f")
	// {"user.k1":"djFi"} as s3fs writes it.
	if got, want := h.Metadata["xattr"], "%7B%22user.k1%22%3A%22djFi%22%7D"; got != want {
		t.Errorf("x-amz-meta-xattr = %q, want %q", got, want)
	}
	if h.Metadata["foreign"] != "keepme" || h.Metadata["mtime"] != "1000000000" {
		t.Errorf("metadata after setxattr: %v", h.Metadata)
	}
	if got := string(m.Get("f")); got != "data" {
		t.Errorf("content after setxattr: %q", got)
	}
	if err := unix.Removexattr(p, "user.k1"); err != nil {
		t.Fatal(err)
	}
	if x, ok := m.Head("f").Metadata["xattr"]; ok {
		t.Errorf("x-amz-meta-xattr %q left after the last attribute went", x)
	}
}

// TestXattrS3fsWritten: an object another tool wrote with an s3fs-format
// header reads back (the name without a namespace, as s3fs's suite uses);
// a value too big for S3's 2 KiB of user metadata is E2BIG, one that fits
// only without the others ENOSPC. Mounted with s3fs's -o use_xattr, which
// is accepted.
func TestXattrS3fsWritten(t *testing.T) {
	t.Parallel()
	needSuite(t)
	m := mount(t, withO("use_xattr"))
	m.Put("s3fs", []byte("x"), map[string]string{"xattr": s3fsXattrKeyValue})
	p := m.Path("s3fs")
	// Seen by a listing first (which carries no headers): a set must
	// still keep what the object has.
	if _, err := os.ReadDir(m.Dir); err != nil {
		t.Fatal(err)
	}
	setxattr(t, p, "user.new", "n")
	if x := m.Head("s3fs").Metadata["xattr"]; !strings.Contains(x, "%22key%22") || !strings.Contains(x, "user.new") {
		t.Errorf("x-amz-meta-xattr after a set on a listed file = %q", x)
	}
	if err := unix.Removexattr(p, "user.new"); err != nil {
		t.Fatal(err)
	}
	if got := getxattr(t, p, "key"); string(got) != "value" {
		t.Errorf("key = %q, want value", got)
	}
	if got := listxattr(t, p); !slices.Equal(got, []string{"key"}) {
		t.Errorf("listxattr = %q", got)
	}
	if err := unix.Setxattr(p, "user.big", bytes.Repeat([]byte("b"), 4096), 0); err == nil {
		t.Fatal("a 4 KiB value was accepted")
	} else {
		wantErrno(t, "a 4 KiB value", err, syscall.E2BIG)
	}
	setxattr(t, p, "user.a", strings.Repeat("a", 900))
	wantErrno(t, "a value that fits only alone", unix.Setxattr(p, "user.b", bytes.Repeat([]byte("b"), 900), 0), syscall.ENOSPC)
	if got := getxattr(t, p, "key"); string(got) != "value" {
		t.Errorf("key after the refused set = %q", got)
	}
}

// TestXattrDirsAndRemount: directories with a marker and implicit ones
// (which get a marker) carry xattrs; all survive a remount.
func TestXattrDirsAndRemount(t *testing.T) {
	t.Parallel()
	needSuite(t)
	m := mount(t)
	if err := os.Mkdir(m.Path("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	m.Put("implicit/f", []byte("x"), nil)
	writeFile(t, m.Path("file"), []byte("hello"))
	setxattr(t, m.Path("d"), "user.dir", "marker")
	setxattr(t, m.Path("implicit"), "user.dir", "implicit")
	setxattr(t, m.Path("file"), "user.bin", "\x00\x01\xff")
	if x := m.Head("implicit/").Metadata["xattr"]; !strings.Contains(x, "user.dir") {
		t.Errorf("implicit/ marker xattr = %q", x)
	}
	wantErrno(t, "setxattr on the mount root", unix.Setxattr(m.Dir, "user.x", []byte("x"), 0), syscall.ENOTSUP)

	m.Unmount()
	m2 := mount(t, onBucket(m.Bucket))
	for name, want := range map[string]string{"d": "marker", "implicit": "implicit"} {
		if got := getxattr(t, m2.Path(name), "user.dir"); string(got) != want {
			t.Errorf("%s: user.dir = %q, want %q", name, got, want)
		}
	}
	if got := getxattr(t, m2.Path("file"), "user.bin"); string(got) != "\x00\x01\xff" {
		t.Errorf("file: user.bin = %q", got)
	}
	if got := string(readFile(t, m2.Path("file"))); got != "hello" {
		t.Errorf("file content %q", got)
	}
}

// TestXattrWhileWriting: a file still open for writing takes its xattrs
// in its upload, and its staging sidecar records them meanwhile (a crash
// keeps them).
func TestXattrWhileWriting(t *testing.T) {
	t.Parallel()
	needSuite(t)
	staging := t.TempDir()
	m := mount(t, withFlags("--staging-dir", staging))
	f, err := os.Create(m.Path("w"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("written")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fsetxattr(int(f.Fd()), "user.w", []byte("pending"), 0); err != nil {
		t.Fatalf("fsetxattr: %v", err)
	}
	if got := getxattr(t, m.Path("w"), "user.w"); string(got) != "pending" {
		t.Errorf("user.w while open = %q", got)
	}
	sidecars, _ := filepath.Glob(filepath.Join(staging, "*", "*.meta"))
	if more, _ := filepath.Glob(filepath.Join(staging, "*.meta")); len(more) > 0 {
		sidecars = append(sidecars, more...)
	}
	found := false
	for _, sc := range sidecars {
		b, err := os.ReadFile(sc)
		if err != nil {
			continue
		}
		var side struct {
			Key     string            `json:"key"`
			Foreign map[string]string `json:"foreign"`
		}
		if json.Unmarshal(b, &side) == nil && strings.HasSuffix(side.Key, "w") && strings.Contains(side.Foreign["xattr"], "user.w") {
			found = true
		}
	}
	if !found {
		t.Errorf("no sidecar under %s records the xattr (sidecars: %q)", staging, sidecars)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	h := m.Head("w")
	if x := h.Metadata["xattr"]; !strings.Contains(x, "user.w") {
		t.Errorf("x-amz-meta-xattr after close = %q", x)
	}
	if got := string(m.Get("w")); got != "written" {
		t.Errorf("content %q", got)
	}
}

// TestXattrPosixACL: setfacl/getfacl work without the kernel enforcing
// ACLs (the mode bits stay the access check); a directory's default ACL
// is inherited by new files and directories, and survives a rename.
func TestXattrPosixACL(t *testing.T) {
	t.Parallel()
	needSuite(t)
	for _, tool := range []string{"setfacl", "getfacl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (package acl)", tool)
		}
	}
	m := mount(t)
	d := m.Path("acl")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, m.Dir, "setfacl", "-m", "u:root:rwx", "acl")
	run(t, m.Dir, "setfacl", "-d", "-m", "u:root:r-x", "acl")
	out := run(t, m.Dir, "getfacl", "acl")
	if !strings.Contains(out, "\nuser:root:rwx") || !strings.Contains(out, "default:user:root:r-x") {
		t.Fatalf("getfacl after setfacl:\n%s", out)
	}
	writeFile(t, filepath.Join(d, "f"), []byte("x"))
	if err := os.Mkdir(filepath.Join(d, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out := run(t, m.Dir, "getfacl", "acl/f"); !strings.Contains(out, "\nuser:root:r-x") {
		t.Errorf("new file did not inherit the default ACL:\n%s", out)
	}
	if out := run(t, m.Dir, "getfacl", "acl/sub"); !strings.Contains(out, "default:user:root:r-x") {
		t.Errorf("new directory did not inherit the default ACL:\n%s", out)
	}
	if err := os.Rename(d, m.Path("acl2")); err != nil {
		t.Fatal(err)
	}
	if out := run(t, m.Dir, "getfacl", "acl2"); !strings.Contains(out, "\nuser:root:rwx") {
		t.Errorf("ACL lost in the rename:\n%s", out)
	}
	// An ACL that says no more than a mode is that mode (cp -p sets one).
	writeFile(t, m.Path("plain"), []byte("x"))
	run(t, m.Dir, "setfacl", "-m", "u::rwx,g::r-x,o::--x", "plain")
	if st := lstat(t, m.Path("plain")); st.Mode&0o777 != 0o751 {
		t.Errorf("after a mode-only setfacl: mode %#o, want 0751", st.Mode&0o777)
	}
	if x, ok := m.Head("plain").Metadata["xattr"]; ok || m.Head("plain").Metadata["mode"] != "33257" {
		t.Errorf("after a mode-only setfacl: xattr %q, mode %q; want no xattr, mode 33257", x, m.Head("plain").Metadata["mode"])
	}
	run(t, m.Dir, "setfacl", "-b", "acl2")
	if out := run(t, m.Dir, "getfacl", "acl2"); strings.Contains(out, "user:root") {
		t.Errorf("setfacl -b left:\n%s", out)
	}
}

// TestXattrOff: --no-xattr turns them off (ENOTSUP), for workloads of many
// small writes (the kernel then stops asking for security.capability
// before each write); what the object carries is left alone.
func TestXattrOff(t *testing.T) {
	t.Parallel()
	needSuite(t)
	m := mount(t, withFlags("--no-xattr"))
	m.Put("f", []byte("x"), map[string]string{"xattr": s3fsXattrKeyValue})
	p := m.Path("f")
	wantErrno(t, "setxattr with --no-xattr", unix.Setxattr(p, "user.k", []byte("v"), 0), syscall.ENOTSUP)
	_, err := unix.Getxattr(p, "key", make([]byte, 16))
	wantErrno(t, "getxattr with --no-xattr", err, syscall.ENOTSUP)
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if x := m.Head("f").Metadata["xattr"]; x != s3fsXattrKeyValue {
		t.Errorf("x-amz-meta-xattr after chmod = %q, want it kept", x)
	}
}

package test

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sys/unix"
)

// meta returns user metadata key k (without x-amz-meta-) of a HEAD,
// matching the name case-insensitively.
func meta(h *s3.HeadObjectOutput, k string) (string, bool) {
	for mk, v := range h.Metadata {
		if strings.EqualFold(mk, k) {
			return v, true
		}
	}
	return "", false
}

var decimalRE = regexp.MustCompile(`^[0-9]+$`)

// metaUint parses a decimal metadata value, failing the test if it is
// missing or not a plain decimal number.
func metaUint(t *testing.T, h *s3.HeadObjectOutput, what, k string) uint64 {
	t.Helper()
	v, ok := meta(h, k)
	if !ok {
		t.Errorf("%s: no x-amz-meta-%s (metadata %v)", what, k, h.Metadata)
		return 0
	}
	if !decimalRE.MatchString(v) {
		t.Errorf("%s: x-amz-meta-%s = %q, want a decimal number", what, k, v)
		return 0
	}
	n, _ := strconv.ParseUint(v, 10, 64)
	return n
}

var mtimeRE = regexp.MustCompile(`^([0-9]+)(\.([0-9]{1,9}))?$`)

// metaMtime parses x-amz-meta-mtime ("sec" or "sec.nsec").
func metaMtime(t *testing.T, h *s3.HeadObjectOutput, what string) time.Time {
	t.Helper()
	return metaTime(t, h, what, "mtime")
}

// metaTime parses x-amz-meta-K (mtime, atime, ctime: "sec" or "sec.nsec").
func metaTime(t *testing.T, h *s3.HeadObjectOutput, what, k string) time.Time {
	t.Helper()
	v, ok := meta(h, k)
	if !ok {
		t.Errorf("%s: no x-amz-meta-%s (metadata %v)", what, k, h.Metadata)
		return time.Time{}
	}
	mm := mtimeRE.FindStringSubmatch(v)
	if mm == nil {
		t.Errorf("%s: x-amz-meta-%s = %q, want seconds[.nanoseconds]", what, k, v)
		return time.Time{}
	}
	sec, _ := strconv.ParseInt(mm[1], 10, 64)
	var nsec int64
	if mm[3] != "" {
		frac := mm[3] + strings.Repeat("0", 9-len(mm[3]))
		nsec, _ = strconv.ParseInt(frac, 10, 64)
	}
	return time.Unix(sec, nsec)
}

// TestRenameFile: rename moves the object, also onto an existing file and
// while the file is open with unwritten data.
func TestRenameFile(t *testing.T) {
	t.Parallel()
	m := mount(t)
	a := randBytes(20, 5000)
	writeFile(t, m.Path("a"), a)
	if err := os.Rename(m.Path("a"), m.Path("b")); err != nil {
		t.Fatalf("rename a b: %v", err)
	}
	sameBytes(t, "b after rename", m.Get("b"), a)
	if m.Exists("a") {
		t.Error("object a still exists after rename")
	}
	wantErrno(t, "stat a after rename", syscall.Lstat(m.Path("a"), new(syscall.Stat_t)), syscall.ENOENT)
	sameBytes(t, "b read back", readFile(t, m.Path("b")), a)

	// Onto an existing file.
	writeFile(t, m.Path("c"), []byte("old c"))
	if err := os.Rename(m.Path("b"), m.Path("c")); err != nil {
		t.Fatalf("rename b c (c exists): %v", err)
	}
	sameBytes(t, "c after rename onto it", m.Get("c"), a)
	sameBytes(t, "c read back", readFile(t, m.Path("c")), a)
	if m.Exists("b") {
		t.Error("object b still exists after rename onto c")
	}

	// Into another directory.
	if err := os.Mkdir(m.Path("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(m.Path("c"), m.Path("d/c2")); err != nil {
		t.Fatalf("rename c d/c2: %v", err)
	}
	sameBytes(t, "d/c2", m.Get("d/c2"), a)

	// An open file with unwritten data, renamed before close.
	f, err := os.Create(m.Path("open-src"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("written before rename;")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(m.Path("open-src"), m.Path("open-dst")); err != nil {
		t.Fatalf("rename of open file: %v", err)
	}
	if _, err := f.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close renamed file: %v", err)
	}
	sameBytes(t, "open-dst", m.Get("open-dst"), []byte("written before rename;after"))
	if m.Exists("open-src") {
		t.Error("object open-src exists after the open file was renamed away")
	}
	if keys := m.Keys(""); strings.Join(keys, " ") != "d/ d/c2 open-dst" {
		t.Errorf("bucket = %v, want [d/ d/c2 open-dst]", keys)
	}
}

// TestRenameDirectory: renaming a directory moves every key below it,
// including implicit sub-directories, and leaves nothing at the old prefix.
func TestRenameDirectory(t *testing.T) {
	t.Parallel()
	m := mount(t)
	files := map[string][]byte{
		"f1":              randBytes(21, 1000),
		"sub/f2":          randBytes(22, 20000),
		"sub/deeper/f3":   []byte("three"),
		"imp/f4":          []byte("four, put by the SDK in an implicit dir"),
		"imp/nested/f5":   []byte("five"),
		"with space/f 6%": []byte("six"),
	}
	// The SDK's objects first: the mount trusts what it knows of a
	// directory it created itself for --stat-cache-ttl.
	for name, b := range files {
		if strings.HasPrefix(name, "imp/") {
			m.Put("src/"+name, b, nil)
		}
	}
	for name, b := range files {
		if strings.HasPrefix(name, "imp/") {
			continue
		}
		if err := os.MkdirAll(m.Path("src/"+name[:max(strings.LastIndex(name, "/"), 0)]), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, m.Path("src/"+name), b)
	}
	if err := os.MkdirAll(m.Path("src/sub/deeper"), 0o755); err != nil {
		t.Fatal(err)
	}
	lstat(t, m.Path("src/imp/f4"))
	if err := os.Rename(m.Path("src"), m.Path("dst")); err != nil {
		t.Fatalf("rename src dst: %v", err)
	}
	if keys := m.Keys("src/"); len(keys) != 0 {
		t.Errorf("keys left under src/: %v", keys)
	}
	keys := m.Keys("")
	for _, k := range keys {
		if !strings.HasPrefix(k, "dst/") {
			t.Errorf("unexpected key %q after rename", k)
		}
	}
	for name, b := range files {
		sameBytes(t, "dst/"+name, m.Get("dst/"+name), b)
		sameBytes(t, "read dst/"+name, readFile(t, m.Path("dst/"+name)), b)
	}
	for _, marker := range []string{"dst/", "dst/sub/", "dst/sub/deeper/"} {
		if !m.Exists(marker) {
			t.Errorf("directory marker %s missing after rename (keys %v)", marker, keys)
		}
	}
	wantErrno(t, "stat src after rename", syscall.Lstat(m.Path("src"), new(syscall.Stat_t)), syscall.ENOENT)
	ents, err := os.ReadDir(m.Path("dst"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if err != nil || strings.Join(names, ",") != "f1,imp,sub,with space" {
		t.Errorf("readdir dst = %v, %v; want [f1 imp sub with space]", names, err)
	}
	ents, _ = os.ReadDir(m.Dir)
	if len(ents) != 1 || ents[0].Name() != "dst" {
		t.Errorf("readdir root after rename = %v, want [dst]", ents)
	}
}

// TestSymlink: symlink stores the target as the body with S_IFLNK in
// x-amz-meta-mode; readlink returns it; links resolve.
func TestSymlink(t *testing.T) {
	t.Parallel()
	m := mount(t)
	writeFile(t, m.Path("target.txt"), []byte("pointed at"))
	if err := os.Symlink("target.txt", m.Path("link")); err != nil {
		t.Fatalf("symlink: %v", err)
	}
	run(t, m.Dir, "ln", "-s", "../elsewhere/x y", "dangling")

	for name, target := range map[string]string{"link": "target.txt", "dangling": "../elsewhere/x y"} {
		got, err := os.Readlink(m.Path(name))
		if err != nil || got != target {
			t.Errorf("readlink %s = %q, %v; want %q", name, got, err, target)
		}
		st := lstat(t, m.Path(name))
		if st.Mode&syscall.S_IFMT != syscall.S_IFLNK {
			t.Errorf("lstat %s: mode %#o, want a symlink", name, st.Mode)
		}
		if st.Size != int64(len(target)) {
			t.Errorf("lstat %s: size %d, want %d", name, st.Size, len(target))
		}
		sameBytes(t, name+" object body", m.Get(name), []byte(target))
		h := m.Head(name)
		if mode := metaUint(t, h, name, "mode"); mode&syscall.S_IFMT != syscall.S_IFLNK {
			t.Errorf("%s: x-amz-meta-mode %#o lacks S_IFLNK", name, mode)
		}
	}
	sameBytes(t, "read through link", readFile(t, m.Path("link")), []byte("pointed at"))

	// After a remount (nothing cached) the link is still a link.
	m.Unmount()
	m2 := mount(t, onBucket(m.Bucket))
	if got, err := os.Readlink(m2.Path("link")); err != nil || got != "target.txt" {
		t.Errorf("readlink after remount = %q, %v", got, err)
	}
}

// TestChmodChownUtimes: chmod, chown and utimes persist in the object's
// metadata and survive a remount.
func TestChmodChownUtimes(t *testing.T) {
	t.Parallel()
	m := mount(t)
	writeFile(t, m.Path("f"), []byte("attrs"))
	writeFile(t, m.Path("g"), []byte("touched"))
	if err := os.Mkdir(m.Path("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(m.Path("f"), 0o600); err != nil {
		t.Fatalf("chmod: %v", err)
	}
	if err := os.Chown(m.Path("f"), 1234, 5678); err != nil {
		t.Fatalf("chown: %v", err)
	}
	fMtime := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	if err := os.Chtimes(m.Path("f"), fMtime, fMtime); err != nil {
		t.Fatalf("utimes: %v", err)
	}
	run(t, m.Dir, "touch", "-d", "2020-01-02 03:04:05 UTC", "g")
	gMtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	run(t, m.Dir, "chmod", "0750", "g")
	run(t, m.Dir, "chown", "42:43", "d")
	run(t, m.Dir, "chmod", "0700", "d")

	type want struct {
		name, key string
		mode      uint32
		uid, gid  uint32
		mtime     time.Time // zero: not checked
	}
	wants := []want{
		{"f", "f", syscall.S_IFREG | 0o600, 1234, 5678, fMtime},
		{"g", "g", syscall.S_IFREG | 0o750, 0, 0, gMtime},
		{"d", "d/", syscall.S_IFDIR | 0o700, 42, 43, time.Time{}},
	}
	checkStat := func(m *Mount, when string) {
		t.Helper()
		for _, w := range wants {
			st := lstat(t, m.Path(w.name))
			if st.Mode != w.mode || st.Uid != w.uid || st.Gid != w.gid {
				t.Errorf("%s %s: mode %#o uid %d gid %d, want %#o %d %d", when, w.name, st.Mode, st.Uid, st.Gid, w.mode, w.uid, w.gid)
			}
			if !w.mtime.IsZero() && !time.Unix(st.Mtim.Unix()).Equal(w.mtime) {
				t.Errorf("%s %s: mtime %v, want %v", when, w.name, time.Unix(st.Mtim.Unix()).UTC(), w.mtime)
			}
		}
	}
	checkStat(m, "before remount:")
	for _, w := range wants {
		h := m.Head(w.key)
		if mode := metaUint(t, h, w.key, "mode"); mode != uint64(w.mode) {
			t.Errorf("%s: x-amz-meta-mode %d (%#o), want %d (%#o)", w.key, mode, mode, w.mode, w.mode)
		}
		if uid := metaUint(t, h, w.key, "uid"); uid != uint64(w.uid) {
			t.Errorf("%s: x-amz-meta-uid %d, want %d", w.key, uid, w.uid)
		}
		if gid := metaUint(t, h, w.key, "gid"); gid != uint64(w.gid) {
			t.Errorf("%s: x-amz-meta-gid %d, want %d", w.key, gid, w.gid)
		}
		if !w.mtime.IsZero() {
			if mt := metaMtime(t, h, w.key); !mt.Equal(w.mtime) {
				t.Errorf("%s: x-amz-meta-mtime %v, want %v", w.key, mt.UTC(), w.mtime)
			}
		}
	}
	sameBytes(t, "f content after attribute changes", m.Get("f"), []byte("attrs"))

	m.Unmount()
	m2 := mount(t, onBucket(m.Bucket))
	checkStat(m2, "after remount:")
}

// TestStatfs: statfs answers (df, stat -f) with usable numbers.
func TestStatfs(t *testing.T) {
	t.Parallel()
	m := mount(t)
	var st unix.Statfs_t
	if err := unix.Statfs(m.Dir, &st); err != nil {
		t.Fatalf("statfs: %v", err)
	}
	if st.Bsize <= 0 || st.Blocks == 0 || st.Bavail == 0 {
		t.Errorf("statfs: bsize %d blocks %d bavail %d; want all positive", st.Bsize, st.Blocks, st.Bavail)
	}
	if st.Namelen < 255 {
		t.Errorf("statfs: namelen %d, want >= 255", st.Namelen)
	}
	// As s3fs shows it (its test_statvfs): total = free = available, the
	// staging disk's available space; nothing used.
	if st.Blocks != st.Bavail || st.Bfree != st.Bavail {
		t.Errorf("statfs: blocks %d bfree %d bavail %d; want all equal", st.Blocks, st.Bfree, st.Bavail)
	}
	out := run(t, "/", "df", m.Dir)
	if !strings.Contains(out, m.Dir) {
		t.Errorf("df output does not name the mount:\n%s", out)
	}
	if f := strings.Fields(out[strings.Index(out, "\n")+1:]); len(f) < 4 || f[1] != f[3] || f[2] != "0" {
		t.Errorf("df: want Total == Available and Used 0:\n%s", out)
	}
	run(t, "/", "stat", "-f", m.Dir)
}

// TestHardLinkRefused: link(2) of a file fails with ENOTSUP, as on s3fs
// (whose suite wants ln to say "Operation not supported"), link of a
// directory with EPERM (the kernel's answer), and neither creates anything.
func TestHardLinkRefused(t *testing.T) {
	t.Parallel()
	m := mount(t)
	writeFile(t, m.Path("a"), []byte("original"))
	out, err := tryRun(m.Dir, "ln", "a", "b")
	if err == nil || !strings.Contains(out, "Operation not supported") {
		t.Errorf("ln a b: %v: %s", err, out)
	}
	wantErrno(t, "link(2)", unix.Link(m.Path("a"), m.Path("c")), unix.ENOTSUP)
	if err := os.Mkdir(m.Path("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "link(2) of a directory", unix.Link(m.Path("d"), m.Path("e")), unix.EPERM)
	wantErrno(t, "link(2) to a 256-byte name", unix.Link(m.Path("a"), m.Path(strings.Repeat("n", 256))), unix.ENAMETOOLONG)
	for _, name := range []string{"b", "c", "e"} {
		wantErrno(t, "stat "+name, syscall.Lstat(m.Path(name), new(syscall.Stat_t)), syscall.ENOENT)
	}
	if keys := m.Keys(""); strings.Join(keys, " ") != "a d/" {
		t.Errorf("bucket after refused links = %v, want [a d/]", keys)
	}
	sameBytes(t, "a", m.Get("a"), []byte("original"))
}

// S3 stores keys of at most 1,024 bytes: a name that would make a longer
// key is refused when it is made (create, mkdir, symlink, rename, the
// deeper keys of a directory rename), ENAMETOOLONG, not an upload that
// fails at close with EIO and a file that can never be stored. A key of
// exactly 1,024 bytes is stored.
func TestKeyLengthLimit(t *testing.T) {
	t.Parallel()
	m := mount(t)
	long := func(c byte, n int) string { return strings.Repeat(string(c), n) }
	// Five directories of 200 bytes (MinIO stores a marker as a file
	// named after its last component plus a suffix, so each must stay
	// well under 255): their key is 1,004 bytes, the deepest marker 1,005.
	parent := strings.Join([]string{long('a', 200), long('b', 200), long('c', 200), long('d', 200)}, "/")
	dir := parent + "/" + long('e', 200)
	if err := os.MkdirAll(m.Path(dir), 0o755); err != nil {
		t.Fatalf("mkdir -p of a 1,004-byte key: %v", err)
	}
	fits := dir + "/" + long('x', 1024-len(dir)-1) // exactly 1,024 bytes
	writeFile(t, m.Path(fits), []byte("fits"))
	sameBytes(t, "a 1,024-byte key", m.Get(fits), []byte("fits"))

	over := dir + "/" + long('f', 1024-len(dir)) // 1,025 bytes
	_, err := os.Create(m.Path(over))
	wantErrno(t, "create of a 1,025-byte key", err, syscall.ENAMETOOLONG)
	wantErrno(t, "mkdir whose marker is 1,025 bytes", os.Mkdir(m.Path(dir+"/"+long('g', 1024-len(dir)-1)), 0o755), syscall.ENAMETOOLONG)
	wantErrno(t, "symlink of a 1,025-byte key", os.Symlink("target", m.Path(over)), syscall.ENAMETOOLONG)
	writeFile(t, m.Path("short"), []byte("short"))
	wantErrno(t, "rename to a 1,025-byte key", os.Rename(m.Path("short"), m.Path(over)), syscall.ENAMETOOLONG)
	sameBytes(t, "the file a refused rename left", m.Get("short"), []byte("short"))

	// A directory rename that would push a key inside it past the limit:
	// the last directory (200 bytes) holds the 1,024-byte key; renaming
	// it to 201 bytes would make that key 1,025 bytes.
	wantErrno(t, "directory rename lengthening a key inside it past 1,024 bytes",
		os.Rename(m.Path(dir), m.Path(parent+"/"+long('z', 201))), syscall.ENAMETOOLONG)
	sameBytes(t, "the tree a refused directory rename left", m.Get(fits), []byte("fits"))
	if m.Exists(over) {
		t.Error("an object with a 1,025-byte key exists")
	}
}

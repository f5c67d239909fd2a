package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// TestCpMvLs: cp (also -r and -p), mv within the mount and out of it, and
// ls -l.
func TestCpMvLs(t *testing.T) {
	t.Parallel()
	m := mount(t)
	tmp := t.TempDir()
	data := randBytes(70, 1<<20+3)
	src := filepath.Join(tmp, "src.bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(tmp, "tree/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]string{"tree/a": "A", "tree/sub/b": "BB"} {
		if err := os.WriteFile(filepath.Join(tmp, name), []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Date(2015, 6, 7, 8, 9, 10, 0, time.UTC)
	if err := os.Chmod(src, 0o751); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(src, old, old); err != nil {
		t.Fatal(err)
	}

	run(t, tmp, "cp", src, m.Path("copy.bin"))
	sameBytes(t, "cp", m.Get("copy.bin"), data)
	run(t, tmp, "cp", "-p", src, m.Path("preserved.bin"))
	sameBytes(t, "cp -p", m.Get("preserved.bin"), data)
	if st := lstat(t, m.Path("preserved.bin")); st.Mode&0o7777 != 0o751 || !time.Unix(st.Mtim.Unix()).Equal(old) {
		t.Errorf("cp -p: mode %#o mtime %v, want 0751 %v", st.Mode&0o7777, time.Unix(st.Mtim.Unix()).UTC(), old)
	}
	run(t, tmp, "cp", "-r", filepath.Join(tmp, "tree"), m.Path("tree"))
	sameBytes(t, "cp -r a", m.Get("tree/a"), []byte("A"))
	sameBytes(t, "cp -r sub/b", m.Get("tree/sub/b"), []byte("BB"))
	// cp out of the mount.
	run(t, tmp, "cp", m.Path("copy.bin"), filepath.Join(tmp, "back.bin"))
	sameBytes(t, "cp out", readFile(t, filepath.Join(tmp, "back.bin")), data)

	run(t, m.Dir, "mv", "copy.bin", "moved.bin")
	sameBytes(t, "mv in mount", m.Get("moved.bin"), data)
	if m.Exists("copy.bin") {
		t.Error("mv left copy.bin")
	}
	run(t, m.Dir, "mv", "tree", "tree2")
	if len(m.Keys("tree/")) != 0 || len(m.Keys("tree2/")) == 0 {
		t.Errorf("mv of a directory: keys %v", m.Keys(""))
	}
	// mv across filesystems (copy + unlink) in both directions.
	run(t, m.Dir, "mv", "moved.bin", filepath.Join(tmp, "out.bin"))
	sameBytes(t, "mv out", readFile(t, filepath.Join(tmp, "out.bin")), data)
	if m.Exists("moved.bin") {
		t.Error("mv out of the mount left the object")
	}
	run(t, tmp, "mv", filepath.Join(tmp, "out.bin"), m.Path("in.bin"))
	sameBytes(t, "mv in", m.Get("in.bin"), data)

	out := run(t, m.Dir, "ls", "-ln")
	sizes := map[string]string{}
	kinds := map[string]byte{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 9 {
			t.Errorf("ls -ln line %q", line)
			continue
		}
		sizes[f[8]] = f[4]
		kinds[f[8]] = f[0][0]
	}
	want := strconv.Itoa(len(data))
	if sizes["in.bin"] != want || sizes["preserved.bin"] != want || kinds["tree2"] != 'd' || kinds["in.bin"] != '-' || len(sizes) != 3 {
		t.Errorf("ls -ln:\n%s\nwant in.bin and preserved.bin of %s bytes and directory tree2", out, want)
	}
}

// TestTarExtract: tar -x of an archive with files, directories, a symlink
// and set mtimes and modes; tar -d finds no difference.
func TestTarExtract(t *testing.T) {
	t.Parallel()
	m := mount(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	files := map[string]struct {
		data  []byte
		mode  os.FileMode
		mtime time.Time
	}{
		"proj/README":       {[]byte("read me\n"), 0o644, time.Date(2019, 1, 2, 3, 4, 5, 0, time.UTC)},
		"proj/bin/run.sh":   {[]byte("#!/bin/sh\necho run\n"), 0o755, time.Date(2018, 5, 6, 7, 8, 9, 0, time.UTC)},
		"proj/data/blob":    {randBytes(71, 200<<10), 0o600, time.Date(2017, 8, 9, 10, 11, 12, 0, time.UTC)},
		"proj/data/empty":   {nil, 0o640, time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC)},
		"proj/deep/a/b/c.t": {[]byte("deep"), 0o644, time.Date(2020, 2, 2, 2, 2, 2, 0, time.UTC)},
	}
	for name, f := range files {
		writeTreeFile(t, filepath.Join(src, name), f.data, f.mode, f.mtime)
	}
	if err := os.Mkdir(filepath.Join(src, "proj/emptydir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("README", filepath.Join(src, "proj/link")); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(tmp, "a.tar")
	run(t, src, "tar", "-cf", archive, "proj")

	run(t, m.Dir, "tar", "-xf", archive)
	if out, err := tryRun(m.Dir, "tar", "-df", archive); err != nil {
		t.Errorf("tar -d reports differences: %v\n%s", err, out)
	}
	for name, f := range files {
		st := lstat(t, m.Path(name))
		if os.FileMode(st.Mode&0o777) != f.mode || !time.Unix(st.Mtim.Unix()).Equal(f.mtime) || st.Size != int64(len(f.data)) {
			t.Errorf("%s: mode %#o mtime %v size %d, want %#o %v %d", name, st.Mode&0o777, time.Unix(st.Mtim.Unix()).UTC(), st.Size, f.mode, f.mtime, len(f.data))
		}
		sameBytes(t, name, m.Get(name), f.data)
	}
	if target, err := os.Readlink(m.Path("proj/link")); err != nil || target != "README" {
		t.Errorf("proj/link -> %q, %v", target, err)
	}
	if st := lstat(t, m.Path("proj/emptydir")); st.Mode&syscall.S_IFMT != syscall.S_IFDIR || st.Mode&0o777 != 0o700 {
		t.Errorf("proj/emptydir mode %#o, want dir 0700", st.Mode)
	}
	// And back out again.
	out := filepath.Join(tmp, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, m.Dir, "sh", "-c", `tar -cf - proj | tar -xf - -C "$1"`, "sh", out)
	if o, err := tryRun(out, "tar", "-df", archive); err != nil {
		t.Errorf("tar -c from the mount differs from the original: %v\n%s", err, o)
	}
}

// TestGit: git init, add, commit (twice), log, status and fsck inside the
// mount.
func TestGit(t *testing.T) {
	t.Parallel()
	m := mount(t)
	home := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		argv := append([]string{"env", "HOME=" + home, "GIT_CONFIG_NOSYSTEM=1",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "git"}, args...)
		return run(t, m.Path("repo"), argv...)
	}
	if err := os.Mkdir(m.Path("repo"), 0o755); err != nil {
		t.Fatal(err)
	}
	git("init", "-q")
	writeFile(t, m.Path("repo/main.go"), []byte("package main\n\nfunc main() {}\n"))
	if err := os.MkdirAll(m.Path("repo/docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, m.Path("repo/docs/README.md"), []byte("# hello\n"))
	git("add", ".")
	git("commit", "-q", "-m", "first")
	writeFile(t, m.Path("repo/main.go"), []byte("package main\n\nfunc main() { println(1) }\n"))
	git("commit", "-q", "-am", "second")

	if log := strings.Fields(git("log", "--format=%s")); strings.Join(log, " ") != "second first" {
		t.Errorf("git log: %v", log)
	}
	if st := git("status", "--porcelain"); st != "" {
		t.Errorf("git status not clean:\n%s", st)
	}
	git("fsck", "--full", "--strict")
	if files := git("ls-files"); files != "docs/README.md\nmain.go\n" {
		t.Errorf("git ls-files: %q", files)
	}
	if show := git("show", "HEAD~1:main.go"); show != "package main\n\nfunc main() {}\n" {
		t.Errorf("git show HEAD~1:main.go: %q", show)
	}
	if keys := m.Keys("repo/.git/objects/"); len(keys) < 6 {
		t.Errorf("only %d keys under repo/.git/objects/", len(keys))
	}
}

// TestDd: dd writes, overwrites a range in place (conv=notrunc), appends
// with seek, and reads with skip.
func TestDd(t *testing.T) {
	t.Parallel()
	m := mount(t)
	tmp := t.TempDir()
	run(t, m.Dir, "dd", "if=/dev/zero", "of=zeros", "bs=4k", "count=100", "status=none")
	sameBytes(t, "zeros", m.Get("zeros"), make([]byte, 409600))

	patch := randBytes(72, 5000)
	pf := filepath.Join(tmp, "patch")
	if err := os.WriteFile(pf, patch, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, m.Dir, "dd", "if="+pf, "of=zeros", "bs=1000", "seek=7", "conv=notrunc,fsync", "status=none")
	want := make([]byte, 409600)
	copy(want[7000:], patch)
	sameBytes(t, "zeros patched", m.Get("zeros"), want)

	// seek past the end without notrunc: truncates at the seek point, then writes.
	run(t, m.Dir, "dd", "if="+pf, "of=zeros", "bs=1000", "seek=500", "status=none")
	want = append(want, make([]byte, 500000-len(want))...)
	want = append(want, patch...)
	sameBytes(t, "zeros extended", m.Get("zeros"), want)

	out := filepath.Join(tmp, "out")
	run(t, m.Dir, "dd", "if=zeros", "of="+out, "bs=1000", "skip=7", "count=5", "status=none")
	sameBytes(t, "dd read", readFile(t, out), patch)
}

// TestArchiveAttributesRideTheClose: tar run as root and cp -a set each
// file's times, owner and mode through its descriptor before closing it
// (futimens, fchown, fchmod or an ACL). Those wait for the close, whose one
// upload carries them: no server-side copy per attribute, and every object
// holds the archive's owner, mode and mtime. A file big enough to stream
// costs one copy after its multipart upload (the metadata of a multipart
// upload is fixed when it starts).
func TestArchiveAttributesRideTheClose(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	m := mount(t, withFlags("--metrics-addr", addr))
	src := t.TempDir()
	type file struct {
		data     []byte
		mode     os.FileMode
		uid, gid int
		mtime    time.Time
	}
	files := map[string]file{
		"arch/owned.txt":  {[]byte("owned\n"), 0o640, 1234, 5678, time.Date(2019, 1, 2, 3, 4, 5, 0, time.UTC)},
		"arch/bin/run.sh": {[]byte("#!/bin/sh\n"), 0o751, 4321, 8765, time.Date(2018, 5, 6, 7, 8, 9, 0, time.UTC)},
		"arch/secret":     {randBytes(5, 3000), 0o600, 0, 0, time.Date(2017, 8, 9, 10, 11, 12, 0, time.UTC)},
		"arch/big.bin":    {randBytes(6, 40<<20), 0o644, 1234, 5678, time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for name, f := range files {
		p := filepath.Join(src, name)
		if err := os.Chown(writeTreeFile(t, p, f.data, f.mode, f.mtime), f.uid, f.gid); err != nil {
			t.Fatal(err)
		}
	}
	archive := filepath.Join(t.TempDir(), "a.tar")
	run(t, src, "tar", "--numeric-owner", "-cf", archive, "arch")

	check := func(tool, dir string) {
		t.Helper()
		for name, f := range files {
			name = dir + strings.TrimPrefix(name, "arch")
			h := m.Head(name)
			want := map[string]string{
				"mode":  fmt.Sprint(uint32(f.mode) | syscall.S_IFREG),
				"uid":   fmt.Sprint(f.uid),
				"gid":   fmt.Sprint(f.gid),
				"mtime": fmt.Sprint(f.mtime.Unix()),
			}
			for k, v := range want {
				if got := h.Metadata[k]; got != v {
					t.Errorf("%s: object %s has x-amz-meta-%s %q, want %q", tool, name, k, got, v)
				}
			}
			if aws.ToInt64(h.ContentLength) != int64(len(f.data)) {
				t.Errorf("%s: object %s is %d bytes, want %d", tool, name, aws.ToInt64(h.ContentLength), len(f.data))
			}
			if len(f.data) < 1<<20 {
				sameBytes(t, tool+" "+name, m.Get(name), f.data)
			}
			st := lstat(t, m.Path(name))
			if os.FileMode(st.Mode&0o7777) != f.mode || int(st.Uid) != f.uid || int(st.Gid) != f.gid || st.Mtim.Sec != f.mtime.Unix() {
				t.Errorf("%s: %s shows mode %#o owner %d:%d mtime %d, want %#o %d:%d %d", tool, name,
					st.Mode&0o7777, st.Uid, st.Gid, st.Mtim.Sec, f.mode, f.uid, f.gid, f.mtime.Unix())
			}
		}
	}

	reqs := countRequests(t, addr, func() { run(t, m.Dir, "tar", "--numeric-owner", "-xf", archive) })
	t.Logf("tar -x as root: %v", reqs)
	// One copy: big.bin's attributes after its multipart upload.
	if reqs["copy"] > 1 {
		t.Errorf("tar -x sent %v copies, want at most 1 (the streamed file's): each file's attributes should ride its upload", reqs["copy"])
	}
	check("tar", "arch")
	if out, err := tryRun(m.Dir, "tar", "--numeric-owner", "-df", archive); err != nil {
		t.Errorf("tar -d reports differences: %v\n%s", err, out)
	}

	reqs = countRequests(t, addr, func() { run(t, "/", "cp", "-a", filepath.Join(src, "arch"), m.Path("cpa")) })
	t.Logf("cp -a: %v", reqs)
	if reqs["copy"] > 1 {
		t.Errorf("cp -a sent %v copies, want at most 1 (the streamed file's)", reqs["copy"])
	}
	check("cp -a", "cpa")
}

// writeTreeFile writes p (making its directories) with exactly mode and
// mtime, and returns p.
func writeTreeFile(t *testing.T, p string, data []byte, mode os.FileMode, mtime time.Time) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestOwnHeadersNeedNoHead: the mount knows the headers of what it has
// just written (a file's upload, a directory's marker, a symlink, a
// metadata rewrite), so chmod, chown and utimes right after rewrite the
// object without asking the store for its headers first.
func TestOwnHeadersNeedNoHead(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	m := mount(t, withTTL(time.Minute), withFlags("--metrics-addr", addr))
	writeFile(t, m.Path("f"), []byte("data"))
	if err := os.Mkdir(m.Path("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", m.Path("l")); err != nil {
		t.Fatal(err)
	}
	when := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	reqs := countRequests(t, addr, func() {
		for _, name := range []string{"f", "d"} {
			if err := os.Chmod(m.Path(name), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(m.Path(name), when, when); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Lchown(m.Path("l"), 1234, 5678); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("requests: %v", reqs)
	if reqs["head"] != 0 || reqs["get"] != 0 || reqs["list"] != 0 {
		t.Errorf("rewrites after our own writes asked the store %v HEADs, %v GETs, %v LISTs, want none", reqs["head"], reqs["get"], reqs["list"])
	}
	if reqs["copy"]+reqs["upload"] != 5 {
		t.Errorf("%v copies and %v uploads, want one per change (5)", reqs["copy"], reqs["upload"])
	}
	for name, want := range map[string]string{"f": fmt.Sprint(syscall.S_IFREG | 0o700), "d/": fmt.Sprint(syscall.S_IFDIR | 0o700)} {
		h := m.Head(name)
		if h.Metadata["mode"] != want || h.Metadata["mtime"] != fmt.Sprint(when.Unix()) {
			t.Errorf("object %s: mode %q mtime %q, want %s %d", name, h.Metadata["mode"], h.Metadata["mtime"], want, when.Unix())
		}
	}
	if h := m.Head("l"); h.Metadata["uid"] != "1234" || h.Metadata["gid"] != "5678" {
		t.Errorf("symlink object: uid %q gid %q, want 1234 5678", h.Metadata["uid"], h.Metadata["gid"])
	}
}

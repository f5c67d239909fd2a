package test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// specialFile is one special file the tests make and expect back.
type specialFile struct {
	name string
	typ  uint32 // S_IFIFO, …
	perm uint32
	rdev uint64 // devices only
}

var specialFiles = []specialFile{
	{"fifo", syscall.S_IFIFO, 0o640, 0},
	{"chr", syscall.S_IFCHR, 0o600, unix.Mkdev(1, 2)},
	{"blk", syscall.S_IFBLK, 0o644, unix.Mkdev(4095, 4095)}, // modes the umask (022) leaves alone
	{"sock", syscall.S_IFSOCK, 0o755, 0},
}

// bindSocket binds a unix socket at dir/name (through /proc/self/fd, since
// a mount path can be longer than sun_path) and closes it: the socket file
// stays, as on any filesystem.
func bindSocket(t *testing.T, dir, name string) {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), name), Net: "unix"})
	if err != nil {
		t.Fatalf("bind a unix socket on the mount: %v", err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
}

// TestSpecialFiles: mkfifo, mknod (character and block devices) and bind
// make zero-byte objects with the type in x-amz-meta-mode (and the device
// number in x-amz-meta-rdev) that lookup, listing and stat show as such,
// before and after a remount, and after chmod and rename.
func TestSpecialFiles(t *testing.T) {
	t.Parallel()
	m := mount(t)
	for _, f := range specialFiles {
		p := m.Path(f.name)
		switch f.typ {
		case syscall.S_IFIFO:
			if err := syscall.Mkfifo(p, f.perm); err != nil {
				t.Fatalf("mkfifo: %v", err)
			}
		case syscall.S_IFSOCK:
			bindSocket(t, m.Dir, f.name)
			if err := os.Chmod(p, os.FileMode(f.perm)); err != nil {
				t.Fatalf("chmod socket: %v", err)
			}
		default:
			if err := unix.Mknod(p, f.typ|f.perm, int(f.rdev)); err != nil {
				t.Fatalf("mknod %s: %v", f.name, err)
			}
		}
	}
	check := func(m *Mount, when string, files []specialFile, names map[string]string) {
		t.Helper()
		ents, err := os.ReadDir(m.Dir)
		if err != nil {
			t.Fatalf("%s: readdir: %v", when, err)
		}
		listed := map[string]os.FileMode{}
		for _, e := range ents {
			listed[e.Name()] = e.Type()
		}
		// Types come from the listing, which has no metadata: an entry
		// nothing has stat-ed yet may read as a regular file (README,
		// Semantics); once stat-ed, readdir shows its type.
		for _, f := range files {
			name := names[f.name]
			if _, ok := listed[name]; !ok {
				t.Errorf("%s: first readdir does not show %s", when, name)
			}
			lstat(t, m.Path(name))
		}
		ents, err = os.ReadDir(m.Dir)
		if err != nil {
			t.Fatalf("%s: readdir: %v", when, err)
		}
		listed = map[string]os.FileMode{}
		for _, e := range ents {
			listed[e.Name()] = e.Type()
		}
		for _, f := range files {
			name := names[f.name]
			st := lstat(t, m.Path(name))
			if st.Mode != f.typ|f.perm || st.Size != 0 {
				t.Errorf("%s: %s: mode %#o size %d, want %#o size 0", when, name, st.Mode, st.Size, f.typ|f.perm)
			}
			if st.Rdev != f.rdev {
				t.Errorf("%s: %s: rdev %d:%d, want %d:%d", when, name, unix.Major(st.Rdev), unix.Minor(st.Rdev), unix.Major(f.rdev), unix.Minor(f.rdev))
			}
			fi, err := os.Lstat(m.Path(name))
			if err != nil {
				t.Fatal(err)
			}
			if typ, ok := listed[name]; !ok || typ != fi.Mode().Type() {
				t.Errorf("%s: readdir shows %s as %v (listed %v), stat as %v", when, name, typ, ok, fi.Mode().Type())
			}
			h := m.Head(name)
			if mode := metaUint(t, h, name, "mode"); mode != uint64(f.typ|f.perm) {
				t.Errorf("%s: %s: x-amz-meta-mode %d, want %d", when, name, mode, f.typ|f.perm)
			}
			if h.ContentLength == nil || *h.ContentLength != 0 {
				t.Errorf("%s: %s: object is not empty", when, name)
			}
			if f.rdev != 0 {
				if rdev := metaUint(t, h, name, "rdev"); rdev != f.rdev {
					t.Errorf("%s: %s: x-amz-meta-rdev %d, want %d", when, name, rdev, f.rdev)
				}
			}
		}
	}
	same := map[string]string{}
	for _, f := range specialFiles {
		same[f.name] = f.name
	}
	check(m, "after creation", specialFiles, same)

	// A FIFO on the mount works as a FIFO: the kernel serves it.
	done := make(chan error, 1)
	go func() {
		w, err := os.OpenFile(m.Path("fifo"), os.O_WRONLY, 0)
		if err == nil {
			_, err = w.Write([]byte("through the pipe"))
			w.Close()
		}
		done <- err
	}()
	if got := readFile(t, m.Path("fifo")); string(got) != "through the pipe" {
		t.Errorf("read from the FIFO: %q", got)
	}
	if err := <-done; err != nil {
		t.Errorf("write into the FIFO: %v", err)
	}

	m.Unmount()
	m2 := mount(t, onBucket(m.Bucket))
	check(m2, "after remount", specialFiles, same)

	// chmod keeps the type and the device number; rename moves both.
	renamed := map[string]string{}
	for _, f := range specialFiles {
		if err := os.Chmod(m2.Path(f.name), 0o604); err != nil {
			t.Fatalf("chmod %s: %v", f.name, err)
		}
		renamed[f.name] = f.name + ".moved"
		if err := os.Rename(m2.Path(f.name), m2.Path(renamed[f.name])); err != nil {
			t.Fatalf("rename %s: %v", f.name, err)
		}
	}
	moved := make([]specialFile, len(specialFiles))
	copy(moved, specialFiles)
	for i := range moved {
		moved[i].perm = 0o604
	}
	check(m2, "after chmod and rename", moved, renamed)
	m2.Unmount()
	m3 := mount(t, onBucket(m.Bucket))
	check(m3, "after chmod, rename and remount", moved, renamed)
	for _, name := range renamed {
		if err := os.Remove(m3.Path(name)); err != nil {
			t.Errorf("unlink %s: %v", name, err)
		}
		if m3.Exists(name) {
			t.Errorf("%s: object still there after unlink", name)
		}
	}
}

// statTimes returns path's atime, mtime and ctime.
func statTimes(t *testing.T, path string) (atime, mtime, ctime time.Time) {
	t.Helper()
	st := lstat(t, path)
	return time.Unix(st.Atim.Unix()), time.Unix(st.Mtim.Unix()), time.Unix(st.Ctim.Unix())
}

// TestTimes: atime, mtime and ctime as s3fs keeps them: stored in
// x-amz-meta-atime/-mtime/-ctime, set independently by utimensat
// (UTIME_OMIT, UTIME_NOW), chmod and chown change only the ctime, reads do
// not change the atime, and all three survive a remount.
func TestTimes(t *testing.T) {
	t.Parallel()
	m := mount(t)
	p := m.Path("f")
	writeFile(t, p, []byte("times"))

	at := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC)
	mt := time.Date(2002, 3, 4, 5, 6, 7, 8, time.UTC)
	setTimes := func(a, m unix.Timespec) {
		t.Helper()
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{a, m}, 0); err != nil {
			t.Fatalf("utimensat: %v", err)
		}
	}
	omit := unix.Timespec{Nsec: unix.UTIME_OMIT}
	now := unix.Timespec{Nsec: unix.UTIME_NOW}

	before := time.Now()
	setTimes(unix.NsecToTimespec(at.UnixNano()), omit)
	a, mtime0, c := statTimes(t, p)
	if !a.Equal(at) || mtime0.Equal(mt) || c.Before(before) {
		t.Errorf("after utimensat(atime, OMIT): atime %v mtime %v ctime %v; want atime %v, mtime unchanged, ctime >= %v", a, mtime0, c, at, before)
	}
	setTimes(omit, unix.NsecToTimespec(mt.UnixNano()))
	if a, m2, _ := statTimes(t, p); !a.Equal(at) || !m2.Equal(mt) {
		t.Errorf("after utimensat(OMIT, mtime): atime %v mtime %v, want %v %v", a, m2, at, mt)
	}

	// chmod and chown: the ctime moves, the mtime and atime do not.
	for _, change := range []struct {
		what string
		do   func() error
	}{
		{"chmod", func() error { return os.Chmod(p, 0o600) }},
		{"chown", func() error { return os.Chown(p, 1234, 5678) }},
	} {
		_, _, c0 := statTimes(t, p)
		before := time.Now()
		if err := change.do(); err != nil {
			t.Fatalf("%s: %v", change.what, err)
		}
		a, m2, c := statTimes(t, p)
		if !a.Equal(at) || !m2.Equal(mt) || c.Before(before) || !c.After(c0) {
			t.Errorf("after %s: atime %v mtime %v ctime %v (was %v); want %v %v and a new ctime", change.what, a, m2, c, c0, at, mt)
		}
	}

	// Reading does not write the atime.
	if got := readFile(t, p); string(got) != "times" {
		t.Errorf("read %q", got)
	}
	if a, _, _ := statTimes(t, p); !a.Equal(at) {
		t.Errorf("atime after a read: %v, want %v (reads do not update it)", a, at)
	}

	h := m.Head("f")
	if got := metaTime(t, h, "f", "atime"); !got.Equal(at) {
		t.Errorf("x-amz-meta-atime %v, want %v", got, at)
	}
	if got := metaTime(t, h, "f", "mtime"); !got.Equal(mt) {
		t.Errorf("x-amz-meta-mtime %v, want %v", got, mt)
	}
	_, _, ctime := statTimes(t, p)
	if got := metaTime(t, h, "f", "ctime"); !got.Equal(ctime) {
		t.Errorf("x-amz-meta-ctime %v, stat shows %v", got, ctime)
	}

	// UTIME_NOW for the atime alone.
	before = time.Now()
	setTimes(now, omit)
	if a, m2, _ := statTimes(t, p); a.Before(before) || !m2.Equal(mt) {
		t.Errorf("after utimensat(NOW, OMIT): atime %v (want >= %v), mtime %v (want %v)", a, before, m2, mt)
	}
	wantA, _, _ := statTimes(t, p)

	// A write moves mtime and ctime, not atime.
	before = time.Now()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("!")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	a2, m2, c2 := statTimes(t, p)
	if !a2.Equal(wantA) || m2.Before(before) || c2.Before(before) {
		t.Errorf("after a write: atime %v (want %v), mtime %v and ctime %v (want >= %v)", a2, wantA, m2, c2, before)
	}
	wantA, wantM, wantC := statTimes(t, p)

	m.Unmount()
	m3 := mount(t, onBucket(m.Bucket))
	if a, mm, c := statTimes(t, m3.Path("f")); !a.Equal(wantA) || !mm.Equal(wantM) || !c.Equal(wantC) {
		t.Errorf("after remount: atime %v mtime %v ctime %v, want %v %v %v", a, mm, c, wantA, wantM, wantC)
	}
}

// contentTypeOf is the Content-Type of the object name.
func contentTypeOf(m *Mount, name string) string {
	h := m.Head(name)
	if h.ContentType == nil {
		return ""
	}
	return *h.ContentType
}

// TestContentType: objects get the Content-Type of their name's extension
// from the system's mime.types, as s3fs sets it, and keep it (or take the
// new name's) across renames and metadata updates.
func TestContentType(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/etc/mime.types"); err != nil {
		t.Fatalf("this test needs the system's mime.types (Debian: media-types; .ci/run installs it): %v", err)
	}
	m := mount(t)
	want := map[string]string{
		"page.html":   "text/html",
		"img.png":     "image/png",
		"data.json":   "application/json",
		"dump.tar.gz": "application/gzip",
		"noext":       "application/octet-stream",
		"x.nosuchext": "application/octet-stream",
	}
	for name := range want {
		writeFile(t, m.Path(name), []byte("<p>"+name+"</p>"))
	}
	if err := os.Mkdir(m.Path("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, m.Path("d/in.html"), []byte("<p>in</p>"))
	if err := os.Symlink("page.html", m.Path("link.html")); err != nil {
		t.Fatal(err)
	}
	want["d/in.html"] = "text/html"
	want["link.html"] = "application/octet-stream" // as s3fs writes symlinks
	for name, ct := range want {
		if got := contentTypeOf(m, name); got != ct {
			t.Errorf("%s: Content-Type %q, want %q", name, got, ct)
		}
	}

	// Metadata updates keep it; a rename takes the new name's; a
	// directory rename keeps its files'.
	if err := os.Chmod(m.Path("page.html"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(m.Path("img.png"), time.Unix(1e9, 0), time.Unix(1e9, 0)); err != nil {
		t.Fatal(err)
	}
	for _, mv := range [][2]string{{"data.json", "data.png"}, {"noext", "now.json"}, {"d", "e"}} {
		if err := os.Rename(m.Path(mv[0]), m.Path(mv[1])); err != nil {
			t.Fatalf("rename %s %s: %v", mv[0], mv[1], err)
		}
	}
	for name, ct := range map[string]string{
		"page.html": "text/html", "img.png": "image/png",
		"data.png": "image/png", "now.json": "application/json", "e/in.html": "text/html",
	} {
		if got := contentTypeOf(m, name); got != ct {
			t.Errorf("after chmod/utimes/rename: %s: Content-Type %q, want %q", name, got, ct)
		}
	}
	if st := lstat(t, m.Path("page.html")); st.Mode&0o7777 != 0o600 {
		t.Errorf("page.html mode %#o after chmod", st.Mode)
	}
	sameBytes(t, "data.png after rename", m.Get("data.png"), []byte("<p>data.json</p>"))
}

// TestMode0000: a file or directory created with mode 0000 keeps it.
func TestMode0000(t *testing.T) {
	t.Parallel()
	m := mount(t)
	fd, err := syscall.Open(m.Path("f"), syscall.O_CREAT|syscall.O_WRONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("create with mode 0000: %v", err)
	}
	if err := syscall.Close(fd); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkdir(m.Path("d"), 0); err != nil {
		t.Fatal(err)
	}
	writeFile(t, m.Path("g"), []byte("g"))
	if err := os.Chmod(m.Path("g"), 0); err != nil {
		t.Fatal(err)
	}
	check := func(m *Mount, when string) {
		t.Helper()
		for name, typ := range map[string]uint32{"f": syscall.S_IFREG, "d": syscall.S_IFDIR, "g": syscall.S_IFREG} {
			if st := lstat(t, m.Path(name)); st.Mode != typ {
				t.Errorf("%s: %s: mode %#o, want %#o", when, name, st.Mode, typ)
			}
		}
	}
	check(m, "before remount")
	m.Unmount()
	check(mount(t, onBucket(m.Bucket)), "after remount")
}

// TestLongNames: file names of 255 bytes (NAME_MAX) work: create, stat,
// list, read, rename, remove, after a remount too, and a missing one is
// ENOENT, not EIO (MinIO answers the lookup's HEAD of the marker "name/"
// with a 400). Directories: MinIO refuses the marker "name/" of a name
// over 246 bytes (it stores it as "name__XLDIR__"), so mkdir says
// ENAMETOOLONG there, a 246-byte one works, and an implicit directory of
// 255 bytes (objects below it) lists and reads.
func TestLongNames(t *testing.T) {
	t.Parallel()
	m := mount(t)
	long := func(c byte, n int) string { return string(bytes.Repeat([]byte{c}, n)) }
	f, g, d, implicit := long('f', 255), long('g', 255), long('d', 246), long('i', 255)
	writeFile(t, m.Path(f), []byte("long"))
	if err := os.Mkdir(m.Path(d), 0o755); err != nil {
		t.Fatalf("mkdir of a 246-byte name: %v", err)
	}
	writeFile(t, m.Path(d+"/"+f), []byte("inside"))
	m.Put(implicit+"/"+f, []byte("implicit"), nil)
	for _, n := range []int{247, 255} {
		wantErrno(t, fmt.Sprintf("mkdir of a %d-byte name on MinIO", n), os.Mkdir(m.Path(long('e', n)), 0o755), syscall.ENAMETOOLONG)
	}
	check := func(m *Mount, when string) {
		t.Helper()
		for name, want := range map[string]string{f: "long", d + "/" + f: "inside", implicit + "/" + f: "implicit"} {
			if got, err := os.ReadFile(m.Path(name)); err != nil || string(got) != want {
				t.Errorf("%s: read %.10s…: %q, %v; want %q", when, name, got, err, want)
			}
		}
		ents, err := os.ReadDir(m.Dir)
		if err != nil {
			t.Fatalf("%s: readdir: %v", when, err)
		}
		if len(ents) != 3 || ents[0].Name() != d || ents[1].Name() != f || ents[2].Name() != implicit || !ents[2].IsDir() {
			t.Errorf("%s: readdir shows %d entries, want 3", when, len(ents))
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(m.Path(g), &st); err != syscall.ENOENT {
			t.Errorf("%s: stat of a missing 255-byte name: %v, want ENOENT", when, err)
		}
	}
	check(m, "before remount")
	wantErrno(t, "create of a 256-byte name", os.WriteFile(m.Path(f+"x"), nil, 0o644), syscall.ENAMETOOLONG)
	m.Unmount()
	m2 := mount(t, onBucket(m.Bucket))
	check(m2, "after remount")
	if err := os.Rename(m2.Path(f), m2.Path(g)); err != nil {
		t.Errorf("rename to a 255-byte name: %v", err)
	}
	if got := m2.Get(g); string(got) != "long" {
		t.Errorf("renamed object holds %q", got)
	}
	if err := os.Remove(m2.Path(g)); err != nil {
		t.Errorf("unlink: %v", err)
	}
	for _, dir := range []string{d, implicit} {
		if err := os.RemoveAll(m2.Path(dir)); err != nil {
			t.Errorf("rm -r %.10s…: %v", dir, err)
		}
	}
	if keys := m2.AllKeys(); len(keys) != 0 {
		t.Errorf("objects left: %d", len(keys))
	}
}

// TestDirTimesAndNlink: a directory's mtime and ctime move when entries are
// created, removed or renamed in it, and its nlink is 2 plus its
// subdirectories (pjdfstest rename/24.t).
func TestDirTimesAndNlink(t *testing.T) {
	t.Parallel()
	m := mount(t)
	for _, d := range []string{"p", "q"} {
		if err := os.Mkdir(m.Path(d), 0o755); err != nil {
			t.Fatal(err)
		}
		// Held open, so that the kernel keeps the inode (it forgets
		// unused ones whenever it likes, and a fresh node knows no
		// subdirectories: nlink 1, "unknown").
		f, err := os.Open(m.Path(d))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
	}
	past := time.Date(2003, 4, 5, 6, 7, 8, 0, time.UTC)
	step := func(what string, do func() error, dirs ...string) {
		t.Helper()
		for _, d := range dirs {
			if err := os.Chtimes(m.Path(d), past, past); err != nil {
				t.Fatal(err)
			}
			if _, mt, _ := statTimes(t, m.Path(d)); !mt.Equal(past) {
				t.Fatalf("utimes of %s: mtime %v, want %v", d, mt, past)
			}
		}
		before := time.Now()
		if err := do(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for _, d := range dirs {
			if _, mt, ct := statTimes(t, m.Path(d)); mt.Before(before) || ct.Before(before) {
				t.Errorf("after %s: %s has mtime %v ctime %v, want both >= %v", what, d, mt, ct, before)
			}
		}
	}
	nlink := func(when string, want map[string]uint64) {
		t.Helper()
		for d, n := range want {
			if st := lstat(t, m.Path(d)); st.Nlink != n {
				t.Errorf("%s: %s has nlink %d, want %d", when, d, st.Nlink, n)
			}
		}
	}
	nlink("at first", map[string]uint64{"p": 2, "q": 2})
	step("create", func() error { return os.WriteFile(m.Path("p/f"), []byte("f"), 0o644) }, "p")
	step("mknod", func() error { return syscall.Mkfifo(m.Path("p/fifo"), 0o644) }, "p")
	step("symlink", func() error { return os.Symlink("f", m.Path("p/l")) }, "p")
	step("unlink", func() error { return os.Remove(m.Path("p/f")) }, "p")
	step("mkdir", func() error { return os.Mkdir(m.Path("p/s"), 0o755) }, "p")
	nlink("after mkdir p/s", map[string]uint64{"p": 3, "q": 2})
	step("rename in a directory", func() error { return os.Rename(m.Path("p/s"), m.Path("p/s2")) }, "p")
	step("rename across directories", func() error { return os.Rename(m.Path("p/s2"), m.Path("q/s")) }, "p", "q")
	nlink("after rename p/s2 q/s", map[string]uint64{"p": 2, "q": 3})
	step("rmdir", func() error { return os.Remove(m.Path("q/s")) }, "q")
	nlink("after rmdir q/s", map[string]uint64{"p": 2, "q": 2})

}

// TestStableInodes: a setattr through an open descriptor (touch of an open
// file, futimes, fchmod) never makes stat show inode 0 (the setattr reply
// carries the number too), and a new file keeps its inode number past the
// stat cache TTL, as git's index (which records st_ino) needs.
func TestStableInodes(t *testing.T) {
	t.Parallel()
	m := mount(t, withTTL(time.Second))
	f, err := os.Create(m.Path("open"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	ino := lstat(t, m.Path("open")).Ino
	if ino == 0 {
		t.Fatal("new file has inode 0")
	}
	when := time.Unix(1_500_000_000, 0)
	tv := []unix.Timeval{unix.NsecToTimeval(when.UnixNano()), unix.NsecToTimeval(when.UnixNano())}
	for what, do := range map[string]func() error{
		"touch":   func() error { _, err := tryRun(m.Dir, "touch", "open"); return err },
		"futimes": func() error { return unix.Futimes(int(f.Fd()), tv) },
		"fchmod":  func() error { return f.Chmod(0o600) },
		"chtimes": func() error { return os.Chtimes(m.Path("open"), when, when) },
	} {
		if err := do(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		var fst syscall.Stat_t
		if err := syscall.Fstat(int(f.Fd()), &fst); err != nil {
			t.Fatal(err)
		}
		if st := lstat(t, m.Path("open")); st.Ino != ino || fst.Ino != ino {
			t.Errorf("after %s: stat shows inode %d, fstat %d, want %d", what, st.Ino, fst.Ino, ino)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	writeFile(t, m.Path("new"), []byte("new"))
	newIno := lstat(t, m.Path("new")).Ino
	// Watch both past several TTLs (the upload, the stat cache expiring,
	// the kernel revalidating): the numbers never change.
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		for name, want := range map[string]uint64{"open": ino, "new": newIno} {
			if got := lstat(t, m.Path(name)).Ino; got != want {
				t.Fatalf("%s: inode changed from %d to %d", name, want, got)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSuidClearedAsOnLinux: the mount clears set-user-ID and set-group-ID
// bits itself (FUSE_HANDLE_KILLPRIV_V2), where Linux clears them on a
// local filesystem: a write, an O_TRUNC open or a truncate by a user
// without CAP_FSETID, and any chown; root's writes keep them, and the
// set-group-ID bit of a file its group cannot execute stays. stat shows
// the new mode at once, and the object stores it.
func TestSuidClearedAsOnLinux(t *testing.T) {
	t.Parallel()
	dir := newMountDir(t)
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil { // let others reach the mountpoint
		t.Fatal(err)
	}
	m := mount(t, onDir(dir), withFlags("--allow-other"), withTTL(time.Minute))
	if err := os.Mkdir(m.Path("d"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(m.Path("d"), 0o777); err != nil {
		t.Fatal(err)
	}
	nobody := func(script string) {
		t.Helper()
		if out, err := tryRun(m.Dir, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", script); err != nil {
			t.Fatalf("as nobody: %s: %v %s", script, err, out)
		}
	}
	cases := []struct {
		name       string
		mode, want uint32
		do         func(path string)
	}{
		{"root appends", 0o6777, 0o6777, func(p string) { run(t, m.Dir, "sh", "-c", "echo root >> "+p) }},
		{"nobody appends", 0o6777, 0o777, func(p string) { nobody("echo x >> " + p) }},
		{"nobody appends, group cannot execute", 0o6767, 0o2767, func(p string) { nobody("echo x >> " + p) }},
		{"nobody opens with O_TRUNC", 0o6777, 0o777, func(p string) { nobody(": > " + p) }},
		{"nobody truncates", 0o6777, 0o777, func(p string) { nobody("truncate -s 1 " + p) }},
		{"root truncates", 0o6777, 0o6777, func(p string) { run(t, m.Dir, "truncate", "-s", "1", p) }},
		{"root chowns", 0o6777, 0o777, func(p string) {
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}},
		{"root chowns to -1 -1", 0o6777, 0o777, func(p string) {
			if err := os.Chown(p, -1, -1); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for i, c := range cases {
		name := fmt.Sprintf("d/f%d", i)
		writeFile(t, m.Path(name), []byte("content\n"))
		// syscall's: os.Chmod leaves out bits 07000 of a plain number.
		if err := syscall.Chmod(m.Path(name), c.mode); err != nil {
			t.Fatal(err)
		}
		c.do(m.Path(name))
		if got := lstat(t, m.Path(name)).Mode & 0o7777; got != c.want {
			t.Errorf("%s: stat shows %o, want %o", c.name, got, c.want)
		}
		if got := m.Head(name).Metadata["mode"]; got != fmt.Sprint(c.want|syscall.S_IFREG) {
			t.Errorf("%s: the object's x-amz-meta-mode is %s, want %d", c.name, got, c.want|syscall.S_IFREG)
		}
	}
}

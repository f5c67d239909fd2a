package test

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// TestLookupGetattrReaddir: objects put with the SDK show up with the right
// names, types and sizes through lookup, getattr and readdir.
func TestLookupGetattrReaddir(t *testing.T) {
	t.Parallel()
	m := mount(t)
	m.Put("top.txt", randBytes(1, 100), nil)
	m.Put("dir1/a.txt", []byte("hello"), nil)
	m.Put("dir1/sub/b.bin", randBytes(2, 3000), nil)
	m.Put("dir2/", nil, nil)

	ents, err := os.ReadDir(m.Dir)
	if err != nil {
		t.Fatalf("readdir root: %v", err)
	}
	var got []string
	for _, e := range ents {
		kind := "f"
		if e.IsDir() {
			kind = "d"
		}
		got = append(got, e.Name()+":"+kind)
	}
	if want := []string{"dir1:d", "dir2:d", "top.txt:f"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("readdir root = %v, want %v", got, want)
	}

	ents, err = os.ReadDir(m.Path("dir1"))
	if err != nil {
		t.Fatalf("readdir dir1: %v", err)
	}
	got = nil
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, " ") != "a.txt sub" {
		t.Errorf("readdir dir1 = %v, want [a.txt sub]", got)
	}

	for _, c := range []struct {
		name string
		size int64
		mode uint32
	}{
		{"top.txt", 100, syscall.S_IFREG},
		{"dir1/a.txt", 5, syscall.S_IFREG},
		{"dir1/sub/b.bin", 3000, syscall.S_IFREG},
		{"dir1", -1, syscall.S_IFDIR},
		{"dir1/sub", -1, syscall.S_IFDIR},
		{"dir2", -1, syscall.S_IFDIR},
	} {
		st := lstat(t, m.Path(c.name))
		if st.Mode&syscall.S_IFMT != c.mode {
			t.Errorf("%s: type %#o, want %#o", c.name, st.Mode&syscall.S_IFMT, c.mode)
		}
		if c.size >= 0 && st.Size != c.size {
			t.Errorf("%s: size %d, want %d", c.name, st.Size, c.size)
		}
	}

	// Stable inode numbers; distinct files have distinct ones.
	a1, a2 := lstat(t, m.Path("top.txt")), lstat(t, m.Path("top.txt"))
	b := lstat(t, m.Path("dir1/a.txt"))
	if a1.Ino != a2.Ino {
		t.Errorf("top.txt inode changed between two stats: %d, %d", a1.Ino, a2.Ino)
	}
	if a1.Ino == b.Ino {
		t.Errorf("top.txt and dir1/a.txt share inode %d", a1.Ino)
	}

	// An object without metadata has its Last-Modified time as mtime.
	h := m.Head("top.txt")
	st := lstat(t, m.Path("top.txt"))
	lm := aws.ToTime(h.LastModified)
	if d := time.Unix(st.Mtim.Unix()).Sub(lm); d < -2*time.Second || d > 2*time.Second {
		t.Errorf("top.txt mtime %v, want about Last-Modified %v", time.Unix(st.Mtim.Unix()), lm)
	}

	out := run(t, m.Dir, "ls", "-la", ".", "dir1", "dir1/sub")
	for _, name := range []string{"top.txt", "dir1", "dir2", "a.txt", "sub", "b.bin"} {
		if !strings.Contains(out, name) {
			t.Errorf("ls -la output lacks %q:\n%s", name, out)
		}
	}
}

// TestListLargeDirectory: a directory of more than 10,000 objects (several
// listing pages) is listed completely, without duplicates.
func TestListLargeDirectory(t *testing.T) {
	t.Parallel()
	m := mount(t)
	const n = 10050
	name := func(i int) string { return fmt.Sprintf("big/file-%05d.dat", i) }
	start := time.Now()
	m.putMany(n, 32, name, func(i int) []byte { return []byte(name(i)) })
	// A few sub-directories interleaved with the files in key order.
	m.Put("big/file-05000.dat.d/x", []byte("x"), nil)
	m.Put("big/aaa-sub/", nil, nil)
	m.Put("big/zzz-sub/y", []byte("y"), nil)
	t.Logf("put %d objects in %s", n+3, time.Since(start).Round(time.Millisecond))

	want := map[string]bool{"file-05000.dat.d": true, "aaa-sub": true, "zzz-sub": true}
	for i := 0; i < n; i++ {
		want[strings.TrimPrefix(name(i), "big/")] = true
	}
	check := func(how string, got []string) {
		t.Helper()
		seen := map[string]int{}
		for _, g := range got {
			seen[g]++
		}
		var dup, extra, missing []string
		for g, c := range seen {
			if c > 1 {
				dup = append(dup, g)
			}
			if !want[g] {
				extra = append(extra, g)
			}
		}
		for w := range want {
			if seen[w] == 0 {
				missing = append(missing, w)
			}
		}
		sort.Strings(dup)
		sort.Strings(extra)
		sort.Strings(missing)
		if len(got) != len(want) || len(dup)+len(extra)+len(missing) > 0 {
			t.Errorf("%s: %d entries, want %d; %d duplicated %.5v, %d unexpected %.5v, %d missing %.5v",
				how, len(got), len(want), len(dup), dup, len(extra), extra, len(missing), missing)
		}
	}

	start = time.Now()
	out := run(t, m.Dir, "ls", "-1", "big")
	t.Logf("ls -1 of %d entries took %s", len(want), time.Since(start).Round(time.Millisecond))
	check("ls -1", strings.Fields(out))

	ents, err := os.ReadDir(m.Path("big"))
	if err != nil {
		t.Fatalf("readdir big: %v", err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
		if want := strings.HasSuffix(e.Name(), "sub") || strings.HasSuffix(e.Name(), ".d"); e.IsDir() != want {
			t.Errorf("%s: IsDir %v, want %v", e.Name(), e.IsDir(), want)
		}
	}
	check("readdir", names)

	// ls -l stats every entry (READDIRPLUS / lookups).
	out = run(t, m.Dir, "ls", "-l", "big")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(want)+1 { // + "total N"
		t.Errorf("ls -l big: %d lines, want %d", len(lines), len(want)+1)
	}
	if st := lstat(t, m.Path("big/file-01234.dat")); st.Size != int64(len(name(1234))) {
		t.Errorf("big/file-01234.dat size %d, want %d", st.Size, len(name(1234)))
	}
}

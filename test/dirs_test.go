package test

import (
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestMkdirWritesMarker: mkdir writes a zero-byte "dir/" object; mkdir -p
// writes one per level.
func TestMkdirWritesMarker(t *testing.T) {
	t.Parallel()
	m := mount(t)
	if err := os.Mkdir(m.Path("newdir"), 0o750); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	h, err := m.TryHead("newdir/")
	if err != nil {
		t.Fatalf("marker newdir/ after mkdir: %v", err)
	}
	if n := *h.ContentLength; n != 0 {
		t.Errorf("marker newdir/ has %d bytes, want 0", n)
	}
	if keys := m.Keys(""); strings.Join(keys, " ") != "newdir/" {
		t.Errorf("bucket after mkdir = %v, want [newdir/]", keys)
	}
	if st := lstat(t, m.Path("newdir")); st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		t.Errorf("newdir mode %#o is not a directory", st.Mode)
	}

	run(t, m.Dir, "mkdir", "-p", "a/b/c")
	for _, k := range []string{"a/", "a/b/", "a/b/c/"} {
		if !m.Exists(k) {
			t.Errorf("mkdir -p a/b/c: no marker %s", k)
		}
	}
	// A file in the new directory lands under its prefix.
	writeFile(t, m.Path("a/b/c/f.txt"), []byte("in c"))
	sameBytes(t, "a/b/c/f.txt", m.Get("a/b/c/f.txt"), []byte("in c"))
	ents, err := os.ReadDir(m.Path("a/b"))
	if err != nil || len(ents) != 1 || ents[0].Name() != "c" || !ents[0].IsDir() {
		t.Errorf("readdir a/b = %v, %v; want [c/]", ents, err)
	}
}

// TestImplicitDirectories: prefixes without a marker object (a/b/c put with
// the SDK) show as directories and can be used.
func TestImplicitDirectories(t *testing.T) {
	t.Parallel()
	m := mount(t)
	m.Put("a/b/c", []byte("deep"), nil)

	for _, d := range []string{"a", "a/b"} {
		st := lstat(t, m.Path(d))
		if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			t.Errorf("%s: mode %#o, want a directory", d, st.Mode)
		}
	}
	sameBytes(t, "a/b/c", readFile(t, m.Path("a/b/c")), []byte("deep"))

	ents, err := os.ReadDir(m.Dir)
	if err != nil || len(ents) != 1 || ents[0].Name() != "a" || !ents[0].IsDir() {
		t.Errorf("readdir root = %v, %v; want [a/]", ents, err)
	}
	ents, err = os.ReadDir(m.Path("a"))
	if err != nil || len(ents) != 1 || ents[0].Name() != "b" || !ents[0].IsDir() {
		t.Errorf("readdir a = %v, %v; want [b/]", ents, err)
	}

	// Creating a file inside an implicit directory works.
	writeFile(t, m.Path("a/new.txt"), []byte("new"))
	sameBytes(t, "a/new.txt", m.Get("a/new.txt"), []byte("new"))
	if !m.Exists("a/b/c") {
		t.Error("a/b/c disappeared")
	}
}

// TestRmdir: rmdir of a non-empty directory fails with ENOTEMPTY and keeps
// everything; rmdir of an empty one removes its marker.
func TestRmdir(t *testing.T) {
	t.Parallel()
	m := mount(t)
	if err := os.Mkdir(m.Path("full"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, m.Path("full/f"), []byte("x"))
	wantErrno(t, "rmdir full (has a file)", syscall.Rmdir(m.Path("full")), syscall.ENOTEMPTY)
	if !m.Exists("full/") || !m.Exists("full/f") {
		t.Errorf("failed rmdir removed something: keys %v", m.Keys(""))
	}

	// Only a sub-directory inside.
	if err := os.MkdirAll(m.Path("outer/inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "rmdir outer (has a sub-directory)", syscall.Rmdir(m.Path("outer")), syscall.ENOTEMPTY)

	// Implicit directory (no marker) with content.
	m.Put("imp/x", []byte("x"), nil)
	wantErrno(t, "rmdir imp (implicit, has a file)", syscall.Rmdir(m.Path("imp")), syscall.ENOTEMPTY)
	if !m.Exists("imp/x") {
		t.Error("failed rmdir imp removed imp/x")
	}

	// Empty it, then rmdir works and removes the marker.
	if err := os.Remove(m.Path("full/f")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Rmdir(m.Path("full")); err != nil {
		t.Fatalf("rmdir of emptied dir: %v", err)
	}
	if m.Exists("full/") {
		t.Error("marker full/ still exists after rmdir")
	}
	wantErrno(t, "stat after rmdir", syscall.Lstat(m.Path("full"), new(syscall.Stat_t)), syscall.ENOENT)
	if err := syscall.Rmdir(m.Path("outer/inner")); err != nil {
		t.Fatalf("rmdir outer/inner: %v", err)
	}
	if err := syscall.Rmdir(m.Path("outer")); err != nil {
		t.Fatalf("rmdir outer once empty: %v", err)
	}
	if keys := m.Keys(""); strings.Join(keys, " ") != "imp/x" {
		t.Errorf("bucket after rmdirs = %v, want [imp/x]", keys)
	}
}

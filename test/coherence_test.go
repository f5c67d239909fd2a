package test

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestOtherWriterVisible: objects created, replaced and deleted by another
// writer (the SDK) show through the mount once --stat-cache-ttl (1s) has
// passed.
func TestOtherWriterVisible(t *testing.T) {
	t.Parallel()
	m := mount(t, withTTL(time.Second))
	const wait = 10 * time.Second
	m.Put("dir/old", []byte("old"), nil)

	// Cache negative and listing entries first.
	wantErrno(t, "stat before create", statErr(m.Path("new.txt")), syscall.ENOENT)
	if ents, err := os.ReadDir(m.Path("dir")); err != nil || len(ents) != 1 {
		t.Fatalf("readdir dir = %v, %v", ents, err)
	}
	lstat(t, m.Path("dir/old"))
	sameBytes(t, "dir/old", readFile(t, m.Path("dir/old")), []byte("old"))

	// Created.
	m.Put("new.txt", []byte("created elsewhere"), nil)
	m.Put("dir/added", []byte("added"), nil)
	eventually(t, wait, func() string {
		var st syscall.Stat_t
		if err := syscall.Lstat(m.Path("new.txt"), &st); err != nil {
			return fmt.Sprintf("new object not visible: %v", err)
		}
		if st.Size != int64(len("created elsewhere")) {
			return fmt.Sprintf("new object size %d", st.Size)
		}
		return ""
	})
	eventually(t, wait, func() string {
		ents, err := os.ReadDir(m.Path("dir"))
		if err != nil || len(ents) != 2 {
			return fmt.Sprintf("readdir dir = %v, %v; want [added old]", ents, err)
		}
		return ""
	})
	sameBytes(t, "new.txt", readFile(t, m.Path("new.txt")), []byte("created elsewhere"))

	// Replaced: a different size, then the same size with other bytes
	// (only the ETag tells them apart).
	m.Put("dir/old", []byte("replaced, longer"), nil)
	eventually(t, wait, func() string {
		if b, err := os.ReadFile(m.Path("dir/old")); err != nil || !bytes.Equal(b, []byte("replaced, longer")) {
			return fmt.Sprintf("dir/old reads %q, %v after replacement", b, err)
		}
		return ""
	})
	m.Put("dir/old", []byte("REPLACED, LONGER"), nil)
	eventually(t, wait, func() string {
		if b, err := os.ReadFile(m.Path("dir/old")); err != nil || !bytes.Equal(b, []byte("REPLACED, LONGER")) {
			return fmt.Sprintf("dir/old reads %q, %v after same-size replacement", b, err)
		}
		return ""
	})

	// Deleted.
	m.Delete("new.txt")
	m.Delete("dir/added")
	eventually(t, wait, func() string {
		if err := statErr(m.Path("new.txt")); err == nil {
			return "deleted object still visible"
		}
		return ""
	})
	wantErrno(t, "stat deleted", statErr(m.Path("new.txt")), syscall.ENOENT)
	eventually(t, wait, func() string {
		ents, err := os.ReadDir(m.Path("dir"))
		if err != nil || len(ents) != 1 || ents[0].Name() != "old" {
			return fmt.Sprintf("readdir dir = %v, %v; want [old]", ents, err)
		}
		return ""
	})
}

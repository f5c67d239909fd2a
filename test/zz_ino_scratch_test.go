package test

import (
	"os"
	"syscall"
	"testing"
)

func TestZZInoScratch(t *testing.T) {
	m := mount(t, withFlags("--max-rename-objects", "5"))
	putTree(t, m, "big/", 20)
	if err := os.Rename(m.Path("big"), m.Path("big2")); err == nil {
		t.Fatal("no EXDEV")
	}
	ents, _ := os.ReadDir(m.Path("big"))
	for _, e := range ents[:5] {
		var st1, st2 syscall.Stat_t
		p := m.Path("big/" + e.Name())
		if err := syscall.Lstat(p, &st1); err != nil {
			t.Fatal(err)
		}
		fd, err := syscall.Open(p, syscall.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		syscall.Fstat(fd, &st2)
		syscall.Close(fd)
		t.Logf("%s lstat ino %d fstat ino %d", e.Name(), st1.Ino, st2.Ino)
	}
}

package test

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// A file is uploaded at the closes of the processes that opened it or
// wrote through it, not at those of processes that only inherited a copy
// of its descriptor (fs/flushowner.go): a program that runs commands while
// it holds a file (a log, a results file) no longer uploads the file at
// every command. A child that wrote, through the descriptor or a shared
// mapping, or truncated through it, still has its data stored when it
// exits.
func TestInheritedDescriptorCloses(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	m := mount(t, withFlags("--metrics-addr", addr))
	dir := t.TempDir()

	t.Run("commands started by the writer", func(t *testing.T) {
		reqs := countRequests(t, addr, func() {
			cmd := writer(t, "open "+m.Path("log")+";write 4096 71;spawn 5;write 4096 72;spawn 5;write 4096 73;spawn 5;close")
			if code := exitCode(t, cmd); code != 0 {
				t.Fatalf("writer exited with %d", code)
			}
		})
		// The exec of the first command after each write closed a copy
		// and uploaded the file so far: 3 uploads before.
		if reqs["upload"] != 1 {
			t.Errorf("a writer that wrote three times and started 15 commands sent %v uploads, want 1 (at its own close)", reqs["upload"])
		}
		want := append(randBytes(71, 4096), randBytes(72, 4096)...)
		sameBytes(t, "log", m.Get("log"), append(want, randBytes(73, 4096)...))
	})

	// Each child exits while the parent writer still holds the file
	// (paused): the child's exit must have stored what it changed.
	afterChild := func(t *testing.T, name, steps string, want []byte) {
		t.Helper()
		pause := filepath.Join(dir, "pause-"+name)
		cmd := writer(t, steps+";pause "+pause+";close")
		waitFile(t, pause)
		sameBytes(t, name+" after the child's exit", m.Get(name), want)
		if err := os.Remove(pause); err != nil {
			t.Fatal(err)
		}
		if code := exitCode(t, cmd); code != 0 {
			t.Fatalf("writer exited with %d", code)
		}
	}
	t.Run("a child that writes", func(t *testing.T) {
		afterChild(t, "shared", "open "+m.Path("shared")+";write 100 73;child hello",
			append(randBytes(73, 100), "hello"...))
	})
	t.Run("a child that writes through a shared mapping", func(t *testing.T) {
		want := randBytes(74, 8192)
		copy(want[100:], "XYZ")
		afterChild(t, "mapped", "openrw "+m.Path("mapped")+";write 8192 74;mapchild 100 XYZ", want)
	})
	t.Run("a child that truncates", func(t *testing.T) {
		afterChild(t, "cut", "open "+m.Path("cut")+";write 100 76;truncchild 10", randBytes(76, 100)[:10])
	})

	t.Run("threads of one process", func(t *testing.T) {
		// Opened on one thread, written on a second, closed on a third:
		// the kernel names threads, the close is still the owner's.
		data := randBytes(75, 5000)
		var f *os.File
		onThread := func(fn func()) (release func()) {
			done, hold := make(chan struct{}), make(chan struct{})
			go func() {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				fn()
				close(done)
				<-hold // keep the thread busy: the next step gets another
			}()
			<-done
			return func() { close(hold) }
		}
		var err error
		defer onThread(func() { f, err = os.Create(m.Path("threads")) })()
		if err != nil {
			t.Fatal(err)
		}
		defer onThread(func() { _, err = f.Write(data) })()
		if err != nil {
			t.Fatal(err)
		}
		defer onThread(func() { err = f.Close() })()
		if err != nil {
			t.Fatal(err)
		}
		sameBytes(t, "after a close on another thread", m.Get("threads"), data)
	})
}

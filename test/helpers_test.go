package test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// run runs a command (a shell tool, as a user would) in dir and returns its
// combined output; the test fails if it exits non-zero.
func run(t *testing.T, dir string, argv ...string) string {
	t.Helper()
	out, err := tryRun(dir, argv...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return out
}

// tryRun runs a command in dir and returns its combined output and error.
func tryRun(dir string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// randBytes returns n pseudo-random bytes (seeded, so failures reproduce).
func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// sameBytes fails the test (with a short description of the first
// difference) unless got equals want.
func sameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Errorf("%s: got %d bytes (sha256 %.12s), want %d bytes (sha256 %.12s); first difference at offset %d; %s",
		what, len(got), sha(got), len(want), sha(want), i, describeDiff(got, want))
}

// describeDiff says which MiB of got differ from want, and how: zeros (a
// hole), bytes found elsewhere in want (misplaced), or other bytes.
func describeDiff(got, want []byte) string {
	const mib = 1 << 20
	var parts []string
	for off := 0; off < len(got) && off < len(want) && len(parts) < 12; off += mib {
		g, w := got[off:min(off+mib, len(got))], want[off:min(off+mib, len(want))]
		if bytes.Equal(g, w) {
			continue
		}
		how := "other bytes"
		switch {
		case len(bytes.Trim(g, "\x00")) == 0:
			how = "zeros"
		case len(g) >= 64:
			if at := bytes.Index(want, g[:64]); at >= 0 {
				how = fmt.Sprintf("bytes of offset %d", at)
			}
		}
		parts = append(parts, fmt.Sprintf("MiB %d: %s", off/mib, how))
	}
	return "differing: " + strings.Join(parts, ", ")
}

// lstat returns the syscall stat of path, failing the test on error.
func lstat(t *testing.T, path string) syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatalf("lstat %s: %v", path, err)
	}
	return st
}

// pinnedLstat is lstat through an O_PATH descriptor kept open for the
// rest of the test: the kernel keeps the inode (and its entry) known, so
// that another test's drop_caches cannot make the next access look it up
// afresh (a test counting the requests of that access saw a second cold
// lookup). An O_PATH open sends no request of its own, and the
// descriptor is closed before the unmount (cleanups run in reverse).
func pinnedLstat(t *testing.T, path string) syscall.Stat_t {
	t.Helper()
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("lstat %s: %v", path, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		t.Fatalf("lstat %s: %v", path, err)
	}
	return st
}

// wantErrno fails the test unless err carries errno (one of them).
func wantErrno(t *testing.T, what string, err error, errnos ...syscall.Errno) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: succeeded, want %v", what, errnos)
		return
	}
	for _, e := range errnos {
		if errors.Is(err, e) {
			return
		}
	}
	t.Errorf("%s: %v, want %v", what, err, errnos)
}

// eventually polls cond every 100ms until it returns "" or timeout passes,
// then fails the test with cond's last complaint.
func eventually(t *testing.T, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("after %s: %s", timeout, msg)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// writeFile writes data to a new file in the mount with the usual
// open/write/close sequence and checks every step.
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

// readFile reads a file of the mount, failing the test on error.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return b
}

// withoutForks runs fn while no goroutine of this test process can fork.
// A fork copies every descriptor of the process, and the child's exec
// closes the copies; each close of a mount's file sends FLUSH. The mount
// uploads nothing for a process that only inherited the descriptor
// (fs/flushowner.go), but where it cannot tell the processes apart such a
// close uploads what the file holds then, as any close must. Parallel
// tests fork all the time (mounts, shell tools), so a test that asserts on
// what its own close uploads, or on a close's error, holds this from its
// open until that close or until the store is taken down, and does not
// depend on that. fn must not fork itself, nor wait long: other tests'
// commands wait for it.
func withoutForks(fn func()) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	fn()
}

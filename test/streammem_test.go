package test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Streaming from memory (fs/streammem.go): a sequential writer's newest
// bytes are uploaded from memory, not from the staging file, and reach
// the staging disk only when something needs them there.

// writerHelperEnv makes the test binary a writer process (runWriterHelper):
// the file is open in that process only, so the forks of parallel tests
// (which close their copies of this process's descriptors, each close a
// FLUSH that completes a stream) never touch it.
const writerHelperEnv = "BUCKETFS_TEST_WRITER"

// runWriterHelper runs a script of steps separated by ";" on one file:
//
//	open PATH          create or truncate PATH for writing
//	append PATH        open PATH with O_APPEND
//	write N SEED       write N bytes of randBytes(SEED, N), 1 MiB at a time
//	readback PATH N    read PATH through a second descriptor; it must be
//	                   N bytes, those written so far
//	pause FILE         create FILE and wait until it is removed
//	close              close; its error is the exit status (5 for EIO)
//	openrw PATH        create or truncate PATH for reading and writing
//	spawn N            run /bin/true N times (each a fork whose exec closes
//	                   its copy of the descriptor)
//	child STR          run a child process that writes STR through its
//	                   inherited copy of the descriptor and exits
//	mapchild OFF STR   run a child process that writes STR at OFF through a
//	                   shared mapping of its inherited copy and exits
//	truncchild N       run a child process that truncates the file to N
//	                   bytes through its inherited copy and exits
//	fd N               (in a child) take inherited descriptor N
//	writestr STR       write STR
//	mapwrite OFF STR   write STR at OFF through a shared mapping
//	truncate N         ftruncate to N bytes
//
// The descriptor and the program that writes it are this helper's, not
// the test process's: see writerHelperEnv.
func runWriterHelper(script string) int {
	var f *os.File
	var written []byte
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
		return 2
	}
	for _, step := range strings.Split(script, ";") {
		w := strings.Fields(step)
		var err error
		switch w[0] {
		case "open":
			f, err = os.OpenFile(w[1], os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
		case "append":
			f, err = os.OpenFile(w[1], os.O_APPEND|os.O_WRONLY, 0)
		case "write":
			n, _ := strconv.Atoi(w[1])
			seed, _ := strconv.ParseUint(w[2], 10, 64)
			b := randBytes(seed, n)
			for off := 0; off < n && err == nil; off += 1 << 20 {
				_, err = f.Write(b[off:min(off+1<<20, n)])
			}
			written = append(written, b...)
		case "readback":
			n, _ := strconv.Atoi(w[2])
			var got []byte
			if got, err = os.ReadFile(w[1]); err == nil && (len(got) != n || !bytes.Equal(got, written[len(written)-n:])) {
				return fail("readback: %d bytes, want the %d written so far (same: %v)", len(got), n, len(got) == n && bytes.Equal(got, written))
			}
		case "pause":
			if err = os.WriteFile(w[1], nil, 0o644); err == nil {
				for {
					if _, err := os.Stat(w[1]); err != nil {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		case "openrw":
			f, err = os.OpenFile(w[1], os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644)
		case "spawn":
			n, _ := strconv.Atoi(w[1])
			for i := 0; i < n && err == nil; i++ {
				err = exec.Command("/bin/true").Run()
			}
		case "child", "mapchild", "truncchild":
			child := "fd 3;writestr " + w[1]
			switch w[0] {
			case "mapchild":
				child = "fd 3;mapwrite " + w[1] + " " + w[2]
			case "truncchild":
				child = "fd 3;truncate " + w[1]
			}
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), writerHelperEnv+"="+child)
			cmd.ExtraFiles = []*os.File{f}
			cmd.Stderr = os.Stderr
			err = cmd.Run()
		case "fd":
			n, _ := strconv.Atoi(w[1])
			f = os.NewFile(uintptr(n), "inherited")
		case "truncate":
			n, _ := strconv.Atoi(w[1])
			err = f.Truncate(int64(n))
		case "writestr":
			_, err = f.WriteString(w[1])
		case "mapwrite":
			off, _ := strconv.Atoi(w[1])
			var m []byte
			if m, err = unix.Mmap(int(f.Fd()), 0, off+len(w[2]), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err == nil {
				copy(m[off:], w[2])
				err = unix.Munmap(m)
			}
		case "close":
			if err = f.Close(); err != nil {
				fmt.Fprintln(os.Stderr, "close:", err)
				if errno, ok := err.(*fs.PathError).Err.(syscall.Errno); ok && errno == syscall.EIO {
					return 5
				}
				return 3
			}
		}
		if err != nil {
			return fail("%s: %v", step, err)
		}
	}
	return 0
}

// writer starts runWriterHelper with script in the background.
func writer(t *testing.T, script string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), writerHelperEnv+"="+script)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// exitCode waits for cmd and returns its exit status.
func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0
}

// waitFile waits (up to a minute) for path to exist.
func waitFile(t *testing.T, path string) {
	t.Helper()
	eventually(t, time.Minute, func() string {
		if _, err := os.Stat(path); err != nil {
			return "waiting for the writer: " + err.Error()
		}
		return ""
	})
}

// stagedBytes returns the bytes the staging files under dir take on disk.
func stagedBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".data") {
			var st unix.Stat_t
			if unix.Stat(path, &st) == nil {
				total += st.Blocks * 512
			}
		}
		return nil
	})
	return total
}

// A 96 MiB sequential write stages its first 32 MiB only (what is written
// before the stream starts); reading the file back in mid-write is
// byte-exact (the memory is written to staging first), and the writer
// goes on to a byte-exact object.
func TestStreamFromMemory(t *testing.T) {
	t.Parallel()
	staging := t.TempDir()
	m := mount(t, withFlags("--staging-dir", staging))
	path, pause := m.Path("big"), filepath.Join(t.TempDir(), "pause")
	w := writer(t, fmt.Sprintf("open %s; write %d 71; pause %s; readback %s %d; write %d 72; close", path, 96<<20, pause, path, 96<<20, 16<<20))
	waitFile(t, pause)
	if got := stagedBytes(t, staging); got > 40<<20 {
		t.Errorf("a 96 MiB sequential write staged %d MiB, want the first 32 (the rest streams from memory)", got>>20)
	}
	os.Remove(pause)
	if code := exitCode(t, w); code != 0 {
		t.Fatalf("writer exited %d", code)
	}
	want := append(randBytes(71, 96<<20), randBytes(72, 16<<20)...)
	sameBytes(t, "big in the bucket", m.Get("big"), want)
}

// Broken behaviour 4 for a file streaming from memory: its close fails
// with the store down, the daemon is killed with -9, and the same command
// run again with the store back stores it whole: the EIO wrote every byte
// memory held to the staging file first.
func TestStreamFromMemoryFailedCloseSurvivesKill9(t *testing.T) {
	t.Parallel()
	staging := t.TempDir()
	m, p := mountBehindProxy(t, "--staging-dir", staging)
	const size = 80 << 20
	restore := failedStreamClose(t, m.Path("big"), p, size, 73)
	m.kill9AndDetach()
	restore()
	m2 := mount(t, onBucket(m.Bucket), withFlags("--endpoint", p.URL(), "--staging-dir", staging))
	objectIs(t, m2, "big", randBytes(73, size), 90*time.Second)
}

// Appending to a streaming file after its close failed (the last part was
// short) goes on: the store back, a new descriptor appends, and its close
// stores the whole file.
func TestStreamFromMemoryAppendAfterFailedClose(t *testing.T) {
	t.Parallel()
	m, p := mountBehindProxy(t)
	path := m.Path("big")
	const size = 48<<20 + 12345
	restore := failedStreamClose(t, path, p, size, 74)
	restore()
	w := writer(t, fmt.Sprintf("append %s; write %d 75; close", path, 20<<20))
	if code := exitCode(t, w); code != 0 {
		t.Fatalf("append after the failed close: writer exited %d", code)
	}
	want := append(randBytes(74, size), randBytes(75, 20<<20)...)
	objectIs(t, m, "big", want, 90*time.Second)
}

// failedStreamClose writes size bytes of randBytes(seed) to path in a
// writer process, takes the store down before its close and checks that
// the close failed with EIO. It returns what brings the store back.
func failedStreamClose(t *testing.T, path string, p *faultProxy, size int, seed uint64) (restore func()) {
	t.Helper()
	pause := filepath.Join(t.TempDir(), "pause")
	w := writer(t, fmt.Sprintf("open %s; write %d %d; pause %s; close", path, size, seed, pause))
	waitFile(t, pause)
	restore = storeDown(p)
	os.Remove(pause)
	if code := exitCode(t, w); code != 5 {
		restore()
		t.Fatalf("close with the store down: writer exited %d, want 5 (EIO)", code)
	}
	return restore
}

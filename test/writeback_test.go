package test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sys/unix"

	"github.com/novitalabs/bucketfs/internal/miniotest"
)

// The durable write path: each test reproduces one way the promise "close
// and fsync never succeed for data the bucket does not hold, and failed
// data is kept and uploaded later" used to break.

// storeDown makes every new connection to the store fail (TCP reset) and
// cuts the open ones, until the returned function restores it.
func storeDown(p *faultProxy) (restore func()) {
	p.set(func(p *faultProxy) { p.reset = true })
	p.closeAll(true)
	return func() { p.set(func(p *faultProxy) { p.reset = false }) }
}

// failedCloses creates and writes each file with the store up (a create
// needs a lookup, which needs the store), takes the store down and closes
// them, checking that every close reports EIO. It returns the function
// that brings the store back.
func failedCloses(t *testing.T, m *Mount, p *faultProxy, files map[string][]byte) (restore func()) {
	t.Helper()
	open := map[string]*os.File{}
	withoutForks(func() {
		for name, data := range files {
			f, err := os.Create(m.Path(name))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(data); err != nil {
				t.Fatal(err)
			}
			open[name] = f
		}
		restore = storeDown(p)
	})
	for name, f := range open {
		wantErrno(t, "close of "+name+" with the store down", f.Close(), syscall.EIO)
	}
	return restore
}

// mountBehindProxy mounts a fresh bucket through a fault proxy.
func mountBehindProxy(t *testing.T, extra ...string) (*Mount, *faultProxy) {
	t.Helper()
	needSuite(t)
	p := startFaultProxy(t, strings.TrimPrefix(sharedMinio.Endpoint, "http://"))
	m := mount(t, withFlags(append([]string{"--endpoint", p.URL(), "--stat-cache-ttl", "1s"}, extra...)...))
	return m, p
}

func dropKernelCaches(t *testing.T) {
	t.Helper()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0); err != nil {
		t.Skipf("cannot drop caches: %v", err)
	}
}

// objectIs waits until the bucket holds want under name.
func objectIs(t *testing.T, m *Mount, name string, want []byte, within time.Duration) {
	t.Helper()
	eventually(t, within, func() string {
		got, err := m.TryGet(name)
		if err != nil {
			return name + ": " + err.Error()
		}
		if !bytes.Equal(got, want) {
			return name + ": the bucket has " + sha(got) + ", want " + sha(want)
		}
		return ""
	})
}

// Broken behaviour 1: recovery cleared the dirty state of a file a writer
// had reopened; its next close returned 0 and uploaded nothing.
func TestWritebackReopenDuringRetries(t *testing.T) {
	t.Parallel()
	// A short retry window: the old code gave up after ~7 s whatever the
	// window; now nothing is given up while a writer has the file open.
	m, p := mountBehindProxy(t, "--upload-retry-time", "3s")
	first := randBytes(101, 64<<10)
	restore := failedCloses(t, m, p, map[string][]byte{"f": first})

	// Reopening a file whose close just failed works while the store is down.
	f, err := os.OpenFile(m.Path("f"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatalf("reopen with the store down: %v", err)
	}
	defer f.Close()
	time.Sleep(10 * time.Second) // several retries fail, the window passes
	restore()
	second := randBytes(102, 3000)
	if _, err := f.Write(second); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close after the store came back: %v", err)
	}
	// close returned 0: the bucket must hold both parts, now.
	got, err := m.TryGet("f")
	if err != nil {
		t.Fatalf("close returned 0 but the object is missing: %v", err)
	}
	sameBytes(t, "object after close", got, append(append([]byte{}, first...), second...))
}

// Broken behaviour 2: after a failed close the kernel forgot the node; a
// fresh node for the same name took new data; the old node's retry then
// uploaded its stale bytes over it (or brought back a removed file).
func TestWritebackForgottenNodeNeverOverwrites(t *testing.T) {
	t.Parallel()
	m, p := mountBehindProxy(t)
	old := []byte("old content, close failed\n")
	restore := failedCloses(t, m, p, map[string][]byte{"same": old, "removed": old})
	for range 3 {
		dropKernelCaches(t)
		time.Sleep(200 * time.Millisecond)
	}
	// While the store is down, the files are still there, with their data.
	if got := readFile(t, m.Path("same")); !bytes.Equal(got, old) {
		t.Errorf("after forget, the mount shows %q, want %q", got, old)
	}
	dropKernelCaches(t)
	restore()
	newer := []byte("new\n")
	if err := os.WriteFile(m.Path("same"), newer, 0o644); err != nil {
		t.Fatalf("overwrite: %v", err)
	}
	if err := os.Remove(m.Path("removed")); err != nil {
		t.Fatalf("rm: %v", err)
	}
	// Longer than any back-off of a stale retry.
	time.Sleep(8 * time.Second)
	if got, err := m.TryGet("same"); err != nil || !bytes.Equal(got, newer) {
		t.Errorf("the bucket has %q (%v) under same, want %q: a stale upload overwrote newer data", got, err, newer)
	}
	if m.Exists("removed") {
		t.Error("a removed file came back from a stale retry")
	}
	if _, err := os.Stat(m.Path("removed")); !os.IsNotExist(err) {
		t.Errorf("stat of the removed file: %v, want ENOENT", err)
	}
}

// Broken behaviour 2, directory rename: a forgotten node's pending data
// must follow its directory's rename.
func TestWritebackForgottenNodeFollowsDirRename(t *testing.T) {
	t.Parallel()
	m, p := mountBehindProxy(t)
	if err := os.Mkdir(m.Path("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	data := randBytes(103, 10000)
	restore := failedCloses(t, m, p, map[string][]byte{"d/f": data})
	for range 3 {
		dropKernelCaches(t)
		time.Sleep(200 * time.Millisecond)
	}
	restore()
	if err := os.Rename(m.Path("d"), m.Path("e")); err != nil {
		t.Fatalf("rename: %v", err)
	}
	objectIs(t, m, "e/f", data, 30*time.Second)
	time.Sleep(3 * time.Second)
	if m.Exists("d/f") {
		t.Error("d/f exists after the directory moved: a stale upload used the old key")
	}
	sameBytes(t, "e/f through the mount", readFile(t, m.Path("e/f")), data)
}

// Broken behaviour 3: open(O_TRUNC) of an existing object uploaded an
// empty object at once; if the write then failed, the old content was gone.
func TestWritebackOTruncIsAtomic(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	m, p := mountBehindProxy(t, "--metrics-addr", addr)
	oldData := randBytes(104, 5000)
	m.Put("f", oldData, nil)
	// Known to the mount first, so that open needs no lookup.
	if got := readFile(t, m.Path("f")); !bytes.Equal(got, oldData) {
		t.Fatal("read before truncate")
	}
	before, _ := scrape(t, addr)
	withoutForks(func() { // (CI caught another process's close uploading early)
		f, err := os.OpenFile(m.Path("f"), os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Nothing changed in the bucket at open.
		if got := m.Get("f"); !bytes.Equal(got, oldData) {
			t.Errorf("after open(O_TRUNC) the bucket has %d bytes, want the old %d: the object changed before any close", len(got), len(oldData))
		}
		if _, err := f.Write([]byte("new")); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	})
	after, _ := scrape(t, addr)
	const puts = `bucketfs_s3_requests_total{op="upload",outcome="ok"}`
	if n := after[puts] - before[puts]; n != 1 {
		t.Errorf("an overwrite with O_TRUNC sent %v uploads, want 1", n)
	}
	if got := m.Get("f"); string(got) != "new" {
		t.Errorf("object %q, want %q", got, "new")
	}

	// With the store down, a failed overwrite leaves the old object whole.
	m.Put("g", oldData, nil)
	readFile(t, m.Path("g"))
	var g *os.File
	var restore func()
	withoutForks(func() {
		var err error
		g, err = os.OpenFile(m.Path("g"), os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.Write([]byte("doomed")); err != nil {
			t.Fatal(err)
		}
		restore = storeDown(p)
	})
	wantErrno(t, "overwrite with the store down", g.Close(), syscall.EIO)
	if got, err := m.TryGet("g"); err != nil || !bytes.Equal(got, oldData) {
		t.Errorf("after a failed overwrite the bucket has %d bytes (%v), want the old object whole", len(got), err)
	}
	restore()
	objectIs(t, m, "g", []byte("doomed"), 60*time.Second) // then the retry lands it
}

// Broken behaviour 4 and the crash target: five files whose close failed,
// the daemon killed with -9, the same command run again, the store back:
// all five reach the bucket.
func TestWritebackSurvivesKill9(t *testing.T) {
	t.Parallel()
	m, p := mountBehindProxy(t)
	// A big file still being written when the daemon dies: its streaming
	// multipart upload is left behind in the store.
	streaming := randBytes(119, 40<<20)
	sf, err := os.Create(m.Path("streaming"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sf.Write(streaming); err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	want := map[string][]byte{}
	for i := range 5 {
		want["pending-"+string(rune('a'+i))] = randBytes(uint64(110+i), 100<<10+i)
	}
	restore := failedCloses(t, m, p, want)
	m.kill9AndDetach()
	restore()

	// The same bucket mounted again with default flags.
	start := time.Now()
	m2 := mount(t, onBucket(m.Bucket), withFlags("--endpoint", p.URL()))
	for name, data := range want {
		objectIs(t, m2, name, data, 90*time.Second-time.Since(start))
	}
	t.Logf("all five in the bucket %s after the restart", time.Since(start).Round(time.Millisecond))
	// The file being written at the kill is uploaded too, as far as its
	// staging file holds it (its close never returned): the first 32 MiB,
	// before its stream began; the newest bytes of a streaming writer are
	// in memory (--stream-memory) and go with the process, as nothing
	// acknowledged them. The multipart upload the killed daemon left is
	// aborted.
	eventually(t, 90*time.Second, func() string {
		got, err := m2.TryGet("streaming")
		switch {
		case err != nil:
			return err.Error()
		case len(got) < 32<<20 || !bytes.Equal(got, streaming[:len(got)]):
			return fmt.Sprintf("streaming: the bucket has %d bytes, want a prefix of the %d written, of at least 32 MiB", len(got), len(streaming))
		}
		return ""
	})
	eventually(t, 60*time.Second, func() string {
		ctx, cancel := s3ctx()
		defer cancel()
		out, err := m2.S3.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(m2.Bucket), Prefix: aws.String(m2.Key("streaming"))})
		if err != nil {
			return err.Error()
		}
		if len(out.Uploads) > 0 {
			return fmt.Sprintf("%d multipart uploads of the killed daemon are still open", len(out.Uploads))
		}
		return ""
	})
	for name, data := range want {
		sameBytes(t, name+" through the new mount", readFile(t, m2.Path(name)), data)
	}
}

// A file whose upload keeps failing stays in the mount (stat, read, append)
// through an outage and reaches the bucket when the store is back; the
// recovery directory is not involved.
func TestWritebackOutageKeepsFileInMount(t *testing.T) {
	t.Parallel()
	needSuite(t)
	srv := miniotest.StartT(t) // its own server: this test kills it
	recovery := filepath.Join(t.TempDir(), "recovery")
	m := mount(t, onServer(srv), withFlags("--recovery-dir", recovery, "--stat-cache-ttl", "1s"))
	data := randBytes(120, 20<<20+7)
	var f *os.File
	withoutForks(func() {
		var err error
		f, err = os.Create(m.Path("big"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := srv.Kill(); err != nil {
			t.Fatal(err)
		}
	})
	wantErrno(t, "close with MinIO down", f.Close(), syscall.EIO)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		st, err := os.Stat(m.Path("big"))
		if err != nil || st.Size() != int64(len(data)) {
			t.Fatalf("during the outage: stat %v, size %v; want the file with %d bytes", err, st, len(data))
		}
		time.Sleep(2 * time.Second)
	}
	sameBytes(t, "read during the outage", readFile(t, m.Path("big")), data)
	if ents, _ := os.ReadDir(recovery); len(ents) != 0 {
		t.Errorf("the recovery directory has %d entries during a 30 s outage", len(ents))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	objectIs(t, m, "big", data, 180*time.Second)
}

// A sequential writer's parts upload while it writes (streaming multipart):
// the object is a multipart object, byte-exact; a writer that seeks back
// into uploaded bytes, and one whose store fails mid-stream, still end
// with the exact content (the file is then uploaded whole).
func TestWritebackStreamingUpload(t *testing.T) {
	t.Parallel()
	m, p := mountBehindProxy(t)
	data := randBytes(130, 100<<20+17)
	writeChunks := func(name string, body []byte, afterEach func(written int)) (f *os.File) {
		t.Helper()
		withoutForks(func() {
			var err error
			f, err = os.Create(m.Path(name))
			if err != nil {
				t.Fatal(err)
			}
			for off := 0; off < len(body); off += 1 << 20 {
				if _, err := f.Write(body[off:min(len(body), off+1<<20)]); err != nil {
					t.Fatalf("%s: write at %d: %v", name, off, err)
				}
				if afterEach != nil {
					afterEach(off + 1<<20)
				}
			}
		})
		return f
	}

	f := writeChunks("seq", data, nil)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if etag := *m.Head("seq").ETag; !strings.Contains(etag, "-") {
		t.Errorf("ETag %s: not a multipart object, the file was not streamed", etag)
	}
	sameBytes(t, "streamed object", m.Get("seq"), data)

	// Seek back into bytes already handed to the stream.
	f = writeChunks("back", data, nil)
	patch := []byte("patched at the start")
	if _, err := f.WriteAt(patch, 10); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want := append([]byte{}, data...)
	copy(want[10:], patch)
	sameBytes(t, "object after a seek back", m.Get("back"), want)

	// The store fails while parts are uploading: close reports it, and
	// the file reaches the bucket whole once the store is back.
	var restore func()
	f = writeChunks("fail", data, func(written int) {
		if written == 60<<20 {
			restore = storeDown(p)
		}
	})
	wantErrno(t, "close with the store down mid-stream", f.Close(), syscall.EIO)
	restore()
	objectIs(t, m, "fail", data, 90*time.Second)
}

// The staging area is bounded (--staging-size): a write over the bound
// waits for uploads to release space, and fails with ENOSPC when nothing
// can drain; statfs reports the staging disk's real free space.
func TestWritebackStagingBound(t *testing.T) {
	t.Parallel()
	staging := filepath.Join(t.TempDir(), "staging")
	m := mount(t, withFlags("--staging-dir", staging, "--staging-size", "8MiB"))

	// Files closed one after another never hold more than one at a time.
	for i := range 4 {
		data := randBytes(uint64(140+i), 6<<20)
		name := "seq-" + string(rune('a'+i))
		writeFile(t, m.Path(name), data)
		objectIs(t, m, name, data, 30*time.Second)
	}

	// One writer holds 6 MiB open: another 6 MiB cannot be staged.
	held, err := os.Create(m.Path("held"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := held.Write(randBytes(150, 6<<20)); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(m.Path("refused"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Write(randBytes(151, 6<<20))
	wantErrno(t, "write over the staging bound", err, syscall.ENOSPC)
	f.Close()

	var got, want unix.Statfs_t
	if err := unix.Statfs(m.Dir, &got); err != nil {
		t.Fatal(err)
	}
	if err := unix.Statfs(staging, &want); err != nil {
		t.Fatal(err)
	}
	// The same disk: within 64 MiB of each other (other tests write too).
	diff := int64(got.Bavail*uint64(got.Bsize)) - int64(want.Bavail*uint64(want.Bsize))
	if diff < -64<<20 || diff > 64<<20 || got.Blocks != got.Bavail || got.Bfree != got.Bavail {
		t.Errorf("statfs of the mount: %d bytes free, %d total, %d blocks free of %d; the staging disk: %d free",
			got.Bavail*uint64(got.Bsize), got.Blocks*uint64(got.Bsize), got.Bfree, got.Blocks, want.Bavail*uint64(want.Bsize))
	}
}

// An overwrite streams as a new file does: dd over an existing object
// (open with O_TRUNC) larger than --staging-size stores it byte-exact
// through a streaming multipart upload. Emptied by truncating in place, a
// file once written never streamed again: the overwrite was staged whole
// and failed with ENOSPC at the bound.
func TestWritebackOverwriteStreams(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	staging := filepath.Join(t.TempDir(), "staging")
	m := mount(t, withFlags("--staging-dir", staging, "--staging-size", "48MiB", "--metrics-addr", addr))
	m.Put("big", randBytes(160, 70<<20), nil)
	data := randBytes(161, 80<<20+5)
	src := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	reqs := countRequests(t, addr, func() {
		// dd: a process that does not fork, so nothing flushes the
		// file mid-write (a fork of this test would close a copy).
		run(t, m.Dir, "dd", "if="+src, "of="+m.Path("big"), "bs=1M", "status=none")
	})
	t.Logf("overwriting 80 MiB: %v", reqs)
	if reqs["create_multipart"] != 1 || reqs["upload_part"] < 2 {
		t.Errorf("the overwrite sent %v, want one streaming multipart upload", reqs)
	}
	objectIs(t, m, "big", data, 30*time.Second)
}

// A file many times larger than the staging disk can be written: a 1 GiB
// sequential write with --staging-dir on a 192 MiB tmpfs streams its parts
// and releases them from staging once uploaded. Then, on the same small
// disk, an edit that needs released bytes again (a write near the start)
// still ends byte-exact.
func TestWritebackBiggerThanStagingDisk(t *testing.T) {
	t.Parallel()
	tmpfs := mountTmpfs(t, "192m")
	m := mount(t, withFlags("--staging-dir", tmpfs))

	// Written by dd, a process that does not fork: a fork of this test
	// process (parallel tests run commands) would close a copy of the
	// descriptor and flush the file mid-write. Generated chunk by chunk:
	// the -race runtime multiplies the memory of a 1 GiB buffer.
	const size, chunk = 1 << 30, 1 << 20
	patch := []byte("rewritten after release")
	const patchAt = 4096
	src := filepath.Join(t.TempDir(), "src")
	sf, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.New()
	for i := range size / chunk {
		b := randBytes(uint64(1000+i), chunk)
		if _, err := sf.Write(b); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			copy(b[patchAt:], patch)
		}
		want.Write(b)
	}
	if err := sf.Close(); err != nil {
		t.Fatal(err)
	}
	run(t, "", "dd", "if="+src, "of="+m.Path("huge"), "bs=1M", "status=none")
	os.Remove(src)
	// Then an edit of bytes that were released from staging long ago.
	f, err := os.OpenFile(m.Path("huge"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(patch, patchAt); err != nil {
		t.Fatalf("write into released bytes: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	objectHashIs(t, m, "huge", size, want.Sum(nil))

	// Flushes in mid-write (another descriptor of the file closed, as an
	// exec in any thread of the writer does with its close-on-exec copy)
	// after parts were released: each stores what was written so far,
	// never an upload of the released holes, and the writer goes on
	// streaming (its first bytes copied server-side), so the file can
	// still grow far past the staging area: 159 MiB after the last flush,
	// beyond the 96 MiB bound. Between 101 and 241 MiB a flush comes
	// every 20 MiB, too often for a stream to restart: each stores an
	// edit, whose bytes must leave the staging disk too (140 MiB of them
	// would not fit).
	const total = 400 << 20
	flushAt := map[int]bool{100 << 20 / chunk: true}
	for at := 101 << 20; at <= 241<<20; at += 20 << 20 {
		flushAt[at/chunk] = true
	}
	w, err := os.Create(m.Path("flushed"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	want2 := sha256.New()
	for i := range total / chunk {
		if flushAt[i] {
			other, err := os.OpenFile(m.Path("flushed"), os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := other.Close(); err != nil {
				t.Fatalf("flush in mid-write: %v", err)
			}
		}
		b := randBytes(uint64(5000+i), chunk)
		if _, err := w.Write(b); err != nil {
			t.Fatalf("write at %d MiB: %v", i, err)
		}
		want2.Write(b)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	objectHashIs(t, m, "flushed", total, want2.Sum(nil))
}

// objectHashIs checks the object's size and SHA-256, streaming its body.
func objectHashIs(t *testing.T, m *Mount, name string, size int64, want []byte) {
	t.Helper()
	ctx, cancel := s3ctx()
	defer cancel()
	out, err := m.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(m.Bucket), Key: aws.String(m.Key(name))})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	got := sha256.New()
	n, err := io.Copy(got, out.Body)
	if err != nil || n != size || !bytes.Equal(got.Sum(nil), want) {
		t.Fatalf("%s: %d bytes (%v), sha %x; want %d, sha %x", name, n, err, got.Sum(nil), size, want)
	}
}

// mountTmpfs mounts a tmpfs of size (mount(8)'s syntax, e.g. "192m") on a
// new directory, unmounted when the test ends; the test is skipped where
// no tmpfs can be mounted.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

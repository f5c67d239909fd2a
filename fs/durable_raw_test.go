package fs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/novitalabs/bucketfs/internal/faultstore"
	"github.com/novitalabs/bucketfs/internal/objstore"
)

// The durable write path's promises, checked through the raw FUSE
// interface (raw_test.go): they run as any user, without a mount.

// mutatingOps are the store operations that change the bucket.
var mutatingOps = []objstore.Op{objstore.OpUpload, objstore.OpCreateMultipart, objstore.OpUploadPart,
	objstore.OpUploadPartCopy, objstore.OpCompleteMultipart, objstore.OpCopy, objstore.OpDelete}

// mutations counts the calls that reached the wrapper and could change
// the bucket.
func (r *rawFS) mutations() int {
	n := 0
	for _, op := range mutatingOps {
		n += r.faults.Calls(op)
	}
	return n
}

// mustStoredOnce checks that exactly one upload reached the store (the
// failed ones stop at the fault wrapper): a stale generation uploaded
// before the right one, or the same data twice, would show as more.
func (r *rawFS) mustStoredOnce() {
	r.t.Helper()
	st := r.mem.Stats()
	if n := st[objstore.OpUpload].Calls + st[objstore.OpCompleteMultipart].Calls; n != 1 {
		r.t.Errorf("%d uploads reached the store, want 1", n)
	}
}

// failUploadsOf makes every upload of key fail until the handle is removed.
func (r *rawFS) failUploadsOf(key string) *faultstore.Handle {
	return r.faults.Add(faultstore.Rule{
		Ops:   []objstore.Op{objstore.OpUpload, objstore.OpCreateMultipart},
		Match: func(_ objstore.Op, k string) bool { return k == key },
		Err:   faultstore.ErrInjected,
	})
}

func TestRawOutageKeepsFileAndUploadsWhenBack(t *testing.T) {
	r := newRawFS(t, rawOptions{})
	if _, errno := r.lookup(rootIno, "a"); errno != syscall.ENOENT {
		t.Fatalf("lookup of a new name = %v, want ENOENT", errno)
	}
	r.faults.SetOutage(true)
	node, fh := r.create("a")
	r.write(node, fh, 0, []byte("hello"))
	if errno := r.close(node, fh); errno != syscall.EIO {
		t.Fatalf("close with the store down = %v, want EIO", errno)
	}

	// Still in the mount, with its size, while the store is down: by the
	// node the kernel holds, and by name after the kernel forgot it.
	if a, errno := r.getattr(node); errno != 0 || a.Size != 5 {
		t.Fatalf("getattr after the failed close: size %d, %v", a.Size, errno)
	}
	r.forget(node)
	ent, errno := r.lookup(rootIno, "a")
	if errno != 0 || ent.Attr.Size != 5 {
		t.Fatalf("lookup after forget with the store down: size %d, %v", ent.Attr.Size, errno)
	}
	node = ent.NodeId

	// Reopen with O_APPEND and add to it, store still down.
	fh, errno = r.open(node, syscall.O_WRONLY|syscall.O_APPEND)
	if errno != 0 {
		t.Fatalf("reopen O_APPEND with the store down: %v", errno)
	}
	r.write(node, fh, 5, []byte(" world"))
	if errno := r.flush(node, fh); errno != syscall.EIO {
		t.Fatalf("second close with the store down = %v, want EIO", errno)
	}
	r.release(node, fh)
	fh, errno = r.open(node, syscall.O_RDONLY)
	if errno != 0 {
		t.Fatalf("open for reading with the store down: %v", errno)
	}
	if b, errno := r.read(node, fh, 0, 64); errno != 0 || string(b) != "hello world" {
		t.Fatalf("read with the store down: %q, %v", b, errno)
	}
	r.release(node, fh)
	r.mustNoObject("a")

	// Store back: the retry loop, not a new close, uploads it.
	r.faults.SetOutage(false)
	r.waitObject("a", []byte("hello world"))
	r.waitSettled()
	r.mustStoredOnce()
	if a, errno := r.getattr(node); errno != 0 || a.Size != 11 {
		t.Fatalf("getattr after the upload: size %d, %v", a.Size, errno)
	}
}

func TestRawForgetAfterFailedFlushAdoptsState(t *testing.T) {
	r := newRawFS(t, rawOptions{})
	fail := r.failUploadsOf("f")
	node, fh := r.create("f")
	r.write(node, fh, 0, []byte("old"))
	if errno := r.close(node, fh); errno != syscall.EIO {
		t.Fatalf("close with failing uploads = %v, want EIO", errno)
	}
	a, _ := r.getattr(node)
	ino := a.Ino
	r.forget(node)

	ent, errno := r.lookup(rootIno, "f")
	if errno != 0 {
		t.Fatalf("lookup after forget: %v", errno)
	}
	if ent.Attr.Ino != ino || ent.Attr.Size != 3 {
		t.Fatalf("lookup after forget: ino %d size %d, want ino %d size 3 (the forgotten node's state)", ent.Attr.Ino, ent.Attr.Size, ino)
	}
	node = ent.NodeId
	fh, errno = r.open(node, syscall.O_RDWR|syscall.O_APPEND)
	if errno != 0 {
		t.Fatalf("open: %v", errno)
	}
	if b, errno := r.read(node, fh, 0, 16); errno != 0 || string(b) != "old" {
		t.Fatalf("read of the adopted data: %q, %v", b, errno)
	}
	r.write(node, fh, 3, []byte("+new"))
	fail.Remove()
	if errno := r.close(node, fh); errno != 0 {
		t.Fatalf("close with the store back: %v", errno)
	}
	r.waitObject("f", []byte("old+new"))

	// Whatever the old generation still had due must not land over it.
	r.forceRetries()
	r.waitSettled()
	if err := r.fsys.FlushAll(t.Context()); err != nil {
		t.Fatalf("FlushAll: %v", err)
	}
	if b, _ := r.object("f"); string(b) != "old+new" {
		t.Fatalf("object after retries settled = %q, want %q", b, "old+new")
	}
	r.mustStoredOnce()
}

func TestRawUnlinkAfterFailedFlushStaysRemoved(t *testing.T) {
	r := newRawFS(t, rawOptions{})
	// Two files: one whose node the kernel still holds, one it forgot
	// (unlinked by name through the registry).
	fail := r.failUploadsOf("held")
	failForgot := r.failUploadsOf("forgot")
	held, fh := r.create("held")
	r.write(held, fh, 0, []byte("stale"))
	if errno := r.close(held, fh); errno != syscall.EIO {
		t.Fatalf("close = %v, want EIO", errno)
	}
	forgot, fh := r.create("forgot")
	r.write(forgot, fh, 0, []byte("stale"))
	if errno := r.close(forgot, fh); errno != syscall.EIO {
		t.Fatalf("close = %v, want EIO", errno)
	}
	r.forget(forgot)
	if _, errno := r.lookup(rootIno, "forgot"); errno != 0 {
		t.Fatalf("lookup of the forgotten file: %v", errno)
	}

	for _, name := range []string{"held", "forgot"} {
		if errno := r.unlink(rootIno, name); errno != 0 {
			t.Fatalf("unlink %s: %v", name, errno)
		}
	}
	// The store is fine now: any retry of the removed files would land.
	fail.Remove()
	failForgot.Remove()
	before := r.faults.Calls(objstore.OpUpload)
	r.forceRetries()
	r.waitSettled()
	if err := r.fsys.FlushAll(t.Context()); err != nil {
		t.Fatalf("FlushAll: %v", err)
	}
	r.mustNoObject("held")
	r.mustNoObject("forgot")
	if n := r.faults.Calls(objstore.OpUpload) - before; n != 0 {
		t.Errorf("%d uploads after the unlinks, want none", n)
	}
	if _, errno := r.lookup(rootIno, "held"); errno != syscall.ENOENT {
		t.Errorf("lookup of an unlinked file = %v, want ENOENT", errno)
	}
}

// failedAndClosed creates key with data whose upload fails, closes it
// (EIO) and lets uploads of key work again.
func (r *rawFS) failedAndClosed(key, data string) uint64 {
	r.t.Helper()
	fail := r.failUploadsOf(key)
	defer fail.Remove()
	node, fh := r.create(key)
	r.write(node, fh, 0, []byte(data))
	if errno := r.close(node, fh); errno != syscall.EIO {
		r.t.Fatalf("close %s = %v, want EIO", key, errno)
	}
	return node
}

// TestRawReplacedFailedFileFreesStaging: a failed file that nobody has
// open and that leaves the namespace (unlink, a create over its forgotten
// node, a rename over it) must give back its staging bytes and its open
// staging file. Today markUnlinked drops its name, registry entry and
// staging files and, since no handle will ever release them, its charge
// and descriptor too (they leaked before: the staging area shrank for
// good).
func TestRawReplacedFailedFileFreesStaging(t *testing.T) {
	t.Run("unlink", func(t *testing.T) {
		r := newRawFS(t, rawOptions{})
		r.failedAndClosed("x", "stale")
		if errno := r.unlink(rootIno, "x"); errno != 0 {
			t.Fatalf("unlink: %v", errno)
		}
		r.mustNoObject("x")
	})
	t.Run("create over a forgotten node", func(t *testing.T) {
		r := newRawFS(t, rawOptions{})
		r.forget(r.failedAndClosed("x", "stale"))
		node, fh := r.create("x")
		r.write(node, fh, 0, []byte("new"))
		if errno := r.close(node, fh); errno != 0 {
			t.Fatalf("close: %v", errno)
		}
		r.forceRetries()
		r.waitSettled()
		if b, _ := r.object("x"); string(b) != "new" {
			t.Fatalf("object = %q, want %q", b, "new")
		}
	})
	t.Run("rename over", func(t *testing.T) {
		r := newRawFS(t, rawOptions{})
		r.failedAndClosed("x", "stale")
		node, fh := r.create("y")
		r.write(node, fh, 0, []byte("new"))
		if errno := r.close(node, fh); errno != 0 {
			t.Fatalf("close: %v", errno)
		}
		if errno := r.rename(rootIno, "y", rootIno, "x"); errno != 0 {
			t.Fatalf("rename: %v", errno)
		}
		r.forceRetries()
		r.waitSettled()
		if b, _ := r.object("x"); string(b) != "new" {
			t.Fatalf("object = %q, want %q", b, "new")
		}
		r.mustNoObject("y")
	})
}

func TestRawRenameDirWithFailedFile(t *testing.T) {
	r := newRawFS(t, rawOptions{})
	r.mkdir("d")
	fail := r.faults.Add(faultstore.Rule{
		Ops:       []objstore.Op{objstore.OpUpload, objstore.OpCreateMultipart},
		KeyPrefix: "d/",
		Err:       faultstore.ErrInjected,
	})
	// Two failed files: one whose node the kernel still holds, one it
	// forgot, which only the registry knows of.
	files := map[string]string{"held": "held data", "forgot": "forgotten data"}
	for name, data := range files {
		node, fh := r.create("d/" + name)
		r.write(node, fh, 0, []byte(data))
		if errno := r.close(node, fh); errno != syscall.EIO {
			t.Fatalf("close d/%s = %v, want EIO", name, errno)
		}
		if name == "forgot" {
			r.forget(node)
		}
	}
	// A directory rename first stores its pending files under their old
	// names: while that fails, so does the rename, and nothing moves.
	if errno := r.rename(rootIno, "d", rootIno, "e"); errno != syscall.EIO {
		t.Fatalf("rename while the files cannot be stored = %v, want EIO", errno)
	}
	if keys := r.mem.Keys(); len(keys) != 1 || keys[0] != "d/" {
		t.Fatalf("keys after the failed rename: %v, want only the d/ marker", keys)
	}
	fail.Remove()
	// Renamed well before the retry loop's first back-off ends: the
	// rename itself must carry both files, the forgotten one included.
	if errno := r.rename(rootIno, "d", rootIno, "e"); errno != 0 {
		t.Fatalf("rename d e: %v", errno)
	}
	for name, data := range files {
		r.waitObject("e/"+name, []byte(data))
	}
	r.forceRetries()
	r.waitSettled()
	if err := r.fsys.FlushAll(t.Context()); err != nil {
		t.Fatalf("FlushAll: %v", err)
	}
	for _, k := range r.mem.Keys() {
		if strings.HasPrefix(k, "d/") {
			t.Errorf("object %q under the old directory name", k)
		}
	}
	e := r.walk("e")
	for name, data := range files {
		ent, errno := r.lookup(e.NodeId, name)
		if errno != 0 || ent.Attr.Size != uint64(len(data)) {
			t.Errorf("lookup e/%s: size %d, %v", name, ent.Attr.Size, errno)
		}
	}
	if _, errno := r.lookup(rootIno, "d"); errno != syscall.ENOENT {
		t.Errorf("lookup of the old directory = %v, want ENOENT", errno)
	}
}

func TestRawOpenTruncSendsNothingUntilFlush(t *testing.T) {
	r := newRawFS(t, rawOptions{})
	r.mem.Put("k", []byte("the old content"), objstore.PutOptions{})
	ent := r.walk("k")
	before := r.mutations()
	fh, errno := r.open(ent.NodeId, syscall.O_WRONLY|syscall.O_TRUNC)
	if errno != 0 {
		t.Fatalf("open O_TRUNC: %v", errno)
	}
	if n := r.mutations() - before; n != 0 {
		t.Fatalf("open(O_TRUNC) made %d changing requests to the store, want none until flush", n)
	}
	if b, _ := r.object("k"); string(b) != "the old content" {
		t.Fatalf("object after open(O_TRUNC) = %q, want the old content until flush", b)
	}
	if a, errno := r.getattr(ent.NodeId); errno != 0 || a.Size != 0 {
		t.Fatalf("getattr after open(O_TRUNC): size %d, %v", a.Size, errno)
	}
	r.write(ent.NodeId, fh, 0, []byte("new"))
	if n := r.mutations() - before; n != 0 {
		t.Fatalf("a write made %d changing requests to the store before flush", n)
	}
	if errno := r.close(ent.NodeId, fh); errno != 0 {
		t.Fatalf("close: %v", errno)
	}
	if b, _ := r.object("k"); string(b) != "new" {
		t.Fatalf("object after close = %q, want %q", b, "new")
	}
	if n := r.faults.Calls(objstore.OpUpload); n != 1 {
		t.Errorf("%d uploads for one overwrite, want 1", n)
	}
	r.waitSettled()
}

// TestRawRetryNeverSendsAnOpenTruncatedFile: the retry loop uploads dirty
// files nobody has open. An O_TRUNC open empties the file before its handle
// exists; a retry pass in between (the hook runs one there) must not send
// the empty file over the old object, which changes only at the handle's
// flush. CI at 71c4e2a caught the window: TestWritebackOTruncIsAtomic found
// an empty object after a failed overwrite. A pass that picked the file
// before the open and uploads after it must not send it either.
func TestRawRetryNeverSendsAnOpenTruncatedFile(t *testing.T) {
	r := newRawFS(t, rawOptions{})
	r.mem.Put("k", []byte("the old content"), objstore.PutOptions{})
	ent := r.walk("k")
	testHookOpenTruncated = func(*Node) { r.forceRetries() }
	fh, errno := r.open(ent.NodeId, syscall.O_WRONLY|syscall.O_TRUNC)
	testHookOpenTruncated = nil
	if errno != 0 {
		t.Fatalf("open O_TRUNC: %v", errno)
	}
	if b, _ := r.object("k"); string(b) != "the old content" {
		t.Fatalf("object after open(O_TRUNC) and a retry pass = %q, want the old content until flush", b)
	}
	// Picked while closed and dirty, uploaded once open again: the
	// retry's upload leaves it to the open handle.
	n := r.fsys.registered("k")
	if n == nil {
		t.Fatal("the truncated file is not in the registry")
	}
	if errno := n.upload(context.Background(), "retry"); errno != 0 {
		t.Fatalf("retry upload: %v", errno)
	}
	if b, _ := r.object("k"); string(b) != "the old content" {
		t.Fatalf("object after a retry upload of the open file = %q, want the old content until flush", b)
	}
	r.write(ent.NodeId, fh, 0, []byte("new"))
	if errno := r.close(ent.NodeId, fh); errno != 0 {
		t.Fatalf("close: %v", errno)
	}
	if b, _ := r.object("k"); string(b) != "new" {
		t.Fatalf("object after close = %q, want %q", b, "new")
	}
}

func TestRawFlushAllCutOffKeepsStaged(t *testing.T) {
	staging := t.TempDir()
	r := newRawFS(t, rawOptions{stagingDir: staging, noChecks: true})
	// The first upload fails (close returns EIO), every later one hangs
	// until its context ends, as against a store that stopped answering.
	r.faults.Add(faultstore.Rule{Ops: []objstore.Op{objstore.OpUpload}, Times: 1, Err: faultstore.ErrInjected})
	hang := r.faults.Add(faultstore.Rule{Ops: []objstore.Op{objstore.OpUpload}, After: 1, Latency: 24 * time.Hour})
	node, fh := r.create("dir-less key")
	r.write(node, fh, 0, []byte("precious"))
	if errno := r.close(node, fh); errno != syscall.EIO {
		t.Fatalf("close = %v, want EIO", errno)
	}

	done := make(chan error, 1)
	go func() { done <- r.fsys.FlushAll(context.Background()) }()
	// An upload (the retry loop's, or FlushAll's own) is hanging now.
	waitFor(t, "an upload to hang", func() bool { return hang.Hits() >= 1 })
	r.fsys.CutOffUploads(errors.New("shutdown deadline"))
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("FlushAll did not return after CutOffUploads")
	}
	if err == nil || !strings.Contains(err.Error(), "dir-less key") {
		t.Fatalf("FlushAll = %v, want an error naming the key", err)
	}
	r.mustNoObject("dir-less key")
	for _, bad := range r.fsys.checkQuiescentInvariants() {
		t.Errorf("invariant after the cut-off: %s", bad)
	}
	r.fsys.Close()

	mustStaged(t, staging, "dir-less key", "precious")

	// The next filesystem on that staging directory registers the file at
	// once (it is in the mount before any upload) and uploads it.
	next := newRawFS(t, rawOptions{mem: r.mem, stagingDir: staging, outage: true})
	ent, errno := next.lookup(rootIno, "dir-less key")
	if errno != 0 || ent.Attr.Size != uint64(len("precious")) {
		t.Fatalf("lookup of the recovered file: size %d, %v", ent.Attr.Size, errno)
	}
	next.faults.SetOutage(false)
	next.fsys.wakeRetries()
	next.waitObject("dir-less key", []byte("precious"))
	next.waitSettled()
	next.mustStoredOnce()
	waitFor(t, "the staging files to go", func() bool {
		left, _ := filepath.Glob(filepath.Join(staging, "*"))
		return len(left) == 0
	})
}

// A streaming writer whose file is flushed again and again in mid-write
// (another thread's close, an exec closing a copy of the descriptor) must
// store exactly what it wrote: each flush completes the stream, the file
// goes on as an edit of what it stored, streams again, and the stored
// bytes are released from staging. Parts are slow to read their bodies,
// so a part still uploading when a flush releases staged bytes, or a
// second stream started beside the one being completed, would show as
// wrong bytes.
func TestRawFlushesInMidStreamKeepBytes(t *testing.T) {
	r := newRawFS(t, rawOptions{})
	r.faults.Add(faultstore.Rule{Ops: []objstore.Op{objstore.OpUploadPart}, Latency: 5 * time.Millisecond})
	node, fh := r.create("big")
	const chunk, size = 256 << 10, 120 << 20
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(i/chunk*7 + i%251 + 1) // no zero run, every chunk its own
	}
	done := make(chan struct{})
	flushed := make(chan int)
	go func() {
		n := 0
		defer func() { flushed <- n }()
		for {
			select {
			case <-done:
				return
			case <-time.After(15 * time.Millisecond):
			}
			if errno := r.flush(node, fh); errno != 0 {
				t.Errorf("flush in mid-write: %v", errno)
				return
			}
			n++
		}
	}()
	for off := 0; off < size; off += chunk {
		r.write(node, fh, int64(off), want[off:off+chunk])
	}
	close(done)
	n := <-flushed
	if errno := r.close(node, fh); errno != 0 {
		t.Fatalf("close: %v", errno)
	}
	got, ok := r.object("big")
	if !ok {
		t.Fatal("no object after close returned 0")
	}
	if len(got) != size {
		t.Fatalf("object has %d bytes, want %d", len(got), size)
	}
	for mib := 0; mib < size>>20; mib++ {
		if a, b := got[mib<<20:(mib+1)<<20], want[mib<<20:(mib+1)<<20]; !bytes.Equal(a, b) {
			t.Fatalf("object differs from the bytes written at MiB %d (%d flushes in mid-write)", mib, n)
		}
	}
	t.Logf("%d flushes in mid-write", n)
}

// A reader that has read part of an object keeps reading that version, or
// gets ESTALE, after a refresh (its attributes expired) finds another
// writer's version: never the old version's start and the new one's rest.
func TestRawReplacedWhileReadingNeverMixes(t *testing.T) {
	r := newRawFS(t, rawOptions{})
	const size = 16 << 20
	v1, v2 := make([]byte, size), make([]byte, size)
	for i := range v1 {
		v1[i], v2[i] = byte(i%253+1), byte(i%241+2)
	}
	r.mem.Put("obj", v1, objstore.PutOptions{})
	node := r.walk("obj").NodeId
	fh, errno := r.open(node, syscall.O_RDONLY)
	if errno != 0 {
		t.Fatal(errno)
	}
	defer r.release(node, fh)
	const chunk = 128 << 10
	var got []byte
	for off := 0; off < 1<<20; off += chunk {
		b, errno := r.read(node, fh, int64(off), chunk)
		if errno != 0 {
			t.Fatalf("read at %d before the replacement: %v", off, errno)
		}
		got = append(got, b...)
	}
	r.mem.Put("obj", v2, objstore.PutOptions{})
	time.Sleep(1100 * time.Millisecond) // past StatCacheTTL
	if a, errno := r.getattr(node); errno != 0 || a.Size != size {
		t.Fatalf("getattr after the replacement: %d bytes, %v", a.Size, errno)
	}
	for off := len(got); off < size; off += chunk {
		b, errno := r.read(node, fh, int64(off), chunk)
		if errno == syscall.ESTALE {
			break
		}
		if errno != 0 {
			t.Fatalf("read at %d after the replacement: %v, want the old bytes or ESTALE", off, errno)
		}
		got = append(got, b...)
	}
	for mib := 0; mib < len(got)>>20; mib++ {
		if !bytes.Equal(got[mib<<20:(mib+1)<<20], v1[mib<<20:(mib+1)<<20]) {
			t.Fatalf("MiB %d of the read is not the version the read began with", mib)
		}
	}
	t.Logf("read %d MiB of the old version before ESTALE or the end", len(got)>>20)
}

// TestRawCloseFailsFastAfterFailedUpload: a close of data whose upload
// failed just now answers that failure without another attempt (every
// exec of a program holding the file closes a copy of its descriptor);
// new data, or a close after closeFailsFast, tries again, and once the
// store takes it the close succeeds.
func TestRawCloseFailsFastAfterFailedUpload(t *testing.T) {
	r := newRawFS(t, rawOptions{})
	if _, errno := r.lookup(rootIno, "a"); errno != syscall.ENOENT {
		t.Fatalf("lookup of a new name = %v, want ENOENT", errno)
	}
	h := r.failUploadsOf("a")
	node, fh := r.create("a")
	fh2, errno := r.open(node, syscall.O_WRONLY)
	if errno != 0 {
		t.Fatalf("second open: %v", errno)
	}
	uploads := func() int {
		return r.faults.Calls(objstore.OpUpload) + r.faults.Calls(objstore.OpCreateMultipart)
	}
	r.write(node, fh, 0, []byte("one"))
	if errno := r.flush(node, fh); errno != syscall.EIO {
		t.Fatalf("flush with uploads failing = %v, want EIO", errno)
	}
	tried := uploads()
	if errno := r.flush(node, fh2); errno != syscall.EIO {
		t.Fatalf("second flush = %v, want EIO", errno)
	}
	if n := uploads(); n != tried {
		t.Errorf("a flush right after a failed upload of the same data tried again (%d attempts, was %d)", n, tried)
	}
	r.write(node, fh, 3, []byte("two"))
	if errno := r.flush(node, fh2); errno != syscall.EIO || uploads() == tried {
		t.Errorf("flush of new data = %v after %d attempts (was %d), want EIO after a new attempt", errno, uploads(), tried)
	}
	h.Remove()
	time.Sleep(closeFailsFast + 100*time.Millisecond)
	if errno := r.flush(node, fh2); errno != 0 {
		t.Fatalf("flush with the store back, after the fail-fast window = %v", errno)
	}
	if got, ok := r.object("a"); !ok || string(got) != "onetwo" {
		t.Errorf("object %q (%v), want \"onetwo\"", got, ok)
	}
	r.release(node, fh)
	r.release(node, fh2)
}

// TestRawUnlinkWhileStreamStarts: an unlink that runs while a writer's
// streaming upload is being created (CreateMultipartUpload in flight) must
// not leave a stream behind on the unlinked file: its parts would upload
// for a name that is gone, and its released bytes would be lost to the
// open descriptor. The descriptor keeps reading what it wrote, nothing is
// stored, and no multipart upload is left.
func TestRawUnlinkWhileStreamStarts(t *testing.T) {
	r := newRawFS(t, rawOptions{})
	slow := r.faults.Add(faultstore.Rule{Ops: []objstore.Op{objstore.OpCreateMultipart}, Latency: 300 * time.Millisecond})
	defer slow.Remove()
	node, fh := r.create("big")
	const chunk, size = 1 << 20, streamMinSize + 8<<20
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(i/chunk*13 + i%241 + 1)
	}
	for off := 0; off < streamMinSize-chunk; off += chunk {
		r.write(node, fh, int64(off), want[off:off+chunk])
	}
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for off := streamMinSize - chunk; off < size; off += chunk {
			r.write(node, fh, int64(off), want[off:off+chunk])
		}
	}()
	waitFor(t, "the stream's CreateMultipartUpload", func() bool { return r.faults.Calls(objstore.OpCreateMultipart) > 0 })
	if errno := r.unlink(rootIno, "big"); errno != 0 {
		t.Fatalf("unlink: %v", errno)
	}
	<-wrote
	got, errno := r.read(node, fh, 0, size)
	if errno != 0 {
		t.Fatalf("read of the unlinked open file: %v", errno)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the unlinked open file reads %d bytes that differ from the %d written", len(got), size)
	}
	if errno := r.close(node, fh); errno != 0 {
		t.Fatalf("close of the unlinked file: %v", errno)
	}
	r.waitSettled()
	r.mustNoObject("big")
	ups, err := r.mem.ListMultipart(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ups) != 0 {
		t.Fatalf("%d multipart uploads left after the unlinked file was closed: %+v", len(ups), ups)
	}
}

// Two staged versions of one key (a crash in the instant a file emptied by
// O_TRUNC had its new staging file and not yet dropped the old one): the
// next filesystem uploads the one saved last, and moves the other to the
// recovery directory, where nothing uploads it over the newer.
func TestRawRestartKeepsNewerStagedVersion(t *testing.T) {
	staging := t.TempDir()
	saved := time.Now().Add(-time.Minute)
	stage := func(id, data string, at time.Time) {
		b, err := json.Marshal(sidecar{Format: sidecarFormat, Key: "k", Size: int64(len(data)),
			State: stateFailed.String(), Mode: 0o644, MtimeNs: at.UnixNano(), Saved: at})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(staging, id+sidecarSuffix), b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(staging, id+dataSuffix), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Named so that the older sorts last and the newer first, and the
	// other way round: the choice must not follow directory order.
	for _, ids := range [][2]string{{"b-older", "a-newer"}, {"a-older", "b-newer"}} {
		stage(ids[0], "old bytes", saved)
		stage(ids[1], "new", saved.Add(time.Second))
		r := newRawFS(t, rawOptions{stagingDir: staging, noChecks: true})
		r.waitObject("k", []byte("new"))
		r.waitSettled()
		if b, err := os.ReadFile(filepath.Join(r.fsys.cfg.RecoveryDir, ids[0]+".k"+dataSuffix)); err != nil || string(b) != "old bytes" {
			t.Errorf("%s: the older version in the recovery directory: %q, %v", ids[0], b, err)
		}
		r.fsys.Close()
		if left, _ := filepath.Glob(filepath.Join(staging, "*")); len(left) != 0 {
			t.Errorf("left in staging: %v", left)
		}
	}
}

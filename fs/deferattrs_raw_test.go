package fs

import (
	"fmt"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Attributes set on a file being written (Setattr): fchmod, fchown and
// futimens reach the filesystem as setattrs without a handle, like their
// by-path forms. While a handle has been written through since its last
// FLUSH they wait for the close; otherwise they are stored at once.

// setattr sends a setattr with no file handle, as fchmod, fchown,
// futimens and their by-path forms do.
func (r *rawFS) setattr(node uint64, in fuse.SetAttrIn) syscall.Errno {
	in.InHeader = hdr(node)
	var out fuse.AttrOut
	return errnoOf(r.raw.SetAttr(nil, &in, &out))
}

// tarAttrs is what tar -x as root sets on each file before closing it.
func tarAttrs() []fuse.SetAttrIn {
	var mtime, owner, mode fuse.SetAttrIn
	mtime.Valid, mtime.Mtime = fuse.FATTR_MTIME, 1500000000
	owner.Valid, owner.Uid, owner.Gid = fuse.FATTR_UID|fuse.FATTR_GID, 1234, 5678
	mode.Valid, mode.Mode = fuse.FATTR_MODE, syscall.S_IFREG|0o751
	return []fuse.SetAttrIn{mtime, owner, mode}
}

// setattrs sends each of ins, failing the test on an error.
func (r *rawFS) setattrs(node uint64, ins []fuse.SetAttrIn) {
	r.t.Helper()
	for _, in := range ins {
		if errno := r.setattr(node, in); errno != 0 {
			r.t.Fatalf("setattr %#x: %v", in.Valid, errno)
		}
	}
}

// setattrsBeforeClose sends ins to a file the test has just written or
// created, and checks that nothing reached the bucket: its close is to come.
func (r *rawFS) setattrsBeforeClose(node uint64, ins []fuse.SetAttrIn) {
	r.t.Helper()
	r.setattrs(node, ins)
	if n := r.mutations(); n != 0 {
		r.t.Errorf("%d requests changed the bucket before the close, want none", n)
	}
}

// mustTarAttrs checks that key's object carries tarAttrs.
func (r *rawFS) mustTarAttrs(key string) {
	r.t.Helper()
	_, info, ok := r.mem.Object(key)
	if !ok {
		r.t.Fatalf("object %q missing", key)
	}
	want := map[string]string{"mtime": "1500000000", "uid": "1234", "gid": "5678", "mode": fmt.Sprint(syscall.S_IFREG | 0o751)}
	for k, v := range want {
		if got := info.Metadata[k]; got != v {
			r.t.Errorf("object %q: %s = %q, want %q", key, k, got, v)
		}
	}
}

func TestRawAttrsBeforeCloseRideTheUpload(t *testing.T) {
	r := newRawFS(t, rawOptions{})
	node, fh := r.create("f")
	r.write(node, fh, 0, []byte("data"))
	r.setattrsBeforeClose(node, tarAttrs())
	if errno := r.close(node, fh); errno != 0 {
		t.Fatalf("close: %v", errno)
	}
	r.waitObject("f", []byte("data"))
	r.mustStoredOnce()
	if n := r.mutations(); n != 1 {
		t.Errorf("%d requests changed the bucket, want the one upload", n)
	}
	r.mustTarAttrs("f")
	if a, errno := r.getattr(node); errno != 0 || a.Mtime != 1500000000 || a.Mode != syscall.S_IFREG|0o751 || a.Uid != 1234 {
		t.Errorf("getattr after close: mtime %d mode %#o uid %d, %v", a.Mtime, a.Mode, a.Uid, errno)
	}
}

// After a FLUSH no close may come (the kernel sends RELEASE later, and
// nothing else): a setattr then is stored before it returns, and reports
// the store's error.
func TestRawAttrsAfterFlushAreStoredAtOnce(t *testing.T) {
	r := newRawFS(t, rawOptions{})
	node, fh := r.create("f")
	r.write(node, fh, 0, []byte("data"))
	if errno := r.flush(node, fh); errno != 0 {
		t.Fatalf("flush: %v", errno)
	}
	var mode fuse.SetAttrIn
	mode.Valid, mode.Mode = fuse.FATTR_MODE, syscall.S_IFREG|0o600
	if errno := r.setattr(node, mode); errno != 0 {
		t.Fatalf("chmod after the flush: %v", errno)
	}
	if _, info, _ := r.mem.Object("f"); info.Metadata["mode"] != fmt.Sprint(syscall.S_IFREG|0o600) {
		t.Errorf("chmod after the flush returned before the object had the mode: %q", info.Metadata["mode"])
	}
	r.faults.SetOutage(true)
	mode.Mode = syscall.S_IFREG | 0o644
	if errno := r.setattr(node, mode); errno != syscall.EIO {
		t.Errorf("chmod after the flush with the store down = %v, want EIO", errno)
	}
	r.faults.SetOutage(false)
	r.release(node, fh)
}

// A close that fails reports the attributes' loss as its data's: the file
// stays pending with both and the retry stores them together.
func TestRawDeferredAttrsSurviveAFailedClose(t *testing.T) {
	r := newRawFS(t, rawOptions{})
	fail := r.failUploadsOf("f")
	node, fh := r.create("f")
	r.write(node, fh, 0, []byte("data"))
	r.setattrs(node, tarAttrs())
	if errno := r.close(node, fh); errno != syscall.EIO {
		t.Fatalf("close with failing uploads = %v, want EIO", errno)
	}
	r.mustNoObject("f")
	fail.Remove()
	r.forceRetries()
	r.waitObject("f", []byte("data"))
	r.waitSettled()
	r.mustTarAttrs("f")
}

// An empty file made by tar gets its attributes before any write: they
// wait for the close too, which stores the empty object once.
func TestRawAttrsOfAnEmptyNewFileRideTheUpload(t *testing.T) {
	r := newRawFS(t, rawOptions{})
	node, fh := r.create("empty")
	r.setattrsBeforeClose(node, tarAttrs())
	if errno := r.close(node, fh); errno != 0 {
		t.Fatalf("close: %v", errno)
	}
	r.waitObject("empty", nil)
	r.mustStoredOnce()
	r.mustTarAttrs("empty")
}

// open(O_TRUNC) then fchmod before the first write: the old object stays
// whole until the close, which stores the new content with the new mode.
func TestRawAttrsAfterOTruncWaitForTheClose(t *testing.T) {
	r := newRawFS(t, rawOptions{})
	node, fh := r.create("f")
	r.write(node, fh, 0, []byte("old content"))
	if errno := r.close(node, fh); errno != 0 {
		t.Fatalf("first close: %v", errno)
	}
	before := r.mutations()
	fh, errno := r.open(node, syscall.O_WRONLY|syscall.O_TRUNC)
	if errno != 0 {
		t.Fatalf("open O_TRUNC: %v", errno)
	}
	r.setattrs(node, tarAttrs()[1:]) // owner and mode: the write sets the mtime
	if n := r.mutations() - before; n != 0 {
		t.Errorf("%d requests changed the bucket between open(O_TRUNC) and the first write, want none", n)
	}
	if b, _ := r.object("f"); string(b) != "old content" {
		t.Errorf("object before the close = %q, want the old content", b)
	}
	r.write(node, fh, 0, []byte("new"))
	if errno := r.close(node, fh); errno != 0 {
		t.Fatalf("close: %v", errno)
	}
	r.waitObject("f", []byte("new"))
	if n := r.mutations() - before; n != 1 {
		t.Errorf("%d requests changed the bucket for the rewrite, want the one upload", n)
	}
	if _, info, _ := r.mem.Object("f"); info.Metadata["mode"] != fmt.Sprint(syscall.S_IFREG|0o751) || info.Metadata["uid"] != "1234" {
		t.Errorf("object after the close: mode %q uid %q, want %d 1234", info.Metadata["mode"], info.Metadata["uid"], syscall.S_IFREG|0o751)
	}
}

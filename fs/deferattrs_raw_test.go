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
	for _, in := range tarAttrs() {
		if errno := r.setattr(node, in); errno != 0 {
			t.Fatalf("setattr %#x: %v", in.Valid, errno)
		}
	}
	if n := r.mutations(); n != 0 {
		t.Errorf("%d requests changed the bucket before the close, want none", n)
	}
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
	for _, in := range tarAttrs() {
		if errno := r.setattr(node, in); errno != 0 {
			t.Fatalf("setattr %#x: %v", in.Valid, errno)
		}
	}
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

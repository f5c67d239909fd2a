package fs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/novitalabs/bucketfs/internal/faultstore"
	"github.com/novitalabs/bucketfs/internal/memstore"
)

// rawFS drives the filesystem through go-fuse's RawFileSystem, the layer
// the kernel's requests arrive at, with no kernel in between: no mount, no
// /dev/fuse, no root. The test plays the kernel: it looks names up before
// using them, keeps the lookup counts the kernel would, flushes before
// releasing, and sends FORGET when it wants the node dropped (as
// drop_caches does). What a real kernel does that this does not (page
// cache, readahead, interrupts) is the mounted tests' and test/'s job.
type rawFS struct {
	t      *testing.T
	fsys   *FS
	raw    fuse.RawFileSystem
	mem    *memstore.Store
	faults *faultstore.Store

	mu      sync.Mutex        // guards lookups
	lookups map[uint64]uint64 // node id → lookups the "kernel" holds
}

// rawOptions tune newRawFS; the zero value is a fresh store and staging
// directory.
type rawOptions struct {
	mem        *memstore.Store // nil: a new one
	stagingDir string          // "": a new one
	// noChecks skips the invariant checks at cleanup (a test that hands
	// the staging directory to a second filesystem checks that one).
	noChecks bool
	// outage starts the store down, before New picks anything up.
	outage bool
}

// newRawFS builds a filesystem over faultstore(memstore), as the daemon
// builds it over S3 (cmd/bucketfs/run.go), and the raw bridge over it.
// Cleanup checks the registry's invariants (those that hold at rest too:
// the test must have released its handles) and closes the filesystem.
func newRawFS(t *testing.T, o rawOptions) *rawFS {
	t.Helper()
	if o.mem == nil {
		o.mem = memstore.New(memstore.Options{})
	}
	if o.stagingDir == "" {
		o.stagingDir = t.TempDir()
	}
	faults := faultstore.New(o.mem)
	faults.SetOutage(o.outage)
	fsys, err := New(Config{
		Store:        faults,
		StatCacheTTL: time.Second,
		StagingDir:   o.stagingDir,
		RecoveryDir:  t.TempDir(),
		// No file may reach the recovery directory during a test: every
		// failed file must stay in the mount until the store is back.
		RetryFor: time.Hour,
		FileMode: 0o644,
		DirMode:  0o755,
	})
	if err != nil {
		t.Fatal(err)
	}
	ttl := time.Second
	raw := gofs.NewNodeFS(fsys.root, &gofs.Options{
		EntryTimeout:    &ttl,
		AttrTimeout:     &ttl,
		NegativeTimeout: &ttl,
		NullPermissions: true,
		RootStableAttr:  &gofs.StableAttr{Ino: rootIno, Mode: syscall.S_IFDIR},
		// Without a server, notifications (page-cache pushes) go here.
		// Init must not be called: it would replace these with a nil
		// *fuse.Server.
		ServerCallbacks: noKernel{},
	})
	r := &rawFS{t: t, fsys: fsys, raw: raw, mem: o.mem, faults: faults, lookups: map[uint64]uint64{}}
	t.Cleanup(func() {
		if !o.noChecks {
			for _, bad := range fsys.checkInvariants() {
				t.Errorf("invariant: %s", bad)
			}
		}
		if !o.noChecks {
			for _, bad := range fsys.checkQuiescentInvariants() {
				t.Errorf("invariant at rest: %s", bad)
			}
		}
		fsys.Close()
	})
	return r
}

// noKernel answers go-fuse's notifications as a kernel without the
// feature would.
type noKernel struct{}

func (noKernel) DeleteNotify(parent, child uint64, name string) fuse.Status { return fuse.ENOSYS }
func (noKernel) EntryNotify(parent uint64, name string) fuse.Status         { return fuse.ENOSYS }
func (noKernel) InodeNotify(node uint64, off, length int64) fuse.Status     { return fuse.ENOSYS }
func (noKernel) InodeRetrieveCache(node uint64, offset int64, dest []byte) (int, fuse.Status) {
	return 0, fuse.ENOSYS
}
func (noKernel) InodeNotifyStoreCache(node uint64, offset int64, data []byte) fuse.Status {
	return fuse.ENOSYS
}

// hdr is the header of a request from this process's user.
func hdr(node uint64) fuse.InHeader {
	return fuse.InHeader{NodeId: node, Caller: fuse.Caller{
		Owner: fuse.Owner{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())}, Pid: uint32(os.Getpid())}}
}

func errnoOf(s fuse.Status) syscall.Errno { return syscall.Errno(s) }

// noteLookup records one more kernel reference on a node id.
func (r *rawFS) noteLookup(id uint64) {
	r.mu.Lock()
	r.lookups[id]++
	r.mu.Unlock()
}

// lookup resolves name in the directory parent.
func (r *rawFS) lookup(parent uint64, name string) (fuse.EntryOut, syscall.Errno) {
	var out fuse.EntryOut
	h := hdr(parent)
	st := r.raw.Lookup(nil, &h, name, &out)
	if st == fuse.OK && out.NodeId != 0 {
		r.noteLookup(out.NodeId)
	} else if st == fuse.OK {
		st = fuse.ENOENT // a negative entry cached by the kernel
	}
	return out, errnoOf(st)
}

// walk looks up every component of path from the root and returns the
// entry of the last one.
func (r *rawFS) walk(path string) fuse.EntryOut {
	r.t.Helper()
	out := fuse.EntryOut{NodeId: rootIno}
	for _, name := range strings.Split(path, "/") {
		var errno syscall.Errno
		if out, errno = r.lookup(out.NodeId, name); errno != 0 {
			r.t.Fatalf("lookup %q of %q: %v", name, path, errno)
		}
	}
	return out
}

// parentOf returns the node id of path's directory and path's last name.
func (r *rawFS) parentOf(path string) (uint64, string) {
	r.t.Helper()
	dir, name := "", path
	if i := strings.LastIndex(path, "/"); i >= 0 {
		dir, name = path[:i], path[i+1:]
	}
	if dir == "" {
		return rootIno, name
	}
	return r.walk(dir).NodeId, name
}

// create creates path (its directory must exist) open for writing, as
// open(O_CREAT|O_WRONLY) does after a negative lookup.
func (r *rawFS) create(path string) (node, fh uint64) {
	r.t.Helper()
	parent, name := r.parentOf(path)
	in := fuse.CreateIn{InHeader: hdr(parent), Flags: syscall.O_WRONLY | syscall.O_CREAT, Mode: syscall.S_IFREG | 0o644}
	var out fuse.CreateOut
	if st := r.raw.Create(nil, &in, name, &out); st != fuse.OK {
		r.t.Fatalf("create %q: %v", path, st)
	}
	r.noteLookup(out.NodeId)
	return out.NodeId, out.Fh
}

// mkdir creates the directory path.
func (r *rawFS) mkdir(path string) uint64 {
	r.t.Helper()
	parent, name := r.parentOf(path)
	in := fuse.MkdirIn{InHeader: hdr(parent), Mode: 0o755}
	var out fuse.EntryOut
	if st := r.raw.Mkdir(nil, &in, name, &out); st != fuse.OK {
		r.t.Fatalf("mkdir %q: %v", path, st)
	}
	r.noteLookup(out.NodeId)
	return out.NodeId
}

// open opens node with flags.
func (r *rawFS) open(node uint64, flags uint32) (uint64, syscall.Errno) {
	in := fuse.OpenIn{InHeader: hdr(node), Flags: flags}
	var out fuse.OpenOut
	st := r.raw.Open(nil, &in, &out)
	return out.Fh, errnoOf(st)
}

// write writes data at off through the handle fh and fails the test on a
// short or failed write.
func (r *rawFS) write(node, fh uint64, off int64, data []byte) {
	r.t.Helper()
	in := fuse.WriteIn{InHeader: hdr(node), Fh: fh, Offset: uint64(off), Size: uint32(len(data))}
	n, st := r.raw.Write(nil, &in, data)
	if st != fuse.OK || int(n) != len(data) {
		r.t.Fatalf("write node %d at %d: %d bytes, %v", node, off, n, st)
	}
}

// read reads up to size bytes at off through fh.
func (r *rawFS) read(node, fh uint64, off int64, size int) ([]byte, syscall.Errno) {
	in := fuse.ReadIn{InHeader: hdr(node), Fh: fh, Offset: uint64(off), Size: uint32(size)}
	buf := make([]byte, size)
	res, st := r.raw.Read(nil, &in, buf)
	if st != fuse.OK {
		return nil, errnoOf(st)
	}
	defer res.Done()
	b, st := res.Bytes(buf)
	return bytes.Clone(b), errnoOf(st)
}

// flush is what close(2) sends first; its result is close's.
func (r *rawFS) flush(node, fh uint64) syscall.Errno {
	in := fuse.FlushIn{InHeader: hdr(node), Fh: fh}
	return errnoOf(r.raw.Flush(nil, &in))
}

// release drops the handle, as the kernel does after the last close.
func (r *rawFS) release(node, fh uint64) {
	in := fuse.ReleaseIn{InHeader: hdr(node), Fh: fh}
	r.raw.Release(nil, &in)
}

// close is close(2) on the last descriptor: flush, then release.
func (r *rawFS) close(node, fh uint64) syscall.Errno {
	errno := r.flush(node, fh)
	r.release(node, fh)
	return errno
}

// getattr is stat(2) on a node the kernel knows.
func (r *rawFS) getattr(node uint64) (fuse.Attr, syscall.Errno) {
	in := fuse.GetAttrIn{InHeader: hdr(node)}
	var out fuse.AttrOut
	st := r.raw.GetAttr(nil, &in, &out)
	return out.Attr, errnoOf(st)
}

// unlink removes name from the directory parent.
func (r *rawFS) unlink(parent uint64, name string) syscall.Errno {
	h := hdr(parent)
	return errnoOf(r.raw.Unlink(nil, &h, name))
}

// rename moves oldName in oldParent to newName in newParent.
func (r *rawFS) rename(oldParent uint64, oldName string, newParent uint64, newName string) syscall.Errno {
	in := fuse.RenameIn{InHeader: hdr(oldParent), Newdir: newParent}
	return errnoOf(r.raw.Rename(nil, &in, oldName, newName))
}

// forget drops every reference the "kernel" holds on node, as a kernel
// under memory pressure (or drop_caches) does once nothing uses it.
func (r *rawFS) forget(node uint64) {
	r.mu.Lock()
	n := r.lookups[node]
	delete(r.lookups, node)
	r.mu.Unlock()
	if n == 0 {
		r.t.Fatalf("forget of node %d, which the kernel does not hold", node)
	}
	r.raw.Forget(node, n)
}

// object returns key's content in the store, and whether it exists.
func (r *rawFS) object(key string) ([]byte, bool) {
	b, _, ok := r.mem.Object(key)
	return b, ok
}

// waitFor polls cond until it holds or a generous bound passes: the
// retry loop's back-off is at most a few seconds for the few failures a
// test makes, but the machine may be loaded.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitObject waits until key holds exactly want.
func (r *rawFS) waitObject(key string, want []byte) {
	r.t.Helper()
	waitFor(r.t, "object "+key+" = "+string(want), func() bool {
		b, ok := r.object(key)
		return ok && bytes.Equal(b, want)
	})
}

// waitSettled waits until no file has data the bucket lacks: every
// pending upload has landed or been dropped, so nothing can still change
// the store. (A clean file may keep its staging file until it is closed
// again or the filesystem shuts down.)
func (r *rawFS) waitSettled() {
	r.t.Helper()
	waitFor(r.t, "every pending upload to settle", func() bool {
		for _, n := range r.fsys.allRegistered() {
			if n.hasPending() {
				return false
			}
		}
		return true
	})
}

// forceRetries runs a retry pass as if every back-off had elapsed (but no
// retry window: RetryFor is an hour), so that a test asserting that a
// stale upload never happens does not depend on waiting out a back-off.
func (r *rawFS) forceRetries() {
	r.fsys.retryPass(time.Now().Add(10 * time.Minute))
}

// mustNoObject fails the test if key exists.
func (r *rawFS) mustNoObject(key string) {
	r.t.Helper()
	if b, ok := r.object(key); ok {
		r.t.Fatalf("object %q exists (%q), want none", key, b)
	}
}

// mustStaged checks that dir holds exactly one staged file, with data, and
// a sidecar naming key: what a next filesystem on dir needs to upload it.
func mustStaged(t *testing.T, dir, key, data string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*"+dataSuffix))
	if len(files) != 1 {
		t.Fatalf("staged data files in %s: %v, want 1", dir, files)
	}
	if b, _ := os.ReadFile(files[0]); string(b) != data {
		t.Fatalf("staged data %q, want %q", b, data)
	}
	sc, err := os.ReadFile(strings.TrimSuffix(files[0], dataSuffix) + sidecarSuffix)
	if err != nil || !strings.Contains(string(sc), fmt.Sprintf("%q:%q", "key", key)) {
		t.Fatalf("sidecar %s, %v: want it to name key %q", sc, err, key)
	}
}

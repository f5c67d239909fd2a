package fs

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/novitalabs/bucketfs/internal/faultstore"
	"github.com/novitalabs/bucketfs/internal/memstore"
	"github.com/novitalabs/bucketfs/internal/objstore"
)

// mountStore is the store under a mountFake filesystem: memstore, for
// checking objects, behind faultstore, for failing requests.
type mountStore struct {
	*memstore.Store
	faults *faultstore.Store
}

// storedObj is what a test checks of an object.
type storedObj struct {
	data []byte
	meta map[string]string
}

// get returns key's object without counting a request.
func (s *mountStore) get(key string) (storedObj, bool) {
	data, info, ok := s.Object(key)
	return storedObj{data: data, meta: info.Metadata}, ok
}

// mountFake mounts a filesystem over an in-memory store. These tests check
// the fs package's logic through the real kernel; test/ checks the whole
// daemon against MinIO.
func mountFake(t *testing.T) (string, *mountStore, *FS) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a FUSE mount")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	mem := memstore.New(memstore.Options{})
	store := &mountStore{Store: mem, faults: faultstore.New(mem)}
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	staging := filepath.Join(dir, "staging")
	for _, d := range []string{mnt, staging} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// SparseEditMin -1: every edit of an existing object takes the sparse
	// path (edit.go), so these tests exercise it on small files too.
	fsys, err := New(Config{Store: store.faults, StatCacheTTL: time.Second, StagingDir: staging, SparseEditMin: -1,
		RecoveryDir: filepath.Join(dir, "recovery"), FileMode: 0o644, DirMode: 0o755})
	if err != nil {
		t.Fatal(err)
	}
	server, err := fsys.Mount(mnt, MountConfig{FsName: "bucketfs:test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, bad := range fsys.checkInvariants() {
			t.Errorf("invariant: %s", bad)
		}
		if err := server.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		for _, bad := range fsys.checkQuiescentInvariants() {
			t.Errorf("invariant after unmount: %s", bad)
		}
	})
	return mnt, store, fsys
}

func mustObject(t *testing.T, s *mountStore, key string, want []byte) storedObj {
	t.Helper()
	o, ok := s.get(key)
	if !ok {
		t.Fatalf("object %q missing", key)
	}
	if want != nil && !bytes.Equal(o.data, want) {
		t.Fatalf("object %q = %q, want %q", key, o.data, want)
	}
	return o
}

func TestWriteReadAndMetadata(t *testing.T) {
	mnt, s, _ := mountFake(t)
	p := filepath.Join(mnt, "a.txt")
	if err := os.WriteFile(p, []byte("hello"), 0o640); err != nil {
		t.Fatal(err)
	}
	o := mustObject(t, s, "a.txt", []byte("hello"))
	if o.meta["mode"] != strconv.Itoa(syscall.S_IFREG|0o640) {
		t.Errorf("mode meta = %q", o.meta["mode"])
	}
	got, err := os.ReadFile(p)
	if err != nil || string(got) != "hello" {
		t.Fatalf("read back %q, %v", got, err)
	}
	// Empty file created and closed without a write.
	f, err := os.Create(filepath.Join(mnt, "empty"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	mustObject(t, s, "empty", []byte{})
}

func TestAppendPwriteTruncate(t *testing.T) {
	mnt, s, _ := mountFake(t)
	p := filepath.Join(mnt, "f")
	os.WriteFile(p, []byte("0123456789"), 0o644)
	f, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("AB"))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	mustObject(t, s, "f", []byte("0123456789AB"))
	f, _ = os.OpenFile(p, os.O_WRONLY, 0)
	f.WriteAt([]byte("xy"), 3)
	f.Close()
	mustObject(t, s, "f", []byte("012xy56789AB"))
	if err := os.Truncate(p, 4); err != nil {
		t.Fatal(err)
	}
	mustObject(t, s, "f", []byte("012x"))
	if err := os.Truncate(p, 6); err != nil {
		t.Fatal(err)
	}
	mustObject(t, s, "f", []byte("012x\x00\x00"))
	// Shrinking ftruncate of dirty data.
	f, _ = os.OpenFile(p, os.O_RDWR, 0)
	f.WriteAt([]byte("zzzzzzzzzz"), 0)
	f.Truncate(3)
	f.Close()
	mustObject(t, s, "f", []byte("zzz"))
}

func TestDirsRenameSymlink(t *testing.T) {
	mnt, s, _ := mountFake(t)
	s.Put("implicit/x/y.txt", []byte("y"), objstore.PutOptions{})
	st, err := os.Stat(filepath.Join(mnt, "implicit", "x"))
	if err != nil || !st.IsDir() {
		t.Fatalf("implicit dir: %v %v", st, err)
	}
	if err := os.Mkdir(filepath.Join(mnt, "d"), 0o750); err != nil {
		t.Fatal(err)
	}
	mustObject(t, s, "d/", []byte{})
	os.WriteFile(filepath.Join(mnt, "d", "f1"), []byte("1"), 0o644)
	os.Mkdir(filepath.Join(mnt, "d", "sub"), 0o755)
	os.WriteFile(filepath.Join(mnt, "d", "sub", "f2"), []byte("2"), 0o644)
	if err := os.Remove(filepath.Join(mnt, "d")); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Errorf("rmdir non-empty: %v", err)
	}
	if err := os.Rename(filepath.Join(mnt, "d"), filepath.Join(mnt, "e")); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"d/", "d/f1", "d/sub/", "d/sub/f2"} {
		if _, ok := s.get(k); ok {
			t.Errorf("old key %q still there", k)
		}
	}
	mustObject(t, s, "e/sub/f2", []byte("2"))
	if b, err := os.ReadFile(filepath.Join(mnt, "e", "sub", "f2")); err != nil || string(b) != "2" {
		t.Errorf("read renamed: %q %v", b, err)
	}
	if err := os.Rename(filepath.Join(mnt, "e", "f1"), filepath.Join(mnt, "g")); err != nil {
		t.Fatal(err)
	}
	mustObject(t, s, "g", []byte("1"))
	if err := os.Symlink("g", filepath.Join(mnt, "ln")); err != nil {
		t.Fatal(err)
	}
	o := mustObject(t, s, "ln", []byte("g"))
	if o.meta["mode"] != strconv.Itoa(syscall.S_IFLNK|0o777) {
		t.Errorf("symlink mode %q", o.meta["mode"])
	}
	if tgt, err := os.Readlink(filepath.Join(mnt, "ln")); err != nil || tgt != "g" {
		t.Errorf("readlink %q %v", tgt, err)
	}
	if err := os.Link(filepath.Join(mnt, "g"), filepath.Join(mnt, "hard")); !errors.Is(err, syscall.ENOTSUP) {
		t.Errorf("link: %v", err)
	}
	ents, _ := os.ReadDir(mnt)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	want := []string{"e", "g", "implicit", "ln"}
	if len(names) != len(want) {
		t.Fatalf("readdir %v want %v", names, want)
	}
}

func TestChmodChownUtimesPersist(t *testing.T) {
	mnt, s, _ := mountFake(t)
	p := filepath.Join(mnt, "f")
	os.WriteFile(p, []byte("x"), 0o644)
	os.Chmod(p, 0o600)
	os.Chown(p, 1234, 5678)
	mt := time.Unix(1600000000, 0)
	os.Chtimes(p, mt, mt)
	o := mustObject(t, s, "f", []byte("x"))
	if o.meta["mode"] != strconv.Itoa(syscall.S_IFREG|0o600) || o.meta["uid"] != "1234" || o.meta["gid"] != "5678" || o.meta["mtime"] != "1600000000" {
		t.Errorf("meta %v", o.meta)
	}
	// Times set while data is still unwritten survive the upload (tar).
	f, _ := os.Create(filepath.Join(mnt, "t"))
	f.Write([]byte("data"))
	os.Chtimes(filepath.Join(mnt, "t"), mt, mt)
	f.Close()
	o = mustObject(t, s, "t", []byte("data"))
	if o.meta["mtime"] != "1600000000" {
		t.Errorf("mtime after close = %q", o.meta["mtime"])
	}
}

func TestUploadFailureIsReportedAndRecoverable(t *testing.T) {
	mnt, s, fsys := mountFake(t)
	down := s.faults.Add(faultstore.Rule{Ops: []objstore.Op{objstore.OpUpload, objstore.OpCreateMultipart}, Err: objstore.ErrUnreachable})
	f, err := os.Create(filepath.Join(mnt, "lost?"))
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("precious"))
	if err := f.Sync(); !errors.Is(err, syscall.EIO) {
		t.Errorf("fsync = %v, want EIO", err)
	}
	if err := f.Close(); !errors.Is(err, syscall.EIO) {
		t.Errorf("close = %v, want EIO", err)
	}
	if err := fsys.FlushAll(t.Context()); err == nil {
		t.Errorf("FlushAll must report the file it could not upload")
	}
	// The data stays in the staging directory with a sidecar naming it…
	mustStaged(t, fsys.cfg.StagingDir, "lost?", "precious")
	// …and a filesystem started again on that directory uploads it.
	down.Remove()
	again, err := New(Config{Store: s.faults, StagingDir: fsys.cfg.StagingDir, RecoveryDir: fsys.cfg.RecoveryDir})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if o, ok := s.get("lost?"); ok && string(o.data) == "precious" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the staged file was not uploaded by the next filesystem on its staging directory")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for time.Now().Before(deadline) {
		if left, _ := filepath.Glob(filepath.Join(fsys.cfg.StagingDir, "*"+dataSuffix)); len(left) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Error("the staging files were not removed after the upload")
}

func TestToolsOnMount(t *testing.T) {
	mnt, s, _ := mountFake(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "a"), bytes.Repeat([]byte("a"), 300000), 0o755)
	os.Mkdir(filepath.Join(src, "d"), 0o700)
	os.Symlink("../a", filepath.Join(src, "d", "l"))
	tarball := filepath.Join(t.TempDir(), "x.tar")
	if out, err := exec.Command("tar", "-C", src, "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar c: %v %s", err, out)
	}
	if out, err := exec.Command("tar", "-C", mnt, "-xf", tarball).CombinedOutput(); err != nil {
		t.Fatalf("tar x: %v %s", err, out)
	}
	if out, err := exec.Command("tar", "-C", mnt, "-df", tarball).CombinedOutput(); err != nil {
		t.Fatalf("tar d: %v %s", err, out)
	}
	mustObject(t, s, "a", bytes.Repeat([]byte("a"), 300000))
}

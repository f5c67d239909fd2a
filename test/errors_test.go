package test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/novitalabs/bucketfs/internal/miniotest"
)

func statErr(path string) error { return syscall.Lstat(path, new(syscall.Stat_t)) }

// TestErrnos: failing operations report the POSIX errno.
func TestErrnos(t *testing.T) {
	t.Parallel()
	m := mount(t)
	writeFile(t, m.Path("file"), []byte("x"))
	if err := os.MkdirAll(m.Path("dir/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(m.Path("dir2"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, m.Path("dir2/f"), []byte("y"))

	// ENOENT
	wantErrno(t, "stat missing", statErr(m.Path("missing")), syscall.ENOENT)
	wantErrno(t, "stat missing/x", statErr(m.Path("missing/x")), syscall.ENOENT)
	_, err := os.Open(m.Path("missing"))
	wantErrno(t, "open missing", err, syscall.ENOENT)
	wantErrno(t, "unlink missing", syscall.Unlink(m.Path("missing")), syscall.ENOENT)
	wantErrno(t, "rmdir missing", syscall.Rmdir(m.Path("missing")), syscall.ENOENT)
	wantErrno(t, "rename missing", syscall.Rename(m.Path("missing"), m.Path("other")), syscall.ENOENT)
	_, err = os.Readlink(m.Path("missing"))
	wantErrno(t, "readlink missing", err, syscall.ENOENT)
	_, err = os.Create(m.Path("missing/new"))
	wantErrno(t, "create in missing dir", err, syscall.ENOENT)

	// EEXIST
	wantErrno(t, "mkdir existing dir", syscall.Mkdir(m.Path("dir"), 0o755), syscall.EEXIST)
	wantErrno(t, "mkdir over a file", syscall.Mkdir(m.Path("file"), 0o755), syscall.EEXIST)
	_, err = os.OpenFile(m.Path("file"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	wantErrno(t, "O_CREAT|O_EXCL on existing file", err, syscall.EEXIST)
	wantErrno(t, "symlink onto existing", syscall.Symlink("t", m.Path("file")), syscall.EEXIST)
	sameBytes(t, "file after failed O_EXCL", m.Get("file"), []byte("x"))

	// ENOTEMPTY
	wantErrno(t, "rmdir non-empty", syscall.Rmdir(m.Path("dir")), syscall.ENOTEMPTY)
	wantErrno(t, "rename dir onto non-empty dir", syscall.Rename(m.Path("dir"), m.Path("dir2")), syscall.ENOTEMPTY, syscall.EEXIST)

	// ENOTDIR / EISDIR
	wantErrno(t, "stat file/x", statErr(m.Path("file/x")), syscall.ENOTDIR)
	wantErrno(t, "mkdir file/x", syscall.Mkdir(m.Path("file/x"), 0o755), syscall.ENOTDIR)
	wantErrno(t, "rmdir of a file", syscall.Rmdir(m.Path("file")), syscall.ENOTDIR)
	wantErrno(t, "rename dir onto file", syscall.Rename(m.Path("dir2"), m.Path("file")), syscall.ENOTDIR)
	wantErrno(t, "rename file onto dir", syscall.Rename(m.Path("file"), m.Path("dir2")), syscall.EISDIR)
	_, err = os.OpenFile(m.Path("dir"), os.O_WRONLY, 0)
	wantErrno(t, "open dir for writing", err, syscall.EISDIR)
	wantErrno(t, "unlink a dir", syscall.Unlink(m.Path("dir")), syscall.EISDIR, syscall.EPERM)

	// Nothing changed.
	if keys := strings.Join(m.Keys(""), " "); keys != "dir/ dir/sub/ dir2/ dir2/f file" {
		t.Errorf("bucket after failed operations: %s", keys)
	}
}

// TestReadOnly: with --read-only or -o ro every change fails with EROFS and
// the bucket is untouched; reads work.
func TestReadOnly(t *testing.T) {
	t.Parallel()
	for name, opt := range map[string]mountOpt{"Flag": withFlags("--read-only"), "OptionRo": withO("ro")} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			needSuite(t)
			bucket := sharedMinio.NewBucket(t)
			c := sharedMinio.Client()
			putObject(t, c, bucket, "existing", []byte("data"), nil)
			putObject(t, c, bucket, "dir/", nil, nil)
			putObject(t, c, bucket, "dir/f", []byte("f"), nil)
			m := mount(t, onBucket(bucket), opt)

			sameBytes(t, "read existing", readFile(t, m.Path("existing")), []byte("data"))
			p := m.Path
			_, err := os.OpenFile(p("new"), os.O_CREATE|os.O_WRONLY, 0o644)
			wantErrno(t, "create", err, syscall.EROFS)
			_, err = os.OpenFile(p("existing"), os.O_WRONLY, 0)
			wantErrno(t, "open for write", err, syscall.EROFS)
			wantErrno(t, "mkdir", syscall.Mkdir(p("newdir"), 0o755), syscall.EROFS)
			wantErrno(t, "unlink", syscall.Unlink(p("existing")), syscall.EROFS)
			wantErrno(t, "rmdir", syscall.Rmdir(p("dir")), syscall.EROFS, syscall.ENOTEMPTY)
			wantErrno(t, "chmod", syscall.Chmod(p("existing"), 0o600), syscall.EROFS)
			wantErrno(t, "chown", syscall.Chown(p("existing"), 1, 1), syscall.EROFS)
			wantErrno(t, "utimes", os.Chtimes(p("existing"), time.Unix(1, 0), time.Unix(1, 0)), syscall.EROFS)
			wantErrno(t, "truncate", syscall.Truncate(p("existing"), 1), syscall.EROFS)
			wantErrno(t, "rename", syscall.Rename(p("existing"), p("moved")), syscall.EROFS)
			wantErrno(t, "symlink", syscall.Symlink("existing", p("link")), syscall.EROFS)
			if keys := strings.Join(m.AllKeys(), " "); keys != "dir/ dir/f existing" {
				t.Errorf("bucket changed: %s", keys)
			}
			sameBytes(t, "existing object", m.Get("existing"), []byte("data"))
		})
	}
}

// findFileWithContent walks dir for a regular file whose content is want.
func findFileWithContent(dir string, want []byte) string {
	var found string
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || found != "" || !d.Type().IsRegular() {
			return nil
		}
		if b, err := os.ReadFile(path); err == nil && bytes.Equal(b, want) {
			found = path
		}
		return nil
	})
	return found
}

// TestUploadErrorReported: when the upload fails (MinIO down), fsync and
// close return EIO; once MinIO is back a retried fsync succeeds and the data
// of the failed close is recoverable (uploaded later or in --recovery-dir).
func TestUploadErrorReported(t *testing.T) {
	t.Parallel()
	needSuite(t)
	srv := miniotest.StartT(t) // its own server: this test kills it
	recovery := filepath.Join(t.TempDir(), "recovery")
	m := mount(t, onServer(srv), withFlags("--recovery-dir", recovery))

	data1, data2 := randBytes(50, 300<<10), randBytes(51, 200<<10+1)
	f1, err := os.Create(m.Path("fsynced"))
	if err != nil {
		t.Fatal(err)
	}
	defer f1.Close()
	f2, err := os.Create(m.Path("closed"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f1.Write(data1); err != nil {
		t.Fatal(err)
	}
	if _, err := f2.Write(data2); err != nil {
		t.Fatal(err)
	}

	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = f1.Sync()
	t.Logf("fsync with MinIO down: %v after %s", err, time.Since(start).Round(time.Millisecond))
	wantErrno(t, "fsync with MinIO down", err, syscall.EIO)
	start = time.Now()
	err = f2.Close()
	t.Logf("close with MinIO down: %v after %s", err, time.Since(start).Round(time.Millisecond))
	wantErrno(t, "close with MinIO down", err, syscall.EIO)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f1.Sync(); err != nil {
		t.Errorf("fsync after MinIO restart: %v", err)
	}
	if err := f1.Close(); err != nil {
		t.Errorf("close after MinIO restart: %v", err)
	}
	got, err := m.TryGet("fsynced")
	if err != nil {
		t.Errorf("fsynced after restart: %v", err)
	} else {
		sameBytes(t, "fsynced after restart", got, data1)
	}

	eventually(t, 30*time.Second, func() string {
		if b, err := m.TryGet("closed"); err == nil && bytes.Equal(b, data2) {
			t.Log("the data of the failed close was uploaded later")
			return ""
		}
		if p := findFileWithContent(recovery, data2); p != "" {
			t.Logf("the data of the failed close is in %s", p)
			return ""
		}
		return "the data of the failed close is neither in the bucket nor in --recovery-dir"
	})
}

// TestPermissionsEnforced: with --allow-other, another user gets EACCES
// where the mode bits say so (and can read what they allow).
func TestPermissionsEnforced(t *testing.T) {
	t.Parallel()
	needSuite(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	dir := newMountDir(t)
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil { // let others reach the mountpoint
		t.Fatal(err)
	}
	m := mount(t, onDir(dir), withFlags("--allow-other"))
	writeFile(t, m.Path("secret"), []byte("secret"))
	if err := os.Chmod(m.Path("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(m.Path("secret"), 1234, 1234); err != nil {
		t.Fatal(err)
	}
	writeFile(t, m.Path("public"), []byte("public"))
	if err := os.Chmod(m.Path("public"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(m.Path("rootdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The root of an allow_other mount is 0777 (as on s3fs): the entries
	// that others may not remove are in a directory of root's.
	writeFile(t, m.Path("rootdir/kept"), []byte("kept"))
	nobody := func(script string) (string, error) {
		return tryRun(m.Dir, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", script)
	}
	if out, err := nobody("cat public"); err != nil || out != "public" {
		t.Errorf("other user reading a 0644 file: %q, %v", out, err)
	}
	for _, script := range []string{"cat secret", "echo x > public", "echo x > rootdir/new", "mkdir rootdir/sub", "rm rootdir/kept"} {
		out, err := nobody(script)
		if err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("other user %q: %v %q; want Permission denied (EACCES)", script, err, out)
		}
	}
	if keys := strings.Join(m.Keys(""), " "); keys != "public rootdir/ rootdir/kept secret" {
		t.Errorf("bucket after denied operations: %s", keys)
	}
	sameBytes(t, "public", m.Get("public"), []byte("public"))
}

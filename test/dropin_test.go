package test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Issue 12: the s3fs command lines sandboxes use, unchanged.

// sandboxUID is the sandbox's default user.
const sandboxUID = 1000

// asUser runs a shell script in dir as uid/gid sandboxUID with no
// supplementary groups, as the sandbox's default user would.
func asUser(t *testing.T, dir, script string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	id := strconv.Itoa(sandboxUID)
	return tryRun(dir, "setpriv", "--reuid="+id, "--regid="+id, "--clear-groups", "sh", "-c", script)
}

// reachableMountDir is a mountpoint whose parent other users may enter.
func reachableMountDir(t *testing.T) string {
	t.Helper()
	dir := newMountDir(t)
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSeedAllowOtherDefaultUser: the seed's own sequence. After
// `sudo bucketfs BUCKET DIR -o allow_other,endpoint=REGION` with the
// credentials in root's ~/.passwd-s3fs, the default user creates, writes
// and reads files and directories in DIR; the root shows 0777 as on s3fs,
// and new objects carry their creator's uid and gid.
func TestSeedAllowOtherDefaultUser(t *testing.T) {
	t.Parallel()
	needSuite(t)
	srv := sharedMinio
	home := t.TempDir()
	writePasswd(t, filepath.Join(home, ".passwd-s3fs"), srv.AccessKey+":"+srv.SecretKey+"\n", 0o600)
	m := mount(t, onDir(reachableMountDir(t)), withoutEnvCreds(), withEnv("HOME="+home),
		withO("allow_other", "endpoint=us-east-1"))

	if st := lstat(t, m.Dir); st.Mode != syscall.S_IFDIR|0o777 {
		t.Errorf("mount root mode %#o, want %#o", st.Mode, syscall.S_IFDIR|0o777)
	}
	out, err := asUser(t, m.Dir, "echo hello > f && cat f && mkdir d && echo inner > d/g && cat d/g && ls")
	if err != nil {
		t.Fatalf("default user in the mount: %v: %s", err, out)
	}
	if want := "hello\ninner\nd\nf\n"; out != want {
		t.Errorf("default user's output %q, want %q", out, want)
	}
	sameBytes(t, "f in the bucket", m.Get("f"), []byte("hello\n"))
	sameBytes(t, "d/g in the bucket", m.Get("d/g"), []byte("inner\n"))
	for _, key := range []string{"f", "d/", "d/g"} {
		h := m.Head(key)
		if uid := metaUint(t, h, key, "uid"); uid != sandboxUID {
			t.Errorf("%s: x-amz-meta-uid %d, want the creator's %d", key, uid, sandboxUID)
		}
		if gid := metaUint(t, h, key, "gid"); gid != sandboxUID {
			t.Errorf("%s: x-amz-meta-gid %d, want the creator's %d", key, gid, sandboxUID)
		}
	}
	for _, name := range []string{"f", "d", "d/g"} {
		if st := lstat(t, m.Path(name)); st.Uid != sandboxUID || st.Gid != sandboxUID {
			t.Errorf("%s: owner %d:%d, want %d:%d", name, st.Uid, st.Gid, sandboxUID, sandboxUID)
		}
	}
}

// TestMpUmask: -o mp_umask= sets the root's mode of an allow_other mount.
func TestMpUmask(t *testing.T) {
	t.Parallel()
	m := mount(t, withO("allow_other", "mp_umask=022"))
	if st := lstat(t, m.Dir); st.Mode != syscall.S_IFDIR|0o755 {
		t.Errorf("mount root mode %#o, want %#o", st.Mode, syscall.S_IFDIR|0o755)
	}
}

// TestOwnerOverride: the README's `-o allow_other,uid=$(id -u),gid=$(id -g)`
// lets the default user read, overwrite and create everywhere, also in
// and over objects other tools wrote as root with private modes; the
// stored metadata is left as it was.
func TestOwnerOverride(t *testing.T) {
	t.Parallel()
	id := strconv.Itoa(sandboxUID)
	m := mount(t, onDir(reachableMountDir(t)), withO("allow_other", "uid="+id, "gid="+id))
	rootOnly := map[string]string{"mode": strconv.Itoa(0o100600), "uid": "0", "gid": "0", "mtime": "1700000000"}
	m.Put("rootfile", []byte("root's\n"), rootOnly)
	m.Put("rootdir/", nil, map[string]string{"mode": strconv.Itoa(0o40755), "uid": "0", "gid": "0", "mtime": "1700000000"})
	m.Put("rootdir/inner", []byte("inner\n"), rootOnly)

	for name, mode := range map[string]uint32{"rootfile": 0o100600, "rootdir": 0o40755, "rootdir/inner": 0o100600, ".": 0o40777} {
		st := lstat(t, m.Path(name))
		if st.Uid != sandboxUID || st.Gid != sandboxUID || st.Mode != mode {
			t.Errorf("%s: %d:%d mode %#o, want %d:%d mode %#o (owner overridden, mode as stored)",
				name, st.Uid, st.Gid, st.Mode, sandboxUID, sandboxUID, mode)
		}
	}
	out, err := asUser(t, m.Dir, "cat rootfile rootdir/inner && echo mine > rootfile && echo new > rootdir/new && "+
		"mkdir rootdir/sub && echo deep > rootdir/sub/x && echo over > rootdir/inner && mkdir top && cat rootfile rootdir/sub/x")
	if err != nil {
		t.Fatalf("default user under the override: %v: %s", err, out)
	}
	if want := "root's\ninner\nmine\ndeep\n"; out != want {
		t.Errorf("default user's output %q, want %q", out, want)
	}
	for key, body := range map[string]string{"rootfile": "mine\n", "rootdir/new": "new\n", "rootdir/sub/x": "deep\n", "rootdir/inner": "over\n"} {
		sameBytes(t, key+" in the bucket", m.Get(key), []byte(body))
	}
	if !m.Exists("top/") || !m.Exists("rootdir/sub/") {
		t.Errorf("directories made by the default user are missing: %v", m.AllKeys())
	}
	// The override is what the kernel is shown, not what is stored: the
	// overwritten object keeps its stored owner and mode.
	h := m.Head("rootfile")
	if uid := metaUint(t, h, "rootfile", "uid"); uid != 0 {
		t.Errorf("rootfile: x-amz-meta-uid %d after the overwrite, want 0 as stored", uid)
	}
	if mode := metaUint(t, h, "rootfile", "mode"); mode != 0o100600 {
		t.Errorf("rootfile: x-amz-meta-mode %#o after the overwrite, want %#o", mode, 0o100600)
	}
}

// TestUmaskOverride: -o umask= gives every object mode 0777 &^ umask with
// its type, whatever its metadata, and the owner options every owner.
func TestUmaskOverride(t *testing.T) {
	t.Parallel()
	m := mount(t, withO("uid=2001", "gid=2002", "umask=027"))
	m.Put("private", []byte("p"), map[string]string{"mode": strconv.Itoa(0o100600), "uid": "0", "gid": "0"})
	m.Put("open", []byte("o"), map[string]string{"mode": strconv.Itoa(0o100666), "uid": "5", "gid": "5"})
	m.Put("plain", []byte("no metadata"), nil)
	m.Put("dir/", nil, map[string]string{"mode": strconv.Itoa(0o40700), "uid": "0", "gid": "0"})
	m.Put("implicit/x", []byte("x"), nil)
	writeFile(t, m.Path("made-here"), []byte("m"))
	for name, mode := range map[string]uint32{
		"private": 0o100750, "open": 0o100750, "plain": 0o100750, "made-here": 0o100750,
		"dir": 0o40750, "implicit": 0o40750, ".": 0o40750,
	} {
		st := lstat(t, m.Path(name))
		if st.Mode != mode || st.Uid != 2001 || st.Gid != 2002 {
			t.Errorf("%s: mode %#o owner %d:%d, want %#o 2001:2002", name, st.Mode, st.Uid, st.Gid, mode)
		}
	}
	// chmod still persists (s3fs stores it), though the override hides it.
	if err := os.Chmod(m.Path("open"), 0o640); err != nil {
		t.Fatal(err)
	}
	if mode := metaUint(t, m.Head("open"), "open", "mode"); mode != 0o100640 {
		t.Errorf("open: x-amz-meta-mode %#o after chmod 0640, want %#o", mode, 0o100640)
	}
	if st := lstat(t, m.Path("open")); st.Mode != 0o100750 {
		t.Errorf("open after chmod: mode %#o, want the override %#o", st.Mode, 0o100750)
	}
	if out := mountOptions(m.Dir); strings.Contains(out, "allow_other") {
		t.Errorf("mount options %q: allow_other without asking", out)
	}
}

// TestRenameOntoDirWithPendingFile: the model test's seed
// 1796113388258237765. A directory whose only entry is a file still being
// written (not in the bucket yet) is not empty: rename onto it and rmdir
// of it fail with ENOTEMPTY, and nothing in the bucket moves. (rename(2)
// itself: os.Rename refuses any existing target directory with EEXIST.)
func TestRenameOntoDirWithPendingFile(t *testing.T) {
	t.Parallel()
	m := mount(t)
	for _, d := range []string{"a", "a/b", "b"} {
		if err := os.Mkdir(m.Path(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.OpenFile(m.Path("b/c"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	wantErrno(t, `rename("a/b", "b") with b/c open and not uploaded`, syscall.Rename(m.Path("a/b"), m.Path("b")), syscall.ENOTEMPTY)
	wantErrno(t, `rmdir("b") with b/c open and not uploaded`, syscall.Rmdir(m.Path("b")), syscall.ENOTEMPTY)
	if _, err := f.Write([]byte("c")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// Uploaded now: the listing says the same.
	wantErrno(t, `rename("a/b", "b") after close`, syscall.Rename(m.Path("a/b"), m.Path("b")), syscall.ENOTEMPTY)
	sameBytes(t, "b/c", m.Get("b/c"), []byte("c"))
	if keys := strings.Join(m.AllKeys(), " "); keys != "a/ a/b/ b/ b/c" {
		t.Errorf("bucket after the refused renames: %s, want a/ a/b/ b/ b/c", keys)
	}
	if st := lstat(t, m.Path("a/b")); st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		t.Errorf("a/b: mode %#o, want a directory still there", st.Mode)
	}
}

// fgDaemon is a `bucketfs -f` started by a test, ready once its ready
// file appeared.
type fgDaemon struct {
	cmd    *exec.Cmd
	exited chan error
}

// startForeground runs `bucketfs -f ... BUCKET DIR` with a ready file and
// waits until the mount answers.
func startForeground(t *testing.T, bucket, dir, work string) *fgDaemon {
	t.Helper()
	srv := sharedMinio
	ready := filepath.Join(work, "ready")
	raceDir := filepath.Join(work, "race")
	if err := os.MkdirAll(raceDir, 0o755); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(work, "bucketfs.log")
	cmd := exec.Command(bucketfsBin, "-f", "--endpoint", srv.Endpoint, "--log-file", logFile,
		"--ready-file", ready, bucket, dir)
	cmd.Env = daemonEnv(t, raceDir, "fg-"+filepath.Base(work), []string{
		"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey})
	var stderr bytes.Buffer // read only once the process has exited
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &fgDaemon{cmd: cmd, exited: make(chan error, 1)}
	go func() { d.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(logFile); err == nil {
				t.Logf("bucketfs log (%s):\n%s", work, b)
			}
		}
		checkRaceDir(t, raceDir)
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			return d
		}
		select {
		case err := <-d.exited:
			b, _ := os.ReadFile(logFile)
			t.Fatalf("bucketfs -f exited before the ready file appeared: %v: %s\nlog:\n%s", err, stderr.String(), b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no ready file after 60s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSandboxDeadMountRerunAtOnce: a foreground daemon killed with -9 and
// the same command run again at once (no one touched the dead mount in
// between, and the kernel still holds the root's attributes, so stat of
// the mountpoint succeeds) replaces the dead mount and serves the bucket.
func TestSandboxDeadMountRerunAtOnce(t *testing.T) {
	t.Parallel()
	needSuite(t)
	bucket := sharedMinio.NewBucket(t)
	dir := newMountDir(t)
	work := t.TempDir()
	old := startForeground(t, bucket, dir, filepath.Join(work, "old"))
	writeFile(t, filepath.Join(dir, "before"), []byte("before"))
	// Fresh attributes of the root in the kernel's cache, as a shell's
	// prompt or `ls` would leave them.
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	if err := old.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	d := startForeground(t, bucket, dir, filepath.Join(work, "new"))
	defer func() {
		if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Error(err)
		}
		select {
		case err := <-d.exited:
			if err != nil {
				t.Errorf("bucketfs -f after SIGTERM: %v, want exit 0", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("bucketfs -f did not exit within 60s of SIGTERM")
			_ = d.cmd.Process.Kill()
		}
		if isMounted(dir) {
			t.Errorf("%s still mounted after exit", dir)
			_ = exec.Command("fusermount3", "-uz", dir).Run()
		}
	}()
	if err := <-old.exited; err == nil {
		t.Error("the killed daemon exited 0")
	}
	sameBytes(t, "before, through the new mount", readFile(t, filepath.Join(dir, "before")), []byte("before"))
	writeFile(t, filepath.Join(dir, "after"), []byte("after"))
	b, err := getObject(sharedMinio.Client(), bucket, "after")
	if err != nil || string(b) != "after" {
		t.Errorf("after in the bucket: %q, %v", b, err)
	}
	if n := countMounts(dir); n != 1 {
		t.Errorf("%d mounts stacked on %s, want 1", n, dir)
	}
	if log, _ := os.ReadFile(filepath.Join(work, "new", "bucketfs.log")); !strings.Contains(string(log), "replaced a dead FUSE mount") {
		t.Errorf("no log line about the replaced mount:\n%s", log)
	}
}

// TestNegativeLookupSeesNewObject: with the default --negative-ttl 0 an
// object another tool creates is found by name at once, although the
// directory's listing (cached for --stat-cache-ttl) and the kernel's last
// lookup said it was not there; --negative-ttl trades that for fewer
// requests.
func TestNegativeLookupSeesNewObject(t *testing.T) {
	t.Parallel()
	t.Run("Default", func(t *testing.T) {
		t.Parallel()
		m := mount(t, withTTL(time.Hour))
		if err := os.Mkdir(m.Path("d"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"later", "d/later"} {
			if _, err := os.ReadDir(filepath.Dir(m.Path(name))); err != nil { // a fresh listing without it
				t.Fatal(err)
			}
			_, err := os.Stat(m.Path(name))
			wantErrno(t, "stat "+name+" before it exists", err, syscall.ENOENT)
			m.Put(name, []byte("from another tool"), nil)
			b, err := os.ReadFile(m.Path(name))
			if err != nil {
				t.Errorf("%s right after another tool created it: %v", name, err)
				continue
			}
			sameBytes(t, name, b, []byte("from another tool"))
		}
	})
	t.Run("Cached", func(t *testing.T) {
		t.Parallel()
		m := mount(t, withTTL(time.Hour), withFlags("--negative-ttl", "1h"))
		_, err := os.Stat(m.Path("later"))
		wantErrno(t, "stat before it exists", err, syscall.ENOENT)
		m.Put("later", []byte("x"), nil)
		_, err = os.Stat(m.Path("later"))
		wantErrno(t, "stat with the absence cached for --negative-ttl", err, syscall.ENOENT)
	})
}

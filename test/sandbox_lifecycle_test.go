package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/novitalabs/bucketfs/internal/miniotest"
)

// mountHelperPath is where mount(8) looks for the helper of type
// fuse.bucketfs.
const mountHelperPath = "/sbin/mount.fuse.bucketfs"

// installMountHelper points mountHelperPath at the binary under test for
// the duration of t, restoring whatever was there (an installed bucketfs)
// afterwards. The path is the machine's: a lock keeps two runs of the
// suite on one machine from replacing each other's helper mid-test.
func installMountHelper(t *testing.T) {
	t.Helper()
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "bucketfs-it-mount-helper.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("mount helper lock: %v", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		lock.Close()
		t.Fatalf("mount helper lock: %v", err)
	}
	t.Cleanup(func() { lock.Close() }) // runs last: after the restore below
	// A link into a test binary's temporary directory is left over from
	// an interrupted run of this suite: ours to remove, not to restore.
	if target, err := os.Readlink(mountHelperPath); err == nil && strings.Contains(target, "/bucketfs-bin-") {
		_ = os.Remove(mountHelperPath)
	}
	saved := ""
	if _, err := os.Lstat(mountHelperPath); err == nil {
		saved = mountHelperPath + ".bucketfs-it-saved"
		if err := os.Rename(mountHelperPath, saved); err != nil {
			t.Fatalf("moving the installed mount helper aside: %v", err)
		}
	}
	if err := os.Symlink(bucketfsBin, mountHelperPath); err != nil {
		if saved != "" {
			_ = os.Rename(saved, mountHelperPath)
		}
		t.Fatalf("installing the mount helper: %v", err)
	}
	t.Cleanup(func() {
		_ = os.Remove(mountHelperPath)
		if saved != "" {
			if err := os.Rename(saved, mountHelperPath); err != nil {
				t.Errorf("restoring %s: %v", mountHelperPath, err)
			}
		}
	})
}

// adoptMount wraps a mount that something other than mount() started (the
// mount helper) in a Mount, so it gets the same unmount, exit-status, race
// and log handling.
func adoptMount(t *testing.T, srv *miniotest.Server, bucket, dir, logFile, raceDir, marker string) *Mount {
	t.Helper()
	m := &Mount{t: t, Dir: dir, Bucket: bucket, Srv: srv, S3: srv.Client(),
		LogFile: logFile, RaceDir: raceDir, exitCode: -1}
	t.Cleanup(func() {
		if t.Failed() {
			m.dumpLog()
		}
	})
	t.Cleanup(func() { m.Unmount() })
	if !isMounted(dir) {
		t.Fatalf("%s is not mounted", dir)
	}
	m.PID = findDaemon(marker, dir)
	if m.PID == 0 {
		t.Logf("note: could not find the daemon of %s; its exit status is not checked", dir)
	}
	return m
}

// TestSandboxMountHelper: "mount -t fuse.bucketfs" and an fstab line work
// through /sbin/mount.fuse.bucketfs (the bucketfs binary under that name),
// with the generic options mount(8) adds, bucketfs flags written as -o
// options, and "umount" ending the daemon with status 0.
func TestSandboxMountHelper(t *testing.T) {
	t.Parallel()
	needSuite(t)
	installMountHelper(t)
	srv := sharedMinio
	pw := filepath.Join(t.TempDir(), "passwd")
	writePasswd(t, pw, srv.AccessKey+":"+srv.SecretKey+"\n", 0o600)

	// helperMount runs argv (a mount command line that names dir) and
	// returns the adopted mount.
	helperMount := func(t *testing.T, bucket, dir, logFile string, argv ...string) *Mount {
		t.Helper()
		raceDir := filepath.Join(t.TempDir(), "race")
		if err := os.Mkdir(raceDir, 0o755); err != nil {
			t.Fatal(err)
		}
		marker := fmt.Sprintf("%d-%d", os.Getpid(), mountSeq.Add(1))
		cmd := exec.Command(argv[0], argv[1:]...)
		// No AWS_* variables: the credentials come from passwd_file=.
		cmd.Env = daemonEnv(t, raceDir, marker, nil)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			checkRaceDir(t, raceDir)
			if b, rerr := os.ReadFile(logFile); rerr == nil {
				t.Logf("bucketfs log:\n%s", b)
			}
			if isMounted(dir) {
				_ = exec.Command("umount", "-l", dir).Run()
			}
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
		t.Logf("%s: returned after %s", strings.Join(argv, " "), time.Since(start).Round(time.Millisecond))
		return adoptMount(t, srv, bucket, dir, logFile, raceDir, marker)
	}

	check := func(t *testing.T, m *Mount) {
		t.Helper()
		if typ := fsType(m.Dir); typ != "fuse.bucketfs" {
			t.Errorf("type of %s in /proc/mounts is %q, want fuse.bucketfs", m.Dir, typ)
		}
		data := randBytes(600, 70000)
		writeFile(t, m.Path("via-helper.bin"), data)
		sameBytes(t, "via-helper.bin in the bucket", m.Get("via-helper.bin"), data)
		m.Put("from-sdk", []byte("sdk"), nil)
		sameBytes(t, "from-sdk through the mount", readFile(t, m.Path("from-sdk")), []byte("sdk"))
		if code := m.unmountWith("umount"); m.PID != 0 && code != 0 {
			t.Errorf("daemon exit status %d after umount, want 0", code)
		}
		if isMounted(m.Dir) {
			t.Errorf("%s still mounted after umount", m.Dir)
		}
	}

	t.Run("MountT", func(t *testing.T) {
		bucket := srv.NewBucket(t)
		dir := newMountDir(t)
		logFile := filepath.Join(t.TempDir(), "bucketfs.log")
		m := helperMount(t, bucket, dir, logFile, "mount", "-t", "fuse.bucketfs", bucket, dir, "-o",
			strings.Join([]string{"rw", "dev", "suid", "_netdev", "noatime",
				"url=" + srv.Endpoint, "use_path_request_style", "endpoint=" + miniotest.Region,
				"passwd_file=" + pw, "log_file=" + logFile, "stat_cache_ttl=2s"}, ","))
		if !strings.Contains(m.readLog(), "msg=mounted") {
			t.Errorf("log_file= was not used: %q", m.readLog())
		}
		check(t, m)
	})

	t.Run("Fstab", func(t *testing.T) {
		bucket := srv.NewBucket(t)
		dir := newMountDir(t)
		logFile := filepath.Join(t.TempDir(), "bucketfs.log")
		fstab := filepath.Join(t.TempDir(), "fstab")
		line := fmt.Sprintf("%s %s fuse.bucketfs _netdev,nofail,x-systemd.automount,allow_other,url=%s,passwd_file=%s,log_file=%s 0 0\n",
			bucket, dir, srv.Endpoint, pw, logFile)
		if err := os.WriteFile(fstab, []byte("# test fstab\n"+line), 0o644); err != nil {
			t.Fatal(err)
		}
		m := helperMount(t, bucket, dir, logFile, "mount", "--fstab", fstab, dir)
		if opts := mountOptions(dir); !strings.Contains(","+opts+",", ",allow_other,") ||
			!strings.Contains(","+opts+",", ",default_permissions,") {
			t.Errorf("allow_other from fstab: mount options %q, want allow_other and default_permissions", opts)
		}
		check(t, m)
	})
}

// fsType returns the filesystem type of dir's line in /proc/mounts.
func fsType(dir string) string {
	b, _ := os.ReadFile("/proc/mounts")
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && unescapeMountPath(f[1]) == dir {
			return f[2]
		}
	}
	return ""
}

// TestSandboxReadyFile: --ready-file appears (atomically, with the
// daemon's pid) only once the mount answers, and is removed at exit.
func TestSandboxReadyFile(t *testing.T) {
	t.Parallel()
	needSuite(t)

	t.Run("Foreground", func(t *testing.T) {
		t.Parallel()
		srv := sharedMinio
		bucket := srv.NewBucket(t)
		dir := newMountDir(t)
		work := t.TempDir()
		ready := filepath.Join(work, "ready")
		raceDir := filepath.Join(work, "race")
		if err := os.Mkdir(raceDir, 0o755); err != nil {
			t.Fatal(err)
		}
		logFile := filepath.Join(work, "bucketfs.log")
		cmd := exec.Command(bucketfsBin, "-f", "--endpoint", srv.Endpoint, "--log-file", logFile,
			"--ready-file", ready, bucket, dir)
		cmd.Env = daemonEnv(t, raceDir, "ready-fg", []string{
			"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey})
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		defer func() {
			if t.Failed() {
				if b, err := os.ReadFile(logFile); err == nil {
					t.Logf("bucketfs log:\n%s", b)
				}
			}
			if isMounted(dir) {
				_ = cmd.Process.Kill()
				_ = exec.Command("fusermount3", "-uz", dir).Run()
			}
			checkRaceDir(t, raceDir)
		}()

		// Poll as a sandbox caller would; when the file shows, the mount
		// must already answer.
		deadline := time.Now().Add(30 * time.Second)
		for {
			b, err := os.ReadFile(ready)
			if err == nil {
				if string(b) != strconv.Itoa(cmd.Process.Pid)+"\n" {
					t.Errorf("ready file holds %q, want the pid %d", b, cmd.Process.Pid)
				}
				break
			}
			select {
			case err := <-exited:
				t.Fatalf("bucketfs -f exited before the ready file appeared: %v", err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatal("no ready file after 30s")
			}
			time.Sleep(5 * time.Millisecond)
		}
		if !isMounted(dir) {
			t.Fatalf("ready file written but %s is not mounted", dir)
		}
		writeFile(t, filepath.Join(dir, "f"), []byte("ready"))
		if ents, _ := os.ReadDir(work); len(ents) != 3 { // ready, race, bucketfs.log
			t.Errorf("stray files beside the ready file: %v", ents)
		}

		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("bucketfs -f after SIGTERM: %v, want exit 0", err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("bucketfs -f did not exit within 60s of SIGTERM")
		}
		if _, err := os.Stat(ready); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("ready file after exit: %v, want it removed", err)
		}
		if isMounted(dir) {
			t.Errorf("%s still mounted after exit", dir)
		}
		b, err := getObject(srv.Client(), bucket, "f")
		if err != nil || string(b) != "ready" {
			t.Errorf("f in the bucket: %q, %v", b, err)
		}
	})

	t.Run("Daemon", func(t *testing.T) {
		t.Parallel()
		ready := filepath.Join(t.TempDir(), "ready")
		// A ready file left by an earlier, killed daemon is replaced.
		if err := os.WriteFile(ready, []byte("stale\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		m := mount(t, withFlags("--ready-file", ready))
		b, err := os.ReadFile(ready)
		if err != nil {
			t.Fatalf("ready file once bucketfs returned: %v", err)
		}
		if m.PID != 0 && string(b) != strconv.Itoa(m.PID)+"\n" {
			t.Errorf("ready file holds %q, want the daemon's pid %d", b, m.PID)
		}
		if code := m.Unmount(); m.PID != 0 && code != 0 {
			t.Errorf("daemon exit status %d", code)
		}
		if _, err := os.Stat(ready); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("ready file after exit: %v, want it removed", err)
		}
	})
}

// TestSandboxStaleMount: after the daemon is killed with SIGKILL the
// mountpoint is dead (ENOTCONN); starting bucketfs again on the same
// directory replaces the dead mount, says so in the log, and works.
func TestSandboxStaleMount(t *testing.T) {
	t.Parallel()
	old := mount(t)
	data := randBytes(610, 50000)
	writeFile(t, old.Path("before-crash"), data)

	old.kill9() // nothing left to unmount or wait for: the new mount takes over
	old.checkRace()
	wantErrno(t, "stat of the dead mountpoint", statErr(old.Dir), syscall.ENOTCONN)

	for _, mode := range []string{"daemon", "again"} {
		m := mount(t, onDir(old.Dir), onBucket(old.Bucket))
		sameBytes(t, "before-crash through the new mount ("+mode+")", readFile(t, m.Path("before-crash")), data)
		writeFile(t, m.Path("after-"+mode), []byte(mode))
		sameBytes(t, "after-"+mode, m.Get("after-"+mode), []byte(mode))
		if n := countMounts(old.Dir); n != 1 {
			t.Errorf("%d mounts stacked on %s, want 1", n, old.Dir)
		}
		if mode == "daemon" {
			if log := m.readLog(); !strings.Contains(log, "replaced a dead FUSE mount") {
				t.Errorf("no log line about the replaced mount:\n%s", log)
			}
			// Crash this one too: the restart must work more than once.
			if m.PID == 0 {
				t.Fatal("cannot find the daemon to kill")
			}
			_ = unix.Kill(m.PID, unix.SIGKILL)
			waitPID(m.PID, 30*time.Second)
			m.done = true
			continue
		}
		if code := m.Unmount(); m.PID != 0 && code != 0 {
			t.Errorf("daemon exit status %d", code)
		}
	}
}

// countMounts counts the lines of /proc/mounts for dir.
func countMounts(dir string) int {
	n := 0
	for _, mp := range mountsUnder(dir) {
		if mp == dir {
			n++
		}
	}
	return n
}

// TestSandboxShutdownDeadline: SIGTERM with writes that cannot be
// uploaded (the store refuses connections, or hangs) ends the daemon
// within --shutdown-timeout: it exits non-zero, the mount is gone (lazily
// detached although a file is open), and the data stays in the staging
// directory, named in the log; the next mount of the bucket, with the
// store back, uploads it.
func TestSandboxShutdownDeadline(t *testing.T) {
	t.Parallel()
	needSuite(t)
	const deadline = 5 * time.Second
	// Slack for the lazy unmount and a -race daemon on a busy machine.
	const slack = 6 * time.Second

	for _, tc := range []struct {
		name  string
		close bool // the writer closes the file (and sees EIO) before SIGTERM
		hang  bool // freeze MinIO (SIGSTOP) instead of killing it
	}{
		{name: "Refused"},
		{name: "Hung", hang: true},
		// An upload that failed at close is being retried in the
		// background: shutdown must cut its back-off short.
		{name: "ClosedRefused", close: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := miniotest.StartT(t) // its own server: this test stops it
			staging := filepath.Join(t.TempDir(), "staging")
			m := mount(t, onServer(srv), onBucket(srv.NewBucket(t)),
				withFlags("--shutdown-timeout", deadline.String(), "--staging-dir", staging))
			if m.PID == 0 {
				t.Fatal("cannot find the daemon to signal")
			}
			data := randBytes(620, 3<<20+5)
			// The test process is the writer, so the descriptor stays open
			// (a child process would close it on exit, which uploads).
			var f *os.File
			withoutForks(func() {
				var err error
				f, err = os.Create(m.Path("pending.bin"))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.Write(data); err != nil {
					t.Fatal(err)
				}
				if tc.hang {
					pid := findMinioPID(t, srv)
					if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
						t.Fatal(err)
					}
					// Thawed before StartT's cleanup stops it.
					t.Cleanup(func() { _ = unix.Kill(pid, unix.SIGCONT) })
				} else if err := srv.Kill(); err != nil {
					t.Fatal(err)
				}
			})
			defer f.Close() // after the daemon is gone: the error does not matter
			if tc.close {
				// The errno is TestUploadErrorReported's business; here
				// only that close reported the failure.
				if err := f.Close(); err == nil {
					t.Error("close with MinIO down succeeded")
				}
			}

			start := time.Now()
			if err := unix.Kill(m.PID, unix.SIGTERM); err != nil {
				t.Fatal(err)
			}
			code, ok := waitPID(m.PID, deadline+slack+60*time.Second)
			took := time.Since(start)
			m.done = true
			m.checkRace()
			t.Logf("daemon exited %d after %s", code, took.Round(time.Millisecond))
			switch {
			case !ok:
				t.Errorf("daemon still running %s after SIGTERM", took.Round(time.Second))
				_ = unix.Kill(m.PID, unix.SIGKILL)
				waitPID(m.PID, 10*time.Second)
			case took > deadline+slack:
				t.Errorf("daemon took %s to exit after SIGTERM with --shutdown-timeout %s", took.Round(time.Millisecond), deadline)
			}
			if ok && code == 0 {
				t.Errorf("daemon exited 0 although data could not be uploaded")
			}
			if isMounted(m.Dir) {
				t.Errorf("%s still mounted after SIGTERM", m.Dir)
				_ = exec.Command("fusermount3", "-uz", m.Dir).Run()
			}
			saved := findFileWithContent(staging, data)
			if saved == "" {
				t.Fatalf("the pending data is not in --staging-dir %s", staging)
			}
			if log := m.readLog(); !strings.Contains(log, saved) {
				t.Errorf("the log does not name the staged file %s:\n%s", saved, log)
			}
			if !bytes.Contains([]byte(m.readLog()), []byte("key=pending.bin")) {
				t.Errorf("the log does not name the key pending.bin")
			}

			// The store comes back; the same bucket mounted again with the
			// same staging directory uploads the file.
			if tc.hang {
				_ = unix.Kill(findMinioPID(t, srv), unix.SIGCONT)
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				if err := srv.Restart(ctx); err != nil {
					t.Fatal(err)
				}
			}
			m2 := mount(t, onServer(srv), onBucket(m.Bucket), withFlags("--staging-dir", staging))
			objectIs(t, m2, "pending.bin", data, 90*time.Second)
		})
	}
}

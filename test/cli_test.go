package test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// failCase is one bucketfs command line that must fail to mount.
type failCase struct {
	target   string   // BUCKET[:PREFIX]
	dir      string   // mountpoint; "" makes a new empty directory
	flags    []string // before the positional arguments
	post     []string // after them (-o ...)
	env      []string // extra environment
	wrap     []string // command line that ends by exec'ing bucketfs
	cause    *regexp.Regexp
	endpoint string // --endpoint; "" for none
	creds    bool   // AWS_* credentials of the shared server in the environment
}

// expectMountFailure runs bucketfs without -f and checks that it exits
// non-zero within 30 s with one line naming the cause, leaving no mount and
// no daemon behind.
func expectMountFailure(t *testing.T, fc failCase) runResult {
	t.Helper()
	needSuite(t)
	if fc.dir == "" {
		fc.dir = newMountDir(t)
	}
	work := t.TempDir()
	raceDir := filepath.Join(work, "race")
	if err := os.Mkdir(raceDir, 0o755); err != nil {
		t.Fatal(err)
	}
	var extra []string
	if fc.creds {
		extra = append(extra, "AWS_ACCESS_KEY_ID="+sharedMinio.AccessKey, "AWS_SECRET_ACCESS_KEY="+sharedMinio.SecretKey)
	}
	extra = append(extra, fc.env...)
	marker := fmt.Sprintf("%d-%d", os.Getpid(), mountSeq.Add(1))
	env := daemonEnv(t, raceDir, marker, extra)
	logFile := filepath.Join(work, "bucketfs.log")
	args := []string{"--log-file", logFile}
	if fc.endpoint != "" {
		args = append(args, "--endpoint", fc.endpoint)
	}
	args = append(args, fc.flags...)
	args = append(args, fc.target, fc.dir)
	args = append(args, fc.post...)

	res := runBucketfs(t, env, 90*time.Second, fc.wrap, args...)
	defer func() {
		if t.Failed() {
			if b, err := os.ReadFile(logFile); err == nil {
				t.Logf("bucketfs log:\n%s", b)
			}
		}
	}()
	switch {
	case res.timedOut:
		t.Errorf("bucketfs %s did not exit within 90s", strings.Join(args, " "))
	case res.code == 0:
		t.Errorf("bucketfs %s exited 0, want a failure: %s", strings.Join(args, " "), res)
	case res.dur > 30*time.Second:
		t.Errorf("bucketfs took %s to fail, want < 30s: %s", res.dur.Round(time.Millisecond), res)
	}
	var lines []string
	for _, l := range strings.Split(res.stdout+"\n"+res.stderr, "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	t.Logf("bucketfs exited %d after %s: %q", res.code, res.dur.Round(time.Millisecond), strings.Join(lines, " / "))
	if len(lines) != 1 {
		t.Errorf("want exactly one line naming the cause, got %d: %s", len(lines), res)
	} else if fc.cause != nil && !fc.cause.MatchString(lines[0]) {
		t.Errorf("message %q does not name the cause (want %v)", lines[0], fc.cause)
	}
	if isMounted(fc.dir) {
		t.Errorf("%s is mounted after the failed mount", fc.dir)
		_ = exec.Command("fusermount3", "-uz", fc.dir).Run()
	}
	if pid := findDaemonQuick(marker); pid != 0 {
		t.Errorf("a bucketfs process (%d) is still running after the failed mount", pid)
		_ = unix.Kill(pid, unix.SIGKILL)
		waitPID(pid, 10*time.Second)
	}
	checkRaceDir(t, raceDir)
	return res
}

// findDaemonQuick returns the pid of a live process carrying marker (0 if
// none), giving a process that is exiting a moment to go.
func findDaemonQuick(marker string) int {
	want := []byte(markerVar + "=" + marker + "\x00")
	deadline := time.Now().Add(3 * time.Second)
	for {
		pid := 0
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			var p int
			if _, err := fmt.Sscan(e.Name(), &p); err != nil || p == os.Getpid() {
				continue
			}
			envb, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p))
			stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
			if strings.Contains(string(stat), ") Z ") {
				continue // exited, not yet reaped
			}
			if strings.Contains(string(envb), string(want)) {
				pid = p
			}
		}
		if pid == 0 || time.Now().After(deadline) {
			return pid
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// closedPort returns a 127.0.0.1 port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// TestBadInput: each kind of bad input makes bucketfs exit non-zero within
// 30 s with a one-line reason and no mount left.
func TestBadInput(t *testing.T) {
	t.Parallel()
	needSuite(t)
	srv := sharedMinio
	bucket := srv.NewBucket(t)

	t.Run("MissingBucket", func(t *testing.T) {
		t.Parallel()
		expectMountFailure(t, failCase{
			target: "no-such-bucket-" + strings.ToLower(fmt.Sprint(time.Now().UnixNano())), endpoint: srv.Endpoint, creds: true,
			cause: regexp.MustCompile(`(?i)(no ?such ?bucket|bucket.*(not exist|not found|does not|missing)|(not exist|not found).*bucket)`),
		})
	})
	t.Run("BadSecret", func(t *testing.T) {
		t.Parallel()
		expectMountFailure(t, failCase{
			target: bucket, endpoint: srv.Endpoint,
			env:   []string{"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=wrong-" + srv.SecretKey},
			cause: regexp.MustCompile(`(?i)(credential|signature|secret|access.?key|denied|auth|forbidden)`),
		})
	})
	t.Run("UnreachableEndpoint", func(t *testing.T) {
		t.Parallel()
		port := closedPort(t)
		expectMountFailure(t, failCase{
			target: bucket, endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), creds: true,
			cause: regexp.MustCompile(fmt.Sprintf(`(?i)(unreachable|connect|refused|127\.0\.0\.1:%d)`, port)),
		})
	})
	// The staging directory is claimed while the bucket is checked: a
	// failed check is still the reason given when both fail.
	unusableStaging := func(t *testing.T) string {
		file := filepath.Join(t.TempDir(), "a-file")
		if err := os.WriteFile(file, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(file, "staging")
	}
	t.Run("UnusableStaging", func(t *testing.T) {
		t.Parallel()
		expectMountFailure(t, failCase{
			target: bucket, endpoint: srv.Endpoint, creds: true,
			flags: []string{"--staging-dir", unusableStaging(t)},
			cause: regexp.MustCompile(`(?i)staging`),
		})
	})
	t.Run("MissingBucketAndUnusableStaging", func(t *testing.T) {
		t.Parallel()
		expectMountFailure(t, failCase{
			target: "no-such-bucket-" + strings.ToLower(fmt.Sprint(time.Now().UnixNano())), endpoint: srv.Endpoint, creds: true,
			flags: []string{"--staging-dir", unusableStaging(t)},
			cause: regexp.MustCompile(`(?i)^[^/]*(no ?such ?bucket|bucket.*(not exist|not found|does not|missing))`),
		})
	})
	t.Run("NonEmptyMountpoint", func(t *testing.T) {
		t.Parallel()
		dir := newMountDir(t)
		if err := os.WriteFile(filepath.Join(dir, "precious"), []byte("keep me"), 0o644); err != nil {
			t.Fatal(err)
		}
		expectMountFailure(t, failCase{
			target: bucket, dir: dir, endpoint: srv.Endpoint, creds: true,
			cause: regexp.MustCompile(`(?i)(not empty|non-?empty)`),
		})
		if b, err := os.ReadFile(filepath.Join(dir, "precious")); err != nil || string(b) != "keep me" {
			t.Errorf("file in the mountpoint: %q, %v", b, err)
		}
	})
	t.Run("NoDevFuse", func(t *testing.T) {
		t.Parallel()
		expectMountFailure(t, failCase{
			target: bucket, endpoint: srv.Endpoint, creds: true,
			wrap:  []string{"unshare", "-m", "sh", "-c", `mount -t tmpfs none /dev && exec "$0" "$@"`},
			cause: regexp.MustCompile(`(?i)(/dev/fuse|fuse)`),
		})
	})
}

// TestNonemptyOption: -o nonempty mounts over a non-empty directory.
func TestNonemptyOption(t *testing.T) {
	t.Parallel()
	dir := newMountDir(t)
	if err := os.WriteFile(filepath.Join(dir, "hidden"), []byte("under"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := mount(t, onDir(dir), withO("nonempty"))
	writeFile(t, m.Path("over"), []byte("over"))
	sameBytes(t, "over", m.Get("over"), []byte("over"))
	wantErrno(t, "stat hidden through the mount", syscall.Lstat(m.Path("hidden"), new(syscall.Stat_t)), syscall.ENOENT)
	m.Unmount()
	if b, err := os.ReadFile(filepath.Join(dir, "hidden")); err != nil || string(b) != "under" {
		t.Errorf("file under the mount after unmount: %q, %v", b, err)
	}
}

// TestShutdownSignal: SIGTERM or SIGINT while a file is open with data not
// yet uploaded: the data reaches the bucket, the mount goes away, the daemon
// exits 0.
func TestShutdownSignal(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			m := mount(t)
			if m.PID == 0 {
				t.Fatal("cannot find the daemon to signal")
			}
			// The test process is the writer: a child process would close
			// its descriptor on exit, and every close flushes (uploads).
			data := randBytes(uint64(30+sig), 2<<20+7)
			f, err := os.Create(m.Path("dirty.bin"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close() // after the daemon is gone: the error does not matter
			if _, err := f.Write(data); err != nil {
				t.Fatal(err)
			}
			if b, err := m.TryGet("dirty.bin"); err == nil && len(b) == len(data) {
				t.Log("note: the data was uploaded before close")
			}

			if err := unix.Kill(m.PID, sig); err != nil {
				t.Fatal(err)
			}
			code, ok := waitPID(m.PID, 60*time.Second)
			m.done = true
			if !ok {
				t.Errorf("daemon did not exit within 60s of %v", sig)
				_ = unix.Kill(m.PID, unix.SIGKILL)
				waitPID(m.PID, 10*time.Second)
			} else if code != 0 {
				t.Errorf("daemon exited %d after %v, want 0", code, sig)
			}
			m.checkRace()
			if isMounted(m.Dir) {
				t.Errorf("%s still mounted after %v", m.Dir, sig)
				_ = exec.Command("fusermount3", "-uz", m.Dir).Run()
			}
			got, err := m.TryGet("dirty.bin")
			if err != nil {
				t.Fatalf("dirty.bin after %v: %v", sig, err)
			}
			sameBytes(t, "dirty.bin after "+sig.String(), got, data)
		})
	}
}

// TestUmountExitsZero: `umount DIR` unmounts; the daemon exits 0 and what
// was written is in the bucket.
func TestUmountExitsZero(t *testing.T) {
	t.Parallel()
	m := mount(t)
	data := randBytes(40, 100000)
	writeFile(t, m.Path("f"), data)
	if code := m.unmountWith("umount"); m.PID != 0 && code != 0 {
		t.Errorf("daemon exit status %d after umount, want 0", code)
	}
	if isMounted(m.Dir) {
		t.Errorf("%s still mounted after umount", m.Dir)
	}
	sameBytes(t, "f", m.Get("f"), data)
}

// TestVersionHelp: --version and --help answer and exit 0.
func TestVersionHelp(t *testing.T) {
	t.Parallel()
	needSuite(t)
	env := daemonEnv(t, t.TempDir(), "version", nil)
	res := runBucketfs(t, env, 30*time.Second, nil, "--version")
	if res.code != 0 || strings.TrimSpace(res.stdout+res.stderr) == "" {
		t.Errorf("bucketfs --version: %s", res)
	}
	res = runBucketfs(t, env, 30*time.Second, nil, "--help")
	if res.code != 0 || !strings.Contains(res.stdout+res.stderr, "-o") {
		t.Errorf("bucketfs --help: %s", res)
	}
}

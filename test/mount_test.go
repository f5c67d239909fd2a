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
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sys/unix"

	"github.com/novitalabs/bucketfs/internal/miniotest"
)

// markerVar is set in every daemon's environment with a unique value so the
// test can find the detached daemon process in /proc.
const markerVar = "BUCKETFS_IT_ID"

var mountSeq atomic.Int64

// Mount is one running bucketfs daemon serving a bucket on a directory.
type Mount struct {
	t       *testing.T
	Dir     string // the mountpoint
	Bucket  string
	Prefix  string // mount prefix inside the bucket ("" or ending in "/")
	Srv     *miniotest.Server
	S3      *s3.Client
	LogFile string
	RaceDir string
	PID     int // the daemon; 0 if it could not be found

	done     bool
	exitCode int // daemon exit status once done (-1: unknown)
}

type mountCfg struct {
	srv        *miniotest.Server
	bucket     string
	prefix     string
	flags      []string // extra flags, before the positional arguments
	oOpts      []string // joined into one -o after the positional arguments
	env        []string
	noEnvCreds bool
	noEndpoint bool
	ttl        time.Duration
	dir        string
}

type mountOpt func(*mountCfg)

// onServer mounts a bucket of srv instead of the shared server.
func onServer(srv *miniotest.Server) mountOpt { return func(c *mountCfg) { c.srv = srv } }

// onBucket mounts an existing bucket instead of a new one.
func onBucket(b string) mountOpt { return func(c *mountCfg) { c.bucket = b } }

// withPrefix mounts BUCKET:PREFIX.
func withPrefix(p string) mountOpt { return func(c *mountCfg) { c.prefix = p } }

// withFlags adds command-line flags.
func withFlags(f ...string) mountOpt { return func(c *mountCfg) { c.flags = append(c.flags, f...) } }

// withO adds s3fs-style -o options.
func withO(o ...string) mountOpt { return func(c *mountCfg) { c.oOpts = append(c.oOpts, o...) } }

// withEnv adds environment variables (KEY=VALUE) for the daemon.
func withEnv(e ...string) mountOpt { return func(c *mountCfg) { c.env = append(c.env, e...) } }

// withoutEnvCreds does not put the AWS_* credential variables in the
// environment (credentials then come from a password file).
func withoutEnvCreds() mountOpt { return func(c *mountCfg) { c.noEnvCreds = true } }

// withoutEndpointFlag does not pass --endpoint (the test passes -o url=).
func withoutEndpointFlag() mountOpt { return func(c *mountCfg) { c.noEndpoint = true } }

// withTTL sets --stat-cache-ttl.
func withTTL(d time.Duration) mountOpt { return func(c *mountCfg) { c.ttl = d } }

// onDir mounts on an existing directory.
func onDir(d string) mountOpt { return func(c *mountCfg) { c.dir = d } }

// newMountDir makes an empty directory for a mountpoint, removed when the
// test ends (after the unmount).
func newMountDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-*", mountRootPattern, os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	mp := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if isMounted(mp) {
			// Never remove files through a live mount.
			t.Errorf("mountpoint %s still mounted at the end of the test", mp)
			_ = unix.Unmount(mp, unix.MNT_DETACH)
			return
		}
		os.RemoveAll(dir)
	})
	return mp
}

// daemonEnv is the environment bucketfs runs with: the caller's, without any
// AWS configuration of the machine, with race logging into raceDir and the
// marker that identifies the daemon.
func daemonEnv(t *testing.T, raceDir, marker string, extra []string) []string {
	t.Helper()
	home := t.TempDir() // no stray ~/.passwd-s3fs or ~/.aws
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS_") || k == "HOME" || k == "GORACE" || k == markerVar {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"HOME="+home,
		"AWS_CONFIG_FILE=/nonexistent/aws-config",
		"AWS_SHARED_CREDENTIALS_FILE=/nonexistent/aws-credentials",
		"AWS_EC2_METADATA_DISABLED=true",
		"GORACE=halt_on_error=0 log_path="+filepath.Join(raceDir, "race"),
		markerVar+"="+marker,
	)
	return append(env, extra...)
}

// runResult is the outcome of one bucketfs command.
type runResult struct {
	code           int // exit status; -1 if it did not exit normally
	stdout, stderr string
	dur            time.Duration
	timedOut       bool
}

func (r runResult) String() string {
	return fmt.Sprintf("exit %d after %s\nstdout: %q\nstderr: %q", r.code, r.dur.Round(time.Millisecond), r.stdout, r.stderr)
}

// runBucketfs runs bucketfs (or, with wrap, a command line that ends by
// exec'ing it) and waits for it up to timeout.
func runBucketfs(t *testing.T, env []string, timeout time.Duration, wrap []string, args ...string) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	argv := append(append([]string{}, wrap...), bucketfsBin)
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	cmd.Stdin = nil
	// A daemon child holding our stdout and stderr must not make Run wait
	// past the timeout (once, on a machine thrashing for memory, a killed
	// start kept the test waiting 14 minutes on its child's pipes).
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	err := cmd.Run()
	res := runResult{code: -1, stdout: so.String(), stderr: se.String(), dur: time.Since(start)}
	if ctx.Err() != nil {
		res.timedOut = true
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		res.code = 0
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		t.Fatalf("run %v: %v", argv, err)
	}
	return res
}

// mount starts bucketfs the way users do (without -f) on a new bucket of the
// shared MinIO (unless options say otherwise), checks that the command
// exits 0 with the mount in place, and arranges for unmount, daemon exit,
// race-report and log checks when the test ends.
func mount(t *testing.T, opts ...mountOpt) *Mount {
	t.Helper()
	needSuite(t)
	cfg := mountCfg{srv: sharedMinio}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.bucket == "" {
		cfg.bucket = cfg.srv.NewBucket(t)
	}
	if cfg.dir == "" {
		cfg.dir = newMountDir(t)
	}
	work := t.TempDir()
	m := &Mount{
		t:        t,
		Dir:      cfg.dir,
		Bucket:   cfg.bucket,
		Prefix:   cfg.prefix,
		Srv:      cfg.srv,
		S3:       cfg.srv.Client(),
		LogFile:  filepath.Join(work, "bucketfs.log"),
		RaceDir:  filepath.Join(work, "race"),
		exitCode: -1,
	}
	if err := os.Mkdir(m.RaceDir, 0o755); err != nil {
		t.Fatal(err)
	}

	// Registered first so that it runs last, after the unmount.
	t.Cleanup(func() {
		if t.Failed() {
			m.dumpLog()
		}
	})

	var extra []string
	if !cfg.noEnvCreds {
		extra = append(extra,
			"AWS_ACCESS_KEY_ID="+cfg.srv.AccessKey,
			"AWS_SECRET_ACCESS_KEY="+cfg.srv.SecretKey)
	}
	extra = append(extra, cfg.env...)
	marker := fmt.Sprintf("%d-%d", os.Getpid(), mountSeq.Add(1))
	env := daemonEnv(t, m.RaceDir, marker, extra)

	var args []string
	if !cfg.noEndpoint {
		args = append(args, "--endpoint", cfg.srv.Endpoint)
	}
	args = append(args, "--log-file", m.LogFile)
	if cfg.ttl > 0 {
		args = append(args, "--stat-cache-ttl", cfg.ttl.String())
	}
	args = append(args, cfg.flags...)
	target := cfg.bucket
	if cfg.prefix != "" {
		target += ":" + cfg.prefix
	}
	args = append(args, target, cfg.dir)
	if len(cfg.oOpts) > 0 {
		args = append(args, "-o", strings.Join(cfg.oOpts, ","))
	}

	res := runBucketfs(t, env, 60*time.Second, nil, args...)
	if res.code != 0 {
		m.done = true
		m.checkRace()
		if isMounted(cfg.dir) {
			_ = exec.Command("fusermount3", "-uz", cfg.dir).Run()
		}
		t.Fatalf("bucketfs %s: %s", strings.Join(args, " "), res)
	}
	t.Cleanup(func() { m.Unmount() })

	if !isMounted(cfg.dir) {
		t.Fatalf("bucketfs exited 0 but %s is not in /proc/mounts", cfg.dir)
	}
	// The mount answers at once.
	var root, parent syscall.Stat_t
	if err := syscall.Stat(cfg.dir, &root); err != nil {
		t.Fatalf("stat of the mount root right after bucketfs exited 0: %v", err)
	}
	if err := syscall.Stat(filepath.Dir(cfg.dir), &parent); err == nil && root.Dev == parent.Dev {
		t.Fatalf("%s is on the same device as its parent: not a mount", cfg.dir)
	}
	if root.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		t.Fatalf("mount root mode %#o is not a directory", root.Mode)
	}
	m.PID = findDaemon(marker, cfg.dir)
	if m.PID == 0 {
		t.Logf("note: could not find the daemon process of %s; its exit status is not checked", cfg.dir)
	}
	return m
}

// findDaemon finds the detached daemon by its marker variable (or, failing
// that, by the mountpoint on its command line).
func findDaemon(marker, dir string) int {
	want := []byte(markerVar + "=" + marker + "\x00")
	deadline := time.Now().Add(5 * time.Second)
	for {
		ents, _ := os.ReadDir("/proc")
		var byCmdline int
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
			if exe != bucketfsBin {
				continue
			}
			envb, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
			if bytes.Contains(envb, want) {
				return pid
			}
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			for _, a := range bytes.Split(cmdline, []byte{0}) {
				if string(a) == dir {
					byCmdline = pid
				}
			}
		}
		if byCmdline != 0 {
			return byCmdline
		}
		if time.Now().After(deadline) {
			return 0
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Path returns the path of name inside the mount.
func (m *Mount) Path(name string) string { return filepath.Join(m.Dir, name) }

// Key returns the object key of name (relative to the mount root).
func (m *Mount) Key(name string) string { return m.Prefix + name }

// Unmount unmounts with fusermount3 -u (retrying while busy, lazily as a
// last resort) and waits for the daemon to exit. It returns the daemon's
// exit status (-1 if unknown). Safe to call twice.
func (m *Mount) Unmount() int {
	m.t.Helper()
	return m.unmountWith("fusermount3", "-u")
}

// unmountWith unmounts with the given command (the mountpoint is appended).
func (m *Mount) unmountWith(argv ...string) int {
	t := m.t
	t.Helper()
	if m.done {
		return m.exitCode
	}
	m.done = true
	deadline := time.Now().Add(15 * time.Second)
	var lastOut []byte
	for isMounted(m.Dir) {
		out, err := exec.Command(argv[0], append(argv[1:], m.Dir)...).CombinedOutput()
		if err == nil {
			break
		}
		lastOut = out
		if time.Now().After(deadline) {
			t.Errorf("%s %s: %v: %s; unmounting lazily", strings.Join(argv, " "), m.Dir, err, out)
			if err := exec.Command("fusermount3", "-uz", m.Dir).Run(); err != nil {
				_ = unix.Unmount(m.Dir, unix.MNT_DETACH)
			}
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	_ = lastOut
	m.exitCode = m.waitExit(30 * time.Second)
	if m.exitCode > 0 {
		t.Errorf("bucketfs daemon exited with status %d after %s, want 0", m.exitCode, strings.Join(argv, " "))
	}
	m.checkRace()
	m.checkInvariants()
	return m.exitCode
}

// checkInvariants fails the test if the daemon logged a broken internal
// invariant (fs.FS checks its bookkeeping at a clean shutdown).
func (m *Mount) checkInvariants() {
	m.t.Helper()
	b, err := os.ReadFile(m.LogFile)
	if err != nil {
		return
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.Contains(line, "internal invariant broken") {
			m.t.Errorf("bucketfs: %s", line)
		}
	}
}

// kill9 kills the daemon with SIGKILL, as an OOM kill or a crash would,
// and waits for it to be gone. The mount it served is left dead
// (ENOTCONN) and nothing is unmounted or waited for at cleanup.
func (m *Mount) kill9() {
	t := m.t
	t.Helper()
	if m.PID == 0 {
		t.Fatal("cannot find the daemon to kill")
	}
	if err := unix.Kill(m.PID, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if _, ok := waitPID(m.PID, 30*time.Second); !ok {
		t.Fatal("daemon still alive 30s after SIGKILL")
	}
	m.done = true
}

// kill9AndDetach kills the daemon with SIGKILL and lazily unmounts its
// dead mount, so the next daemon can mount the same bucket elsewhere.
func (m *Mount) kill9AndDetach() {
	m.t.Helper()
	m.kill9()
	_ = exec.Command("fusermount3", "-uz", m.Dir).Run()
}

// waitExit waits for the daemon to exit and returns its status (-1 when it
// could not be collected). A daemon still running at the deadline is killed
// and the test fails.
func (m *Mount) waitExit(timeout time.Duration) int {
	t := m.t
	t.Helper()
	if m.PID == 0 {
		return -1
	}
	code, ok := waitPID(m.PID, timeout)
	if !ok {
		t.Errorf("bucketfs daemon %d did not exit within %s after unmount; killing it", m.PID, timeout)
		_ = unix.Kill(m.PID, unix.SIGKILL)
		code, _ = waitPID(m.PID, 10*time.Second)
	}
	return code
}

// waitPID waits for pid (a child, or a descendant inherited as subreaper)
// to exit. It returns the exit status (-1 if unknown, 128+n for a signal)
// and whether the process is gone.
func waitPID(pid int, timeout time.Duration) (int, bool) {
	deadline := time.Now().Add(timeout)
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		switch {
		case got == pid:
			if ws.Signaled() {
				return 128 + int(ws.Signal()), true
			}
			return ws.ExitStatus(), true
		case errors.Is(err, syscall.ECHILD):
			// Not ours to wait for: wait until it is gone.
			if unix.Kill(pid, 0) != nil {
				return -1, true
			}
		}
		if time.Now().After(deadline) {
			return -1, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkRace fails the test if a race report was written by a bucketfs
// process of this mount.
func (m *Mount) checkRace() {
	m.t.Helper()
	checkRaceDir(m.t, m.RaceDir)
}

func checkRaceDir(t *testing.T, dir string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "race*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil || len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		if len(b) > 16<<10 {
			b = append(b[:16<<10], "\n…(truncated)"...)
		}
		t.Errorf("bucketfs reported a data race (%s):\n%s", filepath.Base(f), b)
	}
}

// dumpLog prints the tail of the daemon's log.
func (m *Mount) dumpLog() {
	b, err := os.ReadFile(m.LogFile)
	if err != nil {
		m.t.Logf("bucketfs log %s: %v", m.LogFile, err)
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	const keep = 150
	if len(lines) > keep {
		lines = append([]string{fmt.Sprintf("…(%d lines skipped)", len(lines)-keep)}, lines[len(lines)-keep:]...)
	}
	m.t.Logf("bucketfs log of %s:\n%s", m.Dir, strings.Join(lines, "\n"))
}

// Package test holds bucketfs's integration tests: each test mounts a bucket
// of a real MinIO server through the real kernel FUSE driver by running the
// bucketfs binary the way users do, works on the mount with syscalls and the
// shell tools people use, and checks the result in the bucket with the SDK.
//
// The binary is built once with -race and every daemon runs with
// GORACE=halt_on_error=0 and a per-mount log path: a test whose daemon
// reported a data race fails.
package test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/novitalabs/bucketfs/internal/miniotest"
)

const (
	// mountRootPattern names the directories that hold this suite's
	// mountpoints; stray mounts below such directories are removed at start.
	mountRootPattern = "bucketfs-it-"
)

var (
	// bucketfsBin is the race-enabled bucketfs binary built by TestMain.
	bucketfsBin string
	// repoRoot is the module root (the parent of test/).
	repoRoot string
	// skipReason, when set, makes every integration test skip (no
	// /dev/fuse, not root, ...): the suite cannot run here at all.
	skipReason string
)

func TestMain(m *testing.M) {
	if script := os.Getenv(writerHelperEnv); script != "" {
		os.Exit(runWriterHelper(script))
	}
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if runtime.GOOS != "linux" {
		skipReason = "integration tests need Linux"
		return m.Run()
	}
	if os.Geteuid() != 0 {
		skipReason = "integration tests need root (FUSE mounts, chown)"
		return m.Run()
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		skipReason = "no /dev/fuse: " + err.Error()
		return m.Run()
	}

	// Daemons detach from the process that started them. As a child
	// subreaper this process inherits them when their parent exits, so it
	// can wait for them and read their exit status.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "prctl(PR_SET_CHILD_SUBREAPER):", err)
		return 1
	}

	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	repoRoot = filepath.Dir(wd)

	cleanStrayMounts()

	work, err := os.MkdirTemp("", "bucketfs-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(work)

	bucketfsBin = filepath.Join(work, "bucketfs")
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	build := exec.CommandContext(ctx, "go", "build", "-race", "-o", bucketfsBin, "./cmd/bucketfs")
	build.Dir = repoRoot
	out, err := build.CombinedOutput()
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build -race ./cmd/bucketfs: %v\n%s", err, out)
		return 1
	}
	fmt.Fprintf(os.Stderr, "built %s with -race in %s\n", bucketfsBin, time.Since(start).Round(time.Millisecond))

	stop, err := startSharedMinio()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start MinIO:", err)
		return 1
	}
	code := m.Run()
	stop()
	reapAll()
	if left := mountsUnder(ownMountPrefix()); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: mounts left behind by the tests: %v\n", left)
		cleanStrayMounts()
		code = 1
	}
	return code
}

// needSuite skips t when the suite cannot run on this machine.
func needSuite(t *testing.T) {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
}

// mountsUnder returns the FUSE mountpoints listed in /proc/mounts whose path
// starts with prefix.
func mountsUnder(prefix string) []string {
	f, err := os.Open("/proc/mounts")
	if err != nil {
		return nil
	}
	defer f.Close()
	var res []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			continue
		}
		mp := unescapeMountPath(fields[1])
		if strings.HasPrefix(mp, prefix) {
			res = append(res, mp)
		}
	}
	return res
}

// isMounted reports whether dir is a mountpoint in /proc/mounts.
func isMounted(dir string) bool {
	for _, mp := range mountsUnder(dir) {
		if mp == dir {
			return true
		}
	}
	return false
}

// unescapeMountPath undoes the octal escapes of /proc/mounts (\040 etc.).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ownMountPrefix is the path prefix of this process's mountpoints. The pid
// in it lets a run tell its own mounts from those of another run going on
// at the same time, which it must leave alone.
func ownMountPrefix() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("%s%d-", mountRootPattern, os.Getpid()))
}

// cleanStrayMounts lazily unmounts mounts left behind by this run or by an
// earlier, interrupted run of this suite whose process is gone (only those
// under the suite's own temp dirs).
func cleanStrayMounts() {
	prefix := filepath.Join(os.TempDir(), mountRootPattern)
	for _, mp := range mountsUnder(prefix) {
		rest := strings.TrimPrefix(mp, prefix)
		pidText, _, _ := strings.Cut(rest, "-")
		if pid, err := strconv.Atoi(pidText); err == nil && pid != os.Getpid() && unix.Kill(pid, 0) == nil {
			continue // another run, still alive
		}
		fmt.Fprintln(os.Stderr, "removing stray mount", mp)
		if err := exec.Command("fusermount3", "-uz", mp).Run(); err != nil {
			_ = unix.Unmount(mp, unix.MNT_DETACH)
		}
	}
}

// reapAll collects any exited children (daemons inherited as subreaper).
func reapAll() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

// sharedMinio is the MinIO server the tests share (each with its own
// buckets). Tests that kill or restart the server start their own.
var sharedMinio *miniotest.Server

func startSharedMinio() (stop func(), err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	root, err := os.MkdirTemp(minioParentDir(), "bucketfs-it-minio-")
	if err != nil {
		return nil, err
	}
	srv, err := miniotest.Start(ctx, miniotest.Options{DataDir: filepath.Join(root, "data")})
	if err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	sharedMinio = srv
	return func() {
		if err := srv.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "stop MinIO:", err)
		}
		os.RemoveAll(root)
	}, nil
}

// minioParentDir picks where the shared MinIO keeps its data: a tmpfs
// (/dev/shm) when it has room, because MinIO fsyncs every object and the
// suite writes thousands of them; else the temp dir. $BUCKETFS_IT_MINIO_DIR
// overrides the choice.
func minioParentDir() string {
	if d := os.Getenv("BUCKETFS_IT_MINIO_DIR"); d != "" {
		return d
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &st); err == nil && st.Type == unix.TMPFS_MAGIC &&
		st.Bavail*uint64(st.Bsize) > 2<<30 && unix.Access("/dev/shm", unix.W_OK) == nil {
		return "/dev/shm"
	}
	return os.TempDir()
}

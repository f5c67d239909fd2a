package test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestSandboxMetrics: --metrics-addr serves Prometheus metrics that count,
// during a workload, the S3 requests by type and outcome, the bytes moved
// both ways, failed operations by errno, and the build.
func TestSandboxMetrics(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	// A long TTL keeps the ETag seen at lookup, for the ESTALE below.
	m := mount(t, withFlags("--metrics-addr", addr), withTTL(time.Minute))

	// Scrape continuously while the workload runs: the endpoint must stay
	// up and consistent under load.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var scrapes int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			s, _, err := tryScrape(addr)
			if err != nil {
				t.Errorf("scrape during the workload: %v", err)
				return
			}
			if s["bucketfs_uploads_in_flight"] < 0 {
				t.Errorf("uploads in flight went negative")
			}
			scrapes++
		}
	}()

	const n, size = 6, 150000
	var written int
	for i := range n {
		data := randBytes(uint64(700+i), size+i)
		writeFile(t, m.Path(fmt.Sprintf("w%d.bin", i)), data)
		written += len(data)
	}
	var read int
	for i := range n {
		data := randBytes(uint64(710+i), size+i)
		m.Put(fmt.Sprintf("r%d.bin", i), data, nil)
		sameBytes(t, "r.bin through the mount", readFile(t, m.Path(fmt.Sprintf("r%d.bin", i))), data)
		read += len(data)
	}
	wantErrno(t, "stat of a missing file", statErr(m.Path("missing")), syscall.ENOENT)
	// Replace an object behind the mount's back: the read pinned to the
	// old ETag fails (ESTALE), a failed operation counted by errno.
	m.Put("replaced", []byte("one"), nil)
	lstat(t, m.Path("replaced"))
	m.Put("replaced", []byte("two, longer"), nil)
	_, staleErr := os.ReadFile(m.Path("replaced"))
	t.Logf("read of the replaced object: %v", staleErr)
	close(stop)
	wg.Wait()

	s, text := scrape(t, addr)
	atLeast := func(series string, min float64) {
		t.Helper()
		if got, ok := s[series]; !ok || got < min {
			t.Errorf("%s = %v (present %v), want >= %v", series, got, ok, min)
		}
	}
	atLeast(`bucketfs_s3_requests_total{op="upload",outcome="ok"}`, n)
	atLeast(`bucketfs_s3_requests_total{op="get",outcome="ok"}`, n)
	// Lookups of names not listed peek with a GET (see fs.peek).
	atLeast(`bucketfs_s3_requests_total{op="get",outcome="not_found"}`, 1)
	atLeast(`bucketfs_s3_requests_total{op="list",outcome="ok"}`, 1)
	atLeast(`bucketfs_s3_upload_bytes_total`, float64(written))
	atLeast(`bucketfs_s3_download_bytes_total`, float64(read))
	atLeast(`bucketfs_s3_request_duration_seconds_count{op="upload"}`, n)
	if v, ok := s["bucketfs_uploads_in_flight"]; !ok || v != 0 {
		t.Errorf("bucketfs_uploads_in_flight = %v (present %v) with no upload running, want 0", v, ok)
	}
	for _, name := range []string{"bucketfs_cache_hits_total", "bucketfs_cache_misses_total", "bucketfs_cache_bytes"} {
		if _, ok := s[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}
	if staleErr != nil {
		var errs float64
		for k, v := range s {
			if strings.HasPrefix(k, "bucketfs_fs_errors_total{") {
				errs += v
			}
		}
		if errs < 1 {
			t.Errorf("a read failed (%v) but bucketfs_fs_errors_total counts nothing", staleErr)
		}
	}
	if !strings.Contains(text, `bucketfs_build_info{commit=`) || !strings.Contains(text, "go_goroutines ") {
		t.Errorf("build info or Go runtime metrics missing")
	}
	if t.Failed() {
		t.Logf("/metrics after %d concurrent scrapes:\n%s", scrapes, text)
	}
	if code := m.Unmount(); m.PID != 0 && code != 0 {
		t.Errorf("daemon exit status %d", code)
	}
}

// TestSandboxNoSecrets: the secret key never appears in the daemon's logs
// (at debug level, in both formats), in /metrics, in its command line or
// in a failed start's message. JSON logs are one object per line, and a
// failed operation is one line with its key, S3 error code and errno.
func TestSandboxNoSecrets(t *testing.T) {
	t.Parallel()
	needSuite(t)
	srv := sharedMinio
	secret := srv.SecretKey

	for _, tc := range []struct {
		name   string
		format string
		opts   []mountOpt
	}{
		{"PasswdFileJSON", "json", nil},
		{"EnvText", "text", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := freeAddr(t)
			opts := []mountOpt{withTTL(time.Minute),
				withFlags("--log-level", "debug", "--log-format", tc.format, "--metrics-addr", addr)}
			if tc.name == "PasswdFileJSON" {
				pw := filepath.Join(t.TempDir(), "passwd")
				writePasswd(t, pw, srv.AccessKey+":"+secret+"\n", 0o600)
				opts = append(opts, withoutEnvCreds(), withO("passwd_file="+pw))
			}
			m := mount(t, opts...)

			// A workload with failures, which log the most detail.
			writeFile(t, m.Path("a.txt"), []byte("hello"))
			sameBytes(t, "a.txt", readFile(t, m.Path("a.txt")), []byte("hello"))
			_ = statErr(m.Path("missing"))
			m.Put("replaced", []byte("one"), nil)
			lstat(t, m.Path("replaced"))
			m.Put("replaced", []byte("two, longer"), nil)
			_, readErr := os.ReadFile(m.Path("replaced"))
			if err := os.Rename(m.Path("a.txt"), m.Path("b.txt")); err != nil {
				t.Error(err)
			}

			_, metricsText := scrape(t, addr)
			var cmdline []byte
			if m.PID != 0 {
				cmdline, _ = os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", m.PID))
			}
			if code := m.Unmount(); m.PID != 0 && code != 0 {
				t.Errorf("daemon exit status %d", code)
			}
			log := m.readLog()
			for what, text := range map[string]string{"log": log, "/metrics": metricsText, "command line": string(cmdline)} {
				if strings.Contains(text, secret) {
					t.Errorf("the secret key appears in the daemon's %s", what)
				}
			}

			if tc.format != "json" {
				return
			}
			var failed []map[string]any
			for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					// Only the race detector may write non-JSON here, and
					// it writes to its own files.
					t.Errorf("log line is not JSON: %q: %v", line, err)
					continue
				}
				if rec["msg"] == "operation failed" {
					failed = append(failed, rec)
				}
			}
			if readErr == nil {
				return
			}
			found := false
			for _, rec := range failed {
				if rec["key"] == "replaced" {
					found = true
					for _, k := range []string{"op", "s3_code", "errno", "err"} {
						if _, ok := rec[k]; !ok {
							t.Errorf("failed-operation line lacks %q: %v", k, rec)
						}
					}
					t.Logf("failed operation: op=%v s3_code=%v errno=%v", rec["op"], rec["s3_code"], rec["errno"])
				}
			}
			if !found {
				t.Errorf("the read of 'replaced' failed (%v) but no \"operation failed\" line names its key", readErr)
			}
		})
	}

	t.Run("BadSecret", func(t *testing.T) {
		t.Parallel()
		bucket := srv.NewBucket(t)
		wrong := "wrong" + secret[5:]
		res := expectMountFailure(t, failCase{
			target: bucket, endpoint: srv.Endpoint, flags: []string{"--log-level", "debug"},
			env: []string{"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + wrong},
		})
		if strings.Contains(res.stdout+res.stderr, wrong) {
			t.Errorf("the (wrong) secret key appears in the error message: %s", res)
		}
	})
}

// TestSandboxDaemonArgv: the background daemon is started with the user's
// arguments only: no secret travels in a child's argv, whatever the
// credential source.
func TestSandboxDaemonArgv(t *testing.T) {
	t.Parallel()
	m := mount(t)
	if m.PID == 0 {
		t.Skip("cannot find the daemon")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", m.PID))
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if len(args) < 3 || args[len(args)-1] != m.Dir {
		t.Errorf("daemon argv %q: want the user's command line", args)
	}
	if strings.Contains(string(b), m.Srv.SecretKey) {
		t.Errorf("the secret key is in the daemon's argv")
	}
	// The daemon has no child processes carrying anything either.
	out, _ := exec.Command("pgrep", "-P", fmt.Sprint(m.PID)).Output()
	if len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("the daemon has child processes: %s", out)
	}
}

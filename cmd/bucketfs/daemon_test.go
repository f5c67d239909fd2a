package main

import (
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeChildVar makes the test binary, when daemonize re-executes it, play
// a daemon child that behaves as the variable says instead of running the
// tests.
const fakeChildVar = "BUCKETFS_TEST_FAKE_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeChildVar); mode != "" {
		os.Exit(fakeChild(mode))
	}
	os.Exit(m.Run())
}

func fakeChild(mode string) int {
	r := daemonChild()
	if r == nil {
		os.Stderr.WriteString("fake child: no readiness fd\n")
		return 9
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM) // before the log line the test waits for
	// What the child writes to stderr must land in the log file.
	os.Stderr.WriteString("fake child log line\n")
	switch mode {
	case "ok":
		r.report(nil)
	case "fail":
		r.report(errors.New("bucket \"x\" does not exist at http://h\nsecond line"))
	case "die":
		return 3
	case "hang":
		time.Sleep(time.Minute)
	case "hang-until-term":
		<-sigs
		os.Stderr.WriteString("fake child got SIGTERM\n")
		return 1
	}
	return 0
}

func TestDaemonize(t *testing.T) {
	tests := []struct {
		mode    string
		want    string // "" for success
		elapsed time.Duration
	}{
		{"ok", "", 0},
		{"fail", `bucket "x" does not exist at http://h; second line`, 0},
		{"die", "the daemon died before the mount was ready (exit status 3); see ", 0},
		// Pretend most of the start-up budget is gone so the test is quick.
		{"hang", "the mount did not become ready within 30s", startupBudget - 3*time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Setenv(fakeChildVar, tt.mode)
			logFile := filepath.Join(t.TempDir(), "sub", "bucketfs.log")
			cfg := &Config{LogFile: logFile, Mountpoint: t.TempDir()}
			start := time.Now()
			err := daemonize(cfg, nil, testEnv(nil), start.Add(-tt.elapsed))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("daemonize: %v", err)
			case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)):
				t.Fatalf("daemonize = %v, want %q", err, tt.want)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("daemonize took %v", d)
			}
			// The child's stderr is the log file (give a released child a
			// moment to write).
			deadline := time.Now().Add(5 * time.Second)
			for {
				b, _ := os.ReadFile(logFile)
				if strings.Contains(string(b), "fake child log line") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("log file %s lacks the child's output: %q", logFile, b)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

func TestDaemonChildMarkerNotInherited(t *testing.T) {
	t.Setenv(daemonChildEnv, "notanumber")
	if r := daemonChild(); r != nil {
		t.Error("bad fd accepted")
	}
	if _, ok := os.LookupEnv(daemonChildEnv); ok {
		t.Error("marker still in the environment")
	}
	var nilReporter *readyReporter
	nilReporter.report(nil) // must not panic: foreground mode has no reporter
	if nilReporter.reported() {
		t.Error("nil reporter reported")
	}
}

// TestDaemonizeInterrupted: a signal to the waiting parent stops the child.
func TestDaemonizeInterrupted(t *testing.T) {
	t.Setenv(fakeChildVar, "hang-until-term")
	logFile := filepath.Join(t.TempDir(), "bucketfs.log")
	cfg := &Config{LogFile: logFile, Mountpoint: t.TempDir()}
	go func() {
		// Wait for the child to be running, then interrupt ourselves.
		for i := 0; i < 200; i++ {
			if b, _ := os.ReadFile(logFile); strings.Contains(string(b), "fake child log line") {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		_ = syscall.Kill(os.Getpid(), syscall.SIGINT)
	}()
	err := daemonize(cfg, nil, testEnv(nil), time.Now())
	if err == nil || !strings.HasPrefix(err.Error(), "interrupted (interrupt) before the mount was ready") {
		t.Fatalf("daemonize = %v", err)
	}
	if b, _ := os.ReadFile(logFile); !strings.Contains(string(b), "fake child got SIGTERM") {
		t.Errorf("child did not get SIGTERM; log %q", b)
	}
}

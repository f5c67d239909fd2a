package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// daemonChildEnv marks the re-executed background process. Its value is
// the number of the file descriptor on which the child reports readiness.
// It carries no secret: the child re-reads password files and the
// environment itself.
const daemonChildEnv = "_BUCKETFS_DAEMON_READY_FD"

// Messages on the readiness pipe, one line each.
const (
	readyOK     = "ok"
	readyErrPfx = "error: "
)

// daemonize starts this program again in the background, in its own
// session and with its output going to the log file, and waits until the
// child says the mount answers (nil) or why it failed (the child's one-line
// error), or dies, or the start-up budget runs out.
func daemonize(cfg *Config, args []string, env sysEnv, started time.Time) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding my own executable to start the daemon: %w", err)
	}
	logPath := cfg.LogFile
	if logPath == "" {
		logPath = defaultDaemonLogFile(env)
	}
	logFile, err := openLogFile(logPath)
	if err != nil {
		// Mounting without a log is still better than not mounting; say so.
		fmt.Fprintf(os.Stderr, "bucketfs: warning: %v; the daemon will not log\n", err)
		logFile, err = os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("opening %s: %w", os.DevNull, err)
		}
		logPath = ""
	}
	defer logFile.Close()
	// stdin is an empty pipe rather than /dev/null, which a container may
	// lack (the log file is what matters).
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("creating the daemon's stdin: %w", err)
	}
	stdinW.Close()
	defer stdinR.Close()

	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("creating the readiness pipe: %w", err)
	}
	defer r.Close()

	cmd := exec.Command(exe, args...)
	// ExtraFiles[0] becomes fd 3 in the child.
	cmd.Env = append(os.Environ(), daemonChildEnv+"=3")
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stdin = stdinR
	// Never hand the child our own stdout/stderr: a caller that captures
	// them (subprocess with pipes) would wait for EOF forever.
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("starting the daemon: %w", err)
	}
	w.Close() // only the child holds the write end now: EOF means it died or gave up

	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(io.LimitReader(r, 64<<10)).ReadString('\n')
		lines <- strings.TrimRight(line, "\n")
	}()
	var waitOnce sync.Once
	var waitErr error
	wait := func() error { waitOnce.Do(func() { waitErr = cmd.Wait() }); return waitErr }

	seeLog := ""
	if logPath != "" {
		seeLog = "; see " + logPath
	}
	timer := time.NewTimer(time.Until(started.Add(startupBudget - time.Second)))
	defer timer.Stop()
	// Ctrl-C while waiting must not leave a mount appearing afterwards:
	// pass the request on to the child, which then gives up (or unmounts).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	select {
	case s := <-sigs:
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		exited := make(chan struct{})
		go func() { _ = wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
		return fmt.Errorf("interrupted (%v) before the mount was ready; the daemon was stopped", s)
	case line := <-lines:
		switch {
		case line == readyOK:
			// Leave the child running; it was re-parented to init.
			_ = cmd.Process.Release()
			return nil
		case strings.HasPrefix(line, readyErrPfx):
			// Let the child finish its cleanup so that no daemon outlives
			// the failed command, but do not hang on it.
			exited := make(chan struct{})
			go func() { _ = wait(); close(exited) }()
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			}
			return errors.New(strings.TrimPrefix(line, readyErrPfx))
		}
		// EOF or garbage: the child died before saying anything.
		done := make(chan struct{})
		go func() { _ = wait(); close(done) }()
		select {
		case <-done:
			if waitErr != nil {
				return fmt.Errorf("the daemon died before the mount was ready (%v)%s", waitErr, seeLog)
			}
			return fmt.Errorf("the daemon exited before the mount was ready%s", seeLog)
		case <-timer.C:
		}
	case <-timer.C:
	}
	// Out of time: kill the whole session of the child and make sure no
	// half-made mount stays behind.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = wait()
	if isMounted(cfg.Mountpoint, "bucketfs:") {
		_ = lazyUnmount(cfg.Mountpoint)
	}
	return fmt.Errorf("the mount did not become ready within %s%s", startupBudget, seeLog)
}

// openLogFile opens (creating it and its directory if needed) a log file
// for appending.
func openLogFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("log directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	return f, nil
}

// readyReporter is the child's end of the readiness pipe.
type readyReporter struct {
	mu   sync.Mutex
	f    *os.File
	done bool
}

// daemonChild returns the readiness reporter if this process is the
// background child of daemonize, else nil.
func daemonChild() *readyReporter {
	v := os.Getenv(daemonChildEnv)
	if v == "" {
		return nil
	}
	// Do not leak the marker to anything we might start.
	os.Unsetenv(daemonChildEnv)
	var fd uintptr
	if _, err := fmt.Sscanf(v, "%d", &fd); err != nil || fd < 3 {
		return nil
	}
	// Inherited descriptors lack close-on-exec: without it a helper we
	// start (fusermount3) would hold the pipe open too.
	syscall.CloseOnExec(int(fd))
	return &readyReporter{f: os.NewFile(fd, "bucketfs-ready")}
}

// report sends one message (readyOK or an error) and closes the pipe;
// later calls do nothing.
func (r *readyReporter) report(err error) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return
	}
	r.done = true
	msg := readyOK
	if err != nil {
		msg = readyErrPfx + oneLine(err.Error())
	}
	_, _ = io.WriteString(r.f, msg+"\n")
	_ = r.f.Close()
}

func (r *readyReporter) reported() bool {
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done
}

// oneLine keeps an error message on one line, as scripts expect.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, "\r", "")
	return strings.ReplaceAll(s, "\n", "; ")
}

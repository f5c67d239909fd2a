package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/novitalabs/bucketfs/internal/miniotest"
)

// minioServer is the one MinIO of a run, on loopback, started through
// internal/miniotest. Its data lives on tmpfs when there is one, so that
// dropping the page cache for a "cold" client read does not also turn the
// server cold: the figures measure the clients, not the disk.
type minioServer struct {
	srv     *miniotest.Server
	root    string
	dataDir string
	target  s3Target
	Version string
}

// startMinio starts MinIO with its files under root (removed by Stop). A
// non-empty bin is used as the binary, else miniotest finds or builds one.
func startMinio(ctx context.Context, bin, root string) (*minioServer, error) {
	if bin != "" {
		os.Setenv("MINIO_BIN", bin)
	}
	_ = os.RemoveAll(root)
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	srv, err := miniotest.Start(ctx, miniotest.Options{
		DataDir: filepath.Join(root, "data"),
		Env:     []string{"CI=true"},
	})
	if err != nil {
		_ = os.RemoveAll(root)
		return nil, err
	}
	m := &minioServer{srv: srv, root: root, dataDir: srv.DataDir, target: s3Target{
		Endpoint:  srv.Endpoint,
		AccessKey: srv.AccessKey,
		SecretKey: srv.SecretKey,
		Bucket:    "bench",
	}}
	if b, err := miniotest.Binary(ctx); err == nil {
		if out, err := exec.Command(b, "--version").Output(); err == nil {
			m.Version = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
		}
	}
	return m, nil
}

// LogPath is MinIO's log.
func (m *minioServer) LogPath() string { return m.srv.LogPath }

// Stop ends MinIO, keeps a copy of its log at saveLog and removes its files.
func (m *minioServer) Stop(saveLog string) {
	if m == nil {
		return
	}
	_ = m.srv.Close()
	if b, err := os.ReadFile(m.srv.LogPath); err == nil {
		_ = os.WriteFile(saveLog, b, 0o644)
	}
	_ = os.RemoveAll(m.root)
}

// cleanEnv is the runner's environment without AWS or proxy settings that
// could point a client elsewhere; loopback never goes through a proxy.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		uk := strings.ToUpper(k)
		switch {
		case uk == "AWS_CA_BUNDLE":
			// kept: bucketfs must cope with it, as in the sandboxes
		case strings.HasPrefix(uk, "AWS_"), strings.HasPrefix(uk, "RCLONE_"),
			uk == "HTTP_PROXY", uk == "HTTPS_PROXY", uk == "ALL_PROXY", uk == "NO_PROXY":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
}

// sentBytes returns how many bytes the MinIO process has written so far
// (wchar of /proc/PID/io: its socket sends, and its file writes, of which
// there are none while only GETs run). MinIO's own traffic metric is not
// used: it is cached for seconds, so a sample taken just after another
// tool's run still missed that run's bytes.
func (m *minioServer) sentBytes() (float64, error) {
	pid := m.srv.PID()
	if pid == 0 {
		return 0, errors.New("minio is not running")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, fmt.Errorf("minio's write count: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar:"); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, fmt.Errorf("minio's write count %q: %w", line, err)
			}
			return n, nil
		}
	}
	return 0, errors.New("minio's write count: no wchar in /proc/PID/io")
}

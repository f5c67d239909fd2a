package miniotest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MinioModule is the MinIO version built when no binary is installed. It is
// pinned so that every engineer and CI run tests against the same server.
const MinioModule = "github.com/minio/minio@v0.0.0-20260212201848-7aac2a2c5b7c"

// buildTimeout bounds a from-source build of MinIO (normally ~3 minutes on
// two cores; generous because other builds may compete for the CPU).
const buildTimeout = 20 * time.Minute

var (
	binMu   sync.Mutex
	binPath string // memoised on success only: a cancelled first caller must not poison later ones
)

// Binary returns the path of a MinIO server binary: $MINIO_BIN, else minio
// on PATH, else $(go env GOPATH)/bin/minio, else it builds MinioModule with
// go install. The result is memoised for the life of the process.
func Binary(ctx context.Context) (string, error) {
	binMu.Lock()
	defer binMu.Unlock()
	if binPath != "" {
		return binPath, nil
	}
	p, err := findOrBuild(ctx)
	if err != nil {
		return "", err
	}
	binPath = p
	return p, nil
}

func findOrBuild(ctx context.Context) (string, error) {
	if p := os.Getenv("MINIO_BIN"); p != "" {
		if err := checkExecutable(p); err != nil {
			return "", fmt.Errorf("MINIO_BIN: %w", err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	gobin, err := goBinDir(ctx)
	if err != nil {
		return "", err
	}
	target := filepath.Join(gobin, "minio")
	if checkExecutable(target) == nil {
		return target, nil
	}

	// Several test binaries (go test runs packages in parallel) may get here
	// at once; a file lock makes one build while the others wait, then find
	// the binary when they get the lock.
	lockPath := filepath.Join(os.TempDir(), "bucketfs-miniotest-build.lock")
	lf, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("open build lock: %w", err)
	}
	defer lf.Close()
	if err := flockCtx(ctx, lf); err != nil {
		return "", fmt.Errorf("lock %s: %w", lockPath, err)
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing the file releases it anyway

	if checkExecutable(target) == nil {
		return target, nil
	}
	bctx, cancel := context.WithTimeout(ctx, buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(bctx, "go", "install", MinioModule)
	// Build outside any module so that go install never touches our go.mod.
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOBIN="+gobin, "GOFLAGS=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go install %s: %w\n%s", MinioModule, err, tail(out.String(), 4000))
	}
	if err := checkExecutable(target); err != nil {
		return "", fmt.Errorf("after go install: %w", err)
	}
	return target, nil
}

// flockCtx takes an exclusive lock on f, polling so that ctx can abort the
// wait (a blocking flock cannot be interrupted).
func flockCtx(ctx context.Context, f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func goBinDir(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOPATH").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOPATH: %w", err)
	}
	gp := strings.TrimSpace(string(out))
	if i := strings.IndexByte(gp, os.PathListSeparator); i >= 0 {
		gp = gp[:i] // go install uses the first GOPATH entry
	}
	if gp == "" {
		return "", errors.New("go env GOPATH is empty")
	}
	return filepath.Join(gp, "bin"), nil
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

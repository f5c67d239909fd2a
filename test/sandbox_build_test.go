package test

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSandboxBuildScript runs the build script of novita.Dockerfile as its
// builder stage does (VERSION and COMMIT from build arguments) and checks
// that it yields a static executable that names the build. CI thereby runs
// the same recipe the template image is built with.
func TestSandboxBuildScript(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds bucketfs from scratch (-short)")
	}
	dockerfile, err := os.ReadFile(filepath.Join(repoRootDir(t), "novita.Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"scripts/build-static.sh", "/usr/local/bin/bucketfs", "fuse3", "mount.fuse.bucketfs"} {
		if !strings.Contains(string(dockerfile), want) {
			t.Errorf("novita.Dockerfile does not mention %s", want)
		}
	}

	out := filepath.Join(t.TempDir(), "bucketfs")
	cmd := exec.Command("bash", "scripts/build-static.sh", out)
	cmd.Dir = repoRootDir(t)
	cmd.Env = append(os.Environ(), "VERSION=v0.0.0-it", "COMMIT=c0ffee1")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/build-static.sh: %v\n%s", err, b)
	}

	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s is dynamically linked (has %v)", out, p.Type)
		}
	}
	v, err := exec.Command(out, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(v), "v0.0.0-it") || !strings.Contains(string(v), "commit c0ffee1") {
		t.Errorf("%s --version: %q, %v; want the version and commit", out, v, err)
	}
}

// repoRootDir is the module root even when the suite cannot run (repoRoot
// is set only once TestMain has found root and /dev/fuse).
func repoRootDir(t *testing.T) string {
	t.Helper()
	if repoRoot != "" {
		return repoRoot
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

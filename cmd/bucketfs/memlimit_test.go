package main

import (
	"os"
	"path/filepath"
	"testing"
)

// fakeRoot builds a filesystem root with /proc/self/cgroup and the given
// files under /sys/fs/cgroup.
func fakeRoot(t *testing.T, procCgroup string, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	write := func(rel, body string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("proc/self/cgroup", procCgroup)
	for rel, body := range files {
		write(filepath.Join("sys/fs/cgroup", rel), body)
	}
	return root
}

func TestCgroupMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proc  string
		files map[string]string
		want  int64
	}{
		{"v2 limit", "0::/sandbox/job\n", map[string]string{"sandbox/job/memory.max": "536870912\n"}, 512 << 20},
		{"v2 max is none", "0::/sandbox/job\n", map[string]string{"sandbox/job/memory.max": "max\n"}, 0},
		{"v2 ancestor's limit is smaller", "0::/a/b/c\n", map[string]string{
			"a/b/c/memory.max": "max\n", "a/b/memory.max": "1073741824\n", "a/memory.max": "2147483648\n"}, 1 << 30},
		{"v2 namespace root", "0::/\n", map[string]string{"memory.max": "268435456\n"}, 256 << 20},
		{"v2 no files", "0::/x\n", nil, 0},
		{"v1 memory controller", "4:memory:/p/q\n3:cpu:/\n0::/\n", map[string]string{
			"memory/p/q/memory.limit_in_bytes": "134217728\n"}, 128 << 20},
		{"v1 no limit", "4:memory:/p\n", map[string]string{"memory/p/memory.limit_in_bytes": "9223372036854771712\n"}, 0},
		{"garbage", "what\n", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cgroupMemoryLimit(fakeRoot(t, tc.proc, tc.files)); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
	if got := cgroupMemoryLimit(filepath.Join(t.TempDir(), "nothing")); got != 0 {
		t.Errorf("no /proc: %d", got)
	}
}

func TestMemoryDefaultsUnderLimit(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		limit, cache, soft int64
	}{
		{0, 256 * mib, 352 * mib},             // no limit: as before
		{512 * mib, 64 * mib, 96 * mib},       // an eighth; headroom a sixteenth
		{128 * mib, 16 * mib, 32 * mib},       // headroom at least 16 MiB
		{1 << 30, 128 * mib, 192 * mib},       // 1 GiB: cache an eighth, headroom a sixteenth
		{16 * mib, 4 * mib, 20 * mib},         // never under 4 blocks, nor cache+16MiB
		{64 << 30, 256 * mib, 352 * mib},      // a big limit changes nothing
		{100*mib + 12345, 12 * mib, 28 * mib}, // whole blocks
	} {
		if got := defaultMemoryCacheFor(tc.limit, mib); got != tc.cache {
			t.Errorf("limit %d: cache %d, want %d", tc.limit, got, tc.cache)
		}
		if got := goSoftLimit(tc.cache, tc.limit); got != tc.soft {
			t.Errorf("limit %d: soft limit %d, want %d", tc.limit, got, tc.soft)
		}
	}

	// Through the flags: the limit sets the default, an explicit flag wins.
	env := testEnv(nil)
	env.MemLimit = 512 * mib
	cfg, err := parseArgs([]string{"b", "/m"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MemoryCacheSize != 64*mib || cfg.MemoryLimit != 512*mib {
		t.Errorf("under 512MiB: cache %d, limit %d", cfg.MemoryCacheSize, cfg.MemoryLimit)
	}
	cfg, err = parseArgs([]string{"--memory-cache-size", "300MiB", "b", "/m"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MemoryCacheSize != 300*mib {
		t.Errorf("explicit flag: cache %d", cfg.MemoryCacheSize)
	}
	if got := goSoftLimit(cfg.MemoryCacheSize, cfg.MemoryLimit); got != 332*mib {
		t.Errorf("explicit 300MiB under 512MiB: soft limit %d, want the cache plus a sixteenth of the limit", got)
	}
	if got := goSoftLimit(400*mib, 512*mib); got != 416*mib {
		t.Errorf("explicit 400MiB under 512MiB: soft limit %d, want the cache plus 16 MiB", got)
	}
	cfg, err = parseArgs([]string{"--block-size", "4MiB", "b", "/m"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MemoryCacheSize != 64*mib {
		t.Errorf("4MiB blocks: cache %d", cfg.MemoryCacheSize)
	}
}

func TestMemoryBackedDiskTierUnderLimit(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		size, limit, want int64
	}{
		{10 << 30, 0, 10 << 30},           // no limit: the usual automatic size
		{10 << 30, 512 * mib, 64 * mib},   // tmpfs under 512 MiB: an eighth, as the memory tier
		{32 * mib, 512 * mib, 32 * mib},   // already smaller
		{10 << 30, 100*mib + 1, 12 * mib}, // whole blocks
		{10 << 30, 16 * mib, 2 * mib},     // under 4 blocks: openDiskTier turns it off
	} {
		if got := memoryBackedTierSize(tc.size, tc.limit, mib); got != tc.want {
			t.Errorf("size %d, limit %d: %d, want %d", tc.size, tc.limit, got, tc.want)
		}
	}
	if !inMemoryFS("/dev/shm") {
		t.Log("/dev/shm is not tmpfs here")
	}
	if inMemoryFS("/proc/self") {
		t.Error("/proc taken for tmpfs")
	}
}

package main

import (
	"os"
	"testing"
)

func TestExecutableMappings(t *testing.T) {
	const exe = "/usr/local/bin/bucketfs"
	smaps := []byte(`00400000-00b25000 r-xp 00000000 fe:00 123 /usr/local/bin/bucketfs
Size:               7316 kB
Rss:                6420 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
Swap:                  0 kB
00b25000-012cb000 r--p 00725000 fe:00 123 /usr/local/bin/bucketfs
Rss:                6944 kB
Private_Dirty:         0 kB
Anonymous:             0 kB
012cb000-01339000 rw-p 00ecb000 fe:00 123 /usr/local/bin/bucketfs
Rss:                 440 kB
Anonymous:           200 kB
01400000-01500000 r--p 00000000 fe:00 123 /usr/local/bin/bucketfs
Rss:                   8 kB
Anonymous:             4 kB
7fc42be6d000-7fc42bfc3000 r-xp 00028000 fe:00 456 /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                1036 kB
Anonymous:             0 kB
80f2fc00000-80f30800000 rw-p 00000000 00:00 0 
Rss:                2604 kB
Anonymous:          2604 kB
7ffd1000-7ffd2000 r--p 00000000 fe:00 789 /usr/local/bin/bucketfs (deleted)
Anonymous:             0 kB
`)
	got := executableMappings(smaps, exe)
	want := []startupMapping{{0x400000, 0xb25000}, {0xb25000, 0x12cb000}}
	if len(got) != len(want) {
		t.Fatalf("got %x, want %x (the writable data, a mapping with a private page, libc, the heap and another file are never dropped)", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mapping %d: %x, want %x", i, got[i], want[i])
		}
	}
}

// TestReleaseStartupPages runs the real thing on the test binary: it drops
// something and the process goes on running (the code running it included).
func TestReleaseStartupPages(t *testing.T) {
	if _, err := os.Stat("/proc/self/smaps"); err != nil {
		t.Skip("no /proc/self/smaps")
	}
	if n := releaseStartupPages(); n <= 0 {
		t.Fatalf("dropped %d bytes", n)
	}
	// Code and read-only data are still there.
	if got := executableMappings([]byte("00400000-00401000 r-xp 0 0 0 /x\n"), "/x"); len(got) != 1 {
		t.Fatalf("after release: %v", got)
	}
}

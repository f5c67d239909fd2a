package main

import "testing"

func TestParseByteSize(t *testing.T) {
	good := map[string]int64{"0": 0, "4096": 4096, "512KiB": 512 << 10, "256MiB": 256 << 20, "1GiB": 1 << 30,
		"10G": 10 << 30, "3M": 3 << 20, " 2 MiB ": 2 << 20, "7B": 7}
	for in, want := range good {
		if got, err := parseByteSize(in); err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5GiB", "lots", "9999999999TiB", "MiB"} {
		if _, err := parseByteSize(in); err == nil {
			t.Errorf("parseByteSize(%q) accepted", in)
		}
	}
	for _, n := range []int64{0, 1000, 1 << 20, 3 << 30, 1536 << 10} {
		if got, err := parseByteSize(formatByteSize(n)); err != nil || got != n {
			t.Errorf("round trip of %d via %q gave %d, %v", n, formatByteSize(n), got, err)
		}
	}
}

func TestCacheFlags(t *testing.T) {
	cfg, err := parseArgs([]string{"--memory-cache-size", "64MiB", "--block-size", "512KiB", "--cache-dir", "/c", "--cache-size", "2GiB", "b", "/m"}, testEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MemoryCacheSize != 64<<20 || cfg.BlockSize != 512<<10 || cfg.CacheDir != "/c" || cfg.CacheSize != 2<<30 {
		t.Errorf("cache config %+v", cfg)
	}
	for _, args := range [][]string{{"--block-size", "3000", "b", "/m"}, {"--memory-cache-size", "1MiB", "b", "/m"}} {
		if _, err := parseArgs(args, testEnv(nil)); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

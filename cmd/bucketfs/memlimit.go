package main

import (
	"bufio"
	"bytes"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// Memory defaults that fit the sandbox. A daemon in a container or a
// systemd scope with a memory limit must not take a quarter of a small
// limit for its cache by default, and the Go runtime must collect before
// the kernel's OOM killer does.

// cgroupMemoryLimit returns the memory limit of the cgroup the process runs
// in, in bytes, or 0 when it has none or it cannot be read. root is the
// filesystem root ("/"; tests pass a fake one). Under cgroup v2 it is the
// smallest memory.max from the process's cgroup up to the root of the
// hierarchy ("max" is no limit), since any ancestor's limit bounds us too;
// under v1 the same with the memory controller's memory.limit_in_bytes.
func cgroupMemoryLimit(root string) int64 {
	data, err := os.ReadFile(filepath.Join(root, "proc/self/cgroup"))
	if err != nil {
		return 0
	}
	var v2, v1 string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// hierarchy-ID:controller-list:cgroup-path
		f := strings.SplitN(sc.Text(), ":", 3)
		if len(f) != 3 {
			continue
		}
		switch {
		case f[0] == "0" && f[1] == "":
			v2 = f[2]
		case hasController(f[1], "memory"):
			v1 = f[2]
		}
	}
	cg := filepath.Join(root, "sys/fs/cgroup")
	if v2 != "" {
		if lim := smallestLimit(cg, v2, "memory.max"); lim > 0 {
			return lim
		}
	}
	if v1 != "" {
		return smallestLimit(filepath.Join(cg, "memory"), v1, "memory.limit_in_bytes")
	}
	return 0
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// noLimitAbove: cgroup v1 spells "no limit" as a huge number (the largest
// page-aligned int64); anything this large is no limit in practice.
const noLimitAbove = 1 << 60

// smallestLimit reads file in dir/p and in each of p's ancestors and
// returns the smallest limit found, 0 if none.
func smallestLimit(dir, p, file string) int64 {
	var lim int64
	p = path.Clean("/" + p)
	for {
		if b, err := os.ReadFile(filepath.Join(dir, p, file)); err == nil {
			s := strings.TrimSpace(string(b))
			if v, err := strconv.ParseInt(s, 10, 64); err == nil && v > 0 && v < noLimitAbove && (lim == 0 || v < lim) {
				lim = v
			}
		}
		if p == "/" {
			return lim
		}
		p = path.Dir(p)
	}
}

// defaultMemoryCacheFor is the default --memory-cache-size under a memory
// limit (0: none): the usual default, but at most an eighth of the limit,
// in whole blocks, and never under the 4 blocks the cache needs.
func defaultMemoryCacheFor(limit, blockSize int64) int64 {
	size := int64(defaultMemoryCacheSize)
	if limit > 0 {
		size = min(size, limit/8/blockSize*blockSize)
	}
	return max(size, 4*blockSize)
}

// goSoftLimit is the Go runtime's soft memory limit for a read cache of
// cacheSize under a memory limit (0: none): the cache plus what the rest of
// the daemon needs (memoryHeadroom). Under a limit the headroom shrinks to
// a sixteenth of it, and the whole to at most three quarters of it, so
// that the collector works harder well before the kernel reclaims or kills
// (the garbage a collection leaves to the next one otherwise doubles the
// heap: 146 MiB of RSS with a 64 MiB cache under 512 MiB). It is never
// less than the cache plus minHeadroom, or the collector would run without
// end for a cache the user asked to be that big.
func goSoftLimit(cacheSize, limit int64) int64 {
	soft := cacheSize + memoryHeadroom
	if limit > 0 {
		soft = min(soft, cacheSize+limit/16, limit/4*3)
	}
	return max(soft, cacheSize+minHeadroom)
}

// minHeadroom is the least the soft limit leaves beyond the cache.
const minHeadroom = 16 << 20

package test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Read-path tests: the block cache, readahead, ETag pinning and the disk
// tier, through the mount against MinIO.

// TestReadPathSequentialAndRandom: byte-exact sequential and random reads of
// a large object with a cache smaller than the object (so blocks are
// evicted while it is read), reads that cross block boundaries, and reads
// at and past EOF.
func TestReadPathSequentialAndRandom(t *testing.T) {
	t.Parallel()
	const blockSize = 1 << 20
	const size = 24<<20 + 12345 // not a multiple of the block size
	data := randBytes(4242, size)
	m := mount(t, withFlags("--memory-cache-size", "8MiB", "--block-size", "1MiB"))
	m.Put("big.bin", data, nil)

	sameBytes(t, "sequential read", readFile(t, m.Path("big.bin")), data)

	f, err := os.Open(m.Path("big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(7, 7))
	buf := make([]byte, 3<<20)
	check := func(off int64, n int) {
		t.Helper()
		got, err := f.ReadAt(buf[:n], off)
		want := data[min(off, size):min(off+int64(n), size)]
		if got != len(want) || (err != nil && !errors.Is(err, io.EOF)) {
			t.Fatalf("pread(%d, %d) = %d, %v; want %d bytes", off, n, got, err, len(want))
		}
		if string(buf[:got]) != string(want) {
			t.Fatalf("pread(%d, %d): wrong bytes", off, n)
		}
	}
	for i := 0; i < 200; i++ {
		check(rng.Int64N(size), 1+rng.IntN(len(buf)))
	}
	for _, b := range []int64{1, 2, 5, 23, 24} { // around block boundaries
		check(b*blockSize-1, 2)
		check(b*blockSize-4096, 8192)
	}
	check(size-1, 1)
	check(size-100, 4096) // runs into EOF
	check(size, 10)       // at EOF
	check(size+blockSize, 10)
}

// TestReadPathReplacedWhileOpen: an object replaced by another writer while
// a reader has it open gives that reader the old bytes or ESTALE, never a
// mix; a new open after the TTL sees the new version.
func TestReadPathReplacedWhileOpen(t *testing.T) {
	t.Parallel()
	const size = 16 << 20
	v1, v2 := randBytes(1, size), randBytes(2, size)
	m := mount(t, withTTL(time.Second), withFlags("--memory-cache-size", "4MiB"))
	m.Put("obj", v1, nil)

	f, err := os.Open(m.Path("obj"))
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 1<<20)
	if _, err := io.ReadFull(f, head); err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "first MiB before the replacement", head, v1[:1<<20])
	m.Put("obj", v2, nil)

	rest, err := io.ReadAll(f)
	f.Close()
	got := append(head, rest...)
	switch {
	case err == nil:
		sameBytes(t, "whole read across the replacement (must be the old version)", got, v1)
	case errors.Is(err, syscall.ESTALE):
		sameBytes(t, "bytes read before ESTALE (must be the old version's prefix)", got, v1[:len(got)])
	default:
		t.Fatalf("read across the replacement: %v, want the old bytes or ESTALE", err)
	}
	eventually(t, 30*time.Second, func() string {
		b, err := os.ReadFile(m.Path("obj"))
		if err != nil {
			return err.Error()
		}
		if sha(b) != sha(v2) {
			return "still not the new version"
		}
		return ""
	})
}

// TestReadPathFetchesEachByteOnce: with a cache that holds the object,
// random reads all over it and then a full read fetch every byte from the
// store at most once; also without the disk tier, where only memory keeps
// what was read (the full read's requests arrive concurrently, out of
// order: a block read to its end must not leave memory while a request for
// its middle is still to come).
func TestReadPathFetchesEachByteOnce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, cacheSize string }{{"disk tier", "auto"}, {"memory only", "0"}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fetchEachByteOnce(t, tc.cacheSize)
		})
	}
}

func fetchEachByteOnce(t *testing.T, cacheSize string) {
	const size = 8 << 20
	data := randBytes(99, size)
	addr := freeAddr(t)
	m := mount(t, withTTL(time.Minute), withFlags("--metrics-addr", addr, "--memory-cache-size", "64MiB", "--cache-size", cacheSize))
	m.Put("r.bin", data, nil)
	before, _ := scrape(t, addr)

	f, err := os.Open(m.Path("r.bin"))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, 4096)
	for i := 0; i < 3000; i++ {
		off := rng.Int64N(size/4096) * 4096
		if _, err := f.ReadAt(buf, off); err != nil {
			t.Fatal(err)
		}
		if string(buf) != string(data[off:off+4096]) {
			t.Fatalf("random read at %d: wrong bytes", off)
		}
	}
	f.Close()
	// Drop the file's pages from the kernel's page cache so that the full
	// read really asks bucketfs.
	dropFilePages(t, m.Path("r.bin"), size)
	sameBytes(t, "full read after the random reads", readFile(t, m.Path("r.bin")), data)
	after, _ := scrape(t, addr)
	fetched := after["bucketfs_s3_download_bytes_total"] - before["bucketfs_s3_download_bytes_total"]
	t.Logf("fetched %.0f bytes for an object of %d", fetched, size)
	if fetched > size {
		t.Errorf("fetched %.0f bytes from the store for an object of %d: some bytes twice", fetched, size)
	}
	if fetched < size {
		t.Errorf("fetched only %.0f bytes of %d: the metric does not count downloads", fetched, size)
	}
}

// TestReadPathDiskCacheCap: the disk tier never holds more than
// --cache-size, however much is read, and re-reads stay byte-exact.
func TestReadPathDiskCacheCap(t *testing.T) {
	t.Parallel()
	const capBytes = 6 << 20
	cacheDir := filepath.Join(t.TempDir(), "cache")
	if err := os.Mkdir(cacheDir, 0o700); err != nil {
		t.Fatal(err)
	}
	m := mount(t, withFlags("--cache-dir", cacheDir, "--cache-size", "6MiB", "--memory-cache-size", "4MiB"))
	objs := map[string][]byte{}
	for i, name := range []string{"a", "b", "c"} {
		objs[name] = randBytes(uint64(50+i), 10<<20)
		m.Put(name, objs[name], nil)
	}
	maxSeen := int64(0)
	for round := 0; round < 2; round++ {
		for name, want := range objs {
			sameBytes(t, "read "+name, readFile(t, m.Path(name)), want)
			if used := dirBytes(t, cacheDir); used > maxSeen {
				maxSeen = used
			}
		}
	}
	t.Logf("disk tier used at most %d bytes (cap %d)", maxSeen, capBytes)
	if maxSeen > capBytes {
		t.Errorf("disk tier held %d bytes, over its cap of %d", maxSeen, capBytes)
	}
}

// TestReadPathDiskCacheFull: a cache directory on a disk that fills up
// (a 1 MiB tmpfs, with a far larger --cache-size) turns the disk tier off
// with a warning; reads go on, byte-exact.
func TestReadPathDiskCacheFull(t *testing.T) {
	t.Parallel()
	cacheDir := mountTmpfs(t, "1m")
	m := mount(t, withFlags("--cache-dir", cacheDir, "--cache-size", "1GiB", "--memory-cache-size", "4MiB"))
	data := randBytes(77, 12<<20)
	m.Put("x", data, nil)
	for round := 0; round < 2; round++ {
		sameBytes(t, "read with a full cache disk", readFile(t, m.Path("x")), data)
	}
	eventually(t, 10*time.Second, func() string {
		log, _ := os.ReadFile(m.LogFile)
		if !strings.Contains(strings.ToLower(string(log)), "disk") || !strings.Contains(string(log), "WARN") {
			return "no warning about the disk tier in the log"
		}
		return ""
	})
}

// dirBytes is the space files under dir take, as du counts it.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		var st syscall.Stat_t
		if syscall.Lstat(path, &st) == nil {
			total += st.Blocks * 512
		}
		return nil
	})
	return total
}

// A reader that opened an object and has read nothing yet when another
// writer replaces it reads the new version (the 412 of its pinned read is
// revalidated), not ESTALE; one that has read bytes of the old version
// gets ESTALE for bytes it has not read, never a mix.
func TestReadRevalidatesBeforeFirstByte(t *testing.T) {
	t.Parallel()
	m := mount(t, withTTL(time.Minute)) // the ETag seen at open stays trusted
	v1, v2 := randBytes(801, 3<<20), randBytes(802, 5<<20+7)
	m.Put("obj", v1, nil)
	f, err := os.Open(m.Path("obj"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m.Put("obj", v2, nil)
	got, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read after the replacement, nothing read before: %v", err)
	}
	// The kernel may stop at the size it saw at open; what it returns is
	// the new version's.
	if len(got) == 0 {
		t.Fatal("read nothing after the replacement")
	}
	sameBytes(t, "read after the replacement", got, v2[:len(got)])

	// Far from what was read, so that no read-ahead of the old version
	// can answer it.
	w1, w2 := randBytes(803, 16<<20), randBytes(804, 16<<20)
	m.Put("obj2", w1, nil)
	g, err := os.OpenFile(m.Path("obj2"), os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	buf := make([]byte, 1<<20)
	if _, err := g.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	m.Put("obj2", w2, nil)
	if _, err := g.ReadAt(buf, 12<<20); !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("read of unread bytes after the replacement, old bytes read before: %v, want ESTALE", err)
	}
}

// TestSmallFilesReadAhead: a program reading a directory's small files one
// after another in listing order (grep -r, tar c) gets the next ones
// fetched ahead: each file is fetched once (one GET, never two), most
// opens find their bytes in the cache, and every byte is right.
func TestSmallFilesReadAhead(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	m := mount(t, withTTL(time.Minute), withFlags("--metrics-addr", addr))
	const n = 60
	body := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, 3000+i) }
	m.putMany(n, 16, func(i int) string { return fmt.Sprintf("src/f%03d.c", i) }, body)
	m.Put("src/big.bin", bytes.Repeat([]byte("b"), 300<<10), nil) // past the size fetched ahead
	unmountAll(t, m)
	m2 := mount(t, withTTL(time.Minute), withFlags("--metrics-addr", addr), onBucket(m.Bucket))
	holdDirs(t, m2.Path("src"))
	run(t, m2.Dir, "ls", "-l", "src")
	hits0 := mustMetric(t, addr, "bucketfs_cache_hits_total")
	reqs := countRequests(t, addr, func() {
		for i := 0; i < n; i++ {
			sameBytes(t, fmt.Sprintf("f%03d.c", i), readFile(t, m2.Path(fmt.Sprintf("src/f%03d.c", i))), body(i))
		}
	})
	hits := mustMetric(t, addr, "bucketfs_cache_hits_total") - hits0
	t.Logf("reading %d small files in order: %v, %.0f cache hits", n, reqs, hits)
	if reqs["get"] != n {
		t.Errorf("reading %d files sent %.0f GETs, want one each", n, reqs["get"])
	}
	if hits < n/2 {
		t.Errorf("%.0f of %d files' reads found their bytes in the cache: nothing fetched ahead", hits, n)
	}
	if reqs["head"] != 0 || reqs["list"] != 0 {
		t.Errorf("reading sent %v, want GETs only", reqs)
	}
}

// TestSmallFilesReadAheadDownATree: a program going down a tree (grep -r)
// reads a few files per directory. While it reads in order, the first file
// it opens of each directory starts that directory's read-ahead (instead
// of the second open in order), and the files fetched ahead wait for a
// worker rather than being dropped when four fetches are under way.
func TestSmallFilesReadAheadDownATree(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	m := mount(t, withTTL(time.Minute), withFlags("--metrics-addr", addr))
	const dirs, per = 8, 12
	name := func(i int) string { return fmt.Sprintf("tree/d%d/f%02d.c", i/per, i%per) }
	body := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, 2000+i) }
	m.putMany(dirs*per, 16, name, body)
	unmountAll(t, m)
	m2 := mount(t, withTTL(time.Minute), withFlags("--metrics-addr", addr), onBucket(m.Bucket))
	held := []string{m2.Path("tree")}
	for d := range dirs {
		held = append(held, m2.Path(fmt.Sprintf("tree/d%d", d)))
	}
	holdDirs(t, held...)
	run(t, m2.Dir, "ls", "-R", "tree")
	hits0 := mustMetric(t, addr, "bucketfs_cache_hits_total")
	reqs := countRequests(t, addr, func() {
		for i := 0; i < dirs*per; i++ {
			sameBytes(t, name(i), readFile(t, m2.Path(name(i))), body(i))
			// A reader with work per file (grep): the fetches keep
			// ahead of it, so what is counted is what was fetched.
			time.Sleep(20 * time.Millisecond)
		}
	})
	hits := mustMetric(t, addr, "bucketfs_cache_hits_total") - hits0
	t.Logf("reading %d directories of %d small files in order: %v, %.0f cache hits", dirs, per, reqs, hits)
	if reqs["get"] != dirs*per {
		t.Errorf("reading %d files sent %.0f GETs, want one each", dirs*per, reqs["get"])
	}
	// The first file of each directory and the second of the first are
	// misses: 87 hits. Starting each directory on its second open and
	// dropping fetches beyond four gave 6 hits a directory: 48.
	if want := float64(dirs*per - dirs - 1 - 8); hits < want {
		t.Errorf("%.0f of %d files' reads found their bytes fetched ahead, want at least %.0f", hits, dirs*per, want)
	}
}

// holdDirs opens the directories until the returned function (or the end
// of the test) closes them. A directory's listing lives in its node, and
// other tests' drop_caches make the kernel forget a node no one holds: a
// test counting what a listing spares would otherwise see the lookups of a
// node made anew. Close them before unmounting: a held directory makes
// the mount busy.
func holdDirs(t *testing.T, paths ...string) (release func()) {
	t.Helper()
	var held []*os.File
	release = func() {
		for _, d := range held {
			d.Close()
		}
		held = nil
	}
	t.Cleanup(release)
	for _, p := range paths {
		d, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, d)
	}
	return release
}

// mustMetric is the value of the unlabelled sample name at addr.
func mustMetric(t *testing.T, addr, name string) float64 {
	t.Helper()
	v, err := metricValue(addr, name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestReadBackWhatWasWritten: small files written through the mount are
// read back (a build reading its outputs, grep -r after an untar) from the
// bytes the mount uploaded, with no GET; an overwrite is read as its new
// bytes, and a version another writer stored afterwards is read from the
// store, never the kept bytes of ours.
func TestReadBackWhatWasWritten(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	// A minute: with a shorter stat cache a loaded machine (CI) let the
	// kernel's entries expire between the writes and the reads, and each
	// lookup peeked with a GET.
	m := mount(t, withTTL(time.Minute), withFlags("--metrics-addr", addr))
	const n = 40
	name := func(i int) string { return fmt.Sprintf("out/f%02d.o", i) }
	body := func(i, v int) []byte { return bytes.Repeat([]byte{byte('a' + (i+v)%26)}, 1000+97*i) }
	if err := os.MkdirAll(m.Path("out"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		writeFile(t, m.Path(name(i)), body(i, 0))
		// Pinned: another test's drop_caches would make the kernel
		// forget the file, and its next lookup GETs the tail of the
		// object.
		pinnedLstat(t, m.Path(name(i)))
	}
	reqs := countRequests(t, addr, func() {
		for i := range n {
			sameBytes(t, name(i), readFile(t, m.Path(name(i))), body(i, 0))
		}
	})
	if reqs["get"] != 0 {
		t.Errorf("reading back %d files just written sent %.0f GETs, want none", n, reqs["get"])
	}
	// An overwrite of the same size: the new bytes, still without a GET.
	writeFile(t, m.Path(name(3)), body(3, 1))
	reqs = countRequests(t, addr, func() {
		sameBytes(t, "overwritten", readFile(t, m.Path(name(3))), body(3, 1))
	})
	if reqs["get"] != 0 {
		t.Errorf("reading back an overwritten file sent %.0f GETs, want none", reqs["get"])
	}
	sameBytes(t, "the bucket's copy", m.Get(name(3)), body(3, 1))
	// Another writer's version, once the stat cache has expired (a mount
	// of its own with a short one): read from the store, never the bytes
	// this mount kept of its own.
	m2 := mount(t, withTTL(time.Second), onBucket(m.Bucket))
	writeFile(t, m2.Path("other"), body(5, 0))
	sameBytes(t, "written", readFile(t, m2.Path("other")), body(5, 0))
	m.Put("other", body(5, 2), nil)
	time.Sleep(1500 * time.Millisecond)
	sameBytes(t, "replaced by another writer", readFile(t, m2.Path("other")), body(5, 2))
}

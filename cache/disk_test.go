package cache

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func openDisk(t *testing.T, opts DiskOptions) (*DiskCache, *logCapture) {
	t.Helper()
	logs := &logCapture{}
	opts.Logger = slog.New(logs)
	d, err := OpenDisk(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, logs
}

// duBytes is what du(1) would say the cache files take.
func duBytes(t *testing.T, dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Errorf("readdir: %v", err)
		return 0
	}
	var total int64
	for _, e := range entries {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(dir, e.Name()), &st); err == nil {
			total += st.Blocks * 512
		}
	}
	return total
}

func TestDiskPutGet(t *testing.T) {
	d, _ := openDisk(t, DiskOptions{Dir: t.TempDir(), MaxBytes: 1 << 20})
	d.syncWrite = true
	k := BlockKey{Key: "dir/obj with spaces/..", ETag: `"x"`, Index: 7}
	d.Put(k, []byte("hello"))
	got, ok := d.Get(k, 5)
	if !ok || string(got) != "hello" {
		t.Fatalf("Get = %q, %v", got, ok)
	}
	if got, ok := d.Get(k, -1); !ok || string(got) != "hello" {
		t.Fatalf("Get any size = %q, %v", got, ok)
	}
	if _, ok := d.Get(BlockKey{Key: k.Key, ETag: `"y"`, Index: 7}, 5); ok {
		t.Fatal("other ETag hit")
	}
	// A length mismatch is a miss and drops the file.
	if _, ok := d.Get(k, 6); ok {
		t.Fatal("wrong size hit")
	}
	if s := d.Stats(); s.Files != 0 || s.UsedBytes != 0 {
		t.Fatalf("bad file kept: %+v", s)
	}
	if n := duBytes(t, d.dir); n != 0 {
		t.Fatalf("%d bytes left on disk", n)
	}
	d.Put(k, []byte("hello"))
	d.Invalidate(k.Key)
	if _, ok := d.Get(k, 5); ok {
		t.Fatal("hit after Invalidate")
	}
}

func TestDiskWipesOwnFilesOnlyAtStart(t *testing.T) {
	dir := t.TempDir()
	own := []string{strings.Repeat("ab", 32) + ".blk", strings.Repeat("cd", 32) + ".blk.tmp123"}
	foreign := []string{"notes.txt", strings.Repeat("zz", 32) + ".blk", "x.blk"}
	for _, n := range append(own, foreign...) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("data"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d, _ := openDisk(t, DiskOptions{Dir: dir, MaxBytes: 1 << 20})
	if !d.Enabled() {
		t.Fatal("disabled")
	}
	for _, n := range own {
		if _, err := os.Stat(filepath.Join(dir, n)); !os.IsNotExist(err) {
			t.Errorf("%s survived the start", n)
		}
	}
	for _, n := range foreign {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s was touched: %v", n, err)
		}
	}
	// Close deletes what it wrote and nothing else.
	d.syncWrite = true
	d.Put(BlockKey{Key: "k"}, []byte("abc"))
	d.Close()
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(foreign)+1 { // + the lock file
		t.Fatalf("after Close: %v", entries)
	}
}

func TestDiskSecondUserOfDirIsOff(t *testing.T) {
	dir := t.TempDir()
	d1, _ := openDisk(t, DiskOptions{Dir: dir, MaxBytes: 1 << 20})
	d2, logs := openDisk(t, DiskOptions{Dir: dir, MaxBytes: 1 << 20})
	if !d1.Enabled() || d2.Enabled() {
		t.Fatalf("enabled: first %v, second %v", d1.Enabled(), d2.Enabled())
	}
	if logs.count("WARN") != 1 {
		t.Fatalf("warnings: %v", logs.msgs)
	}
	d1.Close()
	d3, _ := openDisk(t, DiskOptions{Dir: dir, MaxBytes: 1 << 20})
	if !d3.Enabled() {
		t.Fatal("the directory was not released by Close")
	}
}

// TestDiskCapNeverExceeded writes blocks of assorted sizes from many
// goroutines into a small cap while a sampler checks both the accounting
// and what the files really take on disk.
func TestDiskCapNeverExceeded(t *testing.T) {
	for _, syncWrite := range []bool{false, true} {
		t.Run(fmt.Sprintf("sync=%v", syncWrite), func(t *testing.T) {
			const capBytes = 256 << 10
			d, logs := openDisk(t, DiskOptions{Dir: t.TempDir(), MaxBytes: capBytes, QueueBlocks: 4})
			d.syncWrite = syncWrite
			stop := make(chan struct{})
			sampled := make(chan int64)
			go func() {
				var peak int64
				for {
					if n := duBytes(t, d.dir); n > capBytes {
						t.Errorf("files take %d bytes, cap %d", n, capBytes)
					}
					s := d.Stats()
					if s.UsedBytes+s.ReservedBytes > capBytes {
						t.Errorf("accounted %d+%d > cap %d", s.UsedBytes, s.ReservedBytes, capBytes)
					}
					peak = max(peak, s.UsedBytes+s.ReservedBytes)
					select {
					case <-stop:
						sampled <- peak
						return
					default:
					}
				}
			}()
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := rand.New(rand.NewPCG(uint64(g), 5))
					for range 400 {
						k := BlockKey{Key: "k", ETag: "e", Index: int64(r.IntN(200))}
						switch r.IntN(10) {
						case 0:
							d.Get(k, -1)
						case 1:
							d.Invalidate("k")
						default:
							size := []int{1, 4095, 4096, 4097, 30000, 64 << 10}[r.IntN(6)]
							d.Put(k, blockOf(k, size))
						}
					}
				}()
			}
			wg.Wait()
			d.Drain()
			close(stop)
			peak := <-sampled
			if n := duBytes(t, d.dir); n > capBytes {
				t.Fatalf("files take %d bytes, cap %d", n, capBytes)
			}
			s := d.Stats()
			if !s.Enabled || logs.count("WARN") != 0 {
				t.Fatalf("disabled: %v", logs.msgs)
			}
			// Whatever is indexed reads back right.
			d.mu.Lock()
			keys := d.index.Keys()
			d.mu.Unlock()
			for _, k := range keys {
				if got, ok := d.Get(k, -1); ok && !bytes.Equal(got, blockOf(k, len(got))) {
					t.Fatalf("%v: wrong content", k)
				}
			}
			t.Logf("peak accounted %d of %d; stats %+v", peak, capBytes, s)
		})
	}
}

func TestDiskDirIsAFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d, logs := openDisk(t, DiskOptions{Dir: f, MaxBytes: 1 << 20})
	if d.Enabled() {
		t.Fatal("a file as cache dir is enabled")
	}
	readThroughDisk(t, d)
	if n := logs.count("WARN"); n != 1 {
		t.Fatalf("%d warnings: %v", n, logs.msgs)
	}
}

// readThroughDisk reads an object through a BlockCache using d, twice, and
// checks the bytes.
func readThroughDisk(t *testing.T, d *DiskCache) *BlockCache {
	t.Helper()
	st := newFakeStore()
	data, etag := st.put("obj", 2<<20, 11)
	c := newCache(t, Options{BlockSize: 64 << 10, MaxBytes: 512 << 10, Disk: d, DiskSequential: true})
	for range 2 {
		r := c.NewReader(Object{Key: "obj", ETag: etag, Size: int64(len(data))}, st.rangeFunc("obj", etag))
		if got := readAll(t, r, 32<<10); !bytes.Equal(got, data) {
			t.Fatal("wrong bytes")
		}
		r.Close()
		d.Drain()
	}
	return c
}

func TestBlockCacheUsesDiskTier(t *testing.T) {
	d, _ := openDisk(t, DiskOptions{Dir: t.TempDir(), MaxBytes: 4 << 20})
	c := readThroughDisk(t, d)
	s := c.Stats()
	ds := d.Stats()
	// Memory holds 512 KiB of the 2 MiB object: the second pass comes
	// mostly from disk.
	if s.DiskHits == 0 || ds.Hits == 0 {
		t.Fatalf("no disk hits: %+v %+v", s, ds)
	}
	if s.FetchedBytes >= 2*(2<<20) {
		t.Fatalf("fetched %d bytes from the store for two passes", s.FetchedBytes)
	}
	t.Logf("cache %+v; disk %+v", s, ds)
}

// TestDiskAdmission: by default a sequential reader's readahead stays out of
// the disk tier, while the blocks random reads fetch go in; DiskSequential
// lets readahead in too.
func TestDiskAdmission(t *testing.T) {
	const bs, size = 64 << 10, 2 << 20
	for _, seq := range []bool{false, true} {
		t.Run(fmt.Sprintf("DiskSequential=%v", seq), func(t *testing.T) {
			d, _ := openDisk(t, DiskOptions{Dir: t.TempDir(), MaxBytes: 8 << 20})
			st := newFakeStore()
			data, etag := st.put("obj", size, 12)
			c := newCache(t, Options{BlockSize: bs, MaxBytes: 512 << 10, Disk: d, DiskSequential: seq})
			obj := Object{Key: "obj", ETag: etag, Size: size}

			r := c.NewReader(obj, st.rangeFunc("obj", etag))
			if got := readAll(t, r, 32<<10); !bytes.Equal(got, data) {
				t.Fatal("wrong bytes")
			}
			r.Close()
			time.Sleep(50 * time.Millisecond) // let the last fetch queue its write
			d.Drain()
			afterSeq := d.Stats().Files
			if seq && afterSeq < size/bs/2 {
				t.Errorf("DiskSequential: the sequential pass wrote %d of %d blocks to disk", afterSeq, size/bs)
			}
			// The first reads of a stream are fetched before readahead starts.
			if !seq && afterSeq > 2 {
				t.Errorf("the sequential pass wrote %d blocks to disk, want at most 2", afterSeq)
			}

			// Random 4 KiB reads, one in each of 8 blocks far apart.
			c.Invalidate("obj")
			d.Drain()
			before := d.Stats().Files
			r = c.NewReader(obj, st.rangeFunc("obj", etag))
			buf := make([]byte, 4096)
			for _, blk := range []int64{29, 3, 17, 11, 25, 7, 21, 14} {
				off := blk*bs + 1000
				if _, err := r.ReadAt(context.Background(), buf, off); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(buf, data[off:off+4096]) {
					t.Fatalf("wrong bytes at %d", off)
				}
			}
			r.Close()
			// A fetch queues its disk write after waking the read.
			for deadline := time.Now().Add(5 * time.Second); d.Stats().Files-before < 8 && time.Now().Before(deadline); {
				d.Drain()
				time.Sleep(5 * time.Millisecond)
			}
			if got := d.Stats().Files - before; got < 8 {
				t.Errorf("8 random reads in 8 blocks put %d blocks on disk, want 8", got)
			}
		})
	}
}

// TestDiskAdmissionSmallObjects: an object smaller than a block is read
// whole and stays out of the disk tier (one GET fetches it again), unless
// the tier keeps everything (DiskSequential); the last, short block of a
// bigger object a random reader reads goes in.
func TestDiskAdmissionSmallObjects(t *testing.T) {
	const bs = 64 << 10
	for _, seq := range []bool{false, true} {
		t.Run(fmt.Sprintf("DiskSequential=%v", seq), func(t *testing.T) {
			d, _ := openDisk(t, DiskOptions{Dir: t.TempDir(), MaxBytes: 8 << 20})
			st := newFakeStore()
			c := newCache(t, Options{BlockSize: bs, MaxBytes: 4 << 20, Disk: d, DiskSequential: seq})
			for i := range 10 {
				key := fmt.Sprint("small", i)
				data, etag := st.put(key, 5000+i, uint64(i))
				r := c.NewReader(Object{Key: key, ETag: etag, Size: int64(len(data))}, st.rangeFunc(key, etag))
				if got := readAll(t, r, 32<<10); !bytes.Equal(got, data) {
					t.Fatal("wrong bytes")
				}
				r.Close()
			}
			// The tail block of a bigger object, read at random.
			data, etag := st.put("big", 3*bs+100, 7)
			r := c.NewReader(Object{Key: "big", ETag: etag, Size: int64(len(data))}, st.rangeFunc("big", etag))
			buf := make([]byte, 50)
			if _, err := r.ReadAt(context.Background(), buf, 3*bs+10); err != nil || !bytes.Equal(buf, data[3*bs+10:3*bs+60]) {
				t.Fatalf("tail read: %v", err)
			}
			r.Close()
			want := 1 // the tail block
			if seq {
				want = 11
			}
			var got int
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				d.Drain()
				if got = int(d.Stats().Files); got >= want || time.Now().After(deadline) {
					break
				}
			}
			time.Sleep(50 * time.Millisecond)
			d.Drain()
			if got = int(d.Stats().Files); got != want {
				t.Errorf("%d blocks on disk, want %d", got, want)
			}
		})
	}
}

func mountOrSkip(t *testing.T, args ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		t.Skipf("mount %v: %v: %s", args, err, out)
	}
}

func umount(t *testing.T, dir string) {
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

// TestDiskFullDegrades: the cap says 16 MiB but the filesystem holds 1 MiB.
// The first ENOSPC turns the tier off with one warning; every read succeeds.
func TestDiskFullDegrades(t *testing.T) {
	dir := t.TempDir()
	mountOrSkip(t, "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir)
	umount(t, dir)
	obs := &countingObserver{lookups: map[Lookup]int{}, fetched: map[Tier]int{}}
	logs := &logCapture{}
	d, err := OpenDisk(DiskOptions{Dir: dir, MaxBytes: 16 << 20, Logger: slog.New(logs), Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	readThroughDisk(t, d)
	if d.Enabled() {
		t.Fatal("still enabled on a full disk")
	}
	if n := logs.count("WARN"); n != 1 || obs.disabled != 1 {
		t.Fatalf("%d warnings (%v), %d DiskDisabled", n, logs.msgs, obs.disabled)
	}
	if !strings.Contains(logs.msgs[0], "no space") {
		t.Errorf("warning does not say why: %s", logs.msgs[0])
	}
	if n := duBytes(t, dir); n != 0 {
		t.Errorf("the full disk still holds %d bytes of cache", n)
	}
}

// TestDiskReadOnlyDegrades: a cache dir that becomes read-only while in use.
func TestDiskReadOnlyDegrades(t *testing.T) {
	src, dir := t.TempDir(), t.TempDir()
	mountOrSkip(t, "--bind", src, dir)
	umount(t, dir)
	d, logs := openDisk(t, DiskOptions{Dir: dir, MaxBytes: 16 << 20})
	if !d.Enabled() {
		t.Fatal("disabled on a writable dir")
	}
	if out, err := exec.Command("mount", "-o", "remount,bind,ro", dir).CombinedOutput(); err != nil {
		t.Skipf("remount ro: %v: %s", err, out)
	}
	readThroughDisk(t, d)
	if d.Enabled() {
		t.Fatal("still enabled on a read-only dir")
	}
	if n := logs.count("WARN"); n != 1 || !strings.Contains(logs.msgs[0], "read-only") {
		t.Fatalf("warnings: %v", logs.msgs)
	}
	// Opened read-only from the start: off at once, one warning.
	d2dir := t.TempDir()
	mountOrSkip(t, "--bind", src, d2dir)
	umount(t, d2dir)
	if out, err := exec.Command("mount", "-o", "remount,bind,ro", d2dir).CombinedOutput(); err != nil {
		t.Skipf("remount ro: %v: %s", err, out)
	}
	d.Close() // release the flock on src
	d2, logs2 := openDisk(t, DiskOptions{Dir: d2dir, MaxBytes: 16 << 20})
	if d2.Enabled() || logs2.count("WARN") != 1 {
		t.Fatalf("read-only at start: enabled %v, %v", d2.Enabled(), logs2.msgs)
	}
	readThroughDisk(t, d2)
	if logs2.count("WARN") != 1 {
		t.Fatalf("more warnings: %v", logs2.msgs)
	}
}

func TestDiskQueueFullDrops(t *testing.T) {
	d, _ := openDisk(t, DiskOptions{Dir: t.TempDir(), MaxBytes: 64 << 20, QueueBlocks: 1})
	// Many Puts at once, faster than one writer: none may block.
	start := time.Now()
	for i := range 1000 {
		d.Put(BlockKey{Key: "k", Index: int64(i)}, make([]byte, 64<<10))
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("Put blocked: %v", el)
	}
	d.Drain()
	s := d.Stats()
	if s.Dropped == 0 || s.Writes == 0 {
		t.Fatalf("stats %+v", s)
	}
	var wg sync.WaitGroup
	for range 4 { // Put after Close must not panic
		wg.Add(1)
		go func() { defer wg.Done(); d.Put(BlockKey{Key: "x"}, []byte("x")) }()
	}
	d.Close()
	wg.Wait()
	d.Put(BlockKey{Key: "y"}, []byte("y"))
}

// Invalidate drops every block of one object, whatever its ETag, and no
// block of another (objects whose keys share a prefix included); evicted
// and dropped blocks leave the per-object index too.
func TestDiskInvalidateOneObject(t *testing.T) {
	d, _ := openDisk(t, DiskOptions{Dir: t.TempDir(), MaxBytes: 1 << 20})
	d.syncWrite = true
	keys := []BlockKey{
		{Key: "a", ETag: `"1"`, Index: 0}, {Key: "a", ETag: `"1"`, Index: 3}, {Key: "a", ETag: `"2"`, Index: 0},
		{Key: "ab", ETag: `"1"`, Index: 0}, {Key: "b", ETag: `"1"`, Index: 0},
	}
	for _, k := range keys {
		d.Put(k, []byte("block"))
	}
	d.Invalidate("a")
	for _, k := range keys {
		_, ok := d.Get(k, 5)
		if want := k.Key != "a"; ok != want {
			t.Errorf("%v cached %v after Invalidate(a), want %v", k, ok, want)
		}
	}
	d.Get(BlockKey{Key: "b", ETag: `"1"`, Index: 0}, 4) // a wrong length drops the file
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.byObject) != 1 || len(d.byObject["ab"]) != 1 {
		t.Errorf("per-object index %v, want ab's one block", d.byObject)
	}
}

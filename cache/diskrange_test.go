package cache

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// diskRangeSetup reads one 4 KiB piece of each of the first blocks of an
// object through a cache whose memory holds 4 blocks and whose disk tier
// holds them all, so that afterwards the disk tier has every block read and
// memory only blocks 0..3 (read last).
func diskRangeSetup(t *testing.T, blocks int) (*BlockCache, *DiskCache, *Reader, []byte) {
	t.Helper()
	const bs = 64 << 10
	d, _ := openDisk(t, DiskOptions{Dir: t.TempDir(), MaxBytes: 64 << 20})
	st := newFakeStore()
	data, etag := st.put("obj", 40*bs+1000, 21)
	// No readahead: these tests are about what random reads do.
	c := newCache(t, Options{BlockSize: bs, MaxBytes: 4 * bs, Disk: d, Readahead: ReadaheadConfig{MaxWindowBytes: -1}})
	r := c.NewReader(Object{Key: "obj", ETag: etag, Size: int64(len(data))}, st.rangeFunc("obj", etag))
	t.Cleanup(r.Close)
	buf := make([]byte, 4096)
	// Backwards, so that no two reads look sequential to the window.
	for i := blocks - 1; i >= 0; i-- {
		off := int64(i)*bs + 100
		if _, err := r.ReadAt(context.Background(), buf, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf, data[off:off+4096]) {
			t.Fatalf("wrong bytes at %d", off)
		}
		// A read returns once its bytes are in, before its block is
		// kept: wait, so that memory keeps blocks in the order read.
		settle(t, c, int64(blocks-i))
	}
	for d.Stats().Files < blocks {
		d.Drain() // a fetch queues its disk write after waking its read
	}
	return c, d, r, data
}

// settle waits until the cache has counted fetches fetches and has none in
// flight: a read returns once its bytes are in, before its fetch is done.
func settle(t *testing.T, c *BlockCache, fetches int64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if s := c.Stats(); s.Fetches >= fetches && s.InflightBytes == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fetches never settled: %+v", c.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

func inMemory(c *BlockCache, r *Reader, i int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Contains(r.blockKey(i))
}

// TestDiskRangeReadsAtRequestedSize: a random read of a block that only the
// disk tier holds reads its own bytes from disk, not the block, leaves
// memory alone and never goes to the store.
func TestDiskRangeReadsAtRequestedSize(t *testing.T) {
	c, d, r, data := diskRangeSetup(t, 16)
	bs := c.BlockSize()
	if !inMemory(c, r, 0) || !inMemory(c, r, 3) || inMemory(c, r, 4) {
		t.Fatalf("setup: memory should hold blocks 0..3 only: %v %+v", c.lru.Keys(), c.Stats())
	}
	s0, d0 := c.Stats(), d.Stats()
	// ReadAt, a read of 4 KiB in block 9.
	buf := make([]byte, 4096)
	off := 9*bs + 5000
	if n, err := r.ReadAt(context.Background(), buf, off); err != nil || n != 4096 {
		t.Fatalf("ReadAt: %d, %v", n, err)
	}
	if !bytes.Equal(buf, data[off:off+4096]) {
		t.Fatal("ReadAt: wrong bytes")
	}
	// ReadSlices, a read of 8 KiB in block 10.
	off = 10*bs + 7
	sl, err := r.ReadSlices(context.Background(), off, 8192)
	if err != nil {
		t.Fatal(err)
	}
	if len(sl.Vecs) != 1 || !bytes.Equal(sl.Vecs[0], data[off:off+8192]) {
		t.Fatal("ReadSlices: wrong bytes")
	}
	sl.Release()
	s1, d1 := c.Stats(), d.Stats()
	if got := d1.ReadBytes - d0.ReadBytes; got != 4096+8192 {
		t.Errorf("read %d bytes from disk for 12 KiB of reads", got)
	}
	if got := s1.DiskRangeHits - s0.DiskRangeHits; got != 2 {
		t.Errorf("%d range hits, want 2", got)
	}
	if s1.DiskPromotions != s0.DiskPromotions || s1.FetchedBytes != s0.FetchedBytes {
		t.Errorf("promoted %d, fetched %d bytes: want none", s1.DiskPromotions-s0.DiskPromotions, s1.FetchedBytes-s0.FetchedBytes)
	}
	if inMemory(c, r, 9) || inMemory(c, r, 10) || !inMemory(c, r, 1) {
		t.Error("range reads changed what memory holds")
	}
	checkInvariants(t, c, false)
}

// TestDiskRangeMissGoesToStore: a block neither tier has is fetched, kept
// in memory and written to disk, as before.
func TestDiskRangeMissGoesToStore(t *testing.T) {
	c, d, r, data := diskRangeSetup(t, 8)
	bs := c.BlockSize()
	s0 := c.Stats()
	buf := make([]byte, 4096)
	off := 30*bs + 1
	if _, err := r.ReadAt(context.Background(), buf, off); err != nil || !bytes.Equal(buf, data[off:off+4096]) {
		t.Fatalf("wrong read: %v", err)
	}
	settle(t, c, s0.Fetches+1)
	s1 := c.Stats()
	if s1.Misses-s0.Misses != 1 || s1.FetchedBytes-s0.FetchedBytes != bs || s1.DiskHits != s0.DiskHits {
		t.Errorf("miss: %+v", s1)
	}
	if !inMemory(c, r, 30) {
		t.Error("a block fetched from the store is not in memory")
	}
	for d.Stats().Files < 9 {
		d.Drain()
	}
	// The last block is short: a read past its end stops at the object's.
	off = int64(len(data)) - 100
	if n, err := r.ReadAt(context.Background(), buf, off); n != 100 || err != io.EOF || !bytes.Equal(buf[:100], data[off:]) {
		t.Errorf("read at the end: %d, %v", n, err)
	}
}

// TestDiskPromotion: a block read often is promoted into memory (one whole
// block read from disk), and is a memory hit from then on; blocks read once
// or twice (a scan) are served from disk without pushing it out.
func TestDiskPromotion(t *testing.T) {
	c, d, r, data := diskRangeSetup(t, 16)
	bs := c.BlockSize()
	buf := make([]byte, 4096)
	read := func(i int64) {
		t.Helper()
		off := i*bs + 300
		if _, err := r.ReadAt(context.Background(), buf, off); err != nil || !bytes.Equal(buf, data[off:off+4096]) {
			t.Fatalf("read in block %d: %v", i, err)
		}
	}
	// Block 12 was read once. Its second read is not enough to evict a
	// block read as often as it (memory is full).
	s0, d0 := c.Stats(), d.Stats()
	read(12)
	if s := c.Stats(); s.DiskRangeHits-s0.DiskRangeHits != 1 || s.DiskPromotions != s0.DiskPromotions {
		t.Fatalf("second read: %+v", s)
	}
	// Its third read is: read more than twice as often as the least
	// recently read block in memory.
	read(12)
	s1, d1 := c.Stats(), d.Stats()
	if s1.DiskPromotions-s0.DiskPromotions != 1 {
		t.Fatalf("third read did not promote: %+v", s1)
	}
	if got := d1.ReadBytes - d0.ReadBytes; got != 4096+bs {
		t.Errorf("read %d bytes from disk, want a range and a block (%d)", got, 4096+bs)
	}
	if !inMemory(c, r, 12) {
		t.Fatal("promoted block not in memory")
	}
	// Make it hot, then scan other blocks twice each: it stays.
	for range 10 {
		read(12)
	}
	if s := c.Stats(); s.Hits-s1.Hits != 10 {
		t.Errorf("%d memory hits for 10 reads of a promoted block", s.Hits-s1.Hits)
	}
	s2 := c.Stats()
	for range 2 {
		for i := int64(4); i < 12; i++ {
			read(i)
		}
	}
	if !inMemory(c, r, 12) {
		t.Error("a scan pushed the hot block out of memory")
	}
	if s := c.Stats(); s.FetchedBytes != s2.FetchedBytes || s.DiskRangeHits-s2.DiskRangeHits < 8 {
		t.Errorf("scan: %+v", s)
	}
	checkInvariants(t, c, false)
}

// TestDiskPromotionWithRoom: while memory has room, a block's second read
// promotes it.
func TestDiskPromotionWithRoom(t *testing.T) {
	c, _, r, data := diskRangeSetup(t, 8)
	bs := c.BlockSize()
	// Make room: drop memory's blocks but keep the disk tier's.
	c.mu.Lock()
	for _, k := range c.lru.Keys() {
		b, _ := c.lru.Peek(k)
		c.lru.Remove(k)
		c.dropLocked(b)
	}
	c.mu.Unlock()
	s0 := c.Stats()
	buf := make([]byte, 4096)
	off := 2*bs + 9
	if _, err := r.ReadAt(context.Background(), buf, off); err != nil || !bytes.Equal(buf, data[off:off+4096]) {
		t.Fatal(err)
	}
	if s := c.Stats(); s.DiskPromotions-s0.DiskPromotions != 1 || !inMemory(c, r, 2) {
		t.Errorf("not promoted with room in memory: %+v", s)
	}
}

// TestCopyBlockFromDisk: the page-cache fill can copy a block that only
// the disk tier holds.
func TestCopyBlockFromDisk(t *testing.T) {
	c, _, r, data := diskRangeSetup(t, 8)
	bs := c.BlockSize()
	dst := make([]byte, bs)
	for _, i := range []int64{7, 0} { // 7: disk only; 0: memory
		n, ok := c.CopyBlock(context.Background(), r.blockKey(i), bs, dst)
		if !ok || int64(n) != bs || !bytes.Equal(dst, data[i*bs:(i+1)*bs]) {
			t.Errorf("block %d: %d, %v", i, n, ok)
		}
	}
	if inMemory(c, r, 7) {
		t.Error("CopyBlock brought a block into memory")
	}
	if _, ok := c.CopyBlock(context.Background(), r.blockKey(20), bs, dst); ok {
		t.Error("CopyBlock of a block neither tier has")
	}
}

func TestBufPoolClasses(t *testing.T) {
	var p bufPool
	for _, n := range []int{1, 4096, 4097, 128 << 10, 1 << 20, 1<<20 + 1} {
		b := p.get(n)
		if len(*b) != n {
			t.Fatalf("get(%d): len %d", n, len(*b))
		}
		p.put(b)
	}
}

// openIn counts the descriptors of this process open on block files in dir.
func openIn(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	n := 0
	for _, e := range ents {
		if p, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && strings.HasPrefix(p, dir+"/") && strings.HasSuffix(p, diskExt) {
			n++
		}
	}
	return n
}

// TestDiskRangeKeepsFilesOpen: range reads keep their block files open for
// the next read, and a dropped file's descriptor is closed, so that its
// space is given back.
func TestDiskRangeKeepsFilesOpen(t *testing.T) {
	c, d, r, data := diskRangeSetup(t, 12)
	bs := c.BlockSize()
	buf := make([]byte, 4096)
	for x := range int64(5) {
		for _, i := range []int64{5, 9} {
			off := x * 8192
			if !d.readRange(r.blockKey(i), buf, off) || !bytes.Equal(buf, data[i*bs+off:i*bs+off+4096]) {
				t.Fatalf("block %d at %d: wrong read", i, off)
			}
		}
	}
	if n := openIn(t, d.dir); n != 2 {
		t.Errorf("%d block files open after range reads of 2 blocks, want 2", n)
	}
	if got := d.Stats().ReadBytes; got < 10*4096 {
		t.Errorf("read %d bytes", got)
	}
	c.Invalidate("obj")
	if n := openIn(t, d.dir); n != 0 {
		t.Errorf("%d block files still open after they were dropped", n)
	}
	if d.readRange(r.blockKey(5), buf, 0) {
		t.Error("a dropped block still reads")
	}
}

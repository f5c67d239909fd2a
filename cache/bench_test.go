package cache

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmarks for the bench/ issue's benchstat comparisons:
//
//	go test -run '^$' -bench . -benchmem -count 10 ./cache > new.txt
//	benchstat old.txt new.txt

const benchBS = 1 << 20

func benchCache(b *testing.B, opts Options) *BlockCache {
	b.Helper()
	c, err := New(opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return c
}

// BenchmarkBlockCacheHit: GetOrFill on resident blocks from all Ps.
func BenchmarkBlockCacheHit(b *testing.B) {
	c := benchCache(b, Options{BlockSize: benchBS, MaxBytes: 128 * benchBS})
	block := make([]byte, benchBS)
	fill := func(context.Context) ([]byte, error) { return block, nil }
	keys := make([]BlockKey, 64)
	for i := range keys {
		keys[i] = BlockKey{Key: "some/dir/object.bin", ETag: `"0123456789abcdef0123456789abcdef"`, Index: int64(i)}
		if _, err := c.GetOrFill(context.Background(), keys[i], fill); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(keys))
		for pb.Next() {
			if _, err := c.GetOrFill(context.Background(), keys[i%len(keys)], fill); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkBlockCacheFill: every call misses and fills a new block (the
// fill itself is free), with room to keep them all: the fixed cost of a
// fill (goroutine, bookkeeping, wake-up).
func BenchmarkBlockCacheFill(b *testing.B) {
	c := benchCache(b, Options{BlockSize: 4096, MaxBytes: 1 << 40})
	block := make([]byte, 4096)
	fill := func(context.Context) ([]byte, error) { return block, nil }
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := c.GetOrFill(context.Background(), BlockKey{Key: "k", Index: int64(i)}, fill); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBlockCacheMissEvictChurn: parallel misses on a key space ten
// times the budget: every fill evicts.
func BenchmarkBlockCacheMissEvictChurn(b *testing.B) {
	const bs = 64 << 10
	c := benchCache(b, Options{BlockSize: bs, MaxBytes: 64 * bs})
	block := make([]byte, bs)
	fill := func(context.Context) ([]byte, error) { return block, nil }
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(uint64(seq.Add(1)), 0))
		for pb.Next() {
			k := BlockKey{Key: "k", Index: r.Int64N(640)}
			if _, err := c.GetOrFill(context.Background(), k, fill); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(c.Stats().Evictions)/float64(b.N), "evictions/op")
}

// memRange serves an in-memory object with no latency: the cost measured
// is the cache's (block allocation, copies, bookkeeping), not the store's.
func memRange(data []byte, latency time.Duration) RangeFunc {
	return func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
		if latency > 0 {
			time.Sleep(latency)
		}
		return io.NopCloser(&sliceReader{data[off : off+n]}), nil
	}
}

type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func readSeq(b *testing.B, r *Reader, size int64, buf []byte) {
	for off := int64(0); off < size; {
		n, err := r.ReadAt(context.Background(), buf, off)
		if err != nil && err != io.EOF {
			b.Fatal(err)
		}
		off += int64(n)
	}
}

// BenchmarkReaderSequentialCold: a 256 MiB object read in 128 KiB reads
// (the kernel's default) through a 64 MiB cache: every block is fetched,
// readahead runs, old blocks are evicted. MB/s is the cache's ceiling.
func BenchmarkReaderSequentialCold(b *testing.B) {
	for _, lat := range []time.Duration{0, 500 * time.Microsecond} {
		b.Run(fmt.Sprintf("latency=%v", lat), func(b *testing.B) {
			const size = 256 << 20
			data := make([]byte, size)
			c := benchCache(b, Options{BlockSize: benchBS, MaxBytes: 64 << 20})
			buf := make([]byte, 128<<10)
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				obj := Object{Key: "obj", ETag: fmt.Sprint(i), Size: size} // a new version: cold
				r := c.NewReader(obj, memRange(data, lat))
				readSeq(b, r, size, buf)
				r.Close()
			}
			s := c.Stats()
			b.ReportMetric(float64(s.Fetches)/float64(b.N), "GETs/op")
		})
	}
}

// BenchmarkReaderSequentialWarm: the object is resident; reads are copies
// (ReadAt) or pinned slices of the blocks (ReadSlices, for a zero-copy
// reply).
func BenchmarkReaderSequentialWarm(b *testing.B) {
	const size = 64 << 20
	data := make([]byte, size)
	c := benchCache(b, Options{BlockSize: benchBS, MaxBytes: 128 << 20})
	obj := Object{Key: "obj", ETag: "e", Size: size}
	buf := make([]byte, 128<<10)
	r := c.NewReader(obj, memRange(data, 0))
	readSeq(b, r, size, buf)
	r.Close()
	b.Run("ReadAt", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for range b.N {
			r := c.NewReader(obj, memRange(data, 0))
			readSeq(b, r, size, buf)
			r.Close()
		}
	})
	b.Run("ReadSlices", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for range b.N {
			r := c.NewReader(obj, memRange(data, 0))
			for off := int64(0); off < size; off += 128 << 10 {
				s, err := r.ReadSlices(context.Background(), off, 128<<10)
				if err != nil {
					b.Fatal(err)
				}
				s.Release()
			}
			r.Close()
		}
	})
}

// BenchmarkReaderRandom4K: warm random 4 KiB reads from all Ps, each on its
// own handle (fio psync numjobs=N).
func BenchmarkReaderRandom4K(b *testing.B) {
	const size = 64 << 20
	data := make([]byte, size)
	c := benchCache(b, Options{BlockSize: benchBS, MaxBytes: 128 << 20})
	obj := Object{Key: "obj", ETag: "e", Size: size}
	warm := c.NewReader(obj, memRange(data, 0))
	readSeq(b, warm, size, make([]byte, benchBS))
	warm.Close()
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := c.NewReader(obj, memRange(data, 0))
		defer r.Close()
		rng := rand.New(rand.NewPCG(uint64(seq.Add(1)), 0))
		buf := make([]byte, 4096)
		for pb.Next() {
			if _, err := r.ReadAt(context.Background(), buf, rng.Int64N(size/4096)*4096); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkReaderSequentialDisk: cold sequential reads with the disk tier
// on, its writes asynchronous (the default) or synchronous in the fetch
// goroutine: the cost the disk tier adds to a cold read.
func BenchmarkReaderSequentialDisk(b *testing.B) {
	for _, mode := range []string{"off", "async", "sync"} {
		b.Run("disk="+mode, func(b *testing.B) {
			const size = 128 << 20
			data := make([]byte, size)
			var disk *DiskCache
			if mode != "off" {
				var err error
				disk, err = OpenDisk(DiskOptions{Dir: b.TempDir(), MaxBytes: 256 << 20})
				if err != nil {
					b.Fatal(err)
				}
				disk.syncWrite = mode == "sync"
				defer disk.Close()
			}
			c := benchCache(b, Options{BlockSize: benchBS, MaxBytes: 64 << 20, Disk: disk})
			buf := make([]byte, 128<<10)
			b.SetBytes(size)
			b.ResetTimer()
			for i := range b.N {
				r := c.NewReader(Object{Key: "obj", ETag: fmt.Sprint(i), Size: size}, memRange(data, 0))
				readSeq(b, r, size, buf)
				r.Close()
			}
			b.StopTimer()
			if disk != nil {
				disk.Drain()
				s := disk.Stats()
				b.ReportMetric(float64(s.Writes)/float64(b.N*size/benchBS), "written/block")
			}
		})
	}
}

func BenchmarkTTLCacheGet(b *testing.B) {
	c := NewTTLCache[string, int64](10000, nil)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("dir/sub/file-%d", i)
		c.Put(keys[i], int64(i), time.Hour)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(keys))
		for pb.Next() {
			c.Get(keys[i%len(keys)])
			i++
		}
	})
}

func BenchmarkTTLCachePut(b *testing.B) {
	c := NewTTLCache[string, int64](1000, nil)
	keys := make([]string, 5000)
	for i := range keys {
		keys[i] = fmt.Sprintf("dir/sub/file-%d", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := rand.IntN(len(keys))
		for pb.Next() {
			c.Put(keys[i%len(keys)], int64(i), time.Minute)
			i++
		}
	})
}

// BenchmarkWindowObserve: the readahead decision per read, sequential and
// random.
func BenchmarkWindowObserve(b *testing.B) {
	ra := NewReadahead(ReadaheadConfig{BlockSize: benchBS, TotalBytes: 128 << 20})
	b.Run("sequential", func(b *testing.B) {
		w := ra.NewWindow(1 << 50)
		defer w.Close()
		b.ReportAllocs()
		for i := range b.N {
			w.Observe(int64(i)*128<<10, 128<<10)
		}
	})
	b.Run("random", func(b *testing.B) {
		w := ra.NewWindow(1 << 40)
		defer w.Close()
		r := rand.New(rand.NewPCG(1, 2))
		b.ReportAllocs()
		for range b.N {
			w.Observe(r.Int64N(1<<28)*4096, 4096)
		}
	})
}

// genReader produces a synthetic object (byte i is byte(i)) without
// holding it in memory, so that RSS measures the cache alone.
type genReader struct{ off, end int64 }

func (g *genReader) Read(p []byte) (int, error) {
	if g.off >= g.end {
		return 0, io.EOF
	}
	n := min(int64(len(p)), g.end-g.off)
	for i := range n {
		p[i] = byte(g.off + i)
	}
	g.off += n
	return int(n), nil
}

// vmRSS returns the process's resident set size in bytes.
func vmRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v << 10
		}
	}
	return 0
}

// BenchmarkFourSequentialReaders is the memory scenario: four
// sequential readers of different objects through a 128 MiB cache, with
// 300µs of latency per GET. It reports throughput and the peak RSS growth,
// without and with a soft memory limit of the cache size + 32 MiB: without
// one the Go GC lets evicted blocks pile up to about twice the budget.
func BenchmarkFourSequentialReaders(b *testing.B) {
	const size, cacheSize = 256 << 20, 128 << 20
	for _, limit := range []bool{false, true} {
		b.Run(fmt.Sprintf("memlimit=%v", limit), func(b *testing.B) {
			if limit {
				old := debug.SetMemoryLimit(cacheSize + 32<<20)
				defer debug.SetMemoryLimit(old)
			}
			runtime.GC()
			debug.FreeOSMemory()
			base := vmRSS()
			var peak atomic.Int64
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				for {
					if v := vmRSS(); v > peak.Load() {
						peak.Store(v)
					}
					select {
					case <-stop:
						return
					case <-time.After(2 * time.Millisecond):
					}
				}
			}()
			c := benchCache(b, Options{BlockSize: benchBS, MaxBytes: cacheSize})
			b.SetBytes(4 * size)
			b.ResetTimer()
			for i := range b.N {
				var wg sync.WaitGroup
				for j := range 4 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						obj := Object{Key: fmt.Sprint(j), ETag: fmt.Sprint(i), Size: size}
						r := c.NewReader(obj, func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
							time.Sleep(300 * time.Microsecond)
							return io.NopCloser(&genReader{off, off + n}), nil
						})
						defer r.Close()
						readSeq(b, r, size, make([]byte, 128<<10))
					}()
				}
				wg.Wait()
			}
			b.StopTimer()
			close(stop)
			<-sampled
			b.ReportMetric(float64(peak.Load()-base)/(1<<20), "peak-RSS-MiB")
		})
	}
}

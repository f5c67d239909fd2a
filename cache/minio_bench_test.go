package cache

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/novitalabs/bucketfs/internal/miniotest"
	"github.com/novitalabs/bucketfs/s3backend"
)

// BenchmarkMinIO measures the cache against a real MinIO on loopback,
// through s3backend, to tune the defaults: cold sequential reads through a
// Reader (128 KiB reads, as the kernel sends them) beside the bare
// parallel ranged GETs bench/ calls "bare SDK" (8 x 16 MiB in flight), and
// the time to the first 4 KiB of a cold object beside a HEAD plus a small
// GET. It starts MinIO, so it only runs with BUCKETFS_MINIO_BENCH=1:
//
//	BUCKETFS_MINIO_BENCH=1 go test -run '^$' -bench MinIO -benchtime 3x ./cache
func BenchmarkMinIO(b *testing.B) {
	if os.Getenv("BUCKETFS_MINIO_BENCH") == "" {
		b.Skip("set BUCKETFS_MINIO_BENCH=1 to run against a local MinIO")
	}
	const size = 512 << 20
	srv := miniotest.StartT(b)
	bucket := srv.NewBucket(b)
	ctx := context.Background()
	store, err := s3backend.New(ctx, s3backend.Config{
		Bucket:      bucket,
		Endpoint:    srv.Endpoint,
		PathStyle:   true,
		Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
	})
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < size; i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	etag, err := store.Upload(ctx, "big", bytes.NewReader(data), size, s3backend.PutOptions{})
	if err != nil {
		b.Fatal(err)
	}
	fetch := func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
		return store.GetRange(ctx, "big", off, n, etag)
	}

	b.Run("sequential/sdk-8x16MiB", func(b *testing.B) {
		b.SetBytes(size)
		for range b.N {
			if err := parallelGet(ctx, store, "big", etag, size, 16<<20, 8); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, cfg := range []struct {
		bs, run, win int64
	}{
		{1 << 20, 8 << 20, 64 << 20},
		{1 << 20, 16 << 20, 64 << 20},
		{1 << 20, 16 << 20, 128 << 20},
		{1 << 20, 32 << 20, 128 << 20},
		{4 << 20, 16 << 20, 128 << 20},
	} {
		name := fmt.Sprintf("sequential/cache-bs=%dMiB-run=%dMiB-win=%dMiB", cfg.bs>>20, cfg.run>>20, cfg.win>>20)
		b.Run(name, func(b *testing.B) {
			c := benchCache(b, Options{BlockSize: cfg.bs, MaxBytes: 256 << 20,
				Readahead: ReadaheadConfig{RunBytes: cfg.run, MaxWindowBytes: cfg.win}})
			buf := make([]byte, 128<<10)
			b.SetBytes(size)
			for range b.N {
				c.Invalidate("big") // cold every time
				r := c.NewReader(Object{Key: "big", ETag: etag, Size: size}, fetch)
				for off := int64(0); off < size; {
					n, err := r.ReadAt(ctx, buf, off)
					if err != nil && err != io.EOF {
						b.Fatal(err)
					}
					if off%(64<<20) == 0 && !bytes.Equal(buf[:n], data[off:off+int64(n)]) {
						b.Fatalf("wrong bytes at %d", off)
					}
					off += int64(n)
				}
				r.Close()
			}
			s := c.Stats()
			b.ReportMetric(float64(s.Fetches)/float64(b.N), "GETs/op")
		})
	}

	b.Run("first-byte/head+get4KiB", func(b *testing.B) {
		for range b.N {
			if _, err := store.Head(ctx, "big"); err != nil {
				b.Fatal(err)
			}
			body, err := store.GetRange(ctx, "big", 0, 4096, etag)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, body)
			body.Close()
		}
	})
	b.Run("first-byte/cache-read4KiB", func(b *testing.B) {
		c := benchCache(b, Options{})
		buf := make([]byte, 4096)
		for range b.N {
			c.Invalidate("big")
			r := c.NewReader(Object{Key: "big", ETag: etag, Size: size}, fetch)
			if _, err := r.ReadAt(ctx, buf, 0); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			r.Close()
			c.wg.Wait() // the rest of the first GET is not part of the first byte
			b.StartTimer()
		}
	})
}

// parallelGet reads key with conc ranged GETs of part bytes in flight, as
// bench/'s bare-SDK column does (minus the hashing).
func parallelGet(ctx context.Context, store s3backend.ObjectStore, key, etag string, size, part int64, conc int) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ferr error
		next int64
	)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, part)
			for {
				mu.Lock()
				off, failed := next, ferr != nil
				next += part
				mu.Unlock()
				if off >= size || failed {
					return
				}
				n := min(part, size-off)
				body, err := store.GetRange(ctx, key, off, n, etag)
				if err == nil {
					_, err = io.ReadFull(body, buf[:n])
					body.Close()
				}
				if err != nil {
					mu.Lock()
					ferr = err
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return ferr
}

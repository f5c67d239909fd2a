package metrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/novitalabs/bucketfs/s3backend"
)

// fakeStore answers every call with err (nil: success) and serves body for
// GetRange.
type fakeStore struct {
	err  error
	body []byte
}

func (f *fakeStore) Head(context.Context, string) (s3backend.ObjectInfo, error) {
	return s3backend.ObjectInfo{}, f.err
}
func (f *fakeStore) Peek(context.Context, string, int64) (s3backend.ObjectInfo, []byte, error) {
	return s3backend.ObjectInfo{}, nil, f.err
}
func (f *fakeStore) List(context.Context, string, string, string, int) (s3backend.ListResult, error) {
	return s3backend.ListResult{}, f.err
}
func (f *fakeStore) GetRange(context.Context, string, int64, int64, string) (io.ReadCloser, error) {
	if f.err != nil {
		return nil, f.err
	}
	return io.NopCloser(bytes.NewReader(f.body)), nil
}
func (f *fakeStore) Upload(_ context.Context, _ string, r io.ReaderAt, size int64, _ s3backend.PutOptions) (string, error) {
	// Read the body twice, as the SDK does when it signs over plain HTTP.
	for range 2 {
		if _, err := io.Copy(io.Discard, io.NewSectionReader(r, 0, size)); err != nil {
			return "", err
		}
	}
	return `"etag"`, f.err
}
func (f *fakeStore) CreateMultipart(context.Context, string, s3backend.PutOptions) (string, error) {
	return "id", f.err
}
func (f *fakeStore) UploadPart(context.Context, string, string, int32, io.ReadSeeker, int64) (string, error) {
	return `"p"`, f.err
}
func (f *fakeStore) UploadPartCopy(context.Context, string, string, int32, string, int64, int64, string) (string, error) {
	return `"p"`, f.err
}
func (f *fakeStore) CompleteMultipart(context.Context, string, string, []s3backend.CompletedPart) (string, error) {
	return `"e"`, f.err
}
func (f *fakeStore) AbortMultipart(context.Context, string, string) error { return f.err }
func (f *fakeStore) ListMultipart(context.Context, string) ([]s3backend.MultipartUpload, error) {
	return nil, f.err
}
func (f *fakeStore) Copy(context.Context, string, string, string, *s3backend.PutOptions) (string, error) {
	return `"e"`, f.err
}
func (f *fakeStore) Delete(context.Context, string) error { return f.err }

func (f *fakeStore) DeleteMany(context.Context, []string) error { return f.err }

func TestInstrumentStoreCounts(t *testing.T) {
	m := New()
	ctx := context.Background()
	ok := m.InstrumentStore(&fakeStore{body: []byte("0123456789")})

	if _, err := ok.Head(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	body, err := ok.GetRange(ctx, "k", 0, -1, "")
	if err != nil {
		t.Fatal(err)
	}
	// Read part of the body only: what was not read was not received.
	if _, err := io.ReadFull(body, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	body.Close()
	body.Close() // idempotent
	if _, err := ok.Upload(ctx, "k", bytes.NewReader(make([]byte, 1000)), 1000, s3backend.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ok.UploadPart(ctx, "k", "id", 1, bytes.NewReader(make([]byte, 300)), 300); err != nil {
		t.Fatal(err)
	}
	if _, err := ok.ListMultipart(ctx, "k"); err != nil {
		t.Fatal(err)
	}

	missing := &s3backend.OpError{Op: "HeadObject", Key: "k", Err: s3backend.ErrNotFound, Code: "NotFound", StatusCode: 404}
	bad := m.InstrumentStore(&fakeStore{err: fmt.Errorf("wrapped: %w", missing)})
	_, _ = bad.Head(ctx, "k")
	_, _ = bad.Head(ctx, "k")
	// A failed upload stores nothing: no bytes counted.
	_, _ = bad.Upload(ctx, "k", bytes.NewReader(make([]byte, 50)), 50, s3backend.PutOptions{})
	other := m.InstrumentStore(&fakeStore{err: errors.New("boom")})
	_ = other.Delete(ctx, "k")
	canceled := m.InstrumentStore(&fakeStore{err: context.Canceled})
	_, _ = canceled.List(ctx, "", "/", "", 0)

	for _, c := range []struct {
		op, outcome string
		want        float64
	}{
		{"head", "ok", 1}, {"head", "not_found", 2}, {"get", "ok", 1},
		{"upload", "ok", 1}, {"upload", "not_found", 1}, {"upload_part", "ok", 1},
		{"list_multipart", "ok", 1},
		{"delete", "error", 1}, {"list", "canceled", 1},
	} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(c.op, c.outcome)); got != c.want {
			t.Errorf("requests{op=%q,outcome=%q} = %v, want %v", c.op, c.outcome, got, c.want)
		}
	}
	if got := testutil.ToFloat64(m.downloadBytes); got != 4 {
		t.Errorf("download bytes = %v, want 4", got)
	}
	if got := testutil.ToFloat64(m.uploadBytes); got != 1300 {
		t.Errorf("upload bytes = %v, want 1300 (the accepted sizes, not the reads)", got)
	}
	if got := testutil.ToFloat64(m.uploads); got != 0 {
		t.Errorf("uploads in flight after all returned = %v, want 0", got)
	}
	if n := testutil.CollectAndCount(m.duration); n != 7 {
		t.Errorf("duration series = %d, want one per op used (7)", n)
	}
}

// blockingStore blocks Upload until release is closed.
type blockingStore struct {
	fakeStore
	started, release chan struct{}
}

func (b *blockingStore) Upload(context.Context, string, io.ReaderAt, int64, s3backend.PutOptions) (string, error) {
	close(b.started)
	<-b.release
	return `"e"`, nil
}

func TestUploadsInFlight(t *testing.T) {
	m := New()
	bs := &blockingStore{started: make(chan struct{}), release: make(chan struct{})}
	s := m.InstrumentStore(bs)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = s.Upload(context.Background(), "k", bytes.NewReader(nil), 0, s3backend.PutOptions{})
	}()
	<-bs.started
	if got := testutil.ToFloat64(m.uploads); got != 1 {
		t.Errorf("uploads in flight during an upload = %v, want 1", got)
	}
	close(bs.release)
	<-done
	if got := testutil.ToFloat64(m.uploads); got != 0 {
		t.Errorf("uploads in flight after = %v, want 0", got)
	}
}

func TestFSFailureAndCache(t *testing.T) {
	m := New()
	m.FSFailure("upload (close)", syscall.EIO)
	m.FSFailure("upload (retry)", syscall.EIO)
	m.FSFailure("read", syscall.ESTALE)
	m.FSFailure("lookup", syscall.Errno(200))
	m.CacheHit()
	m.CacheHit()
	m.CacheMiss()
	m.SetCacheBytes(4096)
	m.SetBuildInfo("v1", "abc123")

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	out := rec.Body.String()
	for _, want := range []string{
		`bucketfs_fs_errors_total{errno="EIO",op="upload"} 2`,
		`bucketfs_fs_errors_total{errno="ESTALE",op="read"} 1`,
		`bucketfs_fs_errors_total{errno="errno_200",op="lookup"} 1`,
		`bucketfs_cache_hits_total 2`,
		`bucketfs_cache_misses_total 1`,
		`bucketfs_cache_bytes 4096`,
		`bucketfs_build_info{commit="abc123",goversion="go`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", out)
	}
}

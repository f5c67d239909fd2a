package s3backend

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"golang.org/x/sync/errgroup"

	"github.com/novitalabs/bucketfs/internal/miniotest"
)

// One MinIO serves every test of the package (each test gets its own
// bucket); it starts on first use and stops in TestMain.
var (
	sharedOnce sync.Once
	shared     *miniotest.Server
	sharedErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		_ = shared.Close()
	}
	os.Exit(code)
}

func minio(t *testing.T) *miniotest.Server {
	t.Helper()
	sharedOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
		defer cancel()
		shared, sharedErr = miniotest.Start(ctx, miniotest.Options{})
	})
	if sharedErr != nil {
		t.Fatalf("start minio: %v", sharedErr)
	}
	return shared
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func storeConfig(srv *miniotest.Server, bucket string) Config {
	return Config{
		Bucket:      bucket,
		Endpoint:    srv.Endpoint,
		PathStyle:   true,
		Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
	}
}

// newStore returns a Store on a fresh bucket; mut may adjust the config.
func newStore(t *testing.T, mut func(*Config)) (*Store, string) {
	t.Helper()
	srv := minio(t)
	bucket := srv.NewBucket(t)
	cfg := storeConfig(srv, bucket)
	if mut != nil {
		mut(&cfg)
	}
	st, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return st, bucket
}

func upload(t *testing.T, st *Store, key string, data []byte, opts PutOptions) string {
	t.Helper()
	etag, err := st.Upload(testCtx(t), key, bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		t.Fatalf("Upload %q: %v", key, err)
	}
	if etag == "" {
		t.Fatalf("Upload %q returned no ETag", key)
	}
	return etag
}

func read(t *testing.T, st *Store, key string, off, n int64, ifMatch string) ([]byte, error) {
	t.Helper()
	body, err := st.GetRange(testCtx(t), key, off, n, ifMatch)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	return io.ReadAll(body)
}

func mustRead(t *testing.T, st *Store, key string, off, n int64) []byte {
	t.Helper()
	b, err := read(t, st, key, off, n, "")
	if err != nil {
		t.Fatalf("GetRange %q %d+%d: %v", key, off, n, err)
	}
	return b
}

func randBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestObjectLifecycle(t *testing.T) {
	st, _ := newStore(t, nil)
	ctx := testCtx(t)
	data := []byte("0123456789abcdef")
	etag := upload(t, st, "dir/file.txt", data, PutOptions{
		ContentType: "text/plain",
		Metadata:    map[string]string{"Mode": "33188", "uid": "1000", "X-Amz-Meta-Mtime": "1700000000.5"},
	})

	info, err := st.Head(ctx, "dir/file.txt")
	if err != nil {
		t.Fatal(err)
	}
	if info.Key != "dir/file.txt" || info.Size != 16 || info.ETag != etag || info.ContentType != "text/plain" || info.LastModified.IsZero() {
		t.Fatalf("Head = %+v (etag %s)", info, etag)
	}
	wantMeta := map[string]string{"mode": "33188", "uid": "1000", "mtime": "1700000000.5"}
	if fmt.Sprint(info.Metadata) != fmt.Sprint(wantMeta) {
		t.Fatalf("metadata = %v, want %v", info.Metadata, wantMeta)
	}

	for _, c := range []struct {
		off, n int64
		want   string
	}{
		{0, -1, "0123456789abcdef"},
		{0, 16, "0123456789abcdef"},
		{3, 4, "3456"},
		{10, -1, "abcdef"},
		{12, 100, "cdef"}, // clamped by the store
		{15, 1, "f"},
		{5, 0, ""},
	} {
		if got := mustRead(t, st, "dir/file.txt", c.off, c.n); string(got) != c.want {
			t.Errorf("GetRange(%d, %d) = %q, want %q", c.off, c.n, got, c.want)
		}
	}
	if _, err := read(t, st, "dir/file.txt", 16, 10, ""); !errors.Is(err, ErrInvalidRange) {
		t.Errorf("read at EOF: err = %v, want ErrInvalidRange", err)
	}
	if got, err := read(t, st, "dir/file.txt", 2, 3, etag); err != nil || string(got) != "234" {
		t.Errorf("If-Match with the right ETag: %q, %v", got, err)
	}
	_, err = read(t, st, "dir/file.txt", 0, 4, `"0123456789abcdef0123456789abcdef"`)
	if !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("If-Match mismatch: err = %v, want ErrPreconditionFailed", err)
	}

	// Overwrite changes the ETag; a read pinned to the old one fails.
	etag2 := upload(t, st, "dir/file.txt", []byte("new content"), PutOptions{})
	if etag2 == etag {
		t.Fatal("overwrite kept the ETag")
	}
	if _, err := read(t, st, "dir/file.txt", 0, 3, etag); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("stale If-Match: err = %v", err)
	}

	if err := st.Delete(ctx, "dir/file.txt"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Head(ctx, "dir/file.txt"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Head after delete: err = %v, want ErrNotFound", err)
	}
	if _, err := read(t, st, "dir/file.txt", 0, 1, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetRange after delete: err = %v, want ErrNotFound", err)
	}
	if err := st.Delete(ctx, "dir/file.txt"); err != nil {
		t.Errorf("deleting a missing key: %v", err)
	}
	var oe *OpError
	_, err = st.Head(ctx, "missing")
	if !errors.As(err, &oe) || oe.Op != "HeadObject" || oe.Key != "missing" {
		t.Errorf("Head error %#v lacks op/key", err)
	}
}

func TestEmptyObject(t *testing.T) {
	st, _ := newStore(t, nil)
	ctx := testCtx(t)
	upload(t, st, "empty", nil, PutOptions{Metadata: map[string]string{"mode": "33188"}})
	upload(t, st, "dir/", nil, PutOptions{ContentType: "application/x-directory"})
	info, err := st.Head(ctx, "empty")
	if err != nil || info.Size != 0 || info.Metadata["mode"] != "33188" {
		t.Fatalf("Head(empty) = %+v, %v", info, err)
	}
	for _, c := range [][2]int64{{0, -1}, {0, 0}, {0, 4096}} {
		got, err := read(t, st, "empty", c[0], c[1], info.ETag)
		if err != nil || len(got) != 0 {
			t.Errorf("GetRange(empty, %d, %d) = %q, %v", c[0], c[1], got, err)
		}
	}
	if _, err := read(t, st, "empty", 0, 4096, `"ffffffffffffffffffffffffffffffff"`); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("If-Match mismatch on empty object: %v", err)
	}
	dir, err := st.Head(ctx, "dir/")
	if err != nil || dir.ContentType != "application/x-directory" {
		t.Fatalf("Head(dir/) = %+v, %v", dir, err)
	}
}

func TestSpecialKeys(t *testing.T) {
	st, _ := newStore(t, nil)
	ctx := testCtx(t)
	keys := []string{
		"with space/file name.txt",
		"plus+sign/a+b",
		"percent%2F/100%",
		"unicode/ünïcödé 日本語 🙂",
		"punct/!$&'()*,;=@:~[]{}#^`",
		"q?x=1&y",
		// XML cannot carry these: listings are asked URL-encoded.
		"ctl/a\x01b",
		"ctl\x1fdir/x\ty",
	}
	for i, k := range keys {
		upload(t, st, k, []byte(k), PutOptions{Metadata: map[string]string{"i": fmt.Sprint(i)}})
	}
	for i, k := range keys {
		if got := mustRead(t, st, k, 0, -1); string(got) != k {
			t.Errorf("read %q = %q", k, got)
		}
		info, err := st.Head(ctx, k)
		if err != nil || info.Metadata["i"] != fmt.Sprint(i) {
			t.Errorf("Head %q = %+v, %v", k, info, err)
		}
		dst := "copy/" + k
		if _, err := st.Copy(ctx, k, dst, info.ETag, nil); err != nil {
			t.Errorf("Copy %q: %v", k, err)
		} else if got := mustRead(t, st, dst, 0, -1); string(got) != k {
			t.Errorf("copy of %q reads %q", k, got)
		}
	}
	res := listBothWays(t, st, ctx, "", "")
	var got []string
	for _, o := range res.Objects {
		got = append(got, o.Key)
	}
	want := append([]string{}, keys...)
	for _, k := range keys {
		want = append(want, "copy/"+k)
	}
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("List = %q\nwant %q", got, want)
	}
	// Prefixes are decoded too, and paging (the continuation token)
	// goes on past them.
	_, prefixes, _ := listAll(t, st, "", "/", 2)
	if want := "copy/ ctl\x1fdir/ ctl/ percent%2F/ plus+sign/ punct/ unicode/ with space/"; strings.Join(prefixes, " ") != want {
		t.Errorf("List with delimiter: prefixes %q, want %q", prefixes, want)
	}
}

// listBothWays lists one page of prefix with decodeListPage and with the
// SDK's decoder, and fails unless they agree.
func listBothWays(t *testing.T, st *Store, ctx context.Context, prefix, delim string) ListResult {
	t.Helper()
	res, err := st.List(ctx, prefix, delim, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	st.sdkListDecoder = true
	defer func() { st.sdkListDecoder = false }()
	sdk, err := st.List(ctx, prefix, delim, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res, sdk) {
		t.Errorf("List(%q, %q): the decoder read\n%+v\nthe SDK\n%+v", prefix, delim, res, sdk)
	}
	return res
}

// listAll pages through a listing with maxKeys, checking page sizes.
func listAll(t *testing.T, st *Store, prefix, delim string, maxKeys int) (objs, prefixes []string, pages int) {
	t.Helper()
	token := ""
	for {
		res, err := st.List(testCtx(t), prefix, delim, token, maxKeys)
		if err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		pages++
		if n := len(res.Objects) + len(res.CommonPrefixes); maxKeys > 0 && n > maxKeys {
			t.Fatalf("page of %d entries with maxKeys %d", n, maxKeys)
		}
		for _, o := range res.Objects {
			if o.Metadata != nil {
				t.Errorf("listing carries metadata for %q", o.Key)
			}
			objs = append(objs, o.Key)
		}
		prefixes = append(prefixes, res.CommonPrefixes...)
		if res.NextToken == "" {
			return objs, prefixes, pages
		}
		if pages > 100 {
			t.Fatal("listing does not end")
		}
		token = res.NextToken
	}
}

func TestListPagination(t *testing.T) {
	st, _ := newStore(t, nil)
	for _, k := range []string{"a/1", "a/2", "a/3", "a/b/x", "a/c/y", "a/d/", "top", "a0"} {
		upload(t, st, k, []byte(k), PutOptions{})
	}
	objs, prefixes, pages := listAll(t, st, "a/", "/", 2)
	if fmt.Sprint(objs) != "[a/1 a/2 a/3]" || fmt.Sprint(prefixes) != "[a/b/ a/c/ a/d/]" {
		t.Errorf("List a/ = %v %v", objs, prefixes)
	}
	if pages < 3 {
		t.Errorf("6 entries with maxKeys 2 came in %d pages", pages)
	}
	objs, _, _ = listAll(t, st, "", "", 3)
	if fmt.Sprint(objs) != "[a/1 a/2 a/3 a/b/x a/c/y a/d/ a0 top]" {
		t.Errorf("recursive list = %v", objs)
	}
	objs, prefixes, _ = listAll(t, st, "", "/", 0)
	if fmt.Sprint(objs) != "[a0 top]" || fmt.Sprint(prefixes) != "[a/]" {
		t.Errorf("root list = %v %v", objs, prefixes)
	}
	// A subdirectory's own marker is returned when listing it.
	objs, prefixes, _ = listAll(t, st, "a/d/", "/", 0)
	if fmt.Sprint(objs) != "[a/d/]" || len(prefixes) != 0 {
		t.Errorf("list a/d/ = %v %v", objs, prefixes)
	}
	objs, prefixes, _ = listAll(t, st, "nothing/", "/", 0)
	if len(objs)+len(prefixes) != 0 {
		t.Errorf("list of a missing prefix = %v %v", objs, prefixes)
	}
}

func TestMountPrefix(t *testing.T) {
	st, bucket := newStore(t, func(c *Config) { c.Prefix = "mnt/sub" }) // no trailing slash: New adds it
	ctx := testCtx(t)
	raw := minio(t).Client()
	// The mount root's own marker, and an object outside the prefix.
	for _, k := range []string{"mnt/sub/", "mnt/other", "outside"} {
		if _, err := raw.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader("")}); err != nil {
			t.Fatal(err)
		}
	}
	upload(t, st, "f", []byte("x"), PutOptions{})
	upload(t, st, "d/g", []byte("y"), PutOptions{})
	if _, err := raw.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("mnt/sub/d/g")}); err != nil {
		t.Fatalf("prefixed key not in bucket: %v", err)
	}
	objs, prefixes, _ := listAll(t, st, "", "/", 0)
	if fmt.Sprint(objs) != "[f]" || fmt.Sprint(prefixes) != "[d/]" {
		t.Errorf("list of mount root = %v %v (the root marker must be skipped, keys relative)", objs, prefixes)
	}
	if _, err := st.Copy(ctx, "f", "d/f2", "", nil); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, st, "d/f2", 0, -1); string(got) != "x" {
		t.Errorf("copy in prefix reads %q", got)
	}
	if err := st.CheckBucket(ctx); err != nil {
		t.Errorf("CheckBucket with prefix: %v", err)
	}
}

// slowReaderAt delays every read and records how many run at once, to
// show that parts are uploaded in parallel.
type slowReaderAt struct {
	r              io.ReaderAt
	active, maxAct atomic.Int32
	failAt         int64 // a read covering this offset fails (if >= 0)
	failErr        error
}

func (s *slowReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n := s.active.Add(1)
	defer s.active.Add(-1)
	for {
		m := s.maxAct.Load()
		if n <= m || s.maxAct.CompareAndSwap(m, n) {
			break
		}
	}
	if off%(5<<20) == 0 {
		// Hold the first read of each 5 MiB part so that parts overlap.
		time.Sleep(100 * time.Millisecond)
	}
	if s.failAt >= 0 && off <= s.failAt && s.failAt < off+int64(len(p)) {
		return 0, s.failErr
	}
	return s.r.ReadAt(p, off)
}

func TestMultipartUpload(t *testing.T) {
	st, bucket := newStore(t, func(c *Config) {
		c.PartSize = 5 << 20
		c.UploadConcurrency = 4
	})
	ctx := testCtx(t)
	data := randBytes(t, 17<<20+123) // 4 parts, the last short
	src := &slowReaderAt{r: bytes.NewReader(data), failAt: -1}
	etag, err := st.Upload(ctx, "big/file.bin", src, int64(len(data)), PutOptions{ContentType: "application/octet-stream", Metadata: map[string]string{"mode": "33188"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(etag, `-4"`) {
		t.Errorf("ETag %s is not that of a 4-part upload", etag)
	}
	if src.maxAct.Load() < 2 {
		t.Errorf("parts were not uploaded in parallel (max %d reads at once)", src.maxAct.Load())
	}
	got := mustRead(t, st, "big/file.bin", 0, -1)
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("multipart object differs (%d bytes read, %d written)", len(got), len(data))
	}
	// A range spanning a part boundary.
	if got := mustRead(t, st, "big/file.bin", 5<<20-10, 20); !bytes.Equal(got, data[5<<20-10:5<<20+10]) {
		t.Error("range across a part boundary differs")
	}
	info, err := st.Head(ctx, "big/file.bin")
	if err != nil || info.Size != int64(len(data)) || info.ETag != etag || info.Metadata["mode"] != "33188" {
		t.Errorf("Head = %+v, %v", info, err)
	}

	// Exactly MultipartAbove bytes still go in one PUT (no "-N" ETag).
	etag = upload(t, st, "exact", data[:5<<20], PutOptions{})
	if strings.Contains(etag, "-") {
		t.Errorf("object of exactly PartSize bytes used multipart: %s", etag)
	}

	// A failing part aborts the whole upload and leaves no upload behind.
	boom := errors.New("disk read failed")
	bad := &slowReaderAt{r: bytes.NewReader(data), failAt: 11 << 20, failErr: boom}
	_, err = st.Upload(ctx, "big/failed.bin", bad, int64(len(data)), PutOptions{})
	if err == nil || !errors.Is(err, boom) {
		t.Fatalf("failed upload: err = %v, want it to wrap %v", err, boom)
	}
	if _, err := st.Head(ctx, "big/failed.bin"); !errors.Is(err, ErrNotFound) {
		t.Errorf("failed upload left an object: %v", err)
	}
	ups, err := minio(t).Client().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Errorf("%d multipart uploads left after a failure", len(ups.Uploads))
	}

	// A context cancelled before or during the upload stops it with a
	// context error, and the abort (on a fresh context) still cleans up.
	for _, delay := range []time.Duration{0, 150 * time.Millisecond} {
		cctx, cancel := context.WithCancel(ctx)
		if delay == 0 {
			cancel()
		} else {
			time.AfterFunc(delay, cancel)
		}
		slow := &slowReaderAt{r: bytes.NewReader(data), failAt: -1}
		_, err = st.Upload(cctx, "big/cancelled.bin", slow, int64(len(data)), PutOptions{})
		cancel()
		var oe *OpError
		if !errors.Is(err, context.Canceled) || !errors.As(err, &oe) || errors.Is(err, ErrUnreachable) {
			t.Errorf("upload cancelled after %v: err = %#v", delay, err)
		}
	}
	ups, err = minio(t).Client().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Errorf("%d multipart uploads left after cancellation", len(ups.Uploads))
	}
}

func TestMultipartPrimitives(t *testing.T) {
	st, _ := newStore(t, nil)
	ctx := testCtx(t)
	base := randBytes(t, 12<<20)
	baseTag := upload(t, st, "base", base, PutOptions{})

	id, err := st.CreateMultipart(ctx, "composed", PutOptions{Metadata: map[string]string{"uid": "7"}, PartCopies: true})
	if err != nil {
		t.Fatal(err)
	}
	fresh := randBytes(t, 5<<20)
	tail := randBytes(t, 1000)
	var parts []CompletedPart
	// Part 1 is copied from base's first 5 MiB, part 2 is new data, part 3
	// is copied from base's last 5 MiB, part 4 is a short new tail.
	e1, err := st.UploadPartCopy(ctx, "composed", id, 1, "base", 0, 5<<20, baseTag)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := st.UploadPart(ctx, "composed", id, 2, bytes.NewReader(fresh), int64(len(fresh)))
	if err != nil {
		t.Fatal(err)
	}
	e3, err := st.UploadPartCopy(ctx, "composed", id, 3, "base", 7<<20, 5<<20, "")
	if err != nil {
		t.Fatal(err)
	}
	e4, err := st.UploadPart(ctx, "composed", id, 4, bytes.NewReader(tail), int64(len(tail)))
	if err != nil {
		t.Fatal(err)
	}
	// Given out of order: CompleteMultipart sorts.
	parts = append(parts, CompletedPart{Number: 3, ETag: e3}, CompletedPart{Number: 1, ETag: e1},
		CompletedPart{Number: 4, ETag: e4}, CompletedPart{Number: 2, ETag: e2})
	etag, err := st.CompleteMultipart(ctx, "composed", id, parts)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Join([][]byte{base[:5<<20], fresh, base[7<<20:], tail}, nil)
	if got := mustRead(t, st, "composed", 0, -1); !bytes.Equal(got, want) {
		t.Fatalf("composed object differs (%d vs %d bytes)", len(got), len(want))
	}
	if info, err := st.Head(ctx, "composed"); err != nil || info.ETag != etag || info.Metadata["uid"] != "7" {
		t.Errorf("Head(composed) = %+v, %v", info, err)
	}

	// Copying a part pinned to a stale ETag fails.
	id2, err := st.CreateMultipart(ctx, "composed2", PutOptions{PartCopies: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.UploadPartCopy(ctx, "composed2", id2, 1, "base", 0, 5<<20, `"00000000000000000000000000000000"`); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("UploadPartCopy with a stale ETag: err = %v", err)
	}
	if err := st.AbortMultipart(ctx, "composed2", id2); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UploadPart(ctx, "composed2", id2, 1, bytes.NewReader(tail), int64(len(tail))); !errors.Is(err, ErrNotFound) {
		t.Errorf("UploadPart to an aborted upload: err = %v, want ErrNotFound", err)
	}
	if _, err := st.UploadPartCopy(ctx, "composed2", id2, 1, "base", 0, 0, ""); err == nil {
		t.Error("UploadPartCopy of an empty range succeeded")
	}
}

func TestCopy(t *testing.T) {
	st, _ := newStore(t, nil)
	ctx := testCtx(t)
	srcTag := upload(t, st, "src", []byte("payload"), PutOptions{
		ContentType: "text/plain",
		Metadata:    map[string]string{"mode": "33188", "foreign": "keep-me"},
	})

	// opts == nil copies metadata.
	if _, err := st.Copy(ctx, "src", "dst1", "", nil); err != nil {
		t.Fatal(err)
	}
	info, err := st.Head(ctx, "dst1")
	if err != nil || info.Metadata["foreign"] != "keep-me" || info.Metadata["mode"] != "33188" || info.ContentType != "text/plain" {
		t.Errorf("copied metadata = %+v, %v", info, err)
	}

	// opts != nil replaces it, including onto the object itself.
	newTag, err := st.Copy(ctx, "src", "src", srcTag, &PutOptions{ContentType: "application/x-test", Metadata: map[string]string{"Mode": "33261"}})
	if err != nil {
		t.Fatal(err)
	}
	info, err = st.Head(ctx, "src")
	if err != nil || info.ETag != newTag || info.Metadata["mode"] != "33261" || info.Metadata["foreign"] != "" || info.ContentType != "application/x-test" {
		t.Errorf("replaced metadata = %+v, %v", info, err)
	}
	if got := mustRead(t, st, "src", 0, -1); string(got) != "payload" {
		t.Errorf("in-place copy changed the data: %q", got)
	}

	if _, err := st.Copy(ctx, "src", "dst2", `"00000000000000000000000000000000"`, nil); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("Copy with a stale ETag: err = %v, want ErrPreconditionFailed", err)
	}
	if _, err := st.Copy(ctx, "missing", "dst3", "", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("Copy of a missing key: err = %v, want ErrNotFound", err)
	}
}

// TestMultipartCopy runs the >5 GiB copy path on a small object by
// lowering the part size.
func TestMultipartCopy(t *testing.T) {
	st, _ := newStore(t, func(c *Config) { c.UploadConcurrency = 3 })
	st.copyPartSize = 5 << 20
	ctx := testCtx(t)
	data := randBytes(t, 11<<20+7)
	upload(t, st, "big", data, PutOptions{ContentType: "application/x-big", Metadata: map[string]string{"mtime": "5"}})
	info, err := st.Head(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	etag, err := st.multipartCopy(ctx, "big", "big-copy", info, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(etag, `-3"`) {
		t.Errorf("ETag %s is not that of a 3-part copy", etag)
	}
	if got := mustRead(t, st, "big-copy", 0, -1); !bytes.Equal(got, data) {
		t.Fatal("multipart copy differs")
	}
	ci, err := st.Head(ctx, "big-copy")
	if err != nil || ci.Metadata["mtime"] != "5" || ci.ContentType != "application/x-big" {
		t.Errorf("multipart copy metadata = %+v, %v", ci, err)
	}
	if _, err := st.multipartCopy(ctx, "big", "big-copy2", info, "", &PutOptions{Metadata: map[string]string{"mtime": "6"}}); err != nil {
		t.Fatal(err)
	}
	if ci, err := st.Head(ctx, "big-copy2"); err != nil || ci.Metadata["mtime"] != "6" {
		t.Errorf("multipart copy with replaced metadata = %+v, %v", ci, err)
	}
	// Source changed since the HEAD: the pinned ETag makes the copy fail.
	upload(t, st, "big", data[:6<<20], PutOptions{})
	if _, err := st.multipartCopy(ctx, "big", "big-copy3", info, "", nil); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("multipart copy of a changed source: err = %v", err)
	}
	if _, err := st.Head(ctx, "big-copy3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("failed multipart copy left an object: %v", err)
	}
}

// TestConflict: MinIO used to refuse an object "a" beside "a/b"
// (XMinioParentIsObject); the pinned release stores both. Either answer is
// fine, but a refusal must come back as ErrConflict.
func TestConflict(t *testing.T) {
	st, _ := newStore(t, nil)
	ctx := testCtx(t)
	upload(t, st, "a", []byte("file"), PutOptions{})
	_, err := st.Upload(ctx, "a/b", bytes.NewReader([]byte("x")), 1, PutOptions{})
	if err != nil && !errors.Is(err, ErrConflict) {
		t.Errorf("object under an object: err = %v, want nil or ErrConflict", err)
	}
	t.Logf("object under an object: %v", err)
}

// closedPort returns a 127.0.0.1 port nothing listens on.
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func TestCheckBucket(t *testing.T) {
	srv := minio(t)
	bucket := srv.NewBucket(t)
	check := func(mut func(*Config)) error {
		cfg := storeConfig(srv, bucket)
		mut(&cfg)
		st, err := New(context.Background(), cfg)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		start := time.Now()
		err = st.CheckBucket(context.Background())
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("CheckBucket took %v", d)
		}
		return err
	}
	if err := check(func(*Config) {}); err != nil {
		t.Errorf("CheckBucket: %v", err)
	}
	if err := check(func(c *Config) { c.Prefix = "not/there/" }); err != nil {
		t.Errorf("CheckBucket with an empty prefix: %v", err)
	}
	cases := []struct {
		name string
		mut  func(*Config)
		want error
	}{
		{"wrong bucket", func(c *Config) { c.Bucket = "no-such-bucket-" + strings.ToLower(fmt.Sprint(time.Now().UnixNano())) }, ErrNoSuchBucket},
		{"bad secret", func(c *Config) {
			c.Credentials = credentials.NewStaticCredentialsProvider(srv.AccessKey, "wrong-secret-key", "")
		}, ErrBadCredentials},
		{"unknown access key", func(c *Config) {
			c.Credentials = credentials.NewStaticCredentialsProvider("AKIDUNKNOWN", srv.SecretKey, "")
		}, ErrBadCredentials},
		{"anonymous", func(c *Config) { c.Credentials = aws.AnonymousCredentials{} }, ErrAccessDenied},
		{"unreachable", func(c *Config) { c.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", closedPort(t)) }, ErrUnreachable},
		{"unresolvable", func(c *Config) { c.Endpoint = "http://bucketfs-test.invalid:9000" }, ErrUnreachable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := check(c.mut)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if strings.Contains(err.Error(), srv.SecretKey) {
				t.Fatal("error message contains the secret key")
			}
			t.Logf("%v", err)
		})
	}
	// The caller's own cancellation is reported as such.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	st, _ := New(context.Background(), storeConfig(srv, bucket))
	if err := st.CheckBucket(ctx); !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnreachable) {
		t.Errorf("cancelled CheckBucket: %v", err)
	}
}

// TestCheckBucketSilentEndpoint: an endpoint that accepts connections but
// never answers must not hang the mount; CheckBucket gives up on its own.
func TestCheckBucketSilentEndpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("takes checkTimeout (12 s)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	st, err := New(context.Background(), Config{
		Bucket: "b", Endpoint: "http://" + l.Addr().String(), PathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = st.CheckBucket(context.Background())
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("CheckBucket took %v", d)
	}
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	st, _ := newStore(t, nil)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("c/%02d", i)
			body := []byte(strings.Repeat(key, 100))
			if _, err := st.Upload(ctx, key, bytes.NewReader(body), int64(len(body)), PutOptions{}); err != nil {
				errs <- err
				return
			}
			b, err := st.GetRange(ctx, key, 4, 4, "")
			if err != nil {
				errs <- err
				return
			}
			got, _ := io.ReadAll(b)
			b.Close()
			if string(got) != key[:4] {
				errs <- fmt.Errorf("%s: read %q", key, got)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	objs, _, _ := listAll(t, st, "c/", "/", 0)
	if len(objs) != 32 {
		t.Errorf("listed %d of 32 objects", len(objs))
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(context.Background(), Config{}); err == nil {
		t.Error("New without a bucket succeeded")
	}
	if _, err := New(context.Background(), Config{Bucket: "b", PartSize: 1 << 20}); err == nil {
		t.Error("New with a 1 MiB part size succeeded")
	}
}

func TestListMultipart(t *testing.T) {
	st, bucket := newStore(t, func(c *Config) { c.Prefix = "mnt" })
	st.listUploadsPage = 2 // page through five uploads
	ctx := testCtx(t)
	raw := minio(t).Client()
	// An upload outside the mount prefix must never be listed.
	if _, err := raw.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String("a/x")}); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Minute) // MinIO's clock vs ours: a generous bound
	want := map[string][]string{}
	for _, k := range []string{"a/x", "a/x", "a/x", "a/x", "a/x", "a/y"} {
		id, err := st.CreateMultipart(ctx, k, PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want[k] = append(want[k], id)
	}
	check := func(key string, ids []string) {
		t.Helper()
		ups, err := st.ListMultipart(ctx, key)
		if err != nil {
			t.Fatalf("ListMultipart(%q): %v", key, err)
		}
		var got []string
		for _, u := range ups {
			if u.Key != key {
				t.Errorf("ListMultipart(%q) lists key %q", key, u.Key)
			}
			if u.Initiated.Before(before) {
				t.Errorf("upload %s initiated %v, before the test started", u.UploadID, u.Initiated)
			}
			got = append(got, u.UploadID)
		}
		sort.Strings(got)
		ids = slices.Sorted(slices.Values(ids))
		if !slices.Equal(got, ids) {
			t.Errorf("ListMultipart(%q) = %v, want %v", key, got, ids)
		}
	}
	check("a/x", want["a/x"]) // three pages of two
	check("a/y", want["a/y"])
	check("none", nil)

	for _, id := range want["a/x"][:4] {
		if err := st.AbortMultipart(ctx, "a/x", id); err != nil {
			t.Fatal(err)
		}
	}
	check("a/x", want["a/x"][4:])
}

// DeleteMany removes keys in batches of MaxDeleteBatch, under the mount
// prefix, and a missing key is no error.
func TestDeleteMany(t *testing.T) {
	st, _ := newStore(t, func(c *Config) { c.Prefix = "pre/" })
	keys := make([]string, 1003)
	g, gctx := errgroup.WithContext(testCtx(t))
	g.SetLimit(32)
	for i := range keys {
		keys[i] = fmt.Sprintf("d/%04d", i)
		g.Go(func() error {
			_, err := st.Upload(gctx, keys[i], bytes.NewReader(nil), 0, PutOptions{})
			return err
		})
	}
	upload(t, st, "keep", []byte("k"), PutOptions{})
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteMany(testCtx(t), append(keys, "d/missing")); err != nil {
		t.Fatalf("DeleteMany: %v", err)
	}
	objs, _, _ := listAll(t, st, "", "", 0)
	if fmt.Sprint(objs) != "[keep]" {
		t.Errorf("left after DeleteMany: %d keys %.80v", len(objs), objs)
	}
}

// TestListCarriesHeadersOnMinIO: once a response said Server: MinIO, a
// listing carries each object's content type and user metadata, as a HEAD
// would (keys with characters that need encoding included); with
// NoListMetadata it carries none.
func TestListCarriesHeadersOnMinIO(t *testing.T) {
	st, _ := newStore(t, nil)
	ctx := testCtx(t)
	meta := map[string]string{"mode": "33188", "uid": "1234", "xattr": "%7B%22user.a%22%3A%22YQ%3D%3D%22%7D"}
	upload(t, st, "d/a b+c", []byte("x"), PutOptions{ContentType: "text/plain", Metadata: meta})
	upload(t, st, "d/plain", []byte("y"), PutOptions{})
	if err := st.CheckBucket(ctx); err != nil {
		t.Fatal(err)
	}
	if !st.listsMetadata() {
		t.Fatal("MinIO was not recognised from its Server header")
	}
	plain, err := st.List(ctx, "d/", "/", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range plain.Objects {
		if o.HeadersListed {
			t.Errorf("%q: headers listed without WithListHeaders", o.Key)
		}
	}
	res := listBothWays(t, st, WithListHeaders(ctx), "d/", "/")
	if len(res.Objects) != 2 {
		t.Fatalf("listed %d objects, want 2", len(res.Objects))
	}
	for _, o := range res.Objects {
		head, err := st.Head(ctx, o.Key)
		if err != nil {
			t.Fatal(err)
		}
		if !o.HeadersListed {
			t.Errorf("%q: listing carried no headers", o.Key)
			continue
		}
		if o.ContentType != head.ContentType {
			t.Errorf("%q: listed content type %q, HEAD says %q", o.Key, o.ContentType, head.ContentType)
		}
		if !maps.Equal(o.Metadata, head.Metadata) {
			t.Errorf("%q: listed metadata %v, HEAD says %v", o.Key, o.Metadata, head.Metadata)
		}
	}

	off, _ := newStore(t, func(c *Config) { c.NoListMetadata = true })
	if err := off.CheckBucket(ctx); err != nil {
		t.Fatal(err)
	}
	upload(t, off, "e", []byte("z"), PutOptions{Metadata: meta})
	res, err = off.List(WithListHeaders(ctx), "", "/", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range res.Objects {
		if o.HeadersListed || o.Metadata != nil {
			t.Errorf("%q: headers listed with NoListMetadata", o.Key)
		}
	}
}

// TestPeekOnMinIO: a peek tells what a HEAD does, with the whole content of
// an object no longer than max, and nothing of a bigger one's; an empty
// object peeks as empty content, a missing key is ErrNotFound.
func TestPeekOnMinIO(t *testing.T) {
	t.Parallel()
	st, _ := newStore(t, nil)
	ctx := testCtx(t)
	small, exact, big := randBytes(t, 4096), randBytes(t, 8192), randBytes(t, 3<<20)
	opts := PutOptions{ContentType: "text/plain", Metadata: map[string]string{"mode": "33188", "uid": "7"}}
	upload(t, st, "small", small, opts)
	upload(t, st, "exact", exact, opts)
	upload(t, st, "big", big, opts)
	upload(t, st, "empty", nil, opts)
	for _, tc := range []struct {
		key  string
		want []byte // nil: no body
	}{
		{"small", small},
		{"exact", exact},
		{"big", nil},
		{"empty", []byte{}},
	} {
		info, body, err := st.Peek(ctx, tc.key, 8192)
		if err != nil {
			t.Fatalf("Peek %s: %v", tc.key, err)
		}
		head, err := st.Head(ctx, tc.key)
		if err != nil {
			t.Fatalf("Head %s: %v", tc.key, err)
		}
		if info.Key != head.Key || info.Size != head.Size || info.ETag != head.ETag || !info.LastModified.Equal(head.LastModified) ||
			info.ContentType != head.ContentType || !maps.Equal(info.Metadata, head.Metadata) {
			t.Errorf("Peek %s = %+v, Head = %+v", tc.key, info, head)
		}
		if (body == nil) != (tc.want == nil) || !bytes.Equal(body, tc.want) {
			t.Errorf("Peek %s body: %d bytes (nil %v), want %d (nil %v)", tc.key, len(body), body == nil, len(tc.want), tc.want == nil)
		}
	}
	if _, _, err := st.Peek(ctx, "missing", 8192); !errors.Is(err, ErrNotFound) {
		t.Errorf("Peek of a missing key: %v, want ErrNotFound", err)
	}
}

func TestRangeTotal(t *testing.T) {
	for in, want := range map[string]int64{"bytes 0-4095/4096": 4096, "bytes 0--1/0": 0, "bytes 100-199/5000": 5000, "": -1, "bytes */12": 12, "bytes 0-1/x": -1, "items 0-1/2": -1} {
		got, ok := rangeTotal(in)
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("rangeTotal(%q) = %d, want %d", in, got, want)
		}
	}
}

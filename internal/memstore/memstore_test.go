package memstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/novitalabs/bucketfs/internal/objstore"
)

var ctx = context.Background()

func read(t *testing.T, s *Store, key string, off, n int64, ifMatch string) ([]byte, error) {
	t.Helper()
	body, err := s.GetRange(ctx, key, off, n, ifMatch)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	return io.ReadAll(body)
}

func TestPutGetHeadETag(t *testing.T) {
	s := New(Options{})
	data := []byte("hello world")
	etag, err := s.Upload(ctx, "a/b", bytes.NewReader(data), int64(len(data)),
		objstore.PutOptions{ContentType: "text/plain", Metadata: map[string]string{"X-Amz-Meta-Mode": "33188"}})
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(data)
	if want := `"` + hex.EncodeToString(sum[:]) + `"`; etag != want {
		t.Errorf("etag %s, want %s", etag, want)
	}
	info, err := s.Head(ctx, "a/b")
	if err != nil || info.Size != 11 || info.ETag != etag || info.ContentType != "text/plain" || info.Metadata["mode"] != "33188" {
		t.Fatalf("Head = %+v, %v", info, err)
	}
	for _, c := range []struct {
		off, n int64
		want   string
		err    error
	}{
		{0, -1, "hello world", nil}, {6, -1, "world", nil}, {6, 100, "world", nil}, {0, 5, "hello", nil},
		{11, 1, "", objstore.ErrInvalidRange}, {20, -1, "", objstore.ErrInvalidRange}, {50, 0, "", nil},
	} {
		got, err := read(t, s, "a/b", c.off, c.n, "")
		if !errors.Is(err, c.err) || string(got) != c.want {
			t.Errorf("GetRange(%d, %d) = %q, %v; want %q, %v", c.off, c.n, got, err, c.want, c.err)
		}
	}
	if _, err := read(t, s, "a/b", 0, 1, `"other"`); !errors.Is(err, objstore.ErrPreconditionFailed) {
		t.Errorf("GetRange with a stale If-Match: %v", err)
	}
	if got, err := read(t, s, "a/b", 0, 1, etag); err != nil || string(got) != "h" {
		t.Errorf("GetRange with the right If-Match: %q %v", got, err)
	}
	if _, err := s.Head(ctx, "missing"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Head of missing key: %v", err)
	}
	if _, err := read(t, s, "missing", 0, 1, ""); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("GetRange of missing key: %v", err)
	}
	// An empty object reads as empty from 0, and fails past it.
	s.Put("empty", nil, objstore.PutOptions{})
	if got, err := read(t, s, "empty", 0, 10, ""); err != nil || len(got) != 0 {
		t.Errorf("empty object: %q %v", got, err)
	}
	if _, err := read(t, s, "empty", 1, 10, ""); !errors.Is(err, objstore.ErrInvalidRange) {
		t.Errorf("empty object past 0: %v", err)
	}
	if err := s.Delete(ctx, "a/b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "a/b"); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	if _, ok := func() ([]byte, bool) { d, _, ok := s.Object("a/b"); return d, ok }(); ok {
		t.Error("deleted object still there")
	}
}

func TestMultipart(t *testing.T) {
	s := New(Options{MinPartSize: 4})
	base := []byte("0123456789")
	baseETag := s.Put("base", base, objstore.PutOptions{})
	id, err := s.CreateMultipart(ctx, "new", objstore.PutOptions{Metadata: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	e1, err := s.UploadPart(ctx, "new", id, 1, strings.NewReader("abcd"), 4)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := s.UploadPartCopy(ctx, "new", id, 2, "base", 2, 5, baseETag)
	if err != nil {
		t.Fatal(err)
	}
	e3, err := s.UploadPart(ctx, "new", id, 3, strings.NewReader("z"), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UploadPartCopy(ctx, "new", id, 4, "base", 0, 1, `"stale"`); !errors.Is(err, objstore.ErrPreconditionFailed) {
		t.Errorf("UploadPartCopy with stale If-Match: %v", err)
	}
	if _, err := s.UploadPartCopy(ctx, "new", id, 4, "base", 8, 5, ""); !errors.Is(err, objstore.ErrInvalidRange) {
		t.Errorf("UploadPartCopy past the source's end: %v", err)
	}
	if _, err := s.UploadPart(ctx, "other", id, 4, strings.NewReader("x"), 1); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("UploadPart under another key: %v", err)
	}
	// A short body is refused.
	if _, err := s.UploadPart(ctx, "new", id, 4, strings.NewReader("x"), 2); err == nil {
		t.Error("UploadPart with a short body succeeded")
	}
	ups, _ := s.ListMultipart(ctx, "ne")
	if len(ups) != 1 || ups[0].UploadID != id || ups[0].Key != "new" || ups[0].Initiated.IsZero() {
		t.Errorf("ListMultipart = %+v", ups)
	}
	// Wrong ETag, and a small part before the last, are refused.
	if _, err := s.CompleteMultipart(ctx, "new", id, []objstore.CompletedPart{{Number: 1, ETag: `"x"`}}); !errors.Is(err, ErrInvalidPart) {
		t.Errorf("Complete with a wrong ETag: %v", err)
	}
	e4, err := s.UploadPart(ctx, "new", id, 4, strings.NewReader("q"), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CompleteMultipart(ctx, "new", id, []objstore.CompletedPart{{Number: 4, ETag: e4}, {Number: 3, ETag: e3}}); !errors.Is(err, ErrEntityTooSmall) {
		t.Errorf("Complete with a small middle part: %v", err)
	}
	etag, err := s.CompleteMultipart(ctx, "new", id, []objstore.CompletedPart{{Number: 3, ETag: e3}, {Number: 1, ETag: e1}, {Number: 2, ETag: e2}})
	if err != nil {
		t.Fatal(err)
	}
	data, info, _ := s.Object("new")
	if string(data) != "abcd23456z" || info.Metadata["k"] != "v" {
		t.Errorf("completed object %q %+v", data, info)
	}
	h := md5.New()
	for _, p := range []string{"abcd", "23456", "z"} {
		sum := md5.Sum([]byte(p))
		h.Write(sum[:])
	}
	if want := fmt.Sprintf(`"%x-3"`, h.Sum(nil)); etag != want || info.ETag != want {
		t.Errorf("multipart etag %s, want %s", etag, want)
	}
	if len(s.Pending()) != 0 {
		t.Errorf("upload still pending after Complete: %v", s.Pending())
	}
	if err := s.AbortMultipart(ctx, "new", id); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Abort of completed upload: %v", err)
	}
	id2, _ := s.CreateMultipart(ctx, "x", objstore.PutOptions{})
	if err := s.AbortMultipart(ctx, "x", id2); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UploadPart(ctx, "x", id2, 1, strings.NewReader("a"), 1); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("UploadPart after Abort: %v", err)
	}
}

func TestListMultipartExactKey(t *testing.T) {
	s := New(Options{ListMultipartExactKey: true})
	for _, k := range []string{"a/x", "a/y"} {
		if _, err := s.CreateMultipart(ctx, k, objstore.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if ups, _ := s.ListMultipart(ctx, "a/"); len(ups) != 0 {
		t.Errorf("prefix listing in exact mode = %v", ups)
	}
	if ups, _ := s.ListMultipart(ctx, "a/x"); len(ups) != 1 {
		t.Errorf("exact listing = %v", ups)
	}
}

func TestCopyMetadata(t *testing.T) {
	s := New(Options{})
	etag := s.Put("src", []byte("data"), objstore.PutOptions{ContentType: "a/b", Metadata: map[string]string{"mode": "1"}})
	if _, err := s.Copy(ctx, "src", "dst1", etag, nil); err != nil {
		t.Fatal(err)
	}
	if _, info, _ := s.Object("dst1"); info.ContentType != "a/b" || info.Metadata["mode"] != "1" {
		t.Errorf("copy keeps metadata: %+v", info)
	}
	if _, err := s.Copy(ctx, "src", "dst2", "", &objstore.PutOptions{Metadata: map[string]string{"uid": "5"}}); err != nil {
		t.Fatal(err)
	}
	if d, info, _ := s.Object("dst2"); string(d) != "data" || info.Metadata["mode"] != "" || info.Metadata["uid"] != "5" {
		t.Errorf("copy replaces metadata: %q %+v", d, info)
	}
	if _, err := s.Copy(ctx, "src", "dst3", `"stale"`, nil); !errors.Is(err, objstore.ErrPreconditionFailed) {
		t.Errorf("copy with stale If-Match: %v", err)
	}
	if _, err := s.Copy(ctx, "nope", "dst3", "", nil); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("copy of missing: %v", err)
	}
}

func TestListPages(t *testing.T) {
	s := New(Options{})
	keys := []string{"", "a", "b/1", "b/2", "c", "d/x/y", "e"}
	for _, k := range keys {
		s.Put(k, []byte(k), objstore.PutOptions{})
	}
	list := func(prefix, delim string, maxKeys int) (names []string, pages int) {
		token := ""
		for {
			res, err := s.List(ctx, prefix, delim, token, maxKeys)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, o := range res.Objects {
				names = append(names, o.Key)
			}
			names = append(names, res.CommonPrefixes...)
			if res.NextToken == "" {
				return names, pages
			}
			token = res.NextToken
		}
	}
	if got, pages := list("", "/", 2); fmt.Sprint(got) != "[a b/ c d/ e]" || pages != 3 {
		t.Errorf("list / by 2 = %v in %d pages", got, pages)
	}
	if got, _ := list("", "", 0); fmt.Sprint(got) != "[a b/1 b/2 c d/x/y e]" {
		t.Errorf("flat list = %v", got)
	}
	if got, _ := list("b/", "/", 1); fmt.Sprint(got) != "[b/1 b/2]" {
		t.Errorf("list b/ = %v", got)
	}
	if got, _ := list("d/", "/", 0); fmt.Sprint(got) != "[d/x/]" {
		t.Errorf("list d/ = %v", got)
	}
}

func TestContextAndStats(t *testing.T) {
	s := New(Options{})
	s.Put("k", make([]byte, 100), objstore.PutOptions{})
	cctx, cancel := context.WithCancel(ctx)
	body, err := s.GetRange(cctx, "k", 10, 50, "")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.ReadAll(body); !errors.Is(err, context.Canceled) {
		t.Errorf("body read after cancel: %v", err)
	}
	if _, err := s.Head(cctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Head with cancelled ctx: %v", err)
	}
	if _, err := s.Upload(cctx, "k2", bytes.NewReader(make([]byte, 5)), 5, objstore.PutOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Upload with cancelled ctx: %v", err)
	}
	if _, err := s.Upload(ctx, "k3", bytes.NewReader(make([]byte, 7)), 7, objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if g := st[objstore.OpGetRange]; g.Calls != 1 || g.BytesReturned != 50 {
		t.Errorf("GetRange stats %+v", g)
	}
	if u := st[objstore.OpUpload]; u.Calls != 2 || u.Errors != 1 || u.BytesSent != 7 {
		t.Errorf("Upload stats %+v", u)
	}
	if tot := st.Total(); tot.Calls != 4 || tot.Errors != 2 {
		t.Errorf("totals %+v", tot)
	}
	s.ResetStats()
	if tot := s.Stats().Total(); tot != (OpStats{}) {
		t.Errorf("after reset %+v", tot)
	}
}

func TestConcurrent(t *testing.T) {
	s := New(Options{MinPartSize: 1})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprint("k", i%3)
			for j := range 50 {
				data := []byte(fmt.Sprint(i, j))
				if _, err := s.Upload(ctx, key, bytes.NewReader(data), int64(len(data)), objstore.PutOptions{}); err != nil {
					t.Error(err)
					return
				}
				if _, err := read(t, s, key, 0, -1, ""); err != nil {
					t.Error(err)
					return
				}
				id, _ := s.CreateMultipart(ctx, key, objstore.PutOptions{})
				e, err := s.UploadPartCopy(ctx, key, id, 1, key, 0, 1, "")
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := s.CompleteMultipart(ctx, key, id, []objstore.CompletedPart{{Number: 1, ETag: e}}); err != nil {
					t.Error(err)
					return
				}
				_, _ = s.List(ctx, "", "/", "", 0)
			}
		}()
	}
	wg.Wait()
}

// TestPeek: a peek is a Head with the content of an object of at most max
// bytes (empty, not nil, for an empty object).
func TestPeek(t *testing.T) {
	s := New(Options{})
	s.Put("small", []byte("hello"), objstore.PutOptions{Metadata: map[string]string{"mode": "33188"}})
	s.Put("empty", nil, objstore.PutOptions{})
	for key, want := range map[string][]byte{"small": []byte("hello"), "empty": {}} {
		info, body, err := s.Peek(ctx, key, 5)
		if err != nil || body == nil || !bytes.Equal(body, want) || info.Size != int64(len(want)) {
			t.Errorf("Peek(%s, 5) = %+v, %q (nil %v), %v", key, info, body, body == nil, err)
		}
	}
	if info, body, err := s.Peek(ctx, "small", 4); err != nil || body != nil || info.Size != 5 || info.Metadata["mode"] != "33188" {
		t.Errorf("Peek of a bigger object = %+v, %q, %v; want its Head, no body", info, body, err)
	}
	if _, _, err := s.Peek(ctx, "missing", 4); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Peek of a missing key: %v", err)
	}
	if n := s.Stats()[objstore.OpPeek].Calls; n != 4 {
		t.Errorf("%d peeks counted, want 4", n)
	}
}

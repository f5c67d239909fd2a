package fs

import (
	"bytes"
	"context"
	"crypto/md5"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/novitalabs/bucketfs/s3backend"
)

// fakeStore is an in-memory ObjectStore for this package's unit tests only.
// The proof that bucketfs works is the MinIO suite in test/.
type fakeStore struct {
	mu      sync.Mutex // guards objs and failPut
	objs    map[string]fakeObj
	failPut error // when set, every upload fails with it
}

type fakeObj struct {
	data  []byte
	meta  map[string]string
	ctype string
	etag  string
	mtime time.Time
}

func newFakeStore() *fakeStore { return &fakeStore{objs: make(map[string]fakeObj)} }

func (s *fakeStore) put(key string, data []byte, opts s3backend.PutOptions) string {
	meta := make(map[string]string, len(opts.Metadata))
	for k, v := range opts.Metadata {
		meta[strings.ToLower(k)] = v
	}
	etag := fmt.Sprintf("%q", fmt.Sprintf("%x", md5.Sum(data)))
	s.objs[key] = fakeObj{data: data, meta: meta, ctype: opts.ContentType, etag: etag, mtime: time.Now()}
	return etag
}

func (s *fakeStore) info(key string, o fakeObj, withMeta bool) s3backend.ObjectInfo {
	info := s3backend.ObjectInfo{Key: key, Size: int64(len(o.data)), ETag: o.etag, LastModified: o.mtime, ContentType: o.ctype}
	if withMeta {
		info.Metadata = o.meta
	}
	return info
}

func (s *fakeStore) Head(ctx context.Context, key string) (s3backend.ObjectInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objs[key]
	if !ok {
		return s3backend.ObjectInfo{}, fmt.Errorf("head %q: %w", key, s3backend.ErrNotFound)
	}
	return s.info(key, o, true), nil
}

func (s *fakeStore) List(ctx context.Context, prefix, delim, token string, maxKeys int) (s3backend.ListResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if maxKeys <= 0 {
		maxKeys = 1000
	}
	keys := make([]string, 0, len(s.objs))
	for k := range s.objs {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var res s3backend.ListResult
	seen := map[string]bool{}
	count := 0
	for _, k := range keys {
		if k <= token {
			continue
		}
		if count == maxKeys {
			res.NextToken = token
			return res, nil
		}
		rest := k[len(prefix):]
		if delim != "" {
			if i := strings.Index(rest, delim); i >= 0 {
				cp := prefix + rest[:i+len(delim)]
				if !seen[cp] {
					seen[cp] = true
					res.CommonPrefixes = append(res.CommonPrefixes, cp)
					count++
				}
				token = k
				continue
			}
		}
		res.Objects = append(res.Objects, s.info(k, s.objs[k], false))
		count++
		token = k
	}
	return res, nil
}

func (s *fakeStore) GetRange(ctx context.Context, key string, off, n int64, ifMatch string) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objs[key]
	if !ok {
		return nil, fmt.Errorf("get %q: %w", key, s3backend.ErrNotFound)
	}
	if ifMatch != "" && ifMatch != o.etag {
		return nil, fmt.Errorf("get %q: %w", key, s3backend.ErrPreconditionFailed)
	}
	if off > int64(len(o.data)) {
		off = int64(len(o.data))
	}
	end := int64(len(o.data))
	if n >= 0 && off+n < end {
		end = off + n
	}
	return io.NopCloser(bytes.NewReader(o.data[off:end])), nil
}

func (s *fakeStore) Upload(ctx context.Context, key string, r io.ReaderAt, size int64, opts s3backend.PutOptions) (string, error) {
	data := make([]byte, size)
	if size > 0 {
		if _, err := r.ReadAt(data, 0); err != nil && err != io.EOF {
			return "", err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failPut != nil {
		return "", fmt.Errorf("put %q: %w", key, s.failPut)
	}
	return s.put(key, data, opts), nil
}

func (s *fakeStore) CreateMultipart(context.Context, string, s3backend.PutOptions) (string, error) {
	return "", s3backend.ErrNotSupported
}
func (s *fakeStore) UploadPart(context.Context, string, string, int32, io.ReadSeeker, int64) (string, error) {
	return "", s3backend.ErrNotSupported
}
func (s *fakeStore) UploadPartCopy(context.Context, string, string, int32, string, int64, int64, string) (string, error) {
	return "", s3backend.ErrNotSupported
}
func (s *fakeStore) CompleteMultipart(context.Context, string, string, []s3backend.CompletedPart) (string, error) {
	return "", s3backend.ErrNotSupported
}
func (s *fakeStore) AbortMultipart(context.Context, string, string) error { return nil }
func (s *fakeStore) ListMultipart(context.Context, string) ([]s3backend.MultipartUpload, error) {
	return nil, nil
}

func (s *fakeStore) Copy(ctx context.Context, src, dst, ifMatch string, opts *s3backend.PutOptions) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objs[src]
	if !ok {
		return "", fmt.Errorf("copy %q: %w", src, s3backend.ErrNotFound)
	}
	if ifMatch != "" && ifMatch != o.etag {
		return "", fmt.Errorf("copy %q: %w", src, s3backend.ErrPreconditionFailed)
	}
	po := s3backend.PutOptions{ContentType: o.ctype, Metadata: o.meta}
	if opts != nil {
		po = *opts
	}
	return s.put(dst, append([]byte(nil), o.data...), po), nil
}

func (s *fakeStore) Delete(ctx context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.objs, key)
	return nil
}

func (s *fakeStore) DeleteMany(ctx context.Context, keys []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		delete(s.objs, k)
	}
	return nil
}

// putObject is put for tests, with the lock.
func (s *fakeStore) putObject(key string, data []byte, opts s3backend.PutOptions) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.put(key, data, opts)
}

func (s *fakeStore) get(key string) (fakeObj, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objs[key]
	return o, ok
}

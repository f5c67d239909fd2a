// Package memstore is an in-memory objstore.ObjectStore with S3's rules
// (ETags, If-Match, ranges, multipart part sizes and numbers) and counters
// of requests and bytes per operation, so that code built on the store can
// be unit-tested byte-exactly and held to a byte budget without a network.
//
// Object contents are immutable once stored (every write stores a new
// slice), which lets readers use them without holding the lock.
package memstore

import (
	"bytes"
	"cmp"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/novitalabs/bucketfs/internal/objstore"
)

// Errors for multipart misuse that S3 reports with codes no objstore
// sentinel stands for (EntityTooSmall, InvalidPart, InvalidArgument).
var (
	ErrEntityTooSmall = errors.New("part smaller than the minimum part size (EntityTooSmall)")
	ErrInvalidPart    = errors.New("part missing or ETag mismatch (InvalidPart)")
	ErrInvalidArg     = errors.New("invalid argument")
)

// Options tune a Store.
type Options struct {
	// MinPartSize is the minimum size of every part of a multipart upload
	// but the last (0: objstore.MinPartSize, S3's 5 MiB). Tests lower it
	// to exercise many parts with little data.
	MinPartSize int64
	// ListMultipartExactKey makes ListMultipart return only the uploads
	// whose key equals the prefix, as MinIO does.
	ListMultipartExactKey bool
}

// OpStats counts the calls of one operation. BytesSent are the request
// body bytes the store received (Upload, UploadPart), BytesReturned the
// body bytes it answered (the whole range a GetRange returned, whether or
// not the caller read it all, as a server would send it), BytesCopied the
// bytes copied server-side (UploadPartCopy, Copy).
type OpStats struct {
	Calls         int64
	Errors        int64
	BytesSent     int64
	BytesReturned int64
	BytesCopied   int64
}

// Stats are the counters by operation.
type Stats map[objstore.Op]OpStats

// Total sums the counters of every operation.
func (s Stats) Total() OpStats {
	var t OpStats
	for _, o := range s {
		t.Calls += o.Calls
		t.Errors += o.Errors
		t.BytesSent += o.BytesSent
		t.BytesReturned += o.BytesReturned
		t.BytesCopied += o.BytesCopied
	}
	return t
}

// Store is the in-memory store. It is safe for concurrent use.
type Store struct {
	opts Options

	mu      sync.Mutex         // guards everything below
	objs    map[string]*object // by key
	uploads map[string]*upload // by upload id
	nextID  int                // for upload ids
	stats   Stats
}

var _ objstore.ObjectStore = (*Store)(nil)

type object struct {
	data     []byte // never modified once stored
	etag     string
	ctype    string
	meta     map[string]string
	modified time.Time
}

type upload struct {
	key       string
	opts      objstore.PutOptions
	initiated time.Time
	parts     map[int32]part
}

type part struct {
	data []byte
	etag string
}

// New returns an empty store.
func New(opts Options) *Store {
	if opts.MinPartSize <= 0 {
		opts.MinPartSize = objstore.MinPartSize
	}
	return &Store{opts: opts, objs: map[string]*object{}, uploads: map[string]*upload{}, stats: Stats{}}
}

// Stats returns a snapshot of the counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(Stats, len(s.stats))
	for k, v := range s.stats {
		out[k] = v
	}
	return out
}

// ResetStats zeroes the counters.
func (s *Store) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = Stats{}
}

// count records one call; the caller holds mu.
func (s *Store) count(op objstore.Op, err error, sent, returned, copied int64) {
	st := s.stats[op]
	st.Calls++
	if err != nil {
		st.Errors++
	}
	st.BytesSent += sent
	st.BytesReturned += returned
	st.BytesCopied += copied
	s.stats[op] = st
}

// fail records a failed call and returns its error; the caller holds mu.
func (s *Store) fail(op objstore.Op, key string, err error) error {
	e := &objstore.Error{Op: op, Key: key, Err: err}
	s.count(op, e, 0, 0, 0)
	return e
}

// failCtx is fail for a context error, taken before the lock.
func (s *Store) failCtx(op objstore.Op, key string, err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fail(op, key, err)
}

// Put stores an object directly, without counting a request: test setup.
func (s *Store) Put(key string, data []byte, opts objstore.PutOptions) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.store(key, bytes.Clone(data), opts, etagOf(data))
}

// Object returns the content and description of key, without counting a
// request: test checks. The content must not be modified.
func (s *Store) Object(key string) ([]byte, objstore.ObjectInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objs[key]
	if !ok {
		return nil, objstore.ObjectInfo{}, false
	}
	return o.data, o.info(key, true), true
}

// Keys returns every key, sorted, without counting a request.
func (s *Store) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(func(yield func(string) bool) {
		for k := range s.objs {
			if !yield(k) {
				return
			}
		}
	})
}

// Pending returns the multipart uploads in progress, without counting a
// request: tests check that failures abort what they started.
func (s *Store) Pending() []objstore.MultipartUpload {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending("", false)
}

// store installs an object; the caller holds mu and gives up data.
func (s *Store) store(key string, data []byte, opts objstore.PutOptions, etag string) string {
	meta := make(map[string]string, len(opts.Metadata))
	for k, v := range opts.Metadata {
		meta[strings.TrimPrefix(strings.ToLower(k), "x-amz-meta-")] = v
	}
	s.objs[key] = &object{data: data, etag: etag, ctype: opts.ContentType, meta: meta, modified: time.Now()}
	return etag
}

func (o *object) info(key string, withMeta bool) objstore.ObjectInfo {
	info := objstore.ObjectInfo{Key: key, Size: int64(len(o.data)), ETag: o.etag, LastModified: o.modified}
	if withMeta {
		info.ContentType = o.ctype
		info.Metadata = maps(o.meta)
	}
	return info
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// etagOf is S3's ETag of a single PUT: the quoted hex MD5 of the content.
func etagOf(data []byte) string {
	sum := md5.Sum(data)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

// multipartETag is S3's ETag of a completed multipart upload: the MD5 of
// the concatenated binary MD5s of the parts, then "-" and the part count.
func multipartETag(parts [][]byte) string {
	h := md5.New()
	for _, p := range parts {
		sum := md5.Sum(p)
		h.Write(sum[:])
	}
	return `"` + hex.EncodeToString(h.Sum(nil)) + "-" + strconv.Itoa(len(parts)) + `"`
}

// Head implements objstore.ObjectStore.
func (s *Store) Head(ctx context.Context, key string) (objstore.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return objstore.ObjectInfo{}, s.failCtx(objstore.OpHead, key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objs[key]
	if !ok {
		return objstore.ObjectInfo{}, s.fail(objstore.OpHead, key, objstore.ErrNotFound)
	}
	s.count(objstore.OpHead, nil, 0, 0, 0)
	return o.info(key, true), nil
}

// Peek implements objstore.ObjectStore.
func (s *Store) Peek(ctx context.Context, key string, max int64) (objstore.ObjectInfo, []byte, error) {
	if err := ctx.Err(); err != nil {
		return objstore.ObjectInfo{}, nil, s.failCtx(objstore.OpPeek, key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objs[key]
	if !ok {
		return objstore.ObjectInfo{}, nil, s.fail(objstore.OpPeek, key, objstore.ErrNotFound)
	}
	var body []byte
	if int64(len(o.data)) <= max {
		body = append([]byte{}, o.data...)
	}
	s.count(objstore.OpPeek, nil, 0, int64(len(body)), 0)
	return o.info(key, true), body, nil
}

// List implements objstore.ObjectStore. The token is the last key or common
// prefix of the previous page. As in s3backend, the key "" (the mount
// root's own marker) is never listed.
func (s *Store) List(ctx context.Context, prefix, delimiter, token string, maxKeys int) (objstore.ListResult, error) {
	if err := ctx.Err(); err != nil {
		return objstore.ListResult{}, s.failCtx(objstore.OpList, prefix, err)
	}
	if maxKeys <= 0 || maxKeys > 1000 {
		maxKeys = 1000
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Entries in key order: objects and (deduplicated) common prefixes.
	type entry struct {
		name   string
		prefix bool
	}
	var entries []entry
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range s.objs {
			if k != "" && strings.HasPrefix(k, prefix) && !yield(k) {
				return
			}
		}
	}) {
		if delimiter != "" {
			if i := strings.Index(k[len(prefix):], delimiter); i >= 0 {
				cp := k[:len(prefix)+i+len(delimiter)]
				if len(entries) == 0 || entries[len(entries)-1].name != cp {
					entries = append(entries, entry{cp, true})
				}
				continue
			}
		}
		entries = append(entries, entry{k, false})
	}
	var res objstore.ListResult
	n := 0
	for _, e := range entries {
		if token != "" && e.name <= token {
			continue
		}
		if n == maxKeys {
			res.NextToken = token
			break
		}
		if e.prefix {
			res.CommonPrefixes = append(res.CommonPrefixes, e.name)
		} else {
			res.Objects = append(res.Objects, s.objs[e.name].info(e.name, false))
		}
		token = e.name
		n++
	}
	s.count(objstore.OpList, nil, 0, 0, 0)
	return res, nil
}

// GetRange implements objstore.ObjectStore with s3backend's semantics:
// n == 0 returns an empty body without any check; a range starting at or
// past the end of a non-empty object (or past 0 of an empty one) fails with
// ErrInvalidRange; a range running past the end is clamped. The body fails
// with ctx's error once ctx is done.
func (s *Store) GetRange(ctx context.Context, key string, off, n int64, ifMatch string) (io.ReadCloser, error) {
	const op = objstore.OpGetRange
	if n == 0 {
		s.mu.Lock()
		s.count(op, nil, 0, 0, 0)
		s.mu.Unlock()
		return io.NopCloser(strings.NewReader("")), nil
	}
	if err := ctx.Err(); err != nil {
		return nil, s.failCtx(op, key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if off < 0 {
		return nil, s.fail(op, key, fmt.Errorf("%w: negative offset %d", ErrInvalidArg, off))
	}
	o, ok := s.objs[key]
	if !ok {
		return nil, s.fail(op, key, objstore.ErrNotFound)
	}
	if ifMatch != "" && ifMatch != o.etag {
		return nil, s.fail(op, key, objstore.ErrPreconditionFailed)
	}
	size := int64(len(o.data))
	if off >= size && !(off == 0 && size == 0) {
		return nil, s.fail(op, key, objstore.ErrInvalidRange)
	}
	end := size
	if n > 0 && off+n < end {
		end = off + n
	}
	s.count(op, nil, 0, end-off, 0)
	return &ctxBody{ctx: ctx, r: bytes.NewReader(o.data[off:end])}, nil
}

// ctxBody is a body that stops with ctx's error once ctx is done, as a
// network body would.
type ctxBody struct {
	ctx context.Context
	r   *bytes.Reader
}

func (b *ctxBody) Read(p []byte) (int, error) {
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	return b.r.Read(p)
}

func (b *ctxBody) Close() error { return nil }

// readBody reads size bytes from r (a short body is an error, as S3 would
// answer IncompleteBody), checking ctx between chunks.
func readBody(ctx context.Context, r io.Reader, size int64) ([]byte, error) {
	if size < 0 {
		return nil, fmt.Errorf("%w: negative size %d", ErrInvalidArg, size)
	}
	buf := make([]byte, size)
	const chunk = 1 << 20
	for done := int64(0); done < size; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m, err := io.ReadFull(r, buf[done:min(done+chunk, size)])
		done += int64(m)
		if err != nil {
			return nil, fmt.Errorf("read request body at %d of %d: %w", done, size, err)
		}
	}
	return buf, nil
}

// receive reads a request body of size bytes (at most limit) without the
// lock, and counts the failure if it cannot.
func (s *Store) receive(ctx context.Context, op objstore.Op, key string, r io.Reader, size, limit int64) ([]byte, error) {
	if size > limit {
		return nil, s.failCtx(op, key, objstore.ErrTooLarge)
	}
	data, err := readBody(ctx, r, size)
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return nil, s.failCtx(op, key, err)
	}
	return data, nil
}

// Upload implements objstore.ObjectStore as one PUT (whatever the size: the
// ETag is the plain MD5).
func (s *Store) Upload(ctx context.Context, key string, r io.ReaderAt, size int64, opts objstore.PutOptions) (string, error) {
	const op = objstore.OpUpload
	data, err := s.receive(ctx, op, key, io.NewSectionReader(r, 0, size), size, objstore.MaxObjectSize)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count(op, nil, size, 0, 0)
	return s.store(key, data, opts, etagOf(data)), nil
}

// CreateMultipart implements objstore.ObjectStore.
func (s *Store) CreateMultipart(ctx context.Context, key string, opts objstore.PutOptions) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", s.failCtx(objstore.OpCreateMultipart, key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	id := "upload-" + strconv.Itoa(s.nextID)
	s.uploads[id] = &upload{key: key, opts: objstore.PutOptions{ContentType: opts.ContentType, Metadata: maps(opts.Metadata)},
		initiated: time.Now(), parts: map[int32]part{}}
	s.count(objstore.OpCreateMultipart, nil, 0, 0, 0)
	return id, nil
}

// uploadFor returns the upload id of key; the caller holds mu.
func (s *Store) uploadFor(key, uploadID string, number int32) (*upload, error) {
	u, ok := s.uploads[uploadID]
	if !ok || u.key != key {
		return nil, objstore.ErrNotFound // NoSuchUpload
	}
	if number < 1 || number > objstore.MaxParts {
		return nil, fmt.Errorf("%w: part number %d", ErrInvalidArg, number)
	}
	return u, nil
}

// UploadPart implements objstore.ObjectStore.
func (s *Store) UploadPart(ctx context.Context, key, uploadID string, number int32, r io.ReadSeeker, size int64) (string, error) {
	const op = objstore.OpUploadPart
	data, err := s.receive(ctx, op, key, r, size, objstore.MaxPartSize)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.uploadFor(key, uploadID, number)
	if err != nil {
		return "", s.fail(op, key, err)
	}
	etag := etagOf(data)
	u.parts[number] = part{data: data, etag: etag}
	s.count(op, nil, size, 0, 0)
	return etag, nil
}

// UploadPartCopy implements objstore.ObjectStore. The source range must lie
// within the source object (else ErrInvalidRange, as S3 answers).
func (s *Store) UploadPartCopy(ctx context.Context, key, uploadID string, number int32, srcKey string, off, n int64, srcIfMatch string) (string, error) {
	const op = objstore.OpUploadPartCopy
	if err := ctx.Err(); err != nil {
		return "", s.failCtx(op, key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.uploadFor(key, uploadID, number)
	if err != nil {
		return "", s.fail(op, key, err)
	}
	if off < 0 || n <= 0 {
		return "", s.fail(op, key, fmt.Errorf("%w: source range off=%d n=%d", ErrInvalidArg, off, n))
	}
	if n > objstore.MaxPartSize {
		return "", s.fail(op, key, objstore.ErrTooLarge)
	}
	src, ok := s.objs[srcKey]
	if !ok {
		return "", s.fail(op, srcKey, objstore.ErrNotFound)
	}
	if srcIfMatch != "" && srcIfMatch != src.etag {
		return "", s.fail(op, srcKey, objstore.ErrPreconditionFailed)
	}
	if off+n > int64(len(src.data)) {
		return "", s.fail(op, srcKey, objstore.ErrInvalidRange)
	}
	data := src.data[off : off+n : off+n] // shared: contents are immutable
	etag := etagOf(data)
	u.parts[number] = part{data: data, etag: etag}
	s.count(op, nil, 0, 0, n)
	return etag, nil
}

// CompleteMultipart implements objstore.ObjectStore. As S3 does, it checks
// that every named part was uploaded with that ETag, that part numbers do
// not repeat and that every part but the last has the minimum size. Parts
// may be given in any order (s3backend sorts them before sending).
func (s *Store) CompleteMultipart(ctx context.Context, key, uploadID string, parts []objstore.CompletedPart) (string, error) {
	const op = objstore.OpCompleteMultipart
	if err := ctx.Err(); err != nil {
		return "", s.failCtx(op, key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.uploadFor(key, uploadID, 1)
	if err != nil {
		return "", s.fail(op, key, err)
	}
	if len(parts) == 0 {
		return "", s.fail(op, key, fmt.Errorf("%w: no parts", ErrInvalidArg))
	}
	sorted := slices.SortedFunc(slices.Values(parts), func(a, b objstore.CompletedPart) int { return cmp.Compare(a.Number, b.Number) })
	datas := make([][]byte, 0, len(sorted))
	var size int64
	for i, p := range sorted {
		if i > 0 && p.Number == sorted[i-1].Number {
			return "", s.fail(op, key, fmt.Errorf("%w: part %d given twice", ErrInvalidArg, p.Number))
		}
		up, ok := u.parts[p.Number]
		if !ok || up.etag != p.ETag {
			return "", s.fail(op, key, fmt.Errorf("%w: part %d", ErrInvalidPart, p.Number))
		}
		if i < len(sorted)-1 && int64(len(up.data)) < s.opts.MinPartSize {
			return "", s.fail(op, key, fmt.Errorf("%w: part %d has %d bytes", ErrEntityTooSmall, p.Number, len(up.data)))
		}
		datas = append(datas, up.data)
		size += int64(len(up.data))
	}
	if size > objstore.MaxObjectSize {
		return "", s.fail(op, key, objstore.ErrTooLarge)
	}
	etag := multipartETag(datas)
	delete(s.uploads, uploadID)
	s.count(op, nil, 0, 0, 0)
	return s.store(key, bytes.Join(datas, nil), u.opts, etag), nil
}

// AbortMultipart implements objstore.ObjectStore. An unknown upload fails
// with ErrNotFound, as in S3.
func (s *Store) AbortMultipart(ctx context.Context, key, uploadID string) error {
	const op = objstore.OpAbortMultipart
	if err := ctx.Err(); err != nil {
		return s.failCtx(op, key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.uploadFor(key, uploadID, 1); err != nil {
		return s.fail(op, key, err)
	}
	delete(s.uploads, uploadID)
	s.count(op, nil, 0, 0, 0)
	return nil
}

// ListMultipart implements objstore.ObjectStore: uploads sorted by key, then
// by initiation (ties by id).
func (s *Store) ListMultipart(ctx context.Context, prefix string) ([]objstore.MultipartUpload, error) {
	if err := ctx.Err(); err != nil {
		return nil, s.failCtx(objstore.OpListMultipart, prefix, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count(objstore.OpListMultipart, nil, 0, 0, 0)
	return s.pending(prefix, s.opts.ListMultipartExactKey), nil
}

// pending lists the uploads under prefix; the caller holds mu.
func (s *Store) pending(prefix string, exact bool) []objstore.MultipartUpload {
	var out []objstore.MultipartUpload
	for id, u := range s.uploads {
		if (exact && u.key == prefix) || (!exact && strings.HasPrefix(u.key, prefix)) {
			out = append(out, objstore.MultipartUpload{Key: u.key, UploadID: id, Initiated: u.initiated})
		}
	}
	slices.SortFunc(out, func(a, b objstore.MultipartUpload) int {
		return cmp.Or(strings.Compare(a.Key, b.Key), a.Initiated.Compare(b.Initiated), strings.Compare(a.UploadID, b.UploadID))
	})
	return out
}

// Copy implements objstore.ObjectStore. With opts == nil the content type
// and metadata are copied, otherwise replaced. The ETag is that of the
// copied content as one PUT.
func (s *Store) Copy(ctx context.Context, src, dst string, srcIfMatch string, opts *objstore.PutOptions) (string, error) {
	const op = objstore.OpCopy
	if err := ctx.Err(); err != nil {
		return "", s.failCtx(op, dst, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objs[src]
	if !ok {
		return "", s.fail(op, src, objstore.ErrNotFound)
	}
	if srcIfMatch != "" && srcIfMatch != o.etag {
		return "", s.fail(op, src, objstore.ErrPreconditionFailed)
	}
	put := objstore.PutOptions{ContentType: o.ctype, Metadata: o.meta}
	if opts != nil {
		put = *opts
	}
	s.count(op, nil, 0, 0, int64(len(o.data)))
	return s.store(dst, o.data, put, etagOf(o.data)), nil
}

// DeleteMany implements objstore.ObjectStore: one counted call per batch
// of objstore.MaxDeleteBatch keys, as S3's DeleteObjects.
func (s *Store) DeleteMany(ctx context.Context, keys []string) error {
	for batch := range slices.Chunk(keys, objstore.MaxDeleteBatch) {
		if err := ctx.Err(); err != nil {
			return s.failCtx(objstore.OpDeleteMany, batch[0], err)
		}
		s.mu.Lock()
		for _, k := range batch {
			delete(s.objs, k)
		}
		s.count(objstore.OpDeleteMany, nil, 0, 0, 0)
		s.mu.Unlock()
	}
	return nil
}

// Delete implements objstore.ObjectStore; a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return s.failCtx(objstore.OpDelete, key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.objs, key)
	s.count(objstore.OpDelete, nil, 0, 0, 0)
	return nil
}

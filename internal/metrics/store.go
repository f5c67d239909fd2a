package metrics

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/novitalabs/bucketfs/s3backend"
)

// Operation labels of bucketfs_s3_requests_total, one per ObjectStore
// method.
const (
	opHead              = "head"
	opList              = "list"
	opGet               = "get"
	opUpload            = "upload"
	opCreateMultipart   = "create_multipart"
	opUploadPart        = "upload_part"
	opUploadPartCopy    = "upload_part_copy"
	opCompleteMultipart = "complete_multipart"
	opAbortMultipart    = "abort_multipart"
	opListMultipart     = "list_multipart"
	opCopy              = "copy"
	opDelete            = "delete"
	opDeleteMany        = "delete_many"
)

// InstrumentStore wraps s so that every call is counted in Default.
func InstrumentStore(s s3backend.ObjectStore) s3backend.ObjectStore {
	return Default.InstrumentStore(s)
}

// InstrumentStore wraps s so that every call is counted by operation and
// outcome and timed, body bytes are counted as they are read, and uploads
// in progress are tracked.
func (m *Metrics) InstrumentStore(s s3backend.ObjectStore) s3backend.ObjectStore {
	return &store{next: s, m: m}
}

// store is the instrumenting decorator.
type store struct {
	next s3backend.ObjectStore
	m    *Metrics
}

// observe records one finished call.
func (s *store) observe(op string, start time.Time, err error) {
	s.m.requests.WithLabelValues(op, outcome(err)).Inc()
	s.m.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

// Uploaded bytes are counted as the size of what the store accepted, not by
// counting reads of the caller's io.ReaderAt: the SDK reads a body more than
// once (to sign it over plain HTTP, to checksum it, again on every retry),
// so the reads would overstate the traffic by a varying factor. Downloads
// are counted through the body, because a reader may stop early.

func (s *store) Head(ctx context.Context, key string) (s3backend.ObjectInfo, error) {
	start := time.Now()
	oi, err := s.next.Head(ctx, key)
	s.observe(opHead, start, err)
	return oi, err
}

func (s *store) Peek(ctx context.Context, key string, max int64) (s3backend.ObjectInfo, []byte, error) {
	start := time.Now()
	oi, body, err := s.next.Peek(ctx, key, max)
	// On the wire it is a GET.
	s.observe(opGet, start, err)
	s.m.downloadBytes.Add(float64(len(body)))
	return oi, body, err
}

func (s *store) List(ctx context.Context, prefix, delimiter, token string, maxKeys int) (s3backend.ListResult, error) {
	start := time.Now()
	lr, err := s.next.List(ctx, prefix, delimiter, token, maxKeys)
	s.observe(opList, start, err)
	return lr, err
}

func (s *store) GetRange(ctx context.Context, key string, off, n int64, ifMatch string) (io.ReadCloser, error) {
	start := time.Now()
	body, err := s.next.GetRange(ctx, key, off, n, ifMatch)
	s.observe(opGet, start, err)
	if err != nil {
		return body, err
	}
	return &countingBody{ReadCloser: body, m: s.m}, nil
}

func (s *store) Upload(ctx context.Context, key string, r io.ReaderAt, size int64, opts s3backend.PutOptions) (string, error) {
	s.m.uploads.Inc()
	defer s.m.uploads.Dec()
	start := time.Now()
	etag, err := s.next.Upload(ctx, key, r, size, opts)
	s.observe(opUpload, start, err)
	if err == nil {
		s.m.uploadBytes.Add(float64(size))
	}
	return etag, err
}

func (s *store) CreateMultipart(ctx context.Context, key string, opts s3backend.PutOptions) (string, error) {
	start := time.Now()
	id, err := s.next.CreateMultipart(ctx, key, opts)
	s.observe(opCreateMultipart, start, err)
	return id, err
}

func (s *store) UploadPart(ctx context.Context, key, uploadID string, number int32, r io.ReadSeeker, size int64) (string, error) {
	start := time.Now()
	etag, err := s.next.UploadPart(ctx, key, uploadID, number, r, size)
	s.observe(opUploadPart, start, err)
	if err == nil {
		s.m.uploadBytes.Add(float64(size))
	}
	return etag, err
}

func (s *store) UploadPartCopy(ctx context.Context, key, uploadID string, number int32, srcKey string, off, n int64, srcIfMatch string) (string, error) {
	start := time.Now()
	etag, err := s.next.UploadPartCopy(ctx, key, uploadID, number, srcKey, off, n, srcIfMatch)
	s.observe(opUploadPartCopy, start, err)
	return etag, err
}

func (s *store) CompleteMultipart(ctx context.Context, key, uploadID string, parts []s3backend.CompletedPart) (string, error) {
	start := time.Now()
	etag, err := s.next.CompleteMultipart(ctx, key, uploadID, parts)
	s.observe(opCompleteMultipart, start, err)
	return etag, err
}

func (s *store) AbortMultipart(ctx context.Context, key, uploadID string) error {
	start := time.Now()
	err := s.next.AbortMultipart(ctx, key, uploadID)
	s.observe(opAbortMultipart, start, err)
	return err
}

func (s *store) ListMultipart(ctx context.Context, prefix string) ([]s3backend.MultipartUpload, error) {
	start := time.Now()
	ups, err := s.next.ListMultipart(ctx, prefix)
	s.observe(opListMultipart, start, err)
	return ups, err
}

func (s *store) Copy(ctx context.Context, src, dst string, srcIfMatch string, opts *s3backend.PutOptions) (string, error) {
	start := time.Now()
	etag, err := s.next.Copy(ctx, src, dst, srcIfMatch, opts)
	s.observe(opCopy, start, err)
	return etag, err
}

func (s *store) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := s.next.Delete(ctx, key)
	s.observe(opDelete, start, err)
	return err
}

func (s *store) DeleteMany(ctx context.Context, keys []string) error {
	start := time.Now()
	err := s.next.DeleteMany(ctx, keys)
	s.observe(opDeleteMany, start, err)
	return err
}

// countingBody counts the bytes read from an object body. It embeds only
// io.ReadCloser, so a WriteTo of the SDK's body cannot bypass Read.
type countingBody struct {
	io.ReadCloser
	m    *Metrics
	once sync.Once
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.m.downloadBytes.Add(float64(n))
	}
	return n, err
}

func (b *countingBody) Close() error {
	var err error
	b.once.Do(func() { err = b.ReadCloser.Close() })
	return err
}

// outcomeSentinels are the classes of failure worth telling apart on a
// dashboard, in the order they are tested.
var outcomeSentinels = []struct {
	err  error
	name string
}{
	{s3backend.ErrNotFound, "not_found"},
	{s3backend.ErrNoSuchBucket, "no_such_bucket"},
	{s3backend.ErrPreconditionFailed, "precondition_failed"},
	{s3backend.ErrInvalidRange, "invalid_range"},
	{s3backend.ErrAccessDenied, "access_denied"},
	{s3backend.ErrBadCredentials, "bad_credentials"},
	{s3backend.ErrThrottled, "throttled"},
	{s3backend.ErrUnreachable, "unreachable"},
	{s3backend.ErrTooLarge, "too_large"},
	{s3backend.ErrNotSupported, "not_supported"},
	{s3backend.ErrConflict, "conflict"},
	{s3backend.ErrInvalidKey, "invalid_key"},
	{context.Canceled, "canceled"},
	{context.DeadlineExceeded, "timeout"},
}

// outcome names the result of a call: "ok" or a bounded set of error
// classes (never the message, which carries keys).
func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	for _, o := range outcomeSentinels {
		if errors.Is(err, o.err) {
			return o.name
		}
	}
	return "error"
}

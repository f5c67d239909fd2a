// Package objstore holds the contract between bucketfs and an object store:
// the ObjectStore interface, the types it exchanges and the sentinel errors
// its implementations wrap. It has no AWS dependency, so that in-memory and
// fault-injecting stores (internal/memstore, internal/faultstore) and the
// code built on them can be tested without an SDK, a network or root.
//
// s3backend implements ObjectStore over aws-sdk-go-v2 and re-exports these
// names as aliases.
package objstore

import (
	"context"
	"errors"
	"io"
	"strconv"
	"time"
)

// Sentinel errors. Every error returned by an ObjectStore wraps one of these
// (or a context error) together with the operation and key, so that callers
// match them with errors.Is and never by message.
var (
	// ErrNotFound: the key (or upload id) does not exist (404, NoSuchKey, NotFound, NoSuchUpload).
	ErrNotFound = errors.New("object not found")
	// ErrNoSuchBucket: the bucket does not exist.
	ErrNoSuchBucket = errors.New("bucket does not exist")
	// ErrAccessDenied: the request was refused for lack of permission (403 AccessDenied).
	ErrAccessDenied = errors.New("access denied")
	// ErrBadCredentials: the credentials were rejected (InvalidAccessKeyId, SignatureDoesNotMatch, ExpiredToken).
	ErrBadCredentials = errors.New("credentials rejected")
	// ErrPreconditionFailed: an If-Match condition failed (412): the object changed.
	ErrPreconditionFailed = errors.New("object changed (precondition failed)")
	// ErrInvalidRange: a ranged read started at or past the end of the object (416).
	ErrInvalidRange = errors.New("invalid range")
	// ErrThrottled: the store asked us to slow down and retries ran out (503 SlowDown, 429).
	ErrThrottled = errors.New("throttled by the store")
	// ErrUnreachable: the endpoint could not be reached (DNS, connection refused, TLS failure).
	ErrUnreachable = errors.New("endpoint unreachable")
	// ErrTooLarge: the object or part is larger than the store accepts (EntityTooLarge).
	ErrTooLarge = errors.New("object too large")
	// ErrNotSupported: the store does not implement the operation (501 NotImplemented).
	ErrNotSupported = errors.New("operation not supported by the store")
	// ErrConflict: the key conflicts with another (MinIO refuses an object "a" beside "a/b").
	ErrConflict = errors.New("key conflicts with an existing object or prefix")
	// ErrInvalidKey: the store refuses the key itself (KeyTooLongError,
	// XMinioInvalidObjectName; MinIO answers a HEAD of a key with a path
	// element over 255 bytes with a bare 400).
	ErrInvalidKey = errors.New("key refused by the store (too long or invalid)")
)

// S3's limits on multipart uploads, shared by every implementation and by
// the code that plans uploads.
const (
	// MinPartSize is the minimum size of every part but the last.
	MinPartSize = 5 << 20
	// MaxPartSize is the maximum size of one part.
	MaxPartSize = 5 << 30
	// MaxParts is the maximum number of parts of one upload.
	MaxParts = 10000
	// MaxObjectSize is the largest object S3 stores (5 TiB).
	MaxObjectSize = 5 << 40
)

// ObjectInfo describes one object. Metadata holds the user metadata
// (x-amz-meta-*) with the prefix stripped and names lower-cased, e.g.
// "mode", "uid", "gid", "mtime". List results carry no Metadata (S3 does not
// return it in listings); Head results do.
type ObjectInfo struct {
	Key          string // relative to the mount prefix
	Size         int64
	ETag         string // as returned by S3, including the quotes
	LastModified time.Time
	ContentType  string
	Metadata     map[string]string
	// HeadersListed (listings only): the store's listing carried the
	// object's content type and user metadata (ContentType, Metadata),
	// all that a HEAD would tell the filesystem.
	HeadersListed bool
}

// ListResult is one page of a ListObjectsV2 call.
type ListResult struct {
	Objects        []ObjectInfo // keys relative to the mount prefix; Metadata only with HeadersListed
	CommonPrefixes []string     // relative to the mount prefix, each ending with the delimiter
	NextToken      string       // empty when this is the last page
}

// PutOptions are the headers written with a new object.
type PutOptions struct {
	ContentType string
	Metadata    map[string]string // without the x-amz-meta- prefix
	// PartCopies (CreateMultipart only): the upload will have
	// UploadPartCopy parts, which some stores refuse in an upload made
	// with a checksum algorithm.
	PartCopies bool
}

// CompletedPart names one uploaded part of a multipart upload.
type CompletedPart struct {
	Number int32
	ETag   string
}

// MultipartUpload is one multipart upload that was created and neither
// completed nor aborted.
type MultipartUpload struct {
	Key       string // relative to the mount prefix
	UploadID  string
	Initiated time.Time
}

// ObjectStore is the filesystem's view of a bucket. Implementations are safe
// for concurrent use. Keys are relative to the mount prefix. Every method
// honours ctx for cancellation and deadlines.
type ObjectStore interface {
	// Head returns the object's size, ETag and user metadata.
	Head(ctx context.Context, key string) (ObjectInfo, error)

	// Peek returns what Head returns and, when the object holds at most max
	// bytes, its whole content (an empty, non-nil slice for an empty
	// object); body is nil for a bigger object. It is one request where a
	// HEAD and then a GET are two round trips: a lookup that peeks has the
	// bytes of a small file before its first read. An error other than
	// ErrNotFound says nothing about the object (a store that refuses the
	// request a HEAD would answer): callers fall back to Head.
	Peek(ctx context.Context, key string, max int64) (info ObjectInfo, body []byte, err error)

	// List returns one page of keys under prefix. With delimiter "/" it
	// returns the immediate children: objects and common prefixes. token is
	// the NextToken of the previous page ("" for the first). maxKeys <= 0
	// means the store's default (1000).
	List(ctx context.Context, prefix, delimiter, token string, maxKeys int) (ListResult, error)

	// GetRange returns n bytes of key from offset off (n < 0: to the end).
	// With ifMatch != "" the read fails with ErrPreconditionFailed if the
	// object's ETag differs. The caller closes the body.
	GetRange(ctx context.Context, key string, off, n int64, ifMatch string) (io.ReadCloser, error)

	// Upload writes size bytes from r as the whole content of key: one PUT
	// for small objects, a parallel multipart upload above the part size
	// (aborting the upload on failure). It returns the new ETag.
	Upload(ctx context.Context, key string, r io.ReaderAt, size int64, opts PutOptions) (string, error)

	// Multipart primitives, for callers that compose objects themselves
	// (UploadPartCopy lets an edit re-use unchanged ranges server-side).
	CreateMultipart(ctx context.Context, key string, opts PutOptions) (uploadID string, err error)
	UploadPart(ctx context.Context, key, uploadID string, number int32, r io.ReadSeeker, size int64) (etag string, err error)
	UploadPartCopy(ctx context.Context, key, uploadID string, number int32, srcKey string, off, n int64, srcIfMatch string) (etag string, err error)
	CompleteMultipart(ctx context.Context, key, uploadID string, parts []CompletedPart) (etag string, err error)
	AbortMultipart(ctx context.Context, key, uploadID string) error

	// ListMultipart returns every multipart upload in progress whose key
	// starts with prefix, oldest first within a key, paging internally. A
	// restarted daemon uses it to abort the uploads a killed one left.
	// MinIO lists only the uploads whose key is exactly prefix (it does not
	// implement prefix listing), so callers should record the keys (and
	// ideally the upload ids) they start uploads for.
	ListMultipart(ctx context.Context, prefix string) ([]MultipartUpload, error)

	// Copy copies src to dst server-side (multipart copy for objects above
	// 5 GiB). With opts == nil the metadata is copied; otherwise it is
	// replaced by opts. With srcIfMatch != "" it fails with
	// ErrPreconditionFailed if src changed. It returns dst's new ETag.
	Copy(ctx context.Context, src, dst string, srcIfMatch string, opts *PutOptions) (string, error)

	// Delete removes key. Deleting a missing key succeeds.
	Delete(ctx context.Context, key string) error

	// DeleteMany removes keys, up to MaxDeleteBatch per request. Missing
	// keys succeed. On failure some keys may be gone and others not; the
	// error names one that is not.
	DeleteMany(ctx context.Context, keys []string) error
}

// MaxDeleteBatch is S3's limit on the keys of one DeleteObjects request.
const MaxDeleteBatch = 1000

// Op names one ObjectStore method, for code that counts or intercepts calls
// by method (memstore's counters, faultstore's rules).
type Op string

// The operations, one per ObjectStore method.
const (
	OpHead              Op = "Head"
	OpPeek              Op = "Peek"
	OpList              Op = "List"
	OpGetRange          Op = "GetRange"
	OpUpload            Op = "Upload"
	OpCreateMultipart   Op = "CreateMultipart"
	OpUploadPart        Op = "UploadPart"
	OpUploadPartCopy    Op = "UploadPartCopy"
	OpCompleteMultipart Op = "CompleteMultipart"
	OpAbortMultipart    Op = "AbortMultipart"
	OpListMultipart     Op = "ListMultipart"
	OpCopy              Op = "Copy"
	OpDelete            Op = "Delete"
	OpDeleteMany        Op = "DeleteMany"
)

// Ops lists every Op.
var Ops = []Op{OpHead, OpPeek, OpList, OpGetRange, OpUpload, OpCreateMultipart, OpUploadPart,
	OpUploadPartCopy, OpCompleteMultipart, OpAbortMultipart, OpListMultipart, OpCopy, OpDelete, OpDeleteMany}

// Error is an error of a store implementation without a wire protocol of
// its own (memstore, faultstore): the operation, the key and a cause that
// wraps a sentinel, so errors.Is(err, ErrNotFound) works.
type Error struct {
	Op  Op
	Key string
	Err error
}

func (e *Error) Error() string {
	return string(e.Op) + " " + strconv.Quote(e.Key) + ": " + e.Err.Error()
}
func (e *Error) Unwrap() error { return e.Err }

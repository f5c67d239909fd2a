package s3backend

import (
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Config says which bucket to serve and how to reach it.
type Config struct {
	Bucket string
	Prefix string // mount prefix inside the bucket, "" or ending with "/"

	Endpoint  string // e.g. "http://127.0.0.1:9000"; "" means AWS for Region
	Region    string // signing region; "" means AWS config, else us-east-1
	PathStyle bool   // path-style addressing (custom endpoints)

	// Credentials to sign with; nil means the SDK's default chain (with Profile).
	Credentials aws.CredentialsProvider
	Profile     string

	InsecureSkipVerify bool // do not verify TLS certificates (explicit opt-in only)

	PartSize          int64 // multipart part size in bytes; 0 means DefaultPartSize
	UploadConcurrency int   // parts in flight per upload; 0 means DefaultUploadConcurrency
	MultipartAbove    int64 // objects larger than this use multipart; 0 means PartSize

	// RequestTimeout bounds each request that writes (a PUT, one part of
	// a multipart upload, a part copy, a complete, a copy, a delete), its
	// retries included; 0 means DefaultRequestTimeout. There is no bound
	// on a whole upload: a big file on a slow link takes as long as it
	// takes, while a request that hangs fails and is retried.
	RequestTimeout time.Duration

	// UploadChecksum protects the bytes of each upload in transit: ""
	// or ChecksumCRC32C (a CRC-32C header, unsigned payload), or
	// ChecksumSHA256 (the SDK's default signing); see checksum.go.
	UploadChecksum UploadChecksum

	// NoListMetadata: never ask a MinIO store for listings that carry
	// each object's headers (listmeta.go); every listed object whose
	// attributes are asked for is HEADed, as with any other store.
	NoListMetadata bool

	// MaxAttempts bounds the SDK's attempts per request, the first
	// included (s3fs's retries=); 0 means 5.
	MaxAttempts int

	// What every object written gets: server-side encryption (with SSE-C
	// the key also goes with every read and copy), a storage class (e.g.
	// "STANDARD_IA"; "" leaves the store's default) and a canned ACL (e.g.
	// "public-read"; "" leaves the store's default, private).
	Encryption   Encryption
	StorageClass string
	ACL          string
	// RequesterPays sends x-amz-request-payer: requester with every
	// request, as Requester Pays buckets require of other accounts.
	RequesterPays bool

	Logger *slog.Logger // nil means slog.Default()
}

const (
	DefaultPartSize          = 16 << 20
	DefaultUploadConcurrency = 8
	DefaultRequestTimeout    = 10 * time.Minute
)

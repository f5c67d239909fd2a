package s3backend

import (
	"log/slog"

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

	Logger *slog.Logger // nil means slog.Default()
}

const (
	DefaultPartSize          = 16 << 20
	DefaultUploadConcurrency = 8
)

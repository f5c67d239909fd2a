package s3backend

import (
	"crypto/md5" //nolint:gosec // S3 defines the SSE-C key digest as MD5
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// SSEMode is the server-side encryption every object written gets.
type SSEMode int

const (
	SSENone SSEMode = iota // the bucket's default
	SSES3                  // SSE-S3: keys managed by the store (AES256)
	SSEKMS                 // SSE-KMS: a key of the store's KMS (aws:kms)
	SSEC                   // SSE-C: a key the client sends with every request
)

func (m SSEMode) String() string {
	switch m {
	case SSES3:
		return "SSE-S3"
	case SSEKMS:
		return "SSE-KMS"
	case SSEC:
		return "SSE-C"
	}
	return "none"
}

// Encryption says how objects are encrypted at rest.
type Encryption struct {
	Mode SSEMode
	// KMSKeyID is the SSE-KMS key; "" means the store's default key.
	KMSKeyID string
	// CustomerKey is the SSE-C key, SSECKeySize raw bytes. Objects
	// written with it can only be read with it, so it is sent with every
	// read, copy and upload.
	CustomerKey []byte
}

// SSECKeySize is the size of an SSE-C key: S3 only knows AES-256.
const SSECKeySize = 32

// ValidStorageClass reports whether class (upper case) is a storage class
// S3 defines, so that a typo is refused at start-up rather than on the
// first write.
func ValidStorageClass(class string) bool {
	return slices.Contains(types.StorageClass("").Values(), types.StorageClass(class))
}

// ValidCannedACL reports whether acl is one of S3's canned ACLs.
func ValidCannedACL(acl string) bool {
	return slices.Contains(types.ObjectCannedACL("").Values(), types.ObjectCannedACL(acl))
}

// objectOptions are the per-object settings of Config in the form the
// requests take them. Every field is fixed at New, so the Store reads them
// without locking.
type objectOptions struct {
	sse      types.ServerSideEncryption
	kmsKeyID *string
	// SSE-C: the key and its digest as S3 wants them (base64), nil without.
	cAlg, cKey, cKeyMD5 *string
	class               types.StorageClass
	acl                 types.ObjectCannedACL
}

func newObjectOptions(cfg Config) (objectOptions, error) {
	var o objectOptions
	switch e := cfg.Encryption; e.Mode {
	case SSENone:
	case SSES3:
		o.sse = types.ServerSideEncryptionAes256
	case SSEKMS:
		o.sse = types.ServerSideEncryptionAwsKms
		if e.KMSKeyID != "" {
			o.kmsKeyID = aws.String(e.KMSKeyID)
		}
	case SSEC:
		if len(e.CustomerKey) != SSECKeySize {
			return o, fmt.Errorf("s3backend: SSE-C key is %d bytes, want %d (AES-256)", len(e.CustomerKey), SSECKeySize)
		}
		sum := md5.Sum(e.CustomerKey) //nolint:gosec // the digest S3 asks for
		o.cAlg = aws.String("AES256")
		o.cKey = aws.String(base64.StdEncoding.EncodeToString(e.CustomerKey))
		o.cKeyMD5 = aws.String(base64.StdEncoding.EncodeToString(sum[:]))
	default:
		return o, fmt.Errorf("s3backend: unknown encryption mode %d", e.Mode)
	}
	if cfg.StorageClass != "" {
		c := strings.ToUpper(cfg.StorageClass)
		if !ValidStorageClass(c) {
			return o, fmt.Errorf("s3backend: unknown storage class %q", cfg.StorageClass)
		}
		o.class = types.StorageClass(c)
	}
	if cfg.ACL != "" {
		if !ValidCannedACL(cfg.ACL) {
			return o, fmt.Errorf("s3backend: unknown canned ACL %q", cfg.ACL)
		}
		o.acl = types.ObjectCannedACL(cfg.ACL)
	}
	return o, nil
}

// ssec reports whether objects are written with a customer key.
func (o *objectOptions) ssec() bool { return o.cKey != nil }

// customerKey returns the SSE-C algorithm, key and key digest headers
// (all nil without SSE-C), for the inputs' three fields of that name.
func (o *objectOptions) customerKey() (alg, key, keyMD5 *string) {
	return o.cAlg, o.cKey, o.cKeyMD5
}

// plainObjectError reports whether err may be the store refusing SSE-C
// headers because the object is not encrypted with a customer key: a 400
// InvalidRequest ("The encryption parameters are not applicable to this
// object", S3 and MinIO) or InvalidArgument, or, for a HEAD, whose answer
// has no body, a bare 400 (BadRequest). An SSE-C mount still reads objects
// that other tools wrote in the clear: the request is sent again without
// the key. (A wrong key is a 403, never retried.)
func plainObjectError(err error) bool {
	var oe *OpError
	if !errors.As(err, &oe) || oe.StatusCode != http.StatusBadRequest {
		return false
	}
	switch oe.Code {
	case "", "BadRequest", "InvalidRequest", "InvalidArgument":
		return true
	}
	return false
}

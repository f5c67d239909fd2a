package s3backend

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// OpError is the error every Store method returns. It names the S3
// operation and the key (relative to the mount prefix) and carries both the
// sentinel it maps to (Err, nil when the failure is not one we classify)
// and the underlying SDK error (Cause). errors.Is matches either, so
// errors.Is(err, ErrNotFound) and errors.Is(err, context.Canceled) both work.
type OpError struct {
	Op         string // S3 operation, e.g. "GetObject"
	Key        string // relative key ("" for bucket-level operations)
	Code       string // S3 error code when the store sent one, e.g. "NoSuchKey"
	StatusCode int    // HTTP status when there was a response, else 0
	Err        error  // sentinel (ErrNotFound, …) or nil
	Cause      error  // the error from the SDK (or the context)
}

// Error reads like `s3 GetObject "a/b": object not found (NoSuchKey)`.
func (e *OpError) Error() string {
	var b strings.Builder
	b.WriteString("s3 ")
	b.WriteString(e.Op)
	if e.Key != "" {
		b.WriteString(" ")
		b.WriteString(strconv.Quote(e.Key))
	}
	b.WriteString(": ")
	switch {
	case e.Err != nil && (e.Code != "" || e.StatusCode != 0):
		b.WriteString(e.Err.Error())
		b.WriteString(" (")
		b.WriteString(e.detail())
		b.WriteString(")")
	case e.Err != nil:
		// No code from the store (network, TLS, credentials): the
		// innermost cause says what actually went wrong.
		b.WriteString(e.Err.Error())
		if c := rootCause(e.Cause); c != nil && c != e.Err {
			b.WriteString(": ")
			b.WriteString(c.Error())
		}
	default:
		b.WriteString(e.Cause.Error())
	}
	return b.String()
}

func (e *OpError) detail() string {
	switch {
	case e.Code != "" && e.StatusCode != 0:
		return e.Code + ", HTTP " + strconv.Itoa(e.StatusCode)
	case e.Code != "":
		return e.Code
	default:
		return "HTTP " + strconv.Itoa(e.StatusCode)
	}
}

// Unwrap returns the sentinel and the cause, so errors.Is/As see both.
func (e *OpError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Cause}
	}
	return []error{e.Err, e.Cause}
}

// rootCause returns the most specific error worth showing for failures that
// carry no S3 code: the network, DNS, TLS or credentials error rather than
// the SDK's long "operation error …, exceeded maximum attempts …" chain.
func rootCause(err error) error {
	var (
		dnsErr  *net.DNSError
		opErr   *net.OpError
		credErr *credentialsError
	)
	switch {
	case errors.As(err, &credErr):
		return credErr.err
	case errors.As(err, &dnsErr):
		return dnsErr
	case errors.As(err, &opErr):
		return opErr
	}
	if tlsErr := tlsCause(err); tlsErr != nil {
		return tlsErr
	}
	return err
}

// credentialsError marks a failure to obtain credentials (no provider in the
// chain found any, or the provider failed), so it can be classified by type.
type credentialsError struct{ err error }

func (e *credentialsError) Error() string { return "retrieve credentials: " + e.err.Error() }
func (e *credentialsError) Unwrap() error { return e.err }

// codeSentinels maps S3 (and MinIO) error codes to sentinels.
var codeSentinels = map[string]error{
	"NoSuchKey":     ErrNotFound,
	"NotFound":      ErrNotFound, // HEAD responses have no body: the SDK derives the code from the status
	"NoSuchUpload":  ErrNotFound,
	"NoSuchVersion": ErrNotFound,

	"NoSuchBucket": ErrNoSuchBucket,

	"AccessDenied":       ErrAccessDenied,
	"Forbidden":          ErrAccessDenied,
	"AllAccessDisabled":  ErrAccessDenied,
	"AccountProblem":     ErrAccessDenied,
	"InvalidObjectState": ErrAccessDenied, // archived (Glacier) objects cannot be read

	"InvalidAccessKeyId":    ErrBadCredentials,
	"SignatureDoesNotMatch": ErrBadCredentials,
	"ExpiredToken":          ErrBadCredentials,
	"InvalidToken":          ErrBadCredentials,
	"TokenRefreshRequired":  ErrBadCredentials,
	"InvalidSecurity":       ErrBadCredentials,
	"XMinioInvalidToken":    ErrBadCredentials,

	"PreconditionFailed": ErrPreconditionFailed,

	"InvalidRange":                 ErrInvalidRange,
	"RequestedRangeNotSatisfiable": ErrInvalidRange,

	"SlowDown":                   ErrThrottled,
	"Throttling":                 ErrThrottled,
	"ThrottlingException":        ErrThrottled,
	"RequestLimitExceeded":       ErrThrottled,
	"TooManyRequests":            ErrThrottled,
	"TooManyRequestsException":   ErrThrottled,
	"BandwidthLimitExceeded":     ErrThrottled,
	"XMinioServerNotInitialized": ErrThrottled, // MinIO still starting: transient, like a 503

	"EntityTooLarge":           ErrTooLarge,
	"XMinioMaxPartsExceeded":   ErrTooLarge,
	"XMinioInvalidPartSize":    ErrTooLarge,
	"MaxMessageLengthExceeded": ErrTooLarge,

	"NotImplemented":  ErrNotSupported,
	"XNotImplemented": ErrNotSupported,

	"XMinioParentIsObject":          ErrConflict,
	"XMinioObjectExistsAsDirectory": ErrConflict,

	"KeyTooLongError":         ErrInvalidKey,
	"XMinioInvalidObjectName": ErrInvalidKey,
}

// statusSentinels classifies responses whose code we do not know (or that
// have none, like HEAD errors) by their HTTP status.
var statusSentinels = map[int]error{
	404: ErrNotFound,
	403: ErrAccessDenied,
	412: ErrPreconditionFailed,
	416: ErrInvalidRange,
	429: ErrThrottled,
	503: ErrThrottled,
	413: ErrTooLarge,
	501: ErrNotSupported,
}

// wrapErr turns an SDK error into an *OpError. It never inspects message
// text: only types, S3 error codes and HTTP status codes.
func wrapErr(op, key string, err error) error {
	if err == nil {
		return nil
	}
	e := &OpError{Op: op, Key: key, Cause: err}
	e.Code, e.StatusCode, e.Err = classify(err)
	if e.Err == nil && e.StatusCode == 400 && op == "HeadObject" && keyTooLong(key) {
		// A HEAD response has no body, hence no code to say why; for a
		// key no store accepts, the key is why.
		e.Err = ErrInvalidKey
	}
	return e
}

// keyTooLong reports whether key is longer than S3 allows (1024 bytes) or
// has a path element longer than MinIO allows: 255 bytes, and for the
// name of a directory marker "name/" 246, since MinIO stores it as
// "name__XLDIR__".
func keyTooLong(key string) bool {
	if len(key) > 1024 {
		return true
	}
	marker := strings.HasSuffix(key, "/")
	elems := strings.Split(strings.TrimSuffix(key, "/"), "/")
	for i, elem := range elems {
		limit := 255
		if marker && i == len(elems)-1 {
			limit -= len("__XLDIR__")
		}
		if len(elem) > limit {
			return true
		}
	}
	return false
}

// classify returns the S3 error code and the HTTP status of the response,
// if any, and the sentinel for err (nil if unknown).
func classify(err error) (code string, status int, sentinel error) {
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) && respErr.Response != nil {
		status = respErr.HTTPStatusCode()
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
		if code == "UnknownError" { // the SDK's placeholder, not the store's
			code = ""
		}
	}

	// Context errors pass through unclassified: the caller gave up, the
	// store did nothing wrong. Checked before the network errors because a
	// cancelled dial is also a *net.OpError.
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return code, status, nil
	}
	// Failing to obtain credentials is a credentials problem even when the
	// provider's own call (STS, SSO) failed with an S3-looking code.
	var credErr *credentialsError
	if errors.As(err, &credErr) {
		return code, status, ErrBadCredentials
	}
	if s, ok := codeSentinels[code]; ok {
		return code, status, s
	}
	if s, ok := statusSentinels[status]; ok {
		return code, status, s
	}
	if code != "" || status != 0 {
		// The store answered with something we do not classify.
		return code, status, nil
	}

	var (
		dnsErr *net.DNSError
		opErr  *net.OpError
	)
	if errors.As(err, &dnsErr) || errors.As(err, &opErr) || tlsCause(err) != nil {
		return "", 0, ErrUnreachable
	}
	return "", 0, nil
}

// tlsCause returns the TLS or certificate-verification error in err's chain.
func tlsCause(err error) error {
	var (
		verifyErr  *tls.CertificateVerificationError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		recordErr  tls.RecordHeaderError // e.g. speaking TLS to a plain-HTTP port
		alertErr   tls.AlertError
	)
	switch {
	case errors.As(err, &verifyErr):
		return verifyErr
	case errors.As(err, &unknownCA):
		return unknownCA
	case errors.As(err, &hostErr):
		return hostErr
	case errors.As(err, &invalidErr):
		return invalidErr
	case errors.As(err, &recordErr):
		return recordErr
	case errors.As(err, &alertErr):
		return alertErr
	}
	return nil
}

// errorf builds an OpError for failures detected on our side (bad
// arguments), so callers always get the same type.
func errorf(op, key string, format string, args ...any) error {
	return &OpError{Op: op, Key: key, Cause: fmt.Errorf(format, args...)}
}

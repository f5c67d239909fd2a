package s3backend

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// sdkErr builds the error chain the SDK returns for a response with the
// given status and (possibly empty) error code.
func sdkErr(op string, status int, code string) error {
	var inner error = &smithy.GenericAPIError{Code: code, Message: "msg"}
	if code == "" {
		inner = errors.New("http error without body")
	}
	return &smithy.OperationError{
		ServiceID:     "S3",
		OperationName: op,
		Err: &retry.MaxAttemptsError{Attempt: 5, Err: &awshttp.ResponseError{
			RequestID: "req",
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
				Err:      inner,
			},
		}},
	}
}

// netErr wraps a transport failure the way the SDK does (status 0).
func netErr(err error) error {
	return &smithy.OperationError{ServiceID: "S3", OperationName: "GetObject", Err: &retry.MaxAttemptsError{
		Attempt: 5,
		Err: &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{}},
			Err:      &smithyhttp.RequestSendError{Err: err},
		}},
	}}
}

func TestClassify(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	cases := []struct {
		name string
		err  error
		want error // nil: no sentinel
	}{
		{"NoSuchKey", sdkErr("GetObject", 404, "NoSuchKey"), ErrNotFound},
		{"HEAD 404", sdkErr("HeadObject", 404, "NotFound"), ErrNotFound},
		{"code-less 404", sdkErr("HeadObject", 404, ""), ErrNotFound},
		{"UnknownError 404", sdkErr("HeadObject", 404, "UnknownError"), ErrNotFound},
		{"NoSuchUpload", sdkErr("UploadPart", 404, "NoSuchUpload"), ErrNotFound},
		{"NoSuchBucket", sdkErr("ListObjectsV2", 404, "NoSuchBucket"), ErrNoSuchBucket},
		{"AccessDenied", sdkErr("GetObject", 403, "AccessDenied"), ErrAccessDenied},
		{"HEAD 403", sdkErr("HeadObject", 403, "Forbidden"), ErrAccessDenied},
		{"InvalidAccessKeyId", sdkErr("ListObjectsV2", 403, "InvalidAccessKeyId"), ErrBadCredentials},
		{"SignatureDoesNotMatch", sdkErr("ListObjectsV2", 403, "SignatureDoesNotMatch"), ErrBadCredentials},
		{"ExpiredToken", sdkErr("ListObjectsV2", 400, "ExpiredToken"), ErrBadCredentials},
		{"PreconditionFailed", sdkErr("GetObject", 412, "PreconditionFailed"), ErrPreconditionFailed},
		{"HEAD 412", sdkErr("HeadObject", 412, ""), ErrPreconditionFailed},
		{"InvalidRange", sdkErr("GetObject", 416, "InvalidRange"), ErrInvalidRange},
		{"HEAD 416", sdkErr("HeadObject", 416, "RequestedRangeNotSatisfiable"), ErrInvalidRange},
		{"SlowDown", sdkErr("PutObject", 503, "SlowDown"), ErrThrottled},
		{"429", sdkErr("PutObject", 429, ""), ErrThrottled},
		{"EntityTooLarge", sdkErr("PutObject", 400, "EntityTooLarge"), ErrTooLarge},
		{"NotImplemented", sdkErr("PutObject", 501, "NotImplemented"), ErrNotSupported},
		{"ParentIsObject", sdkErr("PutObject", 409, "XMinioParentIsObject"), ErrConflict},
		{"ObjectExistsAsDirectory", sdkErr("PutObject", 409, "XMinioObjectExistsAsDirectory"), ErrConflict},
		{"unknown code", sdkErr("PutObject", 400, "InvalidArgument"), nil},
		{"connection refused", netErr(refused), ErrUnreachable},
		{"dns", netErr(&net.DNSError{Err: "no such host", Name: "nope.invalid", IsNotFound: true}), ErrUnreachable},
		{"unknown CA", netErr(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), ErrUnreachable},
		{"bare x509", netErr(x509.HostnameError{Certificate: &x509.Certificate{}, Host: "h"}), ErrUnreachable},
		{"tls to http port", netErr(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), ErrUnreachable},
		{"credentials", &smithy.OperationError{ServiceID: "S3", OperationName: "GetObject", Err: &credentialsError{err: errors.New("no EC2 IMDS role found")}}, ErrBadCredentials},
		{"plain error", errors.New("boom"), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := wrapErr("Op", "a/b", c.err)
			var oe *OpError
			if !errors.As(err, &oe) {
				t.Fatalf("not an *OpError: %T", err)
			}
			if oe.Err != c.want {
				t.Fatalf("sentinel = %v, want %v (err: %v)", oe.Err, c.want, err)
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("errors.Is(%v, %v) is false", err, c.want)
			}
			if !errors.Is(err, c.err) {
				t.Fatal("the cause is not reachable with errors.Is")
			}
			for _, s := range []error{ErrNotFound, ErrAccessDenied, ErrUnreachable, ErrBadCredentials, ErrConflict} {
				if s != c.want && errors.Is(err, s) {
					t.Fatalf("errors.Is(err, %v) unexpectedly true", s)
				}
			}
			if !strings.HasPrefix(err.Error(), `s3 Op "a/b": `) {
				t.Fatalf("message %q lacks op and key", err)
			}
		})
	}
}

func TestErrorMessages(t *testing.T) {
	err := wrapErr("GetObject", "a/b", sdkErr("GetObject", 404, "NoSuchKey"))
	if got, want := err.Error(), `s3 GetObject "a/b": object not found (NoSuchKey, HTTP 404)`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	err = wrapErr("HeadObject", "x", sdkErr("HeadObject", 412, ""))
	if got, want := err.Error(), `s3 HeadObject "x": object changed (precondition failed) (HTTP 412)`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// Network failures show the innermost error, not the SDK's long chain.
	op := &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}, Err: syscall.ECONNREFUSED}
	err = wrapErr("ListObjectsV2", "", netErr(op))
	if got, want := err.Error(), `s3 ListObjectsV2: endpoint unreachable: dial tcp 127.0.0.1:1: connection refused`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// Unknown errors keep the whole cause.
	err = wrapErr("PutObject", "k", sdkErr("PutObject", 400, "InvalidArgument"))
	if !strings.Contains(err.Error(), "InvalidArgument") {
		t.Errorf("unknown error message lost the code: %q", err)
	}
}

func TestContextErrorsPassThrough(t *testing.T) {
	for _, ctxErr := range []error{context.Canceled, context.DeadlineExceeded} {
		chains := []error{
			&smithy.OperationError{ServiceID: "S3", OperationName: "GetObject", Err: &aws.RequestCanceledError{Err: ctxErr}},
			// A cancelled dial surfaces as a *net.OpError: it must not become ErrUnreachable.
			netErr(&net.OpError{Op: "dial", Net: "tcp", Err: ctxErr}),
		}
		for _, c := range chains {
			err := wrapErr("GetObject", "k", c)
			if !errors.Is(err, ctxErr) {
				t.Errorf("errors.Is(%v, %v) = false", err, ctxErr)
			}
			if errors.Is(err, ErrUnreachable) {
				t.Errorf("%v classified as unreachable", err)
			}
		}
	}
}

func TestWrapNil(t *testing.T) {
	if err := wrapErr("Op", "k", nil); err != nil {
		t.Fatalf("wrapErr(nil) = %v", err)
	}
}

func TestEscapeKeyPath(t *testing.T) {
	cases := map[string]string{
		"a/b.txt":        "a/b.txt",
		"dir with space": "dir%20with%20space",
		"a+b%c":          "a%2Bb%25c",
		"ü/日":            "%C3%BC/%E6%97%A5",
		"q?x=1&y#z":      "q%3Fx%3D1%26y%23z",
	}
	for in, want := range cases {
		if got := escapeKeyPath(in); got != want {
			t.Errorf("escapeKeyPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPartPlan(t *testing.T) {
	cases := []struct {
		size, part, wantPart int64
		wantN                int
	}{
		{17 << 20, 5 << 20, 5 << 20, 4},
		{15 << 20, 5 << 20, 5 << 20, 3},
		{1, 5 << 20, 5 << 20, 1},
		{100000 << 20, 5 << 20, 10 << 20, 10000},
		{100001 << 20, 5 << 20, 11 << 20, 9091},
	}
	for _, c := range cases {
		p, n := partPlan(c.size, c.part)
		if p != c.wantPart || n != c.wantN {
			t.Errorf("partPlan(%d, %d) = %d, %d; want %d, %d", c.size, c.part, p, n, c.wantPart, c.wantN)
		}
		if int64(n-1)*p >= c.size || int64(n)*p < c.size || n > maxParts {
			t.Errorf("partPlan(%d, %d) = %d, %d does not cover the object", c.size, c.part, p, n)
		}
	}
}

func TestKeyTooLong(t *testing.T) {
	long := strings.Repeat("x", 255)
	for key, want := range map[string]bool{
		long:                          false,
		long + "x":                    true,
		"a/" + long + "/b":            false,
		long[:246] + "/":              false,
		long[:247] + "/":              true,
		strings.Repeat("a/", 600):     true,
		"dir/" + long[:246] + "/":     false,
		"dir/" + long + "x" + "/file": true,
	} {
		if got := keyTooLong(key); got != want {
			t.Errorf("keyTooLong(%.20s… %d bytes) = %v, want %v", key, len(key), got, want)
		}
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/novitalabs/bucketfs/s3backend"
)

func TestDescribeStoreError(t *testing.T) {
	cfg := &Config{Bucket: "b"}
	creds := credChoice{Source: "password file /root/.passwd-s3fs"}
	where := "http://127.0.0.1:9000"
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}
	tests := []struct {
		err  error
		want string
	}{
		{&s3backend.OpError{Op: "ListObjectsV2", Err: s3backend.ErrNoSuchBucket, Code: "NoSuchBucket", StatusCode: 404},
			`bucket "b" does not exist at http://127.0.0.1:9000`},
		{&s3backend.OpError{Op: "ListObjectsV2", Err: s3backend.ErrBadCredentials, Code: "SignatureDoesNotMatch", StatusCode: 403},
			`credentials rejected by http://127.0.0.1:9000 for bucket "b" (credentials from password file /root/.passwd-s3fs)`},
		{&s3backend.OpError{Op: "ListObjectsV2", Err: s3backend.ErrBadCredentials, Cause: errors.New("no EC2 IMDS role found")},
			`no usable credentials found (tried password file /root/.passwd-s3fs); set AWS_ACCESS_KEY_ID`},
		{&s3backend.OpError{Op: "ListObjectsV2", Err: s3backend.ErrAccessDenied, Code: "AccessDenied", StatusCode: 403},
			`access denied to bucket "b" at http://127.0.0.1:9000`},
		{&s3backend.OpError{Op: "ListObjectsV2", Err: s3backend.ErrUnreachable, Cause: fmt.Errorf("operation error: %w", refused)},
			`cannot reach http://127.0.0.1:9000: dial tcp: connect: connection refused`},
		{&s3backend.OpError{Op: "ListObjectsV2", Err: s3backend.ErrNotFound, Code: "NotFound", StatusCode: 404},
			`bucket "b" not found at http://127.0.0.1:9000 (s3 ListObjectsV2: object not found (NotFound, HTTP 404); is that the S3 endpoint?)`},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), `cannot reach http://127.0.0.1:9000: no answer in time`},
		{errors.New("boom"), `checking bucket "b" at http://127.0.0.1:9000: boom`},
	}
	for _, tt := range tests {
		got := describeStoreError(tt.err, cfg, creds, where).Error()
		if !strings.HasPrefix(got, tt.want) {
			t.Errorf("describeStoreError(%v)\n got %q\nwant %q...", tt.err, got, tt.want)
		}
	}
}

func TestDescribeEndpoint(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Endpoint: "http://h:1"}, "http://h:1"},
		{Config{Region: "eu-west-1"}, "AWS S3 (eu-west-1)"},
		{Config{}, "AWS S3"},
	} {
		if got := describeEndpoint(&tt.cfg); got != tt.want {
			t.Errorf("describeEndpoint(%+v) = %q, want %q", tt.cfg, got, tt.want)
		}
	}
}

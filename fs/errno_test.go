package fs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/novitalabs/bucketfs/s3backend"
)

func TestToErrno(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	cases := []struct {
		name string
		err  error
		want syscall.Errno
	}{
		{"nil", nil, 0},
		{"not found", fmt.Errorf("head: %w", s3backend.ErrNotFound), syscall.ENOENT},
		{"denied", &s3backend.OpError{Op: "PutObject", Err: s3backend.ErrAccessDenied}, syscall.EACCES},
		{"changed", &s3backend.OpError{Op: "GetObject", Err: s3backend.ErrPreconditionFailed}, syscall.ESTALE},
		// The network's errno must not leak: the upload failed, that is EIO.
		{"unreachable", &s3backend.OpError{Op: "PutObject", Err: s3backend.ErrUnreachable, Cause: dial}, syscall.EIO},
		{"unknown store error", &s3backend.OpError{Op: "PutObject", Cause: dial}, syscall.EIO},
		{"throttled", fmt.Errorf("x: %w", s3backend.ErrThrottled), syscall.EIO},
		{"local ENOSPC", &os.PathError{Op: "write", Path: "/staging/x", Err: syscall.ENOSPC}, syscall.ENOSPC},
		{"interrupted", context.Canceled, syscall.EINTR},
		{"deadline", context.DeadlineExceeded, syscall.EIO},
		{"other", errors.New("boom"), syscall.EIO},
	}
	for _, c := range cases {
		if got := toErrno(c.err); got != c.want {
			t.Errorf("%s: toErrno(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

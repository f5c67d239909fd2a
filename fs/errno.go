package fs

import (
	"context"
	"errors"
	"syscall"

	"github.com/novitalabs/bucketfs/s3backend"
)

// toErrno maps an error from the store or the staging disk to the errno the
// caller sees. It matches typed errors only (errors.Is/As), never messages.
func toErrno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var errno syscall.Errno
	switch {
	case errors.Is(err, s3backend.ErrNotFound):
		return syscall.ENOENT
	case errors.Is(err, s3backend.ErrAccessDenied), errors.Is(err, s3backend.ErrBadCredentials):
		return syscall.EACCES
	case errors.Is(err, s3backend.ErrPreconditionFailed):
		// The object changed under an open file: NFS's answer, and ours.
		return syscall.ESTALE
	case errors.Is(err, s3backend.ErrTooLarge):
		return syscall.EFBIG
	case errors.Is(err, s3backend.ErrNotSupported):
		return syscall.ENOTSUP
	case errors.Is(err, s3backend.ErrConflict):
		// MinIO refuses an object "a" beside "a/b" (and the reverse).
		return syscall.EEXIST
	case errors.Is(err, s3backend.ErrInvalidKey):
		return syscall.ENAMETOOLONG
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	case isStoreError(err):
		// An error from the store that no case above names: its chain
		// may hold a syscall errno of the network (ECONNREFUSED inside a
		// dial error), which is not the caller's business: the upload
		// or read failed, and that is EIO.
		return syscall.EIO
	case errors.As(err, &errno):
		// Local staging I/O: ENOSPC, EDQUOT, EIO… pass through as they are.
		return errno
	}
	// Unreachable endpoint, throttling that outlasted retries, a missing
	// bucket, deadlines, anything unknown: the data did not make it.
	return syscall.EIO
}

// isStoreError reports whether err came from the object store (every
// store error is an *s3backend.OpError or wraps one of its sentinels).
func isStoreError(err error) bool {
	var opErr *s3backend.OpError
	if errors.As(err, &opErr) {
		return true
	}
	for _, sentinel := range []error{s3backend.ErrUnreachable, s3backend.ErrThrottled, s3backend.ErrNoSuchBucket, s3backend.ErrInvalidRange} {
		if errors.Is(err, sentinel) {
			return true
		}
	}
	return false
}

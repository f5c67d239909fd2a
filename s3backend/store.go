// Package s3backend is the only package of bucketfs that talks to S3.
//
// It implements objstore.ObjectStore, a small interface over the S3
// operations the filesystem needs, with keys relative to the mount prefix,
// typed sentinel errors, retries and the quirks of S3-compatible providers
// (path-style addressing, checksum modes). The filesystem (package fs) sees
// only this interface and these errors, never AWS types.
//
// The contract itself lives in internal/objstore (no AWS dependency); the
// names below are aliases of it, so callers may use either package.
package s3backend

import "github.com/novitalabs/bucketfs/internal/objstore"

// Sentinel errors: the very values of package objstore, so errors.Is works
// whichever package the caller names.
var (
	ErrNotFound           = objstore.ErrNotFound
	ErrNoSuchBucket       = objstore.ErrNoSuchBucket
	ErrAccessDenied       = objstore.ErrAccessDenied
	ErrBadCredentials     = objstore.ErrBadCredentials
	ErrPreconditionFailed = objstore.ErrPreconditionFailed
	ErrInvalidRange       = objstore.ErrInvalidRange
	ErrThrottled          = objstore.ErrThrottled
	ErrUnreachable        = objstore.ErrUnreachable
	ErrTooLarge           = objstore.ErrTooLarge
	ErrNotSupported       = objstore.ErrNotSupported
	ErrConflict           = objstore.ErrConflict
	ErrInvalidKey         = objstore.ErrInvalidKey
)

// Aliases of the contract's types (see package objstore for their docs).
type (
	ObjectStore     = objstore.ObjectStore
	ObjectInfo      = objstore.ObjectInfo
	ListResult      = objstore.ListResult
	PutOptions      = objstore.PutOptions
	CompletedPart   = objstore.CompletedPart
	MultipartUpload = objstore.MultipartUpload
)

package s3backend

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Copy implements ObjectStore. It first tries a single CopyObject, which is
// what nearly every copy (a rename) needs, so the common case costs one
// request. Only if that fails with an unclassified error, and a HEAD shows
// the source is above the 5 GiB CopyObject limit, does it fall back to a
// multipart copy (stores word the "too large" refusal differently, so the
// size, not the error, decides).
func (s *Store) Copy(ctx context.Context, src, dst string, srcIfMatch string, opts *PutOptions) (string, error) {
	in := &s3.CopyObjectInput{
		Bucket:     aws.String(s.bucket),
		Key:        aws.String(s.full(dst)),
		CopySource: aws.String(s.copySource(src)),
	}
	if srcIfMatch != "" {
		in.CopySourceIfMatch = aws.String(srcIfMatch)
	}
	if opts != nil {
		in.MetadataDirective = types.MetadataDirectiveReplace
		in.ContentType, in.Metadata = putHeaders(*opts)
	}
	// A copy is a new object: without these it would get the bucket's
	// defaults (and a private ACL), not the mount's settings.
	in.ServerSideEncryption, in.SSEKMSKeyId = s.obj.sse, s.obj.kmsKeyID
	in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = s.obj.customerKey()
	in.CopySourceSSECustomerAlgorithm, in.CopySourceSSECustomerKey, in.CopySourceSSECustomerKeyMD5 = s.obj.customerKey()
	in.StorageClass, in.ACL = s.obj.class, s.obj.acl
	out, err := s.copyObject(ctx, in)
	if err != nil && s.obj.ssec() && plainObjectError(wrapErr("CopyObject", dst, err)) {
		// A source written in the clear by another tool.
		in.CopySourceSSECustomerAlgorithm, in.CopySourceSSECustomerKey, in.CopySourceSSECustomerKeyMD5 = nil, nil, nil
		out, err = s.copyObject(ctx, in)
	}
	if err == nil {
		if out.CopyObjectResult == nil {
			return "", errorf("CopyObject", dst, "response has no CopyObjectResult")
		}
		return aws.ToString(out.CopyObjectResult.ETag), nil
	}
	copyErr := wrapErr("CopyObject", dst, err)
	if !worthMultipartRetry(copyErr) {
		return "", copyErr
	}
	info, herr := s.Head(ctx, src)
	if herr != nil || info.Size <= s.copyMultipartAbove {
		return "", copyErr
	}
	return s.multipartCopy(ctx, src, dst, info, srcIfMatch, opts)
}

// copyObject sends one CopyObject under the write-request deadline.
func (s *Store) copyObject(ctx context.Context, in *s3.CopyObjectInput) (*s3.CopyObjectOutput, error) {
	ctx, cancel := s.requestContext(ctx)
	defer cancel()
	return s.client.CopyObject(ctx, in)
}

// worthMultipartRetry reports whether a failed CopyObject might have failed
// only because the source is too large for it.
func worthMultipartRetry(err error) bool {
	var oe *OpError
	if !errors.As(err, &oe) {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return oe.Err == nil || oe.Err == ErrTooLarge
}

// multipartCopy copies src (described by info) to dst with UploadPartCopy,
// parts in parallel. Every part is pinned to one version of src (srcIfMatch,
// else the ETag just seen), so a concurrent overwrite of src fails the copy
// with ErrPreconditionFailed instead of producing a mix of two versions.
func (s *Store) multipartCopy(ctx context.Context, src, dst string, info ObjectInfo, srcIfMatch string, opts *PutOptions) (string, error) {
	pin := srcIfMatch
	if pin == "" {
		pin = info.ETag
	}
	put := PutOptions{ContentType: info.ContentType, Metadata: info.Metadata}
	if opts != nil {
		put = *opts
	}
	put.PartCopies = true
	partSize, n := partPlan(info.Size, s.copyPartSize)
	uploadID, err := s.CreateMultipart(ctx, dst, put)
	if err != nil {
		return "", err
	}
	parts := make([]CompletedPart, n)
	err = forEachPart(ctx, n, s.concurrency, func(ctx context.Context, number int32) error {
		off := int64(number-1) * partSize
		etag, err := s.UploadPartCopy(ctx, dst, uploadID, number, src, off, min(partSize, info.Size-off), pin)
		if err != nil {
			return err
		}
		parts[number-1] = CompletedPart{Number: number, ETag: etag}
		return nil
	})
	err = asOpError("UploadPartCopy", dst, err)
	if err == nil {
		var etag string
		if etag, err = s.CompleteMultipart(ctx, dst, uploadID, parts); err == nil {
			return etag, nil
		}
	}
	s.abortQuietly(ctx, dst, uploadID)
	return "", err
}

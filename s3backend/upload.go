package s3backend

import (
	"cmp"
	"context"
	"errors"
	"io"
	"slices"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Upload implements ObjectStore. Objects up to MultipartAbove bytes go in
// one PutObject; larger ones as a multipart upload of PartSize parts (grown
// if needed to stay within S3's 10,000 parts), UploadConcurrency of them in
// flight. Each part body is a section of r, so nothing is buffered in
// memory, and a retry can rewind it.
func (s *Store) Upload(ctx context.Context, key string, r io.ReaderAt, size int64, opts PutOptions) (string, error) {
	if size < 0 {
		return "", errorf("PutObject", key, "negative size %d", size)
	}
	if size <= s.multipartAbove {
		return s.putObject(ctx, key, io.NewSectionReader(r, 0, size), size, opts)
	}
	return s.multipartUpload(ctx, key, r, size, opts)
}

func (s *Store) putObject(ctx context.Context, key string, body io.ReadSeeker, size int64, opts PutOptions) (string, error) {
	ct, meta := putHeaders(opts)
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(s.full(key)),
		Body:          body,
		ContentLength: aws.Int64(size),
		ContentType:   ct,
		Metadata:      meta,
	}
	in.ServerSideEncryption, in.SSEKMSKeyId = s.obj.sse, s.obj.kmsKeyID
	in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = s.obj.customerKey()
	in.StorageClass, in.ACL = s.obj.class, s.obj.acl
	ctx, cancel := s.requestContext(ctx)
	defer cancel()
	var extra []func(*s3.Options)
	crc := s.crc.Load()
	if crc {
		sum, err := crc32cOf(body)
		if err != nil {
			return "", errorf("PutObject", key, "reading the body for its checksum: %w", err)
		}
		in.ChecksumCRC32C = aws.String(sum)
		extra = append(extra, unsignedPayload)
	}
	out, err := s.client.PutObject(ctx, in, extra...)
	if crc && err != nil && refusesChecksums(err) {
		s.checksumsOff("PutObject", key, err)
		if _, serr := body.Seek(0, io.SeekStart); serr != nil {
			return "", wrapErr("PutObject", key, err)
		}
		in.ChecksumCRC32C = nil
		out, err = s.client.PutObject(ctx, in)
	}
	if err != nil {
		return "", wrapErr("PutObject", key, err)
	}
	return aws.ToString(out.ETag), nil
}

// partPlan splits size bytes into parts of at least partSize, with at most
// maxParts parts. It returns the part size used and the number of parts.
func partPlan(size, partSize int64) (int64, int) {
	if size > partSize*maxParts {
		// Round the grown part size up to a MiB: tidy, and still ≥ the minimum.
		partSize = (size + maxParts - 1) / maxParts
		partSize = (partSize + (1<<20 - 1)) &^ (1<<20 - 1)
	}
	n := (size + partSize - 1) / partSize
	if n == 0 {
		n = 1
	}
	return partSize, int(n)
}

// forEachPart runs fn for parts 1..n with at most conc in flight. It stops
// starting parts after the first failure and returns that failure (the
// errors of parts cancelled because of it are dropped).
func forEachPart(ctx context.Context, n, conc int, fn func(ctx context.Context, number int32) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	sem := make(chan struct{}, conc)
	started := 0
	for i := 1; i <= n; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		started++
		wg.Add(1)
		go func(number int32) {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, number); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
					cancel()
				}
				mu.Unlock()
			}
		}(int32(i))
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if started < n {
		// No part failed but we stopped early: the caller's context ended.
		return ctx.Err()
	}
	return nil
}

func (s *Store) multipartUpload(ctx context.Context, key string, r io.ReaderAt, size int64, opts PutOptions) (string, error) {
	partSize, n := partPlan(size, s.partSize)
	uploadID, err := s.CreateMultipart(ctx, key, opts)
	if err != nil {
		return "", err
	}
	parts := make([]CompletedPart, n)
	err = forEachPart(ctx, n, s.concurrency, func(ctx context.Context, number int32) error {
		off := int64(number-1) * partSize
		length := min(partSize, size-off)
		etag, err := s.UploadPart(ctx, key, uploadID, number, io.NewSectionReader(r, off, length), length)
		if err != nil {
			return err
		}
		parts[number-1] = CompletedPart{Number: number, ETag: etag} // distinct index per goroutine
		return nil
	})
	err = asOpError("UploadPart", key, err)
	if err == nil {
		var etag string
		if etag, err = s.CompleteMultipart(ctx, key, uploadID, parts); err == nil {
			return etag, nil
		}
	}
	s.abortQuietly(ctx, key, uploadID)
	return "", err
}

// asOpError wraps err as an *OpError unless it already is one (a bare
// context error from forEachPart).
func asOpError(op, key string, err error) error {
	var oe *OpError
	if err == nil || errors.As(err, &oe) {
		return err
	}
	return wrapErr(op, key, err)
}

// abortQuietly aborts a failed upload so its parts do not linger (and cost)
// in the bucket. It uses a fresh, bounded context because ctx may be the
// very reason the upload failed, and only logs a failure: the upload's own
// error is what the caller needs.
func (s *Store) abortQuietly(ctx context.Context, key, uploadID string) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	if err := s.AbortMultipart(actx, key, uploadID); err != nil {
		s.log.Warn("s3backend: abort of failed multipart upload failed; parts may linger until a lifecycle rule removes them",
			"key", key, "upload_id", uploadID, "err", err)
	}
}

// CreateMultipart implements ObjectStore.
func (s *Store) CreateMultipart(ctx context.Context, key string, opts PutOptions) (string, error) {
	ct, meta := putHeaders(opts)
	in := &s3.CreateMultipartUploadInput{
		Bucket:      aws.String(s.bucket),
		Key:         aws.String(s.full(key)),
		ContentType: ct,
		Metadata:    meta,
	}
	// Encryption, class and ACL are fixed when the upload is created
	// (parts only repeat an SSE-C key).
	in.ServerSideEncryption, in.SSEKMSKeyId = s.obj.sse, s.obj.kmsKeyID
	in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = s.obj.customerKey()
	in.StorageClass, in.ACL = s.obj.class, s.obj.acl
	ctx, cancel := s.requestContext(ctx)
	defer cancel()
	// MinIO refuses UploadPartCopy into an upload created with a checksum
	// algorithm (it asks the copy for a checksum header S3 does not
	// define), so an upload that will copy parts is created without one.
	crc := s.crc.Load() && !opts.PartCopies
	if crc {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32c
	}
	out, err := s.client.CreateMultipartUpload(ctx, in)
	if crc && err != nil && refusesChecksums(err) {
		s.checksumsOff("CreateMultipartUpload", key, err)
		crc = false
		in.ChecksumAlgorithm = ""
		out, err = s.client.CreateMultipartUpload(ctx, in)
	}
	if err != nil {
		return "", wrapErr("CreateMultipartUpload", key, err)
	}
	id := aws.ToString(out.UploadId)
	s.sums.begin(id, crc)
	return id, nil
}

// UploadPart implements ObjectStore.
func (s *Store) UploadPart(ctx context.Context, key, uploadID string, number int32, r io.ReadSeeker, size int64) (string, error) {
	in := &s3.UploadPartInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(s.full(key)),
		UploadId:      aws.String(uploadID),
		PartNumber:    aws.Int32(number),
		Body:          r,
		ContentLength: aws.Int64(size),
	}
	// SSE-C: every part is encrypted with the key the upload was created
	// with, and must carry it.
	in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = s.obj.customerKey()
	var extra []func(*s3.Options)
	crc, err := s.uploadMode(ctx, key, uploadID)
	if err != nil {
		return "", err
	}
	if crc {
		// The upload was created with the CRC-32C algorithm: every part
		// must carry its checksum, and Complete repeats them.
		sum, err := crc32cOf(r)
		if err != nil {
			return "", errorf("UploadPart "+strconv.Itoa(int(number)), key, "reading the part for its checksum: %w", err)
		}
		in.ChecksumCRC32C = aws.String(sum)
		extra = append(extra, unsignedPayload)
	}
	ctx, cancel := s.requestContext(ctx)
	defer cancel()
	out, err := s.client.UploadPart(ctx, in, extra...)
	if err != nil {
		return "", wrapErr("UploadPart "+strconv.Itoa(int(number)), key, err)
	}
	if crc {
		s.sums.record(uploadID, number, aws.ToString(in.ChecksumCRC32C))
	}
	return aws.ToString(out.ETag), nil
}

// UploadPartCopy implements ObjectStore: bytes [off, off+n) of srcKey become
// part number of the upload. With srcIfMatch the copy fails with
// ErrPreconditionFailed if srcKey changed.
func (s *Store) UploadPartCopy(ctx context.Context, key, uploadID string, number int32, srcKey string, off, n int64, srcIfMatch string) (string, error) {
	op := "UploadPartCopy " + strconv.Itoa(int(number))
	if off < 0 || n <= 0 {
		return "", errorf(op, key, "invalid source range off=%d n=%d", off, n)
	}
	in := &s3.UploadPartCopyInput{
		Bucket:          aws.String(s.bucket),
		Key:             aws.String(s.full(key)),
		UploadId:        aws.String(uploadID),
		PartNumber:      aws.Int32(number),
		CopySource:      aws.String(s.copySource(srcKey)),
		CopySourceRange: aws.String("bytes=" + strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(off+n-1, 10)),
	}
	in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = s.obj.customerKey()
	// The source is read with the mount's key too: it is, as a rule, an
	// object this mount wrote.
	in.CopySourceSSECustomerAlgorithm, in.CopySourceSSECustomerKey, in.CopySourceSSECustomerKeyMD5 = s.obj.customerKey()
	if srcIfMatch != "" {
		in.CopySourceIfMatch = aws.String(srcIfMatch)
	}
	ctx, cancel := s.requestContext(ctx)
	defer cancel()
	out, err := s.client.UploadPartCopy(ctx, in)
	err = wrapErr(op, key, err)
	if s.obj.ssec() && plainObjectError(err) {
		// A source written in the clear by another tool.
		in.CopySourceSSECustomerAlgorithm, in.CopySourceSSECustomerKey, in.CopySourceSSECustomerKeyMD5 = nil, nil, nil
		out, err = s.client.UploadPartCopy(ctx, in)
		err = wrapErr(op, key, err)
	}
	if err != nil {
		return "", err
	}
	if out.CopyPartResult == nil {
		return "", errorf(op, key, "response has no CopyPartResult")
	}
	if crc, _ := s.sums.mode(uploadID); crc {
		// The store computes a copied part's checksum itself.
		sum := aws.ToString(out.CopyPartResult.ChecksumCRC32C)
		if sum == "" {
			return "", errorf(op, key, "the store returned no CRC-32C for a part copied into an upload created with that algorithm")
		}
		s.sums.record(uploadID, number, sum)
	}
	return aws.ToString(out.CopyPartResult.ETag), nil
}

// CompleteMultipart implements ObjectStore. Parts are sent sorted by
// number, as S3 requires, whatever order the caller collected them in.
func (s *Store) CompleteMultipart(ctx context.Context, key, uploadID string, parts []CompletedPart) (string, error) {
	sorted := slices.SortedFunc(slices.Values(parts), func(a, b CompletedPart) int { return cmp.Compare(a.Number, b.Number) })
	in := &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.bucket),
		Key:             aws.String(s.full(key)),
		UploadId:        aws.String(uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: completedParts(sorted)},
	}
	crc, err := s.uploadMode(ctx, key, uploadID)
	if err != nil {
		return "", err
	}
	for i, p := range sorted {
		if !crc {
			break
		}
		sum := s.sums.get(uploadID, p.Number)
		if sum == "" {
			return "", errorf("CompleteMultipartUpload", key, "no CRC-32C known for part %d of an upload created with that algorithm", p.Number)
		}
		in.MultipartUpload.Parts[i].ChecksumCRC32C = aws.String(sum)
	}
	in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = s.obj.customerKey()
	ctx, cancel := s.requestContext(ctx)
	defer cancel()
	out, err := s.client.CompleteMultipartUpload(ctx, in)
	if err != nil {
		return "", wrapErr("CompleteMultipartUpload", key, err)
	}
	s.sums.end(uploadID)
	return aws.ToString(out.ETag), nil
}

// AbortMultipart implements ObjectStore. Aborting an upload that no longer
// exists fails with ErrNotFound; callers cleaning up may ignore that.
func (s *Store) AbortMultipart(ctx context.Context, key, uploadID string) error {
	ctx, cancel := s.requestContext(ctx)
	defer cancel()
	_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket:   aws.String(s.bucket),
		Key:      aws.String(s.full(key)),
		UploadId: aws.String(uploadID),
	})
	err = wrapErr("AbortMultipartUpload", key, err)
	if err == nil || errors.Is(err, ErrNotFound) {
		s.sums.end(uploadID)
	}
	return err
}

// copySource is the x-amz-copy-source value: "bucket/key" with every byte
// of the key except unreserved characters and "/" percent-encoded. Stores
// decode the header, and an unescaped "+" may be read as a space, so
// url.PathEscape (which keeps "+") is not enough.
func (s *Store) copySource(key string) string {
	return escapeKeyPath(s.bucket) + "/" + escapeKeyPath(s.full(key))
}

func escapeKeyPath(key string) string {
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(key)+len(key)/4)
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~', c == '/':
			b = append(b, c)
		default:
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return string(b)
}

// ListMultipart implements ObjectStore. It pages through
// ListMultipartUploads (key and upload-id markers) until the listing is
// complete; keys are returned relative to the mount prefix.
//
// MinIO lists the uploads of one exact key only, not of a key prefix: a
// prefix that is not itself the key of an upload yields nothing there. Call
// it with the exact key when the caller knows it (e.g. from a sidecar).
func (s *Store) ListMultipart(ctx context.Context, prefix string) ([]MultipartUpload, error) {
	in := &s3.ListMultipartUploadsInput{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(s.full(prefix)),
		// As in List: keys come URL-encoded, the key marker too.
		EncodingType: types.EncodingTypeUrl,
	}
	if s.listUploadsPage > 0 {
		in.MaxUploads = aws.Int32(s.listUploadsPage)
	}
	var out []MultipartUpload
	for {
		pctx, cancel := s.requestContext(ctx)
		page, err := s.client.ListMultipartUploads(pctx, in)
		cancel()
		if err != nil {
			return nil, wrapErr("ListMultipartUploads", prefix, err)
		}
		for _, u := range page.Uploads {
			k, err := listDecode(page.EncodingType == types.EncodingTypeUrl, aws.ToString(u.Key))
			if err != nil {
				return nil, wrapErr("ListMultipartUploads", prefix, err)
			}
			out = append(out, MultipartUpload{
				Key:       s.rel(k),
				UploadID:  aws.ToString(u.UploadId),
				Initiated: aws.ToTime(u.Initiated),
			})
		}
		if !aws.ToBool(page.IsTruncated) {
			return out, nil
		}
		nextKey, err := listDecode(page.EncodingType == types.EncodingTypeUrl, aws.ToString(page.NextKeyMarker))
		if err != nil {
			return nil, wrapErr("ListMultipartUploads", prefix, err)
		}
		nextID := aws.ToString(page.NextUploadIdMarker)
		if nextKey == "" && nextID == "" {
			// A truncated page without markers would loop for ever.
			return nil, errorf("ListMultipartUploads", prefix, "truncated listing without a continuation marker")
		}
		in.KeyMarker, in.UploadIdMarker = aws.String(nextKey), aws.String(nextID)
	}
}

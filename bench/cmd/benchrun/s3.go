package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// s3Target says where the bench bucket lives. Workers get it as JSON.
type s3Target struct {
	Endpoint  string `json:"endpoint"`
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
	Bucket    string `json:"bucket"`
}

// client builds a plain aws-sdk-go-v2 S3 client for a loopback S3-compatible
// store: path-style, static credentials, checksums only when required.
func (t s3Target) client() *s3.Client {
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns = 256
		tr.MaxIdleConnsPerHost = 256
	})
	return s3.New(s3.Options{
		Region:                     "us-east-1",
		BaseEndpoint:               aws.String(t.Endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(t.AccessKey, t.SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		HTTPClient:                 hc,
	})
}

// listKeys returns every key under prefix with its size (directory markers
// ending in "/" excluded).
func listKeys(ctx context.Context, c *s3.Client, bucket, prefix string) (map[string]int64, error) {
	out := map[string]int64{}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			k := aws.ToString(o.Key)
			if strings.HasSuffix(k, "/") {
				continue
			}
			out[k] = aws.ToInt64(o.Size)
		}
	}
	return out, nil
}

// waitCount polls the bucket until exactly want objects exist under prefix.
func waitCount(ctx context.Context, c *s3.Client, bucket, prefix string, want int, every time.Duration) error {
	for {
		keys, err := listKeys(ctx, c, bucket, prefix)
		if err == nil && len(keys) == want {
			return nil
		}
		select {
		case <-ctx.Done():
			n := -1
			if keys != nil {
				n = len(keys)
			}
			return fmt.Errorf("bucket has %d objects under %q, want %d: %w", n, prefix, want, ctx.Err())
		case <-time.After(every):
		}
	}
}

// waitObject polls HEAD until key exists with the given size.
func waitObject(ctx context.Context, c *s3.Client, bucket, key string, size int64, every time.Duration) error {
	for {
		h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
		if err == nil && aws.ToInt64(h.ContentLength) == size {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("object %s not complete in the bucket: %w", key, ctx.Err())
		case <-time.After(every):
		}
	}
}

// deletePrefix removes every object under prefix (markers included).
func deletePrefix(ctx context.Context, c *s3.Client, bucket, prefix string) error {
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		if len(page.Contents) == 0 {
			continue
		}
		var ids []types.ObjectIdentifier
		for _, o := range page.Contents {
			ids = append(ids, types.ObjectIdentifier{Key: o.Key})
		}
		_, err = c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &bucket, Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		if err != nil {
			return err
		}
	}
	return nil
}

// putMany uploads objects concurrently. content(i) gives key and body.
func putMany(ctx context.Context, c *s3.Client, bucket string, n, conc int, content func(i int) (string, []byte)) error {
	var wg sync.WaitGroup
	errc := make(chan error, n)
	sem := make(chan struct{}, conc)
	for i := 0; i < n; i++ {
		key, body := content(i)
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(body)})
			if err != nil {
				errc <- fmt.Errorf("put %s: %w", key, err)
			}
		}()
		if len(errc) > 0 {
			break
		}
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// getMany fetches objects concurrently and calls check with each body.
func getMany(ctx context.Context, c *s3.Client, bucket string, keys []string, conc int, check func(key string, body []byte) error) error {
	sort.Strings(keys)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, conc)
	for _, key := range keys {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			err := func() error {
				out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
				if err != nil {
					return err
				}
				defer out.Body.Close()
				b, err := io.ReadAll(out.Body)
				if err != nil {
					return err
				}
				return check(key, b)
			}()
			if err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("%s: %w", key, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// sdkRead downloads key (size bytes) with conc parallel ranged GETs of
// partSize, hashing the parts in order as they arrive; memory stays bounded
// by conc parts. It returns the hex SHA-256.
func sdkRead(ctx context.Context, c *s3.Client, bucket, key string, size, partSize int64, conc int, h hash.Hash) (string, error) {
	nparts := int((size + partSize - 1) / partSize)
	type part struct {
		b   []byte
		err error
	}
	slots := make([]chan part, nparts)
	for i := range slots {
		slots[i] = make(chan part, 1)
	}
	tokens := make(chan struct{}, conc)
	pool := make(chan []byte, conc)
	for i := 0; i < conc; i++ {
		pool <- make([]byte, partSize)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for i := 0; i < nparts; i++ {
			select {
			case tokens <- struct{}{}:
			case <-ctx.Done():
				return
			}
			var buf []byte
			select {
			case buf = <-pool:
			case <-ctx.Done():
				return
			}
			off := int64(i) * partSize
			n := min(partSize, size-off)
			go func() {
				rng := fmt.Sprintf("bytes=%d-%d", off, off+n-1)
				out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key, Range: &rng})
				if err != nil {
					slots[i] <- part{buf, err}
					return
				}
				_, err = io.ReadFull(out.Body, buf[:n])
				out.Body.Close()
				slots[i] <- part{buf[:n], err}
			}()
		}
	}()
	for i := 0; i < nparts; i++ {
		var p part
		select {
		case p = <-slots[i]:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		if p.err != nil {
			return "", fmt.Errorf("part %d: %w", i, p.err)
		}
		h.Write(p.b)
		pool <- p.b[:cap(p.b)]
		<-tokens
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// sdkWrite uploads size bytes of gen as key: one PUT up to partSize, else a
// multipart upload with conc parts of partSize in flight, each part generated
// just before it is sent. It returns when the object is complete. With crc,
// it sends what bucketfs's default --upload-checksum crc32c sends: every
// body with its CRC-32C and an unsigned payload (the upload created with
// the CRC-32C algorithm, completed with the parts' checksums); without, the
// SDK's default, a signed payload (SHA-256 of every body over HTTP).
func sdkWrite(ctx context.Context, c *s3.Client, bucket, key string, gen dataGen, size, partSize int64, conc int, crc bool) error {
	var opts []func(*s3.Options)
	algo := types.ChecksumAlgorithm("")
	if crc {
		opts = append(opts, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
		algo = types.ChecksumAlgorithmCrc32c
	}
	if size <= partSize {
		b := make([]byte, size)
		gen.ReadAt(b, 0)
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(b), ChecksumCRC32C: crc32cHeader(crc, b)}, opts...)
		return err
	}
	cr, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &bucket, Key: &key, ChecksumAlgorithm: algo})
	if err != nil {
		return err
	}
	uploadID := cr.UploadId
	abort := func() {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = c.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: &key, UploadId: uploadID})
	}
	nparts := int((size + partSize - 1) / partSize)
	etags := make([]string, nparts)
	sums := make([]*string, nparts)
	pool := make(chan []byte, conc)
	for i := 0; i < conc; i++ {
		pool <- make([]byte, partSize)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := 0; i < nparts; i++ {
		buf := <-pool
		mu.Lock()
		failed := first != nil
		mu.Unlock()
		if failed {
			break
		}
		off := int64(i) * partSize
		n := min(partSize, size-off)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { pool <- buf }()
			gen.ReadAt(buf[:n], off)
			num := int32(i + 1)
			sum := crc32cHeader(crc, buf[:n])
			out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: &bucket, Key: &key, UploadId: uploadID,
				PartNumber: &num, Body: bytes.NewReader(buf[:n]), ContentLength: &n, ChecksumCRC32C: sum}, opts...)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = fmt.Errorf("part %d: %w", num, err)
				}
				return
			}
			etags[i], sums[i] = aws.ToString(out.ETag), sum
		}()
	}
	wg.Wait()
	if first != nil {
		abort()
		return first
	}
	parts := make([]types.CompletedPart, nparts)
	for i := range parts {
		parts[i] = types.CompletedPart{ETag: aws.String(etags[i]), PartNumber: aws.Int32(int32(i + 1)), ChecksumCRC32C: sums[i]}
	}
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &bucket, Key: &key, UploadId: uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	if err != nil {
		abort()
		return err
	}
	return nil
}

// objectSHA256 streams key from the bucket and returns its hex SHA-256 and size.
func objectSHA256(ctx context.Context, c *s3.Client, bucket, key string, partSize int64, conc int) (string, int64, error) {
	h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return "", 0, err
	}
	size := aws.ToInt64(h.ContentLength)
	if size == 0 {
		return hex.EncodeToString(sha256.New().Sum(nil)), 0, nil
	}
	sum, err := sdkRead(ctx, c, bucket, key, size, partSize, conc, sha256.New())
	return sum, size, err
}

var errWrong = errors.New("data check failed")

// crc32cHeader is the x-amz-checksum-crc32c value of b (nil without crc).
func crc32cHeader(crc bool, b []byte) *string {
	if !crc {
		return nil
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
	return aws.String(base64.StdEncoding.EncodeToString(sum[:]))
}

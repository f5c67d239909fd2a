package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// s3ctx bounds one SDK call made by a test.
func s3ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 60*time.Second)
}

// isNotFound reports whether err is S3's "no such key" (GET or HEAD).
func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return true
		}
	}
	return false
}

// Put writes an object under the mount's prefix with the SDK, as another
// writer would. meta is user metadata without the x-amz-meta- prefix.
func (m *Mount) Put(name string, body []byte, meta map[string]string) {
	m.t.Helper()
	putObject(m.t, m.S3, m.Bucket, m.Key(name), body, meta)
}

func putObject(t testing.TB, c *s3.Client, bucket, key string, body []byte, meta map[string]string) {
	t.Helper()
	// A big body gets a second per MiB beyond s3ctx's minute: two CI runs
	// at once on two cores once stalled MinIO's disk for two minutes, and
	// a 256 MiB setup PUT ran out of its minute (the test itself, slow,
	// would have passed, as it did in the other run).
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second+time.Duration(len(body)>>20)*time.Second)
	defer cancel()
	in := &s3.PutObjectInput{
		Bucket:   aws.String(bucket),
		Key:      aws.String(key),
		Body:     bytes.NewReader(body),
		Metadata: meta,
	}
	if strings.HasSuffix(key, "/") {
		in.ContentType = aws.String("application/x-directory")
	}
	if _, err := c.PutObject(ctx, in); err != nil {
		t.Fatalf("PutObject %s/%s: %v", bucket, key, err)
	}
}

// Delete removes an object with the SDK.
func (m *Mount) Delete(name string) {
	m.t.Helper()
	ctx, cancel := s3ctx()
	defer cancel()
	if _, err := m.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(m.Bucket), Key: aws.String(m.Key(name))}); err != nil {
		m.t.Fatalf("DeleteObject %s: %v", m.Key(name), err)
	}
}

// Get returns the object's body; the test fails if it does not exist.
func (m *Mount) Get(name string) []byte {
	m.t.Helper()
	b, err := m.TryGet(name)
	if err != nil {
		m.t.Fatalf("GetObject %s: %v", m.Key(name), err)
	}
	return b
}

// TryGet returns the object's body or the SDK's error.
func (m *Mount) TryGet(name string) ([]byte, error) {
	return getObject(m.S3, m.Bucket, m.Key(name))
}

func getObject(c *s3.Client, bucket, key string) ([]byte, error) {
	ctx, cancel := s3ctx()
	defer cancel()
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

// Head returns the object's HEAD; the test fails if it does not exist.
func (m *Mount) Head(name string) *s3.HeadObjectOutput {
	m.t.Helper()
	h, err := m.TryHead(name)
	if err != nil {
		m.t.Fatalf("HeadObject %s: %v", m.Key(name), err)
	}
	return h
}

// TryHead returns the object's HEAD or the SDK's error.
func (m *Mount) TryHead(name string) (*s3.HeadObjectOutput, error) {
	ctx, cancel := s3ctx()
	defer cancel()
	return m.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(m.Bucket), Key: aws.String(m.Key(name))})
}

// Exists reports whether the object exists (failing the test on errors
// other than not-found).
func (m *Mount) Exists(name string) bool {
	m.t.Helper()
	_, err := m.TryHead(name)
	if err == nil {
		return true
	}
	if !isNotFound(err) {
		m.t.Fatalf("HeadObject %s: %v", m.Key(name), err)
	}
	return false
}

// Keys lists every key of the bucket that starts with the mount prefix +
// prefix, relative to the mount prefix, sorted.
func (m *Mount) Keys(prefix string) []string {
	m.t.Helper()
	keys := listKeys(m.t, m.S3, m.Bucket, m.Key(prefix))
	for i, k := range keys {
		keys[i] = strings.TrimPrefix(k, m.Prefix)
	}
	return keys
}

// AllKeys lists every key of the bucket (full keys, ignoring the prefix).
func (m *Mount) AllKeys() []string {
	m.t.Helper()
	return listKeys(m.t, m.S3, m.Bucket, "")
}

func listKeys(t testing.TB, c *s3.Client, bucket, prefix string) []string {
	t.Helper()
	ctx, cancel := s3ctx()
	defer cancel()
	var keys []string
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListObjectsV2 %s/%s: %v", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	sort.Strings(keys)
	return keys
}

// putMany uploads n objects named by name(i) with body(i) using workers
// parallel PUTs.
func (m *Mount) putMany(n, workers int, name func(int) string, body func(int) []byte) {
	m.t.Helper()
	jobs := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				ctx, cancel := s3ctx()
				_, err := m.S3.PutObject(ctx, &s3.PutObjectInput{
					Bucket: aws.String(m.Bucket),
					Key:    aws.String(m.Key(name(i))),
					Body:   bytes.NewReader(body(i)),
				})
				cancel()
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("PutObject %s: %w", name(i), err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		m.t.Fatal(firstErr)
	}
}

package miniotest

import (
	"bytes"
	"context"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

var bucketRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)

func TestBucketName(t *testing.T) {
	for _, hint := range []string{"", "TestFoo", "TestFoo/sub_test#01", strings.Repeat("Ab/", 50), "---"} {
		n := BucketName(hint)
		if !bucketRE.MatchString(n) || strings.Contains(n, "--") {
			t.Errorf("BucketName(%q) = %q: not a valid bucket name", hint, n)
		}
	}
	// Two names for the same hint must differ: each test gets its own bucket.
	first, second := BucketName("x"), BucketName("x")
	if first == second {
		t.Errorf("BucketName is not unique: %q twice", first)
	}
}

func put(t *testing.T, c *s3.Client, bucket, key, body string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func get(t *testing.T, c *s3.Client, bucket, key string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return string(b)
}

func TestStartPutGetRestart(t *testing.T) {
	s := StartT(t)
	if !strings.HasPrefix(s.Endpoint, "http://127.0.0.1:") || s.AccessKey == "" || s.SecretKey == "" {
		t.Fatalf("bad server fields: %+v", s)
	}
	bucket := s.NewBucket(t)
	if !bucketRE.MatchString(bucket) {
		t.Fatalf("NewBucket returned invalid name %q", bucket)
	}
	c := s.Client()
	put(t, c, bucket, "dir/hello.txt", "hello, world")
	if got := get(t, c, bucket, "dir/hello.txt"); got != "hello, world" {
		t.Fatalf("get = %q", got)
	}

	endpoint, key := s.Endpoint, s.SecretKey
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := s.Restart(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	if s.Endpoint != endpoint || s.SecretKey != key {
		t.Fatalf("restart changed endpoint/keys: %s -> %s", endpoint, s.Endpoint)
	}
	// A client made before the restart still works: same port and keys.
	if got := get(t, c, bucket, "dir/hello.txt"); got != "hello, world" {
		t.Fatalf("after restart get = %q", got)
	}

	// Kill, then the endpoint refuses; Restart brings the data back.
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if s.Running() {
		t.Fatal("Running after Kill")
	}
	short, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if _, err := c.HeadBucket(short, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err == nil {
		t.Fatal("HeadBucket succeeded on a killed server")
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatalf("restart after kill: %v", err)
	}
	if got := get(t, c, bucket, "dir/hello.txt"); got != "hello, world" {
		t.Fatalf("after kill+restart get = %q", got)
	}

	log, err := os.ReadFile(s.LogPath)
	if err != nil || len(bytes.TrimSpace(log)) == 0 {
		t.Errorf("minio log %s missing or empty: %v", s.LogPath, err)
	}
	if strings.Contains(string(log), s.SecretKey) {
		t.Error("minio log contains the secret key")
	}
}

func TestTwoServersAreIsolated(t *testing.T) {
	a, b := StartT(t), StartT(t)
	if a.Endpoint == b.Endpoint || a.AccessKey == b.AccessKey {
		t.Fatal("two servers share an endpoint or keys")
	}
	bucket := a.NewBucket(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := b.Client().HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err == nil {
		t.Fatal("bucket of server a visible on server b")
	}
}

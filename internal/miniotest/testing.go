package miniotest

import (
	"context"
	"strings"
	"testing"
	"time"
)

// StartT starts a fresh MinIO for a test and stops it when the test ends.
// It never skips: a test that needs MinIO fails if MinIO cannot start.
func StartT(t testing.TB) *Server {
	t.Helper()
	return StartTWith(t, Options{})
}

// StartTWith is StartT with options. Unless opts.DataDir is set, the data
// lives under t.TempDir() and is removed with it.
func StartTWith(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir() + "/data"
	}
	// The first call may build MinIO from source (minutes); allow for it.
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout+time.Minute)
	defer cancel()
	s, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("miniotest: start minio: %v", err)
	}
	// Registered after TempDir's cleanup, so it runs first: MinIO is down
	// before its directory is removed.
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Logf("miniotest: stop minio: %v", err)
		}
	})
	return s
}

// NewBucket creates a bucket with a unique, valid name derived from the
// test's name and returns the name.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	name := BucketName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.CreateBucket(ctx, name); err != nil {
		t.Fatalf("miniotest: %v", err)
	}
	return name
}

// BucketName turns hint into a unique valid bucket name: 3–63 characters of
// lower-case letters, digits and single hyphens, starting and ending with a
// letter or digit, never shaped like an IP address.
func BucketName(hint string) string {
	var b strings.Builder
	b.WriteString("t-")
	lastHyphen := true
	for _, r := range strings.ToLower(hint) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
			lastHyphen = false
		case !lastHyphen:
			b.WriteByte('-')
			lastHyphen = true
		}
	}
	suffix := randHex(4) // 8 characters
	base := b.String()
	if max := 63 - 1 - len(suffix); len(base) > max {
		base = base[:max]
	}
	base = strings.TrimRight(base, "-")
	return base + "-" + suffix
}

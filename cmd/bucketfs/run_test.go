package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	bfs "github.com/novitalabs/bucketfs/fs"
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

// fakeStore fails CheckBucket with err; nothing else may be called.
type fakeStore struct {
	s3backend.ObjectStore // nil: any other call panics, which is the point
	err                   error
}

func (f fakeStore) CheckBucket(context.Context) error { return f.err }

// TestRunFailsCleanly: start-up failures return one-line errors before
// anything is mounted, and leave no staging directory behind.
func TestRunFailsCleanly(t *testing.T) {
	oldOpen, oldDev := openStore, fuseDevice
	t.Cleanup(func() { openStore, fuseDevice = oldOpen, oldDev })
	fuseDevice = filepath.Join(t.TempDir(), "fuse")
	writeFile(t, fuseDevice, "", 0o666) // openable stand-in: the check passes without root
	var gotCfg s3backend.Config
	openStore = func(_ context.Context, c s3backend.Config) (bucketStore, error) {
		gotCfg = c
		return fakeStore{err: &s3backend.OpError{Op: "ListObjectsV2", Err: s3backend.ErrNoSuchBucket, Code: "NoSuchBucket", StatusCode: 404}}, nil
	}
	staging := t.TempDir()
	home := t.TempDir()
	writeFile(t, filepath.Join(home, ".passwd-s3fs"), "b:K:S\n", 0o600)
	env := testEnv(nil)
	env.Home = home
	mnt := t.TempDir()

	cfg, err := parseArgs([]string{"--staging-dir", staging, "b:pre", mnt, "-o", "url=http://127.0.0.1:1/,endpoint=r1"}, env)
	if err != nil {
		t.Fatal(err)
	}
	err = run(context.Background(), cfg)
	if err == nil || err.Error() != `bucket "b" does not exist at http://127.0.0.1:1` {
		t.Fatalf("run = %v", err)
	}
	if gotCfg.Bucket != "b" || gotCfg.Prefix != "pre/" || gotCfg.Endpoint != "http://127.0.0.1:1" ||
		gotCfg.Region != "r1" || !gotCfg.PathStyle || gotCfg.Credentials == nil {
		t.Errorf("store config %+v", gotCfg)
	}
	// Only the claimed directory's lock is left: nothing was staged.
	sub := stagingDirFor(staging, cfg)
	if ents, _ := os.ReadDir(sub); len(ents) > 1 || (len(ents) == 1 && ents[0].Name() != ".lock") {
		t.Errorf("staging dir %s not clean: %v", sub, ents)
	}

	// The mountpoint is checked before any network access.
	writeFile(t, filepath.Join(mnt, "x"), "", 0o644)
	openStore = func(context.Context, s3backend.Config) (bucketStore, error) {
		t.Error("store opened despite a bad mountpoint")
		return nil, errors.New("no")
	}
	if err := run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "is not empty (use -o nonempty)") {
		t.Errorf("run = %v", err)
	}
}

func TestClaimStagingDir(t *testing.T) {
	base := filepath.Join(t.TempDir(), "st")
	d1, release1, err := bfs.ClaimStagingDir(base)
	if err != nil {
		t.Fatal(err)
	}
	d2, release2, err := bfs.ClaimStagingDir(base)
	if err != nil {
		t.Fatal(err)
	}
	if d1 != base || d2 != base+".2" {
		t.Errorf("staging dirs %s %s, want %s and %s.2 (the first is locked by a live mount)", d1, d2, base, base)
	}
	if st, err := os.Stat(d1); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("staging dir mode: %v %v", st, err)
	}
	release1()
	d3, release3, err := bfs.ClaimStagingDir(base)
	if err != nil {
		t.Fatal(err)
	}
	if d3 != base {
		t.Errorf("after release, claimed %s, want %s again (a restarted daemon finds its files)", d3, base)
	}
	release2()
	release3()
}

func TestStagingDirFor(t *testing.T) {
	a := stagingDirFor("/s", &Config{Bucket: "b", Prefix: "p/", Endpoint: "http://x"})
	b := stagingDirFor("/s", &Config{Bucket: "b", Prefix: "q/", Endpoint: "http://x"})
	if a == b || filepath.Dir(a) != "/s" || !strings.HasPrefix(filepath.Base(a), "b-") {
		t.Errorf("stagingDirFor: %s %s", a, b)
	}
	if a != stagingDirFor("/s", &Config{Bucket: "b", Prefix: "p/", Endpoint: "http://x"}) {
		t.Error("stagingDirFor is not stable")
	}
}

func TestPlainHTTPWithStaticKeys(t *testing.T) {
	static := credentials.NewStaticCredentialsProvider("k", "s", "")
	for _, tc := range []struct {
		endpoint string
		creds    aws.CredentialsProvider
		want     bool
	}{
		{"http://127.0.0.1:9000", static, true},
		{"HTTP://minio:9000", static, true},
		{"https://s3.example.com", static, false},
		{"", static, false},                   // AWS: HTTPS
		{"http://127.0.0.1:9000", nil, false}, // the SDK chain may call STS over HTTPS
	} {
		if got := plainHTTPWithStaticKeys(tc.endpoint, tc.creds); got != tc.want {
			t.Errorf("plainHTTPWithStaticKeys(%q, %v) = %v, want %v", tc.endpoint, tc.creds != nil, got, tc.want)
		}
	}
}

package test

import (
	"bytes"
	"crypto/md5" //nolint:gosec // S3 defines the SSE-C key digest as MD5
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/novitalabs/bucketfs/internal/miniotest"
)

// sseKMSKey names the static KMS key of the MinIO the encryption tests run.
const sseKMSKey = "bucketfs-it-key"

// startSSEMinio starts a MinIO with a KMS key (SSE-S3 and SSE-KMS need
// one) and TLS (MinIO refuses SSE-C keys over plain HTTP), and returns it
// with the CA file bucketfs must trust.
func startSSEMinio(t *testing.T) (*miniotest.Server, string) {
	t.Helper()
	needSuite(t)
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	ca := writeTestPKI(t, dir, certs)
	return miniotest.StartTWith(t, miniotest.Options{CertsDir: certs, KMSKey: sseKMSKey}), ca
}

// encryptedFiles are written through the mount by the encryption tests:
// one PUT and one multipart upload (40 MiB, above the 16 MiB part size).
var encryptedFiles = map[string][]byte{
	"small.txt":     []byte("encrypted at rest\n"),
	"dir/big.bin":   randBytes(12, 40<<20),
	"renamed-later": []byte("renamed: a server-side copy\n"),
}

// writeEncryptedFiles writes encryptedFiles through m.
func writeEncryptedFiles(t *testing.T, m *Mount) {
	t.Helper()
	if err := os.Mkdir(m.Path("dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range encryptedFiles {
		writeFile(t, m.Path(name), body)
	}
}

// unmountAll unmounts m, which uploads everything pending first.
func unmountAll(t *testing.T, m *Mount) {
	t.Helper()
	if m.Unmount() != 0 {
		t.Fatal("unmount failed")
	}
}

// TestS3fsOptionUseSSE: with -o use_sse (SSE-S3) and -o use_sse=kmsid:KEY
// (SSE-KMS), every object written through the mount, by PUT, multipart
// upload or server-side copy (rename), is encrypted that way.
func TestS3fsOptionUseSSE(t *testing.T) {
	t.Parallel()
	srv, ca := startSSEMinio(t)
	cases := []struct {
		name, opt string
		want      types.ServerSideEncryption
		keyID     string
	}{
		{"SSE-S3", "use_sse", types.ServerSideEncryptionAes256, ""},
		{"SSE-KMS", "use_sse=kmsid:" + sseKMSKey, types.ServerSideEncryptionAwsKms, sseKMSKey},
		{"native --sse-kms-key-id", "", types.ServerSideEncryptionAwsKms, sseKMSKey},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := []mountOpt{onServer(srv), withEnv("AWS_CA_BUNDLE=" + ca)}
			if tc.opt != "" {
				opts = append(opts, withO(tc.opt))
			} else {
				opts = append(opts, withFlags("--sse-kms-key-id", tc.keyID))
			}
			m := mount(t, opts...)
			writeEncryptedFiles(t, m)
			if err := os.Rename(m.Path("renamed-later"), m.Path("renamed")); err != nil {
				t.Fatal(err)
			}
			unmountAll(t, m)
			for _, name := range []string{"small.txt", "dir/big.bin", "renamed", "dir/"} {
				h := m.Head(name)
				if h.ServerSideEncryption != tc.want {
					t.Errorf("%s: ServerSideEncryption %q, want %q", name, h.ServerSideEncryption, tc.want)
				}
				if tc.keyID != "" && !strings.HasSuffix(aws.ToString(h.SSEKMSKeyId), tc.keyID) {
					t.Errorf("%s: SSEKMSKeyId %q, want key %q", name, aws.ToString(h.SSEKMSKeyId), tc.keyID)
				}
			}
			sameBytes(t, "dir/big.bin", m.Get("dir/big.bin"), encryptedFiles["dir/big.bin"])
		})
	}
}

// TestS3fsOptionSSEC: with -o use_sse=custom:FILE every object is written
// with the customer key: it reads back through a new mount (whole, after
// an append that copies the untouched range server-side, after a rename),
// while a HEAD without the key fails.
func TestS3fsOptionSSEC(t *testing.T) {
	t.Parallel()
	srv, ca := startSSEMinio(t)
	key := randBytes(99, 32)
	keyFile := filepath.Join(t.TempDir(), "sse-c.key")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := []mountOpt{onServer(srv), withEnv("AWS_CA_BUNDLE=" + ca), withO("use_sse=custom:" + keyFile)}
	m := mount(t, opts...)
	writeEncryptedFiles(t, m)
	unmountAll(t, m)

	for _, name := range []string{"small.txt", "dir/big.bin"} {
		if _, err := m.TryHead(name); err == nil {
			t.Errorf("%s: HEAD without the SSE-C key succeeded", name)
		}
		h, err := headWithKey(m, name, key)
		if err != nil {
			t.Errorf("%s: HEAD with the SSE-C key: %v", name, err)
		} else if aws.ToString(h.SSECustomerAlgorithm) != "AES256" {
			t.Errorf("%s: SSECustomerAlgorithm %q", name, aws.ToString(h.SSECustomerAlgorithm))
		}
	}
	// Another tool's object, written in the clear, stays readable.
	m.Put("plain.txt", []byte("no key needed"), nil)

	m2 := mount(t, append(opts, onBucket(m.Bucket))...)
	for name, body := range encryptedFiles {
		sameBytes(t, name, readFile(t, m2.Path(name)), body)
	}
	sameBytes(t, "plain.txt", readFile(t, m2.Path("plain.txt")), []byte("no key needed"))
	// An append to the 40 MiB object uploads only the new bytes and
	// copies the rest server-side (UploadPartCopy with the copy-source key).
	f, err := os.OpenFile(m2.Path("dir/big.bin"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("appended")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(m2.Path("renamed-later"), m2.Path("renamed")); err != nil {
		t.Fatal(err)
	}
	unmountAll(t, m2)

	m3 := mount(t, append(opts, onBucket(m.Bucket))...)
	want := append(append([]byte{}, encryptedFiles["dir/big.bin"]...), "appended"...)
	sameBytes(t, "dir/big.bin after append", readFile(t, m3.Path("dir/big.bin")), want)
	sameBytes(t, "renamed", readFile(t, m3.Path("renamed")), encryptedFiles["renamed-later"])
	if _, err := m3.TryHead("renamed"); err == nil {
		t.Error("renamed: HEAD without the SSE-C key succeeded")
	}
}

// headWithKey sends a HEAD of name with the SSE-C key.
func headWithKey(m *Mount, name string, key []byte) (*s3.HeadObjectOutput, error) {
	sum := md5.Sum(key) //nolint:gosec // the digest S3 asks for
	ctx, cancel := s3ctx()
	defer cancel()
	return m.S3.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket:               aws.String(m.Bucket),
		Key:                  aws.String(m.Key(name)),
		SSECustomerAlgorithm: aws.String("AES256"),
		SSECustomerKey:       aws.String(base64.StdEncoding.EncodeToString(key)),
		SSECustomerKeyMD5:    aws.String(base64.StdEncoding.EncodeToString(sum[:])),
	})
}

// TestS3fsOptionRefused: an option that cannot be honoured stops the
// mount with one line, before anything is mounted.
func TestS3fsOptionRefused(t *testing.T) {
	t.Parallel()
	needSuite(t)
	bucket := sharedMinio.NewBucket(t)
	loose := filepath.Join(t.TempDir(), "loose.key")
	if err := os.WriteFile(loose, bytes.Repeat([]byte("k"), 32), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, fc := range []struct {
		post  string
		cause string
	}{
		{"use_sse=custom:" + loose, `SSE-C key file .* has mode 0644`},
		{"use_sse=custom:/nonexistent/key", `SSE-C key file.*no such file`},
		{"storage_class=cheapest", `storage_class=cheapest: not an S3 storage class`},
		{"default_acl=world", `default_acl=world: not a canned ACL`},
		{"load_sse_c=/k", `load_sse_c`},
		{"multipart_size=1", `multipart_size=1`},
		{"ensure_diskfree=1000000000", `ensure_diskfree=1000000000MiB: only .* free where files are staged`},
	} {
		expectMountFailure(t, failCase{
			target: bucket, endpoint: sharedMinio.Endpoint, creds: true,
			post:  []string{"-o", fc.post},
			cause: regexp.MustCompile(fc.cause),
		})
	}
}

// headerRecorder is a reverse proxy in front of MinIO that records the
// headers bucketfs sends, for what MinIO accepts but does not show (ACLs,
// requester pays).
type headerRecorder struct {
	srv *httptest.Server
	mu  sync.Mutex // guards reqs
	// reqs holds, per request, the method, the path and the headers.
	reqs []recordedRequest
}

type recordedRequest struct {
	method, path, query string
	header              http.Header
}

func startHeaderRecorder(t *testing.T, target string) *headerRecorder {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	h := &headerRecorder{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.reqs = append(h.reqs, recordedRequest{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, header: r.Header.Clone()})
		h.mu.Unlock()
		// The Host header stays the proxy's: it is what the request was
		// signed for.
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *headerRecorder) requests() []recordedRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]recordedRequest(nil), h.reqs...)
}

// TestS3fsOptionStorageClassACLRequesterPays: storage_class= shows in
// HeadObject (MinIO knows STANDARD and REDUCED_REDUNDANCY); default_acl=
// and requester_pays, which MinIO accepts without showing, are checked on
// the wire: the ACL on every PUT, multipart create and copy, the payer
// header on every request.
func TestS3fsOptionStorageClassACLRequesterPays(t *testing.T) {
	t.Parallel()
	needSuite(t)
	rec := startHeaderRecorder(t, sharedMinio.Endpoint)
	m := mount(t, withoutEndpointFlag(),
		withO("url="+rec.srv.URL, "storage_class=reduced_redundancy", "default_acl=public-read", "requester_pays"))
	writeFile(t, m.Path("small"), []byte("classy"))
	writeFile(t, m.Path("big"), randBytes(5, 20<<20))
	if err := os.Rename(m.Path("small"), m.Path("moved")); err != nil {
		t.Fatal(err)
	}
	unmountAll(t, m)
	for _, name := range []string{"moved", "big"} {
		if h := m.Head(name); h.StorageClass != types.StorageClassReducedRedundancy {
			t.Errorf("%s: StorageClass %q, want REDUCED_REDUNDANCY", name, h.StorageClass)
		}
	}
	var writes int
	for _, r := range rec.requests() {
		if got := r.header.Get("X-Amz-Request-Payer"); got != "requester" {
			t.Errorf("%s %s?%s: x-amz-request-payer %q, want requester", r.method, r.path, r.query, got)
		}
		creates := r.method == http.MethodPut && !strings.Contains(r.query, "partNumber=") ||
			r.method == http.MethodPost && strings.Contains(r.query, "uploads")
		if !creates {
			continue
		}
		writes++
		if got := r.header.Get("X-Amz-Acl"); got != "public-read" {
			t.Errorf("%s %s?%s: x-amz-acl %q, want public-read", r.method, r.path, r.query, got)
		}
		if got := r.header.Get("X-Amz-Storage-Class"); got != "REDUCED_REDUNDANCY" {
			t.Errorf("%s %s?%s: x-amz-storage-class %q, want REDUCED_REDUNDANCY", r.method, r.path, r.query, got)
		}
	}
	// small (PUT), big (multipart create), the rename's copy.
	if writes < 3 {
		t.Errorf("saw %d object writes through the proxy, want at least 3", writes)
	}
}

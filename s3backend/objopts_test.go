package s3backend

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/novitalabs/bucketfs/internal/miniotest"
)

// testKMSKey names the static KMS key of the MinIO the encryption tests
// start.
const testKMSKey = "bucketfs-test-key"

func TestEncryption(t *testing.T) {
	// SSE-S3 and SSE-KMS need MinIO's KMS, SSE-C needs TLS.
	certsDir, ca := writeTestPKI(t)
	srv := miniotest.StartTWith(t, miniotest.Options{CertsDir: certsDir, KMSKey: testKMSKey})
	t.Setenv("AWS_CA_BUNDLE", ca)
	raw := srv.Client()
	key := bytes.Repeat([]byte{0x5a}, SSECKeySize)

	cases := []struct {
		name    string
		enc     Encryption
		wantSSE types.ServerSideEncryption
	}{
		{"SSE-S3", Encryption{Mode: SSES3}, types.ServerSideEncryptionAes256},
		{"SSE-KMS", Encryption{Mode: SSEKMS, KMSKeyID: testKMSKey}, types.ServerSideEncryptionAwsKms},
		{"SSE-C", Encryption{Mode: SSEC, CustomerKey: key}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bucket := srv.NewBucket(t)
			cfg := storeConfig(srv, bucket)
			cfg.Encryption = tc.enc
			cfg.PartSize = minPartSize
			st, err := New(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx := testCtx(t)
			small := []byte("small object")
			big := randBytes(t, 2*minPartSize+1234) // multipart
			upload(t, st, "small", small, PutOptions{ContentType: "text/plain"})
			upload(t, st, "big", big, PutOptions{})
			if _, err := st.Copy(ctx, "small", "copied", "", &PutOptions{Metadata: map[string]string{"k": "v"}}); err != nil {
				t.Fatalf("Copy: %v", err)
			}
			// An edit as compose sends it: part 1 copied from the base
			// object server-side, part 2 uploaded.
			id, err := st.CreateMultipart(ctx, "edited", PutOptions{PartCopies: true})
			if err != nil {
				t.Fatal(err)
			}
			e1, err := st.UploadPartCopy(ctx, "edited", id, 1, "big", 0, minPartSize, "")
			if err != nil {
				t.Fatalf("UploadPartCopy: %v", err)
			}
			e2, err := st.UploadPart(ctx, "edited", id, 2, bytes.NewReader(small), int64(len(small)))
			if err != nil {
				t.Fatalf("UploadPart: %v", err)
			}
			if _, err := st.CompleteMultipart(ctx, "edited", id, []CompletedPart{{Number: 1, ETag: e1}, {Number: 2, ETag: e2}}); err != nil {
				t.Fatalf("CompleteMultipart: %v", err)
			}
			want := map[string][]byte{"small": small, "big": big, "copied": small,
				"edited": append(append([]byte{}, big[:minPartSize]...), small...)}
			for k, body := range want {
				if got := mustRead(t, st, k, 0, -1); !bytes.Equal(got, body) {
					t.Errorf("%s: read back %d bytes, want %d", k, len(got), len(body))
				}
				info, err := st.Head(ctx, k)
				if err != nil || info.Size != int64(len(body)) {
					t.Errorf("Head %s: %+v %v", k, info, err)
				}
				h, err := raw.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)})
				if tc.enc.Mode == SSEC {
					// Without the key the object cannot even be HEADed.
					if err == nil {
						t.Errorf("%s: HEAD without the SSE-C key succeeded", k)
					}
					continue
				}
				if err != nil {
					t.Fatalf("HeadObject %s: %v", k, err)
				}
				if h.ServerSideEncryption != tc.wantSSE {
					t.Errorf("%s: ServerSideEncryption %q, want %q", k, h.ServerSideEncryption, tc.wantSSE)
				}
				if tc.enc.KMSKeyID != "" && !strings.HasSuffix(aws.ToString(h.SSEKMSKeyId), tc.enc.KMSKeyID) {
					t.Errorf("%s: SSEKMSKeyId %q, want %q", k, aws.ToString(h.SSEKMSKeyId), tc.enc.KMSKeyID)
				}
			}
			if tc.enc.Mode == SSEC {
				// Objects other tools wrote in the clear stay readable.
				if _, err := raw.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("plain"),
					Body: bytes.NewReader(small)}); err != nil {
					t.Fatal(err)
				}
				if got := mustRead(t, st, "plain", 0, -1); !bytes.Equal(got, small) {
					t.Errorf("plain object read back as %q", got)
				}
				if info, err := st.Head(ctx, "plain"); err != nil || info.Size != int64(len(small)) {
					t.Errorf("Head plain: %+v %v", info, err)
				}
				if _, err := st.Copy(ctx, "plain", "plain-copy", "", nil); err != nil {
					t.Errorf("Copy of a plain object: %v", err)
				} else if got := mustRead(t, st, "plain-copy", 0, -1); !bytes.Equal(got, small) {
					t.Errorf("plain-copy read back as %q", got)
				}
				if _, err := st.Head(ctx, "missing"); !errors.Is(err, ErrNotFound) {
					t.Errorf("Head missing: %v, want ErrNotFound", err)
				}
			}
		})
	}
}

func TestStorageClassAndBadOptions(t *testing.T) {
	st, bucket := newStore(t, func(c *Config) { c.StorageClass = "reduced_redundancy" })
	upload(t, st, "f", []byte("x"), PutOptions{})
	ctx := testCtx(t)
	h, err := minio(t).Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("f")})
	if err != nil {
		t.Fatal(err)
	}
	if h.StorageClass != types.StorageClassReducedRedundancy {
		t.Errorf("StorageClass %q", h.StorageClass)
	}
	for _, cfg := range []Config{
		{Bucket: "b", StorageClass: "cheap"},
		{Bucket: "b", ACL: "everyone"},
		{Bucket: "b", Encryption: Encryption{Mode: SSEC, CustomerKey: []byte("short")}},
	} {
		if _, err := New(context.Background(), cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

package s3backend

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// storedChecksum is the CRC-32C the store keeps for key ("" for none).
func storedChecksum(t *testing.T, st *Store, key string) string {
	t.Helper()
	out, err := st.client.HeadObject(testCtx(t), &s3.HeadObjectInput{
		Bucket: aws.String(st.bucket), Key: aws.String(st.full(key)), ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		t.Fatalf("HeadObject %q: %v", key, err)
	}
	return aws.ToString(out.ChecksumCRC32C)
}

// With the default, every upload reaches the store with a CRC-32C it
// verified: the object keeps it (one for a PutObject, a composite of the
// parts' for a multipart upload).
func TestUploadChecksumCRC32C(t *testing.T) {
	st, _ := newStore(t, func(c *Config) { c.PartSize = minPartSize })
	small := []byte("checksummed")
	upload(t, st, "small", small, PutOptions{})
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc32.Checksum(small, crc32.MakeTable(crc32.Castagnoli)))
	if got, want := storedChecksum(t, st, "small"), base64.StdEncoding.EncodeToString(sum[:]); got != want {
		t.Errorf("small object's CRC-32C = %q, want %q", got, want)
	}
	big := randBytes(t, 2*minPartSize+4321)
	upload(t, st, "big", big, PutOptions{})
	if got := storedChecksum(t, st, "big"); len(got) < 3 || got[len(got)-2:] != "-3" {
		t.Errorf("multipart object's CRC-32C = %q, want a composite of 3 parts", got)
	}
	if got := mustRead(t, st, "big", 0, -1); !bytes.Equal(got, big) {
		t.Fatal("multipart object reads back different bytes")
	}
}

// changingReader gives other bytes on its second pass than on its first: a
// body that changed after its checksum was taken, as a corrupted transfer
// would look to the store.
type changingReader struct {
	data   []byte
	off    int
	passes int
}

func (r *changingReader) Read(p []byte) (int, error) {
	if r.off >= len(r.data) {
		return 0, io.EOF
	}
	n := copy(p, r.data[r.off:])
	if r.passes > 0 {
		p[0] ^= 0xff
	}
	r.off += n
	return n, nil
}

func (r *changingReader) Seek(off int64, whence int) (int64, error) {
	if whence != io.SeekStart && !(whence == io.SeekCurrent && off == 0) {
		return 0, errors.New("unsupported seek")
	}
	if whence == io.SeekStart {
		if r.off > 0 {
			r.passes++
		}
		r.off = int(off)
	}
	return int64(r.off), nil
}

// A body that is not what its checksum says is refused, not stored: the
// store, not the signature, is what checks the bytes now.
func TestUploadChecksumRefusesChangedBytes(t *testing.T) {
	st, _ := newStore(t, nil)
	ctx := testCtx(t)
	data := randBytes(t, 64<<10)
	_, err := st.putObject(ctx, "changed", &changingReader{data: data}, int64(len(data)), PutOptions{})
	if err == nil {
		t.Fatal("PutObject of a body that changed after its checksum succeeded")
	}
	if _, herr := st.Head(ctx, "changed"); !errors.Is(herr, ErrNotFound) {
		t.Errorf("Head after the refused PutObject: %v, want ErrNotFound", herr)
	}

	id, err := st.CreateMultipart(ctx, "changed-mp", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.UploadPart(ctx, "changed-mp", id, 1, &changingReader{data: data}, int64(len(data))); err == nil {
		t.Fatal("UploadPart of a body that changed after its checksum succeeded")
	}
	if err := st.AbortMultipart(ctx, "changed-mp", id); err != nil {
		t.Fatal(err)
	}
}

// An upload created by another process (a daemon killed mid-stream, whose
// successor finishes the upload from the sidecar's parts) is completed
// with the checksums the store lists for its parts.
func TestUploadChecksumFinishesAnotherProcessUpload(t *testing.T) {
	srv := minio(t)
	bucket := srv.NewBucket(t)
	first, err := New(context.Background(), storeConfig(srv, bucket))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	p1, p2 := randBytes(t, minPartSize), randBytes(t, 1000)
	id, err := first.CreateMultipart(ctx, "resumed", PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e1, err := first.UploadPart(ctx, "resumed", id, 1, bytes.NewReader(p1), int64(len(p1)))
	if err != nil {
		t.Fatal(err)
	}

	second, err := New(context.Background(), storeConfig(srv, bucket))
	if err != nil {
		t.Fatal(err)
	}
	e2, err := second.UploadPart(ctx, "resumed", id, 2, bytes.NewReader(p2), int64(len(p2)))
	if err != nil {
		t.Fatalf("UploadPart by a second store: %v", err)
	}
	if _, err := second.CompleteMultipart(ctx, "resumed", id, []CompletedPart{{Number: 1, ETag: e1}, {Number: 2, ETag: e2}}); err != nil {
		t.Fatalf("CompleteMultipart by a second store: %v", err)
	}
	if got := mustRead(t, second, "resumed", 0, -1); !bytes.Equal(got, append(p1, p2...)) {
		t.Fatal("resumed object reads back different bytes")
	}
}

// --upload-checksum sha256 sends what the SDK sends by default: no checksum
// header, so the store keeps none.
func TestUploadChecksumSHA256(t *testing.T) {
	st, _ := newStore(t, func(c *Config) { c.UploadChecksum = ChecksumSHA256; c.PartSize = minPartSize })
	upload(t, st, "small", []byte("signed"), PutOptions{})
	upload(t, st, "big", randBytes(t, minPartSize+10), PutOptions{})
	for _, key := range []string{"small", "big"} {
		if got := storedChecksum(t, st, key); got != "" {
			t.Errorf("%s: CRC-32C %q stored with --upload-checksum sha256", key, got)
		}
	}
	if _, err := ParseUploadChecksum("md5"); err == nil {
		t.Error("ParseUploadChecksum(md5) succeeded")
	}
}

func TestRefusesChecksums(t *testing.T) {
	for code, want := range map[string]bool{
		"InvalidArgument": true, "NotImplemented": true, "InvalidRequest": true,
		"BadDigest": false, "AccessDenied": false, "SlowDown": false,
	} {
		err := &OpError{Op: "PutObject", Cause: &smithy.GenericAPIError{Code: code}}
		if got := refusesChecksums(err); got != want {
			t.Errorf("refusesChecksums(%s) = %v, want %v", code, got, want)
		}
	}
	if refusesChecksums(context.DeadlineExceeded) {
		t.Error("refusesChecksums(deadline) = true")
	}
}

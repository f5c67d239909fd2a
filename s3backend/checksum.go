package s3backend

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// UploadChecksum says how the bytes of an upload are protected on their way
// to the store.
type UploadChecksum string

const (
	// ChecksumCRC32C (the default) sends each PutObject and each part
	// with an x-amz-checksum-crc32c header and an unsigned payload
	// (x-amz-content-sha256: UNSIGNED-PAYLOAD). The store recomputes the
	// CRC-32C and refuses the request (BadDigest) if a byte changed on the
	// way. Over plain HTTP this replaces SigV4's SHA-256 of the whole
	// body, which both the daemon and the store would otherwise compute:
	// CRC-32C runs in hardware, SHA-256 costs both sides a pass over every
	// byte. A multipart upload is created with the CRC-32C algorithm and
	// completed with every part's checksum, as S3 requires.
	ChecksumCRC32C UploadChecksum = "crc32c"
	// ChecksumSHA256 leaves the SDK's default: over HTTP the payload's
	// SHA-256 is signed (the store verifies it), over HTTPS the payload is
	// unsigned and TLS protects it. For stores that refuse checksum
	// headers; bucketfs also falls back to it by itself when a store
	// refuses the first checksummed request.
	ChecksumSHA256 UploadChecksum = "sha256"
)

// ParseUploadChecksum checks a --upload-checksum value.
func ParseUploadChecksum(s string) (UploadChecksum, error) {
	switch c := UploadChecksum(s); c {
	case ChecksumCRC32C, ChecksumSHA256:
		return c, nil
	case "":
		return ChecksumCRC32C, nil
	}
	return "", fmt.Errorf("unknown upload checksum %q (want crc32c or sha256)", s)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crcBuffers are the read buffers of crc32cOf: big reads from a staging
// file, without a buffer per call.
var crcBuffers = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// crc32cOf reads r to its end and rewinds it, returning the base64 of its
// big-endian CRC-32C, the form of the x-amz-checksum-crc32c header.
func crc32cOf(r io.ReadSeeker) (string, error) {
	start, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return "", err
	}
	h := crc32.New(castagnoli)
	if br, ok := r.(*bytes.Reader); ok {
		// Bytes in memory (a streamed part): summed in place, no copy.
		if _, err := br.WriteTo(h); err != nil {
			return "", err
		}
	} else {
		bp := crcBuffers.Get().(*[]byte)
		defer crcBuffers.Put(bp)
		if _, err := io.CopyBuffer(h, onlyReader{r}, *bp); err != nil {
			return "", err
		}
	}
	if _, err := r.Seek(start, io.SeekStart); err != nil {
		return "", err
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], h.Sum32())
	return base64.StdEncoding.EncodeToString(sum[:]), nil
}

// onlyReader hides a reader's WriteTo, so io.CopyBuffer uses our buffer.
type onlyReader struct{ io.Reader }

// unsignedPayload is the per-request option of a checksummed upload: the
// body is not hashed for the signature (the checksum header, set by the
// caller, protects it).
var unsignedPayload = s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)

// refusesChecksums tells whether err is a store's answer that it does not
// take checksum headers or unsigned payloads (rather than a checksum that
// did not match, BadDigest, which means the bytes changed on the way).
func refusesChecksums(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.ErrorCode() {
	case "InvalidArgument", "InvalidRequest", "NotImplemented", "XAmzContentSHA256Mismatch":
		return true
	}
	return false
}

// checksumsOff turns checksummed uploads off for the rest of the mount after
// the store refused one, and says so once.
func (s *Store) checksumsOff(op, key string, err error) {
	if s.crc.CompareAndSwap(true, false) {
		s.log.Warn("s3backend: the store refused a CRC-32C-checksummed upload with an unsigned payload; signing payloads (SHA-256) from now on (--upload-checksum sha256 says so from the start)",
			"op", op, "key", key, "err", err)
	}
}

// partSums knows, for the multipart uploads this process sends parts to,
// whether each was created with the CRC-32C algorithm, and then the CRC-32C
// of every part, for their Complete, which must repeat them. An upload this
// process created is known from its CreateMultipart; one a killed daemon
// created (finished from its sidecar) is learnt from ListParts. Entries go
// at Complete or Abort.
type partSums struct {
	mu sync.Mutex             // guards m
	m  map[string]*uploadSums // by upload ID
}

type uploadSums struct {
	crc   bool             // created with ChecksumAlgorithm CRC32C
	parts map[int32]string // part number → base64 CRC-32C (crc only)
}

func (p *partSums) begin(uploadID string, crc bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = make(map[string]*uploadSums)
	}
	p.m[uploadID] = &uploadSums{crc: crc, parts: make(map[int32]string)}
}

// mode says whether uploadID is known and whether it takes CRC-32Cs.
func (p *partSums) mode(uploadID string) (crc, known bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	u, ok := p.m[uploadID]
	return ok && u.crc, ok
}

func (p *partSums) record(uploadID string, number int32, sum string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if u, ok := p.m[uploadID]; ok && u.crc {
		u.parts[number] = sum
	}
}

// get returns the checksum of part number ("" if unknown).
func (p *partSums) get(uploadID string, number int32) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if u, ok := p.m[uploadID]; ok {
		return u.parts[number]
	}
	return ""
}

func (p *partSums) end(uploadID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, uploadID)
}

// uploadMode says whether parts of uploadID carry CRC-32Cs, asking the store
// (ListParts, which also gives the checksums of the parts sent so far) the
// first time it meets an upload it did not create.
func (s *Store) uploadMode(ctx context.Context, key, uploadID string) (bool, error) {
	if crc, known := s.sums.mode(uploadID); known {
		return crc, nil
	}
	in := &s3.ListPartsInput{
		Bucket:   aws.String(s.bucket),
		Key:      aws.String(s.full(key)),
		UploadId: aws.String(uploadID),
	}
	in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = s.obj.customerKey()
	crc := false
	sums := map[int32]string{}
	for {
		pctx, cancel := s.requestContext(ctx)
		out, err := s.client.ListParts(pctx, in)
		cancel()
		if err != nil {
			return false, wrapErr("ListParts", key, err)
		}
		crc = crc || out.ChecksumAlgorithm == types.ChecksumAlgorithmCrc32c
		for _, pt := range out.Parts {
			sums[aws.ToInt32(pt.PartNumber)] = aws.ToString(pt.ChecksumCRC32C)
		}
		if !aws.ToBool(out.IsTruncated) || out.NextPartNumberMarker == nil {
			break
		}
		in.PartNumberMarker = out.NextPartNumberMarker
	}
	s.sums.begin(uploadID, crc)
	for n, sum := range sums {
		s.sums.record(uploadID, n, sum)
	}
	return crc, nil
}

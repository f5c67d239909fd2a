package s3backend

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/logging"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/novitalabs/bucketfs/internal/objstore"
)

// Transport and retry tuning. These are deliberately conservative bounds
// rather than flags: they decide how long a stuck request can hold a FUSE
// operation, which the user cannot reason about per request anyway.
const (
	// maxAttempts bounds the SDK's attempts per request (first try
	// included). Five attempts with exponential, jittered backoff capped at
	// maxBackoff ride out a MinIO restart or a burst of SlowDown (a few
	// seconds) without turning a dead endpoint into a minute-long hang.
	maxAttempts = 5
	maxBackoff  = 5 * time.Second

	dialTimeout           = 10 * time.Second
	tlsHandshakeTimeout   = 10 * time.Second
	responseHeaderTimeout = 60 * time.Second // after the request body is sent; S3/MinIO answer slow completes with early headers + whitespace
	idleConnTimeout       = 90 * time.Second
	maxIdleConnsPerHost   = 128 // parallel part uploads × open files + prefetch would otherwise churn connections
	maxIdleConns          = 256

	// checkTimeout bounds CheckBucket as a whole, and checkAttempts its
	// retries, so that a mount against a dead endpoint fails fast.
	checkTimeout  = 12 * time.Second
	checkAttempts = 2

	// abortTimeout bounds the AbortMultipartUpload sent after a failed
	// upload; it runs on a fresh context because the caller's may be done.
	abortTimeout = 30 * time.Second

	// maxSinglePut is S3's limit for one PutObject.
	maxSinglePut = 5 << 30
	// maxSingleCopy is S3's limit for CopyObject; larger sources are copied
	// with UploadPartCopy.
	maxSingleCopy = 5 << 30
	// copyPartSize is the part size of multipart copies: server-side, so
	// large parts cost nothing but save requests.
	copyPartSize = 512 << 20
	// maxParts is S3's limit on the number of parts of an upload.
	maxParts = 10000
	// minPartSize is S3's minimum size of every part but the last.
	minPartSize = 5 << 20
)

// Store is the aws-sdk-go-v2 implementation of ObjectStore.
type Store struct {
	client *s3.Client
	bucket string
	prefix string // "" or ending with "/"
	log    *slog.Logger

	partSize       int64
	concurrency    int
	multipartAbove int64
	requestTimeout time.Duration // of each write request (Config.RequestTimeout)

	// Multipart-copy tuning; fields so tests can exercise the >5 GiB path
	// with small objects.
	copyMultipartAbove int64
	copyPartSize       int64

	// obj is what every object written gets (encryption, storage class,
	// ACL); set by New, read-only after.
	obj objectOptions

	// crc: uploads carry a CRC-32C and an unsigned payload
	// (Config.UploadChecksum); cleared for good if the store refuses one.
	crc atomic.Bool
	// sums holds the part checksums of the uploads created with CRC-32C.
	sums partSums

	// minio: a response said "Server: MinIO"; with listMeta (the
	// default), listings then carry each object's headers (listmeta.go).
	minio    atomic.Bool
	listMeta bool
	// sdkListDecoder: listings are decoded by the SDK alone, not by
	// decodeListPage (listxml.go); tests compare the two.
	sdkListDecoder bool

	// listUploadsPage is the MaxUploads of each ListMultipartUploads page
	// (0: the store's default, 1000); a field so tests can page with few
	// uploads.
	listUploadsPage int32
}

var _ ObjectStore = (*Store)(nil)

// New builds a Store from cfg. It loads the AWS configuration (region,
// credentials chain, AWS_CA_BUNDLE …) but sends no request: use
// CheckBucket to verify that the bucket is reachable.
func New(ctx context.Context, cfg Config) (st *Store, err error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3backend: no bucket configured")
	}
	prefix := strings.TrimLeft(cfg.Prefix, "/")
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	st = &Store{
		bucket:             cfg.Bucket,
		prefix:             prefix,
		log:                cfg.Logger,
		partSize:           cfg.PartSize,
		concurrency:        cfg.UploadConcurrency,
		multipartAbove:     cfg.MultipartAbove,
		requestTimeout:     cfg.RequestTimeout,
		copyMultipartAbove: maxSingleCopy,
		copyPartSize:       copyPartSize,
		listMeta:           !cfg.NoListMetadata,
	}
	if st.log == nil {
		st.log = slog.Default()
	}
	checksum, err := ParseUploadChecksum(string(cfg.UploadChecksum))
	if err != nil {
		return nil, fmt.Errorf("s3backend: %w", err)
	}
	st.crc.Store(checksum == ChecksumCRC32C)
	if st.partSize <= 0 {
		st.partSize = DefaultPartSize
	}
	if st.requestTimeout <= 0 {
		st.requestTimeout = DefaultRequestTimeout
	}
	if st.partSize < minPartSize {
		return nil, fmt.Errorf("s3backend: part size %d is below S3's minimum of %d bytes", st.partSize, minPartSize)
	}
	if st.concurrency <= 0 {
		st.concurrency = DefaultUploadConcurrency
	}
	if st.multipartAbove <= 0 {
		st.multipartAbove = st.partSize
	}
	// S3 refuses single PUTs above 5 GiB.
	st.multipartAbove = min(st.multipartAbove, maxSinglePut)
	if st.obj, err = newObjectOptions(cfg); err != nil {
		return nil, err
	}
	attempts := cfg.MaxAttempts
	if attempts <= 0 {
		attempts = maxAttempts
	}

	// Start from the SDK's buildable client and only adjust it, so that
	// LoadDefaultConfig can still install AWS_CA_BUNDLE into its transport
	// (it can only do that for a *BuildableClient).
	httpClient := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) {
			d.Timeout = dialTimeout
			d.KeepAlive = 30 * time.Second
		}).
		WithTransportOptions(func(tr *http.Transport) {
			tr.MaxIdleConns = maxIdleConns
			tr.MaxIdleConnsPerHost = maxIdleConnsPerHost
			tr.IdleConnTimeout = idleConnTimeout
			tr.TLSHandshakeTimeout = tlsHandshakeTimeout
			tr.ResponseHeaderTimeout = responseHeaderTimeout
			if cfg.InsecureSkipVerify {
				if tr.TLSClientConfig == nil {
					tr.TLSClientConfig = &tls.Config{}
				}
				tr.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // explicit opt-in by the user
			}
		})

	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = attempts
				o.MaxBackoff = maxBackoff
				// The default client-wide retry quota turns a burst of
				// failures (an endpoint restart with dozens of requests in
				// flight) into immediate "quota exceeded" errors for every
				// later request. A filesystem prefers each request to get
				// its bounded retries.
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.Credentials == nil && cfg.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(cfg.Profile))
	}
	// The SDK's own warnings (e.g. a body it could not drain, or the
	// credential chain falling back to IMDSv1) go to our logger instead of
	// straight to stderr; the logger must be given here for the chain to
	// use it.
	opts = append(opts, config.WithLogger(sdkLogger{st.log}))
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3backend: load AWS config: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	// Credentials are set here rather than through LoadDefaultConfig, which
	// would wrap aws.AnonymousCredentials in a cache: the S3 client skips
	// signing only when it sees that exact type.
	if cfg.Credentials != nil {
		awsCfg.Credentials = cfg.Credentials
	}
	switch awsCfg.Credentials.(type) {
	case nil, aws.AnonymousCredentials:
	default:
		awsCfg.Credentials = aws.NewCredentialsCache(taggedCredentials{awsCfg.Credentials})
	}

	st.client = s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		o.UsePathStyle = cfg.PathStyle
		o.APIOptions = append(o.APIOptions, st.noteServer)
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
			// S3-compatible stores often reject or mishandle the CRC
			// checksums recent SDKs send by default.
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
		if cfg.RequesterPays {
			// Every operation takes it (lists and deletes too), so it is
			// a header of the client rather than a field of each input.
			o.APIOptions = append(o.APIOptions, smithyhttp.SetHeaderValue("x-amz-request-payer", "requester"))
		}
	})
	return st, nil
}

// taggedCredentials marks credential-retrieval failures with a type so that
// classify can report them as ErrBadCredentials without reading messages.
type taggedCredentials struct{ p aws.CredentialsProvider }

func (t taggedCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := t.p.Retrieve(ctx)
	if err != nil && ctx.Err() == nil {
		return c, &credentialsError{err: err}
	}
	return c, err
}

// sdkLogger adapts slog to the SDK's logging interface.
type sdkLogger struct{ log *slog.Logger }

func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	level := slog.LevelDebug
	if c == logging.Warn {
		level = slog.LevelWarn
	}
	l.log.Log(context.Background(), level, "s3backend: aws sdk: "+fmt.Sprintf(format, v...))
}

// full turns a relative key into a bucket key.
func (s *Store) full(key string) string { return s.prefix + key }

// rel turns a bucket key into a key relative to the mount prefix.
func (s *Store) rel(key string) string { return strings.TrimPrefix(key, s.prefix) }

// CheckBucket sends one cheap authenticated request (ListObjectsV2 of the
// mount prefix, one key) and tells apart a missing bucket
// (ErrNoSuchBucket), rejected credentials (ErrBadCredentials), missing
// permission (ErrAccessDenied) and an unreachable endpoint (ErrUnreachable).
// A GET is used rather than HeadBucket because HEAD error responses carry
// no body, hence no error code. It returns within about checkTimeout.
func (s *Store) CheckBucket(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	_, err := s.client.ListObjectsV2(cctx, &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.bucket),
		Prefix:  aws.String(s.prefix),
		MaxKeys: aws.Int32(1),
		// The first key may hold a character XML cannot (see List).
		EncodingType: types.EncodingTypeUrl,
	}, func(o *s3.Options) {
		o.Retryer = retry.AddWithMaxAttempts(o.Retryer, checkAttempts)
	})
	if err == nil {
		return nil
	}
	if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		// Our own deadline, not the caller's: nothing answered in time.
		return &OpError{Op: "ListObjectsV2", Key: s.prefix, Err: ErrUnreachable,
			Cause: fmt.Errorf("no response within %v: %w", checkTimeout, err)}
	}
	return wrapErr("ListObjectsV2", s.prefix, err)
}

// Head implements ObjectStore. With SSE-C the key goes along (S3 refuses
// a HEAD of such an object without it); an object written in the clear is
// then asked for again without it.
func (s *Store) Head(ctx context.Context, key string) (ObjectInfo, error) {
	in := &s3.HeadObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.full(key)),
	}
	out, err := withCustomerKey(s, "HeadObject", key,
		func(alg, k, md5 *string) {
			in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = alg, k, md5
		},
		func() (*s3.HeadObjectOutput, error) { return s.client.HeadObject(ctx, in) })
	if err != nil {
		return ObjectInfo{}, err
	}
	return ObjectInfo{
		Key:          key,
		Size:         aws.ToInt64(out.ContentLength),
		ETag:         aws.ToString(out.ETag),
		LastModified: aws.ToTime(out.LastModified),
		ContentType:  aws.ToString(out.ContentType),
		Metadata:     lowerKeys(out.Metadata),
	}, nil
}

// Peek implements ObjectStore with one GET of the last max bytes (a suffix
// range): a store sends the whole object when it is no longer than that,
// and in every case the headers a HEAD would, the size in Content-Range.
// A suffix range, unlike "bytes=0-N", is satisfiable for an empty object on
// MinIO; a store that refuses it fails the peek, and the caller asks with
// a HEAD. A bigger object's tail is read and dropped (at most max bytes),
// which keeps the connection for the next request.
func (s *Store) Peek(ctx context.Context, key string, max int64) (ObjectInfo, []byte, error) {
	if max <= 0 {
		info, err := s.Head(ctx, key)
		return info, nil, err
	}
	in := &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.full(key)),
		Range:  aws.String("bytes=-" + strconv.FormatInt(max, 10)),
	}
	out, err := s.getObject(ctx, key, in)
	if err != nil {
		return ObjectInfo{}, nil, err
	}
	defer out.Body.Close()
	n := aws.ToInt64(out.ContentLength)
	size, ok := rangeTotal(aws.ToString(out.ContentRange))
	if !ok {
		// No range in the answer: the store sent the whole object.
		size = n
	}
	info := ObjectInfo{
		Key:          key,
		Size:         size,
		ETag:         aws.ToString(out.ETag),
		LastModified: aws.ToTime(out.LastModified),
		ContentType:  aws.ToString(out.ContentType),
		Metadata:     lowerKeys(out.Metadata),
	}
	if n < 0 || n > max {
		// A store that ignored the range on a big object: closing the
		// body drops the connection rather than reading it all.
		return info, nil, nil
	}
	// The headers are the answer; a body cut short only loses the bytes.
	if n != size {
		// The tail of a bigger object: read to keep the connection.
		_, _ = io.Copy(io.Discard, io.LimitReader(out.Body, n))
		return info, nil, nil
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(out.Body, body); err != nil {
		return info, nil, nil
	}
	return info, body, nil
}

// rangeTotal returns the complete length of a Content-Range header
// ("bytes 0-4095/4096"; MinIO says "bytes 0--1/0" for an empty object).
func rangeTotal(cr string) (int64, bool) {
	i := strings.LastIndexByte(cr, '/')
	if i < 0 || !strings.HasPrefix(cr, "bytes ") {
		return 0, false
	}
	total, err := strconv.ParseInt(cr[i+1:], 10, 64)
	if err != nil || total < 0 {
		return 0, false
	}
	return total, true
}

// List implements ObjectStore. Keys and common prefixes are returned
// relative to the mount prefix. The one key skipped is the mount prefix's
// own directory marker (bucket key == mount prefix, i.e. relative key ""):
// it names the mount root, which has no name in its own listing. Markers of
// subdirectories ("dir/" when listing "dir/") are returned: the caller
// decides, since the marker carries the directory's metadata.
func (s *Store) List(ctx context.Context, prefix, delimiter, token string, maxKeys int) (ListResult, error) {
	in := &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(s.full(prefix)),
		// Keys come URL-encoded: XML 1.0 cannot carry a control
		// character, and one such key would otherwise fail the page
		// (the whole directory) to decode.
		EncodingType: types.EncodingTypeUrl,
	}
	if delimiter != "" {
		in.Delimiter = aws.String(delimiter)
	}
	if token != "" {
		in.ContinuationToken = aws.String(token)
	}
	if maxKeys > 0 {
		in.MaxKeys = aws.Int32(int32(min(maxKeys, 1000)))
	}
	withMeta := s.listsMetadata() && wantsListHeaders(ctx)
	call := listCall{sdkOnly: s.sdkListDecoder}
	defer call.release()
	out, err := s.client.ListObjectsV2(ctx, in, func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, withListDecoder(&call))
		if withMeta {
			o.APIOptions = append(o.APIOptions, withListMetadata)
		}
	})
	if err != nil {
		return ListResult{}, wrapErr("ListObjectsV2", prefix, err)
	}
	page := call.page
	if page == nil {
		var headers listedHeaders
		if withMeta && call.body != nil {
			headers = parseListedHeaders(call.body.Bytes())
		}
		page = pageFromSDK(out, headers)
	}
	res := ListResult{
		Objects:        make([]ObjectInfo, 0, len(page.objects)),
		CommonPrefixes: make([]string, 0, len(page.prefixes)),
	}
	for _, o := range page.objects {
		k, err := listDecode(page.encodingURL, o.key)
		if err != nil {
			return ListResult{}, wrapErr("ListObjectsV2", prefix, err)
		}
		if k == s.prefix {
			continue
		}
		info := ObjectInfo{
			Key:          s.rel(k),
			Size:         o.size,
			ETag:         o.etag,
			LastModified: o.lastModified,
		}
		// Headers count only where they were asked for, as on the
		// SDK's path: a store that sends them unasked is not trusted
		// to send them whole.
		if h := o.headers; h != nil && withMeta {
			info.ContentType, info.Metadata, info.HeadersListed = h.contentType, h.metadata, true
		}
		res.Objects = append(res.Objects, info)
	}
	for _, p := range page.prefixes {
		cp, err := listDecode(page.encodingURL, p)
		if err != nil {
			return ListResult{}, wrapErr("ListObjectsV2", prefix, err)
		}
		res.CommonPrefixes = append(res.CommonPrefixes, s.rel(cp))
	}
	if page.truncated {
		res.NextToken = page.nextToken
	}
	return res, nil
}

// pageFromSDK is the page the SDK's decoder read, with the headers read
// from the body beside it.
func pageFromSDK(out *s3.ListObjectsV2Output, headers listedHeaders) *listPage {
	page := &listPage{
		encodingURL: out.EncodingType == types.EncodingTypeUrl,
		truncated:   aws.ToBool(out.IsTruncated),
		nextToken:   aws.ToString(out.NextContinuationToken),
		objects:     make([]listedObject, 0, len(out.Contents)),
		prefixes:    make([]string, 0, len(out.CommonPrefixes)),
	}
	for _, o := range out.Contents {
		lo := listedObject{
			key:          aws.ToString(o.Key),
			size:         aws.ToInt64(o.Size),
			etag:         aws.ToString(o.ETag),
			lastModified: aws.ToTime(o.LastModified),
		}
		if h, ok := headers[lo.key]; ok {
			lo.headers = &h
		}
		page.objects = append(page.objects, lo)
	}
	for _, p := range out.CommonPrefixes {
		page.prefixes = append(page.prefixes, aws.ToString(p.Prefix))
	}
	return page
}

// listDecode decodes a key or prefix of a listing asked with
// EncodingType=url. S3 encodes as an HTML form does (a space is "+", a "+"
// is "%2B"). A store that ignores the parameter says so by leaving
// EncodingType out of its answer, and its keys are taken as they are. The
// continuation token is opaque and never encoded.
func listDecode(encodingURL bool, s string) (string, error) {
	if !encodingURL {
		return s, nil
	}
	d, err := url.QueryUnescape(s)
	if err != nil {
		return "", fmt.Errorf("url-encoded key %q: %w", s, err)
	}
	return d, nil
}

// GetRange implements ObjectStore. n == 0 returns an empty body without a
// request (so no existence or If-Match check). A read from offset 0 to the
// end is sent without a Range header, because "bytes=0-" on an empty object
// is an invalid range for S3; likewise any read at offset 0 of an empty
// object returns an empty body. A range starting at or past the end of a
// non-empty object fails with ErrInvalidRange; a range running past the end
// is clamped by the store (the body is shorter than n).
func (s *Store) GetRange(ctx context.Context, key string, off, n int64, ifMatch string) (io.ReadCloser, error) {
	if off < 0 {
		return nil, errorf("GetObject", key, "negative offset %d", off)
	}
	if n == 0 {
		return io.NopCloser(strings.NewReader("")), nil
	}
	in := &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.full(key)),
	}
	switch {
	case n > 0:
		in.Range = aws.String("bytes=" + strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(off+n-1, 10))
	case off > 0:
		in.Range = aws.String("bytes=" + strconv.FormatInt(off, 10) + "-")
	}
	if ifMatch != "" {
		in.IfMatch = aws.String(ifMatch)
	}
	out, err := s.getObject(ctx, key, in)
	if err != nil {
		if in.Range != nil && off == 0 && errors.Is(err, ErrInvalidRange) {
			// Only an empty object makes a range starting at 0
			// unsatisfiable. Ask again without a Range: that reads the
			// empty body and still checks If-Match (MinIO evaluates the
			// range before the precondition, so the 416 proves nothing
			// about the ETag). The limit guards against the object having
			// grown in between.
			in.Range = nil
			out, err = s.client.GetObject(ctx, in)
			if err != nil {
				return nil, wrapErr("GetObject", key, err)
			}
			return limitedBody{io.LimitReader(out.Body, n), out.Body}, nil
		}
		return nil, err
	}
	return out.Body, nil
}

// getObject sends in with the mount's SSE-C key (see withCustomerKey).
func (s *Store) getObject(ctx context.Context, key string, in *s3.GetObjectInput) (*s3.GetObjectOutput, error) {
	return withCustomerKey(s, "GetObject", key,
		func(alg, k, md5 *string) {
			in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = alg, k, md5
		},
		func() (*s3.GetObjectOutput, error) { return s.client.GetObject(ctx, in) })
}

// withCustomerKey sends a request with the mount's SSE-C key (set puts
// its three headers on the request; all nil without SSE-C), and once more
// without it when the store says the object is not encrypted with one: an
// SSE-C mount still reads objects other tools wrote in the clear. The
// error is wrapped (wrapErr).
func withCustomerKey[T any](s *Store, op, key string, set func(alg, k, md5 *string), send func() (T, error)) (T, error) {
	set(s.obj.customerKey())
	out, err := send()
	err = wrapErr(op, key, err)
	if s.obj.ssec() && plainObjectError(err) {
		set(nil, nil, nil)
		out, err = send()
		err = wrapErr(op, key, err)
	}
	return out, err
}

// limitedBody reads through a limit but closes the underlying body.
type limitedBody struct {
	io.Reader
	io.Closer
}

// requestContext bounds one write request (Config.RequestTimeout).
func (s *Store) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.requestTimeout)
}

// Delete implements ObjectStore. A missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	ctx, cancel := s.requestContext(ctx)
	defer cancel()
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.full(key)),
	})
	err = wrapErr("DeleteObject", key, err)
	if errors.Is(err, ErrNotFound) {
		// S3 answers 204 for a missing key; some stores say NoSuchKey.
		return nil
	}
	return err
}

// DeleteMany implements ObjectStore with DeleteObjects, MaxDeleteBatch
// keys per request (quiet: only failures are listed in the answer).
func (s *Store) DeleteMany(ctx context.Context, keys []string) error {
	for batch := range slices.Chunk(keys, objstore.MaxDeleteBatch) {
		objs := make([]types.ObjectIdentifier, len(batch))
		for i, k := range batch {
			objs[i] = types.ObjectIdentifier{Key: aws.String(s.full(k))}
		}
		rctx, cancel := s.requestContext(ctx)
		out, err := s.client.DeleteObjects(rctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(s.bucket),
			Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(true)},
		})
		cancel()
		if err != nil {
			return wrapErr("DeleteObjects", batch[0], err)
		}
		for _, e := range out.Errors {
			if aws.ToString(e.Code) == "NoSuchKey" {
				continue
			}
			key := s.rel(aws.ToString(e.Key))
			return errorf("DeleteObjects", key, "%s: %s (%d of %d keys of the batch not deleted)",
				aws.ToString(e.Code), aws.ToString(e.Message), len(out.Errors), len(batch))
		}
	}
	return nil
}

// lowerKeys returns m with lower-cased keys (the SDK already strips
// x-amz-meta-; stores differ in the case they return).
func lowerKeys(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

// putHeaders returns the metadata map to send: keys lower-cased and without
// an x-amz-meta- prefix the caller may have left on.
func putHeaders(opts PutOptions) (contentType *string, meta map[string]string) {
	if opts.ContentType != "" {
		contentType = aws.String(opts.ContentType)
	}
	if len(opts.Metadata) > 0 {
		meta = make(map[string]string, len(opts.Metadata))
		for k, v := range opts.Metadata {
			k = strings.ToLower(k)
			meta[strings.TrimPrefix(k, "x-amz-meta-")] = v
		}
	}
	return contentType, meta
}

// completedParts converts parts to the SDK's type, in the order given.
func completedParts(parts []CompletedPart) []types.CompletedPart {
	out := make([]types.CompletedPart, len(parts))
	for i, p := range parts {
		out[i] = types.CompletedPart{PartNumber: aws.Int32(p.Number), ETag: aws.String(p.ETag)}
	}
	return out
}

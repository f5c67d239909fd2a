package compose

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/novitalabs/bucketfs/internal/objstore"
)

// Stream is a multipart upload fed by a sequential writer: the caller
// hands each finished part (a range of its staging file) to WritePart,
// which returns once the part's upload has started; at most maxInFlight
// parts upload at once, so WritePart blocks while that many are running
// and the writer's local data stays bounded. A failed part does not abort
// the upload: Complete reports the failure, and the caller may Retry (the
// parts not uploaded are sent again from their readers) or Abort.
//
// Parts are numbered in the order given and must be contiguous from offset
// 0; every part but the last must be at least the policy's MinPartSize.
// StreamPartSize (or NextPartSize) gives the growing size each part should
// have so that 5 TiB fits in 10,000 parts.
type Stream struct {
	store    objstore.ObjectStore
	key      string
	uploadID string
	policy   Policy
	step     int64 // growth step of part sizes (see StreamPartSize)

	ctx    context.Context // the stream's lifetime: parts upload under it
	cancel context.CancelFunc
	sem    chan struct{} // one token per part upload in flight
	wg     sync.WaitGroup

	mu    sync.Mutex    // guards the fields below
	parts []*streamPart // by number-1
	next  int64         // offset the next part must start at
	err   error         // first part failure since the last Retry
	state streamState
	// done is closed (and replaced) whenever a part's upload ends, for
	// WaitPart.
	done chan struct{}
}

type streamState int

const (
	streamOpen streamState = iota
	streamCompleted
	streamAborted
)

type streamPart struct {
	number  int32
	r       io.ReaderAt // nil for a copied part
	off, n  int64
	etag    string // set once uploaded
	running bool
	// A copied part's bytes are [off, off+n) of the object srcKey at
	// version srcETag (UploadPartCopy), not of r.
	srcKey, srcETag string
}

// Sectioner is a reader that can give a part's bytes as a reader of their
// own, without copying (a part held in memory: a bytes.Reader over them, which
// checksumming and sending read in place).
type Sectioner interface {
	Section(off, n int64) io.ReadSeeker
}

func section(r io.ReaderAt, off, n int64) io.ReadSeeker {
	if s, ok := r.(Sectioner); ok {
		return s.Section(off, n)
	}
	return io.NewSectionReader(r, off, n)
}

// ErrStreamClosed is returned by calls on a completed or aborted Stream.
var ErrStreamClosed = errors.New("compose: stream completed or aborted")

// NewStream starts a multipart upload of key (one CreateMultipart under
// the policy's PartTimeout). ctx bounds the stream's whole life: parts
// upload under it, each with its own deadline.
func NewStream(ctx context.Context, store objstore.ObjectStore, key string, opts objstore.PutOptions, p Policy, maxInFlight int) (*Stream, error) {
	p = p.withDefaults()
	if maxInFlight <= 0 {
		maxInFlight = p.MaxInFlight
	}
	var id string
	err := withTimeout(ctx, p, func(ctx context.Context) (err error) {
		id, err = store.CreateMultipart(ctx, key, opts)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("compose: start stream %q: %w", key, err)
	}
	sctx, cancel := context.WithCancel(ctx)
	return &Stream{store: store, key: key, uploadID: id, policy: p, step: growthStep(p.PartSize),
		ctx: sctx, cancel: cancel, sem: make(chan struct{}, maxInFlight), done: make(chan struct{})}, nil
}

// UploadID names the multipart upload, e.g. for a sidecar so that a
// restarted daemon can abort it.
func (s *Stream) UploadID() string { return s.uploadID }

// NextPartSize is the size the next part should have.
func (s *Stream) NextPartSize() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return grownSize(s.policy.PartSize, int64(len(s.parts))/s.step)
}

// WritePart hands over bytes [off, off+n) of r as the next part; r must
// keep them readable until the part is uploaded (see Uploaded). It waits
// (on ctx) while maxInFlight parts are uploading, and fails at once if a
// part failed (call Retry first) or the stream is closed.
func (s *Stream) WritePart(ctx context.Context, r io.ReaderAt, off, n int64) error {
	return s.addPart(ctx, &streamPart{r: r, off: off, n: n})
}

// CopyPart hands over bytes [off, off+n) of the stored object srcKey, at
// version srcETag, as the next part: the store copies them (UploadPartCopy),
// so a file whose first bytes are already stored (a flush in mid-write)
// goes on streaming without sending them again. Otherwise as WritePart.
func (s *Stream) CopyPart(ctx context.Context, srcKey, srcETag string, off, n int64) error {
	return s.addPart(ctx, &streamPart{off: off, n: n, srcKey: srcKey, srcETag: srcETag})
}

// addPart numbers pt, the part at the stream's end, and starts its upload.
func (s *Stream) addPart(ctx context.Context, pt *streamPart) error {
	off, n := pt.off, pt.n
	s.mu.Lock()
	err := s.checkPart(off, n)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if err := s.acquire(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkPart(off, n); err != nil { // things may have changed while we waited
		<-s.sem
		return err
	}
	pt.number = int32(len(s.parts) + 1)
	s.parts = append(s.parts, pt)
	s.next += n
	s.start(pt)
	return nil
}

// acquire takes an in-flight token, waiting on ctx and the stream's life.
func (s *Stream) acquire(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

// checkPart validates the next part; the caller holds mu.
func (s *Stream) checkPart(off, n int64) error {
	switch {
	case s.state != streamOpen:
		return ErrStreamClosed
	case s.err != nil:
		return s.err
	case off != s.next:
		return fmt.Errorf("compose: stream %q: part at %d, want %d (parts must be contiguous)", s.key, off, s.next)
	case n <= 0 || n > objstore.MaxPartSize:
		return fmt.Errorf("compose: stream %q: part of %d bytes", s.key, n)
	case len(s.parts) >= objstore.MaxParts:
		return fmt.Errorf("compose: stream %q: more than %d parts", s.key, objstore.MaxParts)
	case len(s.parts) > 0 && s.parts[len(s.parts)-1].n < s.policy.MinPartSize:
		return fmt.Errorf("compose: stream %q: part %d has %d bytes, below the minimum of %d, and is not the last",
			s.key, len(s.parts), s.parts[len(s.parts)-1].n, s.policy.MinPartSize)
	}
	return nil
}

// start uploads pt in the background; the caller holds mu and a token of
// sem, which the upload releases.
func (s *Stream) start(pt *streamPart) {
	pt.running = true
	r := pt.r // Rebase may replace pt.r meanwhile: this upload reads what it began with
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { <-s.sem }()
		var etag string
		err := withTimeout(s.ctx, s.policy, func(ctx context.Context) (err error) {
			if pt.srcKey != "" {
				etag, err = s.store.UploadPartCopy(ctx, s.key, s.uploadID, pt.number, pt.srcKey, pt.off, pt.n, pt.srcETag)
			} else {
				etag, err = s.store.UploadPart(ctx, s.key, s.uploadID, pt.number, section(r, pt.off, pt.n), pt.n)
			}
			return err
		})
		s.mu.Lock()
		defer s.mu.Unlock()
		pt.running = false
		close(s.done)
		s.done = make(chan struct{})
		if err != nil {
			if s.err == nil {
				s.err = fmt.Errorf("compose: stream %q: part %d [%d, %d): %w", s.key, pt.number, pt.off, pt.off+pt.n, err)
			}
			return
		}
		pt.etag = etag
	}()
}

// WaitPart waits until a part's upload ends (it succeeded or failed) or
// ctx is done.
func (s *Stream) WaitPart(ctx context.Context) error {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Rebase makes r the reader of every part not yet uploaded, for a caller
// that has just copied those parts' bytes into r (at their offsets) and is
// about to reuse the memory they were read from. A part uploading now
// keeps its reader until it ends; if it fails, a Retry reads r.
func (s *Stream) Rebase(r io.ReaderAt) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, pt := range s.parts {
		if pt.etag == "" && pt.srcKey == "" {
			pt.r = r
		}
	}
}

// DropShortTail takes back the last part if it is below the policy's
// MinPartSize (the short last part a failed Complete leaves), so that the
// writer can go on appending: its bytes are handed over again, in a part
// of full size or as the last one. It returns the part's offset and true,
// or false if the last part is long enough, uploading, or there is none.
func (s *Stream) DropShortTail() (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != streamOpen || len(s.parts) == 0 {
		return 0, false
	}
	pt := s.parts[len(s.parts)-1]
	if pt.n >= s.policy.MinPartSize || pt.running {
		return 0, false
	}
	s.parts = s.parts[:len(s.parts)-1]
	s.next = pt.off
	if s.err != nil && pt.etag == "" {
		// Its failure goes with it, unless an earlier part failed too.
		s.err = nil
		for _, p := range s.parts {
			if p.etag == "" {
				s.err = fmt.Errorf("compose: stream %q: part %d not uploaded", s.key, p.number)
				break
			}
		}
	}
	return pt.off, true
}

// Uploaded returns the offset below which every part is uploaded: the
// caller may release its staging below it.
func (s *Stream) Uploaded() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var at int64
	for _, pt := range s.parts {
		if pt.etag == "" {
			break
		}
		at = pt.off + pt.n
	}
	return at
}

// UploadedParts returns the parts uploaded so far, in order, up to the first
// that is not (for a sidecar, so that a restarted process can complete the
// upload with CompleteMultipart after sending the rest).
// The second result is the offset they reach.
func (s *Stream) UploadedParts() ([]objstore.CompletedPart, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []objstore.CompletedPart
	var end int64
	for _, pt := range s.parts {
		if pt.etag == "" {
			break
		}
		out = append(out, objstore.CompletedPart{Number: pt.number, ETag: pt.etag})
		end = pt.off + pt.n
	}
	return out, end
}

// InFlight returns the number of parts uploading now.
func (s *Stream) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, pt := range s.parts {
		if pt.running {
			n++
		}
	}
	return n
}

// Err returns the first part failure since the last Retry, if any.
func (s *Stream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Wait waits for the parts in flight and returns Err: after a nil return
// every part handed over is uploaded.
func (s *Stream) Wait() error {
	s.wg.Wait()
	return s.Err()
}

// Retry clears the failure and uploads again every part that is neither
// uploaded nor uploading, waiting (on ctx) for in-flight room.
func (s *Stream) Retry(ctx context.Context) error {
	s.mu.Lock()
	if s.state != streamOpen {
		s.mu.Unlock()
		return ErrStreamClosed
	}
	s.err = nil
	var todo []*streamPart
	for _, pt := range s.parts {
		if pt.etag == "" && !pt.running {
			todo = append(todo, pt)
		}
	}
	s.mu.Unlock()
	for _, pt := range todo {
		if err := s.acquire(ctx); err != nil {
			return err
		}
		s.mu.Lock()
		s.start(pt)
		s.mu.Unlock()
	}
	return nil
}

// Complete waits for the parts in flight and, if all are uploaded,
// completes the upload and returns the object's ETag. On failure the
// upload is left open: Retry and Complete again, or Abort.
func (s *Stream) Complete(ctx context.Context) (string, error) {
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.state != streamOpen:
		return "", ErrStreamClosed
	case s.err != nil:
		return "", s.err
	case len(s.parts) == 0:
		return "", fmt.Errorf("compose: stream %q: no parts (write small objects with one PUT)", s.key)
	}
	done := make([]objstore.CompletedPart, len(s.parts))
	for i, pt := range s.parts {
		if pt.etag == "" {
			return "", fmt.Errorf("compose: stream %q: part %d not uploaded", s.key, pt.number)
		}
		done[i] = objstore.CompletedPart{Number: pt.number, ETag: pt.etag}
	}
	var etag string
	err := withTimeout(ctx, s.policy, func(ctx context.Context) (err error) {
		etag, err = s.store.CompleteMultipart(ctx, s.key, s.uploadID, done)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("compose: stream %q: complete: %w", s.key, err)
	}
	s.state = streamCompleted
	s.cancel()
	return etag, nil
}

// Abort stops the parts in flight, waits for them and aborts the upload.
func (s *Stream) Abort(ctx context.Context) error {
	s.mu.Lock()
	if s.state != streamOpen {
		s.mu.Unlock()
		return ErrStreamClosed
	}
	s.state = streamAborted
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	err := withTimeout(context.WithoutCancel(ctx), s.policy, func(ctx context.Context) error {
		return s.store.AbortMultipart(ctx, s.key, s.uploadID)
	})
	if err != nil {
		return fmt.Errorf("compose: stream %q: abort: %w", s.key, err)
	}
	return nil
}

package fs

import (
	"context"
	"errors"
	"io"
	"maps"

	"github.com/novitalabs/bucketfs/internal/compose"
	"github.com/novitalabs/bucketfs/s3backend"
)

// Streaming uploads for sequential writers. A file written from empty
// (created, or opened with O_TRUNC) strictly by appending starts a
// multipart upload once streamMinSize bytes are staged; from then on every
// finished part is uploaded while the application keeps writing, with at
// most streamInFlight parts in flight (a writer that outruns the store
// waits in write(2)). close completes the upload: it sends the tail and
// waits for the parts still in flight instead of uploading the whole file.
//
// The staging file keeps every byte until the upload completes, so a
// failed part or Complete costs nothing but time: the stream is aborted and
// the state machine uploads the file whole, as for any other file. A write
// into bytes already handed to the stream, a truncate, a rename or an
// unlink aborts the stream the same way.
//
// Metadata is fixed when a multipart upload starts: the object's mtime is
// the time the stream started, and the node adopts it at completion.
// Attributes set explicitly meanwhile (chmod, chown, utimes: tar, cp -p)
// are written by one server-side copy after completion.
//
// n.stream, n.seqOnly and n.metaSet are guarded by Node.mu; feeding the
// stream happens under dataMu held for writing.

const (
	// streamMinSize: smaller files are uploaded at close in one request.
	streamMinSize = 32 << 20
	// streamInFlight bounds the parts of one file uploading at once.
	streamInFlight = 4
)

// errStreamStale: the stream no longer matches the file; upload it whole.
var errStreamStale = errors.New("streaming upload no longer matches the file")

// uploadStream is a file's multipart upload in progress.
type uploadStream struct {
	s     *compose.Stream
	key   string
	next  int64      // bytes handed to the stream
	attrs posixAttrs // what the upload's metadata says
}

// feedStream hands finished parts to n's stream after a write of
// [off, off+written), starting the stream when the file qualifies.
// dataMu held for writing; n.mu not held.
func (n *Node) feedStream(off int64, written int, appended bool) {
	n.mu.Lock()
	if !appended {
		n.seqOnly = false
	}
	st := n.stream
	if st != nil && (off < st.next || n.key != st.key) {
		n.stream = nil
		n.mu.Unlock()
		n.fsys.abortStream(st, "rewrite of uploaded bytes")
		return
	}
	size, key, staging := n.size, n.key, n.staging
	start := st == nil && n.seqOnly && n.editBase == nil && size >= streamMinSize &&
		!n.unlinked && !n.retired && staging != nil
	var opts s3backend.PutOptions
	attrs := n.attrs
	if start {
		opts = s3backend.PutOptions{Metadata: buildMeta(n.kind, attrs, n.foreign)}
		n.metaSet = false
	}
	n.mu.Unlock()
	if st == nil && !start {
		return
	}
	if st == nil {
		inFlight := streamInFlight
		if c := n.fsys.cfg.UploadConcurrency; c > 0 {
			inFlight = c
		}
		s, err := compose.NewStream(n.fsys.ctx, n.fsys.store, key, opts, compose.Policy{PartSize: n.fsys.cfg.PartSize}, inFlight)
		if err != nil {
			// Not fatal: close uploads the file whole.
			n.fsys.log.Warn("could not start a streaming upload; the file is uploaded at close", "key", key, "err", err)
			n.mu.Lock()
			n.seqOnly = false
			n.mu.Unlock()
			return
		}
		st = &uploadStream{s: s, key: key, attrs: attrs}
		n.mu.Lock()
		n.stream = st
		n.mu.Unlock()
		n.saveSidecar() // names the upload, for a restart to abort
	}
	for {
		ps := st.s.NextPartSize()
		if size-st.next < ps {
			return
		}
		if err := st.s.WritePart(n.fsys.ctx, staging, st.next, ps); err != nil {
			// A part failed: let close upload the file whole.
			n.mu.Lock()
			if n.stream == st {
				n.stream = nil
			}
			n.seqOnly = false
			n.mu.Unlock()
			n.fsys.abortStream(st, err.Error())
			return
		}
		st.next += ps
	}
}

// dropStreamLocked detaches n's stream for abortion (truncate, rename,
// unlink, a new staging file). n.mu held; the caller aborts the result.
func (n *Node) dropStreamLocked() *uploadStream {
	st := n.stream
	n.stream = nil
	n.seqOnly = false
	return st
}

// abortStream aborts a multipart upload nobody will complete, in the
// background: aborting waits for the parts in flight.
func (f *FS) abortStream(st *uploadStream, why string) {
	if st == nil {
		return
	}
	f.log.Debug("streaming upload abandoned; the file is uploaded whole", "key", st.key, "why", why)
	go func() {
		if err := st.s.Abort(context.WithoutCancel(f.ctx)); err != nil {
			f.log.Warn("could not abort a multipart upload (the store drops it when its lifecycle says)", "key", st.key, "err", err)
		}
	}()
}

// completeStream finishes the upload of a streamed file whose staging file
// holds size bytes: the tail goes as the last part. It returns the new
// ETag, or an error after which the caller uploads the file whole (the
// stream is aborted). uploadMu and dataMu (read) held.
func (n *Node) completeStream(ctx context.Context, st *uploadStream, staging io.ReaderAt, size int64) (string, error) {
	if size < st.next {
		n.fsys.abortStream(st, "shrunk")
		return "", errStreamStale
	}
	if size > st.next {
		if err := st.s.WritePart(ctx, staging, st.next, size-st.next); err != nil {
			n.fsys.abortStream(st, err.Error())
			return "", err
		}
		st.next = size
	}
	etag, err := st.s.Complete(ctx)
	if err != nil {
		n.fsys.abortStream(st, err.Error())
		return "", err
	}
	n.mu.Lock()
	explicit := n.metaSet
	attrs, foreign := n.attrs, maps.Clone(n.foreign)
	if !explicit {
		// The object's mtime is the stream's start: show what it says.
		n.attrs.mtime = st.attrs.mtime
	}
	n.mu.Unlock()
	if explicit {
		opts := s3backend.PutOptions{Metadata: buildMeta(n.kind, attrs, foreign)}
		newETag, err := n.fsys.store.Copy(ctx, st.key, st.key, etag, &opts)
		if err != nil {
			// The data is stored; only the attributes are not.
			return "", err
		}
		etag = newETag
	}
	return etag, nil
}

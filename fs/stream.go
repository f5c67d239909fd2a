package fs

import (
	"context"
	"errors"
	"io"
	"maps"
	"os"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/novitalabs/bucketfs/internal/compose"
	"github.com/novitalabs/bucketfs/internal/objstore"
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

// errMemMismatch: a streaming file's memory tail does not end at its size
// (an invariant broken); the upload fails and the memory is spilled.
var errMemMismatch = errors.New("streaming file's memory does not end at its size")

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
func (n *Node) feedStream(off int64, written int, appended bool) syscall.Errno {
	n.mu.Lock()
	if !appended {
		n.seqOnly = false
	}
	st := n.stream
	if st != nil && off < st.next && n.punched > 0 {
		// Released bytes are being rewritten: store what the stream
		// holds, and go on as an edit of it that includes this write.
		n.mu.Unlock()
		if errno := n.settleStreamLocked(context.Background()); errno != 0 {
			return errno
		}
		n.mu.Lock()
		n.dirty = n.dirty.add(off, int64(written))
		n.mu.Unlock()
		return 0
	}
	if st != nil && (off < st.next || n.key != st.key) {
		n.stream = nil
		n.mu.Unlock()
		n.fsys.abortStream(st, "rewrite of uploaded bytes")
		return 0
	}
	size, key, staging := n.size, n.key, n.staging
	prefix := n.appendedToLocked() // the stored first bytes a new stream copies
	start := st == nil && n.seqOnly && prefix >= 0 && size-prefix >= streamMinSize &&
		!n.unlinked && !n.removing && !n.retired && staging != nil
	var opts s3backend.PutOptions
	attrs := n.attrs
	if start {
		opts = putOptions(n.kind, key, attrs, n.foreign)
		opts.PartCopies = prefix > 0
		n.metaSet = false
	}
	n.mu.Unlock()
	if st == nil && !start {
		return 0
	}
	started := st == nil
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
			return 0
		}
		st = &uploadStream{s: s, key: key, attrs: attrs}
		if prefix > 0 && !n.copyPrefix(st, prefix) {
			return 0
		}
		n.mu.Lock()
		if n.unlinked || n.removing {
			// Removed while the upload was being created: the removal
			// kept (or dropped) the file without knowing of this stream.
			n.seqOnly = false
			n.mu.Unlock()
			n.fsys.abortStream(st, "unlinked")
			return 0
		}
		n.stream = st
		n.mu.Unlock()
		n.saveSidecar() // names the upload, for a restart to abort
	}
	for {
		ps := min(st.s.NextPartSize(), n.fsys.streamPartCap())
		if size-st.next < ps {
			if started {
				n.startMem(st, staging) // from here on, appends go to memory (streammem.go)
			}
			return 0
		}
		err := st.s.WritePart(n.fsys.ctx, staging, st.next, ps)
		if err != nil {
			// An earlier part failed: send the failed parts again (their
			// bytes are still staged), then this one.
			n.fsys.log.Warn("streamed part failed; retrying", "key", st.key, "err", err)
			if err = st.s.Retry(n.fsys.ctx); err == nil {
				err = st.s.WritePart(n.fsys.ctx, staging, st.next, ps)
			}
		}
		if err != nil {
			n.mu.Lock()
			punched := n.punched > 0
			n.seqOnly = false
			if !punched && n.stream == st {
				n.stream = nil
			}
			n.mu.Unlock()
			if punched {
				// The stream holds released bytes: keep it; close
				// retries its failed parts.
				return 0
			}
			// Let close upload the file whole.
			n.fsys.abortStream(st, err.Error())
			return 0
		}
		st.next += ps
	}
}

// appendedToLocked returns how many first bytes of n are stored and can
// begin a new stream as server-side copies: 0 for a file written from
// empty, the stored object's size for a sparse edit that has only been
// appended to since (a streamed file after a flush in mid-write, or a big
// object opened for appending), -1 when n cannot stream. n.mu held.
func (n *Node) appendedToLocked() int64 {
	b := n.editBase
	switch {
	case b == nil:
		return 0
	case b.key != n.key || b.size < objstore.MinPartSize:
		return -1
	case n.size == b.size && len(n.dirty) == 0:
		return b.size
	case len(n.dirty) == 1 && n.dirty[0].Off == b.size && n.dirty[0].Off+n.dirty[0].Len == n.size:
		return b.size
	}
	return -1
}

// copyPrefix makes the first parts of st server-side copies of the first
// prefix bytes of n's stored object and waits for them; n becomes a
// streaming file whose bytes below prefix are released, as if uploaded
// from its staging file (which never held them), so that everything else
// (completion, settling, a restart finishing the upload from the sidecar's
// parts) works as for any stream. It returns false, with the stream
// aborted and n left a sparse edit, if the copies fail. dataMu held for
// writing.
func (n *Node) copyPrefix(st *uploadStream, prefix int64) bool {
	n.mu.Lock()
	base := *n.editBase
	n.mu.Unlock()
	err := func() error {
		// Copied parts are as big as S3 allows, cut evenly so that none
		// is below the minimum.
		parts := (prefix + objstore.MaxPartSize - 1) / objstore.MaxPartSize
		each := (prefix + parts - 1) / parts
		for off := int64(0); off < prefix; off += each {
			if err := st.s.CopyPart(n.fsys.ctx, base.key, base.etag, off, min(each, prefix-off)); err != nil {
				return err
			}
		}
		return st.s.Wait()
	}()
	if err != nil {
		n.fsys.log.Warn("could not continue the streaming upload of an appended file; it is uploaded as an edit at close",
			"key", st.key, "err", err)
		n.mu.Lock()
		n.seqOnly = false
		n.mu.Unlock()
		n.fsys.abortStream(st, err.Error())
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	st.next = prefix
	n.editBase, n.dirty = nil, nil
	// The staging file holds [prefix, size): charged for what it holds,
	// with the prefix counted as released, the model of a stream whose
	// parts were punched out (pressure.go).
	n.punched = prefix
	if held := n.size - prefix; n.charged != held {
		n.fsys.staged.Add(held - n.charged)
		n.charged = held
	}
	return true
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
	n.mu.Lock()
	// The stream holds the only copy of released bytes, or of bytes that
	// memory holds until a spill writes them to staging (streammem.go).
	keep := n.punched > 0 || n.mem != nil
	m := n.mem
	n.mu.Unlock()
	fail := func(err error) (string, error) {
		if keep {
			if off, ok := st.s.DropShortTail(); ok {
				// Appends after a failed close would otherwise follow a
				// part too short to be anything but the last: the tail
				// goes back to memory (or staging, which holds it).
				if m != nil && len(m.parts) > 0 && m.parts[len(m.parts)-1].off == off && m.fill == nil {
					m.fill = m.parts[len(m.parts)-1].buf
					m.parts = m.parts[:len(m.parts)-1]
				}
				st.next = off
			}
			n.mu.Lock()
			n.stream = st // retried by the next upload
			n.mu.Unlock()
		} else {
			n.fsys.abortStream(st, err.Error())
		}
		return "", err
	}
	if size < st.next {
		n.fsys.abortStream(st, "shrunk")
		return "", errStreamStale
	}
	if st.s.Err() != nil {
		if err := st.s.Retry(ctx); err != nil {
			return fail(err)
		}
	}
	switch {
	case m != nil && m.st == st && st.next+int64(len(m.fill)) == size:
		// The tail is in memory: it goes as the last part from there.
		if len(m.fill) > 0 {
			if err := n.handOverMem(ctx, m); err != nil {
				return fail(err)
			}
		}
	case m != nil:
		n.fsys.log.Error("internal invariant broken: a streaming file's memory does not end at its size; not completed",
			"key", st.key, "next", st.next, "in_memory", len(m.fill), "size", size)
		return fail(errMemMismatch)
	case size > st.next:
		if err := st.s.WritePart(ctx, staging, st.next, size-st.next); err != nil {
			return fail(err)
		}
		st.next = size
	}
	etag, err := st.s.Complete(ctx)
	if err != nil {
		return fail(err)
	}
	n.mu.Lock()
	n.releaseMemLocked(true) // every byte is stored
	// From now on the file is a sparse edit of the object just stored: a
	// flush in mid-write (e.g. an exec closing a copy of the descriptor)
	// must neither leave a whole-file upload of released holes to come
	// nor keep bytes staged that the bucket holds (the caller releases
	// them, releaseStored), and a writer that goes on appending streams
	// again, its first bytes copied server-side (appendedToLocked). The
	// caller has held dataMu since it took size: nothing was written since.
	n.editBase = &editBase{key: st.key, etag: etag, size: size}
	n.dirty = nil
	n.punched = 0
	n.mu.Unlock()
	n.mu.Lock()
	explicit := n.metaSet
	attrs, foreign := n.attrs, maps.Clone(n.foreign)
	if !explicit {
		// The object's times are the stream's start: show what it says.
		n.attrs.mtime, n.attrs.ctime = st.attrs.mtime, st.attrs.ctime
	}
	n.mu.Unlock()
	if explicit {
		opts := putOptions(n.kind, st.key, attrs, foreign)
		newETag, err := n.fsys.store.Copy(ctx, st.key, st.key, etag, &opts)
		if err != nil {
			// The data is stored; only the attributes are not.
			return "", err
		}
		etag = newETag
	}
	return etag, nil
}

// Releasing uploaded parts. When the staging area is full (pressure.go), a
// streaming file's bytes that are already uploaded as parts are punched out
// of its staging file (fallocate PUNCH_HOLE), so that a file many times
// larger than the local disk can be written. From then on the staging file
// no longer holds the whole file, and the stream is the only copy of those
// bytes: it is never aborted, a failed part or Complete is retried (by the
// retry loop, like any failed upload), and the sidecar records the
// uploaded parts so that a restarted daemon can finish the upload. Anything
// that needs the released bytes back (a write or read below them, a
// truncate, a rename) first completes the stream, so that the object holds
// the bytes handed over, and goes on as a sparse edit of that object
// (edit.go): other readers of the bucket then see that prefix until close.
//
// n.punched is guarded by Node.mu; punching happens under dataMu.

// punchUploaded releases n's uploaded parts from its staging file and
// returns the bytes released. dataMu held for writing.
func (n *Node) punchUploaded() int64 {
	n.mu.Lock()
	st, staging, from := n.stream, n.staging, n.punched
	n.mu.Unlock()
	if st == nil || staging == nil {
		return 0
	}
	upTo := st.s.Uploaded()
	if upTo <= from {
		return 0
	}
	// The parts are about to be the only copy of these bytes: the sidecar
	// records them first, so that a crash at any point leaves a restart
	// what it needs (with the bytes still staged, recording them early
	// costs nothing).
	n.mu.Lock()
	n.punched = upTo
	n.mu.Unlock()
	n.saveSidecar()
	if err := unix.Fallocate(int(staging.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, from, upTo-from); err != nil {
		// The bytes stay staged and charged; reads below upTo settle
		// the stream as for released bytes, which stays correct.
		n.fsys.log.Warn("could not release uploaded parts from staging", "key", st.key, "err", err)
		return 0
	}
	n.mu.Lock()
	n.charged -= upTo - from
	n.mu.Unlock()
	n.fsys.staged.Add(from - upTo)
	return upTo - from
}

// settleStreamLocked completes n's stream when released bytes are needed
// again, making the node a sparse edit of the object it wrote. It returns
// an errno if the store cannot complete it now (the caller's operation
// fails; nothing is lost: the stream stays). dataMu held for writing.
func (n *Node) settleStreamLocked(ctx context.Context) syscall.Errno {
	n.mu.Lock()
	st, punched, size, resume := n.stream, n.punched, n.size, n.resume
	n.mu.Unlock()
	if resume != nil {
		// A previous daemon's stream: only the store has its first
		// bytes until the retry loop finishes the upload.
		n.fsys.log.Warn("the first bytes of this file are being re-uploaded after a restart; try again shortly", "key", n.currentKey())
		return syscall.EIO
	}
	if st == nil && punched > 0 {
		n.mu.Lock()
		n.punched = 0
		n.mu.Unlock()
		return syscall.EIO
	}
	if st == nil || punched == 0 {
		return 0
	}
	cctx, cancel := n.fsys.uploadContext()
	defer cancel()
	if st.s.Err() != nil {
		if err := st.s.Retry(cctx); err != nil {
			return n.settleFailed(st, err)
		}
	}
	etag, err := st.s.Complete(cctx)
	if err != nil {
		return n.settleFailed(st, err)
	}
	n.mu.Lock()
	n.stream = nil
	n.punched = 0
	n.etag = etag
	n.editBase = &editBase{key: st.key, etag: etag, size: st.next}
	n.dirty = nil
	if size > st.next {
		n.dirty = n.dirty.add(st.next, size-st.next)
	}
	n.mu.Unlock()
	n.saveSidecar()
	n.fsys.log.Info("streamed file settled: its first bytes are stored, the rest is an edit of them",
		"key", st.key, "stored", st.next, "size", size)
	return 0
}

func (n *Node) settleFailed(st *uploadStream, err error) syscall.Errno {
	errno := toErrno(err)
	n.fsys.logFailure("settle stream", st.key, err, errno)
	return errno
}

// releaseStored punches out of n's staging file the bytes that a completed
// upload (a stream, or an edit) stored, which n, a sparse edit of that
// object now, reads from the store: a file flushed in mid-write keeps on
// disk only what it writes next. It takes dataMu for writing, so that no read of the staging file
// sees the holes appear, and keeps every range written since. uploadMu
// held (no rename or upload changes the base meanwhile).
func (n *Node) releaseStored(staging *os.File, etag string) {
	n.dataMu.Lock()
	defer n.dataMu.Unlock()
	n.mu.Lock()
	b, dirty := n.editBase, slices.Clone(n.dirty)
	ok := b != nil && b.etag == etag && n.staging == staging && n.punched == 0 && n.stream == nil
	n.mu.Unlock()
	if !ok {
		return // changed since (a new stream took over): leave it staged
	}
	// dataMu held for writing: the dirty ranges cannot change under us.
	punch := func(off, end int64) error {
		if end <= off {
			return nil
		}
		return unix.Fallocate(int(staging.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, end-off)
	}
	var err error
	pos, held := int64(0), int64(0)
	for _, r := range dirty {
		held += r.Len
		if err == nil {
			err = punch(pos, min(r.Off, b.size))
		}
		pos = max(pos, r.Off+r.Len)
	}
	if err == nil {
		err = punch(pos, b.size)
	}
	if err != nil {
		n.fsys.log.Debug("staging: cannot release stored bytes", "key", b.key, "err", err)
		return
	}
	n.mu.Lock()
	n.releaseStagingLocked(held)
	n.mu.Unlock()
}

// punchedBelowLocked reports whether [0, end) reaches released bytes.
// n.mu held.
func (n *Node) punchedBelowLocked(off int64) bool {
	return n.punched > 0 && off < n.punched
}

// streamPartCap bounds a streamed part so that the parts in flight and the
// one being filled fit in half the staging area: with a small staging disk
// the writer must never wait on space that only its own unsent part holds.
// Part sizes otherwise grow (compose.Policy.StreamPartSize) so that 5 TiB
// fits in 10,000 parts; under the cap a file can reach 10,000 capped parts,
// past which the stream fails and the file is uploaded at close.
func (f *FS) streamPartCap() int64 {
	inFlight := int64(streamInFlight)
	if c := f.cfg.UploadConcurrency; c > 0 {
		inFlight = int64(c)
	}
	capped := f.stagingLimit / (2 * (inFlight + 1))
	return max(capped&^(1<<20-1), objstore.MinPartSize)
}

package fs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// Streaming from memory. A streaming writer's bytes (stream.go) pass
// through the staging file only for safety: each part is uploaded while
// the writer goes on, and the staging file's copy is needed again only if
// that upload fails or something reads the file back. Writing them there
// costs the daemon more CPU than the rest of a big write together (a copy
// into page-cache pages allocated anew for every file, reading them back
// for the upload, the staging filesystem's own work), and where the store
// shares the machine's CPU that CPU is the write's speed.
//
// So once a stream has started on a file written from empty, the bytes
// the writer appends go to a memory buffer the size of the next part; a
// full buffer is handed to the stream as that part and freed once every
// part up to its end is uploaded. The staging file then holds the file's
// bytes below n.mem.from only (the sidecar says so: a daemon started after
// a kill -9 uploads that much, the state of a write interrupted there).
// Nothing is acknowledged from memory: close and fsync complete the stream
// with the last buffer as its last part, and when that fails every byte
// memory holds is first written to the staging file (spillLocked), so
// that the EIO keeps its promise: the bytes are kept, on disk. Anything
// else that needs the staging file whole spills first: a read, a
// truncate, a write that is not an append, a rename, an unlink while
// open, a directory rename, adoption by a new node. A spill leaves exactly
// the state of a stream whose uploaded parts were released (stream.go):
// the staging file holds [punched, size) and the stream the rest, and the
// file stays on the staging file until the stream completes.
//
// Memory is bounded for the whole mount (streamBuffers). A writer that
// needs a buffer while the budget is spent waits for its own parts to
// upload, or, with none of its own in flight, spills and goes on through
// the staging file.
//
// n.mem is guarded by Node.mu. What it points to changes under dataMu held
// for writing, or held for reading together with uploadMu (the upload
// that completes the stream: every other holder of dataMu for reading
// only looks at n.mem to spill it, which needs dataMu for writing).

// memTail is a streaming file's newest bytes, held in memory.
type memTail struct {
	st   *uploadStream // the stream these bytes feed
	from int64         // the staging file holds the file's bytes below from
	// fill holds bytes [st.next, st.next+len(fill)), the part being
	// filled, want bytes long once full.
	fill []byte
	want int64
	// parts were handed to the stream from memory, oldest first; each
	// is kept until every part up to its end is uploaded (a retry of a
	// failed part reads it again).
	parts []memPart
}

type memPart struct {
	off int64
	buf []byte
}

// memReaderAt reads the file's bytes [off, off+len(buf)) from buf.
type memReaderAt struct {
	off int64
	buf []byte
}

// Section implements compose.Sectioner.
func (r memReaderAt) Section(off, n int64) io.ReadSeeker {
	i := off - r.off
	if i < 0 || i+n > int64(len(r.buf)) || n < 0 {
		return io.NewSectionReader(r, off, n) // its reads report the error
	}
	return bytes.NewReader(r.buf[i : i+n])
}

func (r memReaderAt) ReadAt(p []byte, off int64) (int, error) {
	i := off - r.off
	if i < 0 || i > int64(len(r.buf)) {
		return 0, fmt.Errorf("fs: memory part [%d, %d) read at %d", r.off, r.off+int64(len(r.buf)), off)
	}
	n := copy(p, r.buf[i:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// defaultStreamMemory bounds the memory of streaming writers when
// Config.StreamMemory is 0: the part being filled and three in flight at
// the default part size (more in flight was no faster, and cost RSS).
const defaultStreamMemory = 64 << 20

// streamBuffers is the mount's budget of streaming memory, and the buffers
// it recycles while some file streams from memory (freed when none does,
// so an idle daemon holds none).
type streamBuffers struct {
	mu    sync.Mutex // guards the fields below; a leaf
	limit int64      // bytes buffers held by streams may take
	held  int64      // bytes of buffers held by streams
	free  [][]byte   // recycled buffers, at most limit bytes together
	users int        // files in memory mode
}

// get returns an empty buffer of capacity size, or nil when the budget
// has no room for it.
func (b *streamBuffers) get(size int64) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held+size > b.limit {
		return nil
	}
	b.held += size
	for i := len(b.free) - 1; i >= 0; i-- {
		if buf := b.free[i]; int64(cap(buf)) == size {
			b.free[i] = b.free[len(b.free)-1]
			b.free = b.free[:len(b.free)-1]
			return buf[:0]
		}
	}
	return make([]byte, 0, size)
}

// put gives back buf. recycle says that nothing reads it any more (a part
// still uploading may: such a buffer is left to the collector).
func (b *streamBuffers) put(buf []byte, recycle bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held -= int64(cap(buf))
	if !recycle || b.users == 0 {
		return
	}
	var kept int64
	for _, f := range b.free {
		kept += int64(cap(f))
	}
	if kept+b.held+int64(cap(buf)) <= b.limit {
		b.free = append(b.free, buf[:0])
	}
}

func (b *streamBuffers) enter() {
	b.mu.Lock()
	b.users++
	b.mu.Unlock()
}

func (b *streamBuffers) leave() {
	b.mu.Lock()
	b.users--
	if b.users == 0 {
		b.free = nil
	}
	b.mu.Unlock()
}

// inMem reports whether n's newest bytes are in memory.
func (n *Node) inMem() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mem != nil
}

// startMem puts st, the stream feedStream has just started on a file
// written from empty and handed its staged whole parts, in memory mode:
// the bytes staged past the last part are read into the first buffer.
// Nothing happens if the budget has no room. dataMu held for writing.
func (n *Node) startMem(st *uploadStream, staging *os.File) {
	n.mu.Lock()
	ok := n.mem == nil && n.stream == st && st.key == n.key && n.punched == 0 && n.editBase == nil &&
		n.resume == nil && n.seqOnly && !n.unlinked && !n.removing && !n.retired && n.staging == staging
	size := n.size
	n.mu.Unlock()
	if !ok || n.fsys.streamBufs.limit <= 0 {
		return
	}
	want, fits := n.memPartSize(st)
	if !fits || size-st.next >= want {
		return
	}
	buf := n.fsys.streamBufs.get(want)
	if buf == nil {
		return
	}
	buf = buf[:size-st.next]
	if _, err := staging.ReadAt(buf, st.next); err != nil {
		n.fsys.streamBufs.put(buf, true)
		n.fsys.log.Debug("streaming from memory not started: staged tail unreadable", "key", st.key, "err", err)
		return
	}
	n.fsys.streamBufs.enter()
	n.mu.Lock()
	n.mem = &memTail{st: st, from: size, fill: buf, want: want}
	n.mu.Unlock()
}

// writeMem appends data, written at the file's end, to n's memory tail and
// returns how many bytes it took. Fewer than len(data) means it spilled
// (errno 0: the caller writes the rest through the staging file). dataMu
// held for writing; n.mem is set and feeds n.stream under n's key.
func (n *Node) writeMem(data []byte) (int, syscall.Errno) {
	n.mu.Lock()
	m := n.mem
	n.mu.Unlock()
	took := 0
	for len(data) > 0 {
		if m.fill == nil {
			if m.fill = n.memBuffer(m); m.fill == nil {
				return took, n.spillLocked()
			}
		}
		k := copy(m.fill[len(m.fill):m.want], data)
		m.fill = m.fill[:len(m.fill)+k]
		data = data[k:]
		took += k
		n.mu.Lock()
		n.size += int64(k)
		n.markDirtyLocked()
		n.attrs.mtime = time.Now()
		n.attrs.ctime = n.attrs.mtime
		n.mu.Unlock()
		if int64(len(m.fill)) < m.want {
			continue
		}
		if err := n.handOverMem(n.fsys.ctx, m); err != nil {
			n.fsys.log.Warn("streamed part failed; the file goes on through the staging file", "key", m.st.key, "err", err)
			return took, n.spillLocked()
		}
	}
	return took, 0
}

// handOverMem hands m's fill buffer to the stream as its next part (the
// last one, if short), retrying once the parts that failed before.
func (n *Node) handOverMem(ctx context.Context, m *memTail) error {
	st, off, size := m.st, m.st.next, int64(len(m.fill))
	err := st.s.WritePart(ctx, memReaderAt{off, m.fill}, off, size)
	if err != nil {
		if err = st.s.Retry(ctx); err == nil {
			err = st.s.WritePart(ctx, memReaderAt{off, m.fill}, off, size)
		}
	}
	if err != nil {
		return err
	}
	m.parts = append(m.parts, memPart{off: off, buf: m.fill})
	m.fill = nil
	st.next += size
	return nil
}

// memPartSize returns the size of st's next part and whether the budget
// fits three of them: one filling while two upload, or memory mode would
// wait on every part.
func (n *Node) memPartSize(st *uploadStream) (int64, bool) {
	want := min(st.s.NextPartSize(), n.fsys.streamPartCap())
	return want, 3*want <= n.fsys.streamBufs.limit
}

// memBuffer returns an empty buffer for m's next part, waiting while the
// budget is spent and m's own parts are uploading; nil means spill: the
// budget is other files', a part failed, or the part size outgrew the
// budget. dataMu held for writing.
func (n *Node) memBuffer(m *memTail) []byte {
	want, fits := n.memPartSize(m.st)
	if !fits {
		return nil
	}
	for {
		n.reclaimMem(m)
		if buf := n.fsys.streamBufs.get(want); buf != nil {
			m.want = want
			return buf
		}
		if len(m.parts) == 0 || m.st.s.Err() != nil {
			return nil
		}
		if err := m.st.s.WaitPart(n.fsys.ctx); err != nil {
			return nil
		}
	}
}

// reclaimMem frees m's parts that are uploaded with every part before
// them: nothing reads them again.
func (n *Node) reclaimMem(m *memTail) {
	upTo := m.st.s.Uploaded()
	i := 0
	for ; i < len(m.parts) && m.parts[i].off+int64(len(m.parts[i].buf)) <= upTo; i++ {
		n.fsys.streamBufs.put(m.parts[i].buf, true)
	}
	m.parts = m.parts[i:]
}

// spillLocked ends n's memory mode: every byte memory holds that the store
// may still need goes into the staging file at its offset, the stream's
// unsent parts read it from there, and the bytes already uploaded that the
// staging file lacks count as released (punched), as for a stream whose
// parts were punched out. On a failed write nothing changes (the bytes
// stay in memory) and the errno says why. dataMu held for writing.
func (n *Node) spillLocked() syscall.Errno {
	n.mu.Lock()
	m, staging := n.mem, n.staging
	n.mu.Unlock()
	if m == nil {
		return 0
	}
	st := m.st
	upTo := st.s.Uploaded()
	var err error
	for _, p := range m.parts {
		if err == nil && p.off+int64(len(p.buf)) > upTo {
			_, err = staging.WriteAt(p.buf, p.off)
		}
	}
	if err == nil && len(m.fill) > 0 {
		_, err = staging.WriteAt(m.fill, st.next)
	}
	if err != nil {
		errno := toErrno(err)
		n.fsys.log.Error("could not write a streaming file's newest bytes to the staging file; they stay in memory",
			"key", st.key, "staging_dir", n.fsys.cfg.StagingDir, "errno", errno.Error(), "err", err)
		return errno
	}
	st.s.Rebase(staging)
	n.mu.Lock()
	if upTo > m.from && upTo > n.punched {
		n.punched = upTo
	}
	n.mem = nil
	if delta := n.size - n.punched - n.charged; delta > 0 {
		n.charged += delta
		n.fsys.staged.Add(delta)
	}
	punched, size := n.punched, n.size
	n.mu.Unlock()
	for _, p := range m.parts {
		// A part not uploaded may still be uploading from its buffer.
		n.fsys.streamBufs.put(p.buf, p.off+int64(len(p.buf)) <= upTo)
	}
	if m.fill != nil {
		n.fsys.streamBufs.put(m.fill, true)
	}
	n.fsys.streamBufs.leave()
	n.saveSidecar()
	n.fsys.log.Debug("streaming file's memory written to staging", "key", st.key, "released", punched, "size", size)
	return 0
}

// releaseMemLocked ends n's memory mode without writing anything: after
// the stream it fed completed (every byte is stored, completed true) or
// with the content it belongs to (the file was emptied). Parts of a
// stream that did not complete may still be read by an upload in flight,
// so their buffers are left to the collector rather than recycled. n.mu
// held, and dataMu as for changing n.mem.
func (n *Node) releaseMemLocked(completed bool) {
	m := n.mem
	if m == nil {
		return
	}
	n.mem = nil
	for _, p := range m.parts {
		n.fsys.streamBufs.put(p.buf, completed)
	}
	if m.fill != nil {
		n.fsys.streamBufs.put(m.fill, true)
	}
	n.fsys.streamBufs.leave()
}

func (n *Node) lockDataWhole() syscall.Errno {
	n.dataMu.Lock()
	if errno := n.spillLocked(); errno != 0 {
		n.dataMu.Unlock()
		return errno
	}
	return 0
}

// prepareUpload readies a streaming file for its upload: a memory tail
// that no longer feeds the file's stream under its key is spilled, and a
// stream for a key the file no longer has (a directory rename moved it
// while it was written) is completed under that key first when it holds
// bytes the staging file lacks, so that the upload under the new key is
// an edit of that object instead of losing them. uploadMu held, inside
// the rename gate.
func (n *Node) prepareUpload() syscall.Errno {
	n.mu.Lock()
	m, st, key, punched := n.mem, n.stream, n.key, n.punched
	n.mu.Unlock()
	stale := st != nil && st.key != key
	if (m == nil || (m.st == st && !stale)) && !(stale && punched > 0) {
		return 0
	}
	n.dataMu.Lock()
	defer n.dataMu.Unlock()
	if errno := n.spillLocked(); errno != 0 {
		return errno
	}
	n.mu.Lock()
	st, key, punched = n.stream, n.key, n.punched
	n.mu.Unlock()
	if st == nil || st.key == key || punched == 0 {
		return 0
	}
	n.fsys.log.Warn("a file renamed while it streamed: its first bytes are stored under the old name first, then the file under the new one (the old object stays)",
		"old_key", st.key, "key", key)
	return n.settleStreamLocked(context.Background())
}

// preserveStreamed keeps a streaming file's bytes readable through its open
// descriptors before its object is deleted or overwritten (unlink, rename
// over it): the stream is completed, so the store holds the bytes the
// staging file lacks, and those are downloaded into it, as for an edit
// (fillCleanLocked, bounded by maxPreserveDownload; past that the
// descriptors get ESTALE, with a log line).
func (n *Node) preserveStreamed(ctx context.Context) {
	if errno := n.lockDataWhole(); errno != 0 {
		return
	}
	defer n.dataMu.Unlock()
	errno := n.settleStreamLocked(ctx)
	if errno == 0 {
		errno = n.fillCleanLocked(ctx)
	}
	if errno != 0 {
		n.fsys.log.Warn("could not keep an open streaming file's content before removing it; its descriptors may see errors",
			"key", n.currentKey(), "errno", errno.Error())
	}
}

package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"syscall"

	"github.com/novitalabs/bucketfs/cache"
	"github.com/novitalabs/bucketfs/internal/compose"
	"github.com/novitalabs/bucketfs/s3backend"
)

// Edits of big objects. A write, append or truncate of an existing object
// above Config.SparseEditMin does not download it: the node gets an empty
// (sparse) staging file, remembers the object it was opened on (editBase)
// and the byte ranges written since (dirty). Reads take dirty bytes from
// the staging file and the rest from the base object through the block
// cache; the upload (compose.Apply) copies untouched ranges server-side
// with UploadPartCopy, pinned to the base's ETag, and sends only the parts
// that hold new bytes.
//
// Growth of the file (a write past the end, an extending truncate) marks
// the new range dirty: the staging file reads zeros there, and a base that
// was longer before a shrink must not show through.
//
// editBase and dirty are guarded by Node.mu; the staging file's bytes by
// Node.dataMu.

// defaultSparseEditMin: objects up to this size are downloaded whole when
// edited (one GET, and one PUT would send them whole anyway).
const defaultSparseEditMin = 16 << 20

// maxPreserveDownload bounds what an unlink or rename-over downloads to
// keep an open file readable. Bigger files' descriptors get ESTALE (and a
// log line says why) rather than a surprise multi-gigabyte download.
const maxPreserveDownload = 64 << 20

// editBase is the object a sparse staging file's untouched bytes come from.
type editBase struct {
	key, etag string
	size      int64 // the base object's size
}

// rangeSet is a sorted list of disjoint, non-adjacent ranges.
type rangeSet []compose.Range

// add inserts [off, off+n), merging neighbours.
func (s rangeSet) add(off, n int64) rangeSet {
	if n <= 0 {
		return s
	}
	end := off + n
	// First range that ends at or after off (could merge).
	i, _ := slices.BinarySearchFunc(s, off, func(r compose.Range, off int64) int {
		if r.Off+r.Len < off {
			return -1
		}
		return 1
	})
	j := i
	for j < len(s) && s[j].Off <= end {
		off = min(off, s[j].Off)
		end = max(end, s[j].Off+s[j].Len)
		j++
	}
	return slices.Replace(s, i, j, compose.Range{Off: off, Len: end - off})
}

// clip drops everything at or past size.
func (s rangeSet) clip(size int64) rangeSet {
	out := s[:0]
	for _, r := range s {
		if r.Off >= size {
			break
		}
		r.Len = min(r.Len, size-r.Off)
		out = append(out, r)
	}
	return out
}

// sparseCandidateLocked reports whether staging n should be sparse rather
// than a whole download. n.mu held.
func (n *Node) sparseCandidateLocked() bool {
	return n.etag != "" && n.size > n.fsys.cfg.SparseEditMin && n.staging == nil && !n.up.state.pending()
}

// growLocked records that the file grows from old to size: the range reads
// as zeros (from the staging file) and is part of the upload. n.mu held.
func (n *Node) growLocked(old, size int64) {
	if n.editBase != nil && size > old {
		n.dirty = n.dirty.add(old, size-old)
	}
}

// readSparse fills dest with the file's bytes at off: dirty ranges from the
// staging file, the rest from the base object. dataMu held for reading.
func (n *Node) readSparse(ctx context.Context, h *handle, staging io.ReaderAt, base editBase, dirty rangeSet, dest []byte, off int64) error {
	end := off + int64(len(dest))
	pos := off
	fromBase := func(upTo int64) error {
		if upTo <= pos {
			return nil
		}
		seg := dest[pos-off : upTo-off]
		clear(seg)
		if pos < base.size {
			if err := n.readBase(ctx, h, base, seg[:min(upTo, base.size)-pos], pos); err != nil {
				return err
			}
		}
		pos = upTo
		return nil
	}
	for _, r := range dirty {
		if r.Off+r.Len <= pos {
			continue
		}
		if r.Off >= end {
			break
		}
		if err := fromBase(max(r.Off, pos)); err != nil {
			return err
		}
		stop := min(r.Off+r.Len, end)
		seg := dest[pos-off : stop-off]
		got, err := staging.ReadAt(seg, pos)
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read staging: %w", err)
		}
		clear(seg[got:])
		pos = stop
	}
	return fromBase(end)
}

// readBase copies the base object's bytes at off into dest through the
// block cache (pinned to the base's ETag).
func (n *Node) readBase(ctx context.Context, h *handle, base editBase, dest []byte, off int64) error {
	rd := h.reader(cache.Object{Key: base.key, ETag: base.etag, Size: base.size})
	sl, err := rd.ReadSlices(context.WithoutCancel(ctx), off, len(dest))
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	defer sl.Release()
	copied := 0
	for _, v := range sl.Vecs {
		copied += copy(dest[copied:], v)
	}
	if copied < len(dest) {
		return fmt.Errorf("base %q: %d of %d bytes: %w", base.key, copied, len(dest), cache.ErrShortObject)
	}
	return nil
}

// applyEdit writes a sparse node's new content to key: untouched ranges
// copied from the base, parts with new bytes uploaded.
func (n *Node) applyEdit(ctx context.Context, key string, base editBase, dirty rangeSet, staging io.ReaderAt, size int64, opts s3backend.PutOptions) (string, error) {
	res, err := compose.Apply(ctx, n.fsys.store, compose.Edit{
		Key:   key,
		Base:  &compose.Base{Key: base.key, ETag: base.etag, Size: base.size},
		Size:  size,
		Dirty: slices.Clone(dirty),
		Data:  staging,
		Opts:  opts,
	}, compose.Policy{PartSize: n.fsys.cfg.PartSize, MaxInFlight: n.fsys.cfg.UploadConcurrency})
	if err != nil {
		return "", err
	}
	n.fsys.log.Debug("edit uploaded", "key", key, "kind", res.Plan.Kind.String(),
		"sent", res.Plan.Send, "fetched", res.Plan.Fetch, "copied", res.Plan.Copied)
	return res.ETag, nil
}

// afterUploadLocked records that the object at key now holds the node's
// first size bytes, with etag. A sparse node's base becomes the new
// object, of that size. Its dirty ranges are dropped unless the data may
// have changed since the upload's snapshot (dataChanged: then they are a
// superset of the unsent bytes, which stays correct but keeps the file
// from streaming again), and whatever lies past size stays dirty. n.mu held.
func (n *Node) afterUploadLocked(key, etag string, size int64, dataChanged bool) {
	if n.editBase == nil {
		return
	}
	n.editBase = &editBase{key: key, etag: etag, size: size}
	if !dataChanged {
		n.dirty = nil
	}
	if n.size > size {
		n.dirty = n.dirty.add(size, n.size-size)
	}
}

// fillCleanLocked downloads the base's untouched ranges into the staging
// file so that it holds every byte and no longer needs the base (before
// the base object is deleted or replaced). dataMu held for writing.
func (n *Node) fillCleanLocked(ctx context.Context) syscall.Errno {
	n.mu.Lock()
	base, dirty, size, staging, key := n.editBase, slices.Clone(n.dirty), n.size, n.staging, n.key
	n.mu.Unlock()
	if base == nil {
		return 0
	}
	limit := min(size, base.size)
	var clean []compose.Range
	pos := int64(0)
	for _, r := range dirty {
		if r.Off > pos {
			clean = append(clean, compose.Range{Off: pos, Len: min(r.Off, limit) - pos})
		}
		pos = max(pos, r.Off+r.Len)
	}
	if pos < limit {
		clean = append(clean, compose.Range{Off: pos, Len: limit - pos})
	}
	var total int64
	for _, r := range clean {
		total += max(r.Len, 0)
	}
	if total > maxPreserveDownload {
		n.fsys.log.Warn("not downloading a big file to keep it readable after its object goes; its open descriptors will get ESTALE",
			"key", key, "bytes", total, "limit", maxPreserveDownload)
		return syscall.EFBIG
	}
	dctx, cancel := n.fsys.downloadContext()
	defer cancel()
	for _, r := range clean {
		if r.Len <= 0 {
			continue
		}
		body, err := n.fsys.store.GetRange(dctx, base.key, r.Off, r.Len, base.etag)
		if err == nil {
			_, err = io.Copy(io.NewOffsetWriter(staging, r.Off), io.LimitReader(body, r.Len))
			body.Close()
		}
		if err != nil {
			errno := toErrno(err)
			n.fsys.logFailure("stage", key, err, errno)
			return errno
		}
	}
	n.mu.Lock()
	n.editBase, n.dirty = nil, nil
	n.mu.Unlock()
	return 0
}

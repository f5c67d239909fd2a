package fs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/novitalabs/bucketfs/internal/compose"
	"github.com/novitalabs/bucketfs/s3backend"
)

// Crash-safe staging. Every file with local data has two files in the
// staging directory:
//
//	<id>.data   the file's content (sparse where an extending truncate
//	            wrote nothing)
//	<id>.meta   a JSON sidecar: bucket, prefix, key, the ETag the data was
//	            based on, generation, size, attributes, state
//
// The sidecar is written before the data file is created and rewritten at
// every flush, rename and attribute change, so a daemon killed at any point
// leaves, for each file whose close did not succeed, a sidecar that names it.
// A daemon started again on the same directory (the same bucket and prefix,
// see ClaimStagingDir) registers those files, shows them in the mount and
// uploads them. Data the retry loop gives up on moves to the recovery
// directory by rename, sidecar included.

const (
	dataSuffix    = ".data"
	sidecarSuffix = ".meta"
	sidecarFormat = 1
)

// sidecar is the on-disk description of one staged file.
type sidecar struct {
	Format   int               `json:"format"`
	Bucket   string            `json:"bucket"`
	Prefix   string            `json:"prefix"`
	Key      string            `json:"key"`
	BaseETag string            `json:"base_etag,omitempty"`
	Gen      uint64            `json:"gen"`
	Size     int64             `json:"size"`
	State    string            `json:"state"`
	Mode     uint32            `json:"mode"`
	UID      uint32            `json:"uid"`
	GID      uint32            `json:"gid"`
	MtimeNs  int64             `json:"mtime_ns"`
	AtimeNs  int64             `json:"atime_ns,omitempty"`
	CtimeNs  int64             `json:"ctime_ns,omitempty"`
	Foreign  map[string]string `json:"foreign,omitempty"`
	// A sparse staging file (edit.go): the data file holds only the Dirty
	// ranges; the rest is the base object's, pinned to BaseETag.
	BaseKey  string          `json:"base_key,omitempty"`
	BaseSize int64           `json:"base_size,omitempty"`
	Dirty    []compose.Range `json:"dirty,omitempty"`
	// UploadID: a streaming multipart upload in progress (stream.go),
	// aborted by the next daemon.
	UploadID string `json:"upload_id,omitempty"`
	// Punched: bytes [0, Punched) were released from the data file after
	// their upload as Parts (stream.go); the next daemon sends the rest
	// as further parts and completes UploadID.
	Punched int64                     `json:"punched,omitempty"`
	Parts   []s3backend.CompletedPart `json:"parts,omitempty"`
	Saved   time.Time                 `json:"saved"`
	Error   string                    `json:"last_error,omitempty"`
}

// ClaimStagingDir makes base (or, when another live daemon holds base,
// base.2, base.3, …) the staging directory of this process, locked with
// flock for as long as the process lives. It returns the directory and a
// function that releases the lock.
func ClaimStagingDir(base string) (string, func(), error) {
	for i := 1; i <= 32; i++ {
		dir := base
		if i > 1 {
			dir = base + "." + strconv.Itoa(i)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", nil, fmt.Errorf("staging directory %s: %w", dir, err)
		}
		lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return "", nil, fmt.Errorf("staging directory lock: %w", err)
		}
		if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			lock.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				continue // another mount of the same bucket and prefix
			}
			return "", nil, fmt.Errorf("staging directory lock %s: %w", dir, err)
		}
		return dir, func() { lock.Close() }, nil
	}
	return "", nil, fmt.Errorf("staging directory %s: 32 live mounts already use it", base)
}

func newStageID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

func (f *FS) stagePath(id, suffix string) string {
	return filepath.Join(f.cfg.StagingDir, id+suffix)
}

// createStagingFile makes a new, empty staging file for key with its
// sidecar (written first, so a crash never leaves data that names no key).
func (f *FS) createStagingFile(n *Node) (*os.File, string, error) {
	id := newStageID()
	n.mu.Lock()
	sc := n.sidecarLocked()
	n.mu.Unlock()
	sc.Size, sc.State = 0, stateDirty.String()
	if err := f.writeSidecar(id, sc); err != nil {
		return nil, "", err
	}
	file, err := os.OpenFile(f.stagePath(id, dataSuffix), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		os.Remove(f.stagePath(id, sidecarSuffix))
		return nil, "", fmt.Errorf("create staging file: %w", err)
	}
	return file, id, nil
}

// sidecarLocked describes n for its sidecar. n.mu held.
func (n *Node) sidecarLocked() sidecar {
	sc := sidecar{
		Format:   sidecarFormat,
		Bucket:   n.fsys.cfg.Bucket,
		Prefix:   n.fsys.cfg.Prefix,
		Key:      n.key,
		BaseETag: n.etag,
		Gen:      n.gen,
		Size:     n.size,
		State:    n.up.state.String(),
		Mode:     n.attrs.perm,
		UID:      n.attrs.uid,
		GID:      n.attrs.gid,
		MtimeNs:  n.attrs.mtime.UnixNano(),
		AtimeNs:  unixNanoOrZero(n.attrs.atime),
		CtimeNs:  unixNanoOrZero(n.attrs.ctime),
		Foreign:  n.foreign,
		Error:    errString(n.up.lastFailure()),
	}
	if n.mem != nil {
		// The staging file holds the bytes below from; memory the rest,
		// which a kill -9 loses (none was acknowledged).
		sc.Size = n.mem.from
	}
	if n.stream != nil {
		sc.UploadID = n.stream.s.UploadID()
		if n.punched > 0 {
			sc.Parts, sc.Punched = n.stream.s.UploadedParts()
		}
	}
	if r := n.resume; r != nil {
		sc.UploadID, sc.Parts, sc.Punched = r.uploadID, r.parts, r.end
	}
	if n.editBase != nil {
		sc.BaseKey, sc.BaseETag, sc.BaseSize = n.editBase.key, n.editBase.etag, n.editBase.size
		sc.Dirty = slices.Clone(n.dirty)
	}
	return sc
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// writeSidecar replaces id's sidecar atomically (write, then rename).
func (f *FS) writeSidecar(id string, sc sidecar) error {
	sc.Saved = time.Now().UTC()
	b, err := json.Marshal(sc)
	if err != nil {
		return fmt.Errorf("encode sidecar: %w", err)
	}
	tmp := f.stagePath(id, sidecarSuffix+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write sidecar: %w", err)
	}
	if err := os.Rename(tmp, f.stagePath(id, sidecarSuffix)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write sidecar: %w", err)
	}
	return nil
}

// saveSidecar rewrites n's sidecar with its current state. Writers are
// serialised by sidecarMu and each writes the state as of its own turn, so
// the last write on disk is never older than the state it follows.
func (n *Node) saveSidecar() {
	n.sidecarMu.Lock()
	defer n.sidecarMu.Unlock()
	n.mu.Lock()
	id := n.stage
	sc := n.sidecarLocked()
	gone := n.unlinked || n.retired || n.staging == nil
	n.mu.Unlock()
	if id == "" || gone {
		return
	}
	if err := n.fsys.writeSidecar(id, sc); err != nil {
		n.fsys.log.Warn("staging sidecar not updated: a crash now would lose this file's latest name or attributes",
			"key", sc.Key, "err", err)
	}
}

// removeStage deletes id's files (sidecar first: data without a sidecar is
// only ever a crash's leftover, never mistaken for a file to upload).
func (f *FS) removeStage(id string) {
	if id == "" {
		return
	}
	for _, suffix := range []string{sidecarSuffix, dataSuffix} {
		if err := os.Remove(f.stagePath(id, suffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
			f.log.Warn("could not remove a staging file", "path", f.stagePath(id, suffix), "err", err)
		}
	}
}

// moveToRecovery renames id's files into the recovery directory and
// returns the data file's new path.
func (f *FS) moveToRecovery(id, key string) (string, error) {
	if err := os.MkdirAll(f.cfg.RecoveryDir, 0o700); err != nil {
		return "", fmt.Errorf("create recovery dir: %w", err)
	}
	name := id + "." + url.PathEscape(key)
	if len(name) > 200 {
		name = name[:200]
	}
	dst := filepath.Join(f.cfg.RecoveryDir, name)
	for _, suffix := range []string{dataSuffix, sidecarSuffix} {
		if err := moveFile(f.stagePath(id, suffix), dst+suffix); err != nil {
			return "", err
		}
	}
	return dst + dataSuffix, nil
}

// moveFile renames src to dst, copying when they are on different
// filesystems.
func moveFile(src, dst string) error {
	err := os.Rename(src, dst)
	if err == nil || !errors.Is(err, syscall.EXDEV) {
		if err != nil {
			return fmt.Errorf("move %s to %s: %w", src, dst, err)
		}
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("move %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("move to %s: %w", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(dst)
		return fmt.Errorf("move to %s: %w", dst, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("move to %s: %w", dst, err)
	}
	return os.Remove(src)
}

// loadStaged registers the files a previous daemon left in the staging
// directory: each becomes a dirty node that the mount shows and the retry
// loop uploads. Leftovers that name no file are moved to the recovery
// directory (data) or removed (temporary files, empty data).
func (f *FS) loadStaged() error {
	entries, err := os.ReadDir(f.cfg.StagingDir)
	if err != nil {
		return fmt.Errorf("read staging dir: %w", err)
	}
	sidecars := make(map[string]bool)
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), sidecarSuffix); ok {
			sidecars[id] = true
		}
	}
	parsed, older := f.olderStaged(sidecars)
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, sidecarSuffix+".tmp"):
			os.Remove(filepath.Join(f.cfg.StagingDir, name))
		case strings.HasSuffix(name, sidecarSuffix):
			id := strings.TrimSuffix(name, sidecarSuffix)
			if key, ok := older[id]; ok {
				f.recoverOlder(id, key)
				continue
			}
			f.loadOne(id, parsed[id])
		case strings.HasSuffix(name, dataSuffix) && !sidecars[strings.TrimSuffix(name, dataSuffix)]:
			id := strings.TrimSuffix(name, dataSuffix)
			if info, err := e.Info(); err == nil && info.Size() == 0 {
				os.Remove(filepath.Join(f.cfg.StagingDir, name))
				continue
			}
			if err := os.MkdirAll(f.cfg.RecoveryDir, 0o700); err == nil {
				dst := filepath.Join(f.cfg.RecoveryDir, id+".unnamed"+dataSuffix)
				if err := moveFile(filepath.Join(f.cfg.StagingDir, name), dst); err == nil {
					f.log.Error("staging data without a sidecar (a crash while creating it) moved to recovery", "recovery_file", dst)
				}
			}
		}
	}
	return nil
}

// olderStaged reads the sidecars of ids once (loadOne takes each from
// parsed) and finds those that a newer staged file of the same key
// supersedes, returned in older with their keys. A key has two only after
// a crash in the instant a file emptied (truncated to 0) had its new
// staging file and not yet dropped the old one; the newer (last saved,
// then higher generation) is the file's state, and uploading the other
// after it would put stale bytes over it.
func (f *FS) olderStaged(ids map[string]bool) (parsed map[string]sidecarRead, older map[string]string) {
	type found struct {
		id string
		sc sidecar
	}
	newest := make(map[string]found)
	parsed = make(map[string]sidecarRead, len(ids))
	older = make(map[string]string)
	for id := range ids {
		r := f.readSidecar(id)
		parsed[id] = r
		if r.why != "" {
			continue // loadOne says why
		}
		sc := r.sc
		cur, ok := newest[sc.Key]
		switch {
		case !ok:
			newest[sc.Key] = found{id, sc}
		case sc.Saved.After(cur.sc.Saved) || sc.Saved.Equal(cur.sc.Saved) && sc.Gen > cur.sc.Gen:
			older[cur.id] = sc.Key
			newest[sc.Key] = found{id, sc}
		default:
			older[id] = sc.Key
		}
	}
	return parsed, older
}

// sidecarRead is a sidecar as read at start, or why it is left alone.
type sidecarRead struct {
	sc        sidecar
	why       string // "": sc is this mount's
	err       error
	otherBase bool // of another bucket or prefix
}

// readSidecar reads id's sidecar and checks that it is this mount's.
func (f *FS) readSidecar(id string) sidecarRead {
	b, err := os.ReadFile(f.stagePath(id, sidecarSuffix))
	if err != nil {
		return sidecarRead{why: "unreadable staging sidecar left alone", err: err}
	}
	var sc sidecar
	if err := json.Unmarshal(b, &sc); err != nil || sc.Format != sidecarFormat {
		return sidecarRead{why: "staging sidecar of an unknown format left alone", err: err}
	}
	if sc.Bucket != f.cfg.Bucket || sc.Prefix != f.cfg.Prefix {
		return sidecarRead{sc: sc, why: "staging sidecar of another bucket or prefix left alone", otherBase: true}
	}
	return sidecarRead{sc: sc}
}

// recoverOlder moves a superseded staged file (olderStaged) to the
// recovery directory, where nothing uploads it, with a log line.
func (f *FS) recoverOlder(id, key string) {
	dst, err := f.moveToRecovery(id, key)
	if err != nil {
		f.log.Error("an older staged version of a key could not be moved to the recovery directory; left in staging, not uploaded",
			"key", key, "id", id, "err", err)
		return
	}
	f.log.Warn("an older staged version of a key, superseded by a newer one, moved to the recovery directory",
		"key", key, "recovery_file", dst)
}

// loadOne registers one staged file from its sidecar.
func (f *FS) loadOne(id string, r sidecarRead) {
	sc := r.sc
	switch {
	case r.otherBase:
		f.log.Warn(r.why, "id", id, "bucket", sc.Bucket, "prefix", sc.Prefix)
		return
	case r.why != "":
		f.log.Warn(r.why, "id", id, "err", r.err)
		return
	}
	if sc.State == stateClean.String() {
		f.removeStage(id) // the bucket has it
		return
	}
	file, err := os.OpenFile(f.stagePath(id, dataSuffix), os.O_RDWR, 0)
	if err != nil {
		f.log.Error("staged file's data is missing; nothing to upload", "key", sc.Key, "id", id, "err", err)
		os.Remove(f.stagePath(id, sidecarSuffix))
		return
	}
	if prev := f.registered(sc.Key); prev != nil {
		// olderStaged leaves one sidecar per key; a second can only be
		// one written since it ran. Left in staging, not uploaded.
		file.Close()
		f.log.Warn("two staged versions of one key; keeping the first found", "key", sc.Key, "id", id)
		return
	}
	n := f.newNode(kindFile, sc.Key)
	n.attrs = posixAttrs{perm: sc.Mode, uid: sc.UID, gid: sc.GID, mtime: time.Unix(0, sc.MtimeNs)}
	if sc.AtimeNs != 0 {
		n.attrs.atime = time.Unix(0, sc.AtimeNs)
	}
	if sc.CtimeNs != 0 {
		n.attrs.ctime = time.Unix(0, sc.CtimeNs)
	}
	n.size = sc.Size
	n.etag = sc.BaseETag
	n.foreign = sc.Foreign
	n.staging, n.stage = file, id
	if st, err := file.Stat(); err == nil {
		n.charged = st.Size()
		f.staged.Add(n.charged)
		// Writes since the sidecar was last saved (at a flush or a
		// truncate) only grew the data file: a whole file is as long
		// as both say.
		if sc.BaseKey == "" && st.Size() > n.size {
			n.size = st.Size()
		}
	}
	n.gen = sc.Gen
	if sc.BaseKey != "" {
		n.editBase = &editBase{key: sc.BaseKey, etag: sc.BaseETag, size: sc.BaseSize}
		n.dirty = rangeSet(sc.Dirty)
	}
	n.up.state = stateDirty
	if sc.UploadID != "" && sc.Punched > 0 && len(sc.Parts) > 0 {
		n.resume = &resumeUpload{uploadID: sc.UploadID, parts: sc.Parts, end: sc.Punched}
		n.punched = sc.Punched
	}
	f.register(n)
	// The killed daemon's multipart uploads of this key (a stream, or
	// the parallel upload of a big file at close) are garbage now: the
	// data is uploaded again from staging. Only uploads begun before this
	// daemon started go (another mount of the bucket may be writing the
	// key now), and never the one a resume will complete. MinIO lists
	// multipart uploads by exact key only, which is what this asks.
	started := time.Now()
	keep := ""
	if n.resume != nil {
		keep = n.resume.uploadID
	}
	go f.abortStaleUploads(sc.Key, keep, started)
	f.log.Info("picked up a file a previous daemon had not uploaded", "key", sc.Key, "bytes", sc.Size, "staged_at", sc.Saved)
}

// resumeUpload is a previous daemon's streaming upload whose first bytes
// were released from staging: parts (reaching end) are in the store.
type resumeUpload struct {
	uploadID string
	parts    []s3backend.CompletedPart
	end      int64
}

// finishResume sends the staged bytes past the recorded parts as further
// parts and completes the upload. uploadMu and dataMu (read) held.
func (n *Node) finishResume(ctx context.Context, r *resumeUpload, staging io.ReaderAt, key string, size int64) (string, error) {
	parts := slices.Clone(r.parts)
	const partSize = 16 << 20
	for off := r.end; off < size; off += partSize {
		num := int32(len(parts) + 1)
		length := min(partSize, size-off)
		etag, err := n.fsys.store.UploadPart(ctx, key, r.uploadID, num, io.NewSectionReader(staging, off, length), length)
		if err != nil {
			return "", err
		}
		parts = append(parts, s3backend.CompletedPart{Number: num, ETag: etag})
	}
	etag, err := n.fsys.store.CompleteMultipart(ctx, key, r.uploadID, parts)
	if err != nil {
		return "", err
	}
	n.mu.Lock()
	n.resume, n.punched = nil, 0
	// The staging file lacks the released first bytes: from now on they
	// are read from the object this made, as for a completed stream.
	n.editBase, n.dirty = &editBase{key: key, etag: etag, size: size}, nil
	n.mu.Unlock()
	n.fsys.log.Info("finished a previous daemon's streaming upload", "key", key, "bytes", size)
	return etag, nil
}

// unixNanoOrZero is t in nanoseconds, 0 when t is unset (a sidecar written
// before atime and ctime were kept has neither).
func unixNanoOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// abortStaleUploads aborts the multipart uploads of key begun before
// before, except keep.
func (f *FS) abortStaleUploads(key, keep string, before time.Time) {
	ctx, cancel := f.uploadContext()
	defer cancel()
	ups, err := f.store.ListMultipart(ctx, key)
	if err != nil {
		f.log.Warn("could not list a previous daemon's multipart uploads", "key", key, "err", err)
		return
	}
	for _, u := range ups {
		if u.Key != key || u.UploadID == keep || !u.Initiated.Before(before) {
			continue
		}
		if err := f.store.AbortMultipart(ctx, key, u.UploadID); err != nil && !errors.Is(err, s3backend.ErrNotFound) {
			f.log.Warn("could not abort a previous daemon's multipart upload", "key", key, "upload_id", u.UploadID, "err", err)
			continue
		}
		f.log.Info("aborted a previous daemon's multipart upload", "key", key, "upload_id", u.UploadID)
	}
}

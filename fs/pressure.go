package fs

import (
	"syscall"
	"time"
)

// The staging area is bounded: Config.StagingSize bytes (default half the
// free space of the staging directory's filesystem at mount). Every byte a
// staging file grows by is charged to FS.staged and released when the
// staging file goes (uploaded and idle, unlinked, truncated). A write that
// would go over the bound waits, up to stagingWait, for other files'
// uploads to release space (the retry loop is woken to drain what is
// pending), then fails with ENOSPC and a log line: a full disk is a clear
// errno, never a silent loss. statfs reports the staging disk's real free
// space, so df and installers see the truth.

// stagingWait bounds how long a write waits for the staging area to drain
// while nothing drains.
const stagingWait = 30 * time.Second

// stagingLimit works out the bound: size if set, else half the free space
// of dir's filesystem.
func stagingLimit(dir string, size int64) int64 {
	if size > 0 {
		return size
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 1 << 62 // cannot tell: no bound but the disk's own ENOSPC
	}
	return int64(st.Bavail) * st.Bsize / 2
}

// reserveStaging charges n for a write of length bytes at off, waiting
// while the area is full: a whole staging file is charged up to its
// furthest byte, a sparse one (edit.go) for what is written. dataMu held
// (n's own upload cannot be what is awaited: it runs at close, after this
// write).
func (n *Node) reserveStaging(off, length int64) syscall.Errno {
	n.mu.Lock()
	delta := off + length - n.punched - n.charged
	if n.editBase != nil {
		delta = length
	}
	n.mu.Unlock()
	if delta <= 0 {
		return 0
	}
	f := n.fsys
	// The wait ends stagingWait after the last progress (space released
	// anywhere), not after its start: a slow store still drains.
	deadline := time.Now().Add(stagingWait)
	low := f.staged.Load()
	for f.staged.Load()+delta > f.stagingLimit {
		if now := f.staged.Load(); now < low {
			low, deadline = now, time.Now().Add(stagingWait)
		}
		if time.Now().After(deadline) {
			n.mu.Lock()
			charged, punched, streaming := n.charged, n.punched, n.stream != nil
			// Why the file is not streaming, if it is not: a write not
			// at its end (seq_only false), or dirty ranges that are not
			// one append to its stored prefix (stream_prefix -1).
			seqOnly, prefix, dirtyRanges := n.seqOnly, n.appendedToLocked(), len(n.dirty)
			var baseSize int64 = -1
			if n.editBase != nil {
				baseSize = n.editBase.size
			}
			n.mu.Unlock()
			f.log.Warn("staging area full: write refused with ENOSPC", "key", n.currentKey(),
				"staged_bytes", f.staged.Load(), "limit", f.stagingLimit, "staging_dir", f.cfg.StagingDir,
				"write_off", off, "write_len", length, "need", delta, "charged", charged, "released", punched, "streaming", streaming,
				"seq_only", seqOnly, "stream_prefix", prefix, "base_size", baseSize, "dirty_ranges", dirtyRanges)
			return syscall.ENOSPC
		}
		if n.punchUploaded() > 0 {
			continue // this file's own uploaded parts made room
		}
		if n.ownPartsMoving() {
			// This file's own parts are uploading (each bounded by
			// its request deadline): room is coming, however slow
			// the store is.
			deadline = time.Now().Add(stagingWait)
		}
		f.wakeRetries()
		time.Sleep(100 * time.Millisecond)
	}
	n.mu.Lock()
	n.charged += delta
	n.mu.Unlock()
	f.staged.Add(delta)
	return 0
}

// ownPartsMoving reports whether n's stream has parts uploading, retrying
// failed ones first (their bytes are still staged).
func (n *Node) ownPartsMoving() bool {
	n.mu.Lock()
	st := n.stream
	n.mu.Unlock()
	if st == nil {
		return false
	}
	if err := st.s.Err(); err != nil {
		n.fsys.log.Warn("streamed part failed; retrying it", "key", st.key, "err", err)
		if err := st.s.Retry(n.fsys.ctx); err != nil {
			return false
		}
	}
	return st.s.InFlight() > 0
}

// releaseStagingLocked gives back what n is charged for above size (all of
// it when its staging file goes: size 0). n.mu held.
func (n *Node) releaseStagingLocked(size int64) {
	if n.charged > size {
		n.fsys.staged.Add(size - n.charged)
		n.charged = size
	}
}

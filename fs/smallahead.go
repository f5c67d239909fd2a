package fs

import (
	"context"
	"io"
	"os"
	"time"

	"github.com/novitalabs/bucketfs/cache"
)

// Read-ahead across the small files of a directory. A program that opens a
// directory's files one after another in listing order (grep -r, tar c,
// cp -r, a loader reading shards) waits for one GET per file, each a round
// trip of which the daemon's work is a small part. Once two files of a
// directory have been opened in that order, the next few small files are
// fetched into the block cache in the background, keyed by the ETag their
// listing showed, so that their opens find their bytes there. A file
// changed since (another ETag) is read as always: the fetched block is
// never used and ages out of the cache.
//
// A program going down a tree (grep -r) reads a few files per directory:
// waiting for two opens in each would leave the first files of every
// directory unfetched. So while the mount has a reader in order (an open
// kept to a directory's order less than smallAheadWalk ago), the first
// file opened of another directory starts its read-ahead at once.
//
// Fetches wait in one bounded queue per mount, served by
// smallAheadInFlight workers; a fetch that finds the queue full is
// dropped, and one whose file was opened meanwhile is skipped (its open
// reads it, as an open always does).
const (
	// smallAheadFiles is how many files past the one opened are fetched.
	smallAheadFiles = 8
	// smallAheadMax is the largest file fetched ahead: bigger ones are
	// worth their own readahead once opened.
	smallAheadMax = 256 << 10
	// smallAheadInFlight bounds the fetches of a mount.
	smallAheadInFlight = 4
	// smallAheadGap is how far past the last file opened the next may be
	// and still count as in order (directories and skipped names between).
	smallAheadGap = 4
	// smallAheadTimeout is the deadline of one fetch.
	smallAheadTimeout = 30 * time.Second
	// smallAheadQueue bounds the fetches waiting for a worker: a few
	// directories' worth.
	smallAheadQueue = 4 * smallAheadFiles
	// smallAheadWalk is how long after an open in order the first file
	// opened of another directory starts that directory's read-ahead.
	smallAheadWalk = 2 * time.Second
)

// smallAheadState follows the opens of a directory's files; in dirState,
// under the directory's Node.mu. lastOpened is the listing index of the
// file opened last (meaningful once streak > 0), streak how many opens in
// a row kept to listing order, and fetchedTo the highest index fetched
// ahead.
type smallAheadState struct {
	lastOpened, streak, fetchedTo int
}

// smallAheadJob is one file to fetch ahead: entry idx of dir's listing.
type smallAheadJob struct {
	key, etag string
	size      int64
	dir       *Node
	idx       int
}

// noteOpenForRead follows an open for reading of n (a file), and fetches the
// next small files of its directory's listing ahead once opens keep to the
// listing's order.
func (n *Node) noteOpenForRead() {
	if n.fsys.blocks == nil {
		return
	}
	name, dir := n.parentDir()
	if dir == nil {
		return
	}
	jobs := dir.smallAheadJobs(name)
	if len(jobs) == 0 {
		return
	}
	f := n.fsys
	f.smallAheadStart.Do(func() {
		for range smallAheadInFlight {
			go f.smallAheadWorker()
		}
	})
	for _, j := range jobs {
		select {
		case f.smallAheadQ <- j:
		default:
			return // full: the rest are read as usual when opened
		}
	}
}

// smallAheadWorker fetches queued files until the filesystem closes.
func (f *FS) smallAheadWorker() {
	for {
		select {
		case <-f.ctx.Done():
			return
		case j := <-f.smallAheadQ:
			if !j.dir.smallAheadOpened(j.idx) {
				f.fetchAhead(j)
			}
		}
	}
}

// smallAheadOpened reports whether the reader in order has reached entry
// idx of n's listing: its open reads it, no need to fetch it ahead.
func (n *Node) smallAheadOpened(idx int) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	sa := &n.dir().smallAhead
	return sa.streak > 0 && sa.lastOpened >= idx
}

// smallAheadJobs records the open of entry name of n's listing and returns
// the files to fetch ahead, if any. Takes n.mu.
func (n *Node) smallAheadJobs(name string) []smallAheadJob {
	n.mu.Lock()
	defer n.mu.Unlock()
	d := n.dir()
	cur, ok := d.listing[name]
	if !ok || cur.idx < 0 || !time.Now().Before(d.listingUntil) {
		return nil
	}
	sa := &d.smallAhead
	now := time.Now()
	switch {
	case sa.streak > 0 && cur.idx > sa.lastOpened && cur.idx-sa.lastOpened <= smallAheadGap:
		sa.streak++
	case cur.idx < smallAheadGap && now.UnixNano()-n.fsys.smallAheadLast.Load() < int64(smallAheadWalk):
		// The first files of a directory, while the mount has a reader
		// in order elsewhere: a program going down a tree.
		sa.streak, sa.fetchedTo = 2, cur.idx
	default:
		sa.streak, sa.fetchedTo = 1, cur.idx
	}
	sa.lastOpened = cur.idx
	if sa.streak < 2 {
		return nil
	}
	n.fsys.smallAheadLast.Store(now.UnixNano())
	var jobs []smallAheadJob
	from := max(cur.idx, sa.fetchedTo) + 1
	to := min(cur.idx+smallAheadFiles, len(d.listingOrder)-1)
	for i := from; i <= to; i++ {
		nm := d.listingOrder[i]
		e, ok := d.listing[nm]
		if !ok || e.kind != kindFile || e.needStat || e.etag == "" || e.size <= 0 || e.size > smallAheadMax {
			continue
		}
		jobs = append(jobs, smallAheadJob{key: n.childKeyLocked(nm), etag: e.etag, size: e.size, dir: n, idx: i})
	}
	sa.fetchedTo = max(sa.fetchedTo, to)
	return jobs
}

// fetchAhead brings j's bytes into the block cache, unless they are there,
// or the file has local data (its reads come from that).
func (f *FS) fetchAhead(j smallAheadJob) {
	if f.registered(j.key) != nil || int64(j.size) > f.blocks.BlockSize() {
		return
	}
	ctx, cancel := context.WithTimeout(f.ctx, smallAheadTimeout)
	defer cancel()
	// Read through a block reader of its own, as an open would: the
	// blocks it leaves cached are the ones the open's reader asks for.
	rd := f.blocks.NewReader(cache.Object{Key: j.key, ETag: j.etag, Size: j.size},
		func(ctx context.Context, off, n int64) (io.ReadCloser, error) {
			return f.store.GetRange(ctx, j.key, off, n, j.etag)
		})
	defer rd.Close()
	_, err := rd.ReadAt(ctx, make([]byte, j.size), 0)
	if err == io.EOF {
		err = nil
	}
	if err != nil && f.ctx.Err() == nil {
		// Its open reads it as usual and reports what fails then.
		f.log.Debug("small-file read-ahead failed", "key", j.key, "err", err)
	}
}

// keepUploadedMax is the largest uploaded file whose bytes stay in the
// block cache (smallUploaded).
const keepUploadedMax = smallAheadMax

// smallUploaded returns the bytes of a small file just uploaded whole from
// its staging file, for the block cache to keep as the version the upload
// made: reading it back (a build reading what it wrote, grep -r after an
// untar) then does not GET what the mount has just sent. The kernel's page
// cache does not keep it for us: the next stat shows a new mtime, and the
// kernel drops the pages of a file whose mtime changed. It returns nil for
// a file too big to keep. staging must not change while this runs (dataMu
// held).
func (f *FS) smallUploaded(key string, staging *os.File, size int64) []byte {
	if f.blocks == nil || size <= 0 || size > keepUploadedMax || size > f.blocks.BlockSize() {
		return nil
	}
	buf := make([]byte, size)
	if _, err := (zeroPadded{staging, size}).ReadAt(buf, 0); err != nil && err != io.EOF {
		f.log.Debug("cannot keep an uploaded file's bytes in the cache", "key", key, "err", err)
		return nil
	}
	return buf
}

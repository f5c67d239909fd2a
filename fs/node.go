package fs

import (
	"context"
	"maps"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/novitalabs/bucketfs/s3backend"
)

// Node is a file, directory or symlink. One type serves all three so that
// the kernel's view (one inode per name) maps onto one struct; kind never
// changes after creation.
type Node struct {
	gofs.Inode

	fsys   *FS
	kind   kind
	isRoot bool

	uploadMu  sync.Mutex   // see the lock order in fs.go
	dataMu    sync.RWMutex // see the lock order in fs.go
	sidecarMu sync.Mutex   // serialises sidecar writes (staging.go); before mu

	// ino is the inode number, kept for the node's life and handed on
	// when the registry adopts its state into a new node.
	ino uint64

	mu sync.Mutex // guards every field below

	// key is the object key (relative to the mount prefix) without a
	// trailing slash; "" for the root. Renames update it.
	key string

	attrs      posixAttrs
	size       int64
	etag       string            // of the object as last seen or written; "" if none yet
	foreign    map[string]string // metadata keys of other tools, kept on rewrite
	validUntil time.Time         // attributes trusted until then (stat cache)
	linkTarget string            // symlinks: cached target, "" until read

	// Write staging (files only).
	staging   *os.File     // local copy of the content, nil when not staged
	stage     string       // the staging file's id in the staging directory (staging.go)
	up        uploadRecord // the upload state machine (state.go)
	gen       uint64       // bumped on every change, so an upload knows if it is still current
	openCount int32        // open file handles
	// unflushed: open handles written through since their last FLUSH;
	// while there are any, a close is still to come whose upload carries
	// the file's attributes too (Setattr). Beside openCount: the two
	// share a word (a Node stays within its size class).
	unflushed int32
	// editBase, dirty: a sparse staging file's base object and the ranges
	// written since (edit.go); editBase nil: staging holds every byte.
	editBase *editBase
	dirty    rangeSet
	// stream: the streaming multipart upload of a sequential writer
	// (stream.go); seqOnly: every write since the file was emptied was an
	// append; metaSet: attributes were set explicitly since the stream
	// started.
	// charged: staging bytes this node holds against the staging
	// area's bound (pressure.go).
	charged int64
	stream  *uploadStream
	// punched: bytes [0, punched) of the staging file were released
	// after their upload as parts of stream (stream.go).
	punched int64
	// resume: a previous daemon's stream whose released bytes only the
	// store holds; the upload finishes it (staging.go).
	resume *resumeUpload
	// mem: a streaming file's newest bytes, held in memory instead of
	// the staging file (streammem.go).
	mem *memTail
	// openedETag is the ETag the last open saw: an open of the same
	// version keeps the kernel's page cache.
	openedETag string
	// replaced counts the other writers' versions of the object that a
	// refresh found (a new ETag from the store, not from our upload): a
	// handle that has served bytes of one version reads only that one.
	replaced uint64
	// pushSt is the kernel page-cache fill's state (kernelfill.go), nil
	// until the first push or writable handle (pushes()).
	pushSt *pushState

	// dirSt: a directory's listing cache (dirState); allocated with
	// every directory node and, by dir(), for a node of another kind
	// only if something asks it for a listing.
	dirSt *dirState

	// The flags, together at the end: scattered among the 8-byte fields
	// above they cost 16 bytes of padding, which took Node past a size
	// class of Go's allocator (a 100,000-entry directory is 100,000 nodes).
	hasMarker bool // directories: a "key/" marker object exists
	// emptiedHere: directories: this mount removed an entry of it (unlink,
	// rmdir, rename away). An implicit directory (no marker) whose last
	// entry goes vanishes from the store, yet POSIX wants it there until
	// rmdir: a lookup that finds nothing keeps the node the kernel holds.
	emptiedHere bool
	// oldStyle: directories whose object is an old-style "key" (no
	// slash, application/x-directory, as old s3fs versions made them);
	// the next metadata update replaces it with "key/", as s3fs does,
	// and rmdir and rename remove it.
	oldStyle bool
	// metaLoaded: attrs and foreign are the object's headers, from a
	// HEAD or because this node wrote them (an upload, a metadata
	// rewrite, mkdir, symlink), not from a listing, which carries none
	// (xattr.go loads them before a rewrite could drop them).
	metaLoaded bool
	unlinked   bool // removed from the namespace: never upload again
	removing   bool // an unlink or rename over it is under way: start no stream (set and cleared under uploadMu)
	seqOnly    bool
	metaSet    bool
	// retired: the registry moved this node's state into a newer node
	// (adopt); nothing may act on it any more.
	retired bool
	// anonWrites: a write came with no process known (page writeback of
	// a shared mapping): every FLUSH uploads (flushowner.go).
	anonWrites bool
}

// dirState is what only a directory node needs: its listing cache and the
// bookkeeping of the lookups answered from it. It lives apart from Node
// because most nodes are files (a 100,000-entry directory makes 100,000
// of them) and would carry these fields unused. Guarded by the Node's mu,
// as the fields of Node are.
type dirState struct {
	// The listing cache. listingOrder holds the
	// listed names in listing order (listEntry.idx indexes it); both grow
	// as a listing streams (readdir.go), and listingDone is set when it
	// has every entry: until then only the names it holds are trusted.
	// listGen counts the listings begun (and invalidations): a streaming
	// listing fills listing only while its generation is current, and a
	// map replaced is never written again (readers that took it under mu
	// may read it without). listingOrder is only appended to: elements
	// below a length taken under mu may be read without it.
	listing      map[string]listEntry
	listingOrder []string
	listingUntil time.Time
	listingDone  bool
	listingDirs  int // entries of listing that are directories, as listed
	listGen      uint64
	// Metadata of the listing's entries, fetched on demand (dir.go):
	// fetching holds the HEADs in flight by name; lastLooked and streak
	// follow a caller stat-ing entries in listing order (the index of the
	// last entry looked up, and how many lookups in a row kept to that
	// order); prefetching is set once the rest of the listing is being
	// fetched. All reset with each new listing.
	// dirReaders counts the open handles that have read this directory
	// (cachedEntry).
	// prefetchSem bounds the HEADs of the listing's prefetches (one per
	// page once prefetching; the channel itself is safe without mu).
	dirReaders int
	fetching   map[string]chan struct{}
	// listPrefetch: a prefetch by listing is running (dir.go).
	listPrefetch *listPrefetch
	// headersAhead: the headers a prefetch by listing brought, before it
	// ended, for entries the listing (still streaming, paced by a reader
	// that paused) had not published yet; publish takes them from here.
	headersAhead map[string]listEntry
	lastLooked   int
	streak       int
	prefetching  bool
	prefetchSem  chan struct{}
	// smallAhead follows opens of its files in order (smallahead.go).
	smallAhead smallAheadState
}

// dir returns n's listing state, making it if n has none (a node that is
// not a directory, asked by a path that does not check). n.mu held, or n
// a directory (whose state exists from newNode on).
func (n *Node) dir() *dirState {
	if n.dirSt == nil {
		n.dirSt = new(dirState)
	}
	return n.dirSt
}

var (
	_ gofs.NodeGetattrer  = (*Node)(nil)
	_ gofs.NodeSetattrer  = (*Node)(nil)
	_ gofs.NodeStatfser   = (*Node)(nil)
	_ gofs.NodeLookuper   = (*Node)(nil)
	_ gofs.NodeMkdirer    = (*Node)(nil)
	_ gofs.NodeRmdirer    = (*Node)(nil)
	_ gofs.NodeCreater    = (*Node)(nil)
	_ gofs.NodeUnlinker   = (*Node)(nil)
	_ gofs.NodeRenamer    = (*Node)(nil)
	_ gofs.NodeSymlinker  = (*Node)(nil)
	_ gofs.NodeReadlinker = (*Node)(nil)
	_ gofs.NodeLinker     = (*Node)(nil)
	_ gofs.NodeOpener     = (*Node)(nil)
	_ gofs.NodeReader     = (*Node)(nil)
	_ gofs.NodeWriter     = (*Node)(nil)
	_ gofs.NodeFlusher    = (*Node)(nil)
	_ gofs.NodeFsyncer    = (*Node)(nil)
	_ gofs.NodeReleaser   = (*Node)(nil)
)

// childKey is the key of name inside directory n.
func (n *Node) childKey(name string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.childKeyLocked(name)
}

// childKeyLocked is childKey with n.mu held.
func (n *Node) childKeyLocked(name string) string {
	if n.key == "" {
		return name
	}
	return n.key + "/" + name
}

// parentDir returns n's name and the directory node that holds it in
// go-fuse's tree, or nil if it has none (the root, or detached). Asks the
// tree: call it with none of our locks held.
func (n *Node) parentDir() (string, *Node) {
	name, parent := n.Parent()
	if parent == nil {
		return "", nil
	}
	dir, ok := parent.Operations().(*Node)
	if !ok || dir.kind != kindDir {
		return "", nil
	}
	return name, dir
}

func (n *Node) currentKey() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.key
}

// fillAttrLocked writes n's attributes in the kernel's form. n.mu held.
func (n *Node) fillAttrLocked(out *fuse.Attr) {
	// Always the node's number: go-fuse fills it in for lookups and
	// getattr but not for setattr replies, which the kernel caches too.
	out.Ino = n.ino
	out.Mode = n.kind.typeBits() | n.attrs.perm&07777
	out.Size = uint64(n.size)
	if n.kind == kindSymlink && n.linkTarget != "" {
		out.Size = uint64(len(n.linkTarget))
	}
	if n.kind.isDevice() {
		out.Rdev = n.attrs.rdev
	}
	out.Blksize = 1 << 20 // a hint: big blocks make cp and friends use big writes
	out.Blocks = (out.Size + 511) / 512
	out.Uid, out.Gid = n.attrs.uid, n.attrs.gid
	out.Nlink = 1
	switch {
	case n.unlinked:
		out.Nlink = 0 // fstat of an unlinked (or overwritten) open file
	case n.kind == kindDir:
		out.Nlink = n.dirNlinkLocked()
	}
	mt := n.attrs.mtime
	at, ct := orTime(n.attrs.atime, mt), orTime(n.attrs.ctime, mt)
	if n.kind == kindDir {
		// Entries created, removed or renamed here since the marker
		// was written: kept in memory only (a PUT per create would
		// double the cost of every create).
		if changed := n.fsys.dirChangedAt(n.key); changed.After(mt) {
			mt = changed
		}
	}
	if mt.After(ct) {
		ct = mt
	}
	out.SetTimes(&at, &mt, &ct)
	n.fsys.cfg.Override.apply(out, n.kind)
}

// dirNlinkLocked is a directory's link count: 2 plus its subdirectories
// when a listing says how many there are, else 1, which tools (find, fts)
// read as "unknown" as on btrfs. n.mu held.
func (n *Node) dirNlinkLocked() uint32 {
	if n.dir().listing == nil || !n.dir().listingDone {
		return 1
	}
	links := uint32(2)
	for _, ent := range n.dir().listing {
		if ent.kind == kindDir {
			links++
		}
	}
	return links
}

// touchEntries records that an entry of directory n was created, removed
// or renamed: its mtime and ctime move to now.
func (n *Node) touchEntries() {
	n.fsys.setDirChanged(n.currentKey(), time.Now())
}

// dirChangedAt is when an entry of the directory at key last changed
// through this mount (zero if never). Kept by key in the filesystem, not
// on the node, so that it outlives the node: the kernel forgets unused
// directory inodes whenever it likes. One entry per directory changed.
func (f *FS) dirChangedAt(key string) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dirChanged[key]
}

// setDirChanged sets dirChangedAt(key); a zero t forgets it (utimes set the
// directory's mtime, rmdir removed it).
func (f *FS) setDirChanged(key string, t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.IsZero() {
		delete(f.dirChanged, key)
		return
	}
	f.dirChanged[key] = t
}

// isOldStyleDir: see Node.oldStyle.
func (n *Node) isOldStyleDir() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.oldStyle
}

// moveDirChanged carries dirChangedAt of the directory at oldKey and of
// every directory below it over to their keys under newKey: a renamed
// directory keeps the mtime its entries gave it (rename changes its ctime
// only, and nothing of what is inside it).
func (f *FS) moveDirChanged(oldKey, newKey string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	moved := make(map[string]time.Time)
	for k, t := range f.dirChanged {
		if k == oldKey || strings.HasPrefix(k, oldKey+"/") {
			moved[newKey+k[len(oldKey):]] = t
			delete(f.dirChanged, k)
		}
	}
	maps.Copy(f.dirChanged, moved)
}

// apply replaces what o overrides in out, the attributes of a node of kind k.
func (o *Override) apply(out *fuse.Attr, k kind) {
	if o.UID != nil {
		out.Uid = *o.UID
	}
	if o.GID != nil {
		out.Gid = *o.GID
	}
	if o.Umask != nil && k != kindSymlink {
		out.Mode = k.typeBits() | 0o777&^*o.Umask
	}
}

// applyInfo sets n's attributes from what the store says about its object.
// n.mu held. It leaves local state alone when n has data the store does not.
func (n *Node) applyInfoLocked(info s3backend.ObjectInfo, hasMeta bool) {
	if n.staging != nil || n.up.state.pending() {
		return
	}
	cfg := &n.fsys.cfg
	changed := n.etag != info.ETag
	if changed && n.etag != "" {
		n.replaced++
	}
	n.size = info.Size
	if info.ETag != n.etag {
		n.metaLoaded = false // another version: its headers are not ours yet
	}
	n.etag = info.ETag
	if n.kind == kindDir {
		n.size = 0
	}
	if !hasMeta {
		// A listing has no metadata: keep what an earlier HEAD (or our
		// own write) told us if the object has not changed since. With
		// listing metadata, a changed object shows the defaults and
		// its new LastModified.
		if n.attrs.mtime.IsZero() || (cfg.ListingMetadata && changed) {
			n.attrs = defaultAttrs(cfg, n.kind, info.LastModified)
		}
		n.validUntil = time.Now().Add(cfg.StatCacheTTL)
		return
	}
	n.attrs = attrsFromInfo(cfg, n.kind, info)
	n.foreign = foreignMeta(info.Metadata)
	n.metaLoaded = true
	if n.kind == kindDir {
		n.oldStyle = info.Key != "" && !strings.HasSuffix(info.Key, "/")
	}
	n.validUntil = time.Now().Add(cfg.StatCacheTTL)
}

func defaultAttrs(cfg *Config, k kind, mtime time.Time) posixAttrs {
	perm := cfg.FileMode
	switch k {
	case kindDir:
		perm = cfg.DirMode
	case kindSymlink:
		perm = 0o777
	}
	if mtime.IsZero() {
		mtime = time.Now()
	}
	a := posixAttrs{perm: perm, uid: cfg.UID, gid: cfg.GID}
	a.touchTimes(mtime)
	return a
}

// attrsFromInfo merges an object's metadata over the defaults.
func attrsFromInfo(cfg *Config, k kind, info s3backend.ObjectInfo) posixAttrs {
	a := defaultAttrs(cfg, k, info.LastModified)
	p := parseMeta(info.Metadata)
	if p.hasMode {
		a.perm = p.mode & 07777
		if k == kindSymlink {
			a.perm = 0o777
		}
	}
	if p.hasUID {
		a.uid = p.uid
	}
	if p.hasGID {
		a.gid = p.gid
	}
	if p.hasMtime {
		a.mtime = p.mtime
	}
	// As s3fs: a missing atime or ctime is the object's Last-Modified
	// (what defaultAttrs set), an old object's best guess.
	if p.hasAtime {
		a.atime = p.atime
	}
	if p.hasCtime {
		a.ctime = p.ctime
	}
	if p.hasRdev && k.isDevice() {
		a.rdev = p.rdev
	}
	return a
}

// kindOf tells what an object found under a plain key is: a file, a symlink
// or a special file (the type in its mode), or an old-style directory object
// (S_IFDIR, or the directory content type).
func kindOf(info s3backend.ObjectInfo) kind {
	p := parseMeta(info.Metadata)
	if p.hasTypeInMode {
		if k, ok := kindOfType(p.mode & syscall.S_IFMT); ok && k != kindFile {
			return k
		}
	}
	if info.ContentType == dirContentType && info.Size == 0 {
		return kindDir
	}
	return kindFile
}

// Getattr answers stat. Attributes older than the stat cache TTL are
// refreshed from the store, unless the node has local data, which is newer
// than anything the store has.
func (n *Node) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if errno := n.refreshIfStale(ctx); errno != 0 {
		return errno
	}
	n.fillAttrOut(out)
	return 0
}

// fillAttrOut answers a getattr or setattr with n's current attributes.
func (n *Node) fillAttrOut(out *fuse.AttrOut) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.fillAttrLocked(&out.Attr)
	out.SetTimeout(n.fsys.cfg.StatCacheTTL)
}

// refreshIfStale re-reads a file's or symlink's object when its attributes
// have expired. Directories are refreshed by their parent's lookups.
func (n *Node) refreshIfStale(ctx context.Context) syscall.Errno {
	n.mu.Lock()
	stale := n.kind != kindDir && !n.isRoot && n.staging == nil && !n.up.state.pending() && !n.unlinked &&
		n.etag != "" && time.Now().After(n.validUntil)
	key := n.key
	n.mu.Unlock()
	if !stale || n.validFromListing() {
		return 0
	}
	mctx, cancel := n.fsys.metaContext(ctx)
	defer cancel()
	var info s3backend.ObjectInfo
	var err error
	listed := n.fsys.cfg.ListingMetadata
	if listed {
		info, err = n.fsys.listObject(mctx, key) // never a HEAD for stat
	} else {
		info, err = n.fsys.store.Head(mctx, key)
	}
	if err != nil {
		errno := toErrno(err)
		if errno != syscall.ENOENT {
			n.fsys.logFailure("getattr", key, err, errno)
		}
		return errno
	}
	n.mu.Lock()
	if info.ETag != n.etag && n.kind == kindSymlink {
		n.linkTarget = ""
	}
	n.applyInfoLocked(info, !listed)
	n.mu.Unlock()
	return 0
}

// validFromListing renews n's expired attributes from its directory's
// listing when that is fresh and shows the same object (ETag and size), as
// a lookup answered from the listing would. A walk's listings answer
// readdir and renew the kernel's entries, so a program that then opens the
// files (grep -r after du) comes without a lookup; this spares it a HEAD
// per file. It takes the directory's mu, then n's, never both at once.
func (n *Node) validFromListing() bool {
	name, dir := n.parentDir()
	if dir == nil {
		return false
	}
	dir.mu.Lock()
	d := dir.dir()
	ent, found := d.listing[name]
	until := d.listingUntil
	dir.mu.Unlock()
	if !found || ent.needStat || ent.kind == kindDir || ent.etag == "" || !time.Now().Before(until) {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if ent.etag != n.etag || ent.size != n.size || n.staging != nil || n.up.state.pending() || n.unlinked {
		return false
	}
	n.applyEntryLocked(ent)
	n.validUntil = until // as old as the listing
	return true
}

// Setattr handles chmod, chown, utimes and truncate. Changes persist before
// it returns, except on a file with unwritten data, where the upload that
// close or fsync does carries them.
func (n *Node) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if n.fsys.cfg.ReadOnly {
		return syscall.EROFS
	}
	size, hasSize := in.GetSize()
	if hasSize && n.kind != kindFile {
		return syscall.EISDIR
	}
	if h, ok := f.(*handle); ok && hasSize {
		// ftruncate changes the data as a write does: its caller's close
		// of the descriptor uploads it (flushowner.go).
		pid := callerPid(ctx)
		tgid, known := h.writerOf(pid)
		n.mu.Lock()
		n.noteWriterLocked(h, pid, tgid, known)
		n.mu.Unlock()
	}
	if hasSize {
		if errno := n.truncate(ctx, int64(size)); errno != 0 {
			return errno
		}
	}
	kill := killRequested(in) && n.hasSuid()
	if kill || in.Valid&(fuse.FATTR_MODE|fuse.FATTR_UID|fuse.FATTR_GID|fuse.FATTR_ATIME|fuse.FATTR_MTIME|fuse.FATTR_ATIME_NOW|fuse.FATTR_MTIME_NOW) != 0 {
		// The rewrite below carries every header: a node known only from
		// a listing (--metadata listing, or not stat-ed yet) loads the
		// object's first, or chmod would reset the owner, the times,
		// the xattrs and other tools' keys to the listing's defaults.
		if errno := n.loadMeta(ctx); errno != 0 {
			return errno
		}
	}

	n.mu.Lock()
	// chmod, chown and utimensat change the ctime, never the mtime by
	// themselves; atime and mtime are set independently (UTIME_OMIT
	// leaves one out, UTIME_NOW arrives as the current time).
	metaChanged := false
	if mode, ok := in.GetMode(); ok && n.kind != kindSymlink {
		n.attrs.perm = mode & 07777
		metaChanged = true
	}
	if uid, ok := in.GetUID(); ok {
		n.attrs.uid = uid
		metaChanged = true
	}
	if gid, ok := in.GetGID(); ok {
		n.attrs.gid = gid
		metaChanged = true
	}
	if kill && n.killSuidLocked() {
		metaChanged = true
	}
	if atime, ok := in.GetATime(); ok {
		n.attrs.atime = atime
		metaChanged = true
	}
	if mtime, ok := in.GetMTime(); ok {
		n.attrs.mtime = mtime
		if n.kind == kindDir {
			n.fsys.setDirChanged(n.key, time.Time{}) // the mtime is now what was set
		}
		metaChanged = true
	}
	if metaChanged || hasSize {
		n.attrs.ctime = time.Now()
	}
	dirty := n.up.state.pending()
	if metaChanged {
		n.metaSet = true
	}
	if dirty && metaChanged {
		n.markDirtyLocked() // the pending upload carries the new attributes
	}
	// Through a descriptor the writer's close will upload it all. The
	// kernel names the handle only for ftruncate; fchmod, fchown and
	// futimens come as by path, like chmod(2) and utimensat. Those
	// change metadata only, and wait for the close too while a handle
	// has been written through since its last FLUSH: that FLUSH is to
	// come (tar, cp -p and cp -a set the times, owner and mode of each
	// file before closing it, which would otherwise cost an upload and
	// two copies). Otherwise there may be no flush to come (openCount
	// cannot tell: the kernel sends RELEASE asynchronously, after the
	// FLUSH), and a dirty file is uploaded here, with whatever the open
	// descriptors have written so far.
	viaHandle := f != nil
	flushComing := n.unflushed > 0 && !hasSize
	deferred := dirty && (viaHandle || flushComing)
	uploadNow := dirty && !deferred
	n.mu.Unlock()

	var errno syscall.Errno
	switch {
	case deferred:
		if metaChanged {
			n.saveSidecar() // a restart uploads the file with them
		}
	case uploadNow:
		// truncate(2) by path, or a retry after a failed upload: nobody
		// will flush this file, so persist it here.
		errno = n.upload(ctx, "setattr")
	case metaChanged:
		errno = n.persistMeta(ctx)
	}
	if errno != 0 {
		return errno
	}
	n.fillAttrOut(out)
	return 0
}

// persistMeta rewrites the metadata of a clean object: a server-side copy
// onto itself for files and symlinks, a new marker for directories.
func (n *Node) persistMeta(ctx context.Context) syscall.Errno {
	if n.isRoot {
		return 0 // the bucket root has no object to carry metadata
	}
	n.uploadMu.Lock()
	defer n.uploadMu.Unlock()
	defer n.enterMoves()()

	n.mu.Lock()
	if n.unlinked || n.up.state.pending() {
		n.mu.Unlock()
		return 0 // nothing to persist, or the pending upload carries it
	}
	key, etag, k, oldStyle := n.key, n.etag, n.kind, n.oldStyle
	opts := putOptions(k, key, n.attrs, n.foreign)
	n.mu.Unlock()

	uctx, cancel := n.fsys.uploadContext()
	defer cancel()
	var newETag string
	var err error
	switch {
	case k == kindDir:
		newETag, err = n.fsys.store.Upload(uctx, key+"/", emptyReader{}, 0, opts)
	case etag == "":
		return 0 // not in the bucket yet: the first upload carries it
	default:
		newETag, err = n.fsys.store.Copy(uctx, key, key, etag, &opts)
	}
	if err != nil {
		errno := toErrno(err)
		n.fsys.logFailure("setattr", key, err, errno)
		return errno
	}
	if oldStyle {
		// The "key/" marker replaces the old-style object.
		if err := n.fsys.store.Delete(uctx, key); err != nil {
			n.fsys.log.Warn("old-style directory object not removed after its marker was written", "key", key, "err", err)
		} else {
			oldStyle = false
		}
	}
	n.mu.Lock()
	if k == kindDir {
		n.hasMarker = true
		n.oldStyle = oldStyle
	} else {
		n.etag = newETag
	}
	n.validUntil = time.Now().Add(n.fsys.cfg.StatCacheTTL)
	n.metaLoaded = true // the headers just written
	n.mu.Unlock()
	n.changedInParent()
	return 0
}

// Statfs reports the free space of the staging disk, which is what bounds
// how much can be written before uploads drain: a bucket has no size, but
// a sandbox's local disk does, and installers that check df before writing
// must see the truth. The total is that free space too, and nothing is
// used, as s3fs shows a mount (its suite checks Total == Available and
// Used == 0): the other files on the staging disk are not the bucket's, and
// a total of the whole disk would show them as the bucket's use.
func (n *Node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	var st syscall.Statfs_t
	if err := syscall.Statfs(n.fsys.cfg.StagingDir, &st); err != nil {
		return toErrno(err)
	}
	out.Bsize = uint32(st.Bsize)
	out.Frsize = uint32(st.Frsize)
	out.Blocks = st.Bavail
	out.Bfree = st.Bavail
	out.Bavail = st.Bavail
	// Objects are not inodes of the staging disk: there is no limit.
	out.Files = 1 << 40
	out.Ffree = 1 << 40
	out.NameLen = 255
	return 0
}

// Link refuses hard links: an object store has no way for two keys to share
// one object's content and metadata. ENOTSUP, as s3fs answers (ln prints
// "Operation not supported"; s3fs's suite and tools that fall back to a
// copy look for it). The kernel itself answers EPERM for a directory, as
// POSIX has it, before asking us; an over-long name is ENAMETOOLONG first.
func (n *Node) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if len(name) > maxNameLen {
		return nil, syscall.ENAMETOOLONG
	}
	return nil, syscall.ENOTSUP
}

// emptyReader is a zero-length io.ReaderAt.
type emptyReader struct{}

func (emptyReader) ReadAt(p []byte, off int64) (int, error) { return 0, errEOF }

package fs

import (
	"context"
	"errors"
	"io"
	"maps"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sync/errgroup"

	"github.com/novitalabs/bucketfs/s3backend"
)

// listEntry is one child of a directory as the store last described it.
type listEntry struct {
	kind    kind
	info    s3backend.ObjectInfo // files and symlinks: the object; dirs: the marker, if any
	hasMeta bool                 // info carries metadata (from a HEAD)
	marker  bool                 // dirs: a marker object exists
	// needStat: the name exists (we made it) but info is not the store's
	// word; a lookup asks the store. Lets our own creates keep the listing
	// fresh for the negative lookups that matter (the next create, while
	// the negative TTL trusts absences).
	needStat bool
}

// headConcurrency bounds the HEAD requests a listing sends to fetch its
// entries' metadata (S3 listings carry none).
const headConcurrency = 32

// maxNameLen is the longest name the kernel will pass; longer keys are
// skipped in listings rather than breaking readdir.
const maxNameLen = 255

// lookupChild resolves name in directory n: from an existing node, from a
// fresh listing, or from the store.
func (n *Node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if len(name) > maxNameLen {
		return nil, syscall.ENAMETOOLONG
	}
	ent, found, fresh := n.cachedEntry(name)
	return n.lookupVia(ctx, name, out, ent, found, fresh)
}

// lookupVia resolves name given what a listing says of it: ent and found
// are trusted when fresh is set (and ent.needStat is not), else the store
// is asked.
func (n *Node) lookupVia(ctx context.Context, name string, out *fuse.EntryOut, ent listEntry, found, fresh bool) (*gofs.Inode, syscall.Errno) {
	key := n.childKey(name)
	existing := n.GetChild(name)
	if existing == nil {
		// A file with local data whose node the kernel forgot (or that a
		// previous daemon left): its data, not the store, is the truth.
		if r := n.fsys.registered(key); r != nil {
			if child := n.fsys.adopt(r); child != nil {
				inode := n.NewInode(ctx, child, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: child.ino})
				return child.entry(inode, out), 0
			}
		}
	}
	if existing != nil {
		child := existing.Operations().(*Node)
		child.mu.Lock()
		local := child.staging != nil || child.up.state.pending() || (child.kind == kindFile && child.etag == "")
		valid := time.Now().Before(child.validUntil)
		child.mu.Unlock()
		if local || valid {
			return child.entry(existing, out), 0
		}
	}
	if !fresh || (found && ent.needStat) {
		var errno syscall.Errno
		ent, found, errno = n.fsys.statRemote(ctx, key)
		if errno != 0 {
			return nil, errno
		}
	}
	if !found {
		return nil, syscall.ENOENT
	}
	if existing != nil {
		child := existing.Operations().(*Node)
		if child.kind == ent.kind {
			child.mu.Lock()
			child.applyEntryLocked(ent)
			child.mu.Unlock()
			return child.entry(existing, out), 0
		}
	}
	child := n.fsys.newNode(ent.kind, key)
	child.mu.Lock()
	child.applyEntryLocked(ent)
	child.mu.Unlock()
	inode := n.NewInode(ctx, child, gofs.StableAttr{Mode: ent.kind.typeBits(), Ino: child.ino})
	return child.entry(inode, out), 0
}

func (f *FS) newNode(k kind, key string) *Node {
	return &Node{fsys: f, kind: k, key: key, ino: f.newIno()}
}

// applyEntryLocked sets attributes from a listing or stat result. n.mu held.
func (n *Node) applyEntryLocked(ent listEntry) {
	if n.kind == kindDir {
		n.hasMarker = ent.marker
		if !ent.marker && !ent.hasMeta {
			if n.attrs.mtime.IsZero() {
				n.attrs = defaultAttrs(&n.fsys.cfg, kindDir, time.Time{})
			}
			n.validUntil = time.Now().Add(n.fsys.cfg.StatCacheTTL)
			return
		}
	}
	if n.etag != "" && n.etag != ent.info.ETag && n.kind == kindSymlink {
		n.linkTarget = ""
	}
	n.applyInfoLocked(ent.info, ent.hasMeta)
}

// entry fills out for inode (n's inode) and returns it.
func (n *Node) entry(inode *gofs.Inode, out *fuse.EntryOut) *gofs.Inode {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.fillAttrLocked(&out.Attr)
	ttl := n.fsys.cfg.StatCacheTTL
	out.SetEntryTimeout(ttl)
	out.SetAttrTimeout(ttl)
	return inode
}

// cachedEntry answers from n's listing while it is fresh: fresh reports
// whether the answer (found or not) can be trusted. An absence is fresh
// for the negative TTL only.
func (n *Node) cachedEntry(name string) (ent listEntry, found, fresh bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.listing == nil || time.Now().After(n.listingUntil) {
		return listEntry{}, false, false
	}
	ent, found = n.listing[name]
	// A name the listing lacks may have been created by another tool
	// since: absence is trusted only while the listing is younger than
	// the negative TTL (it was made StatCacheTTL before listingUntil).
	cfg := &n.fsys.cfg
	if !found && !time.Now().Before(n.listingUntil.Add(cfg.NegativeTTL-cfg.StatCacheTTL)) {
		return listEntry{}, false, false
	}
	return ent, found, true
}

func (n *Node) invalidateListing() {
	n.mu.Lock()
	n.listing = nil
	n.mu.Unlock()
}

// listingAdd records in n's cached listing (if any) a child we made.
func (n *Node) listingAdd(name string, k kind) {
	n.mu.Lock()
	if n.listing != nil {
		n.listing[name] = listEntry{kind: k, needStat: true}
	}
	n.mu.Unlock()
}

// listingRemove drops a child we removed from n's cached listing (if any).
func (n *Node) listingRemove(name string) {
	n.mu.Lock()
	if n.listing != nil {
		delete(n.listing, name)
	}
	n.mu.Unlock()
}

// entryAdded records that we made name in n (a create, mkdir, mknod,
// symlink or rename): the cached listing has it and n's mtime and ctime
// move.
func (n *Node) entryAdded(name string, k kind) {
	n.listingAdd(name, k)
	n.touchEntries()
}

// entryRemoved records that we removed name from n (unlink, rmdir, rename).
func (n *Node) entryRemoved(name string) {
	n.listingRemove(name)
	n.touchEntries()
}

// statRemote finds what key is: an object (file, symlink), a directory
// marker "key/", or a prefix with objects under it (an implicit directory).
// The three requests run in parallel; the first that answers decides.
func (f *FS) statRemote(ctx context.Context, key string) (listEntry, bool, syscall.Errno) {
	mctx, cancel := f.metaContext(ctx)
	defer cancel()
	var (
		obj, marker       s3backend.ObjectInfo
		objErr, markerErr error
		list              s3backend.ListResult
		listErr           error
		wg                sync.WaitGroup
	)
	wg.Add(3)
	go func() { defer wg.Done(); obj, objErr = f.store.Head(mctx, key) }()
	go func() { defer wg.Done(); marker, markerErr = f.store.Head(mctx, key+"/") }()
	go func() { defer wg.Done(); list, listErr = f.store.List(mctx, key+"/", "", "", 1) }()
	wg.Wait()

	// Some stores (S3, and MinIO too) allow both "key" and "key/…". The
	// directory wins, as it does in listings, so that what is below it
	// stays reachable.
	switch {
	case objErr == nil && kindOf(obj) == kindDir:
		return listEntry{kind: kindDir, info: obj, hasMeta: true, marker: true}, true, 0
	case markerErr == nil:
		return listEntry{kind: kindDir, info: marker, hasMeta: true, marker: true}, true, 0
	case listErr == nil && len(list.Objects)+len(list.CommonPrefixes) > 0:
		return listEntry{kind: kindDir}, true, 0
	case objErr == nil:
		return listEntry{kind: kindOf(obj), info: obj, hasMeta: true}, true, 0
	}
	if errors.Is(markerErr, s3backend.ErrInvalidKey) {
		// No marker can exist under a key the store refuses (MinIO
		// refuses "name/" for a 255-byte name): the probe found nothing.
		markerErr = s3backend.ErrNotFound
	}
	for _, err := range []error{objErr, markerErr, listErr} {
		if err != nil && !errors.Is(err, s3backend.ErrNotFound) {
			errno := toErrno(err)
			f.logFailure("lookup", key, err, errno)
			return listEntry{}, false, errno
		}
	}
	return listEntry{}, false, 0
}

// dirHandle is an open directory. It lists once, at the first read (and
// again at a rewind), and answers READDIRPLUS's per-entry lookups from that
// snapshot, however long the reader takes: a listing of many entries must
// not decay into one store round trip per entry once the stat cache TTL
// has passed.
type dirHandle struct {
	n *Node

	mu      sync.Mutex // guards the fields below
	loaded  bool
	entries []fuse.DirEntry
	listing map[string]listEntry
	pos     int
}

var (
	_ gofs.NodeOpendirHandler = (*Node)(nil)
	_ gofs.FileReaddirenter   = (*dirHandle)(nil)
	_ gofs.FileLookuper       = (*dirHandle)(nil)
	_ gofs.FileSeekdirer      = (*dirHandle)(nil)
	_ gofs.FileFsyncdirer     = (*dirHandle)(nil)
)

// OpendirHandle opens a directory; the listing happens at the first read.
func (n *Node) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if n.kind != kindDir {
		return nil, 0, syscall.ENOTDIR
	}
	return &dirHandle{n: n}, 0, 0
}

// Readdirent returns the next entry, listing the directory first if needed.
func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.loaded {
		listing, entries, errno := d.n.readdir(ctx)
		if errno != 0 {
			return nil, errno
		}
		d.listing, d.entries, d.loaded = listing, entries, true
	}
	if d.pos >= len(d.entries) {
		return nil, 0
	}
	de := d.entries[d.pos]
	d.pos++
	return &de, 0
}

// Seekdir moves to an offset the kernel got from us (index+1), or to the
// start, where a rewinddir(3) gets a new listing.
func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off == 0 {
		d.loaded, d.pos = false, 0
		return 0
	}
	d.pos = int(off)
	return 0
}

// Lookup answers READDIRPLUS from the snapshot the entries came from.
func (d *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	d.mu.Lock()
	ent, found := d.listing[name]
	d.mu.Unlock()
	// A name not in the snapshot is a file created here and not yet
	// uploaded: the node knows it.
	return d.n.lookupVia(ctx, name, out, ent, found, found)
}

// Fsyncdir: directory changes are made in the store as they happen.
func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno { return 0 }

// readdir lists the directory: the store's listing (every page), with each
// entry's metadata fetched in parallel so that the lookups READDIRPLUS makes
// next are answered from memory, merged with files created here that are
// not uploaded yet.
func (n *Node) readdir(ctx context.Context) (map[string]listEntry, []fuse.DirEntry, syscall.Errno) {
	listing, errno := n.loadListing(ctx)
	if errno != 0 {
		return nil, nil, errno
	}
	names := make(map[string]kind, len(listing))
	for name, ent := range listing {
		names[name] = ent.kind
	}
	// Files with local data not yet in the bucket (or not yet in a
	// listing, which is eventually consistent on some stores), whether or
	// not the kernel still knows their nodes.
	for _, name := range n.fsys.registeredChildren(n.currentKey()) {
		if _, ok := names[name]; !ok {
			names[name] = kindFile
		}
	}
	entries := make([]fuse.DirEntry, 0, len(names))
	for name, k := range names {
		entries = append(entries, fuse.DirEntry{Name: name, Mode: k.typeBits()})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	for i := range entries {
		entries[i].Off = uint64(i + 1) // what Seekdir gets back
	}
	return listing, entries, 0
}

// loadListing returns a copy of n's listing, from cache while fresh.
func (n *Node) loadListing(ctx context.Context) (map[string]listEntry, syscall.Errno) {
	n.mu.Lock()
	if n.listing != nil && time.Now().Before(n.listingUntil) {
		l := maps.Clone(n.listing)
		n.mu.Unlock()
		return l, 0
	}
	// The previous listing is read below without the lock, while creates
	// may change the cached map: take a copy.
	prefix, previous := n.key, maps.Clone(n.listing)
	n.mu.Unlock()
	if prefix != "" {
		prefix += "/"
	}

	mctx, cancel := n.fsys.metaContext(ctx)
	defer cancel()
	listing := make(map[string]listEntry)
	token := ""
	for {
		page, err := n.fsys.store.List(mctx, prefix, "/", token, 0)
		if err != nil {
			errno := toErrno(err)
			n.fsys.logFailure("readdir", prefix, err, errno)
			return nil, errno
		}
		for _, obj := range page.Objects {
			name := obj.Key[len(prefix):]
			if !validName(name) {
				continue // the directory's own marker, or a key no kernel can name
			}
			if _, isDir := listing[name]; isDir {
				continue // "a/" prefix already seen: MinIO forbids both, S3 allows; the dir wins
			}
			listing[name] = listEntry{kind: kindFile, info: obj}
		}
		for _, p := range page.CommonPrefixes {
			name := strings.TrimSuffix(p[len(prefix):], "/")
			if !validName(name) {
				continue
			}
			listing[name] = listEntry{kind: kindDir}
		}
		if page.NextToken == "" {
			break
		}
		token = page.NextToken
	}
	reuseMetadata(listing, previous)
	if errno := n.fsys.headAll(mctx, prefix, listing); errno != 0 {
		return nil, errno
	}
	n.mu.Lock()
	n.listing = listing
	n.listingUntil = time.Now().Add(n.fsys.cfg.StatCacheTTL)
	n.mu.Unlock()
	// The cached map changes under n.mu as we create and remove children;
	// callers get their own copy to read without it.
	return maps.Clone(listing), 0
}

func validName(name string) bool {
	return name != "" && name != "." && name != ".." && len(name) <= maxNameLen && !strings.Contains(name, "/")
}

// reuseMetadata copies metadata from the previous listing for objects that
// have not changed since (same ETag and LastModified: a metadata rewrite by
// copy keeps the ETag but not the time), so a re-listing HEADs only what is
// new or changed.
func reuseMetadata(listing, previous map[string]listEntry) {
	for name, ent := range listing {
		old, ok := previous[name]
		if !ok || !old.hasMeta || old.needStat || ent.kind != kindFile {
			continue
		}
		if old.info.ETag == ent.info.ETag && old.info.LastModified.Equal(ent.info.LastModified) && old.info.Size == ent.info.Size {
			old.info.Key = ent.info.Key
			listing[name] = old
		}
	}
}

// headAll fetches the metadata of every entry of a listing in parallel:
// objects for mode, owner, mtime and symlink type; directories for their
// marker's metadata.
func (f *FS) headAll(ctx context.Context, prefix string, listing map[string]listEntry) syscall.Errno {
	type result struct {
		name string
		ent  listEntry
	}
	names := make([]string, 0, len(listing))
	for name, ent := range listing {
		if !ent.hasMeta {
			names = append(names, name)
		}
	}
	results := make([]result, len(names))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(headConcurrency)
	for i, name := range names {
		ent := listing[name]
		g.Go(func() error {
			key := prefix + name
			if ent.kind == kindDir {
				key += "/"
			}
			info, err := f.store.Head(gctx, key)
			switch {
			case errors.Is(err, s3backend.ErrNotFound),
				ent.kind == kindDir && errors.Is(err, s3backend.ErrInvalidKey): // no marker can exist (statRemote)
				results[i] = result{name, ent} // implicit directory, or deleted since the listing
				return nil
			case err != nil:
				return err
			}
			if ent.kind == kindDir {
				ent.info, ent.hasMeta, ent.marker = info, true, true
			} else {
				ent.info, ent.hasMeta = info, true
				ent.kind = kindOf(info)
			}
			results[i] = result{name, ent}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		errno := toErrno(err)
		f.logFailure("readdir-head", prefix, err, errno)
		return errno
	}
	for _, r := range results {
		listing[r.name] = r.ent
	}
	return 0
}

// Mkdir writes the directory's marker object, as s3fs does.
func (n *Node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	child, errno := n.newChildNode(ctx, name, kindDir, mode)
	if errno != 0 {
		return nil, errno
	}
	key := child.key
	opts := putOptions(kindDir, key, child.attrs, child.foreign)
	uctx, cancel := n.fsys.uploadContext()
	defer cancel()
	if _, err := n.fsys.store.Upload(uctx, key+"/", emptyReader{}, 0, opts); err != nil {
		errno := toErrno(err)
		n.fsys.logFailure("mkdir", key, err, errno)
		return nil, errno
	}
	child.hasMarker = true
	child.validUntil = time.Now().Add(n.fsys.cfg.StatCacheTTL)
	// A new directory is empty: with a negative TTL, creates in it need
	// not ask the store.
	child.listing = make(map[string]listEntry)
	child.listingUntil = child.validUntil
	n.entryAdded(name, kindDir)
	inode := n.NewInode(ctx, child, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: child.ino})
	return child.entry(inode, out), 0
}

// newChildNode checks that name can be made in n and returns a node of
// kind k for it, with the caller's attributes.
func (n *Node) newChildNode(ctx context.Context, name string, k kind, mode uint32) (*Node, syscall.Errno) {
	if n.fsys.cfg.ReadOnly {
		return nil, syscall.EROFS
	}
	if len(name) > maxNameLen {
		return nil, syscall.ENAMETOOLONG
	}
	if n.GetChild(name) != nil {
		return nil, syscall.EEXIST
	}
	child := n.fsys.newNode(k, n.childKey(name))
	child.attrs = n.fsys.callerAttrs(ctx, mode)
	child.foreign = n.inheritedXattrs(k)
	return child, 0
}

// callerAttrs are the attributes of a new node made by the calling process.
func (f *FS) callerAttrs(ctx context.Context, mode uint32) posixAttrs {
	a := posixAttrs{perm: mode & 07777, uid: f.cfg.UID, gid: f.cfg.GID}
	a.touchTimes(time.Now())
	if caller, ok := fuse.FromContext(ctx); ok {
		a.uid, a.gid = caller.Uid, caller.Gid
	}
	return a
}

// Rmdir removes an empty directory's marker. A directory is empty when no
// key other than its marker has its prefix and no file is being created in
// it.
func (n *Node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if n.fsys.cfg.ReadOnly {
		return syscall.EROFS
	}
	if ch := n.GetChild(name); ch != nil && ch.Operations().(*Node).hasPendingChild() {
		return syscall.ENOTEMPTY
	}
	key := n.childKey(name)
	empty, errno := n.fsys.isEmptyDir(ctx, key)
	if errno != 0 {
		return errno
	}
	if !empty {
		return syscall.ENOTEMPTY
	}
	uctx, cancel := n.fsys.uploadContext()
	defer cancel()
	// A key the store refuses has no marker to delete (an implicit
	// directory whose name is too long for one).
	if err := n.fsys.store.Delete(uctx, key+"/"); err != nil && !errors.Is(err, s3backend.ErrInvalidKey) {
		errno := toErrno(err)
		n.fsys.logFailure("rmdir", key, err, errno)
		return errno
	}
	if ch := n.GetChild(name); ch != nil && ch.Operations().(*Node).isOldStyleDir() {
		// An old-style "key" directory object goes too (s3fs's compat_dir).
		if err := n.fsys.store.Delete(uctx, key); err != nil {
			errno := toErrno(err)
			n.fsys.logFailure("rmdir", key, err, errno)
			return errno
		}
	}
	n.entryRemoved(name)
	n.fsys.setDirChanged(key, time.Time{})
	return 0
}

func (f *FS) isEmptyDir(ctx context.Context, key string) (bool, syscall.Errno) {
	mctx, cancel := f.metaContext(ctx)
	defer cancel()
	page, err := f.store.List(mctx, key+"/", "", "", 2)
	if err != nil {
		errno := toErrno(err)
		f.logFailure("rmdir-list", key, err, errno)
		return false, errno
	}
	for _, obj := range page.Objects {
		if obj.Key != key+"/" {
			return false, 0
		}
	}
	return len(page.CommonPrefixes) == 0, 0
}

// hasPendingChild reports whether directory n holds a file created here
// and not yet in the bucket: no listing shows it, yet n is not empty.
// It asks the registry, which also holds files whose nodes the kernel
// forgot.
func (n *Node) hasPendingChild() bool {
	for _, c := range n.fsys.registeredUnder(n.currentKey()) {
		if c.isPendingCreate() {
			return true
		}
	}
	return false
}

func (n *Node) isPendingCreate() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.unlinked && n.kind == kindFile && (n.etag == "" || n.up.state.pending())
}

// Create makes a new, empty, staged file. Nothing is sent to the store until
// the first flush (close or fsync), which uploads it even if it was never
// written: an empty file must exist as an empty object.
func (n *Node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	if n.fsys.cfg.ReadOnly {
		return nil, nil, 0, syscall.EROFS
	}
	if len(name) > maxNameLen {
		return nil, nil, 0, syscall.ENAMETOOLONG
	}
	if old := n.GetChild(name); old != nil {
		// The kernel's view was stale (another writer removed it, or the
		// negative cache lied): the old node no longer owns the name.
		old.Operations().(*Node).markUnlinked()
	}
	if r := n.fsys.registered(n.childKey(name)); r != nil {
		// A forgotten node's data for this name: the new file replaces it.
		r.markUnlinked()
	}
	child := n.fsys.newNode(kindFile, n.childKey(name))
	child.attrs = n.fsys.callerAttrs(ctx, mode)
	child.foreign = n.inheritedXattrs(kindFile)
	if errno := child.stageEmpty(); errno != 0 {
		return nil, nil, 0, errno
	}
	h := newHandle(child, flags)
	child.mu.Lock()
	child.markDirtyLocked() // an empty file must exist as an empty object
	child.openCount++
	if h.writable {
		child.push.holds++ // released with the handle; nothing to fence yet
	}
	child.mu.Unlock()
	n.entryAdded(name, kindFile)
	inode := n.NewInode(ctx, child, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: child.ino})
	return child.entry(inode, out), h, 0, 0
}

// markUnlinked takes n out of the namespace: it is never uploaded again,
// leaves the registry, and its staging files leave the staging directory
// (its open descriptors keep the data through the open staging file).
func (n *Node) markUnlinked() {
	n.mu.Lock()
	n.unlinked = true
	id := n.stage
	n.stage = ""
	n.fsys.unregister(n, n.key)
	st := n.dropStreamLocked()
	n.mu.Unlock()
	n.fsys.abortStream(st, "unlinked")
	n.fsys.removeStage(id)
}

// Unlink deletes the object. An open file stays usable through its open
// descriptors (its staging file), but is never uploaded again.
func (n *Node) Unlink(ctx context.Context, name string) syscall.Errno {
	if n.fsys.cfg.ReadOnly {
		return syscall.EROFS
	}
	key := n.childKey(name)
	var child *Node
	if ch := n.GetChild(name); ch != nil {
		child = ch.Operations().(*Node)
	} else {
		child = n.fsys.registered(key) // forgotten by the kernel, data kept
	}
	if child != nil {
		// Take the upload lock so that no upload of this file is
		// half-way through when the object is deleted.
		child.uploadMu.Lock()
		defer child.uploadMu.Unlock()
		child.preserveIfOpen(ctx)
	}
	uctx, cancel := n.fsys.uploadContext()
	defer cancel()
	if err := n.fsys.store.Delete(uctx, key); err != nil {
		errno := toErrno(err)
		n.fsys.logFailure("unlink", key, err, errno)
		return errno
	}
	if child != nil {
		child.markUnlinked()
	}
	n.fsys.blocks.Invalidate(key)
	n.entryRemoved(name)
	return 0
}

// Symlink stores the link as an object whose body is the target and whose
// mode carries S_IFLNK, as s3fs does.
func (n *Node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if n.fsys.cfg.ReadOnly {
		return nil, syscall.EROFS
	}
	if len(name) > maxNameLen {
		return nil, syscall.ENAMETOOLONG
	}
	key := n.childKey(name)
	child := n.fsys.newNode(kindSymlink, key)
	child.attrs = n.fsys.callerAttrs(ctx, 0o777)
	child.linkTarget = target
	uctx, cancel := n.fsys.uploadContext()
	defer cancel()
	etag, err := n.fsys.store.Upload(uctx, key, strings.NewReader(target), int64(len(target)),
		putOptions(kindSymlink, key, child.attrs, nil))
	if err != nil {
		errno := toErrno(err)
		n.fsys.logFailure("symlink", key, err, errno)
		return nil, errno
	}
	child.etag = etag
	child.size = int64(len(target))
	child.validUntil = time.Now().Add(n.fsys.cfg.StatCacheTTL)
	n.entryAdded(name, kindSymlink)
	inode := n.NewInode(ctx, child, gofs.StableAttr{Mode: syscall.S_IFLNK, Ino: child.ino})
	return child.entry(inode, out), 0
}

// maxLinkTarget is PATH_MAX: a longer body is not a symlink we wrote.
const maxLinkTarget = 4096

// Readlink returns the target, reading the object's body once.
func (n *Node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	n.mu.Lock()
	target, key, etag := n.linkTarget, n.key, n.etag
	n.mu.Unlock()
	if target != "" {
		return []byte(target), 0
	}
	mctx, cancel := n.fsys.metaContext(ctx)
	defer cancel()
	body, err := n.fsys.store.GetRange(mctx, key, 0, -1, etag)
	if err == nil {
		var b []byte
		b, err = io.ReadAll(io.LimitReader(body, maxLinkTarget+1))
		body.Close()
		if err == nil && len(b) > maxLinkTarget {
			return nil, syscall.ENAMETOOLONG
		}
		target = string(b)
	}
	if err != nil {
		errno := toErrno(err)
		n.fsys.logFailure("readlink", key, err, errno)
		return nil, errno
	}
	n.mu.Lock()
	n.linkTarget = target
	n.mu.Unlock()
	return []byte(target), 0
}

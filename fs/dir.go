package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/novitalabs/bucketfs/cache"
	"github.com/novitalabs/bucketfs/s3backend"
)

// listEntry is one child of a directory as the store last described it.
//
// It is kept small (a big directory's listing holds one per entry): what
// a listing says of the object (files and symlinks; directories: of the
// marker, if any) in size, mtime and etag, and the object's whole
// description only once a HEAD has given its headers (meta).
type listEntry struct {
	kind kind
	// hasMeta: the entry carries the object's metadata (from a HEAD);
	// for a directory, the store was asked for its marker (marker says
	// whether there is one). A listing alone carries no metadata.
	hasMeta bool
	marker  bool // dirs: a marker object exists
	// needStat: the name exists (we made it) but the entry is not the
	// store's word; a lookup asks the store. Lets our own creates keep
	// the listing fresh for the negative lookups that matter (the next
	// create, while the negative TTL trusts absences).
	needStat bool
	// idx is the entry's place in its listing's order (Node.listingOrder);
	// -1 for names added since the listing.
	idx   int
	size  int64
	mtime int64 // LastModified in Unix nanoseconds as listed; 0: none
	etag  string
	// With hasMeta, the object's headers (from a HEAD, or a listing that
	// carried them), held here rather than as a copy of the ObjectInfo:
	// a big directory's listing holds an entry per object.
	contentType string
	metadata    map[string]string
	oldStyle    bool // a directory whose marker is "key", not "key/" (s3fs's old style)
}

// objEntry is the entry of kind k for the object info describes; with
// hasMeta, info carries the object's headers (a HEAD).
func objEntry(k kind, info s3backend.ObjectInfo, hasMeta, marker bool) listEntry {
	e := listEntry{kind: k, hasMeta: hasMeta, marker: marker, size: info.Size, etag: info.ETag}
	if !info.LastModified.IsZero() {
		e.mtime = info.LastModified.UnixNano()
	}
	if hasMeta {
		e.contentType, e.metadata = info.ContentType, info.Metadata
		e.oldStyle = k == kindDir && info.Key != "" && !strings.HasSuffix(info.Key, "/")
	}
	return e
}

// info is the object as e describes it (without its key).
func (e listEntry) info() s3backend.ObjectInfo {
	info := s3backend.ObjectInfo{Size: e.size, ETag: e.etag}
	if e.mtime != 0 {
		info.LastModified = time.Unix(0, e.mtime).UTC()
	}
	if e.hasMeta {
		info.ContentType, info.Metadata = e.contentType, e.metadata
	}
	return info
}

// headConcurrency bounds the HEAD requests that fetch the metadata of a
// listing's entries in the background (S3 listings carry none).
const headConcurrency = 32

// prefetchAfter is how many lookups in a row, in listing order, of entries
// whose metadata is not known make the rest of the directory's metadata be
// fetched ahead of the caller: ls -l and du stat every entry in the order
// readdir gave them; find and tar stat only some.
const prefetchAfter = 3

// errNotFetched answers a READDIRPLUS lookup of an entry whose metadata is
// not known: go-fuse then sends the entry without a node, as a plain
// readdir would, and the kernel looks it up when something asks (the
// errno itself goes nowhere).
const errNotFetched = syscall.ENODATA

// readerGrace bounds how long after its stat cache TTL a listing still
// answers lookups of the names it holds while its directory is open for
// reading (dirReaders): ls -l and du stat a big directory's entries while
// they read it, for longer than the TTL, and a listing that expired
// half-way would make each remaining entry a cold lookup.
const readerGrace = 5 * time.Minute

// maxNameLen is the longest name the kernel will pass; longer keys are
// skipped in listings rather than breaking readdir.
const maxNameLen = 255

// Lookup resolves name in directory n: from an existing node, from a fresh
// listing (with one HEAD if the listing lacks the metadata asked for), or
// from the store.
func (n *Node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if len(name) > maxNameLen {
		return nil, syscall.ENAMETOOLONG
	}
	ent, found, fresh := n.cachedEntry(name)
	return n.lookupVia(ctx, name, out, ent, found, fresh, true)
}

// lookupVia resolves name given what a listing says of it: ent and found
// are trusted when fresh is set (and ent.needStat is not), else the store
// is asked. Without mayFetch (READDIRPLUS) no request is sent: a name that
// would need one fails with errNotFetched.
func (n *Node) lookupVia(ctx context.Context, name string, out *fuse.EntryOut, ent listEntry, found, fresh, mayFetch bool) (*gofs.Inode, syscall.Errno) {
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
	switch {
	case fresh && found && !ent.needStat:
		if !n.fsys.needsMeta(ent) {
			if ent.hasMeta && ent.kind == kindFile && n.fsys.tracksWalks() {
				if !mayFetch {
					// READDIRPLUS: let the stat come as a lookup
					// (answered from the listing, no request), so that
					// a walk is seen (noteStatWalk).
					return nil, errNotFetched
				}
				n.fsys.noteStatWalk(n.currentKey())
			}
			break
		}
		if cur, ok := n.fetchedEntry(name, ent); ok {
			ent = cur
			break
		}
		if !mayFetch {
			return nil, errNotFetched
		}
		n.notePrefetch(name)
		got, err := n.entryMeta(ctx, name, ent)
		switch {
		case errors.Is(err, s3backend.ErrNotFound):
			return nil, syscall.ENOENT // deleted since it was listed
		case err != nil && existing != nil:
			// Logged by entryMeta: the node keeps what it showed.
			return existing.Operations().(*Node).entry(existing, out), 0
		}
		// On another failure (logged) the entry shows the listing's
		// attributes: one entry's HEAD never fails its directory.
		ent = got
	case !mayFetch:
		return nil, errNotFetched
	default:
		var errno syscall.Errno
		if n.listedWithout(name) {
			ent, found, errno = n.fsys.statUnlisted(ctx, key)
		} else {
			ent, found, errno = n.fsys.statRemote(ctx, key)
		}
		if errno != 0 {
			return nil, errno
		}
	}
	if !found && existing != nil {
		// An implicit directory this mount emptied (rm dir/*, mv's
		// copy-then-remove) stays until rmdir, as on any filesystem.
		child := existing.Operations().(*Node)
		child.mu.Lock()
		keep := child.kind == kindDir && child.emptiedHere && !child.unlinked
		child.mu.Unlock()
		if keep {
			return child.entry(existing, out), 0
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

// needsMeta reports whether a lookup of ent must ask the store first: in
// full metadata mode, when the listing is all we know of it (its type too:
// a symlink lists as a plain object, and a node's type never changes).
func (f *FS) needsMeta(ent listEntry) bool {
	return !f.cfg.ListingMetadata && !ent.hasMeta
}

// sameObject reports whether cur, an entry of a listing, describes the
// object ent (from the same or an earlier listing) described.
func sameObject(cur, ent listEntry) bool {
	if ent.kind == kindDir && ent.etag == "" {
		return cur.kind == kindDir // a common prefix: what was asked is its marker
	}
	return cur.etag == ent.etag
}

// fetchedEntry returns n's listing entry for name if it carries the
// metadata that ent, for the same object, lacked.
func (n *Node) fetchedEntry(name string, ent listEntry) (listEntry, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	cur, ok := n.dir().listing[name]
	if !ok || !cur.hasMeta || cur.needStat || !sameObject(cur, ent) {
		return listEntry{}, false
	}
	return cur, true
}

// entryMeta fetches the metadata the listing lacks for entry name of n
// with one HEAD, shared with whoever asks for it meanwhile (a lookup and
// the prefetch), and records it in n's listing. A failure is logged here
// and returns ent as listed; ErrNotFound means it was deleted since.
func (n *Node) entryMeta(ctx context.Context, name string, ent listEntry) (listEntry, error) {
	for {
		if cur, ok := n.fetchedEntry(name, ent); ok {
			return cur, nil
		}
		n.mu.Lock()
		ch, busy := n.dir().fetching[name]
		if !busy {
			if n.dir().fetching == nil {
				n.dir().fetching = make(map[string]chan struct{})
			}
			ch = make(chan struct{})
			n.dir().fetching[name] = ch
		}
		key := name
		if n.key != "" {
			key = n.key + "/" + name
		}
		n.mu.Unlock()
		if busy {
			<-ch // bounded by that HEAD's own deadline
			continue
		}
		got, err := n.fsys.headEntry(ctx, key, ent)
		n.mu.Lock()
		delete(n.dir().fetching, name)
		close(ch)
		if cur, ok := n.dir().listing[name]; ok && err == nil && !cur.needStat && sameObject(cur, ent) {
			got.idx = cur.idx
			n.dir().listing[name] = got
		}
		n.mu.Unlock()
		return got, err
	}
}

// headEntry sends the HEAD that tells what a listing cannot about entry
// ent at key: an object's type and metadata, or a directory's marker.
func (f *FS) headEntry(ctx context.Context, key string, ent listEntry) (listEntry, error) {
	mctx, cancel := f.metaContext(ctx)
	defer cancel()
	head := key
	if ent.kind == kindDir {
		head += "/"
	}
	info, err := f.store.Head(mctx, head)
	switch {
	case err == nil:
	case ent.kind == kindDir && (errors.Is(err, s3backend.ErrNotFound) || errors.Is(err, s3backend.ErrInvalidKey)):
		// No marker (none can exist under a key the store refuses,
		// see statRemote): an implicit directory.
		ent.hasMeta, ent.marker = true, false
		return ent, nil
	case errors.Is(err, s3backend.ErrNotFound):
		return ent, err
	default:
		errno := toErrno(err)
		f.logFailure("stat-entry (the listing's attributes are shown)", key, err, errno)
		return ent, err
	}
	k := kindDir
	if ent.kind != kindDir {
		k = kindOf(info)
	}
	got := objEntry(k, info, true, k == kindDir)
	got.idx = ent.idx
	if ent.mtime != 0 && ent.kind != kindDir {
		// As listed: a re-listing compares it (reuseMetadata), and a
		// HEAD's Last-Modified has whole seconds only.
		got.mtime = ent.mtime
	}
	return got, nil
}

// notePrefetch follows a caller looking up entry name of n's listing:
// after prefetchAfter lookups in a row in listing order, skipping only
// entries whose metadata is known, the metadata of the rest of the listing
// is fetched in the background, headConcurrency HEADs at a time, so that
// ls -l and du wait for one round trip rather than one per entry.
func (n *Node) notePrefetch(name string) {
	n.mu.Lock()
	cur, ok := n.dir().listing[name]
	if !ok || cur.idx < 0 || n.dir().prefetching {
		n.mu.Unlock()
		return
	}
	inOrder := cur.idx > n.dir().lastLooked
	for i := n.dir().lastLooked + 1; inOrder && i < cur.idx; i++ {
		inOrder = n.dir().listing[n.dir().listingOrder[i]].hasMeta
	}
	if inOrder {
		n.dir().streak++
	} else {
		n.dir().streak = 1
	}
	n.dir().lastLooked = cur.idx
	var names []string
	var ents []listEntry
	sem := n.dir().prefetchSem
	if n.dir().streak >= prefetchAfter {
		if cur.kind == kindFile {
			n.fsys.noteStatWalk(n.key)
			n.fsys.nudgeWalks()
		}
		// Entries listed later join in as their pages arrive (publish).
		n.dir().prefetching = true
		sem = make(chan struct{}, headConcurrency)
		n.dir().prefetchSem = sem
		for _, nm := range n.dir().listingOrder[cur.idx+1:] {
			if e, ok := n.dir().listing[nm]; ok && !e.hasMeta && !e.needStat {
				names, ents = append(names, nm), append(ents, e)
			}
		}
	}
	n.mu.Unlock()
	if len(names) > 0 {
		go func() {
			names, ents := n.prefetchByListing(names, ents)
			n.prefetch(sem, names, ents)
		}()
	}
}

// statWalkWindow is how long after the last sign of a program stat-ing the
// entries of a directory (a prefetch started, a stat answered from fetched
// headers) the listings of its subdirectories ask for the objects' headers,
// so that du, ls -lR and rsync cost one listing per directory and no HEAD
// per file. find and plain ls stat no file and keep the cheaper plain
// listings, also beside a directory just walked.
const statWalkWindow = 10 * time.Second

// maxWalked bounds FS.walked; past it, expired entries go.
const maxWalked = 1024

// noteStatWalk records that the files of directory key are being stat-ed;
// its parent counts as walked too, so that its sibling directories are
// listed with headers (du goes through them next).
func (f *FS) noteStatWalk(key string) {
	if !f.tracksWalks() {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if f.walked == nil {
		f.walked = make(map[string]time.Time)
	}
	if len(f.walked) >= maxWalked {
		for k, until := range f.walked {
			if now.After(until) {
				delete(f.walked, k)
			}
		}
		if len(f.walked) >= maxWalked {
			return
		}
	}
	until := now.Add(statWalkWindow)
	f.walked[key] = until
	if key != "" {
		f.walked[parentKey(key)] = until
	}
}

// tracksWalks: listings can bring headers that stats would use (full
// metadata, a store not known to lack them).
func (f *FS) tracksWalks() bool {
	return !f.cfg.ListingMetadata && !f.noListHeaders.Load()
}

// parentKey is the key of the directory holding key ("" for the root).
func parentKey(key string) string {
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		return key[:i]
	}
	return ""
}

// listsHeaders reports whether a listing of directory key should bring
// the objects' headers: its files or its siblings' are being stat-ed (it
// or its parent is walked). A walk goes down the tree as its stats reach
// each directory (lookups answered from the headers mark it, see
// lookupVia), never by listing alone: find below a walked directory
// lists plainly. FS.mu is a leaf: callers may hold Node.mu.
func (f *FS) listsHeaders(key string) bool {
	if !f.tracksWalks() || key == "" {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	return now.Before(f.walked[parentKey(key)]) || now.Before(f.walked[key])
}

// headersListed reports whether page carried any object's headers.
func headersListed(page s3backend.ListResult) bool {
	for _, o := range page.Objects {
		if o.HeadersListed {
			return true
		}
	}
	return len(page.Objects) == 0 // nothing to tell by: try again later
}

// listPrefetch is a running prefetchByListing of a directory: the entries
// it is to bring, and the channel that stands for its page in flight
// (every wanted name waits on it in Node.fetching; what a page leaves
// wanted moves to the next page's). Guarded by the directory's Node.mu.
type listPrefetch struct {
	want map[string]struct{}
	ch   chan struct{}
	// ahead holds the headers of objects a page brought before the
	// directory's own listing (streaming, paced by its reader) published
	// them; publish takes them from here rather than asking again.
	ahead map[string]listEntry
	// published is closed, and replaced, whenever the listing publishes
	// entries: the prefetch waits on it not to run ahead of the listing.
	published chan struct{}
}

// prefetchAheadWait bounds how long the prefetch waits for the listing to
// catch up before it lists the next page anyway (a reader that stopped
// reading the directory): entries published after it passed them are
// HEADed, as without a prefetch.
const prefetchAheadWait = 2 * time.Second

// waitForListingLocked waits while n's listing, still streaming, has not
// published past name, the last entry the prefetch's pages reached, at
// most prefetchAheadWait. n.mu held; released while waiting.
func (n *Node) waitForListingLocked(lp *listPrefetch, name string) {
	deadline := time.NewTimer(prefetchAheadWait)
	defer deadline.Stop()
	for {
		d := n.dir()
		if name == "" || d.listingDone || d.listPrefetch != lp || len(d.listingOrder) > 0 && d.listingOrder[len(d.listingOrder)-1] >= name {
			return
		}
		ch := lp.published
		n.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			n.mu.Lock()
			return
		case <-n.fsys.ctx.Done():
			n.mu.Lock()
			return
		}
		n.mu.Lock()
	}
}

// publishedLocked tells a running prefetch that the listing published
// more entries. n.mu held.
func (lp *listPrefetch) publishedLocked() {
	close(lp.published)
	lp.published = make(chan struct{})
}

// wantLocked adds entry name to the prefetch. n.mu held.
func (lp *listPrefetch) wantLocked(n *Node, name string) {
	lp.want[name] = struct{}{}
	if n.dir().fetching == nil {
		n.dir().fetching = make(map[string]chan struct{})
	}
	if n.dir().fetching[name] == nil {
		n.dir().fetching[name] = lp.ch
	}
}

// prefetchByListing fetches the headers of the given entries of n's
// listing, and of those its next pages publish meanwhile (readdir.go), by
// listing the directory again with each object's headers where the store
// can give them (on MinIO, s3backend.WithListHeaders): a page of a thousand
// entries for the price of a few HEADs. Lookups of the entries wait for
// the page that brings theirs rather than HEAD each. It returns the
// entries it did not bring (directories, whose markers a HEAD asks, and
// everything when the store gives no headers), for prefetch.
func (n *Node) prefetchByListing(names []string, ents []listEntry) ([]string, []listEntry) {
	if n.fsys.noListHeaders.Load() {
		return names, ents
	}
	lp := &listPrefetch{want: make(map[string]struct{}, len(names)), ch: make(chan struct{}), published: make(chan struct{})}
	byName := make(map[string]listEntry, len(names))
	n.mu.Lock()
	for i, name := range names {
		if ents[i].kind == kindFile {
			lp.wantLocked(n, name)
		}
		byName[name] = ents[i]
	}
	n.dir().listPrefetch = lp
	gen := n.dir().listGen
	n.mu.Unlock()
	prefix := n.childKey("")
	token, pages, reached := "", 0, ""
	for n.fsys.ctx.Err() == nil {
		// A listing still streaming publishes entries as its reader
		// takes them; listing ahead of it would pass entries not yet
		// wanted, which would then be HEADed one by one.
		n.mu.Lock()
		n.waitForListingLocked(lp, reached)
		n.mu.Unlock()
		page, err := n.listPage(s3backend.WithListHeaders(n.fsys.ctx), prefix, token)
		if err != nil {
			n.fsys.log.Debug("prefetch listing failed; the entries are HEADed", "prefix", prefix, "err", err)
			break
		}
		pages++
		next := make(chan struct{})
		n.mu.Lock()
		for _, obj := range page.Objects {
			name, ok := strings.CutPrefix(obj.Key, prefix)
			if !ok || !obj.HeadersListed {
				continue
			}
			if name > reached {
				reached = name
			}
			k := kindOf(obj)
			if k == kindDir {
				continue
			}
			e := objEntry(k, obj, true, false)
			if _, wanted := lp.want[name]; wanted {
				delete(lp.want, name)
				if cur, ok := n.dir().listing[name]; ok && !cur.needStat && sameObject(cur, e) {
					e.idx = cur.idx
					n.dir().listing[name] = e
				}
			} else if _, listed := n.dir().listing[name]; !listed && !n.dir().listingDone {
				if lp.ahead == nil {
					lp.ahead = make(map[string]listEntry)
				}
				lp.ahead[name] = e
			}
		}
		n.moveWaitersLocked(lp, next)
		old := lp.ch
		lp.ch = next
		n.mu.Unlock()
		close(old)
		if pages == 1 && !headersListed(page) {
			// The store gives no headers: HEAD these, and do not ask
			// again on this mount.
			n.fsys.noListHeaders.Store(true)
			break
		}
		if token = page.NextToken; token == "" {
			break
		}
	}
	n.mu.Lock()
	n.moveWaitersLocked(lp, nil)
	if n.dir().listPrefetch == lp {
		n.dir().listPrefetch = nil
		if len(lp.ahead) > 0 && !n.dir().listingDone && n.dir().listGen == gen {
			// It ran ahead of a reader that paused for longer than
			// prefetchAheadWait: what it brought for entries not
			// published yet stays for publish, or a page of them would
			// each be HEADed (a CI run under load: 1,004 HEADs for
			// 20,000 objects).
			if n.dir().headersAhead == nil {
				n.dir().headersAhead = lp.ahead
			} else {
				maps.Copy(n.dir().headersAhead, lp.ahead)
			}
		}
	}
	var restNames []string
	var restEnts []listEntry
	for name := range lp.want {
		e, ok := byName[name]
		if !ok {
			e, ok = n.dir().listing[name]
		}
		if ok && !e.hasMeta && !e.needStat {
			restNames, restEnts = append(restNames, name), append(restEnts, e)
		}
	}
	old := lp.ch
	n.mu.Unlock()
	close(old)
	for i, name := range names {
		if ents[i].kind != kindFile {
			restNames, restEnts = append(restNames, name), append(restEnts, ents[i])
		}
	}
	return restNames, restEnts
}

// moveWaitersLocked moves the lookups waiting on lp's page in flight to
// next (nil: to no page, they HEAD), except those whose entries came.
// n.mu held.
func (n *Node) moveWaitersLocked(lp *listPrefetch, next chan struct{}) {
	for name, c := range n.dir().fetching {
		if c != lp.ch {
			continue
		}
		if _, wanted := lp.want[name]; wanted && next != nil {
			n.dir().fetching[name] = next
		} else {
			delete(n.dir().fetching, name)
		}
	}
}

// prefetch fetches the metadata of the given entries of n's listing, at
// most headConcurrency at a time with the rest of its listing's prefetches
// (sem). Failures are logged by entryMeta and leave the entry to its
// lookup.
func (n *Node) prefetch(sem chan struct{}, names []string, ents []listEntry) {
	var wg sync.WaitGroup
	for i, name := range names {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if n.fsys.ctx.Err() == nil { // unmounted: stop
				_, _ = n.entryMeta(n.fsys.ctx, name, ents[i])
			}
		}()
	}
	wg.Wait()
}

func (f *FS) newNode(k kind, key string) *Node {
	n := &Node{fsys: f, kind: k, key: key}
	if k == kindDir {
		n.dirSt = new(dirState)
	}
	f.inos.assign(n)
	return n
}

// applyEntryLocked sets attributes from a listing or stat result. n.mu held.
func (n *Node) applyEntryLocked(ent listEntry) {
	if n.kind == kindDir {
		n.hasMarker = ent.marker
		if !ent.marker {
			// hasMeta: known to have no marker; else a listing's common
			// prefix, which does not tell (loadMeta asks).
			n.metaLoaded = ent.hasMeta
			if n.attrs.mtime.IsZero() {
				n.attrs = defaultAttrs(&n.fsys.cfg, kindDir, time.Time{})
			}
			n.validUntil = time.Now().Add(n.fsys.cfg.StatCacheTTL)
			return
		}
	}
	if n.etag != "" && n.etag != ent.etag && n.kind == kindSymlink {
		n.linkTarget = ""
	}
	n.applyInfoLocked(ent.info(), ent.hasMeta)
	if n.kind == kindDir && ent.hasMeta {
		n.oldStyle = ent.oldStyle // info() has no key to tell it by
	}
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
//
// While the directory is open for reading, its listing answers for the
// names it holds for readerGrace past the TTL, as READDIRPLUS answers from
// the reader's snapshot: a reader sees one listing throughout.
func (n *Node) cachedEntry(name string) (ent listEntry, found, fresh bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.dir().listing == nil {
		return listEntry{}, false, false
	}
	if now := time.Now(); now.After(n.dir().listingUntil) {
		ent, found = n.dir().listing[name]
		if !found || n.dir().dirReaders == 0 || now.After(n.dir().listingUntil.Add(readerGrace)) {
			return listEntry{}, false, false
		}
		return ent, true, true
	}
	ent, found = n.dir().listing[name]
	if !found && !n.dir().listingDone {
		return listEntry{}, false, false // not listed yet, maybe
	}
	n.fsys.listBound.touchLocked(n)
	// A name the listing lacks may have been created by another tool
	// since: absence is trusted only while the listing is younger than
	// the negative TTL (it was made StatCacheTTL before listingUntil).
	cfg := &n.fsys.cfg
	if !found && !time.Now().Before(n.dir().listingUntil.Add(cfg.NegativeTTL-cfg.StatCacheTTL)) {
		return listEntry{}, false, false
	}
	return ent, found, true
}

func (n *Node) invalidateListing() {
	n.mu.Lock()
	n.dir().listing = nil
	n.dir().listGen++ // a listing streaming stops filling it
	n.dir().headersAhead = nil
	n.fsys.listBound.setLocked(n, 0)
	n.mu.Unlock()
}

// listingAdd records in n's cached listing (if any) a child we made.
func (n *Node) listingAdd(name string, k kind) {
	n.fsys.noteNamespaceChange()
	var victims []*Node
	n.mu.Lock()
	if n.dir().listing != nil {
		n.dir().listing[name] = listEntry{kind: k, needStat: true, idx: -1}
		victims = n.noteListingLocked()
	}
	n.mu.Unlock()
	dropListings(victims)
}

// listingRemove drops a child we removed from n's cached listing (if any).
func (n *Node) listingRemove(name string) {
	n.fsys.noteNamespaceChange()
	var victims []*Node
	n.mu.Lock()
	if n.dir().listing != nil {
		delete(n.dir().listing, name)
		victims = n.noteListingLocked()
	}
	n.mu.Unlock()
	dropListings(victims)
}

// listingChanged marks name's entry in n's cached listing (if any) as no
// longer the store's word, as for a name we made: the child's object
// changed through us (its data uploaded, its headers rewritten), and the
// entry describes it as it was. A lookup answered from the entry after
// the kernel forgot the child would show the old attributes (the
// reliability model found a chmod undone so, under drop_caches).
func (n *Node) listingChanged(name string) {
	n.mu.Lock()
	if e, ok := n.dir().listing[name]; ok && !e.needStat {
		e.needStat = true
		n.dir().listing[name] = e
	}
	n.mu.Unlock()
}

// changedInParent is listingChanged for n in its parent. None of n's
// locks held (go-fuse's tree is asked).
func (n *Node) changedInParent() {
	if name, parent := n.Parent(); parent != nil {
		parent.Operations().(*Node).listingChanged(name)
	}
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
	n.mu.Lock()
	n.emptiedHere = true
	n.mu.Unlock()
}

// statRemote finds what key is: an object (file, symlink), a directory
// marker "key/", or a prefix with objects under it (an implicit directory).
// Two requests run in parallel: a HEAD of key and a listing of "key/" with
// at most one key, which is the marker when there is one (it sorts first).
// Only a marker found that way costs a second round, a HEAD of it, for the
// mode and owner the kernel checks. With listing metadata, two listings
// answer instead (statListed).
func (f *FS) statRemote(ctx context.Context, key string) (listEntry, bool, syscall.Errno) {
	if f.cfg.ListingMetadata {
		return f.statListed(ctx, key)
	}
	mctx, cancel := f.metaContext(ctx)
	defer cancel()
	var (
		obj             s3backend.ObjectInfo
		body            []byte
		objErr, listErr error
		list            s3backend.ListResult
	)
	inParallel(
		func() { obj, body, objErr = f.peek(mctx, key) },
		func() { list, listErr = f.store.List(mctx, key+"/", "", "", 1) })

	// Some stores (S3, and MinIO too) allow both "key" and "key/…". The
	// directory wins, as it does in listings, so that what is below it
	// stays reachable.
	hasMarker := listErr == nil && len(list.Objects) > 0 && list.Objects[0].Key == key+"/"
	switch {
	case objErr == nil && kindOf(obj) == kindDir:
		return objEntry(kindDir, obj, true, true), true, 0
	case hasMarker:
		marker, err := f.store.Head(mctx, key+"/")
		switch {
		case err == nil:
			return objEntry(kindDir, marker, true, true), true, 0
		case errors.Is(err, s3backend.ErrNotFound):
			// Removed since the listing: an implicit directory if
			// anything else is below it, which a new lookup tells.
			return listEntry{kind: kindDir}, true, 0
		}
		return listEntry{}, false, f.lookupErrno(key+"/", err)
	case listErr == nil && len(list.Objects)+len(list.CommonPrefixes) > 0:
		// No marker: it would have come first.
		return listEntry{kind: kindDir, hasMeta: true}, true, 0
	case objErr == nil:
		k := kindOf(obj)
		if k == kindFile && len(body) > 0 {
			f.keepPeeked(obj, body)
		}
		return objEntry(k, obj, true, false), true, 0
	}
	return listEntry{}, false, f.lookupErrno(key, objErr, listErr)
}

// peekMax is the largest file a cold lookup brings whole (see peek): the
// kernel's first read of a file asks for this much, and it is the most a
// lookup of a bigger file reads and drops.
const peekMax = 128 << 10

// peek asks for what a HEAD of key tells and, for a file of at most
// peekMax bytes, its content, in one request (Store.Peek): a program that
// opens a file by its path (cat, an import, a config loader) waits for the
// lookup, then the read; the read of a small file is then answered from
// the block cache. Without a block cache it is a HEAD, and so it is again
// when the store refuses the ranged GET itself (see the switch below).
func (f *FS) peek(ctx context.Context, key string) (s3backend.ObjectInfo, []byte, error) {
	if f.blocks == nil {
		info, err := f.store.Head(ctx, key)
		return info, nil, err
	}
	info, body, err := f.store.Peek(ctx, key, min(peekMax, f.blocks.BlockSize()))
	switch {
	case err == nil, ctx.Err() != nil, errors.Is(err, s3backend.ErrNotFound),
		// What a HEAD would hit as well (a store down or throttling, the
		// keys refused): asking again only doubles the wait.
		errors.Is(err, s3backend.ErrUnreachable), errors.Is(err, s3backend.ErrThrottled),
		errors.Is(err, s3backend.ErrBadCredentials), errors.Is(err, s3backend.ErrNoSuchBucket):
		return info, body, err
	}
	f.log.Debug("lookup: the store refused a ranged GET; asking with a HEAD", "key", key, "err", err)
	info, err = f.store.Head(ctx, key)
	return info, nil, err
}

// keepPeeked puts the content a lookup's peek brought into the block
// cache, keyed by its ETag as an open's reader will ask for it, unless the
// file has local data (its reads come from that).
func (f *FS) keepPeeked(info s3backend.ObjectInfo, body []byte) {
	if f.registered(info.Key) != nil || info.ETag == "" {
		return
	}
	rd := f.blocks.NewReader(cache.Object{Key: info.Key, ETag: info.ETag, Size: int64(len(body))},
		func(_ context.Context, off, n int64) (io.ReadCloser, error) {
			end := min(off+n, int64(len(body)))
			return io.NopCloser(bytes.NewReader(body[min(off, end):end])), nil
		})
	defer rd.Close()
	// A cache whose budget is all in flight makes a fill wait: the lookup
	// does not wait long for it (the read then fetches as usual).
	ctx, cancel := context.WithTimeout(f.ctx, peekKeepWait)
	defer cancel()
	if _, err := rd.ReadAt(ctx, make([]byte, len(body)), 0); err != nil && err != io.EOF && f.ctx.Err() == nil {
		f.log.Debug("lookup: keeping a small file's bytes failed", "key", info.Key, "err", err)
	}
}

// peekKeepWait bounds how long a lookup waits for room in the block cache.
const peekKeepWait = 50 * time.Millisecond

// listedWithout reports whether n's listing is complete, within its TTL,
// and lacks name: the name is most likely absent (a file tar or git is
// about to create), though without a negative TTL that is not trusted.
func (n *Node) listedWithout(name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	d := n.dirSt
	if d == nil || d.listing == nil || !d.listingDone || !time.Now().Before(d.listingUntil) {
		return false
	}
	_, listed := d.listing[name]
	return !listed
}

// unlistedProbeKeys is how many entries statUnlisted's listing asks for.
const unlistedProbeKeys = 64

// statUnlisted looks up key, a name its directory's fresh listing lacks,
// with one request where statRemote sends two at once (a name most likely
// absent is what a program about to create it looks up: tar, git, npm).
// One listing from key on, with the delimiter, shows the object key first
// if there is one, and the prefix key/ if anything is below it (a marker,
// or an implicit directory's objects); only names that sort between the
// two ("key.c", "key-old/") can push key/ off the page, and a page that
// ends before key/ without showing it is no answer. Whatever it finds is
// looked up as any name is, so only an absent name is answered here.
func (f *FS) statUnlisted(ctx context.Context, key string) (listEntry, bool, syscall.Errno) {
	mctx, cancel := f.metaContext(ctx)
	page, err := f.store.List(mctx, key, "/", "", unlistedProbeKeys)
	cancel()
	if err != nil {
		return listEntry{}, false, f.lookupErrno(key, err)
	}
	if absentFrom(page, key) {
		return listEntry{}, false, 0
	}
	return f.statRemote(ctx, key)
}

// absentFrom reports whether page, a listing of prefix key with the
// delimiter "/", shows that neither the object key nor anything below
// key/ exists.
func absentFrom(page s3backend.ListResult, key string) bool {
	dir := key + "/"
	past := page.NextToken == "" // the page shows every name from key on
	for _, o := range page.Objects {
		if o.Key == key || strings.HasPrefix(o.Key, dir) {
			return false
		}
		past = past || o.Key > dir
	}
	for _, p := range page.CommonPrefixes {
		if p == dir {
			return false
		}
		past = past || p > dir
	}
	return past
}

// inParallel runs fns at once and returns when all have.
func inParallel(fns ...func()) {
	var wg sync.WaitGroup
	wg.Add(len(fns))
	for _, fn := range fns {
		go func() { defer wg.Done(); fn() }()
	}
	wg.Wait()
}

// lookupErrno is the errno of a lookup whose requests found nothing:
// 0 if each failed with ErrNotFound (or succeeded), else the first other
// failure's, which is logged.
func (f *FS) lookupErrno(key string, errs ...error) syscall.Errno {
	for _, err := range errs {
		if err != nil && !errors.Is(err, s3backend.ErrNotFound) {
			errno := toErrno(err)
			f.logFailure("lookup", key, err, errno)
			return errno
		}
	}
	return 0
}

// statListed is statRemote from listings alone, in listing metadata mode:
// the first key under "key" (the object itself when it exists, since it
// sorts first) and the first under "key/" (a directory: its marker, or
// anything below it), both in parallel. The directory wins.
func (f *FS) statListed(ctx context.Context, key string) (listEntry, bool, syscall.Errno) {
	mctx, cancel := f.metaContext(ctx)
	defer cancel()
	var (
		obj, dir       s3backend.ListResult
		objErr, dirErr error
	)
	inParallel(
		func() { obj, objErr = f.store.List(mctx, key, "", "", 1) },
		func() { dir, dirErr = f.store.List(mctx, key+"/", "", "", 1) })
	switch {
	case dirErr == nil && len(dir.Objects) > 0 && dir.Objects[0].Key == key+"/":
		return objEntry(kindDir, dir.Objects[0], false, true), true, 0
	case dirErr == nil && len(dir.Objects)+len(dir.CommonPrefixes) > 0:
		// No marker: it would have come first.
		return listEntry{kind: kindDir, hasMeta: true}, true, 0
	case objErr == nil && len(obj.Objects) > 0 && obj.Objects[0].Key == key:
		return objEntry(kindFile, obj.Objects[0], false, false), true, 0
	}
	return listEntry{}, false, f.lookupErrno(key, objErr, dirErr)
}

// listObject describes the object at key from a listing (no metadata), for
// getattr in listing metadata mode; ErrNotFound if there is none.
func (f *FS) listObject(ctx context.Context, key string) (s3backend.ObjectInfo, error) {
	page, err := f.store.List(ctx, key, "", "", 1)
	if err != nil {
		return s3backend.ObjectInfo{}, err
	}
	if len(page.Objects) == 0 || page.Objects[0].Key != key {
		return s3backend.ObjectInfo{}, fmt.Errorf("list %q: %w", key, s3backend.ErrNotFound)
	}
	return page.Objects[0], nil
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
		n.fsys.inos.release(child) // never attached
		return nil, errno
	}
	child.hasMarker = true
	child.metaLoaded = true // the marker's headers are what opts said
	child.validUntil = time.Now().Add(n.fsys.cfg.StatCacheTTL)
	// A new directory is empty: with a negative TTL, creates in it need
	// not ask the store.
	child.dir().listing = make(map[string]listEntry)
	child.dir().listingDone = true
	child.dir().listingUntil = child.validUntil
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
	if errno := n.newNameErrno(name, k); errno != 0 {
		return nil, errno
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
	if errno := n.newNameErrno(name, kindFile); errno != 0 {
		return nil, nil, 0, errno
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
		n.fsys.inos.release(child) // never attached
		return nil, nil, 0, errno
	}
	h := newHandle(child, flags)
	var openerPid uint32
	var opener int32
	if h.writable {
		openerPid, opener = child.opener(ctx)
	}
	child.mu.Lock()
	child.markDirtyLocked() // an empty file must exist as an empty object
	child.openCount++
	if h.writable {
		// Its opener owns it (flushowner.go).
		h.owners.add(openerPid, opener)
		child.pushes().holds++ // released with the handle; nothing to fence yet
		// Its close uploads the new file: attributes set before (tar
		// and cp -a, an empty file's too) wait for it.
		child.writtenThroughLocked(h)
	}
	child.mu.Unlock()
	n.entryAdded(name, kindFile)
	inode := n.NewInode(ctx, child, gofs.StableAttr{Mode: syscall.S_IFREG, Ino: child.ino})
	return child.entry(inode, out), h, 0, 0
}

// setRemoving marks that n's object is about to be deleted or replaced
// (or no longer is): no stream may start on n meanwhile, since
// preserveIfOpen, which keeps an open file's content, only knows of the
// streams that had started when it ran. uploadMu held.
func (n *Node) setRemoving(on bool) {
	n.mu.Lock()
	n.removing = on
	n.mu.Unlock()
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
	// A file nobody has open (one whose upload failed, say) gives its
	// staging file and its charge back now: no release will come.
	n.dropStagingIfIdle()
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
		child.setRemoving(true)
		defer child.setRemoving(false)
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
	if errno := n.newNameErrno(name, kindSymlink); errno != 0 {
		return nil, errno
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
		n.fsys.inos.release(child) // never attached
		return nil, errno
	}
	child.etag = etag
	child.size = int64(len(target))
	child.metaLoaded = true
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

func validName(name string) bool {
	return name != "" && name != "." && name != ".." && len(name) <= maxNameLen && !strings.Contains(name, "/")
}

// reuseMetadata returns ent, a new listing's entry, with the metadata of
// old, the previous listing's entry of the same name, when the object has
// not changed since (same ETag, size and LastModified: a metadata rewrite
// by copy keeps the ETag but not the time), so a re-listing HEADs only
// what is new or changed.
func reuseMetadata(ent, old listEntry) listEntry {
	if !old.hasMeta || old.needStat || ent.kind != kindFile || old.kind == kindDir {
		return ent
	}
	if old.etag == ent.etag && old.mtime == ent.mtime && old.size == ent.size {
		return old
	}
	return ent
}

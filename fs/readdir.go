package fs

import (
	"context"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/novitalabs/bucketfs/s3backend"
)

// Reading a directory. A listing streams: entries go to the kernel page by
// page as ListObjectsV2 returns them (in key order), one reply per page at
// most, the next page fetched while the kernel takes this one, never more
// than one page ahead. Nothing
// holds a whole listing per handle: the entries a handle has returned are
// kept as fuse.DirEntry (for seekdir), the directory's cached listing is
// filled as pages arrive and marked complete at the end, and a handle
// opened while that listing is complete and fresh reads it without a copy.

// dirHandle is an open directory. Its first read (and the first after a
// rewind) starts a listing, or reads the directory's cached listing while
// it is complete and fresh. READDIRPLUS's per-entry lookups are answered
// from the entry just returned, without a request: entries whose metadata
// is not known go without a node, and a caller that stats them looks them
// up (Node.Lookup, which fetches it).
type dirHandle struct {
	n *Node

	mu      sync.Mutex // guards the fields below; taken before Node.mu
	started bool       // this pass (since open or the last rewind) has begun
	// A pass over the cached listing: order is the node's listingOrder
	// when it began (elements below its length are never written again)
	// and from the map its entries are read from, under Node.mu.
	order []string
	from  map[string]listEntry
	// A streamed pass: st fetches and merges the pages; entries holds
	// every entry returned or ready to return, in order (Off = index+1),
	// so that Seekdir can go back; ents holds the listing entries of
	// entries[entsBase:], those not returned yet (and the last one), for
	// READDIRPLUS.
	st       *dirStream
	entries  []fuse.DirEntry
	ents     []listEntry
	entsBase int
	// tail: files with local data (or made here) that the listing lacks,
	// returned after it; ended: the listing is over and tail is built.
	tail  []fuse.DirEntry
	ended bool
	err   syscall.Errno // a failed page: returned until a rewind
	pos   int           // index of the next entry in order, entries or tail
	last  lastEntry     // the entry returned last, for READDIRPLUS
	// replying: the kernel's current READDIR(PLUS) request has an entry
	// of ours (see Readdirent), so ending it early is not end of file.
	replying bool
	// reading: counted in n.dir().dirReaders until Releasedir.
	reading bool
}

// lastEntry is the entry a handle returned last and what its listing said
// of it (ok: ent is the listing's word).
type lastEntry struct {
	name string
	ent  listEntry
	ok   bool
}

var (
	_ gofs.NodeOpendirHandler = (*Node)(nil)
	_ gofs.FileReaddirenter   = (*dirHandle)(nil)
	_ gofs.FileLookuper       = (*dirHandle)(nil)
	_ gofs.FileSeekdirer      = (*dirHandle)(nil)
	_ gofs.FileFsyncdirer     = (*dirHandle)(nil)
	_ gofs.FileReleasedirer   = (*dirHandle)(nil)
)

// OpendirHandle opens a directory; the listing starts at the first read.
func (n *Node) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if n.kind != kindDir {
		return nil, 0, syscall.ENOTDIR
	}
	return &dirHandle{n: n}, 0, 0
}

// Readdirent returns the next entry, waiting for the listing's next page
// when the kernel has taken every entry listed so far.
//
// A reply goes to the kernel as soon as the entries listed so far are in
// it: when the next page has not arrived, Readdirent ends the request
// (returns no entry) rather than wait for it, so the kernel and the
// program take this page's entries while the next one is fetched; a
// reply held until it is full (up to 1 MiB, several pages) made them
// wait for the store and the store wait for them in turn. go-fuse calls
// Readdirent until it returns no entry or its buffer is full, then
// replies; a reply with no entry is end of file, so an early end is
// allowed only once this request holds an entry of ours (replying): one
// returned by this call's predecessor in the same request, or the one
// that did not fit the previous reply, which go-fuse puts first in this
// one before it calls Readdirent.
func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.started {
		d.start()
	}
	for {
		if de := d.next(); de != nil {
			d.replying = true
			return de, 0
		}
		switch {
		case d.err != 0:
			d.replying = false
			return nil, d.err
		case d.ended:
			d.replying = false
			return nil, 0
		case d.st == nil: // the cached listing, read to its end
			d.finish()
			continue
		}
		got, errno := d.more(!d.replying)
		if errno != 0 {
			d.replying = false
			return nil, errno
		}
		if !got { // the next page is not here yet: reply with these
			d.replying = false
			return nil, 0
		}
	}
}

// start begins a pass: over the cached listing while it is complete and
// fresh, else a new listing that becomes the directory's cached one. d.mu
// held.
func (d *dirHandle) start() {
	n := d.n
	d.started = true
	n.mu.Lock()
	if !d.reading {
		d.reading = true
		n.dir().dirReaders++
	}
	if n.dir().listing != nil && n.dir().listingDone && time.Now().Before(n.dir().listingUntil) {
		d.order, d.from = n.dir().listingOrder, n.dir().listing
		n.fsys.listBound.touchLocked(n)
		n.mu.Unlock()
		return
	}
	key := n.key
	n.mu.Unlock()
	// A walk of the tree (treewalk.go) may have listed it, or be about to.
	if tl := n.fsys.treeListingFor(key); tl != nil {
		n.mu.Lock()
		victims := n.installTreeLocked(tl)
		d.order, d.from = n.dir().listingOrder, n.dir().listing
		n.mu.Unlock()
		dropListings(victims)
		return
	}
	n.mu.Lock()
	d.startStreamLocked()
	n.mu.Unlock()
	n.maybeWalk()
}

// installTreeLocked makes a walk's listing n's cached listing, complete.
// n.mu held; the caller drops the returned victims after releasing it.
func (n *Node) installTreeLocked(tl *treeListing) []*Node {
	previous := n.dir().listing
	listing := make(map[string]listEntry, len(tl.entries))
	order := make([]string, 0, len(tl.entries))
	for _, p := range tl.entries {
		if _, dup := listing[p.name]; dup {
			continue
		}
		ent := reuseMetadata(p.ent, previous[p.name])
		ent.idx = len(order)
		listing[p.name] = ent
		order = append(order, p.name)
	}
	n.dir().listGen++
	n.dir().headersAhead = nil
	n.dir().listing, n.dir().listingOrder, n.dir().listingDone, n.dir().listingDirs = listing, order, true, tl.dirs
	n.dir().listingUntil = tl.listedAt.Add(n.fsys.cfg.StatCacheTTL)
	n.dir().lastLooked, n.dir().streak, n.dir().prefetching, n.dir().prefetchSem = -1, 0, false, nil
	return n.noteListingLocked()
}

// startStreamLocked begins a new listing of d's directory, which becomes
// its cached one. d.mu and n.mu held.
func (d *dirHandle) startStreamLocked() {
	n := d.n
	prefix := n.key
	if prefix != "" {
		prefix += "/"
	}
	// The listing being replaced is never written again (see listGen):
	// the stream reads its metadata without the lock.
	previous := n.dir().listing
	n.dir().listGen++
	n.dir().headersAhead = nil
	n.dir().listing, n.dir().listingOrder, n.dir().listingDone, n.dir().listingDirs = make(map[string]listEntry), nil, false, 0
	n.fsys.listBound.setLocked(n, 0) // the replaced listing no longer counts
	n.dir().listingUntil = time.Now().Add(n.fsys.cfg.StatCacheTTL)
	n.dir().lastLooked, n.dir().streak, n.dir().prefetching, n.dir().prefetchSem = -1, 0, false, nil
	d.st = n.startStream(prefix, n.dir().listGen, n.dir().listing, previous)
}

// next returns the entry at d.pos, if there is one yet, and moves past it.
// d.mu held.
func (d *dirHandle) next() *fuse.DirEntry {
	n := d.n
	for d.order != nil && d.pos < len(d.order) {
		name := d.order[d.pos]
		d.pos++
		n.mu.Lock()
		ent, ok := d.from[name]
		n.mu.Unlock()
		if !ok || ent.idx < 0 {
			continue // removed since it was listed (or made again: it is in the tail)
		}
		d.last = lastEntry{name: name, ent: ent, ok: true}
		return &fuse.DirEntry{Name: name, Mode: n.listedMode(name, ent), Off: uint64(d.pos)}
	}
	base := len(d.order) + len(d.entries)
	switch {
	case d.pos < len(d.entries):
		de := d.entries[d.pos]
		d.last = lastEntry{name: de.Name}
		if i := d.pos - d.entsBase; i >= 0 && i < len(d.ents) {
			d.last.ent, d.last.ok = d.ents[i], true
		}
		d.pos++
		return &de
	case d.pos >= base && d.pos-base < len(d.tail):
		de := d.tail[d.pos-base]
		d.last = lastEntry{name: de.Name}
		d.pos++
		return &de
	}
	return nil
}

// listedMode is the type readdir shows for entry name of n's listing: an
// object is a regular file unless its metadata (an earlier HEAD, a node of
// ours) says otherwise, so an un-stat-ed symlink reads as DT_REG until
// something looks it up. Called without n.mu (GetChild).
func (n *Node) listedMode(name string, ent listEntry) uint32 {
	k := ent.kind
	if !ent.hasMeta && k == kindFile {
		if ch := n.GetChild(name); ch != nil {
			k = ch.Operations().(*Node).kind // kind never changes: no lock
		}
	}
	return k.typeBits()
}

// more takes the listing's next page, waiting for it if wait, and makes
// its entries ready to return; got is false when it did not wait and the
// page had not arrived. A failed page ends the pass with its errno (the
// entries already returned stay returned); the log says why. d.mu held.
func (d *dirHandle) more(wait bool) (got bool, errno syscall.Errno) {
	st := d.st
	var (
		res pageResult
		ok  bool
	)
	if wait {
		// Not cut short by an interrupt: getdents(2) failing with EINTR
		// breaks programs (Go's runtime signals its threads all the
		// time, and the kernel turns each signal into a FUSE
		// interrupt), and the wait is bounded by the page's own
		// deadline.
		res, ok = <-st.pages
	} else {
		select {
		case res, ok = <-st.pages:
		default:
			return false, 0
		}
	}
	if !ok { // the filesystem is closing: its context ended the stream
		d.err = syscall.EIO
		return false, d.err
	}
	if res.err != nil {
		errno := toErrno(res.err)
		d.n.fsys.logFailure("readdir", st.prefix, res.err, errno)
		d.err = errno
		return false, errno
	}
	done := res.page.NextToken == ""
	st.merge.add(st.prefix, res.page, !d.n.fsys.cfg.ListingMetadata)
	// Every entry before d.pos is returned: only the last one may still
	// be looked up.
	if keep := d.pos - 1 - d.entsBase; keep > 0 && keep <= len(d.ents) {
		d.ents = d.ents[:copy(d.ents, d.ents[keep:])]
		d.entsBase += keep
	}
	var batch []pendEntry
	st.merge.release(done, func(p pendEntry) { batch = append(batch, p) })
	d.publish(batch, done)
	if done {
		d.finish()
	}
	return true, 0
}

// publish makes batch, the next entries of the listing in order, ready to
// return and, while this listing is the directory's current one, adds them
// to its cached listing (marked complete when done). d.mu held.
func (d *dirHandle) publish(batch []pendEntry, done bool) {
	n, st := d.n, d.st
	for i := range batch {
		batch[i].ent = reuseMetadata(batch[i].ent, st.previous[batch[i].name])
	}
	var names []string
	var ents []listEntry
	var sem chan struct{}
	var victims []*Node
	n.mu.Lock()
	if n.dir().listGen == st.gen && n.dir().listing != nil {
		for _, p := range batch {
			p.ent.idx = len(n.dir().listingOrder)
			n.dir().listing[p.name] = p.ent
			n.dir().listingOrder = append(n.dir().listingOrder, p.name)
			if p.ent.kind == kindDir {
				n.dir().listingDirs++
			}
			if n.dir().prefetching && !p.ent.hasMeta && n.fsys.needsMeta(p.ent) {
				if e, ok := n.dir().headersAhead[p.name]; ok {
					// A prefetch by listing that has ended brought it.
					delete(n.dir().headersAhead, p.name)
					if !p.ent.needStat && sameObject(p.ent, e) {
						e.idx = p.ent.idx
						n.dir().listing[p.name] = e
						continue
					}
				}
				if lp := n.dir().listPrefetch; lp != nil && p.ent.kind == kindFile {
					if e, ok := lp.ahead[p.name]; ok {
						// Its headers came before it did.
						delete(lp.ahead, p.name)
						if !p.ent.needStat && sameObject(p.ent, e) {
							e.idx = p.ent.idx
							n.dir().listing[p.name] = e
							continue
						}
					}
					lp.wantLocked(n, p.name) // its listing brings it
					continue
				}
				names, ents = append(names, p.name), append(ents, p.ent)
			}
		}
		if lp := n.dir().listPrefetch; lp != nil {
			lp.publishedLocked()
		}
		sem = n.dir().prefetchSem
		if done {
			n.dir().listingDone = true
			n.dir().listingUntil = time.Now().Add(n.fsys.cfg.StatCacheTTL)
			n.dir().headersAhead = nil
		}
		victims = n.noteListingLocked()
	}
	n.mu.Unlock()
	dropListings(victims)
	if len(names) > 0 {
		// The caller stats the entries in order (notePrefetch): the
		// entries of this page are fetched ahead of it too.
		go n.prefetch(sem, names, ents)
	}
	for _, p := range batch {
		d.entries = append(d.entries, fuse.DirEntry{Name: p.name, Mode: n.listedMode(p.name, p.ent), Off: uint64(len(d.entries) + 1)})
		d.ents = append(d.ents, p.ent)
	}
}

// finish ends the listed part of the pass: the names that follow it are
// files with local data not yet in the bucket (or not yet in a listing,
// which is eventually consistent on some stores), whether or not the
// kernel still knows their nodes, and names made here since the listing
// passed them. d.mu held.
func (d *dirHandle) finish() {
	n := d.n
	d.ended = true
	from := d.from
	if d.st != nil {
		from = d.st.listing
	}
	registered := n.fsys.registeredChildren(n.currentKey())
	type extra struct {
		name string
		k    kind
	}
	var more []extra
	n.mu.Lock()
	for name, ent := range from {
		if ent.idx < 0 && !d.streamed(name) {
			more = append(more, extra{name, ent.kind})
		}
	}
	for _, name := range registered {
		if _, ok := from[name]; !ok && !d.streamed(name) {
			more = append(more, extra{name, kindFile})
		}
	}
	n.mu.Unlock()
	sort.Slice(more, func(i, j int) bool { return more[i].name < more[j].name })
	base := len(d.order) + len(d.entries)
	for i, e := range more {
		if i > 0 && e.name == more[i-1].name {
			continue
		}
		d.tail = append(d.tail, fuse.DirEntry{Name: e.name, Mode: e.k.typeBits(), Off: uint64(base + len(d.tail) + 1)})
	}
	if d.st != nil {
		d.st.cancel() // its goroutine has ended or is about to
	}
}

// streamed reports whether this pass's listing returned name. Its
// entries are in key order (a directory at "name/"). d.mu held.
func (d *dirHandle) streamed(name string) bool {
	key := func(de fuse.DirEntry) string {
		if de.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			return de.Name + "/"
		}
		return de.Name
	}
	for _, k := range []string{name, name + "/"} {
		i := sort.Search(len(d.entries), func(i int) bool { return key(d.entries[i]) >= k })
		if i < len(d.entries) && key(d.entries[i]) == k {
			return true
		}
	}
	return false
}

// Seekdir moves to an offset the kernel got from us (index+1), or to the
// start, where a rewinddir(3) gets a new listing.
func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	d.mu.Lock()
	defer d.mu.Unlock()
	// go-fuse drops the entry the previous reply had no room for: the
	// next request starts with whatever Readdirent returns.
	d.replying = false
	if off == 0 {
		d.stop()
		d.started, d.order, d.from, d.st = false, nil, nil, nil
		d.entries, d.ents, d.entsBase = nil, nil, 0
		d.tail, d.ended, d.err, d.pos, d.last = nil, false, 0, 0, lastEntry{}
		return 0
	}
	d.pos = int(off)
	return 0
}

// stop ends d's listing, if one is streaming. d.mu held.
func (d *dirHandle) stop() {
	if d.st != nil {
		d.st.cancel()
	}
}

// Lookup answers READDIRPLUS from what the listing said of the entry just
// returned, sending no request.
func (d *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	d.mu.Lock()
	last := d.last
	d.mu.Unlock()
	if last.ok && last.name == name {
		return d.n.lookupVia(ctx, name, out, last.ent, true, true, false)
	}
	// An entry returned again (after a seek or an interrupted read) is
	// known to the directory's listing; a name not in it is a file
	// created here and not yet uploaded: the node knows it.
	ent, found, fresh := d.n.cachedEntry(name)
	return d.n.lookupVia(ctx, name, out, ent, found, fresh && found, false)
}

// Releasedir ends the handle's listing and its hold on the directory's.
func (d *dirHandle) Releasedir(ctx context.Context, releaseFlags uint32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stop()
	if d.reading {
		d.reading = false
		d.n.mu.Lock()
		d.n.dir().dirReaders--
		d.n.mu.Unlock()
	}
}

// Fsyncdir: directory changes are made in the store as they happen.
func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno { return 0 }

// dirStream is one listing of a directory as it streams. A goroutine
// fetches the pages in order, each request under its own deadline, and
// hands each over when the reader wants it: the page after the one being
// read is the only one fetched ahead.
type dirStream struct {
	prefix string
	// gen is the directory's listGen when the stream began: it fills
	// listing, the directory's cached listing, while that is current.
	gen     uint64
	listing map[string]listEntry
	// previous is the listing this one replaces, read-only: the
	// metadata of objects unchanged since is kept.
	previous map[string]listEntry
	pages    chan pageResult // closed after the last page or a failure
	cancel   context.CancelFunc
	merge    merger // the reader's (under dirHandle.mu)
}

type pageResult struct {
	page s3backend.ListResult
	err  error
}

// startStream starts fetching the listing of prefix.
func (n *Node) startStream(prefix string, gen uint64, listing, previous map[string]listEntry) *dirStream {
	ctx, cancel := context.WithCancel(n.fsys.ctx)
	st := &dirStream{prefix: prefix, gen: gen, listing: listing, previous: previous,
		pages: make(chan pageResult), cancel: cancel}
	lctx := ctx
	if n.fsys.listsHeaders(strings.TrimSuffix(prefix, "/")) {
		// Something is stat-ing what it lists (du, ls -lR, rsync): this
		// listing brings the headers its stats will want.
		lctx = s3backend.WithListHeaders(ctx)
	}
	go func() {
		defer close(st.pages)
		token := ""
		for {
			page, err := n.listPage(lctx, prefix, token)
			select {
			case st.pages <- pageResult{page, err}:
			case <-ctx.Done():
				return // the handle was released or rewound
			}
			if err != nil || page.NextToken == "" {
				return
			}
			token = page.NextToken
		}
	}()
	return st
}

// listPage requests one page of the listing of prefix, under its own
// deadline.
func (n *Node) listPage(ctx context.Context, prefix, token string) (s3backend.ListResult, error) {
	mctx, cancel := context.WithTimeout(ctx, metaTimeout)
	defer cancel()
	return n.fsys.store.List(mctx, prefix, "/", token, n.fsys.listPageKeys)
}

// merger turns a directory's listing pages into its entries, in key order
// (a directory at "name/"), with the rules readdir keeps: names no kernel
// can show are skipped, and a directory wins over an object of the same
// name (S3 allows both "a" and "a/b"; MinIO does not). The directory comes
// later in key order than its object ("a" < "a-x" < "a.y" < "a/"), maybe
// pages later: an object waits, with every entry after it, until the
// listing has passed "name/" or ended.
type merger struct {
	pend []pendEntry
	// shadowed holds the objects in pend by name: true once a directory
	// of the same name was listed.
	shadowed map[string]bool
	last     string // the greatest key (relative to the directory) taken
}

type pendEntry struct {
	name string
	ent  listEntry
}

// add takes one page of the listing of prefix; with headers, objects whose
// listing carried their headers need no HEAD.
func (m *merger) add(prefix string, page s3backend.ListResult, headers bool) {
	objs, dirs := page.Objects, page.CommonPrefixes
	for len(objs) > 0 || len(dirs) > 0 {
		if len(dirs) == 0 || (len(objs) > 0 && objs[0].Key < dirs[0]) {
			m.take(prefix, objs[0].Key, objs[0], headers)
			objs = objs[1:]
		} else {
			m.take(prefix, dirs[0], s3backend.ObjectInfo{}, false)
			dirs = dirs[1:]
		}
	}
}

// take adds the object or common prefix ("name/") at key.
func (m *merger) take(prefix, key string, obj s3backend.ObjectInfo, headers bool) {
	rel, ok := strings.CutPrefix(key, prefix)
	if !ok || (m.last != "" && rel <= m.last) {
		return // not ours, or a repeat: each key is taken once
	}
	m.last = rel
	if dir, isDir := strings.CutSuffix(rel, "/"); isDir {
		if !validName(dir) {
			return
		}
		if _, ok := m.shadowed[dir]; ok {
			m.shadowed[dir] = true
		}
		m.pend = append(m.pend, pendEntry{name: dir, ent: listEntry{kind: kindDir}})
		return
	}
	if !validName(rel) {
		return // the directory's own marker, or a key no kernel can name
	}
	if m.shadowed == nil {
		m.shadowed = make(map[string]bool)
	}
	m.shadowed[rel] = false
	ent := objEntry(kindFile, obj, false, false)
	if headers && obj.HeadersListed {
		// The listing carried what a HEAD would tell (a MinIO store,
		// s3backend/listmeta.go): the entry needs no HEAD. An object
		// that is an old-style directory stays for the lookup to sort
		// out, as without headers.
		if k := kindOf(obj); k != kindDir {
			ent = objEntry(k, obj, true, false)
		}
	}
	m.pend = append(m.pend, pendEntry{name: rel, ent: ent})
}

// release passes to emit, in order, the entries that can no longer be
// shadowed by a directory (all of them when the listing is done).
func (m *merger) release(done bool, emit func(pendEntry)) {
	i := 0
	for ; i < len(m.pend); i++ {
		p := m.pend[i]
		if p.ent.kind != kindDir {
			shadowed := m.shadowed[p.name]
			if !shadowed && !done && !passed(m.last, p.name) {
				break
			}
			delete(m.shadowed, p.name)
			if shadowed {
				continue // "name/" was listed: the directory wins
			}
		}
		emit(p)
	}
	rest := copy(m.pend, m.pend[i:])
	clear(m.pend[rest:])
	m.pend = m.pend[:rest]
}

// passed reports whether last >= name+"/" in byte order.
func passed(last, name string) bool {
	if len(last) > len(name) && last[:len(name)] == name {
		return last[len(name)] >= '/'
	}
	return last > name
}

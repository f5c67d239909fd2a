package fs

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/novitalabs/bucketfs/s3backend"
)

// Recursive walks. find, du, ls -R, grep -r and rsync read a tree one
// directory after another, and a delimited listing per directory costs a
// round trip each, where one listing without a delimiter brings every key
// below a directory in key order, a page at a time. So when a program
// reads a directory whose parent's fresh listing holds more than one
// directory (it is going down a tree), the parent's subtree is listed
// without a delimiter in the background: a walk. The listing of each
// directory the walk completes is kept (FS.trees) for that directory's
// next read, which waits for the walk if it has not got there yet.
//
// A walk lists at most walkMaxKeys keys; directories it has not completed
// by then are listed as usual. Its listing of a directory is used once,
// within the stat cache TTL of the page that began the directory, and only
// if nothing in the mount's namespace changed since the walk began
// (treeGen, bumped by every create, removal and rename, and by an upload
// that makes a new name): a walk never shows an entry older than what this
// mount did. A walk also knows which directories have a marker object
// (the key "name/" comes first in its range), so looking up a directory
// it listed needs no HEAD when there is none, or when the listing carried
// the marker's headers.

const (
	// walkMaxKeys bounds the keys one walk lists (and so the entries it
	// holds): a walk begun by a program that reads two directories of a
	// huge tree costs a bounded listing.
	walkMaxKeys = 20000
	// maxWalks bounds the walks in flight.
	maxWalks = 2
	// walkWaitPages: a read waits for that many of a walk's pages.
	walkWaitPages = 2
	// walkAhead: a walk asks for its next page once fewer of the
	// directories it listed are unread.
	walkAhead = 16
	// walkRelistPages: a walk whose first pages came without headers
	// lists at most that many again with them once a program stats files.
	walkRelistPages = 3
)

// treeWalks is the filesystem's state of walks.
type treeWalks struct {
	// mu guards every field: a leaf, which may be taken holding a
	// Node.mu.
	mu    sync.Mutex
	gen   uint64                  // namespace changes seen (see above)
	walks map[string]*treeWalk    // by root key, in flight or ended within the TTL
	trees map[string]*treeListing // by directory key, waiting for its read
}

// treeWalk is one listing without a delimiter of the subtree of root.
type treeWalk struct {
	root   string // directory key; "" for the mount's root
	prefix string // root + "/", or "" for the mount's root
	gen    uint64 // treeWalks.gen when it began
	// node is the root's directory and first the directory whose read
	// began the walk (listed on its own): the walk tells their listings
	// which of their directories have markers.
	node, first *Node
	// Guarded by treeWalks.mu:
	reached  string        // greatest key listed so far
	ended    bool          // no more pages will come
	endedAt  time.Time     // when it ended
	progress chan struct{} // closed (and replaced) after each page
	unread   int           // its listings kept and not read yet
	// plainFirst: its pages so far (at most walkRelistPages) came
	// without headers and nothing has asked for them yet; a program that
	// starts to stat files below the root wakes it (nudgeWalks) to list
	// those pages again with them.
	plainFirst bool
	// demand wakes the walk when a read waits for it (never blocks).
	demand chan struct{}
}

// treeListing is a walk's listing of one directory.
type treeListing struct {
	walk     *treeWalk
	entries  []pendEntry
	dirs     int       // entries that are directories
	listedAt time.Time // when the page that began the directory was asked for
	gen      uint64    // the walk's treeWalks.gen
}

// dropTreeLocked removes the kept listing of key, if any, from its walk's
// unread ones. treeWalks.mu held.
func (t *treeWalks) dropTreeLocked(key string) {
	if tl, ok := t.trees[key]; ok {
		delete(t.trees, key)
		tl.walk.unread--
	}
}

// noteNamespaceChange records a create, removal or rename anywhere in the
// mount: walks begun before it are not used.
func (f *FS) noteNamespaceChange() {
	t := &f.treeWalks
	t.mu.Lock()
	t.gen++
	for k := range t.trees {
		t.dropTreeLocked(k)
	}
	t.mu.Unlock()
}

// covers reports whether w may still bring the listing of directory key.
// treeWalks.mu held.
func (w *treeWalk) coversLocked(key string) bool {
	if w.ended || key == w.root || !strings.HasPrefix(key+"/", w.prefix) {
		return false
	}
	// Keys come in order: once the walk has listed a key past key's range
	// ("key/" and what follows it), key is complete or was never there.
	dirPrefix := key + "/"
	return w.reached <= dirPrefix || strings.HasPrefix(w.reached, dirPrefix)
}

// treeListingFor returns a walk's listing of directory key if one is kept
// or coming soon, nil otherwise. It waits for at most walkWaitPages pages
// of a walk that may bring it: a program going down a tree reads its
// directories in the walk's order, so the walk is at most a page or two
// behind it, and a directory far ahead is better listed at once. The
// listing is removed: it is used once. No lock held but dirHandle.mu.
func (f *FS) treeListingFor(key string) *treeListing {
	t := &f.treeWalks
	for waited := 0; ; waited++ {
		t.mu.Lock()
		if tl, ok := t.trees[key]; ok {
			t.dropTreeLocked(key)
			usable := tl.gen == t.gen && time.Now().Before(tl.listedAt.Add(f.cfg.StatCacheTTL))
			t.mu.Unlock()
			if !usable {
				return nil
			}
			return tl
		}
		var wait chan struct{}
		for _, w := range t.walks {
			if w.gen == t.gen && w.coversLocked(key) {
				wait = w.progress
				select {
				case w.demand <- struct{}{}:
				default:
				}
				break
			}
		}
		t.mu.Unlock()
		if wait == nil || waited >= walkWaitPages {
			return nil
		}
		select {
		case <-wait:
		case <-f.ctx.Done():
			return nil
		}
	}
}

// maybeWalk begins a walk of n's parent's subtree if n, a directory about
// to be listed, looks like a step down a tree: its parent's fresh listing
// holds more than one directory. No lock held but dirHandle.mu.
func (n *Node) maybeWalk() {
	f := n.fsys
	if f.cfg.StatCacheTTL <= 0 || n.kind != kindDir {
		return
	}
	_, p := n.parentDir()
	if p == nil {
		return
	}
	p.mu.Lock()
	tree := p.dir().listing != nil && p.dir().listingDone && time.Now().Before(p.dir().listingUntil) && p.dir().listingDirs > 1
	root := p.key
	p.mu.Unlock()
	if !tree {
		return
	}
	t := &f.treeWalks
	t.mu.Lock()
	now := time.Now()
	inFlight := 0
	for k, w := range t.walks {
		switch {
		case w.ended && now.After(w.endedAt.Add(f.cfg.StatCacheTTL)):
			delete(t.walks, k)
		case !w.ended && w.gen == t.gen:
			inFlight++
			if w.root == root || strings.HasPrefix(root+"/", w.prefix) {
				t.mu.Unlock()
				return // a walk in flight covers this tree already
			}
		case w.ended && w.root == root && w.gen == t.gen:
			t.mu.Unlock()
			return // walked within the TTL: what it left out is too big
		}
	}
	if inFlight >= maxWalks {
		t.mu.Unlock()
		return
	}
	prefix := root
	if prefix != "" {
		prefix += "/"
	}
	w := &treeWalk{root: root, prefix: prefix, gen: t.gen, node: p, first: n, progress: make(chan struct{}), demand: make(chan struct{}, 1)}
	if t.walks == nil {
		t.walks = make(map[string]*treeWalk)
		t.trees = make(map[string]*treeListing)
	}
	t.walks[root] = w
	t.mu.Unlock()
	f.log.Debug("walk: listing a tree", "root", root, "after", n.key)
	go f.runWalk(w)
}

// runWalk lists w's subtree page by page, keeping each directory's listing
// as it completes.
func (f *FS) runWalk(w *treeWalk) {
	b := newTreeBuilder(w, !f.cfg.ListingMetadata)
	token, keys := "", 0
	// plainPages: pages listed so far, all without headers. again: pages
	// still to list a second time, with headers, whose listings replace
	// the plain ones not read yet, nothing more.
	plainPages, again := 0, 0
	for {
		// Pages listed again follow one another: their directories
		// are already being read.
		if token != "" && again == 0 && !f.walkWanted(w) {
			f.publishTrees(w, nil, nil, "", true, false)
			time.AfterFunc(f.cfg.StatCacheTTL+time.Second, f.sweepTrees)
			return
		}
		// Decided per page: once the program stats the files of the
		// directories it reads (du, ls -lR), the pages bring their
		// headers, which a plain walk (find) does without.
		ctx := f.ctx
		headers := f.statWalkBelow(w.root)
		if headers {
			ctx = s3backend.WithListHeaders(ctx)
		}
		f.treeWalks.mu.Lock()
		if headers && w.plainFirst {
			// The first pages came before the program showed it stats
			// files (du stats those of the first directory it reads):
			// their directories would each be listed again for their
			// headers. List those pages again instead.
			b = newTreeBuilder(w, !f.cfg.ListingMetadata)
			token, keys, again = "", 0, plainPages
			w.plainFirst = false
		}
		f.treeWalks.mu.Unlock()
		at := time.Now()
		mctx, cancel := context.WithTimeout(ctx, metaTimeout)
		page, err := f.store.List(mctx, w.prefix, "", token, f.listPageKeys)
		cancel()
		if err != nil {
			// Not an error anyone sees: each directory is listed as
			// usual instead.
			f.log.Debug("walk: listing failed; directories are listed one by one", "prefix", w.prefix, "err", err)
			f.publishTrees(w, nil, nil, "", true, false)
			time.AfterFunc(f.cfg.StatCacheTTL+time.Second, f.sweepTrees)
			return
		}
		keys += len(page.Objects)
		last := ""
		if n := len(page.Objects); n > 0 {
			last = page.Objects[n-1].Key
		}
		done := page.NextToken == ""
		got, facts := b.add(page.Objects, at)
		if done {
			got = append(got, b.closeAll()...)
		}
		ended := done || keys >= walkMaxKeys
		f.treeWalks.mu.Lock()
		switch {
		case headers:
			w.plainFirst = false
		case plainPages < walkRelistPages && (plainPages > 0 || token == ""):
			plainPages++
			w.plainFirst = !ended
		default:
			w.plainFirst = false
		}
		f.treeWalks.mu.Unlock()
		current := f.publishTrees(w, got, facts, last, ended, again > 0)
		if again > 0 {
			again--
		}
		f.log.Debug("walk: page", "root", w.root, "keys", len(page.Objects), "dirs_completed", len(got), "current", current, "ended", ended)
		if !current || ended {
			// What nobody reads goes with its TTL.
			time.AfterFunc(f.cfg.StatCacheTTL+time.Second, f.sweepTrees)
			return
		}
		token = page.NextToken
	}
}

// walkWanted waits, before w's next page, until the program walking the
// tree has read all but walkAhead of the directories w has listed, or
// waits for one: a walk keeps a little ahead of its reader, never far (a
// program that stops early costs little), and decides each page's
// headers late. It returns false if the reader went away (nothing read
// for a stat cache TTL) or the namespace changed.
func (f *FS) walkWanted(w *treeWalk) bool {
	t := &f.treeWalks
	idle := time.NewTimer(f.cfg.StatCacheTTL)
	defer idle.Stop()
	for {
		t.mu.Lock()
		unread, current := w.unread, w.gen == t.gen
		t.mu.Unlock()
		if !current {
			return false
		}
		if unread < walkAhead {
			return true
		}
		select {
		case <-w.demand:
			return true
		case <-idle.C:
			return false
		case <-f.ctx.Done():
			return false
		}
	}
}

// nudgeWalks wakes the walks whose first page came without headers: a
// program has started to stat files, and they list that page again with
// them (runWalk). treeWalks.mu is a leaf: callers may hold a Node.mu.
func (f *FS) nudgeWalks() {
	t := &f.treeWalks
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, w := range t.walks {
		if w.plainFirst && !w.ended {
			select {
			case w.demand <- struct{}{}:
			default:
			}
		}
	}
}

// statWalkBelow reports whether a program is stat-ing the files of a
// directory at or below key (FS.walked): a walk of key then lists headers.
func (f *FS) statWalkBelow(key string) bool {
	if !f.tracksWalks() {
		return false
	}
	if f.listsHeaders(key) {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	for k, until := range f.walked {
		if now.Before(until) && (key == "" || strings.HasPrefix(k, key+"/")) {
			return true
		}
	}
	return false
}

// sweepTrees drops the kept listings that are too old to be used.
func (f *FS) sweepTrees() {
	t := &f.treeWalks
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	for k, tl := range t.trees {
		if !now.Before(tl.listedAt.Add(f.cfg.StatCacheTTL)) {
			t.dropTreeLocked(k)
		}
	}
}

// publishTrees keeps the listings a walk completed and tells its root's
// listing which directories have markers. It returns false if the walk
// is no longer of use (the namespace changed): it ends. With again, got
// lists directories a page listed before: each replaces its kept listing
// if that is still unread, and is dropped otherwise.
func (f *FS) publishTrees(w *treeWalk, got []keyedListing, facts []markerFact, reached string, ended, again bool) bool {
	t := &f.treeWalks
	t.mu.Lock()
	current := w.gen == t.gen
	if current {
		for _, kl := range got {
			if again {
				if cur, ok := t.trees[kl.key]; ok && cur.walk == w && kl.key != w.root {
					kl.tl.walk = w
					t.trees[kl.key] = kl.tl // still counted unread
				}
				continue
			}
			if kl.key != w.root {
				t.dropTreeLocked(kl.key)
				kl.tl.walk = w
				t.trees[kl.key] = kl.tl
				w.unread++
			}
		}
		if reached > w.reached {
			w.reached = reached
		}
	}
	if ended || !current {
		w.ended, w.endedAt = true, time.Now()
	}
	// Reads waiting now look again once woken, and ask again if this page
	// did not bring what they wait for: an older demand is answered.
	select {
	case <-w.demand:
	default:
	}
	close(w.progress)
	w.progress = make(chan struct{})
	t.mu.Unlock()
	if current {
		var ofRoot, ofFirst []markerFact
		for _, fact := range facts {
			if fact.dir == w.root {
				ofRoot = append(ofRoot, fact)
			} else {
				ofFirst = append(ofFirst, fact)
			}
		}
		w.node.applyMarkerFacts(ofRoot, w.gen)
		if w.first != nil {
			w.first.applyMarkerFacts(ofFirst, w.gen)
		}
	}
	return current
}

// applyMarkerFacts marks the directories of n's listing that a walk found
// with or without a marker, so that looking them up needs no HEAD.
func (n *Node) applyMarkerFacts(facts []markerFact, gen uint64) {
	if len(facts) == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	t := &n.fsys.treeWalks
	t.mu.Lock()
	current := t.gen == gen
	t.mu.Unlock()
	if !current || n.dir().listing == nil {
		return
	}
	for _, fact := range facts {
		ent, ok := n.dir().listing[fact.name]
		if !ok || ent.kind != kindDir || ent.hasMeta || ent.needStat {
			continue
		}
		if upd, known := fact.entry(); known {
			upd.idx = ent.idx
			n.dir().listing[fact.name] = upd
		}
	}
}

// markerFact is what a walk found of the marker of the directory name in
// dir (the walk's root or first directory): present (with info) or absent.
type markerFact struct {
	dir     string // the key of the directory holding it
	name    string
	present bool
	info    s3backend.ObjectInfo
	headers bool // entries may take their metadata from the listing
}

// entry is the listing entry the fact makes of the directory: known is
// false for a marker whose headers the listing lacked (a lookup HEADs it).
func (m markerFact) entry() (listEntry, bool) {
	switch {
	case !m.present:
		return listEntry{kind: kindDir, hasMeta: true, marker: false}, true
	case m.headers && m.info.HeadersListed:
		return objEntry(kindDir, m.info, true, true), true
	}
	return listEntry{}, false
}

type keyedListing struct {
	key string
	tl  *treeListing
}

// treeBuilder turns a walk's keys, in order, into the delimited listings
// of the directories below its root. The directories on the path of the
// current key are open; a key outside a directory's range completes it.
type treeBuilder struct {
	headers bool
	gen     uint64
	root    string
	first   string     // the key of treeWalk.first
	open    []*openDir // outermost (the root) first
}

type openDir struct {
	key, prefix string
	page        s3backend.ListResult // what a delimited listing would return
	markers     map[string]markerFact
	at          time.Time // when the page that began it was asked for
}

func newTreeBuilder(w *treeWalk, headers bool) *treeBuilder {
	first := ""
	if w.first != nil {
		first = w.first.currentKey()
	}
	return &treeBuilder{headers: headers, gen: w.gen, root: w.root, first: first,
		open: []*openDir{{key: w.root, prefix: w.prefix, at: time.Now()}}}
}

// add takes the next keys of the walk, listed by a page asked for at at.
// It returns the directories they completed, and the marker facts of the
// root's directories.
func (b *treeBuilder) add(objs []s3backend.ObjectInfo, at time.Time) ([]keyedListing, []markerFact) {
	var done []keyedListing
	var facts []markerFact
	for _, obj := range objs {
		k := obj.Key
		for len(b.open) > 1 && !strings.HasPrefix(k, b.open[len(b.open)-1].prefix) {
			done = append(done, b.closeTop())
		}
		top := b.open[len(b.open)-1]
		if !strings.HasPrefix(k, top.prefix) {
			continue // not below the root: a store's mistake
		}
		rel := k[len(top.prefix):]
		for {
			i := strings.IndexByte(rel, '/')
			if i < 0 {
				break
			}
			name := rel[:i]
			child := top.prefix + name + "/"
			if n := len(top.page.CommonPrefixes); n == 0 || top.page.CommonPrefixes[n-1] != child {
				top.page.CommonPrefixes = append(top.page.CommonPrefixes, child)
			}
			// A marker is the first key of its directory's range: the
			// directory has one exactly when this key is it.
			fact := markerFact{dir: top.key, name: name, present: k == child, info: obj, headers: b.headers}
			if top.markers == nil {
				top.markers = make(map[string]markerFact)
			}
			top.markers[name] = fact
			if top.key == b.root || top.key == b.first {
				facts = append(facts, fact)
			}
			next := &openDir{key: top.prefix + name, prefix: child, at: at}
			b.open = append(b.open, next)
			top = next
			rel = rel[i+1:]
		}
		if rel != "" {
			top.page.Objects = append(top.page.Objects, obj)
		}
	}
	return done, facts
}

// closeAll completes every open directory (the walk listed everything).
func (b *treeBuilder) closeAll() []keyedListing {
	var done []keyedListing
	for len(b.open) > 0 {
		done = append(done, b.closeTop())
	}
	return done
}

// closeTop completes the innermost open directory: its entries by the
// rules of a delimited listing (merger), its directories marked with what
// the walk found of their markers.
func (b *treeBuilder) closeTop() keyedListing {
	d := b.open[len(b.open)-1]
	b.open = b.open[:len(b.open)-1]
	var m merger
	m.add(d.prefix, d.page, b.headers)
	tl := &treeListing{listedAt: d.at, gen: b.gen}
	m.release(true, func(p pendEntry) {
		if p.ent.kind == kindDir {
			tl.dirs++
			if fact, ok := d.markers[p.name]; ok {
				if e, known := fact.entry(); known {
					p.ent = e
				}
			}
		}
		tl.entries = append(tl.entries, p)
	})
	return keyedListing{key: d.key, tl: tl}
}

package fs

import (
	"fmt"
	"strings"
)

// The registry: every file that has local data (a staging file), keyed by
// object key, owned by the filesystem rather than by go-fuse's inode tree.
// The kernel may FORGET a node at any time (drop_caches, memory pressure);
// go-fuse then drops it from its tree, but the registry keeps it, so that
// the next lookup of the name finds the same data (adopt), a create or
// unlink of the name retires it, a directory rename moves it, and shutdown
// uploads it. A stale copy can therefore never upload over newer data or
// bring back a removed file.
//
// Invariants (checkInvariants):
//   - a registered node is a file, not unlinked, not recovered, has a
//     staging file, and is registered under its current key;
//   - every linked file with pending data is registered.
//
// f.files is guarded by FS.mu (a leaf: taken after Node.mu, never held
// across I/O or go-fuse calls).

// register records n under its current key. n.mu must NOT be held.
func (f *FS) register(n *Node) {
	key := n.currentKey()
	f.mu.Lock()
	defer f.mu.Unlock()
	if old, ok := f.files[key]; ok && old != n {
		// Two nodes for one name: the older one lost its name (a create
		// or rename over it that did not retire it). Keep the newest.
		f.log.Warn("registry: replacing another node with local data for the same key", "key", key)
	}
	f.files[key] = n
}

// unregister forgets n, if it is what key maps to.
func (f *FS) unregister(n *Node, key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.files[key] == n {
		delete(f.files, key)
	}
}

// registered returns the node with local data for key, or nil.
func (f *FS) registered(key string) *Node {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.files[key]
}

// rekeyRegistered moves n from oldKey to newKey in the registry, if it is
// registered there (it may have dropped its staging file meanwhile).
func (f *FS) rekeyRegistered(n *Node, oldKey, newKey string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.files[oldKey] != n {
		return
	}
	delete(f.files, oldKey)
	f.files[newKey] = n
}

// registeredUnder returns the registered nodes whose keys lie below the
// directory dirKey ("" for the root), with their keys.
func (f *FS) registeredUnder(dirKey string) map[string]*Node {
	prefix := ""
	if dirKey != "" {
		prefix = dirKey + "/"
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]*Node)
	for k, n := range f.files {
		if strings.HasPrefix(k, prefix) {
			out[k] = n
		}
	}
	return out
}

// registeredChildren returns the names of the registered files directly in
// the directory dirKey.
func (f *FS) registeredChildren(dirKey string) []string {
	prefix := ""
	if dirKey != "" {
		prefix = dirKey + "/"
	}
	var names []string
	for k := range f.registeredUnder(dirKey) {
		if name := k[len(prefix):]; !strings.Contains(name, "/") {
			names = append(names, name)
		}
	}
	return names
}

// allRegistered returns every registered node.
func (f *FS) allRegistered() []*Node {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*Node, 0, len(f.files))
	for _, n := range f.files {
		out = append(out, n)
	}
	return out
}

// adopt moves the local state of old, a registered node the kernel no
// longer knows (forgotten, or recovered from a previous daemon's staging
// directory), into a new node that go-fuse can attach, and retires old so
// that nothing it still has running acts on the data. The new node keeps
// old's inode number. It returns nil if old was retired or unlinked
// meanwhile.
func (f *FS) adopt(old *Node) *Node {
	// uploadMu first: an upload or retry of old in flight finishes and
	// records its outcome before the state moves.
	old.uploadMu.Lock()
	defer old.uploadMu.Unlock()
	old.dataMu.Lock()
	defer old.dataMu.Unlock()
	old.spillLocked() // a forgotten node has no writer: never in memory, to be safe
	old.mu.Lock()
	defer old.mu.Unlock()
	if old.unlinked || old.retired || old.staging == nil {
		return nil
	}
	n := &Node{
		fsys:       f,
		kind:       old.kind,
		key:        old.key,
		attrs:      old.attrs,
		size:       old.size,
		etag:       old.etag,
		foreign:    old.foreign,
		validUntil: old.validUntil,
		staging:    old.staging,
		stage:      old.stage,
		charged:    old.charged,
		editBase:   old.editBase,
		stream:     old.stream,
		punched:    old.punched,
		resume:     old.resume,
		seqOnly:    old.seqOnly,
		metaSet:    old.metaSet,
		dirty:      old.dirty,
		gen:        old.gen,
		up:         old.up,
		openedETag: old.openedETag,
	}
	f.inos.takeOver(old, n)
	if n.up.state == stateUploading {
		// Cannot be: uploads hold uploadMu. Be safe: retry it.
		n.up.state = stateDirty
	}
	old.retired = true
	old.charged = 0 // moved to n
	old.stream = nil
	old.staging = nil
	old.up.state = stateClean
	f.mu.Lock()
	if f.files[n.key] == old {
		f.files[n.key] = n
	}
	f.mu.Unlock()
	return n
}

// checkInvariants verifies the registry and the state machine (tests).
func (f *FS) checkInvariants() []string {
	var bad []string
	f.mu.Lock()
	files := make(map[string]*Node, len(f.files))
	for k, n := range f.files {
		files[k] = n
	}
	f.mu.Unlock()
	for k, n := range files {
		n.mu.Lock()
		// Still registered? A node leaves the registry under its own
		// mu (dropStagingIfIdle, markUnlinked), so one that left since
		// the snapshot above is no longer bound by these rules: judging
		// it by the snapshot reported a RELEASE the kernel sent after
		// close, racing with the check, as a broken invariant.
		f.mu.Lock()
		current := f.files[k] == n
		f.mu.Unlock()
		switch {
		case !current:
		case n.kind != kindFile:
			bad = append(bad, k+": registered node is not a file")
		case n.key != k:
			bad = append(bad, k+": registered under another key than its own ("+n.key+")")
		case n.unlinked || n.retired:
			bad = append(bad, k+": registered node is unlinked or retired")
		case n.staging == nil:
			bad = append(bad, k+": registered node has no staging file")
		case n.up.state == stateRecovered:
			bad = append(bad, k+": registered node is recovered")
		case n.unflushed < 0 || n.unflushed > n.openCount:
			bad = append(bad, fmt.Sprintf("%s: %d handles written since their flush, %d open", k, n.unflushed, n.openCount))
		}
		n.mu.Unlock()
	}
	return bad
}

// checkQuiescentInvariants adds what holds once no handle is open: every
// staged byte is charged to a file that still has local data.
func (f *FS) checkQuiescentInvariants() []string {
	bad := f.checkInvariants()
	var charged int64
	for _, n := range f.allRegistered() {
		n.mu.Lock()
		charged += n.charged
		n.mu.Unlock()
	}
	if staged := f.staged.Load(); staged != charged {
		bad = append(bad, fmt.Sprintf("staging accounting: %d bytes staged, %d charged to registered files", staged, charged))
	}
	return bad
}

package fs

import (
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// The cached listings of all directories together hold at most
// Config.MaxStatEntries entries (--max-stat-entries): past it, the
// listings of the directories used least recently are dropped whole (the
// next readdir lists again, and lookups in them ask the store). A
// directory that alone holds more entries than the bound keeps no cached
// listing: its readers still get every entry (each open handle streams
// its own pass), but its lookups are not answered from a listing.
//
// The other metadata the daemon holds lives on the nodes the kernel
// references, which the kernel bounds (and forgets under memory pressure,
// OnForget).

// listBound is the mount-wide account of cached listing entries.
type listBound struct {
	max int // 0: no bound

	// mu guards lru and total. It is taken while holding a Node.mu (every
	// count is reported under the directory's own mu, so the account
	// follows its listing exactly) and no lock is taken while holding it.
	mu    sync.Mutex
	lru   *simplelru.LRU[*Node, int] // directory → entries of its cached listing
	total int
}

func newListBound(max int) *listBound {
	// The LRU orders the directories; the bound is on the entries they
	// hold, enforced by hand below, so its own size limit is never the
	// one reached (a directory holds at least one entry to be counted).
	size := max
	if size <= 0 {
		size = 1 << 30
	}
	l, _ := simplelru.NewLRU[*Node, int](size+1, nil)
	return &listBound{max: max, lru: l}
}

// setLocked records that dir's cached listing holds entries entries (0:
// none) and marks dir the most recently used. It returns the directories
// whose listings must go to stay within the bound, dir itself last if it
// alone is over it; the caller drops them (dropListing) once it has
// released dir.mu. dir.mu held.
func (b *listBound) setLocked(dir *Node, entries int) []*Node {
	if b.max <= 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if old, ok := b.lru.Peek(dir); ok {
		b.total -= old
	}
	if entries <= 0 {
		b.lru.Remove(dir)
		return nil
	}
	b.lru.Add(dir, entries)
	b.total += entries
	var victims []*Node
	for b.total > b.max {
		victim, count, ok := b.lru.GetOldest()
		if !ok {
			break
		}
		if victim == dir {
			// Just added, so the newest: the oldest only when it is
			// alone, and over the bound alone. Drop it too.
			victims = append(victims, dir)
			break
		}
		b.lru.Remove(victim)
		b.total -= count
		victims = append(victims, victim)
	}
	return victims
}

// touchLocked marks dir's listing used. dir.mu held.
func (b *listBound) touchLocked(dir *Node) {
	if b.max <= 0 {
		return
	}
	b.mu.Lock()
	b.lru.Get(dir)
	b.mu.Unlock()
}

// entries reports the entries counted (tests).
func (b *listBound) entries() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.total
}

// noteListingLocked reports n's cached listing's size to the bound.
// n.mu held; the caller drops the returned victims after releasing it.
func (n *Node) noteListingLocked() []*Node {
	return n.fsys.listBound.setLocked(n, len(n.dir().listing))
}

// dropListings drops the cached listings of the directories the bound
// chose. No Node.mu held.
func dropListings(victims []*Node) {
	for _, v := range victims {
		v.dropListing()
	}
}

// dropListing forgets n's cached listing to make room: as invalidation
// does, and its order too, so that the memory goes.
func (n *Node) dropListing() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.dir().listing, n.dir().listingOrder, n.dir().listingDone = nil, nil, false
	n.dir().listGen++ // a listing streaming stops filling it
	n.dir().headersAhead = nil
	n.fsys.listBound.setLocked(n, 0)
}

package fs

import (
	"slices"
	"testing"
)

// TestListBoundEvictsLeastRecentlyUsed: the bound drops whole listings,
// the least recently used first, never the one just reported unless it
// alone is over the bound, and forgets directories that report none.
func TestListBoundEvictsLeastRecentlyUsed(t *testing.T) {
	b := newListBound(100)
	a, c, d := &Node{}, &Node{}, &Node{}
	if v := b.setLocked(a, 40); v != nil {
		t.Fatalf("a: victims %v", v)
	}
	if v := b.setLocked(c, 40); v != nil {
		t.Fatalf("c: victims %v", v)
	}
	b.touchLocked(a) // c is now the oldest
	if v := b.setLocked(d, 40); !slices.Equal(v, []*Node{c}) {
		t.Fatalf("d: victims %v, want c only", v)
	}
	if got := b.entries(); got != 80 {
		t.Fatalf("entries %d, want 80", got)
	}
	// Growing past the bound drops the others first.
	if v := b.setLocked(d, 70); !slices.Equal(v, []*Node{a}) {
		t.Fatalf("d grown: victims %v, want a", v)
	}
	// Alone over the bound: the directory itself.
	if v := b.setLocked(d, 150); !slices.Equal(v, []*Node{d}) {
		t.Fatalf("d alone over: victims %v, want d", v)
	}
	b.setLocked(d, 0)
	if got := b.entries(); got != 0 {
		t.Fatalf("entries %d after every listing went, want 0", got)
	}
	// No bound: nothing is counted or dropped.
	u := newListBound(0)
	if v := u.setLocked(a, 1<<20); v != nil || u.entries() != 0 {
		t.Fatalf("unbounded: victims %v, entries %d", v, u.entries())
	}
}

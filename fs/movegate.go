package fs

import (
	"strings"
	"sync"
)

// moveGate keeps uploads, metadata rewrites and file renames away from
// the keys a directory rename is moving, without a mount-wide lock: a
// rename of a big tree copies for minutes, and closes, fsyncs and renames
// elsewhere in the mount must go on meanwhile.
//
// A directory rename marks its source and destination prefixes as moving
// (waiting first for any overlapping move to end), then waits for the
// work already running on keys under them; work on a key under a moving
// prefix waits until the move ends, then finds its node re-keyed and
// starts over on the new key. Work enters with all its keys at once, so
// that a move can never slip in between two of them.
type moveGate struct {
	mu     sync.Mutex // guards moving and active; held only inside these methods
	cond   sync.Cond  // on mu: broadcast when a move ends or work leaves
	moving []string   // prefixes ("a/b/") being moved
	active map[string]int
}

func newMoveGate() *moveGate {
	g := &moveGate{active: make(map[string]int)}
	g.cond.L = &g.mu
	return g
}

// enter waits until no move covers any of keys, then counts them as in
// use until leave.
func (g *moveGate) enter(keys ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.coveredLocked(keys) {
		g.cond.Wait()
	}
	for _, k := range keys {
		g.active[k]++
	}
}

// leave ends what enter began.
func (g *moveGate) leave(keys ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, k := range keys {
		if g.active[k]--; g.active[k] <= 0 {
			delete(g.active, k)
		}
	}
	g.cond.Broadcast()
}

// beginMove marks prefixes as moving once no other move overlaps them,
// and returns once no work is running on a key under them.
func (g *moveGate) beginMove(prefixes ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.overlapsLocked(prefixes) {
		g.cond.Wait()
	}
	g.moving = append(g.moving, prefixes...)
	for g.busyUnderLocked(prefixes) {
		g.cond.Wait()
	}
}

// endMove ends what beginMove began.
func (g *moveGate) endMove(prefixes ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range prefixes {
		for i, m := range g.moving {
			if m == p {
				g.moving = append(g.moving[:i], g.moving[i+1:]...)
				break
			}
		}
	}
	g.cond.Broadcast()
}

// enterMoves enters the gate with n's object key (a directory's marker,
// so that a move of the directory itself covers it), once no move is
// re-keying n; it returns the leave. uploadMu held.
func (n *Node) enterMoves() (leave func()) {
	for {
		key := n.gateKey()
		n.fsys.moves.enter(key)
		if n.gateKey() == key {
			return func() { n.fsys.moves.leave(key) }
		}
		n.fsys.moves.leave(key) // moved while we waited: the new key
	}
}

func (n *Node) gateKey() string {
	key := n.currentKey()
	if n.kind == kindDir {
		key += "/"
	}
	return key
}

func (g *moveGate) coveredLocked(keys []string) bool {
	for _, m := range g.moving {
		for _, k := range keys {
			if strings.HasPrefix(k, m) {
				return true
			}
		}
	}
	return false
}

func (g *moveGate) overlapsLocked(prefixes []string) bool {
	for _, m := range g.moving {
		for _, p := range prefixes {
			if strings.HasPrefix(m, p) || strings.HasPrefix(p, m) {
				return true
			}
		}
	}
	return false
}

func (g *moveGate) busyUnderLocked(prefixes []string) bool {
	for k := range g.active {
		for _, p := range prefixes {
			if strings.HasPrefix(k, p) {
				return true
			}
		}
	}
	return false
}

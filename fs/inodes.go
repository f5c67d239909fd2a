package fs

import (
	"hash/fnv"
	"sync"
)

// Inode numbers. A node's number comes from its object key (FNV-1a, top
// bit set), so a file keeps its st_ino when the kernel forgets its node
// and looks it up again (memory pressure, drop_caches) and across
// remounts: mv, cp and tar compare st_ino between lstat and fstat and skip
// a file whose number changed in between, and git's index records it.
//
// go-fuse keys its inodes by number, so two live nodes must never share
// one: a node renamed away keeps its number, and a new node at the old
// key, or the rare key whose hash a live node holds, gets a number from a
// counter below the hashed range instead. Numbers are released when
// go-fuse forgets the node (OnForget).
type inodeNumbers struct {
	mu   sync.Mutex       // guards live and next; a leaf
	live map[uint64]*Node // numbers held by nodes go-fuse knows or may attach
	next uint64           // the counter, from rootIno
}

const hashedInoBit = 1 << 63

func newInodeNumbers() *inodeNumbers {
	return &inodeNumbers{live: make(map[uint64]*Node), next: rootIno}
}

func keyIno(key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	return h.Sum64() | hashedInoBit
}

// assign gives n the number of its key, or a counter number if a live
// node holds that one.
func (in *inodeNumbers) assign(n *Node) {
	in.mu.Lock()
	defer in.mu.Unlock()
	ino := keyIno(n.key)
	if _, taken := in.live[ino]; taken {
		in.next++
		ino = in.next
	}
	n.ino = ino
	in.live[ino] = n
}

// takeOver gives n the number of old, whose state it adopts, unless a
// live node other than old holds it meanwhile.
func (in *inodeNumbers) takeOver(old, n *Node) {
	in.mu.Lock()
	defer in.mu.Unlock()
	ino := old.ino
	if holder, taken := in.live[ino]; taken && holder != old {
		in.next++
		ino = in.next
	}
	n.ino = ino
	in.live[ino] = n
}

// release frees n's number, if n still holds it.
func (in *inodeNumbers) release(n *Node) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.live[n.ino] == n {
		delete(in.live, n.ino)
	}
}

// OnForget: go-fuse dropped n; its number is free again.
func (n *Node) OnForget() {
	if n.ino != rootIno {
		n.fsys.inos.release(n)
	}
	if n.kind == kindDir {
		// Its listing is garbage now: it must not hold a place in the
		// bound (nor keep the node reachable from it).
		n.mu.Lock()
		n.fsys.listBound.setLocked(n, 0)
		n.mu.Unlock()
	}
}

package cache

import (
	"sync"
	"unsafe"
)

// Block buffers come from slabs of slabBytes advised as transparent huge
// pages (MADV_HUGEPAGE; the kernels we run on default to THP "madvise").
// A cold sequential read spends most of the daemon's CPU in the kernel
// copying through these buffers: the socket into them, and from them into
// the page cache when the FUSE reply is written, which first pins every
// 4 KiB page of the reply's iovec (get_user_pages, a page-table walk per
// page). With the buffers in 2 MiB pages the walk stops a level higher
// and every page of a reply shares one folio, so the pinning costs about
// half as much.
//
// Slabs are ordinary Go memory: a slab is freed by the garbage collector
// once none of its blocks is referenced. The cache recycles its buffers
// through its free list, so slabs are rarely given up. Huge pages need
// 2 MiB-aligned ranges, which Go does not promise: an 8 MiB slab holds at
// least three aligned 2 MiB pages, the rest stays in 4 KiB pages.
const (
	slabBytes = 8 << 20
	hugePage  = 2 << 20
)

// slabAlloc hands out block-sized buffers cut from slabs. Safe for
// concurrent use; its lock is a leaf.
type slabAlloc struct {
	mu   sync.Mutex
	rest []byte // what is left of the current slab
}

// slabbed reports whether the buffers of a cache of blocks of bs bytes
// and a budget of max bytes come from slabs: bs must cut a slab into at
// least two buffers with nothing left over, be big enough for huge pages
// to matter, and the budget must hold a few slabs (a small cache, as in
// tests, is not worth a slab beyond its budget).
func slabbed(bs, max int64) bool {
	return bs >= 256<<10 && bs <= slabBytes/2 && slabBytes%bs == 0 && max >= 4*slabBytes
}

// get returns a zeroed buffer of len and cap bs, which must divide
// slabBytes.
func (a *slabAlloc) get(bs int) []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.rest) < bs {
		s := make([]byte, slabBytes)
		adviseHuge(s)
		a.rest = s
	}
	b := a.rest[:bs:bs] // cap bs: an append can never reach the next buffer
	a.rest = a.rest[bs:]
	return b
}

// hugeRange returns the offsets [lo, hi) of the 2 MiB-aligned part of a
// slice starting at address p with n bytes (lo == hi when there is none).
func hugeRange(p uintptr, n int) (int, int) {
	lo := (p + hugePage - 1) &^ (hugePage - 1)
	hi := (p + uintptr(n)) &^ (hugePage - 1)
	if hi <= lo {
		return 0, 0
	}
	return int(lo - p), int(hi - p)
}

// adviseHuge asks for huge pages for the aligned part of s. Best effort.
func adviseHuge(s []byte) {
	if len(s) == 0 {
		return
	}
	lo, hi := hugeRange(uintptr(unsafe.Pointer(&s[0])), len(s))
	if hi > lo {
		madviseHuge(s[lo:hi])
	}
}

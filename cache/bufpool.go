package cache

import (
	"math/bits"
	"sync"
)

// bufPool recycles the small buffers that disk-tier range reads are read
// into, in power-of-two size classes from 4 KiB, so that a random reader
// served from disk makes no garbage per read. Safe for concurrent use.
type bufPool struct {
	classes [bufClasses]sync.Pool // of *[]byte with cap 4 KiB << class
}

const (
	bufMinShift = 12 // 4 KiB
	bufClasses  = 9  // up to 1 MiB; larger reads allocate
)

// class returns the size class for n bytes, or -1 for none.
func bufClass(n int) int {
	if n <= 1<<bufMinShift {
		return 0
	}
	c := bits.Len(uint(n-1)) - bufMinShift
	if c >= bufClasses {
		return -1
	}
	return c
}

// get returns a buffer of length n.
func (p *bufPool) get(n int) *[]byte {
	c := bufClass(n)
	if c < 0 {
		b := make([]byte, n)
		return &b
	}
	if v, ok := p.classes[c].Get().(*[]byte); ok {
		*v = (*v)[:n]
		return v
	}
	b := make([]byte, n, 1<<(bufMinShift+c))
	return &b
}

// put returns a buffer got from get.
func (p *bufPool) put(b *[]byte) {
	c := bufClass(cap(*b))
	if c < 0 || cap(*b) != 1<<(bufMinShift+c) {
		return
	}
	p.classes[c].Put(b)
}

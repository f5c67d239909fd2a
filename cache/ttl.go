package cache

import (
	"math"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Clock tells the time. Inject a fake one in tests.
type Clock interface{ Now() time.Time }

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// TTLCache maps keys to values that expire, with at most a fixed number of
// entries (the least recently used goes first). It suits metadata: stat
// results, listings, and negative entries (store a sentinel value, usually
// with a shorter TTL). Safe for concurrent use.
type TTLCache[K comparable, V any] struct {
	clock Clock

	mu  sync.Mutex // guards lru
	lru *simplelru.LRU[K, ttlEntry[V]]
}

type ttlEntry[V any] struct {
	val     V
	expires time.Time
}

// NewTTLCache returns a cache of at most maxEntries entries (<= 0:
// unbounded). A nil clock means SystemClock.
func NewTTLCache[K comparable, V any](maxEntries int, clock Clock) *TTLCache[K, V] {
	if maxEntries <= 0 {
		maxEntries = math.MaxInt
	}
	if clock == nil {
		clock = SystemClock{}
	}
	lru, _ := simplelru.NewLRU[K, ttlEntry[V]](maxEntries, nil) // errors only on size <= 0
	return &TTLCache[K, V]{clock: clock, lru: lru}
}

// Get returns the value of k if it has not expired. An expired entry is
// dropped.
func (c *TTLCache[K, V]) Get(k K) (V, bool) {
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.lru.Get(k)
	if !ok {
		var zero V
		return zero, false
	}
	if !now.Before(e.expires) {
		c.lru.Remove(k)
		var zero V
		return zero, false
	}
	return e.val, true
}

// Put stores v under k for ttl. A ttl <= 0 removes k instead: a value that
// is never valid must not replace one that is.
func (c *TTLCache[K, V]) Put(k K, v V, ttl time.Duration) {
	if ttl <= 0 {
		c.Remove(k)
		return
	}
	expires := c.clock.Now().Add(ttl)
	c.mu.Lock()
	c.lru.Add(k, ttlEntry[V]{val: v, expires: expires})
	c.mu.Unlock()
}

// Remove drops k.
func (c *TTLCache[K, V]) Remove(k K) {
	c.mu.Lock()
	c.lru.Remove(k)
	c.mu.Unlock()
}

// RemoveFunc drops every entry for which drop returns true (e.g. all the
// entries under a renamed directory) and returns how many it dropped.
// drop runs with the cache locked: it must not call the cache.
func (c *TTLCache[K, V]) RemoveFunc(drop func(K, V) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, k := range c.lru.Keys() {
		if e, ok := c.lru.Peek(k); ok && drop(k, e.val) {
			c.lru.Remove(k)
			n++
		}
	}
	return n
}

// Len returns the number of entries, expired ones included until they are
// looked up or pushed out.
func (c *TTLCache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// Purge drops every entry.
func (c *TTLCache[K, V]) Purge() {
	c.mu.Lock()
	c.lru.Purge()
	c.mu.Unlock()
}

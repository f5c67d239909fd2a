package cache

import (
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestTTLCacheExpiry(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1000, 0)}
	c := NewTTLCache[string, int](10, clk)
	c.Put("a", 1, 5*time.Second)
	c.Put("b", 2, time.Second)
	if v, ok := c.Get("a"); !ok || v != 1 {
		t.Fatalf("a = %v %v", v, ok)
	}
	clk.Advance(999 * time.Millisecond)
	if _, ok := c.Get("b"); !ok {
		t.Fatal("b expired early")
	}
	clk.Advance(time.Millisecond)
	if _, ok := c.Get("b"); ok {
		t.Fatal("b alive at its expiry")
	}
	if c.Len() != 1 {
		t.Fatalf("expired entry kept: len %d", c.Len())
	}
	clk.Advance(4 * time.Second)
	if _, ok := c.Get("a"); ok {
		t.Fatal("a alive after 5s")
	}
	// A zero TTL removes.
	c.Put("c", 3, time.Minute)
	c.Put("c", 4, 0)
	if _, ok := c.Get("c"); ok {
		t.Fatal("ttl 0 stored")
	}
}

func TestTTLCacheNegativeEntries(t *testing.T) {
	type stat struct {
		size    int64
		missing bool
	}
	clk := &fakeClock{now: time.Unix(0, 0)}
	c := NewTTLCache[string, stat](10, clk)
	c.Put("nope", stat{missing: true}, time.Second)
	if v, ok := c.Get("nope"); !ok || !v.missing {
		t.Fatal("negative entry lost")
	}
	c.Put("nope", stat{size: 5}, time.Minute) // created since
	if v, _ := c.Get("nope"); v.missing || v.size != 5 {
		t.Fatalf("got %+v", v)
	}
}

func TestTTLCacheBoundedLRU(t *testing.T) {
	c := NewTTLCache[int, int](3, nil)
	for i := range 3 {
		c.Put(i, i, time.Hour)
	}
	c.Get(0) // 1 is now the least recently used
	c.Put(3, 3, time.Hour)
	if _, ok := c.Get(1); ok {
		t.Fatal("1 not evicted")
	}
	for _, k := range []int{0, 2, 3} {
		if _, ok := c.Get(k); !ok {
			t.Fatalf("%d evicted", k)
		}
	}
	if n := c.RemoveFunc(func(k, _ int) bool { return k >= 2 }); n != 2 || c.Len() != 1 {
		t.Fatalf("RemoveFunc removed %d, len %d", n, c.Len())
	}
	c.Remove(0)
	c.Put(9, 9, time.Hour)
	c.Purge()
	if c.Len() != 0 {
		t.Fatal("Purge left entries")
	}
}

func TestTTLCacheConcurrent(t *testing.T) {
	clk := &fakeClock{now: time.Unix(0, 0)}
	c := NewTTLCache[int, int](50, clk)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				k := (i * (g + 1)) % 100
				if v, ok := c.Get(k); ok && v != k {
					t.Errorf("key %d = %d", k, v)
				}
				c.Put(k, k, time.Duration(i%5)*time.Millisecond)
				if i%100 == 0 {
					clk.Advance(time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	if c.Len() > 50 {
		t.Fatalf("len %d > 50", c.Len())
	}
}

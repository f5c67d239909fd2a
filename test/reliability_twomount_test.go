package test

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// TestReliabilityTwoMountsVisibility: what one mount writes, renames and
// removes, the other mount of the bucket sees once its TTL has passed.
func TestReliabilityTwoMountsVisibility(t *testing.T) {
	const ttl = time.Second
	a := mount(t, withTTL(ttl))
	b := mount(t, onBucket(a.Bucket), withTTL(ttl))

	data := randBytes(42, 300_000)
	writeFile(t, a.Path("f"), data)
	if err := os.MkdirAll(a.Path("d/e"), 0o755); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() string {
		got, err := os.ReadFile(b.Path("f"))
		if err != nil || !bytes.Equal(got, data) {
			return fmt.Sprintf("f on the second mount: %d bytes, %v", len(got), err)
		}
		if st, err := os.Stat(b.Path("d/e")); err != nil || !st.IsDir() {
			return fmt.Sprintf("d/e on the second mount: %v", err)
		}
		return ""
	})

	// Overwrite (shorter), rename, unlink on b; a follows.
	data2 := randBytes(43, 1000)
	writeFile(t, b.Path("f"), data2)
	if err := os.Rename(b.Path("f"), b.Path("d/g")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, b.Path("h"), []byte("x"))
	if err := os.Remove(b.Path("h")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() string {
		got, err := os.ReadFile(a.Path("d/g"))
		if err != nil || !bytes.Equal(got, data2) {
			return fmt.Sprintf("d/g on the first mount: %d bytes, %v", len(got), err)
		}
		if _, err := os.Stat(a.Path("f")); !os.IsNotExist(err) {
			return fmt.Sprintf("f still on the first mount after the rename: %v", err)
		}
		if _, err := os.Stat(a.Path("h")); !os.IsNotExist(err) {
			return fmt.Sprintf("h on the first mount after its unlink: %v", err)
		}
		ents, err := os.ReadDir(a.Path("d"))
		if err != nil || len(ents) != 2 {
			return fmt.Sprintf("readdir d on the first mount: %v, %v; want e and g", ents, err)
		}
		return ""
	})
}

// TestReliabilityTwoMountsConcurrentWriters: two mounts write the same key
// at the same time, each its own full content in many write calls; the
// object ends as one writer's complete content, never a mix, and both
// mounts then read that version.
func TestReliabilityTwoMountsConcurrentWriters(t *testing.T) {
	const ttl = time.Second
	a := mount(t, withTTL(ttl))
	b := mount(t, onBucket(a.Bucket), withTTL(ttl))
	rounds := 6
	if testing.Short() {
		rounds = 3
	}
	for r := 0; r < rounds; r++ {
		name := fmt.Sprintf("shared%d", r%2) // also overwrite an existing object
		size := 64<<10 + r*700_000           // up to ~3.5 MiB
		contents := [][]byte{randBytes(uint64(1000+2*r), size), randBytes(uint64(1001+2*r), size+r*1000)}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, m := range []*Mount{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f, err := os.OpenFile(m.Path(name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
				if err != nil {
					errs[i] = err
					return
				}
				data := contents[i]
				for off := 0; off < len(data); off += 32 << 10 {
					if _, err := f.Write(data[off:min(off+32<<10, len(data))]); err != nil {
						f.Close()
						errs[i] = err
						return
					}
				}
				errs[i] = f.Close()
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: writer %d: %v", r, i, err)
			}
		}
		got, err := a.TryGet(name)
		if err != nil {
			t.Fatalf("round %d: GetObject: %v", r, err)
		}
		winner := -1
		for i, c := range contents {
			if bytes.Equal(got, c) {
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: the object (%d bytes, sha %.12s) is neither writer's content (%d / %d bytes): a mix",
				r, len(got), sha(got), len(contents[0]), len(contents[1]))
		}
		for _, m := range []*Mount{a, b} {
			eventually(t, 30*time.Second, func() string {
				rb, err := os.ReadFile(m.Path(name))
				if err != nil || !bytes.Equal(rb, got) {
					return fmt.Sprintf("round %d: %s reads %d bytes (%v), not the bucket's version (writer %d)", r, m.Dir, len(rb), err, winner)
				}
				return ""
			})
		}
	}
}

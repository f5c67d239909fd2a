package fs

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/novitalabs/bucketfs/internal/faultstore"
	"github.com/novitalabs/bucketfs/internal/objstore"
	"github.com/novitalabs/bucketfs/s3backend"
)

// mergeAll runs pages (keys under "d/") through a merger, releasing after
// each, and returns "name" for objects and "name/" for directories.
func mergeAll(pages ...[]string) []string {
	var m merger
	var out []string
	for i, keys := range pages {
		var page s3backend.ListResult
		for _, k := range keys {
			if strings.HasSuffix(k, "/") {
				page.CommonPrefixes = append(page.CommonPrefixes, "d/"+k)
			} else {
				page.Objects = append(page.Objects, s3backend.ObjectInfo{Key: "d/" + k})
			}
		}
		m.add("d/", page, true)
		m.release(i == len(pages)-1, func(p pendEntry) {
			if p.ent.kind == kindDir {
				out = append(out, p.name+"/")
			} else {
				out = append(out, p.name)
			}
		})
	}
	return out
}

// TestMergerDirWins: a directory wins over an object of the same name
// however many pages lie between them, names no kernel can show are
// skipped, and a repeated key is taken once.
func TestMergerDirWins(t *testing.T) {
	long := strings.Repeat("n", 256)
	for _, c := range []struct {
		pages [][]string
		want  []string
	}{
		{[][]string{{"a", "a-x", "a.y", "a/", "b"}}, []string{"a-x", "a.y", "a/", "b"}},
		{[][]string{{"a"}, {"a-x"}, {"a.y"}, {"a/"}, {"b"}}, []string{"a-x", "a.y", "a/", "b"}},
		{[][]string{{"0", "a"}, {"a-x", "a-x/"}, {"a/", "b"}}, []string{"0", "a-x/", "a/", "b"}},
		{[][]string{{"a", "a-x"}, {"a0"}}, []string{"a", "a-x", "a0"}},
		{[][]string{{"a"}, {}}, []string{"a"}}, // the listing ends: "a" is a file
		{[][]string{{"", "..", "k", long}, {"k", long + "/", "z/"}}, []string{"k", "z/"}},
	} {
		if got := mergeAll(c.pages...); !slices.Equal(got, c.want) {
			t.Errorf("pages %q: got %q, want %q", c.pages, got, c.want)
		}
	}
}

// readAll reads a directory handle to its end, after the done entries
// read already, as go-fuse and the kernel do: a reply ends at the first
// call that returns no entry, and the listing at an empty reply.
func readAll(t *testing.T, d *dirHandle, done int) ([]string, syscall.Errno) {
	t.Helper()
	var names []string
	inReply := 0
	for {
		de, errno := d.Readdirent(context.Background())
		if errno != 0 {
			return names, errno
		}
		if de == nil {
			if inReply == 0 {
				return names, 0
			}
			inReply = 0
			continue
		}
		inReply++
		if de.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			names = append(names, de.Name+"/")
		} else {
			names = append(names, de.Name)
		}
		if de.Off != uint64(done+len(names)) {
			t.Fatalf("entry %d (%s) has offset %d", len(names), de.Name, de.Off)
		}
	}
}

func openRoot(t *testing.T, r *rawFS) *dirHandle {
	t.Helper()
	fh, _, errno := r.fsys.root.OpendirHandle(context.Background(), 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	d := fh.(*dirHandle)
	t.Cleanup(func() { d.Releasedir(context.Background(), 0) })
	return d
}

// TestReaddirStreams: the first entry of a listing of ten pages comes,
// even to an interrupted request, after at most two pages were requested (the one returned and the one
// fetched ahead); the whole listing comes in key order, each name once,
// a directory over its same-named object across a page boundary; the
// cached listing is complete after it and serves the next handle.
func TestReaddirStreams(t *testing.T) {
	r := newRawFS(t, rawOptions{})
	r.fsys.listPageKeys = 3
	var want []string
	for i := 0; i < 28; i++ {
		name := fmt.Sprintf("f%02d", i)
		r.mem.Put(name, []byte(name), objstore.PutOptions{})
		want = append(want, name)
	}
	// "f28" is the last key of a page; "f28-x", "f28.y" and "f28/"
	// follow on the next ones.
	for _, k := range []string{"f28", "f28-x", "f28.y", "f28/in", "g"} {
		r.mem.Put(k, nil, objstore.PutOptions{})
	}
	want = append(want, "f28-x", "f28.y", "f28/", "g")

	r.fsys.cfg.StatCacheTTL = time.Hour
	d := openRoot(t, r)
	// An interrupted request (a signal to the caller) still waits for
	// its page: getdents must not fail with EINTR.
	interrupted, cancel := context.WithCancel(context.Background())
	cancel()
	de, errno := d.Readdirent(interrupted)
	if errno != 0 || de == nil || de.Name != "f00" {
		t.Fatalf("first entry: %+v, %v", de, errno)
	}
	if lists := r.mem.Stats()[objstore.OpList].Calls; lists > 2 {
		t.Errorf("the first entry came after %d listing pages, want at most 2", lists)
	}
	rest, errno := readAll(t, d, 1)
	if errno != 0 {
		t.Fatal(errno)
	}
	got := append([]string{"f00"}, rest...)
	if !slices.Equal(got, want) {
		t.Errorf("readdir:\n got %q\nwant %q", got, want)
	}
	n := r.fsys.root
	n.mu.Lock()
	done, order := n.dir().listingDone, slices.Clone(n.dir().listingOrder)
	n.mu.Unlock()
	if !done || len(order) != len(want) {
		t.Errorf("cached listing: done %v, %d names, want %d", done, len(order), len(want))
	}

	// A handle opened now reads the cached listing.
	before := r.mem.Stats()[objstore.OpList].Calls
	if got, errno := readAll(t, openRoot(t, r), 0); errno != 0 || !slices.Equal(got, want) {
		t.Errorf("from the cached listing: %q, %v", got, errno)
	}
	if lists := r.mem.Stats()[objstore.OpList].Calls - before; lists != 0 {
		t.Errorf("a read of the cached listing sent %d listing pages", lists)
	}
	// Expired, the cached listing is listed again at a rewind.
	n.mu.Lock()
	n.dir().listingUntil = time.Time{}
	n.mu.Unlock()
	if errno := d.Seekdir(context.Background(), 0); errno != 0 {
		t.Fatal(errno)
	}
	before = r.mem.Stats()[objstore.OpList].Calls
	if got, errno := readAll(t, d, 0); errno != 0 || !slices.Equal(got, want) {
		t.Errorf("after rewind: %q, %v", got, errno)
	}
	if lists := r.mem.Stats()[objstore.OpList].Calls - before; lists < 11 {
		t.Errorf("rewind sent %d listing pages, want a new listing", lists)
	}
}

// TestReaddirRepliesPerPage: a reply holds the entries listed so far and
// goes to the kernel without waiting for the next page; the next reply
// waits for that page (an empty reply would be end of file), and the
// whole listing comes, each name once.
func TestReaddirRepliesPerPage(t *testing.T) {
	r := newRawFS(t, rawOptions{})
	r.fsys.listPageKeys = 3
	var want []string
	for i := 0; i < 8; i++ {
		name := fmt.Sprintf("f%d", i)
		r.mem.Put(name, nil, objstore.PutOptions{})
		want = append(want, name)
	}
	// The second page is slow: the first reply must not wait for it.
	slow := r.faults.Add(faultstore.Rule{Ops: []objstore.Op{objstore.OpList}, After: 1, Times: 1, Latency: 2 * time.Second})
	d := openRoot(t, r)
	var first []string
	for {
		de, errno := d.Readdirent(context.Background())
		if errno != 0 {
			t.Fatal(errno)
		}
		if de == nil {
			break
		}
		first = append(first, de.Name)
	}
	// The page's last object waits for the next page (a directory of
	// the same name would win over it).
	if !slices.Equal(first, want[:2]) {
		t.Fatalf("first reply: %q, want the first page's released entries %q", first, want[:2])
	}
	rest, errno := readAll(t, d, 2)
	if errno != 0 {
		t.Fatal(errno)
	}
	if got := append(first, rest...); !slices.Equal(got, want) {
		t.Errorf("readdir:\n got %q\nwant %q", got, want)
	}
	if slow.Hits() != 1 {
		t.Errorf("the slow page rule acted on %d listing requests, want the second page's", slow.Hits())
	}
}

// rawWithFiles is a filesystem whose root holds files f0…f<n-1>, listed
// two keys a page.
func rawWithFiles(t *testing.T, n int) *rawFS {
	r := newRawFS(t, rawOptions{})
	r.fsys.listPageKeys = 2
	for i := 0; i < n; i++ {
		r.mem.Put(fmt.Sprintf("f%d", i), nil, objstore.PutOptions{})
	}
	return r
}

// TestReaddirSeekBack: an offset from the middle of a streamed listing
// goes back to the entry after it.
func TestReaddirSeekBack(t *testing.T) {
	r := rawWithFiles(t, 7)
	d := openRoot(t, r)
	all, errno := readAll(t, d, 0)
	if errno != 0 || len(all) != 7 {
		t.Fatalf("readdir: %q, %v", all, errno)
	}
	if errno := d.Seekdir(context.Background(), 3); errno != 0 {
		t.Fatal(errno)
	}
	de, _ := d.Readdirent(context.Background())
	if de == nil || de.Name != "f3" || de.Off != 4 {
		t.Errorf("after seekdir(3): %+v, want f3 at offset 4", de)
	}
}

// TestReaddirFailsMidway: a page that fails after some were returned
// fails the read with EIO; the entries returned stay returned, and the
// cached listing is not taken as complete.
func TestReaddirFailsMidway(t *testing.T) {
	r := rawWithFiles(t, 9)
	r.faults.Add(faultstore.Rule{Ops: []objstore.Op{objstore.OpList}, After: 2, Err: faultstore.ErrInjected})
	d := openRoot(t, r)
	got, errno := readAll(t, d, 0)
	if errno != syscall.EIO {
		t.Errorf("readdir with its third page failing: errno %v, want EIO", errno)
	}
	// "f3", the last key of the second page, waits for the third: a
	// directory "f3" could follow.
	if !slices.Equal(got, []string{"f0", "f1", "f2"}) {
		t.Errorf("entries before the failure: %q", got)
	}
	n := r.fsys.root
	n.mu.Lock()
	done := n.dir().listingDone
	n.mu.Unlock()
	if done {
		t.Error("a failed listing was cached as complete")
	}
	if _, found, fresh := n.cachedEntry("f8"); found || fresh {
		t.Errorf("a name the failed listing never reached: found %v fresh %v", found, fresh)
	}
}

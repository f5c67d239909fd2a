package fs

import (
	"syscall"
	"testing"

	"github.com/novitalabs/bucketfs/internal/faultstore"
	"github.com/novitalabs/bucketfs/internal/objstore"
	"github.com/novitalabs/bucketfs/s3backend"
)

// TestAbsentFrom: a listing of prefix key with the delimiter proves key
// absent only if it shows neither key nor key/, and reaches past key/.
func TestAbsentFrom(t *testing.T) {
	objs := func(keys ...string) []s3backend.ObjectInfo {
		var o []s3backend.ObjectInfo
		for _, k := range keys {
			o = append(o, s3backend.ObjectInfo{Key: k})
		}
		return o
	}
	for _, c := range []struct {
		name string
		page s3backend.ListResult
		want bool
	}{
		{"empty page", s3backend.ListResult{}, true},
		{"the object", s3backend.ListResult{Objects: objs("d/a")}, false},
		{"a directory below", s3backend.ListResult{CommonPrefixes: []string{"d/a/"}}, false},
		{"a store ignoring the delimiter", s3backend.ListResult{Objects: objs("d/a/x")}, false},
		{"only longer names", s3backend.ListResult{Objects: objs("d/a.c", "d/ab"), CommonPrefixes: []string{"d/a-old/"}}, true},
		{"cut before a/", s3backend.ListResult{Objects: objs("d/a.c", "d/a.h"), NextToken: "t"}, false},
		{"cut past a/", s3backend.ListResult{Objects: objs("d/a.c", "d/ab"), NextToken: "t"}, true},
		{"cut past a/ by a prefix", s3backend.ListResult{Objects: objs("d/a.c"), CommonPrefixes: []string{"d/a0/"}, NextToken: "t"}, true},
	} {
		if got := absentFrom(c.page, "d/a"); got != c.want {
			t.Errorf("%s: absentFrom = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestLookupPeeks: a cold lookup of a small file brings its bytes (one
// Peek, no Head) and the read that follows sends nothing; a store that
// refuses the peek is asked with a HEAD, and the lookup still succeeds.
func TestLookupPeeks(t *testing.T) {
	r := newRawFS(t, rawOptions{})
	r.mem.Put("small", []byte("hello"), objstore.PutOptions{})
	r.mem.Put("other", []byte("world"), objstore.PutOptions{})

	out, errno := r.lookup(rootIno, "small")
	if errno != 0 || out.Attr.Size != 5 {
		t.Fatalf("lookup of small: size %d, %v", out.Attr.Size, errno)
	}
	if p, h := r.faults.Calls(objstore.OpPeek), r.faults.Calls(objstore.OpHead); p != 1 || h != 0 {
		t.Errorf("lookup sent %d peeks and %d HEADs, want one peek", p, h)
	}
	fh, errno := r.open(out.NodeId, syscall.O_RDONLY)
	if errno != 0 {
		t.Fatalf("open: %v", errno)
	}
	got, errno := r.read(out.NodeId, fh, 0, 100)
	r.release(out.NodeId, fh)
	if errno != 0 || string(got) != "hello" {
		t.Errorf("read %q, %v; want hello", got, errno)
	}
	if n := r.faults.Calls(objstore.OpGetRange); n != 0 {
		t.Errorf("reading the file just looked up sent %d GETs, want none", n)
	}

	r.faults.Add(faultstore.Fail(objstore.OpPeek))
	out, errno = r.lookup(rootIno, "other")
	if errno != 0 || out.Attr.Size != 5 {
		t.Fatalf("lookup with the peek refused: size %d, %v", out.Attr.Size, errno)
	}
	if h := r.faults.Calls(objstore.OpHead); h != 1 {
		t.Errorf("a refused peek led to %d HEADs, want 1", h)
	}

	// A store that is down fails the lookup without a HEAD after the peek.
	r.faults.Clear()
	r.mem.Put("third", []byte("x"), objstore.PutOptions{})
	r.faults.SetOutage(true)
	if _, errno := r.lookup(rootIno, "third"); errno == 0 {
		t.Errorf("lookup with the store down succeeded")
	}
	r.faults.SetOutage(false)
	if h := r.faults.Calls(objstore.OpHead); h != 1 {
		t.Errorf("a lookup with the store down sent %d more HEADs after its peek, want none", h-1)
	}
}

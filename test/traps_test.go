package test

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// TestEmptyFileWithoutWrite: a file created and closed without a single
// write exists as an empty object.
func TestEmptyFileWithoutWrite(t *testing.T) {
	t.Parallel()
	m := mount(t)
	f, err := os.Create(m.Path("empty"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	f, err = os.OpenFile(m.Path("empty-excl"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	run(t, m.Dir, "touch", "touched")
	for _, name := range []string{"empty", "empty-excl", "touched"} {
		h, err := m.TryHead(name)
		if err != nil {
			t.Errorf("%s: no object after create+close: %v", name, err)
			continue
		}
		if n := aws.ToInt64(h.ContentLength); n != 0 {
			t.Errorf("%s: %d bytes, want 0", name, n)
		}
		if st := lstat(t, m.Path(name)); st.Size != 0 {
			t.Errorf("%s: stat size %d", name, st.Size)
		}
	}
}

// TestUtimesWithDirtyData: utimes on a file whose data is not uploaded yet
// (open fd, write, utimes on the path, close) keeps the set mtime after the
// upload.
func TestUtimesWithDirtyData(t *testing.T) {
	t.Parallel()
	m := mount(t)
	set := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	for _, how := range []string{"chtimes", "touch-d"} {
		f, err := os.Create(m.Path(how))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(randBytes(60, 100<<10)); err != nil {
			t.Fatal(err)
		}
		if how == "chtimes" {
			if err := os.Chtimes(m.Path(how), set, set); err != nil {
				t.Fatalf("utimes: %v", err)
			}
		} else {
			run(t, m.Dir, "touch", "-d", "2001-02-03 04:05:06 UTC", how)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		if got := metaMtime(t, m.Head(how), how); !got.Equal(set) {
			t.Errorf("%s: x-amz-meta-mtime after upload %v, want %v", how, got.UTC(), set)
		}
		if st := lstat(t, m.Path(how)); !time.Unix(st.Mtim.Unix()).Equal(set) {
			t.Errorf("%s: stat mtime after close %v, want %v", how, time.Unix(st.Mtim.Unix()).UTC(), set)
		}
		if n := len(m.Get(how)); n != 100<<10 {
			t.Errorf("%s: object has %d bytes, want %d", how, n, 100<<10)
		}
	}
}

// TestFtruncateDirty: ftruncate of a file with unwritten data takes effect.
func TestFtruncateDirty(t *testing.T) {
	t.Parallel()
	m := mount(t)
	data := randBytes(61, 1<<20)

	f, err := os.Create(m.Path("shrunk"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1000); err != nil {
		t.Fatalf("ftruncate: %v", err)
	}
	if st, err := f.Stat(); err != nil || st.Size() != 1000 {
		t.Errorf("fstat after ftruncate: %v, %v", st, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	sameBytes(t, "shrunk", m.Get("shrunk"), data[:1000])

	// Truncate to zero, then write at the start again.
	f, err = os.Create(m.Path("rewritten"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data[:5000]); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("xyz"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	sameBytes(t, "rewritten", m.Get("rewritten"), []byte("xyz"))

	// Extend a dirty file.
	f, err = os.Create(m.Path("grown"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(5000); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	sameBytes(t, "grown", m.Get("grown"), append([]byte("0123456789"), make([]byte, 4990)...))
}

// TestTruncateExtendClosed: `truncate -s` extending a closed file keeps its
// content and adds zeros.
func TestTruncateExtendClosed(t *testing.T) {
	t.Parallel()
	m := mount(t)
	content := randBytes(62, 3000)
	writeFile(t, m.Path("written"), content)
	m.Put("put", content, nil)
	for _, name := range []string{"written", "put"} {
		run(t, m.Dir, "truncate", "-s", "1M", name)
		want := append(append([]byte{}, content...), make([]byte, 1<<20-len(content))...)
		sameBytes(t, name+" object", m.Get(name), want)
		if st := lstat(t, m.Path(name)); st.Size != 1<<20 {
			t.Errorf("%s: stat size %d, want %d", name, st.Size, 1<<20)
		}
		if b := readFile(t, m.Path(name)); !bytes.Equal(b, want) {
			sameBytes(t, name+" read back", b, want)
		}
	}
}

package test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// TestReadChecksum: a multi-MiB object reads back byte-exact, sequentially
// and with pread at odd offsets.
func TestReadChecksum(t *testing.T) {
	t.Parallel()
	m := mount(t)
	data := randBytes(10, 9<<20+123)
	m.Put("big.bin", data, nil)
	small := []byte("small object\n")
	m.Put("small.txt", small, nil)

	f, err := os.Open(m.Path("big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatalf("sequential read: %v", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != int64(len(data)) || got != sha(data) {
		t.Errorf("sequential read: %d bytes sha256 %s, want %d bytes %s", n, got, len(data), sha(data))
	}

	size := int64(len(data))
	offsets := []int64{0, 1, 4095, 4097, 65537, 1<<20 - 1, 1 << 20, 5<<20 + 77, 3<<20 + 12345, size - 4096 - 3, size - 10, size - 1}
	lengths := []int{1, 7, 4096 + 3, 128<<10 + 5}
	for _, off := range offsets {
		for _, l := range lengths {
			buf := make([]byte, l)
			got, err := f.ReadAt(buf, off)
			wantN := int64(l)
			if off+wantN > size {
				wantN = size - off
			}
			if int64(got) != wantN || (err != nil && !(errors.Is(err, io.EOF) && int64(got) < int64(l))) {
				t.Errorf("pread(%d, %d) = %d, %v; want %d bytes", off, l, got, err, wantN)
				continue
			}
			if !bytes.Equal(buf[:got], data[off:off+wantN]) {
				t.Errorf("pread(%d, %d): wrong bytes", off, l)
			}
		}
	}
	// Backwards, as a random reader.
	for off := size - 100000; off > 0; off -= 1_000_003 {
		buf := make([]byte, 1000)
		if _, err := f.ReadAt(buf, off); err != nil {
			t.Fatalf("pread(%d): %v", off, err)
		}
		if !bytes.Equal(buf, data[off:off+1000]) {
			t.Errorf("backwards pread(%d): wrong bytes", off)
		}
	}
	if got, err := f.ReadAt(make([]byte, 10), size); got != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("pread at EOF = %d, %v; want 0, EOF", got, err)
	}
	sameBytes(t, "small.txt", readFile(t, m.Path("small.txt")), small)
}

// TestCreateWriteClose: create, write in odd-sized pieces, close: the object
// has exactly those bytes, and reads back through the mount.
func TestCreateWriteClose(t *testing.T) {
	t.Parallel()
	m := mount(t)
	data := randBytes(11, 300<<10+17)
	f, err := os.Create(m.Path("new.bin"))
	if err != nil {
		t.Fatal(err)
	}
	for off, step := 0, 1; off < len(data); step = step*3 + 1 {
		end := min(off+step, len(data))
		if _, err := f.Write(data[off:end]); err != nil {
			t.Fatalf("write at %d: %v", off, err)
		}
		off = end
	}
	if st, err := f.Stat(); err != nil || st.Size() != int64(len(data)) {
		t.Errorf("fstat while open: %v, %v; want size %d", st, err, len(data))
	}
	// A file being written shows in listings before its upload.
	if ents, err := os.ReadDir(m.Dir); err != nil || len(ents) != 1 || ents[0].Name() != "new.bin" {
		t.Errorf("readdir while new.bin is open = %v, %v; want [new.bin]", ents, err)
	}
	if st := lstat(t, m.Path("new.bin")); st.Size != int64(len(data)) {
		t.Errorf("stat while open: size %d, want %d", st.Size, len(data))
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	sameBytes(t, "object after close", m.Get("new.bin"), data)
	sameBytes(t, "read back", readFile(t, m.Path("new.bin")), data)
	if st := lstat(t, m.Path("new.bin")); st.Size != int64(len(data)) {
		t.Errorf("stat size %d, want %d", st.Size, len(data))
	}
}

// TestOverwrite: rewriting a file (O_TRUNC) replaces the object, whether it
// was written through the mount or put with the SDK.
func TestOverwrite(t *testing.T) {
	t.Parallel()
	m := mount(t)
	writeFile(t, m.Path("f"), bytes.Repeat([]byte("A"), 1000))
	writeFile(t, m.Path("f"), []byte("BBBBBBBBBB"))
	sameBytes(t, "f after overwrite", m.Get("f"), []byte("BBBBBBBBBB"))
	sameBytes(t, "f read back", readFile(t, m.Path("f")), []byte("BBBBBBBBBB"))

	m.Put("g", randBytes(12, 50000), nil)
	lstat(t, m.Path("g")) // known to the mount before the overwrite
	want := randBytes(13, 20000)
	writeFile(t, m.Path("g"), want)
	sameBytes(t, "g after overwrite", m.Get("g"), want)
	sameBytes(t, "g read back", readFile(t, m.Path("g")), want)
}

// TestAppend: `>>` and O_APPEND add to the end of existing objects.
func TestAppend(t *testing.T) {
	t.Parallel()
	m := mount(t)
	m.Put("log.txt", []byte("line1\n"), nil)
	run(t, m.Dir, "sh", "-c", "echo line2 >> log.txt")
	sameBytes(t, "after >>", m.Get("log.txt"), []byte("line1\nline2\n"))

	f, err := os.OpenFile(m.Path("log.txt"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("line3\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("line4\n")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	want := []byte("line1\nline2\nline3\nline4\n")
	sameBytes(t, "after O_APPEND", m.Get("log.txt"), want)
	sameBytes(t, "read back", readFile(t, m.Path("log.txt")), want)

	// >> creating a new file, then appending to it.
	run(t, m.Dir, "sh", "-c", "echo a >> fresh.txt; echo b >> fresh.txt")
	sameBytes(t, "fresh.txt", m.Get("fresh.txt"), []byte("a\nb\n"))
}

// TestPwriteMiddle: pwrite into the middle of an existing multi-MiB object
// changes only those bytes.
func TestPwriteMiddle(t *testing.T) {
	t.Parallel()
	m := mount(t)
	orig := randBytes(14, 3<<20+5)
	m.Put("obj", orig, nil)
	patch := bytes.Repeat([]byte("PATCH!"), 200)
	off := int64(1<<20 + 333)

	f, err := os.OpenFile(m.Path("obj"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(patch, off); err != nil {
		t.Fatalf("pwrite: %v", err)
	}
	// Reads see the write before it is uploaded.
	buf := make([]byte, len(patch)+20)
	if _, err := f.ReadAt(buf, off-10); err != nil {
		t.Fatalf("pread: %v", err)
	}
	want := append([]byte{}, orig...)
	copy(want[off:], patch)
	sameBytes(t, "pread before close", buf, want[off-10:off-10+int64(len(buf))])
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	sameBytes(t, "object after pwrite", m.Get("obj"), want)
	sameBytes(t, "read back", readFile(t, m.Path("obj")), want)
}

// TestTruncate: shrinking and extending by descriptor (ftruncate) and by
// path (truncate(2), truncate -s), each persisted.
func TestTruncate(t *testing.T) {
	t.Parallel()
	m := mount(t)
	orig := randBytes(15, 100)
	zeros := func(n int) []byte { return make([]byte, n) }
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

	ftrunc := func(name string, size int64) {
		t.Helper()
		f, err := os.OpenFile(m.Path(name), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			t.Fatalf("ftruncate %s to %d: %v", name, size, err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("close %s: %v", name, err)
		}
	}
	check := func(name string, want []byte) {
		t.Helper()
		sameBytes(t, name+" object", m.Get(name), want)
		if st := lstat(t, m.Path(name)); st.Size != int64(len(want)) {
			t.Errorf("%s: stat size %d, want %d", name, st.Size, len(want))
		}
		sameBytes(t, name+" read back", readFile(t, m.Path(name)), want)
	}

	m.Put("fshrink", orig, nil)
	ftrunc("fshrink", 40)
	check("fshrink", orig[:40])

	m.Put("fextend", orig, nil)
	ftrunc("fextend", 150)
	check("fextend", cat(orig, zeros(50)))

	// truncate(2) on a path: no open file, no flush follows.
	m.Put("pshrink", orig, nil)
	if err := os.Truncate(m.Path("pshrink"), 30); err != nil {
		t.Fatalf("truncate(2) shrink: %v", err)
	}
	check("pshrink", orig[:30])
	if err := os.Truncate(m.Path("pshrink"), 200); err != nil {
		t.Fatalf("truncate(2) extend: %v", err)
	}
	check("pshrink", cat(orig[:30], zeros(170)))

	m.Put("tool", orig, nil)
	run(t, m.Dir, "truncate", "-s", "10", "tool")
	check("tool", orig[:10])
	run(t, m.Dir, "truncate", "-s", "64K", "tool")
	check("tool", cat(orig[:10], zeros(64<<10-10)))
	run(t, m.Dir, "truncate", "-s", "0", "tool")
	check("tool", nil)
}

// TestFsync: fsync uploads what was written so far, before close.
func TestFsync(t *testing.T) {
	t.Parallel()
	m := mount(t)
	a, b := randBytes(16, 70000), randBytes(17, 1234)
	f, err := os.Create(m.Path("synced"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(a); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("fsync: %v", err)
	}
	sameBytes(t, "object after first fsync", m.Get("synced"), a)
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("second fsync: %v", err)
	}
	sameBytes(t, "object after second fsync", m.Get("synced"), append(append([]byte{}, a...), b...))
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	sameBytes(t, "object after close", m.Get("synced"), append(append([]byte{}, a...), b...))
}

// TestUnlink: unlink removes the object; the name is gone from the mount.
func TestUnlink(t *testing.T) {
	t.Parallel()
	m := mount(t)
	writeFile(t, m.Path("mine"), []byte("mine"))
	m.Put("theirs", []byte("theirs"), nil)
	m.Put("keep", []byte("keep"), nil)
	for _, name := range []string{"mine", "theirs"} {
		if err := os.Remove(m.Path(name)); err != nil {
			t.Fatalf("unlink %s: %v", name, err)
		}
		if m.Exists(name) {
			t.Errorf("object %s still exists after unlink", name)
		}
		wantErrno(t, "stat "+name+" after unlink", syscall.Lstat(m.Path(name), new(syscall.Stat_t)), syscall.ENOENT)
	}
	ents, err := os.ReadDir(m.Dir)
	if err != nil || len(ents) != 1 || ents[0].Name() != "keep" {
		t.Errorf("readdir after unlinks = %v, %v; want [keep]", ents, err)
	}
	if keys := m.Keys(""); len(keys) != 1 || keys[0] != "keep" {
		t.Errorf("bucket after unlinks = %v, want [keep]", keys)
	}
}

// TestLargeFileMultipart: a 40 MiB file written with dd (above the multipart
// threshold) arrives byte-exact and reads back.
func TestLargeFileMultipart(t *testing.T) {
	t.Parallel()
	m := mount(t)
	data := randBytes(18, 40<<20)
	src := filepath.Join(t.TempDir(), "src")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	run(t, m.Dir, "dd", "if="+src, "of=big", "bs=1M", "status=none")
	t.Logf("dd of 40 MiB took %s", time.Since(start).Round(time.Millisecond))
	h := m.Head("big")
	if n := aws.ToInt64(h.ContentLength); n != int64(len(data)) {
		t.Fatalf("object size %d, want %d", n, len(data))
	}
	t.Logf("ETag %s", aws.ToString(h.ETag))
	sameBytes(t, "object", m.Get("big"), data)
	sameBytes(t, "read back", readFile(t, m.Path("big")), data)
	if st := lstat(t, m.Path("big")); st.Size != int64(len(data)) {
		t.Errorf("stat size %d, want %d", st.Size, len(data))
	}

	// Edit the large object in place: a pwrite in the middle and an append.
	// (The untouched parts may be copied server-side; the result must be
	// byte-exact either way.)
	f, err := os.OpenFile(m.Path("big"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	patch := []byte("-- edited in the middle of a large object --")
	off := int64(20<<20 + 5)
	if _, err := f.WriteAt(patch, off); err != nil {
		t.Fatalf("pwrite: %v", err)
	}
	tail := randBytes(19, 70000)
	if _, err := f.WriteAt(tail, int64(len(data))); err != nil {
		t.Fatalf("pwrite at the end: %v", err)
	}
	start = time.Now()
	if err := f.Close(); err != nil {
		t.Fatalf("close after editing: %v", err)
	}
	t.Logf("close after editing 40 MiB took %s", time.Since(start).Round(time.Millisecond))
	want := append(append([]byte{}, data...), tail...)
	copy(want[off:], patch)
	sameBytes(t, "object after edit", m.Get("big"), want)
	sameBytes(t, "read back after edit", readFile(t, m.Path("big")), want)
}

// TestConcurrentWriters: several processes' worth of parallel creates,
// writes, reads and listings in one mount (food for the race detector);
// every file ends up byte-exact.
func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	m := mount(t)
	const workers, files = 8, 12
	var wg sync.WaitGroup
	errs := make(chan error, workers*files)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir := m.Path(fmt.Sprintf("w%d", w))
			if err := os.Mkdir(dir, 0o755); err != nil {
				errs <- err
				return
			}
			for i := 0; i < files; i++ {
				data := randBytes(uint64(1000+w*files+i), (i*37%11)*9000+i)
				p := filepath.Join(dir, fmt.Sprintf("f%02d", i))
				if err := os.WriteFile(p, data, 0o644); err != nil {
					errs <- err
					continue
				}
				if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, data) {
					errs <- fmt.Errorf("%s: read back %d bytes, %v; want %d bytes", p, len(got), err, len(data))
				}
				if _, err := os.ReadDir(m.Dir); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w := 0; w < workers; w++ {
		for i := 0; i < files; i++ {
			name := fmt.Sprintf("w%d/f%02d", w, i)
			sameBytes(t, name, m.Get(name), randBytes(uint64(1000+w*files+i), (i*37%11)*9000+i))
		}
	}
	if n := len(m.Keys("")); n != workers*(files+1) {
		t.Errorf("bucket has %d keys, want %d", n, workers*(files+1))
	}
}

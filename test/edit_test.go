package test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"os"
	"testing"
)

// Edits of big objects send only what changed: the untouched ranges are
// copied server-side (UploadPartCopy), never downloaded and re-uploaded.

// s3Bytes returns the daemon's upload and download byte counters.
func s3Bytes(t *testing.T, addr string) (up, down float64) {
	t.Helper()
	m, _ := scrape(t, addr)
	return m["bucketfs_s3_upload_bytes_total"], m["bucketfs_s3_download_bytes_total"]
}

func TestEditBigObjectSendsOnlyWhatChanged(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	m := mount(t, withFlags("--metrics-addr", addr))
	const size = 256 << 20
	// Room for the append: the reference is never copied, and the object
	// is checked by streaming its hash (several 256 MiB copies under
	// -race, with parallel tests beside, once took gigabytes).
	ref := append(make([]byte, 0, size+1<<20), randBytes(200, size)...)
	m.Put("big", ref, nil)
	const budget = 40 << 20

	check := func(what string, change func(f *os.File) error, apply func()) {
		t.Helper()
		up0, down0 := s3Bytes(t, addr)
		f, err := os.OpenFile(m.Path("big"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := change(f); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("%s: close: %v", what, err)
		}
		up1, down1 := s3Bytes(t, addr)
		sent, fetched := up1-up0, down1-down0
		t.Logf("%s: sent %.1f MiB, fetched %.1f MiB", what, sent/(1<<20), fetched/(1<<20))
		if sent > budget || fetched > budget {
			t.Errorf("%s: sent %.0f and fetched %.0f bytes, budget %d each", what, sent, fetched, budget)
		}
		apply()
		sum := sha256.Sum256(ref)
		objectHashIs(t, m, "big", int64(len(ref)), sum[:])
	}

	extra := randBytes(201, 1<<20)
	check("append 1 MiB", func(f *os.File) error {
		_, err := f.WriteAt(extra, size)
		return err
	}, func() { ref = append(ref, extra...) })

	patch := randBytes(202, 4096)
	mid := int64(size/2 + 12345)
	check("4 KiB pwrite in the middle", func(f *os.File) error {
		_, err := f.WriteAt(patch, mid)
		return err
	}, func() { copy(ref[mid:], patch) })

	check("truncate by 3 MiB", func(f *os.File) error {
		return f.Truncate(int64(len(ref)) - 3<<20)
	}, func() { ref = ref[:len(ref)-3<<20] })

	// Reads through the mount see the edits (page cache dropped: from the
	// object, not from what the kernel kept of the writes).
	dropKernelCaches(t)
	f, err := os.Open(m.Path("big"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := sha256.New()
	if n, err := io.Copy(got, f); err != nil || n != int64(len(ref)) {
		t.Fatalf("read back through the mount: %d bytes, %v; want %d", n, err, len(ref))
	}
	if want := sha256.Sum256(ref); !bytes.Equal(got.Sum(nil), want[:]) {
		t.Errorf("read back through the mount: sha %x, want %x", got.Sum(nil), want)
	}
}

// Random edits of a 40 MiB object through the mount, with every edit
// taking the sparse path (--sparse-edit-min 0), checked against a local
// reference after each step: reads while dirty (staging and base mixed),
// the object after each close, and after a remount.
func TestEditRandomAgainstReference(t *testing.T) {
	t.Parallel()
	m := mount(t, withFlags("--sparse-edit-min", "0"))
	ref := randBytes(300, 40<<20+333)
	m.Put("obj", ref, nil)
	rng := rand.New(rand.NewPCG(300, 1))
	for step := range 12 {
		f, err := os.OpenFile(m.Path("obj"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		for range 1 + rng.IntN(4) {
			switch op := rng.IntN(4); op {
			case 0, 1: // pwrite, possibly past the end
				off := rng.Int64N(int64(len(ref)) + 1<<20)
				data := randBytes(rng.Uint64(), 1+rng.IntN(3<<20))
				if _, err := f.WriteAt(data, off); err != nil {
					t.Fatal(err)
				}
				if end := off + int64(len(data)); end > int64(len(ref)) {
					ref = append(ref, make([]byte, end-int64(len(ref)))...)
				}
				copy(ref[off:], data)
			case 2: // truncate down or up
				size := rng.Int64N(int64(len(ref))*5/4 + 1)
				if err := f.Truncate(size); err != nil {
					t.Fatal(err)
				}
				if size < int64(len(ref)) {
					ref = ref[:size]
				} else {
					ref = append(ref, make([]byte, size-int64(len(ref)))...)
				}
			case 3: // read a random range while dirty
				off := rng.Int64N(int64(len(ref)) + 1)
				buf := make([]byte, rng.IntN(2<<20)+1)
				n, _ := f.ReadAt(buf, off)
				want := ref[off:min(int64(len(ref)), off+int64(len(buf)))]
				if !bytes.Equal(buf[:n], want) {
					t.Fatalf("step %d: read at %d: %d bytes differ from the reference (%d)", step, off, n, len(want))
				}
			}
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		sameBytes(t, "object after step", m.Get("obj"), ref)
	}
	m.Unmount()
	m2 := mount(t, onBucket(m.Bucket))
	sameBytes(t, "after remount", readFile(t, m2.Path("obj")), ref)
}

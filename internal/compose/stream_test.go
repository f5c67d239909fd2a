package compose

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/novitalabs/bucketfs/internal/faultstore"
	"github.com/novitalabs/bucketfs/internal/objstore"
)

func TestStreamPartSizes(t *testing.T) {
	for _, base := range []int64{0, 5 << 20, 16 << 20, 100 << 20} {
		p := Policy{PartSize: base}
		var total int64
		prev := int64(0)
		for n := int32(1); n <= objstore.MaxParts; n++ {
			sz := p.StreamPartSize(n)
			if sz < prev || sz > objstore.MaxPartSize || sz < objstore.MinPartSize {
				t.Fatalf("base %d: part %d size %d (previous %d)", base, n, sz, prev)
			}
			prev = sz
			total += sz
		}
		if total < objstore.MaxObjectSize {
			t.Errorf("base %d: 10000 parts hold %d bytes, less than 5 TiB", base, total)
		}
		if got := p.StreamPartSize(1); got != p.withDefaults().PartSize {
			t.Errorf("base %d: first part %d", base, got)
		}
		if s := p.PartSizeFor(objstore.MaxObjectSize); s*objstore.MaxParts < objstore.MaxObjectSize {
			t.Errorf("base %d: PartSizeFor(5 TiB) = %d is too small", base, s)
		}
	}
}

// countingStore records the most UploadParts in flight at once and can
// hold them until released.
type countingStore struct {
	objstore.ObjectStore
	active, peak atomic.Int32
	hold         chan struct{} // nil: do not hold
}

func (c *countingStore) UploadPart(ctx context.Context, key, id string, n int32, r io.ReadSeeker, size int64) (string, error) {
	a := c.active.Add(1)
	defer c.active.Add(-1)
	for {
		p := c.peak.Load()
		if a <= p || c.peak.CompareAndSwap(p, a) {
			break
		}
	}
	if c.hold != nil {
		select {
		case <-c.hold:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	return c.ObjectStore.UploadPart(ctx, key, id, n, r, size)
}

// writeStream feeds data to st in parts of NextPartSize.
func writeStream(t *testing.T, st *Stream, data []byte) error {
	t.Helper()
	return writeStreamFrom(t, st, data, 0)
}

func TestStream(t *testing.T) {
	mem := testStore()
	cs := &countingStore{ObjectStore: mem, hold: make(chan struct{})}
	rng := rand.New(rand.NewPCG(21, 22))
	data := randBytes(rng, 2000)
	st, err := NewStream(ctx, cs, "s", objstore.PutOptions{Metadata: map[string]string{"m": "1"}}, testPolicy, 2)
	if err != nil {
		t.Fatal(err)
	}
	if ups := mem.Pending(); len(ups) != 1 || ups[0].UploadID != st.UploadID() {
		t.Fatalf("pending %v", ups)
	}
	// Release the held parts one by one while the writer writes: at most
	// two may ever be in flight.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case cs.hold <- struct{}{}:
			case <-stop:
				return
			}
		}
	}()
	if err := writeStream(t, st, data); err != nil {
		t.Fatal(err)
	}
	etag, err := st.Complete(ctx)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	checkObject(t, mem, "s", data)
	if _, info, _ := mem.Object("s"); info.ETag != etag || info.Metadata["m"] != "1" {
		t.Errorf("object %+v, etag %s", info, etag)
	}
	if p := cs.peak.Load(); p > 2 || p < 1 {
		t.Errorf("peak parts in flight %d, bound 2", p)
	}
	if st.Uploaded() != 2000 {
		t.Errorf("Uploaded = %d", st.Uploaded())
	}
	if err := st.WritePart(ctx, bytes.NewReader(data), 2000, 10); !errors.Is(err, ErrStreamClosed) {
		t.Errorf("WritePart after Complete: %v", err)
	}
}

func TestStreamRetryAndAbort(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	data := randBytes(rng, 1000)
	mem := testStore()
	fs := faultstore.New(mem)
	fs.Add(faultstore.Rule{Ops: []objstore.Op{objstore.OpUploadPart}, After: 2, Times: 2, Err: faultstore.ErrInjected})
	st, err := NewStream(ctx, fs, "s", objstore.PutOptions{}, testPolicy, 1)
	if err != nil {
		t.Fatal(err)
	}
	err = writeStream(t, st, data)
	if err == nil {
		_, err = st.Complete(ctx)
	}
	if !errors.Is(err, faultstore.ErrInjected) {
		t.Fatalf("err = %v", err)
	}
	if _, _, ok := mem.Object("s"); ok {
		t.Fatal("object exists after a failed part")
	}
	// Retry sends the failed parts again (the rule fails one more), then
	// the rest of the data follows.
	retries := 0
	for st.Wait() != nil {
		retries++
		if err := st.Retry(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if retries != 2 {
		t.Errorf("%d retries, want 2 (the rule fails two calls, one part in flight)", retries)
	}
	if err := writeStreamFrom(t, st, data, st.Uploaded()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Complete(ctx); err != nil {
		t.Fatal(err)
	}
	checkObject(t, mem, "s", data)

	// Contiguity and the minimum size of non-last parts are enforced.
	st2, err := NewStream(ctx, mem, "t", objstore.PutOptions{}, testPolicy, 2)
	if err != nil {
		t.Fatal(err)
	}
	r := bytes.NewReader(data)
	if err := st2.WritePart(ctx, r, 10, 100); err == nil {
		t.Error("a part not at offset 0 was accepted")
	}
	if err := st2.WritePart(ctx, r, 0, 10); err != nil {
		t.Fatal(err)
	}
	if err := st2.WritePart(ctx, r, 10, 100); err == nil {
		t.Error("a part after a part below the minimum was accepted")
	}
	if err := st2.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if p := mem.Pending(); len(p) != 0 {
		t.Errorf("pending after abort: %v", p)
	}
	if _, _, ok := mem.Object("t"); ok {
		t.Error("aborted stream wrote its object")
	}
}

// writeStreamFrom feeds data from offset from to st in parts of
// NextPartSize.
func writeStreamFrom(t *testing.T, st *Stream, data []byte, from int64) error {
	t.Helper()
	r := bytes.NewReader(data)
	for off := from; off < int64(len(data)); {
		n := min(st.NextPartSize(), int64(len(data))-off)
		if err := st.WritePart(ctx, r, off, n); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// A stream may begin with copies of a stored object (a file flushed in
// mid-write goes on streaming): the object ends as the copied prefix
// followed by the written parts, and a copy pinned to a version that is
// gone fails instead of copying the new one.
func TestStreamCopyPrefix(t *testing.T) {
	mem := testStore()
	rng := rand.New(rand.NewPCG(31, 32))
	prefix, tail := randBytes(rng, 500), randBytes(rng, 350)
	etag := mem.Put("s", prefix, objstore.PutOptions{})
	st, err := NewStream(ctx, mem, "s", objstore.PutOptions{}, testPolicy, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CopyPart(ctx, "s", etag, 0, 300); err != nil {
		t.Fatal(err)
	}
	if err := st.CopyPart(ctx, "s", etag, 300, 200); err != nil {
		t.Fatal(err)
	}
	whole := bytes.NewReader(append(append([]byte{}, prefix...), tail...))
	if err := st.WritePart(ctx, whole, 500, 200); err != nil {
		t.Fatal(err)
	}
	if err := st.WritePart(ctx, whole, 700, 150); err != nil {
		t.Fatal(err)
	}
	if err := st.Wait(); err != nil {
		t.Fatal(err)
	}
	if st.Uploaded() != 850 {
		t.Errorf("Uploaded = %d, want 850", st.Uploaded())
	}
	if _, err := st.Complete(ctx); err != nil {
		t.Fatal(err)
	}
	checkObject(t, mem, "s", append(append([]byte{}, prefix...), tail...))

	// The source replaced before its copy: the part fails.
	st, err = NewStream(ctx, mem, "t", objstore.PutOptions{}, testPolicy, 2)
	if err != nil {
		t.Fatal(err)
	}
	mem.Put("s", tail, objstore.PutOptions{})
	if err := st.CopyPart(ctx, "s", etag, 0, 300); err != nil {
		t.Fatal(err)
	}
	if err := st.Wait(); !errors.Is(err, objstore.ErrPreconditionFailed) {
		t.Errorf("copy of a replaced source: %v, want ErrPreconditionFailed", err)
	}
	if err := st.Abort(ctx); err != nil {
		t.Fatal(err)
	}
}

package compose

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/novitalabs/bucketfs/internal/faultstore"
	"github.com/novitalabs/bucketfs/internal/memstore"
	"github.com/novitalabs/bucketfs/internal/objstore"
)

var ctx = context.Background()

// edit is a test edit: the reference content of the new object and the
// staging bytes, garbage outside the dirty ranges so that a plan reading
// staging where it must not is caught.
type edit struct {
	want    []byte
	staging []byte
	dirty   []Range
}

func newEdit(rng *rand.Rand, base []byte, size int64) *edit {
	e := &edit{want: make([]byte, size), staging: make([]byte, size)}
	copy(e.want, base)
	for i := range e.staging {
		e.staging[i] = 0xEE
	}
	_ = rng
	return e
}

// write records a pwrite of n random bytes at off.
func (e *edit) write(rng *rand.Rand, off, n int64) {
	for i := off; i < off+n; i++ {
		b := byte(rng.IntN(256))
		e.want[i], e.staging[i] = b, b
	}
	e.dirty = append(e.dirty, Range{off, n})
}

func randBytes(rng *rand.Rand, n int64) []byte {
	b := make([]byte, n+8)
	for i := int64(0); i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	return b[:n]
}

func checkObject(t *testing.T, s *memstore.Store, key string, want []byte) {
	t.Helper()
	got, _, ok := s.Object(key)
	if !ok {
		t.Fatalf("object %q missing", key)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Fatalf("object %q: %d bytes, want %d; first difference at %d", key, len(got), len(want), i)
	}
}

// The budget: append 1 MiB to a 256 MiB object, or pwrite 4 KiB
// into its middle, must send and fetch at most 40 MiB each; the plan does
// far better.
func TestBudgetBigObject(t *testing.T) {
	const size = budgetSize
	rng := rand.New(rand.NewPCG(1, 2))
	base := randBytes(rng, size)
	for _, c := range []struct {
		name                string
		newSize, off, n     int64
		maxSent, maxFetched int64
	}{
		{"append 1 MiB", size + 1<<20, size, 1 << 20, 1 << 20, 0},
		{"pwrite 4 KiB in the middle", size, size/2 + 12345, 4 << 10, 5 << 20, 5 << 20},
		{"pwrite 4 KiB at the start", size, 0, 4 << 10, 5 << 20, 5 << 20},
		{"pwrite 4 KiB near the end", size, size - 6000, 4 << 10, 5 << 20, 5 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := memstore.New(memstore.Options{})
			etag := s.Put("big", base, objstore.PutOptions{})
			e := newEdit(rng, base, c.newSize)
			e.write(rng, c.off, c.n)
			s.ResetStats()
			res, err := Apply(ctx, s, Edit{Key: "big", Base: &Base{Key: "big", ETag: etag, Size: size}, Size: c.newSize,
				Dirty: e.dirty, Data: bytes.NewReader(e.staging)}, Policy{})
			if err != nil {
				t.Fatal(err)
			}
			checkObject(t, s, "big", e.want)
			tot := s.Stats().Total()
			t.Logf("%s: %d parts, sent %d, fetched %d, copied %d (plan %d/%d/%d), %d requests",
				c.name, len(res.Plan.Parts), tot.BytesSent, tot.BytesReturned, tot.BytesCopied,
				res.Plan.Send, res.Plan.Fetch, res.Plan.Copied, tot.Calls)
			if tot.BytesSent > c.maxSent || tot.BytesReturned > c.maxFetched {
				t.Errorf("sent %d (max %d), fetched %d (max %d)", tot.BytesSent, c.maxSent, tot.BytesReturned, c.maxFetched)
			}
			if tot.BytesSent != res.Plan.Send || tot.BytesReturned != res.Plan.Fetch || tot.BytesCopied != res.Plan.Copied {
				t.Errorf("the plan's costs differ from the store's counters")
			}
			if len(s.Pending()) != 0 {
				t.Errorf("uploads left pending: %v", s.Pending())
			}
		})
	}
}

// testPolicy shrinks every size so that random edits span many parts.
var testPolicy = Policy{MinPartSize: 64, PartSize: 100, CopyPartSize: 300, SingleMax: 150, MaxInFlight: 3}

func testStore() *memstore.Store { return memstore.New(memstore.Options{MinPartSize: 64}) }

// randomEdit builds a random edit of base: truncates (shrink and regrow,
// marked dirty as Edit requires), appends and pwrites.
func randomEdit(rng *rand.Rand, base []byte) *edit {
	baseSize := int64(len(base))
	size := baseSize
	switch rng.IntN(4) {
	case 0:
		size = rng.Int64N(baseSize + 1)
	case 1:
		size = baseSize + rng.Int64N(2000)
	}
	e := newEdit(rng, base, size)
	if rng.IntN(4) == 0 && size > 0 {
		// Shrink below the base, then grow back: the regrown range reads
		// zeros and is dirty.
		cut := rng.Int64N(size)
		clear(e.want[cut:])
		clear(e.staging[cut:])
		e.dirty = append(e.dirty, Range{cut, size - cut})
	}
	for range rng.IntN(6) {
		if size == 0 {
			break
		}
		off := rng.Int64N(size)
		n := 1 + rng.Int64N(min(size-off, []int64{8, 100, 1000}[rng.IntN(3)]))
		e.write(rng, off, n)
	}
	return e
}

func TestRandomEdits(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 1500 {
		s := testStore()
		var base *Base
		var baseData []byte
		if rng.IntN(8) > 0 {
			baseData = randBytes(rng, rng.Int64N(5000))
			base = &Base{Key: "k", ETag: s.Put("k", baseData, objstore.PutOptions{}), Size: int64(len(baseData))}
		}
		e := randomEdit(rng, baseData)
		key := "k"
		if rng.IntN(4) == 0 {
			key = "other" // a copy-on-write to another key
		}
		s.ResetStats()
		res, err := Apply(ctx, s, Edit{Key: key, Base: base, Size: int64(len(e.want)), Dirty: e.dirty,
			Data: bytes.NewReader(e.staging), Opts: objstore.PutOptions{Metadata: map[string]string{"i": fmt.Sprint(i)}}}, testPolicy)
		if err != nil {
			t.Fatalf("edit %d: %v", i, err)
		}
		checkObject(t, s, key, e.want)
		if _, info, _ := s.Object(key); info.Metadata["i"] != fmt.Sprint(i) || info.ETag != res.ETag {
			t.Fatalf("edit %d: metadata or etag not written: %+v vs %s", i, info, res.ETag)
		}
		if st := s.Stats().Total(); st.BytesReturned != res.Plan.Fetch || st.BytesSent != res.Plan.Send {
			t.Fatalf("edit %d: store counted sent %d fetched %d, plan %+v", i, st.BytesSent, st.BytesReturned, res.Plan)
		}
		if base != nil && res.Plan.Fetch > int64(len(e.want)) {
			t.Fatalf("edit %d fetched %d bytes for a %d-byte object", i, res.Plan.Fetch, len(e.want))
		}
		if len(s.Pending()) != 0 {
			t.Fatalf("edit %d left uploads pending", i)
		}
	}
}

// checkPlan verifies the plan's structure against S3's rules.
func checkPlan(t *testing.T, plan Plan, size, minPart int64) {
	t.Helper()
	if len(plan.Parts) > objstore.MaxParts {
		t.Fatalf("%d parts", len(plan.Parts))
	}
	at := int64(0)
	for i, pt := range plan.Parts {
		if pt.Off != at || pt.Number != int32(i+1) {
			t.Fatalf("part %d at %d (number %d), want %d", i, pt.Off, pt.Number, at)
		}
		if i < len(plan.Parts)-1 && pt.Len < minPart || pt.Len > objstore.MaxPartSize {
			t.Fatalf("part %d of %d has %d bytes", pt.Number, len(plan.Parts), pt.Len)
		}
		at += pt.Len
	}
	if at != size {
		t.Fatalf("parts cover %d of %d bytes", at, size)
	}
}

// Plans of huge objects are checked without data.
func TestPlanHuge(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const tib = 1 << 40
	for i := range 60 {
		baseSize := rng.Int64N(5 * tib)
		size := baseSize + rng.Int64N(objstore.MaxObjectSize-baseSize+1)
		if i%3 == 0 {
			size = rng.Int64N(baseSize + 1)
		}
		var dirty []Range
		for range rng.IntN(3000) {
			dirty = append(dirty, Range{rng.Int64N(max(size, 1)), 1 + rng.Int64N(1<<20)})
		}
		plan, err := PlanEdit(Edit{Key: "k", Base: &Base{Key: "k", Size: baseSize}, Size: size, Dirty: dirty, Data: bytes.NewReader(nil)}, Policy{})
		if err != nil {
			t.Fatal(err)
		}
		if plan.Kind == KindMultipart {
			checkPlan(t, plan, size, objstore.MinPartSize)
		}
	}
	// Scattered writes every 5 MiB of a 5 TiB object: far more groups
	// than parts allowed; the planner merges until it fits.
	var dirty []Range
	for off := int64(0); off < 5*tib; off += 5 << 20 {
		dirty = append(dirty, Range{off, 1})
	}
	plan, err := PlanEdit(Edit{Key: "k", Base: &Base{Key: "k", Size: 5 * tib}, Size: 5 * tib, Dirty: dirty, Data: bytes.NewReader(nil)}, Policy{})
	if err != nil {
		t.Fatal(err)
	}
	checkPlan(t, plan, 5*tib, objstore.MinPartSize)
}

func TestPlanShapes(t *testing.T) {
	const size = 256 << 20
	base := &Base{Key: "k", ETag: `"e"`, Size: size}
	plan := func(e Edit) Plan {
		t.Helper()
		e.Key, e.Data = "k", bytes.NewReader(nil)
		if e.Base == nil {
			e.Base = base
		}
		p, err := PlanEdit(e, Policy{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if p := plan(Edit{Size: size}); p.Kind != KindCopy || p.Send != 0 || p.Fetch != 0 {
		t.Errorf("metadata-only change: %+v", p)
	}
	if p := plan(Edit{Size: 100 << 20}); p.Kind != KindMultipart || p.Send != 0 || p.Fetch != 0 {
		t.Errorf("shrink to 100 MiB: %s sends %d fetches %d", p.Kind, p.Send, p.Fetch)
	}
	if p := plan(Edit{Size: 3 << 20}); p.Kind != KindPut || p.Send != 3<<20 || p.Fetch != 3<<20 {
		t.Errorf("shrink to 3 MiB: %s sends %d fetches %d", p.Kind, p.Send, p.Fetch)
	}
	if p := plan(Edit{Size: size + 1}); p.Kind != KindMultipart || p.Send != 1 || p.Fetch != 0 {
		t.Errorf("extend by a byte: %s sends %d fetches %d", p.Kind, p.Send, p.Fetch)
	}
	// Two writes 3 MiB apart share one part (a 3 MiB copy part could not
	// stand between them).
	p := plan(Edit{Size: size, Dirty: []Range{{100 << 20, 10}, {103 << 20, 10}}})
	if p.Send != 5<<20 || len(p.Parts[1].Fetches) != 1 {
		t.Errorf("two nearby writes: sends %d in %d fetches", p.Send, len(p.Parts[1].Fetches))
	}
}

func TestTruncate(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	base := randBytes(rng, 2000)
	for _, size := range []int64{0, 1, 63, 64, 500, 1999, 2000, 2001, 5000} {
		s := testStore()
		etag := s.Put("k", base, objstore.PutOptions{})
		if _, err := Truncate(ctx, s, "k", Base{Key: "k", ETag: etag, Size: 2000}, size, objstore.PutOptions{}, testPolicy); err != nil {
			t.Fatalf("truncate to %d: %v", size, err)
		}
		want := make([]byte, size)
		copy(want, base)
		checkObject(t, s, "k", want)
	}
}

// Every failure leaves the old object as it was and aborts the upload.
func TestFailuresKeepOldObject(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	baseData := randBytes(rng, 3000)
	for _, op := range []objstore.Op{objstore.OpCreateMultipart, objstore.OpUploadPart, objstore.OpUploadPartCopy,
		objstore.OpGetRange, objstore.OpCompleteMultipart} {
		for after := range 4 {
			t.Run(fmt.Sprint(op, "/", after), func(t *testing.T) {
				mem := testStore()
				etag := mem.Put("k", baseData, objstore.PutOptions{})
				fs := faultstore.New(mem)
				h := fs.Add(faultstore.Rule{Ops: []objstore.Op{op}, After: after, Err: faultstore.ErrInjected})
				e := newEdit(rng, baseData, 3500)
				e.write(rng, 1000, 10)
				e.write(rng, 2000, 10)
				_, err := Apply(ctx, fs, Edit{Key: "k", Base: &Base{Key: "k", ETag: etag, Size: 3000}, Size: 3500,
					Dirty: e.dirty, Data: bytes.NewReader(e.staging)}, testPolicy)
				if h.Hits() == 0 {
					// Fewer calls of op than after+1: the edit must succeed.
					if err != nil {
						t.Fatal(err)
					}
					checkObject(t, mem, "k", e.want)
					return
				}
				if !errors.Is(err, faultstore.ErrInjected) {
					t.Fatalf("err = %v", err)
				}
				checkObject(t, mem, "k", baseData)
				if p := mem.Pending(); len(p) != 0 {
					t.Fatalf("upload not aborted: %v", p)
				}
			})
		}
	}
}

// smallEdit writes a 3000-byte base to mem and returns its content and
// the Edit of a 10-byte pwrite into its middle.
func smallEdit(mem *memstore.Store, seed uint64) ([]byte, Edit) {
	rng := rand.New(rand.NewPCG(seed, seed))
	old := randBytes(rng, 3000)
	etag := mem.Put("k", old, objstore.PutOptions{})
	e := newEdit(rng, old, 3000)
	e.write(rng, 1500, 10)
	return old, Edit{Key: "k", Base: &Base{Key: "k", ETag: etag, Size: 3000}, Size: 3000,
		Dirty: e.dirty, Data: bytes.NewReader(e.staging)}
}

// applyFails applies ed through store, expecting an error matching want,
// the object at "k" to read keep and no upload pending.
func applyFails(t *testing.T, store objstore.ObjectStore, mem *memstore.Store, ed Edit, p Policy, want error, keep []byte) {
	t.Helper()
	if _, err := Apply(ctx, store, ed, p); !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	checkObject(t, mem, "k", keep)
	if len(mem.Pending()) != 0 {
		t.Fatal("upload not aborted")
	}
}

// A base that changed under the edit fails it with ErrPreconditionFailed:
// never a mix of two versions.
func TestBaseChanged(t *testing.T) {
	mem := testStore()
	_, ed := smallEdit(mem, 11)
	newer := bytes.Repeat([]byte("n"), 3000)
	mem.Put("k", newer, objstore.PutOptions{})
	applyFails(t, mem, mem, ed, testPolicy, objstore.ErrPreconditionFailed, newer)
}

// Each part request has its own deadline: one stuck part fails the edit
// (and aborts) instead of hanging it.
func TestPartDeadline(t *testing.T) {
	mem := testStore()
	old, ed := smallEdit(mem, 13)
	fs := faultstore.New(mem)
	fs.Add(faultstore.Rule{Ops: []objstore.Op{objstore.OpUploadPart}, Latency: time.Hour})
	p := testPolicy
	p.PartTimeout = 50 * time.Millisecond
	applyFails(t, fs, mem, ed, p, context.DeadlineExceeded, old)
}

package faultstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/novitalabs/bucketfs/internal/memstore"
	"github.com/novitalabs/bucketfs/internal/objstore"
)

var ctx = context.Background()

func newStore() (*Store, *memstore.Store) {
	mem := memstore.New(memstore.Options{})
	mem.Put("a/1", []byte("one"), objstore.PutOptions{})
	mem.Put("b/2", []byte("two"), objstore.PutOptions{})
	return New(mem), mem
}

func head(s *Store, key string) error {
	_, err := s.Head(ctx, key)
	return err
}

func TestPassThrough(t *testing.T) {
	s, mem := newStore()
	if err := head(s, "a/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Upload(ctx, "c", strings.NewReader("x"), 1, objstore.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if d, _, _ := mem.Object("c"); string(d) != "x" {
		t.Errorf("upload did not reach the store: %q", d)
	}
	if s.Calls(objstore.OpHead) != 1 || s.Calls(objstore.OpUpload) != 1 {
		t.Errorf("calls: head %d upload %d", s.Calls(objstore.OpHead), s.Calls(objstore.OpUpload))
	}
}

func TestAfterNForK(t *testing.T) {
	s, _ := newStore()
	h := s.Add(Rule{Ops: []objstore.Op{objstore.OpHead}, After: 2, Times: 3, Err: ErrInjected})
	var got []bool
	for range 7 {
		got = append(got, head(s, "a/1") != nil)
	}
	want := []bool{false, false, true, true, true, false, false}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("failures by call = %v, want %v", got, want)
		}
	}
	if h.Hits() != 3 {
		t.Errorf("hits %d", h.Hits())
	}
	// Other operations are not affected.
	if _, err := s.List(ctx, "", "", "", 0); err != nil {
		t.Errorf("List: %v", err)
	}
}

func TestPerKeyAndPredicate(t *testing.T) {
	s, _ := newStore()
	s.Add(Rule{KeyPrefix: "a/", Err: ErrInjected})
	if err := head(s, "a/1"); !errors.Is(err, ErrInjected) {
		t.Errorf("a/1: %v", err)
	}
	if err := head(s, "b/2"); err != nil {
		t.Errorf("b/2: %v", err)
	}
	s.Clear()
	myErr := errors.New("mine")
	h := s.Add(Rule{Match: func(op objstore.Op, key string) bool { return op == objstore.OpGetRange && key == "b/2" }, Err: myErr})
	if _, err := s.GetRange(ctx, "b/2", 0, 1, ""); !errors.Is(err, myErr) || !strings.Contains(err.Error(), `"b/2"`) {
		t.Errorf("GetRange b/2: %v", err)
	}
	if err := head(s, "b/2"); err != nil {
		t.Errorf("Head b/2: %v", err)
	}
	h.Remove()
	if _, err := s.GetRange(ctx, "b/2", 0, 1, ""); err != nil {
		t.Errorf("after Remove: %v", err)
	}
}

func TestAfterCall(t *testing.T) {
	s, mem := newStore()
	s.Add(Rule{Ops: []objstore.Op{objstore.OpUpload, objstore.OpGetRange}, Err: ErrInjected, AfterCall: true})
	if _, err := s.Upload(ctx, "lost", strings.NewReader("y"), 1, objstore.PutOptions{}); !errors.Is(err, ErrInjected) {
		t.Errorf("Upload: %v", err)
	}
	if d, _, ok := mem.Object("lost"); !ok || string(d) != "y" {
		t.Errorf("an after-call failure must still reach the store: %q %v", d, ok)
	}
	if body, err := s.GetRange(ctx, "a/1", 0, 1, ""); !errors.Is(err, ErrInjected) || body != nil {
		t.Errorf("GetRange: %v %v", body, err)
	}
}

func TestOutage(t *testing.T) {
	s, mem := newStore()
	s.SetOutage(true)
	for _, err := range []error{
		head(s, "a/1"),
		s.Delete(ctx, "a/1"),
		func() error { _, err := s.ListMultipart(ctx, ""); return err }(),
		func() error { _, err := s.Copy(ctx, "a/1", "z", "", nil); return err }(),
	} {
		if !errors.Is(err, objstore.ErrUnreachable) {
			t.Errorf("during outage: %v", err)
		}
	}
	if _, _, ok := mem.Object("a/1"); !ok {
		t.Error("a call during the outage reached the store")
	}
	s.SetOutage(false)
	if err := head(s, "a/1"); err != nil {
		t.Errorf("after restore: %v", err)
	}
}

func TestLatency(t *testing.T) {
	s, _ := newStore()
	s.Add(Rule{Ops: []objstore.Op{objstore.OpHead}, Latency: time.Hour})
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { _, err := s.Head(cctx, "a/1"); done <- err }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("delayed call after cancel: %v", err)
	}
	s.Clear()
	// A latency-only rule delays but does not fail (a short one, so the
	// test stays quick; no timing is asserted).
	s.Add(Rule{Latency: time.Millisecond})
	if err := head(s, "a/1"); err != nil {
		t.Errorf("latency-only rule failed the call: %v", err)
	}
}

// Package faultstore wraps an objstore.ObjectStore and injects failures and
// latency by rule: per operation, per key (prefix or predicate), after N
// matching calls, for the next K, before or after the call reaches the
// store; and an outage switch under which every call fails as an
// unreachable endpoint until it is restored.
package faultstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/novitalabs/bucketfs/internal/objstore"
)

// ErrInjected is the default error of a failing rule.
var ErrInjected = errors.New("faultstore: injected failure")

// errOutage is what calls fail with during an outage; it wraps
// objstore.ErrUnreachable as a dead endpoint does.
var errOutage = fmt.Errorf("faultstore: outage: %w", objstore.ErrUnreachable)

// Rule describes one fault. A call matches when its operation is in Ops
// (empty: every operation), its key has KeyPrefix and Match (if set)
// returns true. The key of Copy and UploadPartCopy is the destination; of
// List and ListMultipart, the prefix.
//
// Of the matching calls, the first After pass untouched; each of the next
// Times (0: all the rest) is delayed by Latency, then, if Err is set, fails
// with it (wrapped with the operation and key). With AfterCall the call is
// made first and its result replaced by the error: the store did the work
// but the caller hears a failure, as when a response is lost.
type Rule struct {
	Ops       []objstore.Op
	KeyPrefix string
	Match     func(op objstore.Op, key string) bool // called under the Store's lock: must not call it

	After int
	Times int

	Latency   time.Duration
	Err       error
	AfterCall bool
}

// Fail is shorthand for a rule failing every call of ops with ErrInjected.
func Fail(ops ...objstore.Op) Rule { return Rule{Ops: ops, Err: ErrInjected} }

// Handle refers to an added rule.
type Handle struct {
	s *Store
	r *rule
}

// Remove removes the rule.
func (h *Handle) Remove() {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	h.s.rules = slices.DeleteFunc(h.s.rules, func(r *rule) bool { return r == h.r })
}

// Hits returns how many calls the rule has acted on (delayed or failed).
func (h *Handle) Hits() int {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return h.r.hits
}

type rule struct {
	Rule
	seen int // matching calls so far
	hits int // calls acted on
}

// Store is the fault-injecting wrapper. It is safe for concurrent use.
type Store struct {
	next objstore.ObjectStore

	mu     sync.Mutex // guards rules, outage and calls
	rules  []*rule
	outage bool
	calls  map[objstore.Op]int
}

var _ objstore.ObjectStore = (*Store)(nil)

// New wraps next.
func New(next objstore.ObjectStore) *Store {
	return &Store{next: next, calls: map[objstore.Op]int{}}
}

// Add installs a rule; rules are consulted in the order added and the
// first that acts on a call decides its failure (latencies add up).
func (s *Store) Add(r Rule) *Handle {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := &Handle{s: s, r: &rule{Rule: r}}
	s.rules = append(s.rules, h.r)
	return h
}

// Clear removes every rule (the outage switch is left as it is).
func (s *Store) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = nil
}

// SetOutage turns the outage on (every call fails with an error wrapping
// objstore.ErrUnreachable without reaching the store) or off.
func (s *Store) SetOutage(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outage = on
}

// Calls returns how many calls of op were made to the wrapper, including
// the failed ones.
func (s *Store) Calls(op objstore.Op) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// fault is what to do with one call.
type fault struct {
	latency   time.Duration
	err       error
	afterCall bool
}

// decide counts the call and returns its fault.
func (s *Store) decide(op objstore.Op, key string) fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[op]++
	var f fault
	if s.outage {
		f.err = errOutage
		return f
	}
	for _, r := range s.rules {
		if len(r.Ops) > 0 && !slices.Contains(r.Ops, op) || !strings.HasPrefix(key, r.KeyPrefix) ||
			r.Match != nil && !r.Match(op, key) {
			continue
		}
		r.seen++
		if r.seen <= r.After || r.Times > 0 && r.seen > r.After+r.Times {
			continue
		}
		r.hits++
		f.latency += r.Latency
		if f.err == nil && r.Err != nil {
			f.err, f.afterCall = r.Err, r.AfterCall
		}
	}
	return f
}

// before applies the fault's latency and, unless it is to come after the
// call, its error. It returns the error the call must fail with now.
func (f fault) before(ctx context.Context, op objstore.Op, key string) error {
	if f.latency > 0 {
		t := time.NewTimer(f.latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return &objstore.Error{Op: op, Key: key, Err: ctx.Err()}
		}
	}
	if f.err != nil && !f.afterCall {
		return &objstore.Error{Op: op, Key: key, Err: f.err}
	}
	return nil
}

// after returns the error to report in place of the call's result.
func (f fault) after(op objstore.Op, key string) error {
	if f.err != nil && f.afterCall {
		return &objstore.Error{Op: op, Key: key, Err: f.err}
	}
	return nil
}

// call runs fn under the fault decided for (op, key).
func call[T any](s *Store, ctx context.Context, op objstore.Op, key string, fn func() (T, error)) (T, error) {
	var zero T
	f := s.decide(op, key)
	if err := f.before(ctx, op, key); err != nil {
		return zero, err
	}
	v, err := fn()
	if err != nil {
		return v, err
	}
	if err := f.after(op, key); err != nil {
		if c, ok := any(v).(io.Closer); ok {
			_ = c.Close() // a body the caller will never see
		}
		return zero, err
	}
	return v, nil
}

// Head implements objstore.ObjectStore.
func (s *Store) Head(ctx context.Context, key string) (objstore.ObjectInfo, error) {
	return call(s, ctx, objstore.OpHead, key, func() (objstore.ObjectInfo, error) { return s.next.Head(ctx, key) })
}

// Peek implements objstore.ObjectStore.
func (s *Store) Peek(ctx context.Context, key string, max int64) (objstore.ObjectInfo, []byte, error) {
	type peeked struct {
		info objstore.ObjectInfo
		body []byte
	}
	p, err := call(s, ctx, objstore.OpPeek, key, func() (peeked, error) {
		info, body, err := s.next.Peek(ctx, key, max)
		return peeked{info, body}, err
	})
	return p.info, p.body, err
}

// List implements objstore.ObjectStore.
func (s *Store) List(ctx context.Context, prefix, delimiter, token string, maxKeys int) (objstore.ListResult, error) {
	return call(s, ctx, objstore.OpList, prefix, func() (objstore.ListResult, error) {
		return s.next.List(ctx, prefix, delimiter, token, maxKeys)
	})
}

// GetRange implements objstore.ObjectStore.
func (s *Store) GetRange(ctx context.Context, key string, off, n int64, ifMatch string) (io.ReadCloser, error) {
	return call(s, ctx, objstore.OpGetRange, key, func() (io.ReadCloser, error) { return s.next.GetRange(ctx, key, off, n, ifMatch) })
}

// Upload implements objstore.ObjectStore.
func (s *Store) Upload(ctx context.Context, key string, r io.ReaderAt, size int64, opts objstore.PutOptions) (string, error) {
	return call(s, ctx, objstore.OpUpload, key, func() (string, error) { return s.next.Upload(ctx, key, r, size, opts) })
}

// CreateMultipart implements objstore.ObjectStore.
func (s *Store) CreateMultipart(ctx context.Context, key string, opts objstore.PutOptions) (string, error) {
	return call(s, ctx, objstore.OpCreateMultipart, key, func() (string, error) { return s.next.CreateMultipart(ctx, key, opts) })
}

// UploadPart implements objstore.ObjectStore.
func (s *Store) UploadPart(ctx context.Context, key, uploadID string, number int32, r io.ReadSeeker, size int64) (string, error) {
	return call(s, ctx, objstore.OpUploadPart, key, func() (string, error) {
		return s.next.UploadPart(ctx, key, uploadID, number, r, size)
	})
}

// UploadPartCopy implements objstore.ObjectStore.
func (s *Store) UploadPartCopy(ctx context.Context, key, uploadID string, number int32, srcKey string, off, n int64, srcIfMatch string) (string, error) {
	return call(s, ctx, objstore.OpUploadPartCopy, key, func() (string, error) {
		return s.next.UploadPartCopy(ctx, key, uploadID, number, srcKey, off, n, srcIfMatch)
	})
}

// CompleteMultipart implements objstore.ObjectStore.
func (s *Store) CompleteMultipart(ctx context.Context, key, uploadID string, parts []objstore.CompletedPart) (string, error) {
	return call(s, ctx, objstore.OpCompleteMultipart, key, func() (string, error) {
		return s.next.CompleteMultipart(ctx, key, uploadID, parts)
	})
}

// AbortMultipart implements objstore.ObjectStore.
func (s *Store) AbortMultipart(ctx context.Context, key, uploadID string) error {
	_, err := call(s, ctx, objstore.OpAbortMultipart, key, func() (struct{}, error) {
		return struct{}{}, s.next.AbortMultipart(ctx, key, uploadID)
	})
	return err
}

// ListMultipart implements objstore.ObjectStore.
func (s *Store) ListMultipart(ctx context.Context, prefix string) ([]objstore.MultipartUpload, error) {
	return call(s, ctx, objstore.OpListMultipart, prefix, func() ([]objstore.MultipartUpload, error) {
		return s.next.ListMultipart(ctx, prefix)
	})
}

// Copy implements objstore.ObjectStore.
func (s *Store) Copy(ctx context.Context, src, dst string, srcIfMatch string, opts *objstore.PutOptions) (string, error) {
	return call(s, ctx, objstore.OpCopy, dst, func() (string, error) { return s.next.Copy(ctx, src, dst, srcIfMatch, opts) })
}

// DeleteMany implements objstore.ObjectStore; rules see the first key.
func (s *Store) DeleteMany(ctx context.Context, keys []string) error {
	first := ""
	if len(keys) > 0 {
		first = keys[0]
	}
	_, err := call(s, ctx, objstore.OpDeleteMany, first, func() (struct{}, error) { return struct{}{}, s.next.DeleteMany(ctx, keys) })
	return err
}

// Delete implements objstore.ObjectStore.
func (s *Store) Delete(ctx context.Context, key string) error {
	_, err := call(s, ctx, objstore.OpDelete, key, func() (struct{}, error) { return struct{}{}, s.next.Delete(ctx, key) })
	return err
}

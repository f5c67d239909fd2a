package compose

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"

	"golang.org/x/sync/errgroup"

	"github.com/novitalabs/bucketfs/internal/objstore"
)

// Result is what Apply did.
type Result struct {
	ETag string // of the new object
	Plan Plan
}

// Apply writes the object e describes, as PlanEdit plans it, and returns
// its new ETag. Every read and copy of the base is pinned to Base.ETag, so
// if the base changed meanwhile Apply fails with ErrPreconditionFailed
// instead of mixing two versions. The object at e.Key changes only at the
// final PUT, Copy or CompleteMultipart: on any failure it is left as it
// was, and a multipart upload Apply started is aborted. Requests are not
// retried here (the store's client retries each request; the caller
// retries the edit).
func Apply(ctx context.Context, store objstore.ObjectStore, e Edit, p Policy) (Result, error) {
	p = p.withDefaults()
	plan, err := PlanEdit(e, p)
	if err != nil {
		return Result{}, err
	}
	res := Result{Plan: plan}
	switch plan.Kind {
	case KindCopy:
		err = withTimeout(ctx, p, func(ctx context.Context) (err error) {
			res.ETag, err = store.Copy(ctx, e.Base.Key, e.Key, e.Base.ETag, &e.Opts)
			return err
		})
	case KindPut:
		var r io.ReaderAt
		if r, err = partReader(ctx, store, e, plan.Parts[0], p); err == nil {
			err = withTimeout(ctx, p, func(ctx context.Context) (err error) {
				res.ETag, err = store.Upload(ctx, e.Key, r, e.Size, e.Opts)
				return err
			})
		}
	default:
		res.ETag, err = applyMultipart(ctx, store, e, plan, p)
	}
	if err != nil {
		return Result{}, fmt.Errorf("compose: write %q (%s): %w", e.Key, plan.Kind, err)
	}
	return res, nil
}

// Truncate writes key as base cut or extended to size: a shrink copies
// the prefix server-side, an extension copies the base and uploads zeros.
func Truncate(ctx context.Context, store objstore.ObjectStore, key string, base Base, size int64, opts objstore.PutOptions, p Policy) (Result, error) {
	return Apply(ctx, store, Edit{Key: key, Base: &base, Size: size, Opts: opts}, p)
}

func applyMultipart(ctx context.Context, store objstore.ObjectStore, e Edit, plan Plan, p Policy) (string, error) {
	var uploadID string
	opts := e.Opts
	opts.PartCopies = slices.ContainsFunc(plan.Parts, func(pt Part) bool { return pt.Copy })
	err := withTimeout(ctx, p, func(ctx context.Context) (err error) {
		uploadID, err = store.CreateMultipart(ctx, e.Key, opts)
		return err
	})
	if err != nil {
		return "", err
	}
	done := make([]objstore.CompletedPart, len(plan.Parts))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.MaxInFlight)
	for i, pt := range plan.Parts {
		if gctx.Err() != nil {
			break // a part failed: start no more
		}
		g.Go(func() error {
			etag, err := writePart(gctx, store, e, uploadID, pt, p)
			if err != nil {
				return fmt.Errorf("part %d [%d, %d): %w", pt.Number, pt.Off, pt.end(), err)
			}
			done[i] = objstore.CompletedPart{Number: pt.Number, ETag: etag} // one index per goroutine
			return nil
		})
	}
	err = g.Wait()
	if err == nil {
		err = ctx.Err() // the loop may have stopped early on the caller's context
	}
	var etag string
	if err == nil {
		err = withTimeout(ctx, p, func(ctx context.Context) (err error) {
			etag, err = store.CompleteMultipart(ctx, e.Key, uploadID, done)
			return err
		})
	}
	if err != nil {
		abortQuietly(ctx, store, e.Key, uploadID, p)
		return "", err
	}
	return etag, nil
}

// writePart sends one part: a copy of the base's range, or the part's
// bytes assembled from Data, the base and zeros.
func writePart(ctx context.Context, store objstore.ObjectStore, e Edit, uploadID string, pt Part, p Policy) (etag string, err error) {
	if pt.Copy {
		err = withTimeout(ctx, p, func(ctx context.Context) (err error) {
			etag, err = store.UploadPartCopy(ctx, e.Key, uploadID, pt.Number, e.Base.Key, pt.Off, pt.Len, e.Base.ETag)
			return err
		})
		return etag, err
	}
	r, err := partReader(ctx, store, e, pt, p)
	if err != nil {
		return "", err
	}
	err = withTimeout(ctx, p, func(ctx context.Context) (err error) {
		etag, err = store.UploadPart(ctx, e.Key, uploadID, pt.Number, io.NewSectionReader(r, 0, pt.Len), pt.Len)
		return err
	})
	return etag, err
}

// partReader fetches the base bytes an upload part needs (into memory: at
// most the part's size) and returns a reader of the part's content, at
// offsets relative to the part's start.
func partReader(ctx context.Context, store objstore.ObjectStore, e Edit, pt Part, p Policy) (io.ReaderAt, error) {
	fetched := make([]fetchedRange, 0, len(pt.Fetches))
	for _, f := range pt.Fetches {
		buf := make([]byte, f.Len)
		err := withTimeout(ctx, p, func(ctx context.Context) error {
			body, err := store.GetRange(ctx, e.Base.Key, f.Off, f.Len, e.Base.ETag)
			if err != nil {
				return err
			}
			defer body.Close()
			if _, err := io.ReadFull(body, buf); err != nil {
				return fmt.Errorf("read base %q [%d, %d): %w", e.Base.Key, f.Off, f.end(), err)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		fetched = append(fetched, fetchedRange{f, buf})
	}
	return &assembled{part: pt, data: e.Data, fetched: fetched}, nil
}

type fetchedRange struct {
	Range
	buf []byte
}

// assembled reads a part's content from its segments' sources.
type assembled struct {
	part    Part
	data    io.ReaderAt
	fetched []fetchedRange
}

// ReadAt implements io.ReaderAt at offsets relative to the part's start.
func (a *assembled) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("compose: negative offset %d", off)
	}
	if off >= a.part.Len {
		return 0, io.EOF
	}
	want := min(int64(len(p)), a.part.Len-off)
	pos := a.part.Off + off // object offset
	n := int64(0)
	for _, s := range a.part.Segments {
		if n == want {
			break
		}
		if s.end() <= pos+n {
			continue
		}
		from := pos + n
		chunk := p[n:min(want, n+s.end()-from)]
		switch s.Src {
		case FromData:
			m, err := a.data.ReadAt(chunk, from)
			if m < len(chunk) {
				return int(n) + m, fmt.Errorf("compose: read staged bytes [%d, %d): %w", from, from+int64(len(chunk)), shortErr(err))
			}
		case FromBase:
			f := a.fetchedAt(from)
			copy(chunk, f.buf[from-f.Off:])
		case FromZero:
			clear(chunk)
		}
		n += int64(len(chunk))
	}
	if n < int64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// fetchedAt returns the fetched range holding object offset x (the plan
// guarantees one holds every base segment, whole).
func (a *assembled) fetchedAt(x int64) fetchedRange {
	for _, f := range a.fetched {
		if f.Off <= x && x < f.end() {
			return f
		}
	}
	panic(fmt.Sprintf("compose: no fetched range holds offset %d", x))
}

func shortErr(err error) error {
	if err == nil || err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// withTimeout runs one request under its own deadline.
func withTimeout(ctx context.Context, p Policy, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, p.PartTimeout)
	defer cancel()
	return fn(ctx)
}

// abortQuietly aborts a failed upload on a fresh, bounded context (ctx may
// be why it failed) and only logs a failure: the caller needs the upload's
// own error, and a restarted daemon's ListMultipart cleans up what is left.
func abortQuietly(ctx context.Context, store objstore.ObjectStore, key, uploadID string, p Policy) {
	if err := withTimeout(context.WithoutCancel(ctx), p, func(ctx context.Context) error {
		return store.AbortMultipart(ctx, key, uploadID)
	}); err != nil {
		slog.Warn("compose: abort of failed multipart upload failed; its parts linger until aborted",
			"key", key, "upload_id", uploadID, "err", err)
	}
}

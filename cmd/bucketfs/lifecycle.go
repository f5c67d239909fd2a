package main

// The parts of the daemon's life that sandboxes and supervisors rely on:
// replacing a dead mount at start, the ready file, the metrics endpoint,
// and the shutdown deadline imposed on the store.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/novitalabs/bucketfs/internal/metrics"
	"github.com/novitalabs/bucketfs/s3backend"
)

// errDeadMount marks a mountpoint whose FUSE daemon is gone: every request
// that reaches the kernel's FUSE connection fails with ENOTCONN
// ("Transport endpoint is not connected").
var errDeadMount = errors.New("dead FUSE mount")

// replaceDeadMount detaches a dead FUSE mount left on mnt by a daemon that
// crashed or was killed, so that a restart on the same directory works
// without a manual "umount -l". Live mounts are left alone (the mountpoint
// check refuses them). Several dead mounts may be stacked; each is removed.
func replaceDeadMount(mnt string, log *slog.Logger) error {
	for range 8 {
		if !isDeadMount(mnt) {
			return nil
		}
		source := ""
		for _, m := range readMounts() {
			if m.Mountpoint == mnt {
				source = m.Source // the last (topmost) entry wins
			}
		}
		if err := lazyUnmount(mnt); err != nil {
			return fmt.Errorf("mountpoint %s is a dead FUSE mount (transport endpoint is not connected) and could not be detached: %w", mnt, err)
		}
		log.Warn("replaced a dead FUSE mount (its daemon is gone: transport endpoint is not connected)",
			"mountpoint", mnt, "old_source", source)
	}
	return fmt.Errorf("mountpoint %s: dead FUSE mounts keep appearing", mnt)
}

// writeReadyFile atomically creates path holding our pid, so that a
// caller polling for it never reads a partial file. It is world-readable:
// the caller is often a sandbox user, the daemon root.
func writeReadyFile(path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	_, err = io.WriteString(tmp, strconv.Itoa(os.Getpid())+"\n")
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("ready file %s: %w", path, err)
	}
	return nil
}

// removeReadyFile removes the ready file (a missing one is fine).
func removeReadyFile(path string, log *slog.Logger) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Warn("could not remove the ready file", "path", path, "err", err)
	}
}

// startMetrics binds addr and serves /metrics (and /debug/pprof/) in the background. Binding
// happens here, before the mount, so that a taken port is a start-up error
// rather than a log line nobody reads. stop shuts the server down.
func startMetrics(addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler())
	// The Go profiler, as rclone's rc and gcsfuse's debug flags offer it:
	// how a slow mount is diagnosed in the field. It shares the metrics
	// address, which is loopback unless the user binds it elsewhere.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("serving metrics", "addr", "http://"+ln.Addr().String()+"/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// errShutdownDeadline is the cause of store calls cut off at shutdown.
var errShutdownDeadline = errors.New("shutdown deadline passed")

// storeGate cuts off every call of the store it wraps once closed. The
// filesystem runs uploads on contexts of its own (so that FUSE interrupts
// cannot abort them) with the long --upload-timeout, so the shutdown
// deadline cannot reach them through FlushAll's context; closing the gate
// makes them fail at once, and the filesystem then saves their data in the
// recovery directory.
type storeGate struct {
	ctx   context.Context // done once the gate is closed
	close context.CancelCauseFunc
}

func newStoreGate() *storeGate {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &storeGate{ctx: ctx, close: cancel}
}

// wrap returns s behind the gate.
func (g *storeGate) wrap(s s3backend.ObjectStore) s3backend.ObjectStore {
	return &gatedStore{next: s, g: g}
}

// bind returns a context that is also cancelled when the gate closes.
func (g *storeGate) bind(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	stop := context.AfterFunc(g.ctx, func() { cancel(context.Cause(g.ctx)) })
	return ctx, func() { stop(); cancel(context.Canceled) }
}

type gatedStore struct {
	next s3backend.ObjectStore
	g    *storeGate
}

func (s *gatedStore) Head(ctx context.Context, key string) (s3backend.ObjectInfo, error) {
	ctx, cancel := s.g.bind(ctx)
	defer cancel()
	return s.next.Head(ctx, key)
}

func (s *gatedStore) List(ctx context.Context, prefix, delimiter, token string, maxKeys int) (s3backend.ListResult, error) {
	ctx, cancel := s.g.bind(ctx)
	defer cancel()
	return s.next.List(ctx, prefix, delimiter, token, maxKeys)
}

func (s *gatedStore) GetRange(ctx context.Context, key string, off, n int64, ifMatch string) (io.ReadCloser, error) {
	ctx, cancel := s.g.bind(ctx)
	body, err := s.next.GetRange(ctx, key, off, n, ifMatch)
	if err != nil {
		cancel()
		return body, err
	}
	// The body is read after we return: its context lives until Close.
	return &cancelOnClose{ReadCloser: body, cancel: cancel}, nil
}

func (s *gatedStore) Upload(ctx context.Context, key string, r io.ReaderAt, size int64, opts s3backend.PutOptions) (string, error) {
	ctx, cancel := s.g.bind(ctx)
	defer cancel()
	return s.next.Upload(ctx, key, r, size, opts)
}

func (s *gatedStore) CreateMultipart(ctx context.Context, key string, opts s3backend.PutOptions) (string, error) {
	ctx, cancel := s.g.bind(ctx)
	defer cancel()
	return s.next.CreateMultipart(ctx, key, opts)
}

func (s *gatedStore) UploadPart(ctx context.Context, key, uploadID string, number int32, r io.ReadSeeker, size int64) (string, error) {
	ctx, cancel := s.g.bind(ctx)
	defer cancel()
	return s.next.UploadPart(ctx, key, uploadID, number, r, size)
}

func (s *gatedStore) UploadPartCopy(ctx context.Context, key, uploadID string, number int32, srcKey string, off, n int64, srcIfMatch string) (string, error) {
	ctx, cancel := s.g.bind(ctx)
	defer cancel()
	return s.next.UploadPartCopy(ctx, key, uploadID, number, srcKey, off, n, srcIfMatch)
}

func (s *gatedStore) CompleteMultipart(ctx context.Context, key, uploadID string, parts []s3backend.CompletedPart) (string, error) {
	ctx, cancel := s.g.bind(ctx)
	defer cancel()
	return s.next.CompleteMultipart(ctx, key, uploadID, parts)
}

func (s *gatedStore) AbortMultipart(ctx context.Context, key, uploadID string) error {
	ctx, cancel := s.g.bind(ctx)
	defer cancel()
	return s.next.AbortMultipart(ctx, key, uploadID)
}

func (s *gatedStore) ListMultipart(ctx context.Context, prefix string) ([]s3backend.MultipartUpload, error) {
	ctx, cancel := s.g.bind(ctx)
	defer cancel()
	return s.next.ListMultipart(ctx, prefix)
}

func (s *gatedStore) Copy(ctx context.Context, src, dst string, srcIfMatch string, opts *s3backend.PutOptions) (string, error) {
	ctx, cancel := s.g.bind(ctx)
	defer cancel()
	return s.next.Copy(ctx, src, dst, srcIfMatch, opts)
}

func (s *gatedStore) Delete(ctx context.Context, key string) error {
	ctx, cancel := s.g.bind(ctx)
	defer cancel()
	return s.next.Delete(ctx, key)
}

// cancelOnClose releases a body's context when the body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

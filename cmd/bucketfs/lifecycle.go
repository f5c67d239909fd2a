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

// errShutdownDeadline is why uploads still running at the shutdown
// deadline are cut off (bfs.FS.CutOffUploads).
var errShutdownDeadline = errors.New("shutdown deadline passed")

// errSecondSignal is why they are cut off when the operator insists.
var errSecondSignal = errors.New("second signal during shutdown")

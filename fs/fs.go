package fs

import (
	"context"
	"errors"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// FS is one mounted bucket. (Stub: being written.)
type FS struct{ cfg Config }

// New checks cfg and builds the filesystem.
func New(cfg Config) (*FS, error) { return &FS{cfg: cfg}, nil }

// Mount mounts the filesystem on mountpoint and serves it in the background.
func (f *FS) Mount(mountpoint string, mc MountConfig) (*fuse.Server, error) {
	return nil, errors.New("not implemented yet")
}

// FlushAll uploads every dirty file.
func (f *FS) FlushAll(ctx context.Context) error { return nil }

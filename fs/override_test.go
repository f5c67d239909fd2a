package fs

import (
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
)

func TestOverrideApply(t *testing.T) {
	u := func(v uint32) *uint32 { return &v }
	tests := []struct {
		name     string
		o        Override
		k        kind
		in, want fuse.Attr
	}{
		{"none", Override{}, kindFile,
			fuse.Attr{Mode: syscall.S_IFREG | 0o600, Owner: fuse.Owner{Uid: 0, Gid: 0}},
			fuse.Attr{Mode: syscall.S_IFREG | 0o600, Owner: fuse.Owner{Uid: 0, Gid: 0}}},
		{"owner", Override{UID: u(1000), GID: u(1001)}, kindFile,
			fuse.Attr{Mode: syscall.S_IFREG | 0o600},
			fuse.Attr{Mode: syscall.S_IFREG | 0o600, Owner: fuse.Owner{Uid: 1000, Gid: 1001}}},
		{"uid 0 overrides too", Override{UID: u(0)}, kindDir,
			fuse.Attr{Mode: syscall.S_IFDIR | 0o755, Owner: fuse.Owner{Uid: 7, Gid: 8}},
			fuse.Attr{Mode: syscall.S_IFDIR | 0o755, Owner: fuse.Owner{Uid: 0, Gid: 8}}},
		{"umask file", Override{Umask: u(0o022)}, kindFile,
			fuse.Attr{Mode: syscall.S_IFREG | 0o4600},
			fuse.Attr{Mode: syscall.S_IFREG | 0o755}},
		{"umask dir", Override{Umask: u(0o077)}, kindDir,
			fuse.Attr{Mode: syscall.S_IFDIR | 0o755},
			fuse.Attr{Mode: syscall.S_IFDIR | 0o700}},
		{"umask leaves symlinks", Override{Umask: u(0o077)}, kindSymlink,
			fuse.Attr{Mode: syscall.S_IFLNK | 0o777},
			fuse.Attr{Mode: syscall.S_IFLNK | 0o777}},
	}
	for _, tt := range tests {
		got := tt.in
		tt.o.apply(&got, tt.k)
		if got != tt.want {
			t.Errorf("%s: got mode %#o owner %v, want mode %#o owner %v", tt.name, got.Mode, got.Owner, tt.want.Mode, tt.want.Owner)
		}
	}
}

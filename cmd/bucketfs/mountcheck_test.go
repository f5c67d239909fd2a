package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestCheckMountpoint(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	full := filepath.Join(dir, "full")
	file := filepath.Join(dir, "file")
	for _, d := range []string{empty, full} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(full, ".hidden"), "x", 0o644)
	writeFile(t, file, "x", 0o644)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(empty, link); err != nil {
		t.Fatal(err)
	}
	fuseMounted := []mountEntry{{Mountpoint: empty, FSType: "fuse.bucketfs", Source: "bucketfs:b"}}

	tests := []struct {
		path     string
		nonEmpty bool
		mounts   []mountEntry
		want     string // "" for success
	}{
		{empty, false, nil, ""},
		{full, true, nil, ""},
		{full, false, nil, "is not empty (use -o nonempty)"},
		{filepath.Join(dir, "missing"), false, nil, "does not exist"},
		{file, false, nil, "is not a directory"},
		{empty, false, fuseMounted, "is already a FUSE mount (bucketfs:b)"},
		{empty, false, []mountEntry{{Mountpoint: empty, FSType: "tmpfs", Source: "tmpfs"}}, ""},
		{link, false, fuseMounted, "is already a FUSE mount"},
	}
	for _, tt := range tests {
		err := checkMountpoint(tt.path, tt.nonEmpty, tt.mounts)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("checkMountpoint(%s, %v): %v", tt.path, tt.nonEmpty, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("checkMountpoint(%s, %v) = %v, want %q", tt.path, tt.nonEmpty, err, tt.want)
		}
	}
}

func TestCheckFuseDevice(t *testing.T) {
	old := fuseDevice
	t.Cleanup(func() { fuseDevice = old })
	fuseDevice = filepath.Join(t.TempDir(), "fuse")
	err := checkFuseDevice(0)
	if err == nil || !strings.Contains(err.Error(), "modprobe fuse") || !strings.Contains(err.Error(), "--device /dev/fuse") {
		t.Errorf("missing device: %v", err)
	}
	if err := checkFuseDevice(1000); err == nil || !strings.Contains(err.Error(), "modprobe fuse") {
		t.Errorf("missing device, non-root: %v", err)
	}
	writeFile(t, fuseDevice, "", 0o666)
	if err := checkFuseDevice(0); err != nil {
		t.Errorf("openable device: %v", err)
	}
	// Non-root never opens the device (fusermount3 does): mode 0 is fine.
	writeFile(t, fuseDevice, "", 0)
	if err := checkFuseDevice(1000); err != nil && !strings.Contains(err.Error(), "fusermount3 not found") {
		t.Errorf("non-root: %v", err)
	}
}

func TestParseMountinfo(t *testing.T) {
	in := `22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
36 22 0:31 / /mnt/with\040space rw,nosuid,nodev,relatime shared:5 master:2 - fuse.bucketfs bucketfs:my\040b rw,user_id=0
37 22 0:32 / /mnt/short rw - tmpfs
garbage
`
	got, err := parseMountinfo(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []mountEntry{
		{Mountpoint: "/", FSType: "ext4", Source: "/dev/sda1"},
		{Mountpoint: "/mnt/with space", FSType: "fuse.bucketfs", Source: "bucketfs:my b"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if s := unescapeMountinfo(`a\134b\0`); s != `a\b\0` {
		t.Errorf("unescape = %q", s)
	}
}

func TestOneLine(t *testing.T) {
	if got := oneLine(" a\r\nb\nc \n"); got != "a; b; c" {
		t.Errorf("oneLine = %q", got)
	}
}

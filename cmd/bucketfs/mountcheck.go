package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// checkMountpoint refuses a mountpoint that would surprise the user:
// missing, not a directory, a dead FUSE mount, already a FUSE mount, or
// not empty without -o nonempty (mounting would hide its files).
func checkMountpoint(path string, nonEmpty bool, mounts []mountEntry) error {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, syscall.ENOTCONN):
		return fmt.Errorf("mountpoint %s is a %w (transport endpoint is not connected); clean it up with: umount -l %s", path, errDeadMount, path)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("mountpoint %s does not exist", path)
	case err != nil:
		return fmt.Errorf("mountpoint: %w", err)
	case !st.IsDir():
		return fmt.Errorf("mountpoint %s is not a directory", path)
	}
	if m, ok := fuseMountAt(path, mounts); ok {
		if connectionDead(path) {
			return fmt.Errorf("mountpoint %s is a %w (its daemon is gone); clean it up with: umount -l %s", path, errDeadMount, path)
		}
		return fmt.Errorf("mountpoint %s is already a FUSE mount (%s); unmount it first", path, m.Source)
	}
	if nonEmpty {
		return nil
	}
	d, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("mountpoint: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(1)
	if err != nil && err != io.EOF {
		return fmt.Errorf("mountpoint %s: %w", path, err)
	}
	if len(names) > 0 {
		return fmt.Errorf("mountpoint %s is not empty (use -o nonempty)", path)
	}
	return nil
}

// fuseMountAt returns the topmost FUSE mount on path in mounts, if any.
func fuseMountAt(path string, mounts []mountEntry) (mountEntry, bool) {
	// The mount table holds resolved paths.
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		real = path
	}
	var found mountEntry
	ok := false
	for _, m := range mounts {
		if (m.Mountpoint == path || m.Mountpoint == real) && (m.FSType == "fuse" || strings.HasPrefix(m.FSType, "fuse.")) {
			found, ok = m, true
		}
	}
	return found, ok
}

// deadProbeTimeout bounds the statfs that asks a FUSE mount's daemon
// whether it is there. A live but stuck daemon does not answer: it counts
// as alive, and the mount is refused rather than taken from under it.
const deadProbeTimeout = 5 * time.Second

// connectionDead reports whether the FUSE mount on path has lost its
// daemon. stat is no test: after the daemon died the kernel still answers
// it from cached attributes. statfs is never cached: on a dead connection
// it fails with ENOTCONN, and with ECONNABORTED if it was sent just
// before the dying daemon's device was closed.
func connectionDead(path string) bool {
	done := make(chan error, 1)
	go func() {
		var st unix.Statfs_t
		done <- unix.Statfs(path, &st)
	}()
	select {
	case err := <-done:
		return errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED)
	case <-time.After(deadProbeTimeout):
		return false
	}
}

// isDeadMount reports whether path is a FUSE mount whose daemon is gone.
func isDeadMount(path string) bool {
	if _, err := os.Stat(path); errors.Is(err, syscall.ENOTCONN) {
		return true
	}
	_, ok := fuseMountAt(path, readMounts())
	return ok && connectionDead(path)
}

// fuseDevice is a variable so tests can point it elsewhere.
var fuseDevice = "/dev/fuse"

// checkFuseDevice makes sure FUSE can work here at all, with a hint for
// the usual causes in containers, rather than letting the mount fail with
// a bare errno.
func checkFuseDevice(euid int) error {
	if euid != 0 {
		// Without root, go-fuse mounts through the setuid fusermount3,
		// which opens the device itself: we need not (and, where
		// /dev/fuse is 0600, cannot) open it, only see that it exists.
		if _, err := os.Stat(fuseDevice); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s does not exist: load the fuse kernel module (modprobe fuse), or in a container pass --device /dev/fuse --cap-add SYS_ADMIN (or --privileged)", fuseDevice)
		}
		if _, err := exec.LookPath("fusermount3"); err != nil {
			if _, err := exec.LookPath("fusermount"); err != nil {
				return errors.New("fusermount3 not found: install the fuse3 package, or run as root")
			}
		}
		return nil
	}
	f, err := os.OpenFile(fuseDevice, os.O_RDWR, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s does not exist: load the fuse kernel module (modprobe fuse), or in a container pass --device /dev/fuse --cap-add SYS_ADMIN (or --privileged)", fuseDevice)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("cannot open %s: permission denied: in a container, allow the device (--device /dev/fuse, or --privileged)", fuseDevice)
	case err != nil:
		return fmt.Errorf("cannot open %s: %w (is FUSE available in this container?)", fuseDevice, err)
	}
	f.Close()
	return nil
}

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	Mountpoint string
	FSType     string
	Source     string
}

// readMounts returns the current mount table (nil if it cannot be read:
// it is only used for friendlier checks).
func readMounts() []mountEntry {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	m, _ := parseMountinfo(f)
	return m
}

// parseMountinfo parses the format of proc(5) /proc/PID/mountinfo:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// with optional fields before the "-" and octal escapes (\040) in paths.
func parseMountinfo(r io.Reader) ([]mountEntry, error) {
	var out []mountEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i := 6; i < len(fields); i++ {
			if fields[i] == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 5 || sep < 0 || sep+2 >= len(fields) {
			continue
		}
		out = append(out, mountEntry{
			Mountpoint: unescapeMountinfo(fields[4]),
			FSType:     fields[sep+1],
			Source:     unescapeMountinfo(fields[sep+2]),
		})
	}
	return out, sc.Err()
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// isMounted reports whether path is currently a mountpoint with a source
// starting with sourcePrefix (e.g. "bucketfs:").
func isMounted(path, sourcePrefix string) bool {
	for _, m := range readMounts() {
		if m.Mountpoint == path && strings.HasPrefix(m.Source, sourcePrefix) {
			return true
		}
	}
	return false
}

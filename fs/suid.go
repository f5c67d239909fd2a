package fs

import (
	"context"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Set-user-ID and set-group-ID bits. The mount negotiates
// FUSE_HANDLE_KILLPRIV_V2 (fs.go), so clearing them is ours, as Linux
// clears them on a local filesystem:
//   - a write, or an open with O_TRUNC, by a caller without CAP_FSETID (the
//     kernel does not pass that flag through go-fuse's Write and Open: a
//     caller other than root counts as without it);
//   - a truncate, or a chown of anything but a directory (FIFOs and
//     devices included), when the kernel's setattr says so
//     (FATTR_KILL_SUIDGID: it decides who has CAP_FSETID there), and a
//     setattr that sets nothing: what is left of the kernel's request to
//     kill the bits once it has taken that request out, as it does for
//     chown(path, -1, -1) and before a write by a caller without
//     CAP_FSETID (notify_change with ATTR_KILL_SUID: fuse_setattr keeps
//     it for the filesystem, and sends FATTR_KILL_SUIDGID only with a
//     size, uid or gid).
//
// The set-group-ID bit of a file its group cannot execute means mandatory
// locking, not privilege, and stays. security.capability needs nothing:
// bucketfs stores no security.* attribute (xattr.go).

// killRequested reports whether a setattr asks for the bits to be cleared
// (see above).
func killRequested(in *fuse.SetAttrIn) bool {
	return in.Valid&fuse.FATTR_KILL_SUIDGID != 0 || in.Valid&^(fuse.FATTR_FH|fuse.FATTR_LOCKOWNER) == 0
}

// hasSuid reports whether n has a bit a setattr may clear: anything but a
// directory (a chown clears them on FIFOs and devices too).
func (n *Node) hasSuid() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.kind != kindDir && n.attrs.perm&(syscall.S_ISUID|syscall.S_ISGID) != 0
}

// killSuidLocked clears the set-user-ID bit, and the set-group-ID bit of a
// group-executable file, and reports whether the mode changed. The next
// upload or metadata rewrite stores it. n.mu held.
func (n *Node) killSuidLocked() bool {
	if n.kind == kindDir {
		return false
	}
	p := n.attrs.perm &^ syscall.S_ISUID
	if p&syscall.S_IXGRP != 0 {
		p &^= syscall.S_ISGID
	}
	if p == n.attrs.perm {
		return false
	}
	n.attrs.perm = p
	n.attrs.ctime = time.Now()
	n.metaSet = true
	return true
}

// killSuidFor clears the bits before an O_TRUNC open by ctx's caller,
// unless it is root (killSuidForLocked), and tells the kernel.
func (n *Node) killSuidFor(ctx context.Context) {
	n.mu.Lock()
	notify := n.killSuidForLocked(ctx)
	n.mu.Unlock()
	if notify {
		n.forgetKernelAttrs()
	}
}

// killSuidForLocked clears the bits before a write or an O_TRUNC open by
// ctx's caller, unless it is root. The data it comes with makes the file
// dirty, so its upload carries the new mode. The kernel keeps the mode it
// cached after such a write (it refreshes only the size and times): when
// it reports true, the caller, once n.mu is released, tells the kernel to
// forget the inode's attributes (forgetKernelAttrs). n.mu held.
func (n *Node) killSuidForLocked(ctx context.Context) bool {
	if n.kind != kindFile || n.attrs.perm&(syscall.S_ISUID|syscall.S_ISGID) == 0 {
		return false
	}
	caller, fromKernel := fuse.FromContext(ctx)
	if fromKernel && caller.Uid == 0 {
		return false
	}
	killed := n.killSuidLocked()
	if killed && n.up.state.pending() {
		n.markDirtyLocked()
	}
	// Only for a request from the kernel: the node is in its tree.
	return killed && fromKernel
}

// forgetKernelAttrs has the kernel drop n's cached attributes. A negative
// offset: the attributes only, no page is touched (a write in progress
// holds its pages locked). No lock of n held.
func (n *Node) forgetKernelAttrs() {
	n.NotifyContent(-1, 0)
}

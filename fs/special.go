package fs

import (
	"context"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

var _ gofs.NodeMknoder = (*Node)(nil)

// Mknod makes a FIFO, a character or block device, a unix socket (bind(2)
// on the mount arrives here) or an empty regular file, stored as s3fs
// stores them: a zero-byte object whose x-amz-meta-mode carries the type.
// Devices keep their number in x-amz-meta-rdev. The kernel serves opens of
// special files itself, so nothing but the attributes lives here.
func (n *Node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	k, ok := kindOfType(mode & syscall.S_IFMT)
	if !ok || k == kindDir || k == kindSymlink {
		return nil, syscall.EINVAL
	}
	child, errno := n.newChildNode(ctx, name, k, mode)
	if errno != 0 {
		return nil, errno
	}
	key := child.key
	if k.isDevice() {
		child.attrs.rdev = rdev
	}
	opts := putOptions(k, key, child.attrs, child.foreign)
	uctx, cancel := n.fsys.uploadContext()
	defer cancel()
	etag, err := n.fsys.store.Upload(uctx, key, emptyReader{}, 0, opts)
	if err != nil {
		errno := toErrno(err)
		n.fsys.logFailure("mknod", key, err, errno)
		n.fsys.inos.release(child) // never attached
		return nil, errno
	}
	child.etag = etag
	child.validUntil = time.Now().Add(n.fsys.cfg.StatCacheTTL)
	n.entryAdded(name, k)
	inode := n.NewInode(ctx, child, gofs.StableAttr{Mode: k.typeBits(), Ino: child.ino})
	return child.entry(inode, out), 0
}

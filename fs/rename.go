package fs

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sync/errgroup"

	"github.com/novitalabs/bucketfs/s3backend"
)

// renameConcurrency bounds the copies and deletes of a directory rename.
const renameConcurrency = 16

// RENAME_NOREPLACE from renameat2(2).
const renameNoReplace = 1

// Rename moves a file, symlink or directory. S3 has no rename: a file is
// copied server-side (or uploaded from its staging file when it has local
// data) and the old key deleted; a directory is every key under its prefix,
// moved the same way. The new keys are complete before any old key is
// deleted, so a failure half-way leaves the old tree whole.
func (n *Node) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if n.fsys.cfg.ReadOnly {
		return syscall.EROFS
	}
	if flags&^renameNoReplace != 0 {
		return syscall.EINVAL // RENAME_EXCHANGE, RENAME_WHITEOUT: no atomic swap of two keys
	}
	if len(newName) > maxNameLen {
		return syscall.ENAMETOOLONG
	}
	dstDir := newParent.(*Node)
	srcInode := n.GetChild(name)
	if srcInode == nil {
		// The kernel looks names up before renaming them; a missing
		// child means another writer removed it.
		return syscall.ENOENT
	}
	src := srcInode.Operations().(*Node)
	srcKey := n.childKey(name)
	dstKey := dstDir.childKey(newName)
	if srcKey == dstKey {
		return 0
	}
	if !n.fsys.keyFits(dstKey, src.kind) {
		return syscall.ENAMETOOLONG // a directory's deeper keys are checked with its listing
	}

	// What is at the destination? The kernel has looked it up already, so
	// an existing target has a node.
	var dst *Node
	if dstInode := dstDir.GetChild(newName); dstInode != nil {
		dst = dstInode.Operations().(*Node)
		if flags&renameNoReplace != 0 {
			return syscall.EEXIST
		}
		switch {
		case src.kind == kindDir && dst.kind != kindDir:
			return syscall.ENOTDIR
		case src.kind != kindDir && dst.kind == kindDir:
			return syscall.EISDIR
		case dst.kind == kindDir && dst.hasPendingChild():
			return syscall.ENOTEMPTY
		case dst.kind == kindDir:
			empty, errno := n.fsys.isEmptyDir(ctx, dstKey)
			if errno != 0 {
				return errno
			}
			if !empty {
				return syscall.ENOTEMPTY
			}
		}
	}

	if dst != nil {
		// The target's name is about to belong to src: whatever the old
		// target still has open keeps its content (staged now, while the
		// object is still there) and must never be uploaded over it.
		// Holding its upload lock waits out an upload in flight. (An
		// empty target directory's marker is simply overwritten.)
		dst.uploadMu.Lock()
		dst.setRemoving(true)
		dst.preserveIfOpen(ctx)
		dst.mu.Lock()
		dst.unlinked = true // no upload or stream of it from now on; undone if the rename fails
		dst.removing = false
		dst.mu.Unlock()
		dst.uploadMu.Unlock()
	}
	var errno syscall.Errno
	if src.kind == kindDir {
		errno = n.fsys.renameDir(ctx, src, dstDir, newName)
	} else {
		errno = src.renameObject(dstDir, newName)
	}
	if errno != 0 {
		if dst != nil {
			dst.mu.Lock()
			dst.unlinked = false
			dst.mu.Unlock()
		}
		return errno
	}
	if dst != nil {
		dst.markUnlinked() // out of the registry and the staging directory
	}
	n.entryRemoved(name)
	dstDir.entryAdded(newName, src.kind)
	return 0
}

// renameObject moves one file or symlink object. A file with pending data
// is uploaded under its new name (rename is where editors and package
// managers expect their data to be safe); a clean one is copied server-side.
func (n *Node) renameObject(dstDir *Node, newName string) syscall.Errno {
	n.uploadMu.Lock()
	defer n.uploadMu.Unlock()
	// Both keys are taken once no directory rename is moving either (it
	// may have re-keyed n or dstDir while we waited).
	var srcKey, dstKey string
	for {
		srcKey, dstKey = n.currentKey(), dstDir.childKey(newName)
		n.fsys.moves.enter(srcKey, dstKey)
		if n.currentKey() == srcKey && dstDir.childKey(newName) == dstKey {
			break
		}
		n.fsys.moves.leave(srcKey, dstKey)
	}
	defer n.fsys.moves.leave(srcKey, dstKey)
	errno := n.lockDataWhole()
	if errno == 0 {
		errno = n.settleStreamLocked(context.Background()) // released bytes: store them under the old name first
		n.dataMu.Unlock()
	}
	if errno != 0 {
		return errno
	}

	n.mu.Lock()
	local := n.up.state.pending() || n.etag == ""
	etag, size, staging := n.etag, n.size, n.staging
	base, dirty := n.editBase, slices.Clone(n.dirty)
	n.fsys.abortStream(n.dropStreamLocked(), "renamed") // the upload is for the old key
	var gen uint64
	if local {
		gen = n.beginUploadLocked()
	}
	// As s3fs: the moved object gets a new ctime and the Content-Type of
	// its new name, so a clean one is copied with its metadata replaced.
	n.attrs.ctime = time.Now()
	opts := putOptions(n.kind, dstKey, n.attrs, n.foreign)
	n.mu.Unlock()

	uctx, cancel := n.fsys.uploadContext()
	defer cancel()
	var err error
	var newETag string
	if local {
		n.dataMu.RLock()
		if staging != nil && base != nil {
			newETag, err = n.applyEdit(uctx, dstKey, *base, dirty, zeroPadded{staging, size}, size, opts)
		} else if staging != nil {
			newETag, err = n.fsys.store.Upload(uctx, dstKey, zeroPadded{staging, size}, size, opts)
		} else {
			newETag, err = n.fsys.store.Upload(uctx, dstKey, emptyReader{}, 0, opts)
		}
		n.dataMu.RUnlock()
	} else {
		newETag, err = n.fsys.store.Copy(uctx, srcKey, dstKey, etag, &opts)
	}
	if err == nil && etag != "" {
		if derr := n.fsys.store.Delete(uctx, srcKey); derr != nil {
			// The new key is complete; the old one lingers. Report it:
			// the caller would otherwise see the file twice. The node
			// moves all the same: its data is under the new name.
			errno := toErrno(derr)
			n.fsys.logFailure("rename-delete", srcKey, derr, errno)
			n.moveKey(srcKey, dstKey, gen, size, local, newETag, nil)
			return errno
		}
	}
	if err != nil {
		if local {
			n.mu.Lock()
			n.endUploadLocked(gen, "", err, time.Now())
			n.mu.Unlock()
			n.saveSidecar()
		}
		errno := toErrno(err)
		n.fsys.logFailure("rename", srcKey, err, errno)
		return errno
	}
	n.moveKey(srcKey, dstKey, gen, size, local, newETag, nil)
	return 0
}

// moveKey records that n's object now lives at dstKey: the key, the
// registry, the sidecar and, when the rename uploaded it, the upload's end.
func (n *Node) moveKey(srcKey, dstKey string, gen uint64, size int64, uploaded bool, newETag string, err error) {
	n.mu.Lock()
	n.key = dstKey
	if uploaded {
		n.endUploadLocked(gen, newETag, err, time.Now())
		if err == nil {
			n.afterUploadLocked(dstKey, newETag, size, n.gen != gen)
		}
	} else {
		n.etag = newETag
	}
	n.validUntil = time.Now().Add(n.fsys.cfg.StatCacheTTL)
	staged := n.staging != nil && !n.unlinked && !n.retired
	n.mu.Unlock()
	if staged {
		n.fsys.rekeyRegistered(n, srcKey, dstKey)
		n.saveSidecar()
	}
}

// renameDir moves every key under src's prefix to dstDir/newName/.
func (f *FS) renameDir(ctx context.Context, src, dstDir *Node, newName string) syscall.Errno {
	// Upload what has pending data below src first, so that the copy
	// takes it: the nodes the kernel knows and the registered ones it
	// forgot. (A file written again meanwhile waits in the gate below,
	// then uploads under its new key.)
	for _, d := range f.registeredUnder(src.currentKey()) {
		if d.hasPending() {
			if errno := d.upload(ctx, "rename"); errno != 0 {
				return errno
			}
		}
	}
	// Only the two subtrees are held: uploads and renames elsewhere in
	// the mount go on while this one copies.
	var srcKey, dstKey string
	for {
		srcKey, dstKey = src.currentKey(), dstDir.childKey(newName)
		f.moves.beginMove(srcKey+"/", dstKey+"/")
		if src.currentKey() == srcKey && dstDir.childKey(newName) == dstKey {
			break
		}
		f.moves.endMove(srcKey+"/", dstKey+"/") // an enclosing move re-keyed them
	}
	defer f.moves.endMove(srcKey+"/", dstKey+"/")

	srcPrefix, dstPrefix := srcKey+"/", dstKey+"/"
	uctx, cancel := f.uploadContext()
	defer cancel()
	var keys []s3backend.ObjectInfo
	token := ""
	for {
		page, err := f.store.List(uctx, srcPrefix, "", token, 0)
		if err != nil {
			errno := toErrno(err)
			f.logFailure("rename-list", srcKey, err, errno)
			return errno
		}
		keys = append(keys, page.Objects...)
		if page.NextToken == "" {
			break
		}
		token = page.NextToken
	}
	for _, obj := range keys {
		if !f.keyFits(dstPrefix+obj.Key[len(srcPrefix):], kindFile) {
			f.log.Warn("directory rename refused: a key under it would pass S3's 1,024 bytes", "key", obj.Key, "new_prefix", dstPrefix)
			return syscall.ENAMETOOLONG
		}
	}
	if max := f.cfg.MaxRenameObjects; max > 0 && len(keys) > max {
		f.log.Warn("directory rename refused: too many objects to copy (mv copies such a tree file by file; --max-rename-objects raises the bound)",
			"key", srcKey, "objects", len(keys), "max", max)
		return syscall.EXDEV
	}
	hasMarker := false
	for _, obj := range keys {
		if obj.Key == srcPrefix {
			hasMarker = true
		}
	}
	// A copy may get a new ETag (always, for a multipart source): the
	// renamed nodes must pin their reads to the new one.
	newETags := make([]string, len(keys))
	// After a failure no copy starts, and the ones running finish (none
	// is cancelled): when Wait returns, copied says exactly what exists
	// under the new name, for the clean-up to take back.
	copied := make([]bool, len(keys))
	// The directory's own marker is copied with a new ctime (a rename
	// changes it; its mtime and the rest stay), everything else as it is.
	now := time.Now()
	var markerOpts *s3backend.PutOptions
	if hasMarker {
		if info, err := f.store.Head(uctx, srcPrefix); err == nil {
			a := attrsFromInfo(&f.cfg, kindDir, info)
			a.ctime = now
			opts := putOptions(kindDir, dstKey, a, foreignMeta(info.Metadata))
			markerOpts = &opts
		}
	}
	var g errgroup.Group
	var failed atomic.Bool
	g.SetLimit(renameConcurrency)
	for i, obj := range keys {
		if failed.Load() {
			break
		}
		g.Go(func() error {
			var opts *s3backend.PutOptions
			if obj.Key == srcPrefix {
				opts = markerOpts
			}
			etag, err := f.store.Copy(uctx, obj.Key, dstPrefix+obj.Key[len(srcPrefix):], obj.ETag, opts)
			if err != nil {
				failed.Store(true)
				return err
			}
			newETags[i], copied[i] = etag, true
			return nil
		})
	}
	if !hasMarker {
		// An implicit (or empty, locally made) directory: give the new
		// one a marker so that it exists even if it is empty.
		src.mu.Lock()
		a := src.attrs
		a.ctime = now
		opts := putOptions(kindDir, dstKey, a, src.foreign)
		src.mu.Unlock()
		g.Go(func() error {
			_, err := f.store.Upload(uctx, dstPrefix, emptyReader{}, 0, opts)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		// The old tree is whole: take back the copies made, so that the
		// failed rename leaves no half tree under the new name.
		var made []string
		if !hasMarker {
			made = append(made, dstPrefix)
		}
		for i, obj := range keys {
			if copied[i] {
				made = append(made, dstPrefix+obj.Key[len(srcPrefix):])
			}
		}
		cleanErr := f.store.DeleteMany(uctx, made)
		errno := toErrno(err)
		f.logFailure("rename-copy", srcKey, err, errno)
		f.log.Warn("directory rename failed while copying: nothing moved", "from", srcKey, "to", dstKey,
			"objects", len(keys), "copies_taken_back", len(made), "cleanup_err", errString(cleanErr))
		return errno
	}
	old := make([]string, len(keys))
	for i, obj := range keys {
		old[i] = obj.Key
	}
	if src.isOldStyleDir() {
		// The old-style "key" object: the new marker replaces it.
		old = append(old, srcKey)
	}
	if err := f.store.DeleteMany(uctx, old); err != nil {
		// Every object is under its new name, some under the old one
		// too: the tree moves, and rename(2) says it did not go clean.
		errno := toErrno(err)
		f.logFailure("rename-delete", srcKey, err, errno)
		f.log.Warn("directory rename copied everything but could not delete every old key: some objects are under both names",
			"from", srcKey, "to", dstKey, "objects", len(keys), "err", err)
		f.rekeyTree(src, srcKey, dstKey, keys, newETags, now)
		return errno
	}
	f.rekeyTree(src, srcKey, dstKey, keys, newETags, now)
	f.log.Debug("directory renamed", "from", srcKey, "to", dstKey, "objects", len(keys))
	return 0
}

// rekeyTree moves the nodes of a renamed directory, those the kernel knows
// and the registered ones it forgot, to their new keys; keys are the
// objects that were copied, with their new ETags; now is the rename's
// time, the directory's new ctime.
func (f *FS) rekeyTree(src *Node, srcKey, dstKey string, keys []s3backend.ObjectInfo, newETags []string, now time.Time) {

	// Re-key the nodes the kernel knows, so later uploads go to the new
	// place. The gate keeps uploads under both prefixes out meanwhile.
	moved := make(map[string]string, len(keys)) // old key -> new ETag
	for i, obj := range keys {
		moved[obj.Key] = newETags[i]
	}
	rekey(src, srcKey, dstKey, nil)
	f.moveDirChanged(srcKey, dstKey)
	for _, d := range descendants(src) {
		rekey(d, srcKey, dstKey, moved)
		d.invalidateListing()
	}
	// Staged files below src, known to the kernel or not, move in the
	// registry and their sidecars name the new keys.
	for oldKey, d := range f.registeredUnder(srcKey) {
		rekey(d, srcKey, dstKey, moved)
		f.rekeyRegistered(d, oldKey, d.currentKey())
		d.saveSidecar()
	}
	src.mu.Lock()
	src.hasMarker = true
	src.oldStyle = false
	src.attrs.ctime = now // as Linux: a rename changes the ctime, not the mtime
	// Expired, not dropped: its names still count the subdirectories
	// for nlink until the next listing.
	src.dir().listingUntil = time.Time{}
	src.mu.Unlock()
}

// rekey moves n from under oldPrefix to under newPrefix, taking the new
// ETag of its object from moved (old key -> ETag) when it was copied.
func rekey(n *Node, oldPrefix, newPrefix string, moved map[string]string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if etag, ok := moved[n.key]; ok && n.kind != kindDir {
		n.etag = etag
	}
	if n.key == oldPrefix {
		n.key = newPrefix
	} else if strings.HasPrefix(n.key, oldPrefix+"/") {
		n.key = newPrefix + n.key[len(oldPrefix):]
	}
}

// descendants returns the nodes below dir that the kernel knows.
func descendants(dir *Node) []*Node {
	var out []*Node
	var walk func(*gofs.Inode)
	walk = func(in *gofs.Inode) {
		for _, ch := range in.Children() {
			out = append(out, ch.Operations().(*Node))
			if ch.IsDir() {
				walk(ch)
			}
		}
	}
	walk(dir.EmbeddedInode())
	return out
}

package fs

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"maps"
	"sort"
	"strings"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"

	"github.com/novitalabs/bucketfs/s3backend"
)

// Extended attributes, stored as s3fs stores them (its use_xattr option),
// so that either tool reads what the other wrote: one user-metadata header,
// x-amz-meta-xattr, holding {"name":"base64(value)",...} (names as they
// are, values in standard padded base64) percent-encoded, with letters,
// digits and ".-_~/" left as they are. The header travels with the other
// metadata: in the node's foreign map, so every upload, copy, rename and
// staging sidecar carries it without knowing about it, and a change is a
// metadata-only rewrite (persistMeta).
//
// Names: the user namespace, names with no namespace (FUSE passes them
// through, s3fs stores them and its test suite uses them), and the two
// POSIX ACL names, which the kernel
// hands to a FUSE daemon that did not negotiate FUSE_POSIX_ACL as plain
// xattrs (it neither enforces nor caches them then; bucketfs stores them
// for getfacl, cp -p and s3fs, and the kernel's mode bits stay the only
// access check). security.* and trusted.* are refused: a capability or a
// label set here would be honoured by nothing, and the kernel asks for
// security.capability before the first write to each inode (suid.go),
// which is answered from memory.
const (
	metaXattr = "xattr"

	aclAccess  = "system.posix_acl_access"
	aclDefault = "system.posix_acl_default"

	// maxUserMeta is S3's limit on user metadata: the bytes of every
	// x-amz-meta-* name (without the prefix) and value together. MinIO
	// allows more, AWS does not; we keep to AWS so that a bucket moves.
	maxUserMeta = 2048
)

var (
	_ gofs.NodeGetxattrer    = (*Node)(nil)
	_ gofs.NodeSetxattrer    = (*Node)(nil)
	_ gofs.NodeListxattrer   = (*Node)(nil)
	_ gofs.NodeRemovexattrer = (*Node)(nil)
)

// decodeXattrs reads an x-amz-meta-xattr value. It is as lenient as s3fs:
// a malformed pair is skipped, not an error, so one bad entry written by
// some tool does not hide the rest.
func decodeXattrs(raw string) map[string][]byte {
	if raw == "" {
		return nil
	}
	s := percentDecode(raw)
	start, end := strings.IndexByte(s, '{'), strings.LastIndexByte(s, '}')
	if start < 0 || end <= start {
		return nil
	}
	out := make(map[string][]byte)
	for _, pair := range strings.Split(s[start+1:end], ",") {
		i := strings.LastIndexByte(pair, ':')
		if i < 0 {
			continue
		}
		name, ok1 := unquote(pair[:i])
		b64, ok2 := unquote(pair[i+1:])
		if !ok1 || !ok2 || name == "" {
			continue
		}
		v, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			if v, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(b64, "=")); err != nil {
				continue
			}
		}
		out[name] = v
	}
	return out
}

// unquote takes s's content between its first and last double quote (s
// itself if it has none, as s3fs reads it); a quote inside is malformed.
func unquote(s string) (string, bool) {
	i := strings.IndexByte(s, '"')
	if i < 0 {
		return strings.TrimSpace(s), true
	}
	s = s[i+1:]
	j := strings.LastIndexByte(s, '"')
	if j < 0 {
		return "", false
	}
	s = s[:j]
	return s, !strings.Contains(s, `"`)
}

// percentDecode undoes %XX escapes; a broken escape stays as it is.
func percentDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// encodeXattrs writes m as an x-amz-meta-xattr value, names in order (as
// s3fs's map keeps them); "" for no attributes: the header is dropped.
func encodeXattrs(m map[string][]byte) string {
	if len(m) == 0 {
		return ""
	}
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)
	var js strings.Builder
	js.WriteByte('{')
	for i, name := range names {
		if i > 0 {
			js.WriteByte(',')
		}
		js.WriteString(`"` + name + `":"` + base64.StdEncoding.EncodeToString(m[name]) + `"`)
	}
	js.WriteByte('}')
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for _, c := range []byte(js.String()) {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(".-_~/", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// withXattrs is foreign with its xattr header replaced by raw (removed when
// raw is ""): a new map, since sidecars and streams hold the old one.
func withXattrs(foreign map[string]string, raw string) map[string]string {
	out := maps.Clone(foreign)
	if raw == "" {
		delete(out, metaXattr)
		return out
	}
	if out == nil {
		out = make(map[string]string, 1)
	}
	out[metaXattr] = raw
	return out
}

// metaSize is what S3 counts against maxUserMeta.
func metaSize(m map[string]string) int {
	size := 0
	for k, v := range m {
		size += len(k) + len(v)
	}
	return size
}

// storableName: a name bucketfs stores. The format has no escape for a
// double quote or a comma in a name (s3fs would split it wrongly).
func storableName(name string) syscall.Errno {
	for _, ns := range []string{"security.", "trusted.", "system."} {
		if strings.HasPrefix(name, ns) && name != aclAccess && name != aclDefault {
			return syscall.ENOTSUP
		}
	}
	if strings.ContainsAny(name, `",`) {
		return syscall.EINVAL
	}
	return 0
}

// loadMeta makes sure n's headers are known: a node seen only in a
// listing has none, and a rewrite from it would drop the object's xattrs
// and foreign keys. Files and symlinks are refreshed once their stat cache
// entry expires, too. Nodes with local data, and implicit directories,
// have nothing to load.
func (n *Node) loadMeta(ctx context.Context) syscall.Errno {
	n.mu.Lock()
	var key string
	probe := false
	switch {
	case n.metaLoaded || n.isRoot || n.unlinked || n.staging != nil || n.up.state.pending():
	case n.kind == kindDir && n.hasMarker && n.oldStyle:
		key = n.key
	case n.kind == kindDir:
		// A marker may exist though none is known: a listing's common
		// prefix does not tell (--metadata listing). Rewritten without
		// its headers, it would lose its xattrs and other tools' keys.
		key, probe = n.key+"/", !n.hasMarker
	case n.etag != "":
		key = n.key
	}
	n.mu.Unlock()
	if key == "" {
		return n.refreshIfStale(ctx)
	}
	mctx, cancel := n.fsys.metaContext(ctx)
	defer cancel()
	info, err := n.fsys.store.Head(mctx, key)
	if probe && (errors.Is(err, s3backend.ErrNotFound) || errors.Is(err, s3backend.ErrInvalidKey)) {
		n.mu.Lock()
		n.metaLoaded = true // an implicit directory: no headers to keep
		n.mu.Unlock()
		return 0
	}
	if err == nil && probe {
		n.mu.Lock()
		n.hasMarker = true
		n.mu.Unlock()
	}
	if err != nil {
		errno := toErrno(err)
		n.fsys.logFailure("xattr-head", key, err, errno)
		return errno
	}
	n.mu.Lock()
	n.applyInfoLocked(info, true)
	n.mu.Unlock()
	return 0
}

// xattrs returns n's attributes, loaded or refreshed first for a name that
// may have been written elsewhere (the kernel's security.capability probes
// are answered from memory). With --metadata listing, the
// POSIX ACL probes ls -l and cp make of every file are answered from what
// is known too: that mode sends no HEAD for a listing, and an ACL another
// tool stored shows once the file's headers are loaded (a user xattr read,
// a chmod).
func (n *Node) xattrs(ctx context.Context, name string) (map[string][]byte, syscall.Errno) {
	aclProbe := n.fsys.cfg.ListingMetadata && (name == aclAccess || name == aclDefault)
	if (name == "" || storableName(name) == 0) && !aclProbe {
		if errno := n.loadMeta(ctx); errno != 0 {
			return nil, errno
		}
	}
	n.mu.Lock()
	raw := n.foreign[metaXattr]
	n.mu.Unlock()
	return decodeXattrs(raw), 0
}

// Getxattr answers getxattr(2); a dest too small for the value is ERANGE
// with the size (go-fuse turns that into the answer to a size probe).
func (n *Node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	m, errno := n.xattrs(ctx, attr)
	if errno != 0 {
		return 0, errno
	}
	v, ok := m[attr]
	if !ok {
		return 0, syscall.ENODATA
	}
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

// Listxattr answers listxattr(2): the names, each NUL-terminated.
func (n *Node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	m, errno := n.xattrs(ctx, "")
	if errno != 0 {
		return 0, errno
	}
	names := make([]string, 0, len(m))
	size := 0
	for name := range m {
		names = append(names, name)
		size += len(name) + 1
	}
	if len(dest) < size {
		return uint32(size), syscall.ERANGE
	}
	sort.Strings(names)
	off := 0
	for _, name := range names {
		off += copy(dest[off:], name)
		dest[off] = 0
		off++
	}
	return uint32(size), 0
}

// Setxattr answers setxattr(2), with XATTR_CREATE and XATTR_REPLACE as
// Linux has them (per attribute).
func (n *Node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if errno := storableName(attr); errno != 0 {
		return errno
	}
	return n.changeXattr(ctx, attr, func(m map[string][]byte, a *posixAttrs) syscall.Errno {
		_, exists := m[attr]
		switch {
		case flags&unix.XATTR_CREATE != 0 && exists:
			return syscall.EEXIST
		case flags&unix.XATTR_REPLACE != 0 && !exists:
			return syscall.ENODATA
		}
		if attr == aclAccess {
			// What the kernel does with FUSE_POSIX_ACL, ours to do
			// without it: the access ACL sets the permission bits,
			// and one that says no more than they do is not kept.
			perm, minimal, ok := aclPerm(data)
			if !ok {
				return syscall.EINVAL
			}
			a.perm = a.perm&^0o777 | perm
			if minimal {
				delete(m, attr)
				return 0
			}
		}
		m[attr] = data
		return 0
	})
}

// Removexattr answers removexattr(2).
func (n *Node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	return n.changeXattr(ctx, attr, func(m map[string][]byte, _ *posixAttrs) syscall.Errno {
		if _, ok := m[attr]; !ok {
			return syscall.ENODATA
		}
		delete(m, attr)
		return 0
	})
}

// changeXattr applies change to n's attributes and stores the result as
// chmod does: at once for a clean object (a metadata-only copy, or a new
// marker for a directory, implicit ones included), or with the pending
// upload of a file still being written (its sidecar records them, so a
// crash keeps them). ctime moves, mtime does not.
func (n *Node) changeXattr(ctx context.Context, attr string, change func(map[string][]byte, *posixAttrs) syscall.Errno) syscall.Errno {
	if n.fsys.cfg.ReadOnly {
		return syscall.EROFS
	}
	if n.isRoot {
		return syscall.ENOTSUP // the bucket root has no object to carry them
	}
	if errno := n.loadMeta(ctx); errno != 0 {
		return errno
	}
	n.mu.Lock()
	oldRaw := n.foreign[metaXattr]
	m := decodeXattrs(oldRaw)
	if m == nil {
		m = make(map[string][]byte)
	}
	attrs := n.attrs
	if errno := change(m, &attrs); errno != 0 {
		n.mu.Unlock()
		return errno
	}
	raw := encodeXattrs(m)
	foreign := withXattrs(n.foreign, raw)
	if size := metaSize(buildMeta(n.kind, attrs, foreign)); size > maxUserMeta {
		// E2BIG: this attribute could never fit; ENOSPC: it would if
		// others went.
		alone := withXattrs(n.foreign, encodeXattrs(map[string][]byte{attr: m[attr]}))
		tooBig := metaSize(buildMeta(n.kind, attrs, alone)) > maxUserMeta
		n.mu.Unlock()
		if tooBig {
			return syscall.E2BIG
		}
		return syscall.ENOSPC
	}
	oldForeign, oldAttrs := n.foreign, n.attrs
	n.foreign = foreign
	n.attrs = attrs
	n.attrs.ctime = time.Now()
	pending := n.up.state.pending()
	open := n.openCount > 0
	if pending {
		n.metaSet = true
		n.markDirtyLocked() // the pending upload carries them
	}
	n.mu.Unlock()

	var errno syscall.Errno
	switch {
	case pending && open:
		n.saveSidecar() // the writer's close uploads them
	case pending:
		errno = n.upload(ctx, "setxattr")
	default:
		errno = n.persistMeta(ctx)
	}
	if errno != 0 && !pending {
		// Not stored: show what the store has, unless someone changed
		// them again meanwhile.
		n.mu.Lock()
		if n.foreign[metaXattr] == raw {
			n.foreign, n.attrs = oldForeign, oldAttrs
		}
		n.mu.Unlock()
	}
	return errno
}

// inheritedXattrs are the attributes a new node of kind k made in
// directory n starts with: n's default ACL, as the access ACL (and for a
// directory also as its default), which is what the kernel would do with
// FUSE_POSIX_ACL and what s3fs does.
func (n *Node) inheritedXattrs(k kind) map[string]string {
	n.mu.Lock()
	raw := n.foreign[metaXattr]
	n.mu.Unlock()
	def, ok := decodeXattrs(raw)[aclDefault]
	if !ok || k == kindSymlink {
		return nil
	}
	m := map[string][]byte{aclAccess: def}
	if k == kindDir {
		m[aclDefault] = def
	}
	return map[string]string{metaXattr: encodeXattrs(m)}
}

// The kernel's POSIX ACL xattr format: a little-endian u32 version (2),
// then entries of u16 tag, u16 permissions (rwx), u32 id.
const (
	aclVersion  = 2
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
)

// aclPerm returns the permission bits an access ACL gives (owner from its
// user entry, group from its mask if it has one, else from its group
// entry, other), and whether it holds nothing else (the kernel then keeps
// no ACL, only the mode). ok is false for a malformed value.
func aclPerm(v []byte) (perm uint32, minimal, ok bool) {
	if len(v) < 4 || (len(v)-4)%8 != 0 || binary.LittleEndian.Uint32(v) != aclVersion {
		return 0, false, false
	}
	var user, group, mask, other uint32
	var hasUser, hasGroup, hasMask, hasOther bool
	minimal = true
	for e := v[4:]; len(e) >= 8; e = e[8:] {
		bits := uint32(binary.LittleEndian.Uint16(e[2:])) & 0o7
		switch binary.LittleEndian.Uint16(e) {
		case aclUserObj:
			user, hasUser = bits, true
		case aclGroupObj:
			group, hasGroup = bits, true
		case aclMask:
			mask, hasMask = bits, true
			minimal = false
		case aclOther:
			other, hasOther = bits, true
		case aclUser, aclGroup:
			minimal = false
		default:
			return 0, false, false
		}
	}
	if !hasUser || !hasGroup || !hasOther {
		return 0, false, false
	}
	if hasMask {
		group = mask
	}
	return user<<6 | group<<3 | other, minimal, true
}

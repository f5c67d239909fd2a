package fs

import (
	"strconv"
	"strings"
	"syscall"
	"time"
)

// On-object metadata, compatible with s3fs: x-amz-meta-mode is the full
// st_mode in decimal (type bits included), -uid and -gid are decimal,
// -mtime, -atime and -ctime are seconds since the epoch with an optional
// fraction. Devices also carry x-amz-meta-rdev (decimal, the kernel's
// encoding): s3fs does not store the device number at all, and ignores it. We also read the
// conventions of other tools where it costs nothing (rclone writes a float
// mtime, which parses the same; FSx for Lustre and gsutil use their own
// names), and we never drop foreign x-amz-meta-* keys when rewriting.
const (
	metaMode  = "mode"
	metaUID   = "uid"
	metaGID   = "gid"
	metaMtime = "mtime"
	metaAtime = "atime"
	metaCtime = "ctime"
	metaRdev  = "rdev"

	fsxPermissions = "file-permissions" // octal, e.g. "0100644"
	fsxOwner       = "file-owner"
	fsxGroup       = "file-group"
	fsxMtime       = "file-mtime" // nanoseconds with an "ns" suffix

	gcsMode  = "goog-reserved-posix-mode" // octal permission bits
	gcsUID   = "goog-reserved-posix-uid"
	gcsGID   = "goog-reserved-posix-gid"
	gcsMtime = "goog-reserved-file-mtime" // seconds

	dirContentType = "application/x-directory"
)

// kind is what an object is in the filesystem.
type kind uint8

const (
	kindFile kind = iota
	kindDir
	kindSymlink
	// Special files (mknod, mkfifo, bind of a unix socket): zero-byte
	// objects whose mode carries the type, as s3fs stores them. The kernel
	// serves their opens itself; we only keep their attributes.
	kindFifo
	kindChar
	kindBlock
	kindSocket
)

func (k kind) typeBits() uint32 {
	switch k {
	case kindDir:
		return syscall.S_IFDIR
	case kindSymlink:
		return syscall.S_IFLNK
	case kindFifo:
		return syscall.S_IFIFO
	case kindChar:
		return syscall.S_IFCHR
	case kindBlock:
		return syscall.S_IFBLK
	case kindSocket:
		return syscall.S_IFSOCK
	}
	return syscall.S_IFREG
}

// kindOfType is the kind whose type bits are t (mode & S_IFMT); ok is false
// for a type we do not know.
func kindOfType(t uint32) (k kind, ok bool) {
	for _, k := range []kind{kindFile, kindDir, kindSymlink, kindFifo, kindChar, kindBlock, kindSocket} {
		if k.typeBits() == t {
			return k, true
		}
	}
	return kindFile, false
}

// isDevice: the kind has a device number.
func (k kind) isDevice() bool { return k == kindChar || k == kindBlock }

// posixAttrs are the attributes bucketfs keeps for a node beyond its size.
// atime is what was stored (creation, utimensat): reads do not update it.
type posixAttrs struct {
	perm  uint32 // permission bits (07777)
	uid   uint32
	gid   uint32
	rdev  uint32 // devices only
	mtime time.Time
	atime time.Time
	ctime time.Time
}

// touchTimes sets every time to t: a new node.
func (a *posixAttrs) touchTimes(t time.Time) { a.mtime, a.atime, a.ctime = t, t, t }

// parsedMeta is what an object's metadata says, field by field; a field is
// valid only when its has* flag is set, so that callers can fall back to
// defaults for the rest.
type parsedMeta struct {
	mode                    uint32 // as stored: may or may not carry type bits
	hasMode, hasUID, hasGID bool
	uid, gid                uint32
	mtime                   time.Time
	hasMtime, hasTypeInMode bool
	atime, ctime            time.Time
	hasAtime, hasCtime      bool
	rdev                    uint32
	hasRdev                 bool
}

// parseMeta reads the mode, owner and mtime headers from user metadata.
// Unparseable values are ignored rather than failing the lookup: a bucket
// written by another tool must stay readable.
func parseMeta(m map[string]string) parsedMeta {
	var p parsedMeta
	if v, ok := m[metaMode]; ok {
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
			p.mode, p.hasMode = uint32(n), true
		}
	} else if v, ok := m[fsxPermissions]; ok {
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
			p.mode, p.hasMode = uint32(n), true
		}
	} else if v, ok := m[gcsMode]; ok {
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
			p.mode, p.hasMode = uint32(n), true
		}
	}
	p.hasTypeInMode = p.hasMode && p.mode&syscall.S_IFMT != 0
	p.uid, p.hasUID = firstUint(m, metaUID, fsxOwner, gcsUID)
	p.gid, p.hasGID = firstUint(m, metaGID, fsxGroup, gcsGID)
	if v, ok := m[metaMtime]; ok {
		p.mtime, p.hasMtime = parseEpoch(v)
	} else if v, ok := m[fsxMtime]; ok {
		if n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), "ns"), 10, 64); err == nil {
			p.mtime, p.hasMtime = time.Unix(0, n), true
		}
	} else if v, ok := m[gcsMtime]; ok {
		p.mtime, p.hasMtime = parseEpoch(v)
	}
	if v, ok := m[metaAtime]; ok {
		p.atime, p.hasAtime = parseEpoch(v)
	}
	if v, ok := m[metaCtime]; ok {
		p.ctime, p.hasCtime = parseEpoch(v)
	}
	p.rdev, p.hasRdev = firstUint(m, metaRdev)
	return p
}

func firstUint(m map[string]string, names ...string) (uint32, bool) {
	for _, name := range names {
		if v, ok := m[name]; ok {
			if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
				return uint32(n), true
			}
		}
	}
	return 0, false
}

// parseEpoch parses "sec" or "sec.fraction" (s3fs, rclone) without going
// through float64, which would lose nanoseconds.
func parseEpoch(v string) (time.Time, bool) {
	v = strings.TrimSpace(v)
	secPart, fracPart, hasFrac := strings.Cut(v, ".")
	sec, err := strconv.ParseInt(secPart, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	var nsec int64
	if hasFrac && fracPart != "" {
		if len(fracPart) > 9 {
			fracPart = fracPart[:9]
		}
		frac, err := strconv.ParseUint(fracPart, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		for i := len(fracPart); i < 9; i++ {
			frac *= 10
		}
		nsec = int64(frac)
	}
	return time.Unix(sec, nsec), true
}

// formatEpoch writes seconds, with nanoseconds only when there are any, so
// that s3fs (which reads whole seconds) still parses what we write.
func formatEpoch(t time.Time) string {
	sec, nsec := t.Unix(), t.Nanosecond()
	if nsec == 0 {
		return strconv.FormatInt(sec, 10)
	}
	return strconv.FormatInt(sec, 10) + "." + strconv.FormatInt(int64(nsec)+1e9, 10)[1:]
}

// buildMeta returns the metadata to store for a node: the foreign keys of
// the object's previous metadata, then our headers (an unset atime or
// ctime is written as the mtime).
func buildMeta(k kind, a posixAttrs, foreign map[string]string) map[string]string {
	m := make(map[string]string, len(foreign)+7)
	for name, v := range foreign {
		m[name] = v
	}
	m[metaMode] = strconv.FormatUint(uint64(k.typeBits()|a.perm&07777), 10)
	m[metaUID] = strconv.FormatUint(uint64(a.uid), 10)
	m[metaGID] = strconv.FormatUint(uint64(a.gid), 10)
	m[metaMtime] = formatEpoch(a.mtime)
	m[metaAtime] = formatEpoch(orTime(a.atime, a.mtime))
	m[metaCtime] = formatEpoch(orTime(a.ctime, a.mtime))
	if k.isDevice() {
		m[metaRdev] = strconv.FormatUint(uint64(a.rdev), 10)
	}
	return m
}

// orTime is t, or def when t is unset.
func orTime(t, def time.Time) time.Time {
	if t.IsZero() {
		return def
	}
	return t
}

// foreignMeta returns the metadata keys that are not ours to rewrite. The
// other tools' POSIX keys are dropped too: after we rewrite an object, ours
// are the truth and stale foreign copies would contradict them.
func foreignMeta(m map[string]string) map[string]string {
	var out map[string]string
	for name, v := range m {
		switch name {
		case metaMode, metaUID, metaGID, metaMtime, metaAtime, metaCtime, metaRdev,
			fsxPermissions, fsxOwner, fsxGroup, fsxMtime,
			gcsMode, gcsUID, gcsGID, gcsMtime:
			continue
		}
		if out == nil {
			out = make(map[string]string)
		}
		out[name] = v
	}
	return out
}

package fs

import (
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParseMeta feeds arbitrary header values to the metadata parser: it
// must never panic, and whatever bucketfs writes back must parse to the same
// attributes.
func FuzzParseMeta(f *testing.F) {
	f.Add("33188", "1000", "1000", "1700000000.123456789", "0100644", "1700000000000000000ns")
	f.Add("16877", "0", "0", "1700000000", "", "")
	f.Add("", "", "", "", "0644", "12ns")
	f.Add(" 420 ", "-1", "4294967296", "1.", "08", "ns")
	f.Add("41471", "x", "", "-5.5", "777777777777", "-1ns")
	f.Add("18446744073709551615", "1e3", "0x10", "1700000000.1234567891234", "", "")
	f.Fuzz(func(t *testing.T, mode, uid, gid, mtime, fsxPermValue, fsxMtimeValue string) {
		m := map[string]string{}
		for k, v := range map[string]string{metaMode: mode, metaUID: uid, metaGID: gid, metaMtime: mtime, fsxPermissions: fsxPermValue, fsxMtime: fsxMtimeValue} {
			if v != "" {
				m[k] = v
			}
		}
		p := parseMeta(m)
		if p.hasTypeInMode && !p.hasMode {
			t.Fatalf("type bits without a mode: %+v", p)
		}
		if !p.hasMode && p.mode != 0 || !p.hasUID && p.uid != 0 || !p.hasGID && p.gid != 0 || !p.hasMtime && !p.mtime.IsZero() {
			t.Fatalf("value without its has-flag: %+v", p)
		}

		// What we write for these attributes reads back the same.
		k := kindFile
		switch p.mode & syscall.S_IFMT {
		case syscall.S_IFDIR:
			k = kindDir
		case syscall.S_IFLNK:
			k = kindSymlink
		}
		a := posixAttrs{perm: p.mode & 07777, uid: p.uid, gid: p.gid, mtime: p.mtime}
		if !p.hasMtime {
			a.mtime = time.Unix(0, 0)
		}
		foreign := foreignMeta(m)
		for name := range foreign {
			switch name {
			case metaMode, metaUID, metaGID, metaMtime, fsxPermissions, fsxMtime:
				t.Fatalf("foreignMeta kept our key %q", name)
			}
		}
		out := buildMeta(k, a, foreign)
		q := parseMeta(out)
		if !q.hasMode || !q.hasUID || !q.hasGID || !q.hasMtime || !q.hasTypeInMode {
			t.Fatalf("buildMeta(%+v) = %v parses incompletely: %+v", a, out, q)
		}
		if q.mode != k.typeBits()|a.perm || q.uid != a.uid || q.gid != a.gid || !q.mtime.Equal(a.mtime) {
			t.Fatalf("round trip: wrote %+v kind %d as %v, read %+v", a, k, out, q)
		}
	})
}

// FuzzEpoch checks that formatEpoch and parseEpoch round-trip every time to
// the nanosecond, and that parseEpoch never panics on arbitrary text.
func FuzzEpoch(f *testing.F) {
	f.Add(int64(1700000000), int64(123456789), "1700000000.5")
	f.Add(int64(-1), int64(999999999), "-1.999999999")
	f.Add(int64(0), int64(0), ".")
	f.Add(int64(253402300799), int64(1), "1.0000000001")
	f.Fuzz(func(t *testing.T, sec, nsec int64, text string) {
		parseEpoch(text)
		if nsec < 0 {
			nsec = -nsec
		}
		nsec %= 1e9
		if nsec < 0 {
			nsec = 0
		}
		// Stay where time.Unix is exact (far beyond any mtime in use).
		sec %= 1 << 40
		tm := time.Unix(sec, nsec)
		s := formatEpoch(tm)
		got, ok := parseEpoch(s)
		if !ok || !got.Equal(tm) {
			t.Fatalf("formatEpoch(%v) = %q parses to %v, %v", tm, s, got, ok)
		}
	})
}

// FuzzChildName checks the rule that turns listed keys into names: odd
// bytes (spaces, unicode, "..", very long names, trailing slashes) must
// never yield a name the kernel cannot use, and the key of a valid name
// below a directory maps back to the same name.
func FuzzChildName(f *testing.F) {
	for _, s := range []string{"a", " a ", "é", "..", ".", "a/", "a/b", "", strings.Repeat("x", 300), "a\x00b", "\xff\xfe", "dir/../x"} {
		f.Add("some/dir", s)
		f.Add("", s)
	}
	f.Fuzz(func(t *testing.T, dirKey, name string) {
		ok := validName(name)
		if ok && (name == "" || name == "." || name == ".." || strings.Contains(name, "/") || len(name) > maxNameLen) {
			t.Fatalf("validName(%q) = true", name)
		}
		if !ok {
			return
		}
		n := &Node{key: strings.Trim(dirKey, "/")}
		key := n.childKey(name)
		prefix := n.key
		if prefix != "" {
			prefix += "/"
		}
		if !strings.HasPrefix(key, prefix) || key[len(prefix):] != name {
			t.Fatalf("childKey(%q in %q) = %q does not list back as %q", name, n.key, key, name)
		}
		_ = utf8.ValidString(name) // names are bytes: invalid UTF-8 is allowed
	})
}

package fs

import (
	"os"
	"syscall"
	"testing"
	"time"
)

func TestParseEpoch(t *testing.T) {
	cases := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"1700000000", time.Unix(1700000000, 0), true},
		{"1700000000.5", time.Unix(1700000000, 500000000), true},
		{"1700000000.123456789", time.Unix(1700000000, 123456789), true},
		{"1700000000.1234567891234", time.Unix(1700000000, 123456789), true},
		{"1700000000.", time.Unix(1700000000, 0), true},
		{" 42 ", time.Unix(42, 0), true},
		{"abc", time.Time{}, false},
		{"", time.Time{}, false},
		{"1.x", time.Time{}, false},
	}
	for _, c := range cases {
		got, ok := parseEpoch(c.in)
		if ok != c.ok || !got.Equal(c.want) {
			t.Errorf("parseEpoch(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestFormatEpochRoundTrip(t *testing.T) {
	for _, tm := range []time.Time{time.Unix(1700000000, 0), time.Unix(1700000000, 7), time.Unix(1, 999999999)} {
		got, ok := parseEpoch(formatEpoch(tm))
		if !ok || !got.Equal(tm) {
			t.Errorf("round trip of %v gave %v (%q)", tm, got, formatEpoch(tm))
		}
	}
	if s := formatEpoch(time.Unix(1700000000, 0)); s != "1700000000" {
		t.Errorf("whole seconds must be written as an integer for s3fs, got %q", s)
	}
}

func TestBuildMetaIsS3fsCompatible(t *testing.T) {
	m := buildMeta(kindFile, posixAttrs{perm: 0o640, uid: 1000, gid: 100, mtime: time.Unix(1700000000, 0)},
		map[string]string{"color": "blue"})
	want := map[string]string{"mode": "33184", "uid": "1000", "gid": "100", "mtime": "1700000000", "color": "blue"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("meta[%q] = %q, want %q", k, m[k], v)
		}
	}
	if m := buildMeta(kindSymlink, posixAttrs{perm: 0o777}, nil); m["mode"] != "41471" {
		t.Errorf("symlink mode = %s, want 41471 (0120777)", m["mode"])
	}
	if m := buildMeta(kindDir, posixAttrs{perm: 0o755}, nil); m["mode"] != "16877" {
		t.Errorf("dir mode = %s, want 16877 (040755)", m["mode"])
	}
}

func TestParseMetaOtherTools(t *testing.T) {
	p := parseMeta(map[string]string{"mode": "33261", "uid": "5", "gid": "6", "mtime": "1600000000.25"})
	if !p.hasMode || p.mode != syscall.S_IFREG|0o755 || p.uid != 5 || p.gid != 6 || !p.mtime.Equal(time.Unix(1600000000, 250000000)) {
		t.Errorf("s3fs meta parsed wrong: %+v", p)
	}
	p = parseMeta(map[string]string{"file-permissions": "0100600", "file-owner": "7", "file-group": "8", "file-mtime": "1600000000000000001ns"})
	if p.mode != syscall.S_IFREG|0o600 || p.uid != 7 || p.gid != 8 || !p.mtime.Equal(time.Unix(1600000000, 1)) {
		t.Errorf("FSx meta parsed wrong: %+v", p)
	}
	p = parseMeta(map[string]string{"goog-reserved-posix-mode": "750", "goog-reserved-file-mtime": "1600000000"})
	if p.mode != 0o750 || p.hasTypeInMode || !p.mtime.Equal(time.Unix(1600000000, 0)) {
		t.Errorf("gsutil meta parsed wrong: %+v", p)
	}
	p = parseMeta(map[string]string{"mode": "garbage", "uid": "-1"})
	if p.hasMode || p.hasUID {
		t.Errorf("garbage must be ignored: %+v", p)
	}
}

func TestForeignMetaKeepsOnlyOthers(t *testing.T) {
	got := foreignMeta(map[string]string{"mode": "1", "uid": "2", "file-owner": "3", "project": "x"})
	if len(got) != 1 || got["project"] != "x" {
		t.Errorf("foreignMeta = %v", got)
	}
}

func TestMetaTimesAndDevices(t *testing.T) {
	a := posixAttrs{perm: 0o600, rdev: 0x1234, mtime: time.Unix(1700000000, 1), atime: time.Unix(1600000000, 2), ctime: time.Unix(1800000000, 3)}
	m := buildMeta(kindChar, a, nil)
	if m["mode"] != "8576" || m["rdev"] != "4660" || m["atime"] != "1600000000.000000002" || m["ctime"] != "1800000000.000000003" {
		t.Errorf("device meta = %v", m)
	}
	p := parseMeta(m)
	if !p.hasAtime || !p.atime.Equal(a.atime) || !p.hasCtime || !p.ctime.Equal(a.ctime) || !p.hasRdev || p.rdev != a.rdev {
		t.Errorf("parsed %+v", p)
	}
	if k, ok := kindOfType(p.mode & syscall.S_IFMT); !ok || k != kindChar {
		t.Errorf("kind of %o = %v, %v", p.mode, k, ok)
	}
	if m := buildMeta(kindFile, posixAttrs{mtime: time.Unix(5, 0)}, nil); m["atime"] != "5" || m["ctime"] != "5" || m["rdev"] != "" {
		t.Errorf("unset atime/ctime must be written as the mtime, and files carry no rdev: %v", m)
	}
}

func TestContentTypeFor(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/mime.types"
	if err := os.WriteFile(file, []byte("# comment\ntext/html html htm\napplication/gzip gz\napplication/x-tar tar\nimage/png png\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	types, err := loadMimeTypes(file)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"a/index.html": "text/html", "X.HTM": "text/html", "a.tar.gz": "application/gzip",
		"a.tar.zzz": "application/x-tar", "a.zzz": defaultContentType, "noext": defaultContentType,
		"dir.html/file": defaultContentType, "trailing.": defaultContentType,
	} {
		if got := contentTypeFor(types, key); got != want {
			t.Errorf("contentTypeFor(%q) = %q, want %q", key, got, want)
		}
	}
	// Without a system table, Go's built-in one, without parameters.
	if got := contentTypeFor(nil, "a.html"); got != "text/html" {
		t.Errorf("fallback for .html = %q", got)
	}
}

package test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestS3fsMetadata: objects written by s3fs (x-amz-meta-mode/uid/gid/mtime)
// show those attributes; chmod keeps foreign metadata.
func TestS3fsMetadata(t *testing.T) {
	t.Parallel()
	m := mount(t)
	m.Put("f644", []byte("rw-r--r--"), map[string]string{"mode": "33188", "uid": "1001", "gid": "1002", "mtime": "1700000000"})
	m.Put("x755", []byte("#!/bin/sh\n"), map[string]string{"mode": "33261", "uid": "0", "gid": "0", "mtime": "1600000000"})
	m.Put("frac", []byte("frac"), map[string]string{"mode": "33152", "uid": "7", "gid": "8", "mtime": "1700000001.250000000"})
	m.Put("d/", nil, map[string]string{"mode": "16872", "uid": "1003", "gid": "1004", "mtime": "1500000000"})
	m.Put("d/inner", []byte("inner"), nil)
	m.Put("sl", []byte("f644"), map[string]string{"mode": "41471", "uid": "0", "gid": "0", "mtime": "1650000000"})
	m.Put("custom", []byte("c"), map[string]string{"mode": "33188", "uid": "0", "gid": "0", "mtime": "1700000000", "color": "blue"})

	for _, c := range []struct {
		name     string
		mode     uint32
		uid, gid uint32
		mtime    time.Time
	}{
		{"f644", 0o100644, 1001, 1002, time.Unix(1700000000, 0)},
		{"x755", 0o100755, 0, 0, time.Unix(1600000000, 0)},
		{"frac", 0o100600, 7, 8, time.Unix(1700000001, 250000000)},
		{"d", 0o40750, 1003, 1004, time.Unix(1500000000, 0)},
		{"sl", 0o120777, 0, 0, time.Unix(1650000000, 0)},
	} {
		st := lstat(t, m.Path(c.name))
		if st.Mode != c.mode || st.Uid != c.uid || st.Gid != c.gid {
			t.Errorf("%s: mode %#o uid %d gid %d, want %#o %d %d", c.name, st.Mode, st.Uid, st.Gid, c.mode, c.uid, c.gid)
		}
		if got := time.Unix(st.Mtim.Unix()); !got.Equal(c.mtime) {
			t.Errorf("%s: mtime %v, want %v", c.name, got.UTC(), c.mtime.UTC())
		}
	}
	out := run(t, m.Dir, "stat", "-c", "%a %u %g %Y %F", "f644", "x755")
	if want := "644 1001 1002 1700000000 regular file\n755 0 0 1600000000 regular file\n"; out != want {
		t.Errorf("stat -c: %q, want %q", out, want)
	}
	if got, err := os.Readlink(m.Path("sl")); err != nil || got != "f644" {
		t.Errorf("readlink of s3fs symlink = %q, %v", got, err)
	}
	sameBytes(t, "read through s3fs symlink", readFile(t, m.Path("sl")), []byte("rw-r--r--"))
	run(t, m.Dir, "sh", "-c", "./x755 && test -x x755")

	// chmod rewrites the metadata but keeps keys it does not own.
	if err := os.Chmod(m.Path("custom"), 0o640); err != nil {
		t.Fatalf("chmod: %v", err)
	}
	h := m.Head("custom")
	if v, _ := meta(h, "color"); v != "blue" {
		t.Errorf("chmod dropped foreign metadata: %v", h.Metadata)
	}
	if mode := metaUint(t, h, "custom", "mode"); mode != 0o100640 {
		t.Errorf("custom: x-amz-meta-mode %d after chmod, want %d", mode, 0o100640)
	}
	sameBytes(t, "custom body after chmod", m.Get("custom"), []byte("c"))
}

// TestDefaultAttributes: objects and prefixes without metadata get the
// --uid/--gid/--file-mode/--dir-mode defaults.
func TestDefaultAttributes(t *testing.T) {
	t.Parallel()
	m := mount(t, withFlags("--uid", "4321", "--gid", "8765", "--file-mode", "0640", "--dir-mode", "0750"))
	m.Put("plain", []byte("no metadata"), nil)
	m.Put("marker/", nil, nil)
	m.Put("implicit/x", []byte("x"), nil)
	for name, mode := range map[string]uint32{
		"plain":    syscall.S_IFREG | 0o640,
		"marker":   syscall.S_IFDIR | 0o750,
		"implicit": syscall.S_IFDIR | 0o750,
	} {
		st := lstat(t, m.Path(name))
		if st.Mode != mode || st.Uid != 4321 || st.Gid != 8765 {
			t.Errorf("%s: mode %#o uid %d gid %d, want %#o 4321 8765", name, st.Mode, st.Uid, st.Gid, mode)
		}
	}
}

// TestOptionUIDGIDUmask: -o uid=,gid=,umask= apply to objects without
// metadata.
func TestOptionUIDGIDUmask(t *testing.T) {
	t.Parallel()
	m := mount(t, withO("uid=2001", "gid=2002", "umask=077"))
	m.Put("plain", []byte("no metadata"), nil)
	m.Put("dir/x", []byte("x"), nil)
	for _, name := range []string{"plain", "dir"} {
		st := lstat(t, m.Path(name))
		if st.Uid != 2001 || st.Gid != 2002 {
			t.Errorf("%s: uid %d gid %d, want 2001 2002", name, st.Uid, st.Gid)
		}
		if st.Mode&0o077 != 0 || st.Mode&0o600 != 0o600 {
			t.Errorf("%s: mode %#o, want owner rw and nothing for group/other (umask 077)", name, st.Mode)
		}
	}
}

// TestWrittenMetadataFormat: objects written through bucketfs carry
// s3fs-readable metadata: mode in decimal with the type bits, uid, gid and
// mtime as seconds[.nanoseconds].
func TestWrittenMetadataFormat(t *testing.T) {
	t.Parallel()
	m := mount(t)
	before := time.Now().Add(-2 * time.Second)
	f, err := os.OpenFile(m.Path("file"), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("content")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(m.Path("dir"), 0o750); err != nil {
		t.Fatal(err)
	}
	after := time.Now().Add(2 * time.Second)

	for key, mode := range map[string]uint64{"file": syscall.S_IFREG | 0o640, "dir/": syscall.S_IFDIR | 0o750} {
		h := m.Head(key)
		if got := metaUint(t, h, key, "mode"); got != mode {
			v, _ := meta(h, "mode")
			t.Errorf("%s: x-amz-meta-mode %q, want %q (decimal of %#o)", key, v, strconv.FormatUint(mode, 10), mode)
		}
		if uid := metaUint(t, h, key, "uid"); uid != uint64(os.Getuid()) {
			t.Errorf("%s: x-amz-meta-uid %d, want %d", key, uid, os.Getuid())
		}
		if gid := metaUint(t, h, key, "gid"); gid != uint64(os.Getgid()) {
			t.Errorf("%s: x-amz-meta-gid %d, want %d", key, gid, os.Getgid())
		}
		if mt := metaMtime(t, h, key); mt.Before(before) || mt.After(after) {
			t.Errorf("%s: x-amz-meta-mtime %v, want between %v and %v", key, mt, before, after)
		}
	}
}

// writePasswd writes a password file with the given mode.
func writePasswd(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // not subject to umask
		t.Fatal(err)
	}
}

// TestS3fsOptions: the s3fs command line (-o url=, endpoint=,
// use_path_request_style, passwd_file=, allow_other) mounts and works.
func TestS3fsOptions(t *testing.T) {
	t.Parallel()
	needSuite(t)
	srv := sharedMinio
	pw := filepath.Join(t.TempDir(), "passwd")
	writePasswd(t, pw, srv.AccessKey+":"+srv.SecretKey+"\n", 0o600)
	m := mount(t, withoutEnvCreds(), withoutEndpointFlag(),
		withO("allow_other", "endpoint=us-east-1", "url="+srv.Endpoint, "use_path_request_style", "passwd_file="+pw))
	writeFile(t, m.Path("hello.txt"), []byte("hi\n"))
	sameBytes(t, "hello.txt", m.Get("hello.txt"), []byte("hi\n"))
	m.Put("from-sdk", []byte("sdk"), nil)
	sameBytes(t, "from-sdk", readFile(t, m.Path("from-sdk")), []byte("sdk"))
	if opts := mountOptions(m.Dir); !strings.Contains(","+opts+",", ",allow_other,") {
		t.Errorf("-o allow_other: mount options %q lack allow_other", opts)
	}
}

// mountOptions returns the options field of dir's line in /proc/mounts.
func mountOptions(dir string) string {
	b, _ := os.ReadFile("/proc/mounts")
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && unescapeMountPath(f[1]) == dir {
			return f[3]
		}
	}
	return ""
}

// TestPasswdFileTooOpen: a password file others can read is refused.
func TestPasswdFileTooOpen(t *testing.T) {
	t.Parallel()
	needSuite(t)
	srv := sharedMinio
	bucket := srv.NewBucket(t)
	pw := filepath.Join(t.TempDir(), "passwd")
	writePasswd(t, pw, srv.AccessKey+":"+srv.SecretKey+"\n", 0o644)
	expectMountFailure(t, failCase{
		target: bucket,
		post:   []string{"-o", "url=" + srv.Endpoint + ",use_path_request_style,passwd_file=" + pw},
		cause:  regexp.MustCompile(`(?i)(passw|` + regexp.QuoteMeta(pw) + `)`),
	})
}

// TestHomePasswdFile: $HOME/.passwd-s3fs (BUCKET:ACCESS:SECRET) is found.
func TestHomePasswdFile(t *testing.T) {
	t.Parallel()
	needSuite(t)
	srv := sharedMinio
	bucket := srv.NewBucket(t)
	home := t.TempDir()
	writePasswd(t, filepath.Join(home, ".passwd-s3fs"), bucket+":"+srv.AccessKey+":"+srv.SecretKey+"\n", 0o600)
	m := mount(t, onBucket(bucket), withoutEnvCreds(), withEnv("HOME="+home))
	writeFile(t, m.Path("via-home"), []byte("ok"))
	sameBytes(t, "via-home", m.Get("via-home"), []byte("ok"))
}

// TestBucketPrefix: BUCKET:PREFIX serves only that prefix, and writes land
// under it.
func TestBucketPrefix(t *testing.T) {
	t.Parallel()
	needSuite(t)
	srv := sharedMinio
	bucket := srv.NewBucket(t)
	c := srv.Client()
	putObject(t, c, bucket, "outside.txt", []byte("out"), nil)
	putObject(t, c, bucket, "pre/inside.txt", []byte("in"), nil)
	putObject(t, c, bucket, "pre/sub/x", []byte("x"), nil)
	putObject(t, c, bucket, "prefix-lookalike/y", []byte("y"), nil)

	m := mount(t, onBucket(bucket), withPrefix("pre"))
	m.Prefix = "pre/" // keys of the mount's files
	ents, err := os.ReadDir(m.Dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if err != nil || strings.Join(names, " ") != "inside.txt sub" {
		t.Errorf("readdir of BUCKET:pre = %v, %v; want [inside.txt sub]", names, err)
	}
	sameBytes(t, "inside.txt", readFile(t, m.Path("inside.txt")), []byte("in"))
	wantErrno(t, "stat outside.txt", syscall.Lstat(m.Path("outside.txt"), new(syscall.Stat_t)), syscall.ENOENT)

	writeFile(t, m.Path("new.txt"), []byte("new"))
	if err := os.Mkdir(m.Path("nd"), 0o755); err != nil {
		t.Fatal(err)
	}
	all := strings.Join(m.AllKeys(), " ")
	if want := "outside.txt pre/inside.txt pre/nd/ pre/new.txt pre/sub/x prefix-lookalike/y"; all != want {
		t.Errorf("bucket keys = %s, want %s", all, want)
	}
}

package test

import (
	"bytes"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Behaviours s3fs's own integration suite checks (issue 12: at least 85 of
// its 93 tests), each tested here through the mount.

// TestCompatS3fsDirRenameTimes (s3fs's test_update_directory_time_subdir):
// mv of a directory changes its ctime and keeps its mtime, which its
// entries' creation had set; what is inside keeps all its times.
func TestCompatS3fsDirRenameTimes(t *testing.T) {
	t.Parallel()
	m := mount(t, withTTL(time.Second))
	if err := os.Mkdir(m.Path("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(m.Path("d/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, m.Path("d/f"), []byte("f"))
	_, dm, dc := statTimes(t, m.Path("d"))
	_, sm, sc := statTimes(t, m.Path("d/sub"))
	_, fm, fc := statTimes(t, m.Path("d/f"))
	before := time.Now()
	if err := os.Rename(m.Path("d"), m.Path("e")); err != nil {
		t.Fatal(err)
	}
	// Past the stat cache TTL too: what the daemon says, not the kernel.
	for _, wait := range []time.Duration{0, 1100 * time.Millisecond} {
		time.Sleep(wait)
		if _, mt, ct := statTimes(t, m.Path("e")); !mt.Equal(dm) || ct.Before(before) || ct.Equal(dc) {
			t.Errorf("renamed dir (after %v): mtime %v ctime %v; want mtime %v and a ctime >= %v", wait, mt, ct, dm, before)
		}
		if _, mt, ct := statTimes(t, m.Path("e/sub")); !mt.Equal(sm) || !ct.Equal(sc) {
			t.Errorf("its subdirectory (after %v): mtime %v ctime %v, want %v %v", wait, mt, ct, sm, sc)
		}
		if _, mt, ct := statTimes(t, m.Path("e/f")); !mt.Equal(fm) || !ct.Equal(fc) {
			t.Errorf("its file (after %v): mtime %v ctime %v, want %v %v", wait, mt, ct, fm, fc)
		}
	}
}

// putOldStyleDir writes an old-style directory object: "name", no slash,
// empty, application/x-directory (what old s3fs versions made).
func putOldStyleDir(t *testing.T, m *Mount, name string) {
	t.Helper()
	ctx, cancel := s3ctx()
	defer cancel()
	if _, err := m.S3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(m.Bucket), Key: aws.String(m.Key(name)),
		Body: bytes.NewReader(nil), ContentType: aws.String("application/x-directory"),
	}); err != nil {
		t.Fatal(err)
	}
}

// TestCompatS3fsOldStyleDir (s3fs's test_external_no_slash_directory_object):
// a directory stored as an old-style "name" object is a directory; a
// metadata update replaces that object with "name/" as s3fs does, and
// rmdir or rename leave neither behind.
func TestCompatS3fsOldStyleDir(t *testing.T) {
	t.Parallel()
	m := mount(t, withTTL(time.Second))
	for _, name := range []string{"chmodded", "removed", "renamed"} {
		putOldStyleDir(t, m, name)
		if st := lstat(t, m.Path(name)); st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			t.Fatalf("%s: mode %#o, want a directory", name, st.Mode)
		}
	}

	if err := os.Chmod(m.Path("chmodded"), 0o700); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, m.Path("chmodded")); st.Mode&0o7777 != 0o700 {
		t.Errorf("chmodded: mode %#o, want 0700", st.Mode&0o7777)
	}
	if m.Exists("chmodded") || !m.Exists("chmodded/") {
		t.Errorf("after chmod: old-style object %v, marker %v; want only the marker", m.Exists("chmodded"), m.Exists("chmodded/"))
	}
	writeFile(t, m.Path("chmodded/f"), []byte("x"))
	if err := os.Remove(m.Path("chmodded/f")); err != nil {
		t.Fatal(err)
	}

	if err := os.Rename(m.Path("renamed"), m.Path("renamed2")); err != nil {
		t.Fatal(err)
	}
	if m.Exists("renamed") || m.Exists("renamed/") || !m.Exists("renamed2/") {
		t.Errorf("after rename: %v", m.Keys(""))
	}

	for _, name := range []string{"chmodded", "removed", "renamed2"} {
		if err := os.Remove(m.Path(name)); err != nil {
			t.Fatalf("rmdir %s: %v", name, err)
		}
	}
	if keys := m.Keys(""); len(keys) != 0 {
		t.Errorf("bucket after rmdir: %v, want nothing", keys)
	}
}

package test

import (
	"bytes"
	"crypto/md5" //nolint:gosec // the digest S3 asks for with SSE-C
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sys/unix"
)

// Listings at scale (issue #11): names and types come from the listing,
// HEADs only where a stat asks for what the listing lacks.

// requestsBy sums bucketfs_s3_requests_total by op ("head", "list", "get"…)
// over every outcome.
func requestsBy(samples map[string]float64) map[string]float64 {
	by := map[string]float64{}
	for name, v := range samples {
		rest, ok := strings.CutPrefix(name, `bucketfs_s3_requests_total{op="`)
		if !ok {
			continue
		}
		op, _, _ := strings.Cut(rest, `"`)
		by[op] += v
	}
	return by
}

// countRequests runs f and returns the store requests the daemon serving
// metrics at addr sent meanwhile, by op.
func countRequests(t *testing.T, addr string, f func()) map[string]float64 {
	t.Helper()
	before, _ := scrape(t, addr)
	f()
	after, _ := scrape(t, addr)
	b, a := requestsBy(before), requestsBy(after)
	for op := range a {
		a[op] -= b[op]
	}
	return a
}

// lsEntry is one line of `ls -ln --time-style=+%s`.
type lsEntry struct {
	mode       string
	uid, gid   int
	size       int64
	mtime      int64
	name, link string
}

// lsLong runs ls -ln on dir and parses its lines by name.
func lsLong(t *testing.T, dir string) map[string]lsEntry {
	t.Helper()
	out := run(t, dir, "ls", "-ln", "--time-style=+%s", ".")
	ents := map[string]lsEntry{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 7 || f[0] == "total" {
			continue
		}
		var e lsEntry
		e.mode = f[0]
		e.uid, _ = strconv.Atoi(f[2])
		e.gid, _ = strconv.Atoi(f[3])
		e.size, _ = strconv.ParseInt(f[4], 10, 64)
		e.mtime, _ = strconv.ParseInt(f[5], 10, 64)
		e.name = f[6]
		if len(f) >= 9 && f[7] == "->" {
			e.link = f[8]
		}
		ents[e.name] = e
	}
	return ents
}

// TestListingFindSendsNoHead: find over 2,000 objects in 20 directories
// sends no HEAD of any object; ls -l then still shows the s3fs metadata
// of a directory's objects, and a symlink made through the mount is a
// symlink again after a remount.
func TestListingFindSendsNoHead(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	opts := []mountOpt{withTTL(time.Minute), withFlags("--metrics-addr", addr)}
	m := mount(t, opts...)
	const dirs, per = 20, 100
	m.putMany(dirs*per, 32, func(i int) string { return fmt.Sprintf("d%02d/f%03d", i/per, i%per) },
		func(i int) []byte { return []byte(strconv.Itoa(i)) })

	var out string
	reqs := countRequests(t, addr, func() { out = run(t, m.Dir, "find", ".") })
	if n := strings.Count(out, "\n"); n != 1+dirs+dirs*per {
		t.Errorf("find printed %d lines, want %d", n, 1+dirs+dirs*per)
	}
	t.Logf("find: %v", reqs)
	// Full metadata mode asks each directory for its marker when find
	// stats it (a directory's mode and owner live there, and with
	// allow_other the kernel enforces them), never an object.
	if reqs["head"] > dirs {
		t.Errorf("find sent %.0f HEADs for %d directories of %d objects: it HEADs objects", reqs["head"], dirs, dirs*per)
	}
	// The root, the first directory (whose read begins a walk of the
	// tree, treewalk.go), the walk's two pages of 1,000 keys: the other
	// directories come from the walk.
	if reqs["list"] == 0 || reqs["list"] > 6 || reqs["get"] != 0 {
		t.Errorf("find sent %.0f LISTs and %.0f GETs, want 1 to 6 LISTs (a walk of the tree) and no GET", reqs["list"], reqs["get"])
	}

	// s3fs metadata, shown by ls -l of a directory nobody stat-ed yet.
	const metaFiles = 12
	for i := 0; i < metaFiles; i++ {
		m.Put(fmt.Sprintf("meta/f%02d", i), []byte(strings.Repeat("x", i)), map[string]string{
			"mode": strconv.Itoa(0o100600 + i%2*0o40), "uid": strconv.Itoa(1000 + i), "gid": "77", "mtime": strconv.Itoa(1600000000 + i)})
	}
	m.Put("meta/", nil, map[string]string{"mode": strconv.Itoa(0o40700), "uid": "5", "gid": "6", "mtime": "1500000000"})
	if err := os.Symlink("f00", m.Path("meta/link")); err != nil {
		t.Fatal(err)
	}
	unmountAll(t, m)

	// Without MinIO's listings that carry headers, as on any other
	// store: one HEAD per entry at most.
	m2 := mount(t, append(opts, onBucket(m.Bucket), withFlags("--list-metadata=false"))...)
	lstat(t, m2.Path("meta")) // its own cold lookup, not counted below
	release := holdDirs(t, m2.Path("meta"))
	var ents map[string]lsEntry
	reqs = countRequests(t, addr, func() { ents = lsLong(t, m2.Path("meta")) })
	t.Logf("ls -l meta: %v", reqs)
	if reqs["head"] > metaFiles+1 {
		t.Errorf("ls -l of %d entries sent %.0f HEADs: more than one per entry", metaFiles+1, reqs["head"])
	}
	checkMetaListing(t, ents, metaFiles)
	if st := lstat(t, m2.Path("meta")); st.Mode != 0o40700 || st.Uid != 5 || st.Mtim.Sec != 1500000000 {
		t.Errorf("meta: mode %#o uid %d mtime %d, want the marker's 040700 5 1500000000", st.Mode, st.Uid, st.Mtim.Sec)
	}
	release()
	unmountAll(t, m2)

	// On MinIO, once ls -l has stat-ed a few entries in order, the rest
	// come from one listing that carries each object's headers: the same
	// attributes, with a HEAD for only those first few.
	m4 := mount(t, append(opts, onBucket(m.Bucket))...)
	lstat(t, m4.Path("meta"))
	holdDirs(t, m4.Path("meta"))
	reqs = countRequests(t, addr, func() { ents = lsLong(t, m4.Path("meta")) })
	t.Logf("ls -l meta, headers listed: %v", reqs)
	if reqs["head"] > 3 || reqs["list"] < 2 {
		t.Errorf("ls -l of %d entries with headers listed sent %.0f HEADs and %.0f LISTs, want at most 3 HEADs (before the prefetch starts) and a second listing", metaFiles+1, reqs["head"], reqs["list"])
	}
	checkMetaListing(t, ents, metaFiles)
	if got, err := os.Readlink(m4.Path("meta/link")); err != nil || got != "f00" {
		t.Errorf("readlink with headers listed = %q, %v", got, err)
	}
	// A symlink looked up cold (no listing) is a symlink too.
	m3 := mount(t, append(opts[:1], onBucket(m.Bucket))...)
	if st := lstat(t, m3.Path("meta/link")); st.Mode&0o170000 != 0o120000 {
		t.Errorf("cold lstat of the symlink: mode %#o", st.Mode)
	}
}

// TestListingHeadersKeepPaceWithStream: ls -l of a directory of several
// pages on MinIO, read while its listing still streams (ls stats each
// entry as getdents returns it), gets the headers from the listing that
// carries them and sends no HEAD per entry. That listing waits for the
// streaming one: run ahead, it passed entries not yet published, and each
// was then HEADed (86,000 HEADs for 100,000 objects).
func TestListingHeadersKeepPaceWithStream(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	m := mount(t, withTTL(time.Minute), withFlags("--metrics-addr", addr))
	// Over 6,000 entries: fewer fit the kernel's first READDIRPLUS,
	// which takes the whole listing before ls stats any.
	const n = 20000
	m.putMany(n, 32, func(i int) string { return fmt.Sprintf("big/f%05d", i) },
		func(i int) []byte { return []byte(strconv.Itoa(i)) })
	unmountAll(t, m)
	m2 := mount(t, withTTL(time.Minute), withFlags("--metrics-addr", addr), onBucket(m.Bucket))
	lstat(t, m2.Path("big")) // its own cold lookup, not counted below
	var ents map[string]lsEntry
	reqs := countRequests(t, addr, func() { ents = lsLong(t, m2.Path("big")) })
	t.Logf("ls -l of %d objects: %v", n, reqs)
	if len(ents) != n {
		t.Fatalf("ls -l showed %d entries, want %d", len(ents), n)
	}
	for _, i := range []int{0, 1234, n - 1} {
		if e := ents[fmt.Sprintf("f%05d", i)]; e.size != int64(len(strconv.Itoa(i))) {
			t.Errorf("ls -l f%05d: %+v", i, e)
		}
	}
	if reqs["head"] > 10 {
		t.Errorf("ls -l of %d objects sent %.0f HEADs, want a few (before the prefetch by listing starts)", n, reqs["head"])
	}
}

// checkMetaListing checks ls -l of TestListingFindSendsNoHead's meta/.
func checkMetaListing(t *testing.T, ents map[string]lsEntry, metaFiles int) {
	t.Helper()
	for i := 0; i < metaFiles; i++ {
		name := fmt.Sprintf("f%02d", i)
		e, ok := ents[name]
		wantMode := "-rw-------"
		if i%2 == 1 {
			wantMode = "-rw-r-----"
		}
		if !ok || e.mode != wantMode || e.uid != 1000+i || e.gid != 77 || e.mtime != int64(1600000000+i) || e.size != int64(i) {
			t.Errorf("ls -l %s: %+v, want %s %d:77 size %d mtime %d", name, e, wantMode, 1000+i, i, 1600000000+i)
		}
	}
	if e := ents["link"]; !strings.HasPrefix(e.mode, "l") || e.link != "f00" {
		t.Errorf("ls -l link after remount: %+v, want a symlink to f00", e)
	}
}

// TestListingMetadataMode: with --metadata listing, ls -l of a directory
// sends only its listing and shows size, mtime = LastModified and the
// flags' owner and modes; find sends no HEAD either.
func TestListingMetadataMode(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	m := mount(t, withTTL(time.Minute), withFlags("--metrics-addr", addr, "--metadata", "listing",
		"--uid", "4321", "--gid", "4322", "--file-mode", "0640", "--dir-mode", "0750"))
	const n = 40
	for i := 0; i < n; i++ {
		m.Put(fmt.Sprintf("l/f%02d", i), bytes.Repeat([]byte("y"), i), map[string]string{"mode": strconv.Itoa(0o100600), "uid": "7", "mtime": "1600000000"})
	}
	m.Put("l/sub/x", []byte("x"), nil)
	lastMod := map[string]int64{}
	for _, o := range listObjects(t, m, "l/") {
		lastMod[strings.TrimPrefix(aws.ToString(o.Key), m.Key("l/"))] = aws.ToTime(o.LastModified).Unix()
	}

	var ents map[string]lsEntry
	reqs := countRequests(t, addr, func() { ents = lsLong(t, m.Path("l")) })
	t.Logf("ls -l (listing metadata): %v", reqs)
	for op, c := range reqs {
		if op != "list" && c != 0 {
			t.Errorf("ls -l sent %.0f %s requests, want LISTs only", c, op)
		}
	}
	if reqs["list"] == 0 {
		t.Error("ls -l sent no LIST")
	}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("f%02d", i)
		e := ents[name]
		if e.mode != "-rw-r-----" || e.uid != 4321 || e.gid != 4322 || e.size != int64(i) || e.mtime != lastMod[name] {
			t.Errorf("ls -l %s: %+v, want -rw-r----- 4321:4322 size %d mtime %d (LastModified)", name, e, i, lastMod[name])
		}
	}
	if e := ents["sub"]; e.mode != "drwxr-x---" || e.uid != 4321 {
		t.Errorf("ls -l sub: %+v, want drwxr-x--- 4321", e)
	}
	reqs = countRequests(t, addr, func() { run(t, m.Dir, "find", ".", "-name", "nothing") })
	if reqs["head"] != 0 {
		t.Errorf("find sent %.0f HEADs with listing metadata", reqs["head"])
	}
	// Extended attributes are off in listing mode (ENOSYS to the kernel,
	// which then answers every xattr call itself: ls -l sends none).
	if _, err := unix.Lgetxattr(m.Path("l/f00"), "user.k", make([]byte, 64)); err != unix.EOPNOTSUPP {
		t.Errorf("getxattr with listing metadata: %v, want EOPNOTSUPP", err)
	}
	// A cold lookup asks listings too; -o use_xattr turns xattrs on.
	m2 := mount(t, onBucket(m.Bucket), withFlags("--metadata", "listing", "--uid", "4321", "-o", "use_xattr"))
	if st := lstat(t, m2.Path("l/f03")); st.Size != 3 || st.Uid != 4321 || st.Mtim.Sec != lastMod["f03"] {
		t.Errorf("cold lstat l/f03: size %d uid %d mtime %d", st.Size, st.Uid, st.Mtim.Sec)
	}
	if err := unix.Lsetxattr(m2.Path("l/f03"), "user.k", []byte("v"), 0); err != nil {
		t.Errorf("setxattr with listing metadata and -o use_xattr: %v", err)
	} else if h := m.Head("l/f03"); !strings.Contains(h.Metadata["xattr"], "user.k") {
		t.Errorf("x-amz-meta-xattr after setxattr: %q", h.Metadata["xattr"])
	}
	if st := lstat(t, m2.Path("l/sub")); st.Mode&0o170000 != 0o040000 {
		t.Errorf("cold lstat l/sub: mode %#o, want a directory", st.Mode)
	}
}

// TestListingModeKeepsMarkerHeaders: with --metadata listing a directory
// known from its parent's listing (a common prefix, which does not say
// whether a marker exists) keeps its marker's xattrs and other tools' keys
// when chmod rewrites the marker, and shows the xattrs stored there; an
// implicit directory gets a marker, as before.
func TestListingModeKeepsMarkerHeaders(t *testing.T) {
	t.Parallel()
	m := mount(t, withTTL(time.Minute), withFlags("--metadata", "listing", "-o", "use_xattr"))
	xattr := `{"user.a":"YQ=="}` // s3fs's format: base64 values
	m.Put("p/d/", nil, map[string]string{"mode": strconv.Itoa(0o40755), "foreign": "keepme", "xattr": url.QueryEscape(xattr)})
	m.Put("p/d/f", []byte("x"), nil)
	m.Put("p/implicit/f", []byte("x"), nil)
	lsLong(t, m.Path("p")) // d and implicit are known from this listing only
	buf := make([]byte, 64)
	if n, err := unix.Getxattr(m.Path("p/d"), "user.a", buf); err != nil || string(buf[:n]) != "a" {
		t.Errorf("getxattr user.a of a directory listed only: %q, %v; want \"a\" from its marker", buf[:max(n, 0)], err)
	}
	for _, name := range []string{"p/d", "p/implicit"} {
		if err := os.Chmod(m.Path(name), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	h := m.Head("p/d/")
	if h.Metadata["foreign"] != "keepme" || !strings.Contains(h.Metadata["xattr"], "user.a") {
		t.Errorf("marker after chmod: %v, want foreign=keepme and the xattr kept", h.Metadata)
	}
	if h.Metadata["mode"] != strconv.Itoa(0o40700) {
		t.Errorf("marker mode after chmod: %q, want %d", h.Metadata["mode"], 0o40700)
	}
	if h := m.Head("p/implicit/"); h.Metadata["mode"] != strconv.Itoa(0o40700) {
		t.Errorf("implicit directory's new marker: mode %q, want %d", h.Metadata["mode"], 0o40700)
	}
}

// listObjects lists prefix (under the mount prefix) with the SDK.
func listObjects(t *testing.T, m *Mount, prefix string) []types.Object {
	t.Helper()
	ctx, cancel := s3ctx()
	defer cancel()
	out, err := m.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(m.Bucket), Prefix: aws.String(m.Key(prefix))})
	if err != nil {
		t.Fatal(err)
	}
	return out.Contents
}

// TestListingTolerance: an object whose HEAD fails (SSE-C: a HEAD without
// the customer key gets 400) does not break ls or ls -l of its directory,
// and the log says why; a key with a control character does not break
// its directory's listing.
func TestListingTolerance(t *testing.T) {
	t.Parallel()
	srv, ca := startSSEMinio(t)
	// HEADs per entry, as on any store but MinIO (whose listings would
	// carry the SSE-C object's headers, and no HEAD would fail).
	m := mount(t, onServer(srv), withEnv("AWS_CA_BUNDLE="+ca), withTTL(time.Minute), withFlags("--list-metadata=false"))
	key := randBytes(5, 32)
	sum := md5.Sum(key) //nolint:gosec // the digest S3 asks for
	ctx, cancel := s3ctx()
	_, err := m.S3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(m.Bucket), Key: aws.String(m.Key("enc/secret")), Body: bytes.NewReader([]byte("sealed")),
		SSECustomerAlgorithm: aws.String("AES256"),
		SSECustomerKey:       aws.String(base64.StdEncoding.EncodeToString(key)),
		SSECustomerKeyMD5:    aws.String(base64.StdEncoding.EncodeToString(sum[:])),
	})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "c", "d"} {
		m.Put("enc/"+name, []byte(name), map[string]string{"mode": strconv.Itoa(0o100604), "uid": "9"})
	}
	if got := run(t, m.Path("enc"), "ls"); got != "a\nb\nc\nd\nsecret\n" {
		t.Errorf("ls with an SSE-C object: %q", got)
	}
	ents := lsLong(t, m.Path("enc"))
	for _, name := range []string{"a", "b", "c", "d"} {
		if e := ents[name]; e.mode != "-rw----r--" || e.uid != 9 {
			t.Errorf("ls -l %s beside an SSE-C object: %+v", name, e)
		}
	}
	if e, ok := ents["secret"]; !ok || e.size != 6 {
		t.Errorf("ls -l secret (HEAD fails): %+v, %v; want it listed with its listing size 6", e, ok)
	}
	eventually(t, 10*time.Second, func() string {
		b, _ := os.ReadFile(m.LogFile)
		if !bytes.Contains(b, []byte("stat-entry")) || !bytes.Contains(b, []byte("enc/secret")) {
			return "the log does not say why enc/secret shows the listing's attributes"
		}
		return ""
	})

	m.Put("ctl/a\x01b", []byte("ctl"), nil)
	m.Put("ctl/plain", []byte("p"), nil)
	m.Put("ctl/sp ace+plus", []byte("s"), nil)
	if got := run(t, m.Path("ctl"), "ls"); got != "a\x01b\nplain\nsp ace+plus\n" {
		t.Errorf("ls of a directory with a control character in a key: %q", got)
	}
	sameBytes(t, "a\\x01b", readFile(t, m.Path("ctl/a\x01b")), []byte("ctl"))
}

// chmod of a file known only from a listing (--metadata listing) rewrites
// its headers from the object's, not from the listing's defaults: the
// owner, the times, the xattrs and other tools' keys stay.
func TestListingChmodKeepsHeaders(t *testing.T) {
	t.Parallel()
	m := mount(t, withFlags("--metadata", "listing"))
	m.Put("f", []byte("data"), map[string]string{
		"uid": "1234", "gid": "5678", "mode": "33188", "mtime": "1600000000",
		"xattr": "%7B%22user.k%22%3A%22dmFsdWU%3D%22%7D", "other-tool": "kept",
	})
	if err := os.Chmod(m.Path("f"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := m.Head("f")
	want := map[string]string{"uid": "1234", "gid": "5678", "mode": "33152", "mtime": "1600000000",
		"xattr": "%7B%22user.k%22%3A%22dmFsdWU%3D%22%7D", "other-tool": "kept"}
	for k, v := range want {
		if got := h.Metadata[k]; got != v {
			t.Errorf("x-amz-meta-%s after chmod: %q, want %q (all: %v)", k, got, v, h.Metadata)
		}
	}
}

// A cold lookup (a name in a directory not listed yet) costs a peek of the
// key (a GET of its last 128 KiB: the headers a HEAD tells, and a small
// file's whole content) and a one-key listing of "key/", in parallel; only
// a directory with a marker costs one more request, the HEAD of its marker,
// for the mode and owner the kernel checks. The answers are what the
// objects say, and reading a small file just looked up sends nothing more.
func TestColdLookupRequests(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	m := mount(t, withTTL(time.Minute), withFlags("--metrics-addr", addr))
	m.Put("file", []byte("12345"), map[string]string{"mode": strconv.Itoa(0o100640), "uid": "1234"})
	big := randBytes(77, 300<<10)
	m.Put("big", big, nil)
	m.Put("empty", nil, map[string]string{"mode": strconv.Itoa(0o100600)})
	m.Put("implicit/below", []byte("x"), nil)
	m.Put("marked/", nil, map[string]string{"mode": strconv.Itoa(0o40710), "uid": "4321"})
	unmountAll(t, m)
	m2 := mount(t, withTTL(time.Minute), withFlags("--metrics-addr", addr), onBucket(m.Bucket))

	for _, tc := range []struct {
		name  string
		heads float64
		mode  uint32
		uid   uint32
		size  int64
	}{
		{"file", 0, 0o100640, 1234, 5},
		{"big", 0, 0o100644, 0, int64(len(big))},
		{"empty", 0, 0o100600, 0, 0},
		{"implicit", 0, syscall.S_IFDIR, 0, 0},
		{"marked", 1, 0o40710, 4321, 0},
	} {
		var st syscall.Stat_t
		reqs := countRequests(t, addr, func() { st = pinnedLstat(t, m2.Path(tc.name)) })
		if reqs["head"] != tc.heads || reqs["list"] != 1 || reqs["get"] != 1 {
			t.Errorf("cold lookup of %s sent %v, want 1 GET, 1 LIST and %.0f HEAD", tc.name, reqs, tc.heads)
		}
		if tc.name == "implicit" {
			if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
				t.Errorf("implicit: mode %o, want a directory", st.Mode)
			}
			continue
		}
		if st.Mode != tc.mode || st.Uid != tc.uid || (st.Mode&syscall.S_IFMT == syscall.S_IFREG && st.Size != tc.size) {
			t.Errorf("%s: mode %o uid %d size %d, want %o %d %d", tc.name, st.Mode, st.Uid, st.Size, tc.mode, tc.uid, tc.size)
		}
	}
	// The small file's bytes came with its lookup; the big one's did not.
	reqs := countRequests(t, addr, func() { sameBytes(t, "file", readFile(t, m2.Path("file")), []byte("12345")) })
	if reqs["get"]+reqs["head"]+reqs["list"] != 0 {
		t.Errorf("reading a small file just looked up sent %v, want nothing", reqs)
	}
	reqs = countRequests(t, addr, func() { sameBytes(t, "big", readFile(t, m2.Path("big")), big) })
	if reqs["get"] != 1 || reqs["head"]+reqs["list"] != 0 {
		t.Errorf("reading a 300 KiB file just looked up sent %v, want one GET", reqs)
	}
	// A name that is nothing: the same two requests, ENOENT.
	reqs = countRequests(t, addr, func() {
		wantErrno(t, "lstat of a missing name", syscall.Lstat(m2.Path("missing"), new(syscall.Stat_t)), syscall.ENOENT)
	})
	if reqs["get"] != 1 || reqs["list"] != 1 || reqs["head"] != 0 {
		t.Errorf("cold lookup of a missing name sent %v, want 1 GET and 1 LIST", reqs)
	}
}

// TestListingMaxStatEntries: --max-stat-entries bounds the entries that
// cached listings hold together. The listing used least recently goes
// first (the next ls of its directory lists again); a directory bigger
// than the bound is never cached, and every pass over it is still whole.
func TestListingMaxStatEntries(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	opts := []mountOpt{withTTL(time.Minute), withFlags("--metrics-addr", addr, "--max-stat-entries", "150")}
	m := mount(t, opts...)
	const per = 100
	m.putMany(2*per, 32, func(i int) string { return fmt.Sprintf("%c/f%03d", 'a'+i/per, i%per) },
		func(i int) []byte { return []byte(strconv.Itoa(i)) })
	// The nodes stay (the bound drops listings, not nodes).
	release := holdDirs(t, m.Path("a"), m.Path("b"))
	lists := func(dir string) float64 {
		t.Helper()
		var out string
		reqs := countRequests(t, addr, func() { out = run(t, m.Dir, "ls", "-f", dir) })
		n := 0
		for _, name := range strings.Fields(out) {
			if name != "." && name != ".." {
				n++
			}
		}
		if n != per {
			t.Fatalf("ls %s printed %d names, want %d", dir, n, per)
		}
		return reqs["list"]
	}
	steps := []struct {
		dir  string
		list bool // a listing request expected
	}{
		{"a", true}, {"a", false}, // cached: 100 entries of 150
		{"b", true}, {"b", false}, // 200 entries: a's listing went
		{"a", true}, // and b's now
		{"b", true},
	}
	for i, s := range steps {
		if n := lists(s.dir); (n > 0) != s.list {
			t.Errorf("step %d, ls %s: %.0f LIST requests, want a listing: %v", i, s.dir, n, s.list)
		}
	}
	release()
	unmountAll(t, m)

	// A directory over the bound alone: listed anew each time, whole.
	m2 := mount(t, onBucket(m.Bucket), withTTL(time.Minute), withFlags("--metrics-addr", addr, "--max-stat-entries", "50"))
	m = m2
	for i := range 2 {
		if n := lists("a"); n == 0 {
			t.Errorf("pass %d over a directory of %d entries with a bound of 50 sent no LIST: it was cached", i, per)
		}
	}
	unmountAll(t, m2)

	// Without a bound both stay cached.
	m3 := mount(t, onBucket(m.Bucket), withTTL(time.Minute), withFlags("--metrics-addr", addr, "--max-stat-entries", "0"))
	m = m3
	holdDirs(t, m3.Path("a"), m3.Path("b"))
	for i, s := range []struct {
		dir  string
		list bool
	}{{"a", true}, {"b", true}, {"a", false}, {"b", false}} {
		if n := lists(s.dir); (n > 0) != s.list {
			t.Errorf("unbounded step %d, ls %s: %.0f LIST requests, want a listing: %v", i, s.dir, n, s.list)
		}
	}
}

// TestListingWalkListsTreeOnce: find going down a tree reads most of its
// directories from one listing of the subtree without a delimiter (a
// walk), not one listing each, and looks none of those directories up
// with a HEAD; the tree it prints is whole. A walk's listing is never used
// once the mount changed the namespace: a file made after the walk listed
// its directory shows in that directory.
func TestListingWalkListsTreeOnce(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	m := mount(t, withTTL(time.Minute), withFlags("--metrics-addr", addr))
	const tops, subs, files = 4, 5, 20
	name := func(i int) string {
		return fmt.Sprintf("t%d/s%d/f%02d", i/(subs*files), i/files%subs, i%files)
	}
	m.putMany(tops*subs*files, 32, name, func(i int) []byte { return []byte(strconv.Itoa(i)) })
	// One directory with a marker carrying a mode: a walk must not hide it.
	m.Put("t3/s2/", nil, map[string]string{"mode": strconv.Itoa(0o40700), "uid": "0", "gid": "0", "mtime": "1500000000"})
	want := []string{"."}
	for ti := range tops {
		want = append(want, fmt.Sprintf("./t%d", ti))
		for si := range subs {
			want = append(want, fmt.Sprintf("./t%d/s%d", ti, si))
			for fi := range files {
				want = append(want, fmt.Sprintf("./t%d/s%d/f%02d", ti, si, fi))
			}
		}
	}
	sort.Strings(want)

	var out string
	reqs := countRequests(t, addr, func() { out = run(t, m.Dir, "find", ".") })
	got := strings.Fields(out)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Fatalf("find printed %d paths, want %d:\n%s", len(got), len(want), out)
	}
	dirs := 1 + tops + tops*subs
	t.Logf("find over %d directories: %v", dirs, reqs)
	// The root, the first directory (its read begins the walk), the
	// walk's page, and maybe the first directory's own subdirectories.
	if reqs["list"] > float64(3+subs) {
		t.Errorf("find sent %.0f LISTs for %d directories: a listing per directory", reqs["list"], dirs)
	}
	// Lookups of the directories the walk listed need no HEAD; those of
	// the root's own listing and the first directory's may.
	if reqs["head"] > float64(1+subs+1) {
		t.Errorf("find sent %.0f HEADs for %d directories", reqs["head"], dirs)
	}
	if st := lstat(t, m.Path("t3/s2")); st.Mode != 0o40700 || st.Mtim.Sec != 1500000000 {
		t.Errorf("t3/s2: mode %#o mtime %d, want its marker's 040700 1500000000", st.Mode, st.Mtim.Sec)
	}
	unmountAll(t, m)

	// A walk's listing kept for a directory not read yet, then a file
	// made there through the mount: reading it lists again.
	m2 := mount(t, onBucket(m.Bucket), withTTL(time.Minute))
	run(t, m2.Dir, "ls", ".")
	run(t, m2.Dir, "ls", "t0") // begins the walk of the root
	time.Sleep(time.Second)    // it has listed the tree
	if err := os.WriteFile(m2.Path("t2/s1/new"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := run(t, m2.Dir, "ls", "t2/s1"); !slices.Contains(strings.Fields(out), "new") {
		t.Errorf("ls t2/s1 after a file was made there lacks it:\n%s", out)
	}
}

// TestOpenRevalidatesFromFreshListing: grep -r right after du over a tree
// tar has just written sends no HEAD per file. Opens of files whose
// attributes have expired are revalidated from their directory's listing
// when that is fresh and shows the same object (ETag and size), as a
// lookup answered from it would be. At this size the kernel's lookups
// already renew most nodes; over 3,000 files untarred in 20 s, 461 opens
// each sent a HEAD before Node.validFromListing.
func TestOpenRevalidatesFromFreshListing(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	const ttl = 2 * time.Second
	m := mount(t, withTTL(ttl), withFlags("--metrics-addr", addr))
	src := t.TempDir()
	const dirs, per = 4, 15
	for i := 0; i < dirs*per; i++ {
		p := filepath.Join(src, "tree", fmt.Sprintf("s%d", i/per), fmt.Sprintf("f%02d.c", i%per))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(fmt.Sprintf("int f%d;\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, src, "tar", "cf", "tree.tar", "tree")
	run(t, m.Dir, "tar", "xf", filepath.Join(src, "tree.tar"))
	held := []string{m.Path("tree")}
	for d := range dirs {
		held = append(held, m.Path(fmt.Sprintf("tree/s%d", d)))
	}
	holdDirs(t, held...)
	time.Sleep(ttl)
	run(t, m.Dir, "du", "-s", "tree")
	var out string
	reqs := countRequests(t, addr, func() { out = run(t, m.Dir, "grep", "-rl", "int", "tree") })
	t.Logf("grep -r over %d files just after du: %v", dirs*per, reqs)
	if got := strings.Count(out, "\n"); got != dirs*per {
		t.Errorf("grep -rl listed %d files, want %d", got, dirs*per)
	}
	if reqs["head"] > 2 {
		t.Errorf("grep -r sent %.0f HEADs for %d files their fresh listings show unchanged", reqs["head"], dirs*per)
	}
}

// TestListingWalkGetsHeadersForDu: du over a tree of several walk pages.
// The walk's first page is asked for before du stats any file, so it
// comes without headers; once du stats the files of the first directory
// it reads, that page is listed again with them, and the directories it
// holds are not listed again one by one for their headers (nor HEADed
// entry by entry before that listing starts). Sizes stay right.
func TestListingWalkGetsHeadersForDu(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	m := mount(t, withTTL(time.Minute), withFlags("--metrics-addr", addr))
	const tops, subs, files = 3, 10, 80 // 2,400 keys: three pages of a walk
	name := func(i int) string {
		return fmt.Sprintf("t%d/s%d/f%02d", i/(subs*files), i/files%subs, i%files)
	}
	m.putMany(tops*subs*files, 32, name, func(i int) []byte { return bytes.Repeat([]byte("x"), 1000+i%7) })
	unmountAll(t, m)
	m2 := mount(t, withTTL(time.Minute), withFlags("--metrics-addr", addr), onBucket(m.Bucket))
	var out string
	reqs := countRequests(t, addr, func() { out = run(t, m2.Dir, "du", "-s", "-B1", "--apparent-size", ".") })
	var want int64
	for i := 0; i < tops*subs*files; i++ {
		want += int64(1000 + i%7)
	}
	f := strings.Fields(out)
	if len(f) == 0 {
		t.Fatalf("du printed %q", out)
	}
	if got, _ := strconv.ParseInt(f[0], 10, 64); got < want {
		t.Errorf("du says %d bytes, want at least %d (the files alone)", got, want)
	}
	dirs := 1 + tops + tops*subs
	t.Logf("du over %d directories of %d files: %v", dirs, tops*subs*files, reqs)
	// Without the second look at the first pages, their directories
	// were each listed again with headers, after a few HEADs each: 30
	// LISTs and 77 HEADs; with it 11-13 and 14-20 (three runs at once,
	// beside two CI runs). Those du reads before the pages come back
	// still are.
	if reqs["list"] > 20 || reqs["head"] > 45 {
		t.Errorf("du sent %.0f LISTs and %.0f HEADs for %d directories: the first page's directories are listed one by one", reqs["list"], reqs["head"], dirs)
	}
}

// TestCreatesInNewDirectoryListOnce: names looked up in a directory whose
// fresh listing lacks them (here one this mount just made, as tar, git and
// npm make theirs) cost one listing each, not a HEAD and a listing at
// once; and what other tools made there since is still found at once (the
// default negative TTL is 0), however many names sort before it.
func TestCreatesInNewDirectoryListOnce(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	m := mount(t, withTTL(time.Minute), withFlags("--metrics-addr", addr))
	dir := m.Path("new")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	holdDirs(t, dir) // its listing, made empty by mkdir, is what is tested
	const n = 20
	reqs := countRequests(t, addr, func() {
		for i := range n {
			name := filepath.Join(dir, fmt.Sprintf("f%02d.c", i))
			f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString("int x;\n"); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Logf("creating %d files in a new directory: %v", n, reqs)
	if reqs["head"] != 0 || reqs["list"] > n {
		t.Errorf("creating %d files sent %v, want at most one listing each and no HEAD", n, reqs)
	}

	m.Put("new/other.txt", []byte("x"), nil)
	m.Put("new/sub/x", []byte("x"), nil)
	for i := range 70 { // more than one probe's page, all before "deep/"
		m.Put(fmt.Sprintf("new/deep.%02d", i), []byte("x"), nil)
	}
	m.Put("new/deep/x", []byte("x"), nil)
	for name, dir := range map[string]bool{"other.txt": false, "sub": true, "deep": true} {
		st, err := os.Stat(filepath.Join(m.Dir, "new", name))
		if err != nil {
			t.Errorf("%s, made by another tool after the listing: %v", name, err)
			continue
		}
		if st.IsDir() != dir {
			t.Errorf("%s: directory %v, want %v", name, st.IsDir(), dir)
		}
	}
	if _, err := os.OpenFile(filepath.Join(dir, "other.txt"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); !errors.Is(err, os.ErrExist) {
		t.Errorf("O_EXCL create of another tool's object: %v, want EEXIST", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat of a name nobody made: %v, want ENOENT", err)
	}
}

// TestListingHeadersSurviveAPausedReader: a program stat-ing a big
// directory's entries as it reads them (ls -l) pauses for longer than the
// prefetch by listing waits for it (a loaded machine; here a sleep). The
// prefetch runs ahead and ends before the listing has published the last
// pages; the headers it brought for them are still used when they come,
// not a HEAD per entry (CI at 0bbf963: 1,004 HEADs for 20,000 objects).
func TestListingHeadersSurviveAPausedReader(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	m := mount(t, withTTL(time.Minute), withFlags("--metrics-addr", addr))
	const n = 5000
	name := func(i int) string { return fmt.Sprintf("paused/f%05d", i) }
	m.putMany(n, 32, name, func(i int) []byte { return []byte(strconv.Itoa(i)) })
	unmountAll(t, m)
	m2 := mount(t, withTTL(time.Minute), withFlags("--metrics-addr", addr), onBucket(m.Bucket))
	dir := m2.Path("paused")
	lstat(t, dir) // its own cold lookup, not counted below
	seen := 0
	reqs := countRequests(t, addr, func() {
		d, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		paused := false
		for {
			ents, err := d.ReadDir(100)
			for _, e := range ents {
				if st := lstat(t, filepath.Join(dir, e.Name())); st.Size == 0 {
					t.Errorf("%s: size 0", e.Name())
				}
				seen++
			}
			if !paused && seen >= 1100 {
				// Past the first page, the prefetch by listing under
				// way: it waits at most 2 s a page for the reader.
				paused = true
				time.Sleep(9 * time.Second)
			}
			if err != nil {
				break
			}
		}
	})
	t.Logf("reading and stat-ing %d entries with a 9 s pause: %v", seen, reqs)
	if seen != n {
		t.Fatalf("read %d entries, want %d", seen, n)
	}
	if reqs["head"] > 10 {
		t.Errorf("%.0f HEADs, want a few (before the prefetch by listing starts)", reqs["head"])
	}
}

// TestListingForgetsWhatChangedHere: a directory's cached listing holds
// its entries' headers once they were stat-ed; a chmod (or an upload)
// through the mount changes the object, and a lookup after the kernel
// forgot the node must show the new attributes, not the listing's (the
// reliability model, under drop_caches, saw a directory's chmod undone).
// The entries are in the mount's root, whose node (and listing) the
// kernel never forgets.
func TestListingForgetsWhatChangedHere(t *testing.T) {
	t.Parallel()
	m := mount(t, withTTL(time.Minute))
	if err := os.Mkdir(m.Path("sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, m.Path("f"), []byte("first"))
	if err := syscall.Chmod(m.Path("f"), 0o640); err != nil {
		t.Fatal(err)
	}
	// The listing, and the headers of its entries from the store.
	dropKernelCaches(t)
	run(t, m.Dir, "ls", "-l", ".")
	if err := syscall.Chmod(m.Path("sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(m.Path("f"), 0o604); err != nil {
		t.Fatal(err)
	}
	writeFile(t, m.Path("f"), []byte("second, longer"))
	dropKernelCaches(t)
	if st := lstat(t, m.Path("sub")); st.Mode&0o7777 != 0o755 {
		t.Errorf("sub after chmod 755 and a forget: mode %o", st.Mode&0o7777)
	}
	if st := lstat(t, m.Path("f")); st.Mode&0o7777 != 0o604 || st.Size != int64(len("second, longer")) {
		t.Errorf("f after chmod 604, an overwrite and a forget: mode %o size %d", st.Mode&0o7777, st.Size)
	}
	sameBytes(t, "f", readFile(t, m.Path("f")), []byte("second, longer"))
}

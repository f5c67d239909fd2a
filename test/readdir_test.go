package test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Directory listings that stream (issue #11): entries reach getdents page
// by page as ListObjectsV2 returns them.

// parseDirents decodes a getdents64 buffer (struct linux_dirent64) into
// names, with "/" after a directory's.
func parseDirents(t *testing.T, buf []byte) []string {
	t.Helper()
	var out []string
	for len(buf) > 0 {
		if len(buf) < 19 {
			t.Fatalf("short dirent: %d bytes", len(buf))
		}
		reclen := int(binary.NativeEndian.Uint16(buf[16:18]))
		typ := buf[18]
		name := buf[19:reclen]
		name = name[:bytes.IndexByte(name, 0)]
		ent := string(name)
		if typ == syscall.DT_DIR {
			ent += "/"
		}
		if ent != "./" && ent != "../" {
			out = append(out, ent)
		}
		buf = buf[reclen:]
	}
	return out
}

// getdents reads the directory open at fd to its end, bufSize bytes of
// entries at a time.
func getdents(t *testing.T, fd int, bufSize int) []string {
	t.Helper()
	buf := make([]byte, bufSize)
	var out []string
	for {
		n, err := syscall.Getdents(fd, buf)
		if err != nil {
			t.Fatalf("getdents: %v", err)
		}
		if n == 0 {
			return out
		}
		out = append(out, parseDirents(t, buf[:n])...)
	}
}

// keyOrder sorts entries as a listing returns them: a directory at
// "name/".
func keyOrder(ents []string) []string {
	s := slices.Clone(ents)
	slices.Sort(s) // a directory's entry already ends with "/"
	return s
}

func openDir(t *testing.T, path string) int {
	t.Helper()
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	return fd
}

// TestReaddirStreamsPages: the first getdents of a directory of three
// listing pages returns entries while the daemon has sent at most two
// LISTs (the page returned and the one fetched ahead), even with a buffer
// as big as ls's, for which the kernel asks for a 1 MiB reply that the
// whole directory would fit; reading on returns every name once, in key
// order, from three pages in all. The store answers through a proxy that
// makes each page take half a second, so that "the next page has not
// come" does not depend on how fast the machine takes the first.
func TestReaddirStreamsPages(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	p := startFaultProxy(t, strings.TrimPrefix(sharedMinio.Endpoint, "http://"))
	m := mount(t, withTTL(time.Minute), withFlags("--metrics-addr", addr, "--endpoint", p.URL()))
	const files = 2500
	m.putMany(files, 32, func(i int) string { return fmt.Sprintf("big/f%05d", i) }, func(int) []byte { return nil })
	var want []string
	for i := 0; i < files; i++ {
		want = append(want, fmt.Sprintf("f%05d", i))
	}
	// A directory, and an object that sorts between its name and
	// "name/".
	m.Put("big/f01000-d/x", nil, nil)
	m.Put("big/f01000-d.txt", nil, nil)
	want = keyOrder(append(want, "f01000-d/", "f01000-d.txt"))

	fd := openDir(t, m.Path("big")) // its lookup's requests go before
	// A page is some ten chunks of the proxy's: about 0.5 s each.
	p.set(func(p *faultProxy) { p.latency = 50 * time.Millisecond })
	buf := make([]byte, 1<<20)
	var first, rest []string
	var reqs map[string]float64
	// The page fetched ahead after the first getdents may complete
	// between the two inner counts: the outer one sees every page.
	all := countRequests(t, addr, func() {
		reqs = countRequests(t, addr, func() {
			n, err := syscall.Getdents(fd, buf)
			if err != nil {
				t.Fatalf("first getdents: %v", err)
			}
			first = parseDirents(t, buf[:n])
		})
		t.Logf("first getdents: %d entries, requests %v", len(first), reqs)
		if len(first) == 0 {
			t.Fatal("the first getdents returned no entry")
		}
		if reqs["list"] > 2 {
			t.Errorf("the first getdents returned after %.0f LISTs, want at most 2 (of 3 pages)", reqs["list"])
		}
		rest = getdents(t, fd, 4096)
	})
	got := append(first, rest...)
	if !slices.Equal(got, want) {
		t.Errorf("getdents returned %d entries, want %d in key order, each once (first differences: %s)",
			len(got), len(want), firstDiff(got, want))
	}
	if all["list"] != 3 {
		t.Errorf("reading the directory sent %.0f LISTs, want its 3 pages", all["list"])
	}
	for op, c := range all {
		if op != "list" && c != 0 {
			t.Errorf("reading the directory sent %.0f %s requests", c, op)
		}
	}
}

// firstDiff describes where got and want first differ.
func firstDiff(got, want []string) string {
	for i := 0; i < len(got) && i < len(want); i++ {
		if got[i] != want[i] {
			return fmt.Sprintf("at %d: %q, want %q", i, got[i:min(i+3, len(got))], want[i:min(i+3, len(want))])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(got), len(want))
}

// TestReaddirPageBoundary: an object that is the last key of a listing
// page waits for the next page, where a same-named directory could come
// after names such as "x-a" and "x.b", and then comes in key order with
// every other name once, whatever the getdents buffer size; ls agrees.
// (MinIO accepts a PUT of "x/in" beside "x" but never lists it, so the
// directory winning across a boundary is TestReaddirStreams's, in fs.)
func TestReaddirPageBoundary(t *testing.T) {
	t.Parallel()
	m := mount(t, withTTL(time.Minute))
	var want []string
	m.putMany(999, 32, func(i int) string { return fmt.Sprintf("pb/a%04d", i) }, func(int) []byte { return nil })
	for i := 0; i < 999; i++ {
		want = append(want, fmt.Sprintf("a%04d", i))
	}
	// Key 1,000 (the last of the first page) is "x"; the second page
	// holds "x-a", "x.b", "x0/" and "y".
	for _, k := range []string{"x", "x-a", "x.b", "x0/in", "y"} {
		m.Put("pb/"+k, []byte(k), nil)
	}
	want = append(want, "x", "x-a", "x.b", "x0/", "y")
	for _, size := range []int{4096, 64 << 10} {
		got := getdents(t, openDir(t, m.Path("pb")), size)
		if !slices.Equal(got, want) {
			t.Errorf("getdents (%d-byte buffer): %d entries, want %d (%s)", size, len(got), len(want), firstDiff(got, want))
		}
	}
	out := run(t, m.Path("pb"), "ls", "-1", "--sort=none")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != len(want) || lines[999] != "x" {
		t.Errorf("ls: %d names (the 1,000th %q), want %d with x the 1,000th", len(lines), lines[min(999, len(lines)-1)], len(want))
	}
}

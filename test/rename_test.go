package test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"
)

// copyGate is an S3 proxy that can hold or refuse the server-side copies
// bucketfs sends (CopyObject: a PUT with x-amz-copy-source), and counts
// deletes one by one (DELETE) and in batches (POST ?delete).
type copyGate struct {
	srv           *httptest.Server
	copies        atomic.Int64
	singleDeletes atomic.Int64
	batchDeletes  atomic.Int64

	mu       sync.Mutex
	hold     chan struct{} // copies from under holdFrom wait until it is closed
	holdFrom string        // a key prefix
	refuse   string        // copies of this source key get 403
	started  chan struct{} // closed at the first held copy
}

func startCopyGate(t *testing.T, target string) *copyGate {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	g := &copyGate{}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("X-Amz-Copy-Source") != "":
			g.copies.Add(1)
			src := r.Header.Get("X-Amz-Copy-Source")
			g.mu.Lock()
			var hold chan struct{}
			if g.hold != nil && strings.Contains(src, "/"+g.holdFrom) {
				hold = g.hold
				if g.started != nil {
					close(g.started)
					g.started = nil
				}
			}
			refuse := g.refuse
			g.mu.Unlock()
			if refuse != "" && strings.HasSuffix(src, "/"+refuse) {
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>refused by the test</Message></Error>`)
				return
			}
			if hold != nil {
				<-hold
			}
		case r.Method == http.MethodDelete:
			g.singleDeletes.Add(1)
		case r.Method == http.MethodPost && r.URL.Query().Has("delete"):
			g.batchDeletes.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// holdCopies makes copies of keys under prefix wait until the returned
// release is called; the channel is closed when the first one arrives.
func (g *copyGate) holdCopies(prefix string) (started <-chan struct{}, release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	hold, st := make(chan struct{}), make(chan struct{})
	g.hold, g.holdFrom, g.started = hold, prefix, st
	var once sync.Once
	return st, func() {
		once.Do(func() {
			g.mu.Lock()
			g.hold = nil
			g.mu.Unlock()
			close(hold)
		})
	}
}

// putTree writes n small objects under prefix with the SDK, in parallel.
func putTree(t *testing.T, m *Mount, prefix string, n int) {
	t.Helper()
	g, ctx := errgroup.WithContext(t.Context())
	g.SetLimit(32)
	for i := range n {
		g.Go(func() error {
			_, err := m.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(m.Bucket),
				Key: aws.String(m.Key(fmt.Sprintf("%sf%04d", prefix, i))), Body: strings.NewReader(fmt.Sprint(i))})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// countUnder returns how many objects, directory markers aside, the bucket
// has under prefix.
func countUnder(t *testing.T, m *Mount, prefix string) int {
	t.Helper()
	p := s3.NewListObjectsV2Paginator(m.S3, &s3.ListObjectsV2Input{Bucket: aws.String(m.Bucket), Prefix: aws.String(m.Key(prefix))})
	n := 0
	for p.HasMorePages() {
		page, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			if !strings.HasSuffix(aws.ToString(o.Key), "/") {
				n++
			}
		}
	}
	return n
}

// A directory rename copies its tree server-side, holding only that tree:
// while its copies are held up, a close, an fsync and a rename elsewhere
// in the mount complete (a mount-wide lock made them wait for the whole
// copy). The old keys then go in DeleteObjects batches of 1,000.
func TestRenameDirHoldsOnlyItsTree(t *testing.T) {
	t.Parallel()
	needSuite(t)
	g := startCopyGate(t, sharedMinio.Endpoint)
	addr := freeAddr(t)
	m := mount(t, withoutEndpointFlag(), withFlags("--endpoint", g.srv.URL, "--metrics-addr", addr))
	const n = 1500
	putTree(t, m, "tree/", n)
	if err := os.Mkdir(m.Path("elsewhere"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, m.Path("elsewhere/a"), []byte("a"))
	// The rename holds the root's lock in the kernel for as long as it
	// copies: a lookup of elsewhere in the root would wait for it there,
	// never reaching the daemon, once another test's drop_caches made the
	// kernel forget the entry. Held open, it stays known.
	holdDirs(t, m.Path("elsewhere"))

	started, release := g.holdCopies(m.Key("tree/"))
	defer release()
	renamed := make(chan error, 1)
	go func() { renamed <- os.Rename(m.Path("tree"), m.Path("moved")) }()
	select {
	case <-started:
	case err := <-renamed:
		t.Fatalf("rename returned before copying: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the rename sent no copy")
	}

	// Meanwhile, elsewhere: write and close, fsync, rename a file.
	elsewhere := make(chan error, 1)
	go func() {
		elsewhere <- func() error {
			f, err := os.Create(m.Path("elsewhere/b"))
			if err != nil {
				return err
			}
			if _, err := f.Write([]byte("written during the rename")); err != nil {
				return err
			}
			if err := f.Sync(); err != nil {
				return fmt.Errorf("fsync: %w", err)
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("close: %w", err)
			}
			return os.Rename(m.Path("elsewhere/a"), m.Path("elsewhere/c"))
		}()
	}()
	select {
	case err := <-elsewhere:
		if err != nil {
			t.Fatalf("work elsewhere during the rename: %v", err)
		}
	case <-time.After(90 * time.Second):
		t.Logf("daemon goroutines:\n%s", httpGet(t, "http://"+addr+"/debug/pprof/goroutine?debug=2"))
		t.Fatal("a close, fsync or rename elsewhere in the mount waited for a directory rename")
	}
	select {
	case err := <-renamed:
		t.Fatalf("the rename finished while its copies were held: %v", err)
	default:
	}
	objectIs(t, m, "elsewhere/b", []byte("written during the rename"), 30*time.Second)
	objectIs(t, m, "elsewhere/c", []byte("a"), 30*time.Second)
	g.singleDeletes.Store(0) // the file rename's; the directory's follow

	release()
	if err := <-renamed; err != nil {
		t.Fatalf("rename: %v", err)
	}
	if got := countUnder(t, m, "moved/"); got < n {
		t.Errorf("%d objects under moved/, want %d", got, n)
	}
	if got := countUnder(t, m, "tree/"); got != 0 {
		t.Errorf("%d objects left under tree/", got)
	}
	if b, s := g.batchDeletes.Load(), g.singleDeletes.Load(); b != 2 || s != 0 {
		t.Errorf("old keys deleted in %d DeleteObjects and %d DeleteObject requests, want 2 and 0", b, s)
	}
	ents, err := os.ReadDir(m.Path("moved"))
	if err != nil || len(ents) != n {
		t.Errorf("readdir moved: %d entries, %v; want %d", len(ents), err, n)
	}
}

// A directory rename whose copy fails half-way fails, with the whole tree
// under its old name and nothing under the new one (the copies made are
// taken back); --max-rename-objects refuses a bigger tree with EXDEV,
// which mv answers by moving it file by file.
func TestRenameDirFailureAndBound(t *testing.T) {
	t.Parallel()
	needSuite(t)
	g := startCopyGate(t, sharedMinio.Endpoint)
	m := mount(t, withoutEndpointFlag(), withFlags("--endpoint", g.srv.URL, "--max-rename-objects", "250"))
	putTree(t, m, "tree/", 200)
	g.mu.Lock()
	g.refuse = "tree/f0123"
	g.mu.Unlock()
	err := os.Rename(m.Path("tree"), m.Path("moved"))
	if !errors.Is(err, syscall.EACCES) && !errors.Is(err, syscall.EIO) {
		t.Fatalf("rename with a refused copy: %v, want EACCES or EIO", err)
	}
	if got := countUnder(t, m, "tree/"); got != 200 {
		t.Errorf("%d objects under tree/ after the failed rename, want 200", got)
	}
	if got := countUnder(t, m, "moved/"); got != 0 {
		t.Errorf("%d objects under moved/ after the failed rename, want 0", got)
	}
	if _, err := os.Stat(m.Path("tree/f0005")); err != nil {
		t.Errorf("tree/f0005 after the failed rename: %v", err)
	}

	g.mu.Lock()
	g.refuse = ""
	g.mu.Unlock()
	putTree(t, m, "big/", 300)
	copies := g.copies.Load()
	if err := os.Rename(m.Path("big"), m.Path("big2")); !errors.Is(err, syscall.EXDEV) {
		t.Fatalf("rename of 300 objects over --max-rename-objects 250: %v, want EXDEV", err)
	}
	if g.copies.Load() != copies {
		t.Error("the refused rename copied objects")
	}
	run(t, "", "mv", m.Path("big"), m.Path("big2"))
	if got := countUnder(t, m, "big2/"); got != 300 {
		t.Errorf("mv after EXDEV: %d objects under big2/, want 300", got)
	}
	if got := countUnder(t, m, "big/"); got != 0 {
		t.Errorf("mv after EXDEV: %d objects left under big/", got)
	}
}

// A file keeps its inode number when the kernel forgets its node and looks
// it up again, and across a remount: mv, cp and tar compare st_ino between
// lstat and fstat (mv after EXDEV skipped files "replaced while being
// copied" when memory pressure evicted them in between), git's index
// records it.
func TestInodeNumbersSurviveForgetAndRemount(t *testing.T) {
	t.Parallel()
	m := mount(t)
	putTree(t, m, "d/", 20)
	writeFile(t, m.Path("d/made-here"), []byte("x"))
	inos := func() map[string]uint64 {
		out := map[string]uint64{}
		ents, err := os.ReadDir(m.Path("d"))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			var st syscall.Stat_t
			if err := syscall.Lstat(m.Path("d/"+e.Name()), &st); err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = st.Ino
		}
		return out
	}
	before := inos()
	if len(before) != 21 {
		t.Fatalf("%d entries, want 21", len(before))
	}
	dropKernelCaches(t)
	if after := inos(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("inode numbers changed after the kernel forgot the nodes:\n%v\n%v", before, after)
	}
	m.Unmount()
	m2 := mount(t, onBucket(m.Bucket))
	m = m2
	if after := inos(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("inode numbers changed across a remount:\n%v\n%v", before, after)
	}
}

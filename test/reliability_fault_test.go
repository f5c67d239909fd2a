package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/novitalabs/bucketfs/internal/miniotest"
)

// faultProxy is a TCP proxy between bucketfs and MinIO that injects faults:
// latency per chunk, a bandwidth limit, connection resets (existing
// connections reset, new ones reset at once while the mode lasts) and a
// blackhole (data is swallowed, nothing answers).
type faultProxy struct {
	ln     net.Listener
	target string

	mu        sync.Mutex
	latency   time.Duration
	bps       int // bytes per second per direction and connection; 0: unlimited
	reset     bool
	blackhole bool
	conns     map[*net.TCPConn]struct{}
	accepted  int
	resets    int
}

func startFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target, conns: map[*net.TCPConn]struct{}{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.closeAll(false)
	})
	return p
}

func (p *faultProxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *faultProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c.(*net.TCPConn))
	}
}

func (p *faultProxy) track(c *net.TCPConn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *faultProxy) handle(client *net.TCPConn) {
	p.mu.Lock()
	p.accepted++
	reset := p.reset
	p.mu.Unlock()
	if reset {
		p.rst(client)
		return
	}
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		p.rst(client)
		return
	}
	server := up.(*net.TCPConn)
	p.track(client, true)
	p.track(server, true)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(server, client) }()
	go func() { defer wg.Done(); p.pipe(client, server) }()
	wg.Wait()
	p.track(client, false)
	p.track(server, false)
	client.Close()
	server.Close()
}

// pipe copies src to dst chunk by chunk, applying the current faults.
func (p *faultProxy) pipe(dst, src *net.TCPConn) {
	buf := make([]byte, 32<<10)
	for {
		p.mu.Lock()
		bps := p.bps
		p.mu.Unlock()
		n := len(buf)
		if bps > 0 {
			n = max(1, min(n, bps/20)) // ~20 chunks a second
		}
		k, err := src.Read(buf[:n])
		if k > 0 {
			p.mu.Lock()
			lat, bh := p.latency, p.blackhole
			p.mu.Unlock()
			if lat > 0 {
				time.Sleep(lat)
			}
			if bps > 0 {
				time.Sleep(time.Duration(k) * time.Second / time.Duration(bps))
			}
			if !bh {
				if _, werr := dst.Write(buf[:k]); werr != nil {
					src.Close()
					return
				}
			}
		}
		if err != nil {
			// Half-close so that the other direction can finish.
			_ = dst.CloseWrite()
			return
		}
	}
}

// rst closes c with a TCP reset.
func (p *faultProxy) rst(c *net.TCPConn) {
	_ = c.SetLinger(0)
	c.Close()
	p.mu.Lock()
	p.resets++
	p.mu.Unlock()
}

func (p *faultProxy) closeAll(withReset bool) {
	p.mu.Lock()
	conns := make([]*net.TCPConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		if withReset {
			p.rst(c)
		} else {
			c.Close()
		}
	}
}

func (p *faultProxy) set(f func(p *faultProxy)) {
	p.mu.Lock()
	f(p)
	p.mu.Unlock()
}

// clear ends every fault.
func (p *faultProxy) clear() {
	p.set(func(p *faultProxy) { p.latency, p.bps, p.reset, p.blackhole = 0, 0, false, false })
}

// faultWorkload writes files and reads back the acknowledged ones, and
// records every result.
type faultWorkload struct {
	m    *Mount
	seed uint64

	mu          sync.Mutex
	acked       map[string][]byte // name -> content, close returned 0
	failed      map[string][]byte // open, a write or close failed
	closeFailed map[string]bool   // the failure was close's: the bytes must stay recoverable
	results     map[string]map[string]int
	slowest     map[string]time.Duration
	ops         int
	errs        []string
}

func newFaultWorkload(m *Mount, seed uint64) *faultWorkload {
	return &faultWorkload{m: m, seed: seed, acked: map[string][]byte{}, failed: map[string][]byte{}, closeFailed: map[string]bool{},
		results: map[string]map[string]int{}, slowest: map[string]time.Duration{}}
}

func (w *faultWorkload) note(op string, err error, d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ops++
	res := "ok"
	if err != nil {
		var e syscall.Errno
		if errors.As(err, &e) {
			res = e.Error()
		} else {
			res = err.Error()
		}
	}
	if w.results[op] == nil {
		w.results[op] = map[string]int{}
	}
	w.results[op][res]++
	if d > w.slowest[op] {
		w.slowest[op] = d
	}
}

func (w *faultWorkload) summary() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ops []string
	for op := range w.results {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	var b strings.Builder
	for _, op := range ops {
		fmt.Fprintf(&b, "%s %v (slowest %s); ", op, w.results[op], w.slowest[op].Round(time.Millisecond))
	}
	return fmt.Sprintf("%d ops: %s%d acknowledged files, %d failed", w.ops, b.String(), len(w.acked), len(w.failed))
}

// opBound is how long one operation may take under any fault before the
// test calls it a hang.
const opBound = 3 * time.Minute

// run works until stop is closed.
func (w *faultWorkload) run(worker int, stop <-chan struct{}) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		name := fmt.Sprintf("w%d-%d", worker, i)
		size := 1 + int((w.seed+uint64(i)*7919)%(3<<20))
		data := randBytes(w.seed+uint64(worker)<<32+uint64(i), size)
		start := time.Now()
		stage, err := w.writeFileStage(name, data)
		d := time.Since(start)
		w.note("write+close", err, d)
		if err != nil {
			w.note(stage, err, d)
		}
		w.mu.Lock()
		if err == nil {
			w.acked[name] = data
		} else {
			w.failed[name] = data
			w.closeFailed[name] = stage == "close"
		}
		if d > opBound {
			w.errs = append(w.errs, fmt.Sprintf("write+close of %s took %s (bound %s)", name, d, opBound))
		}
		// Read back an earlier acknowledged file.
		var back string
		var want []byte
		for n, c := range w.acked {
			back, want = n, c
			break
		}
		w.mu.Unlock()
		if back != "" {
			start := time.Now()
			got, err := os.ReadFile(w.m.Path(back))
			d := time.Since(start)
			w.note("read", err, d)
			if err == nil && !bytes.Equal(got, want) {
				w.mu.Lock()
				w.errs = append(w.errs, fmt.Sprintf("read of acknowledged %s returned %d bytes (sha %.12s), want %d (sha %.12s)", back, len(got), sha(got), len(want), sha(want)))
				w.mu.Unlock()
			}
		}
		start = time.Now()
		_, err = os.ReadDir(w.m.Dir)
		w.note("readdir", err, time.Since(start))
	}
}

func (w *faultWorkload) writeFile(name string, data []byte) error {
	_, err := w.writeFileStage(name, data)
	return err
}

// writeFileStage writes a file and says which step failed (open, write,
// close).
func (w *faultWorkload) writeFileStage(name string, data []byte) (string, error) {
	f, err := os.OpenFile(w.m.Path(name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return "open", err
	}
	for off := 0; off < len(data); off += 256 << 10 {
		if _, err := f.Write(data[off:min(off+256<<10, len(data))]); err != nil {
			f.Close()
			return "write", err
		}
	}
	return "close", f.Close()
}

// faultScenario runs the workload through a fault and checks that nothing
// acknowledged is lost and that the daemon still answers after.
func faultScenario(t *testing.T, inject func(t *testing.T, p *faultProxy, srv *miniotest.Server), during time.Duration) {
	needSuite(t)
	srv := miniotest.StartT(t)
	p := startFaultProxy(t, strings.TrimPrefix(srv.Endpoint, "http://"))
	recovery := t.TempDir()
	m := mount(t, onServer(srv), withoutEndpointFlag(),
		withFlags("--endpoint", p.URL(), "--recovery-dir", recovery, "--upload-timeout", "45s", "--stat-cache-ttl", "1s"))
	w := newFaultWorkload(m, uint64(time.Now().UnixNano()))
	t.Logf("workload seed %d", w.seed)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(i, stop) }()
	}
	time.Sleep(during / 3) // healthy start
	inject(t, p, srv)
	p.clear()
	time.Sleep(during / 3) // healthy again
	close(stop)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(opBound + time.Minute):
		t.Fatalf("workload did not stop within %s after the fault cleared: a hung operation; %s", opBound+time.Minute, w.summary())
	}
	t.Logf("results: %s", w.summary())
	for _, e := range w.errs {
		t.Error(e)
	}

	// The daemon answers.
	if err := w.writeFile("after-fault", []byte("alive")); err != nil {
		t.Errorf("write after the fault cleared: %v", err)
	}
	if b, err := os.ReadFile(m.Path("after-fault")); err != nil || string(b) != "alive" {
		t.Errorf("read after the fault cleared: %q, %v", b, err)
	}

	// Unmount (pending uploads finish or go to the recovery dir), then check
	// every acknowledged file in the bucket, byte-exact, or in recovery.
	m.Unmount()
	recovered := recoveredContents(t, recovery)
	lost := 0
	for name, data := range w.acked {
		got, err := m.TryGet(name)
		if err == nil && bytes.Equal(got, data) {
			continue
		}
		if recovered[sha(data)] {
			t.Logf("%s: acknowledged, not in the bucket (%v) but in the recovery dir", name, err)
			continue
		}
		lost++
		t.Errorf("DATA LOSS: %s was acknowledged (close returned 0) but the bucket has %d bytes (%v), want %d (sha %.12s), and the recovery dir does not hold it",
			name, len(got), err, len(data), sha(data))
	}
	inBucket, inRecovery := 0, 0
	for name, data := range w.failed {
		got, err := m.TryGet(name)
		if err == nil && bytes.Equal(got, data) {
			inBucket++
		} else if recovered[sha(data)] {
			inRecovery++
		} else if w.closeFailed[name] {
			// README: close reports a failed upload and the bytes stay
			// recoverable (retried in the background, else --recovery-dir).
			t.Errorf("%s: close failed and its %d bytes (sha %.12s) are neither in the bucket (%v) nor in the recovery dir",
				name, len(data), sha(data), err)
		}
	}
	p.mu.Lock()
	t.Logf("proxy: %d connections, %d resets; acknowledged %d (lost %d); failed %d (later in the bucket %d, in recovery %d)",
		p.accepted, p.resets, len(w.acked), lost, len(w.failed), inBucket, inRecovery)
	p.mu.Unlock()
	if len(w.acked) == 0 {
		t.Errorf("no write was acknowledged at all: the workload proves nothing")
	}
}

func recoveredContents(t *testing.T, dir string) map[string]bool {
	out := map[string]bool{}
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		b, _ := io.ReadAll(f)
		out[sha(b)] = true
		return nil
	})
	return out
}

func faultDuration() time.Duration {
	if os.Getenv("BUCKETFS_RELIABILITY_LONG") != "" {
		return 60 * time.Second
	}
	return 9 * time.Second
}

func TestReliabilityFaultLatency(t *testing.T) {
	d := faultDuration()
	faultScenario(t, func(t *testing.T, p *faultProxy, _ *miniotest.Server) {
		p.set(func(p *faultProxy) { p.latency = 20 * time.Millisecond })
		time.Sleep(d / 3)
	}, d)
}

func TestReliabilityFaultBandwidth(t *testing.T) {
	d := faultDuration()
	faultScenario(t, func(t *testing.T, p *faultProxy, _ *miniotest.Server) {
		p.set(func(p *faultProxy) { p.bps = 1 << 20 })
		time.Sleep(d / 3)
	}, d)
}

// Connections reset mid-upload and mid-read, repeatedly: the link flaps.
func TestReliabilityFaultResets(t *testing.T) {
	d := faultDuration()
	faultScenario(t, func(t *testing.T, p *faultProxy, _ *miniotest.Server) {
		end := time.Now().Add(d / 3)
		for time.Now().Before(end) {
			p.set(func(p *faultProxy) { p.reset = true })
			p.closeAll(true)
			time.Sleep(300 * time.Millisecond)
			p.clear()
			time.Sleep(700 * time.Millisecond)
		}
	}, d)
}

// A blackhole: requests vanish and nothing answers, for a while.
func TestReliabilityFaultBlackhole(t *testing.T) {
	d := faultDuration()
	faultScenario(t, func(t *testing.T, p *faultProxy, _ *miniotest.Server) {
		p.set(func(p *faultProxy) { p.blackhole = true })
		time.Sleep(d / 3)
		p.closeAll(false) // the stuck connections end when the network heals
	}, d)
}

// MinIO killed mid-workload and restarted.
func TestReliabilityFaultServerRestart(t *testing.T) {
	d := faultDuration()
	faultScenario(t, func(t *testing.T, p *faultProxy, srv *miniotest.Server) {
		if err := srv.Kill(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(d / 3)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := srv.Restart(ctx); err != nil {
			t.Fatalf("restart MinIO: %v", err)
		}
	}, d)
}

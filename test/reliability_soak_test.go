package test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The soak runs only when BUCKETFS_SOAK is set (make reliability sets it):
// BUCKETFS_SOAK=90s runs the mixed workload that long.

// soakRSSBound is the daemon's allowed resident set: the configured read
// cache plus room for the race detector's shadow memory, the staging of
// the files being written and the Go runtime.
const (
	soakCache    = 64 << 20
	soakRSSBound = soakCache + 448<<20
)

func daemonRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

func daemonFDs(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}

func metricValue(addr, name string) (float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, fmt.Errorf("no %s in /metrics", name)
}

func TestReliabilitySoak(t *testing.T) {
	needSuite(t)
	v := os.Getenv("BUCKETFS_SOAK")
	if v == "" {
		t.Skip("set BUCKETFS_SOAK=<duration> (make reliability does) to run the soak")
	}
	dur, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("BUCKETFS_SOAK=%q: %v", v, err)
	}
	addr := freeAddr(t)
	m := mount(t, withTTL(time.Second), withFlags("--metrics-addr", addr, "--memory-cache-size", strconv.Itoa(soakCache)))
	if m.PID == 0 {
		t.Fatal("daemon process not found: cannot sample it")
	}
	w := newFaultWorkload(m, uint64(time.Now().UnixNano()))

	// Warm up (connections, cache, runtime), then take the baseline.
	warm := make(chan struct{})
	go func() { time.Sleep(3 * time.Second); close(warm) }()
	w.run(0, warm)
	time.Sleep(2 * time.Second)
	g0, err := metricValue(addr, "go_goroutines")
	if err != nil {
		t.Fatal(err)
	}
	fd0, _ := daemonFDs(m.PID)

	var peak int64
	var samples int
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		tk := time.NewTicker(250 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tk.C:
			}
			if rss, err := daemonRSS(m.PID); err == nil {
				samples++
				peak = max(peak, rss)
			}
		}
	}()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 1; i <= 3; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(i, stop) }()
	}
	// A reader of big files alongside: the read cache must stay bounded.
	wg.Add(1)
	go func() {
		defer wg.Done()
		big := randBytes(7, 48<<20)
		if err := w.writeFile("big", big); err != nil {
			t.Errorf("write big: %v", err)
			return
		}
		for {
			select {
			case <-stop:
				return
			default:
			}
			got, err := os.ReadFile(m.Path("big"))
			if err != nil || !bytes.Equal(got, big) {
				t.Errorf("read big: %d bytes, %v", len(got), err)
				return
			}
		}
	}()
	time.Sleep(dur)
	close(stop)
	wg.Wait()
	close(stopSampling)
	sampler.Wait()
	t.Logf("soak %s: %s; RSS high-water %d MiB over %d samples (bound %d MiB)", dur, w.summary(), peak>>20, samples, soakRSSBound>>20)
	for _, e := range w.errs {
		t.Error(e)
	}
	if peak > soakRSSBound {
		t.Errorf("daemon RSS reached %d MiB, bound %d MiB", peak>>20, soakRSSBound>>20)
	}

	// Idle again: goroutines and descriptors back to the baseline (a small
	// slack for idle HTTP connections kept alive).
	var g1 float64
	var fd1 int
	eventually(t, 60*time.Second, func() string {
		g1, err = metricValue(addr, "go_goroutines")
		if err != nil {
			return err.Error()
		}
		fd1, _ = daemonFDs(m.PID)
		if g1 > g0+8 || fd1 > fd0+8 {
			return fmt.Sprintf("leak: goroutines %v -> %v, fds %d -> %d", g0, g1, fd0, fd1)
		}
		return ""
	})
	t.Logf("goroutines %v -> %v, fds %d -> %d", g0, g1, fd0, fd1)
}

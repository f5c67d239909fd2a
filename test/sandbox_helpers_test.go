package test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/novitalabs/bucketfs/internal/miniotest"
)

// Helpers of the sandbox-integration tests (issue 6): the mount helper, the
// ready file, stale mounts, the shutdown deadline, metrics and secrets.

// freeAddr returns a 127.0.0.1:PORT nothing listens on, for --metrics-addr.
// The port is below the kernel's ephemeral range (32768 and up here), which
// outgoing connections take their ports from: a test that remounts on the
// same address after an unmount once found its port taken in between, by
// some connection of the two CI runs beside it.
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 200 {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		return fmt.Sprintf("127.0.0.1:%d", port)
	}
	return fmt.Sprintf("127.0.0.1:%d", closedPort(t))
}

// scrape fetches /metrics from addr and returns each sample as
// `name{labels}` → value (labels as Prometheus prints them, sorted by
// name), and the whole text.
func scrape(t *testing.T, addr string) (map[string]float64, string) {
	t.Helper()
	s, text, err := tryScrape(addr)
	if err != nil {
		t.Fatal(err)
	}
	return s, text
}

// tryScrape is scrape for goroutines other than the test's.
func tryScrape(addr string) (map[string]float64, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("scrape %s: %w", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("scrape %s: HTTP %d, %v", addr, resp.StatusCode, err)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, "", fmt.Errorf("metrics line %q: no value", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, "", fmt.Errorf("metrics line %q: %w", line, err)
		}
		samples[line[:i]] = v
	}
	return samples, string(body), nil
}

// findMinioPID returns the pid of the MinIO process serving srv (found by
// its --address in /proc), for tests that freeze it with SIGSTOP.
func findMinioPID(t *testing.T, srv *miniotest.Server) int {
	t.Helper()
	want := fmt.Sprintf("127.0.0.1:%d", srv.Port)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		args := strings.Split(string(b), "\x00")
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "--address" && args[i+1] == want && strings.Contains(args[0], "minio") {
				return pid
			}
		}
	}
	t.Fatalf("no MinIO process listening on %s", want)
	return 0
}

// readLog returns the daemon's log so far ("" if none yet).
func (m *Mount) readLog() string {
	b, _ := os.ReadFile(m.LogFile)
	return string(b)
}

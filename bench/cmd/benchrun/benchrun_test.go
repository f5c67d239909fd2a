package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

func TestDataGenReadAtMatchesStream(t *testing.T) {
	g := dataGen{42}
	size := int64(3*dataBlock + 12345)
	whole := make([]byte, size)
	g.ReadAt(whole, 0)
	sum := sha256.Sum256(whole)
	if got := g.sha256Of(size); got != hex.EncodeToString(sum[:]) {
		t.Fatalf("sha256Of = %s, want %x", got, sum)
	}
	for _, c := range []struct{ off, n int64 }{{0, 10}, {dataBlock - 5, 10}, {2*dataBlock + 7, dataBlock + 3}, {size - 4096, 4096}} {
		p := make([]byte, c.n)
		g.ReadAt(p, c.off)
		if !bytes.Equal(p, whole[c.off:c.off+c.n]) {
			t.Errorf("ReadAt(%d, %d) differs from the stream", c.off, c.n)
		}
	}
	if bytes.Equal(whole[:dataBlock], whole[dataBlock:2*dataBlock]) {
		t.Error("blocks repeat")
	}
	other := make([]byte, 64)
	dataGen{43}.ReadAt(other, 0)
	if bytes.Equal(other, whole[:64]) {
		t.Error("seed does not change the data")
	}
}

func TestSmallContentDeterministic(t *testing.T) {
	a, b := smallContent(1, 5, 4096), smallContent(1, 5, 4096)
	if !bytes.Equal(a, b) || len(a) != 4096 {
		t.Fatal("small content not deterministic")
	}
	if bytes.Equal(a, smallContent(1, 6, 4096)) {
		t.Fatal("small files share content")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1GiB": 1 << 30, "64MiB": 64 << 20, "4KiB": 4096, "1G": 1 << 30, "1000": 1000, "1MB": 1e6, "0.5GiB": 1 << 29} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "abc", "-1MiB", "0"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
	if humanSize(1<<30) != "1 GiB" || humanSize(64<<20) != "64 MiB" || humanSize(4096) != "4 KiB" {
		t.Error("humanSize")
	}
}

func TestSummarize(t *testing.T) {
	ok := func(v float64) sample { return sample{Value: v, Status: stOK} }
	c := summarize([]sample{ok(3), ok(1), ok(2)})
	if c.Status != stOK || *c.Median != 2 {
		t.Fatalf("median of 3: %+v", c)
	}
	c = summarize([]sample{ok(3), {Status: stTimeout}, ok(1)})
	if c.Status != "partial" || *c.Median != 2 || c.OK != 2 {
		t.Fatalf("partial: %+v", c)
	}
	if c := summarize([]sample{ok(3), {Status: stWrong}, ok(1)}); c.Status != stWrong || formatCell(c, "MB/s") != "**wrong**" {
		t.Fatalf("wrong: %+v", c)
	}
	if c := summarize([]sample{{Status: stFail}, {Status: stTimeout}}); c.Status != stTimeout {
		t.Fatalf("timeout: %+v", c)
	}
	if c := summarize([]sample{{Status: stUnavailable}}); c.Status != stUnavailable || formatCell(c, "s") != "unavailable" {
		t.Fatalf("unavailable: %+v", c)
	}
	if c := summarize([]sample{{Status: stSkipped}}); c.Status != stSkipped {
		t.Fatalf("skipped: %+v", c)
	}
}

func TestRatioOrientation(t *testing.T) {
	v := func(x float64) cell { return cell{Status: stOK, Median: &x} }
	up := metric{HigherBetter: true}
	down := metric{HigherBetter: false}
	if r, ok := ratio(up, v(200), []cell{v(100), v(50)}); !ok || r != 2 {
		t.Errorf("throughput ratio = %v", r)
	}
	if r, ok := ratio(down, v(2), []cell{v(4), v(8)}); !ok || r != 2 {
		t.Errorf("seconds ratio = %v (want best peer 4 / 2)", r)
	}
	if _, ok := ratio(up, v(1), []cell{{Status: stFail}}); ok {
		t.Error("ratio against failed peers")
	}
	if _, ok := ratio(up, cell{Status: stWrong}, []cell{v(1)}); ok {
		t.Error("ratio of a wrong cell")
	}
}

func TestMarkdownTable(t *testing.T) {
	x, y, z := 100.0, 50.0, 200.0
	ms := []metric{{ID: "a", Label: "A", Unit: "MB/s", HigherBetter: true}, {ID: "b", Label: "B", Unit: "s"}}
	cells := map[string]map[string]cell{
		"a": {"bucketfs": {Status: stOK, Median: &x}, "s3fs": {Status: stOK, Median: &y}, "rclone": {Status: stFail},
			"goofys": {Status: stUnavailable}, "sdk": {Status: stOK, Median: &z}},
		"b": {"bucketfs": {Status: stWrong}},
	}
	out := markdownTable(ms, cells, []string{"bucketfs", "s3fs", "rclone", "goofys", "sdk"})
	for _, want := range []string{"| A | MB/s | 100 | 50 | fail | unavailable | 200 | 2.00× | 0.50× |", "| B | s | **wrong** | — | — | — | — | — | — |"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestPickList(t *testing.T) {
	aliases := map[string]string{"8": "seqread,write", "6": "fio"}
	got, err := pickList("fio,8", allWorkloads, aliases)
	if err != nil || strings.Join(got, ",") != "seqread,write,fio" {
		t.Fatalf("pickList = %v, %v", got, err)
	}
	if _, err := pickList("nope", allTools, nil); err == nil {
		t.Fatal("unknown name accepted")
	}
}

func TestParseFio(t *testing.T) {
	out := []byte("note: both iodepth >= 1 and synchronous I/O engine are selected\n" +
		`{"jobs":[{"error":0,"read":{"iops":1234.5,"clat_ns":{"mean":2000.0}}}]}`)
	iops, lat, err := parseFio(out)
	if err != nil || iops != 1234.5 || lat != 2 {
		t.Fatalf("parseFio = %v, %v, %v", iops, lat, err)
	}
	if _, _, err := parseFio([]byte("fio: error")); err == nil {
		t.Fatal("no JSON accepted")
	}
}

func TestMakeDevTree(t *testing.T) {
	dir := t.TempDir()
	d, err := makeDevTree(dir, 250)
	if err != nil {
		t.Fatal(err)
	}
	man, err := readManifest(d.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	if d.Files != 250 || len(man) != 250 || d.Matches == 0 || d.Matches == 250 {
		t.Fatalf("tree: %+v, manifest %d", d, len(man))
	}
	f, err := os.Open(d.Tarball)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	files, hits := 0, 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, _ := io.ReadAll(tr)
		sum := sha256.Sum256(b)
		if man[h.Name].SHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("%s: manifest mismatch", h.Name)
		}
		if bytes.Contains(b, []byte(devNeedle)) {
			hits++
		}
		files++
	}
	if files != 250 || hits != d.Matches {
		t.Fatalf("tar has %d files, %d hits; want 250, %d", files, hits, d.Matches)
	}
	// Deterministic: a second tree is byte-identical.
	d2, err := makeDevTree(t.TempDir(), 250)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(d.Tarball)
	b, _ := os.ReadFile(d2.Tarball)
	if !bytes.Equal(a, b) {
		t.Fatal("tarball is not deterministic")
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	if got := unescapeMountinfo(`/tmp/a\040b`); got != "/tmp/a b" {
		t.Fatalf("got %q", got)
	}
}

func TestTreePathCounts(t *testing.T) {
	dirs := map[string]bool{}
	for i := 0; i < 5000; i++ {
		a, b := treePath(i)
		dirs[a], dirs[b] = true, true
	}
	if len(dirs) != 110 {
		t.Fatalf("%d dirs, want 110", len(dirs))
	}
}

func TestFormatRatio(t *testing.T) {
	for r, want := range map[float64]string{2: "2.00", 0.48: "0.48", 0.0036: "0.0036", 0.05: "0.05"} {
		if got := formatRatio(r); got != want {
			t.Errorf("formatRatio(%v) = %s, want %s", r, got, want)
		}
	}
}

func TestParseStatCPU(t *testing.T) {
	// pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
	stat := []byte("1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 9 0\n")
	got, err := parseStatCPU(stat)
	if err != nil || got != 4 {
		t.Fatalf("parseStatCPU = %v, %v; want 4 s (400 ticks)", got, err)
	}
	if _, err := parseStatCPU([]byte("garbage")); err == nil {
		t.Fatal("garbage accepted")
	}
}

func TestRequestCounts(t *testing.T) {
	page := func(head, headMiss, list, down float64) string {
		return fmt.Sprintf(`# HELP bucketfs_s3_requests_total Store calls.
# TYPE bucketfs_s3_requests_total counter
bucketfs_s3_requests_total{op="head",outcome="ok"} %v
bucketfs_s3_requests_total{op="head",outcome="not_found"} %v
bucketfs_s3_requests_total{op="list",outcome="ok"} %v
bucketfs_s3_request_duration_seconds_count{op="head"} 99
bucketfs_s3_download_bytes_total %v
`, head, headMiss, list, down)
	}
	before, err := parseRequestMetrics(strings.NewReader(page(2, 1, 5, 100)))
	if err != nil {
		t.Fatal(err)
	}
	after, err := parseRequestMetrics(strings.NewReader(page(10, 3, 5, 4196)))
	if err != nil {
		t.Fatal(err)
	}
	d := diffCounts(before, after)
	want := map[string]float64{"head": 10, "head/not_found": 2, reqDownBytes: 4096}
	if len(d) != len(want) {
		t.Fatalf("diff = %v, want %v", d, want)
	}
	for k, v := range want {
		if d[k] != v {
			t.Fatalf("diff = %v, want %v", d, want)
		}
	}
	cells := map[string]map[string]cell{"a": {"bucketfs": {Samples: []sample{
		{Status: stOK, Requests: d}, {Status: stOK, Requests: map[string]float64{"head": 12, "get": 1}}}}}}
	out := requestsTable([]metric{{ID: "a", Label: "A"}}, cells, "bucketfs")
	for _, w := range []string{"| Step | HEAD | GET | of which not ok |", "| A | 11 | 0.5 | 1 |"} {
		if !strings.Contains(out, w) {
			t.Errorf("requests table lacks %q:\n%s", w, out)
		}
	}
}

func TestLaunchReadPolls(t *testing.T) {
	dir := t.TempDir()
	file := dir + "/m/hello.txt"
	// A stand-in for a mount command that detaches: the file appears, with
	// a partial write first, after the command has returned.
	script := `(sleep 0.2; mkdir -p "$1"; printf hel > "$2"; sleep 0.1; printf 'hello\n' > "$2") >/dev/null 2>&1 &`
	j := job{Argv: []string{"sh", "-c", script, "sh", dir + "/m", file}, Dir: dir, Log: dir + "/log", Path: file, Want: []byte("hello\n")}
	var res jobResult
	if err := wLaunchRead(context.Background(), &j, &res); err != nil {
		t.Fatal(err)
	}
	if res.Seconds <= 0 {
		t.Fatalf("seconds = %v", res.Seconds)
	}
	// A mount command that fails ends the poll with its error.
	j = job{Argv: []string{"sh", "-c", "exit 3"}, Dir: dir, Log: dir + "/log", Path: dir + "/none", Want: []byte("x")}
	if err := wLaunchRead(context.Background(), &j, &res); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("failed command: %v", err)
	}
}

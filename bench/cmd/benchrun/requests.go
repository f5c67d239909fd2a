package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Request accounting: bucketfs is mounted with --metrics-addr on a free
// loopback port, and its bucketfs_s3_requests_total counters (one per store
// call, by op and outcome) are read before and after each timed step. The
// difference goes into the step's sample (results.json) and into the
// requests table under the main one.

// reqOps are the op labels of bucketfs_s3_requests_total (see
// internal/metrics/store.go), in the order the table shows them, with
// their column titles. "upload" is one PutObject or one whole multipart
// upload done by the store in one call (its parts are not counted
// apart); a streamed upload counts its create, parts and complete.
var reqOps = []struct{ op, title string }{
	{"list", "LIST"},
	{"head", "HEAD"},
	{"get", "GET"},
	{"upload", "PUT (upload)"},
	{"copy", "COPY"},
	{"delete", "DELETE"},
	{"create_multipart", "MPU create"},
	{"upload_part", "MPU part"},
	{"upload_part_copy", "MPU part copy"},
	{"complete_multipart", "MPU complete"},
	{"abort_multipart", "MPU abort"},
	{"list_multipart", "MPU list"},
}

// Keys of a request count map besides the op names: "op/outcome" for the
// calls that did not succeed, and the body bytes.
const (
	reqDownBytes = "bytes/download"
	reqUpBytes   = "bytes/upload"
)

// freeLoopbackAddr returns a loopback HOST:PORT that was free a moment ago.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// scrapeRequests reads bucketfs's /metrics at addr and returns its store
// calls by op (all outcomes), by "op/outcome" for the failed ones, and its
// body bytes.
func scrapeRequests(ctx context.Context, addr string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: %s", resp.Status)
	}
	return parseRequestMetrics(resp.Body)
}

func parseRequestMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		var labels map[string]string
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				continue
			}
			name, labels, rest = line[:i], parseLabels(line[i+1:j]), strings.TrimSpace(line[j+1:])
		}
		switch name {
		case "bucketfs_s3_requests_total", "bucketfs_s3_download_bytes_total", "bucketfs_s3_upload_bytes_total":
		default:
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		switch name {
		case "bucketfs_s3_download_bytes_total":
			out[reqDownBytes] += v
		case "bucketfs_s3_upload_bytes_total":
			out[reqUpBytes] += v
		default:
			op := labels["op"]
			out[op] += v
			if o := labels["outcome"]; o != "ok" {
				out[op+"/"+o] += v
			}
		}
	}
	return out, sc.Err()
}

// parseLabels parses `a="x",b="y"` (the label values here carry no
// escaped quotes or commas).
func parseLabels(s string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if ok {
			m[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return m
}

// diffCounts is after - before, without the keys that did not change.
func diffCounts(before, after map[string]float64) map[string]float64 {
	d := map[string]float64{}
	for k, v := range after {
		if x := v - before[k]; x != 0 {
			d[k] = x
		}
	}
	return d
}

// reqSnapshot reads the mount's request counters before a step; nil when
// the tool serves none (every tool but bucketfs) or they cannot be read.
func (r *runner) reqSnapshot(ctx context.Context, m *mount) map[string]float64 {
	if m.Metrics == "" {
		return nil
	}
	s, err := scrapeRequests(ctx, m.Metrics)
	if err != nil {
		r.logf("  request counts: %v", err)
		return nil
	}
	return s
}

// requestsSince notes the requests the mount sent since before (a
// reqSnapshot) for step id: the sample recorded for id carries them.
func (r *runner) requestsSince(ctx context.Context, c *cellRun, id string, m *mount, before map[string]float64) {
	if before == nil {
		return
	}
	after := r.reqSnapshot(ctx, m)
	if after == nil {
		return
	}
	c.reqs[id] = diffCounts(before, after)
}

// requestsTable renders the median requests per step, one row per metric
// that has counts, one column per op that any row used.
func requestsTable(metrics []metric, cells map[string]map[string]cell, tool string) string {
	type row struct {
		label string
		med   map[string]float64
	}
	var rows []row
	used := map[string]bool{}
	failedAny := false
	for _, m := range metrics {
		c, ok := cells[m.ID][tool]
		if !ok {
			continue
		}
		per := map[string][]float64{}
		n := 0
		for _, s := range c.Samples {
			if s.Status != stOK || s.Requests == nil {
				continue
			}
			n++
			failed := 0.0
			for k, v := range s.Requests {
				if strings.HasPrefix(k, "bytes/") {
					continue
				}
				if strings.Contains(k, "/") {
					failed += v
					continue
				}
				per[k] = append(per[k], v)
			}
			per["failed"] = append(per["failed"], failed)
		}
		if n == 0 {
			continue
		}
		med := map[string]float64{}
		for k, vs := range per {
			for len(vs) < n { // a run that sent none of this op
				vs = append(vs, 0)
			}
			med[k] = median(vs)
			if med[k] != 0 {
				used[k] = true
				if k == "failed" {
					failedAny = true
				}
			}
		}
		rows = append(rows, row{m.Label, med})
	}
	if len(rows) == 0 {
		return ""
	}
	var cols []struct{ op, title string }
	for _, o := range reqOps {
		if used[o.op] {
			cols = append(cols, o)
		}
	}
	var extra []string // ops this runner does not know yet
	for k := range used {
		known := k == "failed"
		for _, o := range reqOps {
			known = known || o.op == k
		}
		if !known {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		cols = append(cols, struct{ op, title string }{k, k})
	}
	if failedAny {
		cols = append(cols, struct{ op, title string }{"failed", "of which not ok"})
	}
	var b strings.Builder
	b.WriteString("| Step |")
	for _, c := range cols {
		b.WriteString(" " + c.title + " |")
	}
	b.WriteString("\n|---|")
	for range cols {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, rw := range rows {
		b.WriteString("| " + rw.label + " |")
		for _, c := range cols {
			fmt.Fprintf(&b, " %s |", strconv.FormatFloat(rw.med[c.op], 'f', -1, 64))
		}
		b.WriteString("\n")
	}
	return b.String()
}

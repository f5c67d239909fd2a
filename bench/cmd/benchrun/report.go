package main

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Sample statuses.
const (
	stOK      = "ok"
	stWrong   = "wrong"   // a data check failed
	stFail    = "fail"    // the tool or the step failed
	stTimeout = "timeout" // the step ran out of time
	stSkipped = "skipped" // not run (budget, or an earlier timeout)
	// stUnavailable: the tool could not be installed or built here (the
	// reason is in the notes under the table and in the versions).
	stUnavailable = "unavailable"
)

type metric struct {
	ID           string `json:"id"`
	Label        string `json:"label"`
	Unit         string `json:"unit"`
	HigherBetter bool   `json:"higher_is_better"`
	Workload     string `json:"workload"`
}

type sample struct {
	Run    int                `json:"run"`
	Value  float64            `json:"value"`
	Status string             `json:"status"`
	Detail string             `json:"detail,omitempty"`
	Extra  map[string]float64 `json:"extra,omitempty"`
	// Requests are the store calls bucketfs made during the step, by op,
	// by "op/outcome" for the failed ones, and body bytes (bytes/...).
	Requests map[string]float64 `json:"requests,omitempty"`
}

type cell struct {
	Status  string   `json:"status"` // ok, partial, wrong, fail, timeout, skipped, n/a
	Median  *float64 `json:"median,omitempty"`
	OK      int      `json:"ok_runs"`
	Samples []sample `json:"samples,omitempty"`
}

// summarize turns a cell's samples into its status and median: any wrong
// sample makes the cell wrong; otherwise the median of the ok samples,
// "partial" when some runs did not succeed.
func summarize(ss []sample) cell {
	c := cell{Samples: ss}
	if len(ss) == 0 {
		c.Status = "n/a"
		return c
	}
	var vals []float64
	counts := map[string]int{}
	for _, s := range ss {
		counts[s.Status]++
		if s.Status == stOK {
			vals = append(vals, s.Value)
		}
	}
	c.OK = len(vals)
	if len(vals) > 0 {
		m := median(vals)
		c.Median = &m
	}
	switch {
	case counts[stWrong] > 0:
		c.Status = stWrong
	case len(vals) == len(ss):
		c.Status = stOK
	case len(vals) > 0:
		c.Status = "partial"
	case counts[stTimeout] > 0:
		c.Status = stTimeout
	case counts[stFail] > 0:
		c.Status = stFail
	case counts[stUnavailable] > 0:
		c.Status = stUnavailable
	default:
		c.Status = stSkipped
	}
	return c
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func formatValue(v float64, unit string) string {
	switch unit {
	case "s":
		if v < 10 {
			return fmt.Sprintf("%.2f", v)
		}
		return fmt.Sprintf("%.1f", v)
	case "×": // ratios close to 1, where the third digit matters
		return fmt.Sprintf("%.3f", v)
	case "CPU-s/GiB": // targets are tenths apart (0.4, 0.6, 0.9)
		return fmt.Sprintf("%.2f", v)
	case "MB/s", "MiB":
		if v < 10 {
			return fmt.Sprintf("%.1f", v)
		}
		return fmt.Sprintf("%.0f", v)
	default: // files/s, IOPS
		if v < 10 {
			return fmt.Sprintf("%.1f", v)
		}
		return fmt.Sprintf("%.0f", v)
	}
}

func formatCell(c cell, unit string) string {
	switch c.Status {
	case stOK:
		return formatValue(*c.Median, unit)
	case "partial":
		return fmt.Sprintf("%s (%d/%d runs)", formatValue(*c.Median, unit), c.OK, len(c.Samples))
	case stWrong:
		return "**wrong**"
	case "n/a":
		return "—"
	}
	return c.Status
}

// ratio is bucketfs against the best peer, oriented so that > 1 means
// bucketfs is better (for seconds and memory the inverse of the quotient).
func ratio(m metric, bfs cell, peers []cell) (float64, bool) {
	if bfs.Status != stOK && bfs.Status != "partial" {
		return 0, false
	}
	best := math.NaN()
	for _, p := range peers {
		if (p.Status != stOK && p.Status != "partial") || p.Median == nil {
			continue
		}
		v := *p.Median
		if math.IsNaN(best) || (m.HigherBetter && v > best) || (!m.HigherBetter && v < best) {
			best = v
		}
	}
	if math.IsNaN(best) || best == 0 || *bfs.Median == 0 {
		return 0, false
	}
	if m.HigherBetter {
		return *bfs.Median / best, true
	}
	return best / *bfs.Median, true
}

var toolTitles = map[string]string{
	"bucketfs": "bucketfs",
	"s3fs":     "s3fs",
	"rclone":   "rclone (vfs writes)",
	"goofys":   "goofys",
	"geesefs":  "geesefs",
	"sdk":      "bare SDK",
}

// peerTools are the FUSE peers bucketfs is compared with.
var peerTools = []string{"s3fs", "rclone", "goofys", "geesefs"}

// markdownTable renders the results: one row per metric, one column per
// tool, bucketfs against the best FUSE peer, and bucketfs against the bare
// SDK doing the same transfer or the same requests (the floor).
func markdownTable(metrics []metric, cells map[string]map[string]cell, tools []string) string {
	var b strings.Builder
	b.WriteString("| Workload | unit |")
	for _, t := range tools {
		b.WriteString(" " + toolTitles[t] + " |")
	}
	b.WriteString(" bucketfs vs best peer | bucketfs vs bare SDK |\n|---|---|")
	for range tools {
		b.WriteString("---:|")
	}
	b.WriteString("---:|---:|\n")
	for _, m := range metrics {
		row := cells[m.ID]
		if row == nil {
			continue
		}
		fmt.Fprintf(&b, "| %s | %s |", m.Label, m.Unit)
		for _, t := range tools {
			c, ok := row[t]
			if !ok {
				c = cell{Status: "n/a"}
			}
			b.WriteString(" " + formatCell(c, m.Unit) + " |")
		}
		var peers []cell
		for _, p := range peerTools {
			if c, ok := row[p]; ok {
				peers = append(peers, c)
			}
		}
		for _, against := range [][]cell{peers, {row["sdk"]}} {
			if r, ok := ratio(m, row["bucketfs"], against); ok {
				fmt.Fprintf(&b, " %s× |", formatRatio(r))
			} else {
				b.WriteString(" — |")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// formatRatio keeps two significant digits for small ratios (0.0036 → 0.0036).
func formatRatio(r float64) string {
	if r >= 0.1 {
		return fmt.Sprintf("%.2f", r)
	}
	return strconv.FormatFloat(r, 'g', 2, 64)
}

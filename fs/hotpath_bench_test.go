package fs

// Benchmarks of the in-process hot paths of a lookup and a listing: the
// key of a child, the s3fs metadata headers (parsed on every HEAD, built on
// every upload and chmod), and the listing cache that answers lookups and
// READDIRPLUS. Compare commits with benchstat:
//
//	go test -run '^$' -bench . -count 10 ./fs/ > new.txt
//
// (The block cache and TTL cache have theirs in cache/.)

import (
	"fmt"
	"testing"
	"time"

	"github.com/novitalabs/bucketfs/s3backend"
)

func BenchmarkChildKey(b *testing.B) {
	for _, c := range []struct{ name, key string }{{"root", ""}, {"nested", "src/github.com/novitalabs/bucketfs/fs"}} {
		b.Run(c.name, func(b *testing.B) {
			n := &Node{kind: kindDir, key: c.key, dirSt: new(dirState)}
			b.ReportAllocs()
			var sink string
			for i := 0; i < b.N; i++ {
				sink = n.childKey("hotpath_bench_test.go")
			}
			_ = sink
		})
	}
}

func BenchmarkParseMeta(b *testing.B) {
	cases := map[string]map[string]string{
		"s3fs":   {"mode": "33188", "uid": "1000", "gid": "1000", "mtime": "1732790000"},
		"rclone": {"mtime": "1732790000.123456789"},
		"fsx":    {"file-permissions": "0100644", "file-owner": "1000", "file-group": "1000", "file-mtime": "1732790000123456789ns"},
		"none":   nil,
	}
	for _, name := range []string{"s3fs", "rclone", "fsx", "none"} {
		m := cases[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var sink parsedMeta
			for i := 0; i < b.N; i++ {
				sink = parseMeta(m)
			}
			_ = sink
		})
	}
}

func BenchmarkBuildMeta(b *testing.B) {
	a := posixAttrs{perm: 0o644, uid: 1000, gid: 1000, mtime: time.Unix(1732790000, 123456789)}
	foreign := map[string]string{"sha256": "abc", "origin": "ci"}
	b.ReportAllocs()
	var sink map[string]string
	for i := 0; i < b.N; i++ {
		sink = buildMeta(kindFile, a, foreign)
	}
	_ = sink
}

// BenchmarkAttrsFromHead is what a HEAD result costs to turn into attributes.
func BenchmarkAttrsFromHead(b *testing.B) {
	cfg := &Config{FileMode: 0o644, DirMode: 0o755, StatCacheTTL: 5 * time.Second}
	info := s3backend.ObjectInfo{Key: "a/b/c.txt", Size: 4096, ETag: `"x"`, LastModified: time.Unix(1732790000, 0),
		Metadata: map[string]string{"mode": "33188", "uid": "1000", "gid": "1000", "mtime": "1732790000.5"}}
	b.ReportAllocs()
	var sink posixAttrs
	for i := 0; i < b.N; i++ {
		sink = attrsFromInfo(cfg, kindOf(info), info)
	}
	_ = sink
}

func benchListing(n int, withMeta bool) map[string]listEntry {
	l := make(map[string]listEntry, n)
	t := time.Unix(1732790000, 0)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("obj%05d.txt", i)
		info := s3backend.ObjectInfo{Key: "flat/" + name, Size: 512, ETag: fmt.Sprintf(`"%032x"`, i), LastModified: t}
		if withMeta {
			info.Metadata = map[string]string{"mode": "33188", "mtime": "1732790000"}
		}
		ent := objEntry(kindFile, info, withMeta, false)
		l[name] = ent
	}
	return l
}

// BenchmarkReuseMetadata re-lists an unchanged 10,000-entry directory:
// every entry's metadata comes from the previous listing (no HEAD).
func BenchmarkReuseMetadata(b *testing.B) {
	previous := benchListing(10000, true)
	fresh := benchListing(10000, false)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for name, ent := range fresh {
			_ = reuseMetadata(ent, previous[name])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10000, "ns/entry")
}

// BenchmarkCachedEntry is a lookup answered from a fresh listing of a
// 10,000-entry directory, from two goroutines per CPU.
func BenchmarkCachedEntry(b *testing.B) {
	n := &Node{kind: kindDir, key: "flat", dirSt: &dirState{listing: benchListing(10000, true), listingDone: true, listingUntil: time.Now().Add(time.Hour)}}
	names := make([]string, 1024)
	for i := range names {
		names[i] = fmt.Sprintf("obj%05d.txt", (i*7919)%10000)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.SetParallelism(2)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, found, fresh := n.cachedEntry(names[i%len(names)]); !found || !fresh {
				b.Error("entry not found in the listing")
				return
			}
			i++
		}
	})
}

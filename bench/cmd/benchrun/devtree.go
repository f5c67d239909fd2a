package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"strings"
	"time"
)

// The developer's-day workload untars a generated source tree: a
// deterministic repository of small text files in nested directories, a few
// of which contain a rare word for grep to find.

const devNeedle = "frobnicateQuux"

type manifestEntry struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

type devTree struct {
	Tarball  string
	Manifest string
	Files    int
	Dirs     int
	Bytes    int64
	Matches  int // files containing devNeedle
	Root     string
}

var words = strings.Fields(`func return if else for range var const type struct interface map chan
go defer select case switch default break continue package import err nil ctx buf len cap make new
append copy close delete panic recover string int int64 uint32 byte bool true false error reader
writer handle node inode cache block key value offset size count index list entry path name mode`)

// genFile returns deterministic Go-looking text for file i; about one file
// in seven contains the needle.
func genFile(r *rand.Rand, i int) []byte {
	// sizes from ~200 B to ~16 KiB, most a few KiB
	target := 200 + int(float64(16<<10)*r.Float64()*r.Float64())
	var b strings.Builder
	fmt.Fprintf(&b, "// Code for unit %d of the benchmark tree.\n\npackage p%d\n\n", i, i%97)
	needle := i%7 == 3
	line := 0
	for b.Len() < target || (needle && line <= 5) {
		indent := strings.Repeat("\t", r.IntN(3))
		n := 3 + r.IntN(8)
		ws := make([]string, n)
		for k := range ws {
			ws[k] = words[r.IntN(len(words))]
		}
		if needle && line == 5 {
			ws[0] = devNeedle
		}
		fmt.Fprintf(&b, "%s%s(%d)\n", indent, strings.Join(ws, " "), r.IntN(1000))
		line++
	}
	return []byte(b.String())
}

// makeDevTree writes the tarball and its manifest into dir.
func makeDevTree(dir string, files int) (*devTree, error) {
	t := &devTree{
		Tarball:  path.Join(dir, "devtree.tar"),
		Manifest: path.Join(dir, "devtree.manifest.json"),
		Root:     "proj",
	}
	f, err := os.Create(t.Tarball)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	tw := tar.NewWriter(bw)
	mtime := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	r := rand.New(rand.NewPCG(7, 11))
	manifest := map[string]manifestEntry{}
	addDir := func(name string) error {
		t.Dirs++
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, ModTime: mtime})
	}
	if err := addDir(t.Root); err != nil {
		return nil, err
	}
	// ~20 files per leaf directory, 5 leaves per top-level package.
	perDir := 20
	leaves := (files + perDir - 1) / perDir
	tops := (leaves + 4) / 5
	i := 0
	for top := 0; top < tops && i < files; top++ {
		tdir := fmt.Sprintf("%s/pkg%02d", t.Root, top)
		if err := addDir(tdir); err != nil {
			return nil, err
		}
		for sub := 0; sub < 5 && i < files; sub++ {
			sdir := fmt.Sprintf("%s/sub%d", tdir, sub)
			if err := addDir(sdir); err != nil {
				return nil, err
			}
			for k := 0; k < perDir && i < files; k++ {
				body := genFile(r, i)
				ext := ".go"
				if k%10 == 9 {
					ext = ".md"
				}
				name := fmt.Sprintf("%s/unit%04d%s", sdir, i, ext)
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: mtime}); err != nil {
					return nil, err
				}
				if _, err := tw.Write(body); err != nil {
					return nil, err
				}
				sum := sha256.Sum256(body)
				manifest[name] = manifestEntry{Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}
				t.Bytes += int64(len(body))
				if bytes.Contains(body, []byte(devNeedle)) {
					t.Matches++
				}
				i++
			}
		}
	}
	t.Files = i
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	mb, err := json.Marshal(manifest)
	if err != nil {
		return nil, err
	}
	return t, os.WriteFile(t.Manifest, mb, 0o644)
}

func readManifest(p string) (map[string]manifestEntry, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	m := map[string]manifestEntry{}
	return m, json.Unmarshal(b, &m)
}

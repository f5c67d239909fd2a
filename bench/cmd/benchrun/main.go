// Command benchrun compares bucketfs with s3fs, rclone mount and the bare
// aws-sdk-go-v2 on one loopback MinIO: sequential reads and writes, small
// files, listings, random reads with fio and a developer's day, each on a
// fresh mount, median of N runs. It writes results.json and table.md under
// bench/results/<date>/ and prints the table. bench/run.sh installs the
// peers and builds bucketfs first; see bench/README.md.
//
// It measures, it does not judge: nothing here passes or fails.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/novitalabs/bucketfs/s3backend"
)

type config struct {
	Tools       []string      `json:"tools"`
	Workloads   []string      `json:"workloads"`
	Runs        int           `json:"runs"`
	Size        int64         `json:"object_size"`
	SmallFiles  int           `json:"small_files"`
	SmallSize   int           `json:"small_file_size"`
	FlatObjects int           `json:"flat_objects"`
	TreeObjects int           `json:"tree_objects"`
	DevFiles    int           `json:"dev_files"`
	FioRuntime  time.Duration `json:"fio_runtime_ns"`
	FioJobs     int           `json:"fio_jobs"`
	PartSize    int64         `json:"part_size"`
	Concurrency int           `json:"concurrency"`
	SDKChecksum string        `json:"sdk_upload_checksum"`
	Budget      time.Duration `json:"budget_ns"`

	BucketfsBin  string `json:"-"`
	BucketfsArgs string `json:"bucketfs_args"`
	BucketfsVer  string `json:"-"`
	S3fsOpts     string `json:"s3fs_opts"`
	RcloneArgs   string `json:"rclone_args"`
	GoofysBin    string `json:"-"`
	GoofysArgs   string `json:"goofys_args"`
	GeesefsBin   string `json:"-"`
	GeesefsArgs  string `json:"geesefs_args"`
	MinioBin     string `json:"-"`
	WorkDir      string `json:"-"`
	OutDir       string `json:"-"`
	Repo         string `json:"-"`
}

var allTools = []string{"bucketfs", "s3fs", "rclone", "goofys", "geesefs", "sdk"}
var allWorkloads = []string{"seqread", "seqread4", "write", "small", "list", "fio", "fiodirect", "devday", "launch"}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "worker" {
		workerMain(os.Args[2])
		return
	}
	var cfg config
	var tools, workloads, size, smallSize, partSize string
	flag.StringVar(&tools, "tools", strings.Join(allTools, ","), "tools to run: bucketfs,s3fs,rclone,goofys,geesefs,sdk")
	flag.StringVar(&workloads, "workloads", "all", "workloads: all, or a list of seqread(1,2,8a),seqread4(1b,8c),write(3,8b),small(4),list(5),fio(6),fiodirect(6c),devday(7),launch(9)")
	flag.IntVar(&cfg.Runs, "runs", 3, "runs per cell (the table shows the median)")
	flag.StringVar(&size, "size", "1GiB", "size of the big object (workloads 1-3, 6)")
	flag.IntVar(&cfg.SmallFiles, "small-files", 1000, "files in the small-files workload")
	flag.StringVar(&smallSize, "small-size", "4KiB", "size of each small file")
	flag.IntVar(&cfg.FlatObjects, "flat-objects", 10000, "objects in the flat directory (ls -l)")
	flag.IntVar(&cfg.TreeObjects, "tree-objects", 5000, "objects in the nested tree (find)")
	flag.IntVar(&cfg.DevFiles, "dev-files", 3000, "files in the developer's-day source tree")
	flag.DurationVar(&cfg.FioRuntime, "fio-runtime", 30*time.Second, "fio runtime")
	flag.IntVar(&cfg.FioJobs, "fio-jobs", 4, "fio numjobs")
	flag.StringVar(&partSize, "part-size", fmt.Sprint(s3backend.DefaultPartSize), "bare SDK part size (default: bucketfs's)")
	flag.IntVar(&cfg.Concurrency, "concurrency", s3backend.DefaultUploadConcurrency, "bare SDK parts in flight (default: bucketfs's)")
	flag.StringVar(&cfg.SDKChecksum, "sdk-upload-checksum", string(s3backend.ChecksumCRC32C), "bare SDK uploads: crc32c (CRC-32C header, unsigned payload: bucketfs's default --upload-checksum) or sha256 (the SDK's default, a signed payload)")
	flag.DurationVar(&cfg.Budget, "budget", 45*time.Minute, "time budget: cells not started by then are skipped")
	flag.StringVar(&cfg.BucketfsBin, "bucketfs", "bench/.bin/bucketfs", "bucketfs binary")
	flag.StringVar(&cfg.BucketfsVer, "bucketfs-version", "", "bucketfs version for the report (default: git describe of --repo)")
	flag.StringVar(&cfg.BucketfsArgs, "bucketfs-args", "", "extra bucketfs flags (space separated)")
	flag.StringVar(&cfg.S3fsOpts, "s3fs-opts", "", "extra s3fs -o options (comma separated)")
	flag.StringVar(&cfg.RcloneArgs, "rclone-args", "--vfs-write-back 0s", "extra rclone mount flags (space separated)")
	flag.StringVar(&cfg.GoofysBin, "goofys", "goofys", "goofys binary (a name is looked up on PATH); missing: its cells read unavailable, with the reason in FILE.unavailable if bench/run.sh left one")
	flag.StringVar(&cfg.GoofysArgs, "goofys-args", "", "extra goofys flags (space separated)")
	flag.StringVar(&cfg.GeesefsBin, "geesefs", "geesefs", "geesefs binary (as --goofys)")
	flag.StringVar(&cfg.GeesefsArgs, "geesefs-args", "", "extra geesefs flags (space separated)")
	flag.StringVar(&cfg.MinioBin, "minio", "", "minio binary (default: $MINIO_BIN, PATH, $GOPATH/bin, else built)")
	flag.StringVar(&cfg.WorkDir, "workdir", "/tmp/bucketfs-bench", "scratch directory (mount points, logs, caches)")
	flag.StringVar(&cfg.OutDir, "out", "bench/results", "results directory")
	flag.StringVar(&cfg.Repo, "repo", ".", "bucketfs checkout (for its version)")
	flag.Parse()

	var err error
	if cfg.Size, err = parseSize(size); err != nil {
		fatal(err)
	}
	ss, err := parseSize(smallSize)
	if err != nil {
		fatal(err)
	}
	cfg.SmallSize = int(ss)
	if cfg.PartSize, err = parseSize(partSize); err != nil {
		fatal(err)
	}
	if _, err := s3backend.ParseUploadChecksum(cfg.SDKChecksum); err != nil || cfg.SDKChecksum == "" {
		fatal(fmt.Errorf("--sdk-upload-checksum %q: want crc32c or sha256", cfg.SDKChecksum))
	}
	if cfg.Tools, err = pickList(tools, allTools, nil); err != nil {
		fatal(err)
	}
	aliases := map[string]string{"1": "seqread", "2": "seqread", "3": "write", "4": "small", "5": "list", "6": "fio", "6c": "fiodirect", "7": "devday", "8": "seqread,seqread4,write", "1b": "seqread4", "9": "launch"}
	if cfg.Workloads, err = pickList(workloads, allWorkloads, aliases); err != nil {
		fatal(err)
	}
	if cfg.Runs < 1 {
		fatal(fmt.Errorf("--runs must be >= 1"))
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "benchrun: warning: not root; cannot drop the page cache, so cold runs are not cold")
	}
	for _, p := range []*string{&cfg.WorkDir, &cfg.OutDir, &cfg.BucketfsBin, &cfg.Repo} {
		if a, err := filepath.Abs(*p); err == nil {
			*p = a
		}
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	// A hard stop well past the budget, should a step misbehave.
	ctx, cancel2 := context.WithTimeout(ctx, cfg.Budget+15*time.Minute)
	defer cancel2()
	r, err := newRunner(cfg)
	if err != nil {
		fatal(err)
	}
	code := 0
	if err := r.run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		code = 1
	}
	os.Exit(code)
}

// pickList parses a comma list against the allowed names ("all" = every one).
func pickList(s string, allowed []string, aliases map[string]string) ([]string, error) {
	if s == "" || s == "all" {
		return allowed, nil
	}
	want := map[string]bool{}
	for _, w := range strings.Split(s, ",") {
		w = strings.TrimSpace(w)
		if a, ok := aliases[w]; ok {
			w = a
		}
		for _, x := range strings.Split(w, ",") {
			ok := false
			for _, a := range allowed {
				if a == x {
					ok = true
				}
			}
			if !ok {
				return nil, fmt.Errorf("unknown name %q (want one of %s)", x, strings.Join(allowed, ","))
			}
			want[x] = true
		}
	}
	var out []string
	for _, a := range allowed { // keep the canonical order
		if want[a] {
			out = append(out, a)
		}
	}
	return out, nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "benchrun:", err)
	os.Exit(2)
}

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func (r *runner) wants(w string) bool {
	for _, x := range r.cfg.Workloads {
		if x == w {
			return true
		}
	}
	return false
}

// prepare fills the bucket through the SDK: the big object, the flat
// directory and the nested tree; and builds the source tarball.
func (r *runner) prepare(ctx context.Context) error {
	bucket := r.target.Bucket
	if _, err := r.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		return err
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	do := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			err := f()
			r.logf("prepared %s in %.1fs", name, time.Since(t0).Seconds())
			if err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("%s: %w", name, err)
				}
				mu.Unlock()
			}
		}()
	}
	if r.wants("seqread") || r.wants("write") || r.wants("fio") || r.wants("fiodirect") {
		do("big object", func() error {
			gen := dataGen{bigSeed}
			r.bigSHA = gen.sha256Of(r.cfg.Size)
			r.bigCRC = gen.crc32cOf(r.cfg.Size)
			if !(r.wants("seqread") || r.wants("fio") || r.wants("fiodirect")) {
				return nil
			}
			if err := sdkWrite(ctx, r.client, bucket, bigKey, gen, r.cfg.Size, r.cfg.PartSize, r.cfg.Concurrency, r.cfg.SDKChecksum == "crc32c"); err != nil {
				return err
			}
			sum, size, err := objectSHA256(ctx, r.client, bucket, bigKey, r.cfg.PartSize, r.cfg.Concurrency)
			if err != nil {
				return err
			}
			if sum != r.bigSHA || size != r.cfg.Size {
				return fmt.Errorf("uploaded object reads back wrong (%s, %d bytes)", sum, size)
			}
			return nil
		})
	}
	if r.wants("seqread4") {
		r.extraCRC = make([]string, readers4-1)
		for i := range r.extraCRC {
			do(fmt.Sprintf("big object %d", i+2), func() error {
				gen := dataGen{bigSeed + uint64(i) + 1}
				r.extraCRC[i] = gen.crc32cOf(r.cfg.Size)
				return sdkWrite(ctx, r.client, bucket, extraKey(i), gen, r.cfg.Size, r.cfg.PartSize, r.cfg.Concurrency, r.cfg.SDKChecksum == "crc32c")
			})
		}
	}
	if r.wants("list") {
		do(fmt.Sprintf("%d-object directory", r.cfg.FlatObjects), func() error {
			return putMany(ctx, r.client, bucket, r.cfg.FlatObjects, 32, func(i int) (string, []byte) {
				return fmt.Sprintf("%s/obj%05d.txt", flatDir, i), listBody(i)
			})
		})
		dirs := map[string]bool{treeDir: true}
		for i := 0; i < r.cfg.TreeObjects; i++ {
			a, b := treePath(i)
			dirs[a] = true
			dirs[b] = true
		}
		r.treeDirs = len(dirs)
		do(fmt.Sprintf("%d-object tree", r.cfg.TreeObjects), func() error {
			return putMany(ctx, r.client, bucket, r.cfg.TreeObjects, 32, func(i int) (string, []byte) {
				_, b := treePath(i)
				return fmt.Sprintf("%s/obj%05d.txt", b, i), listBody(i)
			})
		})
	}
	if r.wants("launch") {
		do("launch file", func() error {
			_, err := r.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(launchKey), Body: bytes.NewReader(launchBody)})
			return err
		})
		do("time-to-first-byte files", func() error {
			return putMany(ctx, r.client, bucket, ttfbFiles, 8, func(i int) (string, []byte) {
				return ttfbKey(i), ttfbBody(i)
			})
		})
	}
	if r.wants("devday") {
		do("source tarball", func() error {
			var err error
			r.dev, err = makeDevTree(r.cfg.WorkDir, r.cfg.DevFiles)
			if err == nil {
				r.logf("source tree: %d files, %d dirs, %.1f MiB, %d files match %q",
					r.dev.Files, r.dev.Dirs, float64(r.dev.Bytes)/mib, r.dev.Matches, devNeedle)
			}
			return err
		})
	}
	wg.Wait()
	return first
}

// treePath places object i of the nested tree: tree/dA/eB/.
func treePath(i int) (string, string) {
	a := fmt.Sprintf("%s/d%d", treeDir, i%10)
	return a, fmt.Sprintf("%s/e%d", a, (i/10)%10)
}

func listBody(i int) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("object %d\n", i)), 64)[:512]
}

// ---- 1, 2, 8a ----

func (r *runner) wSeqRead(ctx context.Context, c *cellRun) error {
	size := r.cfg.Size
	if c.tool == "sdk" {
		res, err := r.worker(ctx, seqTimeout(size), job{Op: "sdkread", Key: bigKey, Size: size, CRC32C: r.bigCRC,
			PartSize: r.cfg.PartSize, Conc: r.cfg.Concurrency, CRC: r.cfg.SDKChecksum == "crc32c"})
		if err != nil {
			return err
		}
		c.ok("read_cold", mbps(size, res.Seconds), nil)
		c.ok("rss_read", float64(res.HWM)/mib, nil)
		c.ok("cpu_read", res.CPU/(float64(size)/(1<<30)), map[string]float64{"cpu_seconds": res.CPU})
		return nil
	}
	m, err := r.coldMount(ctx, c.tool)
	if err != nil {
		return err
	}
	defer r.unmount(m)
	path := filepath.Join(m.Dir, bigKey)
	cpu0, cerr := daemonCPU(m)
	req0 := r.reqSnapshot(ctx, m)
	res, err := r.worker(ctx, seqTimeout(size), job{Op: "seqread", Path: path, Size: size, CRC32C: r.bigCRC})
	r.requestsSince(ctx, c, "read_cold", m, req0)
	if err != nil {
		c.bad("read_cold", err)
		if classify(err) == stTimeout {
			return err
		}
	} else {
		c.ok("read_cold", mbps(size, res.Seconds), nil)
		r.cpuPerGiB(c, "cpu_read", m, cpu0, cerr, size)
	}
	r.peakRSS(c, "rss_read", m)
	req0 = r.reqSnapshot(ctx, m)
	res, err = r.worker(ctx, seqTimeout(size), job{Op: "seqread", Path: path, Size: size, CRC32C: r.bigCRC})
	r.requestsSince(ctx, c, "read_warm", m, req0)
	if err != nil {
		return err
	}
	c.ok("read_warm", mbps(size, res.Seconds), nil)
	return nil
}

// coldMount mounts tool afresh and drops the kernel's caches: the start of
// every cold-read workload. The caller unmounts.
func (r *runner) coldMount(ctx context.Context, tool string) (*mount, error) {
	m, err := r.mount(ctx, tool)
	if err != nil {
		return nil, err
	}
	if err := r.dropCaches(ctx); err != nil {
		r.unmount(m)
		return nil, err
	}
	return m, nil
}

// extraKey is the key of the i-th extra big object of workload 1b.
func extraKey(i int) string { return fmt.Sprintf("data/big-%d.bin", i+2) }

// ---- 1b, 8c ----

// wSeqRead4 reads readers4 different big objects at once, each by its own
// worker process, on a fresh mount with cold caches: the total throughput,
// and the daemon's peak RSS, which shows whether the read cache's memory
// bound holds with several readers (the bound is cache + 64 MiB).
func (r *runner) wSeqRead4(ctx context.Context, c *cellRun) error {
	size := r.cfg.Size
	m, err := r.coldMount(ctx, c.tool)
	if err != nil {
		return err
	}
	defer r.unmount(m)
	jobs := []job{{Op: "seqread", Path: filepath.Join(m.Dir, bigKey), Size: size, CRC32C: r.bigCRC}}
	for i, crc := range r.extraCRC {
		jobs = append(jobs, job{Op: "seqread", Path: filepath.Join(m.Dir, extraKey(i)), Size: size, CRC32C: crc})
	}
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	req0 := r.reqSnapshot(ctx, m)
	t0 := time.Now()
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = r.worker(ctx, 2*seqTimeout(size), j)
		}()
	}
	wg.Wait()
	secs := time.Since(t0).Seconds()
	r.requestsSince(ctx, c, "read4", m, req0)
	if err := errors.Join(errs...); err != nil {
		c.bad("read4", err)
		if classify(err) == stTimeout {
			return err
		}
	} else {
		c.ok("read4", mbps(int64(len(jobs))*size, secs), nil)
	}
	r.peakRSS(c, "rss_read4", m)
	return nil
}

// ---- 3, 8b ----

func (r *runner) wWrite(ctx context.Context, c *cellRun) error {
	size := r.cfg.Size
	key := fmt.Sprintf("wr-%s-%d.bin", c.tool, c.run)
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_ = deletePrefix(dctx, r.client, r.target.Bucket, key)
	}()
	var res jobResult
	var err error
	if c.tool == "sdk" {
		res, err = r.worker(ctx, seqTimeout(size), job{Op: "sdkwrite", Key: key, Size: size, Seed: bigSeed,
			PartSize: r.cfg.PartSize, Conc: r.cfg.Concurrency, CRC: r.cfg.SDKChecksum == "crc32c"})
		if err != nil {
			return err
		}
		c.ok("rss_write", float64(res.HWM)/mib, nil)
		c.ok("cpu_write", res.CPU/(float64(size)/(1<<30)), map[string]float64{"cpu_seconds": res.CPU})
	} else {
		m, merr := r.mount(ctx, c.tool)
		if merr != nil {
			return merr
		}
		cpu0, cerr := daemonCPU(m)
		req0 := r.reqSnapshot(ctx, m)
		res, err = r.worker(ctx, seqTimeout(size), job{Op: "seqwrite", Path: filepath.Join(m.Dir, key), Key: key, Size: size, Seed: bigSeed})
		r.requestsSince(ctx, c, "write", m, req0)
		if err == nil {
			r.cpuPerGiB(c, "cpu_write", m, cpu0, cerr, size)
		}
		r.peakRSS(c, "rss_write", m)
		r.unmount(m)
		if err != nil {
			return err
		}
	}
	vctx, cancel := context.WithTimeout(ctx, seqTimeout(size))
	defer cancel()
	sum, got, verr := objectSHA256(vctx, r.client, r.target.Bucket, key, r.cfg.PartSize, r.cfg.Concurrency)
	switch {
	case verr != nil:
		return fmt.Errorf("reading back the written object: %w", verr)
	case got != size || sum != r.bigSHA:
		return fmt.Errorf("%w: object in the bucket has %d bytes, sha256 %s", errWrong, got, sum)
	}
	c.ok("write", mbps(size, res.Seconds), map[string]float64{"close_seconds": res.Close, "seconds": res.Seconds})
	return nil
}

// ---- 4 ----

func (r *runner) wSmall(ctx context.Context, c *cellRun) error {
	if c.tool == "sdk" {
		return r.sdkSmall(ctx, c)
	}
	n := r.cfg.SmallFiles
	name := fmt.Sprintf("%s-%d", c.tool, c.run)
	prefix := "small/" + name + "/"
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_ = deletePrefix(dctx, r.client, r.target.Bucket, prefix)
		_ = deletePrefix(dctx, r.client, r.target.Bucket, "small/")
	}()
	stepT := 60*time.Second + time.Duration(n)*100*time.Millisecond
	base := job{N: n, FileSize: r.cfg.SmallSize, Seed: smlSeed, Prefix: prefix}

	// Create on a fresh mount.
	m, err := r.mount(ctx, c.tool)
	if err != nil {
		return err
	}
	dir := filepath.Join(m.Dir, "small", name)
	if _, _, err := r.command(ctx, time.Minute, "mkdir", "-p", dir); err != nil {
		r.unmount(m)
		return err
	}
	j := base
	j.Op, j.Path = "smallcreate", dir
	req0 := r.reqSnapshot(ctx, m)
	res, err := r.worker(ctx, stepT, j)
	r.requestsSince(ctx, c, "small_create", m, req0)
	r.unmount(m)
	if err != nil {
		return err
	}
	if err := r.checkSmall(ctx, prefix); err != nil {
		c.bad("small_create", err)
		return err
	}
	c.ok("small_create", float64(n)/res.Seconds, map[string]float64{"close_seconds": res.Close})

	// ls -l, read and delete on a cold mount.
	m, err = r.mount(ctx, c.tool)
	if err != nil {
		return err
	}
	defer r.unmount(m)
	if err := r.dropCaches(ctx); err != nil {
		return err
	}
	req0 = r.reqSnapshot(ctx, m)
	out, sec, err := r.command(ctx, stepT, "ls", "-l", dir)
	r.requestsSince(ctx, c, "small_ls", m, req0)
	if err != nil {
		return err
	}
	if got := countPrefixed(out, "-"); got != n {
		c.bad("small_ls", fmt.Errorf("%w: ls -l shows %d files, want %d", errWrong, got, n))
	} else {
		c.ok("small_ls", float64(n)/sec, nil)
	}
	j.Op = "smallread"
	req0 = r.reqSnapshot(ctx, m)
	res, err = r.worker(ctx, stepT, j)
	r.requestsSince(ctx, c, "small_read", m, req0)
	if err != nil {
		c.bad("small_read", err)
		if classify(err) == stTimeout {
			return err
		}
	} else {
		c.ok("small_read", float64(n)/res.Seconds, nil)
	}
	j.Op = "smalldelete"
	req0 = r.reqSnapshot(ctx, m)
	res, err = r.worker(ctx, stepT, j)
	r.requestsSince(ctx, c, "small_delete", m, req0)
	if err != nil {
		return err
	}
	c.ok("small_delete", float64(n)/res.Seconds, map[string]float64{"unlink_seconds": res.Close})
	return nil
}

// checkSmall fetches the small files back through the SDK.
func (r *runner) checkSmall(ctx context.Context, prefix string) error {
	vctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	keys, err := listKeys(vctx, r.client, r.target.Bucket, prefix)
	if err != nil {
		return err
	}
	if len(keys) != r.cfg.SmallFiles {
		return fmt.Errorf("%w: %d objects in the bucket, want %d", errWrong, len(keys), r.cfg.SmallFiles)
	}
	var list []string
	for k := range keys {
		list = append(list, k)
	}
	return getMany(vctx, r.client, r.target.Bucket, list, 16, func(key string, body []byte) error {
		var i int
		if _, err := fmt.Sscanf(strings.TrimPrefix(key, prefix), "f%05d.dat", &i); err != nil {
			return fmt.Errorf("%w: unexpected key %s", errWrong, key)
		}
		if !bytes.Equal(body, smallContent(smlSeed, i, r.cfg.SmallSize)) {
			return fmt.Errorf("%w: content differs", errWrong)
		}
		return nil
	})
}

func countPrefixed(out []byte, p string) int {
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, p) {
			n++
		}
	}
	return n
}

func countLines(out []byte) int {
	return len(strings.Split(strings.TrimRight(string(out), "\n"), "\n"))
}

// ---- 5 ----

func (r *runner) wList(ctx context.Context, c *cellRun) error {
	if c.tool == "sdk" {
		return r.sdkList(ctx, c)
	}
	var firstErr error
	step := func(id string, n int, argv func(dir string) []string, check func(out []byte) error) {
		m, err := r.mount(ctx, c.tool)
		if err != nil {
			c.bad(id, err)
			firstErr = errors.Join(firstErr, err)
			return
		}
		defer r.unmount(m)
		if err := r.dropCaches(ctx); err != nil {
			c.bad(id, err)
			return
		}
		req0 := r.reqSnapshot(ctx, m)
		out, sec, err := r.command(ctx, 30*time.Second+time.Duration(n)*10*time.Millisecond, argv(m.Dir)...)
		r.requestsSince(ctx, c, id, m, req0)
		if err == nil {
			err = check(out)
		}
		if err != nil {
			c.bad(id, err)
			if classify(err) == stTimeout {
				firstErr = errors.Join(firstErr, err)
			}
			return
		}
		c.ok(id, sec, nil)
	}
	step("list_flat", r.cfg.FlatObjects, func(d string) []string { return []string{"ls", "-l", filepath.Join(d, flatDir)} },
		func(out []byte) error {
			if got := countPrefixed(out, "-"); got != r.cfg.FlatObjects {
				return fmt.Errorf("%w: ls -l shows %d files, want %d", errWrong, got, r.cfg.FlatObjects)
			}
			return nil
		})
	step("list_tree", r.cfg.TreeObjects, func(d string) []string { return []string{"find", filepath.Join(d, treeDir)} },
		func(out []byte) error {
			if got, want := countLines(out), r.cfg.TreeObjects+r.treeDirs; got != want {
				return fmt.Errorf("%w: find prints %d entries, want %d", errWrong, got, want)
			}
			return nil
		})
	return firstErr
}

// ---- 6 ----

func (r *runner) wFio(ctx context.Context, c *cellRun) error {
	return r.runFio(ctx, c, r.cfg.FioJobs, false, "fio_iops", "fio_fetched")
}

// fioDirectJobs is numjobs of 6e (6c has one job).
const fioDirectJobs = 4

// wFioDirect is 6 with O_DIRECT, as fio is most often run: once with one
// job and once with four, each on a cold mount.
func (r *runner) wFioDirect(ctx context.Context, c *cellRun) error {
	if err := r.runFio(ctx, c, 1, true, "fio_direct1_iops", "fio_direct1_fetched"); err != nil {
		return err
	}
	return r.runFio(ctx, c, fioDirectJobs, true, "fio_direct4_iops", "fio_direct4_fetched")
}

// runFio runs fio's 4 KiB random reads of the big object on a cold mount
// and records the IOPS and what MinIO sent under the two ids.
func (r *runner) runFio(ctx context.Context, c *cellRun, jobs int, direct bool, iopsID, fetchedID string) error {
	m, err := r.coldMount(ctx, c.tool)
	if err != nil {
		return err
	}
	defer r.unmount(m)
	path := filepath.Join(m.Dir, bigKey)
	sent0, sentErr := r.minio.sentBytes()
	req0 := r.reqSnapshot(ctx, m)
	args := []string{"--name=randread", "--filename=" + path, "--readonly", "--rw=randread", "--bs=4k",
		"--ioengine=psync", fmt.Sprintf("--numjobs=%d", jobs),
		fmt.Sprintf("--runtime=%d", int(r.cfg.FioRuntime.Seconds())), "--time_based",
		"--group_reporting", "--output-format=json"}
	if direct {
		args = append(args, "--direct=1")
	}
	out, _, err := r.command(ctx, r.cfg.FioRuntime+90*time.Second, append([]string{"fio"}, args...)...)
	r.requestsSince(ctx, c, iopsID, m, req0)
	if err != nil {
		return err
	}
	iops, lat, err := parseFio(out)
	if err != nil {
		return err
	}
	// How much of the object the store sent for the whole run (1 = each
	// byte once), before the spot-check below reads more.
	if sentErr == nil {
		var sent1 float64
		if sent1, sentErr = r.minio.sentBytes(); sentErr == nil {
			c.ok(fetchedID, (sent1-sent0)/float64(r.cfg.Size), nil)
		}
	}
	if sentErr != nil {
		c.bad(fetchedID, sentErr)
	}
	// fio does not check what it reads: spot-check the same mount.
	if _, err := r.worker(ctx, 2*time.Minute, job{Op: "spotcheck", Path: path, Size: r.cfg.Size, Seed: bigSeed, N: 256}); err != nil {
		return err
	}
	c.ok(iopsID, iops, map[string]float64{"clat_mean_us": lat})
	return nil
}

func parseFio(out []byte) (iops, latUS float64, err error) {
	i := bytes.IndexByte(out, '{')
	if i < 0 {
		return 0, 0, fmt.Errorf("fio printed no JSON: %.200s", out)
	}
	var v struct {
		Jobs []struct {
			Error int `json:"error"`
			Read  struct {
				IOPS  float64 `json:"iops"`
				ClatN struct {
					Mean float64 `json:"mean"`
				} `json:"clat_ns"`
			} `json:"read"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(out[i:], &v); err != nil {
		return 0, 0, fmt.Errorf("fio JSON: %w", err)
	}
	if len(v.Jobs) == 0 {
		return 0, 0, errors.New("fio JSON has no jobs")
	}
	if v.Jobs[0].Error != 0 {
		return 0, 0, fmt.Errorf("fio job error %d", v.Jobs[0].Error)
	}
	return v.Jobs[0].Read.IOPS, v.Jobs[0].Read.ClatN.Mean / 1000, nil
}

// ---- 7 ----

func (r *runner) wDevDay(ctx context.Context, c *cellRun) error {
	if c.tool == "sdk" {
		return r.sdkDev(ctx, c)
	}
	d := r.dev
	name := fmt.Sprintf("%s-%d", c.tool, c.run)
	prefix := "dev/" + name + "/"
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		_ = deletePrefix(dctx, r.client, r.target.Bucket, prefix)
		_ = deletePrefix(dctx, r.client, r.target.Bucket, "dev/")
	}()
	m, err := r.mount(ctx, c.tool)
	if err != nil {
		return err
	}
	defer r.unmount(m)
	dir := filepath.Join(m.Dir, "dev", name)
	if _, _, err := r.command(ctx, time.Minute, "mkdir", "-p", dir); err != nil {
		return err
	}
	stepT := 60*time.Second + time.Duration(d.Files)*100*time.Millisecond

	// 7a: untar, timed until every file is in the bucket.
	req0 := r.reqSnapshot(ctx, m)
	t0 := time.Now()
	_, tarSec, err := r.command(ctx, stepT, "tar", "-x", "--no-same-owner", "-f", d.Tarball, "-C", dir)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, stepT)
	err = waitCount(wctx, r.client, r.target.Bucket, prefix+d.Root+"/", d.Files, 250*time.Millisecond)
	cancel()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w: %v", errTimeout, err)
		}
		return err
	}
	untar := time.Since(t0).Seconds()
	r.requestsSince(ctx, c, "dev_untar", m, req0)
	if err := r.checkDevTree(ctx, prefix); err != nil {
		c.bad("dev_untar", err)
	} else {
		c.ok("dev_untar", untar, map[string]float64{"tar_exit_seconds": tarSec})
	}

	// 7b: du -s
	req0 = r.reqSnapshot(ctx, m)
	out, sec, err := r.command(ctx, stepT, "du", "-s", dir)
	r.requestsSince(ctx, c, "dev_du", m, req0)
	if err != nil {
		return err
	}
	if len(bytes.Fields(out)) < 1 {
		c.bad("dev_du", fmt.Errorf("du printed nothing"))
	} else {
		c.ok("dev_du", sec, nil)
	}

	// 7c: grep -r, then check what the mount serves.
	req0 = r.reqSnapshot(ctx, m)
	out, sec, err = r.command(ctx, stepT, "grep", "-rl", devNeedle, dir)
	r.requestsSince(ctx, c, "dev_grep", m, req0)
	if err != nil && len(out) == 0 {
		return err
	}
	if got := countLines(out); got != d.Matches {
		c.bad("dev_grep", fmt.Errorf("%w: grep -r found %d files, want %d", errWrong, got, d.Matches))
		return nil
	}
	// The bucket's copy is checked in full (checkDevTree); through the
	// mount, one file in 5 is read back and checked after grep.
	if _, err := r.worker(ctx, stepT, job{Op: "treeverify", Path: dir, Manifest: d.Manifest, Every: 5}); err != nil {
		c.bad("dev_grep", err)
		return nil
	}
	c.ok("dev_grep", sec, nil)
	return nil
}

// checkDevTree compares the untarred objects in the bucket with the manifest.
func (r *runner) checkDevTree(ctx context.Context, prefix string) error {
	vctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	man, err := readManifest(r.dev.Manifest)
	if err != nil {
		return err
	}
	keys, err := listKeys(vctx, r.client, r.target.Bucket, prefix)
	if err != nil {
		return err
	}
	var list []string
	for k, size := range keys {
		e, ok := man[strings.TrimPrefix(k, prefix)]
		if !ok {
			return fmt.Errorf("%w: unexpected object %s", errWrong, k)
		}
		if e.Size != size {
			return fmt.Errorf("%w: %s has %d bytes, want %d", errWrong, k, size, e.Size)
		}
		list = append(list, k)
	}
	if len(list) != len(man) {
		return fmt.Errorf("%w: %d objects in the bucket, want %d", errWrong, len(list), len(man))
	}
	return getMany(vctx, r.client, r.target.Bucket, list, 16, func(key string, body []byte) error {
		sum := sha256.Sum256(body)
		if hex.EncodeToString(sum[:]) != man[strings.TrimPrefix(key, prefix)].SHA256 {
			return fmt.Errorf("%w: content differs", errWrong)
		}
		return nil
	})
}

// ---- 9 ----

// launchKey is the small file workload 9 reads.
const launchKey = "launch/hello.txt"

var launchBody = []byte("hello from the bench bucket\n")

// wLaunch times a mount from its command's start until a read of a small
// file in it returns the file's bytes: a worker starts the mount command
// itself and polls the file every millisecond (open, read, close, as cat
// does), so the figure is not the runner's own start-up. The mount is
// then unmounted as any other.
func (r *runner) wLaunch(ctx context.Context, c *cellRun) error {
	if c.tool == "sdk" {
		return r.sdkSteps(ctx, c, time.Minute, job{Op: "sdkttfb", N: ttfbFiles}, 0, "ttfb")
	}
	dir, priv, logPath := r.mountPaths(c.tool)
	argv, env, err := prepareMount(r.tools[c.tool], dir, priv)
	if err != nil {
		return err
	}
	res, werr := r.worker(ctx, mountTimeout+15*time.Second, job{Op: "launch", Argv: argv, Env: append(cleanEnv(), env...),
		Dir: priv, Log: logPath, Path: filepath.Join(dir, launchKey), Want: launchBody})
	// Whatever the worker saw, the daemon may be up by now: take it down.
	m := &mount{Dir: dir, Metrics: metricsAddrOf(r.tools[c.tool]), priv: priv, log: logPath}
	for i := 0; i < 100 && !isMounted(dir); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	m.PID = findDaemon(dir)
	if werr == nil && m.Metrics != "" {
		// Everything the daemon sent from its start until the read.
		r.requestsSince(ctx, c, "launch", m, map[string]float64{})
	}
	if werr != nil {
		r.unmount(m)
		return werr
	}
	c.ok("launch", res.Seconds*1000, nil)
	// 9b on the fresh mount: its files' directory was never listed.
	req0 := r.reqSnapshot(ctx, m)
	tres, terr := r.worker(ctx, time.Minute, job{Op: "ttfb", Path: filepath.Join(dir, ttfbDir), N: ttfbFiles})
	r.requestsSince(ctx, c, "ttfb", m, req0)
	r.unmount(m)
	if terr != nil {
		c.bad("ttfb", terr)
		return terr
	}
	c.ok("ttfb", tres.Seconds*1000, nil)
	return nil
}

// Workload 9b's files: ttfbFiles of ttfbSize bytes in ttfbDir.
const (
	ttfbDir   = "ttfb"
	ttfbFiles = 20
	ttfbSize  = 4096
)

func ttfbKey(i int) string { return fmt.Sprintf("%s/f%02d", ttfbDir, i) }

func ttfbBody(i int) []byte {
	b := make([]byte, ttfbSize)
	for j := range b {
		b[j] = byte('a' + (i+j)%26)
	}
	return b
}

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// Everything that touches a mount runs in a worker subprocess (the runner
// re-executed as "benchrun worker JSON"): a hung FUSE call cannot be
// cancelled inside a process, but the process can be killed on timeout.

// job is a worker's input.
type job struct {
	Op       string         `json:"op"`
	Path     string         `json:"path,omitempty"` // file or directory in the mount
	Size     int64          `json:"size,omitempty"`
	Seed     uint64         `json:"seed,omitempty"`
	SHA256   string         `json:"sha256,omitempty"`
	CRC32C   string         `json:"crc32c,omitempty"` // timed reads (see wSeqRead)
	N        int            `json:"n,omitempty"`
	FileSize int            `json:"file_size,omitempty"`
	S3       s3Target       `json:"s3"`
	Key      string         `json:"key,omitempty"`    // object key (write checks)
	Prefix   string         `json:"prefix,omitempty"` // key prefix (small files)
	PartSize int64          `json:"part_size,omitempty"`
	Conc     int            `json:"conc,omitempty"`
	CRC      bool           `json:"crc,omitempty"`      // sdkwrite: --sdk-upload-checksum crc32c
	Manifest string         `json:"manifest,omitempty"` // devtree manifest file
	Every    int            `json:"every,omitempty"`    // treeverify: check one file in Every
	Argv     []string       `json:"argv,omitempty"`     // launch: the mount command
	Env      []string       `json:"env,omitempty"`      // launch: its environment
	Dir      string         `json:"dir,omitempty"`      // launch: its working directory
	Log      string         `json:"log,omitempty"`      // launch: its log
	Want     []byte         `json:"want,omitempty"`     // launch: the file's content
	Counts   map[string]int `json:"counts,omitempty"`   // SDK floors: expected counts
}

// jobResult is a worker's output (JSON on stdout).
type jobResult struct {
	Seconds float64            `json:"seconds"`
	Bytes   int64              `json:"bytes,omitempty"`
	Count   int                `json:"count,omitempty"`
	Wrong   string             `json:"wrong,omitempty"` // data check failure
	Err     string             `json:"err,omitempty"`
	HWM     int64              `json:"hwm,omitempty"` // the worker's own VmHWM (SDK column)
	Close   float64            `json:"close_seconds,omitempty"`
	CPU     float64            `json:"cpu_seconds,omitempty"` // the worker's own CPU during the transfer (SDK column)
	Steps   map[string]float64 `json:"steps,omitempty"`       // SDK floors: seconds per metric id
}

// selfCPU returns the CPU seconds (user + system) this process has used.
func selfCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// noCtx adapts an op that needs no context.
func noCtx(f func(*job, *jobResult) error) func(context.Context, *job, *jobResult) error {
	return func(_ context.Context, j *job, res *jobResult) error { return f(j, res) }
}

// workerOps are the jobs a worker runs, by job.Op.
var workerOps = map[string]func(context.Context, *job, *jobResult) error{
	"seqread":     noCtx(wSeqRead),
	"seqwrite":    wSeqWrite,
	"sdkread":     wSDKRead,
	"sdkwrite":    wSDKWrite,
	"smallcreate": wSmallCreate,
	"smallread":   noCtx(wSmallRead),
	"smalldelete": wSmallDelete,
	"spotcheck":   noCtx(wSpotCheck),
	"treeverify":  noCtx(wTreeVerify),
	"launch":      wLaunchRead,
	"ttfb":        wTTFB,
	"sdkttfb":     wSDKTTFB,
	"sdksmall":    wSDKSmall,
	"sdklist":     wSDKList,
	"sdkdev":      wSDKDev,
}

func workerMain(arg string) {
	var j job
	res := jobResult{}
	if err := json.Unmarshal([]byte(arg), &j); err != nil {
		res.Err = err.Error()
	} else {
		ctx := context.Background()
		var err error
		if op, ok := workerOps[j.Op]; ok {
			err = op(ctx, &j, &res)
		} else {
			err = fmt.Errorf("unknown op %q", j.Op)
		}
		if errors.Is(err, errWrong) {
			res.Wrong = err.Error()
		} else if err != nil {
			res.Err = err.Error()
		}
		if hwm, e := procStatusKiB("/proc/self/status", "VmHWM:"); e == nil {
			res.HWM = hwm
		}
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
}

// wSeqRead reads the file sequentially in 1 MiB reads, checksumming in a
// second goroutine so that it overlaps the reads (like cat | cksum). The
// checksum is CRC-32C, not SHA-256: SHA-256 runs at about 1.4 GB/s on the
// bench machine, slower than a warm read, so it would measure itself.
func wSeqRead(j *job, res *jobResult) error {
	f, err := os.Open(j.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	const bs = 1 << 20
	free := make(chan []byte, 4)
	full := make(chan []byte, 4)
	for i := 0; i < 4; i++ {
		free <- make([]byte, bs)
	}
	h := newCRC32C()
	done := make(chan struct{})
	go func() {
		for b := range full {
			h.Write(b)
			free <- b[:bs]
		}
		close(done)
	}()
	var total int64
	var rerr error
	t0 := time.Now()
	for {
		b := <-free
		n, err := io.ReadFull(f, b)
		if n > 0 {
			total += int64(n)
			full <- b[:n]
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			rerr = err
			break
		}
	}
	close(full)
	<-done
	res.Seconds = time.Since(t0).Seconds()
	res.Bytes = total
	if rerr != nil {
		return rerr
	}
	if total != j.Size {
		return fmt.Errorf("%w: read %d bytes, want %d", errWrong, total, j.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != j.CRC32C {
		return fmt.Errorf("%w: crc32c %s, want %s", errWrong, got, j.CRC32C)
	}
	return nil
}

// wSeqWrite writes Size bytes in 1 MiB writes (generated by a second
// goroutine), closes, then polls the bucket until the object is complete.
// The time covers open to object-in-bucket.
func wSeqWrite(ctx context.Context, j *job, res *jobResult) error {
	gen := dataGen{j.Seed}
	const bs = dataBlock
	free := make(chan []byte, 4)
	full := make(chan []byte, 4)
	for i := 0; i < 4; i++ {
		free <- make([]byte, bs)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(full)
		for off := int64(0); off < j.Size; off += bs {
			var b []byte
			select {
			case b = <-free:
			case <-stop:
				return
			}
			n := min(int64(bs), j.Size-off)
			gen.fillBlock(off/bs, b[:n])
			select {
			case full <- b[:n]:
			case <-stop:
				return
			}
		}
	}()
	c := j.S3.client()
	t0 := time.Now()
	f, err := os.OpenFile(j.Path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	var total int64
	for b := range full {
		n, err := f.Write(b)
		total += int64(n)
		if err != nil {
			f.Close()
			return err
		}
		free <- b[:cap(b)]
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	res.Close = time.Since(t0).Seconds()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := waitObject(wctx, c, j.S3.Bucket, j.Key, j.Size, 20*time.Millisecond); err != nil {
		return err
	}
	res.Seconds = time.Since(t0).Seconds()
	res.Bytes = total
	return nil
}

func wSDKRead(ctx context.Context, j *job, res *jobResult) error {
	c := j.S3.client()
	cpu0, t0 := selfCPU(), time.Now()
	sum, err := sdkRead(ctx, c, j.S3.Bucket, j.Key, j.Size, j.PartSize, j.Conc, newCRC32C())
	res.Seconds, res.CPU = time.Since(t0).Seconds(), selfCPU()-cpu0
	if err != nil {
		return err
	}
	res.Bytes = j.Size
	if sum != j.CRC32C {
		return fmt.Errorf("%w: crc32c %s, want %s", errWrong, sum, j.CRC32C)
	}
	return nil
}

func wSDKWrite(ctx context.Context, j *job, res *jobResult) error {
	c := j.S3.client()
	cpu0, t0 := selfCPU(), time.Now()
	if err := sdkWrite(ctx, c, j.S3.Bucket, j.Key, dataGen{j.Seed}, j.Size, j.PartSize, j.Conc, j.CRC); err != nil {
		return err
	}
	res.Seconds, res.CPU = time.Since(t0).Seconds(), selfCPU()-cpu0
	res.Close = res.Seconds
	res.Bytes = j.Size
	return nil
}

func smallName(i int) string { return fmt.Sprintf("f%05d.dat", i) }

// wSmallCreate creates N files of FileSize bytes in Path (which exists),
// then polls the bucket until all N are there. Time: first create to all in
// the bucket.
func wSmallCreate(ctx context.Context, j *job, res *jobResult) error {
	bodies := make([][]byte, j.N)
	for i := range bodies {
		bodies[i] = smallContent(j.Seed, i, j.FileSize)
	}
	c := j.S3.client()
	t0 := time.Now()
	for i := 0; i < j.N; i++ {
		if err := os.WriteFile(filepath.Join(j.Path, smallName(i)), bodies[i], 0o644); err != nil {
			return err
		}
	}
	res.Close = time.Since(t0).Seconds()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := waitCount(wctx, c, j.S3.Bucket, j.Prefix, j.N, 100*time.Millisecond); err != nil {
		return err
	}
	res.Seconds = time.Since(t0).Seconds()
	res.Count = j.N
	return nil
}

// wSmallRead reads the N files back and compares them with what was written.
func wSmallRead(j *job, res *jobResult) error {
	t0 := time.Now()
	var bad []string
	for i := 0; i < j.N; i++ {
		b, err := os.ReadFile(filepath.Join(j.Path, smallName(i)))
		if err != nil {
			return err
		}
		if !bytes.Equal(b, smallContent(j.Seed, i, j.FileSize)) {
			bad = append(bad, smallName(i))
		}
	}
	res.Seconds = time.Since(t0).Seconds()
	res.Count = j.N
	if len(bad) > 0 {
		return fmt.Errorf("%w: %d of %d files differ (first %s)", errWrong, len(bad), j.N, bad[0])
	}
	return nil
}

// wSmallDelete unlinks the N files, then polls until the bucket has none.
func wSmallDelete(ctx context.Context, j *job, res *jobResult) error {
	c := j.S3.client()
	t0 := time.Now()
	for i := 0; i < j.N; i++ {
		if err := os.Remove(filepath.Join(j.Path, smallName(i))); err != nil {
			return err
		}
	}
	res.Close = time.Since(t0).Seconds()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := waitCount(wctx, c, j.S3.Bucket, j.Prefix, 0, 100*time.Millisecond); err != nil {
		return err
	}
	res.Seconds = time.Since(t0).Seconds()
	res.Count = j.N
	return nil
}

// wSpotCheck preads N random 4 KiB blocks of the big object through the
// mount and compares them with the generated data (fio does not check).
func wSpotCheck(j *job, res *jobResult) error {
	f, err := os.Open(j.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	gen := dataGen{j.Seed}
	r := rand.New(rand.NewPCG(j.Seed, 42))
	got := make([]byte, 4096)
	want := make([]byte, 4096)
	t0 := time.Now()
	blocks := j.Size / 4096
	for i := 0; i < j.N && blocks > 0; i++ {
		off := r.Int64N(blocks) * 4096
		n, err := f.ReadAt(got, off)
		if err != nil && err != io.EOF {
			return err
		}
		gen.ReadAt(want, off)
		if n != len(got) || !bytes.Equal(got, want) {
			return fmt.Errorf("%w: 4 KiB at offset %d differs", errWrong, off)
		}
	}
	res.Seconds = time.Since(t0).Seconds()
	res.Count = j.N
	return nil
}

// wTreeVerify reads one file in Every (all with Every <= 1) of the manifest
// under Path and compares their SHA-256s.
func wTreeVerify(j *job, res *jobResult) error {
	m, err := readManifest(j.Manifest)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)
	t0 := time.Now()
	checked := 0
	for i, name := range names {
		if j.Every > 1 && i%j.Every != 0 {
			continue
		}
		checked++
		b, err := os.ReadFile(filepath.Join(j.Path, name))
		if err != nil {
			return fmt.Errorf("%w: %v", errWrong, err)
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != m[name].SHA256 {
			return fmt.Errorf("%w: %s differs", errWrong, name)
		}
	}
	res.Seconds = time.Since(t0).Seconds()
	res.Count = checked
	return nil
}

// wLaunchRead starts the mount command and polls a read of Path until it
// returns Want: Seconds is the time from the command's start. It then
// waits for the command (which returns once the daemon is in the
// background, or at once for a tool that detaches first).
func wLaunchRead(ctx context.Context, j *job, res *jobResult) error {
	logf, err := openMountLog(j.Log, j.Argv)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(j.Argv[0], j.Argv[1:]...)
	cmd.Env, cmd.Dir = j.Env, j.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var last error
	for {
		b, err := os.ReadFile(j.Path)
		if err == nil && bytes.Equal(b, j.Want) {
			break
		}
		if err == nil {
			err = fmt.Errorf("%w: read %d bytes, want %q", errWrong, len(b), j.Want)
		}
		last = err
		select {
		case err := <-exited:
			// The command is done; if it failed, the mount is not coming.
			if err != nil {
				return fmt.Errorf("mount command: %w (log %s)", err, j.Log)
			}
			exited = nil
		case <-ctx.Done():
			return fmt.Errorf("%v; last read: %v", ctx.Err(), last)
		case <-time.After(time.Millisecond):
		}
	}
	res.Seconds = time.Since(t0).Seconds()
	if exited != nil {
		select {
		case err := <-exited:
			if err != nil {
				return fmt.Errorf("mount command, after the read: %w (log %s)", err, j.Log)
			}
		case <-time.After(mountTimeout):
			return errors.New("mount command still running after the read")
		}
	}
	return nil
}

// wTTFB times, for each of N files of directory Path (ttfbKey's names), a
// stat, an open, a read of the whole file and a close, one file after
// another; Seconds is the median. The directory itself is looked up first,
// untimed: the figure is a file's, not its directory's.
func wTTFB(ctx context.Context, j *job, res *jobResult) error {
	if _, err := os.Stat(j.Path); err != nil {
		return err
	}
	buf := make([]byte, ttfbSize+1)
	var ds []float64
	for i := range j.N {
		p := filepath.Join(j.Path, filepath.Base(ttfbKey(i)))
		t0 := time.Now()
		if _, err := os.Stat(p); err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		n, err := io.ReadFull(f, buf)
		f.Close()
		ds = append(ds, time.Since(t0).Seconds())
		if err != io.ErrUnexpectedEOF || !bytes.Equal(buf[:n], ttfbBody(i)) {
			return fmt.Errorf("%w: %s: read %d bytes (%v), want its %d", errWrong, p, n, err, ttfbSize)
		}
	}
	res.Seconds = median(ds)
	return nil
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const (
	bigKey  = "data/big.bin"
	bigSeed = 0xb16b00b5
	// readers4 is the number of concurrent readers of workload 1b; they
	// read bigKey and readers4-1 more objects of the same size.
	readers4 = 4
	smlSeed  = 0x5a11
	flatDir  = "flat"
	treeDir  = "tree"
	mib      = 1 << 20
	stepSlow = 8e6 // bytes/s: the slowest rate a sequential step is given time for
)

type runner struct {
	cfg     config
	exe     string
	logDir  string
	minio   *minioServer
	target  s3Target
	client  *s3.Client
	tools   map[string]mounter
	missing map[string]string // tool -> why it cannot run

	bigSHA   string
	bigCRC   string   // CRC-32C of the big object, for the timed reads
	extraCRC []string // CRC-32C of the extra big objects of workload 1b (extraKey(i))
	treeDirs int
	dev      *devTree
	started  time.Time
	deadline time.Time
	loadAvg  string // /proc/loadavg when the run started

	mu        sync.Mutex
	metrics   []metric
	samples   map[string]map[string][]sample // metric -> tool -> runs
	skipAfter map[string]string              // workload|tool -> reason later runs are skipped
	stepLog   []string
	resultDir string
}

func newRunner(cfg config) (*runner, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	r := &runner{
		cfg:       cfg,
		exe:       exe,
		logDir:    filepath.Join(cfg.WorkDir, "logs"),
		tools:     map[string]mounter{},
		missing:   map[string]string{},
		samples:   map[string]map[string][]sample{},
		skipAfter: map[string]string{},
	}
	r.metrics = r.defineMetrics()
	return r, nil
}

func (r *runner) defineMetrics() []metric {
	c := r.cfg
	sz := humanSize(c.Size)
	fio := fmt.Sprintf("6. fio random 4 KiB reads, psync, %d jobs, %s, on the %s object", c.FioJobs, c.FioRuntime, sz)
	return []metric{
		{"read_cold", "1. Sequential read of a " + sz + " object, cold", "MB/s", true, "seqread"},
		{"read_warm", "2. Same read again, warm (same mount)", "MB/s", true, "seqread"},
		{"read4", fmt.Sprintf("1b. %d sequential readers of %d different %s objects at once, cold (total)", readers4, readers4, sz), "MB/s", true, "seqread4"},
		{"write", "3. Sequential write of a " + sz + " file, until close() and in the bucket", "MB/s", true, "write"},
		{"small_create", fmt.Sprintf("4a. Create %d × %s files in one directory", c.SmallFiles, humanSize(int64(c.SmallSize))), "files/s", true, "small"},
		{"small_ls", "4b. `ls -l` of that directory, cold mount", "files/s", true, "small"},
		{"small_read", "4c. Read them all back", "files/s", true, "small"},
		{"small_delete", "4d. Delete them all", "files/s", true, "small"},
		{"list_flat", fmt.Sprintf("5a. `ls -l` of a directory of %d objects, cold", c.FlatObjects), "s", false, "list"},
		{"list_tree", fmt.Sprintf("5b. `find` over a tree of %d objects, cold", c.TreeObjects), "s", false, "list"},
		{"fio_iops", fio, "IOPS", true, "fio"},
		{"fio_fetched", "6b. Bytes MinIO wrote during 6, ÷ the object's size (1 = each byte fetched once)", "×", false, "fio"},
		{"fio_direct1_iops", "6c. Same as 6 with --direct=1 (O_DIRECT: no page cache), 1 job", "IOPS", true, "fiodirect"},
		{"fio_direct1_fetched", "6d. Bytes MinIO wrote during 6c, ÷ the object's size", "×", false, "fiodirect"},
		{"fio_direct4_iops", fmt.Sprintf("6e. Same as 6 with --direct=1, %d jobs", fioDirectJobs), "IOPS", true, "fiodirect"},
		{"fio_direct4_fetched", "6f. Bytes MinIO wrote during 6e, ÷ the object's size", "×", false, "fiodirect"},
		{"dev_untar", fmt.Sprintf("7a. Untar a %d-file source tree (until in the bucket)", c.DevFiles), "s", false, "devday"},
		{"dev_du", "7b. `du -s` over it", "s", false, "devday"},
		{"dev_grep", "7c. `grep -r` over it", "s", false, "devday"},
		{"rss_read", "8a. Peak RSS of the daemon during 1 (VmHWM)", "MiB", false, "seqread"},
		{"rss_write", "8b. Peak RSS of the daemon during 3 (VmHWM)", "MiB", false, "write"},
		{"rss_read4", "8c. Peak RSS of the daemon during 1b (VmHWM)", "MiB", false, "seqread4"},
		{"cpu_read", "8d. CPU of the daemon during 1, per GiB read (utime+stime from /proc/PID/stat)", "CPU-s/GiB", false, "seqread"},
		{"cpu_write", "8e. CPU of the daemon during 3, per GiB written (until the object is in the bucket)", "CPU-s/GiB", false, "write"},
		{"launch", "9. Launch to first read: mount command started → a small file in the mount read (polled every 1 ms)", "ms", false, "launch"},
		{"ttfb", fmt.Sprintf("9b. Time to first byte: stat, open and read of a %s file in a directory not listed, median of %d (SDK: HEAD, then GET)", humanSize(ttfbSize), ttfbFiles), "ms", false, "launch"},
	}
}

func (r *runner) logf(format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	line := fmt.Sprintf("[%6.1fs] %s", time.Since(r.started).Seconds(), msg)
	fmt.Fprintln(os.Stderr, line)
	r.mu.Lock()
	r.stepLog = append(r.stepLog, line)
	r.mu.Unlock()
}

func (r *runner) record(id, tool string, s sample) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.samples[id] == nil {
		r.samples[id] = map[string][]sample{}
	}
	r.samples[id][tool] = append(r.samples[id][tool], s)
}

func (r *runner) run(ctx context.Context) error {
	r.started = time.Now()
	r.loadAvg = loadAvg()
	if l := r.loadAvg; l != "" {
		r.logf("load average at start: %s", l)
	}
	r.deadline = r.started.Add(r.cfg.Budget)
	stamp := r.started.Format("2006-01-02_150405")
	r.resultDir = filepath.Join(r.cfg.OutDir, stamp)
	for _, d := range []string{r.cfg.WorkDir, r.logDir, r.resultDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// A crashed earlier run may have left mounts behind.
	unmountUnder(filepath.Join(r.cfg.WorkDir, "mnt"))
	defer unmountUnder(filepath.Join(r.cfg.WorkDir, "mnt"))

	if err := r.setupTools(); err != nil {
		return err
	}
	root := filepath.Join(r.cfg.WorkDir, "minio")
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		root = fmt.Sprintf("/dev/shm/bucketfs-bench-minio-%d", os.Getpid())
	}
	r.logf("starting MinIO (files in %s)", root)
	var err error
	r.minio, err = startMinio(ctx, r.cfg.MinioBin, root)
	if err != nil {
		return err
	}
	defer r.minio.Stop(filepath.Join(r.logDir, "minio.log"))
	r.target = r.minio.target
	r.client = r.target.client()
	r.configureTools()

	pctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	err = r.prepare(pctx)
	cancel()
	if err != nil {
		return fmt.Errorf("preparing data: %w", err)
	}

	for _, w := range r.cfg.Workloads {
		for run := 1; run <= r.cfg.Runs; run++ {
			for _, tool := range r.cfg.Tools {
				if ctx.Err() != nil {
					break
				}
				r.runCell(ctx, w, tool, run)
			}
		}
		if err := r.writeResults(); err != nil {
			r.logf("writing results: %v", err)
		}
	}
	if err := r.writeResults(); err != nil {
		return err
	}
	table, _ := os.ReadFile(filepath.Join(r.resultDir, "table.md"))
	fmt.Println()
	fmt.Print(string(table))
	fmt.Printf("\nresults: %s (%.1f min)\n", r.resultDir, time.Since(r.started).Minutes())
	latest := filepath.Join(r.cfg.OutDir, "latest")
	_ = os.Remove(latest)
	_ = os.Symlink(stamp, latest)
	return ctx.Err()
}

// toolWorkloads says which workloads a tool takes part in.
func toolRuns(tool, w string) bool {
	if tool == "sdk" {
		switch w {
		case "seqread", "write", "small", "list", "devday", "launch":
			return true
		}
		return false
	}
	return true
}

func (r *runner) metricsOf(w string) []string {
	var ids []string
	for _, m := range r.metrics {
		if m.Workload == w {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

// runCell runs one workload once for one tool and records its samples.
// Whatever it did not record gets the failure status.
func (r *runner) runCell(ctx context.Context, w, tool string, run int) {
	if !toolRuns(tool, w) {
		return
	}
	ids := r.metricsOf(w)
	if tool == "sdk" && (w == "seqread" || w == "write") {
		// The SDK has no cache and no daemon apart from itself.
		ids = map[string][]string{"seqread": {"read_cold", "rss_read", "cpu_read"}, "write": {"write", "rss_write", "cpu_write"}}[w]
	}
	if tool == "sdk" && w == "launch" {
		ids = []string{"ttfb"} // nothing to launch
	}
	c := &cellRun{r: r, tool: tool, run: run, done: map[string]bool{}, reqs: map[string]map[string]float64{}}
	finish := func(status, detail string) {
		for _, id := range ids {
			if !c.done[id] {
				r.record(id, tool, sample{Run: run, Status: status, Detail: detail})
			}
		}
	}
	key := w + "|" + tool
	if why, ok := r.skipAfter[key]; ok {
		finish(stSkipped, why)
		return
	}
	if why, ok := r.missing[tool]; ok {
		finish(stUnavailable, why)
		return
	}
	if w == "fio" || w == "fiodirect" {
		if _, err := exec.LookPath("fio"); err != nil {
			finish(stFail, "fio not installed")
			return
		}
	}
	if time.Now().After(r.deadline) {
		finish(stSkipped, "time budget spent")
		return
	}
	t0 := time.Now()
	r.logf("%s run %d: %s", w, run, tool)
	var err error
	switch w {
	case "seqread":
		err = r.wSeqRead(ctx, c)
	case "seqread4":
		err = r.wSeqRead4(ctx, c)
	case "write":
		err = r.wWrite(ctx, c)
	case "small":
		err = r.wSmall(ctx, c)
	case "list":
		err = r.wList(ctx, c)
	case "fio":
		err = r.wFio(ctx, c)
	case "fiodirect":
		err = r.wFioDirect(ctx, c)
	case "devday":
		err = r.wDevDay(ctx, c)
	case "launch":
		err = r.wLaunch(ctx, c)
	}
	status := stOK
	detail := ""
	if err != nil {
		status, detail = classify(err), err.Error()
		r.logf("  %s %s run %d: %s: %v", w, tool, run, status, err)
		if status == stTimeout {
			r.skipAfter[key] = "skipped after a timeout in run " + fmt.Sprint(run)
		}
	}
	if status == stOK {
		status, detail = stFail, "not measured"
	}
	finish(status, detail)
	r.logf("  done in %.1fs", time.Since(t0).Seconds())
}

// cellRun is one tool's run of one workload.
type cellRun struct {
	r    *runner
	tool string
	run  int
	done map[string]bool
	reqs map[string]map[string]float64 // metric id -> requests during its step
}

func (c *cellRun) ok(id string, v float64, extra map[string]float64) {
	c.r.record(id, c.tool, sample{Run: c.run, Value: v, Status: stOK, Extra: extra, Requests: c.reqs[id]})
	c.done[id] = true
	c.r.logf("  %-13s %s", id, formatValue(v, c.r.unitOf(id)))
}

func (c *cellRun) bad(id string, err error) {
	c.r.record(id, c.tool, sample{Run: c.run, Status: classify(err), Detail: err.Error(), Requests: c.reqs[id]})
	c.done[id] = true
	c.r.logf("  %-13s %s: %v", id, classify(err), err)
}

func (r *runner) unitOf(id string) string {
	for _, m := range r.metrics {
		if m.ID == id {
			return m.Unit
		}
	}
	return ""
}

var errTimeout = errors.New("timed out")

func classify(err error) string {
	switch {
	case errors.Is(err, errWrong):
		return stWrong
	case errors.Is(err, errTimeout), errors.Is(err, context.DeadlineExceeded):
		return stTimeout
	}
	return stFail
}

// ---- steps ----

// worker runs a job in a subprocess under a timeout.
func (r *runner) worker(ctx context.Context, timeout time.Duration, j job) (jobResult, error) {
	j.S3 = r.target
	arg, _ := json.Marshal(j)
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(sctx, r.exe, "worker", string(arg))
	var out bytes.Buffer
	cmd.Stdout = &out
	logf, err := os.OpenFile(filepath.Join(r.logDir, "workers.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err == nil {
		defer logf.Close()
		cmd.Stderr = logf
	}
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	var res jobResult
	if sctx.Err() == context.DeadlineExceeded {
		return res, fmt.Errorf("%s: %w after %v", j.Op, errTimeout, timeout)
	}
	if jerr := json.Unmarshal(out.Bytes(), &res); jerr != nil {
		if err == nil {
			err = jerr
		}
		return res, fmt.Errorf("%s worker: %v", j.Op, err)
	}
	if res.Wrong != "" {
		return res, fmt.Errorf("%s: %w: %s", j.Op, errWrong, strings.TrimPrefix(res.Wrong, errWrong.Error()+": "))
	}
	if res.Err != "" {
		return res, fmt.Errorf("%s: %s", j.Op, res.Err)
	}
	return res, nil
}

// command runs argv under a timeout and returns its stdout and wall time.
func (r *runner) command(ctx context.Context, timeout time.Duration, argv ...string) ([]byte, float64, error) {
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(sctx, argv[0], argv[1:]...)
	cmd.Env = append(cleanEnv(), "LC_ALL=C")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	t0 := time.Now()
	err := cmd.Run()
	dt := time.Since(t0).Seconds()
	if sctx.Err() == context.DeadlineExceeded {
		return out.Bytes(), dt, fmt.Errorf("%s: %w after %v", argv[0], errTimeout, timeout)
	}
	if err != nil {
		msg := strings.TrimSpace(errb.String())
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		return out.Bytes(), dt, fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, msg)
	}
	return out.Bytes(), dt, nil
}

// dropCaches makes the next access cold: sync, then drop the page cache,
// dentries and inodes.
func (r *runner) dropCaches(ctx context.Context) error {
	if _, _, err := r.command(ctx, 2*time.Minute, "sync"); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return nil
	}
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200)
}

// mount mounts tool on its mount point.
func (r *runner) mount(ctx context.Context, tool string) (*mount, error) {
	dir, priv, logPath := r.mountPaths(tool)
	m, err := doMount(ctx, r.tools[tool], dir, priv, logPath)
	if err != nil {
		return nil, err
	}
	if m.PID == 0 {
		r.logf("  warning: no daemon process found for %s", dir)
	}
	return m, nil
}

// mountPaths are tool's mount point, private directory and log.
func (r *runner) mountPaths(tool string) (dir, priv, logPath string) {
	return filepath.Join(r.cfg.WorkDir, "mnt", tool), filepath.Join(r.cfg.WorkDir, "priv", tool), filepath.Join(r.logDir, tool+".log")
}

func (r *runner) unmount(m *mount) {
	if err := m.unmount(2 * time.Minute); err != nil {
		r.logf("  unmount: %v", err)
	}
}

// seqTimeout is the time a sequential step over n bytes gets.
func seqTimeout(n int64) time.Duration {
	return 60*time.Second + time.Duration(float64(n)/stepSlow*float64(time.Second))
}

func mbps(n int64, sec float64) float64 { return float64(n) / 1e6 / sec }

func (r *runner) peakRSS(c *cellRun, id string, m *mount) {
	if m.PID == 0 {
		c.bad(id, errors.New("daemon process not found"))
		return
	}
	hwm, err := vmHWM(m.PID)
	if err != nil {
		c.bad(id, err)
		return
	}
	c.ok(id, float64(hwm)/mib, nil)
}

// daemonCPU returns the CPU seconds the mount's daemon has used so far, or
// an error that says why it is not known.
func daemonCPU(m *mount) (float64, error) {
	if m.PID == 0 {
		return 0, errors.New("daemon process not found")
	}
	return procCPU(m.PID)
}

// cpuPerGiB records the daemon's CPU between cpu0 (with err0 from its
// reading) and now, per GiB of n bytes moved.
func (r *runner) cpuPerGiB(c *cellRun, id string, m *mount, cpu0 float64, err0 error, n int64) {
	cpu1, err := daemonCPU(m)
	if err = errors.Join(err0, err); err != nil {
		c.bad(id, err)
		return
	}
	c.ok(id, (cpu1-cpu0)/(float64(n)/(1<<30)), map[string]float64{"cpu_seconds": cpu1 - cpu0})
}

// ---- machine and versions ----

func machineInfo() map[string]string {
	info := map[string]string{
		"cores":  fmt.Sprint(runtime.NumCPU()),
		"goarch": runtime.GOARCH,
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				_, v, _ := strings.Cut(line, ":")
				info["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if v, err := procStatusKiB("/proc/meminfo", "MemTotal:"); err == nil {
		info["memory"] = fmt.Sprintf("%.1f GiB", float64(v)/(1<<30))
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		var b []byte
		for _, c := range u.Release {
			if c == 0 {
				break
			}
			b = append(b, byte(c))
		}
		info["kernel"] = string(b)
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				info["os"] = strings.Trim(v, `"`)
			}
		}
	}
	return info
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func (r *runner) machine() map[string]string {
	m := machineInfo()
	m["loadavg_at_start"] = r.loadAvg
	m["loadavg_now"] = loadAvg()
	return m
}

func sdkVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	var parts []string
	for _, d := range bi.Deps {
		switch d.Path {
		case "github.com/aws/aws-sdk-go-v2", "github.com/aws/aws-sdk-go-v2/service/s3":
			parts = append(parts, d.Path+" "+d.Version)
		}
	}
	return strings.Join(parts, ", ") + " (" + bi.GoVersion + ")"
}

func (r *runner) wantsTool(t string) bool {
	for _, x := range r.cfg.Tools {
		if x == t {
			return true
		}
	}
	return false
}

func (r *runner) setupTools() error {
	for _, t := range r.cfg.Tools {
		switch t {
		case "bucketfs":
			if st, err := os.Stat(r.cfg.BucketfsBin); err != nil || st.IsDir() {
				r.missing[t] = "bucketfs binary not built (" + r.cfg.BucketfsBin + ")"
			}
		case "s3fs", "rclone":
			if _, err := exec.LookPath(t); err != nil {
				r.missing[t] = t + " not installed"
			}
		case "goofys", "geesefs":
			bin := &r.cfg.GoofysBin
			if t == "geesefs" {
				bin = &r.cfg.GeesefsBin
			}
			p, why := findTool(*bin)
			if why != "" {
				r.missing[t] = why
				continue
			}
			*bin = p
		}
	}
	return nil
}

// findTool resolves a tool's binary (a path, or a name on PATH). When it is
// missing, the reason is what bench/run.sh wrote into BIN.unavailable (why
// it could not build it), else "not installed".
func findTool(bin string) (string, string) {
	if p, err := exec.LookPath(bin); err == nil {
		if a, err := filepath.Abs(p); err == nil {
			p = a
		}
		return p, ""
	}
	if b, err := os.ReadFile(bin + ".unavailable"); err == nil && len(bytes.TrimSpace(b)) > 0 {
		return "", string(bytes.TrimSpace(b))
	}
	return "", filepath.Base(bin) + " not installed"
}

// configureTools builds the mounters once the endpoint is known.
func (r *runner) configureTools() {
	ver := r.cfg.BucketfsVer
	if ver == "" {
		ver = "unknown"
		if out, err := exec.Command("git", "-C", r.cfg.Repo, "describe", "--always", "--dirty").Output(); err == nil {
			ver = "git " + strings.TrimSpace(string(out))
		}
	}
	r.tools["bucketfs"] = &bucketfsTool{bin: r.cfg.BucketfsBin, logFile: filepath.Join(r.logDir, "bucketfs-daemon.log"), target: r.target, extra: strings.Fields(r.cfg.BucketfsArgs), ver: ver}
	r.tools["s3fs"] = &s3fsTool{target: r.target, extra: r.cfg.S3fsOpts, ver: firstLine("s3fs", "--version")}
	r.tools["rclone"] = &rcloneTool{target: r.target, extra: strings.Fields(r.cfg.RcloneArgs), ver: firstLine("rclone", "version")}
	for _, t := range []struct {
		name, bin, args string
	}{{"goofys", r.cfg.GoofysBin, r.cfg.GoofysArgs}, {"geesefs", r.cfg.GeesefsBin, r.cfg.GeesefsArgs}} {
		if _, ok := r.missing[t.name]; !ok && r.wantsTool(t.name) {
			r.tools[t.name] = &goTool{name: t.name, bin: t.bin, target: r.target, extra: strings.Fields(t.args), ver: firstLine(t.bin, "--version")}
		}
	}
}

// ---- results ----

type resultsFile struct {
	Date        string                     `json:"date"`
	Elapsed     float64                    `json:"elapsed_seconds"`
	Machine     map[string]string          `json:"machine"`
	Versions    map[string]string          `json:"versions"`
	MountOpts   map[string]string          `json:"mount_options"`
	Config      config                     `json:"config"`
	Metrics     []metric                   `json:"metrics"`
	Cells       map[string]map[string]cell `json:"cells"`
	Notes       []string                   `json:"notes"`
	Log         []string                   `json:"log"`
	MinioData   string                     `json:"minio_data_dir"`
	WorkDirLogs string                     `json:"logs"`
	MinioLog    string                     `json:"minio_log"`
}

func (r *runner) notes() []string {
	return []string{
		"Each cell is the median of the runs that succeeded; 'wrong' means a data check failed in at least one run; fail/timeout/skipped say why there is no figure.",
		"MB/s = 10^6 bytes per second. Writes are timed from open() until close() has returned and the object is complete in the bucket (polled with HEAD / LIST), so asynchronous uploads are counted.",
		"'bucketfs vs best peer' compares with the best of s3fs, rclone, goofys and geesefs; 'bucketfs vs bare SDK' with the bare SDK doing the same transfer or the same requests; > 1 means bucketfs is better (for seconds, MiB and CPU the ratio is inverted).",
		"Cold = fresh mount, then sync and echo 3 > /proc/sys/vm/drop_caches. Every workload-run gets a fresh mount. MinIO keeps its data on tmpfs, so cold means cold on the client only.",
		fmt.Sprintf("The bare SDK column is aws-sdk-go-v2 alone: %d parallel ranged GETs / multipart parts of %s (bucketfs's defaults). It has no cache, so no warm figure.", r.cfg.Concurrency, humanSize(r.cfg.PartSize)),
		"Every byte of the sequential reads (1, 1b, 2) is checked against the CRC-32C of what was written (SHA-256, at 1.4 GB/s here, would cap a warm read), and of the small files read back (4c) against SHA-256; every write (3, 4a, 7a) is fetched back through the SDK and checked; ls/find/grep must show the expected entries; after fio, 256 random 4 KiB preads and after grep, one file in 5 of the tree are read back through the same mount and checked.",
	}
}

// unavailableNotes says, per tool that could not run here, why.
func (r *runner) unavailableNotes() []string {
	var out []string
	for _, t := range r.cfg.Tools {
		if why, ok := r.missing[t]; ok {
			out = append(out, fmt.Sprintf("%s: %s: %s.", toolTitles[t], stUnavailable, strings.TrimSuffix(why, ".")))
		}
	}
	return out
}

func (r *runner) writeResults() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cells := map[string]map[string]cell{}
	for id, byTool := range r.samples {
		cells[id] = map[string]cell{}
		for t, ss := range byTool {
			cells[id][t] = summarize(ss)
		}
	}
	versions := map[string]string{
		"aws-sdk-go-v2 (runner, bare SDK)": sdkVersion(),
		"fio":                              firstLine("fio", "--version"),
	}
	mopts := map[string]string{}
	for _, t := range r.cfg.Tools {
		if m, ok := r.tools[t]; ok {
			versions[t] = m.Version()
			mopts[t] = m.Options()
		} else if why, ok := r.missing[t]; ok {
			versions[t] = stUnavailable + ": " + why
		}
	}
	if r.minio != nil {
		versions["minio"] = r.minio.Version
	}
	res := resultsFile{
		Date:        r.started.Format(time.RFC3339),
		Elapsed:     time.Since(r.started).Seconds(),
		Machine:     r.machine(),
		Versions:    versions,
		MountOpts:   mopts,
		Config:      r.cfg,
		Metrics:     r.metrics,
		Cells:       cells,
		Notes:       append(r.notes(), r.unavailableNotes()...),
		Log:         r.stepLog,
		WorkDirLogs: r.logDir,
	}
	if r.minio != nil {
		res.MinioData = r.minio.dataDir
		res.MinioLog = filepath.Join(r.logDir, "minio.log")
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.resultDir, "results.json"), b, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(r.resultDir, "table.md"), []byte(r.renderMarkdown(res)), 0o644)
}

func (r *runner) renderMarkdown(res resultsFile) string {
	var b strings.Builder
	m := res.Machine
	fmt.Fprintf(&b, "### bucketfs benchmark, %s\n\n", r.started.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "Machine: %s, %s cores, %s, %s, kernel %s; load average %s at the start. MinIO on loopback (tmpfs). Median of %d runs; %.1f min in all.\n\n",
		m["cpu"], m["cores"], m["memory"], m["os"], m["kernel"], m["loadavg_at_start"], r.cfg.Runs, res.Elapsed/60)
	b.WriteString(markdownTable(r.metrics, res.Cells, r.cfg.Tools))
	b.WriteString("\n")
	if t := requestsTable(r.metrics, res.Cells, "bucketfs"); t != "" {
		b.WriteString("Requests bucketfs sent per step (median of the runs; from its `bucketfs_s3_requests_total`, read before and after each step; `PUT (upload)` is one PutObject or one whole multipart upload made in one store call, a streamed upload counts its MPU create, parts and complete; failed calls are in results.json as `op/outcome`):\n\n")
		b.WriteString(t)
		b.WriteString("\n")
	}
	for _, n := range res.Notes {
		b.WriteString("- " + n + "\n")
	}
	b.WriteString("\nVersions:\n\n")
	for _, k := range sortedKeys(res.Versions) {
		fmt.Fprintf(&b, "- %s: %s\n", k, res.Versions[k])
	}
	b.WriteString("\nMount options:\n\n")
	for _, k := range sortedKeys(res.MountOpts) {
		fmt.Fprintf(&b, "- %s: `%s`\n", k, res.MountOpts[k])
	}
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// mounter mounts one FUSE tool on a directory.
type mounter interface {
	Name() string
	// Command returns the argv and extra environment that mount the bucket
	// on dir, with private files (configs, caches) under priv.
	Command(dir, priv string) (argv []string, env []string, err error)
	// Options describes the mount options for the report (no secrets).
	Options() string
	Version() string
}

// mount is a live mount made by the runner.
type mount struct {
	Dir     string
	PID     int    // daemon serving it, 0 if not found
	Metrics string // HOST:PORT of its Prometheus metrics (bucketfs), or ""
	priv    string
	log     string
}

// metricsServer is a mounter whose last Command serves metrics.
type metricsServer interface {
	metricsAddr() string
}

// metricsAddrOf is the metrics address of m's last Command, or "".
func metricsAddrOf(m mounter) string {
	if ms, ok := m.(metricsServer); ok {
		return ms.metricsAddr()
	}
	return ""
}

const mountTimeout = 60 * time.Second

// prepareMount makes dir an empty mount point and priv an empty private
// directory, and returns the command that mounts m there.
func prepareMount(m mounter, dir, priv string) (argv, env []string, err error) {
	if err := ensureUnmounted(dir); err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	_ = os.RemoveAll(priv)
	if err := os.MkdirAll(priv, 0o700); err != nil {
		return nil, nil, err
	}
	return m.Command(dir, priv)
}

// openMountLog opens a tool's log for appending and notes the command.
func openMountLog(logPath string, argv []string) (*os.File, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logf, "\n=== %s mount %s\n", time.Now().Format(time.RFC3339), strings.Join(argv, " "))
	return logf, nil
}

// doMount mounts m on dir and waits until the mount answers.
func doMount(ctx context.Context, m mounter, dir, priv, logPath string) (*mount, error) {
	argv, env, err := prepareMount(m, dir, priv)
	if err != nil {
		return nil, err
	}
	logf, err := openMountLog(logPath, argv)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	mctx, cancel := context.WithTimeout(ctx, mountTimeout)
	defer cancel()
	cmd := exec.CommandContext(mctx, argv[0], argv[1:]...)
	cmd.Env = append(cleanEnv(), env...)
	// Files, not pipes: the daemons fork and keep these descriptors, and
	// Wait must return when the foreground process exits.
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = priv
	if err := cmd.Run(); err != nil {
		_ = ensureUnmounted(dir)
		return nil, fmt.Errorf("%s mount command: %w (log %s)", m.Name(), err, logPath)
	}
	for {
		if isMounted(dir) {
			if err := statWithin(dir, 10*time.Second); err == nil {
				break
			}
		}
		select {
		case <-mctx.Done():
			_ = ensureUnmounted(dir)
			return nil, fmt.Errorf("%s: %s not mounted within %v (log %s)", m.Name(), dir, mountTimeout, logPath)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return &mount{Dir: dir, PID: findDaemon(dir), Metrics: metricsAddrOf(m), priv: priv, log: logPath}, nil
}

// unmount unmounts and waits for the daemon to exit (it may be draining
// uploads), killing it only if it outlives the timeout.
func (mt *mount) unmount(timeout time.Duration) error {
	var err error
	deadline := time.Now().Add(timeout)
	for i := 0; isMounted(mt.Dir); i++ {
		out, uerr := exec.Command("umount", mt.Dir).CombinedOutput()
		if uerr == nil {
			break
		}
		if time.Now().After(deadline) || i > 50 {
			err = fmt.Errorf("umount %s: %v: %s", mt.Dir, uerr, bytes.TrimSpace(out))
			_ = exec.Command("umount", "-l", mt.Dir).Run()
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if mt.PID > 0 {
		for processAlive(mt.PID) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if processAlive(mt.PID) {
			_ = syscall.Kill(mt.PID, syscall.SIGKILL)
			if err == nil {
				err = fmt.Errorf("daemon %d still running %v after unmount: killed", mt.PID, timeout)
			}
		}
	}
	if mt.priv != "" {
		_ = os.RemoveAll(mt.priv)
	}
	return err
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie has exited; its parent (not us) has yet to reap it.
	if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
		return false
	}
	return true
}

// mountPoints lists the FUSE mount points from /proc/self/mountinfo.
func mountPoints() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// ... mountpoint(4) ... "-" fstype source options
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(fields) || len(fields) < 5 {
			continue
		}
		if strings.HasPrefix(fields[sep+1], "fuse") {
			out = append(out, unescapeMountinfo(fields[4]))
		}
	}
	return out
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isMounted(dir string) bool {
	for _, p := range mountPoints() {
		if p == dir {
			return true
		}
	}
	return false
}

// ensureUnmounted unmounts dir if something is mounted there (a stale mount
// from a crashed run breaks the next one), lazily as a last resort.
func ensureUnmounted(dir string) error {
	for i := 0; i < 3 && isMounted(dir); i++ {
		if i < 2 {
			_ = exec.Command("umount", dir).Run()
		} else {
			_ = exec.Command("umount", "-l", dir).Run()
		}
		time.Sleep(200 * time.Millisecond)
	}
	if isMounted(dir) {
		return fmt.Errorf("%s is still mounted", dir)
	}
	return nil
}

// unmountUnder lazily unmounts every FUSE mount below root.
func unmountUnder(root string) {
	for _, p := range mountPoints() {
		if p == root || strings.HasPrefix(p, root+"/") {
			_ = ensureUnmounted(p)
		}
	}
}

func statWithin(path string, d time.Duration) error {
	errc := make(chan error, 1)
	go func() { _, err := os.Stat(path); errc <- err }()
	select {
	case err := <-errc:
		return err
	case <-time.After(d):
		return errors.New("stat timed out")
	}
}

// findDaemon finds the process serving the mount on dir: the one whose
// command line names dir (s3fs, rclone and bucketfs all keep it there).
func findDaemon(dir string) int {
	ents, _ := os.ReadDir("/proc")
	self := os.Getpid()
	best := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, a := range strings.Split(string(b), "\x00") {
			if a == dir || a == dir+"/" {
				if !processAlive(pid) {
					break
				}
				if pid > best { // the forked daemon is newer than its parent
					best = pid
				}
				break
			}
		}
	}
	return best
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat:
// 100 on every Linux architecture Go supports (sysconf(_SC_CLK_TCK) would
// need cgo to ask).
const clockTicks = 100

// procCPU returns the CPU seconds (user + system, all threads) pid has used
// so far, from fields 14 and 15 of /proc/PID/stat.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

func parseStatCPU(b []byte) (float64, error) {
	// The command name (field 2) may hold spaces and parentheses: the
	// fields that follow start after its last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("/proc/PID/stat: no ')'")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/PID/stat: %d fields after the name", len(f))
	}
	var ticks float64
	for _, s := range f[11:13] { // utime, stime: fields 14 and 15
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/PID/stat: %w", err)
		}
		ticks += float64(v)
	}
	return ticks / clockTicks, nil
}

// vmHWM returns the peak resident set size of pid in bytes (VmHWM).
func vmHWM(pid int) (int64, error) {
	return procStatusKiB(fmt.Sprintf("/proc/%d/status", pid), "VmHWM:")
}

func procStatusKiB(path, field string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field) {
			f := strings.Fields(line[len(field):])
			if len(f) >= 1 {
				v, err := strconv.ParseInt(f[0], 10, 64)
				return v * 1024, err
			}
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, field)
}

// ---- the tools ----

type bucketfsTool struct {
	bin     string
	logFile string
	target  s3Target
	extra   []string
	ver     string
	addr    string // --metrics-addr of the last Command
}

func (t *bucketfsTool) Name() string        { return "bucketfs" }
func (t *bucketfsTool) metricsAddr() string { return t.addr }
func (t *bucketfsTool) Command(dir, priv string) ([]string, []string, error) {
	// Metrics on a free loopback port, for the request counts per step.
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, nil, err
	}
	t.addr = addr
	argv := []string{t.bin, "--endpoint", t.target.Endpoint,
		"--log-file", t.logFile, "--recovery-dir", filepath.Join(priv, "recovery"), "--metrics-addr", addr}
	argv = append(argv, t.extra...)
	argv = append(argv, t.target.Bucket, dir)
	return argv, []string{
		"AWS_ACCESS_KEY_ID=" + t.target.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + t.target.SecretKey,
		"TMPDIR=" + priv,
	}, nil
}
func (t *bucketfsTool) Options() string {
	return strings.Join(append([]string{"bucketfs", "--endpoint", "URL", "--log-file", "FILE", "--recovery-dir", "DIR", "--metrics-addr", "127.0.0.1:PORT"}, t.extra...), " ") +
		" BUCKET MOUNTPOINT (credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, TMPDIR=DIR; metrics for the request counts; all else bucketfs defaults)"
}
func (t *bucketfsTool) Version() string { return t.ver }

type s3fsTool struct {
	target s3Target
	extra  string
	ver    string
}

func (t *s3fsTool) Name() string { return "s3fs" }
func (t *s3fsTool) opts() string {
	o := "url=" + t.target.Endpoint + ",use_path_request_style,dbglevel=warn"
	if t.extra != "" {
		o += "," + t.extra
	}
	return o
}
func (t *s3fsTool) Command(dir, priv string) ([]string, []string, error) {
	pw := filepath.Join(priv, "passwd-s3fs")
	if err := os.WriteFile(pw, []byte(t.target.AccessKey+":"+t.target.SecretKey+"\n"), 0o600); err != nil {
		return nil, nil, err
	}
	return []string{"s3fs", t.target.Bucket, dir, "-o", t.opts() + ",passwd_file=" + pw}, []string{"TMPDIR=" + priv}, nil
}
func (t *s3fsTool) Options() string {
	return "s3fs BUCKET MOUNTPOINT -o " + strings.Replace(t.opts(), t.target.Endpoint, "URL", 1) + ",passwd_file=FILE (all else s3fs defaults)"
}
func (t *s3fsTool) Version() string { return t.ver }

type rcloneTool struct {
	target s3Target
	extra  []string
	ver    string
}

func (t *rcloneTool) Name() string { return "rclone" }
func (t *rcloneTool) flags(priv string) []string {
	f := []string{"--vfs-cache-mode", "writes", "--cache-dir", priv + "/cache", "--daemon"}
	return append(f, t.extra...)
}
func (t *rcloneTool) Command(dir, priv string) ([]string, []string, error) {
	conf := filepath.Join(priv, "rclone.conf")
	c := fmt.Sprintf("[bench]\ntype = s3\nprovider = Minio\nenv_auth = false\naccess_key_id = %s\nsecret_access_key = %s\nendpoint = %s\nregion = us-east-1\n",
		t.target.AccessKey, t.target.SecretKey, t.target.Endpoint)
	if err := os.WriteFile(conf, []byte(c), 0o600); err != nil {
		return nil, nil, err
	}
	argv := append([]string{"rclone", "--config", conf, "mount", "bench:" + t.target.Bucket, dir}, t.flags(priv)...)
	// rclone 1.60's AWS SDK v1 cannot apply AWS_CA_BUNDLE to its own HTTP
	// transport and refuses to start; the endpoint is plain HTTP anyway.
	return argv, []string{"AWS_CA_BUNDLE="}, nil
}
func (t *rcloneTool) Options() string {
	return "rclone mount remote:BUCKET MOUNTPOINT " + strings.Join(t.flags("DIR"), " ") +
		" (remote: type s3, provider Minio, region us-east-1; all else rclone defaults)"
}
func (t *rcloneTool) Version() string { return t.ver }

// goTool mounts with goofys or geesefs (built at pinned versions by
// bench/run.sh): both take --endpoint and --region, use path-style requests
// for a non-AWS endpoint unless told --subdomain, read the credentials from
// the environment and keep no disk cache by default.
type goTool struct {
	name   string
	bin    string
	target s3Target
	extra  []string
	ver    string
}

func (t *goTool) Name() string { return t.name }
func (t *goTool) flags() []string {
	return append([]string{"--region", "us-east-1"}, t.extra...)
}
func (t *goTool) Command(dir, priv string) ([]string, []string, error) {
	argv := append([]string{t.bin, "--endpoint", t.target.Endpoint}, t.flags()...)
	argv = append(argv, t.target.Bucket, dir)
	return argv, s3Env(t.target, priv), nil
}
func (t *goTool) Options() string {
	return t.name + " --endpoint URL " + strings.Join(t.flags(), " ") +
		" BUCKET MOUNTPOINT (credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; path-style, its default; all else " + t.name + " defaults)"
}
func (t *goTool) Version() string {
	// goofys v0.24.0 built without its Makefile says "0.24.0-use `make
	// build' to fill version hash correctly".
	v, _, _ := strings.Cut(t.ver, "-use `make build'")
	return v
}

// s3Env is the environment of a tool that reads its credentials from the
// AWS variables: those, and HOME and TMPDIR in its private directory, so
// that no ~/.aws file of the machine's user is read.
func s3Env(t s3Target, priv string) []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + t.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + t.SecretKey,
		"HOME=" + priv,
		"TMPDIR=" + priv,
	}
}

// firstLine runs a version command and keeps its first line.
func firstLine(argv ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "unknown (" + err.Error() + ")"
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}

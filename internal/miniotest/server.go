// Package miniotest runs a real MinIO server on 127.0.0.1 for tests and
// benchmarks: a fresh data directory, free ports, random root credentials,
// and helpers to stop, kill and restart it (same port, data and keys) for
// fault tests.
package miniotest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Region is the region MinIO accepts by default; clients sign with it.
const Region = "us-east-1"

// Options tune Start. The zero value runs a fresh plain-HTTP server.
type Options struct {
	// DataDir is the server's data directory; "" creates a fresh temporary
	// one. MinIO's log is written next to it (in its parent directory).
	DataDir string
	// Port to listen on; 0 picks a free one.
	Port int
	// CertsDir, if set, holds public.crt and private.key (and optionally
	// CAs/): MinIO then serves HTTPS and Endpoint starts with https://.
	CertsDir string
	// AccessKey and SecretKey are the root credentials; "" generates random ones.
	AccessKey, SecretKey string
	// Env holds extra KEY=VALUE variables for the server process.
	Env []string
	// KMSKey, if set, names a static KMS key MinIO starts with
	// (MINIO_KMS_SECRET_KEY=NAME:random 256 bits, the same across
	// restarts): SSE-S3 and SSE-KMS (with this key id) then work.
	KMSKey string
	// ReadyTimeout bounds the wait for the server to become ready (default 60s).
	ReadyTimeout time.Duration
}

// Server is one running (or stopped) MinIO process.
type Server struct {
	Endpoint  string // "http://127.0.0.1:PORT" (https with CertsDir)
	AccessKey string
	SecretKey string
	KMSKey    string // the KMS key's name (Options.KMSKey), "" without KMS
	DataDir   string
	LogPath   string // MinIO's combined stdout/stderr
	Port      int

	opts        Options
	bin         string
	consolePort int
	ownedRoot   string // temporary directory created by Start, removed by Close

	mu   sync.Mutex
	proc *process // nil when not running
}

// PID returns the server process's pid, or 0 when it is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil || s.proc.cmd.Process == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// process is one run of the server binary.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, valid after done
}

// Start launches MinIO and waits until it serves S3 requests (waitReady).
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin, err := Binary(ctx)
	if err != nil {
		return nil, fmt.Errorf("find minio binary: %w", err)
	}
	s := &Server{opts: opts, bin: bin, AccessKey: opts.AccessKey, SecretKey: opts.SecretKey, KMSKey: opts.KMSKey}
	if opts.KMSKey != "" {
		if strings.ContainsAny(opts.KMSKey, ":= ") {
			return nil, fmt.Errorf("miniotest: KMS key name %q must not contain ':', '=' or spaces", opts.KMSKey)
		}
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("miniotest: KMS key: %w", err)
		}
		// Part of opts, so that Restart brings the same key back and
		// objects encrypted before stay readable.
		s.opts.Env = append(slices.Clone(opts.Env), "MINIO_KMS_SECRET_KEY="+opts.KMSKey+":"+base64.StdEncoding.EncodeToString(key))
	}
	if s.AccessKey == "" {
		s.AccessKey = "ak" + randHex(9)
	}
	if s.SecretKey == "" {
		s.SecretKey = randHex(20)
	}
	if opts.DataDir != "" {
		s.DataDir = opts.DataDir
	} else {
		root, err := os.MkdirTemp("", "miniotest-")
		if err != nil {
			return nil, fmt.Errorf("create minio temp dir: %w", err)
		}
		s.ownedRoot = root
		s.DataDir = filepath.Join(root, "data")
	}
	if err := os.MkdirAll(s.DataDir, 0o755); err != nil {
		s.removeOwned()
		return nil, fmt.Errorf("create minio data dir: %w", err)
	}
	s.LogPath = filepath.Join(filepath.Dir(s.DataDir), "minio-"+filepath.Base(s.DataDir)+".log")

	// A free port found by listen-and-close can be taken by someone else
	// before MinIO binds it; when we chose it, try again with a new one.
	attempts := 1
	if opts.Port == 0 {
		attempts = 3
	}
	for i := 0; ; i++ {
		s.Port = opts.Port
		if s.Port == 0 {
			if s.Port, err = freePort(); err != nil {
				s.removeOwned()
				return nil, err
			}
		}
		if s.consolePort, err = freePort(); err != nil {
			s.removeOwned()
			return nil, err
		}
		scheme := "http"
		if opts.CertsDir != "" {
			scheme = "https"
		}
		s.Endpoint = scheme + "://127.0.0.1:" + strconv.Itoa(s.Port)
		err = s.launch(ctx)
		if err == nil {
			return s, nil
		}
		if i+1 >= attempts || ctx.Err() != nil {
			s.removeOwned()
			return nil, err
		}
	}
}

// launch starts the process (s.proc must be nil) and waits until ready.
func (s *Server) launch(ctx context.Context) error {
	logf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open minio log: %w", err)
	}
	defer logf.Close() // the child has its own descriptor

	certsDir := s.opts.CertsDir
	if certsDir == "" {
		// Always pass a certs dir: otherwise MinIO reads ~/.minio/certs and
		// a stray certificate there would silently turn on TLS.
		certsDir = filepath.Join(filepath.Dir(s.DataDir), "certs-"+filepath.Base(s.DataDir))
		if err := os.MkdirAll(certsDir, 0o755); err != nil {
			return fmt.Errorf("create empty certs dir: %w", err)
		}
	}
	cmd := exec.Command(s.bin, "server",
		"--address", "127.0.0.1:"+strconv.Itoa(s.Port),
		"--console-address", "127.0.0.1:"+strconv.Itoa(s.consolePort),
		"--certs-dir", certsDir,
		s.DataDir)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		// A test server has one drive on tmpfs: never take it offline
		// because the machine is too busy to answer a health check in
		// time (every write then fails with SlowDownWrite for minutes;
		// seen with two suites and the conformance runs on 2 cores).
		"_MINIO_DRIVE_ACTIVE_MONITORING=off",
		"MINIO_DRIVE_MAX_TIMEOUT=10m",
	)
	cmd.Env = append(cmd.Env, s.opts.Env...) // later entries win
	cmd.Stdout, cmd.Stderr = logf, logf
	// If the test binary dies (panic, timeout, SIGKILL), take MinIO with it
	// rather than leaking a server per failed run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}

	p := &process{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the *thread* that forked the child exits, and
		// Go may retire threads; pin this goroutine to its thread until the
		// child is gone.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start minio: %w", err)
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()

	if err := s.waitReady(ctx, p); err != nil {
		s.killProc(p)
		return err
	}
	return nil
}

func (s *Server) waitReady(ctx context.Context, p *process) error {
	timeout := s.opts.ReadyTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The probe only asks whether the server is up, so it does not verify
	// the (test) certificate.
	hc := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // readiness probe only
	}
	defer hc.CloseIdleConnections()
	// /minio/health/ready answers 200 before the object layer is up (it
	// only sets x-minio-server-status: offline), and S3 requests then get
	// 503 XMinioServerNotInitialized. /minio/health/cluster is 200 only
	// once the object layer, bucket metadata and IAM are initialised and
	// the drives have write quorum; a signed ListBuckets then proves that
	// the S3 API itself accepts our credentials.
	url := s.Endpoint + "/minio/health/cluster"
	client := s.Client()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("minio readiness request: %w", err)
		}
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := client.ListBuckets(lctx, &s3.ListBucketsInput{})
				cancel()
				if err == nil {
					return nil
				}
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("minio exited before becoming ready (%v); log %s:\n%s", p.err, s.LogPath, s.logTail())
		case <-ctx.Done():
			return fmt.Errorf("minio at %s not ready: %w; log %s:\n%s", s.Endpoint, ctx.Err(), s.LogPath, s.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *Server) logTail() string {
	b, err := os.ReadFile(s.LogPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	return tail(string(b), 3000)
}

// Stop shuts the server down gracefully (SIGTERM, then SIGKILL after 10s).
// The data directory is kept, so Restart can bring the same data back.
// Stopping a stopped server is a no-op.
func (s *Server) Stop() error {
	p := s.takeProc()
	if p == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("minio did not stop within 10s of SIGTERM; killed")
	}
}

// Kill stops the server abruptly with SIGKILL, as a crash would.
func (s *Server) Kill() error {
	p := s.takeProc()
	if p == nil {
		return nil
	}
	s.killProc(p)
	return nil
}

func (s *Server) takeProc() *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	s.proc = nil
	return p
}

func (s *Server) killProc(p *process) {
	_ = p.cmd.Process.Kill()
	<-p.done
	s.mu.Lock()
	if s.proc == p {
		s.proc = nil
	}
	s.mu.Unlock()
}

// Running reports whether the server process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return false
	}
	select {
	case <-s.proc.done:
		return false
	default:
		return true
	}
}

// Restart stops the server if it runs and starts it again on the same port,
// with the same data directory and credentials.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.Stop(); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	// The old listener's port is normally free at once (MinIO sets
	// SO_REUSEADDR), but allow a few tries in case the kernel lags.
	var err error
	for i := 0; i < 5; i++ {
		if err = s.launch(ctx); err == nil {
			return nil
		}
		if ctx.Err() != nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("restart minio: %w", err)
}

// Close stops the server and removes the temporary directory Start created
// (a caller-provided DataDir is left alone).
func (s *Server) Close() error {
	err := s.Stop()
	s.removeOwned()
	return err
}

func (s *Server) removeOwned() {
	if s.ownedRoot != "" {
		_ = os.RemoveAll(s.ownedRoot)
	}
}

// Client returns a raw S3 client for the server: path-style addressing,
// checksums only when required (as bucketfs uses against MinIO). For a TLS
// server it trusts public.crt and CAs/* from the certs dir.
func (s *Server) Client() *s3.Client {
	cfg := aws.Config{
		Region:                     Region,
		Credentials:                credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	if s.opts.CertsDir != "" {
		pool := s.certPool()
		cfg.HTTPClient = awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
			if t.TLSClientConfig == nil {
				t.TLSClientConfig = &tls.Config{}
			}
			t.TLSClientConfig.RootCAs = pool
		})
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(s.Endpoint)
		o.UsePathStyle = true
	})
}

func (s *Server) certPool() *x509.CertPool {
	pool := x509.NewCertPool()
	files := []string{filepath.Join(s.opts.CertsDir, "public.crt")}
	cas, _ := filepath.Glob(filepath.Join(s.opts.CertsDir, "CAs", "*"))
	for _, f := range append(files, cas...) {
		if b, err := os.ReadFile(f); err == nil {
			pool.AppendCertsFromPEM(b)
		}
	}
	return pool
}

// CreateBucket creates a bucket.
func (s *Server) CreateBucket(ctx context.Context, name string) error {
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		return fmt.Errorf("create bucket %q: %w", name, err)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("crypto/rand failed: " + err.Error()))
	}
	return hex.EncodeToString(b)
}

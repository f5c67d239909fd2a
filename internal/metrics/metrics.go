// Package metrics holds bucketfs's Prometheus metrics and the small API the
// rest of the daemon feeds them through.
//
// The packages that do the work (fs, s3backend, cache) never import
// Prometheus: the object store is instrumented from outside with
// InstrumentStore, fs reports failures through its Config.OnFailure hook
// (wired to FSFailure), and cache calls the plain functions CacheHit,
// CacheMiss and SetCacheBytes. A mount is one process, so the metrics are
// process-wide; they cost a few atomic adds whether or not anyone scrapes
// them, which is why the callers need not check whether --metrics-addr was
// given.
package metrics

import (
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/novitalabs/bucketfs/cache"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is one set of bucketfs metrics in its own registry. The daemon
// uses Default; tests make their own with New so that counts do not leak
// between them.
type Metrics struct {
	reg *prometheus.Registry

	requests      *prometheus.CounterVec   // op, outcome
	duration      *prometheus.HistogramVec // op
	downloadBytes prometheus.Counter
	uploadBytes   prometheus.Counter
	uploads       prometheus.Gauge
	fsErrors      *prometheus.CounterVec // op, errno
	cacheHits     prometheus.Counter
	cacheMisses   prometheus.Counter
	cacheBytes    prometheus.Gauge
	buildInfo     *prometheus.GaugeVec
}

// New returns a fresh set of metrics, registered in a private registry
// together with the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bucketfs_s3_requests_total",
			Help: "Object store calls by operation and outcome (ok, or the class of error: not_found, access_denied, unreachable, ...).",
		}, []string{"op", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "bucketfs_s3_request_duration_seconds",
			Help: "Time until an object store call returned (for get: until the body started).",
			// From a loopback HEAD to a multi-GiB multipart upload.
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"op"}),
		downloadBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bucketfs_s3_download_bytes_total",
			Help: "Bytes received in object bodies (GET).",
		}),
		uploadBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bucketfs_s3_upload_bytes_total",
			Help: "Bytes of objects and parts the store accepted (PUT, multipart parts; server-side copies excluded).",
		}),
		uploads: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bucketfs_uploads_in_flight",
			Help: "Object uploads (single PUT or whole multipart upload) in progress.",
		}),
		fsErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bucketfs_fs_errors_total",
			Help: "Failed filesystem operations by operation and the errno returned to the caller.",
		}, []string{"op", "errno"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bucketfs_cache_hits_total",
			Help: "Read-cache lookups served from the cache.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bucketfs_cache_misses_total",
			Help: "Read-cache lookups that had to go to the store.",
		}),
		cacheBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bucketfs_cache_bytes",
			Help: "Bytes held in the read cache.",
		}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bucketfs_build_info",
			Help: "Always 1; the labels name the running build.",
		}, []string{"version", "commit", "goversion"}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.downloadBytes, m.uploadBytes, m.uploads,
		m.fsErrors, m.cacheHits, m.cacheMisses, m.cacheBytes, m.buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Default is the daemon's metrics, served by Handler.
var Default = New()

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry is the registry behind Handler, for tests and embedders.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SetBuildInfo records the version and commit in bucketfs_build_info.
func (m *Metrics) SetBuildInfo(version, commit string) {
	m.buildInfo.Reset()
	m.buildInfo.WithLabelValues(version, commit, runtime.Version()).Set(1)
}

// FSFailure counts a failed filesystem operation. Its signature is that of
// fs.Config.OnFailure. The op is cut at the first space: fs logs uploads as
// "upload (close)", "upload (retry)"..., and the reason would only multiply
// the series.
func (m *Metrics) FSFailure(op string, errno syscall.Errno) {
	op, _, _ = strings.Cut(op, " ")
	m.fsErrors.WithLabelValues(op, errnoName(errno)).Inc()
}

// CacheHit counts a read-cache lookup served from the cache.
func (m *Metrics) CacheHit() { m.cacheHits.Inc() }

// CacheMiss counts a read-cache lookup that had to fetch from the store.
func (m *Metrics) CacheMiss() { m.cacheMisses.Inc() }

// SetCacheBytes reports how many bytes the read cache holds now.
func (m *Metrics) SetCacheBytes(n int64) { m.cacheBytes.Set(float64(n)) }

// Package-level shorthands for Default, for callers that have no
// *Metrics at hand (cache, and fs through cmd's wiring).

// FSFailure counts a failed filesystem operation in Default.
func FSFailure(op string, errno syscall.Errno) { Default.FSFailure(op, errno) }

// CacheHit counts a read-cache hit in Default.
func CacheHit() { Default.CacheHit() }

// CacheMiss counts a read-cache miss in Default.
func CacheMiss() { Default.CacheMiss() }

// SetCacheBytes sets the read cache's size in Default.
func SetCacheBytes(n int64) { Default.SetCacheBytes(n) }

// Handler serves Default.
func Handler() http.Handler { return Default.Handler() }

// errnoName gives the symbolic name of an errno (ENOENT rather than "no
// such file or directory"): stable, short label values.
func errnoName(e syscall.Errno) string {
	if n, ok := errnoNames[e]; ok {
		return n
	}
	if e == 0 {
		return "OK"
	}
	return "errno_" + strconv.Itoa(int(e))
}

var errnoNames = map[syscall.Errno]string{
	syscall.EPERM: "EPERM", syscall.ENOENT: "ENOENT", syscall.EINTR: "EINTR",
	syscall.EIO: "EIO", syscall.EBADF: "EBADF", syscall.EAGAIN: "EAGAIN",
	syscall.ENOMEM: "ENOMEM", syscall.EACCES: "EACCES", syscall.EBUSY: "EBUSY",
	syscall.EEXIST: "EEXIST", syscall.EXDEV: "EXDEV", syscall.ENOTDIR: "ENOTDIR",
	syscall.EISDIR: "EISDIR", syscall.EINVAL: "EINVAL", syscall.EFBIG: "EFBIG",
	syscall.ENOSPC: "ENOSPC", syscall.EROFS: "EROFS", syscall.ENAMETOOLONG: "ENAMETOOLONG",
	syscall.ENOTEMPTY: "ENOTEMPTY", syscall.ENOTSUP: "ENOTSUP", syscall.ENODATA: "ENODATA",
	syscall.ETIMEDOUT: "ETIMEDOUT", syscall.ECONNREFUSED: "ECONNREFUSED",
	syscall.EHOSTUNREACH: "EHOSTUNREACH", syscall.ESTALE: "ESTALE",
	syscall.ECANCELED: "ECANCELED", syscall.ENOSYS: "ENOSYS", syscall.ERANGE: "ERANGE",
	syscall.ENOTCONN: "ENOTCONN", syscall.EDQUOT: "EDQUOT",
}

// CacheObserver feeds the block cache's events to the default metrics:
// a block found in memory or already being fetched is a hit, one that had
// to be fetched is a miss.
func CacheObserver() cache.Observer { return cacheObserver{m: Default} }

type cacheObserver struct {
	cache.NopObserver
	m *Metrics
}

func (o cacheObserver) Lookup(l cache.Lookup) {
	if l == cache.LookupMiss {
		o.m.CacheMiss()
	} else {
		o.m.CacheHit()
	}
}

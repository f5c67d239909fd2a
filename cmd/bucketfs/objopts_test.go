package main

import (
	"encoding/base64"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/novitalabs/bucketfs/s3backend"
)

// objCfg is the part of Config that the s3fs object and tuning options set.
type objCfg struct {
	SSE               s3backend.SSEMode
	KMSKeyID, KeyFile string
	KeysEnv           string
	Class, ACL        string
	RequesterPays     bool
	CacheDir          string
	PartSize          int64
	Concurrency       int
	Attempts          int
	DiskFree          int64
	TTL               time.Duration
	LogLevel          slog.Level
}

func objSummary(c *Config) objCfg {
	return objCfg{SSE: c.SSE, KMSKeyID: c.SSEKMSKeyID, KeyFile: c.SSECKeyFile, KeysEnv: c.sseCKeys,
		Class: c.StorageClass, ACL: c.ACL, RequesterPays: c.RequesterPays, CacheDir: c.CacheDir,
		PartSize: c.PartSize, Concurrency: c.UploadConcurrency, Attempts: c.MaxAttempts,
		DiskFree: c.EnsureDiskFree, TTL: c.StatCacheTTL, LogLevel: c.LogLevel}
}

func objBase(mod func(*objCfg)) objCfg {
	w := objCfg{TTL: 5 * time.Second}
	if mod != nil {
		mod(&w)
	}
	return w
}

func TestParseArgsS3fsObjectOptions(t *testing.T) {
	env := testEnv(map[string]string{"AWSSSEKMSID": "env-key", "AWSSSECKEYS": "k1"})
	tests := []struct {
		name, args string
		want       objCfg
	}{
		{"none", "b /m", objBase(nil)},
		{"use_sse", "b /m -o use_sse", objBase(func(w *objCfg) { w.SSE = s3backend.SSES3 })},
		{"use_sse=1", "b /m -o use_sse=1", objBase(func(w *objCfg) { w.SSE = s3backend.SSES3 })},
		{"use_sse=0 after use_sse", "b /m -o use_sse,use_sse=0", objBase(nil)},
		{"kmsid with id", "b /m -o use_sse=kmsid:my-key", objBase(func(w *objCfg) { w.SSE, w.KMSKeyID = s3backend.SSEKMS, "my-key" })},
		{"k with an ARN", "b /m -o use_sse=k:arn:aws:kms:us-east-1:1:key/x",
			objBase(func(w *objCfg) { w.SSE, w.KMSKeyID = s3backend.SSEKMS, "arn:aws:kms:us-east-1:1:key/x" })},
		{"kmsid from AWSSSEKMSID", "b /m -o use_sse=kmsid", objBase(func(w *objCfg) { w.SSE, w.KMSKeyID = s3backend.SSEKMS, "env-key" })},
		{"custom key file", "b /m -o use_sse=custom:keys/k", objBase(func(w *objCfg) { w.SSE, w.KeyFile = s3backend.SSEC, "/work/keys/k" })},
		{"c key file", "b /m -o use_sse=c:/etc/k", objBase(func(w *objCfg) { w.SSE, w.KeyFile = s3backend.SSEC, "/etc/k" })},
		{"old form: a key file", "b /m -o use_sse=/etc/sse.key", objBase(func(w *objCfg) { w.SSE, w.KeyFile = s3backend.SSEC, "/etc/sse.key" })},
		{"custom from AWSSSECKEYS", "b /m -o use_sse=custom", objBase(func(w *objCfg) { w.SSE, w.KeysEnv = s3backend.SSEC, "k1" })},
		{"--sse s3", "--sse s3 b /m", objBase(func(w *objCfg) { w.SSE = s3backend.SSES3 })},
		{"--sse-kms-key-id implies kms", "--sse-kms-key-id k2 b /m", objBase(func(w *objCfg) { w.SSE, w.KMSKeyID = s3backend.SSEKMS, "k2" })},
		{"--sse kms beside the id", "--sse kms --sse-kms-key-id k2 b /m", objBase(func(w *objCfg) { w.SSE, w.KMSKeyID = s3backend.SSEKMS, "k2" })},
		{"--sse-c-key-file implies c", "--sse-c-key-file k b /m", objBase(func(w *objCfg) { w.SSE, w.KeyFile = s3backend.SSEC, "/work/k" })},
		{"flag wins over use_sse", "--sse s3 b /m -o use_sse=kmsid:x", objBase(func(w *objCfg) { w.SSE = s3backend.SSES3 })},
		{"storage_class", "b /m -o storage_class=reduced_redundancy", objBase(func(w *objCfg) { w.Class = "REDUCED_REDUNDANCY" })},
		{"use_rrs", "b /m -o use_rrs", objBase(func(w *objCfg) { w.Class = "REDUCED_REDUNDANCY" })},
		{"--storage-class wins", "--storage-class standard_ia b /m -o storage_class=standard", objBase(func(w *objCfg) { w.Class = "STANDARD_IA" })},
		{"default_acl", "b /m -o default_acl=public-read", objBase(func(w *objCfg) { w.ACL = "public-read" })},
		{"default_acl=private sends nothing", "b /m -o default_acl=private", objBase(nil)},
		{"--acl", "--acl bucket-owner-full-control b /m", objBase(func(w *objCfg) { w.ACL = "bucket-owner-full-control" })},
		{"requester_pays", "b /m -o requester_pays", objBase(func(w *objCfg) { w.RequesterPays = true })},
		{"--requester-pays", "--requester-pays b /m", objBase(func(w *objCfg) { w.RequesterPays = true })},
		{"--requester-pays=false wins", "--requester-pays=false b /m -o requester_pays", objBase(nil)},
		{"use_cache", "b /m -o use_cache=/var/cache/s3", objBase(func(w *objCfg) { w.CacheDir = "/var/cache/s3" })},
		{"use_cache empty", "b /m -o use_cache=", objBase(nil)},
		{"--cache-dir wins over use_cache", "--cache-dir /c b /m -o use_cache=/d", objBase(func(w *objCfg) { w.CacheDir = "/c" })},
		{"multipart_size in MiB", "b /m -o multipart_size=64", objBase(func(w *objCfg) { w.PartSize = 64 << 20 })},
		{"parallel_count", "b /m -o parallel_count=3", objBase(func(w *objCfg) { w.Concurrency = 3 })},
		{"retries", "b /m -o retries=2", objBase(func(w *objCfg) { w.Attempts = 2 })},
		{"retries=0 is one attempt", "b /m -o retries=0", objBase(func(w *objCfg) { w.Attempts = 1 })},
		{"ensure_diskfree in MiB", "b /m -o ensure_diskfree=1024", objBase(func(w *objCfg) { w.DiskFree = 1 << 30 })},
		{"max_stat_cache_size=0 turns the cache off", "b /m -o max_stat_cache_size=0", objBase(func(w *objCfg) { w.TTL = 0 })},
		{"max_stat_cache_size other", "b /m -o max_stat_cache_size=100000", objBase(nil)},
		{"--stat-cache-ttl wins over max_stat_cache_size=0", "--stat-cache-ttl 1s b /m -o max_stat_cache_size=0", objBase(func(w *objCfg) { w.TTL = time.Second })},
		{"dbglevel=dbg", "b /m -o dbglevel=dbg", objBase(func(w *objCfg) { w.LogLevel = slog.LevelDebug })},
		{"dbglevel=crit", "b /m -o dbglevel=crit", objBase(func(w *objCfg) { w.LogLevel = slog.LevelError })},
		{"dbglevel=warn", "b /m -o dbglevel=warn", objBase(func(w *objCfg) { w.LogLevel = slog.LevelWarn })},
		{"--log-level wins over dbglevel", "--log-level info b /m -o dbglevel=debug", objBase(nil)},
		{"enable_noobj_cache still maps", "b /m -o enable_noobj_cache", objBase(nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseArgs(strings.Fields(tt.args), env)
			if err != nil {
				t.Fatalf("parseArgs(%q): %v", tt.args, err)
			}
			if got := objSummary(cfg); got != tt.want {
				t.Errorf("parseArgs(%q)\n got %+v\nwant %+v", tt.args, got, tt.want)
			}
			if len(cfg.Warnings) > 0 {
				t.Errorf("parseArgs(%q) warns %q: the option should be honoured", tt.args, cfg.Warnings)
			}
		})
	}
}

func TestParseArgsS3fsObjectOptionErrors(t *testing.T) {
	tests := []struct{ args, want string }{
		{"b /m -o storage_class=cheap", "storage_class=cheap: not an S3 storage class"},
		{"b /m -o storage_class", `"storage_class" needs a value`},
		{"--storage-class fast b /m", "--storage-class"},
		{"b /m -o default_acl=everyone", "default_acl=everyone: not a canned ACL"},
		{"--acl x b /m", "--acl"},
		{"b /m -o use_sse=kmsid:", "empty KMS key id"},
		{"b /m -o use_sse=custom:", "empty key file"},
		{"b /m -o use_sse=custom", "AWSSSECKEYS"},
		{"b /m -o load_sse_c=/k", "load_sse_c"},
		{"--sse x b /m", "--sse"},
		{"--sse c b /m", "--sse-c-key-file"},
		{"--sse s3 --sse-kms-key-id k b /m", "contradicts"},
		{"--sse-kms-key-id k --sse-c-key-file f b /m", "exclude each other"},
		{"b /m -o multipart_size=4", "multipart_size=4: want a whole number from 5 to 5120"},
		{"b /m -o multipart_size=ten", "multipart_size=ten"},
		{"b /m -o parallel_count=0", "parallel_count=0"},
		{"b /m -o retries=-1", "retries=-1"},
		{"b /m -o retries", `"retries" needs a value`},
		{"b /m -o ensure_diskfree=lots", "ensure_diskfree=lots"},
		{"b /m -o max_stat_cache_size=-5", "max_stat_cache_size=-5"},
		{"b /m -o dbglevel=loud", "dbglevel=loud"},
		{"b /m -o requester_pays=maybe", "requester_pays=maybe"},
	}
	for _, tt := range tests {
		_, err := parseArgs(strings.Fields(tt.args), testEnv(nil))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseArgs(%q) = %v, want an error containing %q", tt.args, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("parseArgs(%q): error of more than one line: %q", tt.args, err)
		}
	}
}

func TestEncryptionKeyFile(t *testing.T) {
	dir := t.TempDir()
	raw := "0123456789abcdef0123456789abcdef" // 32 bytes: the raw key
	b64 := base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ok := []struct {
		name, body, want string
	}{
		{"raw", raw + "\n", raw},
		{"base64 with comments", "# current key\n\n  " + b64 + "  \n", "fedcba9876543210fedcba9876543210"},
	}
	for _, tt := range ok {
		enc, err := encryption(&Config{SSE: s3backend.SSEC, SSECKeyFile: write(tt.name, tt.body, 0o600)})
		if err != nil || string(enc.CustomerKey) != tt.want || enc.Mode != s3backend.SSEC {
			t.Errorf("%s: %+v %v", tt.name, enc, err)
		}
	}
	bad := []struct {
		name, body string
		mode       os.FileMode
		want       string
	}{
		{"readable by others", raw, 0o644, "chmod 600"},
		{"empty", "# nothing\n", 0o600, "no key"},
		{"short", "short", 0o600, "5 bytes"},
		{"not base64", strings.Repeat("!", 40), 0o600, "not base64"},
		{"base64 of 30 bytes", base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcd")), 0o600, "30 bytes"},
		{"key history", raw + "\n" + b64 + "\n", 0o600, "2 keys"},
	}
	for _, tt := range bad {
		_, err := encryption(&Config{SSE: s3backend.SSEC, SSECKeyFile: write(tt.name, tt.body, tt.mode)})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
	if _, err := encryption(&Config{SSE: s3backend.SSEC, SSECKeyFile: filepath.Join(dir, "missing")}); err == nil {
		t.Error("missing key file accepted")
	}
	enc, err := encryption(&Config{SSE: s3backend.SSEC, sseCKeys: raw})
	if err != nil || string(enc.CustomerKey) != raw {
		t.Errorf("AWSSSECKEYS: %+v %v", enc, err)
	}
	enc, err = encryption(&Config{SSE: s3backend.SSEKMS, SSEKMSKeyID: "k"})
	if err != nil || enc.Mode != s3backend.SSEKMS || enc.KMSKeyID != "k" {
		t.Errorf("SSE-KMS: %+v %v", enc, err)
	}
}

func TestStagingSizeForEnsureDiskFree(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	free := freeBytes(dir, log)
	if free <= 2<<20 {
		t.Skipf("only %d bytes free in %s", free, dir)
	}
	for _, tt := range []struct {
		name         string
		reserve, set int64
		want         int64
	}{
		{"no reserve: fs's default", 0, 0, 0},
		{"--staging-size wins", 1 << 20, 12345, 12345},
		{"small reserve: half the free space", 1 << 20, 0, free / 2},
	} {
		got, err := stagingSizeFor(&Config{EnsureDiskFree: tt.reserve, StagingSize: tt.set}, dir, log)
		// The free space moves with other writers; allow for that.
		if err != nil || got < tt.want-(64<<20) || got > tt.want+(64<<20) {
			t.Errorf("%s: %d %v, want about %d", tt.name, got, err, tt.want)
		}
	}
	if _, err := stagingSizeFor(&Config{EnsureDiskFree: free + 1<<40}, dir, log); err == nil || !strings.Contains(err.Error(), "free where files are staged") {
		t.Errorf("reserve above the free space: %v", err)
	}
}

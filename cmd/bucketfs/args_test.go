package main

import (
	"errors"
	"github.com/novitalabs/bucketfs/s3backend"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

func testEnv(vars map[string]string) sysEnv {
	return sysEnv{
		Getenv:    func(k string) string { return vars[k] },
		UID:       1000,
		GID:       1000,
		Home:      "/home/u",
		EtcPasswd: "/etc/passwd-s3fs",
		Cwd:       "/work",
	}
}

// wantCfg is the subset of Config the table tests compare.
type wantCfg struct {
	Bucket, Prefix, Mountpoint string
	Foreground                 bool
	Endpoint, Region           string
	PathStyle, Insecure        bool
	ReadOnly, AllowOther       bool
	NonEmpty                   bool
	PasswdFile, Profile        string
	TTL, NegTTL                time.Duration
	UID, GID                   uint32
	FileMode, DirMode          uint32
	Metadata                   string
	// Overrides and the root's mode; -1 when unset.
	OvUID, OvGID, OvUmask, RootMode int64
}

func optU32(p *uint32) int64 {
	if p == nil {
		return -1
	}
	return int64(*p)
}

func summarize(c *Config) wantCfg {
	return wantCfg{
		Bucket: c.Bucket, Prefix: c.Prefix, Mountpoint: c.Mountpoint, Foreground: c.Foreground,
		Endpoint: c.Endpoint, Region: c.Region, PathStyle: c.PathStyle, Insecure: c.InsecureSkipVerify,
		ReadOnly: c.ReadOnly, AllowOther: c.AllowOther, NonEmpty: c.NonEmpty,
		PasswdFile: c.PasswdFile, Profile: c.Profile, TTL: c.StatCacheTTL, NegTTL: c.NegativeTTL,
		UID: c.UID, GID: c.GID, FileMode: c.FileMode, DirMode: c.DirMode, Metadata: c.Metadata,
		OvUID: optU32(c.Override.UID), OvGID: optU32(c.Override.GID), OvUmask: optU32(c.Override.Umask),
		RootMode: optU32(c.RootMode),
	}
}

// base is what "bucketfs b /mnt/x" gives with testEnv.
func base(mod func(*wantCfg)) wantCfg {
	w := wantCfg{Bucket: "b", Mountpoint: "/mnt/x", TTL: 5 * time.Second, UID: 1000, GID: 1000, FileMode: 0o644, DirMode: 0o755,
		Metadata: "full", OvUID: -1, OvGID: -1, OvUmask: -1, RootMode: -1}
	if mod != nil {
		mod(&w)
	}
	return w
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name string
		args string
		want wantCfg
	}{
		{"minimal", "b /mnt/x", base(nil)},
		{"relative mountpoint", "b mnt", base(func(w *wantCfg) { w.Mountpoint = "/work/mnt" })},
		{"prefix", "b:data/sub /mnt/x", base(func(w *wantCfg) { w.Prefix = "data/sub/" })},
		{"s3fs prefix with slash", "b:/data/ /mnt/x", base(func(w *wantCfg) { w.Prefix = "data/" })},
		{"empty prefix", "b: /mnt/x", base(nil)},
		{"foreground short", "-f b /mnt/x", base(func(w *wantCfg) { w.Foreground = true })},
		{"foreground long after positionals", "b /mnt/x --foreground", base(func(w *wantCfg) { w.Foreground = true })},
		{"endpoint implies path style", "--endpoint http://127.0.0.1:9000/ b /mnt/x",
			base(func(w *wantCfg) { w.Endpoint = "http://127.0.0.1:9000"; w.PathStyle = true })},
		{"endpoint without path style", "--endpoint http://h:9000 --path-style=false b /mnt/x",
			base(func(w *wantCfg) { w.Endpoint = "http://h:9000" })},
		{"path style alone", "--path-style b /mnt/x", base(func(w *wantCfg) { w.PathStyle = true })},
		{"s3fs sandbox command", "b /mnt/dir -o allow_other,endpoint=us-west-2",
			base(func(w *wantCfg) {
				w.Mountpoint = "/mnt/dir"
				w.AllowOther = true
				w.Region = "us-west-2"
				w.RootMode = 0o777
			})},
		{"s3fs minio command", "b /mnt/x -o allow_other,endpoint=auto,url=http://minio:9000/,use_path_request_style",
			base(func(w *wantCfg) {
				w.AllowOther, w.Region, w.Endpoint, w.PathStyle = true, "auto", "http://minio:9000", true
				w.RootMode = 0o777
			})},
		{"url of AWS is AWS", "b /mnt/x -o url=https://s3.amazonaws.com", base(nil)},
		{"regional AWS url gives region", "b /mnt/x -o url=https://s3.eu-west-1.amazonaws.com/",
			base(func(w *wantCfg) { w.Region = "eu-west-1" })},
		{"endpoint= wins over url region", "b /mnt/x -o endpoint=us-east-2,url=https://s3-eu-west-1.amazonaws.com",
			base(func(w *wantCfg) { w.Region = "us-east-2" })},
		{"flag wins over -o url", "--endpoint http://a:1 b /mnt/x -o url=http://b:2",
			base(func(w *wantCfg) { w.Endpoint = "http://a:1"; w.PathStyle = true })},
		{"region flag", "--region eu-central-1 b /mnt/x -o endpoint=us-east-1",
			base(func(w *wantCfg) { w.Region = "eu-central-1" })},
		{"repeatable -o and attached form", "b /mnt/x -o ro -ononempty",
			base(func(w *wantCfg) { w.ReadOnly = true; w.NonEmpty = true })},
		{"read-only flag", "--read-only b /mnt/x", base(func(w *wantCfg) { w.ReadOnly = true })},
		{"explicit rw flag wins over -o ro", "--read-only=false b /mnt/x -o ro", base(nil)},
		// -o uid/gid/umask override every object; the flags stay defaults.
		{"umask", "b /mnt/x -o umask=022", base(func(w *wantCfg) { w.OvUmask = 0o022 })},
		{"umask beside explicit modes", "--file-mode 0640 b /mnt/x -o umask=002",
			base(func(w *wantCfg) { w.FileMode, w.OvUmask = 0o640, 0o002 })},
		{"uid gid options", "b /mnt/x -o uid=0,gid=33", base(func(w *wantCfg) { w.OvUID, w.OvGID = 0, 33 })},
		{"uid flag is the default, -o uid the override", "--uid 7 b /mnt/x -o uid=0",
			base(func(w *wantCfg) { w.UID, w.OvUID = 7, 0 })},
		{"mp_umask", "b /mnt/x -o allow_other,mp_umask=022", base(func(w *wantCfg) { w.AllowOther, w.RootMode = true, 0o755 })},
		{"mp_umask without allow_other", "b /mnt/x -o mp_umask=077", base(nil)},
		{"modes", "--file-mode 600 --dir-mode 0o700 b /mnt/x", base(func(w *wantCfg) { w.FileMode, w.DirMode = 0o600, 0o700 })},
		{"listing metadata", "--metadata listing b /mnt/x", base(func(w *wantCfg) { w.Metadata = "listing" })},
		{"negative ttl flag", "--negative-ttl 2s b /mnt/x", base(func(w *wantCfg) { w.NegTTL = 2 * time.Second })},
		{"enable_noobj_cache", "--stat-cache-ttl 9s b /mnt/x -o enable_noobj_cache",
			base(func(w *wantCfg) { w.TTL, w.NegTTL = 9*time.Second, 9*time.Second })},
		{"negative ttl flag wins", "--negative-ttl 1s b /mnt/x -o enable_noobj_cache", base(func(w *wantCfg) { w.NegTTL = time.Second })},
		{"disable_noobj_cache", "b /mnt/x -o disable_noobj_cache", base(nil)},
		{"ttl flag", "--stat-cache-ttl 1m b /mnt/x", base(func(w *wantCfg) { w.TTL = time.Minute })},
		{"stat_cache_expire seconds", "b /mnt/x -o stat_cache_expire=30", base(func(w *wantCfg) { w.TTL = 30 * time.Second })},
		{"stat_cache_expire under flag", "--stat-cache-ttl 1s b /mnt/x -o stat_cache_expire=30", base(func(w *wantCfg) { w.TTL = time.Second })},
		{"passwd_file relative", "b /mnt/x -o passwd_file=creds", base(func(w *wantCfg) { w.PasswdFile = "/work/creds" })},
		{"profile", "--profile dev b /mnt/x", base(func(w *wantCfg) { w.Profile = "dev" })},
		{"profile option", "b /mnt/x -o profile=p1", base(func(w *wantCfg) { w.Profile = "p1" })},
		{"insecure", "b /mnt/x -o no_check_certificate", base(func(w *wantCfg) { w.Insecure = true })},
		{"fstab options", "b /mnt/x -o rw,_netdev,noatime,defaults,nosuid,nodev,user",
			base(nil)},
		{"allow-other flag", "--allow-other b /mnt/x", base(func(w *wantCfg) { w.AllowOther, w.RootMode = true, 0o777 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseArgs(strings.Fields(tt.args), testEnv(nil))
			if err != nil {
				t.Fatalf("parseArgs(%q): %v", tt.args, err)
			}
			if got := summarize(cfg); got != tt.want {
				t.Errorf("parseArgs(%q)\n got %+v\nwant %+v", tt.args, got, tt.want)
			}
		})
	}
}

func TestParseArgsDefaults(t *testing.T) {
	cfg, err := parseArgs([]string{"b", "/m"}, testEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RecoveryDir != "/home/u/.local/share/bucketfs/recovery" {
		t.Errorf("RecoveryDir = %q", cfg.RecoveryDir)
	}
	if cfg.StagingDir != "/home/u/.local/state/bucketfs/staging" || cfg.LogFile != "" {
		t.Errorf("StagingDir %q LogFile %q, want the XDG state directory and no log file", cfg.StagingDir, cfg.LogFile)
	}
	if cfg.UploadTimeout != defaultUploadTimeout || cfg.ShutdownTimeout != defaultShutdownTimeout {
		t.Errorf("timeouts %v %v", cfg.UploadTimeout, cfg.ShutdownTimeout)
	}
	if cfg.LogLevel != slog.LevelInfo || cfg.Warnings != nil {
		t.Errorf("LogLevel %v Warnings %v", cfg.LogLevel, cfg.Warnings)
	}

	root := testEnv(map[string]string{"XDG_DATA_HOME": "/xdg"})
	root.UID = 0
	cfg, _ = parseArgs([]string{"b", "/m"}, root)
	if cfg.RecoveryDir != "/var/lib/bucketfs/recovery" || cfg.UID != 0 {
		t.Errorf("root: RecoveryDir %q UID %d", cfg.RecoveryDir, cfg.UID)
	}
	root.UID = 5
	cfg, _ = parseArgs([]string{"b", "/m"}, root)
	if cfg.RecoveryDir != "/xdg/bucketfs/recovery" {
		t.Errorf("XDG: RecoveryDir %q", cfg.RecoveryDir)
	}

	if cfg.UploadChecksum != s3backend.ChecksumCRC32C {
		t.Errorf("default UploadChecksum %q", cfg.UploadChecksum)
	}
	cfg, err = parseArgs(strings.Fields("--staging-dir st --recovery-dir /r --log-file l --log-level debug --upload-timeout 1m --shutdown-timeout 5s --debug-fuse --upload-checksum SHA256 b /m"), testEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StagingDir != "/work/st" || cfg.RecoveryDir != "/r" || cfg.LogFile != "/work/l" ||
		cfg.LogLevel != slog.LevelDebug || cfg.UploadTimeout != time.Minute ||
		cfg.ShutdownTimeout != 5*time.Second || !cfg.DebugFUSE || cfg.UploadChecksum != s3backend.ChecksumSHA256 {
		t.Errorf("got %+v", cfg)
	}
}

func TestParseArgsWarnings(t *testing.T) {
	cfg, err := parseArgs(strings.Fields("b /m -o use_cache=/tmp,del_cache,retries=5,iam_role=auto,dbglevel=info -o no_check_certificate"), testEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"ignoring s3fs options that have no meaning for bucketfs: del_cache, iam_role=auto",
		"no_check_certificate: TLS certificates of the endpoint are NOT verified",
	}
	if !reflect.DeepEqual(cfg.Warnings, want) {
		t.Errorf("Warnings = %q, want %q", cfg.Warnings, want)
	}
	if !cfg.useSDKChain {
		t.Error("iam_role should select the SDK chain")
	}
}

func TestParseArgsErrors(t *testing.T) {
	tests := []struct {
		args, want string
	}{
		{"", "expected BUCKET[:PREFIX] and MOUNTPOINT, got 0"},
		{"b", "got 1 argument"},
		{"b /m extra", "got 3 argument"},
		{"--bogus b /m", "unknown flag: --bogus"},
		{"b /m -o frobnicate", `unknown mount option "frobnicate"`},
		{"b /m -o rw=1", `unknown mount option "rw=1"`},
		{"b /m -o uid=bob", "uid=bob: not a numeric id"},
		{"b /m -o umask=999", "umask=999"},
		{"b /m -o url=ftp://x", "not an http:// or https:// URL"},
		{"b /m -o url=", `"url" needs a value`},
		{"b /m -o endpoint=http://x:9000", "give the URL with url="},
		{"--endpoint localhost:9000 b /m", "--endpoint"},
		{"--file-mode 9 b /m", "file-mode"},
		{"--log-level loud b /m", "--log-level"},
		{"--metadata some b /m", "--metadata"},
		{":p /m", "empty bucket name"},
		{"b:a//c /m", "invalid prefix"},
		{"b:../x /m", "invalid prefix"},
		{"b/c /m", "invalid bucket name"},
		{"--upload-timeout 0 b /m", "must be positive"},
		{"--upload-checksum md5 b /m", "--upload-checksum"},
		{"b /m -o stat_cache_expire=soon", "stat_cache_expire=soon"},
	}
	for _, tt := range tests {
		_, err := parseArgs(strings.Fields(tt.args), testEnv(nil))
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("parseArgs(%q) = %v, want a usage error", tt.args, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseArgs(%q) = %q, want it to contain %q", tt.args, err, tt.want)
		}
	}
}

func TestParseArgsHelpVersion(t *testing.T) {
	for args, want := range map[string]error{"--help": errHelp, "-h": errHelp, "b /m --help": errHelp, "--version": errVersion} {
		if _, err := parseArgs(strings.Fields(args), testEnv(nil)); !errors.Is(err, want) {
			t.Errorf("parseArgs(%q) = %v, want %v", args, err, want)
		}
	}
	var sb strings.Builder
	usage(&sb, testEnv(nil))
	for _, s := range []string{"--foreground", "--endpoint", "--stat-cache-ttl", "--staging-dir", "--recovery-dir",
		"--upload-timeout", "--debug-fuse", "--no-xattr", "use_path_request_style", "/var/log/bucketfs.log"} {
		if !strings.Contains(sb.String(), s) {
			t.Errorf("usage lacks %q", s)
		}
	}
	if v := versionString(); !strings.HasPrefix(v, "bucketfs dev") {
		t.Errorf("versionString() = %q", v)
	}
}

func TestNormalizeEndpoint(t *testing.T) {
	tests := []struct {
		in, ep, region string
		bad            bool
	}{
		{in: "http://127.0.0.1:9000", ep: "http://127.0.0.1:9000"},
		{in: "http://127.0.0.1:9000///", ep: "http://127.0.0.1:9000"},
		{in: " https://r2.example.com/ ", ep: "https://r2.example.com"},
		{in: "https://gw.example.com/s3/", ep: "https://gw.example.com/s3"},
		{in: "https://s3.amazonaws.com", ep: ""},
		{in: "http://S3.AmazonAWS.com/", ep: ""},
		{in: "https://s3.us-west-2.amazonaws.com", region: "us-west-2"},
		{in: "https://s3-ap-southeast-1.amazonaws.com", region: "ap-southeast-1"},
		{in: "https://s3.dualstack.us-east-1.amazonaws.com", ep: "https://s3.dualstack.us-east-1.amazonaws.com"},
		{in: "https://s3.amazonaws.com:443", ep: "https://s3.amazonaws.com:443"},
		{in: "127.0.0.1:9000", bad: true},
		{in: "ftp://h", bad: true},
		{in: "http://", bad: true},
		{in: "http://u:p@h", bad: true},
		{in: "http://h?x=1", bad: true},
		{in: "http://h:0", bad: true},
		{in: "http://h:99999", bad: true},
	}
	for _, tt := range tests {
		ep, region, err := normalizeEndpoint(tt.in)
		if (err != nil) != tt.bad {
			t.Errorf("normalizeEndpoint(%q) error %v, want bad=%v", tt.in, err, tt.bad)
			continue
		}
		if !tt.bad && (ep != tt.ep || region != tt.region) {
			t.Errorf("normalizeEndpoint(%q) = %q, %q; want %q, %q", tt.in, ep, region, tt.ep, tt.region)
		}
	}
}

func TestParseMountOptionsLastWins(t *testing.T) {
	mo, err := parseMountOptions([]string{"url=http://a:1,endpoint=r1", ",, endpoint=r2 ,", "url=http://b:2"})
	if err != nil {
		t.Fatal(err)
	}
	if mo.Endpoint != "http://b:2" || mo.Region != "r2" {
		t.Errorf("got %+v", mo)
	}
}

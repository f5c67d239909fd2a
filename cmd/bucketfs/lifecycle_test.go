package main

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestParseArgsSandboxFlags(t *testing.T) {
	cfg, err := parseArgs(strings.Fields("--ready-file r --metrics-addr 127.0.0.1:9100 --log-format JSON --insecure-skip-verify b /m"), testEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ReadyFile != "/work/r" || cfg.MetricsAddr != "127.0.0.1:9100" || cfg.LogFormat != "json" || !cfg.InsecureSkipVerify {
		t.Errorf("got ReadyFile %q MetricsAddr %q LogFormat %q Insecure %v", cfg.ReadyFile, cfg.MetricsAddr, cfg.LogFormat, cfg.InsecureSkipVerify)
	}
	if len(cfg.Warnings) != 1 || !strings.HasPrefix(cfg.Warnings[0], "--insecure-skip-verify: TLS certificates") {
		t.Errorf("warnings %q", cfg.Warnings)
	}

	// Secure and quiet by default.
	cfg, err = parseArgs([]string{"b", "/m"}, testEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.InsecureSkipVerify || cfg.AllowOther || cfg.LogFormat != "text" || cfg.MetricsAddr != "" || cfg.ReadyFile != "" {
		t.Errorf("defaults: %+v", cfg)
	}
	// An explicit --insecure-skip-verify=false wins over the -o option.
	cfg, err = parseArgs(strings.Fields("--insecure-skip-verify=false b /m -o no_check_certificate"), testEnv(nil))
	if err != nil || cfg.InsecureSkipVerify {
		t.Errorf("--insecure-skip-verify=false under no_check_certificate: %v %v", cfg.InsecureSkipVerify, err)
	}

	for _, bad := range []string{"--log-format xml b /m", "--metrics-addr 9100 b /m"} {
		var ue *usageError
		if _, err := parseArgs(strings.Fields(bad), testEnv(nil)); !errors.As(err, &ue) {
			t.Errorf("parseArgs(%q) = %v, want a usage error", bad, err)
		}
	}
}

func TestMountHelperArgs(t *testing.T) {
	tests := []struct {
		args string
		want string
		fake bool
	}{
		// What mount(8) passes for "mount -t fuse.bucketfs b /mnt/x -o ...".
		{"b /mnt/x -o rw,url=http://h:9000,use_path_request_style -t fuse.bucketfs",
			"b /mnt/x -o rw,url=http://h:9000,use_path_request_style", false},
		{"b:pre /mnt/x -n -v -orw,allow_other", "b:pre /mnt/x -o rw,allow_other", false},
		{"bucketfs#b /mnt/x -sfn", "b /mnt/x", true},
		// bucketfs's own flags as options; fstab noise dropped.
		{"b /mnt/x -o rw,log_file=/var/log/b.log,metrics_addr=127.0.0.1:9100,debug_fuse,x-systemd.automount,comment=foo,user=alice,_netdev",
			"--log-file=/var/log/b.log --metrics-addr=127.0.0.1:9100 --debug-fuse b /mnt/x -o rw,_netdev", false},
		{"-o ro,shutdown_timeout=30s b /mnt/x", "--shutdown-timeout=30s b /mnt/x -o ro", false},
	}
	for _, tt := range tests {
		got, fake, err := mountHelperArgs(strings.Fields(tt.args))
		if err != nil {
			t.Errorf("mountHelperArgs(%q): %v", tt.args, err)
			continue
		}
		if strings.Join(got, " ") != tt.want || fake != tt.fake {
			t.Errorf("mountHelperArgs(%q)\n got %q fake=%v\nwant %q fake=%v", tt.args, strings.Join(got, " "), fake, tt.want, tt.fake)
		}
		// What comes out must parse.
		if _, err := parseArgs(got, testEnv(nil)); err != nil {
			t.Errorf("parseArgs(%q): %v", got, err)
		}
	}
	for _, bad := range []string{"b", "b /m /n", "b /m -o", "b /m -N 1", "b /m -x", "b /m -o log_file", "b /m -o debug_fuse=1"} {
		if _, _, err := mountHelperArgs(strings.Fields(bad)); err == nil {
			t.Errorf("mountHelperArgs(%q) accepted", bad)
		}
	}
	for name, want := range map[string]bool{
		"/sbin/mount.fuse.bucketfs": true, "mount.bucketfs": true, "/usr/local/bin/bucketfs": false, "mount.fuse": false,
	} {
		if isMountHelper(name) != want {
			t.Errorf("isMountHelper(%q) = %v", name, !want)
		}
	}
}

func TestReadyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ready")
	if err := os.WriteFile(path, []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeReadyFile(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("ready file %q, %v", b, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("ready file mode %v", st.Mode())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
	removeReadyFile(path, slog.Default())
	removeReadyFile(path, slog.Default()) // already gone: fine
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("ready file not removed: %v", err)
	}
	if err := writeReadyFile(filepath.Join(dir, "missing", "ready")); err == nil {
		t.Error("ready file in a missing directory: no error")
	}
}

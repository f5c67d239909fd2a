package main

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func FuzzParseMountOptions(f *testing.F) {
	for _, s := range []string{
		"allow_other,endpoint=us-east-1",
		"url=http://127.0.0.1:9000/,use_path_request_style,passwd_file=/root/.passwd-s3fs",
		"ro,uid=0,gid=0,umask=022,nonempty",
		"use_cache=/tmp,del_cache,stat_cache_expire=30,iam_role=auto",
		"rw,_netdev,defaults,,  noatime",
		"url=https://s3.eu-west-1.amazonaws.com,no_check_certificate",
		"umask=,uid=-1,url=ftp://x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		mo, err := parseMountOptions([]string{s})
		// Splitting the same items over several -o must mean the same.
		mo2, err2 := parseMountOptions(strings.Split(s, ","))
		if (err == nil) != (err2 == nil) || !reflect.DeepEqual(mo, mo2) {
			t.Fatalf("one -o and split -o differ: %+v %v / %+v %v", mo, err, mo2, err2)
		}
		if err != nil {
			if strings.Contains(err.Error(), "\n") && !strings.Contains(s, "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if mo.Endpoint != "" {
			u, err := url.Parse(mo.Endpoint)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.HasSuffix(mo.Endpoint, "/") {
				t.Fatalf("bad endpoint %q accepted", mo.Endpoint)
			}
			if _, _, err := normalizeEndpoint(mo.Endpoint); err != nil {
				t.Fatalf("normalised endpoint %q does not normalise again: %v", mo.Endpoint, err)
			}
		}
		if strings.Contains(mo.Region, "/") {
			t.Fatalf("region %q", mo.Region)
		}
		if mo.Umask != nil && *mo.Umask > 0o777 {
			t.Fatalf("umask %o", *mo.Umask)
		}
		if mo.StatTTL != nil && *mo.StatTTL < 0 {
			t.Fatalf("negative ttl %v", *mo.StatTTL)
		}
	})
}

// use_xattr is honoured, so it draws no "ignored" warning.
func TestUseXattrAccepted(t *testing.T) {
	mo, err := parseMountOptions([]string{"allow_other,use_xattr"})
	if err != nil {
		t.Fatal(err)
	}
	if len(mo.Ignored) != 0 {
		t.Fatalf("use_xattr listed as ignored: %q", mo.Ignored)
	}
	if !mo.UseXattr {
		t.Fatal("use_xattr not recorded")
	}
}

// Extended attributes are on with --metadata full, off with listing
// unless --xattr or -o use_xattr asks for them, and --no-xattr wins.
func TestXattrDefaultsByMetadataMode(t *testing.T) {
	for _, tt := range []struct {
		args    string
		noXattr bool
	}{
		{"b /mnt", false},
		{"--metadata full b /mnt", false},
		{"--no-xattr b /mnt", true},
		{"--metadata listing b /mnt", true},
		{"--metadata listing --xattr b /mnt", false},
		{"--metadata listing -o use_xattr b /mnt", false},
		{"--metadata listing -o use_xattr --no-xattr b /mnt", true},
	} {
		cfg, err := parseArgs(strings.Fields(tt.args), testEnv(nil))
		if err != nil {
			t.Fatalf("parseArgs(%q): %v", tt.args, err)
		}
		if cfg.NoXattr != tt.noXattr {
			t.Errorf("parseArgs(%q): NoXattr %v, want %v", tt.args, cfg.NoXattr, tt.noXattr)
		}
	}
	if _, err := parseArgs(strings.Fields("--xattr --no-xattr b /mnt"), testEnv(nil)); err == nil {
		t.Error("--xattr --no-xattr accepted")
	}
}

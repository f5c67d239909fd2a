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

// use_xattr is honoured (xattrs are always on), so it draws no "ignored"
// warning.
func TestUseXattrAccepted(t *testing.T) {
	mo, err := parseMountOptions([]string{"allow_other,use_xattr"})
	if err != nil {
		t.Fatal(err)
	}
	if len(mo.Ignored) != 0 {
		t.Fatalf("use_xattr listed as ignored: %q", mo.Ignored)
	}
}

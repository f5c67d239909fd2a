package main

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestParsePasswd(t *testing.T) {
	tests := []struct {
		name, data, bucket string
		want               s3fsKey
		found              bool
	}{
		{"default line", "AKIA:SECRET\n", "b", s3fsKey{AccessKey: "AKIA", Secret: "SECRET"}, true},
		{"no newline, CRLF and spaces", "  AKIA:SECRET\r", "b", s3fsKey{AccessKey: "AKIA", Secret: "SECRET"}, true},
		{"bucket line wins", "DEF:dsecret\nb:BK:bsecret\n", "b", s3fsKey{AccessKey: "BK", Secret: "bsecret"}, true},
		{"bucket line wins even after", "b:BK:bsecret\nDEF:dsecret\n", "b", s3fsKey{AccessKey: "BK", Secret: "bsecret"}, true},
		{"other bucket falls back to default", "other:OK:os\nDEF:ds\n", "b", s3fsKey{AccessKey: "DEF", Secret: "ds"}, true},
		{"only other bucket", "other:OK:os\n", "b", s3fsKey{}, false},
		{"comments and blanks", "# a comment: x:y\n\n   \n#b:X:Y\nK:S\n", "b", s3fsKey{AccessKey: "K", Secret: "S"}, true},
		{"first default wins", "K1:S1\nK2:S2\n", "b", s3fsKey{AccessKey: "K1", Secret: "S1"}, true},
		{"secret with slash and plus", "K:ab/cd+ef=\n", "b", s3fsKey{AccessKey: "K", Secret: "ab/cd+ef="}, true},
		{"aws credential file form", "AWSAccessKeyId=K\nAWSSecretKey=S\nAWSSessionToken=T\n", "b",
			s3fsKey{AccessKey: "K", Secret: "S", SessionToken: "T"}, true},
		{"empty file", "", "b", s3fsKey{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := parsePasswd([]byte(tt.data))
			if err != nil {
				t.Fatalf("parsePasswd: %v", err)
			}
			got, found := p.lookup(tt.bucket)
			if found != tt.found || got != tt.want {
				t.Errorf("lookup(%q) = %+v, %v; want %+v, %v", tt.bucket, got, found, tt.want, tt.found)
			}
		})
	}
}

func TestParsePasswdErrorsHideSecrets(t *testing.T) {
	tests := []struct{ data, want string }{
		{"justakey\n", "line 1: want ACCESS:SECRET"},
		{"# c\nK:wJalrXUtnFEMI:x:y\n", "line 2: want ACCESS:SECRET"},
		{"K:\n", "line 1: empty field"},
		{":wJalrXUtnFEMI\n", "line 1: empty field"},
		{":K:wJalrXUtnFEMI\n", "line 1: empty field"},
		{"K:wJalr XUtnFEMI\n", "line 1: whitespace or control character"},
		{"AWSSecretKey=wJalrXUtnFEMI\n", "AWSAccessKeyId= and AWSSecretKey= must both be given"},
		{"Foo=wJalrXUtnFEMI\n", "line 1: unknown key"},
	}
	for _, tt := range tests {
		_, err := parsePasswd([]byte(tt.data))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parsePasswd(%q) = %v, want %q", tt.data, err, tt.want)
			continue
		}
		if strings.Contains(err.Error(), "wJalr") {
			t.Errorf("error %q leaks the secret", err)
		}
	}
}

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is subject to umask
		t.Fatal(err)
	}
}

func TestReadPasswdFilePermissions(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		mode       os.FileMode
		systemWide bool
		ok         bool
	}{
		{0o600, false, true},
		{0o400, false, true},
		{0o640, false, false},
		{0o604, false, false},
		{0o640, true, true},
		{0o644, true, false},
		{0o601, true, false},
	}
	for _, tt := range tests {
		p := filepath.Join(dir, "pw")
		writeFile(t, p, "K:S\n", tt.mode)
		_, err := readPasswdFile(p, tt.systemWide)
		if (err == nil) != tt.ok {
			t.Errorf("mode %04o systemWide=%v: err = %v, want ok=%v", tt.mode, tt.systemWide, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("error %q should say how to fix it", err)
		}
	}
	if _, err := readPasswdFile(filepath.Join(dir, "missing"), false); !errors.Is(err, errPasswdNotFound) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := readPasswdFile(dir, false); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	writeFile(t, filepath.Join(dir, "bad"), "K:S\nnonsense-wJalrXUtnFEMI\n", 0o600)
	if _, err := readPasswdFile(filepath.Join(dir, "bad"), false); err == nil ||
		!strings.Contains(err.Error(), "bad: line 2") || strings.Contains(err.Error(), "wJalr") {
		t.Errorf("bad content: %v", err)
	}
}

// passwdErrorRE matches every message parsePasswd can produce: line
// numbers and fixed text only, so no byte of the file can leak.
var passwdErrorRE = regexp.MustCompile(`^(line [0-9]+: [a-zA-Z ,:()=]+|AWSAccessKeyId= and AWSSecretKey= must both be given)$`)

func FuzzParsePasswd(f *testing.F) {
	for _, s := range []string{"K:S\n", "b:K:S\n# c\n\nK2:S2\r\n", "AWSAccessKeyId=K\nAWSSecretKey=S\n", "::\n", "a:b:c:d", "=\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		p, err := parsePasswd([]byte(data))
		if err != nil {
			if !passwdErrorRE.MatchString(err.Error()) {
				t.Fatalf("error %q is not one of the fixed forms", err)
			}
			return
		}
		check := func(k s3fsKey) {
			if k.AccessKey == "" || k.Secret == "" {
				t.Fatalf("empty key or secret accepted: %+v", k)
			}
			for _, s := range []string{k.AccessKey, k.Secret, k.SessionToken} {
				if strings.ContainsAny(s, " \t\n\r\x00") {
					t.Fatalf("whitespace in %q", s)
				}
			}
		}
		if p.Default != nil {
			check(*p.Default)
		}
		for b, k := range p.PerBucket {
			if b == "" || strings.Contains(b, ":") {
				t.Fatalf("bad bucket %q", b)
			}
			check(k)
			if got, ok := p.lookup(b); !ok || got != k {
				t.Fatalf("lookup(%q) = %+v, %v", b, got, ok)
			}
		}
	})
}

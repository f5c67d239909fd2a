package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// credsFixture is a fake machine: a temp HOME, a temp "/etc/passwd-s3fs",
// and an environment.
type credsFixture struct {
	t    *testing.T
	env  sysEnv
	vars map[string]string
	home string
	etc  string
}

func newCredsFixture(t *testing.T) *credsFixture {
	root := t.TempDir()
	fx := &credsFixture{t: t, vars: map[string]string{}, home: filepath.Join(root, "home"), etc: filepath.Join(root, "etc", "passwd-s3fs")}
	fx.env = testEnv(nil)
	fx.env.Getenv = func(k string) string { return fx.vars[k] }
	fx.env.Home = fx.home
	fx.env.EtcPasswd = fx.etc
	fx.env.Cwd = root
	return fx
}

func (fx *credsFixture) selectFor(bucket string, mod func(*Config)) (credChoice, error) {
	cfg := &Config{Bucket: bucket}
	if mod != nil {
		mod(cfg)
	}
	return selectCredentials(cfg, fx.env)
}

func keyOf(t *testing.T, c credChoice) string {
	t.Helper()
	if c.Provider == nil {
		return "<chain>"
	}
	v, err := c.Provider.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return v.AccessKeyID + ":" + v.SecretAccessKey
}

func TestSelectCredentials(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(fx *credsFixture)
		mod        func(*Config)
		wantKey    string
		wantSource string
	}{
		{"nothing: full chain", nil, nil, "<chain>", "AWS SDK default chain"},
		{"home passwd file", func(fx *credsFixture) {
			writeFile(fx.t, filepath.Join(fx.home, ".passwd-s3fs"), "HK:HS\n", 0o600)
		}, nil, "HK:HS", "password file "},
		{"home before etc", func(fx *credsFixture) {
			writeFile(fx.t, filepath.Join(fx.home, ".passwd-s3fs"), "HK:HS\n", 0o600)
			writeFile(fx.t, fx.etc, "EK:ES\n", 0o640)
		}, nil, "HK:HS", "/home/.passwd-s3fs"},
		{"etc file, group-readable", func(fx *credsFixture) {
			writeFile(fx.t, fx.etc, "b:EK:ES\n", 0o640)
		}, nil, "EK:ES", "/etc/passwd-s3fs"},
		{"db home under sudo", func(fx *credsFixture) {
			fx.env.DBHome = filepath.Join(fx.home, "root")
			writeFile(fx.t, filepath.Join(fx.env.DBHome, ".passwd-s3fs"), "RK:RS\n", 0o600)
		}, nil, "RK:RS", "/root/.passwd-s3fs"},
		{"env key beats password file", func(fx *credsFixture) {
			fx.vars["AWS_ACCESS_KEY_ID"] = "envkey"
			writeFile(fx.t, filepath.Join(fx.home, ".passwd-s3fs"), "HK:HS\n", 0o600)
		}, nil, "<chain>", "AWS_ACCESS_KEY_ID in the environment"},
		{"env key pair is static", func(fx *credsFixture) {
			fx.vars["AWS_ACCESS_KEY_ID"], fx.vars["AWS_SECRET_ACCESS_KEY"] = "EK", "ES"
			writeFile(fx.t, filepath.Join(fx.home, ".passwd-s3fs"), "HK:HS\n", 0o600)
		}, nil, "EK:ES", "AWS_ACCESS_KEY_ID in the environment"},
		{"web identity uses chain", func(fx *credsFixture) {
			fx.vars["AWS_WEB_IDENTITY_TOKEN_FILE"] = "/tok"
		}, nil, "<chain>", "AWS_WEB_IDENTITY_TOKEN_FILE"},
		{"s3fs env vars", func(fx *credsFixture) {
			fx.vars["AWSACCESSKEYID"], fx.vars["AWSSECRETACCESSKEY"] = "SK", "SS"
			writeFile(fx.t, filepath.Join(fx.home, ".passwd-s3fs"), "HK:HS\n", 0o600)
		}, nil, "SK:SS", "AWSACCESSKEYID"},
		{"AWS_CREDENTIAL_FILE", func(fx *credsFixture) {
			fx.vars["AWS_CREDENTIAL_FILE"] = "cf"
			writeFile(fx.t, filepath.Join(fx.env.Cwd, "cf"), "AWSAccessKeyId=CK\nAWSSecretKey=CS\n", 0o600)
		}, nil, "CK:CS", "password file "},
		{"profile flag beats password file", func(fx *credsFixture) {
			writeFile(fx.t, filepath.Join(fx.home, ".passwd-s3fs"), "HK:HS\n", 0o600)
		}, func(c *Config) { c.Profile = "dev" }, "<chain>", "profile dev"},
		{"AWS_PROFILE", func(fx *credsFixture) { fx.vars["AWS_PROFILE"] = "p" }, nil, "<chain>", "AWS profile p (AWS_PROFILE)"},
		{"aws credentials file", func(fx *credsFixture) {
			writeFile(fx.t, filepath.Join(fx.home, ".aws", "credentials"), "[default]\naws_access_key_id = A\naws_secret_access_key = B\n", 0o600)
			writeFile(fx.t, filepath.Join(fx.home, ".passwd-s3fs"), "HK:HS\n", 0o600)
		}, nil, "<chain>", ".aws/credentials"},
		{"aws config with sso", func(fx *credsFixture) {
			writeFile(fx.t, filepath.Join(fx.home, ".aws", "config"), "[default]\nsso_session = x\n", 0o600)
		}, nil, "<chain>", ".aws/config"},
		{"aws config with only a region does not hide the password file", func(fx *credsFixture) {
			writeFile(fx.t, filepath.Join(fx.home, ".aws", "config"), "[default]\nregion = us-west-2\n", 0o600)
			writeFile(fx.t, filepath.Join(fx.home, ".passwd-s3fs"), "HK:HS\n", 0o600)
		}, nil, "HK:HS", "password file"},
		{"AWS_SHARED_CREDENTIALS_FILE", func(fx *credsFixture) {
			fx.vars["AWS_SHARED_CREDENTIALS_FILE"] = filepath.Join(fx.home, "c")
			writeFile(fx.t, filepath.Join(fx.home, "c"), "[x]\nAWS_ACCESS_KEY_ID=1\n", 0o600)
		}, nil, "<chain>", "/home/c"},
		{"iam_role skips password files", func(fx *credsFixture) {
			writeFile(fx.t, filepath.Join(fx.home, ".passwd-s3fs"), "HK:HS\n", 0o600)
		}, func(c *Config) { c.useSDKChain = true }, "<chain>", "iam_role"},
		{"bucket-specific line", func(fx *credsFixture) {
			writeFile(fx.t, filepath.Join(fx.home, ".passwd-s3fs"), "DK:DS\nother:OK:OS\nb:BK:BS\n", 0o600)
		}, nil, "BK:BS", "password file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newCredsFixture(t)
			if tt.setup != nil {
				tt.setup(fx)
			}
			c, err := fx.selectFor("b", tt.mod)
			if err != nil {
				t.Fatalf("selectCredentials: %v", err)
			}
			if got := keyOf(t, c); got != tt.wantKey {
				t.Errorf("key = %q, want %q", got, tt.wantKey)
			}
			if !strings.Contains(c.Source, tt.wantSource) {
				t.Errorf("source = %q, want it to contain %q", c.Source, tt.wantSource)
			}
		})
	}
}

func TestSelectCredentialsExplicitFile(t *testing.T) {
	fx := newCredsFixture(t)
	fx.vars["AWS_ACCESS_KEY_ID"] = "envkey" // the explicit file still wins
	p := filepath.Join(fx.home, "p")
	writeFile(t, p, "PK:PS\n", 0o600)
	c, err := fx.selectFor("b", func(c *Config) { c.PasswdFile = p })
	if err != nil || keyOf(t, c) != "PK:PS" {
		t.Fatalf("got %v, %v", c, err)
	}

	_, err = fx.selectFor("b", func(c *Config) { c.PasswdFile = filepath.Join(fx.home, "nope") })
	if err == nil || !strings.Contains(err.Error(), "password file not found") {
		t.Errorf("missing explicit file: %v", err)
	}
}

func TestSelectCredentialsRefusals(t *testing.T) {
	fx := newCredsFixture(t)
	writeFile(t, filepath.Join(fx.home, ".passwd-s3fs"), "HK:wJalrXUtnFEMI\n", 0o644)
	writeFile(t, fx.etc, "EK:ES\n", 0o600)
	_, err := fx.selectFor("b", nil)
	// A readable personal file is refused rather than skipped for the next one.
	if err == nil || !strings.Contains(err.Error(), "others may read it") || !strings.Contains(err.Error(), ".passwd-s3fs") {
		t.Fatalf("world-readable file: %v", err)
	}

	fx = newCredsFixture(t)
	writeFile(t, fx.etc, "EK:ES\n", 0o644)
	if _, err := fx.selectFor("b", nil); err == nil || !strings.Contains(err.Error(), "others may read it") {
		t.Fatalf("world-readable etc file: %v", err)
	}

	fx = newCredsFixture(t)
	writeFile(t, filepath.Join(fx.home, ".passwd-s3fs"), "other:K:wJalrXUtnFEMI\n", 0o600)
	_, err = fx.selectFor("b", nil)
	if err == nil || !strings.Contains(err.Error(), `no line for bucket "b"`) || strings.Contains(err.Error(), "wJalr") {
		t.Fatalf("no matching line: %v", err)
	}
}

func TestSelectCredentialsAnonymous(t *testing.T) {
	fx := newCredsFixture(t)
	c, err := fx.selectFor("b", func(c *Config) { c.Anonymous = true })
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Provider.(aws.AnonymousCredentials); !ok {
		t.Errorf("provider %T", c.Provider)
	}
}

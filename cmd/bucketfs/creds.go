package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// credChoice is the outcome of credential selection.
type credChoice struct {
	// Provider signs requests; nil means the AWS SDK default chain (with
	// Config.Profile).
	Provider aws.CredentialsProvider
	// Source says where the credentials come from, for logs and error
	// messages. It never contains a secret.
	Source string
}

// selectCredentials decides where credentials come from. The AWS SDK chain
// ends with an instance-metadata probe that takes seconds to fail where
// there is no metadata service (sandboxes, laptops), and the common
// sandbox setup is an s3fs password file, so the chain is used only when
// something says it will find credentials cheaply; otherwise an existing
// password file is preferred, and the full chain is the last resort.
func selectCredentials(cfg *Config, env sysEnv) (credChoice, error) {
	if cfg.Anonymous {
		return credChoice{Provider: aws.AnonymousCredentials{}, Source: "anonymous (public_bucket)"}, nil
	}
	if cfg.PasswdFile != "" {
		return fromPasswdFile(cfg.PasswdFile, cfg.Bucket, cfg.PasswdFile == env.EtcPasswd)
	}
	if cfg.useSDKChain {
		return credChoice{Source: "the AWS SDK chain (iam_role)"}, nil
	}
	if id, secret := env.Getenv("AWS_ACCESS_KEY_ID"), env.Getenv("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" {
		// What the SDK's chain would take first, taken here: static keys
		// need no request of their own, which lets a plain-HTTP endpoint
		// skip the CA bundle (see plainHTTPWithStaticKeys).
		return credChoice{
			Provider: credentials.NewStaticCredentialsProvider(id, secret, env.Getenv("AWS_SESSION_TOKEN")),
			Source:   "AWS_ACCESS_KEY_ID in the environment",
		}, nil
	}
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"} {
		if env.Getenv(v) != "" {
			return credChoice{Source: v + " in the environment"}, nil
		}
	}
	// s3fs's own environment variables.
	if id, secret := env.Getenv("AWSACCESSKEYID"), env.Getenv("AWSSECRETACCESSKEY"); id != "" && secret != "" {
		return credChoice{
			Provider: credentials.NewStaticCredentialsProvider(id, secret, env.Getenv("AWSSESSIONTOKEN")),
			Source:   "AWSACCESSKEYID/AWSSECRETACCESSKEY in the environment",
		}, nil
	}
	if f := env.Getenv("AWS_CREDENTIAL_FILE"); f != "" {
		return fromPasswdFile(env.abs(f), cfg.Bucket, false)
	}
	if cfg.Profile != "" {
		return credChoice{Source: "AWS profile " + cfg.Profile}, nil
	}
	if p := env.Getenv("AWS_PROFILE"); p != "" {
		return credChoice{Source: "AWS profile " + p + " (AWS_PROFILE)"}, nil
	}
	if f := sharedConfigWithCredentials(env); f != "" {
		return credChoice{Source: "AWS shared config " + f}, nil
	}
	for _, f := range passwdCandidates(env) {
		c, err := fromPasswdFile(f, cfg.Bucket, f == env.EtcPasswd)
		if errors.Is(err, errPasswdNotFound) {
			continue
		}
		// An existing but unusable file is an error, not a reason to fall
		// through silently: s3fs does the same, and the user meant it.
		return c, err
	}
	return credChoice{Source: "the AWS SDK default chain"}, nil
}

func fromPasswdFile(path, bucket string, systemWide bool) (credChoice, error) {
	p, err := readPasswdFile(path, systemWide)
	if err != nil {
		return credChoice{}, err
	}
	k, ok := p.lookup(bucket)
	if !ok {
		return credChoice{}, fmt.Errorf("password file %s has no line for bucket %q and no default ACCESS:SECRET line", path, bucket)
	}
	return credChoice{
		Provider: credentials.NewStaticCredentialsProvider(k.AccessKey, k.Secret, k.SessionToken),
		Source:   "password file " + path,
	}, nil
}

// passwdCandidates lists the s3fs password files in s3fs's order. Under
// sudo, $HOME may still be the invoking user's, so the effective user's
// home from the passwd database is tried as well.
func passwdCandidates(env sysEnv) []string {
	var out []string
	seen := map[string]bool{}
	for _, h := range []string{env.Home, env.DBHome} {
		if h == "" {
			continue
		}
		f := filepath.Join(h, ".passwd-s3fs")
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	if env.EtcPasswd != "" {
		out = append(out, env.EtcPasswd)
	}
	return out
}

// sharedConfigWithCredentials returns the AWS shared credentials or config
// file if it looks like it holds credentials. A ~/.aws/config that only
// sets a region must not steer us away from a password file.
func sharedConfigWithCredentials(env sysEnv) string {
	credFile := env.Getenv("AWS_SHARED_CREDENTIALS_FILE")
	if credFile == "" && env.Home != "" {
		credFile = filepath.Join(env.Home, ".aws", "credentials")
	}
	confFile := env.Getenv("AWS_CONFIG_FILE")
	if confFile == "" && env.Home != "" {
		confFile = filepath.Join(env.Home, ".aws", "config")
	}
	for _, f := range []string{credFile, confFile} {
		if f != "" && fileMentionsCredentials(f) {
			return f
		}
	}
	return ""
}

// credentialKeys are the shared-config settings that make the SDK find
// credentials without the metadata service.
var credentialKeys = []string{"aws_access_key_id", "credential_process", "role_arn",
	"sso_session", "sso_start_url", "web_identity_token_file", "credential_source"}

func fileMentionsCredentials(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	data, err := readLimited(f, 1<<20)
	if err != nil {
		return false
	}
	s := strings.ToLower(string(data))
	for _, k := range credentialKeys {
		if strings.Contains(s, k) {
			return true
		}
	}
	return false
}

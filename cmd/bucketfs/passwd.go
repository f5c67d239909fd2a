package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"unicode"
)

// s3fsKey is one access key pair from an s3fs password file.
type s3fsKey struct {
	AccessKey, Secret, SessionToken string
}

// passwdEntries is the parsed content of an s3fs password file.
type passwdEntries struct {
	Default   *s3fsKey           // from an "ACCESS:SECRET" line (the first one wins)
	PerBucket map[string]s3fsKey // from "BUCKET:ACCESS:SECRET" lines (the first per bucket wins)
}

// lookup returns the key for bucket: a bucket-specific line wins over the
// default line, as in s3fs.
func (p passwdEntries) lookup(bucket string) (s3fsKey, bool) {
	if k, ok := p.PerBucket[bucket]; ok {
		return k, true
	}
	if p.Default != nil {
		return *p.Default, true
	}
	return s3fsKey{}, false
}

// parsePasswd parses an s3fs password file: one "ACCESS:SECRET" or
// "BUCKET:ACCESS:SECRET" per line, blank lines and "#" comments skipped.
// It also takes the AWS_CREDENTIAL_FILE form that s3fs accepts
// (AWSAccessKeyId=..., AWSSecretKey=..., AWSSessionToken=...).
//
// Errors name the line number only, never its content: the content is a
// secret.
func parsePasswd(data []byte) (passwdEntries, error) {
	p := passwdEntries{PerBucket: map[string]s3fsKey{}}
	var kv s3fsKey // the key=value form
	kvSeen := false
	for i, raw := range bytes.Split(data, []byte("\n")) {
		n := i + 1
		line := strings.TrimSpace(string(raw))
		if line == "" || line[0] == '#' {
			continue
		}
		if strings.ContainsFunc(line, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
			return passwdEntries{}, fmt.Errorf("line %d: whitespace or control character inside an entry", n)
		}
		if k, v, ok := strings.Cut(line, "="); ok && !strings.Contains(k, ":") {
			if v == "" {
				return passwdEntries{}, fmt.Errorf("line %d: empty value", n)
			}
			switch k {
			case "AWSAccessKeyId":
				kv.AccessKey = v
			case "AWSSecretKey":
				kv.Secret = v
			case "AWSSessionToken":
				kv.SessionToken = v
			default:
				return passwdEntries{}, fmt.Errorf("line %d: unknown key (want AWSAccessKeyId, AWSSecretKey or AWSSessionToken)", n)
			}
			kvSeen = true
			continue
		}
		fields := strings.Split(line, ":")
		var bucket string
		var key s3fsKey
		switch len(fields) {
		case 2:
			key = s3fsKey{AccessKey: fields[0], Secret: fields[1]}
		case 3:
			bucket = fields[0]
			key = s3fsKey{AccessKey: fields[1], Secret: fields[2]}
		default:
			return passwdEntries{}, fmt.Errorf("line %d: want ACCESS:SECRET or BUCKET:ACCESS:SECRET", n)
		}
		if key.AccessKey == "" || key.Secret == "" || (len(fields) == 3 && bucket == "") {
			return passwdEntries{}, fmt.Errorf("line %d: empty field", n)
		}
		if bucket == "" {
			if p.Default == nil {
				p.Default = &key
			}
		} else if _, dup := p.PerBucket[bucket]; !dup {
			p.PerBucket[bucket] = key
		}
	}
	if kvSeen {
		if kv.AccessKey == "" || kv.Secret == "" {
			return passwdEntries{}, errors.New("AWSAccessKeyId= and AWSSecretKey= must both be given")
		}
		if p.Default == nil {
			p.Default = &kv
		}
	}
	return p, nil
}

// errPasswdNotFound means a password file does not exist (only an error
// when the file was named explicitly).
var errPasswdNotFound = errors.New("password file not found")

// readPasswdFile reads and parses an s3fs password file, refusing one
// that others can read, as s3fs does: a secret left world-readable is a
// leak the user should hear about. The system-wide file may be readable
// by its group (so that a group of users can share it); a personal file
// may not.
func readPasswdFile(path string, systemWide bool) (passwdEntries, error) {
	forbidden := fs.FileMode(0o077)
	if systemWide {
		forbidden = 0o007
	}
	data, err := readSecretFile(path, "password file", forbidden)
	if errors.Is(err, fs.ErrNotExist) {
		return passwdEntries{}, fmt.Errorf("%s: %w", path, errPasswdNotFound)
	}
	if err != nil {
		return passwdEntries{}, err
	}
	p, err := parsePasswd(data)
	if err != nil {
		return passwdEntries{}, fmt.Errorf("password file %s: %w", path, err)
	}
	return p, nil
}

// readSecretFile reads a small file of secrets (what names it in errors),
// refusing anything but a regular file and a mode with any forbidden bit.
func readSecretFile(path, what string, forbidden fs.FileMode) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s is not a regular file", what, path)
	}
	if perm := st.Mode().Perm(); perm&forbidden != 0 {
		return nil, fmt.Errorf("%s %s has mode %04o: others may read it; run chmod 600 %s", what, path, uint32(perm), path)
	}
	data, err := readLimited(f, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	return data, nil
}

func readLimited(r io.Reader, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("larger than %d bytes", max)
	}
	return data, nil
}

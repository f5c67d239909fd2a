package main

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/novitalabs/bucketfs/s3backend"
)

// encryption resolves cfg's SSE settings for the store, reading the SSE-C
// key (from SSECKeyFile, or the AWSSSECKEYS value parseArgs kept).
func encryption(cfg *Config) (s3backend.Encryption, error) {
	enc := s3backend.Encryption{Mode: cfg.SSE, KMSKeyID: cfg.SSEKMSKeyID}
	if cfg.SSE != s3backend.SSEC {
		return enc, nil
	}
	var (
		keys []string
		from = "AWSSSECKEYS"
	)
	if cfg.SSECKeyFile != "" {
		// s3fs wants the key file at mode 600: the key reads every object.
		data, err := readSecretFile(cfg.SSECKeyFile, "SSE-C key file", 0o077)
		if err != nil {
			return enc, err
		}
		keys, from = strings.Split(string(data), "\n"), cfg.SSECKeyFile
	} else {
		keys = strings.Split(cfg.sseCKeys, ":")
	}
	key, err := parseSSECKeys(keys)
	if err != nil {
		return enc, fmt.Errorf("SSE-C key in %s: %w", from, err)
	}
	enc.CustomerKey = key
	return enc, nil
}

// parseSSECKeys reads s3fs's SSE-C key list: one key per entry, blank
// entries and "#" comments skipped; a key of more than 32 characters is
// base64, a shorter one the raw key. s3fs also accepts older keys after
// the first, to read objects written with them; bucketfs sends one key
// with every request, so it refuses a list rather than fail reads later.
func parseSSECKeys(entries []string) ([]byte, error) {
	var keys []string
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e != "" && !strings.HasPrefix(e, "#") {
			keys = append(keys, e)
		}
	}
	switch len(keys) {
	case 0:
		return nil, fmt.Errorf("no key")
	case 1:
	default:
		return nil, fmt.Errorf("%d keys; bucketfs takes exactly one (older keys for reading are not supported)", len(keys))
	}
	key := []byte(keys[0])
	if len(key) > s3backend.SSECKeySize {
		var err error
		if key, err = base64.StdEncoding.DecodeString(keys[0]); err != nil {
			return nil, fmt.Errorf("longer than %d bytes and not base64", s3backend.SSECKeySize)
		}
	}
	if len(key) != s3backend.SSECKeySize {
		return nil, fmt.Errorf("the key is %d bytes; SSE-C takes %d (AES-256), raw or base64", len(key), s3backend.SSECKeySize)
	}
	return key, nil
}

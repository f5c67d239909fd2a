package s3backend

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/novitalabs/bucketfs/internal/miniotest"
)

// writeTestPKI creates a CA and a server certificate for 127.0.0.1 signed
// by it. It writes MinIO's certs dir (public.crt, private.key, CAs/ca.crt)
// and returns it with the path of the CA certificate.
func writeTestPKI(t *testing.T) (certsDir, caFile string) {
	t.Helper()
	dir := t.TempDir()
	certsDir = filepath.Join(dir, "certs")
	if err := os.MkdirAll(filepath.Join(certsDir, "CAs"), 0o755); err != nil {
		t.Fatal(err)
	}
	now := time.Now()

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "bucketfs test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}

	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}

	write := func(path, typ string, der []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	caFile = filepath.Join(dir, "ca.crt")
	write(caFile, "CERTIFICATE", caDER)
	write(filepath.Join(certsDir, "CAs", "ca.crt"), "CERTIFICATE", caDER)
	write(filepath.Join(certsDir, "public.crt"), "CERTIFICATE", srvDER)
	write(filepath.Join(certsDir, "private.key"), "PRIVATE KEY", keyDER)
	return certsDir, caFile
}

// TestTLSWithCABundle shows that the SDK's AWS_CA_BUNDLE handling survives
// our custom HTTP client: with the variable naming the CA the store works
// over HTTPS; without it the certificate is rejected and CheckBucket says
// ErrUnreachable; InsecureSkipVerify is the explicit opt-out.
func TestTLSWithCABundle(t *testing.T) {
	certsDir, caFile := writeTestPKI(t)
	srv := miniotest.StartTWith(t, miniotest.Options{CertsDir: certsDir})
	if !strings.HasPrefix(srv.Endpoint, "https://") {
		t.Fatalf("endpoint %s is not https", srv.Endpoint)
	}
	bucket := srv.NewBucket(t)
	ctx := testCtx(t)

	t.Run("with AWS_CA_BUNDLE", func(t *testing.T) {
		t.Setenv("AWS_CA_BUNDLE", caFile)
		st, err := New(ctx, storeConfig(srv, bucket))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CheckBucket(ctx); err != nil {
			t.Fatalf("CheckBucket: %v", err)
		}
		data := bytes.Repeat([]byte("tls "), 1000)
		upload(t, st, "over/tls", data, PutOptions{Metadata: map[string]string{"mode": "33188"}})
		if got := mustRead(t, st, "over/tls", 4, 8); string(got) != "tls tls " {
			t.Fatalf("read %q", got)
		}
		if info, err := st.Head(ctx, "over/tls"); err != nil || info.Size != int64(len(data)) {
			t.Fatalf("Head = %+v, %v", info, err)
		}
	})

	t.Run("without AWS_CA_BUNDLE", func(t *testing.T) {
		t.Setenv("AWS_CA_BUNDLE", "") // the sandbox may set it to the system bundle
		st, err := New(ctx, storeConfig(srv, bucket))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = st.CheckBucket(ctx)
		if !errors.Is(err, ErrUnreachable) {
			t.Fatalf("CheckBucket with an untrusted certificate: err = %v, want ErrUnreachable", err)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("CheckBucket took %v", d)
		}
		var uerr x509.UnknownAuthorityError
		if !errors.As(err, &uerr) {
			t.Errorf("cause is not an unknown-authority error: %v", err)
		}
		t.Log(err)
		if _, err := st.Head(ctx, "over/tls"); !errors.Is(err, ErrUnreachable) {
			t.Errorf("Head with an untrusted certificate: err = %v", err)
		}
	})

	t.Run("InsecureSkipVerify", func(t *testing.T) {
		t.Setenv("AWS_CA_BUNDLE", "")
		cfg := storeConfig(srv, bucket)
		cfg.InsecureSkipVerify = true
		st, err := New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CheckBucket(ctx); err != nil {
			t.Fatalf("CheckBucket: %v", err)
		}
		if got := mustRead(t, st, "over/tls", 0, 3); string(got) != "tls" {
			t.Fatalf("read %q", got)
		}
	})

	t.Run("plain http to the TLS port", func(t *testing.T) {
		cfg := storeConfig(srv, bucket)
		cfg.Endpoint = "http://" + strings.TrimPrefix(srv.Endpoint, "https://")
		st, err := New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		// MinIO answers plain HTTP on its TLS port with a 400 that has no
		// S3 code; we only require a clear, non-nil error.
		err = st.CheckBucket(ctx)
		if err == nil {
			t.Fatal("CheckBucket over http to an https port succeeded")
		}
		t.Log(err)
	})
}

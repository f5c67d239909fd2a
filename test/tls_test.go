package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/novitalabs/bucketfs/internal/miniotest"
)

// writeTestPKI writes a throw-away CA (ca.pem in dir) and a server
// certificate for 127.0.0.1 signed by it (certsDir/public.crt and
// private.key, as MinIO expects). It returns the CA file's path.
func writeTestPKI(t *testing.T, dir, certsDir string) string {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "bucketfs test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(err)
	caCert, err := x509.ParseCertificate(caDER)
	must(err)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &key.PublicKey, caKey)
	must(err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	must(err)

	write := func(path, typ string, der []byte) {
		t.Helper()
		must(os.MkdirAll(filepath.Dir(path), 0o755))
		must(os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
	}
	caFile := filepath.Join(dir, "ca.pem")
	write(caFile, "CERTIFICATE", caDER)
	write(filepath.Join(certsDir, "public.crt"), "CERTIFICATE", leafDER)
	write(filepath.Join(certsDir, "private.key"), "PRIVATE KEY", keyDER)
	write(filepath.Join(certsDir, "CAs", "ca.crt"), "CERTIFICATE", caDER)
	return caFile
}

// TestTLSWithCABundle: against an https endpoint whose certificate is signed
// by a private CA, bucketfs works when AWS_CA_BUNDLE names the CA (as in
// sandboxes that set it), and refuses to mount without it.
func TestTLSWithCABundle(t *testing.T) {
	t.Parallel()
	needSuite(t)
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	ca := writeTestPKI(t, dir, certs)
	srv := miniotest.StartTWith(t, miniotest.Options{CertsDir: certs})
	if got := srv.Endpoint[:8]; got != "https://" {
		t.Fatalf("MinIO endpoint %s is not https", srv.Endpoint)
	}

	m := mount(t, onServer(srv), withEnv("AWS_CA_BUNDLE="+ca))
	writeFile(t, m.Path("over-tls"), []byte("secure"))
	sameBytes(t, "over-tls", m.Get("over-tls"), []byte("secure"))
	m.Put("from-sdk", []byte("sdk"), nil)
	sameBytes(t, "from-sdk", readFile(t, m.Path("from-sdk")), []byte("sdk"))

	expectMountFailure(t, failCase{
		target: m.Bucket, endpoint: srv.Endpoint,
		env:   []string{"AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey},
		cause: regexp.MustCompile(`(?i)(certificate|x509|tls)`),
	})
}

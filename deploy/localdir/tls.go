package localdir

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Names of the TLS files in the instance folder (Options.TLS).
const (
	tlsCAFile   = "tls-ca.pem"     // the throwaway CA's certificate (Server.CAFile)
	tlsCertFile = "tls-server.pem" // the server certificate, signed by the CA
	tlsKeyFile  = "tls-server.key" // the server's private key (PKCS #8), mode 0600
)

// tlsValidity is how long the generated certificates are valid; an instance
// folder kept longer gets new ones at its next Start.
const tlsValidity = 5 * 365 * 24 * time.Hour

// TLSConfig returns a client TLS configuration that trusts only the
// instance's throwaway CA (Options.TLS), for ldaps:// (LDAPSURL) and StartTLS
// on URL. The server certificate names 127.0.0.1, ::1 and localhost.
func (s *Server) TLSConfig() (*tls.Config, error) {
	if s.CAFile == "" {
		return nil, fmt.Errorf("localdir: TLS was not enabled (Options.TLS)")
	}
	b, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, fmt.Errorf("localdir: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("localdir: %s holds no PEM certificate", s.CAFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// prepareTLS makes sure the instance folder holds a CA certificate, and a
// server certificate for 127.0.0.1/localhost signed by it with its key: it
// keeps those of an earlier Start while they are valid for at least a day,
// so that a client holding the CA keeps trusting a restarted instance, and
// writes new ones otherwise. Keys are ECDSA P-256 (slapd's GnuTLS takes
// them). The key file is readable by its owner only: slapd runs as the user
// that starts it (no -u), so that is enough.
func (s *Server) prepareTLS() error {
	ca, cert, key := filepath.Join(s.Dir, tlsCAFile), filepath.Join(s.Dir, tlsCertFile), filepath.Join(s.Dir, tlsKeyFile)
	s.CAFile, s.certFile, s.keyFile = ca, cert, key
	if tlsFilesUsable(ca, cert, key) {
		return nil
	}
	caPEM, certPEM, keyPEM, err := generateTLS(time.Now())
	if err != nil {
		return fmt.Errorf("localdir: generate TLS certificates: %w", err)
	}
	// The key first, the CA last: a folder with a new CA always has the
	// matching certificate and key.
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{key, keyPEM, 0o600}, {cert, certPEM, 0o644}, {ca, caPEM, 0o644}} {
		if err := writeFileAtomic(f.path, f.data, f.mode); err != nil {
			return fmt.Errorf("localdir: %w", err)
		}
	}
	return nil
}

// tlsFilesUsable reports whether the CA, certificate and key files exist,
// parse, belong together, and verify for 127.0.0.1 and localhost for at
// least another day.
func tlsFilesUsable(caPath, certPath, keyPath string) bool {
	caPEM, err1 := os.ReadFile(caPath)
	certPEM, err2 := os.ReadFile(certPath)
	keyPEM, err3 := os.ReadFile(keyPath)
	if err1 != nil || err2 != nil || err3 != nil {
		return false
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil || pair.Leaf == nil {
		return false
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return false
	}
	for _, name := range []string{"127.0.0.1", "localhost"} {
		opts := x509.VerifyOptions{Roots: pool, DNSName: name, CurrentTime: time.Now().Add(24 * time.Hour),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		if _, err := pair.Leaf.Verify(opts); err != nil {
			return false
		}
	}
	return true
}

// generateTLS returns a new self-signed CA certificate, and a server
// certificate (127.0.0.1, ::1, localhost) signed by it with its PKCS #8
// key, all PEM.
func generateTLS(now time.Time) (caPEM, certPEM, keyPEM []byte, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	serverKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	caSerial, err := serial()
	if err != nil {
		return nil, nil, nil, err
	}
	serverSerial, err := serial()
	if err != nil {
		return nil, nil, nil, err
	}
	notBefore, notAfter := now.Add(-time.Hour), now.Add(tlsValidity)
	caTmpl := &x509.Certificate{
		SerialNumber:          caSerial,
		Subject:               pkix.Name{Organization: []string{"ds2mb localdir"}, CommonName: "ds2mb localdir throwaway CA " + caSerial.Text(16)[:8]},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, nil, err
	}
	serverTmpl := &x509.Certificate{
		SerialNumber:          serverSerial,
		Subject:               pkix.Name{Organization: []string{"ds2mb localdir"}, CommonName: "localhost"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	serverDER, err := x509.CreateCertificate(rand.Reader, serverTmpl, caCert, &serverKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(serverKey)
	if err != nil {
		return nil, nil, nil, err
	}
	enc := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	return enc("CERTIFICATE", caDER), enc("CERTIFICATE", serverDER), enc("PRIVATE KEY", keyDER), nil
}

// serial returns a random positive 128-bit certificate serial number.
func serial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	return n.Add(n, big.NewInt(1)), nil
}

// writeFileAtomic writes data to path through a temporary file in the same
// folder, with the given mode from the start (a key is never readable by
// others, not even for a moment).
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return nil
}

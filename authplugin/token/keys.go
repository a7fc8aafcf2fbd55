package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// KeySet holds the registry's token signing keys: the newest signs, all of
// them verify, so a key can be rotated by dropping a new file into the
// directory and restarting without invalidating tokens already issued.
type KeySet struct {
	active *signingKey
	byKID  map[string]*ecdsa.PublicKey
}

type signingKey struct {
	kid  string
	priv *ecdsa.PrivateKey
	der  []byte
}

// KeyID derives the `kid` of a public key: the first 16 bytes of the
// SHA-256 of its PKIX encoding, hex-encoded.
func KeyID(pub *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:16]), nil
}

// GenerateSigningKey writes a new P-256 key (ES256) as PKCS#8 PEM into dir,
// named so that it sorts after every existing key.
func GenerateSigningKey(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("signing key: %w", err)
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", fmt.Errorf("signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", fmt.Errorf("signing key: %w", err)
	}
	name := filepath.Join(dir, "signing-"+time.Now().UTC().Format("20060102T150405.000000000")+".pem")
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", fmt.Errorf("signing key: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		_ = f.Close() // the encode error is the one to report
		return "", fmt.Errorf("signing key: %w", err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close() // the sync error is the one to report
		return "", fmt.Errorf("signing key: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("signing key: %w", err)
	}
	return name, nil
}

// LoadKeySet reads every *.pem private key in dir.
func LoadKeySet(dir string) (*KeySet, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.pem"))
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	sort.Strings(names)
	ks := &KeySet{byKID: map[string]*ecdsa.PublicKey{}}
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("signing keys: %w", err)
		}
		block, _ := pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("signing keys: %s: no PEM block", name)
		}
		k, err := parsePrivateKey(block)
		if err != nil {
			return nil, fmt.Errorf("signing keys: %s: %w", name, err)
		}
		kid, err := KeyID(&k.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("signing keys: %s: %w", name, err)
		}
		ks.byKID[kid] = &k.PublicKey
		ks.active = &signingKey{kid: kid, priv: k, der: block.Bytes}
	}
	if ks.active == nil {
		return nil, fmt.Errorf("signing keys: no key in %s (run `mcrsrv init`)", dir)
	}
	return ks, nil
}

func parsePrivateKey(block *pem.Block) (*ecdsa.PrivateKey, error) {
	switch {
	case block.Type == "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(block.Bytes)
	case strings.HasSuffix(block.Type, "PRIVATE KEY"):
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok || ek.Curve != elliptic.P256() {
			return nil, errors.New("signing key must be ECDSA P-256")
		}
		return ek, nil
	}
	return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
}

// ActiveKID is the key id new tokens are signed with.
func (ks *KeySet) ActiveKID() string { return ks.active.kid }

// Secret derives a stable secret from the active key for purposes such as
// distribution's upload-state HMAC, so one node needs no extra setting.
func (ks *KeySet) Secret(purpose string) string {
	h := sha256.New()
	h.Write([]byte(purpose))
	h.Write(ks.active.der)
	return hex.EncodeToString(h.Sum(nil))
}

package smart

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func TestParseKey(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(ec)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	pk8, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "auth", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name    string
		data    []byte
		kid     string
		wantAlg string
		wantErr bool
	}{
		{"ES384 JWK Set", read("ES384.private.json"), "", "ES384", false},
		{"RS384 JWK Set", read("RS384.private.json"), "", "RS384", false},
		{"EC PEM", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}), "k1", "ES384", false},
		{"PKCS#8 RSA PEM", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk8}), "k2", "RS384", false},
		{"public keys only", read("ES384.public.json"), "", "", true},
		{"garbage", []byte("not a key"), "", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseKey(tc.data, tc.kid)
			if tc.wantErr {
				if err == nil {
					t.Fatal("got a key, want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.Alg != tc.wantAlg || tc.kid != "" && k.KID != tc.kid {
				t.Errorf("got alg %s kid %q, want %s %q", k.Alg, k.KID, tc.wantAlg, tc.kid)
			}
			const aud = "https://payer.example.org/cds-services/order-sign-crd"
			tok, err := k.HookJWT("ehr-1", aud)
			if err != nil {
				t.Fatal(err)
			}
			var claims jwt.MapClaims
			parsed, err := jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) {
				return k.Signer.Public(), nil
			}, jwt.WithValidMethods([]string{tc.wantAlg}), jwt.WithAudience(aud), jwt.WithIssuer("ehr-1"))
			if err != nil || !parsed.Valid {
				t.Fatalf("the CDS Hooks JWT does not verify: %v", err)
			}
			if claims["jti"] == "" || parsed.Header["typ"] != "JWT" || claims["exp"] == nil {
				t.Errorf("claims %v header %v: want jti, exp and typ JWT (CH-24)", claims, parsed.Header)
			}
		})
	}
}

package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/MicahParks/jwkset"
)

// keysNew is `priora keys new`: an EHR developer's key pair for SMART
// Backend Services and CDS Hooks JWTs. The private JWK stays with the
// client; the public JWK Set is what the payer registers (priora clients add
// --jwks-file) or what the client serves at its jku URL. The kid is the key's
// RFC 7638 thumbprint, so the same key always gets the same id.
func keysNew(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("priora keys new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	alg := fs.String("alg", "ES384", "signing algorithm: ES384 (P-384) or RS384 (RSA 3072)")
	out := fs.String("out", "private.jwk", "file for the private JWK (written 0600, never overwritten)")
	pub := fs.String("jwks", "public.jwks", "file for the public JWK Set (never overwritten)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "priora keys new: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	var key crypto.Signer
	var err error
	switch *alg {
	case "ES384":
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "RS384":
		key, err = rsa.GenerateKey(rand.Reader, 3072)
	default:
		return fmt.Errorf("keys new: --alg %q: want ES384 or RS384 (the algorithms SMART Backend Services requires servers to support)", *alg)
	}
	if err != nil {
		return err
	}
	kid, err := thumbprint(key.Public())
	if err != nil {
		return err
	}
	meta := jwkset.JWKMetadataOptions{ALG: jwkset.ALG(*alg), KID: kid, USE: jwkset.UseSig}
	private, err := jwkset.NewJWKFromKey(key, jwkset.JWKOptions{Metadata: meta, Marshal: jwkset.JWKMarshalOptions{Private: true}})
	if err != nil {
		return err
	}
	public, err := jwkset.NewJWKFromKey(key.Public(), jwkset.JWKOptions{Metadata: meta})
	if err != nil {
		return err
	}
	privJSON, err := json.MarshalIndent(private.Marshal(), "", "  ")
	if err != nil {
		return err
	}
	pubJSON, err := json.MarshalIndent(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{public.Marshal()}}, "", "  ")
	if err != nil {
		return err
	}
	if err := writeNew(*out, privJSON, 0o600); err != nil {
		return err
	}
	if err := writeNew(*pub, pubJSON, 0o644); err != nil {
		os.Remove(*out)
		return err
	}
	fmt.Fprintf(stdout, "kid %s (%s)\nprivate key: %s (keep it secret; sign client assertions and CDS Hooks JWTs with it)\npublic JWK Set: %s (register it: priora clients add --id ID --org ORG --jwks-file %s)\n",
		kid, *alg, *out, *pub, *pub)
	return nil
}

// writeNew creates path with data, refusing to replace an existing file:
// overwriting a private key by accident locks its client out.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("keys new: %s exists; choose another name or remove it first", path)
		}
		return err
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// thumbprint is the RFC 7638 JWK thumbprint (SHA-256, base64url) of a
// public key: the required members in lexicographic order, no spaces.
func thumbprint(pub crypto.PublicKey) (string, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	var canonical string
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		size := (k.Curve.Params().BitSize + 7) / 8
		x, y := make([]byte, size), make([]byte, size)
		k.X.FillBytes(x)
		k.Y.FillBytes(y)
		canonical = fmt.Sprintf(`{"crv":%q,"kty":"EC","x":%q,"y":%q}`, k.Curve.Params().Name, b64(x), b64(y))
	case *rsa.PublicKey:
		e := big64(k.E)
		canonical = fmt.Sprintf(`{"e":%q,"kty":"RSA","n":%q}`, b64(e), b64(k.N.Bytes()))
	default:
		return "", fmt.Errorf("thumbprint: %T", pub)
	}
	sum := sha256.Sum256([]byte(canonical))
	return b64(sum[:]), nil
}

// big64 is an RSA exponent as unsigned big-endian bytes without leading zeros.
func big64(e int) []byte {
	var b []byte
	for ; e > 0; e >>= 8 {
		b = append([]byte{byte(e)}, b...)
	}
	return b
}

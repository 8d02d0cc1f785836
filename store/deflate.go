package store

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Deflated documents
//
// The embedded engine's cost of writing a document grows with its bytes:
// SQLite copies and parses the JSON text of a row several times per insert
// (once for each of the two _id expression indexes), about 50–90 µs of CPU
// per KB on the development machine (BenchmarkCommitChain). The two
// bulkiest documents Priora writes are kept deflated (compress/flate at
// its fastest level, which shrinks FHIR JSON about fivefold for about 75 µs
// per 30 KB): a request Bundle as received (bundleDoc) and each revision
// of a chain (revision, chains.go). Neither is ever filtered on; what scans
// read (the head, the keys) stays plain. Documents written before are
// read as they are. On MongoDB, which compresses its storage itself, this
// moves those bytes' compression from the database to Priora and shrinks
// what crosses the network.

// maxInflated bounds what one stored document inflates to: far above any
// request Priora accepts (PRIORA_MAX_BODY) or any chain it builds from them.
const maxInflated = 256 << 20

var deflaters = sync.Pool{New: func() any {
	w, err := flate.NewWriter(nil, flate.BestSpeed)
	if err != nil {
		panic(err) // only for an invalid level
	}
	return w
}}

var inflaters sync.Pool // of io.ReadCloser that are flate.Resetter

// deflate compresses p.
func deflate(p []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(p)/4 + 64)
	w := deflaters.Get().(*flate.Writer)
	w.Reset(&buf)
	_, _ = w.Write(p) // a bytes.Buffer does not fail
	_ = w.Close()
	w.Reset(io.Discard) // so that the pool does not keep buf
	deflaters.Put(w)
	return buf.Bytes()
}

// inflate decompresses what deflate wrote.
func inflate(p []byte) ([]byte, error) {
	src := bytes.NewReader(p)
	r, _ := inflaters.Get().(io.ReadCloser)
	if r == nil {
		r = flate.NewReader(src)
	} else if err := r.(flate.Resetter).Reset(src, nil); err != nil {
		return nil, err
	}
	defer func() {
		_ = r.(flate.Resetter).Reset(bytes.NewReader(nil), nil) // so that the pool does not keep p
		inflaters.Put(r)
	}()
	var out bytes.Buffer
	out.Grow(len(p) * 5)
	n, err := out.ReadFrom(io.LimitReader(r, maxInflated+1))
	if err != nil {
		return nil, fmt.Errorf("inflate: %w", err)
	}
	if n > maxInflated {
		return nil, fmt.Errorf("inflate: more than %d bytes", maxInflated)
	}
	return out.Bytes(), nil
}

// deflateBSON is v as BSON, deflated.
func deflateBSON(v any) ([]byte, error) {
	raw, err := bson.Marshal(v)
	if err != nil {
		return nil, err
	}
	return deflate(raw), nil
}

// inflateBSON decodes what deflateBSON wrote into v.
func inflateBSON(p []byte, v any) error {
	raw, err := inflate(p)
	if err != nil {
		return err
	}
	return bson.Unmarshal(raw, v)
}

package profiles

import (
	"fmt"
	"testing"
)

// TestRegistryRemembersBounded: structure answers are remembered for
// definitions that exist, at most maxFound of them, since canonicals
// come from instances too (a version suffix resolves to the one version
// embedded, so "url|x1", "url|x2", ... all exist); unknown ones never.
func TestRegistryRemembersBounded(t *testing.T) {
	r, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	const url = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-claim"
	want, err := r.structure(url, -1)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < maxFound+100; i++ {
		if _, err := r.structure(fmt.Sprintf("http://example.org/unknown-%d", i), -1); err == nil {
			t.Fatal("an unknown profile was found")
		}
		sd, err := r.structure(fmt.Sprintf("%s|x%d", url, i), -1)
		if err == nil && sd.url != want.url {
			t.Fatalf("remembered %s for %s", sd.url, url)
		}
	}
	if n := r.nfound.Load(); n > maxFound {
		t.Fatalf("%d answers remembered, more than %d", n, maxFound)
	}
	if again, err := r.structure(url, -1); err != nil || again != want {
		t.Fatalf("remembered answer %v, %v; want %v", again, err, want)
	}
}

package conformance

import (
	"embed"
	"io/fs"
)

//go:embed inputs
var inputs embed.FS

// Inputs returns the conformance suite's default inputs (the request
// payloads, the Subscription and the CDS Hooks calls the suite sends), as
// a file system rooted at inputs/; inputs/README.md describes each file.
// They are the PAS and CRD test kits' payloads, with item codes chosen so
// that Priora's sample coverage rules approve, deny and pend them.
func Inputs() fs.FS {
	sub, err := fs.Sub(inputs, "inputs")
	if err != nil {
		panic(err) // the embedded directory exists
	}
	return sub
}

// SubscriptionTopic returns the PAS SubscriptionTopic
// (PASSubscriptionTopic, as packaged in PAS 2.2.1: an R5 resource carried
// as Basic in R4 packages).
func SubscriptionTopic() []byte {
	b, err := resources.ReadFile("resources/Basic-PASSubscriptionTopic.json")
	if err != nil {
		panic(err) // embedded
	}
	return b
}

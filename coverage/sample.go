package coverage

import _ "embed"

//go:embed sample-rules.yaml
var sampleRules []byte

// Sample returns the shipped sample rules, used when no rules file is set.
func Sample() (*Rules, error) { return Parse(sampleRules) }

// SampleYAML is the text of the shipped sample rules.
func SampleYAML() []byte { return append([]byte(nil), sampleRules...) }

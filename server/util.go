package server

import "regexp"

var idPattern = regexp.MustCompile(`^[A-Za-z0-9\-\.]{1,64}$`)

// validID reports whether s is a FHIR id; anything else (path traversal,
// operators, oversized values) never reaches the store.
func validID(s string) bool { return idPattern.MatchString(s) }

package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
)

var idPattern = regexp.MustCompile(`^[A-Za-z0-9\-\.]{1,64}$`)

// validID reports whether s is a FHIR id; anything else (path traversal,
// operators, oversized values) never reaches the store.
func validID(s string) bool { return idPattern.MatchString(s) }

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// safeJSONError describes a JSON decoding error without echoing values.
func safeJSONError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %s must be %s", te.Field, te.Type)
	}
	return err.Error()
}

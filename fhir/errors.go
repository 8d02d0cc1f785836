package fhir

import (
	"errors"
	"fmt"
	"net/http"
)

// Kind classifies an error so that one place can render it with the right
// HTTP status and FHIR IssueType.
type Kind int

const (
	// Internal is a failure of Priora itself; its details are logged, never shown.
	Internal Kind = iota
	// Invalid is a request that cannot be processed as sent (400).
	Invalid
	// Unsupported is a media type Priora does not speak (415).
	Unsupported
	// NotFound is a resource or route that does not exist (404).
	NotFound
	// Unauthorized is a request without valid credentials (401).
	Unauthorized
	// Forbidden is a request whose credentials do not allow it (403).
	Forbidden
	// Conflict is a request that clashes with the current state (409).
	Conflict
	// TooLarge is a body over the configured cap (413).
	TooLarge
	// Unprocessable is well-formed input that breaks a business or profile rule (422).
	Unprocessable
	// Unavailable is a transient failure worth retrying (503).
	Unavailable
	// TooMany is a client over its rate limit (429).
	TooMany
)

// Status is the HTTP status for the kind.
func (k Kind) Status() int {
	switch k {
	case Invalid:
		return http.StatusBadRequest
	case Unsupported:
		return http.StatusUnsupportedMediaType
	case NotFound:
		return http.StatusNotFound
	case Unauthorized:
		return http.StatusUnauthorized
	case Forbidden:
		return http.StatusForbidden
	case Conflict:
		return http.StatusConflict
	case TooLarge:
		return http.StatusRequestEntityTooLarge
	case Unprocessable:
		return http.StatusUnprocessableEntity
	case Unavailable:
		return http.StatusServiceUnavailable
	case TooMany:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

// IssueType is the default OperationOutcome.issue.code for the kind.
func (k Kind) IssueType() string {
	switch k {
	case Invalid, Unprocessable:
		return "invalid"
	case Unsupported, TooLarge:
		return "not-supported"
	case NotFound:
		return "not-found"
	case Unauthorized:
		return "login"
	case Forbidden:
		return "forbidden"
	case Conflict:
		return "conflict"
	case Unavailable:
		return "transient"
	case TooMany:
		return "throttled"
	}
	return "exception"
}

// Issue is one finding about a request, rendered as an OperationOutcome.issue.
type Issue struct {
	Severity    string `json:"severity"` // fatal | error | warning | information
	Code        string `json:"code"`     // FHIR IssueType
	Diagnostics string `json:"diagnostics,omitempty"`
	Expression  string `json:"expression,omitempty"` // FHIRPath of the offending element
}

// Error is Priora's one error type: a Kind, a message that is safe to show a
// client, the issues behind it and the cause (logged, never shown).
type Error struct {
	Kind    Kind
	Message string
	Issues  []Issue
	Err     error
}

func (e *Error) Error() string {
	switch {
	case e.Err != nil && e.Message != "":
		return e.Message + ": " + e.Err.Error()
	case e.Err != nil:
		return e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of kind k with a client-safe message.
func Errorf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// InvalidAt returns an Invalid error with one issue at a FHIRPath location.
func InvalidAt(code, expression, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	return &Error{Kind: Invalid, Message: msg, Issues: []Issue{{
		Severity: "error", Code: code, Diagnostics: msg, Expression: expression,
	}}}
}

// KindOf reports the Kind of err; anything not an *Error is Internal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// IssuesOf returns the issues to show for err. Internal errors yield one
// generic issue so that nothing of Priora's internals leaks.
func IssuesOf(err error) []Issue {
	var e *Error
	if !errors.As(err, &e) || e.Kind == Internal {
		return []Issue{{Severity: "error", Code: "exception", Diagnostics: "internal server error"}}
	}
	if len(e.Issues) > 0 {
		return e.Issues
	}
	return []Issue{{Severity: "error", Code: e.Kind.IssueType(), Diagnostics: e.Message}}
}

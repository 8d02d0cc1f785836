package fhir

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Kind classifies an error. It is Priora's one error vocabulary: domain
// packages say what went wrong with a Kind, and the HTTP edge (package
// server, and the desk for its pages) turns it into a status with Status and
// renders it in the wire format of the route.
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
	// Unauthorized is a request without valid credentials (401). The
	// response carries a WWW-Authenticate challenge built from the error's
	// Code (RFC 6750 §3).
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
	// TooMany is a client over its rate limit (429); RetryAfter says when
	// to come back.
	TooMany
	// NotAcceptable is a request for a representation Priora cannot give (406).
	NotAcceptable
	// PreconditionFailed is a request whose stated preconditions do not
	// hold, such as CDS Hooks data that was neither prefetched nor
	// obtainable (412).
	PreconditionFailed
	// MethodNotAllowed is a method the endpoint does not serve (405); the
	// response names the ones it does in an Allow header.
	MethodNotAllowed
)

// kinds is the one table from Kind to HTTP status and default FHIR
// IssueType.
var kinds = map[Kind]struct {
	status int
	issue  string
}{
	Internal:           {http.StatusInternalServerError, "exception"},
	Invalid:            {http.StatusBadRequest, "invalid"},
	Unsupported:        {http.StatusUnsupportedMediaType, "not-supported"},
	NotFound:           {http.StatusNotFound, "not-found"},
	Unauthorized:       {http.StatusUnauthorized, "login"},
	Forbidden:          {http.StatusForbidden, "forbidden"},
	Conflict:           {http.StatusConflict, "conflict"},
	TooLarge:           {http.StatusRequestEntityTooLarge, "not-supported"},
	Unprocessable:      {http.StatusUnprocessableEntity, "invalid"},
	Unavailable:        {http.StatusServiceUnavailable, "transient"},
	TooMany:            {http.StatusTooManyRequests, "throttled"},
	NotAcceptable:      {http.StatusNotAcceptable, "not-supported"},
	PreconditionFailed: {http.StatusPreconditionFailed, "processing"},
	MethodNotAllowed:   {http.StatusMethodNotAllowed, "not-supported"},
}

// Status is the HTTP status for the kind.
func (k Kind) Status() int {
	if v, ok := kinds[k]; ok {
		return v.status
	}
	return http.StatusInternalServerError
}

// IssueType is the default OperationOutcome.issue.code for the kind.
func (k Kind) IssueType() string {
	if v, ok := kinds[k]; ok {
		return v.issue
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
	// Code is the machine-readable error code of wire formats that have
	// one: the OAuth 2.0 "error" (RFC 6749 §5.2: invalid_client,
	// invalid_grant, invalid_scope, …) and the Bearer challenge's error
	// (RFC 6750 §3.1: invalid_token, insufficient_scope). Empty for most
	// errors.
	Code string
	// RetryAfter, when set, is sent as Retry-After (TooMany, Unavailable).
	RetryAfter time.Duration
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

// CodedErrorf returns an *Error of kind k with a wire-format error code
// (see Error.Code) and a client-safe message.
func CodedErrorf(k Kind, code, format string, args ...any) *Error {
	return &Error{Kind: k, Code: code, Message: fmt.Sprintf(format, args...)}
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

// AsError returns err as an *Error: the *Error it wraps, or an Internal
// *Error around it. nil stays nil.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Kind: Internal, Message: "internal server error", Err: err}
}

// SafeMessage is the message to show for err: its *Error message, or
// "internal server error" for Internal errors and anything else.
func SafeMessage(err error) string {
	e := AsError(err)
	if e.Kind == Internal || e.Message == "" {
		return "internal server error"
	}
	return e.Message
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

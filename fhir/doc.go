// Package fhir is Priora's small FHIR R4 toolkit and its error vocabulary.
//
//   - Parsing gate: Parser checks request JSON against base R4 with
//     google/fhir's validating unmarshaller; CheckDepth and MaxDepth bound
//     nesting before anything decodes it; ResourceType reads the type alone.
//   - Light R4 types (model.go) for the elements Priora reads and writes
//     itself, and Bundle helpers that resolve references between entries.
//   - Errors: Error with a Kind is the one error type of every domain
//     package. The Kind's table (errors.go) gives the HTTP status and the
//     default IssueType; package server renders an Error as an
//     OperationOutcome (OperationOutcome, IssuesOf), a CDS Hooks error or an
//     OAuth error, by route. Messages are safe to show; causes are logged.
//
// The package knows nothing of HTTP routing, storage or PAS/CRD rules.
package fhir

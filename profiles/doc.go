// Package profiles validates FHIR R4 JSON against the Da Vinci PAS and CRD
// profiles, US Core and the base specification, without the Java
// validator or any outside service.
//
// # Data
//
// The conformance resources of R4 core 4.0.1, US Core 3.1.1 / 6.1.0 /
// 7.0.0, PAS 2.2.1 and 2.0.1, CRD 2.0.1 and the 2.2.0 preview, HRex 1.0.0,
// THO 7.0.1 and extensions 5.2.0 are embedded (packages/, generated from
// the package tarballs by go generate; provenance in packages/SOURCES.md).
// Load indexes StructureDefinitions, ValueSets and CodeSystems by
// canonical URL and version in about 10 ms; each definition is inflated
// and compiled on first use and cached.
//
// An unversioned canonical resolves in the package that refers to it,
// then in that package's dependencies, then to the highest embedded
// version; url|version pins one.
//
// # Use
//
// Load once at start and share the Registry and Validators; both are safe
// for concurrent use.
//
//	reg, err := profiles.Load()
//	v := reg.NewValidator(profiles.Options{}) // PAS 2.2.1, CRD 2.0.1
//
//	res := v.ValidatePASRequest(body) // $submit: Bundle or Parameters{Bundle}
//	if res.HasErrors() {
//		// 400 with res.OperationOutcome()
//	}
//
// Profiles are chosen by context:
//
//   - ValidatePASRequest / ValidatePASInquiry: the PAS request / inquiry
//     request Bundle profile; its entry slices give profile-claim (or
//     profile-claim-update) / profile-claim-inquiry, and every reference
//     that resolves inside the Bundle is checked against its targetProfile
//     (Claim.patient against profile-beneficiary, and so on).
//   - ValidatePASResponse / ValidatePASInquiryResponse: Priora's own
//     responses, against the response Bundle profiles.
//   - ValidateCRDHookRequest: the FHIR resources of a CDS Hooks request
//     (context.draftOrders and the like, and prefetch), each against the
//     CRD profiles for its type (one of them must match);
//     ValidateCRDResource does the same for one resource.
//   - Validate: the base definition plus any profiles passed in.
//
// Every meta.profile of every resource is honoured as well; an unknown
// one is a warning.
//
// # Checks
//
// The validator walks the published snapshots over an element tree
// decoded once per call: JSON shape (arrays, objects, primitives, "_x"
// siblings, empty values, unknown elements); cardinality of elements and
// slices; choice types; fixed and pattern values; slicing by value,
// pattern, type and (approximately, by target type) profile
// discriminators, including the FHIRPath discriminator PAS uses on
// careTeam, open and closed; extensions against their definitions (an
// unknown modifier extension is an error, an unknown extension a
// warning, a context violation an error unless listed in KnownIGDefects);
// required and extensible bindings against locally expanded value sets;
// invariants through an own FHIRPath engine; references resolved within
// the Bundle and contained resources, checked for target type and
// targetProfile.
//
// A few profile rules that widely used test data breaks (the Inferno PAS
// kit's preset DocumentReference sends attachment.url where PAS 2.2.1
// wants attachment.data) are tolerated: their findings are warnings
// marked "tolerated" with the reason, and a reference target whose only
// errors they were conforms to its target profile. The list, each entry a
// profile, an element path and a reason, is Tolerances().
//
// Terminology is local. Codes from licensed or unpublished systems (X12,
// CPT, NUBC, CMS, ICD, LOINC, SNOMED, ...) or bound to value sets not in
// any package (valueset.x12.org) cannot be checked; they give an
// "information" issue, never an error. Narrative XHTML is not checked
// (txt-1/2), nor best-practice dom-6.
//
// # Issues
//
// Each Issue has a severity (fatal, error, warning, information), a FHIR
// IssueType code, diagnostics modelled on the Java validator's messages,
// and the location as plain FHIRPath from the validated document's root,
// e.g. Bundle.entry[0].resource.item[1].extension[2].value.ofType(Coding).
// Source names the profile (url|version) whose rule produced the issue,
// so a caller can tell CRD-specific violations (Source in the CRD IG)
// from base-FHIR ones. Result.OperationOutcome renders the issues for an
// HTTP answer; Validator.Lint prints them for the `priora validate`
// command.
package profiles

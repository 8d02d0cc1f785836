package pas

// Canonical URLs and code systems of Da Vinci PAS STU 2.2.1.
const (
	pasSD = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/"

	ProfileRequestBundle         = pasSD + "profile-pas-request-bundle"
	ProfileResponseBundle        = pasSD + "profile-pas-response-bundle"
	ProfileInquiryRequestBundle  = pasSD + "profile-pas-inquiry-request-bundle"
	ProfileInquiryResponseBundle = pasSD + "profile-pas-inquiry-response-bundle"
	ProfileClaimResponse         = pasSD + "profile-claimresponse"
	ProfileClaimInquiryResponse  = pasSD + "profile-claiminquiryresponse"
	ProfileCommunicationRequest  = pasSD + "profile-communicationrequest"

	extReviewAction          = pasSD + "extension-reviewAction"
	extReviewActionCode      = pasSD + "extension-reviewActionCode"
	extItemTraceNumber       = pasSD + "extension-itemTraceNumber"
	extItemPreAuthIssueDate  = pasSD + "extension-itemPreAuthIssueDate"
	extItemPreAuthPeriod     = pasSD + "extension-itemPreAuthPeriod"
	extItemAuthorizedProv    = pasSD + "extension-itemAuthorizedProvider"
	extAuthorizedProvType    = pasSD + "extension-authorizedProviderType"
	extItemRequestedSvcDate  = pasSD + "extension-itemRequestedServiceDate"
	extClaimResponseReviewer = pasSD + "extension-claimResponseReviewer"
	extTransmissionIDs       = pasSD + "extension-TransmissionIdentifiers"
	extCertificationType     = pasSD + "extension-certificationType"
	extLevelOfService        = pasSD + "extension-levelOfServiceCode"
	extInfoCancelled         = pasSD + "extension-infoCancelled"
	extInfoCancelledModifier = pasSD + "modifierextension-infoCancelled"
	extInfoChanged           = pasSD + "extension-infoChanged"
	extAuthorizationNumber   = pasSD + "extension-authorizationNumber"
	extAdminReferenceNumber  = pasSD + "extension-administrationReferenceNumber"
	extErrorPath             = pasSD + "extension-errorPath"
	extServiceLineNumber     = pasSD + "extension-serviceLineNumber"
	extRequestedService      = pasSD + "extension-requestedService"
	extItemAuthorizedDetail  = pasSD + "extension-itemAuthorizedDetail"
	extErrorElement          = pasSD + "extension-errorElement"
	extErrorFollowupAction   = pasSD + "extension-errorFollowupAction"
	extDataAbsentReason      = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"

	sysX12ReviewAction = "https://codesystem.x12.org/005010/306"
	sysX12ReasonCode   = "https://codesystem.x12.org/external/886" // X12278ReviewDecisionReasonCode includes only this system
	sysX12EntityID     = "https://codesystem.x12.org/005010/98"
	sysX12CertType     = "https://codesystem.x12.org/005010/1322"
	sysX12RejectReason = "https://codesystem.x12.org/005010/901"
	sysX12ReportType   = "https://codesystem.x12.org/005010/755"
	sysX12FollowUp     = "https://codesystem.x12.org/005010/889"
	sysAdjudication    = "http://terminology.hl7.org/CodeSystem/adjudication"
	sysNPI             = "http://hl7.org/fhir/sid/us-npi"
	sysIdentifierType  = "http://terminology.hl7.org/CodeSystem/v2-0203"
	sysPOS             = "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"
	sysCoverageClass   = "http://terminology.hl7.org/CodeSystem/coverage-class"
	sysPASTempCodes    = "http://hl7.org/fhir/us/davinci-pas/CodeSystem/PASTempCodes"
	sysNUBCRevenue     = "https://www.nubc.org/CodeSystem/RevenueCodes"

	extAdmissionDates          = pasSD + "extension-admissionDates"
	extDischargeDate           = pasSD + "extension-dischargeDate"
	extEPSDTIndicator          = pasSD + "extension-epsdtIndicator"
	extNursingHomeResidential  = pasSD + "extension-nursingHomeResidentialStatus"
	extNursingHomeLevelOfCare  = pasSD + "extension-nursingHomeLevelOfCare"
	extProductOrServiceCodeEnd = pasSD + "extension-productOrServiceCodeEnd"
	extRevenueCode             = pasSD + "extension-revenueCode"
)

// reviewActionDisplay is the X12 306 display for the codes Priora sends.
var reviewActionDisplay = map[string]string{
	"A1": "Certified in total",
	"A3": "Not Certified",
	"A4": "Pended",
	"A6": "Modified",
	"C":  "Cancelled",
}

// modifierExtensions are the modifier extensions Priora understands; any
// other modifier extension makes a request unprocessable (PAS spec-25).
var modifierExtensions = map[string]bool{
	extInfoCancelledModifier: true,
	extInfoCancelled:         true,
}

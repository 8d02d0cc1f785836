package profiles

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// The expected results below are the examples of the FHIRPath N1
// specification (https://hl7.org/fhirpath/N1/), cited by section, where it
// gives one; the other rows apply the rule of the cited section to the
// Patient example of FHIR R4 (patient-example.json, abridged).

const fpPatient = `{"resourceType":"Patient","id":"example",
 "identifier":[{"use":"usual","type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR"}]},"system":"urn:oid:1.2.36.146.595.217.0.1","value":"12345"}],
 "active":true,
 "name":[{"use":"official","family":"Chalmers","given":["Peter","James"]},{"use":"usual","given":["Jim"]},
  {"use":"maiden","family":"Windsor","given":["Peter","James"],"period":{"end":"2002"}}],
 "telecom":[{"use":"home"},{"system":"phone","value":"(03) 5555 6473","use":"work","rank":1},
  {"system":"phone","value":"(03) 3410 5613","use":"mobile","rank":2},{"system":"phone","value":"(03) 5555 8834","use":"old","period":{"end":"2014"}}],
 "gender":"male","birthDate":"1974-12-25",
 "_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"1974-12-25T14:35:45-05:00"}]},
 "deceasedBoolean":false}`

const fpObservation = `{"resourceType":"Observation","id":"body-weight","status":"final",
 "code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},
 "effectiveDateTime":"2016-03-28",
 "valueQuantity":{"value":185,"unit":"lbs","system":"http://unitsofmeasure.org","code":"[lb_av]"}}`

const fpBundle = `{"resourceType":"Bundle","type":"collection","entry":[
 {"fullUrl":"http://example.org/fhir/Claim/c1","resource":{"resourceType":"Claim","id":"c1","patient":{"reference":"Patient/p1"},
   "item":[{"sequence":1,"productOrServiceCodeableConcept":{"coding":[{"system":"http://www.ama-assn.org/go/cpt","code":"97110"}]},"quantity":{"value":12}},
           {"sequence":2,"productOrServiceCodeableConcept":{"coding":[{"system":"http://www.ama-assn.org/go/cpt","code":"97140"}]},"quantity":{"value":4}}]}},
 {"fullUrl":"http://example.org/fhir/Patient/p1","resource":{"resourceType":"Patient","id":"p1","birthDate":"2010-07-01"}},
 {"fullUrl":"http://example.org/fhir/QuestionnaireResponse/q1","resource":{"resourceType":"QuestionnaireResponse","id":"q1",
   "questionnaire":"http://example.org/Questionnaire/pt","status":"completed",
   "item":[{"linkId":"1","answer":[{"valueBoolean":true}],"item":[{"linkId":"1.1","answer":[{"valueInteger":6}]}]},
           {"linkId":"2","answer":[{"valueString":"knee"}]}]}}]}`

var fpNow = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

func mustResource(t *testing.T, s string) Value {
	t.Helper()
	v, err := ParseResource([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// render shows a result collection as FHIRPath literals: 'text', 5, 2.5,
// true, @2014-01-01, 4 'mg', an element without a value by its name, {}
// for empty, and "error" for an error.
func render(out []Value, err error) string {
	if err != nil {
		return "error"
	}
	if len(out) == 0 {
		return "{}"
	}
	var parts []string
	for _, v := range out {
		p, ok := v.v.prim()
		switch {
		case !ok:
			parts = append(parts, v.v.e.name)
		case p.k == fpStr:
			parts = append(parts, "'"+p.s+"'")
		case p.isTemporal():
			parts = append(parts, "@"+p.s)
		default:
			parts = append(parts, p.text())
		}
	}
	return strings.Join(parts, ", ")
}

type fpCase struct {
	section, expr, want string
}

var fpCases = []fpCase{
	// §3 Path selection; §3.1 Collections; §6.4.? Indexer
	{"3 Path selection", "Patient.name.given", "'Peter', 'James', 'Jim', 'Peter', 'James'"},
	{"3 Path selection", "name.given", "'Peter', 'James', 'Jim', 'Peter', 'James'"},
	{"3 Path selection", "Patient.name.family", "'Chalmers', 'Windsor'"},
	{"3 Path selection", "Patient.deceased", "false"},
	{"3 Path selection", "Patient.photo", "{}"},
	{"5.3.1 [ index : Integer ]", "Patient.name[0].family", "'Chalmers'"},
	{"5.3.1 [ index : Integer ]", "Patient.name[3]", "{}"},
	// §4.1 Literals
	{"4.1 Literals", "true", "true"},
	{"4.1 Literals", "'test string'", "'test string'"},
	{"4.1 Literals", "'O\\'Brien'", "'O'Brien'"},
	{"4.1 Literals", "-5", "-5"},
	{"4.1 Literals", "-5.5", "-5.5"},
	{"4.1 Literals", "@2015-02-04", "@2015-02-04"},
	{"4.1 Literals", "@2015-02-04T14:34:28Z", "@2015-02-04T14:34:28Z"},
	{"4.1 Literals", "@2015-02-04T14:34:28.123-05:00", "@2015-02-04T14:34:28.123-05:00"},
	{"4.1 Literals", "@T14:34:28", "@T14:34:28"},
	{"4.1 Literals", "@2015-02-30", "error"},
	{"4.1 Literals", "10 'mg'", "10 'mg'"},
	{"4.1 Literals", "4 days", "4 days"},
	// §5.1 Existence
	{"5.1.1 empty()", "Patient.name.empty()", "false"},
	{"5.1.1 empty()", "Patient.photo.empty()", "true"},
	{"5.1.1 empty()", "{}.empty()", "true"},
	{"5.1.2 exists()", "Patient.name.exists()", "true"},
	{"5.1.2 exists()", "Patient.name.exists(use = 'nickname')", "false"},
	{"5.1.2 exists()", "Patient.name.exists(use = 'usual')", "true"},
	{"5.1.3 all()", "Patient.telecom.all(system.exists())", "false"},
	{"5.1.3 all()", "Patient.name.all(given.exists())", "true"},
	{"5.1.3 all()", "{}.all(false)", "true"},
	{"5.1.4 allTrue()", "true.combine(true).allTrue()", "true"},
	{"5.1.4 allTrue()", "true.combine(false).allTrue()", "false"},
	{"5.1.4 allTrue()", "{}.allTrue()", "true"},
	{"5.1.5 anyTrue()", "false.combine(true).anyTrue()", "true"},
	{"5.1.5 anyTrue()", "{}.anyTrue()", "false"},
	{"5.1.6 allFalse()", "false.combine(false).allFalse()", "true"},
	{"5.1.7 anyFalse()", "true.combine(false).anyFalse()", "true"},
	{"5.1.7 anyFalse()", "Patient.name.anyFalse()", "error"},
	{"5.1.8 subsetOf()", "(1 | 2).subsetOf(1 | 2 | 3)", "true"},
	{"5.1.8 subsetOf()", "(1 | 4).subsetOf(1 | 2)", "false"},
	{"5.1.8 subsetOf()", "{}.subsetOf(1)", "true"},
	{"5.1.9 supersetOf()", "(1 | 2 | 3).supersetOf(2 | 3)", "true"},
	{"5.1.9 supersetOf()", "(1 | 2).supersetOf(2 | 3)", "false"},
	{"5.1.10 count()", "Patient.name.given.count()", "5"},
	{"5.1.10 count()", "{}.count()", "0"},
	{"5.1.11 distinct()", "Patient.name.given.distinct()", "'Peter', 'James', 'Jim'"},
	{"5.1.12 isDistinct()", "Patient.name.given.isDistinct()", "false"},
	{"5.1.12 isDistinct()", "Patient.name.family.isDistinct()", "true"},
	// §5.2 Filtering and projection
	{"5.2.1 where()", "Patient.telecom.where(use = 'mobile').value", "'(03) 3410 5613'"},
	{"5.2.1 where()", "Patient.telecom.where(rank > 1).use", "'mobile'"},
	{"5.2.1 where()", "Patient.name.where($this.use = 'maiden').family", "'Windsor'"},
	{"5.2.2 select()", "Patient.name.select(given.first())", "'Peter', 'Jim', 'Peter'"},
	{"5.2.2 select()", "Patient.name.select(use & ':' & family)", "'official:Chalmers', 'usual:', 'maiden:Windsor'"},
	{"5.2.3 repeat()", "%qr.repeat(item).linkId", "'1', '2', '1.1'"},
	{"5.2.3 repeat()", "(1 | 2).repeat($this)", "1, 2"},
	{"5.2.4 ofType()", "%obs.value.ofType(Quantity).value", "185"},
	{"5.2.4 ofType()", "%obs.value.ofType(String)", "{}"},
	{"5.2.4 ofType()", "(1 | 'a' | 2.5).ofType(Integer)", "1"},
	// §5.3 Subsetting
	{"5.3.2 single()", "Patient.gender.single()", "'male'"},
	{"5.3.2 single()", "Patient.name.single()", "error"},
	{"5.3.3 first()", "Patient.name.given.first()", "'Peter'"},
	{"5.3.4 last()", "Patient.name.given.last()", "'James'"},
	{"5.3.5 tail()", "Patient.name.given.tail().count()", "4"},
	{"5.3.6 skip()", "Patient.name.given.skip(3)", "'Peter', 'James'"},
	{"5.3.6 skip()", "Patient.name.given.skip(-1).count()", "5"},
	{"5.3.7 take()", "Patient.name.given.take(2)", "'Peter', 'James'"},
	{"5.3.7 take()", "Patient.name.given.take(0)", "{}"},
	{"5.3.8 intersect()", "(1 | 2 | 3).intersect(2 | 4)", "2"},
	{"5.3.9 exclude()", "(1 | 2 | 3).exclude(2 | 4)", "1, 3"},
	// §5.4 Combining
	{"5.4.1 union()", "(1 | 2).union(2 | 3)", "1, 2, 3"},
	{"5.4.2 combine()", "(1 | 2).combine(2 | 3)", "1, 2, 2, 3"},
	// §5.5 Conversion
	{"5.5.1 iif()", "iif(Patient.active, 'active', 'inactive')", "'active'"},
	{"5.5.1 iif()", "iif({}, 'a', 'b')", "'b'"},
	{"5.5.1 iif()", "iif(false, 'a')", "{}"},
	{"5.5.1 iif()", "iif(Patient.name, 'a', 'b')", "error"},
	{"5.5.2 toBoolean()", "'true'.toBoolean()", "true"},
	{"5.5.2 toBoolean()", "'Y'.toBoolean()", "true"},
	{"5.5.2 toBoolean()", "'0.0'.toBoolean()", "false"},
	{"5.5.2 convertsToBoolean()", "'maybe'.convertsToBoolean()", "false"},
	{"5.5.3 toInteger()", "'123'.toInteger()", "123"},
	{"5.5.3 toInteger()", "'1.5'.toInteger()", "{}"},
	{"5.5.3 toInteger()", "true.toInteger()", "1"},
	{"5.5.3 convertsToInteger()", "'12a'.convertsToInteger()", "false"},
	{"5.5.4 toDate()", "'2019-03-01'.toDate()", "@2019-03-01"},
	{"5.5.4 toDate()", "'2019-03-01T10:00:00Z'.toDate()", "@2019-03-01"},
	{"5.5.4 convertsToDate()", "'2019-13-01'.convertsToDate()", "false"},
	{"5.5.5 toDateTime()", "'2019-03-01T10:00:00Z'.toDateTime()", "@2019-03-01T10:00:00Z"},
	{"5.5.5 toDateTime()", "Patient.birthDate.toDateTime()", "@1974-12-25T"},
	{"5.5.6 toDecimal()", "'1.5'.toDecimal()", "1.5"},
	{"5.5.6 convertsToDecimal()", "'1.5e3'.convertsToDecimal()", "false"},
	{"5.5.7 toQuantity()", "'4 days'.toQuantity()", "4 days"},
	{"5.5.7 toQuantity()", "'1.5 \\'mg\\''.toQuantity()", "1.5 'mg'"},
	{"5.5.7 toQuantity()", "'1 \\'g\\''.toQuantity('mg')", "1000 'mg'"},
	{"5.5.7 toQuantity()", "5.toQuantity()", "5 '1'"},
	{"5.5.7 convertsToQuantity()", "'tall'.convertsToQuantity()", "false"},
	{"5.5.8 toString()", "1.toString()", "'1'"},
	{"5.5.8 toString()", "(1 + 2).toString()", "'3'"},
	{"5.5.8 toString()", "true.toString()", "'true'"},
	{"5.5.8 toString()", "@2014-01.toString()", "'2014-01'"},
	{"5.5.8 toString()", "(2 'mg').toString()", "'2 'mg''"},
	{"5.5.9 toTime()", "'10:00'.toTime()", "@T10:00"},
	{"5.5.9 convertsToTime()", "'25:00'.convertsToTime()", "false"},
	// §5.6 String Manipulation
	{"5.6.1 indexOf()", "'abcdefg'.indexOf('bc')", "1"},
	{"5.6.1 indexOf()", "'abcdefg'.indexOf('x')", "-1"},
	{"5.6.1 indexOf()", "'abcdefg'.indexOf('abcdefg')", "0"},
	{"5.6.1 indexOf()", "'äbc'.indexOf('c')", "2"},
	{"5.6.2 substring()", "'abcdefg'.substring(3)", "'defg'"},
	{"5.6.2 substring()", "'abcdefg'.substring(1, 2)", "'bc'"},
	{"5.6.2 substring()", "'abcdefg'.substring(6, 2)", "'g'"},
	{"5.6.2 substring()", "'abcdefg'.substring(7, 1)", "{}"},
	{"5.6.3 startsWith()", "'abcdefg'.startsWith('abc')", "true"},
	{"5.6.3 startsWith()", "'abcdefg'.startsWith('xyz')", "false"},
	{"5.6.4 endsWith()", "'abcdefg'.endsWith('efg')", "true"},
	{"5.6.4 endsWith()", "'abcdefg'.endsWith('abc')", "false"},
	{"5.6.5 contains()", "'abc'.contains('b')", "true"},
	{"5.6.5 contains()", "'abc'.contains('bcd')", "false"},
	{"5.6.5 contains()", "'abc'.contains('')", "true"},
	{"5.6.6 upper()", "'abcdefg'.upper()", "'ABCDEFG'"},
	{"5.6.7 lower()", "'ABCDEFG'.lower()", "'abcdefg'"},
	{"5.6.8 replace()", "'abcdefg'.replace('cde', '123')", "'ab123fg'"},
	{"5.6.8 replace()", "'abcdefg'.replace('cde', '')", "'abfg'"},
	{"5.6.8 replace()", "'abc'.replace('', 'x')", "'xaxbxcx'"},
	{"5.6.9 matches()", "'abc'.matches('a.c')", "true"},
	{"5.6.9 matches()", "'12345'.matches('[0-9]{3}')", "false"}, // anchored, as the FHIR validators apply it
	{"5.6.10 replaceMatches()", "'11/30/1972'.replaceMatches('\\\\b(?<month>\\\\d{1,2})/(?<day>\\\\d{1,2})/(?<year>\\\\d{2,4})\\\\b', '${day}-${month}-${year}')", "'30-11-1972'"},
	{"5.6.11 length()", "'abcdefg'.length()", "7"},
	{"5.6.11 length()", "Patient.name.length()", "error"},
	{"5.6.12 toChars()", "'abc'.toChars()", "'a', 'b', 'c'"},
	{"5.6 String Manipulation: trim()", "'  a b  '.trim()", "'a b'"},
	{"5.6 String Manipulation: split()", "'A,B,C'.split(',')", "'A', 'B', 'C'"},
	{"5.6 String Manipulation: join()", "Patient.name.given.distinct().join(',')", "'Peter,James,Jim'"},
	{"5.6 String Manipulation: join()", "('a' | 'b').join()", "'ab'"},
	{"5.6 String Manipulation: encode()", "'test'.encode('base64')", "'dGVzdA=='"},
	{"5.6 String Manipulation: encode()", "'test'.encode('hex')", "'74657374'"},
	{"5.6 String Manipulation: decode()", "'dGVzdA=='.decode('base64')", "'test'"},
	{"5.6 String Manipulation: decode()", "'74657374'.decode('hex')", "'test'"},
	{"5.6 String Manipulation: encode()", "'test'.encode('rot13')", "error"},
	{"5.6 String Manipulation: escape()", "'\"1<2\"'.escape('html')", "'&quot;1&lt;2&quot;'"},
	{"5.6 String Manipulation: unescape()", "'&quot;1&lt;2&quot;'.unescape('html')", "'\"1<2\"'"},
	{"5.6 String Manipulation: escape()", "'\"1<2\"'.escape('json')", "'\\\"1<2\\\"'"},
	// §5.7 Math
	{"5.7.1 abs()", "(-5).abs()", "5"},
	{"5.7.1 abs()", "(-5.5).abs()", "5.5"},
	{"5.7.1 abs()", "(-5.5 'mg').abs()", "5.5 'mg'"},
	{"5.7.2 ceiling()", "1.1.ceiling()", "2"},
	{"5.7.2 ceiling()", "(-1.1).ceiling()", "-1"},
	{"5.7.3 exp()", "0.exp()", "1"},
	{"5.7.4 floor()", "2.1.floor()", "2"},
	{"5.7.4 floor()", "(-2.1).floor()", "-3"},
	{"5.7.5 ln()", "1.ln()", "0"},
	{"5.7.6 log()", "16.log(2)", "4"},
	{"5.7.6 log()", "100.0.log(10.0)", "2"},
	{"5.7.7 power()", "2.power(3)", "8"},
	{"5.7.7 power()", "2.5.power(2)", "6.25"},
	{"5.7.7 power()", "(-1).power(0.5)", "{}"},
	{"5.7.8 round()", "1.round()", "1"},
	{"5.7.8 round()", "3.14159.round(3)", "3.142"},
	{"5.7.9 sqrt()", "81.sqrt()", "9"},
	{"5.7.9 sqrt()", "(-1).sqrt()", "{}"},
	{"5.7.10 truncate()", "101.truncate()", "101"},
	{"5.7.10 truncate()", "1.00000001.truncate()", "1"},
	{"5.7.10 truncate()", "(-1.56).truncate()", "-1"},
	// §5.8 Tree navigation
	{"5.8.1 children()", "Patient.identifier.children().count()", "4"},
	{"5.8.2 descendants()", "Patient.identifier.descendants().count()", "7"},
	// §5.9 Utility functions
	{"5.9.1 trace()", "Patient.name.given.trace('given').count()", "5"},
	{"5.9.2 now()", "now()", "@2026-12-06T10:00:00.000Z"},
	{"5.9.3 timeOfDay()", "timeOfDay()", "@T10:00:00.000"},
	{"5.9.4 today()", "today()", "@2026-12-06"},
	// §6.1 Equality
	{"6.1.1 = (Equals)", "1 = 1.0", "true"},
	{"6.1.1 = (Equals)", "'a' = 'A'", "false"},
	{"6.1.1 = (Equals)", "{} = 1", "{}"},
	{"6.1.1 = (Equals)", "(1 | 2) = (1 | 2 | 3)", "false"},
	{"6.1.1 = (Equals)", "Patient.name.given = Patient.name.given", "true"},
	{"6.1.1 = (Equals)", "Patient.name[0] = Patient.name[2]", "false"},
	{"6.1.1 = (Equals)", "0.1 + 0.2 = 0.3", "true"},
	{"6.1.1 = (Equals)", "@2012 = @2012", "true"},
	{"6.1.1 = (Equals)", "@2012 = @2013", "false"},
	{"6.1.1 = (Equals)", "@2012-01 = @2012", "{}"},
	{"6.1.1 = (Equals)", "@2012-01-01T10:30 = @2012-01-01T10:30", "true"},
	{"6.1.1 = (Equals)", "@2012-01-01T10:30 = @2012-01-01T10:31", "false"},
	{"6.1.1 = (Equals)", "@2012-01-01T10:30:31 = @2012-01-01T10:30", "{}"},
	{"6.1.1 = (Equals)", "@2012-01-01T10:30:31.0 = @2012-01-01T10:30:31", "true"},
	{"6.1.1 = (Equals)", "@2012-01-01T10:30:31.1 = @2012-01-01T10:30:31", "false"},
	{"6.1.1 = (Equals)", "@2017-11-05T01:30:00.0-04:00 = @2017-11-05T00:30:00.0-05:00", "true"},
	{"6.1.1 = (Equals)", "@2017-11-05T01:30:00.0-04:00 = @2017-11-05T01:30:00.0-05:00", "false"},
	{"6.1.1 = (Equals)", "@2017-11-05T01:30:00.0-04:00 = @2017-11-05T05:30:00.0Z", "true"},
	{"6.1.1 = (Equals)", "Patient.birthDate = @1974-12-25", "true"},
	{"6.1.1 = (Equals)", "4 'g' = 4000 'mg'", "true"},
	{"6.1.1 = (Equals)", "4 'g' = 4 'm'", "{}"},
	{"6.1.1 = (Equals)", "1 second = 1 's'", "true"},
	{"6.1.1 = (Equals)", "7 days = 1 week", "true"},
	{"6.1.1 = (Equals)", "1 year = 1 'a'", "{}"},
	{"6.1.2 ~ (Equivalent)", "'a' ~ 'A'", "true"},
	{"6.1.2 ~ (Equivalent)", "'a  b' ~ 'A B'", "true"},
	{"6.1.2 ~ (Equivalent)", "{} ~ {}", "true"},
	{"6.1.2 ~ (Equivalent)", "1.2 ~ 1.23", "true"},
	{"6.1.2 ~ (Equivalent)", "@2012 ~ @2012-01", "false"},
	{"6.1.3 != (Not Equals)", "1 != 2", "true"},
	{"6.1.3 != (Not Equals)", "{} != 2", "{}"},
	{"6.1.4 !~ (Not Equivalent)", "'a' !~ 'B'", "true"},
	// §6.2 Comparison
	{"6.2 Comparison", "10 > 5", "true"},
	{"6.2 Comparison", "10 > 5.0", "true"},
	{"6.2 Comparison", "'abc' > 'ABC'", "true"},
	{"6.2 Comparison", "4 'm' > 4 'cm'", "true"},
	{"6.2 Comparison", "@2018-03-01 > @2018-01-01", "true"},
	{"6.2 Comparison", "@2018-03 > @2018-03-01", "{}"},
	{"6.2 Comparison", "@2018-03-01T10:30:00 > @2018-03-01T10:00:00", "true"},
	{"6.2 Comparison", "@2018-03-01T10 > @2018-03-01T10:30", "{}"},
	{"6.2 Comparison", "@2018-03-01T10:30:00 > @2018-03-01T10:30:00.0", "false"},
	{"6.2 Comparison", "@T10:30:00 > @T10:00:00", "true"},
	{"6.2 Comparison", "@T10 > @T10:30", "{}"},
	{"6.2 Comparison", "10 < 5", "false"},
	{"6.2 Comparison", "10 <= 10.0", "true"},
	{"6.2 Comparison", "'abc' >= 'abd'", "false"},
	{"6.2 Comparison", "1 < 'a'", "error"},
	{"6.2 Comparison", "@T10:00 < @2018-01-01", "error"},
	{"6.2 Comparison", "%obs.value > 80 'kg'", "true"},
	{"6.2 Comparison", "%obs.value < 185.5 '[lb_av]'", "true"},
	{"6.2 Comparison", "%obs.value > 80 'm'", "{}"},
	{"6.2 Comparison", "Patient.birthDate < @1975", "true"},
	{"6.2 Comparison", "Patient.birthDate < @1974", "{}"},
	{"6.2 Comparison", "Patient.birthDate < @1974-06", "false"},
	// §6.3 Types
	{"6.3.1 is", "1 is Integer", "true"},
	{"6.3.1 is", "1 is String", "false"},
	{"6.3.1 is", "Patient.active is Boolean", "true"},
	{"6.3.1 is", "%obs.value is Quantity", "true"},
	{"6.3.1 is", "Patient is Resource", "true"},
	{"6.3.2 as", "'a' as String", "'a'"},
	{"6.3.2 as", "1 as String", "{}"},
	{"6.3.3 is()", "@2014.is(Date)", "true"},
	{"6.3.4 as()", "%obs.value.as(Quantity).unit", "'lbs'"},
	{"6.3.4 as()", "(1 | 'a' | 2).as(Integer)", "1, 2"}, // on a collection, as ofType() (R4 dom-3 relies on it)
	// §6.4 Collections
	{"6.4.1 | (union collections)", "1 | 2 | 2", "1, 2"},
	{"6.4.2 in (membership)", "2 in (1 | 2)", "true"},
	{"6.4.2 in (membership)", "{} in (1 | 2)", "{}"},
	{"6.4.2 in (membership)", "(1 | 2) in (1 | 2)", "error"},
	{"6.4.3 contains (containership)", "(1 | 2) contains 3", "false"},
	{"6.4.3 contains (containership)", "Patient.name.use contains 'maiden'", "true"},
	// §6.5 Boolean logic (the truth tables are in TestFHIRPathBooleanTables)
	{"6.5.5 not()", "true.not()", "false"},
	{"6.5.5 not()", "{}.not()", "{}"},
	{"6.5.5 not()", "Patient.name.empty().not()", "true"},
	// §6.6 Math
	{"6.6.1 * (multiplication)", "2 * 3", "6"},
	{"6.6.1 * (multiplication)", "3 * 2.5", "7.5"},
	{"6.6.1 * (multiplication)", "2 'cm' * 3", "6 'cm'"},
	{"6.6.2 / (division)", "1 / 4", "0.25"},
	{"6.6.2 / (division)", "12 / 6", "2"},
	{"6.6.2 / (division)", "1 / 0", "{}"},
	{"6.6.3 + (addition)", "2 + 3", "5"},
	{"6.6.3 + (addition)", "'a' + 'b'", "'ab'"},
	{"6.6.3 + (addition)", "'ABC' + {}", "{}"},
	{"6.6.3 + (addition)", "1 'g' + 500 'mg'", "1.5 'g'"},
	{"6.6.3 + (addition)", "1 'g' + 1 'm'", "{}"},
	{"6.6.3 + (addition)", "1 + 'a'", "error"},
	{"6.6.4 - (subtraction)", "3 - 1", "2"},
	{"6.6.4 - (subtraction)", "'a' - 'b'", "error"},
	{"6.6.4 - (subtraction)", "-(1 | 2)", "error"},
	{"6.6.5 div", "5 div 2", "2"},
	{"6.6.5 div", "5.5 div 0.7", "7"},
	{"6.6.5 div", "5 div 0", "{}"},
	{"6.6.6 mod", "5 mod 2", "1"},
	{"6.6.6 mod", "5.5 mod 0.7", "0.6"},
	{"6.6.6 mod", "5 mod 0", "{}"},
	{"6.6.7 & (String concatenation)", "'ABC' & 'DEF'", "'ABCDEF'"},
	{"6.6.7 & (String concatenation)", "'ABC' & {} & 'DEF'", "'ABCDEF'"},
	// §6.6.8 Date/Time Arithmetic
	{"6.6.8 Date/Time Arithmetic", "@2014 + 24 months", "@2016"},
	{"6.6.8 Date/Time Arithmetic", "@2014 + 23 months", "@2015"},
	{"6.6.8 Date/Time Arithmetic", "@2014 - 23 months", "@2013"},
	{"6.6.8 Date/Time Arithmetic", "@2019-03-01 + 24 months", "@2021-03-01"},
	{"6.6.8 Date/Time Arithmetic", "@2012-02-29 + 1 year", "@2013-02-28"},
	{"6.6.8 Date/Time Arithmetic", "@2019-01-31 + 1 month", "@2019-02-28"},
	{"6.6.8 Date/Time Arithmetic", "@2024-03-01 - 1 day", "@2024-02-29"},
	{"6.6.8 Date/Time Arithmetic", "@2024-03-01 - 2 weeks", "@2024-02-16"},
	{"6.6.8 Date/Time Arithmetic", "@2024-03-01 + 25 hours", "@2024-03-02"},
	{"6.6.8 Date/Time Arithmetic", "@2024-03-01 + 1.9 days", "@2024-03-02"},
	{"6.6.8 Date/Time Arithmetic", "@2014-01-25T14:30:14.559 + 1 second", "@2014-01-25T14:30:15.559"},
	{"6.6.8 Date/Time Arithmetic", "@2014-01-25T14:30:14.559 + 1.5 's'", "@2014-01-25T14:30:16.059"},
	{"6.6.8 Date/Time Arithmetic", "@2019-12-31T23:30:00Z + 45 minutes", "@2020-01-01T00:15:00Z"},
	{"6.6.8 Date/Time Arithmetic", "@T10:30 + 45 minutes", "@T11:15"},
	{"6.6.8 Date/Time Arithmetic", "@T10:30 + 1 day", "error"},
	{"6.6.8 Date/Time Arithmetic", "@2024-01-01 + 1 'a'", "error"},
	{"6.6.8 Date/Time Arithmetic", "@2024-01-01 + 1 'kg'", "error"},
	{"6.6.8 Date/Time Arithmetic", "today() - 18 years", "@2008-12-06"},
	{"6.6.8 Date/Time Arithmetic", "%today - 18 years", "@2008-12-06"},
	{"6.6.8 Date/Time Arithmetic", "Patient.birthDate <= today() - 18 years", "true"},
	{"6.6.8 Date/Time Arithmetic", "Patient.birthDate + 52 years > today()", "true"},
	{"6.6.8 Date/Time Arithmetic", "Patient.birthDate + 51 years > today()", "false"},
	// §7 Aggregates
	{"7.1 aggregate()", "(1 | 2 | 3 | 4).aggregate($this + $total, 0)", "10"},
	{"7.1 aggregate()", "(3 | 1 | 2).aggregate(iif($total.empty(), $this, iif($this < $total, $this, $total)))", "1"},
	{"7.1 aggregate()", "{}.aggregate($this + $total, 0)", "0"},
	{"5.2 Filtering and projection: $index", "(10 | 20 | 30).select($index)", "0, 1, 2"},
	// §8 Lexical Elements
	{"8.2 Comments", "1 /* one */ + 2 // plus two", "3"},
	{"8.3 Delimited identifiers", "Patient.`name`.given.first()", "'Peter'"},
	// §9 Environment variables
	{"9 Environment variables", "%ucum", "'http://unitsofmeasure.org'"},
	{"9 Environment variables", "%resource.id", "'example'"},
	{"9 Environment variables", "%context.gender", "'male'"},
	{"9 Environment variables", "%`vs-administrative-gender`", "'http://hl7.org/fhir/ValueSet/administrative-gender'"},
	{"9 Environment variables", "%unknown", "error"},
	// FHIR R4 §2.1.9.1 additional functions
	{"FHIR extension()", "Patient.birthDate.extension('http://hl7.org/fhir/StructureDefinition/patient-birthTime').value", "'1974-12-25T14:35:45-05:00'"},
	{"FHIR hasValue()", "Patient.birthDate.hasValue()", "true"},
	{"FHIR hasValue()", "Patient.name[0].hasValue()", "false"},
	{"FHIR getValue()", "Patient.gender.getValue()", "'male'"},
	{"FHIR resolve()", "%bundle.entry.resource.ofType(Claim).patient.resolve().birthDate", "'2010-07-01'"},
	{"FHIR resolve()", "%bundle.entry.resource.ofType(Claim).patient.resolve().id", "'p1'"},
	{"FHIR memberOf()", "Patient.gender.memberOf('http://hl7.org/fhir/ValueSet/administrative-gender')", "error"},
	{"FHIR comparable()", "(1 'cm').comparable(1 '[in_i]')", "true"},
	{"FHIR comparable()", "(1 'cm').comparable(1 's')", "false"},
}

func TestFHIRPathSpecExamples(t *testing.T) {
	patient := mustResource(t, fpPatient)
	vars := map[string][]Value{
		"obs":    {mustResource(t, fpObservation)},
		"bundle": {mustResource(t, fpBundle)},
		"today":  {DateValue(fpNow)},
	}
	qr, err := CompileFHIRPath("entry.resource.ofType(QuestionnaireResponse)")
	if err != nil {
		t.Fatal(err)
	}
	vars["qr"], err = qr.Evaluate(vars["bundle"], nil)
	if err != nil || len(vars["qr"]) != 1 {
		t.Fatalf("QuestionnaireResponse: %v %v", vars["qr"], err)
	}
	env := &FHIRPathEnv{Vars: vars, Now: fpNow}
	for _, c := range fpCases {
		expr, err := CompileFHIRPath(c.expr)
		var got string
		if err != nil {
			got = render(nil, err)
		} else {
			got = render(expr.Evaluate([]Value{patient}, env))
		}
		if got != c.want {
			detail := ""
			if err == nil {
				_, err = expr.Evaluate([]Value{patient}, env)
			}
			if err != nil {
				detail = " (" + err.Error() + ")"
			}
			t.Errorf("%s: %s = %s, want %s%s", c.section, c.expr, got, c.want, detail)
		}
	}
}

// TestFHIRPathBooleanTables checks and, or, xor and implies against the
// truth tables of N1 §6.5 for every pair of true, false and empty.
func TestFHIRPathBooleanTables(t *testing.T) {
	vals := []string{"true", "false", "{}"}
	// want[op][left][right], indexes as in vals.
	want := map[string][3][3]string{
		"and":     {{"true", "false", "{}"}, {"false", "false", "false"}, {"{}", "false", "{}"}},
		"or":      {{"true", "true", "true"}, {"true", "false", "{}"}, {"true", "{}", "{}"}},
		"xor":     {{"false", "true", "{}"}, {"true", "false", "{}"}, {"{}", "{}", "{}"}},
		"implies": {{"true", "false", "{}"}, {"true", "true", "true"}, {"true", "{}", "{}"}},
	}
	for op, table := range want {
		for i, l := range vals {
			for j, r := range vals {
				src := l + " " + op + " " + r
				expr, err := CompileFHIRPath(src)
				if err != nil {
					t.Fatalf("%s: %v", src, err)
				}
				if got := render(expr.Evaluate(nil, nil)); got != table[i][j] {
					t.Errorf("6.5 Boolean logic: %s = %s, want %s", src, got, table[i][j])
				}
			}
		}
	}
}

// TestFHIRPathCompileErrors: functions outside the table, wrong argument
// counts and malformed input are compile errors, never a wrong answer.
func TestFHIRPathCompileErrors(t *testing.T) {
	for _, src := range []string{
		"Patient.name.lowBoundary()", "Patient.name.highBoundary()", "htmlChecks()",
		"conformsTo('http://x')", "foo()", "'a'.substring()", "'a'.upper(1)", "iif(true)",
		"Patient.name.", "(1 + 2", "'unterminated", "@2019-02-30", "1 +", "Patient.name[0",
		strings.Repeat("(", 10000) + "1" + strings.Repeat(")", 10000),
		strings.Repeat("-", 10000) + "1",
	} {
		if _, err := CompileFHIRPath(src); err == nil {
			t.Errorf("CompileFHIRPath(%.40q) succeeded", src)
		}
	}
	if _, err := CompileFHIRPath("count()", "count"); err == nil {
		t.Error("a user function may shadow a built-in")
	}
	for name, f := range fpFuncTable {
		if f.fn == nil || f.min > f.max {
			t.Errorf("function table entry %s is incomplete", name)
		}
	}
}

// TestFHIRPathPolicyCriteria is how policy criteria use the engine: one
// compiled expression, environment variables for the claim, item, patient
// and date, and a user function that finds a QuestionnaireResponse.
func TestFHIRPathPolicyCriteria(t *testing.T) {
	bundle := mustResource(t, fpBundle)
	entries, err := CompileFHIRPath("entry.resource")
	if err != nil {
		t.Fatal(err)
	}
	res, err := entries.Evaluate([]Value{bundle}, nil)
	if err != nil || len(res) != 3 {
		t.Fatalf("entries: %v %v", res, err)
	}
	claim, patient, qr := res[0], res[1], res[2]
	items, err := CompileFHIRPath("item")
	if err != nil {
		t.Fatal(err)
	}
	claimItems, err := items.Evaluate([]Value{claim}, nil)
	if err != nil || len(claimItems) != 2 {
		t.Fatalf("items: %v %v", claimItems, err)
	}

	criteria, err := CompileFHIRPath(`%patient.birthDate <= %today - 6 years
		and %item.quantity.value <= 12
		and questionnaireResponse('http://example.org/Questionnaire/pt').item.where(linkId = '1').answer.value = true
		and %claim.patient.resolve().id = %patient.id`, "questionnaireResponse")
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	var mu sync.Mutex
	lookup := func(input []Value, args [][]Value) ([]Value, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		if len(args) != 1 || len(args[0]) != 1 {
			return nil, fmt.Errorf("takes one canonical")
		}
		if args[0][0].String() == "http://example.org/Questionnaire/pt" {
			return []Value{qr}, nil
		}
		return nil, nil
	}
	eval := func(item Value, today time.Time) (bool, bool, error) {
		return criteria.EvaluateBool([]Value{claim}, &FHIRPathEnv{
			Vars: map[string][]Value{
				"claim": {claim}, "item": {item}, "patient": {patient}, "today": {DateValue(today)},
			},
			Funcs: map[string]FHIRPathFunc{"questionnaireResponse": lookup},
		})
	}
	// Many evaluations of one compiled expression, concurrently.
	var wg sync.WaitGroup
	errs := make(chan string, 40)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			item := claimItems[i%2]
			ok, defined, err := eval(item, fpNow)
			if err != nil || !defined || !ok {
				errs <- fmt.Sprintf("item %d: %v %v %v, want true", i%2, ok, defined, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	// The patient (born 2010-07-01) is 6 on 2016-07-01, not the day before.
	if ok, _, err := eval(claimItems[0], time.Date(2016, 6, 30, 0, 0, 0, 0, time.UTC)); err != nil || ok {
		t.Errorf("a day before the 6th birthday: %v %v, want false", ok, err)
	}
	if ok, _, err := eval(claimItems[0], time.Date(2016, 7, 1, 0, 0, 0, 0, time.UTC)); err != nil || !ok {
		t.Errorf("on the 6th birthday: %v %v, want true", ok, err)
	}
	if calls == 0 {
		t.Error("the user function was never called")
	}
	// Without the function's implementation the evaluation fails, it does
	// not answer.
	if _, _, err := criteria.EvaluateBool([]Value{claim}, &FHIRPathEnv{Vars: map[string][]Value{
		"claim": {claim}, "item": {claimItems[0]}, "patient": {patient}, "today": {DateValue(fpNow)},
	}}); err == nil {
		t.Error("evaluation without the user function's implementation succeeded")
	}
	// A user function's error ends the evaluation.
	failing, err := CompileFHIRPath("questionnaireResponse('a', 'b')", "questionnaireResponse")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := failing.Evaluate(nil, &FHIRPathEnv{Funcs: map[string]FHIRPathFunc{"questionnaireResponse": lookup}}); err == nil {
		t.Error("the user function's error was lost")
	}
	// More than one item is not a Boolean.
	many, _ := CompileFHIRPath("name.given")
	if _, _, err := many.EvaluateBool([]Value{mustResource(t, fpPatient)}, nil); err == nil {
		t.Error("EvaluateBool on five items succeeded")
	}
}

func TestFHIRPathValues(t *testing.T) {
	d, err := ParseDateValue("2024-05")
	if err != nil || d.Type() != "Date" || d.String() != "2024-05" {
		t.Errorf("ParseDateValue(2024-05) = %v %q %v", d.Type(), d.String(), err)
	}
	if _, err := ParseDateValue("2024-13"); err == nil {
		t.Error("ParseDateValue(2024-13) succeeded")
	}
	if v := DateTimeValue(time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)); v.String() != "2024-05-01T10:00:00.000Z" && v.String() != "2024-05-01T10:00:00.000+00:00" {
		t.Errorf("DateTimeValue = %s", v.String())
	}
	n, unit, ok := QuantityValue(4, "mg").Number()
	if !ok || n != 4 || unit != "mg" {
		t.Errorf("QuantityValue.Number() = %v %q %v", n, unit, ok)
	}
	if b, ok := BooleanValue(true).Bool(); !b || !ok {
		t.Error("BooleanValue(true).Bool()")
	}
	if _, err := ParseResource([]byte(`{"id":"x"}`)); err == nil {
		t.Error("ParseResource accepted JSON without resourceType")
	}
	p := mustResource(t, fpPatient)
	if p.Type() != "Patient" {
		t.Errorf("resource type %q", p.Type())
	}
	if v := StringValue("x"); v.Type() != "String" || v.String() != "x" {
		t.Errorf("StringValue: %s %s", v.Type(), v.String())
	}
	if IntegerValue(3).String() != "3" || DecimalValue(2.5).String() != "2.5" {
		t.Error("IntegerValue/DecimalValue rendering")
	}
}

package members

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/priora/priora/store"
)

// Format of an import stream.
type Format int

const (
	// Sniff decides from the first line: a complete resource other than a
	// Bundle is NDJSON, anything else a Bundle.
	Sniff Format = iota
	NDJSON
	BundleJSON
)

// Source is one import stream (a file or a request body).
type Source struct {
	Name   string
	Format Format
	// Open opens the stream; it is called once, or twice with
	// AllOrNothing (a check pass, then the write pass).
	Open func() (io.ReadCloser, error)
}

// Options tune an import.
type Options struct {
	// AllOrNothing checks every entry first and writes nothing if any is bad.
	AllOrNothing bool
	// Run names this import on the members it changes (Member.Source).
	Run string
	// Now stamps Member.Updated (RFC 3339).
	Now string
}

// EntryError is one bad entry: where (NDJSON line or Bundle entry index),
// the FHIRPath of the bad element, and why.
type EntryError struct {
	Source string `json:"source"`
	Line   int    `json:"line,omitempty"`
	Entry  *int   `json:"entry,omitempty"`
	Path   string `json:"expression"`
	Reason string `json:"reason"`
}

func (e EntryError) Error() string {
	where := e.Source
	if e.Line > 0 {
		where += fmt.Sprintf(":%d", e.Line)
	}
	if e.Entry != nil {
		where += fmt.Sprintf(" entry %d", *e.Entry)
	}
	return fmt.Sprintf("%s: %s: %s", where, e.Path, e.Reason)
}

// Report is what an import did. Counts are of Coverage entries: each is
// one coverage of one member.
type Report struct {
	Resources int          `json:"resources"`
	Created   int          `json:"created"`
	Updated   int          `json:"updated"`
	Unchanged int          `json:"unchanged"`
	Errors    []EntryError `json:"errors,omitempty"`
	// Written is false when AllOrNothing found errors and wrote nothing.
	Written bool `json:"written"`
}

// ErrStream is a stream that cannot be read on (malformed JSON outside an
// entry, or not a Bundle or NDJSON): the import stops there.
var ErrStream = errors.New("members: unreadable import stream")

// maxLine bounds one NDJSON line (one resource).
const maxLine = 4 << 20

// maxErrors bounds the errors an import reports.
const maxErrors = 1000

// Import reads rosters from sources and upserts their members. Entries
// that are bad are reported and skipped (or, with AllOrNothing, nothing is
// written). A stream error stops the import and is returned with the
// report so far.
func (r *Roster) Import(ctx context.Context, sources []Source, opt Options) (*Report, error) {
	r.importMu.Lock()
	defer r.importMu.Unlock()
	defer r.invalidate()
	// One import at a time across processes too: two imports changing one
	// member would each merge into the member as they read it, and the
	// second write would lose the first's coverage.
	leases, err := r.st.Subscriptions(ctx)
	if err != nil {
		return nil, err
	}
	lease, err := leases.Acquire(ctx, importLease, newRunID(), r.now(), r.now().Add(importLeaseFor))
	if errors.Is(err, store.ErrConflict) {
		return nil, ErrImportRunning
	}
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := leases.Release(context.WithoutCancel(ctx), lease); err != nil {
			slog.WarnContext(ctx, "members: import lease not released; it expires on its own", "err", err)
		}
	}()
	if opt.AllOrNothing {
		check := &importer{r: r, opt: opt, dry: true, leases: leases, lease: lease}
		rep, err := check.run(ctx, sources)
		if err != nil || len(rep.Errors) > 0 {
			return rep, err
		}
	}
	im := &importer{r: r, opt: opt, leases: leases, lease: lease}
	rep, err := im.run(ctx, sources)
	rep.Written = true
	return rep, err
}

// ErrImportRunning: another roster import holds the store's import lease.
var ErrImportRunning = errors.New("members: another roster import is running; try again when it has finished")

const (
	importLease = "roster-import"
	// importLeaseFor is how long the import lease lasts unless renewed;
	// it is renewed before each batch write, so a crashed import blocks
	// others for at most this long.
	importLeaseFor = 2 * time.Minute
)

// renewLease extends the import lease before a write; an import that lost
// its lease (stalled past its expiry) stops rather than write.
func (im *importer) renewLease(ctx context.Context) error {
	now := im.r.now()
	if im.lease.Until.Sub(now) > importLeaseFor/2 {
		return nil
	}
	if err := im.leases.Renew(ctx, im.lease, now, now.Add(importLeaseFor), 5*time.Second); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return ErrImportRunning
		}
		return err
	}
	return nil
}

func newRunID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

type position struct {
	source string
	line   int
	entry  int // -1 for NDJSON
}

func (p position) err(path, reason string) EntryError {
	e := EntryError{Source: p.source, Line: p.line, Path: path, Reason: reason}
	if p.entry >= 0 {
		n := p.entry
		e.Entry = &n
		e.Path = e.expression()
	}
	return e
}

// patient is what an import keeps of a Patient for its Coverages (in its
// spill map, JSON-encoded).
type patient struct {
	Family    string   `json:"f"`
	Given     []string `json:"g,omitempty"`
	BirthDate string   `json:"b"`
	Gender    string   `json:"s,omitempty"`
	MB        []ID     `json:"m,omitempty"` // Patient.identifier of type MB
}

type payer struct {
	system, value, name string
}

type pendingCoverage struct {
	pos position
	cov coverageRes
}

type importer struct {
	r   *Roster
	opt Options
	dry bool
	rep Report

	stageRun string
	patients *spillMap        // by "Patient/id" and fullUrl
	payers   map[string]payer // by "Organization/id" and fullUrl
	// people maps each member id to a hash of the person first imported
	// under it in this run: a second person under the same id is an
	// error. batchPeople holds the batch's own until the batch is flushed.
	people      *spillMap
	batchPeople map[string]uint64
	pending     []pendingCoverage
	batch       []batched
	leases      *store.Subscriptions
	lease       *store.Lease
}

// The import's memory bounds (see spillMap): Patients and member ids
// remembered in memory before they move to the store's import stage.
var (
	patientsInMemory = 10_000
	peopleInMemory   = 25_000
)

func (im *importer) run(ctx context.Context, sources []Source) (*Report, error) {
	now := time.Now
	im.stageRun = newRunID()
	im.patients = newSpillMap(im.r.st, im.stageRun, "patients", patientsInMemory, now)
	im.people = newSpillMap(im.r.st, im.stageRun, "people", peopleInMemory, now)
	im.payers, im.batchPeople = map[string]payer{}, map[string]uint64{}
	defer func() {
		if err := im.r.st.StageDrop(context.WithoutCancel(ctx), im.stageRun, now().Add(-24*time.Hour)); err != nil {
			slog.WarnContext(ctx, "members: import stage not dropped", "err", err)
		}
	}()
	for _, src := range sources {
		if err := im.source(ctx, src); err != nil {
			return &im.rep, err
		}
	}
	// Coverages whose Patient came after them.
	for _, p := range im.pending {
		if err := ctx.Err(); err != nil {
			return &im.rep, err
		}
		pat, err := im.patient(ctx, p.cov.beneficiary())
		if err != nil {
			return &im.rep, err
		}
		if pat == nil {
			im.fail(p.pos.err("Coverage.beneficiary", "the beneficiary Patient "+p.cov.beneficiary()+" is not in the import"))
			continue
		}
		if err := im.coverage(ctx, p.pos, &p.cov, pat); err != nil {
			return &im.rep, err
		}
	}
	return &im.rep, im.flush(ctx)
}

func (im *importer) fail(e EntryError) {
	if len(im.rep.Errors) < maxErrors {
		im.rep.Errors = append(im.rep.Errors, e)
	}
}

func (im *importer) source(ctx context.Context, src Source) error {
	rc, err := src.Open()
	if err != nil {
		return fmt.Errorf("members: %s: %w", src.Name, err)
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 64<<10)
	format := src.Format
	if format == Sniff {
		format = sniff(br)
	}
	if format == NDJSON {
		return im.ndjson(ctx, src.Name, br)
	}
	return im.bundle(ctx, src.Name, br)
}

// sniff peeks at the first line: one complete resource that is not a
// Bundle makes the stream NDJSON.
func sniff(br *bufio.Reader) Format {
	line, err := br.Peek(64 << 10)
	if len(line) == 0 && err != nil {
		return BundleJSON
	}
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	var head struct {
		ResourceType string `json:"resourceType"`
	}
	if json.Unmarshal(line, &head) == nil && head.ResourceType != "" && head.ResourceType != "Bundle" {
		return NDJSON
	}
	return BundleJSON
}

func (im *importer) ndjson(ctx context.Context, name string, br *bufio.Reader) error {
	for line := 1; ; line++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		raw, tooLong, err := readLine(br)
		pos := position{source: name, line: line, entry: -1}
		if tooLong {
			im.fail(pos.err("", fmt.Sprintf("the line is longer than %d bytes", maxLine)))
		} else if len(bytes.TrimSpace(raw)) > 0 {
			if err := im.resource(ctx, pos, raw); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("members: %s line %d: %w", name, line, err)
		}
	}
}

// readLine reads one line, without its newline, up to maxLine bytes; a
// longer line is skipped whole and reported as tooLong.
func readLine(br *bufio.Reader) (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(buf)+len(chunk) > maxLine {
			tooLong = true
			buf = nil
		} else if !tooLong {
			buf = append(buf, chunk...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return bytes.TrimRight(buf, "\r\n"), tooLong, err
	}
}

// bundle streams a Bundle's entries, one decoded at a time.
func (im *importer) bundle(ctx context.Context, name string, r io.Reader) error {
	dec := json.NewDecoder(r)
	bad := func(why string) error { return fmt.Errorf("%w: %s: %s", ErrStream, name, why) }
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return bad("not a JSON object (a FHIR Bundle, or NDJSON of Patient, Coverage and Organization resources)")
	}
	sawEntries := false
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return bad("malformed JSON: " + err.Error())
		}
		key, _ := t.(string)
		switch key {
		case "resourceType":
			var rt string
			if err := dec.Decode(&rt); err != nil || rt != "Bundle" {
				return bad("resourceType must be Bundle (or send NDJSON, one resource a line)")
			}
		case "entry":
			sawEntries = true
			if t, err := dec.Token(); err != nil || t != json.Delim('[') {
				return bad("Bundle.entry must be an array")
			}
			for i := 0; dec.More(); i++ {
				if err := ctx.Err(); err != nil {
					return err
				}
				var e struct {
					FullURL  string          `json:"fullUrl"`
					Resource json.RawMessage `json:"resource"`
				}
				if err := dec.Decode(&e); err != nil {
					return bad(fmt.Sprintf("entry %d: malformed JSON: %v", i, err))
				}
				pos := position{source: name, entry: i}
				if len(e.Resource) == 0 {
					im.fail(pos.err(fmt.Sprintf("Bundle.entry[%d]", i), "the entry has no resource"))
					continue
				}
				if err := im.resourceAt(ctx, pos, e.Resource, e.FullURL); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil {
				return bad("malformed JSON: " + err.Error())
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return bad("malformed JSON: " + err.Error())
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return bad("malformed JSON: " + err.Error())
	}
	if !sawEntries {
		im.fail(position{source: name, entry: -1}.err("Bundle.entry", "the Bundle has no entries"))
	}
	return nil
}

func (im *importer) resource(ctx context.Context, pos position, raw []byte) error {
	return im.resourceAt(ctx, pos, raw, "")
}

// Resources as the import reads them.
type identifier struct {
	Type *struct {
		Coding []struct {
			System string `json:"system"`
			Code   string `json:"code"`
		} `json:"coding"`
	} `json:"type"`
	System string `json:"system"`
	Value  string `json:"value"`
}

func (id identifier) typed(code string) bool {
	if id.Type == nil {
		return false
	}
	for _, c := range id.Type.Coding {
		if c.Code == code && (c.System == "" || c.System == sysIdentifierType) {
			return true
		}
	}
	return false
}

type codeable struct {
	Coding []struct {
		System  string `json:"system"`
		Code    string `json:"code"`
		Display string `json:"display"`
	} `json:"coding"`
	Text string `json:"text"`
}

func (c *codeable) code(system string) string {
	if c == nil {
		return ""
	}
	for _, cd := range c.Coding {
		if system == "" || cd.System == system {
			return cd.Code
		}
	}
	return ""
}

func (c *codeable) label() string {
	if c == nil {
		return ""
	}
	if c.Text != "" {
		return c.Text
	}
	for _, cd := range c.Coding {
		if cd.Display != "" {
			return cd.Display
		}
	}
	for _, cd := range c.Coding {
		if cd.Code != "" {
			return cd.Code
		}
	}
	return ""
}

type reference struct {
	Reference  string      `json:"reference"`
	Identifier *identifier `json:"identifier"`
	Display    string      `json:"display"`
}

type coverageRes struct {
	ID           string       `json:"id"`
	Identifier   []identifier `json:"identifier"`
	Status       string       `json:"status"`
	Type         *codeable    `json:"type"`
	SubscriberID string       `json:"subscriberId"`
	Beneficiary  *reference   `json:"beneficiary"`
	Relationship *codeable    `json:"relationship"`
	Period       *struct {
		Start string `json:"start"`
		End   string `json:"end"`
	} `json:"period"`
	Payor []reference `json:"payor"`
	Class []struct {
		Type  *codeable `json:"type"`
		Value string    `json:"value"`
		Name  string    `json:"name"`
	} `json:"class"`
	Network string `json:"network"`
	// fullURL is the entry's, for resolving relative references.
	fullURL string
}

func (c *coverageRes) beneficiary() string {
	if c.Beneficiary == nil {
		return ""
	}
	return refKey(c.Beneficiary.Reference, c.fullURL)
}

type patientRes struct {
	ID         string       `json:"id"`
	Identifier []identifier `json:"identifier"`
	Name       []struct {
		Use    string   `json:"use"`
		Family string   `json:"family"`
		Given  []string `json:"given"`
	} `json:"name"`
	BirthDate string `json:"birthDate"`
	Gender    string `json:"gender"`
}

type organizationRes struct {
	ID         string       `json:"id"`
	Identifier []identifier `json:"identifier"`
	Name       string       `json:"name"`
}

const (
	sysIdentifierType = "http://terminology.hl7.org/CodeSystem/v2-0203"
	sysRelationship   = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
	sysCoverageClass  = "http://terminology.hl7.org/CodeSystem/coverage-class"
)

var (
	fhirDate = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}`)
	fhirID   = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
)

// refKey resolves a reference to the key resources are kept under: an
// absolute URL or urn as is, "Type/id" for a relative one (the last two
// segments of a URL).
func refKey(ref, _ string) string {
	if strings.HasPrefix(ref, "urn:") {
		return ref
	}
	parts := strings.Split(strings.TrimRight(ref, "/"), "/")
	if len(parts) >= 2 {
		return parts[len(parts)-2] + "/" + parts[len(parts)-1]
	}
	return ref
}

func (im *importer) resourceAt(ctx context.Context, pos position, raw []byte, fullURL string) error {
	im.rep.Resources++
	var head struct {
		ResourceType string `json:"resourceType"`
		ID           string `json:"id"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		im.fail(pos.err("", "malformed JSON: "+err.Error()))
		return nil
	}
	rt := head.ResourceType
	keys := func() []string {
		var ks []string
		if head.ID != "" {
			ks = append(ks, rt+"/"+head.ID)
		}
		if fullURL != "" {
			ks = append(ks, refKey(fullURL, ""))
		}
		return ks
	}
	if head.ID != "" && !fhirID.MatchString(head.ID) {
		im.fail(pos.err(rt+".id", "not a FHIR id"))
		return nil
	}
	switch rt {
	case "Organization":
		var o organizationRes
		if err := json.Unmarshal(raw, &o); err != nil {
			im.fail(pos.err("Organization", "does not fit the Organization resource: "+err.Error()))
			return nil
		}
		if len(o.Identifier) == 0 || o.Identifier[0].Value == "" {
			im.fail(pos.err("Organization.identifier", "a payer Organization needs an identifier (system and value)"))
			return nil
		}
		if len(im.payers) > 100000 {
			im.fail(pos.err("Organization", "too many payer Organizations in one import"))
			return nil
		}
		p := payer{system: o.Identifier[0].System, value: o.Identifier[0].Value, name: o.Name}
		for _, k := range keys() {
			im.payers[k] = p
		}
	case "Patient":
		var p patientRes
		if err := json.Unmarshal(raw, &p); err != nil {
			im.fail(pos.err("Patient", "does not fit the Patient resource: "+err.Error()))
			return nil
		}
		ks := keys()
		if len(ks) == 0 {
			im.fail(pos.err("Patient.id", "the Patient needs an id (or a Bundle entry fullUrl) for its Coverage to refer to"))
			return nil
		}
		pat := &patient{BirthDate: p.BirthDate, Gender: p.Gender}
		for _, n := range p.Name {
			if n.Use != "old" && n.Use != "maiden" && n.Family != "" {
				pat.Family, pat.Given = n.Family, n.Given
				break
			}
		}
		switch {
		case pat.Family == "":
			im.fail(pos.err("Patient.name.family", "the member's family name is required"))
			return nil
		case !fhirDate.MatchString(p.BirthDate) || len(p.BirthDate) != 10:
			im.fail(pos.err("Patient.birthDate", "the member's birth date is required as YYYY-MM-DD"))
			return nil
		}
		for i, id := range p.Identifier {
			if id.typed("MB") && id.Value != "" {
				pat.MB = append(pat.MB, ID{System: id.System, Value: id.Value, Path: fmt.Sprintf("Patient.identifier[%d]", i)})
			}
		}
		enc, err := json.Marshal(pat)
		if err != nil {
			return err
		}
		for _, k := range ks {
			if err := im.patients.put(ctx, k, enc); err != nil {
				return err
			}
		}
	case "Coverage":
		var c coverageRes
		if err := json.Unmarshal(raw, &c); err != nil {
			im.fail(pos.err("Coverage", "does not fit the Coverage resource: "+err.Error()))
			return nil
		}
		c.fullURL = fullURL
		if c.ID == "" {
			c.ID = head.ID
		}
		if c.Beneficiary == nil || c.Beneficiary.Reference == "" {
			im.fail(pos.err("Coverage.beneficiary", "the Coverage needs a beneficiary reference to its Patient"))
			return nil
		}
		pat, err := im.patient(ctx, c.beneficiary())
		if err != nil {
			return err
		}
		if pat == nil {
			if len(im.pending) >= 1_000_000 {
				im.fail(pos.err("Coverage.beneficiary", "too many Coverages before their Patients; put each Patient before its Coverages"))
				return nil
			}
			im.pending = append(im.pending, pendingCoverage{pos: pos, cov: c})
			return nil
		}
		return im.coverage(ctx, pos, &c, pat)
	case "Bundle":
		im.fail(pos.err("Bundle", "nested Bundles are not read; send the Bundle itself or NDJSON"))
	default:
		im.fail(pos.err(rt, "a roster holds Patient, Coverage and Organization resources, not "+strings.TrimSpace(rt+" resources")))
	}
	return nil
}

// coverage turns one Coverage (with its Patient) into a member's coverage
// and upserts the member.
func (im *importer) coverage(ctx context.Context, pos position, c *coverageRes, pat *patient) error {
	rel := c.Relationship.code(sysRelationship)
	if rel == "" {
		rel = c.Relationship.code("")
	}
	// The member id: Coverage.identifier of type MB, else the subscriber id
	// when the member is the subscriber, else the Patient's MB identifier.
	var mid ID
	for i, id := range c.Identifier {
		if id.typed("MB") && id.Value != "" {
			mid = ID{System: id.System, Value: id.Value, Path: fmt.Sprintf("Coverage.identifier[%d]", i)}
			break
		}
	}
	if mid.Value == "" && c.SubscriberID != "" && (rel == "self" || rel == "") {
		mid = ID{Value: c.SubscriberID, Path: "Coverage.subscriberId"}
		for _, p := range pat.MB {
			if p.Value == c.SubscriberID {
				mid.System = p.System
			}
		}
	}
	if mid.Value == "" && len(pat.MB) > 0 {
		mid = pat.MB[0]
	}
	if mid.Value == "" {
		im.fail(pos.err("Coverage.identifier", "no member id: give a Coverage.identifier of type MB, a subscriberId with relationship self, or a Patient.identifier of type MB"))
		return nil
	}
	if rel == "" && c.SubscriberID != "" && c.SubscriberID != mid.Value {
		im.fail(pos.err("Coverage.relationship", "the member is not the subscriber, so their relationship to the subscriber is required"))
		return nil
	}
	if rel == "" {
		rel = "self"
	}
	switch c.Status {
	case "active", "cancelled", "draft", "entered-in-error":
	default:
		im.fail(pos.err("Coverage.status", "status must be active, cancelled, draft or entered-in-error"))
		return nil
	}
	cov := store.MemberCoverage{Status: c.Status, Network: c.Network, ProductLine: c.Type.label()}
	if p := c.Period; p != nil {
		for _, d := range []struct{ v, path string }{{p.Start, "Coverage.period.start"}, {p.End, "Coverage.period.end"}} {
			if d.v != "" && !fhirDate.MatchString(d.v) {
				im.fail(pos.err(d.path, "not a FHIR date"))
				return nil
			}
		}
		cov.Start, cov.End = firstDate(p.Start), firstDate(p.End)
		if cov.Start != "" && cov.End != "" && cov.End < cov.Start {
			im.fail(pos.err("Coverage.period", "the period ends before it starts"))
			return nil
		}
	}
	for i, py := range c.Payor {
		if py.Identifier != nil && py.Identifier.Value != "" {
			cov.PayerSystem, cov.PayerID, cov.PayerName = py.Identifier.System, py.Identifier.Value, py.Display
			break
		}
		if org, ok := im.payers[refKey(py.Reference, c.fullURL)]; ok {
			cov.PayerSystem, cov.PayerID, cov.PayerName = org.system, org.value, org.name
			break
		}
		if i == len(c.Payor)-1 {
			im.fail(pos.err(fmt.Sprintf("Coverage.payor[%d]", i), "the payer is neither identified on the reference nor an Organization earlier in the import"))
			return nil
		}
	}
	if cov.PayerID == "" {
		im.fail(pos.err("Coverage.payor", "the Coverage needs a payer"))
		return nil
	}
	for _, cl := range c.Class {
		switch cl.Type.code("") {
		case "plan":
			cov.Plan, cov.PlanName = cl.Value, cl.Name
		case "group":
			cov.Group = cl.Value
		}
	}
	cov.Key = c.ID
	for _, id := range c.Identifier {
		if !id.typed("MB") && id.Value != "" {
			cov.Key = id.System + "|" + id.Value
			break
		}
	}
	if cov.Key == "" {
		cov.Key = cov.PayerSystem + "|" + cov.PayerID + "|" + cov.Plan + "|" + cov.Start
	}
	subscriber := c.SubscriberID
	if subscriber == "" && rel == "self" {
		subscriber = mid.Value
	}
	m := &store.Member{
		ID: mid.System + "|" + mid.Value, System: mid.System, MemberID: mid.Value,
		SubscriberID: subscriber, Relationship: rel,
		Family: pat.Family, Given: pat.Given, BirthDate: pat.BirthDate, Gender: pat.Gender,
	}
	b := batched{m: m, cov: cov, pos: pos, idPath: mid.Path, person: personHash(m)}
	first, seen := im.batchPeople[m.ID]
	if !seen {
		var v []byte
		v, seen = im.people.mem[m.ID]
		if seen {
			first = binary.BigEndian.Uint64(v)
		} else {
			b.checkStage = im.people.spilled
		}
	}
	if seen && first != b.person {
		im.fail(pos.err(mid.Path, fmt.Sprintf("member id %s is used by two different people in this import", mid.Value)))
		return nil
	}
	if !seen {
		im.batchPeople[m.ID] = b.person
	}
	im.batch = append(im.batch, b)
	if len(im.batch) >= batchSize {
		return im.flush(ctx)
	}
	return nil
}

// batchSize is how many coverage entries are written together: their
// members are read at once and the new ones inserted in one group.
const batchSize = 512

type batched struct {
	m      *store.Member
	cov    store.MemberCoverage
	pos    position
	idPath string
	person uint64
	// checkStage: the member id may have been imported earlier in the run
	// under another person, which only the import stage can tell.
	checkStage bool
}

// flush applies the batched entries in order to the members as stored,
// counts what each entry changed, and writes each changed member once.
func (im *importer) flush(ctx context.Context) error {
	if len(im.batch) == 0 {
		return nil
	}
	if err := im.renewLease(ctx); err != nil {
		return err
	}
	if err := im.checkPeople(ctx); err != nil {
		return err
	}
	if im.dry || len(im.batch) == 0 {
		im.batch = im.batch[:0]
		return nil
	}
	ids := make([]string, 0, len(im.batch))
	for _, b := range im.batch {
		ids = append(ids, b.m.ID)
	}
	stored, err := im.r.st.MembersByID(ctx, ids)
	if err != nil {
		return err
	}
	state := map[string]*store.Member{}
	fresh := map[string]bool{}
	var order []string
	for _, b := range im.batch {
		cur, ok := state[b.m.ID]
		if !ok {
			cur = stored[b.m.ID]
		}
		if cur == nil {
			m := b.m
			m.Coverages = []store.MemberCoverage{b.cov}
			m.Source, m.Updated = im.opt.Run, im.opt.Now
			state[m.ID], fresh[m.ID] = m, true
			order = append(order, m.ID)
			im.rep.Created++
			continue
		}
		m := merge(cur, b.m, b.cov)
		if reflect.DeepEqual(m, cur) {
			im.rep.Unchanged++
			continue
		}
		if _, ok := state[m.ID]; !ok {
			order = append(order, m.ID)
		}
		m.Source, m.Updated = im.opt.Run, im.opt.Now
		state[m.ID] = m
		im.rep.Updated++
	}
	im.batch = im.batch[:0]
	var create, change []*store.Member
	for _, id := range order {
		if fresh[id] {
			create = append(create, state[id])
		} else {
			change = append(change, state[id])
		}
	}
	return im.r.st.SaveMembers(ctx, create, change)
}

// checkPeople drops the batch's entries whose member id an earlier batch
// imported under another person (found in the import stage), then
// remembers the batch's people.
func (im *importer) checkPeople(ctx context.Context) error {
	var ids []string
	for _, b := range im.batch {
		if b.checkStage {
			ids = append(ids, b.m.ID)
		}
	}
	if len(ids) > 0 {
		earlier, err := im.people.getMany(ctx, ids)
		if err != nil {
			return err
		}
		kept, bad := im.batch[:0], map[string]bool{}
		for _, b := range im.batch {
			// Later entries of a bad id in this batch were compared with
			// its first entry, not with the stage: they go too.
			if v, ok := earlier[b.m.ID]; bad[b.m.ID] || ok && b.checkStage && binary.BigEndian.Uint64(v) != b.person {
				im.fail(b.pos.err(b.idPath, fmt.Sprintf("member id %s is used by two different people in this import", b.m.MemberID)))
				bad[b.m.ID] = true
				delete(im.batchPeople, b.m.ID)
				continue
			}
			kept = append(kept, b)
		}
		im.batch = kept
	}
	for id, person := range im.batchPeople {
		if err := im.people.put(ctx, id, binary.BigEndian.AppendUint64(nil, person)); err != nil {
			return err
		}
	}
	clear(im.batchPeople)
	return nil
}

// patient is the Patient the import read under key (a reference or a
// fullUrl), or nil.
func (im *importer) patient(ctx context.Context, key string) (*patient, error) {
	v, ok, err := im.patients.get(ctx, key)
	if err != nil || !ok {
		return nil, err
	}
	var p patient
	if err := json.Unmarshal(v, &p); err != nil {
		return nil, fmt.Errorf("members: import stage: %w", err)
	}
	return &p, nil
}

// merge is cur with the demographics of m and cov added (or replacing the
// coverage with its key); Source and Updated stay cur's.
func merge(cur, m *store.Member, cov store.MemberCoverage) *store.Member {
	out := *m
	out.Coverages = append([]store.MemberCoverage(nil), cur.Coverages...)
	replaced := false
	for i := range out.Coverages {
		if out.Coverages[i].Key == cov.Key {
			out.Coverages[i], replaced = cov, true
		}
	}
	if !replaced {
		out.Coverages = append(out.Coverages, cov)
	}
	out.Source, out.Updated = cur.Source, cur.Updated
	return &out
}

func personHash(m *store.Member) uint64 {
	h := fnv.New64a()
	h.Write([]byte(fold(m.Family)))
	h.Write([]byte{0})
	if len(m.Given) > 0 {
		h.Write([]byte(fold(m.Given[0])))
	}
	h.Write([]byte{0})
	h.Write([]byte(m.BirthDate))
	return h.Sum64()
}

// Expression is the error's FHIRPath from the root of its stream: within
// the Bundle for a Bundle, within the resource (one a line) for NDJSON.
func (e EntryError) Expression() string { return e.Path }

func (e EntryError) expression() string {
	if e.Entry == nil || strings.HasPrefix(e.Path, "Bundle") {
		return e.Path
	}
	at := fmt.Sprintf("Bundle.entry[%d].resource", *e.Entry)
	if i := strings.IndexByte(e.Path, '.'); i >= 0 {
		return at + e.Path[i:]
	}
	return at
}

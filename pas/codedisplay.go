package pas

import (
	"bufio"
	"embed"
	"strings"
	"sync"

	"github.com/priora/priora/coverage"
)

// The code lists shipped for reviewers: descriptions beside codes the
// request sent without one. Only lists free to ship are here — ICD-10-CM
// (public domain, CDC/CMS) and HCPCS Level II (CMS); CPT descriptions are
// AMA-licensed and never shipped. Each file names its source and year.
//
//go:embed codelists/*.tsv
var codeLists embed.FS

var shipped = sync.OnceValue(func() map[string]map[string]string {
	out := map[string]map[string]string{}
	for system, file := range map[string]string{coverage.ICD10CM: "codelists/icd10cm.tsv", coverage.HCPCS: "codelists/hcpcs.tsv"} {
		f, err := codeLists.Open(file)
		if err != nil {
			panic("pas: shipped code list " + file + ": " + err.Error())
		}
		m := map[string]string{}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			code, desc, ok := strings.Cut(line, "\t")
			if !ok {
				panic("pas: shipped code list " + file + ": a line without a tab: " + line)
			}
			m[code] = desc
		}
		f.Close()
		out[system] = m
	}
	return out
})

// Display sources.
const (
	DisplayFromRequest = "request"
	DisplayICD10CM     = "ICD-10-CM 2025 (CDC/CMS)"
	DisplayHCPCS       = "HCPCS Level II, January 2025 (CMS)"
)

// codeDisplay is the description to show beside a code and where it comes
// from: the request's own display first, else the shipped list of the
// code's system, else none.
func codeDisplay(system, code, display string) (string, string) {
	if strings.TrimSpace(display) != "" {
		return display, DisplayFromRequest
	}
	sys := coverage.Canonical(system)
	if d, ok := shipped()[sys][code]; ok {
		if sys == coverage.ICD10CM {
			return d, DisplayICD10CM
		}
		return d, DisplayHCPCS
	}
	return "", ""
}

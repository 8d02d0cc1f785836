package suite

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"html/template"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Body    string `xml:",chardata"`
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// WriteJUnit writes the report as JUnit XML: one testsuite per group, a
// failure per failed test, skipped tests marked skipped, and warnings as
// system-out.
func (r *Report) WriteJUnit(w io.Writer) error {
	out := junitSuites{Name: "priora conform " + r.Suite, Tests: r.Counts.Total(), Failures: r.Counts.Fail,
		Skipped: r.Counts.Skip, Time: seconds(r.Duration)}
	idx := map[string]int{}
	for _, res := range r.Results {
		i, ok := idx[res.Group]
		if !ok {
			i = len(out.Suites)
			idx[res.Group] = i
			out.Suites = append(out.Suites, junitSuite{Name: res.Group, Timestamp: r.Started.UTC().Format(time.RFC3339)})
		}
		s := &out.Suites[i]
		s.Tests++
		c := junitCase{Name: res.ID + " " + res.Name, Classname: res.Group, Time: seconds(res.Duration)}
		msg := strings.Join(res.Messages, "\n")
		switch res.Status {
		case Fail:
			s.Failures++
			c.Failure = &junitMessage{Message: firstLine(msg), Body: msg}
		case Skip:
			s.Skipped++
			c.Skipped = &junitMessage{Message: firstLine(msg)}
		default:
			c.SystemOut = msg
		}
		s.Cases = append(s.Cases, c)
	}
	for i := range out.Suites {
		var d time.Duration
		for _, res := range r.Results {
			if res.Group == out.Suites[i].Name {
				d += res.Duration
			}
		}
		out.Suites[i].Time = seconds(d)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	if len(l) > 200 {
		l = l[:200] + "…"
	}
	return l
}

var htmlReport = template.Must(template.New("report").Funcs(template.FuncMap{
	"dur": func(d time.Duration) string { return d.Round(time.Millisecond).String() },
	"ts":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 MST") },
	"upper": func(s Status) string {
		return strings.ToUpper(string(s))
	},
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Priora conformance report — {{.R.Target}}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2329;background:#f6f7f9}
header{background:#1d2b3a;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:20px}
header p{margin:0;color:#c9d3dd}
main{padding:20px 28px;max-width:1200px}
.summary{display:flex;gap:12px;margin:0 0 20px}
.tile{background:#fff;border-radius:6px;padding:10px 16px;min-width:90px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.tile b{display:block;font-size:22px}
.pass b{color:#1a7f37}.warn b{color:#9a6700}.skip b{color:#57606a}.fail b{color:#cf222e}
.filters{margin:0 0 12px}
.filters label{margin-right:14px;cursor:pointer}
section{background:#fff;border-radius:6px;margin:0 0 14px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
section h2{font-size:15px;margin:0;padding:10px 14px;border-bottom:1px solid #eaeef2}
table{border-collapse:collapse;width:100%}
td{padding:6px 14px;border-bottom:1px solid #f0f2f4;vertical-align:top}
td.id{white-space:nowrap;font-family:ui-monospace,SFMono-Regular,Menlo,monospace;width:130px}
td.st{width:56px}
td.t{width:80px;text-align:right;color:#57606a;white-space:nowrap}
.badge{display:inline-block;border-radius:10px;padding:1px 8px;font-size:11px;font-weight:600;color:#fff}
.badge.pass{background:#1a7f37}.badge.warn{background:#bf8700}.badge.skip{background:#8c959f}.badge.fail{background:#cf222e}
pre{white-space:pre-wrap;margin:6px 0 0;font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace;background:#f6f8fa;padding:8px;border-radius:4px}
body.hide-pass tr.pass,body.hide-skip tr.skip{display:none}
</style></head>
<body>
<header><h1>Priora conformance report: {{.R.Suite}}</h1>
<p>FHIR base {{.R.Target}}{{if .R.CDSBase}} · CDS Hooks {{.R.CDSBase}}/cds-services{{end}} · started {{ts .R.Started}} · {{dur .R.Duration}}</p></header>
<main>
<div class="summary">
<div class="tile pass"><b>{{.R.Counts.Pass}}</b>passed</div>
<div class="tile warn"><b>{{.R.Counts.Warn}}</b>warned</div>
<div class="tile skip"><b>{{.R.Counts.Skip}}</b>skipped</div>
<div class="tile fail"><b>{{.R.Counts.Fail}}</b>failed</div>
</div>
<div class="filters">
<label><input type="checkbox" onchange="document.body.classList.toggle('hide-pass',this.checked)"> hide passed</label>
<label><input type="checkbox" onchange="document.body.classList.toggle('hide-skip',this.checked)"> hide skipped</label>
</div>
{{range .Groups}}<section><h2>{{.Name}}</h2><table>
{{range .Results}}<tr class="{{.Status}}"><td class="id">{{.ID}}</td><td class="st"><span class="badge {{.Status}}">{{upper .Status}}</span></td>
<td>{{.Name}}{{if .Messages}}<pre>{{range $i, $m := .Messages}}{{if $i}}
{{end}}{{$m}}{{end}}</pre>{{end}}</td><td class="t">{{dur .Duration}}</td></tr>
{{end}}</table></section>
{{end}}</main></body></html>
`))

// WriteHTML writes the report as one self-contained HTML page (inline
// CSS, no scripts or assets from elsewhere).
func (r *Report) WriteHTML(w io.Writer) error {
	type group struct {
		Name    string
		Results []Result
	}
	var groups []group
	for _, res := range r.Results {
		if len(groups) == 0 || groups[len(groups)-1].Name != res.Group {
			groups = append(groups, group{Name: res.Group})
		}
		groups[len(groups)-1].Results = append(groups[len(groups)-1].Results, res)
	}
	return htmlReport.Execute(w, struct {
		R      *Report
		Groups []group
	}{r, groups})
}

// WriteFile writes the report in the format its extension names: .json,
// .xml (JUnit) or .html.
func (r *Report) WriteFile(name string) error {
	var write func(io.Writer) error
	switch strings.ToLower(filepath.Ext(name)) {
	case ".json":
		write = r.WriteJSON
	case ".xml":
		write = r.WriteJUnit
	case ".html", ".htm":
		write = r.WriteHTML
	default:
		return fmt.Errorf("report %s: want a .json, .xml or .html file", name)
	}
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("report %s: %w", name, err)
	}
	return f.Close()
}

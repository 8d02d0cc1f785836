package profiles

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// ---- dates, times and quantities ----

// fpTemporal is a Date, DateTime or Time with its precision (N1 §2.1.20,
// "Date/Time", and §6.2 on comparing partial values).
type fpTemporal struct {
	k    fpKind // fpDate, fpDateTime or fpTime
	f    [7]int // year, month, day, hour, minute, second, millisecond
	prec int    // fields given: 1 year … 7 millisecond
	tz   bool
	off  int // offset east of UTC in minutes, when tz
	ms   int // digits written after the decimal point of the seconds
}

var (
	reDateTime = regexp.MustCompile(`^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?(T(?:(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?)?)?(Z|[+-]\d{2}:\d{2})?$`)
	reTime     = regexp.MustCompile(`^T?(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?$`)
)

// parseTemporal reads a FHIRPath literal (without @) or a FHIR date,
// dateTime, instant or time value.
func parseTemporal(s string) (fpTemporal, bool) {
	var t fpTemporal
	atoi := func(x string) int { n, _ := strconv.Atoi(x); return n }
	if m := reTime.FindStringSubmatch(s); m != nil && (strings.HasPrefix(s, "T") || strings.Contains(s, ":")) {
		t.k = fpTime
		t.prec = 4
		t.f[3] = atoi(m[1])
		for i, g := range m[2:4] {
			if g == "" {
				break
			}
			t.f[4+i] = atoi(g)
			t.prec = 5 + i
		}
		if m[4] != "" {
			t.f[6], t.ms = fracMillis(m[4]), len(m[4])
			t.prec = 7
		}
		return t, t.valid()
	}
	m := reDateTime.FindStringSubmatch(s)
	if m == nil {
		return t, false
	}
	t.k = fpDate
	if m[4] != "" {
		t.k = fpDateTime
	}
	if m[9] != "" && m[5] == "" {
		return t, false // an offset needs a time
	}
	t.f[0], t.prec = atoi(m[1]), 1
	for i, g := range []string{m[2], m[3], m[5], m[6], m[7]} {
		if g == "" {
			break
		}
		t.f[1+i] = atoi(g)
		t.prec = 2 + i
	}
	if m[8] != "" {
		t.f[6], t.ms = fracMillis(m[8]), len(m[8])
		t.prec = 7
	}
	if m[9] != "" {
		t.tz = true
		if m[9] != "Z" {
			h, mi := atoi(m[9][1:3]), atoi(m[9][4:6])
			t.off = h*60 + mi
			if m[9][0] == '-' {
				t.off = -t.off
			}
		}
	}
	return t, t.valid()
}

func fracMillis(d string) int {
	d = (d + "000")[:3]
	n, _ := strconv.Atoi(d)
	return n
}

func (t fpTemporal) valid() bool {
	f := t.f
	if t.k != fpTime {
		if t.prec >= 2 && (f[1] < 1 || f[1] > 12) {
			return false
		}
		if t.prec >= 3 && (f[2] < 1 || f[2] > daysIn(f[0], f[1])) {
			return false
		}
	}
	return f[3] < 24 && f[4] < 60 && f[5] < 60
}

func daysIn(y, m int) int {
	return time.Date(y, time.Month(m)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// value renders t as a System value.
func (t fpTemporal) value() fpValue { return fpValue{k: t.k, s: t.String()} }

func (t fpTemporal) String() string {
	var b strings.Builder
	f := t.f
	if t.k == fpTime {
		b.WriteString("T")
	} else {
		fmt.Fprintf(&b, "%04d", f[0])
		if t.prec >= 2 {
			fmt.Fprintf(&b, "-%02d", f[1])
		}
		if t.prec >= 3 {
			fmt.Fprintf(&b, "-%02d", f[2])
		}
		if t.k == fpDateTime {
			b.WriteString("T")
		}
	}
	if t.prec >= 4 {
		fmt.Fprintf(&b, "%02d", f[3])
	}
	if t.prec >= 5 {
		fmt.Fprintf(&b, ":%02d", f[4])
	}
	if t.prec >= 6 {
		fmt.Fprintf(&b, ":%02d", f[5])
	}
	if t.prec >= 7 {
		fmt.Fprintf(&b, ".%03d", f[6])
	}
	if t.tz && t.k != fpTime {
		if t.off == 0 {
			b.WriteString("Z")
		} else {
			o, sign := t.off, '+'
			if o < 0 {
				o, sign = -o, '-'
			}
			fmt.Fprintf(&b, "%c%02d:%02d", sign, o/60, o%60)
		}
	}
	return b.String()
}

func (t fpTemporal) time() time.Time {
	f := t.f
	loc := time.UTC
	if t.tz {
		loc = time.FixedZone("", t.off*60)
	}
	y, mo, d := f[0], f[1], f[2]
	if t.k == fpTime {
		y, mo, d = 2000, 1, 1
	}
	if mo == 0 {
		mo = 1
	}
	if d == 0 {
		d = 1
	}
	return time.Date(y, time.Month(mo), d, f[3], f[4], f[5], f[6]*int(time.Millisecond), loc)
}

func (t fpTemporal) withTime(tt time.Time) fpTemporal {
	r := t
	r.f = [7]int{tt.Year(), int(tt.Month()), tt.Day(), tt.Hour(), tt.Minute(), tt.Second(), tt.Nanosecond() / int(time.Millisecond)}
	for i := r.prec; i < 7; i++ {
		r.f[i] = 0
	}
	if t.k == fpTime {
		r.f[0], r.f[1], r.f[2] = 0, 0, 0
	}
	return r
}

// cmp compares field by field at the common precision, seconds and
// milliseconds being one precision (N1 §6.1.1); ok is false when the
// values agree as far as both go but their precisions differ.
func (t fpTemporal) cmp(o fpTemporal) (int, bool) {
	a, b := t, o
	if a.tz && a.prec >= 4 {
		a = a.withTime(a.time().UTC())
		a.off = 0
	}
	if b.tz && b.prec >= 4 {
		b = b.withTime(b.time().UTC())
		b.off = 0
	}
	pa, pb := min(a.prec, 6), min(b.prec, 6)
	start := 0
	if a.k == fpTime {
		start = 3
	}
	for i := start; i < min(pa, pb); i++ {
		x, y := a.f[i], b.f[i]
		if i == 5 {
			x, y = x*1000+a.f[6], y*1000+b.f[6]
		}
		if x != y {
			if x < y {
				return -1, true
			}
			return 1, true
		}
	}
	if pa != pb {
		return 0, false
	}
	return 0, true
}

// calendarUnits maps the calendar duration keywords (N1 §2.1.20.3
// "Time-valued Quantities") to their singular form.
var calendarUnits = map[string]string{
	"year": "year", "years": "year", "month": "month", "months": "month",
	"week": "week", "weeks": "week", "day": "day", "days": "day",
	"hour": "hour", "hours": "hour", "minute": "minute", "minutes": "minute",
	"second": "second", "seconds": "second", "millisecond": "millisecond", "milliseconds": "millisecond",
}

// timeUnit names a duration unit for date/time arithmetic: a calendar
// duration or the UCUM definite durations below a month.
func timeUnit(u string) (string, error) {
	if c := calendarUnits[u]; c != "" {
		return c, nil
	}
	switch u {
	case "wk":
		return "week", nil
	case "d":
		return "day", nil
	case "h":
		return "hour", nil
	case "min":
		return "minute", nil
	case "s":
		return "second", nil
	case "ms":
		return "millisecond", nil
	case "a", "mo":
		return "", fmt.Errorf("the UCUM unit '%s' is not a calendar duration: use years or months", u)
	}
	return "", fmt.Errorf("'%s' is not a time unit", u)
}

var unitPrec = map[string]int{"year": 1, "month": 2, "week": 3, "day": 3, "hour": 4, "minute": 5, "second": 6, "millisecond": 7}

// add adds n units (N1 §6.6.7 "Date/Time Arithmetic"): above seconds the
// decimal part is ignored; a quantity more precise than the value is first
// converted to the value's precision, truncating; a day past the end of
// the month becomes the month's last day.
func (t fpTemporal) add(n float64, unit string) (fpTemporal, error) {
	u, err := timeUnit(unit)
	if err != nil {
		return t, err
	}
	if t.k == fpTime && unitPrec[u] < 4 {
		return t, fmt.Errorf("cannot add %s to a Time", unit)
	}
	if u == "week" {
		u, n = "day", n*7
	}
	if u != "second" && u != "millisecond" {
		n = math.Trunc(n)
	}
	// Convert down to the value's precision where the factor is fixed.
	steps := map[string]struct {
		up  string
		per float64
	}{"millisecond": {"second", 1000}, "second": {"minute", 60}, "minute": {"hour", 60}, "hour": {"day", 24}, "month": {"year", 12}}
	for unitPrec[u] > max(t.prec, 1) {
		s, ok := steps[u]
		if !ok {
			break
		}
		u, n = s.up, math.Trunc(n/s.per)
	}
	tt := t.time()
	switch u {
	case "year", "month":
		months := int(n)
		if u == "year" {
			months *= 12
		}
		y, m := tt.Year(), int(tt.Month())-1+months
		y += m / 12
		m %= 12
		if m < 0 {
			m += 12
			y--
		}
		d := min(tt.Day(), daysIn(y, m+1))
		tt = time.Date(y, time.Month(m+1), d, tt.Hour(), tt.Minute(), tt.Second(), tt.Nanosecond(), tt.Location())
	case "day":
		tt = tt.AddDate(0, 0, int(n))
	case "hour":
		tt = tt.Add(time.Duration(n) * time.Hour)
	case "minute":
		tt = tt.Add(time.Duration(n) * time.Minute)
	case "second":
		tt = tt.Add(time.Duration(math.Round(n*1000)) * time.Millisecond)
	case "millisecond":
		tt = tt.Add(time.Duration(math.Round(n)) * time.Millisecond)
	}
	if tt.Year() < 1 || tt.Year() > 9999 {
		return t, fmt.Errorf("date out of range")
	}
	return t.withTime(tt), nil
}

// unitDims gives each convertible UCUM unit a dimension and its factor to
// the dimension's base unit. Calendar durations of a week or less equal
// their UCUM definite durations; years and months are a dimension of
// their own, apart from UCUM 'a' and 'mo' (N1 §2.1.20.3).
var unitDims = func() map[string]struct {
	dim string
	f   float64
} {
	m := map[string]struct {
		dim string
		f   float64
	}{}
	add := func(dim string, f float64, names ...string) {
		for _, n := range names {
			m[n] = struct {
				dim string
				f   float64
			}{dim, f}
		}
	}
	add("g", 1, "g")
	add("g", 1000, "kg")
	add("g", 1e-3, "mg")
	add("g", 1e-6, "ug")
	add("g", 1e-9, "ng")
	add("g", 453.59237, "[lb_av]")
	add("g", 28.349523125, "[oz_av]")
	add("m", 1, "m")
	add("m", 1000, "km")
	add("m", 0.01, "cm")
	add("m", 0.001, "mm")
	add("m", 1e-6, "um")
	add("m", 0.0254, "[in_i]")
	add("m", 0.3048, "[ft_i]")
	add("L", 1, "L", "l")
	add("L", 0.1, "dL", "dl")
	add("L", 0.001, "mL", "ml")
	add("L", 1e-6, "uL", "ul")
	add("s", 1, "s", "second", "seconds")
	add("s", 0.001, "ms", "millisecond", "milliseconds")
	add("s", 60, "min", "minute", "minutes")
	add("s", 3600, "h", "hour", "hours")
	add("s", 86400, "d", "day", "days")
	add("s", 604800, "wk", "week", "weeks")
	add("month", 1, "month", "months")
	add("month", 12, "year", "years")
	add("1", 1, "1")
	add("1", 0.01, "%")
	return m
}()

// convertUnit converts n from unit from to unit to; ok is false when they
// do not convert.
func convertUnit(n float64, from, to string) (float64, bool) {
	if from == to {
		return n, true
	}
	a, okA := unitDims[from]
	b, okB := unitDims[to]
	if !okA || !okB || a.dim != b.dim {
		return 0, false
	}
	return n * a.f / b.f, true
}

package bench

import (
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// WriteSVG draws the run: latency per second (p50, p99, max, log scale)
// with the server's RSS, throughput per second, and the latency
// distribution by percentile.
func (r *Result) WriteSVG(w io.Writer) error {
	const W, H = 960, 760
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", W, H, W, H)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	title := fmt.Sprintf("priora load: %s, %s", r.Mix, r.Mode)
	if r.Rate > 0 {
		title += fmt.Sprintf(" at %.0f/s", r.Rate)
	} else {
		title += fmt.Sprintf(", %d in flight", r.Workers)
	}
	fmt.Fprintf(&b, `<text x="20" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", html.EscapeString(title))
	sub := fmt.Sprintf("%.1f s, %d ok, %d errors, %.0f/s; p50 %.2f ms, p90 %.2f, p99 %.2f, max %.2f; %d CPUs, load avg %v → %v; %s",
		r.Duration, r.OK, r.Errors, r.Throughput, r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max,
		r.Machine.CPUs, r.Machine.LoadAvgBefore, r.Machine.LoadAvgAfter, r.Started.Format(time.RFC3339))
	fmt.Fprintf(&b, `<text x="20" y="40" fill="#444">%s</text>`+"\n", html.EscapeString(sub))

	tmax := math.Max(r.Duration, 1)
	// Panel 1: latency over time.
	p1 := panel{x: 70, y: 60, w: 800, h: 260, x0: 0, x1: tmax, log: true}
	var hi float64 = 1
	lo := math.Inf(1)
	for _, win := range r.Windows {
		if win.OK > 0 {
			hi = math.Max(hi, win.Max)
			lo = math.Min(lo, win.P50)
		}
	}
	if math.IsInf(lo, 1) {
		lo = 0.1
	}
	p1.y0, p1.y1 = math.Pow(10, math.Floor(math.Log10(math.Max(lo, 0.01)))), math.Pow(10, math.Ceil(math.Log10(hi)))
	p1.frame(&b, "latency per second (ms, log)", "s")
	series := []struct {
		name, color string
		v           func(Window) float64
	}{
		{"max", "#aaaaaa", func(w Window) float64 { return w.Max }},
		{"p99", "#e6550d", func(w Window) float64 { return w.P99 }},
		{"p50", "#3182bd", func(w Window) float64 { return w.P50 }},
	}
	for i, s := range series {
		var pts []string
		for _, win := range r.Windows {
			if win.OK == 0 {
				continue
			}
			x, y := p1.at(win.T-0.5, s.v(win))
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", s.color, strings.Join(pts, " "))
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s">%s</text>`+"\n", 880, 80+14*i, s.color, s.name)
	}
	if r.RSS != nil && len(r.RSS.Samples) > 0 {
		top := r.RSS.MaxMiB * 1.2
		var pts []string
		for _, s := range r.RSS.Samples {
			x := p1.x + s.T/tmax*p1.w
			y := p1.y + p1.h - s.MiB/top*p1.h
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", math.Min(x, p1.x+p1.w), y))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="#31a354" stroke-width="1.5" stroke-dasharray="4 2" points="%s"/>`+"\n", strings.Join(pts, " "))
		fmt.Fprintf(&b, `<text x="880" y="136" fill="#31a354">RSS (MiB,</text><text x="880" y="150" fill="#31a354">0–%.0f)</text>`+"\n", top)
	}

	// Panel 2: throughput over time.
	p2 := panel{x: 70, y: 360, w: 800, h: 140, x0: 0, x1: tmax}
	var peak float64 = 1
	for _, win := range r.Windows {
		peak = math.Max(peak, float64(win.OK+win.Errors))
	}
	p2.y0, p2.y1 = 0, niceCeil(peak)
	p2.frame(&b, "answers per second (2xx blue, errors red)", "s")
	for _, win := range r.Windows {
		x0, _ := p2.at(win.T-1, 0)
		x1, _ := p2.at(win.T, 0)
		_, yOK := p2.at(0, float64(win.OK))
		_, yAll := p2.at(0, float64(win.OK+win.Errors))
		base := p2.y + p2.h
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#9ecae1"/>`+"\n", x0, yOK, math.Max(x1-x0-0.5, 0.5), base-yOK)
		if win.Errors > 0 {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#de2d26"/>`+"\n", x0, yAll, math.Max(x1-x0-0.5, 0.5), yOK-yAll)
		}
	}

	// Panel 3: latency by percentile.
	var lat []time.Duration
	for _, rec := range r.recs {
		if rec.err == "" && rec.status >= 200 && rec.status < 300 {
			lat = append(lat, rec.latency)
		}
	}
	slices.Sort(lat)
	p3 := panel{x: 70, y: 540, w: 800, h: 170, x0: 0, x1: 4, log: true, y0: p1.y0, y1: p1.y1}
	if len(lat) > 0 {
		p3.y0 = math.Pow(10, math.Floor(math.Log10(math.Max(ms(lat[0]), 0.01))))
		p3.y1 = math.Pow(10, math.Ceil(math.Log10(math.Max(ms(lat[len(lat)-1]), p3.y0*10))))
	}
	p3.frame(&b, "latency by percentile (ms, log)", "")
	for i, lbl := range []string{"0%", "90%", "99%", "99.9%", "99.99%"} {
		x, _ := p3.at(float64(i), p3.y0)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x, p3.y+p3.h+14, lbl)
	}
	if len(lat) > 0 {
		var pts []string
		for i := 0; i <= 400; i++ {
			nines := float64(i) / 100 // 0..4
			q := 1 - math.Pow(10, -nines)
			j := min(len(lat)-1, int(q*float64(len(lat))))
			x, y := p3.at(nines, ms(lat[j]))
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="#756bb1" stroke-width="2" points="%s"/>`+"\n", strings.Join(pts, " "))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

type panel struct {
	x, y, w, h float64
	x0, x1     float64
	y0, y1     float64
	log        bool
}

func (p panel) at(x, y float64) (float64, float64) {
	px := p.x + (x-p.x0)/(p.x1-p.x0)*p.w
	var f float64
	if p.log {
		f = (math.Log10(math.Max(y, p.y0)) - math.Log10(p.y0)) / (math.Log10(p.y1) - math.Log10(p.y0))
	} else {
		f = (y - p.y0) / (p.y1 - p.y0)
	}
	return px, p.y + p.h - math.Min(f, 1)*p.h
}

func (p panel) frame(b *strings.Builder, title, xunit string) {
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" font-weight="bold">%s</text>`+"\n", p.x, p.y-6, html.EscapeString(title))
	fmt.Fprintf(b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#333"/>`+"\n", p.x, p.y, p.w, p.h)
	var ticks []float64
	if p.log {
		for v := p.y0; v <= p.y1*1.0001; v *= 10 {
			ticks = append(ticks, v)
		}
	} else {
		for i := 0; i <= 4; i++ {
			ticks = append(ticks, p.y0+(p.y1-p.y0)*float64(i)/4)
		}
	}
	for _, v := range ticks {
		_, y := p.at(p.x0, v)
		fmt.Fprintf(b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", p.x, p.x+p.w, y, y)
		fmt.Fprintf(b, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", p.x-4, y+4, trimFloat(v))
	}
	if xunit != "" {
		for i := 0; i <= 5; i++ {
			v := p.x0 + (p.x1-p.x0)*float64(i)/5
			x, _ := p.at(v, p.y0)
			fmt.Fprintf(b, `<text x="%.1f" y="%.0f" text-anchor="middle">%s%s</text>`+"\n", x, p.y+p.h+14, trimFloat(v), xunit)
		}
	}
}

func trimFloat(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", v), "0"), ".")
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.3f", v), "0"), ".")
}

func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

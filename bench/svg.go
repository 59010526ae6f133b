package bench

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
)

// WriteMemorySVG plots the memory benchmark: resident and anonymous memory over time, the
// phases as shaded bands, and the goal as a dashed line (goal 0: none). It is plain SVG
// written by hand, so that the benchmark needs no plotting library.
func WriteMemorySVG(w io.Writer, title string, res MemoryResult, goal int64) error {
	const (
		width, height            = 960, 460
		left, right, top, bottom = 70, 20, 50, 80
	)
	plotW, plotH := float64(width-left-right), float64(height-top-bottom)
	var maxT, maxY float64
	for _, s := range res.Samples {
		maxT = math.Max(maxT, s.At.Seconds())
		maxY = math.Max(maxY, mib(s.RSS))
	}
	maxY = niceCeil(math.Max(maxY, mib(goal)) * 1.1)
	maxT = niceCeil(math.Max(maxT, 1))
	x := func(sec float64) float64 { return float64(left) + sec/maxT*plotW }
	y := func(m float64) float64 { return float64(top) + plotH - m/maxY*plotH }

	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", left, html.EscapeString(title))

	bands := []string{"#eef3fb", "#fbf1e6", "#eaf6ec"}
	for i, ph := range res.Phases {
		x0, x1 := x(ph.Start.Seconds()), x(ph.End.Seconds())
		p(`<rect x="%.1f" y="%d" width="%.1f" height="%.0f" fill="%s"/>`+"\n", x0, top, math.Max(x1-x0, 1), plotH, bands[i%len(bands)])
		p(`<text x="%.1f" y="%d" font-weight="bold">%s</text>`+"\n", x0+4, top+14, html.EscapeString(ph.Name))
		p(`<text x="%.1f" y="%d" fill="#444">peak %.1f MiB</text>`+"\n", x0+4, top+28, mib(ph.Peak))
	}

	// Grid and axes.
	for i := 0; i <= 5; i++ {
		m := maxY * float64(i) / 5
		p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", left, y(m), width-right, y(m))
		p(`<text x="%d" y="%.1f" text-anchor="end">%.0f</text>`+"\n", left-6, y(m)+4, m)
		sec := maxT * float64(i) / 5
		p(`<text x="%.1f" y="%d" text-anchor="middle">%.0f</text>`+"\n", x(sec), height-bottom+18, sec)
	}
	p(`<text x="%d" y="%d" text-anchor="middle">seconds since the router started</text>`+"\n", left+int(plotW)/2, height-bottom+38)
	p(`<text x="18" y="%d" transform="rotate(-90 18 %d)" text-anchor="middle">MiB</text>`+"\n", top+int(plotH)/2, top+int(plotH)/2)
	p(`<rect x="%d" y="%d" width="%.0f" height="%.0f" fill="none" stroke="#888"/>`+"\n", left, top, plotW, plotH)

	if goal > 0 {
		p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#c0392b" stroke-dasharray="6 4"/>`+"\n", left, y(mib(goal)), width-right, y(mib(goal)))
		p(`<text x="%d" y="%.1f" text-anchor="end" fill="#c0392b">goal %.0f MiB</text>`+"\n", width-right-4, y(mib(goal))-4, mib(goal))
	}
	line := func(value func(MemSample) int64, color, dash string) {
		var pts []string
		for _, s := range res.Samples {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(s.At.Seconds()), y(mib(value(s)))))
		}
		p(`<polyline fill="none" stroke="%s" stroke-width="1.6" %s points="%s"/>`+"\n", color, dash, strings.Join(pts, " "))
	}
	line(func(s MemSample) int64 { return s.RSS }, "#1f5fa8", "")
	line(func(s MemSample) int64 { return s.Anon }, "#e67e22", `stroke-dasharray="4 3"`)
	line(func(s MemSample) int64 { return s.Exe }, "#7f8c8d", `stroke-dasharray="1 2"`)
	line(func(s MemSample) int64 { return s.Log }, "#27ae60", `stroke-dasharray="8 3 2 3"`)

	// Legend.
	lx, ly := width-right-640, height-12
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#1f5fa8" stroke-width="2"/><text x="%d" y="%d">resident (VmRSS)</text>`+"\n", lx, ly-4, lx+24, ly-4, lx+30, ly)
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#e67e22" stroke-width="2" stroke-dasharray="4 3"/><text x="%d" y="%d">anonymous (RssAnon)</text>`+"\n", lx+130, ly-4, lx+154, ly-4, lx+160, ly)
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#7f8c8d" stroke-width="2" stroke-dasharray="1 2"/><text x="%d" y="%d">executable mapped</text>`+"\n", lx+290, ly-4, lx+314, ly-4, lx+320, ly)
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#27ae60" stroke-width="2" stroke-dasharray="8 3 2 3"/><text x="%d" y="%d">log file mapped</text>`+"\n", lx+450, ly-4, lx+474, ly-4, lx+480, ly)
	p("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// niceCeil rounds v up to 1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten: an axis end
// that splits into five round ticks without wasting much of the plot.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	pow := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if m*pow >= v {
			return m * pow
		}
	}
	return 10 * pow
}

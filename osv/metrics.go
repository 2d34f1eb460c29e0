package osv

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
)

// MetricsLog appends one JSON object per line (JSONL) to a file: every
// step's Metrics, plus whatever else the caller records.
type MetricsLog struct {
	f   *os.File
	w   *bufio.Writer
	enc *json.Encoder
}

// OpenMetricsLog opens path for appending (a resumed run continues its
// log), creating it when needed.
func OpenMetricsLog(path string) (*MetricsLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("osv: metrics: %w", err)
	}
	w := bufio.NewWriter(f)
	return &MetricsLog{f: f, w: w, enc: json.NewEncoder(w)}, nil
}

// Write appends one record (a Metrics, or any JSON-encodable value) and
// flushes it, so that a killed run loses at most the line being written.
func (l *MetricsLog) Write(v any) error {
	if err := l.enc.Encode(v); err != nil {
		return fmt.Errorf("osv: metrics: %w", err)
	}
	return l.w.Flush()
}

// Close flushes and closes the file.
func (l *MetricsLog) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.w.Flush()
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

// ReadMetrics reads the numeric fields of a JSONL metrics file, by name,
// in file order, with the step of each record (its "step" field, or its
// line number). Malformed lines are an error naming the line.
func ReadMetrics(path string) (steps []float64, series map[string][]float64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("osv: metrics: %w", err)
	}
	defer f.Close()
	series = map[string][]float64{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			return nil, nil, fmt.Errorf("osv: metrics: %s line %d: %w", path, n, err)
		}
		step := float64(n)
		if v, ok := rec["step"].(float64); ok {
			step = v
		}
		i := len(steps)
		steps = append(steps, step)
		for k, v := range rec {
			x, ok := v.(float64)
			if !ok || k == "step" {
				continue
			}
			s := series[k]
			for len(s) < i {
				s = append(s, math.NaN())
			}
			series[k] = append(s, x)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("osv: metrics: %s: %w", path, err)
	}
	for k, s := range series {
		for len(s) < len(steps) {
			s = append(s, math.NaN())
		}
		series[k] = s
	}
	return steps, series, nil
}

// PlotMetrics draws the named fields of a JSONL metrics file (all numeric
// fields whose names start with "loss" when fields is empty) against the
// step, one panel per field, as an SVG image.
func PlotMetrics(jsonl, svg string, fields ...string) error {
	steps, series, err := ReadMetrics(jsonl)
	if err != nil {
		return err
	}
	if len(fields) == 0 {
		for k := range series {
			if strings.HasPrefix(k, "loss") {
				fields = append(fields, k)
			}
		}
		sort.Strings(fields)
	}
	if len(steps) == 0 || len(fields) == 0 {
		return fmt.Errorf("osv: metrics: %s has nothing to plot", jsonl)
	}
	const w, ph, pad = 720.0, 160.0, 44.0
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" font-family="sans-serif" font-size="11">`+"\n", w, ph*float64(len(fields)))
	for i, name := range fields {
		ys, ok := series[name]
		if !ok {
			return fmt.Errorf("osv: metrics: %s has no field %q", jsonl, name)
		}
		top := ph * float64(i)
		plotPanel(&b, steps, ys, name, top, w, ph, pad)
	}
	b.WriteString("</svg>\n")
	tmp := svg + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("osv: metrics: %w", err)
	}
	return os.Rename(tmp, svg)
}

// plotPanel draws one series as a polyline in a framed panel with its
// range and name.
func plotPanel(b *strings.Builder, xs, ys []float64, name string, top, w, h, pad float64) {
	xmin, xmax := xs[0], xs[len(xs)-1]
	ymin, ymax := math.Inf(1), math.Inf(-1)
	for _, y := range ys {
		if !math.IsNaN(y) && !math.IsInf(y, 0) {
			ymin, ymax = math.Min(ymin, y), math.Max(ymax, y)
		}
	}
	if math.IsInf(ymin, 1) {
		ymin, ymax = 0, 1
	}
	if ymax == ymin {
		ymax = ymin + 1
	}
	if xmax == xmin {
		xmax = xmin + 1
	}
	x0, x1, y0, y1 := pad, w-pad/2, top+pad/2, top+h-pad/2
	fmt.Fprintf(b, `<rect x="%g" y="%g" width="%g" height="%g" fill="none" stroke="#999"/>`+"\n", x0, y0, x1-x0, y1-y0)
	fmt.Fprintf(b, `<text x="%g" y="%g">%s</text>`+"\n", x0, y0-4, escape(name))
	fmt.Fprintf(b, `<text x="4" y="%g">%.4g</text><text x="4" y="%g">%.4g</text>`+"\n", y0+10, ymax, y1, ymin)
	fmt.Fprintf(b, `<text x="%g" y="%g">%g</text><text x="%g" y="%g" text-anchor="end">%g</text>`+"\n", x0, y1+14, xmin, x1, y1+14, xmax)
	b.WriteString(`<polyline fill="none" stroke="#1f77b4" stroke-width="1.2" points="`)
	for i, y := range ys {
		if math.IsNaN(y) || math.IsInf(y, 0) {
			continue
		}
		px := x0 + (xs[i]-xmin)/(xmax-xmin)*(x1-x0)
		py := y1 - (y-ymin)/(ymax-ymin)*(y1-y0)
		fmt.Fprintf(b, "%.1f,%.1f ", px, py)
	}
	b.WriteString(`"/>` + "\n")
}

func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

package main

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// row is one line of the result table. NaN marks a figure that does not
// apply to the row.
type row struct {
	scenario string
	wall     time.Duration
	// baseline is the plain client's reference time the row is compared
	// with (0: none); baselineText explains it ("2.31 + 1.0").
	baseline     time.Duration
	baselineText string
	// readyRef is the plain client's time until all its pods were Ready
	// (kwok's own throughput included), for a second ratio.
	readyRef time.Duration
	target   string
	// clientWrites: writes per pod by the client under test (the manager,
	// from its rest_client_requests_total; or the plain client, counted).
	clientWrites float64
	plainClient  bool
	apiPodWrites float64 // apiserver_request_total writes to pods/* per pod, all clients
	apiAllWrites float64 // apiserver_request_total writes to anything per pod, all clients
	cpu          float64 // manager CPU seconds
	peakRSS      float64 // manager peak RSS, MiB
	rssText      string  // overrides the peak RSS cell
	checks       []check
	notes        []string
	crashed      bool // the manager crashed during the row: its figures are partial
}

type check struct {
	what string
	ok   bool
}

func (r *row) ratio() float64 {
	if r.baseline <= 0 {
		return math.NaN()
	}
	return r.wall.Seconds() / r.baseline.Seconds()
}

func (r *row) verdict() string {
	if len(r.checks) == 0 {
		return "—"
	}
	var failed []string
	for _, c := range r.checks {
		if !c.ok {
			failed = append(failed, c.what)
		}
	}
	if len(failed) == 0 {
		return "pass"
	}
	return "**FAIL** (" + strings.Join(failed, "; ") + ")"
}

func num(v float64, prec int) string {
	if math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf("%.*f", prec, v)
}

var tableHeader = []string{
	"scenario", "wall time (s)", "baseline (s)", "ratio", "target",
	"manager writes/pod (manager's rest_client)", "apiserver pod writes/pod (all clients)",
	"manager CPU (s)", "manager peak RSS (MiB)", "pass/fail",
}

func (r *row) cells() []string {
	base := "—"
	if r.baseline > 0 {
		base = fmt.Sprintf("%.2f", r.baseline.Seconds())
		if r.baselineText != "" {
			base += " (" + r.baselineText + ")"
		}
	}
	writes := num(r.clientWrites, 2)
	if r.plainClient && !math.IsNaN(r.clientWrites) {
		writes = "— (plain client: " + num(r.clientWrites, 2) + ")"
	}
	api := num(r.apiPodWrites, 2)
	if !math.IsNaN(r.apiAllWrites) {
		api += fmt.Sprintf(" (all resources %.2f)", r.apiAllWrites)
	}
	rss := num(r.peakRSS, 1)
	if r.rssText != "" {
		rss = r.rssText
	}
	target := r.target
	if target == "" {
		target = "—"
	}
	ratio := num(r.ratio(), 2)
	if r.readyRef > 0 {
		ratio += fmt.Sprintf(" (%.2f vs all-Ready %.2f s)", r.wall.Seconds()/r.readyRef.Seconds(), r.readyRef.Seconds())
	}
	return []string{
		r.scenario, fmt.Sprintf("%.2f", r.wall.Seconds()), base, ratio, target,
		writes, api, num(r.cpu, 2), rss, r.verdict(),
	}
}

// markdownTable renders rows as a GitHub markdown table with aligned
// columns, readable as plain text too.
func markdownTable(rows []*row) string {
	all := [][]string{tableHeader}
	for _, r := range rows {
		all = append(all, r.cells())
	}
	width := make([]int, len(tableHeader))
	for _, cells := range all {
		for i, c := range cells {
			if n := len([]rune(c)); n > width[i] {
				width[i] = n
			}
		}
	}
	var b strings.Builder
	line := func(cells []string) {
		b.WriteString("|")
		for i, c := range cells {
			b.WriteString(" " + c + strings.Repeat(" ", width[i]-len([]rune(c))) + " |")
		}
		b.WriteString("\n")
	}
	line(all[0])
	sep := make([]string, len(width))
	for i, w := range width {
		sep[i] = strings.Repeat("-", w)
	}
	line(sep)
	for _, cells := range all[1:] {
		line(cells)
	}
	return b.String()
}

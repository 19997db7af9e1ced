package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// unit says how a row's samples read and which way is better.
type unit struct {
	name        string // "ms", "MiB/s", ...
	lowerBetter bool
}

var (
	unitMS       = unit{"ms", true}
	unitS        = unit{"s", true}
	unitMiBs     = unit{"MiB/s", false}
	unitCPUPerGB = unit{"CPU s/GB", true}
	unitMiB      = unit{"MiB", true}
	unitPerCore  = unit{"events/s/core", false}
	unitKiB      = unit{"KiB/peer", true}
	unitShare    = unit{"%", true}
	unitCount    = unit{"", true}
)

// row is one line of the results table: a subject measured several times
// next to a baseline measured in the same run.
type row struct {
	group    string
	name     string // what was measured
	unit     unit
	got      []float64
	baseName string
	base     []float64
	note     string // why it was not measured, or what to keep in mind
}

// stats are the median and the spread of a set of samples.
type stats struct {
	n                int
	median, min, max float64
}

func summarize(xs []float64) stats {
	if len(xs) == 0 {
		return stats{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stats{n: len(s), median: m, min: s[0], max: s[len(s)-1]}
}

// format prints a figure with about three significant digits.
func format(v float64) string {
	switch a := abs(v); {
	case a == 0:
		return "0"
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

func cell(xs []float64, u unit) string {
	s := summarize(xs)
	switch s.n {
	case 0:
		return "–"
	case 1:
		return fmt.Sprintf("%s %s (n=1)", format(s.median), u.name)
	}
	return fmt.Sprintf("%s %s (%s–%s, n=%d)", format(s.median), u.name, format(s.min), format(s.max), s.n)
}

// ratio is subject median over baseline median, with a word saying which
// side is better, so a reader need not know the unit's direction.
func ratio(r row) string {
	g, b := summarize(r.got), summarize(r.base)
	if g.n == 0 || b.n == 0 || b.median == 0 || g.median == 0 {
		return "–"
	}
	x := g.median / b.median
	better := x < 1 == r.unit.lowerBetter
	if x > 0.95 && x < 1.05 {
		return fmt.Sprintf("%.2f× (even)", x)
	}
	if better {
		return fmt.Sprintf("%.2f× (better)", x)
	}
	return fmt.Sprintf("%.2f× (worse)", x)
}

// writeTable prints the rows as one Markdown table per group.
func writeTable(w io.Writer, rows []row) {
	var group string
	for _, r := range rows {
		if r.group != group {
			if group != "" {
				fmt.Fprintln(w)
			}
			group = r.group
			fmt.Fprintf(w, "### %s\n\n", group)
			fmt.Fprintln(w, "| measured | median (min–max) | baseline, same run | baseline median (min–max) | ratio |")
			fmt.Fprintln(w, "|---|---|---|---|---|")
		}
		name := r.name
		if len(r.got) == 0 {
			note := r.note
			if note == "" {
				note = "not measured"
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | – |\n", esc(name), esc(note), esc(r.baseName), cell(r.base, r.unit))
			continue
		}
		if r.note != "" {
			name += " — " + r.note
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", esc(name), cell(r.got, r.unit), esc(r.baseName), cell(r.base, r.unit), ratio(r))
	}
}

func esc(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

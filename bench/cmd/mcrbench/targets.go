package main

import (
	"fmt"
	"slices"
)

// check is one "done when" item of issue 19, evaluated on this run.
type check struct {
	What string `json:"what"`
	Got  string `json:"got"`
	Met  bool   `json:"met"`
}

// targetChecks evaluates the targets on the run's values. Each is only
// reported when both sides were measured.
func targetChecks(res *results, o *options) []check {
	var out []check
	vals := func(key, variant string) []float64 { return res.byKey[key].Values[variant] }
	for _, st := range o.styles {
		k := "blob_push_" + st.String()
		mc, up := vals(k, "mcr"), vals(k, "upstream")
		if len(mc) == 0 || len(up) == 0 {
			continue
		}
		ratio := median(mc) / median(up)
		out = append(out, check{What: st.String() + " push: median >= 1.2x upstream",
			Got: fmt.Sprintf("%.2fx (%s vs %s MB/s)", ratio, fmtNum(median(mc)), fmtNum(median(up))), Met: ratio >= 1.2})
		out = append(out, check{What: st.String() + " push: MCR's slowest round >= upstream's median",
			Got: fmt.Sprintf("%s vs %s MB/s", fmtNum(slices.Min(mc)), fmtNum(median(up))), Met: slices.Min(mc) >= median(up)})
		mcpu, ucpu := vals(k+"_cpu", "mcr"), vals(k+"_cpu", "upstream")
		worst := 0.0
		for i := range min(len(mcpu), len(ucpu)) {
			worst = max(worst, mcpu[i]/ucpu[i])
		}
		out = append(out, check{What: st.String() + " push: server CPU/GB <= 0.8x upstream's in every round",
			Got: fmt.Sprintf("worst round %.2fx; MCR max %.2f s/GB, upstream min %.2f s/GB", worst, slices.Max(mcpu), slices.Min(ucpu)),
			Met: worst <= 0.8})
	}
	one, many, upOne := vals("art_one", "mcr"), vals("art_many", "mcr"), vals("art_one", "upstream")
	if len(one) > 0 && len(many) > 0 {
		r := median(one) / median(many)
		out = append(out, check{What: "tiny artifacts: one repository >= 0.8x the 64-repository rate",
			Got: fmt.Sprintf("%.2fx (%s vs %s art/s)", r, fmtNum(median(one)), fmtNum(median(many))), Met: r >= 0.8})
	}
	if len(one) > 0 && len(upOne) > 0 {
		r := median(one) / median(upOne)
		out = append(out, check{What: "tiny artifacts: one repository >= upstream's",
			Got: fmt.Sprintf("%.2fx (%s vs %s art/s)", r, fmtNum(median(one)), fmtNum(median(upOne))), Met: r >= 1})
	}
	// Ratios that must not drop below the landed baseline (issue 19).
	for _, b := range []struct {
		key   string
		floor float64
		lower bool // lower is better: the ratio must not exceed floor
	}{
		{"blob_pull", 1.11, false}, {"manifest_get", 1.22, false}, {"manifest_head", 1.11, false},
		{"images_push", 1.05, false}, {"images_pull", 0.99, false}, {"peak_rss", 0.82, true},
	} {
		m := res.byKey[b.key]
		if m == nil || m.Ratio == nil {
			continue
		}
		c := check{What: fmt.Sprintf("%s ratio %s %.2f", b.key, map[bool]string{false: ">=", true: "<="}[b.lower], b.floor),
			Got: fmt.Sprintf("%.2fx", *m.Ratio)}
		if b.lower {
			c.Met = *m.Ratio <= b.floor
		} else {
			c.Met = *m.Ratio >= b.floor
		}
		out = append(out, c)
	}
	return out
}

// floorLines compares each push style's server CPU per GB with the floor
// server's in the same run (medians): how much of MCR's and upstream's CPU
// is above the least a push costs, and how much room the 0.8x target
// leaves above it.
func floorLines(res *results, o *options) []string {
	var out []string
	for _, st := range o.styles {
		m := res.byKey["blob_push_"+st.String()+"_cpu"]
		fl, mc, up := m.Values["floor"], m.Values["mcr"], m.Values["upstream"]
		if len(fl) == 0 || len(mc) == 0 || len(up) == 0 {
			continue
		}
		f, c, u := median(fl), median(mc), median(up)
		out = append(out, fmt.Sprintf("%s: floor %.2f s/GB [%.2f-%.2f]; MCR %.2f (floor +%.2f), upstream %.2f (floor +%.2f); 0.8x upstream = %.2f s/GB (floor +%.2f)",
			st, f, slices.Min(fl), slices.Max(fl), c, c-f, u, u-f, 0.8*u, 0.8*u-f))
	}
	return out
}

package webui

import (
	"fmt"
	"html/template"
	"sort"
	"strings"
	"time"
)

// humanSize formats a byte count with binary units: "0 B", "512 B",
// "1.5 KiB", "23.4 MiB".
func humanSize(n int64) string {
	if n < 0 {
		return "—"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	suffix := []string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}[exp]
	if v >= 100 {
		return fmt.Sprintf("%.0f %s", v, suffix)
	}
	return fmt.Sprintf("%.1f %s", v, suffix)
}

// relTime says how long ago (or from now) t is, relative to now.
func relTime(t, now time.Time) string {
	if t.IsZero() || t.Unix() <= 0 {
		return "never"
	}
	d := now.Sub(t)
	future := d < 0
	if future {
		d = -d
	}
	var s string
	switch {
	case d < 10*time.Second:
		return "just now"
	case d < time.Minute:
		s = plural(int(d/time.Second), "second")
	case d < time.Hour:
		s = plural(int(d/time.Minute), "minute")
	case d < 24*time.Hour:
		s = plural(int(d/time.Hour), "hour")
	case d < 30*24*time.Hour:
		s = plural(int(d/(24*time.Hour)), "day")
	case d < 365*24*time.Hour:
		s = plural(int(d/(30*24*time.Hour)), "month")
	default:
		s = plural(int(d/(365*24*time.Hour)), "year")
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// exactTime is the full timestamp shown on hover.
func exactTime(t time.Time) string {
	if t.IsZero() || t.Unix() <= 0 {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 MST")
}

// shortDigest abbreviates "sha256:0123456789abcdef…" to "sha256:0123456789ab".
func shortDigest(d string) string {
	algo, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return algo + ":" + hex[:12]
}

// mediaTypeLabel names well-known manifest and layer media types.
func mediaTypeLabel(mt string) string {
	switch mt {
	case "application/vnd.oci.image.manifest.v1+json":
		return "OCI image manifest"
	case "application/vnd.oci.image.index.v1+json":
		return "OCI image index"
	case "application/vnd.docker.distribution.manifest.v2+json":
		return "Docker manifest v2"
	case "application/vnd.docker.distribution.manifest.list.v2+json":
		return "Docker manifest list"
	case "application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.docker.image.rootfs.diff.tar.gzip":
		return "layer (tar+gzip)"
	case "application/vnd.oci.image.layer.v1.tar+zstd":
		return "layer (tar+zstd)"
	case "application/vnd.oci.image.layer.v1.tar":
		return "layer (tar)"
	case "application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json":
		return "image config"
	case "":
		return "—"
	}
	return mt
}

// isIndex reports whether mt is a multi-platform index.
func isIndex(mt string) bool {
	return mt == "application/vnd.oci.image.index.v1+json" || mt == "application/vnd.docker.distribution.manifest.list.v2+json"
}

// timeHTML renders a relative time with the exact time on hover.
func timeHTML(t time.Time, now time.Time) template.HTML {
	if t.IsZero() || t.Unix() <= 0 {
		return template.HTML(`<span class="muted">never</span>`)
	}
	return template.HTML(`<time datetime="` + template.HTMLEscapeString(t.UTC().Format(time.RFC3339)) + `" title="` +
		template.HTMLEscapeString(exactTime(t)) + `">` + template.HTMLEscapeString(relTime(t, now)) + `</time>`)
}

// detail is one audit detail, formatted for people.
type detail struct{ Key, Value string }

// detailPairs renders audit details in key order: sizes human-readable,
// media types named.
func detailPairs(m map[string]any) []detail {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]detail, 0, len(keys))
	for _, k := range keys {
		v := m[k]
		var s string
		switch x := v.(type) {
		case float64:
			if k == "size" || strings.HasPrefix(k, "bytes") || strings.HasSuffix(k, "_bytes") {
				s = humanSize(int64(x))
			} else {
				s = fmt.Sprintf("%v", x)
			}
		case string:
			s = x
			if k == "media_type" {
				s = mediaTypeLabel(x)
			}
		default:
			s = fmt.Sprintf("%v", x)
		}
		out = append(out, detail{Key: strings.ReplaceAll(k, "_", " "), Value: s})
	}
	return out
}

func joinOr(list []string, empty string) string {
	if len(list) == 0 {
		return empty
	}
	return strings.Join(list, ", ")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

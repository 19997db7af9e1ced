package main

import "fmt"

// humanSize formats n bytes for people, in the one style every human-facing
// line of p2pcdn uses: "999 B", "1.0 KiB", "4.8 MiB" (binary units). JSON
// output keeps exact byte counts.
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

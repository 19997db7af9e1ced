package main

import (
	"runtime/debug"
	"testing"
)

func TestVersionOf(t *testing.T) {
	rev := []debug.BuildSetting{
		{Key: "vcs.revision", Value: "a16f26fc4731c0ffee0123456789abcdef012345"},
		{Key: "vcs.time", Value: "2026-11-29T23:08:20Z"},
		{Key: "vcs.modified", Value: "true"},
	}
	for _, c := range []struct {
		version  string
		settings []debug.BuildSetting
		want     string
	}{
		{"", nil, "(devel), go1.26"},
		{"(devel)", rev, "(devel) revision a16f26fc4731+dirty (2026-11-29T23:08:20Z), go1.26"},
		// The pseudo-version names the revision already: not twice.
		{"v0.0.0-20261129230820-a16f26fc4731+dirty", rev, "v0.0.0-20261129230820-a16f26fc4731+dirty, go1.26"},
		{"v1.2.0", rev, "v1.2.0 revision a16f26fc4731+dirty (2026-11-29T23:08:20Z), go1.26"},
	} {
		bi := &debug.BuildInfo{GoVersion: "go1.26", Main: debug.Module{Version: c.version}, Settings: c.settings}
		if got := versionOf(bi); got != c.want {
			t.Errorf("versionOf(%q) = %q, want %q", c.version, got, c.want)
		}
	}
}

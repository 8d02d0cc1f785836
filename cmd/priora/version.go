package main

import (
	"fmt"
	"runtime/debug"
)

// version is stamped by release builds (the Dockerfile passes
// -ldflags "-X main.version=v1.2.3"); otherwise it comes from the build info.
var version = ""

// buildVersion is what Priora reports as its version everywhere (priora
// version, the CapabilityStatement's software.version, /healthz): the
// stamped release, else the module version, else "devel", followed by the
// VCS revision the binary was built from (+dirty with uncommitted changes).
func buildVersion() string {
	v, rev, dirty := version, "", false
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "devel"
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		v += "+" + rev
		if dirty {
			v += ".dirty"
		}
	}
	return v
}

// versionLine is `priora version`.
func versionLine() string {
	goVersion := "unknown"
	if info, ok := debug.ReadBuildInfo(); ok {
		goVersion = info.GoVersion
	}
	return fmt.Sprintf("priora %s (%s)", buildVersion(), goVersion)
}

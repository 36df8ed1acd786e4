// Package version reports the build's version, set at link time with
// -ldflags "-X github.com/drover-dev/drover/internal/version.version=v0.1.0".
package version

import "runtime/debug"

// version is written only by the linker.
var version = ""

// Get returns the version of this build: the linker-set version, else the
// module version, else "dev".
func Get() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

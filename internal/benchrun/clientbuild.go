package benchrun

import (
	"debug/buildinfo"
	"debug/elf"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
)

// ClientBuild describes how the onionlite binary bin was built, read from
// the build information Go embeds in it rather than taken from whoever
// built it: CGO_ENABLED and the go build flags that change the program
// (-tags, -ldflags, -gcflags, -trimpath, ...), then whether the executable
// is statically linked, e.g. "CGO_ENABLED=0 -tags=nodev; statically
// linked". "" when bin has no readable build information.
func ClientBuild(bin string) string {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return ""
	}
	s := buildFlags(bi.Settings)
	if f, err := elf.Open(bin); err == nil {
		static := !slices.ContainsFunc(f.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP })
		f.Close()
		if static {
			s += "; statically linked"
		} else {
			s += "; dynamically linked"
		}
	}
	return s
}

// buildFlags renders the settings of a Go build that change the program
// as a command line would: CGO_ENABLED=0 -tags=nodev -trimpath. Settings
// that only describe the target or the checkout (GOOS, GOARCH, vcs.*,
// -compiler, CGO_CFLAGS) are left out; a -pgo profile keeps its file name
// only.
func buildFlags(settings []debug.BuildSetting) string {
	var cgo string
	var flags []string
	for _, s := range settings {
		switch s.Key {
		case "CGO_ENABLED":
			cgo = "CGO_ENABLED=" + s.Value
		case "-tags", "-ldflags", "-gcflags", "-asmflags", "-buildmode":
			if s.Key == "-buildmode" && s.Value == "exe" {
				continue
			}
			flags = append(flags, s.Key+"="+quoteFlag(s.Value))
		case "-pgo":
			flags = append(flags, "-pgo="+quoteFlag(filepath.Base(s.Value)))
		case "-trimpath", "-race", "-msan", "-asan", "-cover":
			if s.Value == "true" {
				flags = append(flags, s.Key)
			}
		}
	}
	if cgo != "" {
		flags = append([]string{cgo}, flags...)
	}
	if len(flags) == 0 {
		return "default flags"
	}
	return strings.Join(flags, " ")
}

// quoteFlag quotes a flag value holding spaces.
func quoteFlag(v string) string {
	if strings.ContainsAny(v, " \t'\"") {
		return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
	}
	return v
}

// leanBuild reports whether a ClientBuild description is the lean client
// build: its -tags include nodev.
func leanBuild(build string) bool {
	for _, f := range strings.Fields(strings.ReplaceAll(build, ";", " ")) {
		if tags, ok := strings.CutPrefix(f, "-tags="); ok && slices.Contains(strings.Split(strings.Trim(tags, "'"), ","), "nodev") {
			return true
		}
	}
	return false
}

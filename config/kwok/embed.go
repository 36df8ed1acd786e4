// Package kwok embeds the kwok Stage definitions that make simulated pods
// behave like a kubelet where Drover depends on it (restart on image change,
// readiness gates, in-place resize, finalizers, run-to-completion), together
// with kwok's node stages. Each *.yaml file in this directory holds one Stage;
// the pod stages share one jq "state" expression so that exactly one of them
// matches a pod at any time.
package kwok

import (
	"bytes"
	"embed"
	"io/fs"
	"sort"
)

//go:embed *.yaml
var files embed.FS

// Stages returns every Stage document of this directory, in file-name order,
// as one multi-document YAML stream.
func Stages() []byte {
	names, err := fs.Glob(files, "*.yaml")
	if err != nil {
		panic(err) // the pattern is constant and valid
	}
	sort.Strings(names)
	var b bytes.Buffer
	for _, name := range names {
		data, err := files.ReadFile(name)
		if err != nil {
			panic(err) // embedded files are always readable
		}
		b.WriteString("---\n# Source: config/kwok/" + name + "\n")
		b.Write(data)
		if !bytes.HasSuffix(data, []byte("\n")) {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// offsets - an independent oracle for the Go plugin's unit test: the field
// offsets and sizes the plugin reads from DWARF, computed here by Go's own
// type checker (go/types with the gc sizes of amd64) from the standard
// library's source. Prints "type.field offset size" lines.
package main

import (
	"fmt"
	"go/importer"
	"go/token"
	"go/types"
	"os"
)

type want struct{ pkg, typ, field string }

func main() {
	sizes := types.SizesFor("gc", "amd64")
	imp := importer.ForCompiler(token.NewFileSet(), "source", nil).(types.ImporterFrom)
	wants := []want{
		{"runtime", "g", "goid"},
		{"runtime", "itab", "_type"},
		{"crypto/tls", "Conn", "conn"},
		{"net", "TCPConn", "conn"},
		{"net", "conn", "fd"},
		{"net", "netFD", "pfd"},
		{"internal/poll", "FD", "Sysfd"},
		{"net/http", "transportRequest", "Request"},
	}
	status := 0
	for _, w := range wants {
		p, err := imp.ImportFrom(w.pkg, "", 0)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", w.pkg, err)
			status = 1
			continue
		}
		obj := p.Scope().Lookup(w.typ)
		if obj == nil {
			fmt.Fprintf(os.Stderr, "%s.%s: no such type\n", w.pkg, w.typ)
			status = 1
			continue
		}
		st, ok := obj.Type().Underlying().(*types.Struct)
		if !ok {
			status = 1
			continue
		}
		fields := make([]*types.Var, st.NumFields())
		for i := range fields {
			fields[i] = st.Field(i)
		}
		offs := sizes.Offsetsof(fields)
		found := false
		for i, f := range fields {
			if f.Name() == w.field {
				fmt.Printf("%s.%s.%s %d %d\n", w.pkg, w.typ, w.field, offs[i], sizes.Sizeof(f.Type()))
				found = true
			}
		}
		if !found {
			fmt.Fprintf(os.Stderr, "%s.%s.%s: no such field\n", w.pkg, w.typ, w.field)
			status = 1
		}
	}
	os.Exit(status)
}

package socketio

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// The mediator sends and receives mostly small events of plain strings (hashes, ids, lists of ids). The
// helpers here encode and split those without reflection, so the busiest path allocates little and keeps
// garbage collections, the main source of latency spikes with many connections, rare. Anything else takes
// the encoding/json path; the fuzz tests check that both give the same result.

// appendEventFast appends 42["name",args...] when every argument is a string, []string, int or
// json.RawMessage and every string needs no JSON escaping. ok is false otherwise and dst is then unchanged.
func appendEventFast(dst []byte, name string, args []any) (out []byte, ok bool) {
	if !plainString(name) {
		return dst, false
	}
	size := len(`42[""]`) + len(name)
	for _, a := range args {
		size++ // comma
		switch a := a.(type) {
		case string:
			if !plainString(a) {
				return dst, false
			}
			size += len(a) + 2
		case []string:
			size += 4 // [] or null
			for _, s := range a {
				if !plainString(s) {
					return dst, false
				}
				size += len(s) + 3
			}
		case int:
			size += 20
		case json.RawMessage:
			size += len(a) + 4
		default:
			return dst, false
		}
	}
	// One allocation of the right size: answers carry up to 50 ids, and growing by doubling would make
	// about as much garbage again.
	out = slices.Grow(dst, size)
	out = append(out, `42["`...)
	out = append(out, name...)
	out = append(out, '"')
	for _, a := range args {
		out = append(out, ',')
		switch a := a.(type) {
		case string:
			out = append(out, '"')
			out = append(out, a...)
			out = append(out, '"')
		case []string:
			if a == nil {
				out = append(out, "null"...)
				continue
			}
			out = append(out, '[')
			for i, s := range a {
				if i > 0 {
					out = append(out, ',')
				}
				out = append(out, '"')
				out = append(out, s...)
				out = append(out, '"')
			}
			out = append(out, ']')
		case int:
			out = strconv.AppendInt(out, int64(a), 10)
		case json.RawMessage:
			if a == nil {
				out = append(out, "null"...)
				continue
			}
			if !json.Valid(a) {
				return dst, false // let encoding/json report it
			}
			// encoding/json compacts raw messages; only take those that are compact already.
			if !compactJSON(a) {
				return dst, false
			}
			out = append(out, a...)
		}
	}
	return append(out, ']'), true
}

// plainString reports whether s encodes as itself between quotes: printable ASCII without '"' and '\'.
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 || b >= 0x7f || b == '"' || b == '\\' {
			return false
		}
	}
	return true
}

// compactJSON reports whether valid JSON v has no whitespace outside strings.
func compactJSON(v []byte) bool {
	inStr, esc := false, false
	for _, b := range v {
		switch {
		case esc:
			esc = false
		case inStr && b == '\\':
			esc = true
		case b == '"':
			inStr = !inStr
		case !inStr && (b == ' ' || b == '\t' || b == '\n' || b == '\r'):
			return false
		}
	}
	return true
}

// splitArray splits valid JSON data, which must be an array, into its elements (sub-slices of data, without
// surrounding whitespace).
func splitArray(data []byte) ([]json.RawMessage, error) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return nil, fmt.Errorf("want a JSON array, got %.20q", data[i:])
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == ']' {
		return []json.RawMessage{}, nil
	}
	// Count the elements first so the result is one allocation of the right size.
	n := 0
	eachElementEnd(data, i, func(int) { n++ })
	out := make([]json.RawMessage, 0, n)
	start := i
	eachElementEnd(data, i, func(j int) {
		out = append(out, trimSpace(data[start:j]))
		start = j + 1
	})
	return out, nil
}

// eachElementEnd calls end(j) for every j at or after i where data holds the
// ',' or ']' that ends a top-level element of the array whose body starts at i
// (data is valid JSON).
func eachElementEnd(data []byte, i int, end func(j int)) {
	depth, inStr, esc := 0, false, false
	for ; i < len(data); i++ {
		b := data[i]
		switch {
		case esc:
			esc = false
		case inStr:
			if b == '\\' {
				esc = true
			} else if b == '"' {
				inStr = false
			}
		case b == '"':
			inStr = true
		case b == '[' || b == '{':
			depth++
		case (b == ']' || b == '}') && depth > 0:
			depth--
		case (b == ',' || b == ']') && depth == 0:
			end(i)
		}
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

func trimSpace(v []byte) []byte {
	i := skipSpace(v, 0)
	j := len(v)
	for j > i && (v[j-1] == ' ' || v[j-1] == '\t' || v[j-1] == '\n' || v[j-1] == '\r') {
		j--
	}
	return v[i:j:j]
}

package wire

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// Bencode values are decoded to and encoded from these Go types:
// int64 (integers), string (byte strings), []any (lists) and map[string]any
// (dictionaries). Encoding also accepts int and []byte.

// MaxBencodeDepth bounds the nesting of lists and dictionaries we decode.
const MaxBencodeDepth = 16

// DecodeBencode decodes one value from the start of data and returns it with
// the number of bytes it used; extension messages carry raw bytes after their
// dictionary. The decoder is strict: canonical integers, dictionary keys
// sorted and unique, bounded depth.
func DecodeBencode(data []byte) (any, int, error) {
	d := decoder{data: data}
	v, err := d.value(0)
	if err != nil {
		return nil, 0, err
	}
	return v, d.pos, nil
}

type decoder struct {
	data []byte
	pos  int
}

func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("bencode at byte %d: %s", d.pos, fmt.Sprintf(format, args...))
}

func (d *decoder) value(depth int) (any, error) {
	if d.pos >= len(d.data) {
		return nil, d.errorf("unexpected end of data")
	}
	switch c := d.data[d.pos]; {
	case c == 'i':
		d.pos++
		return d.integer('e')
	case c >= '0' && c <= '9':
		return d.str()
	case c == 'l' || c == 'd':
		if depth >= MaxBencodeDepth {
			return nil, d.errorf("nested deeper than %d levels", MaxBencodeDepth)
		}
		d.pos++
		if c == 'l' {
			return d.list(depth)
		}
		return d.dict(depth)
	default:
		return nil, d.errorf("unexpected character %q", c)
	}
}

// integer reads a canonical decimal integer terminated by end.
func (d *decoder) integer(end byte) (int64, error) {
	start := d.pos
	for d.pos < len(d.data) && d.data[d.pos] != end {
		d.pos++
	}
	if d.pos >= len(d.data) {
		return 0, d.errorf("unterminated integer")
	}
	s := string(d.data[start:d.pos])
	d.pos++
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || s != strconv.FormatInt(n, 10) {
		return 0, d.errorf("invalid integer %.30q", s)
	}
	return n, nil
}

func (d *decoder) str() (string, error) {
	n, err := d.integer(':')
	if err != nil {
		return "", err
	}
	if n < 0 || n > int64(len(d.data)-d.pos) {
		return "", d.errorf("string of %d bytes runs past the end of data", n)
	}
	s := string(d.data[d.pos : d.pos+int(n)])
	d.pos += int(n)
	return s, nil
}

func (d *decoder) list(depth int) ([]any, error) {
	l := []any{}
	for {
		if d.pos >= len(d.data) {
			return nil, d.errorf("unterminated list")
		}
		if d.data[d.pos] == 'e' {
			d.pos++
			return l, nil
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		l = append(l, v)
	}
}

func (d *decoder) dict(depth int) (map[string]any, error) {
	m := map[string]any{}
	prev, first := "", true
	for {
		if d.pos >= len(d.data) {
			return nil, d.errorf("unterminated dictionary")
		}
		if d.data[d.pos] == 'e' {
			d.pos++
			return m, nil
		}
		if c := d.data[d.pos]; c < '0' || c > '9' {
			return nil, d.errorf("dictionary key is not a string")
		}
		k, err := d.str()
		if err != nil {
			return nil, err
		}
		if !first && k <= prev {
			return nil, d.errorf("dictionary key %.40q is not in sorted order or repeats", k)
		}
		prev, first = k, false
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		m[k] = v
	}
}

// EncodeBencode encodes v; dictionary keys are sorted.
func EncodeBencode(v any) ([]byte, error) { return appendBencode(nil, v, 0) }

func appendBencode(dst []byte, v any, depth int) ([]byte, error) {
	if depth > MaxBencodeDepth {
		return nil, errors.New("bencode: value nested too deeply")
	}
	switch v := v.(type) {
	case int:
		return appendInt(dst, int64(v)), nil
	case int64:
		return appendInt(dst, v), nil
	case string:
		return append(append(strconv.AppendInt(dst, int64(len(v)), 10), ':'), v...), nil
	case []byte:
		return append(append(strconv.AppendInt(dst, int64(len(v)), 10), ':'), v...), nil
	case []any:
		dst = append(dst, 'l')
		for _, e := range v {
			var err error
			if dst, err = appendBencode(dst, e, depth+1); err != nil {
				return nil, err
			}
		}
		return append(dst, 'e'), nil
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, 'd')
		for _, k := range keys {
			dst = append(append(strconv.AppendInt(dst, int64(len(k)), 10), ':'), k...)
			var err error
			if dst, err = appendBencode(dst, v[k], depth+1); err != nil {
				return nil, err
			}
		}
		return append(dst, 'e'), nil
	default:
		return nil, fmt.Errorf("bencode: cannot encode %T", v)
	}
}

func appendInt(dst []byte, n int64) []byte {
	dst = append(dst, 'i')
	return append(strconv.AppendInt(dst, n, 10), 'e')
}

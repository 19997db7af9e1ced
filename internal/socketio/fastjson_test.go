package socketio

import (
	"bytes"
	"encoding/json"
	"testing"
)

// slowEncode is encodeEvent's encoding/json path, the reference for the fast one.
func slowEncode(t *testing.T, name string, args []any) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString("42")
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(append([]any{name}, args...)); err != nil {
		t.Fatalf("reference encoder: %v", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func TestAppendEventFast(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []any
		fast bool
	}{
		{"peers", []any{"0123456789abcdef0123456789abcdef01234567", []string{"a", "b"}}, true},
		{"peers", []any{"h", []string{}}, true},
		{"peers", []any{"h", []string(nil)}, true},
		{"handshake", []any{"id", 0}, true},
		{"established", nil, true},
		{"signal", []any{"h", "<sdp & more>", json.RawMessage(`{"a":[1,2]}`), -7}, true},
		{"signal", []any{"h", "line\nbreak"}, false},
		{"signal", []any{"h", `quote"`}, false},
		{"signal", []any{"h", "é"}, false},
		{"signal", []any{json.RawMessage(`{ "a": 1 }`)}, false},
		{"signal", []any{3.5}, false},
	} {
		got, ok := appendEventFast(nil, tc.name, tc.args)
		if ok != tc.fast {
			t.Errorf("%s %v: fast path %v, want %v", tc.name, tc.args, ok, tc.fast)
		}
		if ok && !bytes.Equal(got, slowEncode(t, tc.name, tc.args)) {
			t.Errorf("%s %v: fast %s, encoding/json %s", tc.name, tc.args, got, slowEncode(t, tc.name, tc.args))
		}
		enc, err := encodeEvent(tc.name, tc.args)
		if err != nil || !bytes.Equal(enc, slowEncode(t, tc.name, tc.args)) {
			t.Errorf("%s %v: encodeEvent %s %v, want %s", tc.name, tc.args, enc, err, slowEncode(t, tc.name, tc.args))
		}
	}
}

// The fast encoder must agree with encoding/json whenever it takes an event.
func FuzzAppendEventFast(f *testing.F) {
	f.Add("peers", "0123456789abcdef0123456789abcdef01234567", "a,b", 3, []byte(`{"x":[1,"y"]}`))
	f.Add("x\"", "\x00", "", -1, []byte(`[1, 2]`))
	f.Add("signal", "<&>", "é", 0, []byte(`null`))
	f.Fuzz(func(t *testing.T, name, s, list string, n int, raw []byte) {
		args := []any{s, bytes.Split([]byte(list), []byte(",")), n, json.RawMessage(raw)}
		strs := []string{}
		for _, p := range bytes.Split([]byte(list), []byte(",")) {
			strs = append(strs, string(p))
		}
		args[1] = strs
		got, ok := appendEventFast(nil, name, args)
		if !ok {
			return
		}
		if want := slowEncode(t, name, args); !bytes.Equal(got, want) {
			t.Fatalf("fast %q, encoding/json %q", got, want)
		}
	})
}

// splitArray must agree with encoding/json on every valid array.
func FuzzSplitArray(f *testing.F) {
	for _, s := range []string{`["get_peers","abc"]`, ` [ "a" , [1,[2]] , {"b":"]"} , "\"," ] `, `[]`, `[ ]`, `["\\"]`, `[1]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want []json.RawMessage
		if json.Unmarshal(data, &want) != nil || want == nil {
			return
		}
		got, err := splitArray(data)
		if err != nil {
			t.Fatalf("splitArray(%q): %v", data, err)
		}
		if len(got) != len(want) {
			t.Fatalf("splitArray(%q): %d elements, encoding/json %d", data, len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("splitArray(%q)[%d] = %q, encoding/json %q", data, i, got[i], want[i])
			}
		}
	})
}

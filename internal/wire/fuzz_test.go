package wire

import (
	"bytes"
	"testing"
)

func FuzzReadMessage(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(AppendMessage(nil, m), 3)
	}
	f.Add([]byte{0, 0, 0, 2, 5, 0x80}, 0)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 7}, 1)
	f.Fuzz(func(t *testing.T, data []byte, pieces int) {
		r := NewReader(bytes.NewReader(data), Limits{MaxBlock: 1 << 12, MaxExtended: 1 << 10})
		r.SetPieceCount(max(0, pieces%1000))
		for range 64 {
			m, err := r.ReadMessage()
			if err != nil {
				return
			}
			// Whatever decodes must encode back to a message that decodes the same.
			again, err := NewReader(bytes.NewReader(AppendMessage(nil, m)), Limits{}).ReadMessage()
			if err != nil || again.ID != m.ID || !bytes.Equal(again.Payload, m.Payload) || again.Index != m.Index {
				t.Fatalf("re-decoding %v: %v", m.ID, err)
			}
		}
	})
}

func FuzzDecodeBencode(f *testing.F) {
	for _, s := range []string{"d1:mdee", "d9:info_sizei312e1:md11:p2pcdn_infoi1eee", "li1e3:abce",
		"d8:msg_typei1e5:piecei0e10:total_sizei3eeabc", "i-5e", "lllee"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, n, err := DecodeBencode(data)
		if err != nil {
			return
		}
		// Strict decoding means the encoding is canonical: it must round-trip.
		b, err := EncodeBencode(v)
		if err != nil || !bytes.Equal(b, data[:n]) {
			t.Fatalf("%q decoded but re-encodes as %q (%v)", data[:n], b, err)
		}
		_, _ = ParseExtHandshake(data)
		_, _ = ParseInfoMsg(data)
	})
}

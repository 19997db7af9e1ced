package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// chunkReader hands out its data in random-sized pieces, so decoders are
// tested against arbitrary transport boundaries.
type chunkReader struct {
	data []byte
	rng  *rand.Rand
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data), 1+c.rng.IntN(7))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func TestHandshakeBytes(t *testing.T) {
	hash, err := DecodeID("0123456789abcdef0123456789abcdef01234567")
	if err != nil {
		t.Fatal(err)
	}
	id, _ := DecodeID("ffffffffffffffffffffffffffffffffffffffff")
	b := AppendHandshake(nil, NewHandshake(hash, id))
	want := "13" + hex.EncodeToString([]byte("BitTorrent protocol")) + "0000000000100000" +
		"0123456789abcdef0123456789abcdef01234567" + strings.Repeat("f", 40)
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("handshake\n got %s\nwant %s", got, want)
	}
	h, err := NewReader(bytes.NewReader(b), Limits{}).ReadHandshake()
	if err != nil || h.InfoHash != hash || h.PeerID != id || !h.SupportsExtensions() {
		t.Fatalf("round trip: %+v, %v", h, err)
	}
	bad := bytes.Clone(b)
	bad[3] = 'x'
	if _, err := ParseHandshake(bad); err == nil {
		t.Fatal("accepted a wrong protocol string")
	}
	if _, err := ReadHandshake(bytes.NewReader(b[:40])); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated handshake: %v", err)
	}
	for _, s := range []string{"", "abc", strings.Repeat("g", 40), strings.Repeat("a", 41)} {
		if _, err := DecodeID(s); err == nil {
			t.Errorf("DecodeID(%q) accepted", s)
		}
	}
	if EncodeID(hash) != "0123456789abcdef0123456789abcdef01234567" {
		t.Fatal("EncodeID")
	}
}

func sampleMessages() []Message {
	return []Message{
		{ID: KeepAlive}, {ID: Choke}, {ID: Unchoke}, {ID: Interested}, {ID: NotInterested},
		{ID: Have, Index: 7},
		{ID: Bitfield, Payload: []byte{0xa0}},
		{ID: Request, Index: 1, Begin: 16384, Length: 16384},
		{ID: Cancel, Index: 1, Begin: 16384, Length: 16384},
		{ID: Piece, Index: 4, Begin: 0, Length: 200000, Payload: bytes.Repeat([]byte{9}, 200000)},
		{ID: Extended, ExtID: 0, Payload: []byte("d1:mdee")},
		{ID: 9, Payload: []byte{0x1a, 0xe1}}, // BEP 5 port: unknown to us, passed raw
	}
}

func TestMessagesRoundTripAcrossRandomBoundaries(t *testing.T) {
	var stream []byte
	msgs := sampleMessages()
	for _, m := range msgs {
		stream = AppendMessage(stream, m)
	}
	r := NewReader(&chunkReader{data: stream, rng: rand.New(rand.NewPCG(1, 2))}, Limits{})
	r.SetPieceCount(3)
	for i, want := range msgs {
		got, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("message %d (%v): %v", i, want.ID, err)
		}
		if got.ID != want.ID || got.Index != want.Index || got.Begin != want.Begin ||
			got.Length != want.Length || got.ExtID != want.ExtID || !bytes.Equal(got.Payload, want.Payload) {
			t.Fatalf("message %d: got %+v, want %v", i, got.ID, want.ID)
		}
	}
	if _, err := r.ReadMessage(); err != io.EOF {
		t.Fatalf("after the last message: %v, want io.EOF", err)
	}
}

func TestBitfieldMSBFirst(t *testing.T) {
	bf := make([]byte, BitfieldLen(10))
	BitfieldSet(bf, 0)
	BitfieldSet(bf, 9)
	if !bytes.Equal(bf, []byte{0x80, 0x40}) {
		t.Fatalf("bitfield %x", bf)
	}
	if !BitfieldHas(bf, 9) || BitfieldHas(bf, 8) || BitfieldHas(bf, 100) || BitfieldHas(bf, -1) {
		t.Fatal("BitfieldHas")
	}
	if err := CheckBitfield(bf, 10); err != nil {
		t.Fatal(err)
	}
	if CheckBitfield([]byte{0x80, 0x20}, 10) == nil || CheckBitfield([]byte{0x80}, 10) == nil {
		t.Fatal("CheckBitfield accepted spare bits or a short field")
	}
}

func TestReaderRejects(t *testing.T) {
	cases := map[string][]byte{
		"oversized piece":       AppendPieceHeader(nil, 0, 0, DefaultMaxBlock+1),
		"huge length":           {0xff, 0xff, 0xff, 0xff, 7},
		"have of 3 bytes":       {0, 0, 0, 4, 4, 0, 0, 0},
		"choke with payload":    {0, 0, 0, 2, 0, 0},
		"request of 8 bytes":    {0, 0, 0, 9, 6, 0, 0, 0, 0, 0, 0, 0, 0},
		"short piece header":    {0, 0, 0, 5, 7, 0, 0, 0, 0},
		"wrong bitfield length": AppendMessage(nil, Message{ID: Bitfield, Payload: []byte{1, 2, 3}}),
		"extended without id":   {0, 0, 0, 1, 20},
		"oversized extended":    AppendMessage(nil, Message{ID: Extended, Payload: make([]byte, DefaultMaxExtended+1)}),
		"truncated body":        {0, 0, 0, 5, 4, 0, 0},
		"truncated length":      {0, 0},
	}
	for name, in := range cases {
		r := NewReader(bytes.NewReader(in), Limits{})
		r.SetPieceCount(9)
		if m, err := r.ReadMessage(); err == nil || err == io.EOF {
			t.Errorf("%s: got %v, %v; want an error", name, m.ID, err)
		}
	}
	r := NewReader(bytes.NewReader(AppendPieceHeader(nil, 0, 0, 1<<30)), Limits{})
	if _, err := r.ReadMessage(); !errors.Is(err, ErrTooLong) {
		t.Fatalf("1 GiB piece: %v, want ErrTooLong", err)
	}
}

func TestBencode(t *testing.T) {
	v := map[string]any{"m": map[string]any{"p2pcdn_info": 1, "ut_x": int64(3)}, "info_size": 312, "s": []byte("ab"), "l": []any{"x", int64(-4)}}
	b, err := EncodeBencode(v)
	if err != nil {
		t.Fatal(err)
	}
	const want = "d9:info_sizei312e1:ll1:xi-4ee1:md11:p2pcdn_infoi1e4:ut_xi3ee1:s2:abe"
	if string(b) != want {
		t.Fatalf("encoded %s, want %s", b, want)
	}
	got, n, err := DecodeBencode(append(b, "tail"...))
	if err != nil || n != len(b) {
		t.Fatalf("decode: %v, n=%d", err, n)
	}
	if again, _ := EncodeBencode(got); !bytes.Equal(again, b) {
		t.Fatalf("re-encoded %s", again)
	}
	for _, bad := range []string{"", "i", "ie", "i-0e", "i03e", "i+3e", "i1", "3:ab", "03:abc", "-1:a",
		"d1:bi1e1:ai2ee", "d1:ai1e1:ai2ee", "di1ei2ee", "l", "d1:a", "x", "i99999999999999999999e",
		strings.Repeat("l", MaxBencodeDepth+1) + strings.Repeat("e", MaxBencodeDepth+1)} {
		if v, _, err := DecodeBencode([]byte(bad)); err == nil {
			t.Errorf("DecodeBencode(%q) = %v, want an error", bad, v)
		}
	}
	if _, err := EncodeBencode(3.5); err == nil {
		t.Fatal("encoded a float")
	}
}

func TestExtHandshake(t *testing.T) {
	h := ExtHandshake{M: map[string]int{InfoExtName: 1}, InfoSize: 312}
	b := h.Marshal()
	if string(b) != "d9:info_sizei312e1:md11:p2pcdn_infoi1eee" {
		t.Fatalf("marshal: %s", b)
	}
	got, err := ParseExtHandshake(b)
	if err != nil || got.M[InfoExtName] != 1 || got.InfoSize != 312 {
		t.Fatalf("parse: %+v, %v", got, err)
	}
	// The prototype's handshake, and one with keys we do not know.
	for _, ok := range []string{"d1:mdee", "d1:md6:ut_pexi2ee1:v4:teste", "de"} {
		if _, err := ParseExtHandshake([]byte(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"le", "d1:mi1ee", "d1:md1:xi256eee", "d1:md1:x1:aee", "d9:info_sizei-1ee",
		"d9:info_sizei8388609ee", "d1:mdeextra"} {
		if _, err := ParseExtHandshake([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestExtHandshakeInfoBytes(t *testing.T) {
	info := []byte(`{"full_hash":"x"}`)
	h := ExtHandshake{M: map[string]int{InfoExtName: 1}, InfoSize: len(info), Info: info}
	b := h.Marshal()
	if want := `d10:info_bytes17:{"full_hash":"x"}9:info_sizei17e1:md11:p2pcdn_infoi1eee`; string(b) != want {
		t.Fatalf("marshal: %s, want %s", b, want)
	}
	got, err := ParseExtHandshake(b)
	if err != nil || !bytes.Equal(got.Info, info) || got.InfoSize != len(info) {
		t.Fatalf("parse: %+v, %v", got, err)
	}
	long := strings.Repeat("a", MaxInlineInfo+1)
	for _, bad := range []string{
		"d10:info_bytesi1e9:info_sizei1e1:mdee",                                             // not a string
		"d10:info_bytes3:abc9:info_sizei4e1:mdee",                                           // size disagrees
		"d10:info_bytes3:abc1:mdee",                                                         // no size
		fmt.Sprintf("d10:info_bytes%d:%s9:info_sizei%de1:mdee", len(long), long, len(long)), // too long
	} {
		if _, err := ParseExtHandshake([]byte(bad)); err == nil {
			t.Errorf("%.60s accepted", bad)
		}
	}
}

func TestInfoMsg(t *testing.T) {
	data := bytes.Repeat([]byte("z"), 312)
	b := AppendInfoMsg(nil, InfoMsg{Type: InfoData, Piece: 0, TotalSize: 312, Data: data})
	if !bytes.HasPrefix(b, []byte("d8:msg_typei1e5:piecei0e10:total_sizei312ee")) {
		t.Fatalf("data message %.60s", b)
	}
	m, err := ParseInfoMsg(b)
	if err != nil || m.Type != InfoData || m.TotalSize != 312 || !bytes.Equal(m.Data, data) {
		t.Fatalf("parse: %+v %v", m, err)
	}
	req := AppendInfoMsg(nil, InfoMsg{Type: InfoRequest, Piece: 2})
	if string(req) != "d8:msg_typei0e5:piecei2ee" {
		t.Fatalf("request %s", req)
	}
	if m, err := ParseInfoMsg(req); err != nil || m.Type != InfoRequest || m.Piece != 2 {
		t.Fatalf("parse request %+v %v", m, err)
	}
	for _, bad := range []string{
		"d8:msg_typei3e5:piecei0ee",                       // unknown type
		"d8:msg_typei0ee",                                 // no piece
		"d8:msg_typei0e5:piecei0eeX",                      // stray bytes
		"d8:msg_typei1e5:piecei0e10:total_sizei3eeab",     // short data
		"d8:msg_typei1e5:piecei1e10:total_sizei3eeabc",    // piece past the end
		"d8:msg_typei1e5:piecei0e10:total_sizei9999999ee", // too large
	} {
		if _, err := ParseInfoMsg([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

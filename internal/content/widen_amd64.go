package content

import (
	"math/bits"
	"unsafe"

	"golang.org/x/sys/cpu"
)

//go:noescape
func widenSSSE3(dst, src *byte, n int, shuf *[256][16]byte, lens *[256]uint8) (written int)

// widenTables are the PSHUFB masks and output lengths for widenSSSE3, indexed
// by the high-bit mask of 8 input bytes. Built once at init, read-only after.
type widenTables struct {
	shuf [256][16]byte
	lens [256]uint8
}

var simdWiden = func() *widenTables {
	if !cpu.X86.HasSSSE3 {
		return nil
	}
	t := new(widenTables)
	for m := range 256 {
		pos := 0
		for i := range 8 {
			t.shuf[m][pos] = byte(2 * i) // lead byte
			pos++
			if m&(1<<i) != 0 {
				t.shuf[m][pos] = byte(2*i + 1) // continuation byte
				pos++
			}
		}
		for ; pos < 16; pos++ {
			t.shuf[m][pos] = 0x80 // zero; overwritten by the next store
		}
		t.lens[m] = uint8(8 + bits.OnesCount8(uint8(m)))
	}
	return t
}()

// widenFast widens the longest prefix of src it can with SIMD and returns
// how many input bytes it consumed and output bytes it wrote.
func widenFast(dst, src []byte) (in, out int) {
	n := len(src) &^ 15
	if simdWiden == nil || n == 0 {
		return 0, 0
	}
	_ = dst[2*n+15] // the SIMD loop writes up to 16 bytes past its output
	return n, widenSSSE3(unsafe.SliceData(dst), unsafe.SliceData(src), n, &simdWiden.shuf, &simdWiden.lens)
}

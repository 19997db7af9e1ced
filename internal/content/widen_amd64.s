#include "textflag.h"

// func widenSSSE3(dst, src *byte, n int, shuf *[256][16]byte, lens *[256]uint8) (written int)
//
// Widens n bytes (n a multiple of 16) of src into dst, 16 bytes at a time.
// An all-ASCII block is copied. Otherwise every byte gets a lead byte (itself
// if ASCII, else 0xC2/0xC3) and a continuation byte (0x80 | b&0x3F); the two
// are interleaved, and a PSHUFB mask chosen by the block's high-bit mask
// drops the continuation bytes of ASCII input. Each half stores 16 bytes and
// advances by its real length; dst needs 16 bytes of slack.
TEXT ·widenSSSE3(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ shuf+24(FP), R8
	MOVQ lens+32(FP), R9
	MOVQ DI, R10

	MOVQ $0x4040404040404040, AX
	MOVQ AX, X8
	PUNPCKLQDQ X8, X8 // 0x40: bit 6 of each byte
	MOVQ $0xc2c2c2c2c2c2c2c2, AX
	MOVQ AX, X9
	PUNPCKLQDQ X9, X9 // 0xC2: lead byte of 0x80..0xBF
	MOVQ $0x3f3f3f3f3f3f3f3f, AX
	MOVQ AX, X11
	PUNPCKLQDQ X11, X11 // low six bits
	MOVQ $0x8080808080808080, AX
	MOVQ AX, X12
	PUNPCKLQDQ X12, X12 // continuation marker

loop:
	CMPQ CX, $16
	JLT  done
	MOVOU    (SI), X0
	PMOVMSKB X0, AX
	TESTL    AX, AX
	JNZ      wide
	MOVOU    X0, (DI)
	ADDQ     $16, SI
	ADDQ     $16, DI
	SUBQ     $16, CX
	JMP      loop

wide:
	PXOR    X1, X1
	PCMPGTB X0, X1 // X1 = 0xFF where the byte is >= 0x80
	MOVO    X0, X2
	PAND    X8, X2
	PCMPEQB X8, X2 // X2 = 0xFF where bit 6 is set
	MOVO    X9, X3
	PSUBB   X2, X3 // 0xC2 or 0xC3
	PAND    X1, X3
	PANDN   X0, X1 // ASCII bytes as they are
	POR     X1, X3 // X3 = lead bytes
	MOVO    X0, X5
	PAND    X11, X5
	POR     X12, X5 // X5 = continuation bytes
	MOVO    X3, X4
	PUNPCKLBW X5, X3 // pairs of bytes 0..7
	PUNPCKHBW X5, X4 // pairs of bytes 8..15

	MOVL    AX, BX
	ANDL    $0xff, BX
	MOVL    BX, DX
	SHLL    $4, DX
	MOVOU   (R8)(DX*1), X6
	PSHUFB  X6, X3
	MOVOU   X3, (DI)
	MOVBQZX (R9)(BX*1), DX
	ADDQ    DX, DI

	SHRL    $8, AX
	MOVL    AX, DX
	SHLL    $4, DX
	MOVOU   (R8)(DX*1), X7
	PSHUFB  X7, X4
	MOVOU   X4, (DI)
	MOVBQZX (R9)(AX*1), DX
	ADDQ    DX, DI

	ADDQ $16, SI
	SUBQ $16, CX
	JMP  loop

done:
	SUBQ R10, DI
	MOVQ DI, written+40(FP)
	RET

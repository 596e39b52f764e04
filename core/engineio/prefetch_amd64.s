#include "textflag.h"

// func prefetch(p unsafe.Pointer)
TEXT ·prefetch(SB), NOSPLIT|NOFRAME, $0-8
	MOVQ	p+0(FP), AX
	PREFETCHT0	(AX)
	RET

// func prefetchAt(pp unsafe.Pointer, depth int)
// Follows depth pointers from pp (stopping at nil) and prefetches where
// the last one points.
TEXT ·prefetchAt(SB), NOSPLIT|NOFRAME, $0-16
	MOVQ	pp+0(FP), AX
	MOVQ	depth+8(FP), CX
loop:
	TESTQ	CX, CX
	JZ	fetch
	MOVQ	(AX), AX
	TESTQ	AX, AX
	JZ	done
	DECQ	CX
	JMP	loop
fetch:
	PREFETCHT0	(AX)
done:
	RET

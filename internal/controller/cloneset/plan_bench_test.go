package cloneset

import (
	"fmt"
	"testing"
)

// BenchmarkComputePlan measures one reconcile's planning for large sets:
// an update in progress with half the pods on the old revision.
func BenchmarkComputePlan(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			in := plWith(plInput(int32(n), plViews("o", plRevOld, n/2), plViews("n", plRevNew, n/2)),
				func(in *planInput) { in.maxUnavailable = int32(n / 5) })
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				p := computePlan(in)
				if len(p.inPlace) != n/5 {
					b.Fatalf("want %d in-place updates, got %d", n/5, len(p.inPlace))
				}
			}
		})
	}
}

package podcontrol

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
)

func TestSlowStart(t *testing.T) {
	items := make([]int, 20)
	for i := range items {
		items[i] = i
	}
	cases := []struct {
		name      string
		limit     int
		failAt    int // item that fails, -1 none
		wantDone  int
		wantCalls int
	}{
		{"all succeed: batches 1 2 4 then the rest", 4, -1, 20, 20},
		{"the first item fails: nothing more", 4, 0, 1, 1},
		{"a failure in the batch of 4 stops after it", 8, 5, 7, 7},
		{"limit larger than the items", 64, -1, 20, 20},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var calls []int
			done, err := SlowStart(context.Background(), tc.limit, items, func(_ context.Context, i int) error {
				mu.Lock()
				calls = append(calls, i)
				mu.Unlock()
				if i == tc.failAt {
					return errors.New("refused")
				}
				return nil
			})
			if (err != nil) != (tc.failAt >= 0) || done != tc.wantDone || len(calls) != tc.wantCalls {
				t.Fatalf("done %d calls %d err %v", done, len(calls), err)
			}
			slices.Sort(calls)
			for i, c := range calls {
				if c != i {
					t.Fatalf("items handed out of order or twice: %v", calls)
				}
			}
		})
	}
}

package workloadstatus

import (
	"context"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Write writes updated's status over old's (Patch) for the workload key. A
// change that only moves pod counters (significant false) is written at
// most once per interval: until then nothing is written and Write returns
// how long to wait. After a conflict it returns ConflictRetry. The caller
// skips the call when the status did not change at all.
func (l *WriteLimiter) Write(ctx context.Context, c client.Client, key string, now time.Time, old, updated client.Object, significant bool) (time.Duration, error) {
	if !significant {
		if left := l.Wait(key, now); left > 0 {
			return left, nil
		}
	}
	retry, err := Patch(ctx, c, old, updated)
	if err != nil || retry > 0 {
		return retry, err
	}
	l.Wrote(key, now)
	return 0, nil
}

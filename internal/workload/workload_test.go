package workload

import (
	"errors"
	"testing"
	"time"
)

func TestThen(t *testing.T) {
	syncErr, statusErr := errors.New("sync"), errors.New("status")
	for _, tc := range []struct {
		name                 string
		syncWait, statusWait time.Duration
		syncErr, statusErr   error
		wantWait             time.Duration
		wantErr              error
	}{
		{name: "sooner wait", syncWait: 3 * time.Second, statusWait: time.Second, wantWait: time.Second},
		{name: "zero is no wait", syncWait: 0, statusWait: 2 * time.Second, wantWait: 2 * time.Second},
		{name: "no waits", wantWait: 0},
		{name: "sync error wins", syncWait: time.Second, syncErr: syncErr, statusErr: statusErr, wantErr: syncErr},
		{name: "status error", syncWait: time.Second, statusErr: statusErr, wantErr: statusErr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wait, err := Then(tc.syncWait, tc.syncErr, tc.statusWait, tc.statusErr)
			if wait != tc.wantWait || !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Then = %v, %v; want %v, %v", wait, err, tc.wantWait, tc.wantErr)
			}
		})
	}
}

package playground

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/drover-dev/drover/internal/kwokcluster"
)

// reaperPoll is how often the reaper checks on the playground process.
const reaperPoll = 500 * time.Millisecond

// Reap is the body of the reaper process that Run starts when
// Options.Reaper is set: it waits until its parent (the playground
// process, parentPID) is gone, then kills every process whose command line
// mentions dir (the playground's cluster) and removes dir. If dir
// disappears first, the playground cleaned up after itself and Reap returns
// at once. Run kills the reaper once it has cleaned up, or when the
// cluster is kept.
func Reap(ctx context.Context, dir string, parentPID int) error {
	if dir == "" || parentPID <= 1 {
		return errors.New("playground: reap needs a directory and the playground's pid")
	}
	for {
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if os.Getppid() != parentPID {
			break // the playground died without cleaning up
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(reaperPoll):
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	var errs []error
	if err := kwokcluster.Reap(ctx, dir); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, fmt.Errorf("playground: removing %s: %w", dir, err))
	}
	return errors.Join(errs...)
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/target"
)

// Exit codes of `drover status`.
const (
	// StatusExitHealthy: the Rollout is Healthy and its status is current.
	StatusExitHealthy = 0
	// StatusExitDegraded: the Rollout is Degraded (its release was
	// aborted). Errors (a missing rollout, no cluster) exit 1 too.
	StatusExitDegraded = 1
	// StatusExitTimeout: --timeout passed (or the command was interrupted)
	// before the Rollout became Healthy or Degraded.
	StatusExitTimeout = 2
	// StatusExitInProgress: without --watch, the Rollout is still
	// Progressing or Paused (or its status is not yet current).
	StatusExitInProgress = 3
)

type statusOptions struct {
	watch    bool
	timeout  time.Duration
	interval time.Duration
}

func newStatusCommand(env *cmdEnv) *cobra.Command {
	o := &statusOptions{interval: watchInterval}
	cmd := &cobra.Command{
		Use:   "status ROLLOUT",
		Short: "Print a Rollout's phase and exit 0 Healthy, 1 Degraded, 2 timed out, 3 in progress (for CI)",
		Long: `status prints one line, "NAME: PHASE - MESSAGE", and sets the exit code from
the Rollout's phase, for CI pipelines:

  0  Healthy: no release under way, every pod runs the stable revision
  1  Degraded: the release was aborted; also any error (rollout not found,
     cluster unreachable, bad arguments)
  2  --timeout passed, or the command was interrupted, before the Rollout
     became Healthy or Degraded
  3  (without --watch) still Progressing or Paused

A status the controller has not brought up to date yet counts as in
progress: status.observedGeneration behind metadata.generation, an action
(promote, abort, retry) not yet carried out, or a new workload revision
the Rollout has not picked up (so "set image" followed at once by
"status --watch" waits for the new release instead of reporting the old
one Healthy).

With --watch it polls every second, printing a line whenever the phase or
message changes, until the Rollout is Healthy or Degraded. A Paused
rollout waits for "promote": give --timeout to bound the wait. --timeout
implies --watch.`,
		Example: env.examples(
			"# Is the rollout healthy right now? (exit 0, 1 or 3)",
			"drover status web",
			"# In CI: wait for the release to finish, at most 15 minutes",
			"drover set image cloneset/web app=registry/app:v2",
			"drover status rollout/web --watch --timeout 15m",
		),
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := rolloutName(args)
			if err != nil {
				return err
			}
			if o.timeout < 0 {
				return fmt.Errorf("--timeout must not be negative")
			}
			if o.timeout > 0 {
				o.watch = true
			}
			c, ns, err := env.connect()
			if err != nil {
				return err
			}
			read := func(ctx context.Context) (statusVerdict, error) {
				return readRolloutStatus(ctx, c, ns, name)
			}
			return o.wait(cmd.Context(), name, read, env.streams.Out, env.streams.ErrOut)
		},
	}
	cmd.Flags().BoolVarP(&o.watch, "watch", "w", false, "Keep polling until the Rollout is Healthy (exit 0) or Degraded (exit 1).")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 0, "With --watch, give up after this long (exit 2); 0 waits without limit. Implies --watch.")
	return cmd
}

// rolloutNotFoundError is a Rollout that does not exist: never retried.
type rolloutNotFoundError struct{ namespace, name string }

func (e *rolloutNotFoundError) Error() string {
	return fmt.Sprintf("rollout %q not found in namespace %q", e.name, e.namespace)
}

// readRolloutStatus reads a Rollout and its workload and decides.
func readRolloutStatus(ctx context.Context, c client.Reader, ns, name string) (statusVerdict, error) {
	var ro rolloutsv1alpha1.Rollout
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &ro); err != nil {
		if apierrors.IsNotFound(err) {
			return statusVerdict{}, &rolloutNotFoundError{namespace: ns, name: name}
		}
		return statusVerdict{}, fmt.Errorf("rollout %s/%s: %w", ns, name, err)
	}
	// The workload tells a new revision the controller has not picked up
	// yet. Unreadable (unsupported kind, no permission): the Rollout's
	// status alone decides.
	wl, err := target.Get(ctx, c, ns, ro.Spec.TargetRef)
	if err != nil {
		wl = nil
	}
	return decideStatus(&ro, wl), nil
}

func isRolloutNotFound(err error) bool {
	var nf *rolloutNotFoundError
	return errors.As(err, &nf)
}

// statusVerdict is what `drover status` concludes from a Rollout.
type statusVerdict struct {
	// Phase and Message are printed: "NAME: PHASE - MESSAGE".
	Phase, Message string
	// Code is the exit code if the command stopped now.
	Code int
	// Final: Healthy or Degraded, nothing more to wait for.
	Final bool
}

func (v statusVerdict) line(name string) string {
	if v.Message == "" {
		return name + ": " + v.Phase
	}
	return name + ": " + v.Phase + " - " + oneLine(v.Message)
}

// decideStatus is the exit code decision of `drover status`, a pure
// function of the Rollout and (when known, else nil) its workload.
// Healthy and Degraded are final only when the status is current: the
// controller observed the Rollout's generation, carried out any pending
// action, and saw the workload's latest revision.
func decideStatus(ro *rolloutsv1alpha1.Rollout, wl *target.Workload) statusVerdict {
	st := &ro.Status
	v := statusVerdict{Phase: string(st.Phase), Message: st.Message, Code: StatusExitInProgress}
	switch st.Phase {
	case rolloutsv1alpha1.RolloutPhaseHealthy:
		v.Code, v.Final = StatusExitHealthy, true
	case rolloutsv1alpha1.RolloutPhaseDegraded:
		v.Code, v.Final = StatusExitDegraded, true
	case "":
		v.Phase = "Unknown"
		if v.Message == "" {
			v.Message = "no status yet: waiting for the controller"
		}
	}
	if !v.Final {
		return v
	}
	stale := ""
	// The revision the status is about: the canary of an aborted release,
	// else the stable one.
	expected := st.CanaryRevision
	if expected == "" {
		expected = st.StableRevision
	}
	switch {
	case st.ObservedGeneration < ro.Generation:
		stale = fmt.Sprintf("status is for generation %d, the rollout is at %d: waiting for the controller", st.ObservedGeneration, ro.Generation)
	case ro.Annotations[rolloutsv1alpha1.AnnotationAction] != "":
		stale = fmt.Sprintf("waiting for the controller to carry out the %s action", ro.Annotations[rolloutsv1alpha1.AnnotationAction])
	case wl != nil && !wl.CaughtUp:
		stale = fmt.Sprintf("waiting for %s %s to observe its latest spec", ro.Spec.TargetRef.Kind, ro.Spec.TargetRef.Name)
	case wl != nil && wl.UpdateRevision != expected:
		stale = fmt.Sprintf("waiting for the controller to pick up revision %s of %s %s", wl.UpdateRevision, ro.Spec.TargetRef.Kind, ro.Spec.TargetRef.Name)
	}
	if stale != "" {
		v.Message, v.Code, v.Final = stale, StatusExitInProgress, false
	}
	return v
}

// wait reads the Rollout once, or with --watch until a final verdict, the
// timeout or ctx's end. It prints a line whenever the verdict's line
// changes and returns the exit code as an *ExitError (nil for 0).
func (o *statusOptions) wait(ctx context.Context, name string, read func(context.Context) (statusVerdict, error), out, errOut io.Writer) error {
	var deadline <-chan time.Time
	if o.watch && o.timeout > 0 {
		t := time.NewTimer(o.timeout)
		defer t.Stop()
		deadline = t.C
	}
	interval := o.interval
	if interval <= 0 {
		interval = watchInterval
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()

	var last, lastErr string
	for first := true; ; first = false {
		v, err := read(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			// Interrupted during the read: reported below.
		case err != nil && (first || !o.watch || isRolloutNotFound(err)):
			return &ExitError{Code: 1, Err: err}
		case err != nil:
			// A watch survives a passing API error.
			if msg := err.Error(); msg != lastErr {
				fmt.Fprintf(errOut, "error: %v (retrying)\n", err)
				lastErr = msg
			}
		default:
			lastErr = ""
			if l := v.line(name); l != last {
				fmt.Fprintln(out, l)
				last = l
			}
			if v.Final || !o.watch {
				if v.Code == 0 {
					return nil
				}
				return &ExitError{Code: v.Code}
			}
		}
		select {
		case <-ctx.Done():
			return &ExitError{Code: StatusExitTimeout, Err: fmt.Errorf("interrupted while waiting for rollout %s (last seen: %s)", name, orDash(last))}
		case <-deadline:
			return &ExitError{Code: StatusExitTimeout, Err: fmt.Errorf("timed out after %s waiting for rollout %s to be Healthy (last seen: %s)", o.timeout, name, orDash(last))}
		case <-ticker.C:
		}
	}
}

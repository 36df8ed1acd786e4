package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/target"
)

func statusRollout(phase rolloutsv1alpha1.RolloutPhase, generation, observed int64) *rolloutsv1alpha1.Rollout {
	return &rolloutsv1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", Generation: generation},
		Spec: rolloutsv1alpha1.RolloutSpec{
			TargetRef: rolloutsv1alpha1.TargetRef{APIVersion: "apps.drover.dev/v1alpha1", Kind: "CloneSet", Name: "web"},
			Strategy:  rolloutsv1alpha1.RolloutStrategy{Canary: &rolloutsv1alpha1.CanaryStrategy{}},
		},
		Status: rolloutsv1alpha1.RolloutStatus{Phase: phase, ObservedGeneration: observed, Message: "msg", StableRevision: "web-1"},
	}
}

func TestDecideStatus(t *testing.T) {
	caughtUp := func(rev string) *target.Workload { return &target.Workload{CaughtUp: true, UpdateRevision: rev} }
	cases := []struct {
		name    string
		ro      *rolloutsv1alpha1.Rollout
		wl      *target.Workload
		code    int
		final   bool
		message string
	}{
		{"healthy", statusRollout(rolloutsv1alpha1.RolloutPhaseHealthy, 2, 2), nil, 0, true, "msg"},
		{"healthy, workload on the stable revision", statusRollout(rolloutsv1alpha1.RolloutPhaseHealthy, 2, 2), caughtUp("web-1"), 0, true, "msg"},
		{"healthy but generation not observed", statusRollout(rolloutsv1alpha1.RolloutPhaseHealthy, 3, 2), nil, 3, false,
			"status is for generation 2, the rollout is at 3: waiting for the controller"},
		{"degraded", statusRollout(rolloutsv1alpha1.RolloutPhaseDegraded, 2, 2), nil, 1, true, "msg"},
		{"degraded but generation not observed", statusRollout(rolloutsv1alpha1.RolloutPhaseDegraded, 3, 2), nil, 3, false, "generation"},
		{"progressing", statusRollout(rolloutsv1alpha1.RolloutPhaseProgressing, 2, 2), nil, 3, false, "msg"},
		{"paused", statusRollout(rolloutsv1alpha1.RolloutPhasePaused, 2, 2), nil, 3, false, "msg"},
		{"paused, generation not observed", statusRollout(rolloutsv1alpha1.RolloutPhasePaused, 3, 2), nil, 3, false, "msg"},
		{"no status yet", &rolloutsv1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "web", Generation: 1}}, nil, 3, false,
			"no status yet: waiting for the controller"},
		{"healthy with a pending action", func() *rolloutsv1alpha1.Rollout {
			ro := statusRollout(rolloutsv1alpha1.RolloutPhaseHealthy, 2, 2)
			ro.Annotations = map[string]string{rolloutsv1alpha1.AnnotationAction: "retry"}
			return ro
		}(), nil, 3, false, "waiting for the controller to carry out the retry action"},
		{"healthy, workload not caught up", statusRollout(rolloutsv1alpha1.RolloutPhaseHealthy, 2, 2), &target.Workload{UpdateRevision: "web-1"}, 3, false,
			"waiting for CloneSet web to observe its latest spec"},
		{"healthy, new workload revision not picked up", statusRollout(rolloutsv1alpha1.RolloutPhaseHealthy, 2, 2), caughtUp("web-2"), 3, false,
			"waiting for the controller to pick up revision web-2 of CloneSet web"},
		{"degraded on the aborted revision", func() *rolloutsv1alpha1.Rollout {
			ro := statusRollout(rolloutsv1alpha1.RolloutPhaseDegraded, 2, 2)
			ro.Status.CanaryRevision, ro.Status.AbortedRevision = "web-2", "web-2"
			return ro
		}(), caughtUp("web-2"), 1, true, "msg"},
		{"degraded, a newer revision not picked up", func() *rolloutsv1alpha1.Rollout {
			ro := statusRollout(rolloutsv1alpha1.RolloutPhaseDegraded, 2, 2)
			ro.Status.CanaryRevision, ro.Status.AbortedRevision = "web-2", "web-2"
			return ro
		}(), caughtUp("web-3"), 3, false, "pick up revision web-3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := decideStatus(tc.ro, tc.wl)
			if v.Code != tc.code || v.Final != tc.final || !strings.Contains(v.Message, tc.message) {
				t.Errorf("got code %d final %v message %q; want %d %v %q", v.Code, v.Final, v.Message, tc.code, tc.final, tc.message)
			}
		})
	}
	if got := decideStatus(statusRollout(rolloutsv1alpha1.RolloutPhaseHealthy, 1, 1), nil).line("web"); got != "web: Healthy - msg" {
		t.Errorf("line %q", got)
	}
	if got := (statusVerdict{Phase: "Paused"}).line("web"); got != "web: Paused" {
		t.Errorf("line without message %q", got)
	}
}

func TestExitError(t *testing.T) {
	inner := errors.New("timed out")
	for _, tc := range []struct {
		err     error
		code    int
		printed string
	}{
		{nil, 0, ""},
		{errors.New("boom"), 1, "error: boom\n"},
		{&ExitError{Code: 3}, 3, ""},
		{&ExitError{Code: 2, Err: inner}, 2, "error: timed out\n"},
		{fmt.Errorf("wrapped: %w", &ExitError{Code: 1}), 1, "error: wrapped: exit status 1\n"},
	} {
		if got := ExitCode(tc.err); got != tc.code {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.code)
		}
		var b bytes.Buffer
		if got := report(tc.err, &b); got != tc.code || b.String() != tc.printed {
			t.Errorf("report(%v) = %d, %q; want %d, %q", tc.err, got, b.String(), tc.code, tc.printed)
		}
	}
	e := &ExitError{Code: 2, Err: inner}
	if !errors.Is(e, inner) || e.Error() != "timed out" || (&ExitError{Code: 3}).Error() != "exit status 3" {
		t.Errorf("ExitError: Is %v, Error %q", errors.Is(e, inner), e.Error())
	}
	// Through Main, a usage error is exit code 1.
	var out, errOut bytes.Buffer
	if code := Main(context.Background(), []string{"drover", "status"}, Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}); code != 1 ||
		!strings.Contains(errOut.String(), "error: ") {
		t.Errorf("Main: code %d, stderr %q", code, errOut.String())
	}
}

// statusObjects are a Rollout in phase on CloneSet web, whose template is
// at revision web-1.
func statusObjects(phase rolloutsv1alpha1.RolloutPhase) []client.Object {
	ro := statusRollout(phase, 1, 1)
	cs := twoContainerCloneSet()
	cs.Generation = 1
	cs.Status = appsv1alpha1.CloneSetStatus{ObservedGeneration: 1, UpdateRevision: "web-1", CurrentRevision: "web-1"}
	return []client.Object{ro, cs}
}

func TestStatusCommand(t *testing.T) {
	for _, tc := range []struct {
		phase rolloutsv1alpha1.RolloutPhase
		args  []string
		code  int
	}{
		{rolloutsv1alpha1.RolloutPhaseHealthy, []string{"status", "web"}, 0},
		{rolloutsv1alpha1.RolloutPhaseHealthy, []string{"status", "rollout/web"}, 0},
		{rolloutsv1alpha1.RolloutPhaseHealthy, []string{"status", "ro", "web", "-w"}, 0},
		{rolloutsv1alpha1.RolloutPhaseDegraded, []string{"status", "web"}, 1},
		{rolloutsv1alpha1.RolloutPhaseDegraded, []string{"status", "web", "--watch"}, 1},
		{rolloutsv1alpha1.RolloutPhaseProgressing, []string{"status", "web"}, 3},
		{rolloutsv1alpha1.RolloutPhasePaused, []string{"status", "web"}, 3},
	} {
		f := testFactory{c: fakeClient(t, statusObjects(tc.phase)...), ns: "default"}
		out, _, err := runCLI(t, f, "drover", tc.args...)
		if got := ExitCode(err); got != tc.code {
			t.Errorf("%s %v: exit code %d (%v), want %d", tc.phase, tc.args, got, err, tc.code)
		}
		if want := "web: " + string(tc.phase) + " - msg\n"; out != want {
			t.Errorf("%s %v: output %q, want %q", tc.phase, tc.args, out, want)
		}
	}

	// A Paused rollout never finishes: --timeout ends the wait with 2.
	f := testFactory{c: fakeClient(t, statusObjects(rolloutsv1alpha1.RolloutPhasePaused)...), ns: "default"}
	start := time.Now()
	out, _, err := runCLI(t, f, "drover", "status", "web", "--timeout", "50ms")
	if ExitCode(err) != 2 || !strings.Contains(err.Error(), "timed out after 50ms waiting for rollout web to be Healthy (last seen: web: Paused - msg)") {
		t.Errorf("timeout: code %d, error %v", ExitCode(err), err)
	}
	if out != "web: Paused - msg\n" || time.Since(start) > 5*time.Second {
		t.Errorf("timeout: output %q after %s", out, time.Since(start))
	}

	// A missing rollout: exit 1, naming it.
	_, _, err = runCLI(t, f, "drover", "status", "nope", "-w")
	if ExitCode(err) != 1 || err.Error() != `rollout "nope" not found in namespace "default"` {
		t.Errorf("missing rollout: code %d, error %v", ExitCode(err), err)
	}
	_, _, err = runCLI(t, f, "drover", "status", "cloneset/web")
	if ExitCode(err) != 1 || !strings.Contains(err.Error(), "is not a rollout") {
		t.Errorf("wrong type: %v", err)
	}
}

// scripted returns the verdicts and errors in turn, then the last forever.
func scripted(steps ...any) func(context.Context) (statusVerdict, error) {
	i := 0
	return func(context.Context) (statusVerdict, error) {
		s := steps[min(i, len(steps)-1)]
		i++
		if err, ok := s.(error); ok {
			return statusVerdict{}, err
		}
		return s.(statusVerdict), nil
	}
}

func TestStatusWait(t *testing.T) {
	progressing := statusVerdict{Phase: "Progressing", Message: "step 0", Code: 3}
	paused := statusVerdict{Phase: "Paused", Message: "step 1", Code: 3}
	healthy := statusVerdict{Phase: "Healthy", Message: "done", Code: 0, Final: true}
	degraded := statusVerdict{Phase: "Degraded", Message: "aborted", Code: 1, Final: true}
	watch := &statusOptions{watch: true, interval: time.Millisecond}
	ctx := context.Background()

	t.Run("until healthy, one line per change", func(t *testing.T) {
		var out, errOut bytes.Buffer
		err := watch.wait(ctx, "web", scripted(progressing, progressing, errors.New("connection refused"), errors.New("connection refused"), paused, paused, healthy), &out, &errOut)
		if err != nil {
			t.Fatal(err)
		}
		if want := "web: Progressing - step 0\nweb: Paused - step 1\nweb: Healthy - done\n"; out.String() != want {
			t.Errorf("output %q, want %q", out.String(), want)
		}
		if want := "error: connection refused (retrying)\n"; errOut.String() != want {
			t.Errorf("stderr %q, want %q", errOut.String(), want)
		}
	})
	t.Run("until degraded", func(t *testing.T) {
		var out bytes.Buffer
		err := watch.wait(ctx, "web", scripted(paused, degraded), &out, &out)
		if ExitCode(err) != 1 || !strings.HasSuffix(out.String(), "web: Degraded - aborted\n") {
			t.Errorf("code %d, output %q", ExitCode(err), out.String())
		}
	})
	t.Run("deleted while watched", func(t *testing.T) {
		var out bytes.Buffer
		err := watch.wait(ctx, "web", scripted(paused, &rolloutNotFoundError{"default", "web"}), &out, &out)
		if ExitCode(err) != 1 || !strings.Contains(err.Error(), "not found") {
			t.Errorf("code %d, error %v", ExitCode(err), err)
		}
	})
	t.Run("first read fails", func(t *testing.T) {
		err := watch.wait(ctx, "web", scripted(errors.New("forbidden")), &bytes.Buffer{}, &bytes.Buffer{})
		if ExitCode(err) != 1 || err.Error() != "forbidden" {
			t.Errorf("code %d, error %v", ExitCode(err), err)
		}
	})
	t.Run("without watch", func(t *testing.T) {
		once := &statusOptions{interval: time.Millisecond}
		var out bytes.Buffer
		if err := once.wait(ctx, "web", scripted(paused, healthy), &out, &out); ExitCode(err) != 3 || out.String() != "web: Paused - step 1\n" {
			t.Errorf("code %d, output %q", ExitCode(err), out.String())
		}
	})
	t.Run("interrupted", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		read := func(context.Context) (statusVerdict, error) {
			cancel()
			return paused, nil
		}
		err := watch.wait(cctx, "web", read, &bytes.Buffer{}, &bytes.Buffer{})
		if ExitCode(err) != 2 || !strings.Contains(err.Error(), "interrupted while waiting for rollout web") {
			t.Errorf("code %d, error %v", ExitCode(err), err)
		}
	})
}

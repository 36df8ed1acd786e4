package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

// isRolloutType reports whether s names the Rollout resource.
func isRolloutType(s string) bool {
	switch strings.ToLower(s) {
	case "rollout", "rollouts", "ro", "rollout.rollouts.drover.dev", "rollouts.rollouts.drover.dev":
		return true
	}
	return false
}

// rolloutName reads "NAME", "rollout/NAME" or "rollout NAME".
func rolloutName(args []string) (string, error) {
	const usage = "give the rollout as NAME, rollout/NAME or rollout NAME"
	switch len(args) {
	case 1:
		if typ, name, ok := strings.Cut(args[0], "/"); ok {
			if !isRolloutType(typ) || name == "" {
				return "", fmt.Errorf("%q is not a rollout: %s", args[0], usage)
			}
			return name, nil
		}
		return args[0], nil
	case 2:
		if !isRolloutType(args[0]) || args[1] == "" {
			return "", fmt.Errorf("%q is not a rollout type: %s", args[0], usage)
		}
		return args[1], nil
	}
	return "", fmt.Errorf("missing the rollout: %s", usage)
}

// newRolloutActionCommands are promote, abort, retry, pause and resume:
// each sets the Rollout's action annotation (or spec.paused), which is
// also how kubectl users and Argo CD resource actions drive a Rollout.
func newRolloutActionCommands(env *cmdEnv) []*cobra.Command {
	var full bool
	promote := &cobra.Command{
		Use:   "promote ROLLOUT",
		Short: "End the current pause or step of a release (--full: skip every remaining step)",
		Example: env.examples("drover promote web", "drover promote rollout/web --full",
			"# the same with kubectl:", "kubectl annotate rollout web rollouts.drover.dev/action=promote"),
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a := rolloutsv1alpha1.ActionPromote
			if full {
				a = rolloutsv1alpha1.ActionPromoteFull
			}
			return env.rolloutAction(cmd.Context(), args, a)
		},
	}
	promote.Flags().BoolVar(&full, "full", false, "Skip every remaining step and promote the canary to stable.")
	simple := func(a rolloutsv1alpha1.Action, short string) *cobra.Command {
		return &cobra.Command{
			Use: string(a) + " ROLLOUT", Short: short, Args: cobra.RangeArgs(1, 2),
			Example: env.examples("drover "+string(a)+" web", "kubectl annotate rollout web rollouts.drover.dev/action="+string(a)),
			RunE: func(cmd *cobra.Command, args []string) error {
				return env.rolloutAction(cmd.Context(), args, a)
			},
		}
	}
	paused := func(use string, value bool, short string) *cobra.Command {
		return &cobra.Command{
			Use: use + " ROLLOUT", Short: short, Args: cobra.RangeArgs(1, 2),
			Example: env.examples(fmt.Sprintf("drover %s web", use),
				fmt.Sprintf(`kubectl patch rollout web --type=merge -p '{"spec":{"paused":%v}}'`, value)),
			RunE: func(cmd *cobra.Command, args []string) error {
				return env.setRolloutPaused(cmd.Context(), args, value)
			},
		}
	}
	return []*cobra.Command{
		promote,
		simple(rolloutsv1alpha1.ActionAbort, "Abort a release: traffic and pods back to the stable revision"),
		simple(rolloutsv1alpha1.ActionRetry, "Start an aborted release again from its first step"),
		paused("pause", true, "Hold a rollout where it is (spec.paused)"),
		paused("resume", false, "Let a paused rollout go on"),
	}
}

// rolloutAction sets the action annotation on a Rollout.
func (e *cmdEnv) rolloutAction(ctx context.Context, args []string, a rolloutsv1alpha1.Action) error {
	patch := map[string]any{"metadata": map[string]any{"annotations": map[string]any{rolloutsv1alpha1.AnnotationAction: string(a)}}}
	return e.patchRollout(ctx, args, patch, fmt.Sprintf("%s requested", a))
}

func (e *cmdEnv) setRolloutPaused(ctx context.Context, args []string, paused bool) error {
	what := "resumed"
	if paused {
		what = "paused"
	}
	return e.patchRollout(ctx, args, map[string]any{"spec": map[string]any{"paused": paused}}, what)
}

func (e *cmdEnv) patchRollout(ctx context.Context, args []string, patch map[string]any, what string) error {
	name, err := rolloutName(args)
	if err != nil {
		return err
	}
	c, ns, err := e.connect()
	if err != nil {
		return err
	}
	raw, err := json.Marshal(patch)
	if err != nil {
		return fmt.Errorf("encoding the patch: %w", err)
	}
	ro := &rolloutsv1alpha1.Rollout{}
	ro.Namespace, ro.Name = ns, name
	if err := c.Patch(ctx, ro, client.RawPatch(types.MergePatchType, raw)); err != nil {
		return fmt.Errorf("rollout %s/%s: %w", ns, name, err)
	}
	fmt.Fprintf(e.streams.Out, "rollout.rollouts.drover.dev/%s %s\n", name, what)
	return nil
}

// RenderRollout writes the human-readable view of a Rollout.
func RenderRollout(w io.Writer, ro *rolloutsv1alpha1.Rollout) {
	st := &ro.Status
	steps := 0
	if c := ro.Spec.Strategy.Canary; c != nil {
		steps = len(c.Steps)
	}
	fmt.Fprintf(w, "Name:        %s\n", ro.Name)
	fmt.Fprintf(w, "Namespace:   %s\n", ro.Namespace)
	fmt.Fprintf(w, "Target:      %s %s\n", ro.Spec.TargetRef.Kind, ro.Spec.TargetRef.Name)
	fmt.Fprintf(w, "Phase:       %s\n", st.Phase)
	if st.Message != "" {
		fmt.Fprintf(w, "Message:     %s\n", st.Message)
	}
	if st.CurrentStepIndex != nil {
		fmt.Fprintf(w, "Step:        %d/%d\n", *st.CurrentStepIndex, steps)
	}
	verified := "-"
	if st.VerifiedWeight != nil {
		verified = fmt.Sprint(*st.VerifiedWeight)
	}
	fmt.Fprintf(w, "Weight:      %d%% desired, %s%% verified\n", st.DesiredWeight, verified)
	fmt.Fprintf(w, "Stable:      %s  %d/%d ready  (service %s)\n", orDash(st.StableRevision), st.StableReadyReplicas, st.StableReplicas, orDash(st.StableService))
	if st.CanaryRevision != "" {
		fmt.Fprintf(w, "Canary:      %s  %d/%d ready  (service %s)\n", st.CanaryRevision, st.CanaryReadyReplicas, st.CanaryReplicas, orDash(st.CanaryService))
	}
	if st.AbortedRevision != "" {
		fmt.Fprintf(w, "Aborted:     %s (retry with: drover retry %s)\n", st.AbortedRevision, ro.Name)
	}
	for _, pc := range st.PauseConditions {
		until := "until promoted"
		if pc.Until != nil {
			until = "until " + pc.Until.UTC().Format("15:04:05")
		}
		fmt.Fprintf(w, "Paused:      %s since %s, %s\n", pc.Reason, pc.StartTime.UTC().Format("15:04:05"), until)
	}
	if c := ro.Spec.Strategy.Canary; c != nil && len(c.Steps) > 0 {
		fmt.Fprintln(w, "Steps:")
		for i, s := range c.Steps {
			mark := " "
			switch cur := int(ptr.Deref(st.CurrentStepIndex, -1)); {
			case cur > i || (st.CanaryRevision == "" && st.CurrentStepIndex == nil):
				mark = "✔"
			case cur == i:
				mark = "▶"
			}
			fmt.Fprintf(w, "  %s %d  %s\n", mark, i, describeStep(s))
		}
	}
	if len(st.Conditions) > 0 {
		fmt.Fprintln(w, "Conditions:")
		for _, c := range st.Conditions {
			fmt.Fprintf(w, "  %-12s %-6s %s\n", c.Type, c.Status, c.Reason)
		}
	}
}

func describeStep(s rolloutsv1alpha1.CanaryStep) string {
	switch {
	case s.SetWeight != nil:
		return fmt.Sprintf("setWeight %d%%", *s.SetWeight)
	case s.Pause != nil && s.Pause.Duration != nil:
		return "pause " + s.Pause.Duration.Duration.String()
	case s.Pause != nil:
		return "pause (until promoted)"
	case s.SetCanaryScale != nil && s.SetCanaryScale.Replicas != nil:
		return fmt.Sprintf("setCanaryScale %d replicas", *s.SetCanaryScale.Replicas)
	case s.SetCanaryScale != nil && s.SetCanaryScale.Weight != nil:
		return fmt.Sprintf("setCanaryScale %d%%", *s.SetCanaryScale.Weight)
	case s.SetCanaryScale != nil:
		return "setCanaryScale matchTrafficWeight"
	}
	return "?"
}

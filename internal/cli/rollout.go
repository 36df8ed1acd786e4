package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
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

package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
	"github.com/drover-dev/drover/internal/revision"
)

// AnnotationRestartedAt is set on a workload's pod template by `drover
// restart`: a new revision with the same containers, released through
// the Rollout's strategy like any other.
const AnnotationRestartedAt = "rollouts.drover.dev/restartedAt"

// newUndoRestartCommands are undo and restart: both change the Rollout's
// workload template (as kubectl rollout undo/restart do), so the Rollout
// releases the change through its strategy.
func newUndoRestartCommands(env *cmdEnv) []*cobra.Command {
	var toRevision int64
	undo := &cobra.Command{
		Use:   "undo ROLLOUT",
		Short: "Set the workload's template back to an earlier revision (default: the one before the current)",
		Long: `undo writes an earlier revision's pod template into the Rollout's workload,
as kubectl rollout undo does. Going back to the stable revision in the middle
of a release drops the release at once; any other revision is released
through the Rollout's strategy. A GitOps tool will see the template differ
from Git: revert in Git instead when one manages the workload.`,
		Example: env.examples("drover undo web", "drover undo web --to-revision 3"),
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.withWorkload(cmd.Context(), args, func(c client.Client, w *unstructured.Unstructured) error {
				return Undo(cmd.Context(), c, w, toRevision, env.streams.Out)
			})
		},
	}
	undo.Flags().Int64Var(&toRevision, "to-revision", 0, "Revision number to go back to (see drover get cloneset NAME); 0 means the one before the current.")
	restart := &cobra.Command{
		Use:   "restart ROLLOUT",
		Short: "Restart the workload's pods, released through the Rollout's strategy",
		Long: `restart sets the annotation ` + AnnotationRestartedAt + ` on the workload's pod
template (as kubectl rollout restart does): a new revision with the same
containers, which the Rollout releases step by step.`,
		Example: env.examples("drover restart web"),
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return env.withWorkload(cmd.Context(), args, func(c client.Client, w *unstructured.Unstructured) error {
				return Restart(cmd.Context(), c, w, time.Now(), env.streams.Out)
			})
		},
	}
	return []*cobra.Command{undo, restart}
}

// withWorkload reads the Rollout named by args and its workload.
func (e *cmdEnv) withWorkload(ctx context.Context, args []string, fn func(client.Client, *unstructured.Unstructured) error) error {
	name, err := rolloutName(args)
	if err != nil {
		return err
	}
	c, ns, err := e.connect()
	if err != nil {
		return err
	}
	var ro rolloutsv1alpha1.Rollout
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &ro); err != nil {
		return fmt.Errorf("rollout %s/%s: %w", ns, name, err)
	}
	ref := ro.Spec.TargetRef
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return fmt.Errorf("rollout %s: targetRef.apiVersion: %w", name, err)
	}
	w := &unstructured.Unstructured{}
	w.SetGroupVersionKind(gv.WithKind(ref.Kind))
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: ref.Name}, w); err != nil {
		return fmt.Errorf("%s %s: %w", ref.Kind, ref.Name, err)
	}
	return fn(c, w)
}

// Undo writes an earlier revision's template into the workload: revision
// number to (0: the newest revision older than the current template's).
func Undo(ctx context.Context, c client.Client, w *unstructured.Unstructured, to int64, out io.Writer) error {
	var list appsv1.ControllerRevisionList
	if err := c.List(ctx, &list, client.InNamespace(w.GetNamespace())); err != nil {
		return fmt.Errorf("listing revisions: %w", err)
	}
	var revs []*appsv1.ControllerRevision
	for i := range list.Items {
		if metav1.IsControlledBy(&list.Items[i], w) {
			revs = append(revs, &list.Items[i])
		}
	}
	slices.SortFunc(revs, func(a, b *appsv1.ControllerRevision) int { return int(a.Revision - b.Revision) })
	if len(revs) == 0 {
		return fmt.Errorf("%s %s has no revision history", w.GetKind(), w.GetName())
	}
	current, _, _ := unstructured.NestedString(w.Object, "status", "updateRevision")
	var pick *appsv1.ControllerRevision
	for i, r := range revs {
		switch {
		case to != 0 && r.Revision == to:
			pick = r
		case to == 0 && r.Name == current && i > 0:
			pick = revs[i-1]
		}
	}
	if pick == nil && to == 0 && len(revs) > 1 && current == "" {
		pick = revs[len(revs)-2]
	}
	if pick == nil {
		if to != 0 {
			return fmt.Errorf("%s %s has no revision %d (it has %s)", w.GetKind(), w.GetName(), to, revisionNumbers(revs))
		}
		return fmt.Errorf("%s %s has no revision before the current one", w.GetKind(), w.GetName())
	}
	tpl, err := revision.Template(pick)
	if err != nil {
		return err
	}
	// A merge patch would keep containers' fields the old template lacks:
	// replace the template whole, guarded by the workload's version.
	jsonPatch, err := json.Marshal([]map[string]any{
		{"op": "test", "path": "/metadata/resourceVersion", "value": w.GetResourceVersion()},
		{"op": "replace", "path": "/spec/template", "value": tpl},
	})
	if err != nil {
		return fmt.Errorf("encoding the patch: %w", err)
	}
	if err := c.Patch(ctx, w, client.RawPatch(types.JSONPatchType, jsonPatch)); err != nil {
		return fmt.Errorf("writing revision %d's template into %s %s: %w", pick.Revision, w.GetKind(), w.GetName(), err)
	}
	fmt.Fprintf(out, "%s/%s template set to revision %d (%s)\n", w.GetKind(), w.GetName(), pick.Revision, pick.Name)
	return nil
}

func revisionNumbers(revs []*appsv1.ControllerRevision) string {
	out := ""
	for i, r := range revs {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprint(r.Revision)
	}
	return out
}

// Restart stamps the workload's pod template with the time.
func Restart(ctx context.Context, c client.Client, w *unstructured.Unstructured, now time.Time, out io.Writer) error {
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
		"annotations": map[string]any{AnnotationRestartedAt: now.UTC().Format(time.RFC3339)}}}}})
	if err != nil {
		return fmt.Errorf("encoding the patch: %w", err)
	}
	if err := c.Patch(ctx, w, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("restarting %s %s: %w", w.GetKind(), w.GetName(), err)
	}
	fmt.Fprintf(out, "%s/%s restarted (released through the rollout)\n", w.GetKind(), w.GetName())
	return nil
}

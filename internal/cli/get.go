package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1alpha1 "github.com/drover-dev/drover/api/apps/v1alpha1"
	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

// watchInterval is how often `get -w` polls.
const watchInterval = time.Second

// isCloneSetType reports whether s names the CloneSet resource on the
// command line (case-insensitive, short names and the full name).
func isCloneSetType(s string) bool {
	switch strings.ToLower(s) {
	case "cloneset", "clonesets", "cs", "clone", "cloneset.apps.drover.dev", "clonesets.apps.drover.dev":
		return true
	}
	return false
}

type getOptions struct {
	watch bool
}

func newGetCommand(env *cmdEnv) *cobra.Command {
	o := &getOptions{}
	get := &cobra.Command{
		Use:   "get TYPE[/NAME] [NAME]",
		Short: "Show a CloneSet, a Rollout or an AnalysisRun: status, revisions, pods, measurements",
		Example: env.examples(
			"# CloneSets in the current namespace",
			"drover get cloneset",
			"# One CloneSet: status, conditions, revisions, pods and update progress",
			"drover get cloneset web-frontend",
			"drover get cs/web-frontend -n shop",
			"# Follow an update until Ctrl-C",
			"drover get cloneset web-frontend -w",
			"# A Rollout as a live tree: steps, pods per revision, Services, analysis runs",
			"drover get rollout web -w",
			"# AnalysisRuns of the namespace, and one with its measurements",
			"drover get analysisrun",
			"drover get ar web-web-6d4f8b7c9-t3k2f0-step-1",
		),
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return fmt.Errorf("missing resource type: for example %q", env.name+" get cloneset NAME")
			}
			// Reached for TYPE/NAME and unknown types; "cloneset NAME" is
			// handled by the subcommand.
			typ, name, _ := strings.Cut(args[0], "/")
			if len(args) == 2 {
				if name != "" {
					return fmt.Errorf("give either TYPE/NAME or TYPE NAME, not both")
				}
				name = args[1]
			}
			if isRolloutType(typ) && name != "" {
				return o.runRollout(cmd.Context(), env, name)
			}
			if isAnalysisRunType(typ) {
				return o.runAnalysisRun(cmd.Context(), env, name)
			}
			if !isCloneSetType(typ) {
				return fmt.Errorf("unsupported resource type %q: drover get supports cloneset (cs), rollout (ro) and analysisrun (ar)", typ)
			}
			return o.run(cmd.Context(), env, name)
		},
	}
	get.PersistentFlags().BoolVarP(&o.watch, "watch", "w", false, "Keep watching and re-render on every change until interrupted.")

	cs := &cobra.Command{
		Use:     "cloneset [NAME]",
		Aliases: []string{"cs", "clonesets", "clone"},
		Short:   "Show a CloneSet (or list the CloneSets of the namespace)",
		Example: env.examples("drover get cloneset web-frontend", "drover get cs web-frontend -w"),
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			return o.run(cmd.Context(), env, name)
		},
	}
	ro := &cobra.Command{
		Use:     "rollout NAME",
		Aliases: []string{"ro", "rollouts"},
		Short:   "Show a Rollout: steps, weights, revisions with their pods, Services, analysis runs, conditions",
		Example: env.examples("drover get rollout web", "drover get ro web -w"),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.runRollout(cmd.Context(), env, args[0])
		},
	}
	ar := &cobra.Command{
		Use:     "analysisrun [NAME]",
		Aliases: []string{"ar", "analysisruns"},
		Short:   "Show an AnalysisRun: phase, metrics and measurements (or list the runs of the namespace)",
		Example: env.examples("drover get analysisrun", "drover get ar web-web-6d4f8b7c9-t3k2f0-step-1", "drover get ar web-web-6d4f8b7c9-t3k2f0-step-1 -w"),
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			return o.runAnalysisRun(cmd.Context(), env, name)
		},
	}
	get.AddCommand(cs, ro, ar)
	return get
}

func (o *getOptions) runRollout(ctx context.Context, env *cmdEnv, name string) error {
	c, ns, err := env.connect()
	if err != nil {
		return err
	}
	color := isTerminal(env.streams.Out) && os.Getenv("NO_COLOR") == ""
	render := func(w io.Writer, now time.Time) error {
		v, err := CollectRollout(ctx, c, ns, name, now)
		if err != nil {
			return err
		}
		v.Color = color
		return RenderRolloutView(w, v)
	}
	if !o.watch {
		return render(env.streams.Out, time.Now())
	}
	return watchLoop(ctx, env.streams.Out, watchInterval, render)
}

func (o *getOptions) runAnalysisRun(ctx context.Context, env *cmdEnv, name string) error {
	c, ns, err := env.connect()
	if err != nil {
		return err
	}
	render := func(w io.Writer, now time.Time) error {
		if name == "" {
			var list rolloutsv1alpha1.AnalysisRunList
			if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
				return fmt.Errorf("listing analysisruns in %s: %w", ns, err)
			}
			return RenderAnalysisRunList(w, now, list.Items)
		}
		var run rolloutsv1alpha1.AnalysisRun
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &run); err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("analysisrun %q not found in namespace %q", name, ns)
			}
			return fmt.Errorf("getting analysisrun %s/%s: %w", ns, name, err)
		}
		return RenderAnalysisRun(w, now, &run)
	}
	if !o.watch {
		return render(env.streams.Out, time.Now())
	}
	return watchLoop(ctx, env.streams.Out, watchInterval, render)
}

func (o *getOptions) run(ctx context.Context, env *cmdEnv, name string) error {
	c, ns, err := env.connect()
	if err != nil {
		return err
	}
	render := func(w io.Writer, now time.Time) error {
		if name == "" {
			var list appsv1alpha1.CloneSetList
			if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
				return fmt.Errorf("listing clonesets in %s: %w", ns, err)
			}
			return RenderList(w, now, list.Items)
		}
		snap, err := Collect(ctx, c, ns, name, now)
		if err != nil {
			return err
		}
		return Render(w, snap)
	}
	if !o.watch {
		return render(env.streams.Out, time.Now())
	}
	return watchLoop(ctx, env.streams.Out, watchInterval, render)
}

// watchLoop re-renders every interval until ctx ends. On a terminal
// it redraws the screen; otherwise it prints a new frame only when the
// content (ignoring ages) changed. Errors are shown and retried.
func watchLoop(ctx context.Context, out io.Writer, interval time.Duration, render func(io.Writer, time.Time) error) error {
	tty := isTerminal(out)
	var last []byte
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		now := time.Now()
		var frame, fingerprint bytes.Buffer
		err := render(&frame, now)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			frame.Reset()
			fmt.Fprintf(&frame, "error: %v (retrying)\n", err)
			fingerprint.Write(frame.Bytes())
		} else {
			// Ages change every second; compare frames rendered at a
			// fixed time so that only real changes print a new frame.
			if ferr := render(&fingerprint, time.Unix(0, 0)); ferr != nil {
				fingerprint.Write(frame.Bytes())
			}
		}
		switch {
		case tty:
			fmt.Fprint(out, "\x1b[H\x1b[2J")
			fmt.Fprintf(out, "Every %s, %s. Ctrl-C to stop.\n\n", interval, now.Format("15:04:05"))
			_, _ = out.Write(frame.Bytes())
		case !bytes.Equal(last, fingerprint.Bytes()):
			if last != nil {
				fmt.Fprintf(out, "\n--- %s\n", now.Format(time.RFC3339))
			}
			_, _ = out.Write(frame.Bytes())
			last = fingerprint.Bytes()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Collect reads a CloneSet with its revisions and pods.
func Collect(ctx context.Context, c client.Reader, namespace, name string, now time.Time) (Snapshot, error) {
	cs := &appsv1alpha1.CloneSet{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, cs); err != nil {
		if apierrors.IsNotFound(err) {
			return Snapshot{}, fmt.Errorf("cloneset %q not found in namespace %q", name, namespace)
		}
		return Snapshot{}, fmt.Errorf("getting cloneset %s/%s: %w", namespace, name, err)
	}
	snap := Snapshot{Now: now, CloneSet: cs}

	if cs.Spec.Selector != nil {
		sel, err := metav1.LabelSelectorAsSelector(cs.Spec.Selector)
		if err != nil {
			return Snapshot{}, fmt.Errorf("cloneset %s/%s has an invalid selector: %w", namespace, name, err)
		}
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
			return Snapshot{}, fmt.Errorf("listing pods of cloneset %s/%s: %w", namespace, name, err)
		}
		for i := range pods.Items {
			if metav1.IsControlledBy(&pods.Items[i], cs) {
				snap.Pods = append(snap.Pods, pods.Items[i])
			}
		}
	}

	var revs appsv1.ControllerRevisionList
	if err := c.List(ctx, &revs, client.InNamespace(namespace), client.HasLabels{appsv1alpha1.LabelWorkload}); err != nil {
		return Snapshot{}, fmt.Errorf("listing revisions of cloneset %s/%s: %w", namespace, name, err)
	}
	for i := range revs.Items {
		if metav1.IsControlledBy(&revs.Items[i], cs) {
			snap.Revisions = append(snap.Revisions, revs.Items[i])
		}
	}
	return snap, nil
}
